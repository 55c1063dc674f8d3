//! A thin layer over quick-xml's namespace-aware reader shared by both parsers: input limits,
//! UTF-8 check, depth limit, entity handling and error positions.

use std::borrow::Cow;

use quick_xml::events::{BytesStart, BytesText, Event};
use quick_xml::name::ResolveResult;
use quick_xml::NsReader;

use crate::error::{Limits, ParseError, ParseErrorKind};

/// `urn:ietf:params:xml:ns:dialog-info` (RFC 4235).
pub(crate) const NS_DIALOG_INFO: &[u8] = b"urn:ietf:params:xml:ns:dialog-info";
/// `urn:ietf:params:xml:ns:pidf` (RFC 3863).
pub(crate) const NS_PIDF: &[u8] = b"urn:ietf:params:xml:ns:pidf";

/// Hard ceiling on [`Limits::max_depth`], so a huge configured limit cannot exhaust the stack.
pub(crate) const MAX_DEPTH_CEILING: usize = 256;

/// Namespace of an element, classified once so handlers match on an enum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Ns {
    /// No namespace at all (no prefix and no default namespace in scope).
    None,
    /// RFC 4235 dialog-info.
    DialogInfo,
    /// RFC 3863 PIDF itself.
    Pidf,
    /// Any other `urn:ietf:params:xml:ns:pidf:…` namespace: RPID (RFC 4480), the data model
    /// (RFC 4479), and the non-standard ones older Asterisk declares
    /// (`…:pidf:person`, `…:pidf:rpid:rpid-person`, `…:pidf:rpid:status:rpid-status`).
    PidfFamily,
    /// Anything else, including undeclared prefixes.
    Other,
}

impl Ns {
    fn classify(r: &ResolveResult<'_>) -> Ns {
        match r {
            ResolveResult::Unbound => Ns::None,
            ResolveResult::Unknown(_) => Ns::Other,
            ResolveResult::Bound(ns) => {
                let uri = ns.as_ref();
                if uri == NS_DIALOG_INFO {
                    Ns::DialogInfo
                } else if uri == NS_PIDF {
                    Ns::Pidf
                } else if uri.starts_with(b"urn:ietf:params:xml:ns:pidf:") {
                    Ns::PidfFamily
                } else {
                    Ns::Other
                }
            }
        }
    }
}

/// One simplified XML event.
pub(crate) enum XEvent<'a> {
    /// An element starts; `empty` is true for `<x/>` (no matching [`XEvent::End`] follows).
    Start {
        ns: Ns,
        start: BytesStart<'a>,
        empty: bool,
    },
    /// The innermost open element ends.
    End,
    /// Character data (CDATA, or a resolved entity/character reference).
    Text(Cow<'a, str>),
    /// Text as written; decoded only by the callers that keep text ([`Xml::decode`]).
    RawText(BytesText<'a>),
    /// End of a complete document.
    Eof,
}

/// Checks the limits and UTF-8 validity of `body` and returns the text to parse (BOM removed).
pub(crate) fn prepare<'a>(body: &'a [u8], limits: &Limits) -> Result<&'a str, ParseError> {
    if body.len() > limits.max_body_size {
        return Err(ParseError::at(
            ParseErrorKind::TooLarge,
            body,
            limits.max_body_size,
            format!(
                "body has {} bytes, the limit is {}",
                body.len(),
                limits.max_body_size
            ),
        ));
    }
    let text = std::str::from_utf8(body).map_err(|e| {
        ParseError::at(
            ParseErrorKind::InvalidUtf8,
            body,
            e.valid_up_to(),
            format!("invalid UTF-8 sequence at byte {}", e.valid_up_to()),
        )
    })?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Streaming reader over one prepared document.
pub(crate) struct Xml<'a> {
    body: &'a [u8],
    offset: usize,
    reader: NsReader<&'a [u8]>,
    max_depth: usize,
    depth: usize,
    event_pos: usize,
}

