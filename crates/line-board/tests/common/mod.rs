//! A board served on 127.0.0.1 (port 0) and a small Server-Sent Events reader.

#![allow(dead_code)]

use std::time::{Duration, SystemTime};

use line_board::{app, Access, Board, BoardConfig, Listing};
use tokio::net::TcpListener;

/// How long a test waits for a real peer.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Serves `app(board, access)` on a loopback port; returns `http://127.0.0.1:port`.
pub async fn serve(board: Board, access: Access) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, app(board, access)).await.unwrap();
    });
    format!("http://{addr}")
}

/// `1001` Alice (Sales), `1002` Bob (Sales), `1003` Carol (Support).
pub fn board(log_capacity: usize) -> Board {
    board_with(log_capacity, Duration::from_millis(20))
}

/// [`board`] with another batch interval.
pub fn board_with(log_capacity: usize, batch_interval: Duration) -> Board {
    let person = |ext: &str, name: &str, group: &str| Listing {
        extension: ext.into(),
        name: Some(name.into()),
        email: Some(format!("{}@contoso.com", name.to_lowercase())),
        group: Some(group.into()),
    };
    let mut config = BoardConfig::new(Duration::from_secs(90), log_capacity);
    config.batch_interval = batch_interval;
    Board::new(
        [
            person("1001", "Alice", "Sales"),
            person("1002", "Bob", "Sales"),
            person("1003", "Carol", "Support"),
        ],
        config,
    )
}

/// A client that follows no redirects.
pub fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(PATIENCE)
        .build()
        .unwrap()
}

pub fn now() -> SystemTime {
    SystemTime::now()
}

/// One Server-Sent Event.
#[derive(Debug, Clone, Default)]
pub struct SseEvent {
    pub event: String,
    pub id: Option<String>,
    pub data: String,
}

impl SseEvent {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.data).unwrap()
    }
}

/// Reads events from an `text/event-stream` response.
pub struct SseReader {
    response: reqwest::Response,
    buffer: Vec<u8>,
    /// Comment lines seen (`: keep-alive`).
    pub comments: Vec<String>,
}

impl SseReader {
    /// Opens `url` with `headers` (a `(name, value)` list); checks the content type.
    pub async fn open(url: &str, headers: &[(&str, &str)]) -> Self {
        let mut request = client().get(url);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert_eq!(response.status(), 200);
        let content_type = response.headers()["content-type"].to_str().unwrap();
        assert!(
            content_type.starts_with("text/event-stream"),
            "{content_type}"
        );
        Self {
            response,
            buffer: Vec::new(),
            comments: Vec::new(),
        }
    }

    /// The next event (comments are skipped and kept in `comments`).
    pub async fn next(&mut self) -> SseEvent {
        tokio::time::timeout(PATIENCE, self.next_inner())
            .await
            .expect("an event within the patience")
    }

    async fn next_inner(&mut self) -> SseEvent {
        loop {
            while let Some(end) = find_blank_line(&self.buffer) {
                let block: Vec<u8> = self.buffer.drain(..end.1).collect();
                let text = String::from_utf8(block[..end.0].to_vec()).unwrap();
                if let Some(event) = self.parse(&text) {
                    return event;
                }
            }
            let chunk = self
                .response
                .chunk()
                .await
                .unwrap()
                .expect("the stream goes on");
            self.buffer.extend_from_slice(&chunk);
        }
    }

    /// Waits for the server to end the stream; returns the events before the end.
    pub async fn until_end(&mut self) -> Vec<SseEvent> {
        let mut events = Vec::new();
        tokio::time::timeout(PATIENCE, async {
            while let Some(chunk) = self.response.chunk().await.unwrap() {
                self.buffer.extend_from_slice(&chunk);
                while let Some(end) = find_blank_line(&self.buffer) {
                    let block: Vec<u8> = self.buffer.drain(..end.1).collect();
                    let text = String::from_utf8(block[..end.0].to_vec()).unwrap();
                    events.extend(self.parse(&text));
                }
            }
        })
        .await
        .expect("the stream ends within the patience");
        events
    }

    fn parse(&mut self, block: &str) -> Option<SseEvent> {
        let mut event = SseEvent::default();
        let mut has_field = false;
        for line in block.lines() {
            if let Some(comment) = line.strip_prefix(':') {
                self.comments.push(comment.trim().to_owned());
                continue;
            }
            let (field, value) = line.split_once(':').unwrap_or((line, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            has_field = true;
            match field {
                "event" => event.event = value.to_owned(),
                "id" => event.id = Some(value.to_owned()),
                "data" => {
                    if !event.data.is_empty() {
                        event.data.push('\n');
                    }
                    event.data.push_str(value);
                }
                _ => {}
            }
        }
        if event.event.is_empty() {
            event.event = "message".into();
        }
        has_field.then_some(event)
    }
}

/// The end of the first event block: (end of its text, end including the blank line).
fn find_blank_line(buffer: &[u8]) -> Option<(usize, usize)> {
    buffer
        .windows(2)
        .position(|w| w == b"\n\n")
        .map(|at| (at, at + 2))
}
