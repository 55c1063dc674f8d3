//! Teams presence by person through the engine runtime, in paused
//! (virtual) time: observations about extensions in, the presence engine's
//! commands out, with another sink stalled beside it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::Duration;

use sip_blf_engine::{
    Fact, LineState, Observation, Runtime, RuntimeConfig, Sink, SinkError, View, Write,
};
use sip_blf_sync::engine::{
    run_engine, EngineConfig, PresenceCommand, PresenceCommandKind, PresenceSink, RunOptions,
};
use sip_blf_sync::observe::Telemetry;
use sip_blf_sync::people::{self, PersonLines};
use sip_blf_sync::settings::Env;
use sip_blf_sync::sip_source::PBX;
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

/// Hands every command to the test as `key user: operation (reason)`.
struct Commands(mpsc::UnboundedSender<(String, Instant)>);

impl PresenceSink for Commands {
    async fn apply(
        &self,
        commands: &[PresenceCommand],
    ) -> Vec<Result<(), sip_blf_sync::engine::SinkError>> {
        for c in commands {
            let what = match &c.kind {
                PresenceCommandKind::Set { pair, .. } => format!("set {pair}"),
                PresenceCommandKind::Clear => "clear".to_owned(),
                PresenceCommandKind::StatusMessage { text } => format!("message {text:?}"),
            };
            let line = format!("{} {}: {what} ({})", c.extension, c.user, c.reason.as_str());
            let _ = self.0.send((line, Instant::now()));
        }
        commands.iter().map(|_| Ok(())).collect()
    }
}

/// A sink whose writes never return (a database that hangs).
struct Stalled;

impl Sink for Stalled {
    type Held = LineState;

    fn name(&self) -> &str {
        "stalled"
    }

    fn desired(&self, view: &View) -> Option<LineState> {
        Some(view.line)
    }

    async fn write(&self, _batch: Vec<Write<LineState>>) -> Vec<Result<(), SinkError>> {
        std::future::pending().await
    }
}

fn observe(address: &str, state: LineState) -> Observation {
    Observation::new(PBX, address, Fact::line(state), Instant::now().into_std())
}

async fn next(
    rx: &mut mpsc::UnboundedReceiver<(String, Instant)>,
    what: &str,
) -> (String, Instant) {
    tokio::time::timeout(Duration::from_secs(60), rx.recv())
        .await
        .unwrap_or_else(|_| panic!("no command for {what} within the wait"))
        .expect("the presence engine is running")
}

#[tokio::test(start_paused = true)]
async fn a_person_on_two_phones_is_busy_until_both_calls_end_and_a_stalled_sink_delays_nothing() {
    let exts = sip_blf_sync::extensions::parse_json(
        Path::new("extensions.json"),
        r#"[{"extension":"1001","email":"alice@contoso.com"},
            {"extension":"1002","email":"alice@contoso.com"},
            {"extension":"1003","email":"bob@contoso.com"}]"#,
    )
    .unwrap();
    let config = EngineConfig::from_env(&Env::from_pairs([("RECONCILE_MINUTES", "0")])).unwrap();
    let engine = config
        .build_engine(&exts, Instant::now().into_std())
        .unwrap();
    let mut rt =
        Runtime::start(people::directory(&exts).unwrap(), RuntimeConfig::default()).unwrap();
    rt.add_sink(Stalled).await.unwrap();
    let lines = PersonLines::new(rt.add_feed("graph").await.unwrap(), &exts);
    let (tx, mut commands) = mpsc::unbounded_channel();
    let (stop, stopping) = oneshot::channel::<()>();
    let presence = tokio::spawn(run_engine(
        lines,
        Commands(tx),
        engine,
        Telemetry::new(),
        async {
            let _ = stopping.await;
        },
        RunOptions::new(None, Duration::from_secs(5)),
    ));

    let t0 = Instant::now();
    rt.observe(observe("1001", LineState::Busy)).await.unwrap();
    let (line, at) = next(&mut commands, "alice's first call").await;
    assert_eq!(
        line,
        "1001, 1002 alice@contoso.com: set Busy/InACall (change)"
    );
    // Nothing waited on the stalled sink: no virtual time passed.
    assert_eq!(at, t0);

    // The softphone rings in while the desk phone's call goes on; then the
    // desk phone hangs up: alice stays busy, no command for her.
    rt.observe(observe("1002", LineState::Busy)).await.unwrap();
    rt.observe(observe("1001", LineState::Idle)).await.unwrap();
    // Another person's change as a marker: a command for alice would come first.
    rt.observe(observe("1003", LineState::Busy)).await.unwrap();
    let (line, _) = next(&mut commands, "bob's call").await;
    assert_eq!(line, "1003 bob@contoso.com: set Busy/InACall (change)");

    rt.observe(observe("1002", LineState::Idle)).await.unwrap();
    let (line, at) = next(&mut commands, "alice's hang-up").await;
    assert_eq!(line, "1001, 1002 alice@contoso.com: clear (change)");
    assert_eq!(at, t0);

    let status = rt.sink_status();
    let stalled = status.iter().find(|s| s.name == "stalled").unwrap();
    assert_eq!(
        stalled.in_flight, 1,
        "the stalled sink still holds its first write"
    );
    let graph = status.iter().find(|s| s.name == "graph").unwrap();
    assert!(graph.last_success.is_some());
    assert_eq!(graph.failures, 0);

    stop.send(()).unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(60), presence)
        .await
        .unwrap()
        .unwrap();
    let mut shutdown = Vec::new();
    while let Ok((line, _)) = commands.try_recv() {
        shutdown.push(line);
    }
    assert_eq!(shutdown, ["1003 bob@contoso.com: clear (shutdown)"]);
    rt.stop(Duration::from_secs(1)).await;
}
