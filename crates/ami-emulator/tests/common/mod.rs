//! A raw AMI test client: writes actions as bytes and reads whole messages
//! as bytes (to compare them with the transcripts) or parsed by `ami::parse_message`.
#![allow(dead_code, clippy::expect_used, clippy::unwrap_used)]

use std::net::SocketAddr;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// A recorded Asterisk 22.10.1 transcript (copied from the project's captures).
pub fn transcript(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    std::fs::read_to_string(path).expect("transcript")
}

/// Generous bound on any wait (the tests wait on data, never sleep).
pub const LIMIT: Duration = Duration::from_secs(20);

pub struct Raw {
    pub stream: TcpStream,
    buf: Vec<u8>,
}

impl Raw {
    /// Connects and reads the banner.
    pub async fn connect(addr: SocketAddr) -> (Self, String) {
        let stream = TcpStream::connect(addr).await.expect("connect");
        let mut raw = Self {
            stream,
            buf: Vec::new(),
        };
        let banner = raw.read_until(b"\r\n").await.expect("banner");
        (raw, banner)
    }

    /// Connects and logs in (plain) with an optional `Events:` mask; returns
    /// the login reply (and the FullyBooted event when it follows).
    pub async fn login(addr: SocketAddr, user: &str, secret: &str, events: Option<&str>) -> Self {
        let (mut raw, _) = Self::connect(addr).await;
        let mut action =
            format!("Action: Login\r\nActionID: l1\r\nUsername: {user}\r\nSecret: {secret}\r\n");
        if let Some(e) = events {
            action.push_str(&format!("Events: {e}\r\n"));
        }
        raw.send(&action).await;
        let reply = raw.next().await.expect("login reply");
        assert!(reply.contains("Authentication accepted"), "{reply}");
        raw
    }

    /// Sends an action: `text` holds its lines (`\n` or `\r\n`); the
    /// closing blank line is added.
    pub async fn send(&mut self, text: &str) {
        let mut wire = text.replace("\r\n", "\n").replace('\n', "\r\n");
        if !wire.ends_with("\r\n") {
            wire.push_str("\r\n");
        }
        wire.push_str("\r\n");
        self.stream.write_all(wire.as_bytes()).await.expect("write");
    }

    pub async fn send_bytes(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.expect("write");
    }

    /// The next whole message (up to and including its blank line), or
    /// `None` at the end of the connection.
    pub async fn next(&mut self) -> Option<String> {
        self.read_until(b"\r\n\r\n").await
    }

    /// The next message parsed.
    pub async fn next_msg(&mut self) -> Option<ami::Message> {
        let text = self.next().await?;
        Some(ami::parse_message(text.as_bytes()).expect("parse"))
    }

    /// The next message whose first line is `Event: <name>`.
    pub async fn next_event(&mut self, name: &str) -> ami::Message {
        loop {
            let m = self.next_msg().await.expect("connection open");
            if m.get("Event") == Some(name) {
                return m;
            }
        }
    }

    /// Reads until `pat` (included), within [`LIMIT`].
    pub async fn read_until(&mut self, pat: &[u8]) -> Option<String> {
        tokio::time::timeout(LIMIT, async {
            loop {
                if let Some(i) = self.buf.windows(pat.len()).position(|w| w == pat) {
                    let out: Vec<u8> = self.buf.drain(..i + pat.len()).collect();
                    return Some(String::from_utf8_lossy(&out).into_owned());
                }
                let mut chunk = vec![0u8; 65536];
                match self.stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return None,
                    Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await
        .expect("timed out waiting for data")
    }

    /// Reads until the connection ends; what came before it.
    pub async fn read_to_end(&mut self) -> String {
        tokio::time::timeout(LIMIT, async {
            let mut rest = Vec::new();
            let _ = self.stream.read_to_end(&mut rest).await;
            self.buf.extend_from_slice(&rest);
            String::from_utf8_lossy(&std::mem::take(&mut self.buf)).into_owned()
        })
        .await
        .expect("timed out waiting for the end")
    }
}

/// One step of a transcript: what the client sent and what came back.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The action (CRLF wire form), or `None` for the banner.
    pub sent: Option<String>,
    /// The server's messages that followed, in wire form.
    pub replies: Vec<String>,
}

/// The connections of a transcript (each starts with its banner), as exchanges.
pub fn connections(text: &str) -> Vec<Vec<Exchange>> {
    let mut conns: Vec<Vec<Exchange>> = Vec::new();
    let mut block: Option<(bool, bool, Vec<&str>)> = None; // (sent, banner, lines)
    let flush = |b: Option<(bool, bool, Vec<&str>)>, conns: &mut Vec<Vec<Exchange>>| {
        let Some((sent, banner, mut lines)) = b else {
            return;
        };
        while lines.last().is_some_and(|l| l.is_empty()) {
            lines.pop();
        }
        let mut wire: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
        if banner {
            conns.push(vec![Exchange {
                sent: None,
                replies: vec![wire],
            }]);
            return;
        }
        wire.push_str("\r\n");
        let Some(conn) = conns.last_mut() else { return };
        if sent {
            conn.push(Exchange {
                sent: Some(wire),
                replies: Vec::new(),
            });
        } else if let Some(ex) = conn.last_mut() {
            ex.replies.push(wire);
        }
    };
    for line in text.lines() {
        if line.starts_with('#') {
            flush(block.take(), &mut conns);
            if let Some(rest) = line.strip_prefix("### ") {
                match rest.split_whitespace().nth(1) {
                    Some(">>") => block = Some((true, false, Vec::new())),
                    Some("<<") => block = Some((false, rest.contains("(banner)"), Vec::new())),
                    _ => {}
                }
            }
            continue;
        }
        if let Some((_, _, lines)) = block.as_mut() {
            lines.push(line);
        }
    }
    flush(block, &mut conns);
    conns
}

/// Replays one recorded connection against the emulator and compares every
/// reply byte for byte; `skip` leaves out actions the emulator does not model.
pub async fn replay(addr: SocketAddr, conn: &[Exchange], skip: impl Fn(&str) -> bool) {
    let (mut raw, banner) = Raw::connect(addr).await;
    assert_eq!(banner, conn[0].replies[0]);
    for ex in &conn[1..] {
        let sent = ex.sent.as_deref().unwrap_or_default();
        if skip(sent) {
            continue;
        }
        raw.send_bytes(sent.as_bytes()).await;
        for want in &ex.replies {
            let got = raw.next().await.unwrap_or_default();
            if want.contains("\r\nTimestamp: ") {
                // Ping's time is now, not then
                let strip = |s: &str| {
                    s.lines()
                        .filter(|l| !l.starts_with("Timestamp: "))
                        .collect::<Vec<_>>()
                        .join("\n")
                };
                assert_eq!(strip(&got), strip(want), "reply to {sent:?}");
            } else {
                assert_eq!(got, *want, "reply to {sent:?}");
            }
        }
    }
}
