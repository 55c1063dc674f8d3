use std::time::Instant;

use ami::parse_message;
use ami::{Event, Incoming};
use sip_blf_engine::{Direction, Fact, LineState, Observation, Party, QueueMember};

use super::*;

const CALL: &str = include_str!("../../tests/fixtures/ami/call-transcript.txt");
const LISTS: &str = include_str!("../../tests/fixtures/ami/lists.txt");
const DND: &str = include_str!("../../tests/fixtures/ami/dnd-events.txt");
const HOLD: &str = include_str!("../../tests/fixtures/ami/hold-call-transcript.txt");

/// The events a real Asterisk sent in a transcript (`### <time> <<` blocks).
fn received(transcript: &str) -> Vec<Event> {
    let mut out = Vec::new();
    for block in transcript.split("\n### ").skip(1) {
        let (head, body) = block.split_once('\n').unwrap_or((block, ""));
        if !head.trim_end().ends_with("<<") {
            continue;
        }
        let text = format!("{}\r\n\r\n", body.trim_end().replace('\n', "\r\n"));
        if let Ok(Ok(Incoming::Event(e))) = parse_message(text.as_bytes()).map(|m| m.classify()) {
            out.push(e);
        }
    }
    out
}

/// The items of list action `id` in lists.txt.
fn list_items(id: &str) -> Vec<Event> {
    received(LISTS)
        .into_iter()
        .filter(|e| e.action_id() == Some(id) && !e.ends_list())
        .collect()
}

fn event(fields: &[(&str, &str)]) -> Event {
    let mut text = String::new();
    for (k, v) in fields {
        text.push_str(&format!("{k}: {v}\r\n"));
    }
    let Ok(Incoming::Event(e)) = parse_message(text.as_bytes()).unwrap().classify() else {
        panic!("not an event: {text}")
    };
    e
}

fn hint(exten: &str, hint: &str, status: &str) -> Event {
    event(&[
        ("Event", "ExtensionStatus"),
        ("Exten", exten),
        ("Context", "ext-local"),
        ("Hint", hint),
        ("Status", status),
    ])
}

fn device(name: &str, state: &str) -> Event {
    event(&[
        ("Event", "DeviceStateChange"),
        ("Device", name),
        ("State", state),
    ])
}

/// The full state without queue members.
fn finish(
    t: &mut AmiTracker,
    hints: &[Event],
    devices: &[Event],
    dnd_flags: &[(String, bool)],
    now: Instant,
) -> Vec<Observation> {
    t.finish_resync(
        Lists {
            hints,
            devices,
            dnd_flags,
            members: &[],
        },
        now,
    )
}

fn tracker(extensions: &[&str]) -> AmiTracker {
    AmiTracker::new(
        "pbx",
        extensions.iter().map(|e| e.to_string()),
        DndScheme::freepbx(),
        None,
    )
}

/// The line states reported for `extension`, in order.
fn lines(observations: &[Observation], extension: &str) -> Vec<LineState> {
    observations
        .iter()
        .filter(|o| o.address == extension)
        .filter_map(|o| match &o.fact {
            Fact::Line { state, .. } => Some(*state),
            _ => None,
        })
        .collect()
}

fn facts_of(observations: &[Observation], extension: &str) -> Vec<Fact> {
    observations
        .iter()
        .filter(|o| o.address == extension)
        .map(|o| o.fact.clone())
        .collect()
}

