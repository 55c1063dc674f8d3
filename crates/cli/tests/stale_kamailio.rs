//! A PBX outage against a real Kamailio: once the subscriptions have been
//! lost for `SIP_STALE_AFTER`, `watch` prints the lines as unknown with why,
//! and `run --dry-run` shows them stale in `/status`; when Kamailio is back,
//! the next NOTIFY brings the real state.
//!
//! Over UDP a stopped PBX is noticed when a SUBSCRIBE refresh times out
//! (half of `SIP_SUBSCRIBE_EXPIRES=10`, then 32 s of retransmissions), so the
//! waits below are generous.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{http_get, lines_of, status_addr, wait_for};
use testbed::{Kamailio, KamailioOptions};

/// Long enough for a refresh (5 s) to time out (32 s) under load.
const OUTAGE_NOTICED: Duration = Duration::from_secs(120);

fn start(pbx: &Kamailio, dir: &std::path::Path, args: &[&str]) -> Child {
    std::fs::write(
        dir.join("extensions.csv"),
        "1001,user1@contoso.com\n1002,user2@contoso.com\n",
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .args(args)
        .current_dir(dir)
        .env("SIP_SERVER", pbx.sip_addr().to_string())
        .env("SIP_USERNAME", "blf")
        .env("SIP_PASSWORD", "blfsecret")
        // Any free loopback port, not the default 5060 (the tests run at once).
        .env("SIP_LISTEN", "127.0.0.1:0")
        .env("EXTENSIONS_JSON", dir.join("extensions.json"))
        .env("PRESENCE_STATE_JSON", dir.join("presence-state.json"))
        .env("HTTP_LISTEN", "127.0.0.1:0")
        .env("SIP_SUBSCRIBE_EXPIRES", "10")
        .env("SIP_STALE_AFTER", "1")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Reads lines until `done` holds for one of them, within `timeout`.
fn wait_line(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    timeout: Duration,
    what: &str,
    mut done: impl FnMut(&str) -> bool,
) -> String {
    let deadline = Instant::now() + timeout;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {what} within {timeout:?}; seen: {seen:#?}"));
        seen.push(line.clone());
        if done(&line) {
            return line;
        }
    }
}

/// The `watch --json` line of each of `extensions` with line state `state`,
/// in any order: the two lines are independent and may come either way.
fn wait_each(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    timeout: Duration,
    state: &str,
    extensions: &[&str],
) -> Vec<serde_json::Value> {
    let mut found: Vec<Option<serde_json::Value>> = vec![None; extensions.len()];
    wait_line(rx, seen, timeout, state, |l| {
        for (ext, slot) in extensions.iter().zip(found.iter_mut()) {
            if slot.is_none() {
                if let Some(v) = is(l, ext, state) {
                    *slot = Some(v);
                }
            }
        }
        found.iter().all(Option::is_some)
    });
    found.into_iter().flatten().collect()
}

fn stop(mut child: Child) {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let _ = child.wait();
}

/// `watch --json` lines of `extension` whose line state is `state`.
fn is(line: &str, extension: &str, state: &str) -> Option<serde_json::Value> {
    let v: serde_json::Value =
        serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    (v["extension"] == extension && v["line_state"] == state).then_some(v)
}

#[test]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
fn watch_prints_unknown_lines_while_the_pbx_is_down_then_the_real_state() {
    let mut pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = start(&pbx, dir.path(), &["watch", "--json"]);
    let out = lines_of(child.stdout.take().unwrap());
    let _err = lines_of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let t = Duration::from_secs(30);
    let both = ["1001", "1002"];
    // Both subscriptions are live once their first NOTIFY arrived.
    wait_each(&out, &mut seen, t, "idle", &both);

    pbx.stop();
    for v in wait_each(&out, &mut seen, OUTAGE_NOTICED, "unknown", &both) {
        let stale = &v["stale"];
        assert!(stale["lost_for_seconds"].as_u64().unwrap() >= 1, "{v}");
        assert!(stale["since"].as_f64().unwrap() > 0.0, "{v}");
        assert!(!stale["reason"].as_str().unwrap().is_empty(), "{v}");
    }

    pbx.restart_keeping_state().unwrap();
    for v in wait_each(&out, &mut seen, OUTAGE_NOTICED, "idle", &both) {
        assert!(v.get("stale").is_none(), "{v}");
    }
    stop(child);
}

#[test]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
fn status_shows_stale_lines_while_the_pbx_is_down() {
    let mut pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = start(&pbx, dir.path(), &["run", "--dry-run"]);
    let _out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    let mut log = Vec::new();
    let addr = status_addr(&wait_for(&err, &mut log, "status on http://"));
    wait_for(&err, &mut log, "subscribed to 100");
    wait_for(&err, &mut log, "subscribed to 100");

    pbx.stop();
    // The source warns when it declares a line unknown; /status says so then.
    for _ in 0..2 {
        wait_line(&err, &mut log, OUTAGE_NOTICED, "unknown warning", |l| {
            l.contains("line state unknown")
        });
    }
    let (code, body) = http_get(&addr, "/status");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let extensions = status["extensions"].as_array().unwrap();
    assert_eq!(extensions.len(), 2, "{status}");
    for e in extensions {
        assert_eq!(e["line_state"], "unknown", "{status}");
        let stale = &e["stale"];
        assert!(stale["since_unix"].as_f64().unwrap() > 0.0, "{status}");
        assert!(stale["for_seconds"].as_f64().unwrap() >= 1.0, "{status}");
        assert!(!stale["reason"].as_str().unwrap().is_empty(), "{status}");
    }
    stop(child);
}
