//! A SIPp web phone that receives status updates by SIP MESSAGE (RFC 3428)
//! through Kamailio: it REGISTERs an account, then checks and answers every
//! MESSAGE for it.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use crate::process::{tail, Proc};
use crate::sipp::{wait_bound, Phone};
use crate::{Error, Kamailio, Result};

const MESSAGE_UAS: &str = include_str!("../assets/sipp/message-uas.xml");

/// Lines of the SIPp output put into errors.
const ERROR_TAIL: usize = 40;
/// The scenario runs at most this long.
const MAX_RUN: Duration = Duration::from_secs(600);

/// A registered account (one of [`crate::ACCOUNTS`]) that takes every
/// MESSAGE sent to it: the scenario checks `Content-Type: application/json`
/// and the body `{"to":"all","type":"statusupdate","data":"<digits>"}` (SIPp
/// fails on anything else) and answers with the given status. Stopped on
/// `Drop`.
#[derive(Debug)]
pub struct SippMessageReceiver {
    phone: Phone,
    proc: Proc,
}

impl SippMessageReceiver {
    /// REGISTERs `user` from a free port and answers each MESSAGE there with
    /// `status` (200 to accept, e.g. 404 to refuse).
    pub fn start(pbx: &Kamailio, user: &str, status: u16) -> Result<SippMessageReceiver> {
        let phone = Phone::register(pbx, user)?;
        let scenario = MESSAGE_UAS.replace("@@STATUS@@", &status.to_string());
        std::fs::write(phone.dir.path().join("message-uas.xml"), scenario)
            .map_err(|e| Error::io("writing message-uas.xml", e))?;
        let mut cmd = phone.sipp("message-uas.xml", MAX_RUN)?;
        cmd.arg("-trace_logs")
            .arg("-log_file")
            .arg(updates_path(&phone));
        let mut proc = Proc::spawn(cmd, "sipp", &phone.log("message-uas"))?;
        wait_bound(&mut proc, &phone, "message-uas")?;
        Ok(SippMessageReceiver { phone, proc })
    }

    /// The SIP URI the MESSAGEs go to (`sip:<user>@<Kamailio's address>`).
    pub fn uri(&self, pbx: &Kamailio) -> String {
        format!("sip:{}@{}", self.phone.user, pbx.sip_addr())
    }

    /// The UDP port it registered from and answers on.
    pub fn port(&self) -> u16 {
        self.phone.port
    }

    /// The extension of each status update taken so far, in order.
    pub fn updates(&self) -> Vec<String> {
        std::fs::read_to_string(updates_path(&self.phone))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| l.split("statusupdate ").nth(1))
            .filter_map(|rest| rest.split_whitespace().next())
            .map(str::to_owned)
            .collect()
    }

    /// Waits until at least `count` status updates came; the error says
    /// which came (and SIPp's last lines when it failed a check).
    pub fn wait_for(&mut self, count: usize, timeout: Duration) -> Result<Vec<String>> {
        let deadline = Instant::now() + timeout;
        loop {
            let updates = self.updates();
            if updates.len() >= count {
                return Ok(updates);
            }
            let exited = self.proc.exited();
            if exited.is_some() || Instant::now() >= deadline {
                let log = self.phone.log("message-uas");
                return Err(Error::Failed {
                    what: format!("status updates for {}", self.phone.user),
                    detail: format!(
                        "{} of {count} came ({updates:?}){}",
                        updates.len(),
                        exited
                            .map(|s| format!("; sipp exited ({s})"))
                            .unwrap_or_default()
                    ),
                    tail: tail(&log, ERROR_TAIL),
                    log,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// SIPp's output so far (last `n` lines).
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.phone.log("message-uas"), n)
    }

    /// `true` while SIPp runs (it exits when a MESSAGE fails its checks).
    pub fn is_running(&mut self) -> bool {
        self.proc.exited().is_none()
    }
}

/// Where the scenario's `<log>` actions write (`-log_file`).
fn updates_path(phone: &Phone) -> PathBuf {
    phone.dir.path().join("status-updates.log")
}
