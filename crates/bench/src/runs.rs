//! The benchmarks themselves, one function per subcommand.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use blf::LineState;
use graph_emulator::{GraphEmulator, Operation, RateLimit};
use graph_presence::BudgetConfig;
use sip_blf_sync::engine::{run_engine, ChannelSource, EngineConfig, GraphSink, RunOptions};
use sip_blf_sync::observe::Telemetry;
use sip_blf_sync::settings::{self, Env};
use sip_blf_sync::sip_source::{LineChange, SourceEvent};

use crate::figures::{percentiles_ms, Figure, Report};
use crate::fixture::{self, graph_env, Fixture};
use crate::service::{Service, ServiceOptions};
use crate::sipp::{SippCounts, SippNotifier, SippOptions};
use crate::BenchError;

/// SUBSCRIBE pacing of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pacing {
    /// `SIP_SUBSCRIBE_RATE=0`: as fast as the notifier answers.
    Unlimited,
    /// The default, 50 new SUBSCRIBEs per second.
    Default,
}

/// A budget far above any load here, so the figure is the bridge's own (Graph's
/// real budget is the Graph-economy benchmark's subject).
fn unlimited_budget() -> BudgetConfig {
    BudgetConfig {
        requests: u32::MAX / 2,
        window: Duration::from_secs(1),
    }
}

/// The harness's own runtime (emulator, waiting): one worker, on the core the
/// service is not pinned to when there are two.
pub fn harness_runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    let other = other_core();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(move || {
            if let Some(cpu) = other {
                crate::pin::pin_current_thread(cpu);
            }
        })
        .build()?)
}

/// The core the harness and the peers use when the service has core 0.
fn other_core() -> Option<usize> {
    (crate::pin::cores() >= 2).then_some(1)
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Who sends the NOTIFYs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NotifierKind {
    /// SIPp (sip-tester) with `crates/bench/sipp/notifier.xml`: an independent peer.
    Sipp,
    /// This workspace's `sip-notifier`, driven by the harness at a set rate.
    Ours,
}

/// Where the latency run puts the service and its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cores {
    /// The service on core 0 (one runtime worker); the notifier, the Graph
    /// emulator and the harness on core 1, as peers on other machines would be.
    Split,
    /// Everything shares every core (the service with one worker per core).
    Shared,
}

/// One load run of the in-process service.
struct LoadRun {
    counts: SippCounts,
    taken_in: u64,
    /// Every NOTIFY's arrival at the service.
    arrivals: Vec<Instant>,
    /// Per Graph operation: the arrival of the NOTIFY that caused it, and
    /// the time from there to the request's arrival at the emulator.
    samples: Vec<(Instant, Duration)>,
    /// The engine's own part: line change seen → Graph call started.
    engine_samples: Vec<Duration>,
    /// HTTP requests that carried presence operations (a `$batch` counts once).
    graph_requests: u64,
    /// From the first NOTIFY of the load phase to the last, as they
    /// arrived at the service (each subscription's first NOTIFY is not load).
    load_time: Duration,
    /// Subscriptions active before the load.
    active: usize,
}

impl LoadRun {
    /// What the service and the emulator saw of a load that has ended.
    fn collect(
        service: &Service,
        emulator: &GraphEmulator,
        counts: SippCounts,
        load_time: Duration,
        active: usize,
    ) -> Self {
        let receipts = service.receipts();
        let log = emulator.requests();
        LoadRun {
            counts,
            taken_in: service.notifies(),
            arrivals: receipts.values().flatten().copied().collect(),
            samples: crate::service::graph_latencies(&receipts, &log),
            engine_samples: service.latency_samples(),
            graph_requests: crate::service::graph_requests(&log),
            load_time: load_span(&receipts).unwrap_or(load_time),
            active,
        }
    }

    /// Presence operations per HTTP request that carried them.
    fn operations_per_request(&self) -> f64 {
        self.samples.len() as f64 / self.graph_requests.max(1) as f64
    }

    fn lost(&self) -> u64 {
        self.counts.unanswered()
            + self.counts.timeouts
            + self.counts.notifies_sent.saturating_sub(self.taken_in)
    }
    fn sent_rate(&self, options: &SippOptions) -> f64 {
        let load = self
            .counts
            .notifies_sent
            .saturating_sub(options.subscriptions as u64);
        load as f64 / self.load_time.as_secs_f64().max(1e-3)
    }
}

