//! `SOURCES=action-url` through the real binary: an HTTP client acting as
//! Yealink, Snom, Fanvil and mattersip-configured phones on one side; the
//! dashboard's API, `/status`, `/metrics` and an SQLite table on the other.
//! Also the refusals (secret, extension, garbage, size), the settings
//! problems, and HTTPS with a certificate the test makes (openssl CLI).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;

use common::{http_get, status_addr, wait_for, wait_until, PATIENCE};
use serde_json::{json, Value};

/// Has a `+`: phones put it in the URL as it is.
const SECRET: &str = "s3cr3t+Phone-Key";

/// `sip-blf-sync run` in `dir` with alice on 1001 and bob on 1002, the
/// action-URL listener and the dashboard on free ports, the decisions printed.
fn command(dir: &Path) -> Command {
    let exts = dir.join("extensions.json");
    std::fs::write(
        &exts,
        r#"[{"extension":"1001","email":"alice@contoso.com"},
            {"extension":"1002","email":"bob@contoso.com"}]"#,
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"));
    cmd.arg("run")
        .current_dir(dir)
        .env("SOURCES", "action-url")
        .env("SINKS", "log")
        .env("ACTION_URL_LISTEN", "127.0.0.1:0")
        .env("ACTION_URL_SECRET", SECRET)
        .env("EXTENSIONS_JSON", &exts)
        .env("PRESENCE_STATE_JSON", dir.join("presence-state.json"))
        .env("HTTP_LISTEN", "127.0.0.1:0")
        .env("SYNC_DEBOUNCE_MS", "0")
        // The access log too, to show that it never holds the secret.
        .env("RUST_LOG", "info,sip_blf_sync::action_url=debug")
        .env_remove("SIP_SERVER")
        .env_remove("AZURE_TENANT_ID")
        .env_remove("DATABASE_URL")
        .env_remove("NO_COLOR");
    cmd
}

/// The running service: its log, the dashboard's and the phones' addresses.
struct Service {
    child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
    http: String,
    phones: String,
}

impl Service {
    fn start(mut cmd: Command) -> Service {
        let (child, log) = common::spawn_logged(&mut cmd);
        let mut seen = Vec::new();
        let lines = common::wait_for_all(
            &log,
            &mut seen,
            &["status on http://", "desk phones' action URLs on http"],
        );
        let http = status_addr(&lines[0]);
        let phones = lines[1]
            .split("://")
            .nth(1)
            .unwrap()
            .split('/')
            .next()
            .unwrap()
            .to_owned();
        Service {
            child,
            log,
            seen,
            http,
            phones,
        }
    }

    fn api(&self, ext: &str) -> Value {
        let (code, body) = http_get(&self.http, &format!("/api/v1/extensions/{ext}"));
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn wait_api(&self, ext: &str, key: &str, wanted: Value) {
        wait_until(
            &format!("{ext} {key} = {wanted} in the API"),
            PATIENCE,
            || self.api(ext)[key] == wanted,
            || self.api(ext).to_string(),
        );
    }

    /// A phone's GET of `target` (as sent, unencoded `$remote` and all),
    /// with `headers`: the status code and the body.
    fn get(&self, target: &str, headers: &str) -> (u16, String) {
        raw(
            &self.phones,
            &format!("GET {target} HTTP/1.1\r\nHost: pbx\r\n{headers}Connection: close\r\n\r\n"),
        )
    }

    fn stop(mut self) -> Vec<String> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        self.child.wait().unwrap();
        self.seen.extend(self.log.iter());
        self.seen
    }
}

/// Sends `request` as it is on a new connection: the status code (0 when
/// the server closed without one) and the body.
fn raw(addr: &str, request: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    // The server may answer and close before it has read everything.
    let _ = s.write_all(request.as_bytes());
    let mut bytes = Vec::new();
    let _ = s.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let code = text
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (code, body)
}

