use std::time::{Duration, Instant};

use sip_blf_engine::{Directory, Fact, Observation, QueueMember, Runtime, RuntimeConfig};

use super::*;
use crate::model::{DndBy, HealthKind, StateFilter};

fn t(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_292_000 + secs)
}

fn listing(ext: &str, email: &str) -> Listing {
    Listing {
        extension: ext.into(),
        name: Some(format!("Person {ext}")),
        email: Some(email.into()),
        group: None,
    }
}

fn board(capacity: usize) -> Board {
    Board::new(
        [
            listing("1001", "alice@contoso.com"),
            listing("1002", "bob@contoso.com"),
            listing("1003", "Alice@Contoso.com"),
        ],
        BoardConfig::new(Duration::from_secs(60), capacity),
    )
}

fn json_of(changes: &Changes) -> Vec<serde_json::Value> {
    changes
        .extensions
        .iter()
        .map(|j| serde_json::from_str(j).unwrap())
        .collect()
}

#[test]
fn since_moves_only_when_state_or_dnd_changes() {
    let board = board(16);
    assert!(board.set_line("1001", LineUpdate::new(LineState::Idle), t(0)));
    assert_eq!(board.extension("1001").unwrap().since, Some(t(0)));

    // A counterparty alone is a change, but not of `since`.
    let mut busy = LineUpdate::new(LineState::Idle);
    busy.counterparty = Some(Counterparty {
        number: "1002".into(),
        name: None,
    });
    assert!(board.set_line("1001", busy.clone(), t(5)));
    let ext = board.extension("1001").unwrap();
    assert_eq!(ext.since, Some(t(0)));
    assert_eq!(ext.counterparty.unwrap().number, "1002");

    // The same again: no change at all.
    let seq = board.sequence();
    assert!(!board.set_line("1001", busy.clone(), t(6)));
    assert_eq!(board.sequence(), seq);

    // Queues alone: a change, but not of `since`; the same again is none.
    busy.queues = vec![QueueMember {
        queue: "support".into(),
        paused: false,
        reason: None,
        in_call: false,
    }];
    assert!(board.set_line("1001", busy.clone(), t(6)));
    assert_eq!(board.sequence(), seq + 1);
    let ext = board.extension("1001").unwrap();
    assert_eq!(ext.since, Some(t(0)));
    assert_eq!(ext.queues, busy.queues);
    assert!(!board.set_line("1001", busy.clone(), t(6)));
    // A search finds the queue's name.
    let filter = ExtensionFilter {
        q: Some("SUPP".into()),
        ..ExtensionFilter::all()
    };
    assert_eq!(board.extensions(&filter).len(), 1);

    busy.dnd = true;
    assert!(board.set_line("1001", busy.clone(), t(7)));
    assert_eq!(board.extension("1001").unwrap().since, Some(t(7)));
    busy.state = LineState::Busy;
    assert!(board.set_line("1001", busy, t(9)));
    let ext = board.extension("1001").unwrap();
    assert_eq!(
        (ext.line_state, ext.dnd, ext.since),
        (LineState::Busy, true, Some(t(9)))
    );
    assert_eq!(ext.last_event, None, "set_line does not touch");
}

#[test]
fn touch_and_record_set_last_event() {
    let board = board(16);
    assert!(board.touch("1002", t(3)));
    assert_eq!(board.extension("1002").unwrap().last_event, Some(t(3)));
    let seq = board.sequence();
    assert!(board.record("1002", LineUpdate::new(LineState::Ringing), t(4)));
    assert_eq!(board.sequence(), seq + 1, "one change, not two");
    let ext = board.extension("1002").unwrap();
    assert_eq!(
        (ext.line_state, ext.since, ext.last_event),
        (LineState::Ringing, Some(t(4)), Some(t(4)))
    );
}

#[test]
fn unknown_extensions_are_ignored() {
    let board = board(16);
    let seq = board.sequence();
    assert!(!board.set_line("9999", LineUpdate::new(LineState::Busy), t(0)));
    assert!(!board.touch("9999", t(0)));
    assert_eq!(board.set_teams("nobody@contoso.com", teams(true)), 0);
    assert_eq!(board.extension("9999"), None);
    assert_eq!(board.sequence(), seq);
}

