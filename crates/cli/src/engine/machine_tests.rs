//! The per-user machine in virtual time.

use super::*;
use PresenceCommandKind::{Clear, Set};

const BUSY: PresenceState = PresenceState::BusyInACall;
const HOUR: Duration = Duration::from_secs(3600);

fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

fn engine(settings: EngineSettings, t0: Instant) -> Engine {
    let mut e = Engine::new(settings, t0);
    e.add_extension("1001", "alice@contoso.com", Mapping::default());
    e.add_extension("1002", "bob@contoso.com", Mapping::default());
    e
}

fn no_reconcile() -> EngineSettings {
    EngineSettings {
        reconcile_every: Duration::ZERO,
        ..EngineSettings::default()
    }
}

fn kinds(cmds: &[PresenceCommand]) -> Vec<(String, PresenceCommandKind, Reason)> {
    cmds.iter()
        .map(|c| (c.extension.clone(), c.kind.clone(), c.reason))
        .collect()
}

fn set(ext: &str, reason: Reason) -> (String, PresenceCommandKind, Reason) {
    (
        ext.into(),
        Set {
            pair: BUSY,
            expiration: HOUR,
        },
        reason,
    )
}

#[test]
fn changes_before_a_poll_coalesce_even_without_debounce() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    e.poll(t0);
    // A backlog (e.g. while Graph was slow): busy → idle → busy → idle.
    for (i, s) in [LineState::Idle, LineState::Busy, LineState::Idle]
        .into_iter()
        .enumerate()
    {
        e.line_changed("1001", s, t0 + secs(10 + i as u64));
    }
    let cmds = e.poll(t0 + secs(12));
    assert_eq!(kinds(&cmds), vec![("1001".into(), Clear, Reason::Change)]);
    assert_eq!(cmds[0].caused_at, Some(t0 + secs(10)));
}

#[test]
fn a_user_with_a_command_in_flight_waits_for_its_outcome() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    let first = e.poll(t0);
    e.dispatched(&first);
    assert!(e.in_flight("1001"));
    // While alice's set is in flight her line flaps; bob's changes.
    for (i, s) in [LineState::Idle, LineState::Busy, LineState::Idle]
        .into_iter()
        .enumerate()
    {
        e.line_changed("1001", s, t0 + secs(1 + i as u64));
    }
    e.line_changed("1002", LineState::Busy, t0 + secs(1));
    assert_eq!(
        kinds(&e.poll(t0 + secs(4))),
        vec![set("1002", Reason::Change)]
    );
    // Nothing is due for alice until the outcome is in (no busy wake-ups).
    assert!(e.next_deadline().is_some_and(|t| t > t0 + secs(60)));
    assert_eq!(e.poll(t0 + secs(5)), vec![]);
    e.command_succeeded(&first[0]);
    assert!(!e.in_flight("1001"));
    // Then only the final state, caused by the first change that waited.
    let cmds = e.poll(t0 + secs(5));
    assert_eq!(kinds(&cmds), vec![("1001".into(), Clear, Reason::Change)]);
    assert_eq!(cmds[0].caused_at, Some(t0 + secs(1)));
}

#[test]
fn a_call_in_flight_holds_every_extension_of_its_user() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.add_extension("1003", "alice@contoso.com", Mapping::default());
    e.line_changed("1001", LineState::Busy, t0);
    let first = e.poll(t0);
    e.dispatched(&first);
    assert!(e.in_flight("1003"), "alice's other phone waits too");
    e.line_changed("1003", LineState::Busy, t0 + secs(1));
    assert_eq!(e.poll(t0 + secs(2)), vec![]);
    e.command_succeeded(&first[0]);
    assert!(!e.in_flight("1001") && !e.in_flight("1003"));
    assert_eq!(
        kinds(&e.poll(t0 + secs(2))),
        vec![set("1003", Reason::Change)]
    );
}

#[test]
fn a_failed_command_in_flight_frees_its_user_for_the_retry() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    let first = e.poll(t0);
    e.dispatched(&first);
    e.command_failed(&first[0], t0 + secs(1));
    assert!(!e.in_flight("1001"));
    assert_eq!(e.next_deadline(), Some(t0 + secs(31)));
    assert_eq!(
        kinds(&e.poll(t0 + secs(31))),
        vec![set("1001", Reason::Retry)]
    );
}

