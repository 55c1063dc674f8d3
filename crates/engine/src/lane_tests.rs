use std::time::{Duration, Instant};

use super::*;
use crate::LineState;

fn lane() -> Lane<LineState> {
    Lane::new(LaneConfig {
        max_batch: 10,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(8),
        ..LaneConfig::default()
    })
}

fn p(name: &str) -> PersonId {
    PersonId(name.to_owned())
}

fn held(batch: &[Write<LineState>]) -> Vec<(String, LineState, WriteReason)> {
    batch
        .iter()
        .map(|w| (w.person.0.clone(), w.held, w.reason))
        .collect()
}

#[test]
fn changes_during_a_write_coalesce_into_one_write_of_the_latest() {
    let t0 = Instant::now();
    let mut lane = lane();
    lane.handle_view(&p("alice"), Some(LineState::Ringing), t0);
    let first = lane.poll_write(t0).unwrap();
    assert_eq!(
        held(&first),
        [("alice".into(), LineState::Ringing, WriteReason::Change)]
    );
    for state in [
        LineState::Busy,
        LineState::Hold,
        LineState::Busy,
        LineState::Idle,
    ] {
        lane.handle_view(&p("alice"), Some(state), t0 + Duration::from_millis(5));
        assert_eq!(lane.poll_write(t0), None, "one write in flight per person");
    }
    assert_eq!(
        lane.queue_depth(),
        0,
        "bounded: the slot holds the latest only"
    );
    lane.write_finished(&p("alice"), Ok(()), t0);
    let second = lane.poll_write(t0).unwrap();
    assert_eq!(
        held(&second),
        [("alice".into(), LineState::Idle, WriteReason::Change)]
    );
    assert_eq!(second[0].caused_at, t0 + Duration::from_millis(5));
    lane.write_finished(&p("alice"), Ok(()), t0);
    assert_eq!(lane.poll_write(t0), None);
    assert!(lane.is_idle());
    assert_eq!(lane.held(&p("alice")), Some(&LineState::Idle));
}

#[test]
fn a_change_back_to_what_is_held_while_in_flight_is_not_written_twice() {
    let t0 = Instant::now();
    let mut lane = lane();
    lane.handle_view(&p("alice"), Some(LineState::Busy), t0);
    lane.poll_write(t0).unwrap();
    lane.handle_view(&p("alice"), Some(LineState::Idle), t0);
    lane.handle_view(&p("alice"), Some(LineState::Busy), t0);
    lane.write_finished(&p("alice"), Ok(()), t0);
    assert_eq!(lane.poll_write(t0), None);
}

#[test]
fn equal_values_and_leave_alone_are_not_written() {
    let t0 = Instant::now();
    let mut lane = lane();
    lane.handle_view(&p("alice"), Some(LineState::Busy), t0);
    lane.poll_write(t0).unwrap();
    lane.write_finished(&p("alice"), Ok(()), t0);
    // Another view of the same person that the sink maps to the same value
    // (the second phone's call): nothing to write.
    lane.handle_view(&p("alice"), Some(LineState::Busy), t0);
    lane.handle_view(&p("bob"), None, t0);
    assert_eq!(lane.poll_write(t0), None);
}

