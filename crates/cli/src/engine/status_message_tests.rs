//! The status message (`STATUS_MESSAGE`) is recorded like the presence it
//! goes with and cleared by every path that clears a presence: the next
//! start after a crash, a failed clear's retry, the stop. In virtual time:
//! the engine is sans-IO.

use std::time::{Duration, Instant};

use blf::LineState;

use super::*;
use PresenceCommandKind::{Clear, Set, StatusMessage};

const BUSY: PresenceState = PresenceState::BusyInACall;

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn with_message() -> EngineSettings {
    EngineSettings {
        reconcile_every: Duration::ZERO,
        status_message: Some("On a PBX call".into()),
        ..EngineSettings::default()
    }
}

fn engine(settings: EngineSettings, t0: Instant) -> Engine {
    let mut e = Engine::new(settings, t0);
    e.add_extension("1001", "alice@contoso.com", Mapping::default());
    e
}

fn cleared_message() -> PresenceCommandKind {
    StatusMessage {
        text: String::new(),
    }
}

fn kinds(cmds: &[PresenceCommand]) -> Vec<(PresenceCommandKind, Reason)> {
    cmds.iter().map(|c| (c.kind.clone(), c.reason)).collect()
}

/// What a run killed during a call leaves: Busy with the message.
fn left(user: &str, extension: &str, applied: &str) -> PersistedState {
    let mut s = PersistedState::default();
    s.users.insert(
        user.into(),
        AppliedRecord {
            extension: extension.into(),
            applied: applied.into(),
            at_unix: 1_795_000_000.0,
            status_message: true,
        },
    );
    s
}

