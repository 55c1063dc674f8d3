//! The load runs (latency, throughput): the in-process service under a NOTIFY load.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use graph_emulator::GraphEmulator;

use super::{notifier_name, other_core, unlimited_budget, wait_until, Cores, NotifierKind};
use crate::figures::{percentiles_ms, Figure, Report};
use crate::fixture::{self, Fixture};
use crate::service::{Service, ServiceOptions};
use crate::sipp::{SippCounts, SippNotifier, SippOptions};
use crate::BenchError;

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
    let service_options = ServiceOptions::new(&fixture, &emulator, notifier.local_addr());
    let service = start_subscribed(service_options, one_core, n)?;
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
                let dialogs = if round.is_multiple_of(2) {
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
    let service_options = ServiceOptions::new(&fixture, &emulator, sipp.addr())
        .set("SIP_SUBSCRIBE_RATE", &SUBSCRIBE_RATE.to_string());
    let service = start_subscribed(service_options, one_core, n)?;
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
    let stolen_before = crate::procfs::stolen();
    let (run, options) = load_run(rt, notifier, n, rate, seconds, cores == Cores::Split)?;
    let stolen = stolen_since(stolen_before);
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
    // For a look at the tail: one line per sample, "<ms since the first
    // NOTIFY> <latency ms>", to see whether slow ones come together.
    if let (Ok(path), Some(f)) = (std::env::var("BENCH_SAMPLES_FILE"), first) {
        let lines: String = run
            .samples
            .iter()
            .map(|(at, d)| {
                format!(
                    "{:.3} {:.3}\n",
                    at.saturating_duration_since(f).as_secs_f64() * 1e3,
                    d.as_secs_f64() * 1e3
                )
            })
            .collect();
        if let Err(e) = std::fs::write(&path, lines) {
            eprintln!("BENCH_SAMPLES_FILE={path}: {e}");
        }
    }
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
    if let Some(stolen) = stolen {
        report.push(Figure::new(
            "CPU time stolen by the hypervisor",
            stolen.as_secs_f64(),
            "s",
        ));
        if stolen > NOISY {
            report.note(format!(
                "the hypervisor took {:.1} s of CPU during the run: its tail says more of \
                 the host than of the service; run it again",
                stolen.as_secs_f64()
            ));
        }
    }
    report.lost_notifies = Some(run.lost());
    report.note(
        "from the NOTIFY's arrival at the service's SIP socket to the Graph request's arrival \
         at the emulator (batch sub-requests each count); \"to the Graph call's start\": to \
         the moment the engine hands the call to the Graph client",
    );
    Ok(report)
}

/// Stolen time above which a run's tail is the host's (a quiet run here
/// loses well under half a second).
const NOISY: Duration = Duration::from_secs(1);

/// The CPU time the hypervisor took since `before` (see [`crate::procfs::stolen`]).
fn stolen_since(before: Option<Duration>) -> Option<Duration> {
    crate::procfs::stolen()
        .zip(before)
        .map(|(after, before)| after.saturating_sub(before))
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
        let stolen_before = crate::procfs::stolen();
        let (run, _) = load_run(rt, notifier, n, rate, seconds, true)?;
        let stolen = stolen_since(stolen_before);
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
        if let Some(stolen) = stolen {
            report.push(Figure::new(
                format!("offered {rate:.0}/s: CPU time stolen by the hypervisor"),
                stolen.as_secs_f64(),
                "s",
            ));
        }
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

/// Starts the service with Graph's budget lifted (on core 0 alone with
/// `one_core`) and waits until its `n` subscriptions are active (or a
/// deadline that grows with `n` passes: the caller reports how many were).
fn start_subscribed(
    mut options: ServiceOptions,
    one_core: bool,
    n: usize,
) -> Result<Service, BenchError> {
    options.budget = Some(unlimited_budget());
    if one_core {
        options.cpu = Some(0);
        options.workers = 1;
    }
    let service = Service::start(options)?;
    wait_until(
        Duration::from_secs(30) + Duration::from_millis(n as u64),
        || service.active_subscriptions() >= n,
    );
    Ok(service)
}
