//! `sip-blf-sync run` with the database sink against a real Kamailio and
//! SIPp phones, on embedded SQLite and on a private PostgreSQL: rows and
//! history during a call, `LISTEN` payloads, a kill -9 mid-call that leaves
//! no stale row after the restart, and every row `unknown` after a stop.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Child, Command, Stdio};
use std::sync::mpsc::Receiver;
use std::time::Duration;

use common::{lines_of, wait_for_all, wait_until};
use line_store::{LineState, LineStore};
use testbed::{Kamailio, KamailioOptions, Postgres, SippCall};

const PATIENCE: Duration = Duration::from_secs(60);

struct Service {
    child: Child,
    err: Receiver<String>,
    log: Vec<String>,
}

fn start(pbx: &Kamailio, dir: &std::path::Path, url: &str) -> Service {
    let mut child = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .args(["run", "--dry-run"])
        .current_dir(dir)
        .env("SIP_SERVER", pbx.sip_addr().to_string())
        .env("SIP_USERNAME", "blf")
        .env("SIP_PASSWORD", "blfsecret")
        .env("SIP_LISTEN", "127.0.0.1:0")
        .env("EXTENSIONS_JSON", dir.join("extensions.json"))
        .env("PRESENCE_STATE_JSON", dir.join("presence-state.json"))
        .env("HTTP_LISTEN", "off")
        .env("SINKS", "log,database")
        .env("DATABASE_URL", url)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let err = lines_of(child.stderr.take().unwrap());
    let mut service = Service {
        child,
        err,
        log: Vec::new(),
    };
    // Both subscriptions, in whatever order.
    wait_for_all(
        &service.err,
        &mut service.log,
        &[
            "line states go to ",
            "subscribed to 1001 ",
            "subscribed to 1002 ",
        ],
    );
    service
}

/// Reads the table (a fresh connection each time, as another program would).
fn rows(rt: &tokio::runtime::Runtime, url: &str) -> Vec<(String, LineState)> {
    rt.block_on(async {
        let store = LineStore::connect(url).await.unwrap();
        let rows = store.line_states().await.unwrap();
        store.close().await;
        rows.into_iter()
            .map(|r| (r.extension, r.line_state))
            .collect()
    })
}

/// Waits until both extensions' rows show `state` (each in its own time).
fn both(rt: &tokio::runtime::Runtime, url: &str, state: LineState) {
    wait_until(
        &format!("1001 and 1002 {state} in line_states"),
        PATIENCE,
        || {
            let last = rows(rt, url);
            ["1001", "1002"]
                .iter()
                .all(|e| last.iter().any(|(x, s)| x == e && *s == state))
        },
        || format!("rows: {:?}", rows(rt, url)),
    );
}

fn signal(child: &Child, name: &str) {
    Command::new("kill")
        .args([name, &child.id().to_string()])
        .status()
        .unwrap();
}

/// The day the test plays on either backend; returns after a clean stop.
fn play(url: &str) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("extensions.csv"),
        "1001,user1@contoso.com\n1002,user2@contoso.com\n",
    )
    .unwrap();
    let mut service = start(&pbx, dir.path(), url);
    both(&rt, url, LineState::Idle);

    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(300)).unwrap();
    both(&rt, url, LineState::Busy);
    // Kamailio's dialog-info names the other party and the direction.
    let parties: Vec<(String, Option<String>, Option<&str>)> = rt.block_on(async {
        let store = LineStore::connect(url).await.unwrap();
        let rows = store.line_states().await.unwrap();
        store.close().await;
        rows.into_iter()
            .map(|r| (r.extension, r.counterparty, r.direction.map(|d| d.as_str())))
            .collect()
    });
    assert!(
        parties.contains(&("1001".into(), Some("1002".into()), Some("outbound")))
            && parties.contains(&("1002".into(), Some("1001".into()), Some("inbound"))),
        "{parties:?}"
    );
    call.hang_up().unwrap();
    call.wait().unwrap();
    both(&rt, url, LineState::Idle);
    let history: Vec<LineState> = rt.block_on(async {
        let store = LineStore::connect(url).await.unwrap();
        let h = store.history("1001").await.unwrap();
        store.close().await;
        h.into_iter().map(|e| e.line_state).collect()
    });
    let busy = history.iter().position(|s| *s == LineState::Busy);
    assert!(
        matches!(busy, Some(i) if history[i..].contains(&LineState::Idle)),
        "1001's history shows the call and its end: {history:?}"
    );

    // kill -9 in the middle of a call; the call ends while nothing watches.
    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(300)).unwrap();
    both(&rt, url, LineState::Busy);
    signal(&service.child, "-KILL");
    service.child.wait().unwrap();
    call.hang_up().unwrap();
    call.wait().unwrap();
    assert!(
        rows(&rt, url).iter().all(|(_, s)| *s == LineState::Busy),
        "the killed run could not update its rows"
    );
    // The next start brings every row back to what the PBX says.
    let mut service = start(&pbx, dir.path(), url);
    both(&rt, url, LineState::Idle);

    // A clean stop: nobody vouches for the rows any more.
    signal(&service.child, "-TERM");
    let status = service.child.wait().unwrap();
    assert!(status.success(), "{status:?}; log: {:#?}", service.log);
    both(&rt, url, LineState::Unknown);
    drop(service.err);
}

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn sqlite_rows_follow_a_call_and_a_restart_leaves_no_stale_row() {
    let db = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", db.path().join("lines.db").display());
    play(&url);
}

#[test]
#[ignore = "real peer: needs kamailio, sipp and postgresql (scripts/install-peers.sh); run by scripts/test-all"]
fn postgres_rows_and_listen_payloads_follow_a_call_and_a_restart_leaves_no_stale_row() {
    let pg = Postgres::start().unwrap();
    let url = pg.url();
    // Listen before anything happens; payloads are read after the call.
    let listen_rt = tokio::runtime::Runtime::new().unwrap();
    let mut listener = listen_rt.block_on(async {
        let mut l = sqlx::postgres::PgListener::connect(&url).await.unwrap();
        l.listen("line_state").await.unwrap();
        l
    });
    play(&url);
    // Every change was announced: 1001 and 1002 went busy and idle.
    let mut payloads: Vec<serde_json::Value> = Vec::new();
    let seen = |p: &[serde_json::Value], ext: &str, state: &str| {
        p.iter()
            .any(|v| v["extension"] == ext && v["line_state"] == state)
    };
    listen_rt.block_on(async {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        while !["1001", "1002"]
            .iter()
            .all(|e| seen(&payloads, e, "busy") && seen(&payloads, e, "idle"))
        {
            let n = tokio::time::timeout_at(deadline, listener.recv())
                .await
                .unwrap_or_else(|_| panic!("payloads so far: {payloads:#?}"))
                .unwrap();
            payloads.push(serde_json::from_str(n.payload()).unwrap());
        }
    });
    // The listener's pool is closed inside the runtime that owns it.
    listen_rt.block_on(async move { drop(listener) });
    let first = &payloads[0];
    for key in ["extension", "line_state", "counterparty", "at"] {
        assert!(first.get(key).is_some(), "{key} in {first}");
    }
}
