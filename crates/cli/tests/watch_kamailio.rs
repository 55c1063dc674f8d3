//! `sip-blf-sync watch` as a user runs it, against a real Kamailio and real
//! SIPp phones on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use testbed::{Kamailio, KamailioOptions, SippCall};

struct Watch {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
    seen: Vec<(String, String)>,
}

impl Watch {
    fn start(pbx: &Kamailio, dir: &std::path::Path) -> Watch {
        let exts = dir.join("extensions.json");
        std::fs::write(
            &exts,
            r#"[{"extension":"1001","email":"user1@contoso.com"},{"extension":"1002","email":"user2@contoso.com"}]"#,
        )
        .unwrap();
        let mut child = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
            .args(["watch", "--json"])
            .current_dir(dir)
            .env("SIP_SERVER", pbx.sip_addr().to_string())
            .env("SIP_USERNAME", "blf")
            .env("SIP_PASSWORD", "blfsecret")
            .env("SIP_LISTEN", "127.0.0.1:0")
            .env("EXTENSIONS_JSON", &exts)
            .env("HTTP_LISTEN", "off")
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Watch {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Reads lines until `extension` reports `state` (a time-out is a failure).
    #[allow(dead_code)] // for a single report; independent ones use `expect_all`
    fn expect(&mut self, extension: &str, state: &str) {
        self.expect_all(&[(extension, state)]);
    }

    /// Reads lines until each `(extension, state)` was reported, in any order:
    /// NOTIFYs of two subscriptions race.
    fn expect_all(&mut self, wanted: &[(&str, &str)]) {
        let mut read = Vec::new();
        common::wait_for_all_matching(&self.lines, &mut read, wanted, |v, (e, s)| {
            v["extension"] == *e && v["line_state"] == *s
        });
        for v in read {
            assert!(v["time"].is_number(), "{v}");
            let ext = v["extension"].as_str().unwrap().to_string();
            let st = v["line_state"].as_str().unwrap().to_string();
            self.seen.push((ext, st));
        }
    }

    fn seen(&self, extension: &str) -> Vec<&str> {
        self.seen
            .iter()
            .filter(|(e, _)| e == extension)
            .map(|(_, s)| s.as_str())
            .collect()
    }

    fn terminate(self) -> String {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let out = self.child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr).to_string();
        assert!(
            out.status.success(),
            "watch exited with {:?}: {stderr}",
            out.status
        );
        stderr
    }
}

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn watch_prints_a_live_call_and_stops_cleanly() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut watch = Watch::start(&pbx, dir.path());
    // The first NOTIFY of each subscription (no dialogs) tells us it is live.
    watch.expect_all(&[("1001", "idle"), ("1002", "idle")]);

    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(300)).unwrap();
    watch.expect_all(&[("1001", "busy"), ("1002", "busy")]);
    call.hang_up().unwrap();
    call.wait().unwrap();
    watch.expect_all(&[("1001", "idle"), ("1002", "idle")]);

    assert_eq!(watch.seen("1001"), ["idle", "busy", "idle"]);
    let callee = watch.seen("1002");
    assert_eq!(callee.first(), Some(&"idle"));
    assert_eq!(callee.last(), Some(&"idle"));
    assert!(
        callee.contains(&"ringing"),
        "callee should ring first: {callee:?}"
    );
    let stderr = watch.terminate();
    assert!(stderr.contains("registered as"), "{stderr}");
    assert!(stderr.contains("un-subscribing"), "{stderr}");
    assert!(
        !stderr.contains("blfsecret"),
        "the password must never be logged"
    );
}

#[test]
fn watch_reports_every_configuration_problem_before_connecting() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/extensions.json"),
        "[{\"extension\": \"1001\"}]",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .arg("watch")
        .current_dir(dir.path())
        .env_remove("SIP_SERVER")
        .env_remove("SIP_USERNAME")
        .env_remove("SIP_PASSWORD")
        .env_remove("EXTENSIONS_JSON")
        .env("SIP_TRANSPORT", "carrier-pigeon")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    for needle in [
        "SIP_SERVER: is not set",
        "SIP_USERNAME: is not set",
        "SIP_PASSWORD: is not set",
        "SIP_TRANSPORT: \"carrier-pigeon\" is not supported",
        "config/extensions.json:1: extension \"1001\" has no \"email\"",
    ] {
        assert!(err.contains(needle), "missing {needle:?} in:\n{err}");
    }
}

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn watch_serves_the_dashboard_api() {
    use common::{http_get, lines_of, status_addr, wait_for_all, wait_until, PATIENCE};

    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exts = dir.path().join("extensions.json");
    std::fs::write(
        &exts,
        r#"[{"extension":"1001","email":"user1@contoso.com","name":"Ada"},{"extension":"1002","email":"user2@contoso.com"}]"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .arg("watch")
        .current_dir(dir.path())
        .env("SIP_SERVER", pbx.sip_addr().to_string())
        .env("SIP_USERNAME", "blf")
        .env("SIP_PASSWORD", "blfsecret")
        .env("SIP_LISTEN", "127.0.0.1:0")
        .env("EXTENSIONS_JSON", &exts)
        .env("HTTP_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines_of(child.stderr.take().unwrap());
    let mut log = Vec::new();
    let up = wait_for_all(&err, &mut log, &["dashboard on http://"]);
    let addr = status_addr(&up[0]);
    let state = |ext: &str| -> serde_json::Value {
        let (code, body) = http_get(&addr, &format!("/api/v1/extensions/{ext}"));
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let both = |wanted: &str| {
        wait_until(
            &format!("1001 and 1002 {wanted} on the dashboard"),
            PATIENCE,
            || {
                ["1001", "1002"]
                    .iter()
                    .all(|e| state(e)["line_state"] == wanted)
            },
            || format!("{} {}", state("1001"), state("1002")),
        );
    };
    both("idle");
    assert_eq!(state("1001")["name"], "Ada");
    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(300)).unwrap();
    both("busy");
    call.hang_up().unwrap();
    call.wait().unwrap();
    both("idle");
    assert!(state("1002")["last_event"].is_string(), "{}", state("1002"));
    let _ = child.kill();
    let _ = child.wait();
}