fn load_run(
    rt: &tokio::runtime::Runtime,
    notifier: NotifierKind,
    n: usize,
    rate: f64,
    seconds: Duration,
    one_core: bool,
) -> Result<(LoadRun, SippOptions), BenchError> {
    match notifier {
        NotifierKind::Sipp => load_run_sipp(rt, n, rate, seconds, one_core),
        NotifierKind::Ours => load_run_ours(rt, n, rate, seconds, one_core),
    }
}

/// `sip-notifier` on the harness runtime; the harness changes lines round-robin
/// at `rate` (alternating a confirmed call and no call) for `seconds`.
fn load_run_ours(
    rt: &tokio::runtime::Runtime,
    n: usize,
    rate: f64,
    seconds: Duration,
    one_core: bool,
) -> Result<(LoadRun, SippOptions), BenchError> {
    use sip_notifier::{
        Account, DialogSpec, DialogState, Direction, NotifierConfig, NotifierServer,
    };
    let fixture = Fixture::new(n)?;
    let emulator = rt.block_on(fixture.emulator(None))?;
    let mut config = NotifierConfig::new("127.0.0.1", vec![Account::new("blf", "blf")])
        .with_extensions((0..n).map(fixture::extension));
    config.require_auth = false;
    config.notify_events = false;
    let notifier = rt
        .block_on(NotifierServer::start(
            config,
            SocketAddr::from(([127, 0, 0, 1], 0)),
        ))
        .map_err(|e| BenchError::setup(format!("sip-notifier: {e}")))?;
    let mut service_options = ServiceOptions::new(&fixture, &emulator, notifier.local_addr());
    service_options.budget = Some(unlimited_budget());
    if one_core {
        service_options.cpu = Some(0);
        service_options.workers = 1;
    }
    let service = Service::start(service_options)?;
    wait_until(
        Duration::from_secs(30) + Duration::from_millis(n as u64),
        || service.active_subscriptions() >= n,
    );
    let active = service.active_subscriptions();
    let stats = |h: &sip_notifier::NotifierHandle| rt.block_on(h.stats()).unwrap_or_default();
    // The initial NOTIFYs answered before the load starts.
    wait_until(Duration::from_secs(10), || {
        let s = stats(&notifier);
        s.notifies_answered + s.notifies_failed >= s.notifies_sent
    });
    let before = stats(&notifier);
    let load_start = Instant::now();
    let total = (rate * seconds.as_secs_f64()) as u64;
    rt.block_on(async {
        let mut tick = tokio::time::interval(Duration::from_millis(1));
        let mut done = 0u64;
        while done < total {
            tick.tick().await;
            let due = ((load_start.elapsed().as_secs_f64() * rate) as u64).min(total);
            while done < due {
                let i = (done % n as u64) as usize;
                let round = done / n as u64;
                let dialogs = if round % 2 == 0 {
                    vec![DialogSpec::new(
                        format!("call-{round}"),
                        Direction::Recipient,
                        DialogState::Confirmed,
                    )]
                } else {
                    Vec::new()
                };
                let _ = notifier.set_line(fixture::extension(i), dialogs);
                done += 1;
            }
        }
    });
    let load_time = load_start.elapsed();
    wait_until(Duration::from_secs(30), || {
        let s = stats(&notifier);
        s.notifies_answered + s.notifies_failed >= s.notifies_sent
            && service.notifies() >= s.notifies_sent
    });
    let after = stats(&notifier);
    let counts = SippCounts {
        subscribes: after.active_subscriptions as u64,
        notifies_sent: after.notifies_sent,
        // Those of the start-up burst are not the load's.
        retransmissions: after.retransmissions - before.retransmissions.min(after.retransmissions),
        timeouts: after.notifies_failed,
        answered: after.notifies_answered,
        unexpected: after.rejected,
    };
    let run = LoadRun::collect(&service, &emulator, counts, load_time, active);
    service.stop()?;
    let _ = rt.block_on(notifier.shutdown_within(Duration::from_secs(2)));
    let options = SippOptions {
        subscriptions: before.notifies_sent as usize,
        mean_pause: Duration::from_secs_f64(n as f64 / rate),
        loops: 0,
        cpu: None,
    };
    Ok((run, options))
}