impl<'a> Xml<'a> {
    /// `body` is the original body (for positions); `text` the prepared text inside it.
    pub(crate) fn new(body: &'a [u8], text: &'a str, limits: &Limits) -> Self {
        let mut reader = NsReader::from_str(text);
        let config = reader.config_mut();
        // FreeSWITCH and others write a lone `&` in caller names: keep it as text.
        config.allow_dangling_amp = true;
        config.check_end_names = true;
        config.expand_empty_elements = false;
        Self {
            body,
            offset: body.len() - text.len(),
            reader,
            // The PIDF walker recurses once per level: keep the stack bounded whatever the
            // configured limit.
            max_depth: limits.max_depth.min(MAX_DEPTH_CEILING),
            depth: 0,
            event_pos: 0,
        }
    }

    /// An error positioned at the start of the last event returned.
    pub(crate) fn error_here(&self, kind: ParseErrorKind, detail: impl Into<String>) -> ParseError {
        ParseError::at(kind, self.body, self.event_pos, detail)
    }

    fn pos(&self, p: u64) -> usize {
        usize::try_from(p)
            .unwrap_or(usize::MAX)
            .saturating_add(self.offset)
    }

    /// The next event; errors carry the position of the problem.
    pub(crate) fn next(&mut self) -> Result<XEvent<'a>, ParseError> {
        loop {
            self.event_pos = self.pos(self.reader.buffer_position());
            // Namespaces are resolved only for start tags: End/Text events do not need them.
            let event = match self.reader.read_event() {
                Ok(event) => event,
                Err(e) => {
                    let at = self.pos(self.reader.error_position());
                    return Err(ParseError::at(
                        ParseErrorKind::MalformedXml,
                        self.body,
                        at,
                        e.to_string(),
                    ));
                }
            };
            match event {
                Event::Start(start) => {
                    let ns = Ns::classify(&self.reader.resolve_element(start.name()).0);
                    self.depth += 1;
                    self.check_depth()?;
                    return Ok(XEvent::Start {
                        ns,
                        start,
                        empty: false,
                    });
                }
                Event::Empty(start) => {
                    let ns = Ns::classify(&self.reader.resolve_element(start.name()).0);
                    self.depth += 1;
                    self.check_depth()?;
                    self.depth -= 1;
                    return Ok(XEvent::Start {
                        ns,
                        start,
                        empty: true,
                    });
                }
                Event::End(_) => {
                    self.depth = self.depth.saturating_sub(1);
                    return Ok(XEvent::End);
                }
                Event::Text(t) => return Ok(XEvent::RawText(t)),
                Event::CData(c) => {
                    let text = c.decode().map_err(|e| {
                        self.error_here(ParseErrorKind::MalformedXml, e.to_string())
                    })?;
                    return Ok(XEvent::Text(text));
                }
                Event::GeneralRef(r) => {
                    let resolved = match r.resolve_char_ref() {
                        Ok(Some(c)) => Cow::Owned(c.to_string()),
                        Ok(None) => {
                            let name = r.decode().map_err(|e| {
                                self.error_here(ParseErrorKind::MalformedXml, e.to_string())
                            })?;
                            match quick_xml::escape::resolve_predefined_entity(&name) {
                                Some(s) => Cow::Borrowed(s),
                                // Unknown entity (no DTD support): keep it verbatim.
                                None => Cow::Owned(format!("&{name};")),
                            }
                        }
                        Err(e) => {
                            return Err(self.error_here(ParseErrorKind::MalformedXml, e.to_string()))
                        }
                    };
                    return Ok(XEvent::Text(resolved));
                }
                Event::Eof => {
                    if self.depth > 0 {
                        return Err(ParseError::at(
                            ParseErrorKind::MalformedXml,
                            self.body,
                            self.body.len(),
                            format!(
                                "document ends with {} element(s) still open (truncated body?)",
                                self.depth
                            ),
                        ));
                    }
                    return Ok(XEvent::Eof);
                }
                Event::Decl(_) | Event::PI(_) | Event::Comment(_) | Event::DocType(_) => {}
            }
        }
    }

    fn check_depth(&self) -> Result<(), ParseError> {
        if self.depth > self.max_depth {
            Err(self.error_here(
                ParseErrorKind::TooDeep,
                format!("elements nested deeper than {}", self.max_depth),
            ))
        } else {
            Ok(())
        }
    }

    /// Decodes a [`XEvent::RawText`] (line ends normalised as XML 1.0 says).
    pub(crate) fn decode(&self, t: BytesText<'a>) -> Result<Cow<'a, str>, ParseError> {
        let text = match t.into_inner() {
            Cow::Borrowed(b) => Cow::Borrowed(
                std::str::from_utf8(b)
                    .map_err(|e| self.error_here(ParseErrorKind::InvalidUtf8, e.to_string()))?,
            ),
            Cow::Owned(v) => Cow::Owned(
                String::from_utf8(v)
                    .map_err(|e| self.error_here(ParseErrorKind::InvalidUtf8, e.to_string()))?,
            ),
        };
        if text.contains('\r') {
            Ok(Cow::Owned(text.replace("\r\n", "\n").replace('\r', "\n")))
        } else {
            Ok(text)
        }
    }

    /// The error for [`XEvent::Eof`] inside an element. [`Xml::next`] already reports an
    /// element left open at end of input, so this only guards the element loops.
    pub(crate) fn ends_inside_element(&self) -> ParseError {
        self.error_here(
            ParseErrorKind::MalformedXml,
            "document ends inside an element",
        )
    }

    /// Skips the rest of the element whose start was just returned (not for empty elements).
    pub(crate) fn skip_element(&mut self) -> Result<(), ParseError> {
        let mut open = 1usize;
        while open > 0 {
            match self.next()? {
                XEvent::Start { empty: false, .. } => open += 1,
                XEvent::End => open -= 1,
                XEvent::Eof => return Err(self.ends_inside_element()),
                XEvent::Start { empty: true, .. } | XEvent::Text(_) | XEvent::RawText(_) => {}
            }
        }
        Ok(())
    }

    /// Reads the text content of the element just started, up to its end, skipping any child
    /// elements. Surrounding whitespace is kept; callers trim. Borrows from the body when the
    /// text is one piece (the common case).
    pub(crate) fn read_text(&mut self) -> Result<Cow<'a, str>, ParseError> {
        let mut out: Option<Cow<'a, str>> = None;
        loop {
            let piece = match self.next()? {
                XEvent::Text(t) => t,
                XEvent::RawText(t) => self.decode(t)?,
                XEvent::End => return Ok(out.unwrap_or(Cow::Borrowed(""))),
                XEvent::Start { empty: false, .. } => {
                    self.skip_element()?;
                    continue;
                }
                XEvent::Start { empty: true, .. } => continue,
                XEvent::Eof => return Err(self.ends_inside_element()),
            };
            out = Some(match out {
                None => piece,
                Some(prev) => {
                    let mut s = prev.into_owned();
                    s.push_str(&piece);
                    Cow::Owned(s)
                }
            });
        }
    }
}

