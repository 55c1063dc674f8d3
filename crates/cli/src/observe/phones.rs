//! What `/status` and `/metrics` show of the desk phones' action URLs: the
//! requests by outcome.

use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;
use serde_json::json;

use super::Telemetry;
use crate::action_url::Counters;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutcomeLabel {
    outcome: &'static str,
}

/// The action-URL part of the telemetry.
#[derive(Debug, Default)]
pub(super) struct PhoneTelemetry {
    requests: Family<OutcomeLabel, Counter>,
    /// The listener's counters, once it runs.
    counters: OnceLock<Arc<Counters>>,
}

impl PhoneTelemetry {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "action_url_requests",
            "Requests to the desk phones' action-URL listener, by outcome",
            self.requests.clone(),
        );
    }

    fn outcomes(&self) -> Option<[(&'static str, u64); 5]> {
        let c = self.counters.get()?;
        let n = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        Some([
            ("accepted", n(&c.accepted)),
            ("stale", n(&c.stale)),
            ("forbidden", n(&c.forbidden)),
            ("unknown_extension", n(&c.unknown_extension)),
            ("bad_request", n(&c.bad_request)),
        ])
    }

    /// Brings the exported counters up to the listener's.
    pub(super) fn refresh(&self) {
        for (outcome, total) in self.outcomes().into_iter().flatten() {
            let counter = self.requests.get_or_create(&OutcomeLabel { outcome });
            let shown = counter.get();
            if total > shown {
                counter.inc_by(total - shown);
            }
        }
    }

    /// The source's entry in `/status`, once it runs.
    pub(super) fn status_json(&self) -> Option<serde_json::Value> {
        let outcomes = self.outcomes()?;
        let requests: serde_json::Map<String, serde_json::Value> = outcomes
            .iter()
            .map(|(k, v)| ((*k).to_owned(), json!(v)))
            .collect();
        Some(json!({ "name": "action-url", "connected": true, "requests": requests }))
    }
}

impl Telemetry {
    /// Shows the action-URL listener's requests (`counters`) in `/status`
    /// and `/metrics`. Set once; later calls are ignored.
    pub fn set_action_url(&self, counters: Arc<Counters>) {
        let _ = self.inner.phones.counters.set(counters);
    }
}
