//! Through a real NAT: network namespaces with nftables masquerade
//! (`testbed::NatLab`), the SIP socket inside, coturn and Kamailio outside.
//!
//! Skipped, with a message saying so, only where network namespaces cannot be
//! created (not root, no `ip`/`nft`).
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::process::Command;
use std::time::{Duration, Instant};

use stun_lite::{query_on, BindingClient, ClientConfig, Discovery, Event, Handled, Ignored};
use testbed::{KamailioOptions, NatLab};
use tokio::net::UdpSocket;

/// Deadline of an answer from a peer: generous for a loaded machine; a query
/// or a wait ends as soon as the answer is there.
const PATIENCE: Duration = Duration::from_secs(30);

const SIP_PORT: u16 = 5060;

fn lab_or_skip(test: &str) -> Option<NatLab> {
    if let Err(reason) = NatLab::check() {
        println!("SKIPPED {test}: network namespaces cannot be created here: {reason}");
        return None;
    }
    Some(NatLab::create().expect("creating the NAT namespaces"))
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// A UDP socket inside the NAT (bound in the inside namespace), for tokio.
fn socket_inside(lab: &NatLab, port: u16) -> UdpSocket {
    let socket = lab.bind_udp_inside(port).unwrap();
    socket.set_nonblocking(true).unwrap();
    UdpSocket::from_std(socket).unwrap()
}

/// `received` and `rport` of the top Via of a SIP response: where the PBX saw
/// the request come from.
fn via_source(response: &str) -> SocketAddr {
    let via = response
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("via:"))
        .expect("a Via header");
    let param = |name: &str| {
        via.split(';')
            .find_map(|p| p.trim().strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {via}"))
            .trim_end_matches(|c: char| !c.is_ascii_alphanumeric())
            .to_owned()
    };
    SocketAddr::new(
        param("received=").parse().unwrap(),
        param("rport=").parse().unwrap(),
    )
}

#[test]
#[ignore = "real peer: needs coturn, Kamailio, nftables and root for network namespaces (scripts/install-peers.sh); run by scripts/test-all"]
fn the_sip_socket_learns_the_mapping_the_pbx_sees() {
    let Some(lab) = lab_or_skip("the_sip_socket_learns_the_mapping_the_pbx_sees") else {
        return;
    };
    let stun = lab.start_coturn().unwrap();
    let pbx = lab.start_kamailio(KamailioOptions::default()).unwrap();
    let public_sip = SocketAddr::new(lab.public_ip(), SIP_PORT);
    runtime().block_on(async {
        let sip = socket_inside(&lab, SIP_PORT);
        let found = query_on(&sip, &[stun.addr()], PATIENCE).await.unwrap();
        println!(
            "SIP socket {} is {} outside",
            sip.local_addr().unwrap(),
            found.public
        );
        assert_eq!(found.server, stun.addr());
        assert_ne!(
            found.public.ip(),
            lab.inside_ip(),
            "the private address leaked"
        );
        // Masquerade keeps a free source port.
        assert_eq!(found.public, public_sip);

        // The PBX sees SIP from that very address (Via received/rport).
        let options = format!(
            "OPTIONS sip:{pbx_addr} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {local};branch=z9hG4bK-stunlite-nat;rport\r\n\
             Max-Forwards: 70\r\n\
             From: <sip:blf@{pbx_ip}>;tag=stunlite\r\n\
             To: <sip:{pbx_addr}>\r\n\
             Call-ID: stunlite-nat@{local_ip}\r\n\
             CSeq: 1 OPTIONS\r\n\
             Content-Length: 0\r\n\r\n",
            pbx_addr = pbx.sip_addr(),
            pbx_ip = pbx.sip_addr().ip(),
            local = sip.local_addr().unwrap(),
            local_ip = lab.inside_ip(),
        );
        sip.send_to(options.as_bytes(), pbx.sip_addr())
            .await
            .unwrap();
        let mut buf = vec![0u8; 65_535];
        let (len, from) = tokio::time::timeout(PATIENCE, sip.recv_from(&mut buf))
            .await
            .expect("Kamailio answers OPTIONS through the NAT")
            .unwrap();
        let response = String::from_utf8_lossy(&buf[..len]).into_owned();
        assert_eq!(from, pbx.sip_addr());
        assert!(response.starts_with("SIP/2.0 200"), "{response}");
        assert_eq!(via_source(&response), found.public, "{response}");

        // Another socket of the same host gets another mapping: a query from a
        // separate socket would give the PBX a port that does not reach SIP.
        let other = socket_inside(&lab, 0);
        let elsewhere = query_on(&other, &[stun.addr()], PATIENCE).await.unwrap();
        assert_eq!(elsewhere.public.ip(), lab.public_ip());
        assert_eq!(elsewhere.public.port(), other.local_addr().unwrap().port());
        assert_ne!(elsewhere.public, found.public);
    });
}

/// Drives `client` on `socket` until it reports an event; SIP is not expected.
async fn next_event(client: &mut BindingClient, socket: &UdpSocket, guard: Duration) -> Event {
    let give_up = Instant::now() + guard;
    let mut buf = vec![0u8; 65_535];
    loop {
        assert!(Instant::now() < give_up, "no STUN event within {guard:?}");
        while let Some(t) = client.poll_transmit(Instant::now()) {
            // While the NAT has no public address the send may fail; the
            // retransmission timer tries again.
            let _ = socket.send_to(&t.payload, t.destination).await;
        }
        if let Some(event) = client.poll_event() {
            return event;
        }
        let deadline = client.poll_timeout().expect("a timer while re-discovering");
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                let (len, from) = r.unwrap();
                let handled = client.handle_datagram(from, &buf[..len], Instant::now());
                // A late duplicate answer may be ignored; nothing else comes.
                assert!(
                    matches!(handled, Handled::Mapped(_) | Handled::Ignored(Ignored::UnknownTransaction)),
                    "{handled:?}"
                );
            }
            () = tokio::time::sleep_until(deadline.into()) => client.handle_timeout(Instant::now()),
        }
    }
}

