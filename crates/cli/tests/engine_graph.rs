//! The Graph sink (and the driver with it) against the Graph emulator on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use blf::LineState;
use graph_emulator::{EmulatorConfig, Fault, GraphEmulator, Operation};
use graph_presence::{
    Credential, GraphClient, GraphConfig, PresenceState, RetryPolicy, SecretString,
};
use sip_blf_engine::{Fact, Observation, Runtime, RuntimeConfig};
use sip_blf_sync::engine::EngineConfig;
use sip_blf_sync::engine::{
    run_engine, ChannelSource, Engine, EngineSettings, GraphSink, Mapping, PersistedState,
    PresenceCommand, PresenceCommandKind, PresenceSink, Reason, RunOptions, SinkError,
};
use sip_blf_sync::observe::Telemetry;
use sip_blf_sync::people::{self, PersonLines};
use sip_blf_sync::settings::Env;
use sip_blf_sync::sip_source::{LineChange, SourceEvent, PBX};
use tokio::sync::mpsc;

const ALICE: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const BOB: &str = "bbbbbbbb-0000-4000-8000-000000000002";

fn client(emu: &GraphEmulator) -> GraphClient {
    GraphClient::new(config(emu)).unwrap()
}

fn config(emu: &GraphEmulator) -> GraphConfig {
    let c = emu.config();
    let config = GraphConfig::new(
        c.tenant_id.clone(),
        c.client_id.clone(),
        Credential::Secret(SecretString::new(c.client_secret.clone())),
    )
    .with_authority_url(emu.authority_url())
    .with_graph_url(emu.base_url());
    // As the service has it: no retries inside the client, the engine retries.
    assert_eq!(config.retry_policy(), RetryPolicy::none());
    config
}

fn command(ext: &str, user: &str, kind: PresenceCommandKind) -> PresenceCommand {
    PresenceCommand {
        extension: ext.into(),
        user: user.into(),
        kind,
        reason: Reason::Change,
        caused_at: None,
    }
}

