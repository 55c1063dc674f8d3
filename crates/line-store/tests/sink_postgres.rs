//! The database sink in the engine's runtime against a private PostgreSQL
//! server that goes away while changes keep coming: the table catches up to
//! every extension's final state once it is back, and LISTEN gets the
//! payloads.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use line_store::{DatabaseSink, LineIdentity, LineRow, LineState, LineStore};
use sip_blf_engine::{
    AddressKey, ChannelSource, Directory, Fact, LaneConfig, Observation, Runtime, RuntimeConfig,
};
use sqlx::postgres::PgListener;
use testbed::Postgres;
use tokio::sync::mpsc;

const EXTENSIONS: [&str; 4] = ["1001", "1002", "1003", "1004"];

fn setup() -> (Directory, Vec<(AddressKey, LineIdentity)>) {
    let mut directory = Directory::new();
    let mut book = Vec::new();
    for (i, ext) in EXTENSIONS.iter().enumerate() {
        // 1001 and 1002 are one person's two phones
        let person = format!("user{}@example.com", i.max(1));
        directory.add("pbx", ext, person.as_str()).unwrap();
        book.push((
            AddressKey::new("pbx", *ext),
            LineIdentity {
                extension: (*ext).into(),
                email: Some(person),
                name: None,
            },
        ));
    }
    (directory, book)
}

fn line(address: &str, state: LineState) -> Observation {
    Observation::new("pbx", address, Fact::line(state), Instant::now())
}

fn short_backoff() -> RuntimeConfig {
    RuntimeConfig::default().with_lane(
        LaneConfig::default()
            .with_max_batch(100)
            .with_backoff(Duration::from_millis(50), Duration::from_millis(500)),
    )
}

fn states(rows: &[LineRow]) -> Vec<(String, LineState)> {
    rows.iter()
        .map(|r| (r.extension.clone(), r.line_state))
        .collect()
}

fn want(list: &[(&str, LineState)]) -> Vec<(String, LineState)> {
    list.iter().map(|(e, s)| ((*e).to_owned(), *s)).collect()
}

