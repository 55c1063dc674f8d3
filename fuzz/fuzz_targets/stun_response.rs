#![no_main]
//! The STUN response decoder and the Binding client must never panic on any
//! datagram, and a datagram must never make the client lose its timer.
//!
//! Each input is tried twice: as the raw datagram, and as the attributes of a
//! Binding response with a correct header (cookie, length, the transaction id
//! of the client's request), so the attribute decoders are reached at once.
use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use stun_lite::{BindingClient, ClientConfig, Handled, MAGIC_COOKIE};

fn through_client(datagram: &[u8], patch_tid: bool) {
    let server = "192.0.2.1:3478".parse().unwrap();
    let t0 = Instant::now();
    let mut client = BindingClient::with_seed(vec![server], ClientConfig::default(), t0, 1);
    let request = client.poll_transmit(t0).unwrap();
    let mut datagram = datagram.to_vec();
    if patch_tid {
        if let (Some(tid), Some(slot)) = (request.payload.get(8..20), datagram.get_mut(8..20)) {
            slot.copy_from_slice(tid);
        }
    }
    let now = t0 + Duration::from_millis(1);
    match client.handle_datagram(server, &datagram, now) {
        Handled::Mapped(addr) => assert_eq!(client.public_addr(), Some(addr)),
        _ => assert!(client.public_addr().is_none()),
    }
    assert!(client.poll_timeout().is_some());
}

fuzz_target!(|data: &[u8]| {
    let _ = stun_lite::is_stun(data);
    let _ = stun_lite::decode_response(data);
    through_client(data, true);

    let Some((&selector, attributes)) = data.split_first() else {
        return;
    };
    let message_type: u16 = match selector % 4 {
        0 | 1 => 0x0101,
        2 => 0x0111,
        _ => u16::from(selector) << 4,
    };
    let len = u16::try_from(attributes.len()).unwrap_or(u16::MAX);
    let mut message = Vec::with_capacity(20 + attributes.len());
    message.extend_from_slice(&message_type.to_be_bytes());
    message.extend_from_slice(&len.to_be_bytes());
    message.extend_from_slice(&MAGIC_COOKIE.to_be_bytes());
    message.extend_from_slice(&[0; 12]);
    message.extend_from_slice(attributes);
    let _ = stun_lite::decode_response(&message);
    through_client(&message, true);
});
