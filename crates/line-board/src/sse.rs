//! `/api/v1/events`: one coalescing Server-Sent Events stream per client.
//!
//! A client's stream does no work of its own between changes: it wakes on
//! the board's change notification, waits out the rest of
//! [`BoardConfig::batch_interval`](crate::BoardConfig::batch_interval)
//! since its last event, then reads the board's log after its cursor and
//! sends the latest JSON of each changed extension (written once per
//! change, shared by every client) as one `changes` event.
//!
//! The stream is written here rather than with `axum::response::sse`,
//! whose events are whole buffers: a snapshot of 10,000 extensions is
//! about 3 MB, and 100 pages connecting at once would each hold two copies
//! of it (hundreds of MiB, which the allocator then keeps). Here an event
//! goes out in pieces of at most [`PIECE`] bytes, each made when the
//! connection has taken the previous one: a client, slow or not, holds one
//! piece and references to the shared JSON.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::body::{Body, Bytes};
use axum::http::{header, HeaderValue};
use axum::response::Response;
use futures_util::stream;
use tokio::sync::watch;
use tokio::time::Instant;

use crate::board::{Board, HealthJson, Snapshot};
use crate::time;

/// The longest silence on an event stream: a `: keep-alive` comment is sent
/// after it.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The size of the pieces a large event is written in.
const PIECE: usize = 32 * 1024;

