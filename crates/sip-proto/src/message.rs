//! The SIP message model: parse, normalise and serialise (RFC 3261 §7).
//!
//! Parsing is lenient where real PBXs are sloppy and strict where it matters:
//! compact header names are expanded, folded lines are joined, whitespace around
//! names and values is trimmed, and every size is bounded ([`MAX_MESSAGE_SIZE`],
//! [`MAX_HEADERS`], [`MAX_HEADER_LINE`]). Parsing never panics.

use crate::error::ParseError;

/// The largest message accepted from the network (headers and body), in bytes.
pub const MAX_MESSAGE_SIZE: usize = 64 * 1024;
/// The most header fields accepted in one message.
pub const MAX_HEADERS: usize = 128;
/// The longest header line (after unfolding) accepted, in bytes.
pub const MAX_HEADER_LINE: usize = 8 * 1024;

/// Request line or status line.
///
/// Exhaustive on purpose: RFC 3261 §7 makes every SIP message a request or
/// a response, so a `match` over both is complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartLine {
    /// `METHOD uri SIP/2.0`
    Request {
        /// Method, e.g. `NOTIFY` (as sent, case-sensitive per RFC 3261).
        method: String,
        /// Request-URI, as sent.
        uri: String,
    },
    /// `SIP/2.0 code reason`
    Response {
        /// Status code, 100..=699.
        status: u16,
        /// Reason phrase.
        reason: String,
    },
}

/// The header fields of a message, in order, with names in their long form.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Headers(Vec<(String, String)>);

impl Headers {
    /// No headers.
    pub fn new() -> Self {
        Self(Vec::new())
    }
    /// Appends a header field.
    pub fn push(&mut self, name: impl Into<String>, value: impl Into<String>) {
        self.0.push((name.into(), value.into()));
    }
    /// The first value of `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Every value of `name` (case-insensitive), in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.0
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// Every value of `name`, with comma-separated lists split into their elements
    /// (for `Via`, `Route`, `Record-Route`, `Contact`).
    pub fn get_list<'a>(&'a self, name: &'a str) -> Vec<&'a str> {
        self.get_all(name)
            .flat_map(split_top_level_commas)
            .collect()
    }
    /// Removes every `name` field.
    pub fn remove(&mut self, name: &str) {
        self.0.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }
    /// Replaces every `name` field by one with `value`.
    pub fn set(&mut self, name: &str, value: impl Into<String>) {
        self.remove(name);
        self.push(name, value);
    }
    /// Replaces the value of the first `name` field; `false` when there is none.
    pub fn replace_first(&mut self, name: &str, value: impl Into<String>) -> bool {
        match self
            .0
            .iter_mut()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
        {
            Some((_, v)) => {
                *v = value.into();
                true
            }
            None => false,
        }
    }
    /// Iterates over `(name, value)` pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }
    /// Number of fields.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// `true` when there is no field.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A SIP request or response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// Request or status line.
    pub start: StartLine,
    /// Header fields (long names).
    pub headers: Headers,
    /// The body (exactly `Content-Length` bytes).
    pub body: Vec<u8>,
}

/// Expands a compact header name (RFC 3261 §7.3.3, RFC 3265/6665, RFC 3515) to its long form.
pub fn expand_compact_name(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes().first().map(u8::to_ascii_lowercase) {
        Some(b'i') => "Call-ID",
        Some(b'v') => "Via",
        Some(b'f') => "From",
        Some(b't') => "To",
        Some(b'm') => "Contact",
        Some(b'l') => "Content-Length",
        Some(b'c') => "Content-Type",
        Some(b'o') => "Event",
        Some(b'u') => "Allow-Events",
        Some(b'e') => "Content-Encoding",
        Some(b'k') => "Supported",
        Some(b's') => "Subject",
        Some(b'r') => "Refer-To",
        Some(b'b') => "Referred-By",
        Some(b'x') => "Session-Expires",
        _ => name,
    }
}

fn find_header_end(data: &[u8]) -> Option<(usize, usize)> {
    // Returns (end of header section, start of body).
    let mut i = 0;
    while i < data.len() {
        if data.get(i) == Some(&b'\n') {
            if data.get(i + 1) == Some(&b'\n') {
                return Some((i, i + 2));
            }
            if data.get(i + 1) == Some(&b'\r') && data.get(i + 2) == Some(&b'\n') {
                return Some((i, i + 3));
            }
        }
        i += 1;
    }
    None
}

