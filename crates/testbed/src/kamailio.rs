//! Kamailio as registrar + proxy + presence server (`dialog` event package,
//! and `presence` with the PIDF that phones PUBLISH).

use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::ports::free_port;
use crate::process::{find_program, run_dir, tail, Proc};
use crate::{Error, Result};

const CFG_TEMPLATE: &str = include_str!("../assets/kamailio.cfg.in");
const DBTEXT: [(&str, &str); 6] = [
    ("version", include_str!("../assets/dbtext/version")),
    ("subscriber", include_str!("../assets/dbtext/subscriber")),
    ("presentity", include_str!("../assets/dbtext/presentity")),
    (
        "active_watchers",
        include_str!("../assets/dbtext/active_watchers"),
    ),
    ("watchers", include_str!("../assets/dbtext/watchers")),
    ("pua", include_str!("../assets/dbtext/pua")),
];

/// Lines of the log put into start-up errors.
const ERROR_TAIL: usize = 30;

/// How Kamailio is started. `Default` = the lab's configuration on a free
/// port of 127.0.0.1, 407 challenges, MD5, presence `clean_period` 5 s.
#[derive(Debug, Clone)]
pub struct KamailioOptions {
    /// `-A SUB_CHALLENGE_401`: challenge SUBSCRIBE/INVITE with 401 instead of 407.
    pub sub_challenge_401: bool,
    /// `-A AUTH_SHA256`: `algorithm=SHA-256` digest challenges (RFC 8760).
    pub auth_sha256: bool,
    /// `-A PRES_MIN_EXPIRES=N`: presence `min_expires` (None = 0, no minimum).
    pub pres_min_expires: Option<u32>,
    /// `-A MIN_EXPIRES_ACTION=N`: 1 = `423` + `Min-Expires`, 2 = raise silently.
    pub min_expires_action: Option<u8>,
    /// `-A DUMMY_DIALOG`: presence_dialoginfo `force_dummy_dialog=1`.
    pub dummy_dialog: bool,
    /// `-A WITH_NAT`: `force_rport()` + `fix_nated_contact()` for UAs behind NAT.
    pub with_nat: bool,
    /// `-A WITH_IPV6`: also listen on `[::1]` (UDP and TCP, same port).
    pub with_ipv6: bool,
    /// Further raw `-A` defines (`NAME` or `NAME=value`).
    pub extra_defines: Vec<String>,
    /// Listen address, also the SIP domain and digest realm. Default 127.0.0.1.
    pub listen_ip: IpAddr,
    /// Fixed SIP port (UDP and TCP); `None` = a free one.
    pub port: Option<u16>,
    /// Presence `clean_period` in seconds (also drives expiry NOTIFYs). Default 5.
    pub clean_period: u32,
    /// Run inside this network namespace (`ip netns exec <name> kamailio ...`);
    /// the port then defaults to 5060, and readiness is checked with `ss`
    /// inside the namespace (see [`crate::NatLab::start_kamailio`]).
    pub netns: Option<String>,
    /// Deadline for Kamailio to answer after it was started. Default 15 s.
    pub start_timeout: Duration,
    /// Also listen for SIP over TLS (`-A WITH_TLS`), on a port of its own
    /// (5061 in a namespace), with this certificate and key (PEM files, e.g. from [`crate::TestPki`]).
    pub tls: Option<KamailioTls>,
}

/// The certificate of Kamailio's TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KamailioTls {
    /// PEM file of the server certificate (chain).
    pub certificate: PathBuf,
    /// PEM file of its private key.
    pub private_key: PathBuf,
    /// The tls module's `method`: `TLSv1.2+` by default; e.g. `TLSv1.1` for
    /// a PBX that speaks no version the client accepts.
    pub method: String,
    /// PEM file of the CA(s) whose client certificates are accepted. Set:
    /// every TLS client must show a certificate signed by one of them
    /// (`verify_certificate`, `require_certificate`, `ca_list`); `None`: no
    /// client certificate is asked for.
    pub client_ca: Option<PathBuf>,
}

impl Default for KamailioOptions {
    fn default() -> Self {
        KamailioOptions {
            sub_challenge_401: false,
            auth_sha256: false,
            pres_min_expires: None,
            min_expires_action: None,
            dummy_dialog: false,
            with_nat: false,
            with_ipv6: false,
            extra_defines: Vec::new(),
            listen_ip: IpAddr::V4(Ipv4Addr::LOCALHOST),
            port: None,
            clean_period: 5,
            netns: None,
            start_timeout: Duration::from_secs(15),
            tls: None,
        }
    }
}