/// The event stream for a client that last saw `last_event_id` (the
/// `Last-Event-ID` header), if any.
pub(crate) fn events(board: Board, last_event_id: Option<u64>) -> Response {
    let client = Client::start(board, last_event_id);
    let body = stream::unfold(client, |mut client| async move {
        let piece = client.next().await?;
        Some((Ok::<_, Infallible>(piece), client))
    });
    let mut response = Response::new(Body::from_stream(body));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Proxies (nginx) must not buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// What is still to be written.
enum Pending {
    /// These bytes.
    Bytes(Bytes),
    /// `items` joined by commas, from `next` on.
    Items { items: Vec<Arc<str>>, next: usize },
}

struct Client {
    board: Board,
    changed: watch::Receiver<bool>,
    closed: bool,
    cursor: u64,
    health_version: u64,
    pending: VecDeque<Pending>,
    /// When the last `changes` or `snapshot` event was made.
    last_batch: Option<Instant>,
    /// When the last byte was handed to the connection.
    last_write: Instant,
}

impl Client {
    fn start(board: Board, last_event_id: Option<u64>) -> Self {
        let mut changed = board.subscribe();
        // Anything after this is seen by the next `changed()`.
        let closed = *changed.borrow_and_update();
        let mut client = Self {
            board,
            changed,
            closed,
            cursor: 0,
            health_version: 0,
            pending: VecDeque::new(),
            last_batch: None,
            last_write: Instant::now(),
        };
        match last_event_id.and_then(|seen| client.board.changes_since(seen)) {
            Some(changes) => {
                client.cursor = changes.seq;
                if !changes.extensions.is_empty() {
                    client.push_changes(changes.seq, changes.extensions);
                }
                // The health may have changed while the client was away.
                let health = client.board.health_json();
                client.push_health(&health);
            }
            None => {
                let snapshot = client.board.snapshot();
                client.push_snapshot(snapshot);
            }
        }
        client
    }

    /// The next piece of the stream; `None` once the board is closed.
    async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(piece) = self.take_piece() {
                self.last_write = Instant::now();
                return Some(piece);
            }
            if self.closed {
                return None;
            }
            let quiet_until = self.last_write + KEEP_ALIVE;
            tokio::select! {
                changed = self.changed.changed() => {
                    // The board (and so the sender) lives as long as this client.
                    changed.ok()?;
                }
                () = tokio::time::sleep_until(quiet_until) => {
                    self.pending.push_back(Pending::Bytes(Bytes::from_static(b": keep-alive\n\n")));
                    continue;
                }
            }
            if *self.changed.borrow() {
                return None;
            }
            if let Some(last) = self.last_batch {
                let wake = last + self.board.config().batch_interval;
                tokio::select! {
                    () = tokio::time::sleep_until(wake) => {}
                    () = closed(&mut self.changed) => return None,
                }
            }
            self.closed = *self.changed.borrow_and_update();
            self.read_board();
        }
    }

    /// At most [`PIECE`] bytes (more only for one item larger than that).
    fn take_piece(&mut self) -> Option<Bytes> {
        let mut out: Vec<u8> = Vec::new();
        while out.len() < PIECE {
            match self.pending.front_mut() {
                None => break,
                Some(Pending::Bytes(bytes)) => {
                    if out.is_empty() && bytes.len() >= PIECE {
                        // Large and ready: hand it over as it is.
                        let bytes = std::mem::take(bytes);
                        self.pending.pop_front();
                        return Some(bytes);
                    }
                    out.extend_from_slice(bytes);
                    self.pending.pop_front();
                }
                Some(Pending::Items { items, next }) => {
                    while *next < items.len() && out.len() < PIECE {
                        if *next > 0 {
                            out.push(b',');
                        }
                        out.extend_from_slice(items[*next].as_bytes());
                        *next += 1;
                    }
                    if *next == items.len() {
                        self.pending.pop_front();
                    }
                }
            }
        }
        (!out.is_empty()).then(|| Bytes::from(out))
    }

    fn read_board(&mut self) {
        match self.board.changes_since(self.cursor) {
            Some(changes) if changes.extensions.is_empty() => {}
            Some(changes) => {
                self.cursor = changes.seq;
                self.push_changes(changes.seq, changes.extensions);
            }
            None => {
                let snapshot = self.board.snapshot();
                self.push_snapshot(snapshot);
                return;
            }
        }
        if let Some(health) = self.board.health_since(self.health_version) {
            self.push_health(&health);
        }
    }

    fn push_text(&mut self, text: String) {
        self.pending.push_back(Pending::Bytes(Bytes::from(text)));
    }

    fn push_snapshot(&mut self, snapshot: Snapshot) {
        self.cursor = snapshot.seq;
        self.health_version = snapshot.health.version;
        self.last_batch = Some(Instant::now());
        self.push_text(format!(
            "event: snapshot\nid: {}\ndata: {{\"extensions\":[",
            snapshot.seq
        ));
        self.pending.push_back(Pending::Items {
            items: snapshot.extensions,
            next: 0,
        });
        self.push_text(format!(
            "],\"sources\":{},\"sinks\":{},\"stale_after_seconds\":{},\"server_time\":\"{}\"}}\n\n",
            snapshot.health.sources,
            snapshot.health.sinks,
            self.board.config().stale_after.as_secs(),
            time::format(SystemTime::now())
        ));
    }

    fn push_changes(&mut self, seq: u64, extensions: Vec<Arc<str>>) {
        self.last_batch = Some(Instant::now());
        self.push_text(format!(
            "event: changes\nid: {seq}\ndata: {{\"extensions\":["
        ));
        self.pending.push_back(Pending::Items {
            items: extensions,
            next: 0,
        });
        self.push_text(format!(
            "],\"server_time\":\"{}\"}}\n\n",
            time::format(SystemTime::now())
        ));
    }

    fn push_health(&mut self, health: &HealthJson) {
        self.health_version = health.version;
        self.push_text(format!(
            "event: health\ndata: {{\"sources\":{},\"sinks\":{},\"server_time\":\"{}\"}}\n\n",
            health.sources,
            health.sinks,
            time::format(SystemTime::now())
        ));
    }
}

/// Returns once the board is closed (never, if the sender is gone).
async fn closed(changed: &mut watch::Receiver<bool>) {
    if changed.wait_for(|closed| *closed).await.is_err() {
        std::future::pending::<()>().await;
    }
}

/// Appends `[a,b,...]`.
pub(crate) fn push_array(out: &mut String, items: &[Arc<str>]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(item);
    }
    out.push(']');
}