impl Message {
    /// Parses one message from a datagram (or one frame from [`crate::framing`]).
    ///
    /// A missing `Content-Length` means "the rest of the datagram"; a
    /// `Content-Length` larger than the data is an error; extra bytes after the
    /// body are ignored (RFC 3261 §18.3).
    pub fn parse(data: &[u8]) -> Result<Self, ParseError> {
        if data.len() > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge);
        }
        // Tolerate leading CRLFs (keep-alives, RFC 3261 §7.5).
        let start = data
            .iter()
            .position(|b| *b != b'\r' && *b != b'\n')
            .ok_or(ParseError::Empty)?;
        let data = data.get(start..).ok_or(ParseError::Empty)?;
        let (head_end, body_start) = match find_header_end(data) {
            Some(v) => v,
            // A message without body separator: accept when it ends with one line break.
            None => (data.len(), data.len()),
        };
        let head = data.get(..head_end).ok_or(ParseError::Truncated)?;
        let head = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let first = lines.next().ok_or(ParseError::Empty)?;
        let start = parse_start_line(first.trim())?;
        // Unfold continuation lines.
        let mut raw: Vec<String> = Vec::new();
        for line in lines {
            if line.starts_with(' ') || line.starts_with('\t') {
                let last = raw.last_mut().ok_or(ParseError::BadHeader)?;
                last.push(' ');
                last.push_str(line.trim());
                if last.len() > MAX_HEADER_LINE {
                    return Err(ParseError::TooLarge);
                }
            } else if line.trim().is_empty() {
                continue;
            } else {
                if raw.len() >= MAX_HEADERS {
                    return Err(ParseError::TooManyHeaders);
                }
                if line.len() > MAX_HEADER_LINE {
                    return Err(ParseError::TooLarge);
                }
                raw.push(line.to_string());
            }
        }
        let mut headers = Headers::new();
        for line in raw {
            let (name, value) = line.split_once(':').ok_or(ParseError::BadHeader)?;
            let name = name.trim();
            if name.is_empty() || !name.bytes().all(is_token_char) {
                return Err(ParseError::BadHeader);
            }
            let name = canonical_name(expand_compact_name(name));
            headers.push(name, value.trim());
        }
        let rest = data.get(body_start..).unwrap_or(&[]);
        let body = match headers.get("Content-Length") {
            Some(v) => {
                let len: usize = v.trim().parse().map_err(|_| ParseError::BadContentLength)?;
                rest.get(..len).ok_or(ParseError::Truncated)?.to_vec()
            }
            None => rest.to_vec(),
        };
        Ok(Message {
            start,
            headers,
            body,
        })
    }

    /// Serialises the message; `Content-Length` is always written from the body.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = String::with_capacity(512 + self.body.len());
        match &self.start {
            StartLine::Request { method, uri } => {
                out.push_str(&format!("{method} {uri} SIP/2.0\r\n"));
            }
            StartLine::Response { status, reason } => {
                out.push_str(&format!("SIP/2.0 {status} {reason}\r\n"));
            }
        }
        for (n, v) in self.headers.iter() {
            if n.eq_ignore_ascii_case("Content-Length") {
                continue;
            }
            out.push_str(n);
            out.push_str(": ");
            out.push_str(v);
            out.push_str("\r\n");
        }
        out.push_str(&format!("Content-Length: {}\r\n\r\n", self.body.len()));
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }

    /// The method of a request, or of the `CSeq` of a response.
    pub fn method(&self) -> Option<&str> {
        match &self.start {
            StartLine::Request { method, .. } => Some(method),
            StartLine::Response { .. } => self.cseq().map(|(_, m)| m),
        }
    }

    /// Status code of a response.
    pub fn status(&self) -> Option<u16> {
        match &self.start {
            StartLine::Response { status, .. } => Some(*status),
            StartLine::Request { .. } => None,
        }
    }

    /// `true` for requests.
    pub fn is_request(&self) -> bool {
        matches!(self.start, StartLine::Request { .. })
    }

    /// `Call-ID`.
    pub fn call_id(&self) -> Option<&str> {
        self.headers.get("Call-ID")
    }

    /// `CSeq` number and method.
    pub fn cseq(&self) -> Option<(u32, &str)> {
        let v = self.headers.get("CSeq")?;
        let mut it = v.split_whitespace();
        let n = it.next()?.parse().ok()?;
        Some((n, it.next()?))
    }

    /// The `tag` parameter of `From`.
    pub fn from_tag(&self) -> Option<&str> {
        self.headers
            .get("From")
            .and_then(|v| name_addr_param(v, "tag"))
    }

    /// The `tag` parameter of `To`.
    pub fn to_tag(&self) -> Option<&str> {
        self.headers
            .get("To")
            .and_then(|v| name_addr_param(v, "tag"))
    }

    /// The topmost `Via` value.
    pub fn top_via(&self) -> Option<&str> {
        self.headers.get_list("Via").into_iter().next()
    }

    /// A response to this request as RFC 3261 §8.2.6.2 builds it: every `Via`
    /// value (one header each), `From`, `To` (with `tag=new_to_tag()` when it
    /// has no tag), `Call-ID` and `CSeq`; no body.
    pub fn response(
        &self,
        status: u16,
        reason: &str,
        new_to_tag: impl FnOnce() -> String,
    ) -> Message {
        let mut h = Headers::new();
        for v in self.headers.get_list("Via") {
            h.push("Via", v);
        }
        if let Some(f) = self.headers.get("From") {
            h.push("From", f);
        }
        if let Some(t) = self.headers.get("To") {
            if self.to_tag().is_none() {
                h.push("To", format!("{t};tag={}", new_to_tag()));
            } else {
                h.push("To", t);
            }
        }
        if let Some(c) = self.call_id() {
            h.push("Call-ID", c);
        }
        if let Some(c) = self.headers.get("CSeq") {
            h.push("CSeq", c);
        }
        Message {
            start: StartLine::Response {
                status,
                reason: reason.into(),
            },
            headers: h,
            body: Vec::new(),
        }
    }
}

