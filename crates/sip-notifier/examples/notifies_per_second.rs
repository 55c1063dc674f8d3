//! Prints how many NOTIFYs per second the sans-IO core builds and completes on
//! one core: 1000 subscriptions, every line changing, each NOTIFY answered
//! with a 200 (parsing included). `cargo run --release -p sip-notifier --example notifies_per_second`

use std::net::SocketAddr;
use std::time::Instant;

use sip_notifier::{DialogSpec, DialogState, Direction, Notifier, NotifierConfig};
use sip_proto::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    const SUBS: u32 = 1000;
    const ROUNDS: u32 = 50;
    let now = Instant::now();
    let pbx: SocketAddr = "127.0.0.1:5060".parse()?;
    let mut config = NotifierConfig::new("pbx.test", Vec::new());
    config.require_auth = false;
    config.notify_events = false;
    let mut n = Notifier::new(config, pbx, now);
    for i in 0..SUBS {
        let ext = format!("{}", 10_000 + i);
        n.add_extension(&ext);
        let watcher: SocketAddr = format!("127.0.0.{}:{}", 2 + i % 200, 5062 + i).parse()?;
        let req = format!(
            "SUBSCRIBE sip:{ext}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {watcher};branch=z9hG4bK{i}\r\n\
             From: <sip:blf@pbx.test>;tag={i}\r\nTo: <sip:{ext}@pbx.test>\r\nCall-ID: {i}@w\r\n\
             CSeq: 1 SUBSCRIBE\r\nContact: <sip:blf@{watcher}>\r\nEvent: dialog\r\nExpires: 3600\r\n\
             Content-Length: 0\r\n\r\n"
        );
        n.handle_input(watcher, req.as_bytes(), now);
    }
    let mut answered = 0u64;
    let mut answer_all = |n: &mut Notifier| -> Result<(), Box<dyn std::error::Error>> {
        let mut out = Vec::new();
        while let Some(t) = n.poll_transmit() {
            out.push(t);
        }
        for t in out {
            let m = Message::parse(&t.payload)?;
            if m.is_request() {
                let ok = format!(
                    "SIP/2.0 200 OK\r\nVia: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
                    m.headers.get("Via").unwrap_or(""),
                    m.headers.get("CSeq").unwrap_or("")
                );
                n.handle_input(t.destination, ok.as_bytes(), now);
                answered += 1;
            }
        }
        Ok(())
    };
    answer_all(&mut n)?;
    let start = Instant::now();
    let states = [
        DialogState::Early,
        DialogState::Confirmed,
        DialogState::Terminated,
    ];
    for round in 0..ROUNDS {
        let state = &states[round as usize % states.len()];
        for i in 0..SUBS {
            let d = DialogSpec::new("c", Direction::Recipient, state.clone()).with_remote("2000");
            n.set_line(&format!("{}", 10_000 + i), vec![d], now);
        }
        answer_all(&mut n)?;
    }
    let secs = start.elapsed().as_secs_f64();
    let sent = n.stats().notifies_sent - u64::from(SUBS);
    println!(
        "{:.0} NOTIFY/s (built, sent and answered; {sent} NOTIFYs, {answered} answers parsed, the watchers' 200s included in the time)",
        sent as f64 / secs
    );
    Ok(())
}
