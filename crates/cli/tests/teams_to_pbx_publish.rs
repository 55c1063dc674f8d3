//! Teams → PBX through SIP PUBLISH, end to end through the binary: a real
//! Kamailio presence server with SIPp phones, the Graph emulator, and a
//! watcher subscribed to 1001's presence, which sees what is published.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use blf::{LineState, Notification};
use common::{http_get, lines_of, status_addr, wait_for_all, wait_until, PATIENCE};
use graph_emulator::{GraphEmulator, Operation};
use sip_ua::driver::spawn;
use sip_ua::driver::EventReceiver;
use sip_ua::{Event, Subscription, UaConfig};
use testbed::{Kamailio, KamailioOptions, SippCall};

const ALICE: &str = "aaaaaaaa-0000-4000-8000-000000000001";

/// The watcher's next NOTIFY for 1001: its line state and body.
async fn next_state(rx: &mut EventReceiver) -> (LineState, String) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Event::Notify(n))) if n.user == "1001" => {
                let state = Notification::parse(n.content_type.as_deref(), &n.body)
                    .map(|n| n.line_state())
                    .unwrap_or(LineState::Unknown);
                return (state, String::from_utf8_lossy(&n.body).into_owned());
            }
            Ok(Some(_)) => {}
            other => panic!("no NOTIFY for 1001 within {PATIENCE:?}: {other:?}"),
        }
    }
}

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn teams_dnd_is_published_to_the_presence_server_and_withdrawn() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let graph = rt
        .block_on(GraphEmulator::start(
            graph_emulator::EmulatorConfig::default(),
        ))
        .unwrap();
    graph.set_client_session(ALICE, "Available", "Available");
    let (_watcher, mut watched) = rt.block_on(async {
        let mut cfg = UaConfig::new(pbx.sip_addr().to_string(), "1002", "pw1002");
        cfg.listen = Some("127.0.0.1:0".parse().unwrap());
        spawn(cfg, vec![Subscription::presence("1001")], None)
            .await
            .unwrap()
    });
    // Nothing published yet.
    let (state, _) = rt.block_on(next_state(&mut watched));
    assert_eq!(state, LineState::Unknown);

    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("extensions.csv"),
        "1001,alice@contoso.com\n1002,bob@contoso.com\n",
    )
    .unwrap();
    let c = graph.config();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .arg("run")
        .current_dir(dir.path())
        .env("SOURCES", "sip")
        .env("TEAMS_TO_PBX", "publish")
        .env("TEAMS_POLL_SECONDS", "1")
        .env("SIP_SERVER", pbx.sip_addr().to_string())
        .env("SIP_USERNAME", "blf")
        .env("SIP_PASSWORD", "blfsecret")
        .env("SIP_LISTEN", "127.0.0.1:0")
        .env("EXTENSIONS_JSON", dir.path().join("extensions.json"))
        .env("PRESENCE_STATE_JSON", dir.path().join("state.json"))
        .env("AZURE_TENANT_ID", &c.tenant_id)
        .env("AZURE_CLIENT_ID", &c.client_id)
        .env("AZURE_CLIENT_SECRET", &c.client_secret)
        .env("GRAPH_BASE_URL", graph.base_url())
        .env("AZURE_AUTHORITY_HOST", graph.authority_url())
        .env("HTTP_LISTEN", "127.0.0.1:0")
        .env("SYNC_DEBOUNCE_MS", "0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let log = lines_of(child.stderr.take().unwrap());
    let mut seen = Vec::new();
    let up = wait_for_all(
        &log,
        &mut seen,
        &[
            "status on http://",
            "subscribed to 1001 ",
            "subscribed to 1002 ",
            "Teams → PBX",
        ],
    );
    let http = status_addr(&up[0]);
    let polls = |n: usize| {
        let start = graph.count(Operation::GetPresencesByUserId);
        wait_until(
            "polls",
            PATIENCE,
            || graph.count(Operation::GetPresencesByUserId) >= start + n,
            String::new,
        );
    };

    // A desk-phone call shows in Teams (ours) and publishes nothing.
    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(300)).unwrap();
    let shows = |id: &str| {
        graph
            .presence_of(id)
            .map(|p| format!("{}/{}", p.availability, p.activity))
            .unwrap_or_default()
    };
    wait_until(
        "alice busy",
        PATIENCE,
        || shows(ALICE) == "Busy/InACall",
        String::new,
    );
    polls(2);
    let (_, metrics) = http_get(&http, "/metrics");
    assert!(!metrics.contains(r#"dnd="on""#), "{metrics}");
    call.hang_up().unwrap();

    // Teams DND: the watcher sees 1001 busy, with a note saying why.
    graph.set_user_preferred(
        ALICE,
        "DoNotDisturb",
        "DoNotDisturb",
        Duration::from_secs(3600),
    );
    let (state, body) = rt.block_on(next_state(&mut watched));
    assert_eq!(state, LineState::Busy, "{body}");
    assert!(body.contains("Teams: DoNotDisturb/DoNotDisturb"), "{body}");

    // Cleared in Teams: withdrawn.
    graph.clear_user_preferred(ALICE);
    let (state, body) = rt.block_on(next_state(&mut watched));
    assert_eq!(state, LineState::Offline, "withdrawn: {body}");

    // A Teams call: published while it lasts.
    graph.start_teams_call(ALICE);
    let (state, body) = rt.block_on(next_state(&mut watched));
    assert_eq!(state, LineState::Busy, "{body}");
    assert!(body.contains("Teams: Busy/InACall"), "{body}");
    graph.end_teams_call(ALICE);
    let (state, body) = rt.block_on(next_state(&mut watched));
    assert_eq!(state, LineState::Offline, "withdrawn: {body}");

    // Published again, then the service stops: withdrawn.
    graph.set_user_preferred(
        ALICE,
        "DoNotDisturb",
        "Presenting",
        Duration::from_secs(3600),
    );
    let (state, _) = rt.block_on(next_state(&mut watched));
    assert_eq!(state, LineState::Busy);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(child.wait().unwrap().success());
    let (state, body) = rt.block_on(next_state(&mut watched));
    assert_eq!(state, LineState::Offline, "withdrawn at the stop: {body}");
}
