//! How many line changes per second `write_batch` takes, on SQLite (a file in
//! a temporary directory) and on PostgreSQL (a private server started with
//! testbed, or `--url`), for a few batch sizes. The database sink's target
//! is 5,000 changes/s.
//!
//! ```sh
//! cargo run --release -p line-store --example write_rate
//! cargo run --release -p line-store --example write_rate -- --changes 20000 --batches 1,50,500
//! cargo run --release -p line-store --example write_rate -- --url postgres://u:p@host/db
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant, SystemTime};

use line_store::{Direction, LineRow, LineState, LineStore};

struct Args {
    changes: usize,
    extensions: usize,
    batches: Vec<usize>,
    url: Option<String>,
    smoke: bool,
}

fn args() -> Args {
    let mut a = Args {
        changes: 50_000,
        extensions: 10_000,
        batches: vec![1, 10, 100, 500],
        url: None,
        smoke: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().expect("a value after the flag");
        match flag.as_str() {
            "--changes" => a.changes = value().parse().expect("a number"),
            "--extensions" => a.extensions = value().parse().expect("a number"),
            "--batches" => {
                a.batches = value()
                    .split(',')
                    .map(|b| b.parse().expect("numbers"))
                    .collect()
            }
            "--url" => a.url = Some(value()),
            "--smoke" => a.smoke = true,
            other => panic!("unknown argument {other}"),
        }
    }
    if a.smoke {
        (a.changes, a.extensions, a.batches) = (200, 50, vec![1, 50]);
    }
    a
}

/// Line changes round-robin over the extensions, each the next step of a call.
fn changes(n: usize, extensions: usize) -> Vec<LineRow> {
    let t0 = SystemTime::now();
    let cycle = [
        LineState::Ringing,
        LineState::Busy,
        LineState::Hold,
        LineState::Idle,
    ];
    (0..n)
        .map(|i| {
            let ext = 10_000 + i % extensions;
            let at = t0 + Duration::from_micros(i as u64);
            let mut r = LineRow::new(
                ext.to_string(),
                cycle[(i / extensions) % cycle.len()],
                "sip",
                at,
            );
            r.email = Some(format!("user{ext}@example.com"));
            r.name = Some(format!("User {ext}"));
            r.counterparty = Some(format!("+4930{}", 1_000_000 + i));
            r.direction = Some(Direction::Inbound);
            r.dnd = Some(false);
            r
        })
        .collect()
}

async fn measure(name: &str, store: &LineStore, a: &Args) {
    for &batch in &a.batches {
        // fewer changes for batch size 1, one commit each
        let n = if batch == 1 {
            a.changes.min(5_000)
        } else {
            a.changes
        };
        let rows = changes(n, a.extensions);
        let start = Instant::now();
        for chunk in rows.chunks(batch) {
            store.write_batch(chunk).await.expect("write");
        }
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{name:<10} batch {batch:>5}  {n:>7} changes in {secs:>6.2} s  {:>9.0} changes/s",
            n as f64 / secs
        );
    }
}

#[tokio::main]
async fn main() {
    let a = args();
    println!(
        "write_batch: {} extensions, upsert + history (+ NOTIFY on PostgreSQL)",
        a.extensions
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let sqlite = LineStore::connect(&format!(
        "sqlite://{}",
        dir.path().join("lines.db").display()
    ))
    .await
    .expect("sqlite");
    measure("sqlite", &sqlite, &a).await;
    sqlite.close().await;

    let (_server, url) = match &a.url {
        Some(url) => (None, url.clone()),
        None => {
            let pg = testbed::Postgres::start().expect("PostgreSQL (scripts/install-peers.sh)");
            let url = pg.url();
            (Some(pg), url)
        }
    };
    let pg = LineStore::connect(&url).await.expect("postgres");
    measure("postgres", &pg, &a).await;
    pg.close().await;
}