impl KamailioOptions {
    /// The `-A` defines these options stand for.
    pub fn defines(&self) -> Vec<String> {
        let mut d = Vec::new();
        if self.sub_challenge_401 {
            d.push("SUB_CHALLENGE_401".to_owned());
        }
        if self.auth_sha256 {
            d.push("AUTH_SHA256".to_owned());
        }
        if let Some(n) = self.pres_min_expires {
            d.push(format!("PRES_MIN_EXPIRES={n}"));
        }
        if let Some(n) = self.min_expires_action {
            d.push(format!("MIN_EXPIRES_ACTION={n}"));
        }
        if self.dummy_dialog {
            d.push("DUMMY_DIALOG".to_owned());
        }
        if self.with_nat {
            d.push("WITH_NAT".to_owned());
        }
        if self.with_ipv6 {
            d.push("WITH_IPV6".to_owned());
        }
        if self.tls.is_some() {
            d.push("WITH_TLS".to_owned());
        }
        d.extend(self.extra_defines.iter().cloned());
        d
    }

    /// Sets `sub_challenge_401`.
    pub fn sub_challenge_401(mut self) -> Self {
        self.sub_challenge_401 = true;
        self
    }
    /// Sets `auth_sha256`.
    pub fn auth_sha256(mut self) -> Self {
        self.auth_sha256 = true;
        self
    }
    /// Sets presence `min_expires` and `min_expires_action`.
    pub fn min_expires(mut self, seconds: u32, action: u8) -> Self {
        self.pres_min_expires = Some(seconds);
        self.min_expires_action = Some(action);
        self
    }
    /// Sets `dummy_dialog`.
    pub fn dummy_dialog(mut self) -> Self {
        self.dummy_dialog = true;
        self
    }
    /// Sets `with_nat`.
    pub fn with_nat(mut self) -> Self {
        self.with_nat = true;
        self
    }
    /// Sets `with_ipv6`.
    pub fn with_ipv6(mut self) -> Self {
        self.with_ipv6 = true;
        self
    }
    /// Sets the presence `clean_period` (seconds, at least 1).
    pub fn clean_period(mut self, seconds: u32) -> Self {
        self.clean_period = seconds.max(1);
        self
    }
    /// Adds the TLS listener with the certificate and key of `pki`.
    pub fn with_tls(mut self, pki: &crate::TestPki) -> Self {
        self.tls = Some(KamailioTls {
            certificate: pki.cert_file(),
            private_key: pki.key_file(),
            method: "TLSv1.2+".to_owned(),
            client_ca: None,
        });
        self
    }
    /// Adds the TLS listener of [`KamailioOptions::with_tls`] and requires
    /// every TLS client to show a certificate signed by the CA of `pki`
    /// (e.g. [`crate::TestPki::client_cert_file`]).
    pub fn with_tls_client_certificates(self, pki: &crate::TestPki) -> Self {
        let mut opts = self.with_tls(pki);
        if let Some(tls) = opts.tls.as_mut() {
            tls.client_ca = Some(pki.ca_file());
        }
        opts
    }
    /// Sets a fixed port.
    pub fn port(mut self, port: u16) -> Self {
        self.port = Some(port);
        self
    }
    /// Sets the listen address.
    pub fn listen_ip(mut self, ip: IpAddr) -> Self {
        self.listen_ip = ip;
        self
    }
}

/// A running Kamailio of our own: fresh db_text state, own run directory
/// (`-Y`, ctl socket, db_text copy, log) and own port. Stopped on `Drop`.
#[derive(Debug)]
pub struct Kamailio {
    opts: KamailioOptions,
    port: u16,
    /// The TLS port (0 without TLS).
    tls_port: u16,
    dir: tempfile::TempDir,
    proc: Option<Proc>,
}

/// `host` as written in a SIP URI / Kamailio listen line.
fn uri_host(ip: IpAddr) -> String {
    match ip {
        IpAddr::V4(v4) => v4.to_string(),
        IpAddr::V6(v6) => format!("[{v6}]"),
    }
}

