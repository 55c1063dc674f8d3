//! A dashboard of two extensions on <http://127.0.0.1:8080/>; Alice's line
//! goes from idle to ringing to busy and back every two seconds.
//!
//! ```text
//! cargo run -p line-board --example serve [-- 127.0.0.1:PORT]
//! ```
//!
//! `curl -sN http://127.0.0.1:8080/api/v1/events` shows the event stream.
//! Open to everyone who reaches the listener: keep it on loopback, or give
//! `Access::new(Some(token))` (see `check_bind`).

use std::error::Error;
use std::time::{Duration, SystemTime};

use line_board::{Access, Board, BoardConfig, LineState, LineUpdate, Listing};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let address = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".into());
    let listing = |extension: &str, name: &str| Listing {
        extension: extension.into(),
        name: Some(name.into()),
        email: None,
        group: Some("Sales".into()),
    };
    let board = Board::new(
        [listing("1001", "Alice"), listing("1002", "Bob")],
        BoardConfig::default(),
    );
    let access = Access::open();
    let listener = tokio::net::TcpListener::bind(&address).await?;
    line_board::check_bind(listener.local_addr()?, None)?;
    println!("http://{}/", listener.local_addr()?);

    let changes = board.clone();
    tokio::spawn(async move {
        let cycle = [LineState::Idle, LineState::Ringing, LineState::Busy];
        for state in cycle.into_iter().cycle() {
            changes.set_line("1001", LineUpdate::new(state), SystemTime::now());
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    axum::serve(listener, line_board::app(board, access)).await?;
    Ok(())
}
