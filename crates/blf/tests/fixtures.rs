//! Every fixture under `tests/fixtures/` parses to the line state named in
//! `tests/fixtures/expected.txt` (or is refused when that says `error`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use blf::{LineState, Notification};

fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn manifest() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(fixtures_dir().join("expected.txt")).unwrap();
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.split_whitespace();
            let path = parts.next().unwrap().to_owned();
            let state = parts.next().expect("state column").to_owned();
            assert!(parts.next().is_none(), "extra column in {l:?}");
            (path, state)
        })
        .collect()
}

fn all_fixture_files(dir: &Path, base: &Path, out: &mut BTreeSet<String>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            all_fixture_files(&path, base, out);
        } else if path.extension().is_some_and(|e| e == "xml") {
            let rel = path.strip_prefix(base).unwrap();
            out.insert(rel.to_string_lossy().replace('\\', "/"));
        }
    }
}

#[test]
fn every_fixture_has_its_expected_line_state() {
    let manifest = manifest();
    assert!(
        manifest.len() >= 50,
        "manifest too short: {}",
        manifest.len()
    );
    let mut failures = Vec::new();
    for (path, expected) in &manifest {
        let body = std::fs::read(fixtures_dir().join(path)).unwrap();
        let got = match Notification::parse(None, &body) {
            Ok(n) => n.line_state().to_string(),
            Err(e) => {
                if expected != "error" {
                    failures.push(format!("{path}: unexpected error {e}"));
                }
                "error".to_owned()
            }
        };
        if &got != expected {
            failures.push(format!("{path}: expected {expected}, got {got}"));
        }
        // The file name starts with the expected state, so a wrong manifest line shows.
        let name = Path::new(path).file_name().unwrap().to_string_lossy();
        assert!(
            name.starts_with(&format!("{expected}_")),
            "{path}: name does not start with {expected}_"
        );
    }
    assert!(
        failures.is_empty(),
        "fixture failures:\n{}",
        failures.join("\n")
    );
}

#[test]
fn manifest_lists_every_fixture_file() {
    let listed: BTreeSet<String> = manifest().into_iter().map(|(p, _)| p).collect();
    let mut on_disk = BTreeSet::new();
    all_fixture_files(&fixtures_dir(), &fixtures_dir(), &mut on_disk);
    assert_eq!(listed, on_disk);
}

#[test]
fn fixtures_give_the_same_state_with_their_content_type() {
    for (path, expected) in manifest() {
        if expected == "error" {
            continue;
        }
        let body = std::fs::read(fixtures_dir().join(&path)).unwrap();
        let sniffed = Notification::parse(None, &body).unwrap();
        let content_type = match &sniffed {
            Notification::DialogInfo(_) => "application/dialog-info+xml",
            Notification::Pidf(_) => "Application/PIDF+XML; charset=UTF-8",
            _ => continue,
        };
        let typed = Notification::parse(Some(content_type), &body).unwrap();
        assert_eq!(typed, sniffed, "{path}");
        assert_eq!(
            typed.line_state(),
            expected.parse::<LineState>().unwrap(),
            "{path}"
        );
    }
}

#[test]
fn malformed_fixtures_report_a_position() {
    for (path, expected) in manifest() {
        if expected != "error" {
            continue;
        }
        let body = std::fs::read(fixtures_dir().join(&path)).unwrap();
        let err = Notification::parse(None, &body).unwrap_err();
        assert!(err.line >= 1 && err.column >= 1, "{path}: {err}");
        let text = err.to_string();
        assert!(
            text.contains(&format!("line {}, column {}", err.line, err.column)),
            "{path}: {text}"
        );
    }
}

#[test]
fn kamailio_two_calls_keep_dialogs_apart() {
    let body = std::fs::read(fixtures_dir().join("kamailio/ringing_two_calls_confirmed_early.xml"))
        .unwrap();
    let Notification::DialogInfo(doc) = Notification::parse(None, &body).unwrap() else {
        panic!("not dialog-info")
    };
    assert_eq!(doc.version, Some(4));
    assert_eq!(doc.entity.as_deref(), Some("sip:1002@127.0.0.1"));
    let ids: Vec<_> = doc.dialogs.iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["padi-6b03f4c2-62a2-1", "padi-6b03f4c2-62a3-1"]);
    assert_eq!(doc.dialogs[1].local_tag.as_deref(), Some("25268SIPpTag012"));
    assert_eq!(
        doc.dialogs[1].remote.as_ref().unwrap().target.as_deref(),
        Some("sip:1003@127.0.0.1:5073")
    );
}

#[test]
fn broadworks_identities_keep_first_identity_and_display() {
    let body = std::fs::read(fixtures_dir().join("phones/ringing_broadworks_partial.xml")).unwrap();
    let Notification::DialogInfo(doc) = Notification::parse(None, &body).unwrap() else {
        panic!("not dialog-info")
    };
    assert_eq!(doc.state, blf::DocState::Partial);
    let remote = doc.dialogs[0].remote.as_ref().unwrap();
    assert_eq!(remote.display.as_deref(), Some("Bob Caller"));
    assert_eq!(
        remote.identity.as_deref(),
        Some("sip:+13015550177@as.example.net;user=phone")
    );
}

#[test]
fn freeswitch_unescaped_display_is_kept_verbatim() {
    let body =
        std::fs::read(fixtures_dir().join("malformed/busy_freeswitch_unescaped_amp.xml")).unwrap();
    let Notification::DialogInfo(doc) = Notification::parse(None, &body).unwrap() else {
        panic!("not dialog-info")
    };
    let remote = doc.dialogs[0].remote.as_ref().unwrap();
    assert_eq!(remote.display.as_deref(), Some("Smith & Sons"));

    let body =
        std::fs::read(fixtures_dir().join("malformed/ringing_freeswitch_unescaped_amp_text.xml"))
            .unwrap();
    let Notification::DialogInfo(doc) = Notification::parse(None, &body).unwrap() else {
        panic!("not dialog-info")
    };
    let remote = doc.dialogs[0].remote.as_ref().unwrap();
    assert_eq!(remote.display.as_deref(), Some("Smith & Sons &amp; Co"));
    assert_eq!(
        remote.identity.as_deref(),
        Some("Smith & Sons <sip:0201234567@10.0.0.5>")
    );
}

#[test]
fn every_truncation_and_byte_flip_of_every_fixture_is_handled() {
    // Deterministic cousin of the fuzz targets: runs in the normal test suite.
    for (path, _) in manifest() {
        let body = std::fs::read(fixtures_dir().join(&path)).unwrap();
        for cut in 0..body.len() {
            let piece = &body[..cut];
            match Notification::parse(None, piece) {
                Ok(n) => {
                    let _ = n.line_state();
                }
                Err(e) => assert!(e.line >= 1 && e.column >= 1, "{path}[..{cut}]: {e}"),
            }
        }
        let mut flipped = body.clone();
        for i in (0..flipped.len()).step_by(7) {
            let original = flipped[i];
            for b in [b'<', b'>', b'&', b'"', b'/', 0xFF, b':'] {
                flipped[i] = b;
                let mut tracker = blf::Tracker::new();
                if let Ok(n) = Notification::parse(Some("application/dialog-info+xml"), &flipped) {
                    tracker.apply(n);
                }
                let _ = Notification::parse(Some("application/pidf+xml"), &flipped);
            }
            flipped[i] = original;
        }
    }
}
