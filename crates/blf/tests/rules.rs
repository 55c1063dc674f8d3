//! Aggregation rules, namespaces, content types, limits and PIDF activities.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use blf::{
    DialogInfo, DialogState, Direction, Limits, LineState, Notification, ParseErrorKind, Pidf,
};

const DI: &str = "application/dialog-info+xml";

/// One dialog-info document with the given `<dialog>` elements.
fn doc(dialogs: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:100@pbx">
{dialogs}
</dialog-info>"#
    )
}

fn dialog(state: &str, direction: Option<&str>, rendering: Option<&str>) -> String {
    let dir = direction.map_or(String::new(), |d| format!(r#" direction="{d}""#));
    let local = rendering.map_or(String::new(), |r| {
        format!(
            r#"<local><target uri="sip:100@pbx"><param pname="+sip.rendering" pvalue="{r}"/></target></local>"#
        )
    });
    let id = direction.unwrap_or("none");
    format!(r#"<dialog id="{state}-{id}"{dir}><state>{state}</state>{local}</dialog>"#)
}

fn state_of(body: &str) -> LineState {
    Notification::parse(Some(DI), body.as_bytes())
        .unwrap()
        .line_state()
}

#[test]
fn no_dialogs_is_idle() {
    assert_eq!(state_of(&doc("")), LineState::Idle);
    assert_eq!(
        state_of(
            r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="0" state="full"/>"#
        ),
        LineState::Idle
    );
}

#[test]
fn terminated_contributes_nothing() {
    assert_eq!(
        state_of(&doc(&dialog("terminated", None, None))),
        LineState::Idle
    );
    // ...even when the terminated dialog was held.
    assert_eq!(
        state_of(&doc(&dialog("terminated", Some("recipient"), Some("no")))),
        LineState::Idle
    );
}

#[test]
fn confirmed_is_busy() {
    for dir in [None, Some("initiator"), Some("recipient")] {
        assert_eq!(
            state_of(&doc(&dialog("confirmed", dir, None))),
            LineState::Busy
        );
    }
}

#[test]
fn early_and_proceeding_ring_unless_outgoing() {
    for s in ["early", "proceeding"] {
        assert_eq!(
            state_of(&doc(&dialog(s, None, None))),
            LineState::Ringing,
            "{s}"
        );
        assert_eq!(
            state_of(&doc(&dialog(s, Some("recipient"), None))),
            LineState::Ringing
        );
        assert_eq!(
            state_of(&doc(&dialog(s, Some("initiator"), None))),
            LineState::Busy
        );
    }
}

#[test]
fn trying_rings_only_for_recipient() {
    assert_eq!(
        state_of(&doc(&dialog("trying", Some("recipient"), None))),
        LineState::Ringing
    );
    assert_eq!(
        state_of(&doc(&dialog("trying", Some("initiator"), None))),
        LineState::Busy
    );
    assert_eq!(
        state_of(&doc(&dialog("trying", None, None))),
        LineState::Busy
    );
}

#[test]
fn local_rendering_no_is_hold_whatever_the_live_state() {
    for s in ["confirmed", "early", "proceeding", "trying", "something"] {
        assert_eq!(
            state_of(&doc(&dialog(s, Some("recipient"), Some("no")))),
            LineState::Hold,
            "{s}"
        );
    }
    // rendering=yes (FreeSWITCH, active call) is not hold
    assert_eq!(
        state_of(&doc(&dialog("confirmed", None, Some("yes")))),
        LineState::Busy
    );
    // RFC spelling `pval`, odd case and spaces
    let body = doc(
        r#"<dialog id="x"><state>confirmed</state><local><target uri="sip:a@b">
           <param pname=" +SIP.Rendering " pval=" No "/></target></local></dialog>"#,
    );
    assert_eq!(state_of(&body), LineState::Hold);
    // rendering=no on the REMOTE target is not our hold
    let body = doc(
        r#"<dialog id="x"><state>confirmed</state><remote><target uri="sip:a@b">
           <param pname="+sip.rendering" pvalue="no"/></target></remote></dialog>"#,
    );
    assert_eq!(state_of(&body), LineState::Busy);
}

#[test]
fn state_text_is_trimmed_and_case_insensitive() {
    let body =
        doc("<dialog id=\"k\" direction=\"initiator\"><state>\n\t Trying \n</state></dialog>");
    let Notification::DialogInfo(d) = Notification::parse(Some(DI), body.as_bytes()).unwrap()
    else {
        panic!()
    };
    assert_eq!(d.dialogs[0].state, DialogState::Trying);
    assert_eq!(d.dialogs[0].direction, Some(Direction::Initiator));
    assert_eq!(
        state_of(&doc(&dialog("CONFIRMED", None, None))),
        LineState::Busy
    );
    assert_eq!(
        state_of(&doc(&dialog("Early", Some("Recipient"), None))),
        LineState::Ringing
    );
}

#[test]
fn unknown_state_is_unknown_and_ranks_above_idle_only() {
    assert_eq!(
        state_of(&doc(&dialog("parked", None, None))),
        LineState::Unknown
    );
    assert_eq!(state_of(&doc("<dialog id=\"n\"/>")), LineState::Unknown);
    let two = format!(
        "{}{}",
        dialog("parked", None, None),
        dialog("terminated", None, None)
    );
    assert_eq!(state_of(&doc(&two)), LineState::Unknown);
    let two = format!(
        "{}{}",
        dialog("parked", None, None),
        dialog("confirmed", Some("x"), Some("no"))
    );
    assert_eq!(state_of(&doc(&two)), LineState::Hold);
}

#[test]
fn line_takes_the_highest_dialog_state() {
    let held = dialog("confirmed", Some("recipient"), Some("no"));
    let busy = dialog("confirmed", Some("initiator"), None);
    let ringing = dialog("early", Some("recipient"), None);
    let ended = dialog("terminated", None, None);
    assert_eq!(state_of(&doc(&format!("{held}{busy}"))), LineState::Busy);
    assert_eq!(state_of(&doc(&format!("{busy}{held}"))), LineState::Busy);
    assert_eq!(
        state_of(&doc(&format!("{held}{ringing}{busy}"))),
        LineState::Ringing
    );
    assert_eq!(state_of(&doc(&format!("{ended}{held}"))), LineState::Hold);
}

#[test]
fn all_fields_are_read() {
    let body = doc(
        r#"<dialog id="d1" call-id="c1@h" local-tag="lt" remote-tag="rt" direction="recipient">
  <state event="rejected" code="486">terminated</state>
  <duration> 42 </duration>
  <local><identity display="Me &amp; I">sip:100@pbx</identity>
    <target uri="sip:100@10.0.0.1"><param pname="+sip.rendering" pvalue="yes"/><param pname="x"/></target></local>
  <remote><identity>sip:200@pbx</identity><target uri="sip:200@10.0.0.2"/></remote>
</dialog>"#,
    );
    let d = DialogInfo::parse(body.as_bytes()).unwrap();
    assert_eq!(d.version, Some(1));
    assert_eq!(d.entity.as_deref(), Some("sip:100@pbx"));
    let x = &d.dialogs[0];
    assert_eq!(x.id, "d1");
    assert_eq!(x.call_id.as_deref(), Some("c1@h"));
    assert_eq!(x.local_tag.as_deref(), Some("lt"));
    assert_eq!(x.remote_tag.as_deref(), Some("rt"));
    assert_eq!(x.event.as_deref(), Some("rejected"));
    assert_eq!(x.code, Some(486));
    assert_eq!(x.duration, Some(42));
    let local = x.local.as_ref().unwrap();
    assert_eq!(local.display.as_deref(), Some("Me & I"));
    assert_eq!(local.identity.as_deref(), Some("sip:100@pbx"));
    assert_eq!(local.target.as_deref(), Some("sip:100@10.0.0.1"));
    assert_eq!(
        local.target_params,
        vec![
            ("+sip.rendering".to_owned(), "yes".to_owned()),
            ("x".to_owned(), String::new())
        ]
    );
    assert_eq!(
        x.remote.as_ref().unwrap().target.as_deref(),
        Some("sip:200@10.0.0.2")
    );
}

#[test]
fn namespaces_match_on_uri_not_prefix() {
    let ns0 = r#"<ns0:dialog-info xmlns:ns0="urn:ietf:params:xml:ns:dialog-info" version="1" state="full"><ns0:dialog id="a"><ns0:state>confirmed</ns0:state></ns0:dialog></ns0:dialog-info>"#;
    let default = r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1"><dialog id="a"><state>confirmed</state></dialog></dialog-info>"#;
    let none = r#"<dialog-info version="1"><dialog id="a"><state>confirmed</state></dialog></dialog-info>"#;
    for body in [ns0, default, none] {
        assert_eq!(state_of(body), LineState::Busy, "{body}");
        // sniffed without content type too
        assert_eq!(
            Notification::parse(None, body.as_bytes())
                .unwrap()
                .line_state(),
            LineState::Busy
        );
    }
    // Same local names in a foreign namespace are skipped.
    let foreign = r#"<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" xmlns:v="urn:vendor" version="1">
      <v:dialog id="a"><state>confirmed</state></v:dialog>
      <dialog id="b"><v:state>confirmed</v:state><state>early</state></dialog></dialog-info>"#;
    let Notification::DialogInfo(d) = Notification::parse(None, foreign.as_bytes()).unwrap() else {
        panic!()
    };
    assert_eq!(d.dialogs.len(), 1);
    assert_eq!(d.line_state(), LineState::Ringing);
    // A root in another namespace is refused.
    let wrong = r#"<dialog-info xmlns="urn:vendor:dialog-info"/>"#;
    let err = Notification::parse(Some(DI), wrong.as_bytes()).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::UnexpectedRoot);
}

#[test]
fn content_types_pick_the_parser() {
    let body = doc(&dialog("confirmed", None, None));
    for ct in [
        "application/dialog-info+xml",
        "Application/Dialog-Info+XML",
        " application/dialog-info+xml ; charset=UTF-8",
    ] {
        assert!(matches!(
            Notification::parse(Some(ct), body.as_bytes()).unwrap(),
            Notification::DialogInfo(_)
        ));
    }
    // dialog-info body announced as PIDF: refused, not guessed.
    let err = Notification::parse(Some("application/pidf+xml"), body.as_bytes()).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::UnexpectedRoot);
    let err = Notification::parse(Some("text/plain"), body.as_bytes()).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::UnsupportedContentType);
    assert!(err.to_string().contains("text/plain"), "{err}");
}

