//! `sip-blf-sync check` as a user runs it: against a real Kamailio and the
//! Graph emulator, and without peers for what needs none (configuration
//! problems, an unreachable PBX, the JSON shape).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::output_text;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use graph_emulator::{EmulatorConfig, GraphEmulator};
use testbed::{Kamailio, KamailioOptions, SippCall};

/// What the binary was given: SIP settings, an extension list, maybe a tenant.
struct Check {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
}

impl Check {
    /// A fresh working directory with `config/extensions.csv` holding `csv`.
    fn new(csv: &str) -> Check {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join("config/extensions.csv"), csv).unwrap();
        Check {
            dir,
            vars: Vec::new(),
        }
    }

    fn var(mut self, k: &str, v: &str) -> Check {
        self.vars.push((k.into(), v.into()));
        self
    }

    fn pbx(self, server: &str, password: &str) -> Check {
        self.var("SIP_SERVER", server)
            .var("SIP_USERNAME", "blf")
            .var("SIP_PASSWORD", password)
            // Any free loopback port, not the default 5060.
            .var("SIP_LISTEN", "127.0.0.1:0")
    }

    /// Writes `text` to `.env` in the working directory (read by default).
    fn dotenv(self, text: &str) -> Check {
        std::fs::write(self.dir.path().join(".env"), text).unwrap();
        self
    }

    fn tenant(self, emu: &GraphEmulator) -> Check {
        let c = emu.config().clone();
        self.var("AZURE_TENANT_ID", &c.tenant_id)
            .var("AZURE_CLIENT_ID", &c.client_id)
            .var("AZURE_CLIENT_SECRET", &c.client_secret)
            .var("AZURE_AUTHORITY_HOST", &emu.authority_url())
            .var("GRAPH_BASE_URL", &emu.base_url())
    }

    fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"));
        // Only what the test sets: nothing from the machine's environment.
        cmd.arg("check")
            .args(args)
            .current_dir(self.dir.path())
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        cmd
    }

    /// Runs the binary off the runtime, so that an in-process emulator answers.
    async fn run(&self, args: &[&str]) -> Output {
        let mut cmd = self.command(args);
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    fn run_blocking(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }
}

/// The table row of `extension` (its first cell).
fn row<'a>(out: &'a str, extension: &str) -> &'a str {
    out.lines()
        .find(|l| l.split_whitespace().next() == Some(extension))
        .unwrap_or_else(|| panic!("no row for {extension} in:\n{out}"))
}

fn json(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("stdout is not one JSON object ({e}):\n{}", output_text(out)))
}

/// A loopback port where nothing answers: over UDP a socket that never
/// reads, over TCP a socket bound without listening (connections are
/// refused). Both stay bound while the guard lives, so that no other process
/// can take the port in between, as it could after a probe socket was closed.
struct ClosedPort {
    port: u16,
    _udp: std::net::UdpSocket,
    _tcp: tokio::net::TcpSocket,
}

fn closed_port() -> ClosedPort {
    // The UDP port's TCP twin may be taken (another test's connection):
    // then another port.
    for _ in 0..100 {
        let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        let addr = udp.local_addr().unwrap();
        let tcp = tokio::net::TcpSocket::new_v4().unwrap();
        if tcp.bind(addr).is_ok() {
            return ClosedPort {
                port: addr.port(),
                _udp: udp,
                _tcp: tcp,
            };
        }
    }
    panic!("no loopback port free over both UDP and TCP in 100 tries")
}

// ---------------------------------------------------------------- no peers

#[test]
fn configuration_problems_are_reported_all_at_once_before_connecting() {
    let c = Check::new("extension,email\n1001,alice@contoso.com\n1002,\n")
        .var("SIP_TRANSPORT", "sctp")
        .var("HTTP_LISTEN", "not-an-address")
        .var("AZURE_TENANT_ID", "contoso.onmicrosoft.com");
    let out = c.run_blocking(&[]);
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        out.stdout.is_empty(),
        "no table before the settings are right: {all}"
    );
    for needle in [
        "SIP_SERVER: is not set",
        "SIP_USERNAME: is not set",
        "SIP_PASSWORD: is not set",
        "SIP_TRANSPORT: \"sctp\" is not supported",
        "config/extensions.csv:3:",
        "HTTP_LISTEN",
        "AZURE_CLIENT_ID: is not set",
        "AZURE_CLIENT_SECRET: is not set",
    ] {
        assert!(all.contains(needle), "missing {needle:?} in:\n{all}");
    }
}

