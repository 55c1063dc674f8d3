#![no_main]
//! Any bytes given to the dialog-info parser (typed, sniffed, with a tracker) must give a
//! value or a positioned error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let mut tracker = blf::Tracker::new();
    for content_type in [Some("application/dialog-info+xml"), None] {
        match blf::Notification::parse(content_type, data) {
            Ok(n) => {
                let state = n.line_state();
                let update = tracker.apply(n);
                let _ = (state, update, tracker.line_state());
            }
            Err(e) => {
                assert!(e.line >= 1 && e.column >= 1);
                let _ = e.to_string();
            }
        }
    }
    if let Ok(doc) = blf::DialogInfo::parse(data) {
        let _ = doc.line_state();
    }
});
