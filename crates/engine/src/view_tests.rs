use std::time::Instant;

use super::*;

fn views() -> Views {
    let mut d = Directory::new();
    d.add("pbx-a", "1001", "alice").unwrap();
    d.add("pbx-a", "1002", "alice").unwrap();
    d.add("pbx-b", "2001", "alice").unwrap();
    d.add("pbx-a", "1003", "bob").unwrap();
    Views::new(d)
}

fn obs(system: &str, address: &str, fact: Fact) -> Observation {
    Observation::new(system, address, fact, Instant::now())
}

fn line(views: &mut Views, system: &str, address: &str, state: LineState) -> Observed {
    views.observe(&obs(system, address, Fact::line(state)))
}

fn changed_line(observed: Observed) -> Option<LineState> {
    match observed {
        Observed::Changed(v) => Some(v.line),
        _ => None,
    }
}

#[test]
fn an_address_belongs_to_one_person() {
    let mut d = Directory::new();
    d.add("pbx-a", "1001", "alice").unwrap();
    d.add("pbx-a", "1001", "alice").unwrap();
    let err = d.add("pbx-a", "1001", "bob").unwrap_err();
    assert!(err.to_string().contains("fix the extension list"), "{err}");
    assert_eq!(d.len(), 1);
}

#[test]
fn two_phones_stay_busy_until_both_calls_end() {
    let mut v = views();
    assert_eq!(
        changed_line(line(&mut v, "pbx-a", "1001", LineState::Idle)),
        Some(LineState::Idle)
    );
    // The second phone is listed; the combined line stays idle.
    assert_eq!(
        changed_line(line(&mut v, "pbx-a", "1002", LineState::Idle)),
        Some(LineState::Idle)
    );
    assert_eq!(
        changed_line(line(&mut v, "pbx-a", "1001", LineState::Busy)),
        Some(LineState::Busy)
    );
    // The second phone's call leaves the combined state: the first still
    // causes it; only the second phone's line changed.
    let Observed::Changed(view) = line(&mut v, "pbx-a", "1002", LineState::Busy) else {
        panic!("a change on one phone changes the view");
    };
    assert_eq!(view.line, LineState::Busy);
    assert_eq!(view.cause, Some(AddressKey::new("pbx-a", "1001")));
    let lines: Vec<(&str, LineState)> = view
        .lines
        .iter()
        .map(|l| (l.address.address.as_str(), l.line))
        .collect();
    assert_eq!(
        lines,
        [("1001", LineState::Busy), ("1002", LineState::Busy)]
    );
    // The first call ends: still busy, now because of the second phone.
    let Observed::Changed(view) = line(&mut v, "pbx-a", "1001", LineState::Idle) else {
        panic!("the cause moved to the other phone");
    };
    assert_eq!(view.line, LineState::Busy);
    assert_eq!(view.cause, Some(AddressKey::new("pbx-a", "1002")));
    assert_eq!(
        changed_line(line(&mut v, "pbx-a", "1002", LineState::Idle)),
        Some(LineState::Idle)
    );
}

#[test]
fn two_systems_merge_busy_over_idle() {
    let mut v = views();
    line(&mut v, "pbx-b", "2001", LineState::Idle);
    let Observed::Changed(view) = v.observe(&obs(
        "pbx-a",
        "1001",
        Fact::Line {
            state: LineState::Busy,
            counterparty: Some(Party {
                number: "+4930123".into(),
                name: Some("Carol".into()),
            }),
            direction: Some(Direction::Inbound),
        },
    )) else {
        panic!("busy on pbx-a changes the view");
    };
    assert_eq!(view.line, LineState::Busy);
    assert_eq!(view.cause, Some(AddressKey::new("pbx-a", "1001")));
    assert_eq!(view.direction, Some(Direction::Inbound));
    assert_eq!(view.counterparty.map(|p| p.number), Some("+4930123".into()));
    // The other system saying idle again does not clear the call.
    assert_eq!(
        line(&mut v, "pbx-b", "2001", LineState::Idle),
        Observed::Unchanged
    );
    assert_eq!(
        v.get(&"alice".into()).map(|v| v.line),
        Some(LineState::Busy)
    );
}

