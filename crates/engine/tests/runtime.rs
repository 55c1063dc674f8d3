//! The runtime end to end, in paused tokio time: tests wait for the writes
//! they expect (a lost one fails by the timeout, which paused time reaches
//! at once when nothing else can happen).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sip_blf_engine::{
    ChannelSource, Directory, Fact, LaneConfig, LineState, Observation, Runtime, RuntimeConfig,
    Sink, SinkError, View, Write, WriteReason,
};
use tokio::sync::{mpsc, Semaphore};

type Record = (String, LineState, WriteReason, tokio::time::Instant);

/// Holds each person's line state; reports every write it is given.
struct Recorder {
    name: &'static str,
    records: mpsc::UnboundedSender<Record>,
    /// Writes wait for a permit after being reported (`None`: no gate).
    gate: Option<Arc<Semaphore>>,
    /// This many writes fail (transient) before they succeed.
    fail_first: Arc<AtomicU32>,
    /// Writes never return.
    stall: bool,
    /// Failures are a lost connection rather than a transient error.
    disconnect: bool,
    /// The lane it asks for (`None`: the runtime's).
    lane: Option<LaneConfig>,
}

impl Recorder {
    fn new(name: &'static str) -> (Self, mpsc::UnboundedReceiver<Record>) {
        let (records, rx) = mpsc::unbounded_channel();
        let sink = Self {
            name,
            records,
            gate: None,
            fail_first: Arc::new(AtomicU32::new(0)),
            stall: false,
            disconnect: false,
            lane: None,
        };
        (sink, rx)
    }
}

impl Sink for Recorder {
    type Held = LineState;

    fn name(&self) -> &str {
        self.name
    }

    fn desired(&self, view: &View) -> Option<LineState> {
        Some(view.line)
    }

    fn lane_config(&self, default: &LaneConfig) -> LaneConfig {
        self.lane.clone().unwrap_or_else(|| default.clone())
    }

    async fn write(&self, batch: Vec<Write<LineState>>) -> Vec<Result<(), SinkError>> {
        if self.stall {
            return std::future::pending().await;
        }
        let now = tokio::time::Instant::now();
        for w in &batch {
            let _ = self
                .records
                .send((w.person.0.clone(), w.held, w.reason, now));
        }
        if let Some(gate) = &self.gate {
            gate.acquire().await.unwrap().forget();
        }
        batch
            .iter()
            .map(|_| {
                let left = self.fail_first.load(Ordering::SeqCst);
                if left > 0 {
                    self.fail_first.store(left - 1, Ordering::SeqCst);
                    Err(if self.disconnect {
                        SinkError::disconnected("connection reset by the test sink")
                    } else {
                        SinkError::transient("503 from the test sink")
                    })
                } else {
                    Ok(())
                }
            })
            .collect()
    }
}

fn directory() -> Directory {
    let mut d = Directory::new();
    d.add("pbx-a", "1001", "alice").unwrap();
    d.add("pbx-a", "1002", "alice").unwrap();
    d.add("pbx-b", "2001", "alice").unwrap();
    d.add("pbx-a", "1003", "bob").unwrap();
    d.add("pbx-b", "2002", "carol").unwrap();
    d
}

fn config() -> RuntimeConfig {
    RuntimeConfig::default().with_lane(
        LaneConfig::default()
            .with_max_batch(10)
            .with_backoff(Duration::from_secs(1), Duration::from_secs(60)),
    )
}

fn line(system: &str, address: &str, state: LineState) -> Observation {
    Observation::new(system, address, Fact::line(state), Instant::now())
}

async fn next(rx: &mut mpsc::UnboundedReceiver<Record>) -> (String, LineState, WriteReason) {
    let (who, state, reason, _) = tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .expect("a write within the wait")
        .expect("the sink is running");
    (who, state, reason)
}

fn change(who: &str, state: LineState) -> (String, LineState, WriteReason) {
    (who.to_owned(), state, WriteReason::Change)
}

const STOP: Duration = Duration::from_secs(5);

