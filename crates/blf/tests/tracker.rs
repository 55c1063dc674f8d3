//! The per-subscription tracker: full replaces, partial merges, versions.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use blf::{EmptyBody, LineState, Notification, Tracker, TrackerEvent};

fn di(version: u64, state: &str, dialogs: &[(&str, &str, &str)]) -> Notification {
    let mut body = format!(
        r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" state="{state}" entity="sip:1@x">"#
    );
    for (id, direction, st) in dialogs {
        body.push_str(&format!(
            r#"<dialog id="{id}" direction="{direction}"><state>{st}</state></dialog>"#
        ));
    }
    body.push_str("</dialog-info>");
    Notification::parse(Some("application/dialog-info+xml"), body.as_bytes()).unwrap()
}

#[test]
fn starts_unknown() {
    assert_eq!(Tracker::new().line_state(), LineState::Unknown);
}

#[test]
fn full_replaces_the_known_dialogs() {
    let mut t = Tracker::new();
    let u = t.apply(di(
        1,
        "full",
        &[("a", "recipient", "confirmed"), ("b", "recipient", "early")],
    ));
    assert_eq!(
        (u.event, u.line_state, u.changed),
        (TrackerEvent::Full, LineState::Ringing, true)
    );
    assert_eq!(t.dialogs().len(), 2);
    let u = t.apply(di(2, "full", &[("c", "initiator", "confirmed")]));
    assert_eq!(
        (u.event, u.line_state),
        (TrackerEvent::Full, LineState::Busy)
    );
    let ids: Vec<_> = t.dialogs().iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["c"]);
    let u = t.apply(di(3, "full", &[]));
    assert_eq!((u.line_state, u.changed), (LineState::Idle, true));
    assert!(t.dialogs().is_empty());
    assert_eq!(t.version(), Some(3));
}

#[test]
fn partial_merges_by_dialog_id() {
    let mut t = Tracker::new();
    t.apply(di(1, "full", &[("a", "recipient", "confirmed")]));
    // new dialog b ringing: merged next to a
    let u = t.apply(di(2, "partial", &[("b", "recipient", "early")]));
    assert_eq!(
        (u.event, u.line_state),
        (TrackerEvent::Partial, LineState::Ringing)
    );
    assert_eq!(t.dialogs().len(), 2);
    // b answered: replaces b, a untouched
    let u = t.apply(di(3, "partial", &[("b", "recipient", "confirmed")]));
    assert_eq!(u.line_state, LineState::Busy);
    assert_eq!(t.dialogs().len(), 2);
    // a ends: removed, b still busy
    let u = t.apply(di(4, "partial", &[("a", "recipient", "terminated")]));
    assert_eq!((u.line_state, u.changed), (LineState::Busy, false));
    let ids: Vec<_> = t.dialogs().iter().map(|d| d.id.as_str()).collect();
    assert_eq!(ids, ["b"]);
    // b ends: idle
    let u = t.apply(di(5, "partial", &[("b", "recipient", "terminated")]));
    assert_eq!((u.line_state, u.changed), (LineState::Idle, true));
}

#[test]
fn equal_version_is_a_duplicate() {
    let mut t = Tracker::new();
    t.apply(di(7, "full", &[("a", "recipient", "early")]));
    let u = t.apply(di(7, "full", &[("a", "recipient", "confirmed")]));
    assert_eq!(u.event, TrackerEvent::Duplicate { version: 7 });
    assert_eq!((u.line_state, u.changed), (LineState::Ringing, false));
    let u = t.apply(di(7, "partial", &[("a", "recipient", "confirmed")]));
    assert_eq!(u.event, TrackerEvent::Duplicate { version: 7 });
    assert_eq!(t.line_state(), LineState::Ringing);
}

#[test]
fn gap_in_partial_versions_asks_for_resync() {
    let mut t = Tracker::new();
    t.apply(di(1, "full", &[("a", "recipient", "early")]));
    let u = t.apply(di(3, "partial", &[("a", "recipient", "confirmed")]));
    assert_eq!(
        u.event,
        TrackerEvent::ResyncNeeded {
            expected: Some(2),
            received: Some(3)
        }
    );
    assert_eq!((u.line_state, u.changed), (LineState::Ringing, false));
    assert!(u.refresh, "the gap asks for a refresh");
    // A later partial of the same gap does not ask again: the full state is on its way.
    let u = t.apply(di(4, "partial", &[("a", "recipient", "confirmed")]));
    assert!(matches!(u.event, TrackerEvent::ResyncNeeded { .. }));
    assert!(!u.refresh);
    // the full document from the refresh is accepted
    let u = t.apply(di(4, "full", &[("a", "recipient", "confirmed")]));
    assert_eq!(
        (u.event, u.line_state, u.refresh),
        (TrackerEvent::Full, LineState::Busy, false)
    );
    // and partials continue from there
    let u = t.apply(di(5, "partial", &[("a", "recipient", "terminated")]));
    assert_eq!(
        (u.event, u.line_state, u.refresh),
        (TrackerEvent::Partial, LineState::Idle, false)
    );
    // A new gap asks again.
    let u = t.apply(di(9, "partial", &[("b", "recipient", "early")]));
    assert!(matches!(u.event, TrackerEvent::ResyncNeeded { .. }));
    assert!(u.refresh);
}