#[test]
fn idle_outranks_offline_and_unknown() {
    let mut v = views();
    assert_eq!(
        changed_line(line(&mut v, "pbx-a", "1001", LineState::Offline)),
        Some(LineState::Offline)
    );
    assert_eq!(
        changed_line(line(&mut v, "pbx-b", "2001", LineState::Idle)),
        Some(LineState::Idle)
    );
    // A third phone reporting unknown: idle still, and the phone is listed.
    let Observed::Changed(view) = line(&mut v, "pbx-a", "1002", LineState::Unknown) else {
        panic!("a new phone changes the view");
    };
    assert_eq!(view.line, LineState::Idle);
    assert_eq!(view.lines.len(), 3);
    // The same report again changes nothing.
    assert_eq!(
        line(&mut v, "pbx-a", "1002", LineState::Unknown),
        Observed::Unchanged
    );
}

#[test]
fn an_unregistered_idle_phone_is_offline_and_dnd_is_any() {
    let mut v = views();
    line(&mut v, "pbx-a", "1003", LineState::Idle);
    let Observed::Changed(view) = v.observe(&obs("pbx-a", "1003", Fact::Registration(false)))
    else {
        panic!("unregistered changes the view");
    };
    assert_eq!(
        (view.line, view.registered),
        (LineState::Offline, Some(false))
    );
    let Observed::Changed(view) = v.observe(&obs("pbx-a", "1003", Fact::Dnd(true))) else {
        panic!("dnd changes the view");
    };
    assert!(view.dnd);
    assert_eq!(v.get(&"bob".into()).map(|v| v.person), Some("bob".into()));
}

#[test]
fn unknown_addresses_are_ignored() {
    let mut v = views();
    assert_eq!(
        line(&mut v, "pbx-a", "9999", LineState::Busy),
        Observed::UnknownAddress
    );
    assert_eq!(v.iter().count(), 0);
}

#[test]
fn each_reporting_address_is_in_the_view_on_its_own() {
    let mut v = views();
    line(&mut v, "pbx-b", "2001", LineState::Idle);
    v.observe(&obs(
        "pbx-a",
        "1002",
        Fact::Line {
            state: LineState::Ringing,
            counterparty: Some(Party {
                number: "1003".into(),
                name: None,
            }),
            direction: Some(Direction::Inbound),
        },
    ));
    v.observe(&obs("pbx-b", "2001", Fact::Dnd(true)));
    let Observed::Changed(view) = v.observe(&obs("pbx-b", "2001", Fact::Registration(false)))
    else {
        panic!("unregistered changes the view");
    };
    // 1001 never reported: not listed. In address order: pbx-a before pbx-b.
    assert_eq!(
        view.lines,
        [
            LineView {
                address: AddressKey::new("pbx-a", "1002"),
                line: LineState::Ringing,
                counterparty: Some(Party {
                    number: "1003".into(),
                    name: None
                }),
                direction: Some(Direction::Inbound),
                dnd: None,
                registered: None,
                queues: vec![],
                presence: None,
            },
            LineView {
                address: AddressKey::new("pbx-b", "2001"),
                line: LineState::Offline,
                counterparty: None,
                direction: None,
                dnd: Some(true),
                registered: Some(false),
                queues: vec![],
                presence: None,
            },
        ]
    );
    // The combination is as before.
    assert_eq!(view.line, LineState::Ringing);
    assert!(view.dnd);
    assert_eq!(view.registered, Some(false));
}