#[test]
fn busy_sets_and_idle_clears() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    let cmds = e.poll(t0);
    assert_eq!(kinds(&cmds), vec![set("1001", Reason::Change)]);
    assert_eq!(cmds[0].user, "alice@contoso.com");
    assert_eq!(cmds[0].caused_at, Some(t0));
    e.line_changed("1001", LineState::Idle, t0 + secs(5));
    assert_eq!(
        kinds(&e.poll(t0 + secs(5))),
        vec![("1001".into(), Clear, Reason::Change)]
    );
    assert_eq!(e.applied("1001").as_deref(), Some("clear"));
}

#[test]
fn idle_without_anything_of_ours_sends_nothing() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Idle, t0);
    assert!(e.poll(t0).is_empty());
    assert_eq!(e.next_deadline(), None);
}

#[test]
fn no_duplicate_sends() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    assert_eq!(e.poll(t0).len(), 1);
    // Hold maps to the same pair: nothing new.
    e.line_changed("1001", LineState::Hold, t0 + secs(1));
    assert!(e.poll(t0 + secs(1)).is_empty());
    e.line_changed("1001", LineState::Busy, t0 + secs(2));
    assert!(e.poll(t0 + secs(2)).is_empty());
    e.line_changed("1001", LineState::Idle, t0 + secs(3));
    assert_eq!(e.poll(t0 + secs(3)).len(), 1);
    e.line_changed("1001", LineState::Offline, t0 + secs(4));
    assert!(e.poll(t0 + secs(4)).is_empty(), "clear is not sent twice");
}

#[test]
fn keep_changes_nothing() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Ringing, t0);
    assert!(e.poll(t0).is_empty());
    e.line_changed("1001", LineState::Busy, t0);
    assert_eq!(e.poll(t0).len(), 1);
    e.line_changed("1001", LineState::Ringing, t0 + secs(1));
    e.line_changed("1001", LineState::Unknown, t0 + secs(1));
    assert!(e.poll(t0 + secs(1)).is_empty());
    assert_eq!(e.applied("1001").as_deref(), Some("Busy/InACall"));
}

#[test]
fn debounce_coalesces_a_burst_into_its_final_state() {
    let t0 = Instant::now();
    let mut e = engine(
        EngineSettings {
            debounce: Duration::from_millis(500),
            ..no_reconcile()
        },
        t0,
    );
    e.line_changed("1001", LineState::Ringing, t0);
    e.line_changed("1001", LineState::Busy, t0 + Duration::from_millis(100));
    e.line_changed("1001", LineState::Idle, t0 + Duration::from_millis(200));
    e.line_changed("1001", LineState::Busy, t0 + Duration::from_millis(300));
    assert!(e.poll(t0 + Duration::from_millis(499)).is_empty());
    assert_eq!(e.next_deadline(), Some(t0 + Duration::from_millis(500)));
    let cmds = e.poll(t0 + Duration::from_millis(500));
    assert_eq!(kinds(&cmds), vec![set("1001", Reason::Change)]);
    assert_eq!(
        cmds[0].caused_at,
        Some(t0),
        "latency counts from the burst's start"
    );
    // A burst that ends where it started sends nothing.
    let t1 = t0 + secs(10);
    e.line_changed("1001", LineState::Idle, t1);
    e.line_changed("1001", LineState::Busy, t1 + Duration::from_millis(10));
    assert!(e.poll(t1 + secs(1)).is_empty());
}

#[test]
fn keep_alive_before_expiry() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    e.poll(t0);
    // PT1H: re-sent a minute before the end.
    let first = t0 + secs(3540);
    assert_eq!(e.next_deadline(), Some(first));
    assert!(e.poll(first - secs(1)).is_empty());
    assert_eq!(kinds(&e.poll(first)), vec![set("1001", Reason::KeepAlive)]);
    assert_eq!(e.next_deadline(), Some(first + secs(3540)));
    // Cleared: no more keep-alives.
    e.line_changed("1001", LineState::Idle, first + secs(1));
    assert_eq!(e.poll(first + secs(1)).len(), 1);
    assert_eq!(e.next_deadline(), None);
    assert!(e.poll(first + secs(3540)).is_empty());
}

