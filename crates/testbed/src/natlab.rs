//! A NAT between the service and its peers, made of network namespaces.
//!
//! ```text
//! [inside] svc0 198.51.100.10 -- lan0 198.51.100.1 [nat] wan0 203.0.113.1 -- pbx0 203.0.113.10 [outside]
//!          (the service; default route via the NAT)   (ip_forward, nft masquerade on wan0)   (Kamailio, coturn)
//! ```
//!
//! The addresses are RFC 5737 documentation ranges and exist only inside the
//! namespaces; the outside has no route back to the inside, like a server on
//! the internet. Everything is deleted on `Drop`.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::AsFd;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rustix::thread::{move_into_link_name_space, LinkNameSpaceType};

use crate::process::find_program;
use crate::{Coturn, Error, Kamailio, KamailioOptions, Result};

const INSIDE_IP: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 10);
const LAN_GW: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 1);
const PUBLIC_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 1);
const OUTSIDE_IP: Ipv4Addr = Ipv4Addr::new(203, 0, 113, 10);

/// Three network namespaces: the service inside, a masquerading NAT, and
/// the outside where Kamailio and coturn run. Names include the pid and a
/// counter, so labs of parallel tests do not meet. Deleted on `Drop`.
#[derive(Debug)]
pub struct NatLab {
    inside: String,
    nat: String,
    outside: String,
    created: Vec<String>,
}

/// Runs `ip <args>`; error with its stderr when it fails.
fn ip(args: &[&str]) -> Result<()> {
    run(Command::new(find_program("ip")?).args(args), None)
}

