//! AMI framing: the banner line, `Key: Value` lines, a blank line ends a
//! message; and the encoding of actions.
//!
//! The server ends every line with CRLF (`ast:main/manager.c`); a bare LF is
//! accepted too. Repeated keys are kept in order. Every limit breach is a
//! [`CodecError`] after which the decoder stays failed: the connection must be
//! dropped.
//!
//! Not supported: the raw output block of `Response: Follows`, which only
//! Asterisk 13 and older send (to `Action: Command`); its lines are not
//! `Key: Value` and end the connection as [`CodecError::Malformed`]. Asterisk
//! 14 and newer answer `Command` with one `Output:` field per line.

use crate::message::Message;

/// Asterisk's own input buffer for one line of an action (`inbuf[1025]` in
/// `main/manager.c`): a longer line is answered `Failed to parse message: line
/// too long`. [`encode_action`] refuses lines (CRLF included) longer than this.
pub const SERVER_MAX_LINE: usize = 1024;

/// Asterisk's limit on the header lines of one action (`AST_MAX_MANHEADERS`).
pub const SERVER_MAX_HEADERS: usize = 128;

/// The start of the banner Asterisk sends first: `Asterisk Call Manager/<AMI version>`.
pub const BANNER_PREFIX: &str = "Asterisk Call Manager";

/// Size limits on what the server sends. [`Limits::default`] gives the
/// defaults; set the fields to change them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest line, without its line end (default 8 KiB).
    pub max_line: usize,
    /// Largest message, line ends included (default 64 KiB).
    pub max_message: usize,
    /// Most fields in one message (default 1024).
    pub max_fields: usize,
    /// Most items collected for one event list (default 100 000).
    pub max_list_items: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_line: 8 * 1024,
            max_message: 64 * 1024,
            max_fields: 1024,
            max_list_items: 100_000,
        }
    }
}

/// What the server sent that cannot be framed. The connection must be dropped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CodecError {
    /// The first line is not `Asterisk Call Manager/...`.
    #[error("not an AMI banner: {0:?}")]
    BadBanner(String),
    /// A line longer than [`Limits::max_line`].
    #[error("line longer than {limit} bytes")]
    LineTooLong {
        /// The limit that was passed.
        limit: usize,
    },
    /// A message larger than [`Limits::max_message`].
    #[error("message larger than {limit} bytes")]
    MessageTooLarge {
        /// The limit that was passed.
        limit: usize,
    },
    /// A message with more than [`Limits::max_fields`] fields.
    #[error("message with more than {limit} fields")]
    TooManyFields {
        /// The limit that was passed.
        limit: usize,
    },
    /// A line that is not `Key: Value` (the start of it is kept).
    #[error("malformed line: {0:?}")]
    Malformed(String),
    /// The input ended inside a message (or before the banner was complete).
    #[error("input ended inside a message")]
    Truncated,
}

/// Why an action cannot be put on the wire.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// More header lines than the server takes ([`SERVER_MAX_HEADERS`]).
    #[error("cannot encode action: more than {limit} header lines")]
    TooManyLines {
        /// The server's limit.
        limit: usize,
    },
    /// A value holds a CR or LF.
    #[error("cannot encode action: value of {key} holds a line break")]
    LineBreak {
        /// The field whose value it is.
        key: String,
    },
    /// A line longer than the server takes ([`SERVER_MAX_LINE`]).
    #[error("cannot encode action: line {key} is {len} bytes, the server takes {limit}")]
    LineTooLong {
        /// The field.
        key: String,
        /// Its line's length, CRLF included.
        len: usize,
        /// The server's limit.
        limit: usize,
    },
    /// An empty action name.
    #[error("cannot encode action: empty action name")]
    EmptyName,
    /// An empty key, or one holding `:`, a blank or a control character.
    #[error("cannot encode action: invalid key {0:?}")]
    InvalidKey(String),
    /// An `ActionID` field: the client sets it itself.
    #[error("cannot encode action: the client sets ActionID itself")]
    ActionIdGiven,
}

/// The banner: the first line of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banner {
    /// The whole line, e.g. `Asterisk Call Manager/11.0.0`.
    pub line: String,
}

impl Banner {
    /// The AMI version after the `/` (`11.0.0` on Asterisk 22), if any. Not
    /// parsed further: it is not the Asterisk release and changes often.
    pub fn version(&self) -> Option<&str> {
        self.line.split_once('/').map(|(_, v)| v.trim())
    }
}

