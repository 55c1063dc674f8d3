//! The event stream over real HTTP on loopback: snapshot, coalesced
//! changes, health, and resuming with `Last-Event-ID`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;
use std::time::Duration;

use common::{board, board_with, now, serve, SseReader};
use line_board::{Access, Health, HealthKind, LineState, LineUpdate, QueueMember};
use serde_json::Value;

/// Reads `changes` events until every extension of `want` has the wanted
/// line state (in any order, in one event or several); returns the events' ids.
async fn await_states(reader: &mut SseReader, want: &[(&str, &str)]) -> Vec<u64> {
    let mut seen: HashMap<String, String> = HashMap::new();
    let mut ids = Vec::new();
    while !want
        .iter()
        .all(|(ext, state)| seen.get(*ext).map(String::as_str) == Some(*state))
    {
        let event = reader.next().await;
        if event.event != "changes" {
            continue;
        }
        ids.push(event.id.as_deref().unwrap().parse().unwrap());
        let json = event.json();
        assert!(json["server_time"].is_string());
        for ext in json["extensions"].as_array().unwrap() {
            seen.insert(
                ext["extension"].as_str().unwrap().to_owned(),
                ext["line_state"].as_str().unwrap().to_owned(),
            );
        }
    }
    ids
}

fn extension_names(json: &Value) -> Vec<&str> {
    json["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["extension"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn snapshot_then_coalesced_changes() {
    let board = board(100);
    let base = serve(board.clone(), Access::open()).await;
    let mut reader = SseReader::open(&format!("{base}/api/v1/events"), &[]).await;

    let snapshot = reader.next().await;
    assert_eq!(snapshot.event, "snapshot");
    let first_id: u64 = snapshot.id.as_deref().unwrap().parse().unwrap();
    assert_eq!(first_id, board.sequence());
    let json = snapshot.json();
    assert_eq!(extension_names(&json), ["1001", "1002", "1003"]);
    assert!(json["sources"].as_array().unwrap().is_empty());
    assert!(json["sinks"].as_array().unwrap().is_empty());
    assert_eq!(json["stale_after_seconds"], 90);
    assert!(json["server_time"].is_string());

    board.record("1001", LineUpdate::new(LineState::Ringing), now());
    board.record("1002", LineUpdate::new(LineState::Busy), now());
    board.record("1001", LineUpdate::new(LineState::Busy), now());
    let ids = await_states(&mut reader, &[("1001", "busy"), ("1002", "busy")]).await;
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    assert!(ids[0] > first_id);
    assert_eq!(*ids.last().unwrap(), board.sequence());

    // Health goes out on its own when it changes.
    board.set_health(
        vec![Health {
            name: "sip".into(),
            kind: HealthKind::Source,
            ok: false,
            detail: "not registered".into(),
            last_success: None,
        }],
        vec![],
    );
    let health = loop {
        let event = reader.next().await;
        if event.event == "health" {
            break event.json();
        }
    };
    assert_eq!(health["sources"][0]["detail"], "not registered");
    assert!(health["sinks"].as_array().unwrap().is_empty());
}

#[tokio::test]
async fn a_change_of_queues_alone_is_an_event() {
    let board = board(100);
    board.record("1003", LineUpdate::new(LineState::Idle), now());
    let base = serve(board.clone(), Access::open()).await;
    let mut reader = SseReader::open(&format!("{base}/api/v1/events"), &[]).await;
    let snapshot = reader.next().await;
    assert_eq!(snapshot.event, "snapshot");
    let carol = &snapshot.json()["extensions"][2];
    assert_eq!(carol["queues"], serde_json::json!([]));
    let since = carol["since"].clone();

    let mut paused = LineUpdate::new(LineState::Idle);
    paused.queues = vec![QueueMember {
        queue: "support".into(),
        paused: true,
        reason: Some("lunch".into()),
        in_call: false,
    }];
    assert!(board.record("1003", paused, now()));
    let changes = loop {
        let event = reader.next().await;
        if event.event == "changes" {
            break event;
        }
    };
    assert_eq!(changes.id.as_deref().unwrap(), board.sequence().to_string());
    let json = changes.json();
    assert_eq!(extension_names(&json), ["1003"]);
    let carol = &json["extensions"][0];
    assert_eq!(
        carol["queues"],
        serde_json::json!([
            { "queue": "support", "paused": true, "reason": "lunch", "in_call": false }
        ])
    );
    assert_eq!(carol["line_state"], "idle");
    assert_eq!(carol["since"], since, "queues do not move since");
}

#[tokio::test]
async fn resume_gets_only_what_was_missed() {
    let board = board(100);
    let base = serve(board.clone(), Access::open()).await;
    let url = format!("{base}/api/v1/events");
    board.record("1001", LineUpdate::new(LineState::Busy), now());

    let mut reader = SseReader::open(&url, &[]).await;
    let snapshot = reader.next().await;
    assert_eq!(snapshot.event, "snapshot");
    let last_id = snapshot.id.unwrap();
    drop(reader);

    // While away: 1002 rings then is busy, 1003 changes and changes back.
    board.record("1002", LineUpdate::new(LineState::Ringing), now());
    board.record("1002", LineUpdate::new(LineState::Busy), now());
    board.record("1003", LineUpdate::new(LineState::Idle), now());

    let mut reader = SseReader::open(&url, &[("last-event-id", &last_id)]).await;
    let first = reader.next().await;
    assert_eq!(first.event, "changes", "no snapshot: {first:?}");
    assert_eq!(first.id.as_deref().unwrap(), board.sequence().to_string());
    let json = first.json();
    assert_eq!(
        extension_names(&json),
        ["1002", "1003"],
        "only the missed ones, once each"
    );
    assert_eq!(json["extensions"][0]["line_state"], "busy");
    let second = reader.next().await;
    assert_eq!(second.event, "health");

    // And goes on from there.
    board.record("1001", LineUpdate::new(LineState::Idle), now());
    await_states(&mut reader, &[("1001", "idle")]).await;
}

#[tokio::test]
async fn a_client_past_the_log_gets_a_fresh_snapshot() {
    let board = board(2);
    let base = serve(board.clone(), Access::open()).await;
    let url = format!("{base}/api/v1/events");
    let mut reader = SseReader::open(&url, &[]).await;
    let last_id = reader.next().await.id.unwrap();
    drop(reader);

    for (ext, state) in [
        ("1001", LineState::Busy),
        ("1002", LineState::Busy),
        ("1003", LineState::Hold),
    ] {
        board.record(ext, LineUpdate::new(state), now());
    }
    let mut reader = SseReader::open(&url, &[("last-event-id", &last_id)]).await;
    let first = reader.next().await;
    assert_eq!(first.event, "snapshot");
    assert_eq!(first.id.as_deref().unwrap(), board.sequence().to_string());
    let json = first.json();
    assert_eq!(json["extensions"][2]["line_state"], "hold");

    // An id of no board of ours, or none at all: a snapshot too.
    for id in ["12", "not-a-number"] {
        let mut reader = SseReader::open(&url, &[("last-event-id", id)]).await;
        assert_eq!(reader.next().await.event, "snapshot", "{id}");
    }
}

#[tokio::test]
async fn a_live_client_behind_the_log_gets_a_snapshot_in_the_stream() {
    // A long batch interval: the changes below land before the client
    // reads again, by which time the log holds only two of the three.
    let board = board_with(2, Duration::from_secs(1));
    let base = serve(board.clone(), Access::open()).await;
    let mut reader = SseReader::open(&format!("{base}/api/v1/events"), &[]).await;
    assert_eq!(reader.next().await.event, "snapshot");
    let states = [LineState::Ringing, LineState::Busy, LineState::Hold];
    for (ext, state) in ["1001", "1002", "1003"].into_iter().zip(states) {
        board.record(ext, LineUpdate::new(state), now());
    }
    // A snapshot (or, on a machine slower than the interval, changes): in
    // the end the state is what was set.
    let mut seen = HashMap::new();
    while seen.len() < 3
        || seen.get("1003").map(String::as_str) != Some("hold")
        || seen.get("1001").map(String::as_str) != Some("ringing")
    {
        let event = reader.next().await;
        assert!(
            event.event == "snapshot" || event.event == "changes",
            "{event:?}"
        );
        for ext in event.json()["extensions"].as_array().unwrap() {
            seen.insert(
                ext["extension"].as_str().unwrap().to_owned(),
                ext["line_state"].as_str().unwrap().to_owned(),
            );
        }
    }
}

#[tokio::test]
async fn the_stream_needs_the_token_too() {
    let board = board(100);
    let base = serve(board, Access::new(Some("s3cret-token"))).await;
    let mut reader = SseReader::open(
        &format!("{base}/api/v1/events"),
        &[("authorization", "Bearer s3cret-token")],
    )
    .await;
    assert_eq!(reader.next().await.event, "snapshot");
}

#[tokio::test]
async fn closing_the_board_ends_the_streams() {
    let board = board(100);
    let base = serve(board.clone(), Access::open()).await;
    let url = format!("{base}/api/v1/events");
    let mut reader = SseReader::open(&url, &[]).await;
    assert_eq!(reader.next().await.event, "snapshot");
    board.close();
    assert!(board.is_closed());
    reader.until_end().await;
    // A client that comes later gets the snapshot, then the end.
    let mut late = SseReader::open(&url, &[]).await;
    let events = late.until_end().await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event, "snapshot");
}

