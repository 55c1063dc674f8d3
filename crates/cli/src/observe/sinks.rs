//! Each sink's health in `/status` and `/metrics`, from the engine's
//! [`SinkBoard`]: read when a page is asked for, so nothing has to push it.

use std::time::{Instant, SystemTime, UNIX_EPOCH};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde_json::json;
use sip_blf_engine::{SinkBoard, SinkStatus};

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabel {
    sink: String,
}

/// The per-sink metric families.
#[derive(Debug, Default)]
pub(super) struct SinkMetrics {
    board: std::sync::OnceLock<SinkBoard>,
    queue_depth: Family<SinkLabel, Gauge>,
    in_flight: Family<SinkLabel, Gauge>,
    connected: Family<SinkLabel, Gauge>,
    last_success: Family<SinkLabel, Gauge<f64, std::sync::atomic::AtomicU64>>,
    failures: Family<SinkLabel, Counter>,
}

/// Wall-clock time of a monotonic instant in the past.
fn wall(at: Instant, now: Instant, wall_now: SystemTime) -> SystemTime {
    wall_now
        .checked_sub(now.saturating_duration_since(at))
        .unwrap_or(UNIX_EPOCH)
}

fn unix(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

impl SinkMetrics {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "sink_queue_depth",
            "People with a write waiting, by sink",
            self.queue_depth.clone(),
        );
        registry.register(
            "sink_in_flight",
            "Writes in flight, by sink",
            self.in_flight.clone(),
        );
        registry.register(
            "sink_connected",
            "1 while the sink is not paused after a lost connection, by sink",
            self.connected.clone(),
        );
        registry.register(
            "sink_last_success_timestamp_seconds",
            "When a write to the sink last succeeded (Unix time; 0 if never), by sink",
            self.last_success.clone(),
        );
        registry.register(
            "sink_write_failures",
            "Failed writes since start, by sink",
            self.failures.clone(),
        );
    }

    /// Shows the sinks of `board`; set once (later calls are ignored).
    pub(super) fn set_board(&self, board: SinkBoard) {
        let _ = self.board.set(board);
    }

    pub(super) fn sinks(&self) -> Vec<SinkStatus> {
        self.board.get().map(SinkBoard::sinks).unwrap_or_default()
    }

    /// Brings the families up to date before an export.
    pub(super) fn refresh(&self) {
        let (now, wall_now) = (Instant::now(), SystemTime::now());
        for s in self.sinks() {
            let label = SinkLabel {
                sink: s.name.clone(),
            };
            let gauge = |n: usize| i64::try_from(n).unwrap_or(i64::MAX);
            self.queue_depth
                .get_or_create(&label)
                .set(gauge(s.queue_depth));
            self.in_flight.get_or_create(&label).set(gauge(s.in_flight));
            self.connected
                .get_or_create(&label)
                .set(i64::from(!s.paused));
            self.last_success
                .get_or_create(&label)
                .set(s.last_success.map_or(0.0, |t| unix(wall(t, now, wall_now))));
            let counter = self.failures.get_or_create(&label);
            counter.inc_by(s.failures.saturating_sub(counter.get()));
        }
    }

    /// The `sinks` array of `/status`.
    pub(super) fn status_json(&self, wall_now: SystemTime) -> serde_json::Value {
        let now = Instant::now();
        let sinks: Vec<serde_json::Value> = self
            .sinks()
            .into_iter()
            .map(|s| {
                let last = s.last_success.map(|t| wall(t, now, wall_now));
                json!({
                    "name": s.name,
                    "connected": !s.paused,
                    "queue_depth": s.queue_depth,
                    "in_flight": s.in_flight,
                    "failures": s.failures,
                    "last_success_unix": last.map(unix),
                    "last_success_age_seconds": last.map(|t| wall_now
                        .duration_since(t)
                        .unwrap_or_default()
                        .as_secs_f64()),
                })
            })
            .collect();
        serde_json::Value::Array(sinks)
    }
}
