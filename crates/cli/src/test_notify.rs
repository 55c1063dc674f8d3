//! `sip-blf-sync test-notify`: what would the service make of this NOTIFY?
//!
//! Reads a bare XML body or a whole SIP NOTIFY (headers and body; its
//! `Content-Type` picks the parser), and shows the dialogs, the aggregated line
//! state and the presence action the mapping gives.

use std::fmt::Write as _;

use blf::{Dialog, LineState, Notification};
use serde_json::{json, Value};

use crate::engine::{Mapping, PresenceAction};

/// What was read: where the body came from and its content type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Input {
    /// `Content-Type` of the NOTIFY, or the one given on the command line.
    pub content_type: Option<String>,
    /// The body.
    pub body: Vec<u8>,
    /// Whether the input was a whole SIP message.
    pub sip_message: bool,
}

/// Why the input could not be understood.
#[derive(Debug, thiserror::Error)]
pub enum TestNotifyError {
    /// The input looked like a SIP message but is not a valid one.
    #[error("not a valid SIP message: {0}")]
    Sip(#[from] sip_ua::ParseError),
    /// The input is a SIP message, but not a NOTIFY request.
    #[error("expected a NOTIFY request, got {0}")]
    NotNotify(String),
    /// The body could not be parsed.
    #[error("{0}")]
    Body(#[from] blf::ParseError),
}

/// The UTF-8 byte-order mark some editors put at the start of a saved file.
const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Splits the input into content type and body: a SIP message when it starts
/// with a request or status line, a bare body otherwise (a byte-order mark
/// before it is no sign of SIP: XML allows one, and the body keeps it).
pub fn read_input(data: &[u8], content_type: Option<&str>) -> Result<Input, TestNotifyError> {
    let text = data.strip_prefix(UTF8_BOM).unwrap_or(data);
    let first = text
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .and_then(|i| text.get(i..))
        .unwrap_or_default();
    let looks_like_xml = first.first() == Some(&b'<') || first.is_empty();
    if looks_like_xml {
        return Ok(Input {
            content_type: content_type.map(str::to_string),
            body: data.to_vec(),
            sip_message: false,
        });
    }
    let message = sip_ua::Message::parse(data)?;
    match (message.method(), message.status()) {
        (Some(m), _) if m.eq_ignore_ascii_case("NOTIFY") => {}
        (Some(m), _) => return Err(TestNotifyError::NotNotify(format!("a {m} request"))),
        (None, Some(code)) => return Err(TestNotifyError::NotNotify(format!("a {code} response"))),
        (None, None) => return Err(TestNotifyError::NotNotify("no request line".into())),
    }
    Ok(Input {
        content_type: content_type
            .map(str::to_string)
            .or_else(|| message.headers.get("Content-Type").map(str::to_string)),
        body: message.body,
        sip_message: true,
    })
}

/// The result of looking at one NOTIFY.
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The input as read.
    pub input: Input,
    /// The parsed body.
    pub notification: Notification,
    /// The aggregated line state.
    pub line_state: LineState,
    /// What the mapping does with it.
    pub presence: PresenceAction,
}

/// Parses the input and applies the mapping.
pub fn examine(input: Input, mapping: &Mapping) -> Result<Report, TestNotifyError> {
    let notification = Notification::parse(input.content_type.as_deref(), &input.body)?;
    let line_state = notification.line_state();
    let presence = mapping.action(line_state);
    Ok(Report {
        input,
        notification,
        line_state,
        presence,
    })
}

fn dialogs(n: &Notification) -> &[Dialog] {
    match n {
        Notification::DialogInfo(d) => &d.dialogs,
        _ => &[],
    }
}

fn presence_json(action: PresenceAction) -> Value {
    match action {
        PresenceAction::Set(pair) => json!({
            "action": "set",
            "availability": pair.availability(),
            "activity": pair.activity(),
        }),
        PresenceAction::Clear => json!({ "action": "clear" }),
        PresenceAction::Keep => json!({ "action": "keep" }),
    }
}

impl Report {
    /// One JSON object: `line_state`, `dialogs`, `presence`, and the document.
    pub fn to_json(&self) -> Value {
        let dialogs: Vec<Value> = dialogs(&self.notification)
            .iter()
            .map(|d| {
                let mut v = serde_json::to_value(d).unwrap_or(Value::Null);
                if let Value::Object(map) = &mut v {
                    map.insert(
                        "line_state".into(),
                        json!(d.line_state().map(LineState::as_str)),
                    );
                }
                v
            })
            .collect();
        let mut document = serde_json::to_value(&self.notification).unwrap_or(Value::Null);
        if let Value::Object(map) = &mut document {
            map.remove("dialogs");
        }
        json!({
            "content_type": self.input.content_type,
            "line_state": self.line_state.as_str(),
            "dialogs": dialogs,
            "presence": presence_json(self.presence),
            "document": document,
        })
    }