#[tokio::test]
async fn a_change_of_the_teams_read_or_who_set_dnd_alone_is_an_event() {
    let board = board(100);
    let mut on = LineUpdate::new(LineState::Idle);
    on.dnd = true;
    board.record("1001", on, now());
    let base = serve(board.clone(), Access::open()).await;
    let mut reader = SseReader::open(&format!("{base}/api/v1/events"), &[]).await;
    let snapshot = reader.next().await;
    assert_eq!(snapshot.event, "snapshot");
    let alice = &snapshot.json()["extensions"][0];
    assert_eq!(alice["dnd_by"], "pbx");
    assert!(alice["teams_read"].is_null());
    let since = alice["since"].clone();

    assert!(board.set_teams_read("1001", Some("DoNotDisturb/DoNotDisturb")));
    let changes = next_changes(&mut reader).await;
    let json = changes.json();
    assert_eq!(extension_names(&json), ["1001"]);
    assert_eq!(
        json["extensions"][0]["teams_read"],
        "DoNotDisturb/DoNotDisturb"
    );
    assert_eq!(json["extensions"][0]["since"], since);

    assert!(board.set_dnd_by_teams("1001", true));
    let changes = next_changes(&mut reader).await;
    assert_eq!(changes.id.as_deref().unwrap(), board.sequence().to_string());
    let json = changes.json();
    assert_eq!(extension_names(&json), ["1001"]);
    assert_eq!(json["extensions"][0]["dnd_by"], "teams");
    assert_eq!(json["extensions"][0]["since"], since, "since does not move");
}

/// The next `changes` event.
async fn next_changes(reader: &mut SseReader) -> common::SseEvent {
    loop {
        let event = reader.next().await;
        if event.event == "changes" {
            return event;
        }
    }
}
