//! The PBX's do-not-disturb: while it is on, the mapping's `dnd` action
//! applies whatever the line state; `dnd = "keep"` ignores it. In virtual
//! time: the engine is sans-IO.

use std::time::{Duration, Instant};

use blf::LineState;

use super::*;
use PresenceCommandKind::{Clear, Set, StatusMessage};

const HOUR: Duration = Duration::from_secs(3600);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn settings() -> EngineSettings {
    EngineSettings {
        reconcile_every: Duration::ZERO,
        ..EngineSettings::default()
    }
}

fn engine(settings: EngineSettings, mapping: Mapping, t0: Instant) -> Engine {
    let mut e = Engine::new(settings, t0);
    e.add_extension("1001", "alice@contoso.com", mapping);
    e
}

fn set(pair: PresenceState) -> PresenceCommandKind {
    Set {
        pair,
        expiration: HOUR,
    }
}

fn dnd() -> PresenceCommandKind {
    set(PresenceState::DoNotDisturbPresenting)
}

fn busy() -> PresenceCommandKind {
    set(PresenceState::BusyInACall)
}

fn kinds(cmds: &[PresenceCommand]) -> Vec<(PresenceCommandKind, Reason)> {
    cmds.iter().map(|c| (c.kind.clone(), c.reason)).collect()
}

#[test]
fn idle_with_dnd_sets_do_not_disturb_and_dnd_off_clears_it() {
    let t0 = Instant::now();
    let mut e = engine(settings(), Mapping::default(), t0);
    e.line_changed_with_dnd("1001", LineState::Idle, true, t0);
    assert_eq!(e.dnd("1001"), Some(true));
    assert_eq!(kinds(&e.poll(t0)), vec![(dnd(), Reason::Change)]);
    assert_eq!(
        e.applied("1001").as_deref(),
        Some("DoNotDisturb/Presenting")
    );

    e.line_changed_with_dnd("1001", LineState::Idle, false, t0 + secs(5));
    assert_eq!(kinds(&e.poll(t0 + secs(5))), vec![(Clear, Reason::Change)]);
    assert_eq!(e.dnd("1001"), Some(false));
}

#[test]
fn dnd_wins_over_a_call_and_toggling_it_alone_is_a_change() {
    let t0 = Instant::now();
    let mut e = engine(settings(), Mapping::default(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    assert_eq!(kinds(&e.poll(t0)), vec![(busy(), Reason::Change)]);
    // The same line state with DND switched on, then off again.
    e.line_changed_with_dnd("1001", LineState::Busy, true, t0 + secs(1));
    assert_eq!(kinds(&e.poll(t0 + secs(1))), vec![(dnd(), Reason::Change)]);
    e.line_changed_with_dnd("1001", LineState::Busy, false, t0 + secs(2));
    assert_eq!(kinds(&e.poll(t0 + secs(2))), vec![(busy(), Reason::Change)]);
    // The call ends with DND on: do-not-disturb stays.
    e.line_changed_with_dnd("1001", LineState::Busy, true, t0 + secs(3));
    e.poll(t0 + secs(3));
    e.line_changed_with_dnd("1001", LineState::Idle, true, t0 + secs(4));
    assert!(e.poll(t0 + secs(4)).is_empty(), "DoNotDisturb is held");
    assert_eq!(
        e.applied("1001").as_deref(),
        Some("DoNotDisturb/Presenting")
    );
    // `line_changed` reports DND off.
    e.line_changed("1001", LineState::Idle, t0 + secs(5));
    assert_eq!(kinds(&e.poll(t0 + secs(5))), vec![(Clear, Reason::Change)]);
}

#[test]
fn dnd_kept_leaves_the_line_state_in_charge() {
    let t0 = Instant::now();
    let mapping = Mapping {
        dnd: PresenceAction::Keep,
        ..Mapping::default()
    };
    let mut e = engine(settings(), mapping, t0);
    e.line_changed_with_dnd("1001", LineState::Idle, true, t0);
    assert!(
        e.poll(t0).is_empty(),
        "idle clears; nothing of ours to clear"
    );
    e.line_changed_with_dnd("1001", LineState::Busy, true, t0 + secs(1));
    assert_eq!(kinds(&e.poll(t0 + secs(1))), vec![(busy(), Reason::Change)]);
    e.line_changed_with_dnd("1001", LineState::Busy, false, t0 + secs(2));
    assert!(e.poll(t0 + secs(2)).is_empty(), "DND alone changes nothing");
}

#[test]
fn a_debounced_burst_sends_its_final_line_and_dnd() {
    let t0 = Instant::now();
    let debounced = EngineSettings {
        debounce: secs(2),
        ..settings()
    };
    let mut e = engine(debounced, Mapping::default(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    e.line_changed_with_dnd("1001", LineState::Busy, true, t0 + secs(1));
    e.line_changed_with_dnd("1001", LineState::Idle, true, t0 + secs(1));
    assert!(e.poll(t0 + secs(1)).is_empty(), "the window is still open");
    assert_eq!(e.next_deadline(), Some(t0 + secs(2)));
    let cmds = e.poll(t0 + secs(2));
    assert_eq!(kinds(&cmds), vec![(dnd(), Reason::Change)]);
    assert_eq!(cmds[0].caused_at, Some(t0));

    // DND switched off and on again within one window: nothing to send.
    e.line_changed_with_dnd("1001", LineState::Idle, false, t0 + secs(10));
    e.line_changed_with_dnd("1001", LineState::Idle, true, t0 + secs(11));
    assert!(e.poll(t0 + secs(12)).is_empty());
    assert_eq!(
        e.applied("1001").as_deref(),
        Some("DoNotDisturb/Presenting")
    );
}

#[test]
fn do_not_disturb_carries_no_busy_status_message() {
    let t0 = Instant::now();
    let with_message = EngineSettings {
        status_message: Some("On a PBX call".into()),
        ..settings()
    };
    let mut e = engine(with_message, Mapping::default(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    assert_eq!(
        kinds(&e.poll(t0)),
        vec![
            (busy(), Reason::Change),
            (
                StatusMessage {
                    text: "On a PBX call".into()
                },
                Reason::Change
            ),
        ]
    );
    // The message says "call"; do-not-disturb replaces it with none.
    e.line_changed_with_dnd("1001", LineState::Busy, true, t0 + secs(1));
    assert_eq!(
        kinds(&e.poll(t0 + secs(1))),
        vec![
            (dnd(), Reason::Change),
            (
                StatusMessage {
                    text: String::new()
                },
                Reason::Change
            ),
        ]
    );
}
