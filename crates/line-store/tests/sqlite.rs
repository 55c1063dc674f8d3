//! The SQLite backend: upsert, history, retention, one transaction per batch.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, SystemTime};

use line_store::{Direction, LineRow, LineState, LineStore, StoreError, StoreOptions};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

const DAY: u64 = 86_400;

fn url(dir: &tempfile::TempDir) -> String {
    format!("sqlite://{}", dir.path().join("lines.db").display())
}

#[tokio::test]
async fn the_file_is_created_migrated_and_rows_are_upserted() {
    let dir = tempfile::tempdir().unwrap();
    let store = LineStore::connect(&url(&dir)).await.unwrap();
    assert!(dir.path().join("lines.db").exists());
    assert_eq!(store.schema_version().await.unwrap(), 1);

    let mut a = LineRow::new("1001", LineState::Ringing, "sip", at(0));
    a.email = Some("alice@example.com".into());
    a.name = Some("Alice".into());
    a.counterparty = Some("1002".into());
    a.direction = Some(Direction::Inbound);
    a.dnd = Some(false);
    let b = LineRow::new("1002", LineState::Idle, "sip", at(0));
    store.write_batch(&[a.clone(), b.clone()]).await.unwrap();

    let mut a2 = a.clone();
    a2.line_state = LineState::Busy;
    a2.since = at(5);
    a2.updated_at = at(5);
    store.write_batch(&[a2.clone()]).await.unwrap();

    assert_eq!(store.line_states().await.unwrap(), vec![a2.clone(), b]);
    store.close().await;

    // a restart finds the rows and does not migrate again
    let store = LineStore::connect(&url(&dir)).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 1);
    assert_eq!(store.line_states().await.unwrap()[0], a2);
}

#[tokio::test]
async fn every_change_is_kept_in_history_and_the_last_one_per_extension_wins() {
    let dir = tempfile::tempdir().unwrap();
    let store = LineStore::connect(&url(&dir)).await.unwrap();
    let rows = [
        LineRow::new("1001", LineState::Ringing, "sip", at(0)),
        LineRow::new("1001", LineState::Busy, "sip", at(1)),
        LineRow::new("1001", LineState::Idle, "sip", at(2)),
    ];
    store.write_batch(&rows).await.unwrap();
    let states: Vec<LineState> = store
        .history("1001")
        .await
        .unwrap()
        .iter()
        .map(|e| e.line_state)
        .collect();
    assert_eq!(
        states,
        [LineState::Ringing, LineState::Busy, LineState::Idle]
    );
    assert_eq!(store.history("1001").await.unwrap()[2].at, at(2));
    let now = store.line_states().await.unwrap();
    assert_eq!(now.len(), 1);
    assert_eq!(now[0].line_state, LineState::Idle);
}

#[tokio::test]
async fn history_older_than_the_retention_is_pruned() {
    let dir = tempfile::tempdir().unwrap();
    let options = StoreOptions::default().with_history_days(7);
    let store = LineStore::connect_with(&url(&dir), options).await.unwrap();
    store
        .write_batch(&[
            LineRow::new("1001", LineState::Busy, "sip", at(0)),
            LineRow::new("1001", LineState::Idle, "sip", at(DAY)),
            LineRow::new("1001", LineState::Busy, "sip", at(3 * DAY)),
        ])
        .await
        .unwrap();
    // 8 days after the first: the first is older than 7 days, the second is exactly 7
    assert_eq!(store.prune_history(at(8 * DAY)).await.unwrap(), 1);
    assert_eq!(store.history("1001").await.unwrap().len(), 2);
    assert_eq!(store.prune_history(at(8 * DAY)).await.unwrap(), 0);
    assert_eq!(store.prune_history(at(11 * DAY)).await.unwrap(), 2);
    // the current state is never pruned
    assert_eq!(store.line_states().await.unwrap().len(), 1);
}