fn canonical_name(name: &str) -> String {
    // Keep the sender's spelling except for the names we look up often; lookups
    // are case-insensitive anyway.
    name.to_string()
}

fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b)
}

fn parse_start_line(line: &str) -> Result<StartLine, ParseError> {
    if let Some(rest) = line.strip_prefix("SIP/2.0 ") {
        let rest = rest.trim_start();
        let (code, reason) = rest.split_once(' ').unwrap_or((rest, ""));
        let status: u16 = code.parse().map_err(|_| ParseError::BadStartLine)?;
        if !(100..=699).contains(&status) {
            return Err(ParseError::BadStartLine);
        }
        return Ok(StartLine::Response {
            status,
            reason: reason.trim().to_string(),
        });
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().ok_or(ParseError::BadStartLine)?;
    let uri = parts.next().ok_or(ParseError::BadStartLine)?;
    let version = parts.next().ok_or(ParseError::BadStartLine)?;
    if parts.next().is_some()
        || !version.eq_ignore_ascii_case("SIP/2.0")
        || !method.bytes().all(is_token_char)
    {
        return Err(ParseError::BadStartLine);
    }
    Ok(StartLine::Request {
        method: method.to_string(),
        uri: uri.to_string(),
    })
}

/// Splits a header value at commas that are outside quotes and angle brackets.
pub fn split_top_level_commas(value: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut in_quotes = false;
    let mut in_angle = false;
    let mut escaped = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        if escaped {
            escaped = false;
            continue;
        }
        match c {
            '\\' if in_quotes => escaped = true,
            '"' => in_quotes = !in_quotes,
            '<' if !in_quotes => in_angle = true,
            '>' if !in_quotes => in_angle = false,
            ',' if !in_quotes && !in_angle => {
                if let Some(part) = value.get(start..i) {
                    let part = part.trim();
                    if !part.is_empty() {
                        out.push(part);
                    }
                }
                start = i + 1;
            }
            _ => {}
        }
    }
    if let Some(part) = value.get(start..) {
        let part = part.trim();
        if !part.is_empty() {
            out.push(part);
        }
    }
    out
}

/// Splits `a;b=c;d` at semicolons outside quotes: the first part and the parameters.
pub fn split_params(value: &str) -> (&str, Vec<(&str, Option<&str>)>) {
    let mut parts = Vec::new();
    let mut in_quotes = false;
    let mut start = 0;
    for (i, c) in value.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            ';' if !in_quotes => {
                parts.push(value.get(start..i).unwrap_or(""));
                start = i + 1;
            }
            _ => {}
        }
    }
    parts.push(value.get(start..).unwrap_or(""));
    let mut it = parts.into_iter();
    let first = it.next().unwrap_or("").trim();
    let params = it
        .filter_map(|p| {
            let p = p.trim();
            if p.is_empty() {
                return None;
            }
            Some(match p.split_once('=') {
                Some((n, v)) => (n.trim(), Some(unquote(v.trim()))),
                None => (p, None),
            })
        })
        .collect();
    (first, params)
}