/// SUBSCRIBEs per second of the service in the SIPp load runs.
const SUBSCRIBE_RATE: u32 = 1000;

fn load_run_sipp(
    rt: &tokio::runtime::Runtime,
    n: usize,
    rate: f64,
    seconds: Duration,
    one_core: bool,
) -> Result<(LoadRun, SippOptions), BenchError> {
    let fixture = Fixture::new(n)?;
    let emulator = rt.block_on(fixture.emulator(None))?;
    let mean_pause = Duration::from_secs_f64(n as f64 / rate);
    // Each call starts its NOTIFYs once subscribed, and the subscriptions
    // take n / SUBSCRIBE_RATE seconds: every call stays busy that much longer,
    // so that all of them send at once (the offered rate) for `seconds`.
    let ramp = n as f64 / f64::from(SUBSCRIBE_RATE);
    let loops =
        (((seconds.as_secs_f64() + ramp) / (2.0 * mean_pause.as_secs_f64())).ceil() as u32).max(1);
    let options = SippOptions {
        subscriptions: n,
        mean_pause,
        loops,
        cpu: if one_core { other_core() } else { None },
    };
    let mut sipp = SippNotifier::start(options)?;
    // Paced start: SIPp answers an unpaced burst of 10,000 SUBSCRIBEs too slowly,
    // and a SUBSCRIBE retransmitted meanwhile makes it abort that call.
    let mut service_options = ServiceOptions::new(&fixture, &emulator, sipp.addr())
        .set("SIP_SUBSCRIBE_RATE", &SUBSCRIBE_RATE.to_string());
    service_options.budget = Some(unlimited_budget());
    if one_core {
        service_options.cpu = Some(0);
        service_options.workers = 1;
    }
    let service = Service::start(service_options)?;
    wait_until(
        Duration::from_secs(30) + Duration::from_millis(n as u64),
        || service.active_subscriptions() >= n,
    );
    let active = service.active_subscriptions();
    let load_start = Instant::now();
    let expected = Duration::from_secs_f64(mean_pause.as_secs_f64() * 1.5 * 2.0 * f64::from(loops));
    // The load ends when SIPp has sent every NOTIFY (or stops sending).
    let target = options.notifies_per_subscription() * n as u64;
    let deadline = load_start + expected + Duration::from_secs(60);
    let mut last_sent = (0u64, load_start);
    let mut finished = false;
    while Instant::now() < deadline {
        if sipp.wait(Duration::from_millis(250))?.0 {
            finished = true;
            break;
        }
        let sent = sipp.counts().map(|c| c.notifies_sent).unwrap_or(0);
        if sent > last_sent.0 {
            last_sent = (sent, Instant::now());
        }
        if sent >= target || last_sent.1.elapsed() > Duration::from_secs(10) {
            break;
        }
    }
    let load_time = last_sent.1.saturating_duration_since(load_start);
    // Answers to the last NOTIFYs.
    std::thread::sleep(Duration::from_secs(2));
    sipp.stop();
    let counts = sipp.counts()?;
    // Let the service drain what it took in.
    let mut last = (u64::MAX, usize::MAX);
    wait_until(Duration::from_secs(30), || {
        let now = (service.notifies(), service.latency_samples().len());
        let settled = now == last && now.0 >= counts.notifies_sent;
        last = now;
        std::thread::sleep(Duration::from_millis(200));
        settled
    });
    let run = LoadRun::collect(&service, &emulator, counts, load_time, active);
    if counts.unexpected > 0 || !finished {
        tracing::warn!("sipp: {}", sipp.errors());
    }
    service.stop()?;
    drop(emulator);
    Ok((run, options))
}

/// First to last NOTIFY after each subscription's first (the initial state).
fn load_span(receipts: &std::collections::HashMap<String, Vec<Instant>>) -> Option<Duration> {
    let load = receipts.values().flat_map(|times| times.iter().skip(1));
    let first = load.clone().min()?;
    let last = load.max()?;
    Some(last.saturating_duration_since(*first))
}

