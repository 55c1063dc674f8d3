//! What `/metrics` shows of the SIP user agent's hand-over of events to this
//! service: events delayed, NOTIFYs replaced, events dropped and events
//! waiting, so that an operator sees when the service reads too slowly.

use std::sync::OnceLock;

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sip_ua::driver::{EventStats, EventStatsReader};

use super::Telemetry;

/// The user agent's event counts in the telemetry.
#[derive(Debug, Default)]
pub(super) struct SipEventTelemetry {
    delayed: Counter,
    notifies_replaced: Counter,
    dropped: Counter,
    waiting: Gauge,
    /// The running user agent's counts, once it runs.
    reader: OnceLock<EventStatsReader>,
}

impl SipEventTelemetry {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "sip_events_delayed",
            "SIP user-agent events that found the reader busy and waited",
            self.delayed.clone(),
        );
        registry.register(
            "sip_notifies_replaced",
            "NOTIFYs replaced, while waiting for the reader, by a newer one for the same subscription",
            self.notifies_replaced.clone(),
        );
        registry.register(
            "sip_events_dropped",
            "SIP user-agent events dropped because the reader fell too far behind",
            self.dropped.clone(),
        );
        registry.register(
            "sip_events_waiting",
            "SIP user-agent events waiting for the reader now",
            self.waiting.clone(),
        );
    }

    /// Brings the exported metrics up to the user agent's counts.
    pub(super) fn refresh(&self) {
        if let Some(reader) = self.reader.get() {
            self.show(reader.get());
        }
    }

    fn show(&self, stats: EventStats) {
        let raise = |counter: &Counter, total: u64| {
            let shown = counter.get();
            if total > shown {
                counter.inc_by(total - shown);
            }
        };
        raise(&self.delayed, stats.delayed);
        raise(&self.notifies_replaced, stats.notifies_replaced);
        raise(&self.dropped, stats.dropped);
        self.waiting
            .set(i64::try_from(stats.waiting).unwrap_or(i64::MAX));
    }
}

impl Telemetry {
    /// Shows the SIP user agent's event counts ([`sip_ua::driver::UaHandle::event_stats`])
    /// in `/metrics`. Set once; later calls are ignored.
    pub fn set_sip_event_stats(&self, reader: EventStatsReader) {
        let _ = self.inner.sip_events.reader.set(reader);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_counts_are_shown_as_they_grow() {
        let t = SipEventTelemetry::default();
        let mut stats = EventStats::default();
        stats.delayed = 3;
        stats.notifies_replaced = 2;
        stats.dropped = 1;
        stats.waiting = 4;
        t.show(stats);
        stats.delayed = 5;
        stats.waiting = 0;
        t.show(stats);
        assert_eq!(t.delayed.get(), 5);
        assert_eq!(t.notifies_replaced.get(), 2);
        assert_eq!(t.dropped.get(), 1);
        assert_eq!(t.waiting.get(), 0);
    }
}
