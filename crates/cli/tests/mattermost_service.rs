//! `SINKS=mattermost` through the real binary: the AMI emulator makes lines
//! busy and idle; the Mattermost emulator records what the service asks.
//! Status set while busy and restored after, a change by hand left alone, a
//! restart mid-call, the rate limit, and each refusal with its fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command};
use std::sync::mpsc;
use std::time::Duration;

use common::ami_peers::AmiPeers;
use common::{wait_for, wait_for_all, PATIENCE};
use mattermost_emulator::{CustomStatus, EmulatorConfig, Fault, MattermostEmulator, Recorded};

const ALICE: &str = "alice@contoso.com";
const BOB: &str = "bob@contoso.com";
const ALICE_ID: &str = "alice0000000000000000000a";
const BOB_ID: &str = "bob000000000000000000000b";

struct Peers {
    pbx: AmiPeers,
    mm: MattermostEmulator,
}

impl Peers {
    fn start() -> Peers {
        let pbx = AmiPeers::start();
        let mm = pbx
            .rt
            .block_on(MattermostEmulator::start(EmulatorConfig::default()))
            .unwrap();
        Peers { pbx, mm }
    }

    /// `run` with AMI as the source and only the Mattermost sink.
    fn command(&self, dir: &Path, token: &str) -> Command {
        let mut cmd = self.pbx.command(dir, &["run"]);
        cmd.env("SINKS", "mattermost")
            .env("MATTERMOST_URL", self.mm.url())
            .env("MATTERMOST_TOKEN", token)
            .env_remove("AZURE_TENANT_ID")
            .env_remove("AZURE_CLIENT_ID")
            .env_remove("AZURE_CLIENT_SECRET");
        cmd
    }

    /// Waits for a request from `from` on; returns its index and it.
    fn wait_request(
        &self,
        from: usize,
        what: &str,
        matches: impl Fn(&Recorded) -> bool,
    ) -> (usize, Recorded) {
        self.mm
            .wait_for(from, PATIENCE, matches)
            .unwrap_or_else(|| panic!("no {what}; requests: {:#?}", self.mm.requests()))
    }

    /// Waits for a PUT of `status` for `id`.
    fn wait_status(&self, from: usize, id: &str, status: &str) -> usize {
        let path = format!("/api/v4/users/{id}/status");
        self.wait_request(from, &format!("{status} for {id}"), |r| {
            r.method == "PUT"
                && r.path == path
                && r.status == 200
                && r.body.as_ref().is_some_and(|b| b["status"] == status)
        })
        .0
    }

    /// Waits for the custom status of `id` to be put (`Some(text)`) or deleted (`None`).
    fn wait_custom(&self, from: usize, id: &str, text: Option<&str>) -> usize {
        let path = format!("/api/v4/users/{id}/status/custom");
        self.wait_request(from, &format!("custom status {text:?} for {id}"), |r| {
            r.path == path
                && r.status == 200
                && match text {
                    Some(t) => r.method == "PUT" && r.body.as_ref().is_some_and(|b| b["text"] == t),
                    None => r.method == "DELETE",
                }
        })
        .0
    }
}

struct Service {
    child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
    /// The token check's line at the start (signed in, or the refusal).
    signed_in: String,
}

impl Service {
    fn start(mut cmd: Command) -> Service {
        let (child, log) = common::spawn_logged(&mut cmd);
        let mut seen = Vec::new();
        // Independent: the PBX's state and the token check, in any order.
        let lines = wait_for_all(&log, &mut seen, &["AMI: full state read", "Mattermost: "]);
        Service {
            child,
            log,
            seen,
            signed_in: lines[1].clone(),
        }
    }

    fn wait(&mut self, needle: &str) -> String {
        wait_for(&self.log, &mut self.seen, needle)
    }

    fn stop(mut self) -> Vec<String> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
        self.seen.extend(self.log.iter());
        self.seen
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

fn lunch() -> CustomStatus {
    CustomStatus {
        emoji: "hamburger".into(),
        text: "Lunch".into(),
        duration: "date_and_time".into(),
        expires_at: "2099-01-01T00:00:00Z".into(),
    }
}

#[test]
fn a_call_shows_in_mattermost_and_what_each_person_had_comes_back() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    // Alice is away for lunch (by hand); Bob's status is automatic.
    peers.mm.set_status_by_hand(ALICE, "away");
    peers.mm.set_custom_status_by_hand(ALICE, Some(lunch()));
    let mut cmd = peers.command(dir.path(), "admin-token");
    cmd.env("MATTERMOST_CHANNEL", "acme/phones")
        .env("MATTERMOST_POST_STATES", "busy,idle");
    let mut svc = Service::start(cmd);
    assert!(
        svc.signed_in.contains("signed in as sipbot"),
        "{}",
        svc.signed_in
    );