#[test]
fn a_real_call_reads_as_ringing_busy_idle_with_the_other_party() {
    let now = Instant::now();
    let mut t = tracker(&["1001", "1002", "1003"]);
    t.begin_resync();
    let mut seen = finish(&mut t, &list_items("a1"), &list_items("a2"), &[], now);
    assert_eq!(lines(&seen, "1003"), [LineState::Offline]);
    assert!(seen.contains(&Observation::new(
        "pbx",
        "1003",
        Fact::Registration(false),
        now
    )));
    for e in received(CALL) {
        seen.extend(t.event(&e, now));
    }
    use LineState::*;
    assert_eq!(lines(&seen, "1002"), [Offline, Idle, Ringing, Busy, Idle]);
    assert_eq!(lines(&seen, "1001"), [Offline, Idle, Busy, Idle]);
    assert_eq!(lines(&seen, "1003"), [Offline], "1003 never registered");
    let ringing = seen
        .iter()
        .find(|o| o.address == "1002" && matches!(o.fact, Fact::Line { state: Ringing, .. }))
        .unwrap();
    assert_eq!(
        ringing.fact,
        Fact::Line {
            state: Ringing,
            counterparty: Some(Party {
                number: "1001".into(),
                name: Some("Ext 1001".into())
            }),
            direction: Some(Direction::Inbound),
        }
    );
    let calling = seen
        .iter()
        .find(|o| o.address == "1001" && matches!(o.fact, Fact::Line { state: Busy, .. }))
        .unwrap();
    let Fact::Line {
        counterparty,
        direction,
        ..
    } = &calling.fact
    else {
        panic!()
    };
    assert_eq!(
        counterparty.as_ref().map(|p| p.number.as_str()),
        Some("1002")
    );
    assert_eq!(*direction, Some(Direction::Outbound));
    assert!(seen.contains(&Observation::new(
        "pbx",
        "1001",
        Fact::Registration(true),
        now
    )));
    assert!(t.take_notices().is_empty());
}

#[test]
fn the_held_party_reads_hold() {
    let now = Instant::now();
    let mut t = tracker(&["1001", "1002"]);
    t.begin_resync();
    let mut seen = finish(&mut t, &list_items("a1"), &list_items("a2"), &[], now);
    for e in received(HOLD) {
        seen.extend(t.event(&e, now));
    }
    assert!(lines(&seen, "1002").contains(&LineState::Hold));
    assert!(!lines(&seen, "1001").contains(&LineState::Hold));
    assert_eq!(lines(&seen, "1002").last(), Some(&LineState::Idle));
}

#[test]
fn freepbx_dnd_is_dnd_not_a_call() {
    let now = Instant::now();
    let mut t = tracker(&["1001"]);
    let style = "PJSIP/1001&Custom:DND1001,CustomPresence:1001";
    t.begin_resync();
    let seen = finish(
        &mut t,
        &[hint("1001", style, "0")],
        &[device("PJSIP/1001", "NOT_INUSE")],
        &[],
        now,
    );
    assert_eq!(lines(&seen, "1001"), [LineState::Idle]);
    // What the real Asterisk sent when DND went on and off (dnd-events.txt).
    let mut seen = Vec::new();
    for e in received(DND)
        .into_iter()
        .filter(|e| e.get("Hint").is_none_or(|h| h == style))
    {
        seen.extend(t.event(&e, now));
    }
    let facts = facts_of(&seen, "1001");
    assert!(facts.contains(&Fact::Dnd(true)), "{facts:?}");
    assert!(facts.contains(&Fact::Dnd(false)), "{facts:?}");
    assert!(
        !lines(&seen, "1001").contains(&LineState::Busy),
        "DND shows as a call: {facts:?}"
    );
}

#[test]
fn a_call_under_dnd_is_still_a_call() {
    let now = Instant::now();
    let mut t = tracker(&["1001"]);
    t.begin_resync();
    finish(
        &mut t,
        &[hint("1001", "PJSIP/1001&Custom:DND1001", "2")],
        &[
            device("PJSIP/1001", "NOT_INUSE"),
            device("Custom:DND1001", "BUSY"),
        ],
        &[],
        now,
    );
    assert_eq!(t.dnd("1001"), Some(true));
    let seen = t.event(&device("PJSIP/1001", "INUSE"), now);
    assert_eq!(lines(&seen, "1001"), [LineState::Busy]);
    // Busy stays 2 through the call; the phone going idle is what counts.
    let mut seen = t.event(&hint("1001", "PJSIP/1001&Custom:DND1001", "2"), now);
    seen.extend(t.event(&device("PJSIP/1001", "NOT_INUSE"), now));
    assert_eq!(lines(&seen, "1001"), [LineState::Idle]);
}