/// Removes surrounding double quotes (no unescaping beyond `\"`-free values).
pub fn unquote(v: &str) -> &str {
    v.strip_prefix('"')
        .and_then(|s| s.strip_suffix('"'))
        .unwrap_or(v)
}

/// Splits a name-addr/addr-spec header value (`"Name" <uri;p>;tag=x`) into the URI
/// and the header parameters after it.
pub fn split_name_addr(value: &str) -> (&str, &str) {
    if let Some(open) = value.find('<') {
        let after = value.get(open + 1..).unwrap_or("");
        if let Some(close) = after.find('>') {
            let uri = after.get(..close).unwrap_or("");
            let params = after.get(close + 1..).unwrap_or("");
            return (uri.trim(), params);
        }
        return (after.trim(), "");
    }
    // addr-spec: parameters after the first ';' belong to the header.
    match value.find(';') {
        Some(i) => (
            value.get(..i).unwrap_or("").trim(),
            value.get(i..).unwrap_or(""),
        ),
        None => (value.trim(), ""),
    }
}

/// A header parameter of a name-addr value (e.g. `tag` of `From`), case-insensitive.
pub fn name_addr_param<'a>(value: &'a str, name: &str) -> Option<&'a str> {
    let (_, params) = split_name_addr(value);
    let (_, params) = split_params(params);
    params
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v)
}

