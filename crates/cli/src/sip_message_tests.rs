use std::collections::VecDeque;
use std::time::Instant;

use sip_blf_engine::{AddressKey, LineState, PersonId};

use super::*;

/// Records every MESSAGE; answers from a script (then 200).
#[derive(Default)]
struct Fake {
    sent: Mutex<Vec<(String, String, String)>>,
    answers: Mutex<VecDeque<Result<u16, MessageError>>>,
}

impl Fake {
    fn answering(answers: Vec<Result<u16, MessageError>>) -> Self {
        Self {
            answers: Mutex::new(answers.into()),
            ..Self::default()
        }
    }
}

impl SendMessage for &'static Fake {
    fn send(
        &self,
        to: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<u16, MessageError>> + Send {
        self.sent.lock().unwrap().push((
            to.to_owned(),
            content_type.to_owned(),
            String::from_utf8(body).unwrap(),
        ));
        let answer = self.answers.lock().unwrap().pop_front().unwrap_or(Ok(200));
        async move { answer }
    }
}

fn fake(answers: Vec<Result<u16, MessageError>>) -> &'static Fake {
    Box::leak(Box::new(Fake::answering(answers)))
}

/// The extensions the fake was sent, from the bodies.
fn sent_extensions(fake: &Fake) -> Vec<String> {
    let mut sent = fake.sent.lock().unwrap();
    sent.drain(..)
        .map(|(to, ct, body)| {
            assert_eq!((to.as_str(), ct.as_str()), (TO, CONTENT_TYPE));
            let v: serde_json::Value = serde_json::from_str(&body).unwrap();
            assert_eq!(
                (v["to"].as_str(), v["type"].as_str()),
                (Some("all"), Some("statusupdate"))
            );
            v["data"].as_str().unwrap().to_owned()
        })
        .collect()
}

const TO: &str = "sip:webphones@127.0.0.1";

fn line(system: &str, ext: &str, state: LineState) -> LineView {
    LineView {
        address: AddressKey::new(system, ext),
        line: state,
        counterparty: None,
        direction: None,
        dnd: None,
        registered: Some(true),
        queues: Vec::new(),
        presence: None,
    }
}

fn view(lines: Vec<LineView>) -> View {
    View {
        person: PersonId::from("alice@contoso.com"),
        line: LineState::Idle,
        counterparty: None,
        direction: None,
        dnd: false,
        registered: Some(true),
        cause: None,
        lines,
        queues: Vec::new(),
        presence: None,
    }
}

fn write(held: Vec<LineView>, reason: WriteReason) -> Write<Vec<LineView>> {
    Write {
        person: PersonId::from("alice@contoso.com"),
        held,
        reason,
        caused_at: Instant::now(),
    }
}

fn settings(value: &str) -> Result<Option<SipMessageSettings>, String> {
    SipMessageSettings::from_env(&Env::from_pairs([("SIP_MESSAGE_TO", value)]))
        .map_err(|p| p.to_string())
}

#[test]
fn sip_message_to_must_be_a_sip_uri() {
    assert_eq!(
        SipMessageSettings::from_env(&Env::from_pairs([])).unwrap(),
        None
    );
    assert_eq!(
        settings(" sip:webphones@pbx.example.com:5060;transport=udp ").unwrap(),
        Some(SipMessageSettings {
            to: "sip:webphones@pbx.example.com:5060;transport=udp".into()
        })
    );
    assert!(settings("SIPS:web@pbx").is_ok());
    for bad in [
        "webphones@pbx.example.com",
        "sip:pbx.example.com",
        "sip:@pbx",
        "sip:web@",
        "sip:web phones@pbx",
        "<sip:web@pbx>",
        "http://pbx/web",
    ] {
        let e = settings(bad).unwrap_err();
        assert!(
            e.contains("SIP_MESSAGE_TO") && e.contains("sip:webphones@pbx.example.com"),
            "{bad:?}: {e}"
        );
    }
}

#[test]
fn the_body_is_the_statusupdate_for_the_extension() {
    assert_eq!(
        String::from_utf8(status_update("1001")).unwrap(),
        r#"{"to":"all","type":"statusupdate","data":"1001"}"#
    );
    // Whatever an extension holds, the body stays JSON.
    let odd: serde_json::Value = serde_json::from_slice(&status_update("a\"b\\c")).unwrap();
    assert_eq!(odd["data"], "a\"b\\c");
}

