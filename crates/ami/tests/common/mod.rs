//! Replays the real Asterisk transcripts of `tests/data/` against a [`Client`].
//!
//! A transcript holds sessions (split at `# ` comment lines), each a series of
//! blocks `### HH:MM:SS.mmm <<` (received) or `>>` (sent). Received blocks are
//! fed to the client with CRLF lines; for a sent block the client must send the
//! same action (the test issues it when it is not one the client sends by
//! itself), and the transcript's ActionIDs are mapped to the client's.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use ami::parse_message;
use ami::{Action, Client, ClientEvent, Message};

#[derive(Debug, Clone)]
pub struct Block {
    pub sent: bool,
    pub banner: bool,
    pub at: Duration,
    pub lines: Vec<String>,
}

impl Block {
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines.iter().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(key).then(|| v.trim_start())
        })
    }
}

pub fn data(name: &str) -> String {
    let path = format!("{}/tests/data/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

fn parse_time(s: &str) -> Duration {
    let mut parts = s.split(':');
    let h: u64 = parts.next().unwrap().parse().unwrap();
    let m: u64 = parts.next().unwrap().parse().unwrap();
    let sec: f64 = parts.next().unwrap().parse().unwrap();
    Duration::from_secs(h * 3600 + m * 60) + Duration::from_secs_f64(sec)
}

/// The sessions of a transcript.
pub fn sessions(text: &str) -> Vec<Vec<Block>> {
    let mut sessions: Vec<Vec<Block>> = vec![Vec::new()];
    for line in text.lines() {
        if let Some(head) = line.strip_prefix("### ") {
            let mut words = head.split_whitespace();
            let at = parse_time(words.next().unwrap());
            let dir = words.next().unwrap();
            let banner = head.contains("(banner)");
            sessions.last_mut().unwrap().push(Block {
                sent: dir == ">>",
                banner,
                at,
                lines: Vec::new(),
            });
        } else if line.starts_with('#') {
            if !sessions.last().unwrap().is_empty() {
                sessions.push(Vec::new());
            }
        } else if let Some(b) = sessions.last_mut().unwrap().last_mut() {
            b.lines.push(line.to_string());
        }
    }
    sessions.retain(|s| !s.is_empty());
    for s in &mut sessions {
        for b in s {
            while b.lines.last().is_some_and(|l| l.is_empty()) {
                b.lines.pop();
            }
        }
    }
    sessions
}

/// The wire bytes of a received block, ActionIDs mapped.
pub fn wire(block: &Block, ids: &HashMap<String, String>) -> Vec<u8> {
    let mut out = String::new();
    for l in &block.lines {
        match l.split_once(':') {
            Some((k, v)) if k.eq_ignore_ascii_case("ActionID") => {
                let v = v.trim_start();
                let v = ids.get(v).map_or(v, String::as_str);
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            _ => {
                out.push_str(l);
                out.push_str("\r\n");
            }
        }
    }
    if !block.banner {
        out.push_str("\r\n");
    }
    out.into_bytes()
}

/// Drives a client through a session.
pub struct Replay {
    pub client: Client,
    pub base: Instant,
    pub ids: HashMap<String, String>,
    pub sent: Vec<Message>,
    pub events: Vec<ClientEvent>,
}

impl Replay {
    pub fn new(client: Client) -> Self {
        Self {
            client,
            base: Instant::now(),
            ids: HashMap::new(),
            sent: Vec::new(),
            events: Vec::new(),
        }
    }

    pub fn drain_events(&mut self) {
        while let Some(e) = self.client.poll_event() {
            self.events.push(e);
        }
    }

    /// Plays the blocks; the first block's time is `base`.
    pub fn play(&mut self, blocks: &[Block]) {
        let t0 = blocks[0].at;
        for b in blocks {
            let now = self.base + (b.at - t0);
            self.client.handle_timeout(now);
            if b.sent {
                self.expect_sent(b, now);
            } else {
                let bytes = wire(b, &self.ids);
                self.client.handle_input(&bytes, now);
            }
            self.drain_events();
        }
    }

    fn expect_sent(&mut self, b: &Block, now: Instant) {
        let name = b.get("Action").unwrap().to_string();
        let mut wire = self.client.poll_transmit();
        if wire.is_none() {
            if name.eq_ignore_ascii_case("Logoff") {
                self.client.logoff(now);
            } else {
                let mut action = Action::new(&name);
                for l in &b.lines {
                    let (k, v) = l.split_once(':').unwrap();
                    if !k.eq_ignore_ascii_case("Action") && !k.eq_ignore_ascii_case("ActionID") {
                        action = action.field(k, v.trim_start());
                    }
                }
                self.client.send_action(action, now).unwrap();
            }
            wire = self.client.poll_transmit();
        }
        let wire = wire.unwrap_or_else(|| panic!("the client sent nothing for {name}"));
        let m = parse_message(&wire).unwrap();
        assert!(
            m.get("Action").unwrap().eq_ignore_ascii_case(&name),
            "expected {name}, the client sent {m}"
        );
        if let (Some(theirs), Some(ours)) = (b.get("ActionID"), m.action_id()) {
            self.ids.insert(theirs.to_string(), ours.to_string());
        }
        self.sent.push(m);
    }
}
