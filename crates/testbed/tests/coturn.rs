//! coturn started by the testbed answers STUN Binding requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::time::Duration;

use testbed::Coturn;

/// A hand-made RFC 5389 Binding request: type 0x0001, length 0, magic cookie,
/// 12-byte transaction id.
fn binding_request(id: &[u8; 12]) -> [u8; 20] {
    let mut req = [0u8; 20];
    req[0..2].copy_from_slice(&[0x00, 0x01]);
    req[4..8].copy_from_slice(&[0x21, 0x12, 0xA4, 0x42]);
    req[8..20].copy_from_slice(id);
    req
}

/// The XOR-MAPPED-ADDRESS (IPv4) of a Binding success response.
fn xor_mapped_v4(resp: &[u8]) -> Option<SocketAddr> {
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

#[test]
#[ignore = "real peer: needs coturn (scripts/install-peers.sh); run by scripts/test-all"]
fn coturn_answers_a_binding_request_with_our_address() {
    let mut stun = Coturn::start().unwrap();
    let addr = stun.addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 3478, "must not use the well-known port");

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let id = *b"testbed-stun";
    sock.send_to(&binding_request(&id), addr).unwrap();
    let mut buf = [0u8; 1500];
    let (len, from) = sock.recv_from(&mut buf).unwrap();
    let resp = &buf[..len];
    assert_eq!(from, addr);
    assert_eq!(&resp[0..2], &[0x01, 0x01], "Binding success response");
    assert_eq!(&resp[8..20], &id, "same transaction id");
    assert_eq!(xor_mapped_v4(resp), Some(sock.local_addr().unwrap()));

    stun.stop();
    assert!(stun.pid().is_none());
    UdpSocket::bind(addr).expect("port released after stop");
}

#[test]
#[ignore = "real peer: needs coturn (scripts/install-peers.sh); run by scripts/test-all"]
fn two_coturns_run_in_parallel() {
    let a = Coturn::start().unwrap();
    let b = Coturn::start().unwrap();
    assert_ne!(a.addr(), b.addr());
}