#[test]
fn empty_bodies_are_empty_and_unknown() {
    for (ct, body) in [
        (None, &b""[..]),
        (None, b"\r\n"),
        (Some(DI), b""),
        (Some("application/pidf+xml"), b"  "),
        (Some("text/plain"), b""),
    ] {
        let n = Notification::parse(ct, body).unwrap();
        assert_eq!(n, Notification::Empty);
        assert_eq!(n.line_state(), LineState::Unknown);
    }
}

#[test]
fn limits_give_typed_errors() {
    let body = doc(&dialog("confirmed", None, None));
    let small = Limits::default().with_max_body_size(64);
    let err = Notification::parse_with(Some(DI), body.as_bytes(), &small).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::TooLarge);
    assert!(
        err.to_string().starts_with("body too large at line "),
        "{err}"
    );

    // Default limit: 64 KiB, a 100 KiB body (valid XML!) is refused.
    let padding = "<!-- pad -->".repeat(100 * 1024 / 12);
    let big = doc(&format!("{padding}{}", dialog("confirmed", None, None)));
    assert!(big.len() > blf::DEFAULT_MAX_BODY_SIZE);
    let err = Notification::parse(Some(DI), big.as_bytes()).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::TooLarge);
    let roomy = Limits::default().with_max_body_size(1 << 20);
    assert_eq!(
        Notification::parse_with(Some(DI), big.as_bytes(), &roomy)
            .unwrap()
            .line_state(),
        LineState::Busy
    );

    let shallow = Limits::default().with_max_depth(2);
    let err = Notification::parse_with(Some(DI), body.as_bytes(), &shallow).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::TooDeep);
    assert_eq!((err.line, err.column), (3, 29)); // the <state> start tag
}

