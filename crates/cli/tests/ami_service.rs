//! `SOURCES=ami` through the real binary: the AMI emulator (an Asterisk 22
//! manager interface with FreePBX-style hints) on one side; the Graph
//! emulator, an SQLite table and the dashboard's API on the other. Also the
//! one-shots `ami dnd` and `ami watch`, and `check`'s AMI line.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use ami_emulator::{AmiEmulator, DeviceState, EmulatorConfig, ManagerUser};
use common::{http_get, lines_of, status_addr, wait_for, wait_until, PATIENCE};
use line_store::{LineState, LineStore};

const ALICE: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const BOB: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const BUSY: &str = "Busy/InACall";
const DND: &str = "DoNotDisturb/Presenting";

use common::ami_peers::AmiPeers as Peers;

impl Peers {
    /// `Availability/Activity` the user shows (`none` without a session).
    fn session_shows(&self, id: &str) -> String {
        match self.graph.app_session(id) {
            Some(_) => {
                let p = self.graph.presence_of(id).unwrap();
                format!("{}/{}", p.availability, p.activity)
            }
            None => "none".into(),
        }
    }

    fn wait_shows(&self, id: &str, wanted: &str) {
        wait_until(
            &format!("{id} shows {wanted}"),
            PATIENCE,
            || self.session_shows(id) == wanted,
            || format!("shows {}", self.session_shows(id)),
        );
    }

    /// The `line_states` rows (a fresh connection, as another program reads).
    fn rows(&self, url: &str) -> Vec<line_store::LineRow> {
        self.rt.block_on(async {
            let store = LineStore::connect(url).await.unwrap();
            let rows = store.line_states().await.unwrap();
            store.close().await;
            rows
        })
    }

    fn wait_row(
        &self,
        url: &str,
        ext: &str,
        what: &str,
        ok: impl Fn(&line_store::LineRow) -> bool,
    ) {
        wait_until(
            &format!("{ext}'s row {what}"),
            PATIENCE,
            || self.rows(url).iter().any(|r| r.extension == ext && ok(r)),
            || format!("rows: {:#?}", self.rows(url)),
        );
    }
}

/// The running service: its log, and the dashboard's address.
struct Service {
    child: Child,
    log: mpsc::Receiver<String>,
    seen: Vec<String>,
    http: String,
}

impl Service {
    fn start(peers: &Peers, dir: &Path, url: &str) -> Service {
        let mut child = peers
            .command(dir, &["run"])
            .env("SINKS", "graph,database")
            .env("DATABASE_URL", url)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let log = lines_of(child.stderr.take().unwrap());
        let mut seen = Vec::new();
        let line = wait_for(&log, &mut seen, "status on http://");
        let http = status_addr(&line);
        wait_for(&log, &mut seen, "AMI: full state read");
        Service {
            child,
            log,
            seen,
            http,
        }
    }

    fn api(&self, ext: &str) -> serde_json::Value {
        let (code, body) = http_get(&self.http, &format!("/api/v1/extensions/{ext}"));
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    }

    fn wait_api(&self, ext: &str, key: &str, wanted: serde_json::Value) {
        wait_until(
            &format!("{ext} {key} = {wanted} in the API"),
            PATIENCE,
            || self.api(ext)[key] == wanted,
            || self.api(ext).to_string(),
        );
    }

    fn stop(mut self) -> Vec<String> {
        Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        let status = self.child.wait().unwrap();
        assert!(status.success(), "{status}");
        self.seen.extend(self.log.try_iter());
        self.seen
    }
}

#[test]
fn ami_calls_and_dnd_reach_teams_the_database_and_the_api() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("lines.db").display());
    let svc = Service::start(&peers, dir.path(), &url);
    for ext in ["1001", "1002"] {
        peers.wait_row(&url, ext, "idle", |r| r.line_state == LineState::Idle);
    }

    let call = peers.ami.call("1001", "1002");
    peers.wait_shows(ALICE, BUSY);
    svc.wait_api("1002", "line_state", "ringing".into());
    peers.ami.answer(call);
    peers.wait_shows(BOB, BUSY);
    peers.wait_row(&url, "1001", "busy with 1002, outbound", |r| {
        r.line_state == LineState::Busy
            && r.counterparty.as_deref() == Some("1002")
            && r.direction.map(|d| d.as_str()) == Some("outbound")
            && r.source == "ami"
    });
    peers.ami.hangup(call);
    peers.wait_shows(ALICE, "none");
    peers.wait_shows(BOB, "none");

    // FreePBX DND makes the hint Busy; it is DND in Teams, not a call.
    peers.ami.set_dnd("1001", true);
    peers.wait_shows(ALICE, DND);
    peers.wait_row(&url, "1001", "idle with DND", |r| {
        r.line_state == LineState::Idle && r.dnd == Some(true)
    });
    svc.wait_api("1001", "dnd", true.into());
    assert_eq!(svc.api("1001")["line_state"], "idle");
    peers.ami.set_dnd("1001", false);
    peers.wait_shows(ALICE, "none");
    svc.wait_api("1001", "dnd", false.into());

    // A queue member (agent): the dashboard shows the queue, paused or not.
    peers.ami.add_queue_member("support", "1002");
    peers
        .ami
        .pause_queue_member("support", "1002", true, "lunch");
    svc.wait_api(
        "1002",
        "queues",
        serde_json::json!([{"queue": "support", "paused": true, "reason": "lunch", "in_call": false}]),
    );
    peers.ami.remove_queue_member("support", "1002");
    svc.wait_api("1002", "queues", serde_json::json!([]));

    let log = svc.stop();
    assert!(
        !log.iter().any(|l| l.contains("amisecret")),
        "the AMI secret was logged"
    );
}

