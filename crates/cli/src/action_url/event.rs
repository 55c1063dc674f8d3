//! Sans-IO: an action-URL request (method, path, query) as a typed
//! [`PhoneEvent`], or a [`RequestError`] that says what is wrong with it.
//!
//! The forms (the phone fills in its `$variables`; see `docs/action-urls.md`):
//! - `/<vendor>/<user>/<event>?remote=…&call_id=…` with `<vendor>` one of
//!   `yealink`, `snom`, `fanvil` or `phone`, and `<event>` the vendor's own
//!   name for it (Yealink `off_hook`, Snom `action_offhook_url` or
//!   `offhook`, Fanvil `Off Hook`…);
//! - `/<vendor>?user=<user>&event=<event>&…`, for phones that cannot put
//!   a value in the path;
//! - mattersip's `/sip/<action>/<user>[/<number>]`, also under its old
//!   prefix `/plugins/net.bytemine.sip/`, so that only the host changes in
//!   the phones' configuration.
//!
//! Event names are compared without case and without the characters
//! between words (`off_hook`, `Off Hook`, `offhook` and `OFF-HOOK` are one
//! name); a Snom setting's `action_` prefix and `_url` suffix are dropped.

use sip_blf_engine::Party;

/// The longest request target (path and query) taken: Yealink's URL field
/// holds 511 characters, and substituted values add some.
pub const MAX_TARGET: usize = 4096;

/// The longest value of one parameter or path segment.
const MAX_VALUE: usize = 512;

/// Whose phone sent the request, as the path names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Vendor {
    /// `/yealink/…`.
    Yealink,
    /// `/snom/…`.
    Snom,
    /// `/fanvil/…`.
    Fanvil,
    /// `/phone/…`: any other phone that can call a URL.
    Generic,
    /// `/sip/…`: the paths of the mattersip Mattermost plugin.
    Mattersip,
}

impl Vendor {
    /// The path's first segment (`yealink`, `sip`…).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Yealink => "yealink",
            Self::Snom => "snom",
            Self::Fanvil => "fanvil",
            Self::Generic => "phone",
            Self::Mattersip => "sip",
        }
    }

    fn from_segment(segment: &str) -> Option<Self> {
        [Self::Yealink, Self::Snom, Self::Fanvil, Self::Generic]
            .into_iter()
            .find(|v| v.as_str().eq_ignore_ascii_case(segment))
    }
}

/// What happened on the phone, vendor names mapped onto one set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    /// A call is alerting (`incoming_call`).
    Ringing,
    /// The handset is lifted (`off_hook`, `idle_to_busy`): dialling, or
    /// answering a ringing call.
    OffHook,
    /// A call is being placed (`outgoing_call`).
    Outgoing,
    /// A call is up (`call_established`, Snom `connected`).
    Established,
    /// This phone put its call on hold (`hold`).
    Hold,
    /// This phone took its call off hold (`unhold`).
    Resume,
    /// A ringing call ended without an answer (`missed_call`,
    /// `call_remote_canceled`, `reject_incoming_call`…).
    RingingEnded,
    /// A call ended (`call_terminated`, Snom `disconnected`).
    CallEnded,
    /// The handset is down (`on_hook`, `busy_to_idle`): no call.
    OnHook,
    /// The phone has started (`setup_completed`): no call.
    Started,
    /// Do-not-disturb on (`true`) or off.
    Dnd(bool),
    /// The account registered (`true`) or was unregistered or refused.
    Registration(bool),
    /// An event that says nothing about the line (`mute`, transfers,
    /// forwarding, mattersip's `paused-on`…): accepted, no change.
    Other,
}

/// One request from a phone, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhoneEvent {
    /// The form of the request.
    pub vendor: Vendor,
    /// The extension, or a person's e-mail address, as sent.
    pub user: String,
    /// The event's name as sent.
    pub name: String,
    /// What it means.
    pub kind: EventKind,
    /// The call's id (`call_id`, Snom `call-id`), when sent.
    pub call_id: Option<String>,
    /// The other party (`remote`, with `display_remote`; mattersip's
    /// `<number>`), when sent.
    pub remote: Option<Party>,
    /// A number that grows with each request of the phone (`seq`, `time`
    /// or `ts`), when sent: an older one than already seen is stale.
    pub seq: Option<u64>,
}

