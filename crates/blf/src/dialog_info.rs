//! `application/dialog-info+xml` (RFC 4235) documents.

use quick_xml::events::BytesStart;

use crate::error::{Limits, ParseError, ParseErrorKind};
use crate::state::LineState;
use crate::xml::{self, for_each_attr, Ns, XEvent, Xml};

/// Whether a document carries the whole state or only changes (RFC 4235 `state` attribute).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DocState {
    /// The document lists every dialog; it replaces what the watcher knew.
    #[default]
    Full,
    /// The document lists only dialogs that changed; merge by dialog id.
    Partial,
}

/// Which side created the dialog (RFC 4235 `direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum Direction {
    /// The monitored user placed the call (outgoing).
    Initiator,
    /// The monitored user receives the call (incoming).
    Recipient,
}

impl Direction {
    /// The attribute's text (`initiator`, `recipient`), as a notifier writes it.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Initiator => "initiator",
            Direction::Recipient => "recipient",
        }
    }
}

/// The state of one dialog (RFC 4235 `<state>`), parsed after trimming and ignoring case
/// (Kamailio sends `Trying`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DialogState {
    /// INVITE sent or received, no provisional response yet.
    Trying,
    /// A provisional response without a tag.
    Proceeding,
    /// A provisional response with a tag: ringing.
    Early,
    /// Answered.
    Confirmed,
    /// Ended.
    Terminated,
    /// Any other text (or no `<state>` element: empty text).
    Other(String),
}

impl DialogState {
    /// Parses the text of a `<state>` element.
    pub fn parse(text: &str) -> DialogState {
        let t = text.trim();
        for (name, state) in [
            ("trying", DialogState::Trying),
            ("proceeding", DialogState::Proceeding),
            ("early", DialogState::Early),
            ("confirmed", DialogState::Confirmed),
            ("terminated", DialogState::Terminated),
        ] {
            if t.eq_ignore_ascii_case(name) {
                return state;
            }
        }
        DialogState::Other(t.to_owned())
    }

    /// The element's text (`early`, `confirmed`…; an `Other` text as given),
    /// as a notifier writes it: [`parse`](Self::parse) reads it back.
    pub fn as_str(&self) -> &str {
        match self {
            DialogState::Trying => "trying",
            DialogState::Proceeding => "proceeding",
            DialogState::Early => "early",
            DialogState::Confirmed => "confirmed",
            DialogState::Terminated => "terminated",
            DialogState::Other(text) => text,
        }
    }
}

/// One side of a dialog (`<local>` or `<remote>`).
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Participant {
    /// The `<identity>` URI, trimmed.
    pub identity: Option<String>,
    /// The `display` attribute of `<identity>`.
    pub display: Option<String>,
    /// The `uri` attribute of `<target>`.
    pub target: Option<String>,
    /// `<param pname=… pval=…/>` (or `pvalue`, as Asterisk and FreeSWITCH spell it) of the target.
    pub target_params: Vec<(String, String)>,
}

impl Participant {
    /// The value of target parameter `name` (compared ignoring ASCII case and whitespace).
    pub fn target_param(&self, name: &str) -> Option<&str> {
        self.target_params
            .iter()
            .find(|(n, _)| n.trim().eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim())
    }
}

/// One `<dialog>` element.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct Dialog {
    /// `id` attribute (Asterisk: the extension; Kamailio: `padi-…`; FreeSWITCH: the call UUID).
    pub id: String,
    /// `call-id` attribute.
    pub call_id: Option<String>,
    /// `local-tag` attribute.
    pub local_tag: Option<String>,
    /// `remote-tag` attribute.
    pub remote_tag: Option<String>,
    /// `direction` attribute; `None` when absent or not understood.
    pub direction: Option<Direction>,
    /// Text of `<state>`.
    pub state: DialogState,
    /// `event` attribute of `<state>` (e.g. `rejected`, `replaced`).
    pub event: Option<String>,
    /// `code` attribute of `<state>`.
    pub code: Option<u16>,
    /// `<duration>` in seconds.
    pub duration: Option<u64>,
    /// `<local>` participant.
    pub local: Option<Participant>,
    /// `<remote>` participant.
    pub remote: Option<Participant>,
}

impl Default for DialogState {
    fn default() -> Self {
        DialogState::Other(String::new())
    }
}

impl Dialog {
    /// True when the local target carries `+sip.rendering=no`: the call is on hold.
    pub fn is_held(&self) -> bool {
        self.local
            .as_ref()
            .and_then(|p| p.target_param("+sip.rendering"))
            .is_some_and(|v| v.eq_ignore_ascii_case("no"))
    }