#[test]
fn malformed_input_reports_line_and_column() {
    let body = "<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\">\n  <dialog id=\"a\">\n    <state>early</sta>\n";
    let err = Notification::parse(Some(DI), body.as_bytes()).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::MalformedXml);
    assert_eq!(err.line, 3);
    assert!(
        err.to_string()
            .starts_with("malformed XML at line 3, column "),
        "{err}"
    );

    let truncated = &doc(&dialog("confirmed", None, None))[..150];
    let err = Notification::parse(None, truncated.as_bytes()).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::MalformedXml);

    let mut bad = doc(&dialog("confirmed", None, None)).into_bytes();
    bad.insert(120, 0xC3);
    bad.insert(121, 0x28);
    let err = Notification::parse(None, &bad).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::InvalidUtf8);
    assert_eq!(err.line, 2);

    let err = Notification::parse(Some(DI), br#"<dialog-info state="half"/>"#).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::InvalidValue);
    assert!(err.to_string().contains("half"));
}

#[test]
fn freeswitch_unescaped_ampersand_still_gives_the_state() {
    let body = r#"<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="full" entity="sip:1000@fs">
<dialog id="u1" direction="recipient">
<state>early</state>
<local><identity display="Smith & Sons">sip:1000@fs</identity>
<target uri="sip:1000@fs"><param pname="+sip.rendering" pvalue="no"/></target></local>
<remote><identity display="A & B <co>">sip:2000@fs</identity></remote>
</dialog>
</dialog-info>"#;
    let n = Notification::parse(Some(DI), body.as_bytes()).unwrap();
    assert_eq!(n.line_state(), LineState::Hold);
    let Notification::DialogInfo(d) = n else {
        panic!()
    };
    assert_eq!(
        d.dialogs[0].local.as_ref().unwrap().display.as_deref(),
        Some("Smith & Sons")
    );
}

