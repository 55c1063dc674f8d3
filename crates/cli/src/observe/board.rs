//! What the telemetry hands the line board (the dashboard) besides the
//! engine's views: every NOTIFY's time (a tile's "last event"), the Teams
//! presence set or refused for each person, the presence read from Teams
//! and the DND set because of it (Teams → PBX), and summaries for its
//! health line.

use std::sync::atomic::Ordering;
use std::sync::OnceLock;
use std::time::SystemTime;

use graph_presence::PresenceState;
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

    /// `read` (`DoNotDisturb/Presenting`) was read from Teams for the
    /// person of `extension`.
    pub(super) fn teams_read(&self, extension: &str, read: &str) {
        if let Some(board) = self.0.get() {
            board.set_teams_read(extension, Some(read));
        }
    }

    /// `extension`'s DND on the PBX is (or no longer is) this service's doing.
    pub(super) fn dnd_by_teams(&self, extension: &str, by_us: bool) {
        if let Some(board) = self.0.get() {
            board.set_dnd_by_teams(extension, by_us);
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
    pub fn presence_failed(&self, extension: &str, pair: &PresenceState) {
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

#[cfg(test)]
mod tests {
    use line_board::{BoardConfig, DndBy, LineState, LineUpdate, Listing};

    use super::*;

    fn board() -> Board {
        let listing = |ext: &str| Listing {
            email: Some("alice@contoso.com".into()),
            ..Listing::new(ext)
        };
        Board::new([listing("1001"), listing("1002")], BoardConfig::default())
    }

    #[test]
    fn presence_set_refused_and_cleared_reaches_every_tile_of_the_person() {
        let telemetry = Telemetry::new();
        let board = board();
        telemetry.set_board(board.clone());
        let teams = |ext: &str| board.extension(ext).and_then(|e| e.teams);

        telemetry.set_presence("1001", "Busy/InACall");
        let set = teams("1002").expect("the person's other phone shows it too");
        assert_eq!(
            (set.availability.as_str(), set.activity.as_str()),
            ("Busy", "InACall")
        );
        assert!(set.accepted);

        let pair = PresenceState::Available;
        telemetry.presence_failed("1001", &pair);
        let refused = teams("1001").unwrap();
        assert_eq!(refused.availability, "Available");
        assert!(!refused.accepted, "Graph has not accepted it");

        telemetry.set_presence("1001", "cleared");
        assert_eq!((teams("1001"), teams("1002")), (None, None));
    }

    #[test]
    fn the_teams_read_and_the_dnd_set_for_it_reach_the_board() {
        let telemetry = Telemetry::new();
        let listing = |ext: &str, email: &str| Listing {
            email: Some(email.into()),
            ..Listing::new(ext)
        };
        let board = Board::new(
            [
                listing("1001", "alice@contoso.com"),
                listing("1002", "alice@contoso.com"),
                listing("1003", "bob@contoso.com"),
            ],
            BoardConfig::default(),
        );
        telemetry.set_board(board.clone());
        telemetry.add_extension("1001", "alice@contoso.com");
        telemetry.add_extension("1002", "alice@contoso.com");
        telemetry.add_extension("1003", "bob@contoso.com");
        let read = |ext: &str| board.extension(ext).and_then(|e| e.teams_read);

        let dnd = sip_blf_engine::TeamsPresence::new("DoNotDisturb", "Presenting");
        telemetry.teams_presence_read("alice@contoso.com", &dnd);
        assert_eq!(read("1001").as_deref(), Some("DoNotDisturb/Presenting"));
        assert_eq!(
            read("1002").as_deref(),
            Some("DoNotDisturb/Presenting"),
            "every extension of the person"
        );
        assert_eq!(read("1003"), None, "another person");

        let mut on = LineUpdate::new(LineState::Idle);
        on.dnd = true;
        board.set_line("1001", on.clone(), SystemTime::now());
        board.set_line("1003", on, SystemTime::now());
        let dnd_by = |ext: &str| board.extension(ext).and_then(|e| e.dnd_by);
        assert_eq!(dnd_by("1001"), Some(DndBy::Pbx));
        telemetry.set_pbx_dnd_by_us("1001", true);
        assert_eq!(dnd_by("1001"), Some(DndBy::Teams));
        assert_eq!(dnd_by("1003"), Some(DndBy::Pbx));
        telemetry.set_pbx_dnd_by_us("1001", false);
        assert_eq!(dnd_by("1001"), Some(DndBy::Pbx));
    }

    #[test]
    fn a_notify_is_the_tiles_last_event() {
        let telemetry = Telemetry::new();
        let board = board();
        telemetry.set_board(board.clone());
        let at = SystemTime::UNIX_EPOCH + std::time::Duration::from_secs(1_796_000_000);
        telemetry.notify_received("1002", at);
        assert_eq!(board.extension("1002").unwrap().last_event, Some(at));
        assert_eq!(board.extension("1001").unwrap().last_event, None);
    }

    #[test]
    fn the_sip_summary_counts_active_subscriptions() {
        let telemetry = Telemetry::new();
        telemetry.add_extension("1001", "alice@contoso.com");
        telemetry.add_extension("1002", "bob@contoso.com");
        telemetry.set_subscription("1001", SubscriptionStatus::Active);
        telemetry.set_registered(true);
        let summary = telemetry.sip_summary();
        assert_eq!(
            (summary.registered, summary.active, summary.total),
            (true, 1, 2)
        );
    }
}
