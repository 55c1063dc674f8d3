//! The database sink on SQLite: rows per extension, coalescing, since and
//! updated_at, prepare and finish, replay, and the runtime catching up
//! after the file was locked by another program.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime};

use line_store::{DatabaseSink, LineIdentity, LineRow, LineState, LineStore};
use sip_blf_engine::{
    AddressKey, ChannelSource, Directory, Fact, LaneConfig, Observation, Observed, Party, Runtime,
    RuntimeConfig, Sink, View, Views, Write, WriteReason,
};
use sqlx::Connection;

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("lines.db").display())
}

fn id(extension: &str, email: &str) -> LineIdentity {
    LineIdentity {
        extension: extension.into(),
        email: Some(email.into()),
        name: Some(email.split('@').next().unwrap_or_default().into()),
    }
}

/// Alice on 1001 and 1002, Bob on 1003; 1009 is Bob's too but not in the
/// sink's book.
fn book() -> Vec<(AddressKey, LineIdentity)> {
    vec![
        (
            AddressKey::new("pbx", "1001"),
            id("1001", "alice@example.com"),
        ),
        (
            AddressKey::new("pbx", "1002"),
            id("1002", "alice@example.com"),
        ),
        (
            AddressKey::new("pbx", "1003"),
            id("1003", "bob@example.com"),
        ),
    ]
}

fn directory() -> Directory {
    let mut d = Directory::new();
    d.add("pbx", "1001", "alice@example.com").unwrap();
    d.add("pbx", "1002", "alice@example.com").unwrap();
    d.add("pbx", "1003", "bob@example.com").unwrap();
    d.add("pbx", "1009", "bob@example.com").unwrap();
    d
}

fn obs(address: &str, fact: Fact) -> Observation {
    Observation::new("pbx", address, fact, Instant::now())
}

fn line(address: &str, state: LineState) -> Observation {
    obs(address, Fact::line(state))
}

fn view(views: &mut Views, o: Observation) -> View {
    match views.observe(&o) {
        Observed::Changed(v) => v,
        other => panic!("{o:?} did not change the view: {other:?}"),
    }
}

fn write(sink: &DatabaseSink, v: &View, reason: WriteReason) -> Write<Vec<line_store::HeldLine>> {
    Write {
        person: v.person.clone(),
        held: sink.desired(v).expect("the person has rows"),
        reason,
        caused_at: Instant::now(),
    }
}

async fn sink(dir: &tempfile::TempDir) -> DatabaseSink {
    let store = LineStore::connect(&url(dir)).await.unwrap();
    DatabaseSink::new(store, "sip", book()).unwrap()
}

async fn row(store: &LineStore, extension: &str) -> LineRow {
    store
        .line_states()
        .await
        .unwrap()
        .into_iter()
        .find(|r| r.extension == extension)
        .unwrap_or_else(|| panic!("no row for {extension}"))
}

#[tokio::test]
async fn one_person_on_two_extensions_has_two_rows() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(&dir).await;
    let mut views = Views::new(directory());
    let v = view(
        &mut views,
        obs(
            "1001",
            Fact::Line {
                state: LineState::Busy,
                counterparty: Some(Party {
                    number: "+4930123".into(),
                    name: Some("Carol".into()),
                }),
                direction: Some(sip_blf_engine::Direction::Inbound),
            },
        ),
    );
    let v = {
        let _ = v;
        view(&mut views, line("1002", LineState::Idle))
    };
    let results = sink
        .write(vec![write(&sink, &v, WriteReason::Change)])
        .await;
    assert_eq!(results, [Ok(())]);
    let rows = sink.store().line_states().await.unwrap();
    let got: Vec<(&str, LineState, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.extension.as_str(),
                r.line_state,
                r.counterparty.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        got,
        [
            ("1001", LineState::Busy, Some("+4930123")),
            ("1002", LineState::Idle, None)
        ]
    );
    assert_eq!(rows[0].email.as_deref(), Some("alice@example.com"));
    assert_eq!(rows[0].name.as_deref(), Some("alice"));
    assert_eq!(rows[0].direction, Some(line_store::Direction::Inbound));
    assert_eq!(rows[0].source, "sip");

    // a change on the second phone writes its row only
    let v = view(&mut views, line("1002", LineState::Ringing));
    sink.write(vec![write(&sink, &v, WriteReason::Change)])
        .await;
    assert_eq!(sink.store().history("1001").await.unwrap().len(), 1);
    assert_eq!(sink.store().history("1002").await.unwrap().len(), 2);
    assert_eq!(
        row(sink.store(), "1002").await.line_state,
        LineState::Ringing
    );
}