#[tokio::test]
async fn zero_days_keeps_no_history() {
    let dir = tempfile::tempdir().unwrap();
    // history written with the default retention, then the service restarts with 0
    let store = LineStore::connect(&url(&dir)).await.unwrap();
    store
        .write_batch(&[LineRow::new("1001", LineState::Busy, "sip", at(0))])
        .await
        .unwrap();
    store.close().await;
    let options = StoreOptions::default().with_history_days(0);
    let store = LineStore::connect_with(&url(&dir), options).await.unwrap();
    store
        .write_batch(&[LineRow::new("1001", LineState::Idle, "sip", at(1))])
        .await
        .unwrap();
    assert_eq!(store.history("1001").await.unwrap().len(), 1, "nothing new");
    assert_eq!(
        store.prune_history(at(1)).await.unwrap(),
        1,
        "and the old goes"
    );
    assert_eq!(
        store.line_states().await.unwrap()[0].line_state,
        LineState::Idle
    );
}

#[tokio::test]
async fn a_batch_is_one_transaction() {
    let dir = tempfile::tempdir().unwrap();
    let store = LineStore::connect(&url(&dir)).await.unwrap();
    store
        .write_batch(&[LineRow::new("1001", LineState::Idle, "sip", at(0))])
        .await
        .unwrap();
    // another program refuses one extension's history row: by then the
    // batch's line_states rows are written, and they must not stay behind
    let mut other = sqlx::SqliteConnection::connect(&url(&dir)).await.unwrap();
    sqlx::raw_sql(
        "CREATE TRIGGER refuse_1003 BEFORE INSERT ON line_events WHEN NEW.extension = '1003'
         BEGIN SELECT RAISE(ABORT, 'refused by test'); END",
    )
    .execute(&mut other)
    .await
    .unwrap();
    let err = store
        .write_batch(&[
            LineRow::new("1001", LineState::Busy, "sip", at(1)),
            LineRow::new("1002", LineState::Busy, "sip", at(1)),
            LineRow::new("1003", LineState::Busy, "sip", at(1)),
        ])
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::Query {
                action: "write",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("refused by test"), "{err}");
    assert!(err.is_transient());
    let rows = store.line_states().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].line_state, LineState::Idle);
    assert_eq!(store.history("1001").await.unwrap().len(), 1);
    assert!(store.history("1002").await.unwrap().is_empty());
}

#[tokio::test]
async fn a_big_burst_is_written_whole() {
    let dir = tempfile::tempdir().unwrap();
    let store = LineStore::connect(&url(&dir)).await.unwrap();
    // more rows than one statement takes, each extension twice
    let mut rows: Vec<LineRow> = (0..250)
        .map(|i| LineRow::new(format!("{}", 2000 + i), LineState::Ringing, "sip", at(0)))
        .collect();
    rows.extend(
        (0..250).map(|i| LineRow::new(format!("{}", 2000 + i), LineState::Busy, "sip", at(1))),
    );
    store.write_batch(&rows).await.unwrap();
    let now = store.line_states().await.unwrap();
    assert_eq!(now.len(), 250);
    assert!(now
        .iter()
        .all(|r| r.line_state == LineState::Busy && r.updated_at == at(1)));
    assert_eq!(store.history("2249").await.unwrap().len(), 2);
}

#[tokio::test]
async fn a_missing_directory_says_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!(
        "sqlite://{}",
        dir.path().join("no/such/dir/lines.db").display()
    );
    let err = LineStore::connect(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::SqliteOpen { .. }), "{err:?}");
    let msg = err.to_string();
    assert!(msg.contains("no/such/dir/lines.db"), "{msg}");
    assert!(
        msg.contains("check that its directory exists and is writable"),
        "{msg}"
    );
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    LineStore::connect(&url(&dir)).await.unwrap().close().await;
    let mut other = sqlx::SqliteConnection::connect(&url(&dir)).await.unwrap();
    sqlx::raw_sql("INSERT INTO line_store_migrations VALUES (99, 'future', 'x')")
        .execute(&mut other)
        .await
        .unwrap();
    let err = LineStore::connect(&url(&dir)).await.unwrap_err();
    assert!(
        matches!(
            err,
            StoreError::SchemaTooNew {
                found: 99,
                known: 1
            }
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("upgrade sip-blf-sync"), "{err}");
}

use sqlx::Connection as _;
