//! The engine's tokio driver with a channel source and the log sink, in paused
//! (virtual) time: keep-alives, shutdown clears, restart correction, state file.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use blf::LineState;
use sip_blf_sync::engine::{
    run_engine, AppliedRecord, ChannelSource, Engine, EngineSettings, LogSink, Mapping,
    PersistedState, Reason, RunOptions,
};
use sip_blf_sync::observe::Telemetry;
use sip_blf_sync::sip_source::{LineChange, SourceEvent};
use tokio::sync::{mpsc, oneshot};

/// Run options of these tests: five seconds to clear at shutdown.
fn options(state_file: Option<std::path::PathBuf>) -> RunOptions {
    RunOptions::new(state_file, Duration::from_secs(5))
}

/// What the engine task returned, once it has ended (within a minute of virtual time).
async fn ended<T>(task: tokio::task::JoinHandle<T>) -> T {
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap()
        .unwrap()
}

/// The engine on `sink` with the test's settings, stopped when the test
/// sends on the returned stop: the line sender, the stop, the task.
fn stoppable<K>(
    sink: K,
    state_file: Option<std::path::PathBuf>,
) -> (
    mpsc::UnboundedSender<SourceEvent>,
    oneshot::Sender<()>,
    tokio::task::JoinHandle<Engine>,
)
where
    K: sip_blf_sync::engine::PresenceSink + Send + Sync + 'static,
{
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(run_engine(
        ChannelSource(rx),
        sink,
        engine(settings()),
        Telemetry::new(),
        async {
            let _ = stop_rx.await;
        },
        options(state_file),
    ));
    (tx, stop_tx, task)
}

fn line(ext: &str, state: LineState) -> SourceEvent {
    SourceEvent::Line(LineChange {
        extension: ext.into(),
        line_state: state,
        dnd: false,
        received_at: None,
        stale: None,
    })
}

fn engine(settings: EngineSettings) -> Engine {
    let mut e = Engine::new(settings, tokio::time::Instant::now().into_std());
    e.add_extension("1001", "alice@contoso.com", Mapping::default());
    e.add_extension("1002", "bob@contoso.com", Mapping::default());
    e
}

fn settings() -> EngineSettings {
    EngineSettings {
        reconcile_every: Duration::ZERO,
        ..EngineSettings::default()
    }
}

#[tokio::test(start_paused = true)]
async fn keep_alive_then_shutdown_clears_and_saves_state() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("presence-state.json");
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let sink = LogSink::quiet();
    let telemetry = Telemetry::new();
    let task = tokio::spawn(run_engine(
        ChannelSource(rx),
        sink.clone(),
        engine(settings()),
        telemetry.clone(),
        async {
            let _ = stop_rx.await;
        },
        options(Some(state_file.clone())),
    ));
    tx.send(line("1001", LineState::Busy)).unwrap();
    tx.send(line("1002", LineState::Idle)).unwrap();
    // Virtual time: one keep-alive (at 59 min) happens within 61 minutes.
    tokio::time::sleep(Duration::from_secs(61 * 60)).await;
    let saved = PersistedState::load(&state_file, std::time::SystemTime::now());
    assert_eq!(saved.warning, None);
    assert_eq!(
        saved.state.users["alice@contoso.com"].applied,
        "Busy/InACall"
    );
    stop_tx.send(()).unwrap();
    let engine = ended(task).await;
    assert_eq!(
        sink.lines(),
        vec![
            "1001 alice@contoso.com: setPresence Busy/InACall for 3600 s (change)",
            "1001 alice@contoso.com: setPresence Busy/InACall for 3600 s (keep-alive)",
            "1001 alice@contoso.com: clearPresence (shutdown)",
        ]
    );
    assert_eq!(engine.applied("1001").as_deref(), Some("clear"));
    let saved = PersistedState::load(&state_file, std::time::SystemTime::now());
    assert_eq!(saved.state.users["alice@contoso.com"].applied, "clear");
    let status = telemetry.status_json();
    // The line state is the source's to report; the presence is the engine's.
    assert_eq!(status["extensions"][0]["presence"], "cleared");
    // Only the change counts (keep-alives and shutdown clears are not caused by a NOTIFY).
    let metrics = telemetry.metrics_text();
    assert!(
        metrics.contains("notify_to_graph_seconds_count 1"),
        "{metrics}"
    );
}