#[test]
fn available_is_refreshed_within_five_minutes() {
    let t0 = Instant::now();
    let mut e = Engine::new(no_reconcile(), t0);
    let mapping = Mapping {
        idle: PresenceAction::Set(PresenceState::Available),
        ..Mapping::default()
    };
    e.add_extension("1001", "alice@contoso.com", mapping);
    e.line_changed("1001", LineState::Idle, t0);
    let cmds = e.poll(t0);
    assert!(matches!(
        cmds[0].kind,
        Set {
            pair: PresenceState::Available,
            ..
        }
    ));
    let due = e.next_deadline().unwrap();
    assert!(due - t0 < secs(300), "{:?}", due - t0);
    assert_eq!(due - t0, secs(240));
    assert_eq!(e.poll(due)[0].reason, Reason::KeepAlive);
}

#[test]
fn reconciliation_reasserts_what_we_set_and_not_known_clears() {
    let t0 = Instant::now();
    let every = secs(15 * 60);
    let mut e = engine(
        EngineSettings {
            reconcile_every: every,
            ..EngineSettings::default()
        },
        t0,
    );
    e.line_changed("1001", LineState::Busy, t0);
    e.line_changed("1002", LineState::Idle, t0);
    assert_eq!(e.poll(t0).len(), 1);
    assert_eq!(e.next_deadline(), Some(t0 + every));
    assert!(e.poll(t0 + every - secs(1)).is_empty());
    assert_eq!(
        kinds(&e.poll(t0 + every)),
        vec![set("1001", Reason::Reconcile)]
    );
    assert_eq!(e.next_deadline(), Some(t0 + every * 2));
    // A clear that went through is not repeated period after period.
    e.line_changed("1001", LineState::Idle, t0 + every + secs(1));
    assert_eq!(
        kinds(&e.poll(t0 + every + secs(1))),
        vec![("1001".into(), Clear, Reason::Change)]
    );
    assert!(e.poll(t0 + every * 2).is_empty());
    assert!(e.poll(t0 + every * 3).is_empty());
    // A clear that failed is retried until it goes through, then left alone.
    e.line_changed("1002", LineState::Busy, t0 + every * 3);
    e.poll(t0 + every * 3);
    e.line_changed("1002", LineState::Idle, t0 + every * 3 + secs(1));
    let cmds = e.poll(t0 + every * 3 + secs(1));
    e.command_failed(&cmds[0], t0 + every * 3 + secs(1));
    let cmds = e.poll(t0 + every * 3 + secs(31));
    assert_eq!(kinds(&cmds), vec![("1002".into(), Clear, Reason::Retry)]);
    e.command_succeeded(&cmds[0]);
    assert!(e.poll(t0 + every * 4).is_empty());
}

#[test]
fn permanent_failures_back_off_up_to_an_hour_and_a_success_resets() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    let mut cmds = e.poll(t0);
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..9 {
        let wait = e.command_failed_with(&cmds[0], now, Failure::Permanent);
        waits.push(wait.as_secs());
        assert_eq!(e.next_deadline(), Some(now + wait));
        assert!(e.poll(now + wait - secs(1)).is_empty());
        now += wait;
        cmds = e.poll(now);
        assert_eq!(kinds(&cmds), vec![set("1001", Reason::Retry)]);
    }
    assert_eq!(waits, [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]);
    e.command_succeeded(&cmds[0]);
    e.line_changed("1001", LineState::Idle, now);
    let cmds = e.poll(now);
    assert_eq!(
        e.command_failed_with(&cmds[0], now, Failure::Permanent),
        secs(30)
    );
}

#[test]
fn transient_failures_wait_for_retry_after_when_given() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    let cmds = e.poll(t0);
    let given = Failure::Transient {
        retry_after: Some(secs(2)),
    };
    for _ in 0..3 {
        assert_eq!(e.command_failed_with(&cmds[0], t0, given), secs(2));
    }
    assert_eq!(e.next_deadline(), Some(t0 + secs(2)));
    // The server paced us, it did not fail: the first failure without
    // Retry-After waits the first step of the backoff, the next one two.
    let none = Failure::Transient { retry_after: None };
    assert_eq!(e.command_failed_with(&cmds[0], t0, none), secs(1));
    assert_eq!(e.command_failed_with(&cmds[0], t0, given), secs(2));
    assert_eq!(e.command_failed_with(&cmds[0], t0, none), secs(2));
    // A Retry-After of days is cut to the longest backoff.
    let days = Failure::Transient {
        retry_after: Some(secs(3 * 86_400)),
    };
    assert_eq!(e.command_failed_with(&cmds[0], t0, days), HOUR);
}

