//! `sip-blf-sync demo`: the whole flow on one machine, with nothing installed
//! and no tenant.
//!
//! An embedded PBX ([`sip_notifier`], with a digest challenge) plays a
//! scripted day at the office ([`script`]); an embedded Graph
//! ([`graph_emulator`]) serves the token and presence endpoints; between them
//! runs the real service, [`crate::run::run_until`], unchanged. Everything is
//! on 127.0.0.1; the state file lives in a temporary directory.

pub mod display;
pub mod script;

use std::io::IsTerminal as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use graph_emulator::{EmulatedUser, EmulatorConfig, GraphEmulator, Operation};
use serde_json::json;
use sip_notifier::{Account, NotifierConfig, NotifierHandle, NotifierServer};

use crate::observe::{self, Telemetry};
use crate::run::{run_until, RunPlan};
use crate::settings::Env;
use display::{Display, Row};
use script::Script;

/// What `demo` was asked for.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Time factor: 10 plays the 60 s day in 6 s.
    pub speed: f64,
    /// How many extensions (5 scripted; more are generated).
    pub extensions: usize,
    /// Where `/status` and `/metrics` listen (default `127.0.0.1:0`).
    pub http: Option<SocketAddr>,
    /// Write the summary (JSON) to this file.
    pub summary_json: Option<PathBuf>,
    /// Redraw a table in place (default: when stdout is a terminal).
    pub table: Option<bool>,
    /// The SQLite file the database sink writes the day into (default:
    /// `sip-blf-sync-demo-<pid>.db` in the system's temporary directory).
    pub database: Option<PathBuf>,
}