#[test]
fn a_silent_pbx_is_named_within_the_timeout() {
    let closed = closed_port();
    let port = closed.port;
    let c = Check::new("1001,alice@contoso.com\n1002,bob@contoso.com\n")
        .pbx(&format!("127.0.0.1:{port}"), "blfsecret");
    let started = Instant::now();
    let out = c.run_blocking(&["--timeout", "1"]);
    let took = started.elapsed();
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    // 1 s of waiting, at most 3 s of un-registering, and slack for a slow machine.
    assert!(took < Duration::from_secs(8), "took {took:?}:\n{all}");
    assert!(
        all.contains(&format!(
            "SIP:   FAILED: no answer from the PBX at 127.0.0.1:{port} (udp) within 1 s"
        )),
        "{all}"
    );
    assert!(all.contains("check SIP_SERVER and SIP_TRANSPORT"), "{all}");
    // Where the PBX must reach this machine: the socket opened, the port to forward.
    let contact = all
        .lines()
        .find(|l| l.starts_with("Contact: this machine listens on 127.0.0.1:"))
        .unwrap_or_else(|| panic!("no Contact line in:\n{all}"));
    assert!(
        contact.contains("(udp)") && contact.contains("forward UDP port"),
        "{contact}"
    );
    for ext in ["1001", "1002"] {
        let r = row(&all, ext);
        assert!(r.contains("PBX unreachable"), "{r}");
        assert!(r.contains("not configured (dry run)"), "{r}");
    }
    assert!(
        all.contains("2 extension(s) checked: 0 ok, 2 failed"),
        "{all}"
    );
}

#[test]
fn a_bad_dotenv_line_names_file_line_and_variable_but_never_the_value() {
    let secret = "Xy9~Q8 sR7.kLm";
    let closed = closed_port();
    let c = Check::new("1001,alice@contoso.com\n").dotenv(&format!(
        "# PBX\nSIP_SERVER=127.0.0.1:{}\nNOTE=\"a value\non two lines\"\n\nexport SIP_USERNAME=blf\n\
         SIP_PASSWORD=\"{secret}\nSIP_LISTEN=127.0.0.1:0\n",
        closed.port
    ));
    let out = c.run_blocking(&["--timeout", "1"]);
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(!all.contains("Xy9") && !all.contains("sR7"), "{all}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(".env:7: SIP_PASSWORD: "), "{err}");
    assert!(err.contains("SIP_PASSWORD=\"...\""), "{err}");
}

#[test]
fn an_unquoted_dotenv_value_with_a_space_is_read_whole_and_never_shown() {
    // python-dotenv (the original tool's loader) reads it whole: so do we.
    let secret = "Xy9~Q8 sR7.kLm";
    let closed = closed_port();
    let c = Check::new("1001,alice@contoso.com\n").dotenv(&format!(
        "SIP_SERVER=127.0.0.1:{}\nSIP_TRANSPORT=tcp\nSIP_USERNAME=blf\n\
         SIP_PASSWORD={secret} # the PBX account\nSIP_LISTEN=127.0.0.1:0\nRUST_LOG=trace\n",
        closed.port
    ));
    let out = c.run_blocking(&["--timeout", "1"]);
    let all = output_text(&out);
    // The settings are right: the check ran (and found no PBX).
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.contains("SIP:   FAILED"), "{all}");
    assert!(!all.contains("Xy9") && !all.contains("sR7"), "{all}");
}

