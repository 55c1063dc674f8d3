//! What `/status` and `/metrics` show of Teams → PBX: the Teams presence
//! last read per person, the DND this service set, and its actions.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use sip_blf_engine::TeamsPresence;

use super::Telemetry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ActionLabels {
    dnd: &'static str,
    outcome: &'static str,
}

/// The Teams → PBX part of the telemetry.
#[derive(Debug, Default)]
pub(super) struct ReverseTelemetry {
    /// The presence last read from Teams, by person.
    read: Mutex<BTreeMap<String, String>>,
    actions: Family<ActionLabels, Counter>,
    /// The Teams source's polls, once it runs.
    poll: std::sync::OnceLock<crate::teams_source::PollStatus>,
    poll_lag: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl ReverseTelemetry {
    pub(super) fn register(&self, registry: &mut Registry) {
        registry.register(
            "teams_to_pbx_actions",
            "DND turned on or off on the PBX because of Teams, by outcome",
            self.actions.clone(),
        );
        registry.register(
            "teams_poll_lag_seconds",
            "Seconds since Teams presence was last read successfully",
            self.poll_lag.clone(),
        );
    }

    /// The poll lag, now (`None` before the Teams source runs).
    pub(super) fn lag(&self) -> Option<f64> {
        let lag = self.poll.get()?.lag().as_secs_f64();
        self.poll_lag.set(lag);
        Some(lag)
    }
}

impl Telemetry {
    /// The presence the Teams sink holds for `extension`'s user
    /// (`Busy/InACall`), if it holds one.
    pub fn held_presence(&self, extension: &str) -> Option<String> {
        self.extensions()
            .get(extension)?
            .presence
            .clone()
            .filter(|p| p.contains('/'))
    }

    /// The presence just read from Teams for `person`; the dashboard shows
    /// it on every extension of theirs.
    pub fn teams_presence_read(&self, person: &str, presence: &TeamsPresence) {
        let text = format!("{}/{}", presence.availability, presence.activity);
        let extensions: Vec<String> = self
            .extensions()
            .iter()
            .filter(|(_, e)| e.user.as_deref() == Some(person))
            .map(|(extension, _)| extension.clone())
            .collect();
        for extension in &extensions {
            self.inner.board.teams_read(extension, &text);
        }
        self.inner
            .reverse
            .read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(person.to_owned(), text);
    }

    /// The presence last read from Teams for `person`, as text.
    pub(super) fn teams_read(&self, person: &str) -> Option<String> {
        self.inner
            .reverse
            .read
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(person)
            .cloned()
    }

    /// Shows the Teams source's poll lag in `/status` and `/metrics`. Set
    /// once.
    pub fn set_teams_poll(&self, status: crate::teams_source::PollStatus) {
        let _ = self.inner.reverse.poll.set(status);
    }

    /// A DND action on the PBX finished.
    pub fn reverse_action(&self, dnd: bool, ok: bool) {
        self.inner
            .reverse
            .actions
            .get_or_create(&ActionLabels {
                dnd: if dnd { "on" } else { "off" },
                outcome: if ok { "ok" } else { "failed" },
            })
            .inc();
    }

    /// `extension`'s DND on the PBX is (`true`) or is no longer this
    /// service's doing.
    pub fn set_pbx_dnd_by_us(&self, extension: &str, by_us: bool) {
        self.inner.board.dnd_by_teams(extension, by_us);
        self.update(extension, |e| e.pbx_dnd_by_us = by_us);
    }
}
