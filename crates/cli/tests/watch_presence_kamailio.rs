//! `sip-blf-sync watch` following a `presence` (PIDF, RFC 3863) subscription
//! live: a real Kamailio (presence + presence_xml) and a SIPp phone that
//! PUBLISHes its own presence (RFC 3903), on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use testbed::{Kamailio, KamailioOptions, SippPublisher};

/// `watch --json` lines as `(extension, line_state, time)`.
struct Changes {
    lines: mpsc::Receiver<String>,
    seen: Vec<(String, String, f64)>,
}

impl Changes {
    /// Reads lines until each `(extension, state)` was reported after the
    /// lines seen so far, in any order (two subscriptions race); 30 s
    /// without one is a failure.
    fn expect_all(&mut self, wanted: &[(&str, &str)]) {
        let from = self.seen.len();
        loop {
            let missing = wanted
                .iter()
                .find(|(e, s)| !self.seen[from..].iter().any(|(x, y, _)| x == e && y == s));
            let Some((extension, state)) = missing else {
                return;
            };
            let line = self
                .lines
                .recv_timeout(Duration::from_secs(30))
                .unwrap_or_else(|_| {
                    panic!(
                        "no {extension} {state} within 30 s; seen so far: {:?}",
                        self.seen
                    )
                });
            let v: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
            self.seen.push((
                v["extension"].as_str().unwrap().to_string(),
                v["line_state"].as_str().unwrap().to_string(),
                v["time"].as_f64().unwrap(),
            ));
        }
    }

    fn of(&self, extension: &str) -> Vec<&str> {
        self.seen
            .iter()
            .filter(|(e, _, _)| e == extension)
            .map(|(_, s, _)| s.as_str())
            .collect()
    }

    /// When the NOTIFY behind the first `state` line of `extension` came in.
    fn time_of(&self, extension: &str, state: &str) -> f64 {
        self.seen
            .iter()
            .find(|(e, s, _)| e == extension && s == state)
            .map(|(_, _, t)| *t)
            .unwrap()
    }
}

/// Kamailio sent a NOTIFY for the `presence` event and got a 200 for it:
/// the config logs `... for event presence : <call-id>` when it sends one and
/// `{... NOTIFY <call-id>} ... REPLY 200` for the answer.
fn presence_notify_answered(log: &str) -> bool {
    log.lines()
        .filter(|l| l.contains("for event presence : "))
        .filter_map(|l| l.rsplit(" : ").next())
        .any(|call_id| log.contains(&format!("NOTIFY {call_id}}} <script>: REPLY 200")))
}

fn now() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn watch_follows_a_published_pidf_presence_live() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let exts = dir.path().join("extensions.json");
    // 1001 by PIDF presence, 1002 by BLF dialog: both packages side by side
    std::fs::write(
        &exts,
        r#"[{"extension":"1001","email":"user1@contoso.com","event":"presence"},
            {"extension":"1002","email":"user2@contoso.com"}]"#,
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .args(["watch", "--json"])
        .current_dir(dir.path())
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
    let mut changes = Changes {
        lines: common::lines_of(child.stdout.take().unwrap()),
        seen: Vec::new(),
    };
    let stderr = common::lines_of(child.stderr.take().unwrap());

    // First NOTIFYs: no call on 1002 (idle); nothing published for 1001 yet,
    // so Kamailio's NOTIFY has no body: no line state to report (unknown, no
    // line printed). Both subscriptions are live from here on.
    changes.expect_all(&[("1002", "idle")]);
    common::wait_until(
        "the first presence NOTIFY for 1001 answered",
        Duration::from_secs(30),
        || presence_notify_answered(&pbx.log()),
        || pbx.log_tail(40),
    );

    let published = now();
    let phone = SippPublisher::publish_open(&pbx, "1001").unwrap();
    changes.expect_all(&[("1001", "idle")]);
    // idle came from the NOTIFY that carried the PUBLISHed `open`, not from
    // the body-less one before it
    assert!(
        changes.time_of("1001", "idle") >= published,
        "1001 idle before anything was published: {:?}",
        changes.seen
    );
    phone.publish_closed().unwrap();
    changes.expect_all(&[("1001", "offline")]);

    assert_eq!(changes.of("1001"), ["idle", "offline"]);
    assert_eq!(changes.of("1002"), ["idle"]);
    // the PIDF came through Kamailio's presence server, not a shortcut
    let log = pbx.log();
    assert!(
        log.contains("on behalf of sip:1001@127.0.0.1 for event presence"),
        "{log}"
    );

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let err: Vec<String> = stderr.iter().collect();
    assert!(exit.success(), "watch exited with {exit:?}: {err:#?}");
    let err = err.join("\n");
    assert!(err.contains("subscribed to 1001"), "{err}");
    assert!(err.contains("un-subscribing"), "{err}");
    assert!(
        !err.contains("blfsecret"),
        "the password must never be logged"
    );
}