    /// What this dialog contributes to the line state; `None` for a terminated dialog.
    ///
    /// See the crate documentation for the rule table.
    pub fn line_state(&self) -> Option<LineState> {
        if self.state == DialogState::Terminated {
            return None;
        }
        if self.is_held() {
            return Some(LineState::Hold);
        }
        Some(match self.state {
            DialogState::Confirmed => LineState::Busy,
            DialogState::Early | DialogState::Proceeding => {
                if self.direction == Some(Direction::Initiator) {
                    LineState::Busy
                } else {
                    LineState::Ringing
                }
            }
            DialogState::Trying => {
                if self.direction == Some(Direction::Recipient) {
                    LineState::Ringing
                } else {
                    LineState::Busy
                }
            }
            DialogState::Terminated | DialogState::Other(_) => LineState::Unknown,
        })
    }
}

/// A parsed `application/dialog-info+xml` document.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
#[non_exhaustive]
pub struct DialogInfo {
    /// `version` attribute.
    pub version: Option<u64>,
    /// `state` attribute (`full` when absent).
    pub state: DocState,
    /// `entity` attribute: the monitored AoR.
    pub entity: Option<String>,
    /// Every `<dialog>`, in document order.
    pub dialogs: Vec<Dialog>,
}

impl DialogInfo {
    /// Parses a dialog-info body with default [`Limits`].
    pub fn parse(body: &[u8]) -> Result<DialogInfo, ParseError> {
        Self::parse_with(body, &Limits::default())
    }

    /// Parses a dialog-info body with explicit limits.
    pub fn parse_with(body: &[u8], limits: &Limits) -> Result<DialogInfo, ParseError> {
        let text = xml::prepare(body, limits)?;
        let mut xml = Xml::new(body, text, limits);
        let (ns, start, empty) = crate::notification::read_root(&mut xml)?;
        if !is_di(ns) || xml::local(&start).as_ref() != b"dialog-info" {
            return Err(xml.error_here(
                ParseErrorKind::UnexpectedRoot,
                "expected <dialog-info> in namespace urn:ietf:params:xml:ns:dialog-info",
            ));
        }
        parse_root(&mut xml, &start, empty)
    }

    /// Aggregated line state: the highest-precedence state of the live dialogs, `Idle` when
    /// there are none.
    pub fn line_state(&self) -> LineState {
        aggregate(&self.dialogs)
    }
}

/// Line state of a set of dialogs (`Idle` when none is live).
pub fn aggregate(dialogs: &[Dialog]) -> LineState {
    LineState::aggregate(dialogs.iter().filter_map(Dialog::line_state))
}

pub(crate) fn is_di(ns: Ns) -> bool {
    matches!(ns, Ns::DialogInfo | Ns::None)
}

fn invalid(xml: &Xml<'_>, what: &str, value: &str) -> ParseError {
    xml.error_here(
        ParseErrorKind::InvalidValue,
        format!("invalid {what} {value:?}"),
    )
}

/// Parses the document whose root start tag was just read.
pub(crate) fn parse_root(
    xml: &mut Xml<'_>,
    start: &BytesStart<'_>,
    empty: bool,
) -> Result<DialogInfo, ParseError> {
    let mut info = DialogInfo::default();
    let mut bad: Option<(&str, String)> = None;
    for_each_attr(xml, start, |key, value| match key {
        b"version" => match value.trim().parse::<u64>() {
            Ok(v) => info.version = Some(v),
            Err(_) => bad = Some(("version", value.into_owned())),
        },
        b"state" => {
            let v = value.trim();
            if v.eq_ignore_ascii_case("full") {
                info.state = DocState::Full;
            } else if v.eq_ignore_ascii_case("partial") {
                info.state = DocState::Partial;
            } else {
                bad = Some(("document state", value.into_owned()));
            }
        }
        b"entity" => info.entity = Some(value.into_owned()),
        _ => {}
    })?;
    if let Some((what, value)) = bad {
        return Err(invalid(xml, what, &value));
    }
    if empty {
        return Ok(info);
    }
    loop {
        match xml.next()? {
            XEvent::Start { ns, start, empty } => {
                if is_di(ns) && xml::local(&start).as_ref() == b"dialog" {
                    let dialog = parse_dialog(xml, &start, empty)?;
                    info.dialogs.push(dialog);
                } else if !empty {
                    xml.skip_element()?;
                }
            }
            XEvent::End => return Ok(info),
            XEvent::Text(_) | XEvent::RawText(_) => {}
            XEvent::Eof => return Err(xml.ends_inside_element()),
        }
    }
}

