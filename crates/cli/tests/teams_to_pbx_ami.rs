//! Teams → PBX through AMI, end to end through the binary: the AMI emulator
//! (FreePBX-style DND) and the Graph emulator (the users' own Teams presence,
//! Teams calls). The five cases of loops and their absence.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use ami_emulator::DeviceState;
use common::{http_get, lines_of, status_addr, wait_for_all, wait_until, PATIENCE};
use graph_emulator::Operation;

const ALICE: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const BOB: &str = "bbbbbbbb-0000-4000-8000-000000000002";
/// Teams is read this often in the test.
const POLL: Duration = Duration::from_secs(2);

use common::ami_peers::AmiPeers as Peers;

/// The emulators, with both users running Teams (a preferred presence shows
/// only with a session).
fn peers() -> Peers {
    let peers = Peers::start();
    peers
        .graph
        .set_client_session(ALICE, "Available", "Available");
    peers
        .graph
        .set_client_session(BOB, "Available", "Available");
    peers
}

impl Peers {
    fn ours(&self, id: &str) -> Option<String> {
        self.graph.app_session(id).map(|s| format!("{s:?}"))
    }

    fn dnd(&self, ext: &str) -> bool {
        self.ami.db_get("DND", ext).as_deref() == Some("YES")
    }

    /// Actions the service sent that change DND on the PBX.
    fn dnd_actions(&self) -> usize {
        self.ami
            .actions()
            .iter()
            .filter(|a| a.is("DBPut") || a.is("DBDel") || a.is("Setvar"))
            .count()
    }

    /// Waits until Teams has been read `n` more times.
    fn polls(&self, n: usize) {
        let start = self.graph.count(Operation::GetPresencesByUserId);
        wait_until(
            &format!("{n} more polls"),
            PATIENCE,
            || self.graph.count(Operation::GetPresencesByUserId) >= start + n,
            String::new,
        );
    }

    fn wait(&self, what: &str, done: impl Fn(&Peers) -> bool) {
        wait_until(
            what,
            PATIENCE,
            || done(self),
            || {
                format!(
                    "alice {} (ours {:?}), bob {} (ours {:?}), DND 1001 {} 1002 {}",
                    self.shows(ALICE),
                    self.ours(ALICE),
                    self.shows(BOB),
                    self.ours(BOB),
                    self.dnd("1001"),
                    self.dnd("1002")
                )
            },
        );
    }
}

struct Service {
    child: Child,
    _log: mpsc::Receiver<String>,
    http: String,
}

impl Service {
    fn get(&self, path: &str) -> String {
        let (code, body) = http_get(&self.http, path);
        assert_eq!(code, 200, "{body}");
        body
    }

