//! `application/pidf+xml` (RFC 3863) documents with RPID activities (RFC 4480): read
//! ([`Pidf`]) and written ([`PresenceDocument`]).

use quick_xml::events::BytesStart;

mod document;

pub use document::PresenceDocument;

use crate::error::{Limits, ParseError, ParseErrorKind};
use crate::state::LineState;
use crate::xml::{self, for_each_attr, Ns, XEvent, Xml};

/// RFC 3863 `<basic>` status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Basic {
    /// Reachable.
    Open,
    /// Not reachable.
    Closed,
}

/// One `<tuple>`.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Tuple {
    /// `id` attribute.
    pub id: Option<String>,
    /// `<status><basic>`; `None` when absent or neither `open` nor `closed`.
    pub basic: Option<Basic>,
    /// `<contact>` URI.
    pub contact: Option<String>,
}

/// A parsed `application/pidf+xml` document.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Pidf {
    /// `entity` attribute of `<presence>`.
    pub entity: Option<String>,
    /// Every `<tuple>`.
    pub tuples: Vec<Tuple>,
    /// RPID activities found anywhere in the document, lowercase, without prefix
    /// (`on-the-phone`, `busy`, `away`, …). Both RFC 4480 child elements
    /// (`<rpid:activities><rpid:on-the-phone/></rpid:activities>`) and the text form older
    /// Asterisk writes (`<ep:activities>ep:busy</ep:activities>`) are read.
    pub activities: Vec<String>,
    /// Every `<note>`, trimmed.
    pub notes: Vec<String>,
}

impl Pidf {
    /// Parses a PIDF body with default [`Limits`].
    pub fn parse(body: &[u8]) -> Result<Pidf, ParseError> {
        Self::parse_with(body, &Limits::default())
    }

    /// Parses a PIDF body with explicit limits.
    pub fn parse_with(body: &[u8], limits: &Limits) -> Result<Pidf, ParseError> {
        let text = xml::prepare(body, limits)?;
        let mut xml = Xml::new(body, text, limits);
        let (ns, start, empty) = crate::notification::read_root(&mut xml)?;
        if !is_pidf_root(ns) || xml::local(&start).as_ref() != b"presence" {
            return Err(xml.error_here(
                ParseErrorKind::UnexpectedRoot,
                "expected <presence> in namespace urn:ietf:params:xml:ns:pidf",
            ));
        }
        parse_root(&mut xml, &start, empty)
    }

    /// True when an activity says the user is in a call (`on-the-phone` or `busy`).
    pub fn on_the_phone(&self) -> bool {
        self.activities
            .iter()
            .any(|a| a == "on-the-phone" || a == "busy")
    }

    fn has_note(&self, text: &str) -> bool {
        self.notes.iter().any(|n| n.eq_ignore_ascii_case(text))
    }

    /// Line state of the document:
    ///
    /// 1. an `on-the-phone`/`busy` activity → `Busy`, refined by Asterisk's notes:
    ///    `Ringing` → `Ringing`, `On hold` → `Hold` (Asterisk marks in-use lines `closed`, so
    ///    the activity wins over `basic`);
    /// 2. otherwise any tuple `open` → `Idle`;
    /// 3. otherwise any tuple `closed` → `Offline`;
    /// 4. otherwise `Unknown`.
    pub fn line_state(&self) -> LineState {
        if self.on_the_phone() {
            if self.has_note("ringing") {
                LineState::Ringing
            } else if self.has_note("on hold") {
                LineState::Hold
            } else {
                LineState::Busy
            }
        } else if self.tuples.iter().any(|t| t.basic == Some(Basic::Open)) {
            LineState::Idle
        } else if self.tuples.iter().any(|t| t.basic == Some(Basic::Closed)) {
            LineState::Offline
        } else {
            LineState::Unknown
        }
    }
}

pub(crate) fn is_pidf_root(ns: Ns) -> bool {
    matches!(ns, Ns::Pidf | Ns::None)
}