#[test]
fn phones_of_each_vendor_drive_the_lines_and_bad_requests_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let mut svc = Service::start(command(dir.path()));
    let s = SECRET;

    // Yealink, with $remote, $display_remote and $call_id filled in.
    let (code, body) = svc.get(
        &format!(
            "/yealink/1001/incoming_call?secret={s}&remote=sip:1002@pbx.example&display_remote=Bob&call_id=c1"
        ),
        "",
    );
    assert_eq!((code, body.as_str()), (200, "ok\n"));
    svc.wait_api("1001", "line_state", "ringing".into());
    let api = svc.api("1001");
    assert_eq!(
        api["counterparty"],
        json!({"number": "1002", "name": "Bob"})
    );
    assert_eq!(api["direction"], "inbound");
    svc.get(
        &format!("/yealink/1001/call_established?secret={s}&call_id=c1"),
        "",
    );
    svc.wait_api("1001", "line_state", "busy".into());
    svc.get(
        &format!("/yealink/1001/call_terminated?secret={s}&call_id=c1"),
        "",
    );
    svc.wait_api("1001", "line_state", "idle".into());
    // A late request of the ended call changes nothing.
    let (code, body) = svc.get(
        &format!("/yealink/1001/call_established?secret={s}&call_id=c1"),
        "",
    );
    assert_eq!(code, 200);
    assert!(body.starts_with("ignored"), "{body}");

    // Snom, the secret in a header.
    let (code, _) = svc.get(
        "/snom/1001/action_dnd_on_url",
        &format!("X-Action-Url-Secret: {s}\r\n"),
    );
    assert_eq!(code, 200);
    svc.wait_api("1001", "dnd", true.into());

    // Fanvil, everything in the query; bob dials alice.
    let (code, _) = svc.get(
        &format!("/fanvil?user=1002&event=Outgoing%20Call&remote=1001&secret={s}"),
        "",
    );
    assert_eq!(code, 200);
    svc.wait_api("1002", "line_state", "busy".into());
    assert_eq!(svc.api("1002")["direction"], "outbound");

    // mattersip's paths, bob named by his e-mail, under the plugin's prefix.
    let (code, _) = svc.get(
        &format!("/plugins/net.bytemine.sip/sip/onhook/bob%40contoso.com?secret={s}"),
        "",
    );
    assert_eq!(code, 200);
    svc.wait_api("1002", "line_state", "idle".into());
    svc.get(&format!("/sip/logout/1002?secret={s}"), "");
    svc.wait_api("1002", "line_state", "offline".into());
    svc.get(
        &format!("/sip/incoming-call/1002/%2B4930123?secret={s}"),
        "",
    );
    svc.wait_api("1002", "line_state", "ringing".into());
    assert_eq!(svc.api("1002")["counterparty"]["number"], "+4930123");

    // The secret: wrong, missing, or a different case → 403, and one warning.
    assert_eq!(svc.get("/yealink/1001/off_hook?secret=wrong", "").0, 403);
    assert_eq!(svc.get("/yealink/1001/off_hook", "").0, 403);
    assert_eq!(
        svc.get("/yealink/1001/off_hook?secret=S3CR3T+Phone-Key", "")
            .0,
        403
    );
    wait_for(
        &svc.log,
        &mut svc.seen,
        "refused (403): wrong or missing secret",
    );
    // Garbage without the secret learns nothing more.
    assert_eq!(svc.get("/wp-login.php", "").0, 403);

    // An extension not in the list → 404, and a warning that names it.
    let (code, body) = svc.get(&format!("/yealink/1999/off_hook?secret={s}"), "");
    assert_eq!(code, 404, "{body}");
    wait_for(
        &svc.log,
        &mut svc.seen,
        "\"1999\", which is not in the extension list",
    );

    // Garbage with the secret.
    assert_eq!(svc.get(&format!("/?secret={s}"), "").0, 404);
    assert_eq!(
        svc.get(&format!("/yealink/1001/dance?secret={s}"), "").0,
        400
    );
    assert_eq!(svc.get(&format!("/sip/offhook?secret={s}"), "").0, 400);
    let (code, _) = raw(
        &svc.phones,
        &format!("DELETE /yealink/1001/off_hook?secret={s} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    assert_eq!(code, 405);
    // Oversized: a long target, huge headers, a line that is not HTTP.
    let long = format!(
        "/yealink/1001/off_hook?secret={s}&remote={}",
        "9".repeat(5000)
    );
    assert_eq!(svc.get(&long, "").0, 414);
    let huge = format!("X-Filler: {}\r\n", "a".repeat(1 << 20));
    let (code, _) = svc.get(&format!("/yealink/1001/off_hook?secret={s}"), &huge);
    assert!(code == 431 || code == 400 || code == 0, "{code}");
    let (code, _) = raw(&svc.phones, "\u{1}\u{2}garbage\r\n\r\n");
    assert!(code == 400 || code == 0, "{code}");
    // Still serving, and 1001 still idle with DND.
    svc.wait_api("1001", "line_state", "idle".into());

    // /status and /metrics count the requests.
    let (_, status) = http_get(&svc.http, "/status");
    let status: Value = serde_json::from_str(&status).unwrap();
    let source = status["sources"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["name"] == "action-url")
        .unwrap_or_else(|| panic!("{status}"))
        .clone();
    assert!(
        source["requests"]["forbidden"].as_u64().unwrap() >= 4,
        "{source}"
    );
    assert!(
        source["requests"]["accepted"].as_u64().unwrap() >= 8,
        "{source}"
    );
    assert_eq!(source["requests"]["unknown_extension"], 1, "{source}");
    assert_eq!(source["requests"]["stale"], 1, "{source}");
    let (_, metrics) = http_get(&svc.http, "/metrics");
    assert!(
        metrics.contains("action_url_requests_total{outcome=\"forbidden\"}"),
        "{metrics}"
    );

    let log = svc.stop();
    let text = log.join("\n");
    assert!(text.contains("secret=***"), "the access log: {text}");
    assert!(!text.contains("s3cr3t"), "the secret is in the log: {text}");
}

#[test]
fn the_rows_of_the_phones_go_to_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("lines.db").display());
    let mut cmd = command(dir.path());
    cmd.env("SINKS", "database").env("DATABASE_URL", &url);
    let svc = Service::start(cmd);
    svc.get(
        &format!("/yealink/1001/outgoing_call?secret={SECRET}&remote=sip:1002@pbx&call_id=o1"),
        "",
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let rows = || {
        rt.block_on(async {
            let store = line_store::LineStore::connect(&url).await.unwrap();
            let rows = store.line_states().await.unwrap();
            store.close().await;
            rows
        })
    };
    wait_until(
        "1001's row busy, outbound to 1002, from action-url",
        PATIENCE,
        || {
            rows().iter().any(|r| {
                r.extension == "1001"
                    && r.line_state == line_store::LineState::Busy
                    && r.counterparty.as_deref() == Some("1002")
                    && r.source == "action-url"
            })
        },
        || format!("{:#?}", rows()),
    );
    svc.stop();
}

