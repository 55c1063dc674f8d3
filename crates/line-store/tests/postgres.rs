//! The PostgreSQL backend against a private server (testbed::Postgres):
//! rows, history, LISTEN payloads, and the messages for a refused login,
//! a server that is not there and a missing database.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, SystemTime};

use line_store::{Direction, LineRow, LineState, LineStore, StoreError, StoreOptions};
use sqlx::postgres::PgListener;
use testbed::{Postgres, POSTGRES_PASSWORD};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000 + secs)
}

/// The next `n` notifications on `listener`, as JSON.
async fn payloads(listener: &mut PgListener, n: usize) -> Vec<serde_json::Value> {
    let mut got = Vec::new();
    while got.len() < n {
        let note = tokio::time::timeout(Duration::from_secs(10), listener.recv())
            .await
            .expect("no notification within 10 s")
            .unwrap();
        got.push(serde_json::from_str(note.payload()).unwrap());
    }
    got
}

#[tokio::test]
#[ignore = "real peer: PostgreSQL"]
async fn rows_history_and_notifications() {
    let pg = Postgres::start().unwrap();
    let options = StoreOptions::default()
        .with_notify_channel("phones")
        .with_history_days(7);
    let store = LineStore::connect_with(&pg.url(), options).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 1);

    let mut listener = PgListener::connect(&pg.url()).await.unwrap();
    listener.listen("phones").await.unwrap();

    let mut a = LineRow::new("1001", LineState::Ringing, "sip", at(0));
    a.email = Some("alice@example.com".into());
    a.name = Some("Alice".into());
    a.counterparty = Some("1002".into());
    a.direction = Some(Direction::Outbound);
    a.dnd = Some(true);
    let mut b = LineRow::new("1002", LineState::Ringing, "sip", at(0));
    b.counterparty = Some("1001".into());
    b.direction = Some(Direction::Inbound);
    let mut a_busy = a.clone();
    a_busy.line_state = LineState::Busy;
    a_busy.since = at(2);
    a_busy.updated_at = at(2);
    // the same extension twice in one burst: both are history and both are
    // notified, the later one is the row
    store
        .write_batch(&[a.clone(), b.clone(), a_busy.clone()])
        .await
        .unwrap();
    assert_eq!(store.line_states().await.unwrap(), vec![a_busy.clone(), b]);
    let history: Vec<LineState> = store
        .history("1001")
        .await
        .unwrap()
        .iter()
        .map(|e| e.line_state)
        .collect();
    assert_eq!(history, [LineState::Ringing, LineState::Busy]);

    let got = payloads(&mut listener, 3).await;
    // one extension's changes in order; the two extensions in any order
    let mut by_ext: HashMap<String, Vec<serde_json::Value>> = HashMap::new();
    for p in got {
        by_ext
            .entry(p["extension"].as_str().unwrap().to_owned())
            .or_default()
            .push(p);
    }
    assert_eq!(
        by_ext["1001"],
        [
            serde_json::json!({"extension": "1001", "line_state": "ringing", "counterparty": "1002", "at": "2027-01-15T08:00:00.000000Z"}),
            serde_json::json!({"extension": "1001", "line_state": "busy", "counterparty": "1002", "at": "2027-01-15T08:00:02.000000Z"}),
        ]
    );
    assert_eq!(
        by_ext["1002"],
        [
            serde_json::json!({"extension": "1002", "line_state": "ringing", "counterparty": "1001", "at": "2027-01-15T08:00:00.000000Z"})
        ]
    );

    // the table as a web app reads it, with plain SQL
    let row = pg
        .psql(
            "postgres",
            "SELECT line_state, dnd, counterparty, direction, since AT TIME ZONE 'UTC' FROM line_states WHERE extension = '1001'",
        )
        .unwrap();
    assert_eq!(row.trim(), "busy|t|1002|outbound|2027-01-15 08:00:02");

    // retention: 7 days after the last change everything older goes
    assert_eq!(
        store
            .prune_history(at(2) + Duration::from_secs(7 * 86_400 + 1))
            .await
            .unwrap(),
        3
    );
    store.close().await;

    // a restart does not migrate again and keeps the rows
    let store = LineStore::connect(&pg.url()).await.unwrap();
    assert_eq!(store.schema_version().await.unwrap(), 1);
    assert_eq!(store.line_states().await.unwrap()[0], a_busy);
}

