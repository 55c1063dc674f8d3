//! Load on the event stream: 100 clients, 2,000 changes a second over
//! 10,000 extensions, for 20 s; prints what it costs.
//!
//! `cargo run --release -p line-board --example sse_load [-- clients rate extensions seconds]`
//!
//! The board is served on 127.0.0.1 (port 0) by `axum::serve`; the clients
//! are tasks of the same process (reqwest, reading and counting the
//! stream), so the CPU time printed each second (utime + stime of the whole
//! process from `/proc/self/stat`, at 100 ticks a second) is the server's
//! **and** the clients' together: the server alone costs less. The memory
//! is the process's `VmRSS` (now) and `VmHWM` (peak) from
//! `/proc/self/status`. Changes go round-robin over the extensions
//! (idle → ringing → busy → idle …), in steps of 10 ms. Figures only: no
//! assertion on timing.
//!
//! The in-process clients dominate the memory (reqwest's read buffers,
//! about 3 MiB a client at 10,000 extensions). For the server alone, run
//! it with 0 clients and connect clients of another process to the URL it
//! prints, e.g. 100 × `curl -sN URL > /dev/null &`: then the process is
//! the server only.

use std::error::Error;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use line_board::{app, Access, Board, BoardConfig, LineState, LineUpdate, Listing};
use tokio::net::TcpListener;

/// What one client received.
#[derive(Default)]
struct Received {
    bytes: AtomicU64,
    events: AtomicU64,
    snapshots: AtomicU64,
    extensions: AtomicU64,
    last_id: AtomicU64,
}

/// `/proc/self/stat`: utime + stime in clock ticks (fields 14 and 15).
fn cpu_ticks() -> u64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return 0;
    };
    // The command name (field 2) is in parentheses and may hold spaces.
    let Some((_, rest)) = stat.rsplit_once(')') else {
        return 0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3.
    let tick = |i: usize| {
        fields
            .get(i - 3)
            .and_then(|f| f.parse::<u64>().ok())
            .unwrap_or(0)
    };
    tick(14) + tick(15)
}

/// `VmRSS` and `VmHWM` in KiB.
fn memory_kib() -> (u64, u64) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn client(url: String, received: Arc<Received>) -> Result<(), Box<dyn Error + Send + Sync>> {
    let mut response = reqwest::get(&url).await?.error_for_status()?;
    let mut line = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        received
            .bytes
            .fetch_add(chunk.len() as u64, Ordering::Relaxed);
        for &byte in chunk.iter() {
            if byte != b'\n' {
                line.push(byte);
                continue;
            }
            if let Some(event) = line.strip_prefix(b"event: ") {
                received.events.fetch_add(1, Ordering::Relaxed);
                if event == b"snapshot" {
                    received.snapshots.fetch_add(1, Ordering::Relaxed);
                }
            } else if let Some(id) = line.strip_prefix(b"id: ") {
                if let Some(id) = std::str::from_utf8(id).ok().and_then(|i| i.parse().ok()) {
                    received.last_id.store(id, Ordering::Relaxed);
                }
            } else if line.starts_with(b"data: ") {
                let count = line.windows(12).filter(|w| w == b"\"extension\":").count();
                received
                    .extensions
                    .fetch_add(count as u64, Ordering::Relaxed);
            }
            line.clear();
        }
    }
    Ok(())
}