fn ip_in(ns: &str, args: &[&str]) {
    let out = Command::new("ip")
        .arg("-n")
        .arg(ns)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ip -n {ns} {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
#[ignore = "real peer: needs coturn, nftables and root for network namespaces (scripts/install-peers.sh); run by scripts/test-all"]
fn a_new_public_address_of_the_nat_is_a_changed_event() {
    let Some(lab) = lab_or_skip("a_new_public_address_of_the_nat_is_a_changed_event") else {
        return;
    };
    let stun = lab.start_coturn().unwrap();
    runtime().block_on(async {
        let sip = socket_inside(&lab, SIP_PORT);
        let config =
            ClientConfig::default().with_refresh_interval(Some(Duration::from_millis(300)));
        let mut client = BindingClient::new(vec![stun.addr()], config, Instant::now());
        let first = next_event(&mut client, &sip, PATIENCE).await;
        let old = SocketAddr::new(lab.public_ip(), SIP_PORT);
        assert_eq!(
            first,
            Event::Discovered(Discovery {
                public: old,
                server: stun.addr()
            })
        );

        // The NAT's public address changes (like a new DHCP lease on the WAN):
        // masquerade drops its bindings with the old address.
        let new_ip = "203.0.113.2";
        ip_in(
            lab.nat_ns(),
            &[
                "addr",
                "del",
                &format!("{}/24", lab.public_ip()),
                "dev",
                "wan0",
            ],
        );
        ip_in(
            lab.nat_ns(),
            &["addr", "add", &format!("{new_ip}/24"), "dev", "wan0"],
        );

        let changed = next_event(&mut client, &sip, PATIENCE).await;
        let new = SocketAddr::new(new_ip.parse().unwrap(), SIP_PORT);
        assert_eq!(
            changed,
            Event::Changed {
                old,
                new,
                server: stun.addr()
            }
        );
        assert_eq!(client.public_addr(), Some(new));
    });
}