#[tokio::test]
#[ignore = "real peer: PostgreSQL"]
async fn a_failed_batch_writes_and_notifies_nothing() {
    let pg = Postgres::start().unwrap();
    let store = LineStore::connect(&pg.url()).await.unwrap();
    let mut listener = PgListener::connect(&pg.url()).await.unwrap();
    listener.listen("line_state").await.unwrap();
    pg.psql(
        "postgres",
        "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by test'; END $$; \
         CREATE TRIGGER refuse BEFORE INSERT ON line_events FOR EACH ROW \
         WHEN (NEW.extension = '1003') EXECUTE FUNCTION refuse();",
    )
    .unwrap();
    let err = store
        .write_batch(&[
            LineRow::new("1001", LineState::Busy, "sip", at(0)),
            LineRow::new("1003", LineState::Busy, "sip", at(0)),
        ])
        .await
        .unwrap_err();
    assert!(err.to_string().contains("refused by test"), "{err}");
    assert!(store.line_states().await.unwrap().is_empty());

    // the next batch goes through, and its notification is the first one
    store
        .write_batch(&[LineRow::new("1002", LineState::Idle, "sip", at(1))])
        .await
        .unwrap();
    let first = payloads(&mut listener, 1).await;
    assert_eq!(first[0]["extension"], "1002");
}

#[tokio::test]
#[ignore = "real peer: PostgreSQL"]
async fn a_refused_login_names_the_user_and_hides_the_password() {
    let pg = Postgres::start().unwrap();
    let url = pg.url().replace(POSTGRES_PASSWORD, "hunter2");
    let err = LineStore::connect(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::LoginRefused { .. }), "{err:?}");
    assert!(!err.is_transient());
    let msg = err.to_string();
    assert!(
        msg.contains(&format!("PostgreSQL server at {}", pg.addr())),
        "{msg}"
    );
    assert!(
        msg.contains("refused the login of user \"testbed\""),
        "{msg}"
    );
    assert!(
        msg.contains("check the user and password in DATABASE_URL"),
        "{msg}"
    );
    assert!(!msg.contains("hunter2"), "{msg}");
    assert!(!format!("{err:?}").contains("hunter2"));

    let err = LineStore::connect(&pg.url_for("lines")).await.unwrap_err();
    assert!(matches!(err, StoreError::NoSuchDatabase { .. }), "{err:?}");
    assert!(
        err.to_string().contains("create it (createdb lines)"),
        "{err}"
    );
}

#[tokio::test]
#[ignore = "real peer: PostgreSQL"]
async fn a_stopped_server_is_reported_as_unreachable() {
    let mut pg = Postgres::start().unwrap();
    let url = pg.url();
    pg.stop();
    let err = LineStore::connect(&url).await.unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());
    let msg = err.to_string();
    assert!(
        msg.contains(&format!(
            "cannot reach the PostgreSQL server at {}",
            pg.addr()
        )),
        "{msg}"
    );
    assert!(msg.contains("check that it runs"), "{msg}");
    assert!(!msg.contains(POSTGRES_PASSWORD), "{msg}");
}

#[tokio::test]
#[ignore = "real peer: PostgreSQL"]
async fn writes_fail_while_the_server_is_away_and_work_again_after() {
    let mut pg = Postgres::start().unwrap();
    let store = LineStore::connect(&pg.url()).await.unwrap();
    store
        .write_batch(&[LineRow::new("1001", LineState::Idle, "sip", at(0))])
        .await
        .unwrap();

    pg.stop();
    let err = store
        .write_batch(&[LineRow::new("1001", LineState::Busy, "sip", at(1))])
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Unreachable { .. }), "{err:?}");
    assert!(err.is_transient());

    // the same store, no reconnect by the caller: the pool opens a new connection
    pg.restart().unwrap();
    store
        .write_batch(&[LineRow::new("1001", LineState::Busy, "sip", at(1))])
        .await
        .unwrap();
    let rows = store.line_states().await.unwrap();
    assert_eq!(rows[0].line_state, LineState::Busy);
    assert_eq!(rows[0].updated_at, at(1));
}