fn run(cmd: &mut Command, stdin: Option<&str>) -> Result<()> {
    let what = format!("{cmd:?}");
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped());
    let mut child = cmd
        .spawn()
        .map_err(|e| Error::io(format!("running {what}"), e))?;
    if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
        pipe.write_all(text.as_bytes())
            .map_err(|e| Error::io(format!("writing to {what}"), e))?;
    }
    let out = child
        .wait_with_output()
        .map_err(|e| Error::io(format!("running {what}"), e))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(Error::NetnsUnavailable(format!(
            "{what}: {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

fn unique_prefix() -> String {
    static SEQ: AtomicU64 = AtomicU64::new(0);
    format!(
        "tb-{}-{}",
        std::process::id(),
        SEQ.fetch_add(1, Ordering::Relaxed)
    )
}

impl NatLab {
    /// Whether network namespaces can be created here (root, `ip netns`
    /// works, `nft` and `sysctl` installed). Checked once per process.
    pub fn available() -> bool {
        Self::check().is_ok()
    }

    /// Like [`NatLab::available`], with the reason when not; tests print it
    /// and skip.
    pub fn check() -> Result<()> {
        static CHECK: OnceLock<std::result::Result<(), String>> = OnceLock::new();
        CHECK
            .get_or_init(|| {
                if !rustix::process::geteuid().is_root() {
                    return Err("not root (network namespaces need CAP_NET_ADMIN)".to_owned());
                }
                for program in ["ip", "nft", "sysctl"] {
                    find_program(program).map_err(|e| e.to_string())?;
                }
                let probe = format!("{}-probe", unique_prefix());
                ip(&["netns", "add", &probe]).map_err(|e| e.to_string())?;
                ip(&["netns", "del", &probe]).map_err(|e| e.to_string())
            })
            .clone()
            .map_err(Error::NetnsUnavailable)
    }

    /// Creates the namespaces, veth pairs, addresses, routes and the
    /// masquerade rule.
    pub fn create() -> Result<NatLab> {
        Self::check()?;
        let prefix = unique_prefix();
        let mut lab = NatLab {
            inside: format!("{prefix}-in"),
            nat: format!("{prefix}-nat"),
            outside: format!("{prefix}-out"),
            created: Vec::new(),
        };
        // on any error below, Drop deletes what was created
        for ns in [lab.inside.clone(), lab.nat.clone(), lab.outside.clone()] {
            ip(&["netns", "add", &ns])?;
            lab.created.push(ns.clone());
            ip(&["-n", &ns, "link", "set", "lo", "up"])?;
        }
        let (inside, nat, outside) = (&lab.inside, &lab.nat, &lab.outside);
        // each end is created directly in its namespace: no name in the root namespace
        ip(&[
            "link", "add", "svc0", "netns", inside, "type", "veth", "peer", "name", "lan0",
            "netns", nat,
        ])?;
        ip(&[
            "link", "add", "wan0", "netns", nat, "type", "veth", "peer", "name", "pbx0", "netns",
            outside,
        ])?;
        for (ns, dev, addr) in [
            (inside, "svc0", INSIDE_IP),
            (nat, "lan0", LAN_GW),
            (nat, "wan0", PUBLIC_IP),
            (outside, "pbx0", OUTSIDE_IP),
        ] {
            ip(&["-n", ns, "addr", "add", &format!("{addr}/24"), "dev", dev])?;
            ip(&["-n", ns, "link", "set", dev, "up"])?;
        }
        ip(&[
            "-n",
            inside,
            "route",
            "add",
            "default",
            "via",
            &LAN_GW.to_string(),
        ])?;
        run(
            lab.netns_command(nat, find_program("sysctl")?)
                .args(["-qw", "net.ipv4.ip_forward=1"]),
            None,
        )?;
        let rules = "table ip testbednat {\n\
                     \tchain post {\n\
                     \t\ttype nat hook postrouting priority srcnat; policy accept;\n\
                     \t\toifname \"wan0\" masquerade\n\
                     \t}\n\
                     }\n";
        run(
            lab.netns_command(nat, find_program("nft")?)
                .args(["-f", "-"]),
            Some(rules),
        )?;
        Ok(lab)
    }

    fn netns_command(&self, ns: &str, program: impl AsRef<OsStr>) -> Command {
        let ip = find_program("ip").unwrap_or_else(|_| "ip".into());
        let mut cmd = Command::new(ip);
        cmd.args(["netns", "exec", ns]).arg(program);
        cmd
    }

    /// Name of the inside namespace (the service's side).
    pub fn inside_ns(&self) -> &str {
        &self.inside
    }

    /// Name of the NAT namespace.
    pub fn nat_ns(&self) -> &str {
        &self.nat
    }

    /// Name of the outside namespace (Kamailio, coturn).
    pub fn outside_ns(&self) -> &str {
        &self.outside
    }

    /// The service's private address inside (198.51.100.10).
    pub fn inside_ip(&self) -> IpAddr {
        IpAddr::V4(INSIDE_IP)
    }

    /// The NAT's public (outside) address, what STUN reports (203.0.113.1).
    pub fn public_ip(&self) -> IpAddr {
        IpAddr::V4(PUBLIC_IP)
    }

    /// The address of the peers outside (203.0.113.10).
    pub fn outside_ip(&self) -> IpAddr {
        IpAddr::V4(OUTSIDE_IP)
    }

    /// Starts Kamailio in the outside namespace on [`NatLab::outside_ip`]
    /// (port `opts.port`, default 5060; set `opts.with_nat` for nathelper).
    /// It is not reachable from the root namespace: talk to it from inside.
    pub fn start_kamailio(&self, opts: KamailioOptions) -> Result<Kamailio> {
        Kamailio::start(KamailioOptions {
            listen_ip: self.outside_ip(),
            port: Some(opts.port.unwrap_or(5060)),
            netns: Some(self.outside.clone()),
            with_ipv6: false,
            ..opts
        })
    }

    /// Starts a STUN-only coturn in the outside namespace on
    /// [`NatLab::outside_ip`]:3478.
    pub fn start_coturn(&self) -> Result<Coturn> {
        Coturn::start_on(self.outside_ip(), Some(3478), Some(&self.outside))
    }

    /// A command that runs `program` in the inside namespace (`ip netns exec`).
    pub fn inside_command(&self, program: impl AsRef<OsStr>) -> Command {
        self.netns_command(&self.inside, program)
    }

    /// A command that runs `program` in the outside namespace.
    pub fn outside_command(&self, program: impl AsRef<OsStr>) -> Command {
        self.netns_command(&self.outside, program)
    }

    /// Runs `program args...` in the inside namespace and returns its output.
    pub fn run_inside<S: AsRef<OsStr>>(
        &self,
        program: impl AsRef<OsStr>,
        args: &[S],
    ) -> Result<Output> {
        self.inside_command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| Error::io("running a command inside the NAT", e))
    }

    /// Runs `f` on a new thread that has entered the inside namespace:
    /// sockets it creates (std or a tokio runtime built there) live inside,
    /// and stay there when handed back to other threads.
    pub fn in_inside<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce() -> T + Send + 'static,
    {
        let path = format!("/run/netns/{}", self.inside);
        let ns = File::open(&path).map_err(|e| Error::io(format!("opening {path}"), e))?;
        std::thread::spawn(move || {
            move_into_link_name_space(ns.as_fd(), Some(LinkNameSpaceType::Network))
                .map_err(|e| Error::io("entering the inside namespace", e.into()))?;
            Ok(f())
        })
        .join()
        .map_err(|_| {
            Error::io(
                "running in the inside namespace",
                std::io::Error::other("the closure panicked"),
            )
        })?
    }

    /// A UDP socket bound to `inside_ip:port` (0 = any port) in the inside
    /// namespace, usable from any thread (e.g. `tokio::net::UdpSocket::from_std`
    /// after `set_nonblocking(true)`).
    pub fn bind_udp_inside(&self, port: u16) -> Result<UdpSocket> {
        let addr = SocketAddr::new(self.inside_ip(), port);
        self.in_inside(move || UdpSocket::bind(addr))?
            .map_err(|e| Error::io(format!("binding {addr} inside"), e))
    }
}

impl Drop for NatLab {
    fn drop(&mut self) {
        for ns in self.created.drain(..).rev() {
            if let Err(e) = ip(&["netns", "del", &ns]) {
                eprintln!("testbed: could not delete namespace {ns}: {e}");
            }
        }
    }
}
