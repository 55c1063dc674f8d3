//! coturn as a STUN-only server (no TURN relay, no TLS/DTLS, no CLI).

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::kamailio::listening_in_netns;
use crate::ports::free_port;
use crate::process::{find_program, run_dir, tail, Proc};
use crate::{Error, Result};

const CONF: &str = include_str!("../assets/turnserver.conf");
const ERROR_TAIL: usize = 30;
const START_TIMEOUT: Duration = Duration::from_secs(15);

/// A STUN-only coturn on its own free port (UDP and TCP), stopped on `Drop`.
#[derive(Debug)]
pub struct Coturn {
    addr: SocketAddr,
    dir: tempfile::TempDir,
    proc: Option<Proc>,
}

impl Coturn {
    /// Starts coturn on `127.0.0.1:<free port>` and waits until it answers a
    /// STUN Binding request.
    pub fn start() -> Result<Coturn> {
        Self::start_on(IpAddr::V4(Ipv4Addr::LOCALHOST), None, None)
    }

    /// Starts coturn on `ip` (port: `port` or a free one), optionally inside
    /// network namespace `netns`.
    pub(crate) fn start_on(ip: IpAddr, port: Option<u16>, netns: Option<&str>) -> Result<Coturn> {
        let turnserver = find_program("turnserver")?;
        let dir = run_dir("coturn")?;
        let conf = dir.path().join("turnserver.conf");
        std::fs::write(&conf, CONF).map_err(|e| Error::io("writing turnserver.conf", e))?;
        let mut c = Coturn {
            addr: SocketAddr::new(ip, 0),
            dir,
            proc: None,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            c.addr.set_port(match port {
                Some(p) => p,
                None => free_port(&[ip], true)?,
            });
            let mut cmd = match netns {
                Some(ns) => {
                    let mut cmd = Command::new(find_program("ip")?);
                    cmd.args(["netns", "exec", ns]).arg(&turnserver);
                    cmd
                }
                None => Command::new(&turnserver),
            };
            let d = c.dir.path();
            // command-line options override the file's loopback defaults
            cmd.current_dir(d)
                .arg("-c")
                .arg(d.join("turnserver.conf"))
                .arg("--listening-ip")
                .arg(ip.to_string())
                .arg("--listening-port")
                .arg(c.addr.port().to_string())
                .arg("--pidfile")
                .arg(d.join("turnserver.pid"))
                .arg("--log-file")
                .arg(d.join("turnserver.log"))
                .arg("--userdb")
                .arg(d.join("turndb"))
                .arg("--no-stdout-log");
            let mut proc = Proc::spawn(cmd, "turnserver", &d.join("stdout.log"))?;
            match c.wait_ready(&mut proc, netns) {
                Ok(()) => {
                    c.proc = Some(proc);
                    return Ok(c);
                }
                Err(e) => {
                    proc.stop(Duration::from_secs(5));
                    let busy = c.log_tail(ERROR_TAIL).contains("Address already in use");
                    if !(busy && port.is_none() && attempt < 5) {
                        return Err(e);
                    }
                    let _ = std::fs::remove_file(c.log_path());
                }
            }
        }
    }

    fn wait_ready(&self, proc: &mut Proc, netns: Option<&str>) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = proc.exited() {
                return Err(self.not_ready(format!("turnserver exited during start-up ({status})")));
            }
            let ready = match netns {
                Some(ns) => {
                    listening_in_netns(ns, self.addr.port(), true)
                        && listening_in_netns(ns, self.addr.port(), false)
                }
                None => binding_request(self.addr, Duration::from_millis(200)).is_some(),
            };
            if ready {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!(
                    "no STUN answer on {} within {START_TIMEOUT:?}",
                    self.addr
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn not_ready(&self, detail: String) -> Error {
        Error::NotReady {
            what: format!("coturn on {}", self.addr),
            detail,
            log: self.log_path(),
            tail: self.log_tail(ERROR_TAIL),
        }
    }

    /// The STUN address (UDP and TCP).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The pid of turnserver, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// coturn's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("turnserver.log")
    }

    /// The last `n` lines of coturn's log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log_path(), n)
    }

    /// The run directory (config, log, pid file).
    pub fn run_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops coturn (SIGTERM, then SIGKILL after 5 s). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(5));
        }
    }
}

impl Drop for Coturn {
    fn drop(&mut self) {
        self.stop();
    }
}

/// One STUN Binding request (RFC 5389, no attributes) over UDP; the raw
/// response if a Binding success response with our transaction id comes back.
fn binding_request(to: SocketAddr, timeout: Duration) -> Option<Vec<u8>> {
    let local = SocketAddr::new(
        match to.ip() {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(_) => IpAddr::V6(std::net::Ipv6Addr::LOCALHOST),
        },
        0,
    );
    let sock = UdpSocket::bind(local).ok()?;
    let mut req = [0u8; 20];
    req[..2].copy_from_slice(&0x0001u16.to_be_bytes());
    req[4..8].copy_from_slice(&0x2112_A442u32.to_be_bytes());
    let id = std::process::id().to_be_bytes();
    req[8..12].copy_from_slice(&id);
    req[12..20].copy_from_slice(b"testbed!");
    sock.send_to(&req, to).ok()?;
    sock.set_read_timeout(Some(timeout)).ok()?;
    let mut buf = [0u8; 1500];
    let (len, from) = sock.recv_from(&mut buf).ok()?;
    let resp = buf.get(..len)?;
    (from == to && resp.get(..2) == Some(&[0x01, 0x01][..]) && resp.get(8..20) == req.get(8..20))
        .then(|| resp.to_vec())
}
