//! `sip-blf-sync test-notify` run as a user would: the real binary, real files.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
}

fn blf_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../blf/tests/fixtures")
}

fn notify_fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/notify")
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn json_of(out: &Output) -> serde_json::Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// Every fixture of the blf crate, through the binary: the right `line_state`,
/// or a non-zero exit with a message naming the problem and its position.
#[test]
fn every_blf_fixture_gives_its_expected_line_state() {
    let manifest = std::fs::read_to_string(blf_fixtures().join("expected.txt")).unwrap();
    let mut checked = 0;
    for line in manifest
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
    {
        let (file, expected) = line.split_once(' ').unwrap();
        let path = blf_fixtures().join(file);
        let out = run(&["test-notify", "--json", path.to_str().unwrap()]);
        if expected.trim() == "error" {
            assert!(
                !out.status.success(),
                "{file}: expected an error, got success"
            );
            let err = String::from_utf8_lossy(&out.stderr);
            assert!(
                err.contains(file.rsplit('/').next().unwrap()) && !err.trim().is_empty(),
                "{file}: error should name the input: {err}"
            );
        } else {
            assert!(
                out.status.success(),
                "{file}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let json = json_of(&out);
            assert_eq!(json["line_state"], expected.trim(), "{file}");
            assert!(json["dialogs"].is_array(), "{file}");
            assert!(json["presence"]["action"].is_string(), "{file}");
        }
        checked += 1;
    }
    assert!(checked >= 40, "only {checked} fixtures");
}

#[test]
fn malformed_bodies_report_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let truncated = dir.path().join("truncated.xml");
    std::fs::write(
        &truncated,
        "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"1\" state=\"full\">\n  <dialog id=\"a\">\n    <state>confirmed</sta",
    )
    .unwrap();
    let out = run(&["test-notify", "--json", truncated.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("truncated.xml"), "{err}");
    assert!(err.contains("line 3"), "{err}");
    assert!(err.contains("column"), "{err}");
    assert!(out.stdout.is_empty());
}

/// Whole NOTIFYs as Kamailio sent them in the lab (headers and body).
#[test]
fn whole_kamailio_notify_messages() {
    let cases = [
        ("kamailio_01_1001_cseq2_nobody.sip", "unknown"),
        ("kamailio_03_1001_cseq3_Trying.sip", "busy"),
        ("kamailio_05_1002_cseq3_early.sip", "ringing"),
        ("kamailio_06_1001_cseq5_confirmed.sip", "busy"),
        ("kamailio_08_1001_cseq6_terminated.sip", "idle"),
        (
            "kamailio_10_1001_cseq7_terminated_subscription-terminated.sip",
            "idle",
        ),
    ];
    for (file, expected) in cases {
        let path = notify_fixtures().join(file);
        let out = run(&["test-notify", "--json", path.to_str().unwrap()]);
        assert!(
            out.status.success(),
            "{file}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(json_of(&out)["line_state"], expected, "{file}");
    }
}

#[test]
fn reads_standard_input_and_prints_text() {
    let mut child = bin()
        .args(["test-notify", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let body = std::fs::read(notify_fixtures().join("kamailio_05_1002_cseq3_early.sip")).unwrap();
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(&body).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("line state: ringing"), "{text}");
    assert!(text.contains("presence: keep"), "{text}");
    assert!(text.contains("recipient"), "{text}");
}

#[test]
fn mapping_file_changes_the_presence_and_bad_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("mapping.toml");
    std::fs::write(&good, "ringing = \"Busy/InAConferenceCall\"\n").unwrap();
    let early = notify_fixtures().join("kamailio_05_1002_cseq3_early.sip");
    let out = run(&[
        "test-notify",
        "--json",
        "--mapping",
        good.to_str().unwrap(),
        early.to_str().unwrap(),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = json_of(&out);
    assert_eq!(json["presence"]["action"], "set");
    assert_eq!(json["presence"]["activity"], "InAConferenceCall");

    let bad = dir.path().join("bad.toml");
    std::fs::write(&bad, "busy = \"Busy/InACall\"\nhold = \"Busy/Busy\"\n").unwrap();
    let out = run(&[
        "test-notify",
        "--mapping",
        bad.to_str().unwrap(),
        early.to_str().unwrap(),
    ]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2"), "{err}");
    assert!(err.contains("DoNotDisturb/Presenting"), "{err}");
}

#[test]
fn content_type_option_overrides() {
    let pidf = blf_fixtures().join("asterisk-pjsip/busy_pidf_on_the_phone.xml");
    let out = run(&[
        "test-notify",
        "--json",
        "--content-type",
        "application/dialog-info+xml",
        pidf.to_str().unwrap(),
    ]);
    assert!(
        !out.status.success(),
        "a PIDF body announced as dialog-info is refused"
    );
}

/// A body saved by an editor that writes a UTF-8 byte-order mark is still a
/// bare body, not a broken SIP message.
#[test]
fn a_bare_body_with_a_byte_order_mark_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bom.xml");
    let mut body = b"\xEF\xBB\xBF".to_vec();
    body.extend_from_slice(
        b"<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<dialog-info \
          xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"3\" state=\"full\" \
          entity=\"sip:1001@pbx\"><dialog id=\"x\" direction=\"recipient\">\
          <state>early</state></dialog></dialog-info>\r\n",
    );
    std::fs::write(&path, &body).unwrap();
    let out = run(&["test-notify", "--json", path.to_str().unwrap()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json = json_of(&out);
    assert_eq!(json["line_state"], "ringing", "{json}");
}