    let call = peers.pbx.ami.call("1001", "1002");
    peers.pbx.ami.answer(call);
    let at = peers.wait_status(0, ALICE_ID, "dnd");
    peers.wait_custom(0, ALICE_ID, Some("On the phone"));
    peers.wait_status(0, BOB_ID, "dnd");
    peers.wait_custom(0, BOB_ID, Some("On the phone"));
    let shown = peers.mm.custom_status_of(ALICE).unwrap();
    assert_eq!(shown.emoji, "telephone_receiver");
    assert!(shown.expires_at.starts_with("20"), "an expiry: {shown:?}");
    let dnd = peers.mm.status_of(ALICE).unwrap();
    assert!(dnd.dnd_end_time > 0, "a timed DND: {dnd:?}");
    // The e-mail was looked up once, the status read before it was set.
    let log = peers.mm.requests();
    let lookups = log
        .iter()
        .filter(|r| r.path == "/api/v4/users/email/alice@contoso.com");
    assert_eq!(lookups.count(), 1);
    let read = log
        .iter()
        .position(|r| r.method == "GET" && r.path == format!("/api/v4/users/{ALICE_ID}/status"))
        .unwrap();
    assert!(read < at, "the status is read before it is changed");

    // Bob picks his own status during the call: it stays.
    peers.mm.set_status_by_hand(BOB, "away");
    let from = peers.mm.requests().len();
    peers.pbx.ami.hangup(call);
    peers.wait_status(from, ALICE_ID, "away");
    // Alice's lunch status is back (a PUT, not a DELETE).
    peers.wait_request(from, "alice's lunch put back", |r| {
        r.method == "PUT" && r.body.as_ref().is_some_and(|b| b["text"] == "Lunch")
    });
    // Bob's custom status (ours) comes off; his own status stays.
    peers.wait_custom(from, BOB_ID, None);
    svc.wait("Mattermost status restored; status left as the person changed it during the call");
    assert_eq!(peers.mm.status_of(BOB).unwrap().status, "away");
    assert!(!peers
        .mm
        .requests()
        .iter()
        .skip(from)
        .any(|r| r.method == "PUT" && r.path == format!("/api/v4/users/{BOB_ID}/status")));
    assert_eq!(peers.mm.status_of(ALICE).unwrap().status, "away");
    assert_eq!(peers.mm.custom_status_of(ALICE).unwrap().text, "Lunch");

    // Posts: on and off the phone, nothing for the ringing.
    let posts: Vec<String> = peers.mm.posts().into_iter().map(|p| p.message).collect();
    for want in [
        "**alice@contoso.com** is on the phone",
        "**alice@contoso.com** is off the phone",
    ] {
        assert!(posts.iter().any(|p| p.contains(want)), "{want}: {posts:#?}");
    }
    assert!(!posts.iter().any(|p| p.contains("ringing")), "{posts:#?}");

    let log = svc.stop();
    assert!(
        !log.iter().any(|l| l.contains("admin-token")),
        "the token was logged"
    );
    let saved = std::fs::read_to_string(dir.path().join("presence-state.mattermost.json")).unwrap();
    assert_eq!(
        serde_json::from_str::<serde_json::Value>(&saved).unwrap(),
        serde_json::json!({})
    );
}

