//! Graph economy: how few Graph operations and requests flapping lines cost.

use std::time::Duration;

use blf::LineState;
use graph_emulator::{Operation, RateLimit};
use sip_blf_sync::engine::{run_engine, ChannelSource, EngineConfig, GraphSink, RunOptions};
use sip_blf_sync::observe::Telemetry;
use sip_blf_sync::settings::{self, Env};
use sip_blf_sync::sip_source::{LineChange, SourceEvent};

use crate::figures::{Figure, Report};
use crate::fixture::{self, graph_env, Fixture};
use crate::BenchError;

/// Graph economy: flapping lines (100 changes per user per second) that
/// settle, debounce and `$batch` on, Graph's budget on both sides.
pub fn graph_economy(
    rt: &tokio::runtime::Runtime,
    users: usize,
    rounds: u32,
    debounce: Duration,
) -> Result<Report, BenchError> {
    let fixture = Fixture::new(users)?;
    let limit = RateLimit {
        requests: 1_500,
        window: Duration::from_secs(30),
    };
    let emulator = rt.block_on(fixture.emulator(Some(limit)))?;
    let mut env = graph_env(&emulator);
    env.push((
        "EXTENSIONS_JSON".into(),
        fixture.extensions_path().display().to_string(),
    ));
    env.push(("SYNC_DEBOUNCE_MS".into(), debounce.as_millis().to_string()));
    env.push(("RECONCILE_MINUTES".into(), "0".into()));
    let env = Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let changes = rt.block_on(async {
        let extensions = sip_blf_sync::extensions::load(&settings::extensions_path(&env))
            .map_err(|e| BenchError::setup(e.to_string()))?;
        let config = EngineConfig::from_env(&env).map_err(|e| BenchError::setup(e.to_string()))?;
        let (engine, _) = config
            .prepare(&extensions, tokio::time::Instant::now().into_std())
            .map_err(|e| BenchError::setup(e.to_string()))?;
        // The client's own budget stays at its default (Graph's documented limit).
        let graph = settings::graph_config(&env).map_err(|e| BenchError::setup(e.to_string()))?;
        let client = graph_presence::GraphClient::new(graph)
            .map_err(|e| BenchError::setup(e.to_string()))?;
        let telemetry = Telemetry::new();
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_engine(
            ChannelSource(rx),
            GraphSink::new(client, telemetry.clone()),
            engine,
            telemetry,
            async {
                let _ = stop_rx.await;
            },
            RunOptions::new(None, Duration::from_secs(1)),
        ));
        let send = |i: usize, state: LineState| {
            let _ = tx.send(SourceEvent::Line(LineChange {
                extension: fixture::extension(i),
                line_state: state,
                dnd: false,
                received_at: None,
                stale: None,
            }));
        };
        let mut changes = 0u64;
        let flap = Duration::from_millis(400);
        for round in 0..rounds {
            let final_state = if round % 2 == 0 {
                LineState::Busy
            } else {
                LineState::Idle
            };
            let start = tokio::time::Instant::now();
            let mut tick = tokio::time::interval(Duration::from_millis(10));
            let mut k = 0u32;
            while start.elapsed() < flap {
                tick.tick().await;
                k += 1;
                let state = if (k + round).is_multiple_of(2) {
                    LineState::Busy
                } else {
                    LineState::Idle
                };
                for i in 0..users {
                    send(i, state);
                }
                changes += users as u64;
            }
            for i in 0..users {
                send(i, final_state);
            }
            changes += users as u64;
            // Wait until Graph shows every user's final state.
            let want = if final_state == LineState::Busy {
                "Busy"
            } else {
                "Offline"
            };
            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
            while tokio::time::Instant::now() < deadline {
                let done = (0..users).all(|i| {
                    emulator
                        .presence_of(&fixture::object_id(i))
                        .is_some_and(|p| p.availability == want)
                });
                if done {
                    break;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
        let _ = stop_tx.send(());
        let _ = task.await;
        Ok::<u64, BenchError>(changes)
    })?;
    let log = emulator.requests();
    let is_op = |op: Operation| matches!(op, Operation::SetPresence | Operation::ClearPresence);
    let ops: Vec<_> = log.iter().filter(|r| is_op(r.operation)).collect();
    // Change-driven operations only: the shutdown clears come after the last round.
    let http_requests = log
        .iter()
        .filter(|r| r.operation != Operation::Token && !r.in_batch)
        .count();
    let batches = emulator.count(Operation::Batch);
    let in_batch = ops.iter().filter(|r| r.in_batch).count();
    let mut per_user = std::collections::HashMap::<String, usize>::new();
    for r in &ops {
        *per_user.entry(user_of(&r.path)).or_default() += 1;
    }
    // The shutdown clears every Busy user once more (rounds ending Busy).
    let final_states = u64::from(rounds) * users as u64;
    let mut report = Report::new(
        "graph-economy",
        format!(
            "{users} users flapping at 100 changes/s for 400 ms then settling, {rounds} rounds, \
             debounce {} ms, budget 1500/30 s, emulator limit 1500/30 s",
            debounce.as_millis()
        ),
    );
    report.push(Figure::new("line-state changes", changes as f64, ""));
    report.push(Figure::new("presence operations", ops.len() as f64, ""));
    report.push(Figure::new(
        "operations per 1,000 changes",
        ops.len() as f64 * 1000.0 / changes.max(1) as f64,
        "",
    ));
    report.push(Figure::new(
        "HTTP requests per 1,000 changes",
        http_requests as f64 * 1000.0 / changes.max(1) as f64,
        "",
    ));
    let shutdown_extra = if rounds % 2 == 1 { 1.0 } else { 0.0 };
    report.push(
        Figure::new(
            "operations per user per final state",
            (ops.len() as f64 / users.max(1) as f64 - shutdown_extra) / f64::from(rounds.max(1)),
            "",
        )
        .at_most(1.0),
    );
    report.push(Figure::new(
        "most operations for one user",
        per_user.values().copied().max().unwrap_or(0) as f64,
        "",
    ));
    report.push(
        Figure::new(
            "operations per $batch",
            in_batch as f64 / batches.max(1) as f64,
            "",
        )
        .at_least(15.0),
    );
    report.push(Figure::new("429 answers", emulator.throttled_count() as f64, "").at_most(0.0));
    let _ = final_states;
    report.lost_notifies = Some(0);
    report.note("operations include the clears sent at shutdown for users left Busy");
    Ok(report)
}

/// The user id in a presence path (`users/{id}/presence/...`).
fn user_of(path: &str) -> String {
    path.split('/')
        .skip_while(|s| *s != "users")
        .nth(1)
        .unwrap_or_default()
        .to_owned()
}
