//! The tokio driver against a scripted PBX on a loopback UDP socket.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sip_ua::driver::spawn;
use sip_ua::{Event, Message, UaConfig};
use tokio::net::UdpSocket;

async fn recv(pbx: &UdpSocket) -> (Message, std::net::SocketAddr) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (n, from) = tokio::time::timeout(Duration::from_secs(5), pbx.recv_from(&mut buf))
            .await
            .expect("a request from the user agent")
            .unwrap();
        if buf[..n].iter().all(|b| *b == b'\r' || *b == b'\n') {
            continue;
        }
        return (Message::parse(&buf[..n]).unwrap(), from);
    }
}

fn ok(req: &Message, expires: u32) -> Vec<u8> {
    format!(
        "SIP/2.0 200 OK\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=p\r\nCall-ID: {}\r\nCSeq: {}\r\nExpires: {expires}\r\nContent-Length: 0\r\n\r\n",
        req.headers.get("Via").unwrap(),
        req.headers.get("From").unwrap(),
        req.headers.get("To").unwrap(),
        req.call_id().unwrap(),
        req.headers.get("CSeq").unwrap()
    )
    .into_bytes()
}

#[tokio::test]
async fn registers_and_unregisters_on_shutdown() {
    let pbx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let cfg = UaConfig::new(pbx.local_addr().unwrap().to_string(), "blf", "pw");
    let (ua, mut events) = spawn(cfg, vec![], None).await.unwrap();
    // Loopback PBX → loopback socket by default.
    assert!(ua.local_addr().ip().is_loopback());
    let (reg, from) = recv(&pbx).await;
    assert_eq!(reg.method(), Some("REGISTER"));
    assert_eq!(from, ua.local_addr());
    assert!(reg
        .headers
        .get("Contact")
        .unwrap()
        .contains(&ua.local_addr().to_string()));
    pbx.send_to(&ok(&reg, 300), from).await.unwrap();
    let ev = tokio::time::timeout(Duration::from_secs(5), events.recv())
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(ev, Event::Registered { expires: 300, .. }),
        "{ev:?}"
    );
    let status = ua.status().await.unwrap();
    assert!(status.registration.registered);
    let shutdown = tokio::spawn(ua.shutdown());
    let (unreg, from) = recv(&pbx).await;
    assert_eq!(unreg.headers.get("Expires"), Some("0"));
    pbx.send_to(&ok(&unreg, 0), from).await.unwrap();
    tokio::time::timeout(Duration::from_secs(5), shutdown)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    let mut rest = Vec::new();
    while let Some(e) = events.recv().await {
        rest.push(e);
    }
    assert_eq!(rest, vec![Event::Unregistered, Event::ShutDown]);
}