fn teams(accepted: bool) -> Teams {
    Teams {
        availability: "Busy".into(),
        activity: "InACall".into(),
        accepted,
        at: t(1),
    }
}

#[test]
fn teams_applies_to_every_extension_of_the_person() {
    let board = board(16);
    assert_eq!(board.set_teams("ALICE@contoso.com", teams(true)), 2);
    assert_eq!(
        board.set_teams("alice@contoso.com", teams(true)),
        0,
        "unchanged"
    );
    assert!(board.extension("1001").unwrap().teams.is_some());
    assert!(board.extension("1003").unwrap().teams.is_some());
    assert!(board.extension("1002").unwrap().teams.is_none());
    assert_eq!(board.clear_teams("alice@contoso.com"), 2);
    assert!(board.extension("1001").unwrap().teams.is_none());
}

#[test]
fn changes_coalesce_per_extension_latest_wins() {
    let board = board(16);
    let cursor = board.sequence();
    board.set_line("1002", LineUpdate::new(LineState::Ringing), t(0));
    board.set_line("1001", LineUpdate::new(LineState::Busy), t(1));
    board.set_line("1002", LineUpdate::new(LineState::Busy), t(2));
    board.set_line("1002", LineUpdate::new(LineState::Idle), t(3));
    let changes = board.changes_since(cursor).unwrap();
    assert_eq!(changes.seq, cursor + 4);
    let json = json_of(&changes);
    assert_eq!(json.len(), 2, "{json:?}");
    assert_eq!(json[0]["extension"], "1001");
    assert_eq!(json[0]["line_state"], "busy");
    assert_eq!(json[1]["extension"], "1002");
    assert_eq!(json[1]["line_state"], "idle");

    // Nothing after the latest.
    assert!(board
        .changes_since(changes.seq)
        .unwrap()
        .extensions
        .is_empty());
    // Part of it.
    let json = json_of(&board.changes_since(cursor + 3).unwrap());
    assert_eq!(json.len(), 1);
    assert_eq!(json[0]["extension"], "1002");
}

#[test]
fn a_cursor_past_the_log_needs_a_snapshot() {
    let board = board(2);
    let cursor = board.sequence();
    for (i, state) in [LineState::Ringing, LineState::Busy, LineState::Idle]
        .into_iter()
        .enumerate()
    {
        board.set_line("1001", LineUpdate::new(state), t(i as u64));
    }
    assert!(board.changes_since(cursor).is_none(), "3 changes, 2 kept");
    assert!(
        board.changes_since(cursor + 1).is_some(),
        "the last 2 are kept"
    );
    assert!(
        board.changes_since(board.sequence() + 1).is_none(),
        "a cursor from elsewhere"
    );
    assert!(board.changes_since(0).is_none());
    let snapshot = board.snapshot();
    assert_eq!(snapshot.seq, board.sequence());
    assert_eq!(snapshot.extensions.len(), 3);
}