fn pidf(inner: &str) -> String {
    format!(
        r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:rpid="urn:ietf:params:xml:ns:pidf:rpid" xmlns:dm="urn:ietf:params:xml:ns:pidf:data-model" entity="sip:1@x">{inner}</presence>"#
    )
}

#[test]
fn pidf_basic_and_rpid_activities() {
    let open = r#"<tuple id="t"><status><basic>open</basic></status></tuple>"#;
    let closed = r#"<tuple id="t"><status><basic> CLOSED </basic></status></tuple>"#;
    let p = |s: &str| Pidf::parse(pidf(s).as_bytes()).unwrap().line_state();
    assert_eq!(p(open), LineState::Idle);
    assert_eq!(p(closed), LineState::Offline);
    assert_eq!(p(""), LineState::Unknown);
    for activity in ["on-the-phone", "busy"] {
        let person = format!(
            r#"<dm:person id="p"><rpid:activities><rpid:{activity}/></rpid:activities></dm:person>"#
        );
        assert_eq!(p(&format!("{open}{person}")), LineState::Busy, "{activity}");
        // Asterisk marks in-use lines closed: the activity wins.
        assert_eq!(
            p(&format!("{closed}{person}")),
            LineState::Busy,
            "{activity}"
        );
    }
    for activity in ["away", "meeting", "vacation", "unknown"] {
        let person = format!(
            r#"<dm:person id="p"><rpid:activities><rpid:{activity}/></rpid:activities></dm:person>"#
        );
        assert_eq!(p(&format!("{open}{person}")), LineState::Idle, "{activity}");
        assert_eq!(
            p(&format!("{closed}{person}")),
            LineState::Offline,
            "{activity}"
        );
    }
    let doc = Pidf::parse(pidf(&format!("{open}<dm:person><rpid:activities><rpid:away/><rpid:on-the-phone/></rpid:activities></dm:person><note>x</note>")).as_bytes()).unwrap();
    assert_eq!(doc.activities, ["away", "on-the-phone"]);
    assert_eq!(doc.notes, ["x"]);
    assert_eq!(doc.tuples[0].id.as_deref(), Some("t"));
}