/// Appends `,"server_time":"..."}` (closing the object).
pub(crate) fn push_server_time(out: &mut String) {
    out.push_str(r#","server_time":""#);
    out.push_str(&time::format(SystemTime::now()));
    out.push_str(r#""}"#);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{BoardConfig, LineState, LineUpdate, Listing};

    fn drain(client: &mut Client) -> String {
        let mut text = String::new();
        while let Some(piece) = client.take_piece() {
            assert!(
                piece.len() <= PIECE + 1024,
                "a piece of {} bytes",
                piece.len()
            );
            text.push_str(std::str::from_utf8(&piece).unwrap());
        }
        text
    }

    #[test]
    fn a_large_snapshot_goes_out_in_pieces_and_parses() {
        let board = Board::new(
            (0..2_000).map(|i| Listing::new(i.to_string())),
            BoardConfig::default(),
        );
        board.set_line("7", LineUpdate::new(LineState::Busy), SystemTime::now());
        let mut client = Client::start(board.clone(), None);
        let text = drain(&mut client);
        let (head, rest) = text.split_once("\ndata: ").unwrap();
        assert_eq!(head, format!("event: snapshot\nid: {}", board.sequence()));
        let data = rest.strip_suffix("\n\n").unwrap();
        assert!(!data.contains('\n'));
        let json: serde_json::Value = serde_json::from_str(data).unwrap();
        assert_eq!(json["extensions"].as_array().unwrap().len(), 2_000);
        assert_eq!(json["extensions"][7]["line_state"], "busy");
        assert!(json["sources"].as_array().unwrap().is_empty());
    }

    #[test]
    fn an_empty_board_snapshot_parses() {
        let board = Board::new([], BoardConfig::default());
        let mut client = Client::start(board, None);
        let text = drain(&mut client);
        let data = text.split_once("\ndata: ").unwrap().1.trim_end();
        let json: serde_json::Value = serde_json::from_str(data).unwrap();
        assert!(json["extensions"].as_array().unwrap().is_empty());
    }

    /// The next whole event (or comment) of `client`, as text.
    async fn next_event(client: &mut Client) -> String {
        let mut text = String::new();
        while !text.ends_with("\n\n") {
            let piece = client.next().await.unwrap();
            text.push_str(std::str::from_utf8(&piece).unwrap());
        }
        text
    }

    #[tokio::test(start_paused = true)]
    async fn a_quiet_stream_gets_a_keep_alive_every_15_s() {
        let board = Board::new([Listing::new("1001")], BoardConfig::default());
        let mut client = Client::start(board, None);
        assert!(next_event(&mut client)
            .await
            .starts_with("event: snapshot\n"));
        let start = Instant::now();
        assert_eq!(next_event(&mut client).await, ": keep-alive\n\n");
        assert_eq!(start.elapsed(), KEEP_ALIVE);
        assert_eq!(next_event(&mut client).await, ": keep-alive\n\n");
        assert_eq!(start.elapsed(), 2 * KEEP_ALIVE);
    }

    #[tokio::test(start_paused = true)]
    async fn changes_within_the_batch_interval_go_out_as_one_event() {
        let config = BoardConfig {
            batch_interval: Duration::from_secs(1),
            ..BoardConfig::default()
        };
        let board = Board::new(["1001", "1002"].map(Listing::new), config);
        let mut client = Client::start(board.clone(), None);
        assert!(next_event(&mut client)
            .await
            .starts_with("event: snapshot\n"));
        let start = Instant::now();
        let at = SystemTime::now();
        board.set_line("1001", LineUpdate::new(LineState::Ringing), at);
        board.set_line("1002", LineUpdate::new(LineState::Busy), at);
        board.set_line("1001", LineUpdate::new(LineState::Busy), at);
        let event = next_event(&mut client).await;
        assert_eq!(
            start.elapsed(),
            Duration::from_secs(1),
            "waits out the interval"
        );
        let (head, data) = event.split_once("\ndata: ").unwrap();
        assert_eq!(head, format!("event: changes\nid: {}", board.sequence()));
        let json: serde_json::Value = serde_json::from_str(data.trim_end()).unwrap();
        let states: Vec<(&str, &str)> = json["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["extension"].as_str().unwrap(),
                    e["line_state"].as_str().unwrap(),
                )
            })
            .collect();
        assert_eq!(states, [("1001", "busy"), ("1002", "busy")]);
    }
}