#[test]
fn the_message_is_recorded_before_the_call_that_sets_it() {
    let t0 = Instant::now();
    let mut e = engine(with_message(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    let cmds = e.poll(t0);
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    // What the write-ahead record writes, before the calls are made.
    let record = e.applied_record("1001", "alice@contoso.com").unwrap();
    assert_eq!(record.applied, "Busy/InACall");
    assert!(record.status_message);
    // Once cleared, the record says so.
    e.line_changed("1001", LineState::Idle, t0 + secs(5));
    e.poll(t0 + secs(5));
    assert!(!e.applied_records()["alice@contoso.com"].status_message);
}

#[test]
fn restart_clears_the_message_with_the_presence_at_the_first_idle_notify() {
    let t0 = Instant::now();
    let mut e = engine(with_message(), t0);
    e.restore(&left("alice@contoso.com", "1001", "Busy/InACall"));
    e.line_changed("1001", LineState::Idle, t0 + secs(1));
    assert_eq!(
        kinds(&e.poll(t0 + secs(1))),
        vec![
            (Clear, Reason::Restart),
            (cleared_message(), Reason::Restart)
        ]
    );
    assert!(!e.applied_records()["alice@contoso.com"].status_message);
}

#[test]
fn restart_clears_the_message_after_the_grace_period_without_notify() {
    let t0 = Instant::now();
    let mut e = engine(with_message(), t0);
    e.restore(&left("alice@contoso.com", "1001", "Busy/InACall"));
    assert!(e.poll(t0 + secs(29)).is_empty());
    assert_eq!(
        kinds(&e.poll(t0 + secs(30))),
        vec![
            (Clear, Reason::Restart),
            (cleared_message(), Reason::Restart)
        ]
    );
}

#[test]
fn restart_clears_the_message_even_when_status_message_is_no_longer_set() {
    let t0 = Instant::now();
    let mut e = engine(
        EngineSettings {
            status_message: None,
            ..with_message()
        },
        t0,
    );
    e.restore(&left("alice@contoso.com", "1001", "Busy/InACall"));
    // Still on the phone: the Busy stays, the message does not.
    e.line_changed("1001", LineState::Busy, t0 + secs(1));
    let cmds = kinds(&e.poll(t0 + secs(1)));
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    assert!(matches!(cmds[0].0, Set { pair: BUSY, .. }));
    assert_eq!(cmds[1], (cleared_message(), Reason::Restart));
}

#[test]
fn restart_keeps_the_message_while_the_line_is_still_busy() {
    let t0 = Instant::now();
    let mut e = engine(with_message(), t0);
    e.restore(&left("alice@contoso.com", "1001", "Busy/InACall"));
    e.line_changed("1001", LineState::Busy, t0 + secs(1));
    let cmds = kinds(&e.poll(t0 + secs(1)));
    assert_eq!(cmds.len(), 1, "the message is still shown: {cmds:?}");
    e.line_changed("1001", LineState::Idle, t0 + secs(9));
    assert_eq!(
        kinds(&e.poll(t0 + secs(9))),
        vec![(Clear, Reason::Change), (cleared_message(), Reason::Change)]
    );
}

#[test]
fn restart_clears_a_message_whose_clear_was_not_confirmed() {
    // The presence was cleared; the message's clear was cut off.
    let t0 = Instant::now();
    let mut e = engine(with_message(), t0);
    e.restore(&left("alice@contoso.com", "1001", "clear"));
    e.line_changed("1001", LineState::Idle, t0 + secs(1));
    assert_eq!(
        kinds(&e.poll(t0 + secs(1))),
        vec![(cleared_message(), Reason::Restart)]
    );
    assert!(e.poll(t0 + secs(100)).is_empty());
}

#[test]
fn restart_clears_the_message_of_a_user_no_longer_configured() {
    let t0 = Instant::now();
    let mut e = engine(with_message(), t0);
    e.restore(&left("carol@contoso.com", "1003", "Busy/InACall"));
    let cmds = e.poll(t0);
    assert_eq!(
        kinds(&cmds),
        vec![
            (Clear, Reason::Restart),
            (cleared_message(), Reason::Restart)
        ]
    );
    // Only the message's clear failed: it is tried again, and recorded meanwhile.
    e.command_succeeded(&cmds[0]);
    e.command_failed(&cmds[1], t0);
    assert!(e.applied_records()["carol@contoso.com"].status_message);
    let again = e.poll(t0 + secs(30));
    assert!(
        again
            .iter()
            .any(|c| c.user == "carol@contoso.com" && c.kind == cleared_message()),
        "{again:?}"
    );
}

#[test]
fn a_failed_message_clear_is_retried_and_recorded_meanwhile() {
    let t0 = Instant::now();
    let mut e = engine(with_message(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    for c in e.poll(t0) {
        e.command_succeeded(&c);
    }
    e.line_changed("1001", LineState::Idle, t0 + secs(10));
    let cmds = e.poll(t0 + secs(10));
    assert_eq!(cmds.len(), 2, "{cmds:?}");
    e.command_succeeded(&cmds[0]);
    e.command_failed(&cmds[1], t0 + secs(10));
    assert!(e.applied_records()["alice@contoso.com"].status_message);
    assert!(e.poll(t0 + secs(39)).is_empty());
    let retry = kinds(&e.poll(t0 + secs(40)));
    assert!(
        retry.contains(&(cleared_message(), Reason::Retry)),
        "{retry:?}"
    );
}

#[test]
fn a_stop_clears_a_message_whose_clear_failed() {
    let t0 = Instant::now();
    let mut e = engine(with_message(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    e.poll(t0);
    e.line_changed("1001", LineState::Idle, t0 + secs(10));
    let cmds = e.poll(t0 + secs(10));
    e.command_failed(&cmds[1], t0 + secs(10));
    assert_eq!(
        kinds(&e.shutdown(t0 + secs(11))),
        vec![(cleared_message(), Reason::Shutdown)]
    );
    assert!(!e.applied_records()["alice@contoso.com"].status_message);
}

#[test]
fn a_stop_during_a_call_clears_presence_and_message() {
    let t0 = Instant::now();
    let mut e = engine(with_message(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    e.poll(t0);
    assert_eq!(
        kinds(&e.shutdown(t0 + secs(1))),
        vec![
            (Clear, Reason::Shutdown),
            (cleared_message(), Reason::Shutdown)
        ]
    );
}
