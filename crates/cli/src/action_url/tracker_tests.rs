use super::*;
use crate::action_url::event::{parse, EventKind, PhoneEvent, Vendor};

fn ev(kind: EventKind, call_id: Option<&str>, seq: Option<u64>) -> PhoneEvent {
    PhoneEvent {
        vendor: Vendor::Yealink,
        user: "1001".into(),
        name: format!("{kind:?}"),
        kind,
        call_id: call_id.map(str::to_owned),
        remote: None,
        seq,
    }
}

fn line(outcome: Outcome) -> LineState {
    match outcome {
        Outcome::Facts(facts) => facts
            .iter()
            .find_map(|f| match f {
                Fact::Line { state, .. } => Some(*state),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no line fact in {facts:?}")),
        Outcome::Stale(why) => panic!("stale: {why}"),
    }
}

fn get(tracker: &mut Tracker, target: &str) -> Outcome {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    let event = parse("GET", path, Some(query)).unwrap();
    tracker.apply("1001", &event)
}

#[test]
fn the_state_table_without_call_ids() {
    use LineState::*;
    let mut t = Tracker::new();
    let cases = [
        ("/yealink/1001/off_hook", Busy),
        ("/yealink/1001/outgoing_call?remote=1002", Busy),
        ("/yealink/1001/call_established", Busy),
        ("/yealink/1001/hold", Hold),
        ("/yealink/1001/unhold", Busy),
        ("/yealink/1001/call_terminated", Idle),
        ("/yealink/1001/incoming_call?remote=1003", Ringing),
        ("/yealink/1001/missed_call", Idle),
        ("/yealink/1001/incoming_call", Ringing),
        ("/yealink/1001/off_hook", Busy),
        ("/yealink/1001/on_hook", Idle),
        ("/yealink/1001/idle_to_busy", Busy),
        ("/yealink/1001/busy_to_idle", Idle),
    ];
    for (target, want) in cases {
        assert_eq!(line(get(&mut t, target)), want, "{target}");
    }
}

#[test]
fn the_other_party_and_direction_follow_the_call() {
    let mut t = Tracker::new();
    let out = get(
        &mut t,
        "/yealink/1001/incoming_call?remote=sip:1003@pbx&display_remote=Carol",
    );
    let Outcome::Facts(facts) = out else { panic!() };
    assert_eq!(
        facts,
        [Fact::Line {
            state: LineState::Ringing,
            counterparty: Some(Party {
                number: "1003".into(),
                name: Some("Carol".into())
            }),
            direction: Some(Direction::Inbound),
        }]
    );
    // Answered: the party and the direction stay.
    let Outcome::Facts(facts) = get(&mut t, "/yealink/1001/call_established") else {
        panic!()
    };
    assert!(matches!(
        &facts[0],
        Fact::Line { state: LineState::Busy, counterparty: Some(p), direction: Some(Direction::Inbound) }
            if p.number == "1003"
    ));
    get(&mut t, "/yealink/1001/on_hook");
    let Outcome::Facts(facts) = get(&mut t, "/snom/1001/outgoing?remote=1002&call-id=c9") else {
        panic!()
    };
    assert!(matches!(
        &facts[0],
        Fact::Line {
            state: LineState::Busy,
            direction: Some(Direction::Outbound),
            ..
        }
    ));
}

#[test]
fn dnd_and_registration_are_their_own_facts() {
    let mut t = Tracker::new();
    assert_eq!(
        t.apply("1001", &ev(EventKind::Dnd(true), None, None)),
        Outcome::Facts(vec![Fact::Dnd(true)])
    );
    // A first registration with no line known says the line is free.
    assert_eq!(
        t.apply("1001", &ev(EventKind::Registration(true), None, None)),
        Outcome::Facts(vec![Fact::Registration(true), Fact::line(LineState::Idle)])
    );
    assert_eq!(
        t.apply("1001", &ev(EventKind::Registration(false), None, None)),
        Outcome::Facts(vec![Fact::Registration(false)])
    );
    assert_eq!(
        t.apply("1001", &ev(EventKind::Registration(true), None, None)),
        Outcome::Facts(vec![Fact::Registration(true)])
    );
    assert_eq!(
        t.apply("1001", &ev(EventKind::Other, None, None)),
        Outcome::Facts(vec![])
    );
}

#[test]
fn calls_are_counted_by_call_id() {
    use LineState::*;
    let mut t = Tracker::new();
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::Outgoing, Some("a"), None))),
        Busy
    );
    // A second call alerts while the first is up: ringing outranks busy.
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::Ringing, Some("b"), None))),
        Ringing
    );
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::RingingEnded, Some("b"), None))),
        Busy
    );
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::Ringing, Some("c"), None))),
        Ringing
    );
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::Established, Some("c"), None))),
        Busy
    );
    // One call ends: the other is still up.
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::CallEnded, Some("a"), None))),
        Busy
    );
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::CallEnded, Some("c"), None))),
        Idle
    );
}

