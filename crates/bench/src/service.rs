//! The service path in-process, wired as `sip-blf-sync run` wires it: the SIP
//! source (sip-ua) → the engine → the Graph sink → the Graph client, on a
//! runtime of its own (optionally pinned to one core), with every
//! NOTIFY→Graph latency sample kept.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use graph_emulator::GraphEmulator;
use graph_presence::BudgetConfig;
use sip_blf_sync::observe::Telemetry;
use sip_blf_sync::run::{run_until_ready, RunPlan};
use sip_blf_sync::settings::Env;
use tokio::sync::oneshot;

use crate::fixture::{graph_env, Fixture};
use crate::BenchError;

/// How to run the in-process service.
#[derive(Debug, Clone)]
pub struct ServiceOptions {
    /// The environment `run` would read (SIP, Graph, extension list, engine).
    pub env: Vec<(String, String)>,
    /// Graph request budget; `None` keeps the client's default (Graph's
    /// documented 1,500 per 30 s).
    pub budget: Option<BudgetConfig>,
    /// Pin the service's threads to this core.
    pub cpu: Option<usize>,
    /// Runtime worker threads (the binary uses one per core).
    pub workers: usize,
}

impl ServiceOptions {
    /// The fixture's extensions against the notifier at `pbx` and `emulator`;
    /// no SUBSCRIBE pacing, debounce off, no reconciliation during a run.
    pub fn new(fixture: &Fixture, emulator: &GraphEmulator, pbx: SocketAddr) -> Self {
        let mut env = vec![
            ("SIP_SERVER".to_owned(), pbx.to_string()),
            ("SIP_USERNAME".to_owned(), "blf".to_owned()),
            ("SIP_PASSWORD".to_owned(), "blf".to_owned()),
            ("SIP_CONTACT_IP".to_owned(), pbx.ip().to_string()),
            // Any free port next to the PBX: runs in parallel never share one.
            (
                "SIP_LISTEN".to_owned(),
                SocketAddr::new(pbx.ip(), 0).to_string(),
            ),
            ("SIP_SUBSCRIBE_RATE".to_owned(), "0".to_owned()),
            (
                "EXTENSIONS_JSON".to_owned(),
                fixture.extensions_path().display().to_string(),
            ),
            (
                "PRESENCE_STATE_JSON".to_owned(),
                fixture.dir().join("state.json").display().to_string(),
            ),
            ("SYNC_DEBOUNCE_MS".to_owned(), "0".to_owned()),
            ("RECONCILE_MINUTES".to_owned(), "0".to_owned()),
        ];
        env.extend(graph_env(emulator));
        Self {
            env,
            budget: None,
            cpu: None,
            workers: crate::pin::cores(),
        }
    }

    /// Sets (or adds) one variable.
    pub fn set(mut self, name: &str, value: &str) -> Self {
        self.env.retain(|(k, _)| k != name);
        self.env.push((name.to_owned(), value.to_owned()));
        self
    }
}

/// A running in-process service.
pub struct Service {
    telemetry: Telemetry,
    samples: Arc<Mutex<Vec<Duration>>>,
    receipts: Arc<Mutex<HashMap<String, Vec<Instant>>>>,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<Result<(), String>>>,
    sip_addr: Option<SocketAddr>,
    /// A private PostgreSQL server for the database sink, stopped after
    /// the service (`BENCH_DATABASE=postgres`).
    database_server: Option<testbed::Postgres>,
}

impl std::fmt::Debug for Service {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Service")
            .field("sip_addr", &self.sip_addr)
            .finish_non_exhaustive()
    }
}

impl Service {
    /// Starts the service on its own runtime; returns once the SIP socket is up
    /// (registration and subscriptions then proceed).
    pub fn start(mut options: ServiceOptions) -> Result<Service, BenchError> {
        let database_server = with_database(&mut options)?;
        let telemetry = Telemetry::new();
        let samples: Arc<Mutex<Vec<Duration>>> = Arc::default();
        let sink = samples.clone();
        telemetry.set_latency_hook(Arc::new(move |d| {
            sink.lock().unwrap_or_else(|p| p.into_inner()).push(d);
        }));
        let receipts: Arc<Mutex<HashMap<String, Vec<Instant>>>> = Arc::default();
        let book = receipts.clone();
        telemetry.set_notify_hook(Arc::new(move |extension, at| {
            book.lock()
                .unwrap_or_else(|p| p.into_inner())
                .entry(extension.to_owned())
                .or_default()
                .push(at);
        }));
        let (stop_tx, stop_rx) = oneshot::channel::<()>();
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<Result<SocketAddr, String>>();
        let t = telemetry.clone();
        let thread = std::thread::Builder::new()
            .name("service".into())
            .spawn(move || run_thread(options, t, stop_rx, ready_tx))?;
        match ready_rx.recv_timeout(Duration::from_secs(60)) {
            Ok(Ok(addr)) => Ok(Service {
                telemetry,
                samples,
                receipts,
                stop: Some(stop_tx),
                thread: Some(thread),
                sip_addr: Some(addr),
                database_server,
            }),
            Ok(Err(e)) => Err(BenchError::setup(format!("service: {e}"))),
            Err(_) => Err(BenchError::setup("service did not start within 60 s")),
        }
    }