/// Local name of an element as bytes.
pub(crate) fn local<'b>(start: &'b BytesStart<'_>) -> quick_xml::name::LocalName<'b> {
    start.local_name()
}

/// Calls `f(name, value)` for every unprefixed attribute of `start` (namespace declarations
/// and prefixed attributes are skipped). Values are unescaped; a value with a stray `&`
/// (as FreeSWITCH writes caller names) is passed through as written instead of failing.
pub(crate) fn for_each_attr<'x>(
    xml: &Xml<'_>,
    start: &'x BytesStart<'_>,
    mut f: impl FnMut(&[u8], Cow<'x, str>),
) -> Result<(), ParseError> {
    // Duplicate-attribute checks would allocate for every element; a repeated attribute
    // simply takes the last value.
    for attr in start.attributes().with_checks(false) {
        let attr = attr.map_err(|e| {
            xml.error_here(ParseErrorKind::MalformedXml, format!("bad attribute: {e}"))
        })?;
        let key = attr.key.as_ref();
        if key.contains(&b':') || key == b"xmlns" {
            continue;
        }
        let value = match attr.unescape_value() {
            Ok(v) => v,
            Err(_) => match attr.value {
                Cow::Borrowed(b) => String::from_utf8_lossy(b),
                Cow::Owned(b) => Cow::Owned(String::from_utf8_lossy(&b).into_owned()),
            },
        };
        f(key, value);
    }
    Ok(())
}