#[tokio::test]
async fn equal_views_hold_the_same_and_an_address_outside_the_book_is_left_out() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(&dir).await;
    let mut views = Views::new(directory());
    let a = view(&mut views, line("1003", LineState::Busy));
    // 1009 is Bob's phone too, but not in the sink's book: a new view, the same rows
    let b = view(&mut views, line("1009", LineState::Ringing));
    assert_ne!(a, b);
    assert_eq!(sink.desired(&a), sink.desired(&b));
    assert_eq!(sink.desired(&a).unwrap().len(), 1);
    // a person whose reporting addresses are all outside the book: left alone
    let mut views = Views::new(directory());
    let only = view(&mut views, line("1009", LineState::Idle));
    assert_eq!(sink.desired(&only), None);
}

#[tokio::test]
async fn since_is_when_the_state_changed_and_updated_at_when_written() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(&dir).await;
    let mut views = Views::new(directory());
    let v = view(&mut views, line("1003", LineState::Busy));
    let held_at = SystemTime::now();
    let busy = write(&sink, &v, WriteReason::Change);
    sink.write(vec![busy]).await;
    let first = row(sink.store(), "1003").await;
    assert!(first.since <= first.updated_at);
    assert!(first.since + Duration::from_millis(1) >= held_at);

    // DND on: the state stays busy, so since stays; updated_at moves
    let v = view(&mut views, obs("1003", Fact::Dnd(true)));
    let dnd = write(&sink, &v, WriteReason::Change);
    sink.write(vec![dnd]).await;
    let second = row(sink.store(), "1003").await;
    assert_eq!(second.dnd, Some(true));
    assert_eq!(second.since, first.since);
    assert!(second.updated_at > first.updated_at);

    // idle: a new since
    let v = view(&mut views, line("1003", LineState::Idle));
    let idle = write(&sink, &v, WriteReason::Change);
    sink.write(vec![idle]).await;
    let third = row(sink.store(), "1003").await;
    assert!(third.since > second.since);
    assert!(third.since <= third.updated_at);
}

#[tokio::test]
async fn prepare_drops_stale_rows_and_sets_the_rest_unknown_and_finish_too() {
    let dir = tempfile::tempdir().unwrap();
    // what an earlier run left: 1001 busy, and 4711 that is no longer configured
    let store = LineStore::connect(&url(&dir)).await.unwrap();
    let then = SystemTime::now() - Duration::from_secs(30 * 86_400);
    store
        .write_batch(&[
            LineRow::new("1001", LineState::Busy, "sip", then),
            LineRow::new("4711", LineState::Ringing, "sip", then),
        ])
        .await
        .unwrap();
    let sink = DatabaseSink::new(store, "sip", book()).unwrap();
    assert_eq!(sink.prepare().await.unwrap(), 1);
    let rows = sink.store().line_states().await.unwrap();
    let got: Vec<(&str, LineState)> = rows
        .iter()
        .map(|r| (r.extension.as_str(), r.line_state))
        .collect();
    assert_eq!(
        got,
        [
            ("1001", LineState::Unknown),
            ("1002", LineState::Unknown),
            ("1003", LineState::Unknown)
        ]
    );
    assert!(rows.iter().all(|r| r.since > then));
    // history older than 7 days is pruned
    assert!(sink.store().history("4711").await.unwrap().is_empty());

    let mut views = Views::new(directory());
    let v = view(&mut views, line("1001", LineState::Busy));
    sink.write(vec![write(&sink, &v, WriteReason::Replay)])
        .await;
    assert_eq!(row(sink.store(), "1001").await.line_state, LineState::Busy);
    sink.finish().await.unwrap();
    assert!(sink
        .store()
        .line_states()
        .await
        .unwrap()
        .iter()
        .all(|r| r.line_state == LineState::Unknown));
}

