//! SIPp phones: a callee that registers and answers, a caller that registers
//! and calls, both through Kamailio, each on its own free UDP port.

use std::fs;
use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::process::{find_program, run_dir, tail, Proc};
use crate::{account, Error, Kamailio, Result};

const REGISTER: &str = include_str!("../assets/sipp/register.xml");
const UAS: &str = include_str!("../assets/sipp/uas.xml");
const UAC: &str = include_str!("../assets/sipp/uac.xml");
const UAC_HELD: &str = include_str!("../assets/sipp/uac-held.xml");
const PUBLISH: &str = include_str!("../assets/sipp/publish.xml");

/// Lines of a SIPp log put into errors.
const ERROR_TAIL: usize = 40;
/// Deadline for one REGISTER (challenge + 200).
const REGISTER_TIMEOUT: Duration = Duration::from_secs(15);
/// Extra time allowed on top of the scripted ring/talk durations.
const SLACK: Duration = Duration::from_secs(30);
/// A held call hangs up by itself after this long (scenario timeout).
const HELD_MAX: Duration = Duration::from_secs(600);

/// One SIPp role: its run directory (scenario files, output) and port.
#[derive(Debug)]
pub(crate) struct Phone {
    pub(crate) user: String,
    password: &'static str,
    pbx: SocketAddr,
    pub(crate) local_ip: IpAddr,
    pub(crate) port: u16,
    pub(crate) dir: tempfile::TempDir,
}

impl Phone {
    /// A phone for `user` with its run directory and scenarios; no port yet.
    pub(crate) fn new(pbx: &Kamailio, user: &str) -> Result<Phone> {
        find_program("sipp")?;
        let password = account(user)
            .ok_or_else(|| Error::UnknownAccount(user.to_owned()))?
            .password;
        let dir = run_dir(&format!("sipp-{user}"))?;
        for (name, text) in [
            ("register.xml", REGISTER),
            ("uas.xml", UAS),
            ("uac.xml", UAC),
            ("uac-held.xml", UAC_HELD),
            ("publish.xml", PUBLISH),
        ] {
            fs::write(dir.path().join(name), text)
                .map_err(|e| Error::io(format!("writing {name}"), e))?;
        }
        Ok(Phone {
            user: user.to_owned(),
            password,
            pbx: pbx.sip_addr(),
            local_ip: pbx.sip_addr().ip(),
            port: 0,
            dir,
        })
    }

    /// Picks a free port and REGISTERs `user` from it (blocking; the role
    /// scenario is started next on the same port).
    pub(crate) fn register(pbx: &Kamailio, user: &str) -> Result<Phone> {
        let mut phone = Phone::new(pbx, user)?;
        let local_ip = phone.local_ip;
        let mut attempt = 0;
        loop {
            attempt += 1;
            phone.port = free_port(&[local_ip], false)?;
            let mut cmd = phone.sipp("register.xml", REGISTER_TIMEOUT)?;
            cmd.args(["-m", "1", "-key", "expires", "3600"]);
            phone.auth(&mut cmd);
            let log = phone.log("register");
            let mut proc = Proc::spawn(cmd, "sipp", &log)?;
            let outcome = match proc.wait_timeout(REGISTER_TIMEOUT + Duration::from_secs(5)) {
                Some(status) if status.success() => return Ok(phone),
                Some(status) => format!("exit {status}"),
                None => {
                    proc.stop(Duration::from_secs(2));
                    format!("no answer within {REGISTER_TIMEOUT:?}")
                }
            };
            if attempt < 4 && tail(&log, ERROR_TAIL).contains("Address already in use") {
                continue;
            }
            return Err(Error::Failed {
                what: format!("REGISTER of {user} with SIPp from port {}", phone.port),
                detail: outcome,
                tail: tail(&log, ERROR_TAIL),
                log,
            });
        }
    }

    pub(crate) fn log(&self, role: &str) -> PathBuf {
        self.dir.path().join(format!("{role}.out"))
    }

    /// `sipp <pbx> -i <ip> -p <port> -sf <scenario> -key user <user> ...`
    pub(crate) fn sipp(&self, scenario: &str, timeout: Duration) -> Result<Command> {
        let mut cmd = Command::new(find_program("sipp")?);
        cmd.current_dir(self.dir.path())
            .arg(self.pbx.to_string())
            .arg("-i")
            .arg(self.local_ip.to_string())
            .arg("-p")
            .arg(self.port.to_string())
            .arg("-sf")
            .arg(self.dir.path().join(scenario))
            .args(["-nostdin", "-timeout_error", "-timeout"])
            .arg(format!("{}s", timeout.as_secs().max(1)))
            .args(["-key", "user", &self.user]);
        Ok(cmd)
    }

    pub(crate) fn auth(&self, cmd: &mut Command) {
        cmd.args(["-au", &self.user, "-ap", self.password]);
    }
}

fn millis(d: Duration) -> String {
    d.as_millis().max(1).to_string()
}