#[test]
fn failures_back_off_exponentially_up_to_the_cap_and_retry_the_latest() {
    let t0 = Instant::now();
    let mut lane = lane();
    let mut now = t0;
    lane.handle_view(&p("alice"), Some(LineState::Busy), now);
    let mut waits = Vec::new();
    for _ in 0..6 {
        let batch = lane.poll_write(now).expect("due");
        let wait = lane
            .write_finished(&batch[0].person, Err(&SinkError::transient("503")), now)
            .unwrap();
        waits.push(wait.as_secs());
        assert_eq!(lane.poll_timeout(), Some(now + wait));
        // Not before its time.
        assert_eq!(lane.poll_write(now + wait - Duration::from_millis(1)), None);
        now += wait;
        lane.handle_timeout(now);
    }
    assert_eq!(waits, [1, 2, 4, 8, 8, 8]);
    // A change during the wait is what the retry writes.
    lane.handle_view(&p("alice"), Some(LineState::Idle), now);
    let batch = lane.poll_write(now).unwrap();
    assert_eq!(
        held(&batch),
        [("alice".into(), LineState::Idle, WriteReason::Retry)]
    );
    lane.write_finished(&p("alice"), Ok(()), now);
    // A success starts the backoff over.
    lane.handle_view(&p("alice"), Some(LineState::Busy), now);
    lane.poll_write(now).unwrap();
    let wait = lane.write_finished(&p("alice"), Err(&SinkError::permanent("no such user")), now);
    assert_eq!(wait, Some(Duration::from_secs(1)));
}

#[test]
fn retry_after_is_honoured_when_longer() {
    let t0 = Instant::now();
    let mut lane = lane();
    lane.handle_view(&p("alice"), Some(LineState::Busy), t0);
    lane.poll_write(t0).unwrap();
    let throttled = SinkError::Transient {
        message: "429".into(),
        retry_after: Some(Duration::from_secs(30)),
    };
    let wait = lane.write_finished(&p("alice"), Err(&throttled), t0);
    assert_eq!(wait, Some(Duration::from_secs(30)));
}

#[test]
fn one_failing_person_does_not_hold_up_another() {
    let t0 = Instant::now();
    let mut lane = lane();
    lane.handle_view(&p("alice"), Some(LineState::Busy), t0);
    lane.poll_write(t0).unwrap();
    lane.write_finished(&p("alice"), Err(&SinkError::transient("x")), t0);
    lane.handle_view(&p("bob"), Some(LineState::Ringing), t0);
    let batch = lane.poll_write(t0).unwrap();
    assert_eq!(
        held(&batch),
        [("bob".into(), LineState::Ringing, WriteReason::Change)]
    );
}

#[test]
fn replay_writes_every_current_value_again() {
    let t0 = Instant::now();
    let mut lane = lane();
    for (who, state) in [("alice", LineState::Busy), ("bob", LineState::Idle)] {
        lane.handle_view(&p(who), Some(state), t0);
    }
    for w in lane.poll_write(t0).unwrap() {
        lane.write_finished(&w.person, Ok(()), t0);
    }
    assert_eq!(lane.poll_write(t0), None);
    lane.replay();
    let batch = lane.poll_write(t0).unwrap();
    assert_eq!(
        held(&batch),
        [
            ("alice".into(), LineState::Busy, WriteReason::Replay),
            ("bob".into(), LineState::Idle, WriteReason::Replay),
        ]
    );
}

#[test]
fn a_lost_connection_pauses_the_lane_then_replays_everyone() {
    let t0 = Instant::now();
    let mut lane = lane();
    for (who, state) in [("alice", LineState::Busy), ("bob", LineState::Idle)] {
        lane.handle_view(&p(who), Some(state), t0);
    }
    let batch = lane.poll_write(t0).unwrap();
    lane.write_finished(&batch[0].person, Ok(()), t0);
    let wait = lane
        .write_finished(&batch[1].person, Err(&SinkError::disconnected("reset")), t0)
        .unwrap();
    assert_eq!(wait, Duration::from_secs(1));
    assert!(lane.is_paused());
    lane.handle_view(&p("carol"), Some(LineState::Ringing), t0);
    assert_eq!(lane.poll_write(t0), None, "paused");
    assert_eq!(lane.poll_timeout(), Some(t0 + wait));
    lane.handle_timeout(t0 + wait);
    let mut replayed = held(&lane.poll_write(t0 + wait).unwrap());
    replayed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        replayed,
        [
            ("alice".into(), LineState::Busy, WriteReason::Replay),
            ("bob".into(), LineState::Idle, WriteReason::Replay),
            ("carol".into(), LineState::Ringing, WriteReason::Change),
        ]
    );
}