#[test]
fn partial_before_any_full_asks_for_resync() {
    let mut t = Tracker::new();
    let u = t.apply(di(5, "partial", &[("a", "recipient", "early")]));
    assert_eq!(
        u.event,
        TrackerEvent::ResyncNeeded {
            expected: None,
            received: Some(5)
        }
    );
    assert_eq!(u.line_state, LineState::Unknown);
    assert!(u.refresh);
}

#[test]
fn older_partial_is_stale() {
    let mut t = Tracker::new();
    t.apply(di(5, "full", &[("a", "recipient", "confirmed")]));
    let u = t.apply(di(4, "partial", &[("a", "recipient", "early")]));
    assert_eq!(
        u.event,
        TrackerEvent::Stale {
            version: 4,
            current: 5
        }
    );
    assert_eq!(t.line_state(), LineState::Busy);
}

#[test]
fn full_with_version_backwards_is_accepted_and_reported() {
    let mut t = Tracker::new();
    t.apply(di(40, "full", &[("a", "recipient", "confirmed")]));
    let u = t.apply(di(0, "full", &[]));
    assert_eq!(
        u.event,
        TrackerEvent::Restarted {
            previous: 40,
            version: 0
        }
    );
    assert_eq!((u.line_state, u.changed), (LineState::Idle, true));
    // never frozen: the next versions apply normally
    let u = t.apply(di(1, "full", &[("b", "recipient", "early")]));
    assert_eq!(
        (u.event, u.line_state),
        (TrackerEvent::Full, LineState::Ringing)
    );
    let u = t.apply(di(2, "partial", &[("b", "recipient", "confirmed")]));
    assert_eq!(
        (u.event, u.line_state),
        (TrackerEvent::Partial, LineState::Busy)
    );
}

#[test]
fn empty_body_means_no_dialogs_by_default() {
    let mut t = Tracker::new();
    assert_eq!(t.empty_body(), EmptyBody::NoDialogs);
    let u = t.apply(Notification::Empty);
    assert_eq!(
        (u.event, u.line_state),
        (TrackerEvent::Empty, LineState::Idle)
    );
    t.apply(di(2, "full", &[("a", "initiator", "Trying")]));
    assert_eq!(t.line_state(), LineState::Busy);
    let u = t.apply(Notification::Empty);
    assert_eq!((u.line_state, u.changed), (LineState::Idle, true));
    assert!(t.dialogs().is_empty());
    // Kamailio bumped the version for the body-less NOTIFY: a partial after it still merges.
    let u = t.apply(di(9, "partial", &[("b", "recipient", "early")]));
    assert_eq!(
        (u.event, u.line_state),
        (TrackerEvent::Partial, LineState::Ringing)
    );
}

#[test]
fn empty_body_can_be_read_as_unknown() {
    let mut t = Tracker::with_empty_body(EmptyBody::Unknown);
    t.apply(di(1, "full", &[("a", "recipient", "confirmed")]));
    let u = t.apply(Notification::Empty);
    assert_eq!(
        (u.event, u.line_state),
        (TrackerEvent::Empty, LineState::Unknown)
    );
}

#[test]
fn kamailio_lab_sequence() {
    // 1001 in the lab demo: no body, Trying, early, confirmed, terminated, terminated, then
    // the body-less NOTIFY once the terminated state expires.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/kamailio");
    let steps = [
        (None, LineState::Idle),
        (Some("busy_caller_trying.xml"), LineState::Busy),
        (Some("busy_caller_early.xml"), LineState::Busy),
        (Some("busy_caller_confirmed.xml"), LineState::Busy),
        (Some("idle_caller_terminated.xml"), LineState::Idle),
        (
            Some("idle_caller_terminated_unsubscribe.xml"),
            LineState::Idle,
        ),
        (None, LineState::Idle),
    ];
    let mut t = Tracker::new();
    for (file, expected) in steps {
        let body = file
            .map(|f| std::fs::read(dir.join(f)).unwrap())
            .unwrap_or_default();
        let ct = file.map(|_| "application/dialog-info+xml");
        let u = t.apply(Notification::parse(ct, &body).unwrap());
        assert_eq!(u.line_state, expected, "{file:?}");
        assert!(!matches!(
            u.event,
            TrackerEvent::ResyncNeeded { .. } | TrackerEvent::Duplicate { .. }
        ));
    }
}

#[test]
fn pidf_replaces_the_state() {
    let mut t = Tracker::new();
    let body = br#"<presence xmlns="urn:ietf:params:xml:ns:pidf"><tuple id="1"><status><basic>closed</basic></status></tuple></presence>"#;
    let u = t.apply(Notification::parse(Some("application/pidf+xml"), body).unwrap());
    assert_eq!(
        (u.event, u.line_state),
        (TrackerEvent::Presence, LineState::Offline)
    );
}

#[test]
fn reset_forgets_everything_but_the_empty_body_reading() {
    let mut t = Tracker::with_empty_body(EmptyBody::Unknown);
    t.apply(di(3, "full", &[("a", "recipient", "confirmed")]));
    t.reset();
    assert_eq!(t.line_state(), LineState::Unknown);
    assert_eq!(t.version(), None);
    assert_eq!(t.empty_body(), EmptyBody::Unknown);
}