#[test]
fn pidf_old_asterisk_prefixes_and_text_activities() {
    let head = r#"<presence xmlns="urn:ietf:params:xml:ns:pidf" xmlns:pp="urn:ietf:params:xml:ns:pidf:person" xmlns:es="urn:ietf:params:xml:ns:pidf:rpid:status:rpid-status" xmlns:ep="urn:ietf:params:xml:ns:pidf:rpid:rpid-person" entity="sip:1@x">"#;
    let body = |act: &str, note: &str, basic: &str| {
        format!("{head}<pp:person><status>{act}</status></pp:person><note>{note}</note><tuple id=\"1\"><status><basic>{basic}</basic></status></tuple></presence>")
    };
    let p = |b: String| {
        Notification::parse(Some("application/pidf+xml"), b.as_bytes())
            .unwrap()
            .line_state()
    };
    assert_eq!(
        p(body(
            "<ep:activities>ep:busy</ep:activities>",
            "On the phone",
            "closed"
        )),
        LineState::Busy
    );
    assert_eq!(
        p(body(
            "<ep:activities>ep:busy</ep:activities>",
            "Ringing",
            "closed"
        )),
        LineState::Ringing
    );
    assert_eq!(
        p(body(
            "<ep:activities>ep:busy</ep:activities>",
            "On hold",
            "closed"
        )),
        LineState::Hold
    );
    assert_eq!(
        p(body(
            "<ep:activities>ep:away</ep:activities>",
            "Unavailable",
            "closed"
        )),
        LineState::Offline
    );
    assert_eq!(
        p(body(
            "<ep:activities><ep:on-the-phone/></ep:activities>",
            "On the phone",
            "open"
        )),
        LineState::Busy
    );
    assert_eq!(p(body("", "Ready", "open")), LineState::Idle);
    // no namespace at all
    let bare = r#"<presence entity="sip:1@x"><tuple id="1"><status><basic>closed</basic></status></tuple></presence>"#;
    assert_eq!(
        Notification::parse(None, bare.as_bytes())
            .unwrap()
            .line_state(),
        LineState::Offline
    );
    // activities in a foreign namespace are ignored
    let foreign = pidf(
        r#"<tuple id="t"><status><basic>open</basic></status></tuple><v:activities xmlns:v="urn:vendor"><v:busy/></v:activities>"#,
    );
    assert_eq!(
        Pidf::parse(foreign.as_bytes()).unwrap().line_state(),
        LineState::Idle
    );
}

#[test]
fn serialize_for_json_output() {
    let n = Notification::parse(
        None,
        doc(&dialog("confirmed", Some("initiator"), None)).as_bytes(),
    )
    .unwrap();
    let json = serde_json::to_value(&n).unwrap();
    assert_eq!(json["type"], "dialog-info");
    assert_eq!(json["dialogs"][0]["state"], "confirmed");
    assert_eq!(json["dialogs"][0]["direction"], "initiator");
    assert_eq!(
        serde_json::to_value(Notification::Empty).unwrap()["type"],
        "empty"
    );
}

#[test]
fn huge_depth_limit_is_capped_so_deep_input_cannot_exhaust_the_stack() {
    let deep = format!(
        "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\">{}{}</presence>",
        "<x>".repeat(100_000),
        "</x>".repeat(100_000)
    );
    let limits = Limits::default()
        .with_max_body_size(1 << 20)
        .with_max_depth(usize::MAX);
    let err = Notification::parse_with(None, deep.as_bytes(), &limits).unwrap_err();
    assert_eq!(err.kind, ParseErrorKind::TooDeep);
}

#[test]
fn dialog_words_read_back_as_written() {
    use blf::{DialogState, Direction};
    for text in [
        "trying",
        "proceeding",
        "early",
        "confirmed",
        "terminated",
        "parked",
    ] {
        assert_eq!(DialogState::parse(text).as_str(), text);
    }
    assert_eq!(Direction::Initiator.as_str(), "initiator");
    assert_eq!(Direction::Recipient.as_str(), "recipient");
}
