//! The sip-message sink through the binary, as a user runs it: `sip-blf-sync
//! run` with `SOURCES=sip` and `SINKS=sip-message` against a real Kamailio,
//! SIPp phones making a call, and a SIPp web phone registered as 1003 that
//! takes the status-update MESSAGEs (checking their type and body).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::{lines_of, wait_for, wait_for_all, PATIENCE};
use testbed::{Kamailio, KamailioOptions, SippCall, SippMessageReceiver};

/// `sip-blf-sync run` watching 1001 and 1002 (two people), the status
/// updates going to `to`.
fn start(pbx: &Kamailio, dir: &Path, to: &str) -> Child {
    std::fs::write(
        dir.join("extensions.csv"),
        "1001,alice@contoso.com\n1002,bob@contoso.com\n",
    )
    .unwrap();
    Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .arg("run")
        .current_dir(dir)
        .env_clear()
        .env("SOURCES", "sip")
        .env("SINKS", "sip-message")
        .env("SIP_MESSAGE_TO", to)
        .env("SIP_SERVER", pbx.sip_addr().to_string())
        .env("SIP_USERNAME", "blf")
        .env("SIP_PASSWORD", "blfsecret")
        .env("SIP_LISTEN", "127.0.0.1:0")
        .env("EXTENSIONS_JSON", dir.join("extensions.json"))
        .env("PRESENCE_STATE_JSON", dir.join("state.json"))
        .env("HTTP_LISTEN", "off")
        .env("RUST_LOG", "info,sip_blf_sync::sip_message=debug")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Stops the binary (SIGTERM); everything it logged.
fn stop(mut child: Child, log: Receiver<String>, mut seen: Vec<String>) -> String {
    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let status = child.wait().unwrap();
    seen.extend(log.iter());
    let all = seen.join("\n");
    assert!(status.success(), "run exited with {status:?}: {all}");
    all
}

/// The extensions of the status updates the binary logged as sent (each
/// after the web phone's 200), sorted.
fn sent(seen: &[String]) -> Vec<String> {
    let mut out: Vec<String> = seen
        .iter()
        .filter(|l| l.contains("status update sent"))
        .filter_map(|l| l.split("extension=").nth(1))
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    out.sort();
    out
}

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn each_line_change_reaches_the_web_phones_as_a_message_through_kamailio() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let mut web = SippMessageReceiver::start(&pbx, "1003", 200).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut child = start(&pbx, dir.path(), &web.uri(&pbx));
    let log = lines_of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    // At start: one update per extension (idle), so web phones read everything.
    wait_for_all(
        &log,
        &mut seen,
        &[
            "a SIP MESSAGE to",
            "status update sent extension=1001 line=idle",
            "status update sent extension=1002 line=idle",
        ],
    );
    // The first MESSAGE was challenged (407) and sent again with credentials
    // (CSeq 2); only an authorised one reaches the web phone.
    let kamailio = pbx.log();
    assert!(
        kamailio.contains(" 1 MESSAGE ") && kamailio.contains(" 2 MESSAGE "),
        "{kamailio}"
    );

    // A call 1001 → 1002: each change of a line is one update for it.
    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(300)).unwrap();
    wait_for_all(
        &log,
        &mut seen,
        &[
            "status update sent extension=1001 line=busy",
            "status update sent extension=1002 line=busy",
        ],
    );
    call.hang_up().unwrap();
    call.wait().unwrap();
    wait_for_all(
        &log,
        &mut seen,
        &[
            "status update sent extension=1001 line=idle",
            "status update sent extension=1002 line=idle",
        ],
    );
    // The web phone took each of them, with the right extension.
    let sent = sent(&seen);
    assert!(sent.len() >= 6, "{seen:#?}");
    let mut taken = web
        .wait_for(sent.len(), PATIENCE)
        .unwrap_or_else(|e| panic!("{e}"));
    taken.sort();
    assert_eq!(taken, sent, "{}", web.log_tail(30));
    assert!(web.is_running(), "{}", web.log_tail(30));

    let stderr = stop(child, log, seen);
    assert!(
        !stderr.contains("blfsecret"),
        "the password is never logged"
    );
    assert!(!stderr.contains("write failed"), "{stderr}");
}

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn a_refused_message_is_reported_with_the_fix_and_retried() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    // Nobody registered as 1003: Kamailio answers 404.
    let dir = tempfile::tempdir().unwrap();
    let to = format!("sip:1003@{}", pbx.sip_addr());
    let mut child = start(&pbx, dir.path(), &to);
    let log = lines_of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let failed = wait_for(&log, &mut seen, "write failed");
    assert!(
        failed.contains("sink=sip-message")
            && failed.contains("404")
            && failed.contains("register the web phones on the account in SIP_MESSAGE_TO"),
        "{failed}"
    );
    // Once the web phone registers, the retry gets through.
    let mut web = SippMessageReceiver::start(&pbx, "1003", 200).unwrap();
    let mut taken = web.wait_for(2, PATIENCE).unwrap_or_else(|e| panic!("{e}"));
    taken.sort();
    assert_eq!(taken, ["1001", "1002"]);
    stop(child, log, seen);
}

/// `run` with `vars` (and a PBX, an extension list): its exit code and output.
fn run_with(vars: &[(&str, &str)]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("extensions.csv"),
        "1001,alice@contoso.com\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .arg("run")
        .current_dir(dir.path())
        .env_clear()
        .env("SIP_SERVER", "127.0.0.1:9")
        .env("SIP_USERNAME", "blf")
        .env("SIP_PASSWORD", "blfsecret")
        .env("EXTENSIONS_JSON", dir.path().join("extensions.json"))
        .env("HTTP_LISTEN", "off")
        .envs(vars.iter().copied())
        .output()
        .unwrap();
    (out.status.code(), common::output_text(&out))
}

#[test]
fn bad_sip_message_settings_stop_run_before_it_connects_with_the_fix() {
    let to = ("SIP_MESSAGE_TO", "sip:webphones@127.0.0.1");
    for (vars, words) in [
        (
            vec![("SINKS", "sip-message")],
            "SIP_MESSAGE_TO: is needed by the sip-message sink",
        ),
        (
            vec![("SINKS", "sip-message"), ("SIP_MESSAGE_TO", "webphones")],
            "not a SIP URI",
        ),
        (
            vec![
                ("SINKS", "sip-message"),
                ("SIP_MESSAGE_TO", "sip:web phones@pbx"),
            ],
            "has a space",
        ),
        (vec![to], "SINKS does not list sip-message"),
        (
            vec![
                ("SOURCES", "ami"),
                ("AMI_HOST", "127.0.0.1"),
                ("AMI_USERNAME", "u"),
                ("AMI_SECRET", "s"),
                ("SINKS", "sip-message"),
                to,
            ],
            "add sip to SOURCES",
        ),
        (vec![("SINKS", "sip-message,teams")], "sip-message"),
    ] {
        let (code, all) = run_with(&vars);
        assert_eq!(code, Some(2), "{vars:?}: {all}");
        assert!(all.contains(words), "{vars:?}: {all}");
        assert!(!all.contains("blfsecret"), "{all}");
        if words.starts_with("SIP_MESSAGE_TO") || words == "not a SIP URI" {
            assert!(all.contains("sip:webphones@pbx.example.com"), "{all}");
        }
    }
}
