#![no_main]
//! The SIP message parser, the header parsers, the digest challenge parser and
//! the stream framer must never panic on any input.
use libfuzzer_sys::fuzz_target;
use sip_proto::framing::StreamFramer;
use sip_proto::{digest, headers, Message};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = Message::parse(data) {
        let _ = m.to_bytes();
        let _ = (m.call_id(), m.cseq(), m.from_tag(), m.to_tag(), m.method());
        if let Some(v) = m.top_via() {
            let _ = headers::parse_via(v);
        }
        for (_, v) in m.headers.iter() {
            let _ = headers::parse_subscription_state(v);
            let _ = headers::parse_event(v);
            let _ = headers::parse_retry_after(v);
            let _ = headers::contact_expires(v);
            let _ = digest::parse_challenges(v);
        }
    }
    let mut framer = StreamFramer::new();
    for chunk in data.chunks(7) {
        framer.push(chunk);
        while let Ok(Some(_)) = framer.next_frame() {}
    }
});
