//! SIPp (`sip-tester`) as the notifier: an independent peer that answers
//! REGISTER and SUBSCRIBE and sends in-dialog NOTIFYs at a set rate
//! (`sipp/notifier.xml`), with its own count of what it sent and what was
//! answered (`-trace_counts`).

use std::net::{SocketAddr, UdpSocket};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::BenchError;

/// The scenario, with `@PAUSE_MIN_MS@`, `@PAUSE_MAX_MS@` and `@LOOPS@` to fill in.
pub const NOTIFIER_XML: &str = include_str!("../sipp/notifier.xml");

/// How the SIPp notifier runs.
#[derive(Debug, Clone, Copy)]
pub struct SippOptions {
    /// Subscriptions it will answer (one SIPp call each).
    pub subscriptions: usize,
    /// Mean pause between two NOTIFYs of one subscription; each pause is drawn
    /// uniformly from half to one and a half times this.
    pub mean_pause: Duration,
    /// Confirmed/terminated pairs per subscription after the initial NOTIFY
    /// (0: the initial NOTIFY only, and SIPp runs until stopped).
    pub loops: u32,
    /// Pin SIPp to this core (`taskset`).
    pub cpu: Option<usize>,
}

impl SippOptions {
    /// NOTIFYs per subscription: the initial one and two per loop.
    pub fn notifies_per_subscription(&self) -> u64 {
        1 + 2 * u64::from(self.loops)
    }
    /// The NOTIFY rate once every subscription is running.
    pub fn rate(&self) -> f64 {
        self.subscriptions as f64 / self.mean_pause.as_secs_f64()
    }
}

/// What SIPp counted (sums over every NOTIFY of the scenario).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SippCounts {
    /// SUBSCRIBEs received.
    pub subscribes: u64,
    /// NOTIFYs sent (first transmissions).
    pub notifies_sent: u64,
    /// NOTIFY retransmissions (no 200 within T1…).
    pub retransmissions: u64,
    /// NOTIFYs given up on (no 200 at all).
    pub timeouts: u64,
    /// 200s received for NOTIFYs.
    pub answered: u64,
    /// Messages SIPp did not expect.
    pub unexpected: u64,
}

impl SippCounts {
    /// NOTIFYs never answered.
    pub fn unanswered(&self) -> u64 {
        self.notifies_sent.saturating_sub(self.answered)
    }
}

/// A running SIPp notifier.
#[derive(Debug)]
pub struct SippNotifier {
    child: Child,
    dir: tempfile::TempDir,
    addr: SocketAddr,
    started: Instant,
}