#[test]
fn after_a_pbx_restart_the_state_is_complete_again() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("lines.db").display());
    let mut svc = Service::start(&peers, dir.path(), &url);
    peers.wait_row(&url, "1002", "idle", |r| r.line_state == LineState::Idle);

    // Asterisk restarts; while it is down a call starts and 1002's hint goes.
    peers.ami.shutdown(true);
    wait_for(&svc.log, &mut svc.seen, "AMI: the PBX is restarting");
    let call = peers.ami.call("1001", "1002");
    peers.ami.answer(call);
    peers.ami.remove_hint("1002");
    peers.ami.boot();

    wait_for(&svc.log, &mut svc.seen, "1002's hint disappeared");
    peers.wait_shows(ALICE, BUSY);
    peers.wait_row(&url, "1002", "unknown", |r| {
        r.line_state == LineState::Unknown
    });
    peers.wait_row(&url, "1001", "busy", |r| r.line_state == LineState::Busy);

    // An outage (connections cut, the PBX up): state changed meanwhile is read again.
    peers.ami.hangup(call);
    peers.ami.drop_connections();
    peers.wait_shows(ALICE, "none");
    peers.wait_row(&url, "1001", "idle", |r| r.line_state == LineState::Idle);
    svc.stop();
}

#[test]
fn ami_dnd_sets_the_pbx_the_freepbx_way_and_the_service_shows_it() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("lines.db").display());
    let svc = Service::start(&peers, dir.path(), &url);
    let dnd = |state: &str| {
        let out = peers
            .command(dir.path(), &["ami", "dnd", "1002", state])
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(
            out.status.success(),
            "{text}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        text
    };

    assert!(dnd("on").starts_with("1002: dnd on"));
    assert_eq!(peers.ami.db_get("DND", "1002").as_deref(), Some("YES"));
    assert_eq!(peers.ami.device_state("Custom:DND1002"), DeviceState::Busy);
    svc.wait_api("1002", "dnd", true.into());
    peers.wait_shows(BOB, DND);
    assert!(dnd("show").starts_with("1002: dnd on"));

    assert!(dnd("off").starts_with("1002: dnd off"));
    assert_eq!(peers.ami.db_get("DND", "1002"), None);
    assert_eq!(
        peers.ami.device_state("Custom:DND1002"),
        DeviceState::Unavailable
    );
    svc.wait_api("1002", "dnd", false.into());
    peers.wait_shows(BOB, "none");
    svc.stop();
}

#[test]
fn ami_watch_prints_the_full_state_then_each_change() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let mut child = peers
        .command(dir.path(), &["ami", "watch", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = lines_of(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    common::wait_for_all(
        &out,
        &mut seen,
        &[
            r#""extension":"1001","line_state":"idle""#,
            r#""extension":"1002","line_state":"idle""#,
        ],
    );
    let call = peers.ami.call("1002", "1001");
    wait_for(
        &out,
        &mut seen,
        r#""counterparty":"1002","counterparty_name":"#,
    );
    peers.ami.hangup(call);
    peers.ami.unregister("1001");
    common::wait_for_all(
        &out,
        &mut seen,
        &[
            r#""extension":"1001","registered":false"#,
            r#""line_state":"offline""#,
        ],
    );
    child.kill().unwrap();
    child.wait().unwrap();
}

/// `check` with only the AMI source and the log sink, against `peers`' PBX
/// or the manager interface at `host`.
fn check(peers: &Peers, dir: &Path, host: Option<String>) -> (bool, String) {
    let mut cmd = peers.command(dir, &["check", "--timeout", "10"]);
    if let Some(host) = host {
        cmd.env("AMI_HOST", host);
    }
    let out = cmd
        .env("SINKS", "log")
        .env_remove("AZURE_TENANT_ID")
        .output()
        .unwrap();
    (out.status.success(), common::output_text(&out))
}

#[test]
fn check_says_what_to_fix_on_the_pbx() {
    let peers = Peers::start();
    let dir = tempfile::tempdir().unwrap();
    let (ok, text) = check(&peers, dir.path(), None);
    assert!(ok, "{text}");
    assert!(text.contains("AMI:   127.0.0.1:"), "{text}");
    assert!(
        text.contains("idle (hint PJSIP/1001&Custom:DND1001"),
        "{text}"
    );

    peers.ami.remove_hint("1002");
    let (ok, text) = check(&peers, dir.path(), None);
    assert!(!ok, "{text}");
    assert!(text.contains("add a hint for 1002"), "{text}");

    peers.ami.refuse_logins(true);
    let (ok, text) = check(&peers, dir.path(), None);
    assert!(!ok && text.contains("Authentication failed"), "{text}");
    assert!(text.contains("permit="), "{text}");
    assert!(!text.contains("amisecret"), "{text}");
    peers.ami.refuse_logins(false);

    // A user that may not read system events.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let blind = rt
        .block_on(AmiEmulator::start(
            EmulatorConfig::new()
                .manager_user(ManagerUser::new("blf", "amisecret").read("call"))
                .extensions(["1001", "1002"]),
        ))
        .unwrap();
    let (ok, text) = check(&peers, dir.path(), Some(blind.addr().to_string()));
    assert!(!ok, "{text}");
    assert!(text.contains("read = system,call"), "{text}");

    // Nothing listening.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (ok, text) = check(&peers, dir.path(), Some(format!("127.0.0.1:{port}")));
    assert!(!ok, "{text}");
    assert!(text.contains("enabled = yes"), "{text}");
}