/// Why the demo could not run.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    /// `--speed` out of range.
    #[error("--speed must be between 0.01 and 1000 (got {0})")]
    Speed(f64),
    /// `--extensions` out of range.
    #[error("--extensions must be between 1 and 10000 (got {0})")]
    Extensions(usize),
    /// The embedded PBX did not start.
    #[error("the embedded PBX: {0}")]
    Pbx(#[from] sip_notifier::Error),
    /// The embedded Graph did not start.
    #[error("the embedded Microsoft Graph: {0}")]
    Graph(#[from] graph_emulator::EmulatorError),
    /// A file or socket.
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// The service itself.
    #[error("{0}")]
    Service(String),
}

/// A demo object id for an extension (a well-formed GUID).
fn object_id(extension: &str) -> String {
    let digits: String = extension.chars().filter(char::is_ascii_digit).collect();
    format!("00000000-0000-4000-8000-{:0>12}", digits)
}

/// Runs the demo to the end of the script (or Ctrl-C / SIGTERM) and returns the summary.
pub async fn run(options: DemoOptions) -> Result<serde_json::Value, DemoError> {
    if !(0.01..=1000.0).contains(&options.speed) || options.speed.is_nan() {
        return Err(DemoError::Speed(options.speed));
    }
    if !(1..=10_000).contains(&options.extensions) {
        return Err(DemoError::Extensions(options.extensions));
    }
    let script = script::day(options.extensions);
    let tty = options
        .table
        .unwrap_or_else(|| std::io::stdout().is_terminal());

    // The PBX, with a fresh password: the digest path runs as with a real one.
    let password = format!("demo-{:016x}", rand::random::<u64>());
    let mut pbx_config = NotifierConfig::new("demo.pbx", vec![Account::new("blf", &password)]);
    pbx_config.notify_events = false;
    for s in &script.steps {
        pbx_config.extensions.push(s.extension.clone());
    }
    pbx_config
        .extensions
        .extend(script.people.iter().map(|p| p.extension.clone()));
    pbx_config.extensions.sort();
    pbx_config.extensions.dedup();
    let mut pbx = NotifierServer::start(pbx_config, "127.0.0.1:0".parse().map_err(io)?).await?;
    // Nobody reads the PBX's events: the counters are enough.
    drop(pbx.take_events());

    // Microsoft Graph, with the script's people in the directory, each with
    // Teams open and Available (their own status, which shows when ours is cleared).
    let graph_config = EmulatorConfig {
        users: script
            .people
            .iter()
            .map(|p| EmulatedUser::new(&p.email, &object_id(&p.extension)))
            .collect(),
        ..EmulatorConfig::default()
    };
    let emu = GraphEmulator::start(graph_config).await?;
    for p in &script.people {
        emu.set_client_session(&object_id(&p.extension), "Available", "Available");
    }

    // Settings as a user would write them, in a temporary directory.
    let dir = tempfile::Builder::new()
        .prefix("sip-blf-sync-demo")
        .tempdir()?;
    let extensions_file = dir.path().join("extensions.json");
    let list: Vec<serde_json::Value> = script
        .people
        .iter()
        .map(|p| json!({ "extension": p.extension, "email": p.email, "name": p.name }))
        .collect();
    std::fs::write(
        &extensions_file,
        serde_json::to_vec_pretty(&list).map_err(io)?,
    )?;
    let state_file = dir.path().join("presence-state.json");
    let c = emu.config().clone();
    let server = pbx.local_addr().to_string();
    let base_url = emu.base_url();
    let authority = emu.authority_url();
    let extensions_path = extensions_file.display().to_string();
    let state_path = state_file.display().to_string();
    // The day also goes into an SQLite table, kept for `sqlite3` afterwards.
    let database = options.database.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("sip-blf-sync-demo-{}.db", std::process::id()))
    });
    let database_url = format!("sqlite://{}", database.display());
    let env = Env::from_pairs([
        ("SINKS", "graph,database"),
        ("DATABASE_URL", database_url.as_str()),
        ("SIP_SERVER", server.as_str()),
        ("SIP_USERNAME", "blf"),
        ("SIP_PASSWORD", password.as_str()),
        // The embedded PBX is on loopback: any free port there, never a
        // well-known one another program (or a second demo) may hold.
        ("SIP_LISTEN", "127.0.0.1:0"),
        ("EXTENSIONS_JSON", extensions_path.as_str()),
        ("PRESENCE_STATE_JSON", state_path.as_str()),
        ("AZURE_TENANT_ID", c.tenant_id.as_str()),
        ("AZURE_CLIENT_ID", c.client_id.as_str()),
        ("AZURE_CLIENT_SECRET", c.client_secret.as_str()),
        ("GRAPH_BASE_URL", base_url.as_str()),
        ("AZURE_AUTHORITY_HOST", authority.as_str()),
        // The demo serves /status itself, on its own address.
        ("HTTP_LISTEN", "off"),
    ]);
    let mut plan = RunPlan::from_env(&env, false).map_err(|p| {
        DemoError::Service(
            p.0.iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; "),
        )
    })?;

    // Graph's budget is 1,500 requests per 30 s: after a busy day with many
    // users, clearing them all may wait for the next window.
    plan.set_shutdown_limit(Duration::from_secs(75));
    let telemetry = Telemetry::new();
    // Listed on /status from its first answer (run adds them again, unchanged).
    for e in plan.extensions() {
        telemetry.add_extension(&e.extension, e.user());
    }
    let http_addr = options
        .http
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    line_board::check_bind(http_addr, None)
        .map_err(|e| DemoError::Service(format!("--http: {e}")))?;
    let board = crate::dashboard::board(plan.extensions(), &Default::default());
    plan.set_board(board.clone());
    telemetry.set_board(board.clone());
    let http = observe::serve_board(
        http_addr,
        telemetry.clone(),
        board.clone(),
        line_board::Access::open(),
    )
    .await?;
    tokio::spawn(crate::dashboard::keep_health(board, telemetry.clone()));
    let rows = script
        .people
        .iter()
        .map(|p| Row {
            extension: p.extension.clone(),
            name: p.name.clone(),
            email: p.email.clone(),
            object_id: object_id(&p.extension),
            line: None,
            teams: None,
            changed: Duration::ZERO,
            line_seq: Vec::new(),
            teams_seq: Vec::new(),
        })
        .collect();
    let mut display = Display::new(rows, tty);
    display.say(&format!("dashboard: http://{}/", http.local_addr()));
    let seconds = script.length.as_secs_f64() / options.speed;
    display.say(&format!(
        "sip-blf-sync demo: a day at the office for {} extensions ({seconds:.1} s at --speed {}); Ctrl-C stops it",
        script.people.len(),
        options.speed
    ));
    display.say(&format!(
        "PBX (embedded SIP notifier): sip:{} user blf, digest auth",
        pbx.local_addr()
    ));
    display.say(&format!(
        "Microsoft Graph (embedded emulator): {}",
        emu.base_url()
    ));
    display.say(&format!("status:  http://{}/status", http.local_addr()));
    display.say(&format!(
        "database: {} (after the demo: sqlite3 {} 'SELECT * FROM line_events')",
        database.display(),
        database.display()
    ));
    display.say(&format!("metrics: http://{}/metrics", http.local_addr()));

    let (finished_tx, finished_rx) = tokio::sync::watch::channel(false);
    let (notes_tx, notes_rx) = tokio::sync::mpsc::unbounded_channel::<String>();
    let mut interrupted = false;
    let stop = async {
        tokio::select! {
            () = play(&pbx, &script, options.speed, &telemetry) => {}
            () = crate::signals::shutdown_signal() => interrupted = true,
        }
        let _ = notes_tx.send(
            "stopping: clearing every presence the service set, un-subscribing, un-registering"
                .to_string(),
        );
    };
    let service = async {
        let r = run_until(plan, telemetry.clone(), stop).await;
        let _ = finished_tx.send(true);
        r.map_err(|e| e.to_string())
    };
    let view = watch(&mut display, &telemetry, &emu, finished_rx, notes_rx);
    let (result, ()) = tokio::join!(service, view);
    display.update(&telemetry, &emu);
    display.draw();
    result.map_err(DemoError::Service)?;

    let mut summary = summarise(&display, &emu, &pbx, &options, &script, interrupted).await;
    summary["database"] = json!(database.display().to_string());
    let left = summary["app_sessions_left"].as_u64().unwrap_or(0);
    display.say(&if left == 0 {
        format!(
            "{}: every presence the service set is cleared (no app session left); each user shows their own status again",
            if interrupted { "stopped" } else { "done" }
        )
    } else {
        format!("{left} presence session(s) could not be cleared")
    });
    display.say(&format!(
        "PBX: {} NOTIFYs sent, {} unanswered; Microsoft Graph: {} requests",
        summary["pbx"]["notifies_sent"], summary["pbx"]["notifies_failed"], summary["graph_calls"]
    ));
    if let Some(path) = &options.summary_json {
        let text = serde_json::to_string_pretty(&summary).map_err(io)?;
        std::fs::write(path, text)?;
    }
    let _ = http.shutdown().await;
    let _ = pbx.shutdown().await;
    Ok(summary)
}