#[test]
fn batches_are_capped() {
    let t0 = Instant::now();
    let mut lane = lane();
    for i in 0..25 {
        lane.handle_view(&p(&format!("p{i:02}")), Some(LineState::Busy), t0);
    }
    let sizes: Vec<usize> = std::iter::from_fn(|| lane.poll_write(t0).map(|b| b.len())).collect();
    assert_eq!(sizes, [10, 10, 5]);
    assert_eq!(lane.in_flight(), 25);
}

#[test]
fn a_lingering_lane_gathers_changes_into_one_batch_and_a_full_batch_goes_at_once() {
    let t0 = Instant::now();
    let ms = |n| t0 + Duration::from_millis(n);
    let mut lane: Lane<u32> = Lane::new(LaneConfig {
        max_batch: 3,
        linger: Duration::from_millis(100),
        ..LaneConfig::default()
    });
    let p = |n: u32| PersonId(format!("p{n}"));
    assert_eq!(lane.gathering_room(), None);
    lane.handle_view(&p(1), Some(1), t0);
    assert_eq!(lane.poll_write(t0), None, "gathering");
    assert_eq!(lane.poll_timeout(), Some(ms(100)));
    assert_eq!(lane.gathering_room(), Some(2), "two more fill the batch");
    lane.handle_view(&p(2), Some(2), ms(40));
    assert_eq!(lane.poll_write(ms(40)), None);
    assert_eq!(lane.gathering_room(), Some(1));
    let batch = lane.poll_write(ms(100)).expect("the gathered batch");
    assert_eq!(batch.len(), 2);
    assert_eq!(
        batch[0].caused_at, t0,
        "the latency clock starts at the change"
    );
    for w in &batch {
        lane.write_finished(&w.person, Ok(()), ms(101));
    }
    assert_eq!(lane.poll_timeout(), None, "nothing gathered");
    assert_eq!(lane.gathering_room(), None);
    // Three changes fill a batch: it goes without waiting.
    for n in 3..6 {
        lane.handle_view(&p(n), Some(n), ms(200));
    }
    assert_eq!(lane.poll_write(ms(200)).map(|b| b.len()), Some(3));
    // While that batch is in flight no deadline is reported (nothing to poll).
    lane.handle_view(&p(6), Some(6), ms(201));
    assert_eq!(lane.poll_write(ms(201)), None);
    assert_eq!(lane.poll_timeout(), None);
    assert_eq!(lane.gathering_room(), None, "the write in flight ends it");
}

fn refreshing(period: u64) -> Lane<LineState> {
    Lane::new(LaneConfig {
        max_batch: 10,
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(8),
        refresh: Some(Duration::from_secs(period)),
        ..LaneConfig::default()
    })
}

fn confirm_all(lane: &mut Lane<LineState>, now: Instant) -> Vec<(String, LineState, WriteReason)> {
    let mut written = Vec::new();
    while let Some(batch) = lane.poll_write(now) {
        for w in &batch {
            lane.write_finished(&w.person, Ok(()), now);
        }
        written.extend(held(&batch));
    }
    written
}