/// One unit of input.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// The banner line (once, first).
    Banner(Banner),
    /// A complete message.
    Message(Message),
}

/// An incremental decoder: [`push`](Decoder::push) bytes as they arrive, then
/// take frames with [`next_frame`](Decoder::next_frame) until it says `None`.
#[derive(Debug, Clone)]
pub struct Decoder {
    limits: Limits,
    buf: Vec<u8>,
    pos: usize,
    /// Bytes after `pos` already searched for a line end (trickled input is
    /// not searched again).
    scanned: usize,
    banner_seen: bool,
    fields: Vec<(String, String)>,
    msg_bytes: usize,
    failed: Option<CodecError>,
}

impl Decoder {
    /// A decoder that expects the banner first.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            buf: Vec::new(),
            pos: 0,
            scanned: 0,
            banner_seen: false,
            fields: Vec::new(),
            msg_bytes: 0,
            failed: None,
        }
    }

    /// A decoder for messages only (no banner), e.g. for a server's side or tests.
    pub fn without_banner(limits: Limits) -> Self {
        let mut d = Self::new(limits);
        d.banner_seen = true;
        d
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        if self.failed.is_some() {
            return;
        }
        if self.pos > 0 && self.pos == self.buf.len() {
            self.buf.clear();
            self.pos = 0;
        }
        self.buf.extend_from_slice(data);
    }

    /// The next complete frame, `Ok(None)` if more input is needed. After an
    /// error every call returns the same error.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, CodecError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        match self.decode() {
            Ok(f) => Ok(f),
            Err(e) => {
                self.failed = Some(e.clone());
                self.buf = Vec::new();
                self.pos = 0;
                self.scanned = 0;
                self.fields = Vec::new();
                Err(e)
            }
        }
    }

    /// Whether part of a message (or of a line) has been received but not completed.
    pub fn is_mid_message(&self) -> bool {
        !self.fields.is_empty() || self.pos < self.buf.len()
    }

    /// To call when the input ends: an error if it ended inside a message.
    pub fn finish(&self) -> Result<(), CodecError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        if self.is_mid_message() {
            return Err(CodecError::Truncated);
        }
        Ok(())
    }

    fn decode(&mut self) -> Result<Option<Frame>, CodecError> {
        loop {
            let rest = &self.buf[self.pos..];
            let found = rest[self.scanned.min(rest.len())..]
                .iter()
                .position(|&b| b == b'\n');
            let Some(nl) = found.map(|i| i + self.scanned) else {
                self.scanned = rest.len();
                if rest.len() > self.limits.max_line + 1 {
                    return Err(CodecError::LineTooLong {
                        limit: self.limits.max_line,
                    });
                }
                // keep only the incomplete line
                self.buf.drain(..self.pos);
                self.pos = 0;
                return Ok(None);
            };
            let mut line = &rest[..nl];
            if let [head @ .., b'\r'] = line {
                line = head;
            }
            if line.len() > self.limits.max_line {
                return Err(CodecError::LineTooLong {
                    limit: self.limits.max_line,
                });
            }
            let consumed = nl + 1;
            self.scanned = 0;
            if !self.banner_seen {
                let text = String::from_utf8_lossy(line).into_owned();
                self.pos += consumed;
                if text.trim().is_empty() {
                    continue;
                }
                if !text.starts_with(BANNER_PREFIX) {
                    return Err(CodecError::BadBanner(excerpt(&text)));
                }
                self.banner_seen = true;
                return Ok(Some(Frame::Banner(Banner { line: text })));
            }
            if line.is_empty() {
                self.pos += consumed;
                if self.fields.is_empty() {
                    // blank lines between messages (e.g. after a value that
                    // ended in a stray LF) are skipped
                    continue;
                }
                self.msg_bytes = 0;
                let fields = std::mem::take(&mut self.fields);
                return Ok(Some(Frame::Message(Message::from_fields(fields))));
            }
            self.msg_bytes += consumed;
            if self.msg_bytes > self.limits.max_message {
                return Err(CodecError::MessageTooLarge {
                    limit: self.limits.max_message,
                });
            }
            if self.fields.len() >= self.limits.max_fields {
                return Err(CodecError::TooManyFields {
                    limit: self.limits.max_fields,
                });
            }
            let field = parse_field(line)?;
            self.fields.push(field);
            self.pos += consumed;
        }
    }
}