#[test]
fn without_device_states_a_busy_dnd_hint_reads_idle() {
    let now = Instant::now();
    let mut t = tracker(&["1001"]);
    t.begin_resync();
    let seen = finish(
        &mut t,
        &[hint("1001", "PJSIP/1001&Custom:DND1001", "2")],
        &[],
        &[("1001".into(), true)],
        now,
    );
    assert_eq!(
        facts_of(&seen, "1001"),
        [Fact::Dnd(true), Fact::line(LineState::Idle)]
    );
}

#[test]
fn astdb_dnd_without_a_custom_device() {
    let now = Instant::now();
    let mut t = tracker(&["1001"]);
    t.begin_resync();
    let seen = finish(
        &mut t,
        &[hint("1001", "PJSIP/1001", "1")],
        &[],
        &[("1001".into(), true)],
        now,
    );
    assert_eq!(
        facts_of(&seen, "1001"),
        [Fact::Dnd(true), Fact::line(LineState::Busy)]
    );
    // The plain Asterisk scheme has no astdb flag: DND is not known.
    let mut t = AmiTracker::new("pbx", ["1001".to_string()], DndScheme::device_only(), None);
    t.begin_resync();
    let seen = finish(
        &mut t,
        &[hint("1001", "PJSIP/1001", "0")],
        &[],
        &[("1001".into(), true)],
        now,
    );
    assert_eq!(facts_of(&seen, "1001"), [Fact::line(LineState::Idle)]);
}

#[test]
fn missing_and_removed_hints_are_named_once() {
    let now = Instant::now();
    let mut t = tracker(&["1001", "1099"]);
    for _ in 0..2 {
        t.begin_resync();
        finish(&mut t, &[hint("1001", "PJSIP/1001", "0")], &[], &[], now);
    }
    assert_eq!(
        t.take_notices(),
        [AmiNotice::NoHint {
            extension: "1099".into()
        }]
    );
    assert!(t.take_notices().is_empty());
    // After a restart, 1001's hint is gone.
    t.begin_resync();
    let seen = finish(&mut t, &[], &[], &[], now);
    assert_eq!(lines(&seen, "1001"), [LineState::Unknown]);
    assert_eq!(
        t.take_notices(),
        [AmiNotice::HintRemoved {
            extension: "1001".into()
        }]
    );
    assert!(AmiNotice::NoHint {
        extension: "1099".into()
    }
    .to_string()
    .contains("1099"));
}

#[test]
fn events_during_a_resync_apply_after_the_lists() {
    let now = Instant::now();
    let mut t = tracker(&["1001"]);
    t.begin_resync();
    assert!(t.event(&hint("1001", "PJSIP/1001", "8"), now).is_empty());
    let seen = finish(&mut t, &[hint("1001", "PJSIP/1001", "0")], &[], &[], now);
    assert_eq!(lines(&seen, "1001"), [LineState::Ringing]);
}

#[test]
fn only_changes_are_reported_and_other_extensions_ignored() {
    let now = Instant::now();
    let mut t = tracker(&["1001"]);
    t.begin_resync();
    finish(&mut t, &[hint("1001", "PJSIP/1001", "0")], &[], &[], now);
    assert!(t.event(&hint("1001", "PJSIP/1001", "0"), now).is_empty());
    assert!(t.event(&hint("2001", "PJSIP/2001", "1"), now).is_empty());
    assert!(t.event(&event(&[("Event", "VarSet")]), now).is_empty());
    assert!(t
        .event(
            &event(&[("Event", "ExtensionStatus"), ("Exten", "1001")]),
            now
        )
        .is_empty());
    assert_eq!(
        lines(&t.event(&hint("1001", "PJSIP/1001", "16"), now), "1001"),
        [LineState::Hold]
    );
    assert_eq!(lines(&t.all_unknown(now), "1001"), [LineState::Unknown]);
    assert!(t.all_unknown(now).is_empty());
}