#[test]
fn filters_and_order() {
    let board = Board::new(
        ["200", "1001", "30", "ops"].map(Listing::new),
        BoardConfig::default(),
    );
    let order: Vec<String> = board
        .extensions(&ExtensionFilter::all())
        .into_iter()
        .map(|e| e.extension)
        .collect();
    assert_eq!(order, ["30", "200", "1001", "ops"]);

    let mut busy = LineUpdate::new(LineState::Busy);
    busy.counterparty = Some(Counterparty {
        number: "+4930123".into(),
        name: Some("Carol Jones".into()),
    });
    board.set_line("200", busy, t(0));
    let mut dnd = LineUpdate::new(LineState::Idle);
    dnd.dnd = true;
    board.set_line("30", dnd, t(0));
    let only = |filter: ExtensionFilter| -> Vec<String> {
        board
            .extensions(&filter)
            .into_iter()
            .map(|e| e.extension)
            .collect()
    };
    assert_eq!(
        only(ExtensionFilter {
            state: Some(StateFilter::Line(LineState::Busy)),
            q: None
        }),
        ["200"]
    );
    assert_eq!(
        only(ExtensionFilter {
            state: Some(StateFilter::Dnd),
            q: None
        }),
        ["30"]
    );
    assert_eq!(
        only(ExtensionFilter {
            state: None,
            q: Some("CAROL".into())
        }),
        ["200"]
    );
    assert_eq!(
        only(ExtensionFilter {
            state: None,
            q: Some("0".into())
        }),
        ["30", "200", "1001"]
    );
    assert_eq!(
        only(ExtensionFilter {
            state: Some(StateFilter::Line(LineState::Idle)),
            q: Some("0".into())
        }),
        ["30"]
    );
    assert_eq!(
        only(ExtensionFilter {
            state: None,
            q: Some("  ".into())
        })
        .len(),
        4
    );
}