#[test]
fn a_late_event_of_an_ended_call_is_stale() {
    let mut t = Tracker::new();
    t.apply("1001", &ev(EventKind::Ringing, Some("x"), None));
    // terminated overtook established on the network.
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::CallEnded, Some("x"), None))),
        LineState::Idle
    );
    assert!(matches!(
        t.apply("1001", &ev(EventKind::Established, Some("x"), None)),
        Outcome::Stale(_)
    ));
    // Another extension is not affected.
    assert_eq!(
        line(t.apply("1002", &ev(EventKind::Established, Some("x"), None))),
        LineState::Busy
    );
}

#[test]
fn a_lower_seq_than_seen_is_stale() {
    let mut t = Tracker::new();
    t.apply("1001", &ev(EventKind::OffHook, None, Some(10)));
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::OnHook, None, Some(12)))),
        LineState::Idle
    );
    assert!(matches!(
        t.apply("1001", &ev(EventKind::Established, None, Some(11))),
        Outcome::Stale(_)
    ));
    assert!(matches!(
        t.apply("1001", &ev(EventKind::Dnd(true), None, Some(3))),
        Outcome::Stale(_)
    ));
    // Equal is not older; no seq at all is arrival order.
    assert_eq!(
        t.apply("1001", &ev(EventKind::Dnd(true), None, Some(12))),
        Outcome::Facts(vec![Fact::Dnd(true)])
    );
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::OffHook, None, None))),
        LineState::Busy
    );
}

#[test]
fn hold_without_an_id_holds_the_calls_with_one() {
    use LineState::*;
    let mut t = Tracker::new();
    t.apply("1001", &ev(EventKind::Outgoing, Some("a"), None));
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::Hold, None, None))),
        Hold
    );
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::Resume, None, None))),
        Busy
    );
    // Lifting the handset then the call's id: one call, not two.
    let mut t = Tracker::new();
    t.apply("1001", &ev(EventKind::OffHook, None, None));
    t.apply("1001", &ev(EventKind::Outgoing, Some("q"), None));
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::CallEnded, Some("q"), None))),
        Idle
    );
    // A phone that starts has no call.
    t.apply("1001", &ev(EventKind::Ringing, Some("r"), None));
    assert_eq!(
        line(t.apply("1001", &ev(EventKind::Started, None, None))),
        Idle
    );
}

#[test]
fn the_ended_ids_kept_are_bounded() {
    let mut t = Tracker::new();
    for i in 0..1000 {
        let id = i.to_string();
        t.apply("1001", &ev(EventKind::Ringing, Some(&id), None));
        t.apply("1001", &ev(EventKind::CallEnded, Some(&id), None));
    }
    assert!(t.lines["1001"].ended.len() <= ENDED_KEPT);
    assert!(t.lines["1001"].calls.is_empty());
}
