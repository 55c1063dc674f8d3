//! `SINKS=webhook` through the real binary: the AMI emulator makes lines
//! busy and idle; a receiver on 127.0.0.1 checks each request's signature
//! and timestamp as a user's receiver would (its own HMAC, not the
//! service's code), and can answer 500 for a while.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::header::{HeaderName, CONNECTION};
use axum::http::{HeaderMap, StatusCode};
use common::ami_peers::AmiPeers as Peers;
use common::{wait_for, PATIENCE};
use ring::hmac;
use serde_json::Value;

const SECRET: &str = "e3b0c44298fc1c149afbf4c8996fb924-webhook";
const ALICE: &str = "alice@contoso.com";
const BOB: &str = "bob@contoso.com";

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
struct Received {
    timestamp: String,
    signature: String,
    body: Bytes,
    /// The status it answered.
    status: u16,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }

    fn is(&self, person: &str, state: &str) -> bool {
        let j = self.json();
        j["person"] == person && j["state"] == state
    }
}

/// What a receiver checks: the signature over `timestamp.body` with its
/// secret, and a timestamp within five minutes of its clock.
fn verify(secret: &str, timestamp: &str, signature: &str, body: &[u8]) -> Result<(), String> {
    let hex = signature
        .strip_prefix("sha256=")
        .ok_or("no sha256= prefix")?;
    let tag = ::hex::decode(hex).map_err(|e| format!("not hex: {e}"))?;
    let key = hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes());
    let mut signed = format!("{timestamp}.").into_bytes();
    signed.extend_from_slice(body);
    hmac::verify(&key, &signed, &tag).map_err(|_| "bad signature".to_owned())?;
    let sent: u64 = timestamp.parse().map_err(|_| "bad timestamp")?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    if now.abs_diff(sent) > 300 {
        return Err(format!("timestamp {sent} is {}s off", now.abs_diff(sent)));
    }
    Ok(())
}

/// The receiver: verifies with `secret`, then answers `status` (200 at first).
struct Receiver {
    url: String,
    addr: std::net::SocketAddr,
    hook: Hook,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
    status: Arc<AtomicU16>,
    rx: Arc<Mutex<mpsc::Receiver<Received>>>,
    seen: Arc<Mutex<Vec<Received>>>,
}

#[derive(Clone)]
struct Hook {
    secret: String,
    status: Arc<AtomicU16>,
    tx: mpsc::Sender<Received>,
}

