//! What the server sends: a [`Message`] of ordered fields, classified into a
//! [`Response`] or an [`Event`].

use std::fmt;

/// One AMI message: `Key: Value` fields in the order received. Keys may
/// repeat (`ChanVariable`, `Output`); lookups ignore ASCII case and return
/// the first match, as Asterisk's own `astman_get_header()` does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    fields: Vec<(String, String)>,
}

impl Message {
    /// A message from fields in wire order.
    pub fn from_fields(fields: Vec<(String, String)>) -> Self {
        Self { fields }
    }

    /// The value of the first field named `key` (ASCII case ignored).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Every value of the fields named `key`, in order.
    pub fn get_all<'a>(&'a self, key: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.fields
            .iter()
            .filter(move |(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// All fields in wire order.
    pub fn fields(&self) -> &[(String, String)] {
        &self.fields
    }

    /// The `ActionID` field, if any.
    pub fn action_id(&self) -> Option<&str> {
        self.get("ActionID")
    }

    /// Classifies the message: a `Response` field makes it a [`Response`], an
    /// `Event` field an [`Event`]; anything else comes back unchanged.
    pub fn classify(self) -> Result<Incoming, Message> {
        if let Some(kind) = self.get("Response") {
            let kind = ResponseKind::parse(kind);
            return Ok(Incoming::Response(Response {
                kind,
                message: self,
            }));
        }
        if let Some(name) = self.get("Event") {
            let name = name.to_string();
            return Ok(Incoming::Event(Event {
                name,
                message: self,
            }));
        }
        Err(self)
    }
}

impl fmt::Display for Message {
    /// The wire form (CRLF lines and the closing blank line).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (k, v) in &self.fields {
            write!(f, "{k}: {v}\r\n")?;
        }
        f.write_str("\r\n")
    }
}

/// A classified message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// `Response: ...`
    Response(Response),
    /// `Event: ...`
    Event(Event),
}

/// The value of `Response:`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ResponseKind {
    /// `Success`
    Success,
    /// `Error`
    Error,
    /// `Goodbye` (the answer to `Logoff`; the server then closes).
    Goodbye,
    /// Anything else, e.g. `Follows` from Asterisk 13 and older.
    Other(String),
}

impl ResponseKind {
    fn parse(s: &str) -> Self {
        let s = s.trim();
        if s.eq_ignore_ascii_case("Success") {
            Self::Success
        } else if s.eq_ignore_ascii_case("Error") {
            Self::Error
        } else if s.eq_ignore_ascii_case("Goodbye") {
            Self::Goodbye
        } else {
            Self::Other(s.to_string())
        }
    }
}

/// A response to an action.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// Success, Error or Goodbye.
    pub kind: ResponseKind,
    /// Every field, `Response` included.
    pub message: Message,
}

impl Response {
    /// Whether it is `Response: Success`.
    pub fn is_success(&self) -> bool {
        self.kind == ResponseKind::Success
    }

    /// The `ActionID` it answers.
    pub fn action_id(&self) -> Option<&str> {
        self.message.action_id()
    }

    /// The optional `Message:` text (e.g. `Authentication failed`).
    pub fn text(&self) -> Option<&str> {
        self.message.get("Message")
    }

    /// Whether it starts an event list (`EventList: start`).
    pub fn starts_list(&self) -> bool {
        self.is_success()
            && self
                .message
                .get("EventList")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("start"))
    }

    /// A field (ASCII case ignored).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.message.get(key)
    }
}

/// An event: asynchronous, or an item of a list (then it carries the
/// list action's `ActionID`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// The value of `Event:` (e.g. `ExtensionStatus`).
    pub name: String,
    /// Every field, `Event` included.
    pub message: Message,
}

impl Event {
    /// A field (ASCII case ignored).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.message.get(key)
    }

    /// The `ActionID` (only list items carry one).
    pub fn action_id(&self) -> Option<&str> {
        self.message.action_id()
    }

    /// Whether the name is `name` (ASCII case ignored).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }

    /// Whether it ends an event list (`EventList: Complete`).
    pub fn ends_list(&self) -> bool {
        self.get("EventList")
            .is_some_and(|v| v.trim().eq_ignore_ascii_case("complete"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::parse_message;

    #[test]
    fn classify_and_lookup() {
        let m = parse_message(b"Response: Success\r\nActionID: a1\r\nEventList: start\r\nMessage: Extension Statuses will follow\r\n\r\n").unwrap();
        let Ok(Incoming::Response(r)) = m.classify() else {
            panic!()
        };
        assert!(r.is_success() && r.starts_list());
        assert_eq!(r.action_id(), Some("a1"));
        assert_eq!(r.get("MESSAGE"), Some("Extension Statuses will follow"));

        let m = parse_message(b"Event: ExtensionStateListComplete\r\nActionID: a1\r\nEventList: Complete\r\nListItems: 3\r\n").unwrap();
        let Ok(Incoming::Event(e)) = m.classify() else {
            panic!()
        };
        assert!(e.ends_list() && e.is("extensionstatelistcomplete"));

        let m = parse_message(b"Foo: bar\r\n").unwrap();
        assert!(m.classify().is_err());
    }

    #[test]
    fn display_is_wire_form() {
        let m = parse_message(b"Event: X\nA: 1\n\n").unwrap();
        assert_eq!(m.to_string(), "Event: X\r\nA: 1\r\n\r\n");
    }
}