#[tokio::test(start_paused = true)]
async fn two_phones_stay_busy_until_both_calls_end_with_one_write_per_change() {
    let mut rt = Runtime::start(directory(), config()).unwrap();
    let (sink, mut writes) = Recorder::new("teams");
    rt.add_sink(sink).await.unwrap();

    rt.observe(line("pbx-a", "1001", LineState::Busy))
        .await
        .unwrap();
    assert_eq!(next(&mut writes).await, change("alice", LineState::Busy));
    rt.observe(line("pbx-a", "1002", LineState::Busy))
        .await
        .unwrap();
    // The desk phone's call ends while the softphone's goes on.
    rt.observe(line("pbx-a", "1001", LineState::Idle))
        .await
        .unwrap();
    // Another person's change as a marker: a write for alice would come first.
    rt.observe(line("pbx-a", "1003", LineState::Ringing))
        .await
        .unwrap();
    assert_eq!(next(&mut writes).await, change("bob", LineState::Ringing));
    let alice = rt
        .views()
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.person.0 == "alice");
    assert_eq!(alice.map(|v| v.line), Some(LineState::Busy));

    rt.observe(line("pbx-a", "1002", LineState::Idle))
        .await
        .unwrap();
    assert_eq!(next(&mut writes).await, change("alice", LineState::Idle));
    rt.stop(STOP).await;
    assert_eq!(writes.recv().await, None, "no other write");
}

#[tokio::test(start_paused = true)]
async fn two_sources_merge_into_one_view_per_person() {
    let mut rt = Runtime::start(directory(), config()).unwrap();
    let mut tap = rt.tap();
    let (sink, mut writes) = Recorder::new("teams");
    rt.add_sink(sink).await.unwrap();
    let (pbx_a, source_a) = ChannelSource::channel("pbx-a", 16);
    let (pbx_b, source_b) = ChannelSource::channel("pbx-b", 16);
    rt.add_source(source_a);
    rt.add_source(source_b);

    pbx_b
        .send(line("pbx-b", "2001", LineState::Idle))
        .await
        .unwrap();
    assert_eq!(next(&mut writes).await, change("alice", LineState::Idle));
    pbx_a
        .send(line("pbx-a", "1001", LineState::Busy))
        .await
        .unwrap();
    assert_eq!(next(&mut writes).await, change("alice", LineState::Busy));
    // The other system saying idle again does not end the call.
    pbx_b
        .send(line("pbx-b", "2001", LineState::Idle))
        .await
        .unwrap();
    pbx_b
        .send(line("pbx-b", "2002", LineState::Busy))
        .await
        .unwrap();
    assert_eq!(next(&mut writes).await, change("carol", LineState::Busy));
    pbx_a
        .send(line("pbx-a", "1001", LineState::Idle))
        .await
        .unwrap();
    assert_eq!(next(&mut writes).await, change("alice", LineState::Idle));

    // The tap saw the same view changes.
    let seen: Vec<(String, LineState)> = std::iter::from_fn(|| tap.try_recv().ok())
        .map(|v| (v.person.0, v.line))
        .collect();
    assert_eq!(
        seen,
        [
            ("alice".into(), LineState::Idle),
            ("alice".into(), LineState::Busy),
            ("carol".into(), LineState::Busy),
            ("alice".into(), LineState::Idle),
        ]
    );
    rt.stop(STOP).await;
}