#[test]
fn a_change_on_one_phone_that_keeps_the_combined_state_changes_the_view() {
    let mut v = views();
    line(&mut v, "pbx-a", "1001", LineState::Busy);
    line(&mut v, "pbx-a", "1002", LineState::Idle);
    let before = v.get(&"alice".into()).unwrap();
    // 1002 goes from idle to hold: alice stays busy (1001), yet the view moves.
    let Observed::Changed(after) = line(&mut v, "pbx-a", "1002", LineState::Hold) else {
        panic!("the line of 1002 changed");
    };
    assert_eq!(
        (after.line, &after.cause, after.dnd, after.registered),
        (before.line, &before.cause, before.dnd, before.registered)
    );
    assert_eq!(after.lines[1].line, LineState::Hold);
    assert_ne!(after, before);
}

#[test]
fn a_report_that_shows_the_same_line_changes_nothing() {
    let mut v = views();
    v.observe(&obs("pbx-a", "1003", Fact::Registration(false)));
    assert_eq!(
        changed_line(line(&mut v, "pbx-a", "1003", LineState::Idle)),
        None,
        "unregistered and idle is offline, as before"
    );
    assert_eq!(
        line(&mut v, "pbx-a", "1003", LineState::Unknown),
        Observed::Unchanged
    );
    assert_eq!(
        changed_line(line(&mut v, "pbx-a", "1003", LineState::Busy)),
        Some(LineState::Busy),
        "a call shows even when unregistered"
    );
}

#[test]
fn a_view_asked_for_is_the_last_view_changed_to() {
    let mut v = views();
    line(&mut v, "pbx-a", "1001", LineState::Busy);
    line(&mut v, "pbx-b", "2001", LineState::Busy);
    // 1001's call ends; 2001 now causes the view and keeps causing it when
    // 1001 is busy again (the earlier cause wins a tie).
    line(&mut v, "pbx-a", "1001", LineState::Idle);
    let Observed::Changed(last) = line(&mut v, "pbx-a", "1001", LineState::Busy) else {
        panic!("1001's line changed");
    };
    assert_eq!(last.cause, Some(AddressKey::new("pbx-b", "2001")));
    assert_eq!(v.get(&"alice".into()), Some(last.clone()));
    assert_eq!(v.iter().next(), Some(last));
}

fn member(queue: &str, paused: bool, reason: Option<&str>, in_call: bool) -> QueueMember {
    QueueMember {
        queue: queue.into(),
        paused,
        reason: reason.map(Into::into),
        in_call,
    }
}

fn queues(views: &mut Views, system: &str, address: &str, members: &[QueueMember]) -> Observed {
    views.observe(&obs(system, address, Fact::Queues(members.to_vec())))
}

#[test]
fn a_change_of_queues_alone_changes_the_view() {
    let mut v = views();
    line(&mut v, "pbx-a", "1003", LineState::Idle);
    let Observed::Changed(view) = queues(
        &mut v,
        "pbx-a",
        "1003",
        &[member("support", false, None, false)],
    ) else {
        panic!("joining a queue changes the view");
    };
    assert_eq!(view.line, LineState::Idle);
    assert_eq!(view.queues, [member("support", false, None, false)]);
    let Observed::Changed(view) = queues(
        &mut v,
        "pbx-a",
        "1003",
        &[member("support", true, Some("lunch"), false)],
    ) else {
        panic!("a pause changes the view");
    };
    assert_eq!(view.queues, [member("support", true, Some("lunch"), false)]);
    assert_eq!(view.lines[0].queues, view.queues);
    // The same memberships again change nothing.
    assert_eq!(
        queues(
            &mut v,
            "pbx-a",
            "1003",
            &[member("support", true, Some("lunch"), false)]
        ),
        Observed::Unchanged
    );
    // A line report leaves the queues as they were.
    let Observed::Changed(view) = line(&mut v, "pbx-a", "1003", LineState::Busy) else {
        panic!("the line changed");
    };
    assert_eq!(view.queues, [member("support", true, Some("lunch"), false)]);
}