/// Of a run's arrivals per second ([`per_second`]): the seconds that held
/// at least 90 % of the offered rate, and the median NOTIFYs per second in
/// them (the busiest second when none held).
fn held(bins: &[u64], rate: f64) -> (usize, f64) {
    let mut at_rate: Vec<u64> = bins
        .iter()
        .copied()
        .filter(|c| *c as f64 >= 0.9 * rate)
        .collect();
    at_rate.sort_unstable();
    match at_rate.get(at_rate.len() / 2) {
        Some(median) => (at_rate.len(), *median as f64),
        None => (0, bins.iter().max().copied().unwrap_or(0) as f64),
    }
}

/// Seconds over which [`sustained`] averages.
const SUSTAINED_SECONDS: usize = 5;

/// The highest mean NOTIFY rate over any [`SUSTAINED_SECONDS`] consecutive
/// seconds of arrivals per second ([`per_second`]).
fn sustained(bins: &[u64]) -> f64 {
    bins.windows(SUSTAINED_SECONDS.min(bins.len()).max(1))
        .map(|w| w.iter().sum::<u64>() as f64 / w.len() as f64)
        .fold(0.0, f64::max)
}

/// NOTIFY arrivals per second, from the first one.
fn per_second(arrivals: &[Instant]) -> Vec<u64> {
    let Some(first) = arrivals.iter().min() else {
        return Vec::new();
    };
    let mut bins = Vec::new();
    for t in arrivals {
        let i = t.saturating_duration_since(*first).as_secs() as usize;
        if bins.len() <= i {
            bins.resize(i + 1, 0);
        }
        if let Some(b) = bins.get_mut(i) {
            *b += 1;
        }
    }
    bins
}

/// Latency: NOTIFY received → Graph request sent, at `rate` NOTIFYs per second
/// over `n` extensions, debounce off.
pub fn latency(
    rt: &tokio::runtime::Runtime,
    notifier: NotifierKind,
    n: usize,
    rate: f64,
    seconds: Duration,
    cores: Cores,
) -> Result<Report, BenchError> {
    let (run, options) = load_run(rt, notifier, n, rate, seconds, cores == Cores::Split)?;
    let placement = match cores {
        Cores::Split => "service on core 0, notifier and Graph emulator on core 1".to_owned(),
        Cores::Shared => format!("everything sharing {} cores", crate::pin::cores()),
    };
    let mut report = Report::new(
        "latency",
        format!(
            "{n} extensions, {rate:.0} NOTIFY/s offered by {}, debounce off, {placement}",
            notifier_name(notifier),
        ),
    );
    report.push(Figure::new("subscriptions active", run.active as f64, ""));
    // SIPp's calls start as they are subscribed and pause at random, so the
    // rate ramps up and down around a plateau at the offered rate.
    let bins = per_second(&run.arrivals);
    let first = run.arrivals.iter().min().copied();
    let loaded = |at: &Instant| {
        first.is_some_and(|f| {
            let i = at.saturating_duration_since(f).as_secs() as usize;
            bins.get(i).is_some_and(|c| *c as f64 >= 0.9 * rate)
        })
    };
    let (seconds_held, rate_held) = held(&bins, rate);
    report.push(Figure::new(
        "seconds at >= 90 % of the offered rate",
        seconds_held as f64,
        "s",
    ));
    report.push(Figure::new("NOTIFY rate in those seconds", rate_held, "/s"));
    report.push(Figure::new(
        "NOTIFYs in the busiest second",
        bins.iter().max().copied().unwrap_or(0) as f64,
        "",
    ));
    report.push(Figure::new(
        "NOTIFY rate, whole load (ramps included)",
        run.sent_rate(&options),
        "/s",
    ));
    report.push(Figure::new(
        "Graph operations",
        run.samples.len() as f64,
        "",
    ));
    report.push(Figure::new(
        "operations per Graph HTTP request",
        run.operations_per_request(),
        "",
    ));
    let all: Vec<Duration> = run.samples.iter().map(|(_, d)| *d).collect();
    if let Some((p50, p99, max)) = percentiles_ms(&all) {
        report.push(Figure::new("p50", p50, "ms"));
        report.push(Figure::new("p99", p99, "ms").at_most(1.0));
        report.push(Figure::new("max", max, "ms"));
    }
    let plateau: Vec<Duration> = run
        .samples
        .iter()
        .filter(|(at, _)| loaded(at))
        .map(|(_, d)| *d)
        .collect();
    if let Some((_, p99, _)) = percentiles_ms(&plateau) {
        report.push(Figure::new("p99 in those seconds", p99, "ms").at_most(1.0));
    }
    if let Some((_, p99, _)) = percentiles_ms(&run.engine_samples) {
        report.push(Figure::new("p99 to the Graph call's start", p99, "ms"));
    }
    report.push(Figure::new(
        "NOTIFY retransmissions",
        run.counts.retransmissions as f64,
        "",
    ));
    report.push(Figure::new(
        "unexpected messages at the notifier",
        run.counts.unexpected as f64,
        "",
    ));
    report.lost_notifies = Some(run.lost());
    report.note(
        "from the NOTIFY's arrival at the service's SIP socket to the Graph request's arrival \
         at the emulator (batch sub-requests each count); \"to the Graph call's start\": to \
         the moment the engine hands the call to the Graph client",
    );
    Ok(report)
}