    /// A few lines for a person.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let ct = self.input.content_type.as_deref().unwrap_or("(none)");
        let _ = writeln!(out, "content type: {ct}");
        match &self.notification {
            Notification::DialogInfo(d) => {
                let version = d.version.map_or("-".to_string(), |v| v.to_string());
                let _ = writeln!(
                    out,
                    "dialog-info: version {version}, state {:?}, entity {}",
                    d.state,
                    d.entity.as_deref().unwrap_or("-")
                );
                if d.dialogs.is_empty() {
                    let _ = writeln!(out, "dialogs: none");
                }
                for dialog in &d.dialogs {
                    let direction = match &dialog.direction {
                        Some(dir) => format!("{dir:?}").to_lowercase(),
                        None => "-".into(),
                    };
                    let remote = dialog
                        .remote
                        .as_ref()
                        .and_then(|r| r.identity.as_deref())
                        .unwrap_or("-");
                    let held = if dialog.is_held() { " (held)" } else { "" };
                    let contributes = dialog.line_state().map_or("nothing", LineState::as_str);
                    let _ = writeln!(
                        out,
                        "  dialog {}: {} {:?}{held}, remote {remote} -> {contributes}",
                        dialog.id, direction, dialog.state
                    );
                }
            }
            Notification::Pidf(p) => {
                let _ = writeln!(
                    out,
                    "pidf: entity {}, basic {:?}, activities {:?}",
                    p.entity.as_deref().unwrap_or("-"),
                    p.tuples.iter().filter_map(|t| t.basic).collect::<Vec<_>>(),
                    p.activities
                );
            }
            Notification::Empty => {
                let _ = writeln!(out, "body: empty (says nothing on its own)");
            }
            other => {
                let _ = writeln!(out, "body: {other:?}");
            }
        }
        let _ = writeln!(out, "line state: {}", self.line_state);
        let _ = writeln!(out, "presence: {}", self.presence);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const KAMAILIO_CONFIRMED: &str = "NOTIFY sip:blf@127.0.0.1:5090 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK469e\r\n\
To: <sip:blf@127.0.0.1>;tag=21720SIPpTag001\r\n\
From: <sip:1001@127.0.0.1>;tag=a6a1c5f6\r\n\
CSeq: 5 NOTIFY\r\n\
Call-ID: 1-21720@127.0.0.1\r\n\
Event: dialog\r\n\
Subscription-State: active;expires=598\r\n\
c: application/dialog-info+xml\r\n\
\r\n\
<?xml version=\"1.0\"?>\n\
<dialog-info xmlns=\"urn:ietf:params:xml:ns:dialog-info\" version=\"4\" state=\"full\" entity=\"sip:1001@127.0.0.1\">\n\
  <dialog id=\"padi-1\" call-id=\"1-21730@127.0.0.1\" direction=\"initiator\"><state>confirmed</state></dialog>\n\
</dialog-info>\n";

    #[test]
    fn whole_sip_message_with_compact_content_type() {
        let input = read_input(KAMAILIO_CONFIRMED.as_bytes(), None).unwrap();
        assert!(input.sip_message);
        assert_eq!(
            input.content_type.as_deref(),
            Some("application/dialog-info+xml")
        );
        let report = examine(input, &Mapping::default()).unwrap();
        assert_eq!(report.line_state, LineState::Busy);
        let json = report.to_json();
        assert_eq!(json["line_state"], "busy");
        assert_eq!(json["presence"]["availability"], "Busy");
        assert_eq!(json["presence"]["activity"], "InACall");
        assert_eq!(json["dialogs"][0]["line_state"], "busy");
        assert_eq!(json["document"]["version"], 4);
        assert!(report.to_text().contains("line state: busy"));
    }

    #[test]
    fn bare_body_is_sniffed() {
        let body = "<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info' version='1' state='full' entity='sip:1@x'/>";
        let report = examine(
            read_input(body.as_bytes(), None).unwrap(),
            &Mapping::default(),
        )
        .unwrap();
        assert_eq!(report.line_state, LineState::Idle);
        assert_eq!(report.to_json()["presence"]["action"], "clear");
    }

    #[test]
    fn bare_body_after_a_byte_order_mark_is_sniffed() {
        let body = "\u{FEFF}<?xml version='1.0' encoding='UTF-8'?>\n<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info' version='1' state='full' entity='sip:1@x'><dialog id='a'><state>confirmed</state></dialog></dialog-info>";
        let input = read_input(body.as_bytes(), None).unwrap();
        assert!(!input.sip_message);
        let report = examine(input, &Mapping::default()).unwrap();
        assert_eq!(report.line_state, LineState::Busy);
    }

    #[test]
    fn empty_input_is_unknown() {
        let report = examine(read_input(b"  \n", None).unwrap(), &Mapping::default()).unwrap();
        assert_eq!(report.line_state, LineState::Unknown);
        assert_eq!(report.to_json()["presence"]["action"], "keep");
    }

    #[test]
    fn malformed_body_names_the_position() {
        let body = "<dialog-info xmlns='urn:ietf:params:xml:ns:dialog-info'>\n  <dialog id='1'>\n";
        let err = examine(
            read_input(body.as_bytes(), None).unwrap(),
            &Mapping::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("line"), "{err}");
    }

    #[test]
    fn other_sip_messages_are_refused() {
        let err = read_input(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", None)
            .unwrap_err()
            .to_string();
        assert_eq!(err, "expected a NOTIFY request, got a 200 response");
        let sub = b"SUBSCRIBE sip:1@x SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        let err = read_input(sub, None).unwrap_err().to_string();
        assert_eq!(err, "expected a NOTIFY request, got a SUBSCRIBE request");
    }

    #[test]
    fn garbage_that_is_not_sip() {
        let err = read_input(b"hello world", None).unwrap_err().to_string();
        assert!(err.starts_with("not a valid SIP message"), "{err}");
    }
}