/// Fails `cmds[0]` with `failure` each time its retry comes, `times` times,
/// and returns each wait; checks that nothing is sent before the wait ends.
fn failing_retries(
    e: &mut Engine,
    mut cmds: Vec<PresenceCommand>,
    mut now: Instant,
    failure: Failure,
    times: usize,
) -> (Vec<Duration>, Vec<PresenceCommand>, Instant) {
    let mut waits = Vec::new();
    for _ in 0..times {
        e.dispatched(&cmds);
        let wait = e.command_failed_with(&cmds[0], now, failure);
        waits.push(wait);
        assert_eq!(e.next_deadline(), Some(now + wait));
        assert!(e.poll(now + wait - Duration::from_millis(1)).is_empty());
        now += wait;
        cmds = e.poll(now);
        assert_eq!(kinds(&cmds), vec![set("1001", Reason::Retry)]);
    }
    (waits, cmds, now)
}

#[test]
fn a_server_error_is_retried_after_a_second_then_two_and_so_on() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    let cmds = e.poll(t0);
    // A 500 (or a timeout): no Retry-After.
    let server_error = Failure::Transient { retry_after: None };
    let (waits, cmds, now) = failing_retries(&mut e, cmds, t0, server_error, 7);
    assert_eq!(
        waits,
        [
            secs(1),
            secs(2),
            secs(4),
            secs(8),
            secs(16),
            secs(30),
            secs(30)
        ],
        "doubling from 1 s up to retry_after"
    );
    // A success starts over: the next 500 is retried after a second again.
    e.command_succeeded(&cmds[0]);
    e.line_changed("1001", LineState::Idle, now);
    let cmds = e.poll(now);
    assert_eq!(e.command_failed_with(&cmds[0], now, server_error), secs(1));
    assert_eq!(
        kinds(&e.poll(now + secs(1))),
        vec![("1001".into(), Clear, Reason::Retry)]
    );
}

#[test]
fn a_throttled_call_is_retried_after_its_retry_after() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    let cmds = e.poll(t0);
    let throttled = Failure::Transient {
        retry_after: Some(secs(7)),
    };
    let (waits, _, _) = failing_retries(&mut e, cmds, t0, throttled, 3);
    assert_eq!(waits, [secs(7); 3], "what the server said, every time");
}

#[test]
fn the_transient_backoff_follows_its_settings() {
    let t0 = Instant::now();
    let mut e = engine(
        EngineSettings {
            transient_backoff_first: Duration::from_millis(250),
            retry_after: secs(1),
            ..no_reconcile()
        },
        t0,
    );
    e.line_changed("1001", LineState::Busy, t0);
    let cmds = e.poll(t0);
    let none = Failure::Transient { retry_after: None };
    let (waits, _, _) = failing_retries(&mut e, cmds, t0, none, 4);
    let ms = Duration::from_millis;
    assert_eq!(waits, [ms(250), ms(500), ms(1000), ms(1000)]);
}

#[test]
fn transient_failures_leave_the_permanent_backoff_as_it_was() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    let cmds = e.poll(t0);
    let (waits, cmds, now) = failing_retries(&mut e, cmds, t0, Failure::Permanent, 2);
    assert_eq!(waits, [secs(30), secs(60)]);
    let none = Failure::Transient { retry_after: None };
    let (waits, cmds, now) = failing_retries(&mut e, cmds, now, none, 2);
    assert_eq!(waits, [secs(1), secs(2)]);
    // The permanent streak goes on where it was: 30 s × 2².
    let (waits, _, _) = failing_retries(&mut e, cmds, now, Failure::Permanent, 1);
    assert_eq!(waits, [secs(120)]);
}

#[test]
fn a_command_given_up_unanswered_is_retried_after_retry_after() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    let cmds = e.poll(t0);
    e.dispatched(&cmds);
    e.command_failed(&cmds[0], t0);
    assert_eq!(e.next_deadline(), Some(t0 + secs(30)));
}