/// Throughput: the highest offered rate taken on one core with nothing lost.
pub fn throughput(
    rt: &tokio::runtime::Runtime,
    notifier: NotifierKind,
    n: usize,
    rates: &[f64],
    seconds: Duration,
) -> Result<Report, BenchError> {
    let mut report = Report::new(
        "throughput",
        format!(
            "{n} extensions, service pinned to one core, {} and Graph emulator on the other",
            notifier_name(notifier)
        ),
    );
    let mut best: Option<f64> = None;
    let mut lost_at_best = 0;
    let mut unclean_in_a_row = 0;
    let mut unclean_below_best = 0;
    for &rate in rates {
        let (run, _) = load_run(rt, notifier, n, rate, seconds, true)?;
        let bins = per_second(&run.arrivals);
        let (seconds_held, _) = held(&bins, rate);
        let sent = sustained(&bins);
        let lost = run.lost();
        let clean = lost == 0 && run.counts.retransmissions == 0;
        report.push(Figure::new(
            format!("offered {rate:.0}/s: NOTIFY rate, best {SUSTAINED_SECONDS} s"),
            sent,
            "/s",
        ));
        report.push(Figure::new(
            format!("offered {rate:.0}/s: seconds at >= 90 % of it"),
            seconds_held as f64,
            "s",
        ));
        report.push(Figure::new(
            format!("offered {rate:.0}/s: answered / sent"),
            run.counts.answered as f64 / (run.counts.notifies_sent.max(1)) as f64,
            "",
        ));
        report.push(Figure::new(
            format!("offered {rate:.0}/s: lost + retransmitted"),
            (lost + run.counts.retransmissions) as f64,
            "",
        ));
        report.push(Figure::new(
            format!("offered {rate:.0}/s: operations per Graph HTTP request"),
            run.operations_per_request(),
            "",
        ));
        if clean {
            if best.is_none_or(|b| sent > b) {
                best = Some(sent);
                lost_at_best = lost;
                unclean_below_best += unclean_in_a_row;
            }
            unclean_in_a_row = 0;
        } else {
            // One unclean rate between clean ones is the machine (a VM's stolen
            // time), not the service; two in a row end the climb.
            unclean_in_a_row += 1;
            if unclean_in_a_row == 2 {
                break;
            }
        }
    }
    report.push(Figure::new("highest clean rate", best.unwrap_or(0.0), "/s").at_least(10_000.0));
    report.push(Figure::new(
        "rates below it that were not clean",
        unclean_below_best as f64,
        "",
    ));
    report.lost_notifies = Some(lost_at_best);
    report.note(format!(
        "clean = every NOTIFY answered 200 at the first transmission and taken in by the \
         service; a rate is the highest mean over {SUSTAINED_SECONDS} consecutive seconds of \
         NOTIFYs arriving at the service; the climb goes on past one unclean rate and \
         stops at two in a row"
    ));
    Ok(report)
}

