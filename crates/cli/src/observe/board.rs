//! What the telemetry hands the line board (the dashboard) besides the
//! engine's views: every NOTIFY's time (a tile's "last event"), the Teams
//! presence set or refused for each person, and summaries for its health
//! line.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::SystemTime;

use graph_presence::PresencePair;
use line_board::{Board, Teams};
use sip_blf_engine::SinkStatus;

use super::{SubscriptionStatus, Telemetry};

/// The board, once set ([`Telemetry::set_board`]).
#[derive(Debug, Default)]
pub(super) struct BoardSlot(OnceLock<Board>);

impl BoardSlot {
    pub(super) fn notify(&self, extension: &str, at: SystemTime) {
        if let Some(board) = self.0.get() {
            board.touch(extension, at);
        }
    }

    /// `shown` as the telemetry keeps it: `Busy/InACall`, or `cleared`.
    pub(super) fn presence(&self, extension: &str, shown: &str, accepted: bool) {
        let Some(board) = self.0.get() else { return };
        let Some(email) = board.extension(extension).and_then(|e| e.email) else {
            return;
        };
        match shown.split_once('/') {
            Some((availability, activity)) => {
                board.set_teams(
                    &email,
                    Teams {
                        availability: availability.to_owned(),
                        activity: activity.to_owned(),
                        accepted,
                        at: SystemTime::now(),
                    },
                );
            }
            None => {
                board.clear_teams(&email);
            }
        }
    }
}

/// The SIP source at a glance, for the dashboard's health line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SipSummary {
    /// Registered with the PBX.
    pub registered: bool,
    /// Subscriptions active.
    pub active: usize,
    /// Extensions configured.
    pub total: usize,
    /// The last NOTIFY of any extension.
    pub last_notify: Option<SystemTime>,
}

impl Telemetry {
    /// Feeds `board` too: each NOTIFY's time and each person's Teams
    /// presence. Set once; later calls are ignored.
    pub fn set_board(&self, board: Board) {
        let _ = self.inner.board.0.set(board);
    }

    /// Setting `pair` for the person behind `extension` failed (it is
    /// retried): the dashboard shows it as not accepted.
    pub fn presence_failed(&self, extension: &str, pair: &PresencePair) {
        self.inner
            .board
            .presence(extension, &pair.to_string(), false);
    }

    /// The SIP source's registration and subscriptions.
    pub fn sip_summary(&self) -> SipSummary {
        let extensions = self.extensions();
        SipSummary {
            registered: self.inner.registered.load(Ordering::SeqCst),
            active: extensions
                .values()
                .filter(|e| e.subscription == Some(SubscriptionStatus::Active))
                .count(),
            total: extensions.len(),
            last_notify: extensions.values().filter_map(|e| e.last_notify).max(),
        }
    }

    /// Whether the Graph token is valid.
    pub fn token_valid(&self) -> bool {
        self.inner.token_valid.load(Ordering::SeqCst)
    }

    /// Each engine sink's health, in the order they were added.
    pub fn sinks(&self) -> Vec<SinkStatus> {
        self.inner.sinks.sinks()
    }
}
