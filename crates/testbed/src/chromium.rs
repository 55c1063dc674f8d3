//! Headless Chromium through chromedriver (Debian's `chromium` and
//! `chromium-driver`): the driver on 127.0.0.1 and a free port, the browser
//! reaching nothing beyond loopback.

use std::io::{Read, Write};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use fantoccini::wd::Capabilities;
use serde_json::json;

use crate::ports::free_port;
use crate::process::{find_program, run_dir, tail, Proc};
use crate::{Error, Result};

const ERROR_TAIL: usize = 30;
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The window size of every browser: wide enough for a dashboard's table.
pub const WINDOW_SIZE: (u32, u32) = (1400, 900);

/// The proxy that every request not bound for loopback is sent to: the
/// discard port on 127.0.0.1, where nothing listens, so such a request fails
/// on this machine instead of leaving it.
pub const DEAD_PROXY: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9);

/// A chromedriver of our own on `127.0.0.1:<free port>` (and `[::1]`, same
/// port, when the machine has IPv6), with its log in a temporary run
/// directory; stopped by pid on `Drop`, together with every browser it
/// started.
///
/// It is started without `--allowed-ips` and `--allowed-origins`: either flag
/// makes chromedriver listen on every interface (it then only filters by the
/// peer's address), while without them it binds loopback alone.
#[derive(Debug)]
pub struct ChromeDriver {
    addr: SocketAddr,
    chromium: PathBuf,
    dir: tempfile::TempDir,
    proc: Option<Proc>,
}

impl ChromeDriver {
    /// Starts chromedriver and waits until `GET /status` says it is ready for
    /// new sessions. Fails with "chromedriver not found: run
    /// scripts/install-peers.sh" (or the same for `chromium`) when the
    /// packages are missing.
    pub fn start() -> Result<ChromeDriver> {
        let program = find_program("chromedriver")?;
        let chromium = find_program("chromium")?;
        let dir = run_dir("chromium")?;
        let mut driver = ChromeDriver {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            chromium,
            dir,
            proc: None,
        };
        // chromedriver binds [::1] as well as 127.0.0.1 when it can: the port
        // must be free on both
        let v6 = std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok();
        let mut ips = vec![IpAddr::V4(Ipv4Addr::LOCALHOST)];
        if v6 {
            ips.push(IpAddr::V6(Ipv6Addr::LOCALHOST));
        }
        let mut attempt = 0;
        loop {
            attempt += 1;
            driver.addr.set_port(free_port(&ips, true)?);
            let mut cmd = Command::new(&program);
            // the browsers inherit these: their crash reports and caches stay
            // in the run directory
            cmd.current_dir(driver.dir.path())
                .env("HOME", driver.dir.path())
                .env("XDG_CONFIG_HOME", driver.dir.path().join(".config"))
                .env("XDG_CACHE_HOME", driver.dir.path().join(".cache"))
                .arg(format!("--port={}", driver.addr.port()));
            let mut proc = Proc::spawn(cmd, "chromedriver", &driver.log_path())?;
            match driver.wait_ready(&mut proc) {
                Ok(()) => {
                    driver.proc = Some(proc);
                    return Ok(driver);
                }
                Err(e) => {
                    proc.stop(Duration::from_secs(5));
                    let busy = driver.log_tail(ERROR_TAIL).contains("already in use");
                    if !(busy && attempt < 5) {
                        return Err(e);
                    }
                    let _ = std::fs::remove_file(driver.log_path());
                }
            }
        }
    }

    fn wait_ready(&self, proc: &mut Proc) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = proc.exited() {
                return Err(
                    self.not_ready(format!("chromedriver exited during start-up ({status})"))
                );
            }
            if status_ready(self.addr, Duration::from_millis(500)) {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!(
                    "GET /status on {} did not say ready within {START_TIMEOUT:?}",
                    self.addr
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn not_ready(&self, detail: String) -> Error {
        Error::NotReady {
            what: format!("chromedriver on {}", self.addr),
            detail,
            log: self.log_path(),
            tail: self.log_tail(ERROR_TAIL),
        }
    }

    /// The WebDriver endpoint: `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The driver's address (TCP, loopback only).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The browser binary that sessions run (`chromium` from `PATH`, Debian's
    /// `/usr/bin/chromium`).
    pub fn chromium(&self) -> &Path {
        &self.chromium
    }

    /// The pid of chromedriver, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// The driver's log file (its stdout and stderr).
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("chromedriver.log")
    }

    /// The last `n` lines of the driver's log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log_path(), n)
    }

