#![no_main]
//! Any bytes from an AMI server (framed by the decoder, or driven through the
//! client state machine with time passing) must give frames, events or a typed
//! error, never a panic; a closed client has no deadline left.
use std::time::{Duration, Instant};

use ami::{parse_message, Decoder, Limits};
use ami::{Action, Auth, Client, Config};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&knobs, input)) = data.split_first() else {
        return;
    };

    for mut decoder in [
        Decoder::new(Limits::default()),
        Decoder::without_banner(Limits::default()),
    ] {
        decoder.push(input);
        while let Ok(Some(frame)) = decoder.next_frame() {
            let _ = format!("{frame:?}");
        }
        let _ = decoder.finish();
    }
    if let Ok(m) = parse_message(input) {
        let _ = (m.to_string(), m.action_id().map(str::len));
        let _ = m.classify();
    }

    let mut config = Config::new("lab", "labsecret");
    config.auth = if knobs & 1 == 0 { Auth::Md5 } else { Auth::Plain };
    if knobs & 2 != 0 {
        config.limits.max_line = 64;
        config.limits.max_message = 512;
        config.limits.max_fields = 16;
        config.limits.max_list_items = 8;
    }
    let chunk = 1 + usize::from(knobs >> 4);
    let mut client = Client::new(config);
    let mut now = Instant::now();
    client.handle_timeout(now);
    for (i, piece) in input.chunks(chunk).enumerate() {
        client.handle_input(piece, now);
        if knobs & 4 != 0 && i % 5 == 0 {
            let _ = client.send_action(Action::extension_state_list(), now);
        }
        if knobs & 8 != 0 {
            now += Duration::from_millis(u64::from(piece[0]) * 100);
            client.handle_timeout(now);
        }
        while client.poll_transmit().is_some() {}
        while client.poll_event().is_some() {}
        let _ = client.poll_timeout();
    }
    client.handle_eof();
    while client.poll_event().is_some() {}
    assert!(client.is_closed());
    assert!(client.poll_timeout().is_none());
});