impl Kamailio {
    /// Starts Kamailio with fresh state on a free (or the fixed) port and waits
    /// until it answers on UDP and TCP.
    pub fn start(opts: KamailioOptions) -> Result<Kamailio> {
        let dir = run_dir("kamailio")?;
        let mut k = Kamailio {
            opts,
            port: 0,
            tls_port: 0,
            dir,
            proc: None,
        };
        let mut attempt = 0;
        loop {
            attempt += 1;
            k.port = match k.opts.port {
                Some(p) => p,
                // a namespace of the test's own has every port free
                None if k.opts.netns.is_some() => 5060,
                None => free_port(&k.listen_ips(), true)?,
            };
            if k.opts.tls.is_some() && k.opts.netns.is_some() {
                k.tls_port = 5061;
            } else if k.opts.tls.is_some() {
                k.tls_port = loop {
                    let p = free_port(&[k.opts.listen_ip], true)?;
                    if p != k.port {
                        break p;
                    }
                };
            }
            k.fresh_state()?;
            match k.launch() {
                Ok(()) => return Ok(k),
                // another process took the port between our check and Kamailio's bind
                Err(e)
                    if k.opts.port.is_none()
                        && k.opts.netns.is_none()
                        && attempt < 5
                        && k.bind_failed() =>
                {
                    eprintln!(
                        "testbed: Kamailio could not bind port {}, retrying: {e}",
                        k.port
                    );
                }
                Err(e) => return Err(e),
            }
        }
    }

    fn listen_ips(&self) -> Vec<IpAddr> {
        let mut ips = vec![self.opts.listen_ip];
        if self.opts.with_ipv6 && self.opts.listen_ip != IpAddr::V6(Ipv6Addr::LOCALHOST) {
            ips.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
        }
        ips
    }

    fn bind_failed(&self) -> bool {
        let t = tail(&self.log_path(), ERROR_TAIL);
        t.contains("Address already in use") || t.contains("bind(")
    }

    /// The SIP address (UDP and TCP).
    pub fn sip_addr(&self) -> SocketAddr {
        SocketAddr::new(self.opts.listen_ip, self.port)
    }