/// Splits `Key: Value`. The key is what comes before the first `:` and may not
/// be empty or hold control characters; leading blanks of the value are
/// skipped, trailing ones kept (as Asterisk does).
fn parse_field(line: &[u8]) -> Result<(String, String), CodecError> {
    let malformed = || CodecError::Malformed(excerpt(&String::from_utf8_lossy(line)));
    let colon = line.iter().position(|&b| b == b':').ok_or_else(malformed)?;
    let key = &line[..colon];
    if key.is_empty() || key.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(malformed());
    }
    let mut value = &line[colon + 1..];
    while let [b' ' | b'\t', tail @ ..] = value {
        value = tail;
    }
    Ok((
        String::from_utf8_lossy(key).into_owned(),
        String::from_utf8_lossy(value).into_owned(),
    ))
}

/// Parses one message (`Key: Value` lines and the blank line that ends it; the
/// blank line may be missing). For tests and tools.
pub fn parse_message(data: &[u8]) -> Result<Message, CodecError> {
    let mut d = Decoder::without_banner(Limits::default());
    d.push(data);
    if !data.ends_with(b"\n\n") && !data.ends_with(b"\n\r\n") {
        d.push(b"\r\n\r\n");
    }
    match d.next_frame()? {
        Some(Frame::Message(m)) => Ok(m),
        _ => Err(CodecError::Truncated),
    }
}

fn excerpt(s: &str) -> String {
    s.chars().take(80).collect()
}

/// Encodes `Action: <name>`, `ActionID: <id>`, the fields in order, and the
/// blank line, all with CRLF.
///
/// Refused (so that nothing can be injected or cut by the server): a CR or LF
/// anywhere; an empty key, or one holding `:`, a blank or a control
/// character; a line longer than [`SERVER_MAX_LINE`]; more than
/// [`SERVER_MAX_HEADERS`] lines.
pub fn encode_action(
    name: &str,
    action_id: &str,
    fields: &[(String, String)],
) -> Result<Vec<u8>, EncodeError> {
    if fields.len() + 2 > SERVER_MAX_HEADERS {
        return Err(EncodeError::TooManyLines {
            limit: SERVER_MAX_HEADERS,
        });
    }
    let mut out = Vec::with_capacity(64 + fields.len() * 32);
    let mut put = |key: &str, value: &str| -> Result<(), EncodeError> {
        check_key(key)?;
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(EncodeError::LineBreak { key: key.into() });
        }
        let len = key.len() + 2 + value.len() + 2;
        if len > SERVER_MAX_LINE {
            return Err(EncodeError::LineTooLong {
                key: key.into(),
                len,
                limit: SERVER_MAX_LINE,
            });
        }
        out.extend_from_slice(key.as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
        Ok(())
    };
    if name.is_empty() {
        return Err(EncodeError::EmptyName);
    }
    put("Action", name)?;
    put("ActionID", action_id)?;
    for (k, v) in fields {
        put(k, v)?;
    }
    out.extend_from_slice(b"\r\n");
    Ok(out)
}