/// A request that is not an action URL, or not a usable one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// The path is none of the forms (404).
    #[error("not an action URL: {0}")]
    NotFound(String),
    /// The path has a known form but not its parts (400).
    #[error("malformed request: {0}")]
    Malformed(String),
    /// The event's name is not known (400).
    #[error("unknown event {0:?}")]
    UnknownEvent(String),
    /// Only GET and POST are taken (405).
    #[error("method {0} not allowed; phones send GET")]
    Method(String),
    /// The path and query are longer than [`MAX_TARGET`] (414).
    #[error("request target longer than {MAX_TARGET} bytes")]
    TooLong,
}

/// Reads a request. `query` is the raw query string (without `?`).
pub fn parse(method: &str, path: &str, query: Option<&str>) -> Result<PhoneEvent, RequestError> {
    if path.len() + query.map_or(0, str::len) > MAX_TARGET {
        return Err(RequestError::TooLong);
    }
    if !method.eq_ignore_ascii_case("GET") && !method.eq_ignore_ascii_case("POST") {
        return Err(RequestError::Method(clip(method).to_owned()));
    }
    let params = Params::parse(query.unwrap_or(""))?;
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(decode_segment)
        .collect::<Result<_, _>>()?;
    let segments: Vec<&str> = segments.iter().map(String::as_str).collect();
    let segments = match segments.as_slice() {
        ["plugins", "net.bytemine.sip", rest @ ..] => rest,
        all => all,
    };
    match segments {
        ["sip", rest @ ..] => mattersip(rest, &params),
        [vendor, rest @ ..] => {
            let vendor = Vendor::from_segment(vendor)
                .ok_or_else(|| RequestError::NotFound(clip(path).to_owned()))?;
            let (user, name) = match rest {
                [user, event] => ((*user).to_owned(), (*event).to_owned()),
                [] => (
                    params
                        .first(&["user", "ext", "extension"])
                        .ok_or_else(|| missing(vendor, "user"))?,
                    params
                        .first(&["event", "action"])
                        .ok_or_else(|| missing(vendor, "event"))?,
                ),
                _ => {
                    return Err(RequestError::Malformed(format!(
                        "expected /{0}/<user>/<event> or /{0}?user=…&event=…",
                        vendor.as_str()
                    )))
                }
            };
            let kind = kind_of(&name).ok_or_else(|| RequestError::UnknownEvent(name.clone()))?;
            let remote = params.first(&["remote", "number", "caller"]).map(|r| {
                let name = params.first(&["display_remote", "remote_name", "name"]);
                party(&r, name)
            });
            Ok(PhoneEvent {
                vendor,
                user: checked_user(user)?,
                name,
                kind,
                call_id: params.first(&["call_id", "call-id", "callid"]),
                remote: remote.flatten(),
                seq: params.seq()?,
            })
        }
        [] => Err(RequestError::NotFound("/".to_owned())),
    }
}

fn missing(vendor: Vendor, what: &str) -> RequestError {
    RequestError::Malformed(format!(
        "no {what}: expected /{0}/<user>/<event> or /{0}?user=…&event=…",
        vendor.as_str()
    ))
}