#[test]
fn health_changes_only_when_different() {
    let board = board(16);
    let before = board.health_json().version;
    let sip = Health {
        name: "sip".into(),
        kind: HealthKind::Source,
        ok: true,
        detail: "registered".into(),
        last_success: Some(t(0)),
    };
    board.set_health(vec![sip.clone()], vec![]);
    let after = board.health_since(before).unwrap();
    assert!(after.sources.contains(r#""name":"sip""#));
    assert_eq!(&*after.sinks, "[]");
    board.set_health(vec![sip], vec![]);
    assert!(board.health_since(after.version).is_none());
}

#[tokio::test]
async fn follow_applies_each_line_of_the_system() {
    let mut directory = Directory::new();
    directory.add("pbx-a", "1001", "alice@contoso.com").unwrap();
    directory.add("pbx-a", "1003", "alice@contoso.com").unwrap();
    directory.add("pbx-a", "1002", "bob@contoso.com").unwrap();
    let mut runtime = Runtime::start(directory, RuntimeConfig::default()).unwrap();
    let feed = runtime.add_feed("board").await.unwrap();
    let board = board(16);
    let mut changed = board.subscribe();
    let task = tokio::spawn(board.clone().follow(feed, "pbx-a"));

    let now = Instant::now();
    runtime
        .observe(Observation::new(
            "pbx-a",
            "1001",
            Fact::line(LineState::Busy),
            now,
        ))
        .await
        .unwrap();
    runtime
        .observe(Observation::new("pbx-a", "1002", Fact::Dnd(true), now))
        .await
        .unwrap();
    loop {
        let a = board.extension("1001").unwrap();
        let b = board.extension("1002").unwrap();
        if a.line_state == LineState::Busy && b.dnd {
            assert!(a.last_event.is_some() && b.last_event.is_some());
            // Alice's other phone has not reported: untouched.
            assert_eq!(board.extension("1003").unwrap().last_event, None);
            break;
        }
        tokio::time::timeout(Duration::from_secs(60), changed.changed())
            .await
            .expect("the board changes")
            .unwrap();
    }
    runtime.stop(Duration::from_secs(5)).await;
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("follow ends with the feed")
        .unwrap();
}

#[tokio::test]
async fn follow_applies_queues_alone() {
    let mut directory = Directory::new();
    directory.add("pbx-a", "1001", "alice@contoso.com").unwrap();
    let mut runtime = Runtime::start(directory, RuntimeConfig::default()).unwrap();
    let feed = runtime.add_feed("board").await.unwrap();
    let board = board(16);
    let mut changed = board.subscribe();
    let task = tokio::spawn(board.clone().follow(feed, "pbx-a"));
    let observe = |fact| Observation::new("pbx-a", "1001", fact, Instant::now());

    runtime
        .observe(observe(Fact::line(LineState::Idle)))
        .await
        .unwrap();
    let idle = loop {
        let ext = board.extension("1001").unwrap();
        if ext.line_state == LineState::Idle {
            break ext;
        }
        tokio::time::timeout(Duration::from_secs(60), changed.changed())
            .await
            .expect("the board changes")
            .unwrap();
    };
    let paused = QueueMember {
        queue: "support".into(),
        paused: true,
        reason: Some("lunch".into()),
        in_call: false,
    };
    runtime
        .observe(observe(Fact::Queues(vec![paused.clone()])))
        .await
        .unwrap();
    loop {
        let ext = board.extension("1001").unwrap();
        if !ext.queues.is_empty() {
            assert_eq!(ext.queues, [paused]);
            assert_eq!(ext.line_state, LineState::Idle);
            // A queue change is no change of line or DND.
            assert_eq!(ext.since, idle.since);
            break;
        }
        tokio::time::timeout(Duration::from_secs(60), changed.changed())
            .await
            .expect("the board changes")
            .unwrap();
    }
    runtime.stop(Duration::from_secs(5)).await;
    tokio::time::timeout(Duration::from_secs(60), task)
        .await
        .expect("follow ends with the feed")
        .unwrap();
}

#[test]
fn teams_read_is_a_change_that_does_not_move_since() {
    let board = board(16);
    board.set_line("1001", LineUpdate::new(LineState::Idle), t(0));
    let seq = board.sequence();
    assert!(board.set_teams_read("1001", Some("DoNotDisturb/Presenting")));
    assert_eq!(board.sequence(), seq + 1);
    let ext = board.extension("1001").unwrap();
    assert_eq!(ext.teams_read.as_deref(), Some("DoNotDisturb/Presenting"));
    assert_eq!(ext.since, Some(t(0)));
    assert!(
        !board.set_teams_read("1001", Some("DoNotDisturb/Presenting")),
        "unchanged"
    );
    assert_eq!(board.sequence(), seq + 1);
    let json = json_of(&board.changes_since(seq).unwrap());
    assert_eq!(json[0]["teams_read"], "DoNotDisturb/Presenting");

    assert!(board.set_teams_read("1001", None));
    assert_eq!(board.extension("1001").unwrap().teams_read, None);
    assert!(!board.set_teams_read("9999", Some("Busy/InACall")));
}

fn dnd(on: bool) -> LineUpdate {
    let mut update = LineUpdate::new(LineState::Idle);
    update.dnd = on;
    update
}

#[test]
fn dnd_by_says_who_turned_dnd_on() {
    let board = board(16);
    let dnd_by = |ext: &str| board.extension(ext).unwrap().dnd_by;
    board.set_line("1001", dnd(false), t(0));
    assert_eq!(dnd_by("1001"), None);

    // Set by this service: said before or after the PBX reports DND on.
    assert!(
        !board.set_dnd_by_teams("1001", true),
        "DND off: nothing shows"
    );
    assert!(board.set_line("1001", dnd(true), t(1)));
    assert_eq!(dnd_by("1001"), Some(DndBy::Teams));
    board.set_line("1002", dnd(true), t(1));
    assert_eq!(dnd_by("1002"), Some(DndBy::Pbx));
    let seq = board.sequence();
    assert!(board.set_dnd_by_teams("1002", true));
    assert_eq!(board.sequence(), seq + 1);
    let ext = board.extension("1002").unwrap();
    assert_eq!(
        (ext.dnd_by, ext.since),
        (Some(DndBy::Teams), Some(t(1))),
        "since does not move"
    );
    assert!(!board.set_dnd_by_teams("1002", true), "unchanged");
    let json = json_of(&board.changes_since(seq).unwrap());
    assert_eq!(json[0]["dnd_by"], "teams");

    // Cleared by this service while DND is still on: the PBX's now.
    assert!(board.set_dnd_by_teams("1002", false));
    assert_eq!(dnd_by("1002"), Some(DndBy::Pbx));

    // DND turned off (on the phone): on again, it is the PBX's.
    board.set_line("1001", dnd(false), t(2));
    assert_eq!(dnd_by("1001"), None);
    board.set_line("1001", dnd(true), t(3));
    assert_eq!(dnd_by("1001"), Some(DndBy::Pbx));
    assert!(!board.set_dnd_by_teams("9999", true));
}
