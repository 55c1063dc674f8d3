//! Writes two line changes into an SQLite table and reads them back: the
//! table a wallboard or a CRM would read.
//!
//! ```text
//! cargo run -p line-store --example sqlite_table [-- sqlite://lines.db]
//! ```
//!
//! Without an argument the file is `lines.db` in the working directory; a
//! `postgres://USER:PASSWORD@HOST/DB` URL works the same way.

use std::error::Error;
use std::time::SystemTime;

use line_store::{LineRow, LineState, LineStore};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let url = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "sqlite://lines.db".into());
    // Creates the file on first start and runs the migrations.
    let store = LineStore::connect(&url).await?;

    let now = SystemTime::now();
    let mut alice = LineRow::new("1001", LineState::Busy, "example", now);
    alice.name = Some("Alice".into());
    alice.counterparty = Some("+15550100".into());
    let bob = LineRow::new("1002", LineState::Idle, "example", now);
    // One transaction: both rows, or neither.
    store.write_batch(&[alice, bob]).await?;

    for row in store.line_states().await? {
        println!(
            "{} {} {}",
            row.extension,
            row.line_state.as_str(),
            row.counterparty.as_deref().unwrap_or("-")
        );
    }
    println!(
        "history of 1001: {} event(s)",
        store.history("1001").await?.len()
    );
    store.close().await;
    Ok(())
}