/// Answers with `Connection: close`: each request comes on a new
/// connection, so a receiver that stops listening is down at once.
async fn hook(
    State(h): State<Hook>,
    headers: HeaderMap,
    body: Bytes,
) -> ([(HeaderName, &'static str); 1], StatusCode) {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    };
    let (timestamp, signature) = (header("x-timestamp"), header("x-signature-256"));
    let status = match verify(&h.secret, &timestamp, &signature, &body) {
        Ok(()) => h.status.load(Ordering::SeqCst),
        Err(_) => 401,
    };
    let _ = h.tx.send(Received {
        timestamp,
        signature,
        body,
        status,
    });
    (
        [(CONNECTION, "close")],
        StatusCode::from_u16(status).unwrap(),
    )
}

impl Receiver {
    fn start(peers: &Peers, secret: &str) -> Receiver {
        let (tx, rx) = mpsc::channel();
        let status = Arc::new(AtomicU16::new(200));
        let state = Hook {
            secret: secret.to_owned(),
            status: status.clone(),
            tx,
        };
        let listener = peers
            .rt
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .unwrap();
        let addr = listener.local_addr().unwrap();
        let receiver = Receiver {
            url: format!("http://{addr}/hooks/blf"),
            addr,
            hook: state,
            server: Mutex::new(None),
            status,
            rx: Arc::new(Mutex::new(rx)),
            seen: Arc::default(),
        };
        receiver.serve(peers, listener);
        receiver
    }

    fn serve(&self, peers: &Peers, listener: tokio::net::TcpListener) {
        let app = axum::Router::new()
            .route("/hooks/blf", axum::routing::post(hook))
            .with_state(self.hook.clone());
        let task = peers.rt.spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        *self.server.lock().unwrap() = Some(task);
    }

    /// Stops listening: connections are refused until [`up`](Self::up).
    fn down(&self, peers: &Peers) {
        let task = self.server.lock().unwrap().take().unwrap();
        task.abort();
        // The listener is closed once the task has ended.
        let _ = peers.rt.block_on(task);
    }

    /// Listens again on the same port.
    fn up(&self, peers: &Peers) {
        let listener = peers
            .rt
            .block_on(tokio::net::TcpListener::bind(self.addr))
            .unwrap();
        self.serve(peers, listener);
    }

    /// How many requests were seen so far.
    fn mark(&self) -> usize {
        self.seen.lock().unwrap().len()
    }

    /// Waits for a request from now on that `ok` accepts.
    fn wait(&self, what: &str, ok: impl Fn(&Received) -> bool) -> Received {
        self.wait_since(self.mark(), what, ok)
    }

    /// Waits for a request seen after `from` that `ok` accepts: independent
    /// requests (two people) arrive in any order.
    fn wait_since(&self, from: usize, what: &str, ok: impl Fn(&Received) -> bool) -> Received {
        self.wait_seen(what, |seen| seen[from..].iter().find(|r| ok(r)).cloned())
    }

    /// Receives requests (keeping every one) until `found` finds something
    /// in all of them.
    fn wait_seen<T>(&self, what: &str, found: impl Fn(&[Received]) -> Option<T>) -> T {
        let rx = self.rx.lock().unwrap();
        loop {
            if let Some(t) = found(&self.seen.lock().unwrap()) {
                return t;
            }
            let r = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
                panic!(
                    "no request {what} within {PATIENCE:?}; seen: {:#?}",
                    self.bodies()
                )
            });
            self.seen.lock().unwrap().push(r);
        }
    }

    fn bodies(&self) -> Vec<(u16, String)> {
        self.seen
            .lock()
            .unwrap()
            .iter()
            .map(|r| (r.status, String::from_utf8_lossy(&r.body).into_owned()))
            .collect()
    }

    fn answer(&self, status: u16) {
        self.status.store(status, Ordering::SeqCst);
    }
}

/// The service with the webhook sink alone.
struct Service {
    child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
}

fn command(peers: &Peers, dir: &Path, url: &str, resend: &str) -> Command {
    let mut cmd = peers.command(dir, &["run"]);
    cmd.env("SINKS", "webhook")
        .env("WEBHOOK_URL", url)
        .env("WEBHOOK_SECRET", SECRET)
        .env("WEBHOOK_RESEND_SECONDS", resend)
        .env("HTTP_LISTEN", "off");
    cmd
}

impl Service {
    fn start(cmd: &mut Command) -> Service {
        let (child, log) = common::spawn_logged(cmd);
        let mut seen = Vec::new();
        wait_for(
            &log,
            &mut seen,
            "line states go to webhook http://127.0.0.1:",
        );
        Service { child, log, seen }
    }

    fn stop(mut self) -> Vec<String> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        self.seen.extend(self.log.try_iter());
        assert!(status.success(), "{status}; log: {:#?}", self.seen);
        self.seen
    }
}