#[test]
fn every_asterisk_state_has_a_line_state() {
    use ami::ExtensionState as X;
    for (code, want) in [
        (-2, LineState::Unknown),
        (-1, LineState::Unknown),
        (0, LineState::Idle),
        (1, LineState::Busy),
        (2, LineState::Busy),
        (4, LineState::Offline),
        (8, LineState::Ringing),
        (9, LineState::Ringing),
        (16, LineState::Hold),
        (17, LineState::Busy),
        (3, LineState::Unknown),
    ] {
        assert_eq!(line_state(X::from_code(code)), want, "status {code}");
    }
}

#[test]
fn a_removed_hint_event_reads_unknown() {
    let now = Instant::now();
    let mut t = tracker(&["1001"]);
    t.begin_resync();
    finish(&mut t, &[hint("1001", "PJSIP/1001", "0")], &[], &[], now);
    let seen = t.event(&hint("1001", "", "-1"), now);
    assert_eq!(lines(&seen, "1001"), [LineState::Unknown]);
    assert_eq!(t.take_notices().len(), 1);
}

#[test]
fn random_events_never_panic_and_report_only_listed_extensions() {
    use rand::rngs::StdRng;
    use rand::{Rng, SeedableRng};
    let names = [
        "ExtensionStatus",
        "DeviceStateChange",
        "Newchannel",
        "Newstate",
        "NewConnectedLine",
        "Hangup",
        "VarSet",
    ];
    let keys = [
        "Exten",
        "Context",
        "Hint",
        "Status",
        "Device",
        "State",
        "Uniqueid",
        "Channel",
        "ChannelState",
        "ConnectedLineNum",
        "ConnectedLineName",
    ];
    let values = [
        "1001",
        "1002",
        "-2",
        "-1",
        "0",
        "1",
        "2",
        "4",
        "8",
        "9",
        "16",
        "17",
        "99999999999999999999",
        "",
        "<unknown>",
        "PJSIP/1001",
        "PJSIP/1001-00000001",
        "Custom:DND1001",
        "BUSY",
        "INUSE",
        "RINGING",
        "garbage",
        "PJSIP/1001&Custom:DND1001,CustomPresence:1001",
        "-",
        "&&,",
        "ext-local",
    ];
    let mut rng = StdRng::seed_from_u64(16);
    let now = Instant::now();
    let mut t = tracker(&["1001", "1002"]);
    t.begin_resync();
    finish(
        &mut t,
        &[hint("1001", "PJSIP/1001&Custom:DND1001", "0")],
        &[],
        &[],
        now,
    );
    for round in 0..20_000 {
        let mut fields = vec![("Event", names[rng.random_range(0..names.len())])];
        for _ in 0..rng.random_range(0..8) {
            fields.push((
                keys[rng.random_range(0..keys.len())],
                values[rng.random_range(0..values.len())],
            ));
        }
        let e = event(&fields);
        let seen = if round % 500 == 0 {
            t.begin_resync();
            finish(&mut t, &[e], &[], &[], now)
        } else {
            t.event(&e, now)
        };
        for o in seen {
            assert!(["1001", "1002"].contains(&o.address.as_str()), "{o:?}");
        }
    }
}

fn member(event_name: &str, queue: &str, exten: &str, paused: &str, in_call: &str) -> Event {
    event(&[
        ("Event", event_name),
        ("Queue", queue),
        ("Name", &format!("Ext {exten}")),
        ("Location", &format!("Local/{exten}@from-queue/n")),
        ("StateInterface", &format!("PJSIP/{exten}")),
        ("InCall", in_call),
        ("Paused", paused),
        ("PausedReason", if paused == "1" { "lunch" } else { "" }),
    ])
}