#[test]
fn clearing_a_user_no_longer_configured_backs_off_when_it_cannot_succeed() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    let mut state = PersistedState::default();
    state.users.insert(
        "carol@contoso.com".into(),
        AppliedRecord {
            extension: "1003".into(),
            applied: "Busy/InACall".into(),
            at_unix: 1_795_000_000.0,
            status_message: false,
        },
    );
    e.restore(&state);
    let mut now = t0;
    let mut waits = Vec::new();
    for _ in 0..3 {
        let cmds = e.poll(now);
        assert_eq!(kinds(&cmds), vec![("1003".into(), Clear, Reason::Restart)]);
        let wait = e.command_failed_with(&cmds[0], now, Failure::Permanent);
        waits.push(wait.as_secs());
        now += wait;
    }
    assert_eq!(waits, [30, 60, 120]);
}

#[test]
fn failures_are_retried_with_the_desired_state() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    let cmds = e.poll(t0);
    e.command_failed(&cmds[0], t0 + secs(1));
    assert_eq!(e.applied("1001"), None);
    assert_eq!(e.next_deadline(), Some(t0 + secs(31)));
    // Meanwhile the line went idle: the retry clears instead.
    e.line_changed("1001", LineState::Idle, t0 + secs(2));
    assert!(e.poll(t0 + secs(2)).is_empty());
    assert_eq!(
        kinds(&e.poll(t0 + secs(31))),
        vec![("1001".into(), Clear, Reason::Retry)]
    );
    assert!(e.poll(t0 + secs(62)).is_empty());
}

fn left_busy() -> PersistedState {
    let mut s = PersistedState::default();
    s.users.insert(
        "alice@contoso.com".into(),
        AppliedRecord {
            extension: "1001".into(),
            applied: "Busy/InACall".into(),
            at_unix: 1_795_000_000.0,
            status_message: false,
        },
    );
    s
}

#[test]
fn restart_clears_a_stale_busy_at_the_first_idle_notify() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.restore(&left_busy());
    e.line_changed("1001", LineState::Idle, t0 + secs(1));
    assert_eq!(
        kinds(&e.poll(t0 + secs(1))),
        vec![("1001".into(), Clear, Reason::Restart)]
    );
    // bob was not in the state: his idle sends nothing.
    e.line_changed("1002", LineState::Idle, t0 + secs(1));
    assert!(e.poll(t0 + secs(100)).is_empty());
}

#[test]
fn restart_clears_a_stale_busy_after_the_grace_period_without_notify() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.restore(&left_busy());
    assert_eq!(e.next_deadline(), Some(t0 + secs(30)));
    assert!(e.poll(t0 + secs(29)).is_empty());
    assert_eq!(
        kinds(&e.poll(t0 + secs(30))),
        vec![("1001".into(), Clear, Reason::Restart)]
    );
    assert!(e.poll(t0 + secs(60)).is_empty());
}

#[test]
fn restart_refreshes_a_busy_that_still_matches_once() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.restore(&left_busy());
    e.line_changed("1001", LineState::Busy, t0 + secs(1));
    assert_eq!(
        kinds(&e.poll(t0 + secs(1))),
        vec![set("1001", Reason::Restart)]
    );
    e.line_changed("1001", LineState::Hold, t0 + secs(2));
    assert!(e.poll(t0 + secs(2)).is_empty());
}

#[test]
fn restart_clears_users_no_longer_configured() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    let mut state = left_busy();
    state.users.insert(
        "carol@contoso.com".into(),
        AppliedRecord {
            extension: "1003".into(),
            applied: "Busy/InACall".into(),
            at_unix: 1_795_000_000.0,
            status_message: false,
        },
    );
    state.users.insert(
        "dave@contoso.com".into(),
        AppliedRecord {
            extension: "1004".into(),
            applied: "clear".into(),
            at_unix: 1_795_000_000.0,
            status_message: false,
        },
    );
    e.restore(&state);
    assert_eq!(e.next_deadline(), Some(t0));
    let cmds = e.poll(t0);
    assert_eq!(kinds(&cmds), vec![("1003".into(), Clear, Reason::Restart)]);
    assert_eq!(cmds[0].user, "carol@contoso.com");
    // It failed: retried later, and still recorded meanwhile.
    e.command_failed(&cmds[0], t0);
    assert!(e.applied_records().contains_key("carol@contoso.com"));
    assert!(e.poll(t0 + secs(29)).is_empty());
    let cmds = e.poll(t0 + secs(30));
    assert!(
        cmds.iter()
            .any(|c| c.user == "carol@contoso.com" && c.kind == Clear),
        "{cmds:?}"
    );
    assert!(!e.applied_records().contains_key("carol@contoso.com"));
}

