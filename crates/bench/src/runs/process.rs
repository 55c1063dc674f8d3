//! The runs of a service process (memory, start-up): brought up against SIPp and the emulator.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use graph_emulator::GraphEmulator;

use super::{wait_until, Pacing};
use crate::figures::{Figure, Report};
use crate::fixture::Fixture;
use crate::service::ServiceOptions;
use crate::sipp::{SippNotifier, SippOptions};
use crate::BenchError;

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
