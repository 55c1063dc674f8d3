//! Reads a NOTIFY body from a file (or a built-in sample) and prints the line state, then
//! follows one subscription through a call with a `Tracker`.
//!
//! `cargo run -p blf --example line_state [body.xml [content-type]]`

use blf::{LineState, Notification, Tracker};

const RINGING: &str = r#"<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="1" state="full" entity="sip:1001@pbx">
  <dialog id="a" call-id="c1" direction="recipient"><state>early</state></dialog>
</dialog-info>"#;

const ANSWERED: &str = r#"<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="2" state="partial" entity="sip:1001@pbx">
  <dialog id="a" call-id="c1" direction="recipient"><state>confirmed</state></dialog>
</dialog-info>"#;

const HUNG_UP: &str = r#"<?xml version="1.0"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="3" state="partial" entity="sip:1001@pbx">
  <dialog id="a" call-id="c1" direction="recipient"><state>terminated</state></dialog>
</dialog-info>"#;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    if let Some(path) = args.next() {
        // A body of your own: the content type is sniffed from the root element if not given.
        let body = std::fs::read(&path)?;
        let content_type = args.next();
        match Notification::parse(content_type.as_deref(), &body) {
            Ok(n) => println!("{path}: {}", n.line_state()),
            // Typed errors with the 1-based line and column of the problem.
            Err(e) => println!("{path}: {} ({e})", e.kind.as_str()),
        }
        return Ok(());
    }

    // One subscription, three NOTIFYs: versions are checked, partial bodies merged.
    let mut tracker = Tracker::new();
    for body in [RINGING, ANSWERED, HUNG_UP] {
        let n = Notification::parse(Some("application/dialog-info+xml"), body.as_bytes())?;
        let update = tracker.apply(n);
        println!(
            "version {:?}: {} ({:?}, changed: {})",
            tracker.version(),
            update.line_state,
            update.event,
            update.changed
        );
    }
    assert_eq!(tracker.line_state(), LineState::Idle);
    Ok(())
}