    /// `[::1]:<port>` when started with `with_ipv6`.
    pub fn sip_addr_v6(&self) -> Option<SocketAddr> {
        self.opts
            .with_ipv6
            .then(|| SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), self.port))
    }

    /// The SIP-over-TLS address, when started with [`KamailioOptions::tls`].
    pub fn tls_addr(&self) -> Option<SocketAddr> {
        self.opts
            .tls
            .is_some()
            .then(|| SocketAddr::new(self.opts.listen_ip, self.tls_port))
    }

    /// The SIP port (UDP and TCP).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// SIP domain and digest realm (the listen address, "127.0.0.1" by default).
    pub fn domain(&self) -> String {
        self.opts.listen_ip.to_string()
    }

    /// The options it was started with.
    pub fn options(&self) -> &KamailioOptions {
        &self.opts
    }

    /// The pid of the main Kamailio process, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// The run directory (config, db_text copy, ctl socket, log).
    pub fn run_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Kamailio's log file (stderr of every run of this instance).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("kamailio.log")
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log_path(), n)
    }

    /// The whole log so far.
    pub fn log(&self) -> String {
        String::from_utf8_lossy(&fs::read(self.log_path()).unwrap_or_default()).into_owned()
    }

    /// Waits until the log contains `needle` (e.g. `"LOCAL NOTIFY"`, logged
    /// by the config for every NOTIFY Kamailio sends); the deadline is a
    /// failure guard, the wait ends as soon as the line is there.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        while !self.log().contains(needle) {
            if Instant::now() >= deadline {
                return Err(Error::Timeout {
                    what: format!("{needle:?} in the Kamailio log"),
                    timeout,
                });
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(())
    }

    fn ctl_socket(&self) -> PathBuf {
        self.dir.path().join("kamailio_ctl")
    }

    /// Runs `kamcmd` against this instance (e.g. `&["ul.dump"]`, `&["dlg.list"]`)
    /// and returns its standard output.
    pub fn kamcmd(&self, args: &[&str]) -> Result<String> {
        let kamcmd = find_program("kamcmd")?;
        let out = Command::new(kamcmd)
            .arg("-s")
            .arg(format!("unix:{}", self.ctl_socket().display()))
            .args(args)
            .output()
            .map_err(|e| Error::io("running kamcmd", e))?;
        if !out.status.success() {
            return Err(Error::Failed {
                what: format!("kamcmd {}", args.join(" ")),
                detail: format!(
                    "{}: {}",
                    out.status,
                    String::from_utf8_lossy(&out.stderr).trim()
                ),
                log: self.log_path(),
                tail: self.log_tail(ERROR_TAIL),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Sends one SIP OPTIONS over UDP and waits up to `timeout` for a 200.
    pub fn ping(&self, timeout: Duration) -> Result<()> {
        if options_ping(self.sip_addr(), timeout) {
            Ok(())
        } else {
            Err(Error::Timeout {
                what: format!("OPTIONS to Kamailio at {}", self.sip_addr()),
                timeout,
            })
        }
    }

    /// Stops Kamailio (SIGTERM, then SIGKILL for it and its children after 10 s).
    /// db_text writes its tables at this shutdown. Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(10));
        }
    }

    /// Stops Kamailio, replaces the db_text tables with fresh ones (no
    /// subscriptions, no presentities; registrations and dialogs are in memory
    /// and go too) and starts it again on the same port: what a watcher sees
    /// after a PBX failover. Kamailio sends nothing on the way.
    pub fn restart_with_state_lost(&mut self) -> Result<()> {
        self.stop();
        self.fresh_state()?;
        self.relaunch_same_port()
    }

    /// Stops Kamailio gracefully (subscriptions written to db_text at
    /// shutdown) and starts it again on the same port with those tables:
    /// subscriptions survive, registrations (memory only) do not.
    pub fn restart_keeping_state(&mut self) -> Result<()> {
        self.stop();
        self.relaunch_same_port()
    }

    fn relaunch_same_port(&mut self) -> Result<()> {
        // the old sockets may take a moment to be released
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.launch() {
                Ok(()) => return Ok(()),
                Err(_) if Instant::now() < deadline && self.bind_failed() => {
                    eprintln!("testbed: port {} not released yet, retrying", self.port);
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Writes the templated config and a fresh copy of the db_text tables.
    fn fresh_state(&self) -> Result<()> {
        let dir = self.dir.path();
        let db = dir.join("dbtext");
        if db.exists() {
            fs::remove_dir_all(&db).map_err(|e| Error::io("removing old db_text tables", e))?;
        }
        fs::create_dir_all(&db).map_err(|e| Error::io("creating db_text directory", e))?;
        for (name, content) in DBTEXT {
            fs::write(db.join(name), content)
                .map_err(|e| Error::io(format!("writing db_text table {name}"), e))?;
        }
        let cfg = CFG_TEMPLATE
            .replace("@@SIP_HOST@@", &uri_host(self.opts.listen_ip))
            .replace("@@SIP_IP@@", &self.opts.listen_ip.to_string())
            .replace("@@SIP_PORT@@", &self.port.to_string())
            .replace("@@TLS_PORT@@", &self.tls_port.to_string())
            .replace(
                "@@CLEAN_PERIOD@@",
                &self.opts.clean_period.max(1).to_string(),
            );
        fs::write(dir.join("kamailio.cfg"), cfg)
            .map_err(|e| Error::io("writing kamailio.cfg", e))?;
        if let Some(tls) = &self.opts.tls {
            fs::write(self.tls_cfg_path(), tls_cfg(tls))
                .map_err(|e| Error::io("writing tls.cfg", e))?;
        }
        Ok(())
    }

    fn tls_cfg_path(&self) -> PathBuf {
        self.dir.path().join("tls.cfg")
    }

    /// Spawns Kamailio with the current config and waits until it is ready.
    fn launch(&mut self) -> Result<()> {
        let kamailio = find_program("kamailio")?;
        let dir = self.dir.path();
        let mut cmd = match &self.opts.netns {
            Some(ns) => {
                let mut c = Command::new(find_program("ip")?);
                c.args(["netns", "exec", ns]).arg(&kamailio);
                c
            }
            None => Command::new(&kamailio),
        };
        cmd.args(["-DD", "-E", "-m", "32", "-M", "8"])
            .arg("-Y")
            .arg(dir)
            .arg("-w")
            .arg(dir)
            .arg("-f")
            .arg(dir.join("kamailio.cfg"))
            .arg("-A")
            .arg(format!("DBURL=\"text://{}\"", dir.join("dbtext").display()))
            .arg("-A")
            .arg(format!("CTLSOCK=\"unix:{}\"", self.ctl_socket().display()))
            .arg("-A")
            .arg(format!("TLSCFG=\"{}\"", self.tls_cfg_path().display()))
            .current_dir(dir);
        for d in self.opts.defines() {
            cmd.arg("-A").arg(d);
        }
        let _ = fs::remove_file(self.ctl_socket());
        let log = self.log_path();
        let mut proc = Proc::spawn(cmd, "kamailio", &log)?;
        let started = Instant::now();
        let deadline = started + self.opts.start_timeout;
        loop {
            if let Some(status) = proc.exited() {
                return Err(self.not_ready(format!("Kamailio exited during start-up ({status})")));
            }
            if self.ready() {
                self.proc = Some(proc);
                return Ok(());
            }
            if Instant::now() >= deadline {
                proc.stop(Duration::from_secs(5));
                return Err(self.not_ready(format!(
                    "no answer on {} within {:?}",
                    self.sip_addr(),
                    self.opts.start_timeout
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn not_ready(&self, detail: String) -> Error {
        Error::NotReady {
            what: format!("Kamailio on {}", self.sip_addr()),
            detail,
            log: self.log_path(),
            tail: self.log_tail(ERROR_TAIL),
        }
    }

    /// Ready = ctl socket created, UDP answers OPTIONS (or, inside a
    /// namespace, UDP+TCP sockets are listening) and TCP accepts.
    fn ready(&self) -> bool {
        if !self.ctl_socket().exists() {
            return false;
        }
        match &self.opts.netns {
            Some(ns) => {
                listening_in_netns(ns, self.port, true)
                    && listening_in_netns(ns, self.port, false)
                    && (self.opts.tls.is_none() || listening_in_netns(ns, self.tls_port, false))
            }
            None => {
                let addrs = std::iter::once(self.sip_addr()).chain(self.sip_addr_v6());
                addrs.into_iter().all(|a| {
                    options_ping(a, Duration::from_millis(200))
                        && options_ping_tcp(a, Duration::from_millis(500))
                }) && self.tls_addr().is_none_or(|a| {
                    TcpStream::connect_timeout(&a, Duration::from_millis(200)).is_ok()
                })
            }
        }
    }
}

impl Drop for Kamailio {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Kamailio's `tls.cfg`: the certificate for every TLS connection, the
/// configured versions, and a client certificate required only with
/// `client_ca` (Kamailio 5.x names; OpenSSL refuses a missing or unknown one
/// in the handshake).
fn tls_cfg(tls: &KamailioTls) -> String {
    let client_auth = match &tls.client_ca {
        Some(ca) => format!(
            "verify_certificate = yes\nrequire_certificate = yes\nverify_depth = 3\nca_list = {}\n",
            ca.display()
        ),
        None => "verify_certificate = no\nrequire_certificate = no\n".to_owned(),
    };
    format!(
        "[server:default]\nmethod = {method}\n{client_auth}\
         private_key = {key}\ncertificate = {cert}\n\n\
         [client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n",
        key = tls.private_key.display(),
        cert = tls.certificate.display(),
        method = tls.method,
    )
}

/// Is something listening on `port` (UDP or TCP) inside namespace `ns`?
pub(crate) fn listening_in_netns(ns: &str, port: u16, udp: bool) -> bool {
    let Ok(ip) = find_program("ip") else {
        return false;
    };
    let Ok(ss) = find_program("ss") else {
        return false;
    };
    Command::new(ip)
        .args(["netns", "exec", ns])
        .arg(ss)
        .args(["-H", "-ln", if udp { "-u" } else { "-t" }])
        .arg(format!("sport = :{port}"))
        .output()
        .map(|o| o.status.success() && !o.stdout.trim_ascii().is_empty())
        .unwrap_or(false)
}

/// An OPTIONS request to `to` from `me` over `transport` ("UDP"/"TCP").
fn options_request(to: SocketAddr, me: SocketAddr, transport: &str) -> String {
    static SEQ: AtomicU64 = AtomicU64::new(1);
    let n = SEQ.fetch_add(1, Ordering::Relaxed);
    let host = uri_host(to.ip());
    format!(
        "OPTIONS sip:{host}:{port}{param} SIP/2.0\r\n\
         Via: SIP/2.0/{transport} {me};branch=z9hG4bK-testbed-{pid}-{n};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:testbed@{host}>;tag=tb{n}\r\n\
         To: <sip:{host}:{port}>\r\n\
         Call-ID: testbed-ping-{pid}-{n}@{host}\r\n\
         CSeq: 1 OPTIONS\r\n\
         Content-Length: 0\r\n\r\n",
        port = to.port(),
        pid = std::process::id(),
        param = if transport == "TCP" {
            ";transport=tcp"
        } else {
            ""
        },
    )
}

fn local_for(to: SocketAddr) -> SocketAddr {
    match to {
        SocketAddr::V4(_) => (Ipv4Addr::LOCALHOST, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::LOCALHOST, 0).into(),
    }
}

/// One SIP OPTIONS to `to` over UDP; true if a `200` comes back within `timeout`.
fn options_ping(to: SocketAddr, timeout: Duration) -> bool {
    let Ok(sock) = UdpSocket::bind(local_for(to)) else {
        return false;
    };
    let Ok(me) = sock.local_addr() else {
        return false;
    };
    let msg = options_request(to, me, "UDP");
    if sock.send_to(msg.as_bytes(), to).is_err() {
        return false;
    }
    let deadline = Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || sock.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match sock.recv_from(&mut buf) {
            Ok((len, from)) if from == to => {
                return buf
                    .get(..len)
                    .is_some_and(|b| b.starts_with(b"SIP/2.0 200"));
            }
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            // nothing listening yet: ICMP port unreachable surfaces as ECONNREFUSED
            Err(_) => return false,
        }
    }
}

/// One SIP OPTIONS to `to` over TCP; true if a `200` comes back within
/// `timeout`. A TCP answer needs Kamailio's TCP main and worker processes,
/// the last ones it forks: a plain connect is accepted by the kernel as soon
/// as the socket listens, before they exist.
fn options_ping_tcp(to: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut stream) = TcpStream::connect_timeout(&to, timeout) else {
        return false;
    };
    let Ok(me) = stream.local_addr() else {
        return false;
    };
    let msg = options_request(to, me, "TCP");
    if stream.write_all(msg.as_bytes()).is_err() {
        return false;
    }
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    while got.len() < 12 {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() || stream.set_read_timeout(Some(left)).is_err() {
            return false;
        }
        match stream.read(&mut buf) {
            Ok(0) => return false,
            Ok(n) => got.extend_from_slice(buf.get(..n).unwrap_or_default()),
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(_) => return false,
        }
    }
    got.starts_with(b"SIP/2.0 200")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_config_template_is_fully_substituted() {
        let mut k = Kamailio {
            opts: KamailioOptions::default().clean_period(2),
            port: 23456,
            tls_port: 0,
            dir: run_dir("kamailio-test").unwrap(),
            proc: None,
        };
        k.fresh_state().unwrap();
        let cfg = fs::read_to_string(k.run_dir().join("kamailio.cfg")).unwrap();
        assert!(!cfg.contains("@@"), "placeholder left");
        assert!(cfg.contains("listen=udp:127.0.0.1:23456"));
        assert!(cfg.contains(r#"alias="127.0.0.1:23456""#));
        assert!(cfg.contains(r#"modparam("pua", "outbound_proxy", "sip:127.0.0.1:23456")"#));
        assert!(cfg.contains(r#"modparam("presence", "clean_period", 2)"#));
        // the `presence` event (PIDF) is served, with no XCAP authorisation
        assert!(cfg.contains(r#"loadmodule "presence_xml.so""#));
        assert!(cfg.contains(r#"modparam("presence_xml", "force_active", 1)"#));
        assert!(!cfg.contains("5060\""), "no hard-coded 5060 in a string");
        let subscribers = fs::read_to_string(k.run_dir().join("dbtext/subscriber")).unwrap();
        for a in crate::ACCOUNTS {
            assert!(subscribers.contains(&format!(":{}:127.0.0.1:{}:", a.user, a.password)));
        }
        // IPv6 listen address: brackets in URIs and listen lines, bare in $si
        k.opts.listen_ip = IpAddr::V6(Ipv6Addr::LOCALHOST);
        k.fresh_state().unwrap();
        let cfg = fs::read_to_string(k.run_dir().join("kamailio.cfg")).unwrap();
        assert!(cfg.contains("listen=udp:[::1]:23456"));
        assert!(cfg.contains(r#"$si == "::1""#));
        k.port = 0;
    }

    #[test]
    fn options_map_to_the_lab_defines() {
        let o = KamailioOptions::default()
            .sub_challenge_401()
            .auth_sha256()
            .min_expires(60, 2)
            .dummy_dialog()
            .with_nat()
            .with_ipv6();
        assert_eq!(
            o.defines(),
            [
                "SUB_CHALLENGE_401",
                "AUTH_SHA256",
                "PRES_MIN_EXPIRES=60",
                "MIN_EXPIRES_ACTION=2",
                "DUMMY_DIALOG",
                "WITH_NAT",
                "WITH_IPV6"
            ]
        );
        assert!(KamailioOptions::default().defines().is_empty());
    }
}