fn io(e: impl std::fmt::Display) -> std::io::Error {
    std::io::Error::other(e.to_string())
}

/// Waits until every watched extension has its first line state, then plays
/// the script on the PBX, then waits out the rest of the day.
async fn play(pbx: &NotifierHandle, script: &Script, speed: f64, telemetry: &Telemetry) {
    let wanted: Vec<&str> = script.people.iter().map(|p| p.extension.as_str()).collect();
    let ready = async {
        loop {
            let status = telemetry.status_json();
            let known = status["extensions"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter(|e| {
                            e["line_state"].is_string()
                                && e["extension"].as_str().is_some_and(|x| wanted.contains(&x))
                        })
                        .count()
                })
                .unwrap_or(0);
            if known >= wanted.len() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    if tokio::time::timeout(Duration::from_secs(30), ready)
        .await
        .is_err()
    {
        tracing::warn!("not every extension reported a line state within 30 s; playing anyway");
    }
    let start = tokio::time::Instant::now();
    for step in &script.steps {
        tokio::time::sleep_until(start + step.at.div_f64(speed)).await;
        if pbx
            .set_line(step.extension.clone(), step.dialogs.clone())
            .is_err()
        {
            return;
        }
    }
    tokio::time::sleep_until(start + script.length.div_f64(speed)).await;
}

/// Updates the view until the service has stopped.
async fn watch(
    display: &mut Display,
    telemetry: &Telemetry,
    emu: &GraphEmulator,
    mut finished: tokio::sync::watch::Receiver<bool>,
    mut notes: tokio::sync::mpsc::UnboundedReceiver<String>,
) {
    display.restart_clock();
    let mut tick = tokio::time::interval(Duration::from_millis(20));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => display.update(telemetry, emu),
            Some(note) = notes.recv() => display.say(&note),
            r = finished.changed() => {
                if r.is_err() || *finished.borrow() {
                    return;
                }
            }
        }
    }
}

/// The end state: per user, what the demo saw, what Graph was asked, and the
/// presence and app session Graph ends with.
async fn summarise(
    display: &Display,
    emu: &GraphEmulator,
    pbx: &NotifierHandle,
    options: &DemoOptions,
    script: &Script,
    interrupted: bool,
) -> serde_json::Value {
    let requests = emu.requests();
    let mut sessions_left = 0u64;
    let users: Vec<serde_json::Value> = display
        .rows()
        .iter()
        .map(|row| {
            let graph: Vec<String> = requests
                .iter()
                .filter(|r| r.path.contains(&row.object_id))
                .filter_map(|r| {
                    let op = match r.operation {
                        Operation::SetPresence => "setPresence",
                        Operation::ClearPresence => "clearPresence",
                        Operation::SetStatusMessage => "setStatusMessage",
                        _ => return None,
                    };
                    Some(format!("{op} {}", r.status))
                })
                .collect();
            let session = emu.app_session(&row.object_id).is_some();
            if session {
                sessions_left += 1;
            }
            let presence = emu
                .presence_of(&row.object_id)
                .map(|p| format!("{}/{}", p.availability, p.activity));
            json!({
                "extension": row.extension,
                "user": row.email,
                "object_id": row.object_id,
                "line_states": row.line_seq,
                "teams_presences": row.teams_seq,
                "graph_requests": graph,
                "final_presence": presence,
                "app_session": session,
            })
        })
        .collect();
    let stats = pbx.stats().await.ok();
    json!({
        "speed": options.speed,
        "extensions": script.people.len(),
        "interrupted": interrupted,
        "pbx": stats.map(|s| json!({
            "notifies_sent": s.notifies_sent,
            "notifies_answered": s.notifies_answered,
            "notifies_failed": s.notifies_failed,
            "challenges": s.challenges,
            "active_subscriptions": s.active_subscriptions,
            "registrations": s.registrations,
        })),
        "graph_calls": requests.len(),
        "app_sessions_left": sessions_left,
        "users": users,
    })
}