fn notifier_name(n: NotifierKind) -> &'static str {
    match n {
        NotifierKind::Sipp => "SIPp",
        NotifierKind::Ours => "sip-notifier",
    }
}

/// The service process: the `sip-blf-sync` binary beside this one when built,
/// else this binary's `serve` (the same `run` code).
fn service_command(service_bin: Option<PathBuf>) -> Result<Command, BenchError> {
    if let Some(bin) = service_bin {
        let mut c = Command::new(bin);
        c.arg("run");
        return Ok(c);
    }
    let me = std::env::current_exe()?;
    let beside = me.with_file_name("sip-blf-sync");
    if beside.is_file() {
        let mut c = Command::new(beside);
        c.arg("run");
        Ok(c)
    } else {
        let mut c = Command::new(me);
        c.arg("serve");
        Ok(c)
    }
}

/// A service process against a SIPp notifier and the Graph emulator.
struct ServiceProcess {
    child: Child,
    http: SocketAddr,
    started: Instant,
    program: String,
}

impl ServiceProcess {
    fn spawn(
        service_bin: Option<PathBuf>,
        fixture: &Fixture,
        emulator: &GraphEmulator,
        pbx: SocketAddr,
        pacing: Pacing,
    ) -> Result<Self, BenchError> {
        let http = SocketAddr::from(([127, 0, 0, 1], free_tcp_port()?));
        let mut cmd = service_command(service_bin)?;
        let program = cmd.get_program().to_string_lossy().into_owned();
        let options = ServiceOptions::new(fixture, emulator, pbx);
        cmd.env_clear()
            .envs(options.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .env("HTTP_LISTEN", http.to_string())
            .env("RUST_LOG", "warn")
            .current_dir(fixture.dir())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(fixture.dir().join("service.log"))?);
        if pacing == Pacing::Default {
            cmd.env_remove("SIP_SUBSCRIBE_RATE");
        }
        let started = Instant::now();
        let child = cmd.spawn()?;
        Ok(Self {
            child,
            http,
            started,
            program,
        })
    }

    /// Active subscriptions per `/metrics` (cheap to serve, unlike `/status`
    /// with 10,000 entries, so polling it does not slow the service down).
    fn active(&self) -> usize {
        let Ok(text) = http_get(self.http, "/metrics") else {
            return 0;
        };
        text.lines()
            .find_map(|l| l.strip_prefix("sip_subscriptions{state=\"active\"} "))
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn stop(&mut self) {
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        if !wait_until(Duration::from_secs(15), || {
            matches!(self.child.try_wait(), Ok(Some(_)))
        }) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            self.stop();
        }
    }
}

fn free_tcp_port() -> Result<u16, BenchError> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "GET {path} HTTP/1.0\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut body = String::new();
    s.read_to_string(&mut body)?;
    Ok(body
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default())
}

/// Brings up `n` subscriptions on a service process; returns it once all are
/// active (per `/status`), with the time that took.
fn bring_up(
    rt: &tokio::runtime::Runtime,
    n: usize,
    pacing: Pacing,
    service_bin: Option<PathBuf>,
) -> Result<
    (
        ServiceProcess,
        Duration,
        SippNotifier,
        GraphEmulator,
        Fixture,
    ),
    BenchError,
> {
    let fixture = Fixture::new(n)?;
    let emulator = rt.block_on(fixture.emulator(None))?;
    let sipp = SippNotifier::start(SippOptions {
        subscriptions: n,
        mean_pause: Duration::from_secs(1),
        loops: 0,
        cpu: None,
    })?;
    let mut service = ServiceProcess::spawn(service_bin, &fixture, &emulator, sipp.addr(), pacing)?;
    let limit = match pacing {
        Pacing::Unlimited => Duration::from_secs(120),
        Pacing::Default => Duration::from_secs(60 + n as u64 / 25),
    };
    let mut active = 0;
    let ok = wait_until(limit, || {
        active = service.active();
        active >= n || !service.alive()
    });
    let took = service.started.elapsed();
    if !ok || active < n {
        let log = std::fs::read_to_string(fixture.dir().join("service.log")).unwrap_or_default();
        return Err(BenchError::Peer(format!(
            "{}: {active} of {n} subscriptions active after {took:?}; log:\n{}",
            service.program,
            log.chars().take(3000).collect::<String>()
        )));
    }
    Ok((service, took, sipp, emulator, fixture))
}

