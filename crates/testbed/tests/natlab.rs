//! The NAT lab: namespaces created and removed, STUN and SIP through the NAT.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::net::{SocketAddr, UdpSocket};

use common::{binding_request, xor_mapped_v4};
use std::path::Path;
use std::time::Duration;

use testbed::{KamailioOptions, NatLab};

fn skip_unless_available() -> bool {
    match NatLab::check() {
        Ok(()) => false,
        Err(e) => {
            println!("SKIPPED: NAT lab unavailable here: {e}");
            true
        }
    }
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

#[test]
#[ignore = "real peer: needs root, iproute2, nftables (scripts/install-peers.sh); run by scripts/test-all"]
fn creates_and_removes_its_namespaces() {
    if skip_unless_available() {
        return;
    }
    let nat = NatLab::create().unwrap();
    let names = [
        nat.inside_ns().to_owned(),
        nat.nat_ns().to_owned(),
        nat.outside_ns().to_owned(),
    ];
    for n in &names {
        assert!(n.contains(&std::process::id().to_string()), "{n}");
        assert!(netns_exists(n), "{n} missing");
    }
    // the documentation addresses exist only inside the namespaces
    assert!(UdpSocket::bind((nat.inside_ip(), 0)).is_err());
    assert!(UdpSocket::bind((nat.public_ip(), 0)).is_err());
    let inside = nat.bind_udp_inside(0).unwrap();
    assert_eq!(inside.local_addr().unwrap().ip(), nat.inside_ip());
    // and the outside has no route back to the inside
    let out = nat
        .outside_command("ip")
        .args(["route", "get", &nat.inside_ip().to_string()])
        .output()
        .unwrap();
    assert!(!out.status.success(), "outside must not reach the inside");
    drop(inside);
    drop(nat);
    for n in &names {
        assert!(!netns_exists(n), "{n} left behind");
    }
}

#[test]
#[ignore = "real peer: needs root, iproute2, nftables, coturn (scripts/install-peers.sh); run by scripts/test-all"]
fn stun_from_inside_sees_the_public_address() {
    if skip_unless_available() {
        return;
    }
    let nat = NatLab::create().unwrap();
    let stun = nat.start_coturn().unwrap();
    assert_eq!(stun.addr(), SocketAddr::new(nat.outside_ip(), 3478));
    let sock = nat.bind_udp_inside(0).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    sock.send_to(&binding_request(b"natlab-stun!"), stun.addr())
        .unwrap();
    let mut buf = [0u8; 1500];
    let (len, _) = sock.recv_from(&mut buf).unwrap();
    let mapped = xor_mapped_v4(&buf[..len]).unwrap();
    let local = sock.local_addr().unwrap();
    assert_eq!(mapped.ip(), nat.public_ip(), "mapped address is the NAT's");
    assert_eq!(mapped.port(), local.port(), "masquerade keeps the port");
}

#[test]
#[ignore = "real peer: needs root, iproute2, nftables, kamailio (scripts/install-peers.sh); run by scripts/test-all"]
fn kamailio_outside_answers_options_through_the_nat() {
    if skip_unless_available() {
        return;
    }
    let nat = NatLab::create().unwrap();
    let pbx = nat
        .start_kamailio(KamailioOptions::default().with_nat())
        .unwrap();
    assert_eq!(pbx.sip_addr(), SocketAddr::new(nat.outside_ip(), 5060));
    assert_eq!(pbx.domain(), nat.outside_ip().to_string());
    let sock = nat.bind_udp_inside(0).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    let host = nat.outside_ip();
    let msg = format!(
        "OPTIONS sip:{host}:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-natlab;rport\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@{host}>;tag=1\r\nTo: <sip:{host}:5060>\r\n\
         Call-ID: natlab-options@{host}\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    );
    sock.send_to(msg.as_bytes(), pbx.sip_addr()).unwrap();
    let mut buf = [0u8; 4096];
    let (len, _) = sock.recv_from(&mut buf).unwrap();
    let resp = String::from_utf8_lossy(&buf[..len]);
    assert!(resp.starts_with("SIP/2.0 200"), "{resp}");
    // Kamailio saw the NAT's public address as the source
    assert!(
        resp.contains(&format!("received={}", nat.public_ip())),
        "{resp}"
    );
}