    /// The run directory (the log, and the browsers' profiles).
    pub fn run_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A new empty profile directory for one browser, inside the run directory.
    pub(crate) fn new_profile(&self) -> Result<tempfile::TempDir> {
        tempfile::Builder::new()
            .prefix("profile-")
            .tempdir_in(self.dir.path())
            .map_err(|e| Error::io("creating a browser profile directory", e))
    }

    /// Stops chromedriver and the browsers it started (SIGTERM, then SIGKILL
    /// after 5 s, by pid). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop(Duration::from_secs(5));
        }
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The W3C capabilities of a headless Chromium that reaches nothing beyond
/// loopback:
///
/// - `goog:chromeOptions.binary` = `chromium`; arguments `--headless=new`,
///   `--no-sandbox` (the tests run as root, where Chromium's sandbox refuses
///   to start; the pages are our own), `--disable-gpu`,
///   `--disable-dev-shm-usage`, `--user-data-dir=<user_data_dir>`,
///   `--window-size=1400,900` ([`WINDOW_SIZE`]);
/// - no network beyond loopback: every request goes to [`DEAD_PROXY`] (loopback
///   addresses bypass proxies in Chromium), every host name but `localhost`
///   resolves to nothing (`--host-resolver-rules`), WebRTC sends no UDP
///   outside the proxy, and the browser's own background traffic (updates,
///   safe browsing, sync, first-run pings) is off;
/// - `unhandledPromptBehavior` = `ignore`: an `alert()` stays open until a test
///   looks at it, instead of being dismissed by the next command;
/// - `timeouts`: a page load may take 60 s (not WebDriver's 300 s), a script 30 s.
pub fn headless_capabilities(chromium: &Path, user_data_dir: &Path) -> Capabilities {
    headless_capabilities_via(chromium, user_data_dir, DEAD_PROXY)
}

/// As [`headless_capabilities`], with every non-loopback request sent to
/// `proxy` instead of [`DEAD_PROXY`] (a test's listener, to see where such a
/// request would have gone).
pub fn headless_capabilities_via(
    chromium: &Path,
    user_data_dir: &Path,
    proxy: SocketAddr,
) -> Capabilities {
    let (w, h) = WINDOW_SIZE;
    let args = [
        "--headless=new".to_owned(),
        "--no-sandbox".to_owned(),
        "--disable-gpu".to_owned(),
        "--disable-dev-shm-usage".to_owned(),
        format!("--user-data-dir={}", user_data_dir.display()),
        format!("--window-size={w},{h}"),
        format!("--proxy-server=http://{proxy}"),
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]".to_owned(),
        "--force-webrtc-ip-handling-policy=disable_non_proxied_udp".to_owned(),
        "--disable-background-networking".to_owned(),
        "--disable-component-update".to_owned(),
        "--disable-sync".to_owned(),
        "--disable-extensions".to_owned(),
        "--disable-default-apps".to_owned(),
        "--no-first-run".to_owned(),
        "--no-default-browser-check".to_owned(),
        "--no-pings".to_owned(),
        "--metrics-recording-only".to_owned(),
        "--disable-features=OptimizationHints,MediaRouter,Translate,AutofillServerCommunication"
            .to_owned(),
    ];
    let value = json!({
        "browserName": "chrome",
        "unhandledPromptBehavior": "ignore",
        "timeouts": { "pageLoad": 60_000, "script": 30_000 },
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": args,
        },
    });
    match value {
        serde_json::Value::Object(map) => map,
        _ => Capabilities::new(),
    }
}