#[test]
fn a_restart_mid_call_still_restores_and_a_clean_stop_restores_everyone() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    peers.mm.set_status_by_hand(ALICE, "away");
    let svc = Service::start(peers.command(dir.path(), "admin-token"));
    let call = peers.pbx.ami.call("1001", "1002");
    peers.pbx.ami.answer(call);
    peers.wait_custom(0, ALICE_ID, Some("On the phone"));
    peers.wait_custom(0, BOB_ID, Some("On the phone"));
    // A crash mid-call: nothing is restored, but what Alice had is kept.
    svc.kill();
    assert_eq!(peers.mm.status_of(ALICE).unwrap().status, "dnd");
    let from = peers.mm.requests().len();
    let svc = Service::start(peers.command(dir.path(), "admin-token"));
    assert!(
        svc.signed_in.contains("signed in as sipbot"),
        "{}",
        svc.signed_in
    );
    peers.pbx.ami.hangup(call);
    peers.wait_status(from, ALICE_ID, "away");
    peers.wait_status(from, BOB_ID, "online");
    peers.wait_custom(from, ALICE_ID, None);
    assert_eq!(peers.mm.status_of(ALICE).unwrap().status, "away");

    // A clean stop during a call restores too.
    let call = peers.pbx.ami.call("1001", "1002");
    peers.pbx.ami.answer(call);
    let from = peers.mm.requests().len();
    peers.wait_custom(from, ALICE_ID, Some("On the phone"));
    peers.wait_custom(from, BOB_ID, Some("On the phone"));
    let from = peers.mm.requests().len();
    svc.stop();
    assert_eq!(peers.mm.status_of(ALICE).unwrap().status, "away");
    assert_eq!(peers.mm.status_of(BOB).unwrap().status, "online");
    assert_eq!(peers.mm.custom_status_of(ALICE), None);
    assert!(peers.mm.requests().len() > from);
}

#[test]
fn a_rate_limit_is_waited_out_before_the_next_request() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let mut svc = Service::start(peers.command(dir.path(), "admin-token"));
    assert!(
        svc.signed_in.contains("signed in as sipbot"),
        "{}",
        svc.signed_in
    );
    peers.mm.fail_next(Fault::RateLimited {
        reset: Duration::from_secs(2),
    });
    let from = peers.mm.requests().len();
    let call = peers.pbx.ami.call("1001", "1002");
    peers.wait_status(from, ALICE_ID, "dnd");
    let log = peers.mm.requests();
    let limited = (from..log.len()).find(|&i| log[i].status == 429).unwrap();
    let next = &log[limited + 1];
    assert!(
        next.at.duration_since(log[limited].at) >= Duration::from_secs(2),
        "a request {:?} after the 429: {:#?}",
        next.at.duration_since(log[limited].at),
        &log[limited..]
    );
    svc.wait("Mattermost's rate limit");
    peers.pbx.ami.hangup(call);
    svc.stop();
}

#[test]
fn refusals_are_reported_with_their_fix() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    // A wrong token: said at the start.
    let svc = Service::start(peers.command(dir.path(), "not-a-token"));
    let line = svc.signed_in.clone();
    assert!(
        line.contains("Mattermost refused MATTERMOST_TOKEN"),
        "{line}"
    );
    assert!(line.contains("Bot Accounts"), "{line}");
    let log = svc.stop();
    assert!(
        !log.iter().any(|l| l.contains("not-a-token")),
        "the token was logged"
    );

    // A bot without permission, and an e-mail Mattermost does not know.
    let mut cmd = peers.command(dir.path(), "member-token");
    std::fs::write(
        dir.path().join("extensions.json"),
        r#"[{"extension":"1001","email":"alice@contoso.com"},
            {"extension":"1002","email":"nobody@contoso.com"}]"#,
    )
    .unwrap();
    cmd.env("PRESENCE_STATE_JSON", dir.path().join("second-state.json"));
    let mut svc = Service::start(cmd);
    let call = peers.pbx.ami.call("1001", "1002");
    peers.pbx.ami.answer(call);
    let forbidden = svc.wait("may not change alice@contoso.com's status");
    assert!(
        forbidden.contains("System Admin") && forbidden.contains("edit_other_users"),
        "{forbidden}"
    );
    let unknown = svc.wait("no Mattermost user has the e-mail nobody@contoso.com");
    assert!(unknown.contains("extension list"), "{unknown}");
    peers.pbx.ami.hangup(call);
    svc.stop();
}

#[test]
fn bad_settings_are_refused_before_anything_starts() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let run = |cmd: &mut Command| {
        let out = cmd.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = run(peers
        .command(dir.path(), "x")
        .env_remove("MATTERMOST_URL")
        .env_remove("MATTERMOST_TOKEN"));
    assert!(
        e.contains("MATTERMOST_URL") && e.contains("mattermost sink"),
        "{e}"
    );
    let e = run(peers.command(dir.path(), "x").env("SINKS", "log"));
    assert!(e.contains("SINKS does not list mattermost"), "{e}");
    let e = run(peers
        .command(dir.path(), "x")
        .env("MATTERMOST_CHANNEL", "phones")
        .env("MATTERMOST_BUSY_STATUS", "busy"));
    assert!(
        e.contains("team/channel") && e.contains("dnd, away, offline or none"),
        "{e}"
    );
    assert!(
        peers.mm.requests().is_empty(),
        "nothing was asked of Mattermost"
    );
}
