#![no_main]
//! Any bytes given to the PIDF parser must give a value or a positioned error, never a panic.
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    match blf::Notification::parse(Some("application/pidf+xml"), data) {
        Ok(n) => {
            let _ = n.line_state();
        }
        Err(e) => {
            assert!(e.line >= 1 && e.column >= 1);
            let _ = e.to_string();
        }
    }
    if let Ok(p) = blf::Pidf::parse(data) {
        let _ = (p.line_state(), p.on_the_phone());
    }
});