fn busy() -> PresenceCommandKind {
    PresenceCommandKind::Set {
        pair: PresenceState::BusyInACall,
        expiration: Duration::from_secs(3600),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_then_clear_through_graph() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let telemetry = Telemetry::new();
    let sink = GraphSink::new(client(&emu), telemetry.clone());
    let r = sink
        .apply(&[command("1001", "alice@contoso.com", busy())])
        .await;
    assert_eq!(r, vec![Ok(())]);
    let session = emu.app_session(ALICE).expect("a session");
    assert_eq!(session.session_id, emu.config().client_id);
    assert_eq!(session.pair.availability, "Busy");
    assert_eq!(session.pair.activity, "InACall");
    let shown = emu.presence_of(ALICE).unwrap();
    assert_eq!(
        (shown.availability.as_str(), shown.activity.as_str()),
        ("Busy", "InACall")
    );
    assert_eq!(
        sink.object_ids()
            .get("alice@contoso.com")
            .map(String::as_str),
        Some(ALICE)
    );
    let back = sink.read_back(&["alice@contoso.com".into()]).await.unwrap();
    assert_eq!(
        back,
        vec![("alice@contoso.com".into(), "Busy/InACall".into())]
    );

    let r = sink
        .apply(&[command(
            "1001",
            "alice@contoso.com",
            PresenceCommandKind::Clear,
        )])
        .await;
    assert_eq!(r, vec![Ok(())]);
    assert_eq!(emu.app_session(ALICE), None);
    // The user was resolved once, then taken from the cache.
    assert_eq!(emu.count(Operation::GetUser), 1);
    let metrics = telemetry.metrics_text();
    assert!(
        metrics.contains(r#"graph_calls_total{operation="setPresence",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"graph_calls_total{operation="clearPresence",outcome="ok"} 1"#),
        "{metrics}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_user_fails_alone() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let sink = GraphSink::new(client(&emu), Telemetry::new());
    let r = sink
        .apply(&[
            command("1001", "alice@contoso.com", busy()),
            command("1004", "dave@contoso.com", busy()),
        ])
        .await;
    assert_eq!(r[0], Ok(()));
    assert!(r[1].is_err(), "{r:?}");
    assert!(emu.app_session(ALICE).is_some());
}

/// The Graph sink, reporting each command's outcome as it comes.
#[derive(Clone)]
struct Reporting {
    inner: GraphSink,
    outcomes: mpsc::UnboundedSender<(String, Result<(), SinkError>, Instant)>,
}

impl PresenceSink for Reporting {
    async fn apply(&self, commands: &[PresenceCommand]) -> Vec<Result<(), SinkError>> {
        let results = self.inner.apply(commands).await;
        for (c, r) in commands.iter().zip(&results) {
            let _ = self
                .outcomes
                .send((c.user.clone(), r.clone(), Instant::now()));
        }
        results
    }
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throttling_and_server_errors_are_retried_by_the_engine_within_seconds() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    // The service's client: it does not retry by itself.
    let client = client(&emu);
    let sink = GraphSink::new(client, Telemetry::new());
    sink.seed([("alice@contoso.com", ALICE), ("bob@contoso.com", BOB)]);
    let (outcomes, mut outcome) = mpsc::unbounded_channel();
    let sink = Reporting {
        inner: sink,
        outcomes,
    };
    let mut engine = Engine::new(
        EngineSettings {
            reconcile_every: Duration::ZERO,
            ..EngineSettings::default()
        },
        Instant::now(),
    );
    engine.add_extension("1001", "alice@contoso.com", Mapping::default());
    engine.add_extension("1002", "bob@contoso.com", Mapping::default());
    emu.inject(Fault::TooManyRequests {
        retry_after: Duration::from_secs(1),
        times: 2,
    });
    emu.inject(Fault::ServiceUnavailable { times: 1 });
    let (tx, rx) = mpsc::unbounded_channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_engine(
        ChannelSource(rx),
        sink,
        engine,
        Telemetry::new(),
        async move {
            let _ = stopped.await;
        },
        RunOptions::new(None, Duration::from_secs(10)),
    ));
    tx.send(line("1001", LineState::Busy)).unwrap();
    tx.send(line("1002", LineState::Busy)).unwrap();
    // Each user's outcomes, until both went through (in any order).
    let mut seen: Vec<(String, Result<(), SinkError>, Instant)> = Vec::new();
    while ["alice@contoso.com", "bob@contoso.com"]
        .iter()
        .any(|u| !seen.iter().any(|(w, r, _)| w == u && r.is_ok()))
    {
        let next = tokio::time::timeout(Duration::from_secs(60), outcome.recv())
            .await
            .expect("every user's presence goes through")
            .unwrap();
        seen.push(next);
    }
    for id in [ALICE, BOB] {
        let p = emu.presence_of(id).unwrap();
        assert_eq!(
            (p.availability.as_str(), p.activity.as_str()),
            ("Busy", "InACall")
        );
    }
    let failures: Vec<&SinkError> = seen
        .iter()
        .filter_map(|(_, r, _)| r.as_ref().err())
        .collect();
    assert_eq!(failures.len(), 3, "two 429s and one 503: {seen:?}");
    assert!(failures.iter().all(|e| !e.permanent), "{failures:?}");
    let throttled: Vec<_> = failures.iter().filter(|e| e.throttled).collect();
    assert_eq!(throttled.len(), 2, "{failures:?}");
    assert!(throttled
        .iter()
        .all(|e| e.retry_after == Some(Duration::from_secs(1))));
    for user in ["alice@contoso.com", "bob@contoso.com"] {
        let times: Vec<Instant> = seen
            .iter()
            .filter(|(u, _, _)| u == user)
            .map(|(_, _, at)| *at)
            .collect();
        for pair in times.windows(2) {
            let gap = pair[1].duration_since(pair[0]);
            // Retry-After (1 s) or the first steps of the backoff (1 s, 2 s),
            // not the 30 s of a steady retry.
            assert!(
                gap >= Duration::from_millis(900) && gap < Duration::from_secs(15),
                "{user}: retried after {gap:?}"
            );
        }
    }
    assert_eq!(emu.throttled_count(), 2);
    stop.send(()).unwrap();
    let engine = tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(engine.applied("1001").as_deref(), Some("clear"));
    assert_eq!(emu.app_session(ALICE), None);
    assert_eq!(emu.app_session(BOB), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_with_graph_sink_clears_on_shutdown_and_persists_ids() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let state_file = dir.path().join("presence-state.json");
    let mut engine = Engine::new(
        EngineSettings {
            reconcile_every: Duration::ZERO,
            ..EngineSettings::default()
        },
        Instant::now(),
    );
    engine.add_extension("1001", "alice@contoso.com", Mapping::default());
    engine.add_extension("1002", "bob@contoso.com", Mapping::default());
    let (tx, rx) = mpsc::unbounded_channel();
    for (ext, state) in [
        ("1001", LineState::Busy),
        ("1002", LineState::Busy),
        ("1002", LineState::Idle),
    ] {
        tx.send(SourceEvent::Line(LineChange {
            extension: ext.into(),
            line_state: state,
            dnd: false,
            received_at: None,
            stale: None,
        }))
        .unwrap();
    }
    drop(tx);
    let sink = GraphSink::new(client(&emu), Telemetry::new());
    let engine = tokio::time::timeout(
        Duration::from_secs(30),
        run_engine(
            ChannelSource(rx),
            sink,
            engine,
            Telemetry::new(),
            std::future::pending(),
            RunOptions::new(Some(state_file.clone()), Duration::from_secs(10)),
        ),
    )
    .await
    .unwrap();
    // The queued events arrive as one backlog: bob's busy → idle coalesces to
    // idle (nothing of ours to clear), alice is set once and cleared at shutdown.
    assert_eq!(emu.count(Operation::SetPresence), 1);
    assert_eq!(emu.count(Operation::ClearPresence), 1);
    assert_eq!(emu.app_session(ALICE), None);
    assert_eq!(emu.app_session(BOB), None);
    assert_eq!(engine.applied("1001").as_deref(), Some("clear"));
    let saved = PersistedState::load(&state_file, std::time::SystemTime::now());
    assert_eq!(saved.warning, None);
    assert_eq!(saved.state.object_ids["alice@contoso.com"], ALICE);
    assert_eq!(saved.state.users["alice@contoso.com"].applied, "clear");
    assert!(!saved.state.users.contains_key("bob@contoso.com"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failures_say_whether_a_retry_can_help() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let sink = GraphSink::new(client(&emu), Telemetry::new());
    let r = sink
        .apply(&[command("1004", "dave@contoso.com", busy())])
        .await;
    let gone = r[0].clone().unwrap_err();
    assert!(gone.permanent, "{gone:?}");
    assert!(gone.message.contains("extension list"), "{gone}");

    // The client does not retry: a 429 comes back at once, transient, with
    // its Retry-After for the engine.
    emu.inject(Fault::TooManyRequests {
        retry_after: Duration::from_secs(7),
        times: 1,
    });
    let started = Instant::now();
    let r = sink
        .apply(&[command("1001", "alice@contoso.com", busy())])
        .await;
    let throttled = r[0].clone().unwrap_err();
    assert!(!throttled.permanent && throttled.throttled, "{throttled:?}");
    assert_eq!(throttled.retry_after, Some(Duration::from_secs(7)));
    assert!(started.elapsed() < Duration::from_secs(7), "nothing waited");
    // So does a 503: transient, no Retry-After (the engine backs off).
    emu.inject(Fault::ServiceUnavailable { times: 1 });
    let r = sink
        .apply(&[command("1001", "alice@contoso.com", busy())])
        .await;
    let server = r[0].clone().unwrap_err();
    assert!(!server.permanent && !server.throttled, "{server:?}");
    assert_eq!(server.retry_after, None);
    assert_eq!(
        server.failure(),
        sip_blf_sync::engine::Failure::Transient { retry_after: None }
    );
    // A 503 that says when to come back: the engine waits that long.
    emu.inject(Fault::ServiceUnavailableRetryAfter {
        retry_after: Duration::from_secs(5),
        times: 1,
    });
    let r = sink
        .apply(&[command("1001", "alice@contoso.com", busy())])
        .await;
    let server = r[0].clone().unwrap_err();
    assert_eq!(
        server.failure(),
        sip_blf_sync::engine::Failure::Transient {
            retry_after: Some(Duration::from_secs(5))
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_state_follows_the_calls() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let telemetry = Telemetry::new();
    let sink = GraphSink::new(client(&emu), telemetry.clone());
    let r = sink
        .apply(&[command("1001", "alice@contoso.com", busy())])
        .await;
    assert_eq!(r, vec![Ok(())]);
    let status = telemetry.status_json();
    assert_eq!(status["token_valid"], true, "{status}");
    assert!(
        status["token_expires_in_seconds"].as_f64().unwrap() > 3000.0,
        "{status}"
    );

    let wrong = config(&emu).with_credential(Credential::Secret(SecretString::new(
        "not-the-secret".to_owned(),
    )));
    let refused = GraphSink::new(GraphClient::new(wrong).unwrap(), telemetry.clone());
    let r = refused
        .apply(&[command("1002", "bob@contoso.com", busy())])
        .await;
    assert!(r[0].as_ref().unwrap_err().permanent, "{r:?}");
    let status = telemetry.status_json();
    assert_eq!(status["token_valid"], false, "{status}");
    assert!(status["token_expires_in_seconds"].is_null(), "{status}");
    assert!(!telemetry.is_ready());

    // The periodic check (or the next good call) shows it valid again.
    sink.refresh_token_status().await.unwrap();
    assert_eq!(telemetry.status_json()["token_valid"], true);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_up_looks_users_up_once_and_names_those_missing() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let sink = GraphSink::new(client(&emu), Telemetry::new());
    let failed = sink
        .warm_up(&["alice@contoso.com".into(), "dave@contoso.com".into()])
        .await;
    assert_eq!(failed.len(), 1, "{failed:?}");
    assert_eq!(failed[0].0, "dave@contoso.com");
    assert!(failed[0].1.permanent, "{failed:?}");
    assert_eq!(emu.count(Operation::GetUser), 2);
    let r = sink
        .apply(&[command("1001", "alice@contoso.com", busy())])
        .await;
    assert_eq!(r, vec![Ok(())]);
    assert_eq!(emu.count(Operation::GetUser), 2, "taken from the cache");
}

async fn next_outcome(
    outcome: &mut mpsc::UnboundedReceiver<(String, Result<(), SinkError>, Instant)>,
) -> (String, Result<(), SinkError>, Instant) {
    tokio::time::timeout(Duration::from_secs(60), outcome.recv())
        .await
        .expect("a Graph call within the wait")
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn do_not_disturb_on_one_phone_shows_in_teams_until_switched_off() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let exts = sip_blf_sync::extensions::parse_json(
        std::path::Path::new("extensions.json"),
        r#"[{"extension":"1001","email":"alice@contoso.com"},
            {"extension":"1002","email":"alice@contoso.com"}]"#,
    )
    .unwrap();
    let config = EngineConfig::from_env(&Env::from_pairs([("RECONCILE_MINUTES", "0")])).unwrap();
    let engine = config.build_engine(&exts, Instant::now()).unwrap();
    let mut rt =
        Runtime::start(people::directory(&exts).unwrap(), RuntimeConfig::default()).unwrap();
    let lines = PersonLines::new(rt.add_feed("graph").await.unwrap(), &exts);
    let (outcomes, mut outcome) = mpsc::unbounded_channel();
    let sink = Reporting {
        inner: GraphSink::new(client(&emu), Telemetry::new()),
        outcomes,
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(run_engine(
        lines,
        sink,
        engine,
        Telemetry::new(),
        async move {
            let _ = stopped.await;
        },
        RunOptions::new(None, Duration::from_secs(10)),
    ));
    let observe = |address: &str, fact: Fact| Observation::new(PBX, address, fact, Instant::now());

    // Both phones idle: nothing of ours to clear. Then DND on the softphone.
    for ext in ["1001", "1002"] {
        rt.observe(observe(ext, Fact::line(sip_blf_engine::LineState::Idle)))
            .await
            .unwrap();
    }
    rt.observe(observe("1002", Fact::Dnd(true))).await.unwrap();
    let (user, result, _) = next_outcome(&mut outcome).await;
    assert_eq!((user.as_str(), result), ("alice@contoso.com", Ok(())));
    let session = emu.app_session(ALICE).expect("our session");
    assert_eq!(
        (
            session.pair.availability.as_str(),
            session.pair.activity.as_str()
        ),
        ("DoNotDisturb", "Presenting")
    );
    let shown = emu.presence_of(ALICE).unwrap();
    assert_eq!(shown.availability, "DoNotDisturb");

    rt.observe(observe("1002", Fact::Dnd(false))).await.unwrap();
    let (user, result, _) = next_outcome(&mut outcome).await;
    assert_eq!((user.as_str(), result), ("alice@contoso.com", Ok(())));
    assert_eq!(emu.app_session(ALICE), None);
    assert_eq!(emu.count(Operation::SetPresence), 1);
    assert_eq!(emu.count(Operation::ClearPresence), 1);

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .unwrap()
        .unwrap();
    rt.stop(Duration::from_secs(1)).await;
}
