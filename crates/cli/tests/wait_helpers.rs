//! The waiting helpers of the real-peer tests (`common`) accept independent
//! events in any order, and count each event once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::mpsc;

use common::{wait_for, wait_for_all};

fn channel_of(lines: &[&str]) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    for l in lines {
        tx.send((*l).to_string()).unwrap();
    }
    rx
}

#[test]
fn lines_are_found_in_any_order_and_returned_in_the_order_asked() {
    let rx = channel_of(&[
        "1002 user2@contoso.com: clearPresence",
        "noise",
        "1001 user1@contoso.com: clearPresence",
        "after",
    ]);
    let mut seen = Vec::new();
    let got = wait_for_all(
        &rx,
        &mut seen,
        &[
            "1001 user1@contoso.com: clear",
            "1002 user2@contoso.com: clear",
        ],
    );
    assert_eq!(
        got,
        [
            "1001 user1@contoso.com: clearPresence",
            "1002 user2@contoso.com: clearPresence"
        ]
    );
    // Nothing is read beyond the last line needed.
    assert_eq!(seen.len(), 3);
    assert_eq!(rx.try_recv().unwrap(), "after");
}

#[test]
fn one_line_matches_one_needle_only() {
    let rx = channel_of(&["subscribed to 1001", "other", "subscribed to 1002"]);
    let mut seen = Vec::new();
    let got = wait_for_all(&rx, &mut seen, &["subscribed to 100", "subscribed to 100"]);
    assert_eq!(got, ["subscribed to 1001", "subscribed to 1002"]);
}

#[test]
fn only_lines_read_by_the_call_count() {
    let rx = channel_of(&["ready", "ready again"]);
    let mut seen = Vec::new();
    assert_eq!(wait_for(&rx, &mut seen, "ready"), "ready");
    // The first "ready" is in `seen` already: the next wait takes a new line.
    assert_eq!(wait_for(&rx, &mut seen, "ready"), "ready again");
    assert_eq!(seen, ["ready", "ready again"]);
}