#[test]
fn a_refreshing_lane_writes_every_value_again_each_period() {
    let t0 = Instant::now();
    let s = |n| t0 + Duration::from_secs(n);
    let mut lane = refreshing(60);
    lane.handle_view(&p("alice"), Some(LineState::Busy), t0);
    lane.handle_view(&p("bob"), Some(LineState::Idle), t0);
    // A person the sink leaves alone is never written, refresh or not.
    lane.handle_view(&p("carol"), None, t0);
    assert_eq!(confirm_all(&mut lane, t0).len(), 2);
    assert_eq!(
        lane.poll_timeout(),
        Some(s(60)),
        "the re-send is the next deadline"
    );
    assert_eq!(lane.poll_write(s(59)), None, "not before its time");

    lane.handle_timeout(s(60));
    assert_eq!(
        confirm_all(&mut lane, s(60)),
        [
            ("alice".into(), LineState::Busy, WriteReason::Replay),
            ("bob".into(), LineState::Idle, WriteReason::Replay),
        ]
    );
    // The next period starts at the re-send; a change in between is a change.
    assert_eq!(lane.poll_timeout(), Some(s(120)));
    lane.handle_view(&p("alice"), Some(LineState::Idle), s(90));
    assert_eq!(
        confirm_all(&mut lane, s(90)),
        [("alice".into(), LineState::Idle, WriteReason::Change)]
    );
    // A late timer re-sends once, and the period counts from then.
    lane.handle_timeout(s(200));
    assert_eq!(confirm_all(&mut lane, s(200)).len(), 2);
    assert_eq!(lane.poll_timeout(), Some(s(260)));
    assert!(lane.is_idle(), "a re-send to come is not work pending");
}

#[test]
fn a_refresh_leaves_writes_in_flight_and_retries_to_themselves() {
    let t0 = Instant::now();
    let s = |n| t0 + Duration::from_secs(n);
    let mut lane = refreshing(10);
    for who in ["alice", "bob", "carol"] {
        lane.handle_view(&p(who), Some(LineState::Busy), t0);
    }
    let batch = lane.poll_write(t0).unwrap();
    lane.write_finished(&batch[0].person, Ok(()), t0);
    // bob fails and waits 30 s (Retry-After); carol stays in flight.
    lane.write_finished(
        &batch[1].person,
        Err(&SinkError::Transient {
            message: "503".into(),
            retry_after: Some(Duration::from_secs(30)),
        }),
        t0,
    );
    lane.handle_timeout(s(10));
    let refreshed = lane.poll_write(s(10)).unwrap();
    assert_eq!(
        held(&refreshed),
        [("alice".into(), LineState::Busy, WriteReason::Replay)],
        "only the confirmed person; bob keeps his backoff, carol her write"
    );
    lane.write_finished(&p("alice"), Ok(()), s(10));
    lane.write_finished(&p("carol"), Ok(()), s(10));
    assert_eq!(lane.poll_write(s(10)), None);
    assert_eq!(lane.poll_timeout(), Some(s(20)));
    // bob's retry comes when it is due, as a retry.
    lane.handle_timeout(s(30));
    let mut later = held(&lane.poll_write(s(30)).unwrap());
    later.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        later,
        [
            ("alice".into(), LineState::Busy, WriteReason::Replay),
            ("bob".into(), LineState::Busy, WriteReason::Retry),
            ("carol".into(), LineState::Busy, WriteReason::Replay),
        ]
    );
}

#[test]
fn a_paused_lane_skips_the_refresh_and_replays_when_the_pause_ends() {
    let t0 = Instant::now();
    let s = |n| t0 + Duration::from_secs(n);
    let mut lane = refreshing(5);
    lane.handle_view(&p("alice"), Some(LineState::Busy), t0);
    lane.poll_write(t0).unwrap();
    let wait = lane
        .write_finished(&p("alice"), Err(&SinkError::disconnected("reset")), s(4))
        .unwrap();
    assert_eq!(wait, Duration::from_secs(1));
    lane.handle_timeout(s(5));
    assert_eq!(
        confirm_all(&mut lane, s(5)),
        [("alice".into(), LineState::Busy, WriteReason::Replay)],
        "one replay at the end of the pause, not two"
    );
    assert_eq!(lane.poll_timeout(), Some(s(10)));
}

#[test]
fn without_refresh_an_idle_lane_has_no_deadline() {
    let t0 = Instant::now();
    let mut lane = lane();
    lane.handle_view(&p("alice"), Some(LineState::Busy), t0);
    confirm_all(&mut lane, t0);
    assert_eq!(lane.poll_timeout(), None);
    lane.handle_timeout(t0 + Duration::from_secs(86_400));
    assert_eq!(lane.poll_write(t0 + Duration::from_secs(86_400)), None);
}
