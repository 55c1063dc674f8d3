//! Parsing: `blf` bodies per second.

use std::time::{Duration, Instant};

use crate::figures::{Figure, Report};

const BODIES: &[&[u8]] = &[
    include_bytes!("../../../blf/tests/fixtures/kamailio/busy_callee_confirmed.xml"),
    include_bytes!("../../../blf/tests/fixtures/kamailio/ringing_two_calls_confirmed_early.xml"),
    include_bytes!("../../../blf/tests/fixtures/asterisk-pjsip/idle_not_inuse.xml"),
    include_bytes!("../../../blf/tests/fixtures/asterisk-pjsip/busy_inuse.xml"),
    include_bytes!("../../../blf/tests/fixtures/freeswitch/ringing_incoming_early.xml"),
];

/// Parsing: `blf` bodies per second on one thread (the bodies of
/// `crates/blf/examples/bodies_per_second.rs`).
pub fn parse(duration: Duration) -> Report {
    let mut count = 0u64;
    let start = Instant::now();
    while start.elapsed() < duration {
        for body in BODIES {
            let n = blf::Notification::parse(
                Some("application/dialog-info+xml"),
                std::hint::black_box(body),
            );
            std::hint::black_box(n.map(|n| n.line_state()).ok());
            count += 1;
        }
    }
    let rate = count as f64 / start.elapsed().as_secs_f64();
    let mut report = Report::new(
        "parse",
        "blf dialog-info bodies (Kamailio, Asterisk, FreeSWITCH), one thread",
    );
    report.push(Figure::new("bodies parsed per second", rate, "/s"));
    report
}