#[test]
fn busy_then_idle_arrive_signed_and_verified() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&peers, SECRET);
    let svc = Service::start(&mut command(&peers, dir.path(), &receiver.url, "0"));

    // At start, everyone's state as the PBX reports it.
    for who in [ALICE, BOB] {
        let r = receiver.wait_since(0, &format!("{who} idle"), |r| r.is(who, "idle"));
        assert_eq!(r.status, 200, "verified");
    }

    let call = peers.ami.call("1001", "1002");
    peers.ami.answer(call);
    // The state may come before the other party: wait for both.
    let busy = receiver.wait("alice busy with 1002", |r| {
        r.is(ALICE, "busy") && r.json()["counterparty"]["number"] == "1002"
    });
    assert_eq!(busy.status, 200, "{}", busy.json());
    let j = busy.json();
    assert_eq!(j["reason"], "change");
    assert_eq!(j["teams_presence"], "Busy/InACall");
    assert_eq!(j["email"], ALICE);
    assert_eq!(j["direction"], "outbound");
    assert_eq!(j["counterparty"]["number"], "1002");
    assert_eq!(j["extensions"][0]["extension"], "1001");
    assert_eq!(j["extensions"][0]["state"], "busy");
    assert_eq!(j["timestamp"].as_u64().unwrap().to_string(), busy.timestamp);
    assert!(j["time"].as_str().unwrap().ends_with('Z'), "{j}");
    peers.ami.hangup(call);
    let idle = receiver.wait("alice idle", |r| r.is(ALICE, "idle"));
    assert_eq!(
        (idle.status, idle.json()["reason"].clone()),
        (200, "change".into())
    );

    // The signature covers the body and the timestamp: a receiver refuses a
    // tampered body, an earlier timestamp and another secret.
    let tampered = String::from_utf8_lossy(&busy.body).replace("\"busy\"", "\"idle\"");
    assert!(verify(SECRET, &busy.timestamp, &busy.signature, &busy.body).is_ok());
    assert_eq!(
        verify(
            SECRET,
            &busy.timestamp,
            &busy.signature,
            tampered.as_bytes()
        ),
        Err("bad signature".to_owned())
    );
    let earlier = (busy.timestamp.parse::<u64>().unwrap() - 1).to_string();
    assert!(verify(SECRET, &earlier, &busy.signature, &busy.body).is_err());
    assert!(verify(
        "another secret entirely",
        &busy.timestamp,
        &busy.signature,
        &busy.body
    )
    .is_err());

    let log = svc.stop();
    assert!(
        !log.iter().any(|l| l.contains(SECRET)),
        "the webhook secret was logged"
    );
}

#[test]
fn a_receiver_that_fails_gets_the_latest_state_when_it_is_back() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&peers, SECRET);
    let svc = Service::start(&mut command(&peers, dir.path(), &receiver.url, "0"));
    for who in [ALICE, BOB] {
        receiver.wait_since(0, &format!("{who} idle"), |r| r.is(who, "idle"));
    }

    receiver.answer(500);
    let call = peers.ami.call("1001", "1002");
    let failed = receiver.wait("a failed request for alice's call", |r| {
        r.json()["person"] == ALICE && r.json()["state"] != "idle"
    });
    assert_eq!(failed.status, 500);
    peers.ami.answer(call);
    peers.ami.hangup(call);
    // Once retries carry idle, the service knows the call ended.
    let from = receiver.mark();
    for who in [ALICE, BOB] {
        receiver.wait_since(from, &format!("a retry of {who} idle"), |r| {
            r.is(who, "idle") && r.json()["reason"] == "retry"
        });
    }
    let mark = receiver.mark();
    receiver.answer(200);
    for who in [ALICE, BOB] {
        let back = receiver.wait_since(mark, &format!("{who} accepted"), |r| {
            r.json()["person"] == who && r.status == 200
        });
        assert_eq!(
            back.json()["state"],
            "idle",
            "the latest state, not the call"
        );
        assert_eq!(back.json()["reason"], "retry");
    }
    // No intermediate state after the receiver came back.
    let after: Vec<Value> = receiver.seen.lock().unwrap()[mark..]
        .iter()
        .map(Received::json)
        .collect();
    assert!(after.iter().all(|j| j["state"] == "idle"), "{after:#?}");
    let log = svc.stop();
    assert!(
        log.iter()
            .any(|l| l.contains("answered 500 Internal Server Error")),
        "{log:#?}"
    );
}

#[test]
fn a_receiver_that_was_down_gets_everyone_s_latest_state_when_it_is_back() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&peers, SECRET);
    let mut cmd = command(&peers, dir.path(), &receiver.url, "0");
    // The dashboard's API says when the service has seen the call end.
    cmd.env("HTTP_LISTEN", "127.0.0.1:0");
    let mut svc = Service::start(&mut cmd);
    // Logged before the webhook's line, which the start waits for.
    let line = svc.seen.iter().find(|l| l.contains("status on http://"));
    let http = common::status_addr(line.unwrap());
    for who in [ALICE, BOB] {
        receiver.wait_since(0, &format!("{who} idle"), |r| r.is(who, "idle"));
    }

    receiver.down(&peers);
    let call = peers.ami.call("1001", "1002");
    peers.ami.answer(call);
    wait_for(&svc.log, &mut svc.seen, "write failed; retrying in");
    peers.ami.hangup(call);
    for ext in ["1001", "1002"] {
        common::wait_until(
            &format!("{ext} idle in the API"),
            PATIENCE,
            || {
                let (_, body) = common::http_get(&http, &format!("/api/v1/extensions/{ext}"));
                body.contains(r#""line_state":"idle""#)
            },
            String::new,
        );
    }
    let mark = receiver.mark();
    receiver.up(&peers);
    for who in [ALICE, BOB] {
        let back = receiver.wait_since(mark, &format!("{who} after the outage"), |r| {
            r.json()["person"] == who
        });
        assert_eq!(back.status, 200);
        assert_eq!(
            back.json()["state"],
            "idle",
            "the latest state, not the call"
        );
        assert_eq!(
            back.json()["reason"],
            "replay",
            "everyone again after an outage"
        );
    }
    let after: Vec<Value> = receiver.seen.lock().unwrap()[mark..]
        .iter()
        .map(Received::json)
        .collect();
    assert!(after.iter().all(|j| j["state"] == "idle"), "{after:#?}");
    svc.stop();
}