impl SippNotifier {
    /// Starts SIPp on a free loopback port and waits until it listens.
    pub fn start(options: SippOptions) -> Result<SippNotifier, BenchError> {
        let dir = tempfile::Builder::new()
            .prefix("blf-bench-sipp-")
            .tempdir()?;
        let mean = options.mean_pause.as_millis().max(2);
        let xml = NOTIFIER_XML
            .replace("@PAUSE_MIN_MS@", &(mean / 2).to_string())
            .replace("@PAUSE_MAX_MS@", &(mean * 3 / 2).to_string())
            .replace("@LOOPS@", &options.loops.to_string());
        std::fs::write(dir.path().join("notifier.xml"), xml)?;
        let port = free_udp_port()?;
        let mut cmd = match options.cpu {
            Some(cpu) => {
                let mut c = Command::new("taskset");
                c.args(["-c", &cpu.to_string(), "sipp"]);
                c
            }
            None => Command::new("sipp"),
        };
        cmd.current_dir(dir.path())
            .args(["-sf", "notifier.xml", "-i", "127.0.0.1", "-p"])
            .arg(port.to_string())
            .args([
                "-t",
                "u1",
                "-nostdin",
                "-trace_counts",
                "-trace_err",
                "-fd",
                "1",
            ])
            // SIPp's own socket buffer (default 64 KiB) would drop the SUBSCRIBE burst.
            .args(["-buff_size", "4194304"])
            // Every subscription, plus the REGISTER; without NOTIFY loops it
            // keeps answering (a SUBSCRIBE retried after a time-out is a new call).
            .args([
                "-m",
                &if options.loops == 0 {
                    u32::MAX.to_string()
                } else {
                    (options.subscriptions + 1).to_string()
                },
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| {
            BenchError::setup(format!(
                "cannot run sipp ({e}); install it with scripts/install-peers.sh"
            ))
        })?;
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let deadline = Instant::now() + Duration::from_secs(10);
        // Bound once our own bind fails.
        while UdpSocket::bind(addr).is_ok() {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(BenchError::Peer(format!("sipp exited at start ({status})")));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(BenchError::Peer("sipp did not start listening".into()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Ok(SippNotifier {
            child,
            dir,
            addr,
            started: Instant::now(),
        })
    }

    /// Where it listens (the service's `SIP_SERVER`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Waits until SIPp has run every call (`-m`) and exited, up to `timeout`;
    /// returns whether it finished, and how long it ran.
    pub fn wait(&mut self, timeout: Duration) -> Result<(bool, Duration), BenchError> {
        let deadline = Instant::now() + timeout;
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok((true, self.started.elapsed()));
            }
            if Instant::now() > deadline {
                return Ok((false, self.started.elapsed()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops SIPp (SIGTERM first so it writes its final counts).
    pub fn stop(&mut self) {
        if self.child.try_wait().ok().flatten().is_some() {
            return;
        }
        if let Some(pid) = rustix::process::Pid::from_raw(self.child.id() as i32) {
            let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if self.child.try_wait().ok().flatten().is_some() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// The counts of the last statistics dump (every second, and at exit).
    pub fn counts(&self) -> Result<SippCounts, BenchError> {
        let file = self.counts_file()?;
        let text = std::fs::read_to_string(&file)?;
        parse_counts(&text).ok_or_else(|| {
            BenchError::Peer(format!("cannot read SIPp counts in {}", file.display()))
        })
    }

    fn counts_file(&self) -> Result<PathBuf, BenchError> {
        for entry in std::fs::read_dir(self.dir.path())? {
            let path = entry?.path();
            if path
                .file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.ends_with("_counts.csv"))
            {
                return Ok(path);
            }
        }
        Err(BenchError::Peer("SIPp wrote no counts file".into()))
    }

    /// The unexpected messages SIPp logged (for error reports).
    pub fn errors(&self) -> String {
        let mut out = String::new();
        if let Ok(dir) = std::fs::read_dir(self.dir.path()) {
            for entry in dir.flatten() {
                let path = entry.path();
                if path
                    .file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.ends_with("_errors.log"))
                {
                    let text = std::fs::read_to_string(&path).unwrap_or_default();
                    out.extend(text.chars().take(4000));
                }
            }
        }
        out
    }
}

impl Drop for SippNotifier {
    fn drop(&mut self) {
        self.stop();
    }
}

fn free_udp_port() -> Result<u16, BenchError> {
    let s = UdpSocket::bind("127.0.0.1:0")?;
    Ok(s.local_addr()?.port())
}

/// Sums the last row of a SIPp `-trace_counts` file: per scenario step,
/// `<n>_<MSG>_Sent`, `_Retrans`, `_Timeout`, `_Recv`, `_Unexp` columns.
pub fn parse_counts(text: &str) -> Option<SippCounts> {
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() < 2 {
        return None;
    }
    let header: Vec<&str> = lines.first()?.split(';').collect();
    let last: Vec<&str> = lines.last()?.split(';').collect();
    let mut c = SippCounts::default();
    for (name, value) in header.iter().zip(last.iter()) {
        let Ok(v) = value.trim().parse::<u64>() else {
            continue;
        };
        let name = name.trim();
        if name.ends_with("_Unexp") {
            c.unexpected += v;
        }
        if name.contains("_NOTIFY_") {
            if name.ends_with("_Sent") {
                c.notifies_sent += v;
            } else if name.ends_with("_Retrans") {
                c.retransmissions += v;
            } else if name.ends_with("_Timeout") {
                c.timeouts += v;
            }
        } else if name.contains("_SUBSCRIBE_") && name.ends_with("_Recv") {
            c.subscribes += v;
        } else if name.contains("_200_") && name.ends_with("_Recv") {
            c.answered += v;
        } else if name.contains("_200_") && name.ends_with("_Timeout") {
            // A NOTIFY whose 200 never came (retransmissions exhausted).
            c.timeouts += v;
        }
    }
    Some(c)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_from_the_last_row() {
        let text = "CurrentTime;ElapsedTime;0_REGISTER_Recv;1_SUBSCRIBE_Recv;2_200_Sent;\
                    3_NOTIFY_Sent;3_NOTIFY_Retrans;4_200_Recv;4_200_Timeout;4_200_Unexp;\
                    7_NOTIFY_Sent;8_200_Recv\n\
                    t;e;0;1;1;1;0;1;0;0;0;0\n\
                    t;e;1;10;10;10;2;9;1;0;10;10\n";
        let c = parse_counts(text).unwrap();
        assert_eq!(
            c,
            SippCounts {
                subscribes: 10,
                notifies_sent: 20,
                retransmissions: 2,
                timeouts: 1,
                answered: 19,
                unexpected: 0,
            }
        );
        assert_eq!(c.unanswered(), 1);
        assert_eq!(parse_counts("only;a;header\n"), None);
    }

    #[test]
    fn rate_and_notifies_per_subscription() {
        let o = SippOptions {
            subscriptions: 10_000,
            mean_pause: Duration::from_secs(5),
            loops: 3,
            cpu: None,
        };
        assert_eq!(o.notifies_per_subscription(), 7);
        assert_eq!(o.rate(), 2_000.0);
    }
}