#[test]
fn queues_are_sorted_by_name_in_line_and_view() {
    let mut v = views();
    let Observed::Changed(view) = queues(
        &mut v,
        "pbx-a",
        "1003",
        &[
            member("support", false, None, false),
            member("billing", false, None, true),
        ],
    ) else {
        panic!("a first report changes the view");
    };
    let names: Vec<&str> = view.queues.iter().map(|q| q.queue.as_str()).collect();
    assert_eq!(names, ["billing", "support"]);
    assert_eq!(view.lines[0].queues, view.queues);
    // The order of a report does not matter.
    assert_eq!(
        queues(
            &mut v,
            "pbx-a",
            "1003",
            &[
                member("billing", false, None, true),
                member("support", false, None, false),
            ]
        ),
        Observed::Unchanged
    );
}

#[test]
fn one_queue_on_two_addresses_combines_into_one() {
    let mut v = views();
    queues(
        &mut v,
        "pbx-a",
        "1001",
        &[
            member("sales", true, Some("meeting"), false),
            member("support", false, None, false),
        ],
    );
    queues(
        &mut v,
        "pbx-a",
        "1002",
        &[member("support", true, Some("lunch"), true)],
    );
    let Observed::Changed(view) = queues(
        &mut v,
        "pbx-b",
        "2001",
        &[
            member("sales", true, Some("training"), false),
            member("support", true, Some("break"), false),
        ],
    ) else {
        panic!("2001's queues changed");
    };
    assert_eq!(
        view.queues,
        [
            // Paused on both: paused, the first address's reason.
            member("sales", true, Some("meeting"), false),
            // Free on 1001: not paused; in a call on 1002; the reason of
            // the first paused one (1002).
            member("support", false, Some("lunch"), true),
        ]
    );
    // Each line keeps its own.
    assert_eq!(
        view.lines[1].queues,
        [member("support", true, Some("lunch"), true)]
    );
    // 1001 is paused too: support is paused, with 1001's reason now first.
    let Observed::Changed(view) = queues(
        &mut v,
        "pbx-a",
        "1001",
        &[
            member("sales", true, Some("meeting"), false),
            member("support", true, None, false),
        ],
    ) else {
        panic!("1001's queues changed");
    };
    assert_eq!(view.queues[1], member("support", true, None, true));
}

#[test]
fn an_empty_list_clears_the_queues() {
    let mut v = views();
    queues(
        &mut v,
        "pbx-a",
        "1001",
        &[member("support", true, Some("lunch"), false)],
    );
    queues(
        &mut v,
        "pbx-a",
        "1002",
        &[member("sales", false, None, false)],
    );
    let Observed::Changed(view) = queues(&mut v, "pbx-a", "1001", &[]) else {
        panic!("leaving every queue changes the view");
    };
    assert_eq!(view.queues, [member("sales", false, None, false)]);
    assert!(view.lines[0].queues.is_empty());
    let Observed::Changed(view) = queues(&mut v, "pbx-a", "1002", &[]) else {
        panic!("leaving every queue changes the view");
    };
    assert!(view.queues.is_empty());
    assert!(view.lines.iter().all(|l| l.queues.is_empty()));
    // A line without queues has no `queues` key in JSON.
    let json = serde_json::to_value(&view.lines[0]).unwrap();
    assert!(json.get("queues").is_none(), "{json}");
}

#[test]
fn a_reason_comes_only_with_a_pause() {
    let mut v = views();
    let Observed::Changed(view) = queues(
        &mut v,
        "pbx-a",
        "1003",
        &[member("support", false, Some("lunch"), false)],
    ) else {
        panic!("a first report changes the view");
    };
    assert_eq!(view.queues, [member("support", false, None, false)]);
    assert_eq!(view.lines[0].queues, view.queues);
}