#[tokio::test(start_paused = true)]
async fn restart_clears_a_busy_left_by_a_killed_run() {
    let mut left = PersistedState::default();
    for (user, ext) in [("alice@contoso.com", "1001"), ("bob@contoso.com", "1002")] {
        left.users.insert(
            user.into(),
            AppliedRecord {
                extension: ext.into(),
                applied: "Busy/InACall".into(),
                at_unix: 1_795_000_000.0,
                status_message: false,
            },
        );
    }
    let mut e = engine(settings());
    e.restore(&left);
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = LogSink::quiet();
    let started = Instant::now();
    let task = tokio::spawn(run_engine(
        ChannelSource(rx),
        sink.clone(),
        e,
        Telemetry::new(),
        std::future::pending(),
        options(None),
    ));
    // alice's line reports idle at once; bob's PBX says nothing.
    tx.send(line("1001", LineState::Idle)).unwrap();
    tokio::time::sleep(Duration::from_secs(60)).await;
    drop(tx);
    ended(task).await;
    assert_eq!(
        sink.lines(),
        vec![
            "1001 alice@contoso.com: clearPresence (restart)",
            "1002 bob@contoso.com: clearPresence (restart)",
        ]
    );
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "virtual time only"
    );
}

#[tokio::test(start_paused = true)]
async fn debounce_sends_only_the_final_state_of_a_burst() {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = LogSink::quiet();
    let task = tokio::spawn(run_engine(
        ChannelSource(rx),
        sink.clone(),
        engine(EngineSettings {
            debounce: Duration::from_millis(300),
            ..settings()
        }),
        Telemetry::new(),
        std::future::pending(),
        options(None),
    ));
    for s in [
        LineState::Ringing,
        LineState::Busy,
        LineState::Idle,
        LineState::Busy,
    ] {
        tx.send(line("1001", s)).unwrap();
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sink.lines(),
        vec!["1001 alice@contoso.com: setPresence Busy/InACall for 3600 s (change)"]
    );
    drop(tx);
    ended(task).await;
    assert_eq!(sink.lines().len(), 2, "{:?}", sink.lines());
}

/// A sink written for this test: one trait implementation.
#[derive(Clone, Default)]
struct Recording {
    applied: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    read_backs: std::sync::Arc<std::sync::Mutex<Vec<Vec<String>>>>,
}

impl sip_blf_sync::engine::PresenceSink for Recording {
    async fn apply(
        &self,
        commands: &[sip_blf_sync::engine::PresenceCommand],
    ) -> Vec<Result<(), sip_blf_sync::engine::SinkError>> {
        let mut applied = self.applied.lock().unwrap();
        commands
            .iter()
            .map(|c| {
                applied.push(format!("{} {}", c.user, c.reason.as_str()));
                Ok(())
            })
            .collect()
    }

    async fn read_back(
        &self,
        users: &[String],
    ) -> Result<Vec<(String, String)>, sip_blf_sync::engine::SinkError> {
        self.read_backs.lock().unwrap().push(users.to_vec());
        Ok(users
            .iter()
            .map(|u| (u.clone(), "Available/Available".to_owned()))
            .collect())
    }
}

#[tokio::test(start_paused = true)]
async fn reconciliation_reasserts_and_reads_back() {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = Recording::default();
    let task = tokio::spawn(run_engine(
        ChannelSource(rx),
        sink.clone(),
        engine(EngineSettings {
            reconcile_every: Duration::from_secs(15 * 60),
            ..EngineSettings::default()
        }),
        Telemetry::new(),
        std::future::pending(),
        options(None),
    ));
    tx.send(line("1001", LineState::Busy)).unwrap();
    tx.send(line("1002", LineState::Idle)).unwrap();
    tokio::time::sleep(Duration::from_secs(31 * 60)).await;
    drop(tx);
    ended(task).await;
    assert_eq!(
        *sink.applied.lock().unwrap(),
        vec![
            "alice@contoso.com change",
            "alice@contoso.com reconcile",
            "alice@contoso.com reconcile",
            "alice@contoso.com shutdown",
        ]
    );
    // Only the users we hold a set presence for are read back.
    assert_eq!(
        *sink.read_backs.lock().unwrap(),
        vec![
            vec!["alice@contoso.com".to_string()],
            vec!["alice@contoso.com".to_string()]
        ]
    );
}