#[test]
fn only_pbx_lines_are_held() {
    let sink = SipMessageSink::new(fake(vec![]), TO);
    let lines = vec![
        line(PBX, "1001", LineState::Busy),
        line("teams", "alice@contoso.com", LineState::Unknown),
    ];
    assert_eq!(
        sink.desired(&view(lines)),
        Some(vec![line(PBX, "1001", LineState::Busy)])
    );
    assert_eq!(
        sink.desired(&view(vec![line("teams", "a", LineState::Unknown)])),
        None
    );
}

#[tokio::test]
async fn only_the_phone_that_changed_gets_a_message_and_a_replay_sends_all() {
    let f = fake(vec![]);
    let sink = SipMessageSink::new(f, TO);
    let both = |a, b| vec![line(PBX, "1001", a), line(PBX, "1002", b)];
    let r = sink
        .write(vec![write(
            both(LineState::Idle, LineState::Idle),
            WriteReason::Change,
        )])
        .await;
    assert_eq!(r, vec![Ok(())]);
    assert_eq!(
        sent_extensions(f),
        ["1001", "1002"],
        "first sight: every phone"
    );

    let r = sink
        .write(vec![write(
            both(LineState::Idle, LineState::Busy),
            WriteReason::Change,
        )])
        .await;
    assert_eq!(r, vec![Ok(())]);
    assert_eq!(sent_extensions(f), ["1002"]);

    sink.write(vec![write(
        both(LineState::Idle, LineState::Busy),
        WriteReason::Replay,
    )])
    .await;
    assert_eq!(sent_extensions(f), ["1001", "1002"], "replay: every phone");
}

#[tokio::test]
async fn a_failed_message_is_sent_again_on_retry_and_the_delivered_ones_are_not() {
    let refused = MessageError::Failed {
        status: Some(503),
        reason: "the MESSAGE failed at the PBX (503 Service Unavailable)".into(),
    };
    let f = fake(vec![Ok(200), Err(refused)]);
    let sink = SipMessageSink::new(f, TO);
    let held = vec![
        line(PBX, "1001", LineState::Busy),
        line(PBX, "1002", LineState::Busy),
    ];
    let r = sink
        .write(vec![write(held.clone(), WriteReason::Change)])
        .await;
    assert!(
        matches!(&r[..], [Err(SinkError::Transient { message, .. })] if message.contains("1002") && message.contains("503")),
        "{r:?}"
    );
    assert_eq!(sent_extensions(f), ["1001", "1002"]);
    let r = sink.write(vec![write(held, WriteReason::Retry)]).await;
    assert_eq!(r, vec![Ok(())]);
    assert_eq!(sent_extensions(f), ["1002"]);
}

#[test]
fn failures_map_to_transient_or_permanent_with_the_fix() {
    let failed = |status: Option<u16>| MessageError::Failed {
        status,
        reason: "why".into(),
    };
    let permanent = |e: SinkError, words: &str| match e {
        SinkError::Permanent { message } => assert!(message.contains(words), "{message}"),
        other => panic!("not permanent: {other:?}"),
    };
    let transient = |e: SinkError| assert!(matches!(e, SinkError::Transient { .. }), "{e:?}");
    permanent(
        sink_error("1001", TO, failed(Some(404))),
        "register the web phones",
    );
    permanent(sink_error("1001", TO, failed(Some(403))), "SIP_USERNAME");
    permanent(sink_error("1001", TO, failed(Some(407))), "SIP_PASSWORD");
    permanent(
        sink_error("1001", TO, failed(Some(415))),
        "application/json",
    );
    permanent(sink_error("1001", TO, failed(Some(302))), "SIP_MESSAGE_TO");
    permanent(sink_error("1001", TO, failed(Some(400))), "why");
    permanent(
        sink_error(
            "1001",
            TO,
            MessageError::Invalid(sip_ua::InvalidRequest::Recipient("x".into())),
        ),
        "SIP_MESSAGE_TO",
    );
    transient(sink_error("1001", TO, failed(Some(408))));
    transient(sink_error("1001", TO, failed(Some(480))));
    transient(sink_error("1001", TO, failed(Some(500))));
    transient(sink_error("1001", TO, failed(Some(503))));
    transient(sink_error("1001", TO, failed(None)));
    transient(sink_error("1001", TO, MessageError::Stopped));
}
