//! Hand-made STUN bytes for checking the STUN peers without the project's own
//! STUN crate (the testbed must not depend on what it tests).
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};

/// A hand-made RFC 5389 Binding request: type 0x0001, length 0, magic cookie,
/// 12-byte transaction id.
pub fn binding_request(id: &[u8; 12]) -> [u8; 20] {
    let mut req = [0u8; 20];
    req[0..2].copy_from_slice(&[0x00, 0x01]);
    req[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    req[8..20].copy_from_slice(id);
    req
}

/// The XOR-MAPPED-ADDRESS (IPv4) of a Binding success response.
pub fn xor_mapped_v4(resp: &[u8]) -> Option<SocketAddr> {
    let mut at = 20;
    while at + 4 <= resp.len() {
        let kind = u16::from_be_bytes([resp[at], resp[at + 1]]);
        let len = usize::from(u16::from_be_bytes([resp[at + 2], resp[at + 3]]));
        let value = resp.get(at + 4..at + 4 + len)?;
        if kind == 0x0020 && value.get(1) == Some(&0x01) {
            let port = u16::from_be_bytes([value[2], value[3]]) ^ 0x2112;
            let ip: [u8; 4] = std::array::from_fn(|i| value[4 + i] ^ [0x21, 0x12, 0xA4, 0x42][i]);
            return Some(SocketAddr::new(IpAddr::from(ip), port));
        }
        at += 4 + len.div_ceil(4) * 4;
    }
    None
}