/// Waits until the SIPp role has bound its UDP port (so it can take calls).
pub(crate) fn wait_bound(proc: &mut Proc, phone: &Phone, role: &str) -> Result<()> {
    let addr = SocketAddr::new(phone.local_ip, phone.port);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let status = proc.exited();
        if status.is_none() {
            match UdpSocket::bind(addr) {
                Err(e) if e.kind() == ErrorKind::AddrInUse => return Ok(()),
                _ => {}
            }
        }
        if status.is_some() || Instant::now() >= deadline {
            let log = phone.log(role);
            return Err(Error::NotReady {
                what: format!("SIPp {role} for {} on {addr}", phone.user),
                detail: match status {
                    Some(s) => format!("sipp exited ({s})"),
                    None => "port not bound within 10 s".to_owned(),
                },
                tail: tail(&log, ERROR_TAIL),
                log,
            });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends an INFO with `call_id` straight to the SIPp of `phone`: the trigger
/// its scenario waits for (`<recv request="INFO">`). No answer is awaited.
pub(crate) fn send_info(phone: &Phone, call_id: &str) -> Result<()> {
    let to = SocketAddr::new(phone.local_ip, phone.port);
    let sock = UdpSocket::bind(SocketAddr::new(phone.local_ip, 0))
        .map_err(|e| Error::io("binding the trigger socket", e))?;
    let me = sock
        .local_addr()
        .map_err(|e| Error::io("binding the trigger socket", e))?;
    let msg = format!(
        "INFO sip:{user}@{to} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {me};branch=z9hG4bK-testbed-trigger-{port}\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:testbed@{ip}>;tag=testbed-trigger\r\n\
             To: <sip:{user}@{ip}>\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 1 INFO\r\n\
             Content-Length: 0\r\n\r\n",
        user = phone.user,
        ip = phone.local_ip,
        port = me.port(),
    );
    sock.send_to(msg.as_bytes(), to)
        .map_err(|e| Error::io("sending the INFO trigger to SIPp", e))?;
    Ok(())
}

/// Waits for a SIPp role to finish successfully.
pub(crate) fn finish(proc: &mut Proc, what: String, log: PathBuf, timeout: Duration) -> Result<()> {
    match proc.wait_timeout(timeout) {
        Some(status) if status.success() => Ok(()),
        Some(status) => Err(Error::Failed {
            what,
            detail: format!("sipp {status}"),
            tail: tail(&log, ERROR_TAIL),
            log,
        }),
        None => {
            proc.stop(Duration::from_secs(2));
            Err(Error::Timeout { what, timeout })
        }
    }
}

/// A registered phone that answers `calls` incoming calls: `180 Ringing`,
/// rings for `ring`, `200 OK`, then waits for the BYE (SIPp `uas` scenario).
/// Stopped on `Drop` (SIGTERM by pid).
#[derive(Debug)]
pub struct SippCallee {
    phone: Phone,
    ring: Duration,
    proc: Proc,
}

impl SippCallee {
    /// REGISTERs `user` (one of [`crate::ACCOUNTS`]) from a free port and starts answering there.
    pub fn start(pbx: &Kamailio, user: &str, calls: u32, ring: Duration) -> Result<SippCallee> {
        let phone = Phone::register(pbx, user)?;
        // the whole run: every call rings, talks and hangs up within this
        let mut cmd = phone.sipp("uas.xml", HELD_MAX + SLACK)?;
        cmd.args(["-m", &calls.max(1).to_string(), "-d", &millis(ring)]);
        let mut proc = Proc::spawn(cmd, "sipp", &phone.log("uas"))?;
        wait_bound(&mut proc, &phone, "uas")?;
        Ok(SippCallee { phone, ring, proc })
    }

    /// The UDP port it registered from and answers on.
    pub fn port(&self) -> u16 {
        self.phone.port
    }

    /// How long each call rings before it is answered.
    pub fn ring(&self) -> Duration {
        self.ring
    }

    /// SIPp's output so far (last `n` lines).
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.phone.log("uas"), n)
    }

    /// Waits up to `timeout` for all its calls to end; error if one failed.
    pub fn wait(mut self, timeout: Duration) -> Result<()> {
        let what = format!("SIPp callee {}", self.phone.user);
        finish(&mut self.proc, what, self.phone.log("uas"), timeout)
    }
}

/// A registered phone that places one call through Kamailio: INVITE, digest
/// challenge, INVITE with credentials, 180, 200, ACK, talk, BYE (SIPp `uac`
/// scenario). Stopped on `Drop` (SIGTERM by pid).
#[derive(Debug)]
pub struct SippCaller {
    phone: Phone,
    proc: Proc,
    /// `Some(call-id)` for a held call that hangs up on [`SippCaller::hang_up`].
    held_call_id: Option<String>,
    talk: Option<Duration>,
}

impl SippCaller {
    /// REGISTERs `user` from a free port and calls `callee`; hangs up after `talk`.
    pub fn start(pbx: &Kamailio, user: &str, callee: &str, talk: Duration) -> Result<SippCaller> {
        Self::spawn(pbx, user, callee, Some(talk))
    }

    /// Like [`SippCaller::start`] but talks until [`SippCaller::hang_up`] (or 10 minutes).
    pub fn start_held(pbx: &Kamailio, user: &str, callee: &str) -> Result<SippCaller> {
        Self::spawn(pbx, user, callee, None)
    }

