//! Against a real STUN server: coturn on 127.0.0.1 (started by `testbed`).
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use stun_lite::{query, query_on, BindingClient, ClientConfig, Event, Handled};
use tokio::net::UdpSocket;

/// Deadline of an answer from a peer: generous for a loaded machine; a query
/// or a wait ends as soon as the answer is there.
const PATIENCE: Duration = Duration::from_secs(30);

const IGNORE: &str = "real peer: needs coturn (scripts/install-peers.sh); run by scripts/test-all";

fn coturn() -> testbed::Coturn {
    testbed::Coturn::start().unwrap_or_else(|e| panic!("{IGNORE}: {e}"))
}

#[tokio::test]
#[ignore = "real peer: needs coturn (scripts/install-peers.sh); run by scripts/test-all"]
async fn binding_from_a_standalone_socket() {
    let stun = coturn();
    let socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let found = query_on(&socket, &[stun.addr()], PATIENCE).await.unwrap();
    assert_eq!(found.public, socket.local_addr().unwrap());
    assert_eq!(found.server, stun.addr());

    // The one-shot form, with the server as text, from a fresh socket.
    let found = query(&[stun.addr().to_string()], PATIENCE).await.unwrap();
    assert_eq!(found.server, stun.addr());
    assert_eq!(found.public.ip(), stun.addr().ip());
    assert_ne!(found.public.port(), 0);
}

/// The SIP socket runs the sans-IO client itself, as the SIP driver does, while
/// SIP flows in both directions on it; re-discovery runs every 200 ms.
#[tokio::test]
#[ignore = "real peer: needs coturn (scripts/install-peers.sh); run by scripts/test-all"]
async fn binding_on_the_sip_socket_while_sip_flows() {
    const SIP_IN: usize = 40;
    let stun = coturn();
    let sip_socket = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let sip_addr = sip_socket.local_addr().unwrap();
    let pbx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let pbx_addr = pbx.local_addr().unwrap();

    // The "PBX" sends NOTIFYs to the SIP socket and collects what comes back.
    let pbx_task = tokio::spawn(async move {
        let mut received = Vec::new();
        let mut buf = [0u8; 2048];
        for i in 0..SIP_IN {
            let notify = format!("NOTIFY sip:blf@{sip_addr} SIP/2.0\r\nCSeq: {i} NOTIFY\r\nContent-Length: 0\r\n\r\n");
            pbx.send_to(notify.as_bytes(), sip_addr).await.unwrap();
            let (len, _) = tokio::time::timeout(PATIENCE, pbx.recv_from(&mut buf))
                .await
                .expect("a 200 OK for every NOTIFY")
                .unwrap();
            received.push(buf[..len].to_vec());
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        received
    });

    let config = ClientConfig::default()
        .with_refresh_interval(Some(Duration::from_millis(200)))
        .with_retry_interval(None);
    let mut client = BindingClient::new(vec![stun.addr()], config, Instant::now());
    let mut sip_seen = Vec::new();
    let mut mapped = Vec::new();
    let mut events = Vec::new();
    let mut buf = vec![0u8; 65_535];
    let guard = Instant::now() + PATIENCE;
    while sip_seen.len() < SIP_IN || mapped.len() < 3 {
        assert!(
            Instant::now() < guard,
            "stuck: {} SIP, {} mapped",
            sip_seen.len(),
            mapped.len()
        );
        while let Some(t) = client.poll_transmit(Instant::now()) {
            sip_socket.send_to(&t.payload, t.destination).await.unwrap();
        }
        while let Some(e) = client.poll_event() {
            events.push(e);
        }
        let deadline = client.poll_timeout().expect("re-discovery keeps a timer");
        tokio::select! {
            r = sip_socket.recv_from(&mut buf) => {
                let (len, from) = r.unwrap();
                let data = &buf[..len];
                match client.handle_datagram(from, data, Instant::now()) {
                    Handled::NotStun => {
                        assert_eq!(from, pbx_addr);
                        assert!(data.starts_with(b"NOTIFY "));
                        sip_seen.push(data.to_vec());
                        sip_socket.send_to(b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n", from).await.unwrap();
                    }
                    Handled::Mapped(addr) => {
                        assert_eq!(from, stun.addr());
                        // coturn signs its answers: the FINGERPRINT was checked.
                        assert_eq!(data[len - 8..len - 4], [0x80, 0x28, 0x00, 0x04]);
                        mapped.push(addr);
                    }
                    other => panic!("coturn's answer not accepted: {other:?}"),
                }
            }
            () = tokio::time::sleep_until(deadline.into()) => client.handle_timeout(Instant::now()),
        }
    }
    let pbx_received = pbx_task.await.unwrap();
    assert_eq!(sip_seen.len(), SIP_IN);
    assert!(mapped.len() >= 3, "re-discovery ran");
    assert!(mapped.iter().all(|m| *m == sip_addr), "{mapped:?}");
    assert_eq!(
        events.first(),
        Some(&Event::Discovered(stun_lite::Discovery {
            public: sip_addr,
            server: stun.addr()
        }))
    );
    assert!(
        events
            .iter()
            .skip(1)
            .all(|e| !matches!(e, Event::Changed { .. } | Event::Discovered(_))),
        "an unchanged mapping is not an event: {events:?}"
    );
    // The PBX got exactly the SIP answers, no STUN.
    assert_eq!(pbx_received.len(), SIP_IN);
    assert!(pbx_received
        .iter()
        .all(|d| d.starts_with(b"SIP/2.0 200 OK") && !stun_lite::is_stun(d)));
    assert_eq!(client.public_addr(), Some(sip_addr));
}
