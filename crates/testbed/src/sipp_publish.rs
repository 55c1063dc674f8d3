//! A SIPp phone that PUBLISHes its own PIDF presence (RFC 3903,
//! `Event: presence`) to Kamailio: `open`, then `closed` when told to.

use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::process::{tail, Proc};
use crate::sipp::{finish, send_info, wait_bound, Phone};
use crate::{Error, Kamailio, Result};

/// Lines of the SIPp output put into errors.
const ERROR_TAIL: usize = 40;
/// The scenario waits this long for the trigger to publish `closed`.
const MAX_OPEN: Duration = Duration::from_secs(600);
/// Deadline for one PUBLISH (challenge + 200).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// A phone for one of [`crate::ACCOUNTS`] that has PUBLISHed
/// `<basic>open</basic>` for itself (digest-authenticated, `200 OK` with a
/// `SIP-ETag`). [`SippPublisher::publish_closed`] modifies that publication
/// to `<basic>closed</basic>` (`SIP-If-Match`). Stopped on `Drop`.
#[derive(Debug)]
pub struct SippPublisher {
    phone: Phone,
    proc: Proc,
    call_id: String,
}

impl SippPublisher {
    /// Starts SIPp on a free port and waits until Kamailio accepted the
    /// `open` PUBLISH of `user` (so every presence watcher of `user` has been
    /// sent a NOTIFY with it).
    pub fn publish_open(pbx: &Kamailio, user: &str) -> Result<SippPublisher> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let mut phone = Phone::new(pbx, user)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            phone.port = free_port(&[phone.local_ip], false)?;
            let tag = format!(
                "publish-{}-{}-{}",
                std::process::id(),
                phone.port,
                SEQ.fetch_add(1, Ordering::Relaxed)
            );
            let log = phone.log("publish");
            let mut cmd = phone.sipp("publish.xml", MAX_OPEN + PUBLISH_TIMEOUT)?;
            // call number 1 of this sipp: "%u" = 1, "%s" = local IP
            cmd.args(["-cid_str", &format!("{tag}-%u@%s"), "-m", "1"])
                .arg("-trace_logs")
                .arg("-log_file")
                .arg(progress_path(&phone));
            phone.auth(&mut cmd);
            let mut proc = Proc::spawn(cmd, "sipp", &log)?;
            match wait_bound(&mut proc, &phone, "publish") {
                Ok(()) => {}
                Err(_)
                    if attempt < 4 && tail(&log, ERROR_TAIL).contains("Address already in use") =>
                {
                    continue
                }
                Err(e) => return Err(e),
            }
            let mut publisher = SippPublisher {
                call_id: format!("{tag}-1@{}", phone.local_ip),
                phone,
                proc,
            };
            publisher.wait_progress("published open")?;
            return Ok(publisher);
        }
    }

    /// PUBLISHes `<basic>closed</basic>` for the same publication and waits
    /// until Kamailio accepted it and the scenario ended successfully.
    pub fn publish_closed(mut self) -> Result<()> {
        send_info(&self.phone, &self.call_id)?;
        self.wait_progress("published closed")?;
        let what = format!("SIPp PUBLISH of {}", self.phone.user);
        finish(
            &mut self.proc,
            what,
            self.phone.log("publish"),
            PUBLISH_TIMEOUT,
        )
    }

    /// The UDP port it publishes from.
    pub fn port(&self) -> u16 {
        self.phone.port
    }

    /// SIPp's output so far (last `n` lines).
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.phone.log("publish"), n)
    }

    /// Waits until the scenario logged `needle` after a `200 OK`; fails as
    /// soon as SIPp exits without it.
    fn wait_progress(&mut self, needle: &str) -> Result<()> {
        let deadline = Instant::now() + PUBLISH_TIMEOUT;
        loop {
            if std::fs::read_to_string(progress_path(&self.phone))
                .is_ok_and(|text| text.contains(needle))
            {
                return Ok(());
            }
            let exited = self.proc.exited();
            if exited.is_some() || Instant::now() >= deadline {
                let log = self.phone.log("publish");
                return Err(Error::Failed {
                    what: format!("PUBLISH of {} with SIPp ({needle:?})", self.phone.user),
                    detail: match exited {
                        Some(status) => format!("sipp exited ({status})"),
                        None => format!("not accepted within {PUBLISH_TIMEOUT:?}"),
                    },
                    tail: format!(
                        "{}\n{}",
                        tail(&log, ERROR_TAIL),
                        tail(&progress_path(&self.phone), ERROR_TAIL)
                    ),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Where the scenario's `<log>` actions write (`-log_file`).
fn progress_path(phone: &Phone) -> PathBuf {
    phone.dir.path().join("publish-progress.log")
}