    /// `/status`'s entry of `ext`.
    fn status_of(&self, ext: &str) -> serde_json::Value {
        let status: serde_json::Value = serde_json::from_str(&self.get("/status")).unwrap();
        status["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["extension"] == ext)
            .cloned()
            .unwrap()
    }

    /// The dashboard API's `ext`.
    fn board_of(&self, ext: &str) -> serde_json::Value {
        serde_json::from_str(&self.get(&format!("/api/v1/extensions/{ext}"))).unwrap()
    }

    /// Waits until the dashboard API shows `ext` as `want` says (it follows
    /// the PBX's events on its own).
    fn wait_board(&self, ext: &str, what: &str, want: impl Fn(&serde_json::Value) -> bool) {
        wait_until(
            what,
            PATIENCE,
            || want(&self.board_of(ext)),
            || self.board_of(ext).to_string(),
        );
    }
}

fn start(peers: &Peers, dir: &Path) -> Service {
    let mut child = peers
        .command(dir, &["run"])
        .env("TEAMS_TO_PBX", "ami")
        .env("TEAMS_POLL_SECONDS", POLL.as_secs().to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = lines_of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let lines = wait_for_all(
        &log,
        &mut seen,
        &["AMI: full state read", "Teams → PBX", "status on http://"],
    );
    Service {
        child,
        _log: log,
        http: status_addr(&lines[2]),
    }
}

#[test]
fn teams_and_the_pbx_follow_each_other_without_echo() {
    let peers = peers();
    let dir = tempfile::tempdir().unwrap();
    let mut svc = start(&peers, dir.path());
    peers.polls(1);

    // 1. A desk-phone call: Teams shows our Busy/InACall; reading it back is no DND.
    let call = peers.ami.call("1001", "1002");
    peers.ami.answer(call);
    peers.wait("alice busy in Teams", |p| p.shows(ALICE) == "Busy/InACall");
    peers.polls(2);
    assert_eq!(
        peers.dnd_actions(),
        0,
        "our own Busy/InACall came back as DND"
    );
    peers.ami.hangup(call);
    peers.wait("alice cleared", |p| p.ours(ALICE).is_none());

    // 2. DND in Teams: DND on the PBX within a poll; it never comes back as our
    //    DoNotDisturb session; cleared in Teams, off on the PBX.
    let t0 = Instant::now();
    peers.graph.set_user_preferred(
        ALICE,
        "DoNotDisturb",
        "DoNotDisturb",
        Duration::from_secs(3600),
    );
    // DND is two actions (astdb, then the device state): wait for both.
    peers.wait("1001 in DND", |p| {
        p.dnd("1001") && p.ami.device_state("Custom:DND1001") == DeviceState::Busy
    });
    let took = t0.elapsed();
    println!("Teams DND → PBX DND in {took:?} (poll {POLL:?})");
    assert!(took <= POLL + Duration::from_secs(3), "{took:?}");
    assert_eq!(peers.ami.device_state("Custom:DND1001"), DeviceState::Busy);
    peers.polls(2);
    assert!(peers.ours(ALICE).is_none(), "our DND came back to Teams");
    let alice = svc.status_of("1001");
    assert_eq!(
        alice["teams_presence_read"], "DoNotDisturb/DoNotDisturb",
        "{alice}"
    );
    assert_eq!(alice["pbx_dnd_set_by_us"], true, "{alice}");
    svc.wait_board("1001", "the dashboard shows the DND from Teams", |e| {
        e["dnd"] == true && e["dnd_by"] == "teams"
    });
    let tile = svc.board_of("1001");
    assert_eq!(tile["teams_read"], "DoNotDisturb/DoNotDisturb", "{tile}");
    let metrics = svc.get("/metrics");
    assert!(
        metrics.contains(r#"teams_to_pbx_actions_total{dnd="on",outcome="ok"} 1"#),
        "{metrics}"
    );
    assert!(metrics.contains("teams_poll_lag_seconds"), "{metrics}");
    peers.graph.clear_user_preferred(ALICE);
    peers.wait("1001 out of DND", |p| {
        !p.dnd("1001") && p.ami.device_state("Custom:DND1001") == DeviceState::Unavailable
    });

    // 3. DND on the phone: Teams shows it (ours), and nothing goes back.
    let before = peers.dnd_actions();
    peers.ami.set_dnd("1002", true);
    peers.wait("bob DND in Teams", |p| {
        p.shows(BOB) == "DoNotDisturb/Presenting"
    });
    svc.wait_board("1002", "the dashboard shows the phone's DND", |e| {
        e["dnd"] == true && e["dnd_by"] == "pbx"
    });
    peers.polls(2);
    assert_eq!(peers.dnd_actions(), before, "the phone's DND echoed");
    peers.ami.set_dnd("1002", false);
    peers.wait("bob cleared", |p| p.ours(BOB).is_none());
    peers.polls(1);
    assert_eq!(peers.dnd_actions(), before);

    // 4. A Teams call while the desk phone is idle: DND until it ends.
    peers.graph.start_teams_call(BOB);
    peers.wait("1002 in DND", |p| p.dnd("1002"));
    peers.graph.end_teams_call(BOB);
    peers.wait("1002 out of DND", |p| !p.dnd("1002"));

    // 5. The stop takes off every DND the service set.
    peers.graph.set_user_preferred(
        ALICE,
        "DoNotDisturb",
        "Presenting",
        Duration::from_secs(3600),
    );
    peers.wait("1001 in DND", |p| p.dnd("1001"));
    Command::new("kill")
        .args(["-TERM", &svc.child.id().to_string()])
        .status()
        .unwrap();
    assert!(svc.child.wait().unwrap().success());
    assert!(!peers.dnd("1001"), "DND left on at the stop");
    assert_eq!(
        peers.ami.device_state("Custom:DND1001"),
        DeviceState::Unavailable
    );
}

#[test]
fn a_dnd_set_before_a_kill_comes_off_after_the_restart() {
    let peers = peers();
    let dir = tempfile::tempdir().unwrap();
    let mut svc = start(&peers, dir.path());
    peers.graph.set_user_preferred(
        ALICE,
        "DoNotDisturb",
        "DoNotDisturb",
        Duration::from_secs(3600),
    );
    peers.wait("1001 in DND", |p| p.dnd("1001"));
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
    assert!(peers.dnd("1001"), "a kill -9 cannot take it off");

    // Teams is back to available while the service is down; the restarted
    // service knows the DND is its own and takes it off.
    peers.graph.clear_user_preferred(ALICE);
    let mut svc = start(&peers, dir.path());
    peers.wait("1001 out of DND after the restart", |p| !p.dnd("1001"));
    svc.child.kill().unwrap();
    svc.child.wait().unwrap();
}