fn parse_dialog(
    xml: &mut Xml<'_>,
    start: &BytesStart<'_>,
    empty: bool,
) -> Result<Dialog, ParseError> {
    let mut d = Dialog::default();
    for_each_attr(xml, start, |key, value| match key {
        b"id" => d.id = value.into_owned(),
        b"call-id" => d.call_id = Some(value.into_owned()),
        b"local-tag" => d.local_tag = Some(value.into_owned()),
        b"remote-tag" => d.remote_tag = Some(value.into_owned()),
        b"direction" => {
            let v = value.trim();
            d.direction = if v.eq_ignore_ascii_case("initiator") {
                Some(Direction::Initiator)
            } else if v.eq_ignore_ascii_case("recipient") {
                Some(Direction::Recipient)
            } else {
                None
            };
        }
        _ => {}
    })?;
    if empty {
        return Ok(d);
    }
    loop {
        match xml.next()? {
            XEvent::Start { ns, start, empty } => {
                if !is_di(ns) {
                    if !empty {
                        xml.skip_element()?;
                    }
                    continue;
                }
                match xml::local(&start).as_ref() {
                    b"state" => {
                        for_each_attr(xml, &start, |key, value| match key {
                            b"event" => d.event = Some(value.into_owned()),
                            b"code" => d.code = value.trim().parse().ok(),
                            _ => {}
                        })?;
                        let text = if empty {
                            std::borrow::Cow::Borrowed("")
                        } else {
                            xml.read_text()?
                        };
                        d.state = DialogState::parse(&text);
                    }
                    b"duration" => {
                        if !empty {
                            d.duration = xml.read_text()?.trim().parse().ok();
                        }
                    }
                    b"local" => d.local = Some(parse_participant(xml, empty)?),
                    b"remote" => d.remote = Some(parse_participant(xml, empty)?),
                    _ => {
                        if !empty {
                            xml.skip_element()?;
                        }
                    }
                }
            }
            XEvent::End => return Ok(d),
            XEvent::Text(_) | XEvent::RawText(_) => {}
            XEvent::Eof => return Err(xml.ends_inside_element()),
        }
    }
}

fn parse_participant(xml: &mut Xml<'_>, empty: bool) -> Result<Participant, ParseError> {
    let mut p = Participant::default();
    if empty {
        return Ok(p);
    }
    loop {
        match xml.next()? {
            XEvent::Start { ns, start, empty } => {
                if !is_di(ns) {
                    if !empty {
                        xml.skip_element()?;
                    }
                    continue;
                }
                match xml::local(&start).as_ref() {
                    b"identity" if p.identity.is_none() => {
                        for_each_attr(xml, &start, |key, value| {
                            if key == b"display" {
                                p.display = Some(value.into_owned());
                            }
                        })?;
                        if !empty {
                            p.identity = Some(xml.read_text()?.trim().to_owned());
                        }
                    }
                    b"target" if p.target.is_none() => {
                        for_each_attr(xml, &start, |key, value| {
                            if key == b"uri" {
                                p.target = Some(value.into_owned());
                            }
                        })?;
                        if !empty {
                            parse_target_params(xml, &mut p.target_params)?;
                        }
                    }
                    _ => {
                        if !empty {
                            xml.skip_element()?;
                        }
                    }
                }
            }
            XEvent::End => return Ok(p),
            XEvent::Text(_) | XEvent::RawText(_) => {}
            XEvent::Eof => return Err(xml.ends_inside_element()),
        }
    }
}

fn parse_target_params(
    xml: &mut Xml<'_>,
    params: &mut Vec<(String, String)>,
) -> Result<(), ParseError> {
    loop {
        match xml.next()? {
            XEvent::Start { ns, start, empty } => {
                if is_di(ns) && xml::local(&start).as_ref() == b"param" {
                    let mut name = None;
                    let mut value = None;
                    for_each_attr(xml, &start, |key, v| match key {
                        b"pname" => name = Some(v.into_owned()),
                        // RFC 4235's schema says `pval`; Asterisk and FreeSWITCH write `pvalue`.
                        b"pval" | b"pvalue" => value = Some(v.into_owned()),
                        _ => {}
                    })?;
                    if let Some(name) = name {
                        params.push((name, value.unwrap_or_default()));
                    }
                }
                if !empty {
                    xml.skip_element()?;
                }
            }
            XEvent::End => return Ok(()),
            XEvent::Text(_) | XEvent::RawText(_) => {}
            XEvent::Eof => return Err(xml.ends_inside_element()),
        }
    }
}
