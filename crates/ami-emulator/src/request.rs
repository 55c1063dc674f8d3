//! The server's side of the framing, as `get_input()` / `do_message()` of
//! `main/manager.c` read an action: CRLF or bare LF lines, a blank line ends
//! the action, a line of 1024 bytes or more is dumped and the action answered
//! `Failed to parse message: line too long`, more than 128 lines
//! `Too many lines in message or allocation failure`.

/// `inbuf[1025]`: a line that fills the buffer without a line end is dumped.
pub(crate) const MAX_LINE: usize = 1024;
/// `AST_MAX_MANHEADERS`.
pub(crate) const MAX_HEADERS: usize = 128;

/// One action as received: its header lines, and a framing error if any.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Request {
    pub lines: Vec<String>,
    pub error: Option<&'static str>,
}

impl Request {
    /// `astman_get_header`: the first line whose name (ASCII case ignored) is
    /// followed at once by `:`; leading blanks of the value are skipped.
    pub fn get(&self, name: &str) -> Option<&str> {
        let n = name.len();
        self.lines.iter().find_map(|l| {
            let head = l.get(..n)?;
            if head.eq_ignore_ascii_case(name) && l.as_bytes().get(n) == Some(&b':') {
                l.get(n + 1..)
                    .map(|v| v.trim_start_matches(|c: char| (c as u32) < 33))
            } else {
                None
            }
        })
    }

    /// A header, `""` when absent (as `astman_get_header` answers).
    pub fn header(&self, name: &str) -> &str {
        self.get(name).unwrap_or_default()
    }

    /// `ActionID`, if present and not empty.
    pub fn action_id(&self) -> Option<&str> {
        self.get("ActionID").filter(|v| !v.is_empty())
    }

    /// The lines as `(name, value)` pairs (a line with no `:` is a name alone).
    pub fn fields(&self) -> Vec<(String, String)> {
        self.lines
            .iter()
            .map(|l| match l.split_once(':') {
                Some((k, v)) => (k.to_string(), v.trim_start().to_string()),
                None => (l.clone(), String::new()),
            })
            .collect()
    }
}

/// An incremental reader of actions.
#[derive(Debug, Default)]
pub(crate) struct RequestReader {
    buf: Vec<u8>,
    current: Request,
    too_long: bool,
    too_many: bool,
    /// Bytes of a dumped line are skipped up to its line end.
    dumping: bool,
}

impl RequestReader {
    pub fn push(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// The next complete action, if any.
    pub fn next_request(&mut self) -> Option<Request> {
        loop {
            let Some(nl) = self.buf.iter().position(|&b| b == b'\n') else {
                if self.buf.len() >= MAX_LINE {
                    self.dump_line();
                    self.buf.clear();
                }
                return None;
            };
            let mut line: Vec<u8> = self.buf.drain(..=nl).collect();
            line.pop();
            if line.last() == Some(&b'\r') {
                line.pop();
            }
            if self.dumping {
                self.dumping = false;
                continue;
            }
            if line.len() >= MAX_LINE {
                self.dump_line();
                self.dumping = false;
                continue;
            }
            if line.is_empty() {
                let mut req = std::mem::take(&mut self.current);
                if self.too_many {
                    req.error = Some("Too many lines in message or allocation failure");
                } else if self.too_long {
                    req.error = Some("Failed to parse message: line too long");
                }
                self.too_long = false;
                self.too_many = false;
                return Some(req);
            }
            if self.current.lines.len() < MAX_HEADERS {
                self.current
                    .lines
                    .push(String::from_utf8_lossy(&line).into_owned());
            } else {
                self.too_many = true;
            }
        }
    }

    fn dump_line(&mut self) {
        self.too_long = true;
        self.dumping = true;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn headers_and_framing() {
        let mut r = RequestReader::default();
        r.push(b"Action: Login\r\nactionid:   x y \nAction :no\r\n\r\nAction: Ping\n");
        let req = r.next_request().unwrap();
        assert_eq!(req.get("ACTION"), Some("Login"));
        assert_eq!(req.action_id(), Some("x y "));
        assert!(r.next_request().is_none());
        r.push(b"\n\n");
        assert_eq!(r.next_request().unwrap().get("Action"), Some("Ping"));
        // a blank line alone is an action with no Action header
        assert_eq!(r.next_request().unwrap().lines.len(), 0);
    }

    #[test]
    fn long_line_and_too_many() {
        let mut r = RequestReader::default();
        r.push(b"Action: Ping\r\nActionID: 1\r\nX: ");
        r.push(&[b'a'; 3000]);
        r.push(b"\r\nY: 2\r\n\r\n");
        let req = r.next_request().unwrap();
        assert_eq!(req.error, Some("Failed to parse message: line too long"));
        assert_eq!(req.action_id(), Some("1"));
        let mut wire = Vec::new();
        for i in 0..200 {
            wire.extend_from_slice(format!("H{i}: v\r\n").as_bytes());
        }
        wire.extend_from_slice(b"\r\n");
        r.push(&wire);
        let req = r.next_request().unwrap();
        assert_eq!(
            req.error,
            Some("Too many lines in message or allocation failure")
        );
    }
}