/// Memory: VmRSS and VmHWM of the service process with each count of active subscriptions.
pub fn memory(
    rt: &tokio::runtime::Runtime,
    sizes: &[usize],
    service_bin: Option<PathBuf>,
) -> Result<Report, BenchError> {
    let mut report = Report::new(
        "memory",
        "the service process, every subscription active, idle lines",
    );
    let mut program = String::new();
    for &n in sizes {
        let (mut service, _, _sipp, _emu, _fixture) =
            bring_up(rt, n, Pacing::Unlimited, service_bin.clone())?;
        // Let the initial NOTIFYs settle.
        std::thread::sleep(Duration::from_secs(1));
        let m = crate::procfs::memory(service.child.id())
            .ok_or_else(|| BenchError::Peer("cannot read the service's /proc status".into()))?;
        let rss = m.rss_kib as f64 / 1024.0;
        let mut f = Figure::new(format!("VmRSS at {n} subscriptions"), rss, "MiB");
        if n >= 10_000 {
            f = f.at_most(64.0);
        }
        report.push(f);
        report.push(Figure::new(
            format!("VmHWM at {n} (peak)"),
            m.hwm_kib as f64 / 1024.0,
            "MiB",
        ));
        program = service.program.clone();
        service.stop();
    }
    report.lost_notifies = Some(0);
    report.note(format!("process: {program}"));
    Ok(report)
}

/// Start-up: process start → every subscription active.
pub fn startup(
    rt: &tokio::runtime::Runtime,
    n: usize,
    pacing: Pacing,
    service_bin: Option<PathBuf>,
) -> Result<Report, BenchError> {
    let (mut service, took, _sipp, _emu, _fixture) = bring_up(rt, n, pacing, service_bin)?;
    let name = match pacing {
        Pacing::Unlimited => "startup (pacing unlimited)",
        Pacing::Default => "startup (default pacing, 50/s)",
    };
    let mut report = Report::new(
        name,
        format!("{n} subscriptions, SIPp notifier on loopback"),
    );
    let mut f = Figure::new(format!("start to {n} active"), took.as_secs_f64(), "s");
    if pacing == Pacing::Unlimited {
        f = f.at_most(15.0);
    }
    report.push(f);
    report.lost_notifies = Some(0);
    report.note(format!("process: {}", service.program));
    service.stop();
    Ok(report)
}

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
                let state = if (k + round) % 2 == 0 {
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

const BODIES: &[&[u8]] = &[
    include_bytes!("../../blf/tests/fixtures/kamailio/busy_callee_confirmed.xml"),
    include_bytes!("../../blf/tests/fixtures/kamailio/ringing_two_calls_confirmed_early.xml"),
    include_bytes!("../../blf/tests/fixtures/asterisk-pjsip/idle_not_inuse.xml"),
    include_bytes!("../../blf/tests/fixtures/asterisk-pjsip/busy_inuse.xml"),
    include_bytes!("../../blf/tests/fixtures/freeswitch/ringing_incoming_early.xml"),
];

/// Parsing: `blf` bodies per second on one thread (the bodies of
/// `crates/blf/examples/bodies_per_second.rs`).
pub fn parse(duration: Duration) -> Report {
    let mut count = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration {
        for body in BODIES {
            let n = blf::Notification::parse(
                Some("application/dialog-info+xml"),
                std::hint::black_box(body),
            );
            std::hint::black_box(n.map(|n| n.line_state()).ok());
            count += 1;
        }
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    let mut report = Report::new(
        "parse",
        "blf dialog-info bodies (Kamailio, Asterisk, FreeSWITCH), one thread",
    );
    report.push(Figure::new("bodies parsed per second", rate, "/s"));
    report
}

/// `serve`: the service, as `sip-blf-sync run` runs it.
pub fn serve() -> ExitCode {
    let env = match Env::load(None) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = match sip_blf_sync::run::RunPlan::from_env(&env, false) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sip_blf_sync::run::run(plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
