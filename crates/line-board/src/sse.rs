//! `/api/v1/events`: one coalescing Server-Sent Events stream per client.
//!
//! A client's stream does no work of its own between changes: it wakes on
//! the board's change notification, waits out the rest of
//! [`BoardConfig::batch_interval`](crate::BoardConfig::batch_interval)
//! since its last event, then reads the board's log after its cursor and
//! sends the latest JSON of each changed extension (written once per
//! change, shared by every client) as one `changes` event. Events are made
//! only as fast as the client reads them: a slow client costs no memory,
//! and if it falls behind the log it gets a fresh `snapshot`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use tokio::sync::watch;
use tokio::time::Instant;

use crate::board::{Board, HealthJson, Snapshot};
use crate::time;

/// The longest silence on an event stream: a `: keep-alive` comment is sent
/// after it.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);

/// The event stream for a client that last saw `last_event_id` (the
/// `Last-Event-ID` header), if any.
pub(crate) fn events(
    board: Board,
    last_event_id: Option<u64>,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let client = Client::start(board, last_event_id);
    let stream = stream::unfold(client, |mut client| async move {
        let event = client.next().await?;
        Some((Ok(event), client))
    });
    Sse::new(stream).keep_alive(KeepAlive::new().interval(KEEP_ALIVE).text("keep-alive"))
}

struct Client {
    board: Board,
    changed: watch::Receiver<bool>,
    closed: bool,
    cursor: u64,
    health_version: u64,
    pending: VecDeque<Event>,
    last_batch: Option<Instant>,
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
        };
        match last_event_id.and_then(|seen| client.board.changes_since(seen)) {
            Some(changes) => {
                client.cursor = changes.seq;
                if !changes.extensions.is_empty() {
                    client.push_changes(changes.seq, &changes.extensions);
                }
                // The health may have changed while the client was away.
                let health = client.board.health_json();
                client.push_health(&health);
            }
            None => {
                let snapshot = client.board.snapshot();
                client.push_snapshot(&snapshot);
            }
        }
        client
    }

    async fn next(&mut self) -> Option<Event> {
        loop {
            if let Some(event) = self.pending.pop_front() {
                return Some(event);
            }
            if self.closed {
                return None;
            }
            // The board (and so the sender) lives as long as this client.
            self.changed.changed().await.ok()?;
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

    fn read_board(&mut self) {
        match self.board.changes_since(self.cursor) {
            Some(changes) if changes.extensions.is_empty() => {}
            Some(changes) => {
                self.cursor = changes.seq;
                self.push_changes(changes.seq, &changes.extensions);
            }
            None => {
                let snapshot = self.board.snapshot();
                self.push_snapshot(&snapshot);
                return;
            }
        }
        if let Some(health) = self.board.health_since(self.health_version) {
            self.push_health(&health);
        }
    }

    fn push_snapshot(&mut self, snapshot: &Snapshot) {
        self.cursor = snapshot.seq;
        self.health_version = snapshot.health.version;
        self.last_batch = Some(Instant::now());
        let mut data = String::with_capacity(
            snapshot
                .extensions
                .iter()
                .map(|e| e.len() + 1)
                .sum::<usize>()
                + 200,
        );
        data.push_str(r#"{"extensions":"#);
        push_array(&mut data, &snapshot.extensions);
        data.push_str(r#","sources":"#);
        data.push_str(&snapshot.health.sources);
        data.push_str(r#","sinks":"#);
        data.push_str(&snapshot.health.sinks);
        data.push_str(&format!(
            r#","stale_after_seconds":{},"server_time":"{}"}}"#,
            self.board.config().stale_after.as_secs(),
            time::format(SystemTime::now())
        ));
        self.pending.push_back(
            Event::default()
                .event("snapshot")
                .id(snapshot.seq.to_string())
                .data(data),
        );
    }

    fn push_changes(&mut self, seq: u64, extensions: &[Arc<str>]) {
        self.last_batch = Some(Instant::now());
        let mut data =
            String::with_capacity(extensions.iter().map(|e| e.len() + 1).sum::<usize>() + 64);
        data.push_str(r#"{"extensions":"#);
        push_array(&mut data, extensions);
        push_server_time(&mut data);
        self.pending.push_back(
            Event::default()
                .event("changes")
                .id(seq.to_string())
                .data(data),
        );
    }

    fn push_health(&mut self, health: &HealthJson) {
        self.health_version = health.version;
        let mut data = String::with_capacity(health.sources.len() + health.sinks.len() + 80);
        data.push_str(r#"{"sources":"#);
        data.push_str(&health.sources);
        data.push_str(r#","sinks":"#);
        data.push_str(&health.sinks);
        push_server_time(&mut data);
        self.pending
            .push_back(Event::default().event("health").data(data));
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