/// Polls the table until it holds `expected` (60 s at most).
async fn wait_for_table(store: &LineStore, expected: &[(String, LineState)]) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(rows) = store.line_states().await {
            if states(&rows) == expected {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the table did not reach {expected:?} within 60 s: {:?}",
            store.line_states().await.map(|r| states(&r))
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A listener on `line_state` that reports a lost connection instead of
/// reconnecting by itself.
async fn listener(url: &str) -> Result<PgListener, sqlx::Error> {
    let mut l = PgListener::connect(url).await?;
    l.eager_reconnect(false);
    l.listen("line_state").await?;
    Ok(l)
}

/// Every payload on `line_state` from now on. When the server goes away a
/// new listener is connected (as a web app would, reading the table again),
/// so payloads sent while it is away are lost; `{"listening": true}` says
/// that it listens again.
async fn listen(url: &str) -> mpsc::UnboundedReceiver<serde_json::Value> {
    let (tx, rx) = mpsc::unbounded_channel();
    let mut l = listener(url).await.unwrap();
    let url = url.to_owned();
    tokio::spawn(async move {
        loop {
            while let Ok(Some(note)) = l.try_recv().await {
                let payload = serde_json::from_str(note.payload()).unwrap();
                if tx.send(payload).is_err() {
                    return;
                }
            }
            // the connection is lost: connect again until the server is back
            l = loop {
                tokio::time::sleep(Duration::from_millis(100)).await;
                if let Ok(l) = listener(&url).await {
                    break l;
                }
            };
            if tx.send(serde_json::json!({"listening": true})).is_err() {
                return;
            }
        }
    });
    rx
}

/// Takes payloads into `latest` (extension → state) until every extension's
/// latest one is as `expected` (60 s at most).
async fn wait_for_payloads(
    rx: &mut mpsc::UnboundedReceiver<serde_json::Value>,
    latest: &mut HashMap<String, String>,
    expected: &[(String, LineState)],
) {
    let done = |latest: &HashMap<String, String>| {
        expected
            .iter()
            .all(|(e, s)| latest.get(e).map(String::as_str) == Some(s.as_str()))
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while !done(latest) {
        let p = tokio::time::timeout_at(deadline, rx.recv())
            .await
            .unwrap_or_else(|_| panic!("no payloads for {expected:?} within 60 s: {latest:?}"))
            .expect("the listener ended");
        if p.get("listening").is_some() {
            continue;
        }
        latest.insert(
            p["extension"].as_str().unwrap().to_owned(),
            p["line_state"].as_str().unwrap().to_owned(),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: PostgreSQL"]
async fn the_table_catches_up_after_the_server_was_away() {
    let mut pg = Postgres::start().unwrap();
    let (directory, book) = setup();
    let store = LineStore::connect(&pg.url()).await.unwrap();
    let sink = DatabaseSink::new(store, "sip", book).unwrap();
    sink.prepare().await.unwrap();
    let reader = LineStore::connect(&pg.url()).await.unwrap();
    let mut payloads = listen(&pg.url()).await;
    let mut latest = HashMap::new();

    let mut runtime = Runtime::start(directory, short_backoff()).unwrap();
    let (tx, source) = ChannelSource::channel("sip", 64);
    runtime.add_source(source);
    runtime.add_sink(sink.clone()).await.unwrap();

    for ext in EXTENSIONS {
        tx.send(line(ext, LineState::Idle)).await.unwrap();
    }
    let idle = want(&[
        ("1001", LineState::Idle),
        ("1002", LineState::Idle),
        ("1003", LineState::Idle),
        ("1004", LineState::Idle),
    ]);
    wait_for_table(&reader, &idle).await;
    wait_for_payloads(&mut payloads, &mut latest, &idle).await;

    // the server goes away; changes keep coming for every extension
    tokio::task::block_in_place(|| pg.stop());
    for (ext, state) in [
        ("1001", LineState::Ringing),
        ("1003", LineState::Busy),
        ("1001", LineState::Busy),
        ("1002", LineState::Ringing),
        ("1004", LineState::Offline),
    ] {
        tx.send(line(ext, state)).await.unwrap();
    }
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while runtime.sink_status()[0].failures == 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no write failed while the server was away"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    for (ext, state) in [
        ("1002", LineState::Busy),
        ("1003", LineState::Hold),
        ("1004", LineState::Idle),
    ] {
        tx.send(line(ext, state)).await.unwrap();
    }

    tokio::task::block_in_place(|| pg.restart()).unwrap();
    let caught_up = want(&[
        ("1001", LineState::Busy),
        ("1002", LineState::Busy),
        ("1003", LineState::Hold),
        ("1004", LineState::Idle),
    ]);
    wait_for_table(&reader, &caught_up).await;
    assert!(runtime.sink_status()[0].failures > 0);

    // whether the listener was back in time for the catch-up or not, it gets
    // every change once it listens again
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let p = tokio::time::timeout_at(deadline, payloads.recv())
            .await
            .expect("the listener did not listen again within 60 s")
            .expect("the listener ended");
        if p.get("listening").is_some() {
            break;
        }
    }
    for (ext, state) in [
        ("1001", LineState::Idle),
        ("1002", LineState::Hold),
        ("1003", LineState::Idle),
        ("1004", LineState::Ringing),
    ] {
        tx.send(line(ext, state)).await.unwrap();
    }
    let last = want(&[
        ("1001", LineState::Idle),
        ("1002", LineState::Hold),
        ("1003", LineState::Idle),
        ("1004", LineState::Ringing),
    ]);
    wait_for_table(&reader, &last).await;
    wait_for_payloads(&mut payloads, &mut latest, &last).await;

    // a clean stop: nobody vouches for the rows any more
    runtime.stop(Duration::from_secs(10)).await;
    sink.finish().await.unwrap();
    let unknown: Vec<(String, LineState)> = EXTENSIONS
        .iter()
        .map(|e| ((*e).to_owned(), LineState::Unknown))
        .collect();
    wait_for_table(&reader, &unknown).await;
    wait_for_payloads(&mut payloads, &mut latest, &unknown).await;
}