/// A check that fails at once (TCP to `closed`) with `.env` holding `dotenv`.
fn quick_check_with(closed: &ClosedPort, dotenv: &str) -> Check {
    Check::new("1001,alice@contoso.com\n").dotenv(&format!(
        "SIP_SERVER=127.0.0.1:{}\nSIP_TRANSPORT=tcp\nSIP_USERNAME=blf\nSIP_PASSWORD=p\n\
         SIP_LISTEN=127.0.0.1:0\n{dotenv}",
        closed.port
    ))
}

#[test]
fn rust_log_and_log_format_from_dotenv_give_json_lines_without_colour() {
    let out =
        quick_check_with(&closed_port(), "RUST_LOG=debug\nLOG_FORMAT=json\n").run_blocking(&[]);
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        !err.contains('\u{1b}'),
        "no escape codes when stderr is a pipe: {err}"
    );
    let lines: Vec<serde_json::Value> = err
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(
        lines.iter().any(|v| v["level"] == "DEBUG"
            && v["fields"]["message"]
                .as_str()
                .is_some_and(|m| m.starts_with("settings: the environment, then .env"))),
        "{err}"
    );
}

#[test]
fn rust_log_from_dotenv_gives_plain_debug_lines_and_the_environment_wins() {
    let closed = closed_port();
    let c = quick_check_with(&closed, "RUST_LOG=debug\n");
    let out = c.run_blocking(&[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    assert!(
        !err.contains('\u{1b}'),
        "no escape codes when stderr is a pipe: {err}"
    );
    assert!(
        err.lines()
            .any(|l| l.contains(" DEBUG ") && l.contains("settings: the environment, then .env")),
        "{err}"
    );
    // A variable set in the environment wins over the file.
    let out = c.var("RUST_LOG", "warn").run_blocking(&[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("DEBUG"), "{err}");
}

#[test]
fn an_empty_extension_list_is_a_configuration_problem() {
    for (file, content) in [
        ("config/extensions.csv", "extension,email\n"),
        ("config/extensions.json", "[]\n"),
    ] {
        let c = Check::new("").pbx("127.0.0.1:5060", "p");
        std::fs::write(c.dir.path().join(file), content).unwrap();
        let out = c.run_blocking(&[]);
        let all = output_text(&out);
        assert_eq!(out.status.code(), Some(2), "{file}: {all}");
        assert!(
            all.contains(&format!(
                "{file}: lists no extension; add one entry per extension"
            )),
            "{all}"
        );
        assert!(out.stdout.is_empty(), "{all}");
    }
}

#[test]
fn a_database_that_cannot_be_reached_is_named_by_check_and_stops_run_never_showing_the_password() {
    let closed = closed_port();
    let url = format!("postgres://blf:s3cr3t-pw@127.0.0.1:{}/lines", closed.port);
    let dotenv = format!("SINKS=log,database\nDATABASE_URL={url}\n");
    let c = quick_check_with(&closed, &dotenv);
    let out = c.run_blocking(&["--timeout", "2"]);
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let line = all
        .lines()
        .find(|l| l.starts_with("Database: FAILED"))
        .unwrap_or_else(|| panic!("no Database line in:\n{all}"));
    assert!(line.contains("check that it runs"), "{line}");
    assert!(!all.contains("s3cr3t-pw"), "{all}");

    // `run` refuses to start on it, with the same fix.
    let out = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .args(["run", "--dry-run"])
        .current_dir(c.dir.path())
        .env_clear()
        .env("HTTP_LISTEN", "off")
        .output()
        .unwrap();
    let all = output_text(&out);
    assert!(!out.status.success(), "{all}");
    assert!(
        all.contains("DATABASE_URL") && all.contains("check that it runs"),
        "{all}"
    );
    assert!(!all.contains("s3cr3t-pw"), "{all}");
}

#[test]
fn unknown_sinks_and_a_database_url_without_the_sink_are_configuration_problems() {
    let c = Check::new("1001,alice@contoso.com\n")
        .pbx("127.0.0.1:5060", "p")
        .var("SINKS", "graph,teams")
        .var("SOURCES", "sip,asterisk");
    let out = c.run_blocking(&[]);
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(
        all.contains("SINKS") && all.contains("valid: graph, log, database"),
        "{all}"
    );
    assert!(
        all.contains("SOURCES") && all.contains("valid: sip, ami"),
        "{all}"
    );

    let c = Check::new("1001,alice@contoso.com\n")
        .pbx("127.0.0.1:5060", "p")
        .var("DATABASE_URL", "sqlite://lines.db");
    let out = c.run_blocking(&[]);
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(2), "{all}");
    assert!(all.contains("SINKS does not list database"), "{all}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_has_one_object_with_graph_outcomes_per_user() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    // TCP to a closed port fails at once: this test is about the Graph side.
    let closed = closed_port();
    let c = Check::new("extension,email\n1001,alice@contoso.com\n1002,dave@contoso.com\n")
        .pbx(&format!("127.0.0.1:{}", closed.port), "blfsecret")
        .var("SIP_TRANSPORT", "tcp")
        .tenant(&emu);
    let out = c.run(&["--json"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", output_text(&out));
    let v = json(&out);
    assert_eq!(v["ok"], false);
    assert_eq!(v["sip"]["ok"], false);
    assert_eq!(v["contact"]["transport"], "tcp", "{v}");
    assert!(
        v["contact"]["listen"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:"),
        "{v}"
    );
    assert!(
        v["contact"]["text"]
            .as_str()
            .unwrap()
            .contains("listens on"),
        "{v}"
    );
    let sip_text = v["sip"]["text"].as_str().unwrap();
    assert!(sip_text.contains("(tcp)"), "{sip_text}");
    assert!(sip_text.contains("refused"), "{sip_text}");
    assert_eq!(v["graph"]["ok"], true, "{v}");
    assert!(v["graph"]["text"].as_str().unwrap().starts_with("token ok"));
    let rows = v["extensions"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for r in rows {
        for key in ["extension", "user", "origin", "pbx", "graph", "ok", "fix"] {
            assert!(r.get(key).is_some(), "row without {key}: {r}");
        }
        assert_eq!(r["pbx"], "PBX unreachable");
        assert_eq!(r["ok"], false);
    }
    assert_eq!(rows[0]["extension"], "1001");
    assert_eq!(rows[0]["graph"], "ok");
    assert_eq!(rows[1]["user"], "dave@contoso.com");
    assert_eq!(rows[1]["graph"], "404 no such user");
    assert_eq!(rows[1]["origin"], "config/extensions.csv:3");
    let fix = rows[1]["fix"].as_str().unwrap();
    assert!(
        fix.contains("no such user in tenant: check the e-mail in config/extensions.csv:3"),
        "{fix}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_graph_permission_is_named() {
    let emu = GraphEmulator::start(EmulatorConfig {
        app_roles: vec!["Presence.ReadWrite.All".into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let closed = closed_port();
    let c = Check::new("1001,alice@contoso.com\n")
        .pbx(&format!("127.0.0.1:{}", closed.port), "blfsecret")
        .var("SIP_TRANSPORT", "tcp")
        .tenant(&emu);
    let out = c.run(&[]).await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let r = row(&all, "1001");
    assert!(r.contains("403 forbidden"), "{r}");
    assert!(r.contains("User.Read.All"), "{r}");
    assert!(r.contains("admin consent"), "{r}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_presence_read_all_is_named_when_teams_presence_goes_to_the_pbx() {
    let emu = GraphEmulator::start(EmulatorConfig {
        presence_read_withheld: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let closed = closed_port();
    let c = Check::new("1001,alice@contoso.com\n")
        .pbx(&format!("127.0.0.1:{}", closed.port), "blfsecret")
        .var("SIP_TRANSPORT", "tcp")
        .tenant(&emu);
    // TEAMS_TO_PBX off (unset): presence is not read back.
    let out = c.run(&["--json"]).await;
    let v = json(&out);
    assert_eq!(v["graph"]["ok"], true, "{v}");
    assert_eq!(
        emu.count(graph_emulator::Operation::GetPresencesByUserId),
        0
    );

    let out = c.var("TEAMS_TO_PBX", "publish").run(&["--json"]).await;
    let v = json(&out);
    assert_eq!(v["graph"]["ok"], false, "{v}");
    let graph_text = v["graph"]["text"].as_str().unwrap();
    assert!(
        graph_text.contains("presence read FAILED: 403 forbidden"),
        "{graph_text}"
    );
    let fix = v["graph"]["fix"].as_str().unwrap();
    assert!(
        fix.contains("Presence.Read.All application permission and grant admin consent"),
        "{fix}"
    );
    // Users still resolve: the rows say so.
    assert_eq!(v["extensions"][0]["graph"], "ok", "{v}");
    assert_eq!(
        emu.count(graph_emulator::Operation::GetPresencesByUserId),
        1
    );
}

/// A PBX stand-in on loopback UDP: accepts REGISTER; answers SUBSCRIBE by
/// extension (4040: 404, 4030: 403, 4890: 489, 6030: 603 as Asterisk answers
/// with `allow_subscribe=no`, 2000: 200 but never a NOTIFY,
/// 9000: never). Records each request as "METHOD user Expires". Stops when dropped.
struct FakePbx {
    addr: std::net::SocketAddr,
    seen: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl FakePbx {
    fn start() -> FakePbx {
        use std::sync::atomic::Ordering;
        let socket = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(50)))
            .unwrap();
        let addr = socket.local_addr().unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let log = seen.clone();
        let thread = std::thread::spawn(move || {
            let mut buf = [0u8; 65536];
            while !flag.load(Ordering::Relaxed) {
                let Ok((n, from)) = socket.recv_from(&mut buf) else {
                    continue;
                };
                let request = String::from_utf8_lossy(&buf[..n]).to_string();
                if let Some(summary) = Self::summary(&request) {
                    log.lock().unwrap().push(summary);
                }
                if let Some(reply) = Self::answer(&request, addr) {
                    socket.send_to(reply.as_bytes(), from).unwrap();
                }
            }
        });
        FakePbx {
            addr,
            seen,
            stop,
            thread: Some(thread),
        }
    }

    fn summary(request: &str) -> Option<String> {
        let mut first = request.split("\r\n").next()?.split(' ');
        let method = first.next()?;
        let user = first.next()?.trim_start_matches("sip:").split('@').next()?;
        let expires = request
            .split("\r\n")
            .find_map(|l| l.strip_prefix("Expires: "))
            .unwrap_or("-");
        Some(format!("{method} {user} {expires}"))
    }

    fn answer(request: &str, me: std::net::SocketAddr) -> Option<String> {
        let head = request.split("\r\n\r\n").next()?;
        let mut lines = head.split("\r\n");
        let mut first = lines.next()?.split(' ');
        let method = first.next()?;
        let uri = first.next()?;
        let user = uri.trim_start_matches("sip:").split('@').next()?;
        let (code, reason) = match (method, user) {
            ("REGISTER", _) => (200, "OK"),
            ("SUBSCRIBE", "4040") => (404, "Not Found"),
            ("SUBSCRIBE", "4030") => (403, "Forbidden"),
            ("SUBSCRIBE", "4890") => (489, "Bad Event"),
            ("SUBSCRIBE", "6030") => (603, "Decline"),
            ("SUBSCRIBE", "2000") => (200, "OK"),
            _ => return None,
        };
        let mut reply = format!("SIP/2.0 {code} {reason}\r\n");
        for line in lines {
            let name = line.split(':').next()?.trim().to_ascii_lowercase();
            match name.as_str() {
                // A registrar echoes the Contact; a notifier gives its own.
                "contact" | "m" if method == "SUBSCRIBE" => {
                    reply.push_str(&format!("Contact: <sip:{user}@{me}>\r\n"));
                }
                "via" | "v" | "from" | "f" | "call-id" | "i" | "cseq" | "contact" | "m" => {
                    reply.push_str(line);
                    reply.push_str("\r\n");
                }
                "to" | "t" if !line.contains("tag=") => {
                    reply.push_str(&format!("{line};tag=fakepbx\r\n"));
                }
                "to" | "t" => reply.push_str(&format!("{line}\r\n")),
                _ => {}
            }
        }
        let expires = if request.contains("\r\nExpires: 0\r\n") {
            0
        } else {
            600
        };
        reply.push_str(&format!("Expires: {expires}\r\nContent-Length: 0\r\n\r\n"));
        Some(reply)
    }
}

impl Drop for FakePbx {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

#[test]
fn refusals_and_silence_each_get_their_row() {
    let pbx = FakePbx::start();
    let c = Check::new(
        "4040,a@contoso.com\n4030,b@contoso.com\n4890,c@contoso.com\n\
         6030,f@contoso.com\n2000,d@contoso.com\n9000,e@contoso.com\n",
    )
    .pbx(&pbx.addr.to_string(), "blfsecret");
    let out = c.run_blocking(&["--timeout", "2"]);
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(all.starts_with("SIP:   registered at"), "{all}");
    let expect = [
        ("4040", "404 no hint", "PBX has no BLF hint for 4040"),
        (
            "4030",
            "403 forbidden",
            "PBX forbids user blf to watch 4030",
        ),
        (
            "4890",
            "489 bad event",
            "does not offer `Event: dialog` for 4890",
        ),
        (
            "6030",
            "603 declined",
            "`allow_subscribe=yes` in its endpoint section of pjsip.conf",
        ),
        (
            "2000",
            "no NOTIFY",
            "subscribed to 2000 but no NOTIFY within 2 s",
        ),
        (
            "9000",
            "timeout",
            "no answer to SUBSCRIBE for 9000 within 2 s",
        ),
    ];
    for (ext, pbx_cell, fix) in expect {
        let r = row(&all, ext);
        assert!(r.contains(pbx_cell), "{ext}: {pbx_cell:?} missing in {r}");
        assert!(r.contains(fix), "{ext}: {fix:?} missing in {r}");
    }
    assert!(
        all.contains("6 extension(s) checked: 0 ok, 6 failed"),
        "{all}"
    );
    // Cleanly gone: the one subscription that was accepted is ended, then the registration.
    let seen = pbx.seen.lock().unwrap().clone();
    let unsubscribe = seen.iter().position(|r| r == "SUBSCRIBE 2000 0");
    let unregister = seen
        .iter()
        .position(|r| r.starts_with("REGISTER ") && r.ends_with(" 0"));
    assert!(
        unsubscribe.is_some() && unsubscribe < unregister,
        "no un-SUBSCRIBE then un-REGISTER in {seen:?}"
    );
}

// ---------------------------------------------------------------- real peers

/// `--timeout` against real peers: generous for a loaded machine; a check
/// that gets all its answers returns without waiting for it.
const PEER_TIMEOUT: &str = "60";

/// Runs `check` for the extension list `csv` against a fresh Kamailio and the
/// Graph emulator (both kept alive for the caller to inspect).
async fn against_kamailio_and_graph(csv: &str) -> (Kamailio, GraphEmulator, Output) {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let c = Check::new(csv)
        .pbx(&pbx.sip_addr().to_string(), "blfsecret")
        .tenant(&emu);
    let out = c.run(&["--timeout", PEER_TIMEOUT]).await;
    (pbx, emu, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: kamailio"]
async fn every_extension_and_user_good_gives_exit_0() {
    let (pbx, _emu, out) = against_kamailio_and_graph(
        "extension,email\n1001,alice@contoso.com\n1002,bob@contoso.com\n",
    )
    .await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert!(all.starts_with("SIP:   registered at"), "{all}");
    assert!(all.contains("Graph: token ok"), "{all}");
    for ext in ["1001", "1002"] {
        let cells: Vec<&str> = row(&all, ext).split_whitespace().collect();
        assert_eq!(cells[2..], ["idle", "ok"], "{all}");
    }
    assert!(
        all.contains("2 extension(s) checked: 2 ok, 0 failed"),
        "{all}"
    );
    // Cleanly gone afterwards: no registration of ours left at the PBX.
    let ul = pbx.kamcmd(&["ul.dump"]).unwrap();
    assert!(!ul.contains("sip:blf@"), "still registered:\n{ul}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: kamailio"]
async fn an_unknown_email_shows_its_fix_on_its_row() {
    let (_pbx, _emu, out) = against_kamailio_and_graph(
        "extension,email\n1001,alice@contoso.com\n1002,dave@contoso.com\n",
    )
    .await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let good: Vec<&str> = row(&all, "1001").split_whitespace().collect();
    assert_eq!(good[2..], ["idle", "ok"], "{all}");
    let bad = row(&all, "1002");
    assert!(bad.contains("idle"), "the PBX side still works: {bad}");
    assert!(bad.contains("404 no such user"), "{bad}");
    assert!(
        bad.contains("no such user in tenant: check the e-mail in config/extensions.csv:3"),
        "{bad}"
    );
    assert!(
        all.contains("2 extension(s) checked: 1 ok, 1 failed"),
        "{all}"
    );
}

#[test]
#[ignore = "real peer: kamailio"]
fn a_wrong_sip_password_names_sip_password() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let c = Check::new("1001,alice@contoso.com\n1002,bob@contoso.com\n")
        .pbx(&pbx.sip_addr().to_string(), "not-the-password");
    let out = c.run_blocking(&[]);
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert!(
        !all.contains("not-the-password"),
        "the password is never shown: {all}"
    );
    let sip = all.lines().next().unwrap();
    assert!(sip.starts_with("SIP:   FAILED: registration at"), "{sip}");
    assert!(sip.contains("fix SIP_USERNAME/SIP_PASSWORD"), "{sip}");
    for ext in ["1001", "1002"] {
        let r = row(&all, ext);
        assert!(r.contains("not registered"), "{r}");
        assert!(r.contains("fix SIP_USERNAME/SIP_PASSWORD"), "{r}");
    }
}

/// Kamailio's presence server accepts a SUBSCRIBE for any user of its domain
/// and reports the line idle, so an extension it does not know passes (a PBX
/// with hints, like Asterisk, answers 404: `refusals_and_silence_each_get_their_row`).
#[test]
#[ignore = "real peer: kamailio"]
fn kamailio_reports_an_unknown_extension_as_idle() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let c = Check::new("1001,alice@contoso.com\n4711,nobody@contoso.com\n")
        .pbx(&pbx.sip_addr().to_string(), "blfsecret");
    let out = c.run_blocking(&["--json", "--timeout", PEER_TIMEOUT]);
    assert_eq!(out.status.code(), Some(0), "{}", output_text(&out));
    let v = json(&out);
    assert_eq!(v["extensions"][0]["pbx"], "idle", "{v:#}");
    assert_eq!(v["extensions"][1]["extension"], "4711", "{v:#}");
    assert_eq!(v["extensions"][1]["pbx"], "idle", "{v:#}");
    assert_eq!(v["extensions"][1]["graph"], "not configured (dry run)");
}

/// The PBX column is the line state of the first NOTIFY: busy during a call.
#[test]
#[ignore = "real peer: kamailio and sipp"]
fn a_line_in_a_call_shows_busy() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(100)).unwrap();
    let c = Check::new("1001,alice@contoso.com\n1002,bob@contoso.com\n1003,carol@contoso.com\n")
        .pbx(&pbx.sip_addr().to_string(), "blfsecret");
    // The call reaches the presence server a little after it is answered:
    // check again until it shows, within a deadline.
    let deadline = Instant::now() + Duration::from_secs(60);
    let v = loop {
        let out = c.run_blocking(&["--json", "--timeout", PEER_TIMEOUT]);
        let v = json(&out);
        let both_busy = (0..2).all(|i| v["extensions"][i]["pbx"] == "busy");
        if both_busy || Instant::now() > deadline {
            break v;
        }
    };
    call.hang_up().unwrap();
    assert_eq!(v["extensions"][0]["pbx"], "busy", "{v:#}");
    assert_eq!(v["extensions"][1]["pbx"], "busy", "{v:#}");
    assert_eq!(v["extensions"][2]["pbx"], "idle", "{v:#}");
    assert_eq!(v["ok"], true, "{v:#}");
}