/// A sink whose calls for one reason never finish (a Graph that hangs or
/// retries for minutes) and that records the others.
#[derive(Clone)]
struct Hangs {
    on: Reason,
    done: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Hangs {
    fn on(on: Reason) -> Self {
        Self {
            on,
            done: std::sync::Arc::default(),
        }
    }
}

impl sip_blf_sync::engine::PresenceSink for Hangs {
    async fn apply(
        &self,
        commands: &[sip_blf_sync::engine::PresenceCommand],
    ) -> Vec<Result<(), sip_blf_sync::engine::SinkError>> {
        if commands.iter().any(|c| c.reason == self.on) {
            std::future::pending::<()>().await;
        }
        let mut done = self.done.lock().unwrap();
        commands
            .iter()
            .map(|c| {
                done.push(format!(
                    "{} {} {}",
                    c.user,
                    c.operation(),
                    c.reason.as_str()
                ));
                Ok(())
            })
            .collect()
    }
}

#[tokio::test(start_paused = true)]
async fn shutdown_is_bounded_and_unconfirmed_clears_stay_recorded() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("presence-state.json");
    let started = tokio::time::Instant::now();
    let (tx, stop_tx, task) = stoppable(Hangs::on(Reason::Shutdown), Some(state_file.clone()));
    tx.send(line("1001", LineState::Busy)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_tx.send(()).unwrap();
    ended(task).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_secs(6) && took < Duration::from_secs(7),
        "{took:?}"
    );
    let saved = PersistedState::load(&state_file, std::time::SystemTime::now());
    assert_eq!(
        saved.state.users["alice@contoso.com"].applied,
        "Busy/InACall"
    );
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn a_stop_does_not_wait_for_a_slow_graph_and_clears_what_may_be_set() {
    let sink = Hangs::on(Reason::Change);
    let started = tokio::time::Instant::now();
    let (tx, stop_tx, task) = stoppable(sink.clone(), None);
    tx.send(line("1001", LineState::Busy)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_tx.send(()).unwrap();
    ended(task).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    // The set may have reached Graph before it was given up: cleared.
    assert_eq!(
        *sink.done.lock().unwrap(),
        vec!["alice@contoso.com clearPresence shutdown"]
    );
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn a_set_is_recorded_before_it_is_sent() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("presence-state.json");
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run_engine(
        ChannelSource(rx),
        Hangs::on(Reason::Change),
        engine(settings()),
        Telemetry::new(),
        std::future::pending(),
        options(Some(state_file.clone())),
    ));
    tx.send(line("1001", LineState::Busy)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // The call is still in flight: a kill -9 now must leave the Busy recorded.
    let saved = PersistedState::load(&state_file, std::time::SystemTime::now());
    assert_eq!(
        saved.state.users["alice@contoso.com"].applied,
        "Busy/InACall"
    );
    task.abort();
}

/// `STATUS_MESSAGE` and a run killed while its calls were in flight: the
/// message is in the state file, and the next start clears it with the
/// presence.
#[tokio::test(start_paused = true)]
async fn a_status_message_left_by_a_killed_run_is_cleared_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("presence-state.json");
    let with_message = || EngineSettings {
        status_message: Some("On a PBX call".into()),
        ..settings()
    };
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run_engine(
        ChannelSource(rx),
        Hangs::on(Reason::Change),
        engine(with_message()),
        Telemetry::new(),
        std::future::pending(),
        options(Some(state_file.clone())),
    ));
    tx.send(line("1001", LineState::Busy)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // kill -9: nothing cleared, nothing folded.
    task.abort();
    let _ = task.await;

    let loaded = PersistedState::load(&state_file, std::time::SystemTime::now());
    assert!(loaded.state.users["alice@contoso.com"].status_message);
    let mut next = engine(with_message());
    next.restore(&loaded.state);
    let sink = LogSink::quiet();
    let (tx, rx) = mpsc::unbounded_channel();
    let task = tokio::spawn(run_engine(
        ChannelSource(rx),
        sink.clone(),
        next,
        Telemetry::new(),
        std::future::pending(),
        options(Some(state_file.clone())),
    ));
    // The call ended while nobody watched.
    tx.send(line("1001", LineState::Idle)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(tx);
    ended(task).await;
    assert_eq!(
        sink.lines(),
        vec![
            "1001 alice@contoso.com: clearPresence (restart)",
            "1001 alice@contoso.com: setStatusMessage (clear) (restart)",
        ]
    );
    let saved = PersistedState::load(&state_file, std::time::SystemTime::now());
    assert!(!saved.state.users["alice@contoso.com"].status_message);
}

/// A sink whose calls for one user wait until the test lets them through,
/// and that records each call (its commands) as it starts and as it ends.
#[derive(Clone)]
struct Gated {
    user: &'static str,
    gate: std::sync::Arc<tokio::sync::Semaphore>,
    log: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

impl Gated {
    fn on(user: &'static str) -> Self {
        Self {
            user,
            gate: std::sync::Arc::new(tokio::sync::Semaphore::new(0)),
            log: std::sync::Arc::default(),
        }
    }
    fn log(&self) -> Vec<String> {
        self.log.lock().unwrap().clone()
    }
}

impl sip_blf_sync::engine::PresenceSink for Gated {
    async fn apply(
        &self,
        commands: &[sip_blf_sync::engine::PresenceCommand],
    ) -> Vec<Result<(), sip_blf_sync::engine::SinkError>> {
        let call: Vec<String> = commands
            .iter()
            .map(|c| format!("{} {}", c.user, c.operation()))
            .collect();
        let call = call.join(" + ");
        self.log.lock().unwrap().push(format!("start {call}"));
        if commands.iter().any(|c| c.user == self.user) {
            self.gate.acquire().await.unwrap().forget();
        }
        self.log.lock().unwrap().push(format!("done {call}"));
        commands.iter().map(|_| Ok(())).collect()
    }
}

#[tokio::test(start_paused = true)]
async fn a_stop_takes_a_call_that_ends_at_once_before_it_clears() {
    let sink = Gated::on("alice@contoso.com");
    let (tx, stop_tx, task) = stoppable(sink.clone(), None);
    tx.send(line("1001", LineState::Busy)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop_tx.send(()).unwrap();
    tokio::task::yield_now().await;
    // The set ends just after the stop: its answer is in before the clear goes.
    sink.gate.add_permits(2);
    ended(task).await;
    assert_eq!(
        sink.log(),
        [
            "start alice@contoso.com setPresence",
            "done alice@contoso.com setPresence",
            "start alice@contoso.com clearPresence",
            "done alice@contoso.com clearPresence",
        ]
    );
    drop(tx);
}

#[tokio::test(start_paused = true)]
async fn a_change_does_not_wait_for_another_users_call_and_each_user_stays_in_order() {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = Gated::on("alice@contoso.com");
    let task = tokio::spawn(run_engine(
        ChannelSource(rx),
        sink.clone(),
        engine(settings()),
        Telemetry::new(),
        std::future::pending(),
        options(None),
    ));
    tx.send(line("1001", LineState::Busy)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    // Alice's set hangs; meanwhile her line flaps and bob's line changes.
    tx.send(line("1001", LineState::Idle)).unwrap();
    tx.send(line("1001", LineState::Busy)).unwrap();
    tx.send(line("1001", LineState::Idle)).unwrap();
    tx.send(line("1002", LineState::Busy)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sink.log(),
        vec![
            "start alice@contoso.com setPresence",
            "start bob@contoso.com setPresence",
            "done bob@contoso.com setPresence",
        ]
    );
    // Once alice's set is answered, her final state (idle) goes out.
    sink.gate.add_permits(2);
    tokio::time::sleep(Duration::from_secs(1)).await;
    drop(tx);
    ended(task).await;
    assert_eq!(
        sink.log()[3..],
        [
            "done alice@contoso.com setPresence",
            "start alice@contoso.com clearPresence",
            "done alice@contoso.com clearPresence",
            // At the end: bob's set is cleared.
            "start bob@contoso.com clearPresence",
            "done bob@contoso.com clearPresence",
        ]
    );
}

#[tokio::test(start_paused = true)]
async fn with_every_call_in_flight_changes_wait_and_go_out_together() {
    let (tx, rx) = mpsc::unbounded_channel();
    let sink = Gated::on("alice@contoso.com");
    let mut options = options(None);
    options.calls_in_flight = 1;
    let mut e = engine(settings());
    e.add_extension("1003", "carol@contoso.com", Mapping::default());
    let task = tokio::spawn(run_engine(
        ChannelSource(rx),
        sink.clone(),
        e,
        Telemetry::new(),
        std::future::pending(),
        options,
    ));
    tx.send(line("1001", LineState::Busy)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    tx.send(line("1002", LineState::Busy)).unwrap();
    tx.send(line("1003", LineState::Busy)).unwrap();
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sink.log(), vec!["start alice@contoso.com setPresence"]);
    sink.gate.add_permits(1);
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        sink.log()[1..],
        [
            "done alice@contoso.com setPresence",
            "start bob@contoso.com setPresence + carol@contoso.com setPresence",
            "done bob@contoso.com setPresence + carol@contoso.com setPresence",
        ]
    );
    task.abort();
}