fn check_key(key: &str) -> Result<(), EncodeError> {
    if key.is_empty()
        || key
            .bytes()
            .any(|b| b == b':' || b == b' ' || b == b'\t' || b < 0x20 || b == 0x7f)
    {
        return Err(EncodeError::InvalidKey(key.into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(d: &mut Decoder) -> Vec<Frame> {
        let mut out = Vec::new();
        while let Some(f) = d.next_frame().unwrap() {
            out.push(f);
        }
        out
    }

    #[test]
    fn banner_then_message_split_anywhere() {
        let wire = b"Asterisk Call Manager/11.0.0\r\nResponse: Success\r\nActionID: 1\r\nMessage: Authentication accepted\r\n\r\n";
        for split in 0..wire.len() {
            let mut d = Decoder::new(Limits::default());
            d.push(&wire[..split]);
            let mut got = frames(&mut d);
            d.push(&wire[split..]);
            got.extend(frames(&mut d));
            assert_eq!(got.len(), 2, "split at {split}");
            let Frame::Banner(b) = &got[0] else { panic!() };
            assert_eq!(b.version(), Some("11.0.0"));
            let Frame::Message(m) = &got[1] else { panic!() };
            assert_eq!(m.get("message"), Some("Authentication accepted"));
            assert!(d.finish().is_ok());
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let wire = b"Asterisk Call Manager/11.0.0\r\nEvent: A\r\nK: v\r\n\r\nEvent: B\nL: w\n\n";
        let mut d = Decoder::new(Limits::default());
        let mut got = Vec::new();
        for b in wire {
            d.push(&[*b]);
            got.extend(frames(&mut d));
        }
        assert_eq!(got.len(), 3);
        let Frame::Message(m) = &got[2] else { panic!() };
        assert_eq!(m.get("L"), Some("w"));
        assert!(d.finish().is_ok());
    }

    #[test]
    fn lf_only_repeated_keys_blanks() {
        let mut d = Decoder::without_banner(Limits::default());
        d.push(b"\nEvent: Newchannel\nChanVariable: a=1\nChanVariable: b=2\nRegServer: \nKey:  x  \n\n");
        let got = frames(&mut d);
        let [Frame::Message(m)] = &got[..] else {
            panic!("{got:?}")
        };
        assert_eq!(
            m.get_all("chanvariable").collect::<Vec<_>>(),
            ["a=1", "b=2"]
        );
        assert_eq!(m.get("RegServer"), Some(""));
        assert_eq!(m.get("Key"), Some("x  "));
    }

    #[test]
    fn stray_lf_inside_value_is_tolerated() {
        // PJSIPShowContacts with no contacts: "Message: No Contacts found\n\r\n\r\n"
        let mut d = Decoder::without_banner(Limits::default());
        d.push(b"Response: Error\r\nActionID: 7\r\nMessage: No Contacts found\n\r\n\r\nEvent: X\r\n\r\n");
        let got = frames(&mut d);
        assert_eq!(got.len(), 2);
    }

    #[test]
    fn limits_are_errors_and_sticky() {
        let limits = Limits {
            max_line: 16,
            max_message: 40,
            max_fields: 3,
            ..Limits::default()
        };
        let mut d = Decoder::without_banner(limits);
        d.push(&[b'a'; 100]);
        assert_eq!(d.next_frame(), Err(CodecError::LineTooLong { limit: 16 }));
        assert_eq!(d.next_frame(), Err(CodecError::LineTooLong { limit: 16 }));

        let mut d = Decoder::without_banner(limits);
        d.push(b"A: 1\r\nB: 2\r\nC: 3\r\nD: 4\r\n\r\n");
        assert_eq!(d.next_frame(), Err(CodecError::TooManyFields { limit: 3 }));

        let mut d = Decoder::without_banner(limits);
        d.push(b"A: 1234567890\r\nB: 1234567890\r\nC: 1234567890\r\n\r\n");
        assert_eq!(
            d.next_frame(),
            Err(CodecError::MessageTooLarge { limit: 40 })
        );
    }

    #[test]
    fn garbage_is_an_error() {
        let mut d = Decoder::new(Limits::default());
        d.push(b"HTTP/1.1 200 OK\r\n");
        assert!(matches!(d.next_frame(), Err(CodecError::BadBanner(_))));

        let mut d = Decoder::without_banner(Limits::default());
        d.push(b"no colon here\r\n");
        assert!(matches!(d.next_frame(), Err(CodecError::Malformed(_))));
        let mut d = Decoder::without_banner(Limits::default());
        d.push(b": empty key\r\n");
        assert!(matches!(d.next_frame(), Err(CodecError::Malformed(_))));
    }

    #[test]
    fn truncated_input() {
        let mut d = Decoder::without_banner(Limits::default());
        d.push(b"Event: X\r\nA: 1\r\n");
        assert_eq!(d.next_frame(), Ok(None));
        assert_eq!(d.finish(), Err(CodecError::Truncated));
    }

    #[test]
    fn encode_and_refuse_injection() {
        let f = vec![("Exten".to_string(), "1001".to_string())];
        let wire = encode_action("ExtensionState", "x-1", &f).unwrap();
        assert_eq!(
            wire,
            b"Action: ExtensionState\r\nActionID: x-1\r\nExten: 1001\r\n\r\n"
        );
        let bad = vec![("Exten".to_string(), "1\r\nAction: Originate".to_string())];
        assert!(encode_action("ExtensionState", "x", &bad).is_err());
        let bad = vec![("Ex ten".to_string(), "1".to_string())];
        assert!(encode_action("ExtensionState", "x", &bad).is_err());
        let long = vec![("V".to_string(), "x".repeat(1020))];
        assert!(encode_action("Setvar", "x", &long).is_err());
        assert!(encode_action("A\nB", "x", &[]).is_err());
    }
}