/// Does chromedriver at `addr` answer `GET /status` with `"ready": true`?
fn status_ready(addr: SocketAddr, timeout: Duration) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(&addr, timeout) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(timeout));
    let _ = s.set_write_timeout(Some(timeout));
    // chromedriver refuses HTTP/1.0
    let request = format!("GET /status HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    if s.write_all(request.as_bytes()).is_err() {
        return false;
    }
    // it keeps the connection open despite `Connection: close`: read the
    // head, then Content-Length bytes of body
    let mut response = Vec::new();
    let mut buf = [0u8; 4096];
    while response.len() < 1 << 16 && !complete(&response) {
        match s.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => response.extend_from_slice(&buf[..n]),
        }
    }
    parse_status(&response)
}

/// Has `response` its whole head and as much body as its Content-Length says?
fn complete(response: &[u8]) -> bool {
    let Some(end) = response.windows(4).position(|w| w == b"\r\n\r\n") else {
        return false;
    };
    let head = String::from_utf8_lossy(&response[..end]);
    let length = head.lines().find_map(|line| {
        let (name, value) = line.split_once(':')?;
        name.trim()
            .eq_ignore_ascii_case("content-length")
            .then(|| value.trim().parse::<usize>().ok())?
    });
    match length {
        Some(n) => response.len() >= end + 4 + n,
        // no length: the body ends when the connection does
        None => false,
    }
}

/// `"ready": true` in the JSON body of a `/status` response.
fn parse_status(response: &[u8]) -> bool {
    let text = String::from_utf8_lossy(response);
    let Some((head, body)) = text.split_once("\r\n\r\n") else {
        return false;
    };
    if !head.starts_with("HTTP/1.") || head.split_whitespace().nth(1) != Some("200") {
        return false;
    }
    // the JSON object, also when it comes in one chunk of a chunked body
    let json = match (body.find('{'), body.rfind('}')) {
        (Some(start), Some(end)) if start < end => &body[start..=end],
        _ => return false,
    };
    serde_json::from_str::<serde_json::Value>(json)
        .ok()
        .and_then(|v| {
            v.pointer("/value/ready")
                .and_then(serde_json::Value::as_bool)
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_is_ready_only_when_the_driver_says_so() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\r\n\
                   {\"value\":{\"message\":\"ChromeDriver ready for new sessions.\",\"ready\":true}}";
        assert!(parse_status(ok));
        let busy = b"HTTP/1.1 200 OK\r\n\r\n{\"value\":{\"ready\":false}}";
        assert!(!parse_status(busy));
        assert!(!parse_status(
            b"HTTP/1.1 500 Oops\r\n\r\n{\"value\":{\"ready\":true}}"
        ));
        assert!(!parse_status(b"HTTP/1.1 200 OK\r\n\r\nnot json"));
        assert!(!parse_status(b"garbage"));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n\
                        19\r\n{\"value\":{\"ready\":true}}\r\n0\r\n\r\n";
        assert!(parse_status(chunked));
    }

    #[test]
    fn a_response_is_complete_with_its_content_length() {
        let head = b"HTTP/1.1 200 OK\r\nContent-Length:4\r\nConnection:close\r\n\r\n";
        assert!(!complete(&head[..20]));
        assert!(!complete(head));
        assert!(!complete(&[&head[..], b"{}"].concat()));
        assert!(complete(&[&head[..], b"{  }"].concat()));
        assert!(!complete(b"HTTP/1.1 200 OK\r\n\r\n{}"));
    }

    #[test]
    fn capabilities_keep_the_browser_headless_and_on_loopback() {
        let caps = headless_capabilities(Path::new("/usr/bin/chromium"), Path::new("/tmp/p"));
        assert_eq!(caps["unhandledPromptBehavior"], "ignore");
        assert_eq!(caps["timeouts"]["pageLoad"], 60_000);
        let opts = &caps["goog:chromeOptions"];
        assert_eq!(opts["binary"], "/usr/bin/chromium");
        let args: Vec<&str> = opts["args"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| a.as_str().unwrap())
            .collect();
        for want in [
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--user-data-dir=/tmp/p",
            "--window-size=1400,900",
            "--proxy-server=http://127.0.0.1:9",
            "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE localhost, EXCLUDE 127.0.0.1, EXCLUDE [::1]",
        ] {
            assert!(args.contains(&want), "{want} missing from {args:?}");
        }
        // nothing may put loopback behind the proxy or let other hosts bypass it
        assert!(!args.iter().any(|a| a.starts_with("--proxy-bypass-list")));
    }
}
