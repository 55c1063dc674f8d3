//! coturn started by the testbed answers STUN Binding requests.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::UdpSocket;

use common::{binding_request, xor_mapped_v4};
use std::time::Duration;

use testbed::Coturn;

#[test]
#[ignore = "real peer: needs coturn (scripts/install-peers.sh); run by scripts/test-all"]
fn coturn_answers_a_binding_request_with_our_address() {
    let mut stun = Coturn::start().unwrap();
    let addr = stun.addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 3478, "must not use the well-known port");

    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    // Generous for a loaded machine; the answer comes at once.
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
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