#[test]
fn queue_members_are_facts_of_their_extension() {
    let now = Instant::now();
    let mut t = tracker(&["1001", "1002"]);
    t.begin_resync();
    let members = [member("QueueMember", "support", "1001", "1", "0")];
    let seen = t.finish_resync(
        Lists {
            hints: &[
                hint("1001", "PJSIP/1001", "0"),
                hint("1002", "PJSIP/1002", "0"),
            ],
            members: &members,
            ..Lists::default()
        },
        now,
    );
    let paused = QueueMember {
        queue: "support".into(),
        paused: true,
        reason: Some("lunch".into()),
        in_call: false,
    };
    assert!(facts_of(&seen, "1001").contains(&Fact::Queues(vec![paused])));
    assert!(
        !facts_of(&seen, "1002")
            .iter()
            .any(|f| matches!(f, Fact::Queues(_))),
        "no queues, nothing said"
    );
    // Unpaused, then in a call; by the interface alone when the state interface is unknown.
    let seen = t.event(
        &member("QueueMemberStatus", "support", "1001", "0", "1"),
        now,
    );
    assert_eq!(
        facts_of(&seen, "1001"),
        [Fact::Queues(vec![QueueMember {
            queue: "support".into(),
            paused: false,
            reason: None,
            in_call: true,
        }])]
    );
    let mut by_interface = member("QueueMemberAdded", "sales", "1002", "0", "0");
    by_interface.message = ami::Message::from_fields(
        by_interface
            .message
            .fields()
            .iter()
            .filter(|(k, _)| k != "StateInterface")
            .cloned()
            .collect(),
    );
    let seen = t.event(&by_interface, now);
    assert_eq!(facts_of(&seen, "1002").len(), 1);
    let seen = t.event(
        &member("QueueMemberRemoved", "support", "1001", "0", "0"),
        now,
    );
    assert_eq!(facts_of(&seen, "1001"), [Fact::Queues(vec![])]);
    // A member that is no watched extension is ignored.
    assert!(t
        .event(
            &member("QueueMemberStatus", "support", "2001", "1", "0"),
            now
        )
        .is_empty());
    // A new connection whose list lacks 1002's membership clears it.
    t.begin_resync();
    let seen = finish(&mut t, &[hint("1002", "PJSIP/1002", "0")], &[], &[], now);
    assert!(facts_of(&seen, "1002").contains(&Fact::Queues(vec![])));
}

#[test]
fn contact_status_says_registered_or_not() {
    let now = Instant::now();
    let mut t = tracker(&["1002"]);
    t.begin_resync();
    finish(
        &mut t,
        &[hint("1002", "PJSIP/1002", "0")],
        &[device("PJSIP/1002", "NOT_INUSE")],
        &[],
        now,
    );
    // What the real Asterisk sent when 1002 un-REGISTERed, then came back.
    let contact = |status: &str| {
        event(&[
            ("Event", "ContactStatus"),
            ("URI", "sip:1002@127.0.0.1:5172"),
            ("ContactStatus", status),
            ("AOR", "1002"),
            ("EndpointName", "1002"),
        ])
    };
    let seen = t.event(&contact("Removed"), now);
    assert_eq!(facts_of(&seen, "1002"), [Fact::Registration(false)]);
    let seen = t.event(&contact("NonQualified"), now);
    assert_eq!(facts_of(&seen, "1002"), [Fact::Registration(true)]);
    let seen = t.event(&contact("Unreachable"), now);
    assert_eq!(facts_of(&seen, "1002"), [Fact::Registration(false)]);
    assert!(t
        .event(&contact("Reachable"), now)
        .contains(&Observation::new(
            "pbx",
            "1002",
            Fact::Registration(true),
            now
        )));
}