    /// The shared telemetry (`/status` and `/metrics` content).
    pub fn telemetry(&self) -> &Telemetry {
        &self.telemetry
    }

    /// The local SIP address.
    pub fn sip_addr(&self) -> Option<SocketAddr> {
        self.sip_addr
    }

    /// Every NOTIFY→Graph latency sample so far.
    pub fn latency_samples(&self) -> Vec<Duration> {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// When each NOTIFY arrived, per extension, in order.
    pub fn receipts(&self) -> HashMap<String, Vec<Instant>> {
        self.receipts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Drops the samples so far (after a warm-up).
    pub fn clear_samples(&self) {
        self.samples
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clear();
    }

    /// How many subscriptions are active (the `sip_subscriptions` gauge).
    pub fn active_subscriptions(&self) -> usize {
        self.telemetry
            .metrics_text()
            .lines()
            .find_map(|l| l.strip_prefix("sip_subscriptions{state=\"active\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// NOTIFYs taken in.
    pub fn notifies(&self) -> u64 {
        self.receipts
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .map(|v| v.len() as u64)
            .sum()
    }

    /// Stops the engine (clearing presences as at SIGTERM), un-subscribes and
    /// joins the runtime.
    pub fn stop(mut self) -> Result<(), BenchError> {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
        let result = match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(e))) => Err(BenchError::Peer(e)),
            Some(Err(_)) => Err(BenchError::Peer("service thread panicked".into())),
            _ => Ok(()),
        };
        drop(self.database_server.take());
        result
    }
}

/// For comparisons, `BENCH_DATABASE` adds the database sink beside Graph:
/// `sqlite` on a file beside the fixture's state file; `postgres` on a
/// private server this starts (returned, to be stopped after the service);
/// `postgres://…` on that database.
///
/// The private server is a peer like SIPp and the Graph emulator: when the
/// service has a core of its own, the server runs on the others (its
/// processes inherit the starting thread's cores), so that the figure
/// measures the service, not the server competing for its core.
fn with_database(options: &mut ServiceOptions) -> Result<Option<testbed::Postgres>, BenchError> {
    let Ok(database) = std::env::var("BENCH_DATABASE") else {
        return Ok(None);
    };
    let (url, server) = match database.as_str() {
        "sqlite" => {
            let state = options
                .env
                .iter()
                .find(|(k, _)| k == "PRESENCE_STATE_JSON")
                .map(|(_, v)| std::path::PathBuf::from(v))
                .ok_or_else(|| BenchError::setup("the fixture has no state file path"))?;
            let file = state.with_file_name("lines.db");
            let _ = std::fs::remove_file(&file);
            (format!("sqlite://{}", file.display()), None)
        }
        "postgres" => {
            let service_cpu = options.cpu;
            // Where the server runs (its processes inherit the starting
            // thread's core set and scheduling class): on the peers' core
            // (default), or with BENCH_POSTGRES_CORE=service-idle on the
            // service's core in Linux's idle class, where it only takes what
            // the service leaves and the emulator's core stays its own.
            let beside_service =
                std::env::var("BENCH_POSTGRES_CORE").as_deref() == Ok("service-idle");
            let server = std::thread::spawn(move || {
                if let Some(cpu) = service_cpu {
                    if beside_service {
                        crate::pin::pin_current_thread(cpu);
                        crate::pin::idle_class_for_current_thread();
                    } else {
                        crate::pin::pin_current_thread_off(cpu);
                    }
                }
                testbed::Postgres::start()
            })
            .join()
            .map_err(|_| BenchError::setup("starting PostgreSQL panicked"))?
            .map_err(|e| BenchError::setup(format!("PostgreSQL: {e}")))?;
            (server.url(), Some(server))
        }
        url => (url.to_owned(), None),
    };
    for (name, value) in [("SINKS", "graph,database"), ("DATABASE_URL", url.as_str())] {
        options.env.retain(|(k, _)| k != name);
        options.env.push((name.to_owned(), value.to_owned()));
    }
    Ok(server)
}

fn run_thread(
    options: ServiceOptions,
    telemetry: Telemetry,
    stop: oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<Result<SocketAddr, String>>,
) -> Result<(), String> {
    let cpu = options.cpu;
    if let Some(cpu) = cpu {
        crate::pin::pin_current_thread(cpu);
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(options.workers.max(1))
        .enable_all()
        .on_thread_start(move || {
            if let Some(cpu) = cpu {
                crate::pin::pin_current_thread(cpu);
            }
        })
        .build()
        .map_err(|e| e.to_string())?;
    let to_serve = ready.clone();
    let result = runtime.block_on(async move {
        // Spawned, so the work runs on the (pinned) workers, as in the binary.
        let task = tokio::spawn(serve(options, telemetry, stop, to_serve));
        match task.await {
            Ok(r) => r,
            Err(e) => Err(e.to_string()),
        }
    });
    if let Err(e) = &result {
        // A failure before start-up finished must still reach `start`.
        let _ = ready.send(Err(e.clone()));
    }
    result
}

async fn serve(
    options: ServiceOptions,
    telemetry: Telemetry,
    stop: oneshot::Receiver<()>,
    ready: std::sync::mpsc::Sender<Result<SocketAddr, String>>,
) -> Result<(), String> {
    let mut pairs = options.env.clone();
    // `run` serves its status page by default; the benchmarks read telemetry directly.
    if !pairs.iter().any(|(k, _)| k == "HTTP_LISTEN") {
        pairs.push(("HTTP_LISTEN".to_owned(), "off".to_owned()));
    }
    let env = Env::from_pairs(pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let mut plan = RunPlan::from_env(&env, false).map_err(|e| e.to_string())?;
    if let Some(budget) = options.budget {
        plan.set_request_budget(budget);
    }
    // For comparisons: NO_STATE_FILE=1 leaves the state file out (the
    // engine and Graph path alone); CALLS_IN_FLIGHT=N sets how many Graph
    // calls may be in flight at once (1: one turn at a time).
    if std::env::var_os("NO_STATE_FILE").is_some() {
        plan.without_state_file();
    }
    if let Some(n) = std::env::var("CALLS_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        plan.set_calls_in_flight(n);
    }
    // The same wiring as `sip-blf-sync run`: sources → engine → sinks.
    run_until_ready(
        plan,
        telemetry,
        async {
            let _ = stop.await;
        },
        move |addr| {
            let _ = ready.send(Ok(addr));
        },
    )
    .await
    .map_err(|e| e.to_string())
}

/// NOTIFY arrival → Graph request arrival at the emulator, with the NOTIFY's
/// arrival, for every presence operation the emulator logged (batch
/// sub-requests included): each is matched with the latest NOTIFY of its
/// extension that arrived before it.
pub fn graph_latencies(
    receipts: &HashMap<String, Vec<Instant>>,
    log: &[graph_emulator::LoggedRequest],
) -> Vec<(Instant, Duration)> {
    use graph_emulator::Operation;
    log.iter()
        .filter(|r| {
            matches!(
                r.operation,
                Operation::SetPresence | Operation::ClearPresence
            )
        })
        .filter_map(|r| {
            let id = r.path.split('/').skip_while(|s| *s != "users").nth(1)?;
            let ext = crate::fixture::extension(crate::fixture::index_of_object_id(id)?);
            let times = receipts.get(&ext)?;
            let i = times.partition_point(|t| *t <= r.at);
            let caused = times.get(i.checked_sub(1)?)?;
            Some((*caused, r.at.saturating_duration_since(*caused)))
        })
        .collect()
}

/// HTTP requests that carried presence operations: each `$batch` once, and
/// each operation sent on its own.
pub fn graph_requests(log: &[graph_emulator::LoggedRequest]) -> u64 {
    use graph_emulator::Operation;
    log.iter()
        .filter(|r| !r.in_batch)
        .filter(|r| {
            matches!(
                r.operation,
                Operation::SetPresence
                    | Operation::ClearPresence
                    | Operation::SetStatusMessage
                    | Operation::Batch
            )
        })
        .count() as u64
}
