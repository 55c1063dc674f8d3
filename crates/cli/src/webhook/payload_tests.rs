use std::time::Duration;

use sip_blf_engine::{AddressKey, LineView, PersonId};

use super::*;

/// Computed independently:
/// `printf '%s' '1700000000.{"state":"busy"}' | openssl dgst -sha256 -hmac 'It is a secret to everybody, 1234'`
const OPENSSL_VECTOR: &str = "47703c07c665c7a86c1ef0385b1e5cf4cc75cd85e29d032a165dcbefbbc7248f";
const SECRET: &str = "It is a secret to everybody, 1234";

#[test]
fn the_signature_is_the_hmac_of_timestamp_dot_body() {
    let key = signing_key(SECRET);
    assert_eq!(
        signature(&key, 1_700_000_000, br#"{"state":"busy"}"#),
        format!("sha256={OPENSSL_VECTOR}")
    );
    assert_ne!(
        signature(&key, 1_700_000_001, br#"{"state":"busy"}"#),
        format!("sha256={OPENSSL_VECTOR}"),
        "the timestamp is covered"
    );
    assert_ne!(
        signature(
            &signing_key("another secret, 1234567"),
            1_700_000_000,
            br#"{"state":"busy"}"#
        ),
        format!("sha256={OPENSSL_VECTOR}")
    );
}

fn line(ext: &str, state: LineState) -> LineView {
    LineView {
        address: AddressKey::new("pbx", ext),
        line: state,
        counterparty: None,
        direction: None,
        dnd: Some(false),
        registered: Some(true),
        queues: Vec::new(),
        presence: None,
    }
}

fn alice() -> PersonInfo {
    PersonInfo {
        name: Some("Alice Example".into()),
        email: Some("alice@contoso.com".into()),
        extensions: vec!["1001".into(), "1002".into(), "1003".into()],
        mapping: Mapping::default(),
    }
}

fn busy_view() -> View {
    let caller = Party {
        number: "+4930123".into(),
        name: Some("Carol".into()),
    };
    let mut busy = line("1002", LineState::Busy);
    busy.counterparty = Some(caller.clone());
    busy.direction = Some(Direction::Inbound);
    View {
        person: PersonId::from("alice@contoso.com"),
        line: LineState::Busy,
        counterparty: Some(caller),
        direction: Some(Direction::Inbound),
        dnd: false,
        registered: Some(true),
        cause: Some(AddressKey::new("pbx", "1002")),
        lines: vec![line("1001", LineState::Idle), busy],
        queues: Vec::new(),
        presence: None,
    }
}

#[test]
fn the_body_has_the_person_each_extension_the_teams_presence_and_the_time() {
    let key = signing_key(SECRET);
    let snapshot = Snapshot::of(&busy_view(), &alice());
    let at = UNIX_EPOCH + Duration::from_millis(1_700_000_000_900);
    let request = signed_request(&key, &snapshot, WriteReason::Change, at);
    assert_eq!(request.timestamp, 1_700_000_000);
    assert_eq!(
        request.signature,
        signature(&key, request.timestamp, &request.body)
    );
    assert_eq!(
        request.headers(),
        [
            ("X-Timestamp", "1700000000".to_owned()),
            ("X-Signature-256", request.signature.clone()),
        ]
    );
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "person": "alice@contoso.com",
            "name": "Alice Example",
            "email": "alice@contoso.com",
            "state": "busy",
            "dnd": false,
            "registered": true,
            "counterparty": {"number": "+4930123", "name": "Carol"},
            "direction": "inbound",
            "teams_presence": "Busy/InACall",
            "extensions": [
                {"extension": "1001", "state": "idle", "dnd": false, "registered": true,
                 "counterparty": null, "direction": null},
                {"extension": "1002", "state": "busy", "dnd": false, "registered": true,
                 "counterparty": {"number": "+4930123", "name": "Carol"}, "direction": "inbound"},
                {"extension": "1003", "state": "unknown", "dnd": null, "registered": null,
                 "counterparty": null, "direction": null},
            ],
            "reason": "change",
            "time": "2023-11-14T22:13:20Z",
            "timestamp": 1_700_000_000u64,
        })
    );
}

#[test]
fn the_teams_presence_follows_the_mapping_and_dnd() {
    let mut view = busy_view();
    view.line = LineState::Idle;
    assert_eq!(Snapshot::of(&view, &alice()).teams_presence, "clear");
    view.dnd = true;
    assert_eq!(
        Snapshot::of(&view, &alice()).teams_presence,
        "DoNotDisturb/Presenting"
    );
    view.line = LineState::Ringing;
    view.dnd = false;
    assert_eq!(Snapshot::of(&view, &alice()).teams_presence, "keep");
}

#[test]
fn the_same_state_is_the_same_snapshot_and_a_replay_says_so() {
    let key = signing_key(SECRET);
    let a = Snapshot::of(&busy_view(), &alice());
    let mut other = busy_view();
    // The Teams presence read back is not in the payload: not a change.
    other.presence = Some(sip_blf_engine::TeamsPresence::new("Busy", "InACall"));
    assert_eq!(a, Snapshot::of(&other, &alice()));
    let request = signed_request(&key, &a, WriteReason::Replay, UNIX_EPOCH);
    let body: serde_json::Value = serde_json::from_slice(&request.body).unwrap();
    assert_eq!(body["reason"], "replay");
    assert_eq!(body["time"], "1970-01-01T00:00:00Z");
}