#[test]
fn every_person_is_sent_again_each_resend_period() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&peers, SECRET);
    let svc = Service::start(&mut command(&peers, dir.path(), &receiver.url, "1"));
    // The start's replay, then each period again, verified.
    let resent = receiver.wait_seen("each person three times", |seen| {
        let count = |who| {
            seen.iter()
                .filter(|r| r.is(who, "idle") && r.status == 200 && r.json()["reason"] == "replay")
                .count()
        };
        (count(ALICE) >= 3 && count(BOB) >= 3).then(|| seen.to_vec())
    });
    let stamps: Vec<u64> = resent
        .iter()
        .filter(|r| r.is(ALICE, "idle"))
        .map(|r| r.timestamp.parse().unwrap())
        .collect();
    assert!(stamps.windows(2).all(|w| w[0] <= w[1]), "{stamps:?}");
    svc.stop();
}

#[test]
fn a_receiver_with_another_secret_refuses_and_the_log_says_what_to_check() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let receiver = Receiver::start(&peers, "the receiver's own secret, not ours");
    let mut svc = Service::start(&mut command(&peers, dir.path(), &receiver.url, "0"));
    let refused = receiver.wait("a request", |r| r.is(ALICE, "idle"));
    assert_eq!(refused.status, 401, "the receiver's check caught it");
    wait_for(
        &svc.log,
        &mut svc.seen,
        "answered 401 Unauthorized: the receiver refused the request: check that its secret is WEBHOOK_SECRET",
    );
    let log = svc.stop();
    assert!(!log.iter().any(|l| l.contains(SECRET)), "{log:#?}");
}

/// `run` with `vars` on top of the webhook settings: it must refuse to start,
/// naming each of `needles`.
fn refused(peers: &Peers, vars: &[(&str, Option<&str>)], needles: &[&str]) {
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = command(peers, dir.path(), "http://127.0.0.1:9/hook", "0");
    for (name, value) in vars {
        match value {
            Some(v) => cmd.env(name, v),
            None => cmd.env_remove(name),
        };
    }
    let out = cmd.output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(2), "{text}");
    for needle in needles {
        assert!(text.contains(needle), "{needle:?} in {text}");
    }
    assert!(
        !text.contains(SECRET) && !text.contains("tooshort"),
        "{text}"
    );
}

#[test]
fn bad_webhook_settings_are_refused_at_start_naming_the_variable() {
    let peers = Peers::start();
    refused(
        &peers,
        &[("WEBHOOK_SECRET", None)],
        &["WEBHOOK_SECRET: is not set"],
    );
    refused(
        &peers,
        &[("WEBHOOK_SECRET", Some("tooshort"))],
        &["WEBHOOK_SECRET: is too short"],
    );
    refused(
        &peers,
        &[("WEBHOOK_URL", Some("ftp://example.com/hook"))],
        &["WEBHOOK_URL: has scheme \"ftp\""],
    );
    refused(
        &peers,
        &[("WEBHOOK_URL", None)],
        &["WEBHOOK_URL: is needed by the webhook sink"],
    );
    refused(
        &peers,
        &[
            ("SINKS", Some("log")),
            ("WEBHOOK_RESEND_SECONDS", Some("soon")),
        ],
        &[
            "SINKS: WEBHOOK_URL is set but SINKS does not list webhook",
            "WEBHOOK_RESEND_SECONDS: \"soon\"",
        ],
    );
}