fn teams_views() -> Views {
    let mut d = Directory::new();
    d.add("pbx-a", "1001", "alice").unwrap();
    d.add("teams", "alice", "alice").unwrap();
    Views::new(d)
}

fn presence(availability: &str, activity: &str) -> Fact {
    Fact::Presence(TeamsPresence::new(availability, activity))
}

#[test]
fn a_presence_change_alone_changes_the_view() {
    let mut v = teams_views();
    line(&mut v, "pbx-a", "1001", LineState::Idle);
    let Observed::Changed(view) = v.observe(&obs("teams", "alice", presence("Busy", "InACall")))
    else {
        panic!("a first presence changes the view");
    };
    assert_eq!(view.presence, Some(TeamsPresence::new("Busy", "InACall")));
    assert_eq!(
        v.observe(&obs("teams", "alice", presence("Busy", "InACall"))),
        Observed::Unchanged
    );
    let Observed::Changed(view) =
        v.observe(&obs("teams", "alice", presence("Available", "Available")))
    else {
        panic!("another presence changes the view");
    };
    assert_eq!(
        view.presence,
        Some(TeamsPresence::new("Available", "Available"))
    );
    // Nothing else moved.
    assert_eq!(view.line, LineState::Idle);
    assert_eq!(v.get(&"alice".into()), Some(view));
}

#[test]
fn an_address_with_only_a_presence_does_not_change_the_line() {
    let mut v = teams_views();
    // Only the presence is known: the person's line is unknown, with no cause.
    let Observed::Changed(view) = v.observe(&obs("teams", "alice", presence("Busy", "InACall")))
    else {
        panic!("a first presence shows the person");
    };
    assert_eq!(view.line, LineState::Unknown);
    assert_eq!(view.cause, None);
    assert_eq!(view.registered, None);
    let teams_line = &view.lines[0];
    assert_eq!(teams_line.address, AddressKey::new("teams", "alice"));
    assert_eq!(teams_line.line, LineState::Unknown);
    assert_eq!(
        teams_line.presence,
        Some(TeamsPresence::new("Busy", "InACall"))
    );
    // The phone reports offline: it gives the line, the Teams address does not.
    let Observed::Changed(view) = v.observe(&obs("pbx-a", "1001", Fact::Registration(false)))
    else {
        panic!("the phone changes the view");
    };
    assert_eq!(view.line, LineState::Offline);
    assert_eq!(view.cause, Some(AddressKey::new("pbx-a", "1001")));
    assert_eq!(view.registered, Some(false));
    assert_eq!(view.presence, Some(TeamsPresence::new("Busy", "InACall")));
    // A Teams address listed first in order does not take the cause either.
    let mut d = Directory::new();
    d.add("pbx", "1001", "bob").unwrap();
    d.add("a-teams", "bob", "bob").unwrap();
    let mut v = Views::new(d);
    v.observe(&obs("a-teams", "bob", presence("Away", "Away")));
    let Observed::Changed(view) = v.observe(&obs("pbx", "1001", Fact::line(LineState::Unknown)))
    else {
        panic!("the phone's first report changes the view");
    };
    assert_eq!(view.cause, Some(AddressKey::new("pbx", "1001")));
    assert_eq!(view.lines.len(), 2);
}

#[test]
fn the_last_reported_presence_shows() {
    let mut d = Directory::new();
    d.add("teams", "alice", "alice").unwrap();
    d.add("teams-b", "alice", "alice").unwrap();
    let mut v = Views::new(d);
    v.observe(&obs("teams", "alice", presence("Busy", "InACall")));
    v.observe(&obs("teams-b", "alice", presence("Away", "Away")));
    // The first address says again what it said: it is the last report now.
    let Observed::Changed(view) = v.observe(&obs("teams", "alice", presence("Busy", "InACall")))
    else {
        panic!("the last report shows");
    };
    assert_eq!(view.presence, Some(TeamsPresence::new("Busy", "InACall")));
}