#[tokio::test(start_paused = true)]
async fn a_stalled_sink_does_not_delay_another() {
    let mut rt = Runtime::start(directory(), config()).unwrap();
    let (mut stalled, _never) = Recorder::new("stalled");
    stalled.stall = true;
    rt.add_sink(stalled).await.unwrap();
    let (sink, mut writes) = Recorder::new("teams");
    rt.add_sink(sink).await.unwrap();

    for i in 0..20 {
        let state = if i % 2 == 0 {
            LineState::Busy
        } else {
            LineState::Idle
        };
        rt.observe(line("pbx-a", "1001", state)).await.unwrap();
        assert_eq!(
            next(&mut writes).await,
            change("alice", state),
            "change {i}"
        );
    }
    let status = rt.sink_status();
    assert_eq!(status[0].name, "stalled");
    assert_eq!(status[0].in_flight, 1, "its first write never returned");
    assert_eq!(status[0].last_success, None);
    assert!(status[1].last_success.is_some());
    // Stopping gives up the stalled write instead of hanging.
    rt.stop(STOP).await;
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_starts_late_gets_every_current_view() {
    let mut rt = Runtime::start(directory(), config()).unwrap();
    rt.observe(line("pbx-a", "1001", LineState::Busy))
        .await
        .unwrap();
    rt.observe(line("pbx-a", "1003", LineState::Idle))
        .await
        .unwrap();
    assert_eq!(rt.views().await.unwrap().len(), 2);

    let (sink, mut writes) = Recorder::new("late");
    rt.add_sink(sink).await.unwrap();
    let mut replayed = vec![next(&mut writes).await, next(&mut writes).await];
    replayed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        replayed,
        [
            ("alice".into(), LineState::Busy, WriteReason::Replay),
            ("bob".into(), LineState::Idle, WriteReason::Replay),
        ]
    );
    rt.observe(line("pbx-a", "1003", LineState::Busy))
        .await
        .unwrap();
    assert_eq!(next(&mut writes).await, change("bob", LineState::Busy));
    rt.stop(STOP).await;
}

#[tokio::test(start_paused = true)]
async fn changes_during_a_write_become_one_write_of_the_latest() {
    let mut rt = Runtime::start(directory(), config()).unwrap();
    let (mut sink, mut writes) = Recorder::new("slow");
    let gate = Arc::new(Semaphore::new(0));
    sink.gate = Some(gate.clone());
    rt.add_sink(sink).await.unwrap();

    rt.observe(line("pbx-a", "1001", LineState::Ringing))
        .await
        .unwrap();
    assert_eq!(next(&mut writes).await, change("alice", LineState::Ringing));
    for state in [
        LineState::Busy,
        LineState::Hold,
        LineState::Busy,
        LineState::Idle,
    ] {
        rt.observe(line("pbx-a", "1001", state)).await.unwrap();
    }
    rt.views().await.unwrap();
    gate.add_permits(10);
    assert_eq!(next(&mut writes).await, change("alice", LineState::Idle));
    rt.stop(STOP).await;
    assert_eq!(writes.recv().await, None, "two writes in all");
}

#[tokio::test(start_paused = true)]
async fn failed_writes_back_off_exponentially_then_succeed() {
    let mut rt = Runtime::start(directory(), config()).unwrap();
    let (sink, mut writes) = Recorder::new("flaky");
    sink.fail_first.store(3, Ordering::SeqCst);
    rt.add_sink(sink).await.unwrap();

    rt.observe(line("pbx-a", "1001", LineState::Busy))
        .await
        .unwrap();
    let mut attempts = Vec::new();
    for _ in 0..4 {
        let (who, state, reason, at) = writes.recv().await.unwrap();
        assert_eq!((who.as_str(), state), ("alice", LineState::Busy));
        attempts.push((reason, at));
    }
    let gaps: Vec<u64> = attempts
        .windows(2)
        .map(|w| (w[1].1 - w[0].1).as_secs())
        .collect();
    assert_eq!(gaps, [1, 2, 4]);
    assert_eq!(attempts[0].0, WriteReason::Change);
    assert!(attempts[1..].iter().all(|(r, _)| *r == WriteReason::Retry));
    rt.stop(STOP).await;
    assert_eq!(writes.recv().await, None, "the fourth attempt succeeded");
}

#[tokio::test(start_paused = true)]
async fn a_sink_that_reconnects_gets_every_current_view_again() {
    let mut rt = Runtime::start(directory(), config()).unwrap();
    let (mut sink, mut writes) = Recorder::new("database");
    sink.disconnect = true;
    let fail = sink.fail_first.clone();
    rt.add_sink(sink).await.unwrap();
    rt.observe(line("pbx-a", "1003", LineState::Idle))
        .await
        .unwrap();
    assert_eq!(next(&mut writes).await, change("bob", LineState::Idle));

    // The next write finds the connection lost; after the backoff the sink
    // gets bob's view again too, which it had confirmed before.
    fail.store(1, Ordering::SeqCst);
    rt.observe(line("pbx-a", "1001", LineState::Busy))
        .await
        .unwrap();
    assert_eq!(next(&mut writes).await, change("alice", LineState::Busy));
    let mut replayed = vec![next(&mut writes).await, next(&mut writes).await];
    replayed.sort_by(|a, b| a.0.cmp(&b.0));
    assert_eq!(
        replayed,
        [
            ("alice".into(), LineState::Busy, WriteReason::Replay),
            ("bob".into(), LineState::Idle, WriteReason::Replay),
        ]
    );
    rt.stop(STOP).await;
    assert_eq!(writes.recv().await, None);
}