    fn spawn(
        pbx: &Kamailio,
        user: &str,
        callee: &str,
        talk: Option<Duration>,
    ) -> Result<SippCaller> {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        let phone = Phone::register(pbx, user)?;
        let (mut cmd, held_call_id) = match talk {
            Some(talk) => {
                let mut cmd = phone.sipp("uac.xml", talk + SLACK)?;
                cmd.args(["-d", &millis(talk)]);
                (cmd, None)
            }
            None => {
                let mut cmd = phone.sipp("uac-held.xml", HELD_MAX + SLACK)?;
                let tag = format!(
                    "held-{}-{}-{}",
                    std::process::id(),
                    phone.port,
                    SEQ.fetch_add(1, Ordering::Relaxed)
                );
                // call number 1 of this sipp: "%u" = 1, "%s" = local IP
                cmd.args(["-cid_str", &format!("{tag}-%u@%s")]);
                (cmd, Some(format!("{tag}-1@{}", phone.local_ip)))
            }
        };
        cmd.args(["-s", callee, "-m", "1"]);
        phone.auth(&mut cmd);
        let proc = Proc::spawn(cmd, "sipp", &phone.log("uac"))?;
        Ok(SippCaller {
            phone,
            proc,
            held_call_id,
            talk,
        })
    }

    /// The UDP port it registered and calls from.
    pub fn port(&self) -> u16 {
        self.phone.port
    }

    /// The Call-ID of a held call (`start_held`), known before the INVITE is sent.
    pub fn call_id(&self) -> Option<&str> {
        self.held_call_id.as_deref()
    }

    /// Makes a held call hang up now (BYE through Kamailio). The call must be
    /// established (answered), otherwise SIPp treats the trigger as unexpected.
    pub fn hang_up(&self) -> Result<()> {
        let Some(call_id) = &self.held_call_id else {
            return Err(Error::Failed {
                what: format!("hang-up of {}'s call", self.phone.user),
                detail: "not a held call (started with a talk time)".to_owned(),
                log: self.phone.log("uac"),
                tail: String::new(),
            });
        };
        send_info(&self.phone, call_id)
    }

    /// SIPp's output so far (last `n` lines).
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.phone.log("uac"), n)
    }

    /// Waits up to `timeout` for the call to end; error if it failed.
    pub fn wait(mut self, timeout: Duration) -> Result<()> {
        let what = format!("SIPp caller {}", self.phone.user);
        finish(&mut self.proc, what, self.phone.log("uac"), timeout)
    }

    fn default_timeout(&self) -> Duration {
        self.talk.unwrap_or(HELD_MAX) + SLACK
    }

    /// The run directory (scenarios, SIPp output).
    pub fn run_dir(&self) -> &Path {
        self.phone.dir.path()
    }
}

/// One call `caller` → `callee` through Kamailio, as the lab's `lab_call`:
/// the callee REGISTERs and answers after `ring`, the caller REGISTERs, calls
/// and hangs up after `talk`. Both SIPp processes are children of the test,
/// stopped on `Drop`.
///
/// Two concurrent calls to one extension: one [`SippCallee`] with `calls = 2`
/// and two [`SippCaller`]s (e.g. 1001 and 1003).
#[derive(Debug)]
pub struct SippCall {
    callee: SippCallee,
    caller: SippCaller,
}

impl SippCall {
    /// Registers both phones (own free ports) and starts the call; returns
    /// while it is in progress. Ends after about `ring + talk`.
    pub fn start(
        pbx: &Kamailio,
        caller: &str,
        callee: &str,
        ring: Duration,
        talk: Duration,
    ) -> Result<SippCall> {
        let callee_phone = SippCallee::start(pbx, callee, 1, ring)?;
        let caller = SippCaller::start(pbx, caller, callee, talk)?;
        Ok(SippCall {
            callee: callee_phone,
            caller,
        })
    }

    /// Like [`SippCall::start`], but the caller talks until [`SippCall::hang_up`].
    pub fn start_held(
        pbx: &Kamailio,
        caller: &str,
        callee: &str,
        ring: Duration,
    ) -> Result<SippCall> {
        let callee_phone = SippCallee::start(pbx, callee, 1, ring)?;
        let caller = SippCaller::start_held(pbx, caller, callee)?;
        Ok(SippCall {
            callee: callee_phone,
            caller,
        })
    }

    /// Hangs up a held call now (see [`SippCaller::hang_up`]).
    pub fn hang_up(&self) -> Result<()> {
        self.caller.hang_up()
    }

    /// The caller side.
    pub fn caller(&self) -> &SippCaller {
        &self.caller
    }

    /// The callee side.
    pub fn callee(&self) -> &SippCallee {
        &self.callee
    }

    /// Waits for the call to end (deadline: ring + talk + 30 s); `Ok` when
    /// both phones completed their scenario.
    pub fn wait(self) -> Result<()> {
        let timeout = self.callee.ring + self.caller.default_timeout();
        self.caller.wait(timeout)?;
        self.callee.wait(SLACK)
    }
}
