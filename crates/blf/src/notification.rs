//! One NOTIFY body, whatever its format.

use quick_xml::events::BytesStart;

use crate::dialog_info::{self, DialogInfo};
use crate::error::{Limits, ParseError, ParseErrorKind};
use crate::pidf::{self, Pidf};
use crate::state::LineState;
use crate::xml::{self, Ns, XEvent, Xml};

/// `application/dialog-info+xml`.
pub const CONTENT_TYPE_DIALOG_INFO: &str = "application/dialog-info+xml";
/// `application/pidf+xml`.
pub const CONTENT_TYPE_PIDF: &str = "application/pidf+xml";

/// The body of one NOTIFY.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
#[non_exhaustive]
pub enum Notification {
    /// An RFC 4235 document.
    DialogInfo(DialogInfo),
    /// An RFC 3863 document.
    Pidf(Pidf),
    /// No body (or only whitespace). On its own this says nothing, so its
    /// [`line_state`](Notification::line_state) is `Unknown`; a [`Tracker`](crate::Tracker)
    /// that knows the subscription may read it as "no dialogs" (Kamailio), see
    /// [`EmptyBody`](crate::EmptyBody).
    Empty,
}

/// Which body format to expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    DialogInfo,
    Pidf,
}

impl Notification {
    /// Parses a NOTIFY body with default [`Limits`].
    ///
    /// The parser is picked by `content_type` (`application/dialog-info+xml` or
    /// `application/pidf+xml`, case-insensitive, parameters such as `;charset=utf-8`
    /// ignored). Without a content type the root element's namespace decides. A body that
    /// is empty or only whitespace gives [`Notification::Empty`] whatever the content type.
    pub fn parse(content_type: Option<&str>, body: &[u8]) -> Result<Notification, ParseError> {
        Self::parse_with(content_type, body, &Limits::default())
    }

    /// [`parse`](Self::parse) with explicit limits.
    pub fn parse_with(
        content_type: Option<&str>,
        body: &[u8],
        limits: &Limits,
    ) -> Result<Notification, ParseError> {
        let expected = match content_type.map(media_type) {
            None | Some("") => None,
            Some(t) if t.eq_ignore_ascii_case(CONTENT_TYPE_DIALOG_INFO) => Some(Kind::DialogInfo),
            Some(t) if t.eq_ignore_ascii_case(CONTENT_TYPE_PIDF) => Some(Kind::Pidf),
            Some(t) => {
                if body.iter().all(u8::is_ascii_whitespace) {
                    return Ok(Notification::Empty);
                }
                return Err(ParseError {
                    kind: ParseErrorKind::UnsupportedContentType,
                    line: 1,
                    column: 1,
                    detail: format!(
                        "content type {t:?}; expected {CONTENT_TYPE_DIALOG_INFO} or {CONTENT_TYPE_PIDF}"
                    ),
                });
            }
        };
        if body.len() <= limits.max_body_size && body.iter().all(u8::is_ascii_whitespace) {
            return Ok(Notification::Empty);
        }
        let text = xml::prepare(body, limits)?;
        if text.trim().is_empty() {
            return Ok(Notification::Empty);
        }
        let mut xml = Xml::new(body, text, limits);
        let (ns, start, empty) = read_root(&mut xml)?;
        let name = xml::local(&start);
        let found = if dialog_info::is_di(ns) && name.as_ref() == b"dialog-info" {
            Some(Kind::DialogInfo)
        } else if pidf::is_pidf_root(ns) && name.as_ref() == b"presence" {
            Some(Kind::Pidf)
        } else {
            None
        };
        match (expected, found) {
            (None | Some(Kind::DialogInfo), Some(Kind::DialogInfo)) => Ok(
                Notification::DialogInfo(dialog_info::parse_root(&mut xml, &start, empty)?),
            ),
            (None | Some(Kind::Pidf), Some(Kind::Pidf)) => Ok(Notification::Pidf(
                pidf::parse_root(&mut xml, &start, empty)?,
            )),
            (expected, _) => {
                let want = match expected {
                    Some(Kind::DialogInfo) => "<dialog-info> (urn:ietf:params:xml:ns:dialog-info)",
                    Some(Kind::Pidf) => "<presence> (urn:ietf:params:xml:ns:pidf)",
                    None => "<dialog-info> or <presence>",
                };
                Err(xml.error_here(
                    ParseErrorKind::UnexpectedRoot,
                    format!(
                        "root element <{}> is not {want}",
                        String::from_utf8_lossy(start.name().as_ref())
                    ),
                ))
            }
        }
    }

    /// The line state this body alone says: see the crate documentation. `Empty` is `Unknown`.
    pub fn line_state(&self) -> LineState {
        match self {
            Notification::DialogInfo(d) => d.line_state(),
            Notification::Pidf(p) => p.line_state(),
            Notification::Empty => LineState::Unknown,
        }
    }
}

/// `type/subtype` without parameters, trimmed.
fn media_type(content_type: &str) -> &str {
    content_type.split(';').next().unwrap_or("").trim()
}

/// Reads up to the root element's start tag.
pub(crate) fn read_root<'a>(xml: &mut Xml<'a>) -> Result<(Ns, BytesStart<'a>, bool), ParseError> {
    loop {
        match xml.next()? {
            XEvent::Start { ns, start, empty } => return Ok((ns, start, empty)),
            XEvent::Text(t) if t.trim().is_empty() => {}
            XEvent::RawText(t) if t.iter().all(u8::is_ascii_whitespace) => {}
            XEvent::Text(_) | XEvent::RawText(_) => {
                return Err(
                    xml.error_here(ParseErrorKind::MalformedXml, "text before the root element")
                )
            }
            XEvent::End | XEvent::Eof => {
                return Err(xml.error_here(ParseErrorKind::MalformedXml, "no root element"))
            }
        }
    }
}
