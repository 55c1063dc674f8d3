//! Prints how many typical BLF bodies per second one core parses and aggregates.
//!
//! `cargo run --release -p blf --example bodies_per_second`

use std::hint::black_box;
use std::time::{Duration, Instant};

const BODIES: &[&[u8]] = &[
    include_bytes!("../tests/fixtures/kamailio/busy_callee_confirmed.xml"),
    include_bytes!("../tests/fixtures/kamailio/ringing_two_calls_confirmed_early.xml"),
    include_bytes!("../tests/fixtures/asterisk-pjsip/idle_not_inuse.xml"),
    include_bytes!("../tests/fixtures/asterisk-pjsip/busy_inuse.xml"),
    include_bytes!("../tests/fixtures/freeswitch/ringing_incoming_early.xml"),
];

fn main() {
    // Warm up, then measure for about two seconds.
    let mut count: u64 = 0;
    let run = |count: &mut u64, budget: Duration| {
        let start = Instant::now();
        while start.elapsed() < budget {
            for body in BODIES {
                let n =
                    blf::Notification::parse(Some("application/dialog-info+xml"), black_box(body));
                black_box(n.map(|n| n.line_state()).ok());
                *count += 1;
            }
        }
        start.elapsed()
    };
    run(&mut count, Duration::from_millis(300));
    count = 0;
    let elapsed = run(&mut count, Duration::from_secs(2));
    let per_second = count as f64 / elapsed.as_secs_f64();
    let avg = BODIES.iter().map(|b| b.len()).sum::<usize>() / BODIES.len();
    println!(
        "{per_second:.0} bodies/s ({count} bodies of {avg} bytes on average in {:.2} s, one thread)",
        elapsed.as_secs_f64()
    );
    // The floor under that figure: quick-xml's namespace-aware reader alone, reading
    // every event and attribute of the same bodies and building nothing.
    let start = Instant::now();
    let mut read = 0u64;
    while start.elapsed() < Duration::from_secs(2) {
        for body in BODIES {
            read_only(body);
            read += 1;
        }
    }
    println!(
        "{:.0} bodies/s for quick-xml's NsReader alone on the same bodies (the ceiling)",
        read as f64 / start.elapsed().as_secs_f64()
    );
}

fn read_only(body: &[u8]) {
    use quick_xml::events::Event;
    let Ok(text) = std::str::from_utf8(body) else {
        return;
    };
    let mut reader = quick_xml::NsReader::from_str(text);
    loop {
        match reader.read_resolved_event() {
            Ok((_, Event::Eof)) | Err(_) => break,
            Ok((ns, Event::Start(s) | Event::Empty(s))) => {
                for a in s.attributes() {
                    black_box(a.ok());
                }
                black_box(ns);
            }
            Ok(other) => {
                black_box(other);
            }
        }
    }
}
