//! Framing SIP messages on a stream transport (TCP) by `Content-Length`
//! (RFC 3261 §18.3), and RFC 5626 CRLF keep-alives.

use crate::error::ParseError;
use crate::message::{expand_compact_name, MAX_HEADER_LINE, MAX_MESSAGE_SIZE};

/// What came out of the stream (more kinds of keep-alive may come).
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Frame {
    /// One complete SIP message (its bytes, to be given to [`crate::Message::parse`]).
    Message(Vec<u8>),
    /// A double CRLF keep-alive "ping" (RFC 5626 §4.4.1): answer with a single CRLF.
    Ping,
    /// A single CRLF "pong".
    Pong,
}

/// Accumulates stream bytes and cuts them into [`Frame`]s.
#[derive(Debug, Default)]
pub struct StreamFramer {
    buf: Vec<u8>,
}

impl StreamFramer {
    /// An empty framer.
    pub fn new() -> Self {
        Self::default()
    }

    /// Appends received bytes.
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Bytes buffered and not yet framed.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// The next complete frame. `Ok(None)`: need more bytes. An error means the
    /// stream cannot be resynchronised and the connection must be closed.
    pub fn next_frame(&mut self) -> Result<Option<Frame>, ParseError> {
        // Keep-alives between messages.
        if self.buf.starts_with(b"\r\n\r\n") {
            self.buf.drain(..4);
            return Ok(Some(Frame::Ping));
        }
        if self.buf.starts_with(b"\r\n") {
            if self.buf.len() == 2 {
                self.buf.clear();
                return Ok(Some(Frame::Pong));
            }
            if self.buf.get(2) != Some(&b'\r') {
                self.buf.drain(..2);
                return Ok(Some(Frame::Pong));
            }
            if self.buf.len() < 4 {
                return Ok(None);
            }
        }
        let Some(head_end) = find(&self.buf, b"\r\n\r\n") else {
            if self.buf.len() > MAX_MESSAGE_SIZE {
                return Err(ParseError::TooLarge);
            }
            return Ok(None);
        };
        let head = self.buf.get(..head_end).ok_or(ParseError::Truncated)?;
        let head = std::str::from_utf8(head).map_err(|_| ParseError::NotUtf8)?;
        let mut length = None;
        for line in head.split("\r\n").skip(1) {
            if line.len() > MAX_HEADER_LINE {
                return Err(ParseError::TooLarge);
            }
            if let Some((name, value)) = line.split_once(':') {
                if expand_compact_name(name.trim()).eq_ignore_ascii_case("Content-Length") {
                    let n: usize = value
                        .trim()
                        .parse()
                        .map_err(|_| ParseError::BadContentLength)?;
                    length = Some(n);
                }
            }
        }
        // On a stream Content-Length is mandatory (RFC 3261 §18.3).
        let length = length.ok_or(ParseError::BadContentLength)?;
        let total = head_end
            .checked_add(4)
            .and_then(|v| v.checked_add(length))
            .ok_or(ParseError::TooLarge)?;
        if total > MAX_MESSAGE_SIZE {
            return Err(ParseError::TooLarge);
        }
        if self.buf.len() < total {
            return Ok(None);
        }
        let msg: Vec<u8> = self.buf.drain(..total).collect();
        Ok(Some(Frame::Message(msg)))
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_split_and_joined_messages() {
        let m1 = b"SIP/2.0 200 OK\r\nl: 5\r\n\r\nhello".to_vec();
        let m2 = b"NOTIFY sip:a SIP/2.0\r\nContent-Length: 0\r\n\r\n".to_vec();
        let mut all = m1.clone();
        all.extend_from_slice(b"\r\n\r\n");
        all.extend_from_slice(&m2);
        all.extend_from_slice(b"\r\n");
        let mut f = StreamFramer::new();
        // In uneven chunks (a keep-alive arrives whole: a lone CRLF is taken as a pong).
        let mut got = Vec::new();
        let cut1 = m1.len() - 3;
        let cut2 = m1.len() + 4 + 10;
        for chunk in [&all[..cut1], &all[cut1..cut2], &all[cut2..]] {
            f.push(chunk);
            while let Some(fr) = f.next_frame().unwrap() {
                got.push(fr);
            }
        }
        assert_eq!(
            got,
            vec![
                Frame::Message(m1),
                Frame::Ping,
                Frame::Message(m2),
                Frame::Pong
            ]
        );
        assert_eq!(f.buffered(), 0);
    }

    #[test]
    fn stream_errors() {
        let mut f = StreamFramer::new();
        f.push(b"SIP/2.0 200 OK\r\nCSeq: 1 X\r\n\r\n");
        assert_eq!(f.next_frame(), Err(ParseError::BadContentLength));
        let mut f = StreamFramer::new();
        f.push(b"SIP/2.0 200 OK\r\nContent-Length: 999999\r\n\r\n");
        assert_eq!(f.next_frame(), Err(ParseError::TooLarge));
        let mut f = StreamFramer::new();
        f.push(&vec![b'a'; MAX_MESSAGE_SIZE + 1]);
        assert_eq!(f.next_frame(), Err(ParseError::TooLarge));
    }
}