#[test]
fn shutdown_clears_what_we_hold() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    e.line_changed("1002", LineState::Idle, t0);
    e.poll(t0);
    assert_eq!(
        kinds(&e.shutdown(t0 + secs(1))),
        vec![("1001".into(), Clear, Reason::Shutdown)]
    );
    assert_eq!(e.applied_records()["alice@contoso.com"].applied, "clear");
}

#[test]
fn shutdown_clears_a_presence_whose_set_failed_as_it_may_be_applied() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    let cmds = e.poll(t0);
    // E.g. cut off by the shutdown while Graph was answering slowly.
    e.command_failed(&cmds[0], t0 + secs(1));
    assert_eq!(
        kinds(&e.shutdown(t0 + secs(1))),
        vec![("1001".into(), Clear, Reason::Shutdown)]
    );
}

#[test]
fn a_failed_shutdown_clear_stays_recorded_for_the_next_start() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("1001", LineState::Busy, t0);
    e.poll(t0);
    let cmds = e.shutdown(t0 + secs(1));
    e.command_failed(&cmds[0], t0 + secs(2));
    let records = e.applied_records();
    assert_eq!(records["alice@contoso.com"].applied, "Busy/InACall");
    let mut next = engine(no_reconcile(), t0);
    next.restore(&PersistedState {
        users: records,
        ..PersistedState::default()
    });
    assert_eq!(
        kinds(&next.poll(t0 + secs(30))),
        vec![("1001".into(), Clear, Reason::Restart)]
    );
}

#[test]
fn status_message_while_busy_when_configured() {
    let t0 = Instant::now();
    let mut e = engine(
        EngineSettings {
            status_message: Some("On a call".into()),
            ..no_reconcile()
        },
        t0,
    );
    e.line_changed("1001", LineState::Busy, t0);
    let cmds = e.poll(t0);
    assert_eq!(cmds.len(), 2);
    assert_eq!(
        cmds[1].kind,
        PresenceCommandKind::StatusMessage {
            text: "On a call".into()
        }
    );
    // Keep-alives do not repeat it.
    assert_eq!(e.poll(t0 + secs(3540)).len(), 1);
    e.line_changed("1001", LineState::Idle, t0 + secs(3600));
    let cmds = e.poll(t0 + secs(3600));
    assert_eq!(cmds.len(), 2);
    assert_eq!(
        cmds[1].kind,
        PresenceCommandKind::StatusMessage {
            text: String::new()
        }
    );
}

#[test]
fn unknown_extensions_are_ignored_and_notify_age_is_tracked() {
    let t0 = Instant::now();
    let mut e = engine(no_reconcile(), t0);
    e.line_changed("9999", LineState::Busy, t0);
    assert!(e.poll(t0).is_empty());
    assert_eq!(e.since_last_notify("1001", t0), None);
    e.line_changed("1001", LineState::Ringing, t0);
    assert_eq!(e.since_last_notify("1001", t0 + secs(7)), Some(secs(7)));
    assert_eq!(e.line_state("1001"), Some(LineState::Ringing));
}

#[test]
fn a_takeover_corrects_every_user_another_instance_may_have_set() {
    let t0 = Instant::now();
    let mut engine = Engine::new(EngineSettings::default(), t0);
    engine.add_extension("1001", "alice@contoso.com", Mapping::default());
    engine.add_extension("1002", "bob@contoso.com", Mapping::default());
    engine.add_extension("1003", "carol@contoso.com", Mapping::default());
    engine.assume_unknown();
    // Idle: a Busy the old active left is cleared; busy: set again.
    engine.line_changed("1001", LineState::Idle, t0);
    engine.line_changed("1002", LineState::Busy, t0);
    // Ringing keeps what shows, which is unknown: nothing is sent.
    engine.line_changed("1003", LineState::Ringing, t0);
    let cmds = engine.poll(t0);
    let kinds: Vec<(&str, bool)> = cmds
        .iter()
        .map(|c| (c.extension.as_str(), c.kind == PresenceCommandKind::Clear))
        .collect();
    assert_eq!(kinds, [("1001", true), ("1002", false)], "{cmds:?}");
    assert!(cmds.iter().all(|c| c.reason == Reason::Restart));
}
