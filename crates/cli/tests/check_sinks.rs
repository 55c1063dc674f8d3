//! `sip-blf-sync check`'s lines for the webhook, Mattermost, SIP MESSAGE
//! and action-URL parts, through the binary: a webhook receiver in the test
//! (its own HMAC check, answering 200 or 401), the Mattermost emulator, a
//! port already taken. No secret or token ever shows in the output.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::output_text;
use std::process::{Command, Output};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use mattermost_emulator::{EmulatorConfig, MattermostEmulator};
use ring::hmac;
use tokio::sync::mpsc;

const HOOK_SECRET: &str = "e3b0c44298fc1c149afbf4c8996fb924-check";
const WRONG_SECRET: &str = "0badc0ffee0badc0ffee-wrong-secret";
const ACTION_SECRET: &str = "a1b2c3d4e5f6-action-url-secret";
const CSV: &str = "extension,email\n1001,alice@contoso.com\n1002,bob@contoso.com\n";

/// The binary's settings: the phones report (no PBX to reach), the list
/// in `config/extensions.csv`.
struct Check {
    dir: tempfile::TempDir,
    vars: Vec<(String, String)>,
    timeout: &'static str,
}

impl Check {
    fn new(csv: &str) -> Check {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("config")).unwrap();
        std::fs::write(dir.path().join("config/extensions.csv"), csv).unwrap();
        Check {
            dir,
            vars: Vec::new(),
            timeout: "5",
        }
        .var("SOURCES", "action-url")
        .var("ACTION_URL_LISTEN", "127.0.0.1:0")
    }

    fn var(self, k: &str, v: &str) -> Check {
        let mut c = self.unset(k);
        c.vars.push((k.into(), v.into()));
        c
    }

    fn unset(mut self, k: &str) -> Check {
        self.vars.retain(|(name, _)| name != k);
        self
    }

    /// Runs `check` off the runtime, so that the peers in the test answer.
    async fn run(&self) -> Output {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"));
        cmd.args(["check", "--timeout", self.timeout])
            .current_dir(self.dir.path())
            .env_clear()
            .envs(self.vars.iter().map(|(k, v)| (k, v)));
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }
}

/// The line of `check`'s output that starts with `name`.
fn line<'a>(all: &'a str, name: &str) -> &'a str {
    all.lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("no {name} line in:\n{all}"))
}

fn assert_hidden(all: &str, secrets: &[&str]) {
    for s in secrets {
        assert!(!all.contains(s), "a secret shows in:\n{all}");
    }
}

/// One request as the receiver saw it.
#[derive(Debug)]
struct Received {
    body: serde_json::Value,
    status: u16,
}