/// A parameter of a plain `value;param=..` header, case-insensitive.
/// `Some(None)` when present without a value.
pub fn param<'a>(value: &'a str, name: &str) -> Option<Option<&'a str>> {
    let (_, params) = split_params(value);
    params
        .into_iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_response_copies_the_dialog_headers_and_tags_to_only_once() {
        let req = Message::parse(
            b"SUBSCRIBE sip:1001@pbx SIP/2.0\r\n\
Via: SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKa, SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKb\r\n\
From: <sip:blf@pbx>;tag=f1\r\nTo: <sip:1001@pbx>\r\nCall-ID: c1\r\nCSeq: 7 SUBSCRIBE\r\n\
Event: dialog\r\nContent-Length: 0\r\n\r\n",
        )
        .unwrap();
        let r = req.response(200, "OK", || "t9".into());
        assert_eq!(r.status(), Some(200));
        assert_eq!(r.headers.get_all("Via").count(), 2);
        assert_eq!(r.top_via(), Some("SIP/2.0/UDP 10.0.0.2;branch=z9hG4bKa"));
        assert_eq!(r.to_tag(), Some("t9"));
        assert_eq!(
            (r.call_id(), r.cseq()),
            (Some("c1"), Some((7, "SUBSCRIBE")))
        );
        assert!(r.headers.get("Event").is_none());
        // An in-dialog request keeps its To tag.
        let again = r.response(200, "OK", || unreachable!("already tagged"));
        assert_eq!(again.to_tag(), Some("t9"));
        let mut h = r.headers.clone();
        assert!(h.replace_first("Via", "SIP/2.0/UDP x"));
        assert_eq!(
            h.get_list("Via"),
            ["SIP/2.0/UDP x", "SIP/2.0/UDP 10.0.0.1;branch=z9hG4bKb"]
        );
        assert!(!h.replace_first("Route", "x"));
    }

    const NOTIFY: &str = "NOTIFY sip:blf@127.0.0.1:5090 SIP/2.0\r\n\
Via: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bK569e.6842ce62000000000000000000000000.0\r\n\
To: <sip:blf@127.0.0.1>;tag=21720SIPpTag001\r\n\
From: <sip:1001@127.0.0.1>;tag=a6a1c5f60faecf035a1ae5b6e96e979a-a4176633\r\n\
CSeq: 2 NOTIFY\r\n\
Call-ID: 1-21720@127.0.0.1\r\n\
Content-Length: 0\r\n\
User-Agent: kamailio-blf-lab\r\n\
Max-Forwards: 70\r\n\
Event: dialog\r\n\
Contact: <sip:127.0.0.1:5060>\r\n\
Subscription-State: active;expires=600\r\n\r\n";

    #[test]
    fn parses_kamailio_notify() {
        let m = Message::parse(NOTIFY.as_bytes()).unwrap();
        assert_eq!(
            m.start,
            StartLine::Request {
                method: "NOTIFY".into(),
                uri: "sip:blf@127.0.0.1:5090".into()
            }
        );
        assert_eq!(m.call_id(), Some("1-21720@127.0.0.1"));
        assert_eq!(m.cseq(), Some((2, "NOTIFY")));
        assert_eq!(m.to_tag(), Some("21720SIPpTag001"));
        assert_eq!(
            m.from_tag(),
            Some("a6a1c5f60faecf035a1ae5b6e96e979a-a4176633")
        );
        assert_eq!(
            m.headers.get("subscription-state"),
            Some("active;expires=600")
        );
        assert!(m.body.is_empty());
    }

    #[test]
    fn compact_names_folding_and_whitespace() {
        let raw = "NOTIFY sip:a@b SIP/2.0\r\n\
v: SIP/2.0/UDP 10.0.0.1:5060;branch=z9hG4bKx\r\n\
i :   abc@host  \r\n\
f: <sip:100@b>;tag=1\r\n\
t: <sip:a@b>;tag=2\r\n\
o: dialog\r\n\
Subscription-State: active;\r\n   expires=60\r\n\
c: application/dialog-info+xml\r\n\
l: 4\r\n\r\nbodyEXTRA";
        let m = Message::parse(raw.as_bytes()).unwrap();
        assert_eq!(m.call_id(), Some("abc@host"));
        assert_eq!(m.headers.get("Event"), Some("dialog"));
        assert_eq!(
            m.headers.get("Content-Type"),
            Some("application/dialog-info+xml")
        );
        assert_eq!(
            m.headers.get("Subscription-State"),
            Some("active; expires=60")
        );
        assert_eq!(m.body, b"body");
        assert!(m.top_via().unwrap().contains("branch=z9hG4bKx"));
    }

    #[test]
    fn bare_lf_line_ends() {
        let raw = "SIP/2.0 200 OK\nVia: SIP/2.0/UDP a;branch=z9hG4bK1, SIP/2.0/UDP b\nCSeq: 1 REGISTER\nContent-Length: 0\n\n";
        let m = Message::parse(raw.as_bytes()).unwrap();
        assert_eq!(m.status(), Some(200));
        assert_eq!(m.method(), Some("REGISTER"));
        assert_eq!(m.headers.get_list("Via").len(), 2);
    }

    #[test]
    fn rejects_garbage_and_limits() {
        assert!(Message::parse(b"").is_err());
        assert!(Message::parse(b"\r\n\r\n").is_err());
        assert!(Message::parse(b"hello").is_err());
        assert!(Message::parse(b"SIP/2.0 99 X\r\n\r\n").is_err());
        assert!(Message::parse(b"SIP/2.0 200 OK\r\nContent-Length: 10\r\n\r\nabc").is_err());
        assert!(Message::parse(b"SIP/2.0 200 OK\r\nContent-Length: x\r\n\r\n").is_err());
        let big = vec![b'a'; MAX_MESSAGE_SIZE + 1];
        assert_eq!(Message::parse(&big), Err(ParseError::TooLarge));
        let mut many = String::from("SIP/2.0 200 OK\r\n");
        for i in 0..=MAX_HEADERS {
            many.push_str(&format!("X-{i}: y\r\n"));
        }
        many.push_str("\r\n");
        assert_eq!(
            Message::parse(many.as_bytes()),
            Err(ParseError::TooManyHeaders)
        );
    }

    #[test]
    fn roundtrip() {
        let m = Message::parse(NOTIFY.as_bytes()).unwrap();
        let bytes = m.to_bytes();
        let again = Message::parse(&bytes).unwrap();
        assert_eq!(again.to_bytes(), bytes);
        assert_eq!(again.start, m.start);
        assert_eq!(again.headers.len(), m.headers.len());
        assert_eq!(again.call_id(), m.call_id());
    }

    #[test]
    fn name_addr_params() {
        assert_eq!(
            split_name_addr("\"Bob, Jr\" <sip:b@h;lr>;tag=9"),
            ("sip:b@h;lr", ";tag=9")
        );
        assert_eq!(name_addr_param("sip:b@h;tag=9", "TAG"), Some("9"));
        assert_eq!(param("active;expires=600", "expires"), Some(Some("600")));
        assert_eq!(param("SIP/2.0/UDP a;rport", "rport"), Some(None));
        assert_eq!(
            split_top_level_commas("<sip:a,b>;x=\"1,2\", <sip:c>"),
            vec!["<sip:a,b>;x=\"1,2\"", "<sip:c>"]
        );
    }
}