#[tokio::test]
async fn start_outside_tokio_is_an_error_not_a_panic() {
    let result = std::thread::spawn(|| Runtime::start(Directory::new(), RuntimeConfig::default()))
        .join()
        .unwrap();
    assert_eq!(
        result.err(),
        Some(sip_blf_engine::RuntimeError::NoTokioRuntime)
    );
}

#[tokio::test(start_paused = true)]
async fn a_refreshing_sink_gets_every_view_again_each_period_and_still_stops() {
    let mut config = config();
    config.lane.refresh = Some(Duration::from_secs(30));
    let mut rt = Runtime::start(directory(), config).unwrap();
    let (sink, mut writes) = Recorder::new("webhook");
    rt.add_sink(sink).await.unwrap();
    rt.observe(line("pbx-a", "1001", LineState::Busy))
        .await
        .unwrap();
    let first = tokio::time::timeout(Duration::from_secs(60), writes.recv())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((first.0.as_str(), first.2), ("alice", WriteReason::Change));
    for periods in 1..=2u64 {
        let again = tokio::time::timeout(Duration::from_secs(60), writes.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(
            (again.0.as_str(), again.1, again.2),
            ("alice", LineState::Busy, WriteReason::Replay)
        );
        let after = (again.3 - first.3).as_secs_f64().round() as u64;
        assert_eq!(after, 30 * periods, "one re-send per period");
    }
    // A re-send to come is not work pending: the stop does not wait for it.
    rt.stop(STOP).await;
    assert_eq!(writes.recv().await, None);
}

#[tokio::test(start_paused = true)]
async fn a_gathering_sink_writes_when_its_batch_is_full_or_the_gathering_ends() {
    let mut rt = Runtime::start(directory(), config()).unwrap();
    let (mut sink, mut writes) = Recorder::new("table");
    let linger = Duration::from_millis(100);
    sink.lane = Some(LaneConfig::default().with_max_batch(3).with_linger(linger));
    rt.add_sink(sink).await.unwrap();
    let step = Duration::from_millis(10);
    let t0 = tokio::time::Instant::now();
    // Three people fill a batch: it goes when the third changes, not when
    // the gathering would end.
    for address in [("pbx-a", "1001"), ("pbx-a", "1003"), ("pbx-b", "2002")] {
        rt.observe(line(address.0, address.1, LineState::Busy))
            .await
            .unwrap();
        rt.views().await.unwrap();
        tokio::time::advance(step).await;
    }
    let full = t0 + 2 * step;
    for _ in 0..3 {
        let (who, state, reason, at) = writes.recv().await.unwrap();
        assert_eq!((state, reason), (LineState::Busy, WriteReason::Change));
        assert_eq!(at, full, "{who} written when the batch was full");
    }
    // Two changes gather until the first one's linger is over.
    let first = tokio::time::Instant::now();
    for address in [("pbx-a", "1001"), ("pbx-a", "1003")] {
        rt.observe(line(address.0, address.1, LineState::Idle))
            .await
            .unwrap();
        rt.views().await.unwrap();
        tokio::time::advance(step).await;
    }
    let mut gathered = Vec::new();
    for _ in 0..2 {
        let (who, state, _, at) = tokio::time::timeout(Duration::from_secs(60), writes.recv())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(state, LineState::Idle);
        assert_eq!(at, first + linger, "{who} written when the gathering ended");
        gathered.push(who);
    }
    gathered.sort();
    assert_eq!(gathered, ["alice", "bob"]);
    rt.stop(STOP).await;
}