/// A receiver checking the signature as a user's would (its own HMAC over
/// `timestamp "." body`, not the service's code): 200 when it verifies,
/// 401 otherwise.
async fn receiver(secret: &'static str) -> (String, mpsc::UnboundedReceiver<Received>) {
    async fn hook(
        State((secret, tx)): State<(&'static str, mpsc::UnboundedSender<Received>)>,
        headers: HeaderMap,
        body: Bytes,
    ) -> StatusCode {
        let header = |n: &str| {
            headers
                .get(n)
                .and_then(|v| v.to_str().ok())
                .unwrap_or_default()
                .to_owned()
        };
        let tag = header("x-signature-256")
            .strip_prefix("sha256=")
            .and_then(|h| hex::decode(h).ok())
            .unwrap_or_default();
        let mut signed = format!("{}.", header("x-timestamp")).into_bytes();
        signed.extend_from_slice(&body);
        let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
        let status = match hmac::verify(&key, &signed, &tag) {
            Ok(()) => StatusCode::OK,
            Err(_) => StatusCode::UNAUTHORIZED,
        };
        let _ = tx.send(Received {
            body: serde_json::from_slice(&body).unwrap_or_default(),
            status: status.as_u16(),
        });
        status
    }
    let (tx, rx) = mpsc::unbounded_channel();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new()
        .route("/hooks/blf", axum::routing::post(hook))
        .with_state((secret, tx));
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (format!("http://{addr}/hooks/blf"), rx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_webhook_gets_one_signed_ping_and_a_refused_signature_names_the_secret() {
    let (url, mut received) = receiver(HOOK_SECRET).await;
    let c = Check::new(CSV)
        .var("SINKS", "webhook")
        .var("WEBHOOK_URL", &url)
        .var("WEBHOOK_SECRET", HOOK_SECRET);
    let out = c.run().await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(
        line(&all, "Webhook:"),
        format!("Webhook: {url} answered the signed ping with 200 OK")
    );
    let ping = received.recv().await.unwrap();
    assert_eq!(ping.status, 200, "the receiver's own check passed");
    assert_eq!(ping.body["type"], "ping", "{:?}", ping.body);
    assert!(ping.body.get("person").is_none(), "{:?}", ping.body);
    assert!(received.try_recv().is_err(), "one ping only");
    assert_hidden(&all, &[HOOK_SECRET]);

    // The same receiver, another secret: it answers 401.
    let out = c.var("WEBHOOK_SECRET", WRONG_SECRET).run().await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(received.recv().await.unwrap().status, 401);
    let webhook = line(&all, "Webhook:");
    assert!(
        webhook.starts_with(&format!(
            "Webhook: FAILED: {url} answered the signed ping with 401 Unauthorized; the \
             receiver refused the signature: check WEBHOOK_SECRET"
        )),
        "{all}"
    );
    assert_hidden(&all, &[HOOK_SECRET, WRONG_SECRET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_webhook_receiver_that_is_not_there_names_webhook_url() {
    // Bound, never listening: connections are refused.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = socket.local_addr().unwrap();
    let out = Check::new(CSV)
        .var("SINKS", "webhook")
        .var("WEBHOOK_URL", &format!("http://{addr}/hook?token=hunter2"))
        .var("WEBHOOK_SECRET", HOOK_SECRET)
        .run()
        .await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let webhook = line(&all, "Webhook:");
    assert!(
        webhook.starts_with(&format!(
            "Webhook: FAILED: WEBHOOK_URL http://{addr}/hook?***: cannot connect"
        )),
        "{webhook}"
    );
    assert!(webhook.contains("check WEBHOOK_URL"), "{webhook}");
    assert_hidden(&all, &[HOOK_SECRET, "hunter2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mattermost_signs_in_and_finds_everyone_then_a_refused_token_is_named() {
    let mm = MattermostEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let c = Check::new(CSV)
        .var("SINKS", "mattermost")
        .var("MATTERMOST_URL", &mm.url())
        .var("MATTERMOST_TOKEN", "admin-token");
    let out = c.run().await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(
        line(&all, "Mattermost:"),
        format!(
            "Mattermost: {}: signed in as @sipbot; 2 e-mail(s) found",
            mm.url()
        )
    );
    let asked: Vec<String> = mm.requests().iter().map(|r| r.line()).collect();
    assert!(
        asked.iter().all(|l| l.starts_with("GET ")),
        "nothing changed: {asked:?}"
    );
    assert_hidden(&all, &["admin-token"]);

    let token = "not-a-token-0123456789";
    let out = c.var("MATTERMOST_TOKEN", token).run().await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let mattermost = line(&all, "Mattermost:");
    assert!(
        mattermost.starts_with(&format!(
            "Mattermost: FAILED: MATTERMOST_URL {}: HTTP 401",
            mm.url()
        )),
        "{mattermost}"
    );
    assert!(
        mattermost.contains("put it in MATTERMOST_TOKEN"),
        "{mattermost}"
    );
    assert_hidden(&all, &[token]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_email_is_named_on_the_mattermost_line() {
    let mm = MattermostEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let out = Check::new("extension,email\n1001,alice@contoso.com\n1003,carol@contoso.com\n")
        .var("SINKS", "mattermost")
        .var("MATTERMOST_URL", &mm.url())
        .var("MATTERMOST_TOKEN", "admin-token")
        .run()
        .await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let mattermost = line(&all, "Mattermost:");
    assert!(
        mattermost.contains("1 of 2 e-mail(s) not usable: carol@contoso.com (not found)"),
        "{mattermost}"
    );
    assert!(
        mattermost.contains("fix the e-mail in the extension list"),
        "{mattermost}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_action_url_port_already_taken_names_action_url_listen() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap();
    let out = Check::new(CSV)
        .var("ACTION_URL_LISTEN", &addr.to_string())
        .var("ACTION_URL_SECRET", ACTION_SECRET)
        .run()
        .await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    let action = line(&all, "Action URL:");
    assert!(
        action.starts_with(&format!("Action URL: FAILED: ACTION_URL_LISTEN {addr}: ")),
        "{action}"
    );
    assert!(
        action.contains(&format!("port {} is in use", addr.port()))
            && action.contains("choose a free port in ACTION_URL_LISTEN"),
        "{action}"
    );
    assert_hidden(&all, &[ACTION_SECRET]);
    // Every extension still has its row, with its Graph side.
    assert!(all.contains("2 extension(s) checked"), "{all}");

    // Free again: the line is ok, and the port is released after the check.
    drop(taken);
    let out = Check::new(CSV)
        .var("ACTION_URL_LISTEN", &addr.to_string())
        .var("ACTION_URL_SECRET", ACTION_SECRET)
        .run()
        .await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(0), "{all}");
    assert_eq!(
        line(&all, "Action URL:"),
        format!(
            "Action URL: {addr} can be listened on, http; requests must carry ACTION_URL_SECRET"
        )
    );
    std::net::TcpListener::bind(addr).expect("check released the port");
    assert_hidden(&all, &[ACTION_SECRET]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sip_message_line_names_the_recipient_and_no_line_shows_for_what_is_not_configured() {
    // A PBX that never answers: the SIP line fails, the MESSAGE line says
    // that path is the SIP line's.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let mut c = Check::new(CSV)
        .unset("ACTION_URL_LISTEN")
        .var("SOURCES", "sip")
        .var("SIP_SERVER", &silent.local_addr().unwrap().to_string())
        .var("SIP_USERNAME", "blf")
        .var("SIP_PASSWORD", "sip-password-123")
        .var("SIP_LISTEN", "127.0.0.1:0")
        .var("SINKS", "log,sip-message")
        .var("SIP_MESSAGE_TO", "sip:webphones@pbx.example.com");
    c.timeout = "1";
    let out = c.run().await;
    let all = output_text(&out);
    assert_eq!(out.status.code(), Some(1), "{all}");
    assert_eq!(
        line(&all, "SIP MESSAGE:"),
        "SIP MESSAGE: to sip:webphones@pbx.example.com; none sent (it would show on the \
         phones): MESSAGEs go through the account registered on the SIP line"
    );
    for absent in ["Webhook:", "Mattermost:", "Action URL:"] {
        assert!(!all.contains(absent), "{absent} not configured:\n{all}");
    }
    assert_hidden(&all, &["sip-password-123"]);
}