/// `/sip/<action>/<user>[/<number>]`, as mattersip takes it.
fn mattersip(rest: &[&str], params: &Params) -> Result<PhoneEvent, RequestError> {
    let (action, user, number) = match rest {
        [action, user] => (*action, *user, None),
        [action, user, number] => (*action, *user, Some(*number)),
        _ => {
            return Err(RequestError::Malformed(
                "expected /sip/<action>/<user>[/<number>]".to_owned(),
            ))
        }
    };
    let kind = match normalize(action).as_str() {
        "dndon" => EventKind::Dnd(true),
        "dndoff" => EventKind::Dnd(false),
        "offhook" => EventKind::OffHook,
        "onhook" => EventKind::OnHook,
        "login" => EventKind::Registration(true),
        "logout" => EventKind::Registration(false),
        "answeringcall" => EventKind::Established,
        "incomingcall" | "incomingconf" => EventKind::Ringing,
        "pausedon" | "pausedoff" | "agentlogin" | "agentlogout" | "unknownexten" => {
            EventKind::Other
        }
        _ => return Err(RequestError::UnknownEvent(clip(action).to_owned())),
    };
    Ok(PhoneEvent {
        vendor: Vendor::Mattersip,
        user: checked_user(user.to_owned())?,
        name: action.to_owned(),
        kind,
        call_id: params.first(&["call_id", "call-id", "callid"]),
        remote: number.and_then(|n| party(n, None)),
        seq: params.seq()?,
    })
}

fn checked_user(user: String) -> Result<String, RequestError> {
    if user.starts_with('$') {
        return Err(RequestError::Malformed(format!(
            "user {user:?} is a variable the phone did not fill in"
        )));
    }
    Ok(user)
}

/// The event a vendor's name means, if known.
pub fn kind_of(name: &str) -> Option<EventKind> {
    let n = normalize(name);
    // A Snom setting's name: action_offhook_url → offhook.
    let n = n.strip_prefix("action").unwrap_or(&n);
    let n = n.strip_suffix("url").unwrap_or(n);
    use EventKind::*;
    Some(match n {
        "incomingcall" | "incoming" | "incomingconf" => Ringing,
        "offhook" | "idletobusy" => OffHook,
        "outgoingcall" | "outgoing" | "callout" => Outgoing,
        "callestablished"
        | "established"
        | "establishcall"
        | "connected"
        | "answeringcall"
        | "answernewincomingcall"
        | "answer" => Established,
        "hold" | "holdcall" => Hold,
        "unhold" | "resumecall" | "resume" => Resume,
        "missedcall"
        | "missed"
        | "callremotecanceled"
        | "rejectincomingcall"
        | "forwardincomingcall"
        | "rejectcall" => RingingEnded,
        "callterminated" | "terminated" | "terminatecall" | "terminatedcall" | "disconnected"
        | "remotebusy" | "cancelcallout" | "callend" | "hangup" => CallEnded,
        "onhook" | "busytoidle" => OnHook,
        "setupcompleted" | "setup" | "setupfinished" | "bootingcompleted" | "bootcompleted" => {
            Started
        }
        "dndon" | "opendnd" | "dndenabled" | "enablednd" => Dnd(true),
        "dndoff" | "closednd" | "dnddisabled" | "disablednd" => Dnd(false),
        "registered"
        | "logon"
        | "login"
        | "registration"
        | "registrationsucceeded"
        | "registersucceeded"
        | "registersuccess" => Registration(true),
        "unregistered"
        | "logoff"
        | "logout"
        | "registerfailed"
        | "regfailed"
        | "registrationfailed"
        | "registrationdisabled"
        | "signoff" => Registration(false),
        "mute"
        | "unmute"
        | "held"
        | "unheld"
        | "alwaysfwdon"
        | "alwaysfwdoff"
        | "busyfwdon"
        | "busyfwdoff"
        | "noanswerfwdon"
        | "noanswerfwdoff"
        | "callwaitingon"
        | "callwaitingoff"
        | "transfercall"
        | "blindtransfercall"
        | "attendedtransfercall"
        | "transferfinished"
        | "transferfailed"
        | "transfer"
        | "blindtransfer"
        | "attendedtransfer"
        | "receivedattendedtransfer"
        | "ipchange"
        | "ipchanged"
        | "setupautopfinish"
        | "autopfinish"
        | "headset"
        | "handfree"
        | "peripheralinformation"
        | "vpnip"
        | "redirectionon"
        | "redirectionoff"
        | "longpress"
        | "blacklist"
        | "pausedon"
        | "pausedoff"
        | "agentlogin"
        | "agentlogout"
        | "unknownexten" => Other,
        _ => return None,
    })
}