fn arg(n: usize, default: u64) -> u64 {
    std::env::args()
        .nth(n)
        .and_then(|a| a.parse().ok())
        .unwrap_or(default)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn Error + Send + Sync>> {
    let clients = arg(1, 100);
    let rate = arg(2, 2_000);
    let extensions = arg(3, 10_000).max(1);
    let seconds = arg(4, 20);
    println!(
        "{clients} clients, {rate} changes/s over {extensions} extensions, {seconds} s \
         (CPU and memory: the whole process, server and clients)"
    );

    let listings = (0..extensions).map(|i| Listing {
        extension: (10_000 + i).to_string(),
        name: Some(format!("Person {i}")),
        email: Some(format!("person{i}@contoso.com")),
        group: Some(format!("Group {}", i % 20)),
    });
    let board = Board::new(listings, BoardConfig::default());
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/api/v1/events", listener.local_addr()?);
    println!("serving {url}");
    let router = app(board.clone(), Access::open());
    tokio::spawn(async move { axum::serve(listener, router).await });

    let received: Vec<Arc<Received>> = (0..clients).map(|_| Arc::default()).collect();
    for r in &received {
        let (url, r) = (url.clone(), Arc::clone(r));
        tokio::spawn(async move {
            if let Err(error) = client(url, r).await {
                eprintln!("a client stopped: {error}");
            }
        });
    }
    // Until every client has its snapshot.
    let connect_start = Instant::now();
    while received
        .iter()
        .any(|r| r.snapshots.load(Ordering::Relaxed) == 0)
    {
        if connect_start.elapsed() > Duration::from_secs(60) {
            return Err("the clients did not all connect within 60 s".into());
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    println!(
        "{clients} clients connected in {:?}",
        connect_start.elapsed()
    );

    let states = [LineState::Idle, LineState::Ringing, LineState::Busy];
    let per_step = (rate / 100).max(1);
    let mut step = tokio::time::interval(Duration::from_millis(10));
    step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let (mut changes, mut next) = (0u64, 0u64);
    let start = Instant::now();
    let (mut last_ticks, mut last_second) = (cpu_ticks(), 0);
    let mut cpu_per_second = Vec::new();
    println!("second  cpu_ms_per_s  changes  VmRSS_MiB  VmHWM_MiB  events/client  MB/client");
    while start.elapsed() < Duration::from_secs(seconds) {
        step.tick().await;
        let at = SystemTime::now();
        for _ in 0..per_step {
            let i = next % extensions;
            let round = (next / extensions) as usize;
            board.record(
                &(10_000 + i).to_string(),
                LineUpdate::new(states[(round + 1) % states.len()]),
                at,
            );
            next += 1;
            changes += 1;
        }
        let second = start.elapsed().as_secs();
        if second > last_second {
            let ticks = cpu_ticks();
            let cpu_ms = (ticks - last_ticks) * 10;
            cpu_per_second.push(cpu_ms);
            let (rss, hwm) = memory_kib();
            let events: u64 = received
                .iter()
                .map(|r| r.events.load(Ordering::Relaxed))
                .sum();
            let bytes: u64 = received
                .iter()
                .map(|r| r.bytes.load(Ordering::Relaxed))
                .sum();
            println!(
                "{second:>6}  {cpu_ms:>12}  {changes:>7}  {:>9.1}  {:>9.1}  {:>13.1}  {:>9.2}",
                rss as f64 / 1024.0,
                hwm as f64 / 1024.0,
                events as f64 / clients.max(1) as f64,
                bytes as f64 / clients.max(1) as f64 / 1e6,
            );
            (last_ticks, last_second) = (ticks, second);
        }
    }
    let elapsed = start.elapsed();
    // Let the clients read what is in flight (at most a few batches).
    let settle = Instant::now();
    let last = board.sequence();
    while settle.elapsed() < Duration::from_secs(5)
        && received
            .iter()
            .any(|r| r.last_id.load(Ordering::Relaxed) < last)
    {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }

    let (rss, hwm) = memory_kib();
    let mean_cpu = cpu_per_second.iter().sum::<u64>() as f64 / cpu_per_second.len().max(1) as f64;
    println!(
        "\n{changes} changes in {elapsed:.1?} ({:.0}/s); CPU {mean_cpu:.0} ms per second on average \
         (server and clients); VmRSS {:.1} MiB, VmHWM {:.1} MiB",
        changes as f64 / elapsed.as_secs_f64(),
        rss as f64 / 1024.0,
        hwm as f64 / 1024.0
    );
    let column = |f: &dyn Fn(&Received) -> u64| {
        let values: Vec<u64> = received.iter().map(|r| f(r)).collect();
        let min = values.iter().min().copied().unwrap_or(0);
        let max = values.iter().max().copied().unwrap_or(0);
        let mean = values.iter().sum::<u64>() as f64 / values.len().max(1) as f64;
        format!("min {min}, mean {mean:.0}, max {max}")
    };
    println!(
        "per client: events    {}",
        column(&|r| r.events.load(Ordering::Relaxed))
    );
    println!(
        "per client: snapshots {}",
        column(&|r| r.snapshots.load(Ordering::Relaxed))
    );
    println!(
        "per client: extension rows {}",
        column(&|r| r.extensions.load(Ordering::Relaxed))
    );
    println!(
        "per client: bytes     {}",
        column(&|r| r.bytes.load(Ordering::Relaxed))
    );
    let behind = received
        .iter()
        .filter(|r| r.last_id.load(Ordering::Relaxed) < last)
        .count();
    println!("clients not at the last change 5 s after the end: {behind}");
    board.close();
    Ok(())
}
