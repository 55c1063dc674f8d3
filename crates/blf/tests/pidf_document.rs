//! PIDF documents written by `PresenceDocument` read back through blf's own parser.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use blf::PresenceDocument;
use blf::{Basic, LineState, Notification, Pidf, CONTENT_TYPE_PIDF};

const ENTITY: &str = "sip:1001@127.0.0.1";

fn parsed(doc: &PresenceDocument) -> Pidf {
    let xml = doc.to_xml();
    Pidf::parse(xml.as_bytes()).unwrap_or_else(|e| panic!("{e}\n{xml}"))
}

#[test]
fn busy_and_on_the_phone_read_back_as_busy() {
    let doc = PresenceDocument::new(ENTITY, Basic::Open)
        .activity("busy")
        .activity("on-the-phone");
    let p = parsed(&doc);
    assert_eq!(p.entity.as_deref(), Some(ENTITY));
    assert_eq!(p.activities, ["busy", "on-the-phone"]);
    assert_eq!(p.tuples.len(), 1);
    assert_eq!(p.tuples[0].basic, Some(Basic::Open));
    assert_eq!(p.line_state(), LineState::Busy);
    // The same through the content-type dispatch a NOTIFY takes.
    let n = Notification::parse(Some(CONTENT_TYPE_PIDF), doc.to_xml().as_bytes()).unwrap();
    assert_eq!(n.line_state(), LineState::Busy);
}

#[test]
fn each_in_call_activity_alone_is_busy() {
    for a in ["busy", "on-the-phone", "On-The-Phone"] {
        let doc = PresenceDocument::new(ENTITY, Basic::Closed).activity(a);
        assert_eq!(parsed(&doc).line_state(), LineState::Busy, "{a}");
    }
}

#[test]
fn open_without_activities_is_idle_and_closed_is_offline() {
    let open = PresenceDocument::new(ENTITY, Basic::Open);
    assert_eq!(parsed(&open).line_state(), LineState::Idle);
    assert!(
        !open.to_xml().contains("dm:person"),
        "no empty person element"
    );
    let closed = PresenceDocument::new(ENTITY, Basic::Closed);
    assert_eq!(parsed(&closed).line_state(), LineState::Offline);
}

#[test]
fn other_activities_keep_basic_deciding() {
    let away = PresenceDocument::new(ENTITY, Basic::Open).activity("away");
    let p = parsed(&away);
    assert_eq!(p.activities, ["away"]);
    assert_eq!(p.line_state(), LineState::Idle);
    let meeting = PresenceDocument::new(ENTITY, Basic::Closed).activity("meeting");
    assert_eq!(parsed(&meeting).line_state(), LineState::Offline);
}

#[test]
fn notes_are_kept_and_refine_a_call() {
    let doc = PresenceDocument::new(ENTITY, Basic::Open)
        .activity("on-the-phone")
        .note("On hold");
    let p = parsed(&doc);
    assert_eq!(p.notes, ["On hold"]);
    assert_eq!(p.line_state(), LineState::Hold);
}

#[test]
fn text_is_escaped_and_unknown_activities_become_other() {
    let doc = PresenceDocument::new("sip:a&b@x\"y", Basic::Open)
        .activity("InACall <now>")
        .note("Smith & Sons <\"quoted\"> 'x'\u{1} ü")
        .contact("sip:1001@127.0.0.1;transport=tcp")
        .tuple_id("teams&1");
    let xml = doc.to_xml();
    assert!(
        xml.contains("<rpid:other>InACall &lt;now&gt;</rpid:other>"),
        "{xml}"
    );
    let p = parsed(&doc);
    assert_eq!(p.entity.as_deref(), Some("sip:a&b@x\"y"));
    assert_eq!(p.notes, ["Smith & Sons <\"quoted\"> 'x' ü"]);
    assert_eq!(p.activities, ["other"]);
    assert_eq!(p.tuples[0].id.as_deref(), Some("teams&1"));
    assert_eq!(
        p.tuples[0].contact.as_deref(),
        Some("sip:1001@127.0.0.1;transport=tcp")
    );
    assert_eq!(p.line_state(), LineState::Idle);
}

#[test]
fn the_document_declares_the_pidf_data_model_and_rpid_namespaces() {
    let xml = PresenceDocument::new(ENTITY, Basic::Open)
        .activity("busy")
        .to_xml();
    assert!(xml.starts_with("<?xml version=\"1.0\" encoding=\"UTF-8\"?>"));
    for ns in [
        "xmlns=\"urn:ietf:params:xml:ns:pidf\"",
        "xmlns:dm=\"urn:ietf:params:xml:ns:pidf:data-model\"",
        "xmlns:rpid=\"urn:ietf:params:xml:ns:pidf:rpid\"",
    ] {
        assert!(xml.contains(ns), "{ns} missing in {xml}");
    }
    assert!(xml.contains("<rpid:activities><rpid:busy/></rpid:activities>"));
}
