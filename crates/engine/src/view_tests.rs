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
    assert_eq!(
        changed_line(line(&mut v, "pbx-a", "1002", LineState::Idle)),
        None
    );
    assert_eq!(
        changed_line(line(&mut v, "pbx-a", "1001", LineState::Busy)),
        Some(LineState::Busy)
    );
    // The second phone's call changes nothing: the first still causes the view.
    assert_eq!(
        line(&mut v, "pbx-a", "1002", LineState::Busy),
        Observed::Unchanged
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
    assert_eq!(v.get(&"bob".into()).map(|v| v.person.as_str()), Some("bob"));
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