fn in_family(ns: Ns) -> bool {
    matches!(ns, Ns::Pidf | Ns::PidfFamily | Ns::None)
}

/// Parses the document whose root start tag was just read.
pub(crate) fn parse_root(
    xml: &mut Xml<'_>,
    start: &BytesStart<'_>,
    empty: bool,
) -> Result<Pidf, ParseError> {
    let mut pidf = Pidf::default();
    for_each_attr(xml, start, |key, value| {
        if key == b"entity" {
            pidf.entity = Some(value.into_owned());
        }
    })?;
    if !empty {
        walk(xml, &mut pidf, None)?;
    }
    Ok(pidf)
}

/// Walks the children of the current element up to its end.
fn walk(xml: &mut Xml<'_>, pidf: &mut Pidf, tuple: Option<usize>) -> Result<(), ParseError> {
    loop {
        match xml.next()? {
            XEvent::Start { ns, start, empty } => {
                if !in_family(ns) {
                    if !empty {
                        xml.skip_element()?;
                    }
                    continue;
                }
                match xml::local(&start).as_ref() {
                    b"tuple" if ns != Ns::PidfFamily => {
                        let mut t = Tuple::default();
                        for_each_attr(xml, &start, |key, value| {
                            if key == b"id" {
                                t.id = Some(value.into_owned());
                            }
                        })?;
                        pidf.tuples.push(t);
                        if !empty {
                            walk(xml, pidf, Some(pidf.tuples.len() - 1))?;
                        }
                    }
                    b"basic" => {
                        let text = if empty {
                            std::borrow::Cow::Borrowed("")
                        } else {
                            xml.read_text()?
                        };
                        let t = text.trim();
                        let basic = if t.eq_ignore_ascii_case("open") {
                            Some(Basic::Open)
                        } else if t.eq_ignore_ascii_case("closed") {
                            Some(Basic::Closed)
                        } else {
                            None
                        };
                        if let Some(t) = tuple.and_then(|i| pidf.tuples.get_mut(i)) {
                            t.basic = basic;
                        }
                    }
                    b"contact" if !empty => {
                        let text = xml.read_text()?;
                        if let Some(t) = tuple.and_then(|i| pidf.tuples.get_mut(i)) {
                            t.contact = Some(text.trim().to_owned());
                        }
                    }
                    b"note" if !empty => {
                        let text = xml.read_text()?;
                        pidf.notes.push(text.trim().to_owned());
                    }
                    b"activities" => {
                        if !empty {
                            read_activities(xml, &mut pidf.activities)?;
                        }
                    }
                    _ => {
                        if !empty {
                            walk(xml, pidf, tuple)?;
                        }
                    }
                }
            }
            XEvent::End => return Ok(()),
            XEvent::Text(_) | XEvent::RawText(_) => {}
            XEvent::Eof => return Err(xml.ends_inside_element()),
        }
    }
}

fn push_activity(out: &mut Vec<String>, token: &str) {
    // `ep:busy` → `busy`
    let name = token.rsplit(':').next().unwrap_or(token).trim();
    if !name.is_empty() {
        out.push(name.to_ascii_lowercase());
    }
}

fn read_activities(xml: &mut Xml<'_>, out: &mut Vec<String>) -> Result<(), ParseError> {
    loop {
        match xml.next()? {
            XEvent::Start { ns, start, empty } => {
                if in_family(ns) {
                    let name = xml::local(&start);
                    push_activity(out, &String::from_utf8_lossy(name.as_ref()));
                }
                if !empty {
                    xml.skip_element()?;
                }
            }
            XEvent::Text(t) => {
                for token in t.split_whitespace() {
                    push_activity(out, token);
                }
            }
            XEvent::RawText(t) => {
                for token in xml.decode(t)?.split_whitespace() {
                    push_activity(out, token);
                }
            }
            XEvent::End => return Ok(()),
            XEvent::Eof => return Err(xml.ends_inside_element()),
        }
    }
}
