//! Writing `application/pidf+xml` documents (RFC 3863) with RPID activities (RFC 4480),
//! as a presence publisher (RFC 3903 PUBLISH) sends them.

use std::fmt::Write as _;

use super::Basic;

/// `urn:ietf:params:xml:ns:pidf:data-model` (RFC 4479): the `<dm:person>` element.
const NS_DATA_MODEL: &str = "urn:ietf:params:xml:ns:pidf:data-model";
/// `urn:ietf:params:xml:ns:pidf:rpid` (RFC 4480): `<rpid:activities>`.
const NS_RPID: &str = "urn:ietf:params:xml:ns:pidf:rpid";

/// The activity elements RFC 4480 §3.2 defines; any other activity is written as
/// `<rpid:other>` with the text, so the document stays valid whatever the caller passes.
const RPID_ACTIVITIES: [&str; 25] = [
    "appointment",
    "away",
    "breakfast",
    "busy",
    "dinner",
    "holiday",
    "in-transit",
    "looking-for-work",
    "meal",
    "meeting",
    "on-the-phone",
    "performance",
    "permanent-absence",
    "playing",
    "presentation",
    "shopping",
    "sleeping",
    "spectator",
    "steering",
    "travel",
    "tv",
    "unknown",
    "vacation",
    "working",
    "worship",
];

/// A PIDF document to publish: one `<tuple>` with `<basic>`, optionally a `<note>`,
/// and the person's RPID activities.
///
/// ```
/// use blf::{Basic, LineState, Pidf, PresenceDocument};
///
/// let doc = PresenceDocument::new("sip:1001@pbx.example.com", Basic::Open)
///     .activity("busy")
///     .activity("on-the-phone")
///     .note("In a call");
/// let xml = doc.to_xml();
/// assert_eq!(Pidf::parse(xml.as_bytes())?.line_state(), LineState::Busy);
/// # Ok::<(), blf::ParseError>(())
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceDocument {
    entity: String,
    basic: Basic,
    tuple_id: String,
    contact: Option<String>,
    activities: Vec<String>,
    note: Option<String>,
}

impl PresenceDocument {
    /// A document for `entity` (the presentity's URI, e.g. `sip:1001@pbx.example.com`)
    /// whose one tuple is `open` or `closed`; no activities, no note.
    pub fn new(entity: impl Into<String>, basic: Basic) -> Self {
        Self {
            entity: entity.into(),
            basic,
            tuple_id: "t1".into(),
            contact: None,
            activities: Vec::new(),
            note: None,
        }
    }

    /// Adds an RPID activity (`busy`, `on-the-phone`, `away`, `meeting`, …). Names
    /// RFC 4480 does not define are written as `<rpid:other>`.
    pub fn activity(mut self, activity: impl Into<String>) -> Self {
        self.activities.push(activity.into());
        self
    }

    /// Sets the `<note>` (free text, e.g. Teams' activity in words).
    pub fn note(mut self, note: impl Into<String>) -> Self {
        self.note = Some(note.into());
        self
    }

    /// Sets the tuple's `<contact>` URI.
    pub fn contact(mut self, contact: impl Into<String>) -> Self {
        self.contact = Some(contact.into());
        self
    }

    /// Sets the tuple's `id` (`t1` by default); publishers keep it stable so that a
    /// modified document replaces the tuple instead of adding one.
    pub fn tuple_id(mut self, id: impl Into<String>) -> Self {
        self.tuple_id = id.into();
        self
    }

    /// The entity URI.
    pub fn entity(&self) -> &str {
        &self.entity
    }

    /// The `<basic>` status.
    pub fn basic(&self) -> Basic {
        self.basic
    }

    /// The activities, as given.
    pub fn activities(&self) -> &[String] {
        &self.activities
    }

    /// The document as `application/pidf+xml` (UTF-8, RFC 3863 with the RFC 4479 data
    /// model and RFC 4480 namespaces).
    pub fn to_xml(&self) -> String {
        let mut out = String::with_capacity(512);
        out.push_str("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
        let _ = writeln!(
            out,
            "<presence xmlns=\"urn:ietf:params:xml:ns:pidf\" xmlns:dm=\"{NS_DATA_MODEL}\" \
             xmlns:rpid=\"{NS_RPID}\" entity=\"{}\">",
            escape(&self.entity)
        );
        let _ = writeln!(out, "  <tuple id=\"{}\">", escape(&self.tuple_id));
        let basic = match self.basic {
            Basic::Open => "open",
            Basic::Closed => "closed",
        };
        let _ = writeln!(out, "    <status><basic>{basic}</basic></status>");
        if let Some(c) = &self.contact {
            let _ = writeln!(out, "    <contact>{}</contact>", escape(c));
        }
        out.push_str("  </tuple>\n");
        // PIDF's schema puts notes after the tuples and before other namespaces.
        if let Some(n) = &self.note {
            let _ = writeln!(out, "  <note>{}</note>", escape(n));
        }
        if !self.activities.is_empty() {
            let _ = writeln!(out, "  <dm:person id=\"p-{}\">", escape(&self.tuple_id));
            out.push_str("    <rpid:activities>");
            for a in &self.activities {
                let name = a.trim().to_ascii_lowercase();
                if RPID_ACTIVITIES.contains(&name.as_str()) {
                    let _ = write!(out, "<rpid:{name}/>");
                } else {
                    let _ = write!(out, "<rpid:other>{}</rpid:other>", escape(a.trim()));
                }
            }
            out.push_str("</rpid:activities>\n");
            out.push_str("  </dm:person>\n");
        }
        out.push_str("</presence>\n");
        out
    }
}

/// Escapes text and attribute values; drops characters XML 1.0 cannot carry at all.
fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            '\t' | '\n' | '\r' => out.push(c),
            c if c < ' ' || c == '\u{FFFE}' || c == '\u{FFFF}' => {}
            c => out.push(c),
        }
    }
    out
}
