//! Garbage, oversized and random input: a typed error and a closed client,
//! never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Instant;

use ami::{Client, ClientEvent, CodecError, Config, Error};

fn closed_with(c: &mut Client) -> Option<Error> {
    let ev: Vec<_> = std::iter::from_fn(|| c.poll_event()).collect();
    match ev.last() {
        Some(ClientEvent::Closed(e)) => e.clone(),
        other => panic!("not closed: {other:?}"),
    }
}

#[test]
fn not_an_ami_server() {
    let mut c = Client::new(Config::new("lab", "x"));
    c.handle_input(b"SSH-2.0-OpenSSH_9.6\r\n", Instant::now());
    assert!(matches!(
        closed_with(&mut c),
        Some(Error::Codec(CodecError::BadBanner(_)))
    ));
    assert!(c.poll_transmit().is_none());
}

#[test]
fn garbage_after_the_banner() {
    let mut c = Client::new(Config::new("lab", "x"));
    let now = Instant::now();
    c.handle_input(
        b"Asterisk Call Manager/11.0.0\r\n\x00\x01binary junk\r\n",
        now,
    );
    assert!(matches!(
        closed_with(&mut c),
        Some(Error::Codec(CodecError::Malformed(_)))
    ));
    // further input is ignored
    c.handle_input(b"Response: Success\r\n\r\n", now);
    assert!(c.poll_event().is_none());
}

#[test]
fn oversized_line_and_message() {
    let now = Instant::now();
    let mut c = Client::new(Config::new("lab", "x"));
    c.handle_input(b"Asterisk Call Manager/11.0.0\r\nEvent: X\r\nValue: ", now);
    let chunk = vec![b'a'; 4096];
    for _ in 0..3 {
        c.handle_input(&chunk, now);
    }
    assert_eq!(
        closed_with(&mut c),
        Some(Error::Codec(CodecError::LineTooLong { limit: 8192 }))
    );

    let mut c = Client::new(Config::new("lab", "x"));
    c.handle_input(b"Asterisk Call Manager/11.0.0\r\nEvent: X\r\n", now);
    let line = format!("Key: {}\r\n", "v".repeat(1000));
    for _ in 0..70 {
        c.handle_input(line.as_bytes(), now);
    }
    assert_eq!(
        closed_with(&mut c),
        Some(Error::Codec(CodecError::MessageTooLarge { limit: 65536 }))
    );
}

#[test]
fn too_long_a_list() {
    let now = Instant::now();
    let mut config = Config::new("lab", "x");
    config.auth = ami::Auth::Plain;
    config.limits.max_list_items = 2;
    let mut c = Client::new(config);
    c.handle_input(b"Asterisk Call Manager/11.0.0\r\n", now);
    let login = ami::parse_message(&c.poll_transmit().unwrap()).unwrap();
    let ok = format!(
        "Response: Success\r\nActionID: {}\r\n\r\n",
        login.action_id().unwrap()
    );
    c.handle_input(ok.as_bytes(), now);
    let id = c
        .send_action(ami::Action::device_state_list(), now)
        .unwrap();
    let mut wire = format!("Response: Success\r\nActionID: {id}\r\nEventList: start\r\n\r\n");
    for _ in 0..3 {
        wire.push_str(&format!(
            "Event: DeviceStateChange\r\nActionID: {id}\r\n\r\n"
        ));
    }
    c.handle_input(wire.as_bytes(), now);
    assert!(matches!(closed_with(&mut c), Some(Error::Protocol(_))));
}

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
}

#[test]
fn random_bytes_never_panic() {
    let now = Instant::now();
    let alphabet =
        b"ActionID: EventList:start Complete Response Success Error Goodbye\r\n\r\n::\0\xff";
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    for round in 0..3000 {
        let mut config = Config::new("lab", "x");
        if round % 2 == 0 {
            config.auth = ami::Auth::Plain;
        }
        config.limits.max_line = 64;
        config.limits.max_message = 256;
        config.limits.max_fields = 8;
        config.limits.max_list_items = 4;
        let mut c = Client::new(config);
        let mut t = now;
        if round % 3 != 0 {
            c.handle_input(b"Asterisk Call Manager/11.0.0\r\n", t);
        }
        let chunks = 1 + rng.next() % 8;
        for _ in 0..chunks {
            let len = (rng.next() % 200) as usize;
            let data: Vec<u8> = (0..len)
                .map(|_| {
                    let r = rng.next();
                    if r.is_multiple_of(4) {
                        r as u8
                    } else {
                        alphabet[(r as usize >> 8) % alphabet.len()]
                    }
                })
                .collect();
            c.handle_input(&data, t);
            if rng.next().is_multiple_of(3) {
                let _ = c.send_action(ami::Action::extension_state_list(), t);
            }
            t += std::time::Duration::from_millis(rng.next() % 30_000);
            c.handle_timeout(t);
            while c.poll_transmit().is_some() {}
            while c.poll_event().is_some() {}
            let _ = c.poll_timeout();
        }
        c.handle_eof();
        while c.poll_event().is_some() {}
        assert!(c.is_closed());
        assert_eq!(c.poll_timeout(), None);
    }
}
