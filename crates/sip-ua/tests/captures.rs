//! Real NOTIFYs captured from Kamailio 5.6 (presence_dialoginfo) parse as expected,
//! also when rewritten with compact names and folded lines.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sip_proto::headers::{parse_event, parse_subscription_state};
use sip_ua::{Message, SubState, TerminationReason};

const IDLE: &[u8] = include_bytes!("data/01_1001_cseq2_nobody.sip");
const EARLY: &[u8] = include_bytes!("data/05_1002_cseq3_early.sip");
const FINAL: &[u8] = include_bytes!("data/10_1001_cseq7_terminated_subscription-terminated.sip");

#[test]
fn kamailio_notifies() {
    let m = Message::parse(IDLE).unwrap();
    assert_eq!(m.method(), Some("NOTIFY"));
    assert!(m.body.is_empty());
    assert!(m.headers.get("Content-Type").is_none());
    let st = parse_subscription_state(m.headers.get("Subscription-State").unwrap()).unwrap();
    assert_eq!((st.state, st.expires), (SubState::Active, Some(600)));

    let m = Message::parse(EARLY).unwrap();
    assert_eq!(
        m.headers.get("Content-Type"),
        Some("application/dialog-info+xml")
    );
    let body = String::from_utf8(m.body.clone()).unwrap();
    assert!(body.contains("<state>early</state>"));
    assert!(body.trim_end().ends_with("</dialog-info>"));
    assert_eq!(
        parse_event(m.headers.get("Event").unwrap())
            .unwrap()
            .package,
        "dialog"
    );

    let m = Message::parse(FINAL).unwrap();
    let st = parse_subscription_state(m.headers.get("Subscription-State").unwrap()).unwrap();
    assert_eq!(st.state, SubState::Terminated);
    assert_eq!(st.reason, Some(TerminationReason::Timeout));
}

/// The same message with compact header names, folded lines and odd whitespace.
#[test]
fn compact_and_folded_forms_are_equivalent() {
    let long = Message::parse(EARLY).unwrap();
    let text = String::from_utf8(EARLY.to_vec()).unwrap();
    let compact = text
        .replacen("Via: ", "v:", 1)
        .replacen("To: ", "t :  ", 1)
        .replacen("From: ", "f: ", 1)
        .replacen("Call-ID: ", "i: ", 1)
        .replacen("Content-Type: ", "c: ", 1)
        .replacen("Content-Length: ", "l: ", 1)
        .replacen("Event: ", "o: ", 1)
        .replacen("Contact: ", "m: ", 1)
        .replacen(
            "Subscription-State: active;",
            "Subscription-State: active;\r\n\t",
            1,
        );
    let short = Message::parse(compact.as_bytes()).unwrap();
    for name in [
        "Via",
        "To",
        "From",
        "Call-ID",
        "Content-Type",
        "Event",
        "Contact",
    ] {
        assert_eq!(short.headers.get(name), long.headers.get(name), "{name}");
    }
    assert_eq!(short.body, long.body);
    let st = parse_subscription_state(short.headers.get("Subscription-State").unwrap()).unwrap();
    assert_eq!(st.expires, Some(600));
}

/// A stable-toolchain stand-in for the fuzz target: truncated and mutated
/// captures never make the parsers panic.
#[test]
fn mutated_messages_never_panic() {
    use sip_proto::framing::StreamFramer;
    let mut seed: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for base in [IDLE, EARLY, FINAL] {
        for cut in 0..base.len() {
            let _ = Message::parse(&base[..cut]);
        }
        for _ in 0..3000 {
            let mut m = base.to_vec();
            for _ in 0..(next() % 8 + 1) {
                let i = (next() as usize) % m.len();
                m[i] = match next() % 6 {
                    0 => b'\r',
                    1 => b'\n',
                    2 => b':',
                    3 => b';',
                    4 => b'"',
                    _ => next() as u8,
                };
            }
            if let Ok(msg) = Message::parse(&m) {
                let _ = msg.to_bytes();
                for (_, v) in msg.headers.iter() {
                    let _ = parse_subscription_state(v);
                    let _ = parse_event(v);
                    let _ = sip_proto::digest::parse_challenges(v);
                    let _ = sip_proto::headers::parse_via(v);
                }
            }
            let mut f = StreamFramer::new();
            f.push(&m);
            while let Ok(Some(_)) = f.next_frame() {}
        }
    }
}