#[test]
fn settings_problems_say_what_to_set() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("ACTION_URL_LISTEN", "0.0.0.0:0")
        .env_remove("ACTION_URL_SECRET")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("ACTION_URL_SECRET"), "{text}");

    let out = command(dir.path())
        .env_remove("ACTION_URL_LISTEN")
        .env_remove("ACTION_URL_SECRET")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        text.contains("ACTION_URL_LISTEN") && text.contains("127.0.0.1:8088"),
        "{text}"
    );

    let out = command(dir.path())
        .env("SOURCES", "ami")
        .env("AMI_HOST", "127.0.0.1:1")
        .env("AMI_USERNAME", "u")
        .env("AMI_SECRET", "p")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(text.contains("does not list action-url"), "{text}");
}

#[test]
fn https_with_a_certificate_the_test_makes() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=127.0.0.1"])
        .args(["-addext", "subjectAltName=IP:127.0.0.1"])
        // A server certificate, not a CA (rustls refuses a CA as the end entity).
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("openssl CLI");
    assert!(
        made.status.success(),
        "{}",
        String::from_utf8_lossy(&made.stderr)
    );
    let mut cmd = command(dir.path());
    cmd.env("ACTION_URL_TLS_CERT", &cert)
        .env("ACTION_URL_TLS_KEY", &key);
    let mut svc = Service::start(cmd);
    assert!(
        svc.seen
            .iter()
            .any(|l| l.contains("action URLs on https://")),
        "{:#?}",
        svc.seen
    );
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pem = std::fs::read(&cert).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let url = format!(
        "https://{}/yealink/1001/off_hook?secret={SECRET}",
        svc.phones
    );
    let response = rt.block_on(client.get(&url).send()).unwrap();
    assert_eq!(response.status(), 200);
    svc.wait_api("1001", "line_state", "busy".into());
    // Plain HTTP on the TLS port is not served.
    let (code, _) = svc.get(&format!("/yealink/1001/on_hook?secret={SECRET}"), "");
    assert_eq!(code, 0);
    // A client that does not trust the certificate does not get through.
    let untrusting = reqwest::Client::new();
    assert!(rt.block_on(untrusting.get(&url).send()).is_err());
    let log = std::mem::take(&mut svc.seen);
    assert!(!log.join("\n").contains("s3cr3t"));
    svc.stop();
}