#[tokio::test]
async fn a_replay_writes_rows_again_that_the_sink_believes_written() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(&dir).await;
    let mut views = Views::new(directory());
    let v = view(&mut views, line("1003", LineState::Busy));
    sink.write(vec![write(&sink, &v, WriteReason::Change)])
        .await;
    // someone else changed the row meanwhile (or the database was restored)
    sink.store()
        .write_batch(&[LineRow::new(
            "1003",
            LineState::Idle,
            "other",
            SystemTime::now(),
        )])
        .await
        .unwrap();
    // the same value again as a change: the sink knows it wrote it
    sink.write(vec![write(&sink, &v, WriteReason::Change)])
        .await;
    assert_eq!(row(sink.store(), "1003").await.line_state, LineState::Idle);
    // as a replay (after a lost connection): written
    sink.write(vec![write(&sink, &v, WriteReason::Replay)])
        .await;
    let r = row(sink.store(), "1003").await;
    assert_eq!((r.line_state, r.source.as_str()), (LineState::Busy, "sip"));
}

#[test]
fn an_extension_listed_twice_is_refused() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let dir = tempfile::tempdir().unwrap();
        let store = LineStore::connect(&url(&dir)).await.unwrap();
        let mut b = book();
        b.push((
            AddressKey::new("pbx-b", "1001"),
            id("1001", "x@example.com"),
        ));
        let err = DatabaseSink::new(store, "sip", b).unwrap_err();
        assert!(
            err.to_string().contains("list each extension once"),
            "{err}"
        );
    });
}

/// Polls until `done` holds for the table (60 s at most).
async fn wait_for(store: &LineStore, what: &str, done: impl Fn(&[LineRow]) -> bool) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(rows) = store.line_states().await {
            if done(&rows) {
                return;
            }
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the table did not get {what} within 60 s: {:?}",
            store.line_states().await
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn states(rows: &[LineRow]) -> Vec<(String, LineState)> {
    rows.iter()
        .map(|r| (r.extension.clone(), r.line_state))
        .collect()
}

fn short_backoff() -> RuntimeConfig {
    RuntimeConfig::default().with_lane(
        LaneConfig::default()
            .with_max_batch(100)
            .with_backoff(Duration::from_millis(50), Duration::from_millis(500)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_runtime_catches_up_after_another_program_held_the_file_locked() {
    let dir = tempfile::tempdir().unwrap();
    let sink = sink(&dir).await;
    sink.prepare().await.unwrap();
    let reader = LineStore::connect(&url(&dir)).await.unwrap();
    let mut runtime = Runtime::start(directory(), short_backoff()).unwrap();
    let (tx, source) = ChannelSource::channel("sip", 64);
    runtime.add_source(source);
    runtime.add_sink(sink.clone()).await.unwrap();

    tx.send(line("1001", LineState::Idle)).await.unwrap();
    wait_for(&reader, "1001 idle", |rows| {
        rows.iter()
            .any(|r| r.extension == "1001" && r.line_state == LineState::Idle)
    })
    .await;

    // another program takes the write lock and keeps it
    let mut other = sqlx::SqliteConnection::connect(&url(&dir)).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut other)
        .await
        .unwrap();

    // changes keep coming for every extension
    for (address, state) in [
        ("1001", LineState::Ringing),
        ("1002", LineState::Busy),
        ("1003", LineState::Ringing),
        ("1001", LineState::Busy),
        ("1003", LineState::Hold),
        ("1002", LineState::Idle),
    ] {
        tx.send(line(address, state)).await.unwrap();
    }
    // the sink is failing now (its writes wait for the lock, then fail)
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    while runtime.sink_status()[0].failures == 0 {
        assert!(tokio::time::Instant::now() < deadline, "no write failed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tx.send(line("1003", LineState::Offline)).await.unwrap();
    sqlx::raw_sql("ROLLBACK").execute(&mut other).await.unwrap();
    other.close().await.unwrap();

    let want = vec![
        ("1001".to_owned(), LineState::Busy),
        ("1002".to_owned(), LineState::Idle),
        ("1003".to_owned(), LineState::Offline),
    ];
    wait_for(&reader, "the final states", |rows| states(rows) == want).await;
    runtime.stop(Duration::from_secs(10)).await;
    sink.finish().await.unwrap();
    assert!(reader
        .line_states()
        .await
        .unwrap()
        .iter()
        .all(|r| r.line_state == LineState::Unknown));
}