/// Lowercase ASCII letters and digits only.
fn normalize(name: &str) -> String {
    name.chars()
        .filter(char::is_ascii_alphanumeric)
        .map(|c| c.to_ascii_lowercase())
        .collect()
}

/// The other party from a phone's `$remote`: a SIP URI
/// (`sip:1002@pbx;user=phone`, `"Bob" <sip:1002@pbx>`), `tel:` URI or a
/// plain number; `None` when empty or a variable left unfilled.
pub fn party(remote: &str, name: Option<String>) -> Option<Party> {
    let mut text = remote.trim();
    let mut shown = name.filter(|n| !n.trim().is_empty() && !n.starts_with('$'));
    if let Some((before, inner)) = text.split_once('<') {
        let display = before.trim().trim_matches('"').trim();
        if shown.is_none() && !display.is_empty() {
            shown = Some(display.to_owned());
        }
        text = inner.split('>').next().unwrap_or(inner);
    }
    let lower = text.to_ascii_lowercase();
    for scheme in ["sips:", "sip:", "tel:"] {
        if lower.starts_with(scheme) {
            text = &text[scheme.len()..];
            break;
        }
    }
    let number = text.split(['@', ';', '?']).next().unwrap_or(text).trim();
    if number.is_empty() || number.starts_with('$') {
        return None;
    }
    Some(Party {
        number: number.to_owned(),
        name: shown.map(|n| n.trim().to_owned()),
    })
}

/// A path segment, percent-decoded; Snom ends a variable in the path with
/// `&`, which is dropped.
fn decode_segment(segment: &str) -> Result<String, RequestError> {
    let decoded = percent_decode(segment);
    let decoded = decoded.trim_end_matches('&').to_owned();
    if decoded.len() > MAX_VALUE {
        return Err(RequestError::Malformed(
            "a path segment is too long".to_owned(),
        ));
    }
    Ok(decoded)
}

/// `%XX` escapes decoded; a `+` stays itself, in the query too: phones put
/// `$remote` in the URL as it is, and `+4930123` is a number, not a space.
/// Broken escapes are kept as they are.
pub fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (bytes[i], bytes.get(i + 1), bytes.get(i + 2)) {
            (b'%', Some(&h), Some(&l)) if hex(h).is_some() && hex(l).is_some() => {
                let value = hex(h).unwrap_or(0) * 16 + hex(l).unwrap_or(0);
                out.push(u8::try_from(value).unwrap_or(b'?'));
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}
/// The query's parameters, names lowercased.
struct Params(Vec<(String, String)>);

impl Params {
    fn parse(query: &str) -> Result<Self, RequestError> {
        let mut out = Vec::new();
        for pair in query.split('&').filter(|p| !p.is_empty()) {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            let (name, value) = (percent_decode(name), percent_decode(value));
            if value.len() > MAX_VALUE {
                return Err(RequestError::Malformed(format!(
                    "parameter {:?} is too long",
                    clip(&name)
                )));
            }
            out.push((name.to_ascii_lowercase(), value));
        }
        Ok(Self(out))
    }

    /// The first non-empty value of any of `names` that the phone filled in.
    fn first(&self, names: &[&str]) -> Option<String> {
        names.iter().find_map(|want| {
            self.0
                .iter()
                .find(|(n, v)| n == want && !v.trim().is_empty() && !v.starts_with('$'))
                .map(|(_, v)| v.trim().to_owned())
        })
    }

    fn seq(&self) -> Result<Option<u64>, RequestError> {
        match self.first(&["seq", "time", "ts"]) {
            None => Ok(None),
            Some(v) => v.parse().map(Some).map_err(|_| {
                RequestError::Malformed(format!("seq/time {:?} is not a whole number", clip(&v)))
            }),
        }
    }
}

/// At most 64 bytes of `s` (on a character boundary), for messages.
fn clip(s: &str) -> &str {
    let mut end = s.len().min(64);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

#[cfg(test)]
#[path = "event_tests.rs"]
mod tests;
