//! `sip-blf-sync run --dry-run` against a real Kamailio with a SIPp call:
//! the decisions are printed, and /readyz, /status and /metrics answer.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use common::{http_get, lines_of, status_addr, wait_for_all};
use testbed::{Kamailio, KamailioOptions, SippCall};

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn dry_run_prints_the_decisions_for_a_call_and_serves_status() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("extensions.csv"),
        "1001,user1@contoso.com\n1002,user2@contoso.com\n",
    )
    .unwrap();
    let state = dir.path().join("presence-state.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .args(["run", "--dry-run"])
        .current_dir(dir.path())
        .env("SIP_SERVER", pbx.sip_addr().to_string())
        .env("SIP_USERNAME", "blf")
        .env("SIP_PASSWORD", "blfsecret")
        .env("SIP_LISTEN", "127.0.0.1:0")
        .env("EXTENSIONS_JSON", dir.path().join("extensions.json"))
        .env("PRESENCE_STATE_JSON", &state)
        .env("HTTP_LISTEN", "127.0.0.1:0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    let mut log = Vec::new();
    // The status line and both subscriptions (live once their first NOTIFY
    // arrived), in whatever order they come.
    let up = wait_for_all(
        &err,
        &mut log,
        &[
            "status on http://",
            "subscribed to 1001 ",
            "subscribed to 1002 ",
        ],
    );
    let addr = status_addr(&up[0]);

    let mut decisions = Vec::new();
    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(300)).unwrap();
    // The two lines' NOTIFYs are independent: either decision may come first.
    wait_for_all(
        &out,
        &mut decisions,
        &[
            "1001 user1@contoso.com: setPresence Busy/InACall",
            "1002 user2@contoso.com: setPresence Busy/InACall",
        ],
    );

    let (code, _) = http_get(&addr, "/readyz");
    assert_eq!(code, 200, "registered, and a dry run needs no token");
    let (code, status) = http_get(&addr, "/status");
    assert_eq!(code, 200);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    let text = status.to_string();
    assert!(text.contains("\"1001\""), "{text}");
    assert!(text.contains("busy"), "{text}");
    // Each source's and sink's health, by name.
    assert_eq!(status["sources"][0]["name"], "sip", "{text}");
    assert_eq!(status["sources"][0]["connected"], true, "{text}");
    let names: Vec<&str> = status["sinks"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|s| s["name"].as_str())
        .collect();
    assert_eq!(names, ["log", "dashboard"], "{text}");
    assert_eq!(status["sinks"][0]["connected"], true, "{text}");
    assert_eq!(status["sinks"][0]["failures"], 0, "{text}");
    assert!(status["sinks"][0]["last_success_unix"].is_f64(), "{text}");
    let (code, metrics) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("sip_notifies_total"), "{metrics}");
    assert!(metrics.contains("sip_registered 1"), "{metrics}");
    assert!(
        metrics.contains(r#"sink_connected{sink="log"} 1"#),
        "{metrics}"
    );
    assert!(
        metrics.contains(r#"sink_write_failures_total{sink="log"} 0"#),
        "{metrics}"
    );

    call.hang_up().unwrap();
    call.wait().unwrap();
    wait_for_all(
        &out,
        &mut decisions,
        &[
            "1001 user1@contoso.com: clearPresence",
            "1002 user2@contoso.com: clearPresence",
        ],
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "{status:?}; log: {log:#?}");
    assert!(state.exists(), "the state file is written at shutdown");
}