/// Mattermost's `/sip-status` on the phones' listener: a form POST with the
/// command's token (not the phones' secret, which Mattermost cannot send)
/// gets the table of who is on the phone; a wrong or missing token is
/// refused, and neither token nor secret reaches the log.
#[test]
fn the_mattermost_slash_command_answers_on_the_phones_listener() {
    const TOKEN: &str = "mm-command-token-4711";
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(dir.path());
    cmd.env("MATTERMOST_COMMAND_TOKEN", TOKEN)
        .env("DASHBOARD_URL", "https://phones.example.com/")
        .env("RUST_LOG", "debug");
    let mut svc = Service::start(cmd);
    common::wait_for(&svc.log, &mut svc.seen, "/sip-status answered at http://");
    let s = SECRET;
    svc.get(
        &format!("/yealink/1001/outgoing_call?secret={s}&remote=1002&call_id=k1"),
        "",
    );
    svc.wait_api("1001", "line_state", "busy".into());

    let post = |form: &str| {
        raw(
            &svc.phones,
            &format!(
                "POST /mattermost/command HTTP/1.1\r\nHost: blf\r\n\
                 Content-Type: application/x-www-form-urlencoded\r\n\
                 Content-Length: {}\r\nConnection: close\r\n\r\n{form}",
                form.len()
            ),
        )
    };
    // The roster follows the engine on its own feed: wait for it to see the call.
    let answer = std::cell::RefCell::new(Value::Null);
    wait_until(
        "the slash command lists alice on the phone",
        PATIENCE,
        || {
            let (code, body) = post(&format!(
                "token={TOKEN}&command=%2Fsip-status&text=&user_name=carol"
            ));
            assert_eq!(code, 200, "{body}");
            let json: Value = serde_json::from_str(&body).unwrap();
            // ("Nobody is on the phone." until the roster has seen the call.)
            let on_the_phone = json["text"].as_str().unwrap().contains("alice");
            *answer.borrow_mut() = json;
            on_the_phone
        },
        || answer.borrow().to_string(),
    );
    let answer = answer.into_inner();
    let text = answer["text"].as_str().unwrap();
    assert_eq!(answer["response_type"], "ephemeral");
    assert!(text.contains("| Person | Phone |"), "{text}");
    assert!(text.contains("alice"), "{text}");
    assert!(!text.contains("bob"), "only people on the phone: {text}");
    assert!(
        text.contains("(https://phones.example.com/)"),
        "the dashboard is linked: {text}"
    );
    // `all` lists everyone.
    let (code, body) = post(&format!("token={TOKEN}&text=all"));
    assert_eq!(code, 200);
    assert!(body.contains("bob"), "{body}");

    // Refusals: no token, a wrong one (the phones' secret is no command token).
    let (code, _) = post("text=");
    assert_eq!(code, 401);
    let (code, body) = post(&format!("token={s}&text="));
    assert_eq!(code, 403);
    assert!(body.contains("MATTERMOST_COMMAND_TOKEN"), "{body}");
    // A phone request still needs the phones' secret.
    let (code, _) = svc.get("/yealink/1001/call_terminated?call_id=k1", "");
    assert_eq!(code, 403);

    let log = svc.stop().join("\n");
    assert!(log.contains("wrong token was refused"), "{log}");
    assert!(!log.contains(TOKEN), "the command token was logged");
    assert!(!log.contains(SECRET), "the phones' secret was logged");
}

#[test]
fn the_slash_command_needs_the_phones_listener() {
    let dir = tempfile::tempdir().unwrap();
    let out = command(dir.path())
        .env("SOURCES", "sip")
        .env("SIP_SERVER", "127.0.0.1:5060")
        .env("SIP_USERNAME", "blf")
        .env("SIP_PASSWORD", "pw")
        .env_remove("ACTION_URL_LISTEN")
        .env_remove("ACTION_URL_SECRET")
        .env("MATTERMOST_COMMAND_TOKEN", "t0k3n")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        text.contains("MATTERMOST_COMMAND_TOKEN") && text.contains("add action-url to SOURCES"),
        "{text}"
    );
    assert!(!text.contains("t0k3n"), "{text}");
}
