//! SIP over TLS: the forms the core writes (sans-IO), and the driver against
//! a scripted PBX behind a rustls acceptor on 127.0.0.1 (certificates made by
//! the test): REGISTER, SUBSCRIBE and a NOTIFY back on the same connection,
//! reconnect and re-REGISTER after the PBX drops it, and each refused
//! certificate told apart.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use sip_proto::framing::{Frame, StreamFramer};
use sip_proto::message::StartLine;
use sip_ua::{
    driver, Error, Event, Message, Subscription, TlsConfig, TlsError, Transport, UaConfig,
    UserAgent,
};
use testbed::{ServerCertOptions, TestPki};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Guard on every wait (the waits end on the event itself).
const GUARD: Duration = Duration::from_secs(20);

fn request_uri(m: &Message) -> &str {
    match &m.start {
        StartLine::Request { uri, .. } => uri,
        StartLine::Response { .. } => panic!("not a request"),
    }
}

#[test]
fn tls_forms_in_via_contact_and_request_uris_and_refresh_after_a_reset() {
    let now = Instant::now();
    let pbx: SocketAddr = "192.0.2.10:5061".parse().unwrap();
    let local: SocketAddr = "192.0.2.20:40000".parse().unwrap();
    let mut cfg = UaConfig::new("pbx.example", "blf", "secret");
    cfg.transport = Transport::Tls;
    cfg.keepalive_interval = Some(Duration::from_secs(30));
    assert_eq!(cfg.server_port(), 5061);
    let mut ua = UserAgent::new(cfg, pbx, local, vec![Subscription::dialog("1001")], now);
    ua.handle_timeout(now);
    let reg = Message::parse(&ua.poll_transmit().unwrap().payload).unwrap();
    assert_eq!(request_uri(&reg), "sip:pbx.example;transport=tls");
    assert!(reg
        .top_via()
        .unwrap()
        .starts_with("SIP/2.0/TLS 192.0.2.20:40000;"));
    assert_eq!(
        reg.headers.get("Contact"),
        Some("<sip:blf@192.0.2.20:40000;transport=tls>")
    );
    ua.handle_input(pbx, &ok(&reg, &[("Expires", "300")]), now);
    assert!(matches!(ua.poll_event(), Some(Event::Registered { .. })));
    ua.handle_timeout(now);
    let sub = Message::parse(&ua.poll_transmit().unwrap().payload).unwrap();
    assert_eq!(request_uri(&sub), "sip:1001@pbx.example;transport=tls");
    assert!(sub.top_via().unwrap().starts_with("SIP/2.0/TLS "));
    assert!(sub
        .headers
        .get("Contact")
        .unwrap()
        .ends_with(";transport=tls>"));
    ua.handle_input(pbx, &ok(&sub, &[("Expires", "300")]), now);
    // Reliable: no retransmission of either before the refresh.
    ua.handle_timeout(now + Duration::from_secs(20));
    assert!(ua.poll_transmit().is_none());
    // A keep-alive nobody answers: the flow is dead, the driver reconnects
    // (from another port) and everything is refreshed over the new connection.
    let ping_at = now + Duration::from_secs(30);
    ua.handle_timeout(ping_at);
    assert_eq!(ua.poll_transmit().unwrap().payload, b"\r\n\r\n");
    ua.handle_timeout(ping_at + Duration::from_secs(10));
    assert!(ua.take_transport_failure());
    let later = ping_at + Duration::from_secs(12);
    ua.set_local_addr("192.0.2.20:40002".parse().unwrap(), later);
    ua.handle_transport_reset(later);
    ua.handle_timeout(later);
    let mut methods = Vec::new();
    while let Some(t) = ua.poll_transmit() {
        let m = Message::parse(&t.payload).unwrap();
        assert!(m
            .top_via()
            .unwrap()
            .starts_with("SIP/2.0/TLS 192.0.2.20:40002;"));
        if let Some(c) = m.headers.get("Contact") {
            assert!(c.contains("@192.0.2.20:40002;transport=tls"), "{c}");
        }
        methods.push(m.method().unwrap().to_string());
    }
    assert!(methods.iter().any(|m| m == "REGISTER"), "{methods:?}");
}

/// A `200 OK` to `req` (with a To tag and a Contact for SUBSCRIBEs).
fn ok(req: &Message, extra: &[(&str, &str)]) -> Vec<u8> {
    let mut s = "SIP/2.0 200 OK\r\n".to_string();
    for v in req.headers.get_all("Via") {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    let h = |n| req.headers.get(n).unwrap();
    s.push_str(&format!(
        "From: {}\r\nTo: {};tag=pbxtag\r\nCall-ID: {}\r\nCSeq: {}\r\n",
        h("From"),
        h("To"),
        req.call_id().unwrap(),
        h("CSeq")
    ));
    if req.method() == Some("SUBSCRIBE") {
        s.push_str("Contact: <sip:127.0.0.1;transport=tls>\r\n");
    }
    for (n, v) in extra {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s.into_bytes()
}

/// A NOTIFY in the dialog a SUBSCRIBE made, to the Contact it gave.
fn notify(sub: &Message, body: &str) -> Vec<u8> {
    let contact = sub.headers.get("Contact").unwrap();
    let target = contact.trim_start_matches('<').trim_end_matches('>');
    format!(
        "NOTIFY {target} SIP/2.0\r\nVia: SIP/2.0/TLS 127.0.0.1:5061;branch=z9hG4bKn1\r\n\
         From: {};tag=pbxtag\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: 1 NOTIFY\r\n\
         Contact: <sip:127.0.0.1;transport=tls>\r\nEvent: dialog\r\n\
         Subscription-State: active;expires=300\r\n\
         Content-Type: application/dialog-info+xml\r\nContent-Length: {}\r\n\r\n{body}",
        sub.headers.get("To").unwrap(),
        sub.headers.get("From").unwrap(),
        sub.call_id().unwrap(),
        body.len()
    )
    .into_bytes()
}

struct Pbx {
    listener: TcpListener,
    acceptor: TlsAcceptor,
}

impl Pbx {
    async fn start(pki: &TestPki) -> Pbx {
        let certs = CertificateDer::pem_file_iter(pki.cert_file())
            .unwrap()
            .collect::<Result<Vec<_>, _>>()
            .unwrap();
        let key = PrivateKeyDer::from_pem_file(pki.key_file()).unwrap();
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
        Pbx {
            listener: TcpListener::bind("127.0.0.1:0").await.unwrap(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        }
    }

    fn addr(&self) -> SocketAddr {
        self.listener.local_addr().unwrap()
    }

    async fn accept(&self) -> Conn {
        let (tcp, peer) = tokio::time::timeout(GUARD, self.listener.accept())
            .await
            .expect("no connection")
            .unwrap();
        let stream = self.acceptor.accept(tcp).await.unwrap();
        Conn {
            stream,
            peer,
            framer: StreamFramer::new(),
        }
    }

    /// Accepts and fails every handshake, until dropped.
    fn refuse_all(self) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async move {
            while let Ok((tcp, _)) = self.listener.accept().await {
                let _ = self.acceptor.accept(tcp).await;
            }
        })
    }
}

struct Conn {
    stream: TlsStream<TcpStream>,
    peer: SocketAddr,
    framer: StreamFramer,
}

impl Conn {
    async fn next_request(&mut self) -> Message {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            while let Some(frame) = self.framer.next_frame().unwrap() {
                if let Frame::Message(m) = frame {
                    return Message::parse(&m).unwrap();
                }
            }
            let n = tokio::time::timeout(GUARD, self.stream.read(&mut buf))
                .await
                .expect("no request")
                .unwrap();
            assert!(n > 0, "the client closed the connection");
            self.framer.push(&buf[..n]);
        }
    }

    async fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).await.unwrap();
        self.stream.flush().await.unwrap();
    }
}

fn config(pbx: SocketAddr, tls: TlsConfig) -> UaConfig {
    let mut c = UaConfig::new(pbx.to_string(), "blf", "blfsecret");
    c.transport = Transport::Tls;
    c.keepalive_interval = None;
    c.retry_min = Duration::from_millis(200);
    c.tls = tls;
    c
}

fn trusting(pki: &TestPki) -> TlsConfig {
    TlsConfig {
        ca_file: Some(pki.ca_file()),
        ..TlsConfig::default()
    }
}

async fn next_event(
    events: &mut sip_ua::driver::EventReceiver,
    want: impl Fn(&Event) -> bool,
) -> Event {
    tokio::time::timeout(GUARD, async {
        loop {
            let e = events.recv().await.expect("driver stopped");
            if want(&e) {
                return e;
            }
        }
    })
    .await
    .expect("event not seen")
}

#[tokio::test]
async fn register_subscribe_notify_on_the_same_connection_then_reconnect() {
    let pki = TestPki::new(ServerCertOptions::default()).unwrap();
    let pbx = Pbx::start(&pki).await;
    let cfg = config(pbx.addr(), trusting(&pki));
    let spawned = driver::spawn(cfg, vec![Subscription::dialog("1001")], None);
    let (accepted, spawned) = tokio::join!(pbx.accept(), spawned);
    let (ua, mut events) = spawned.unwrap();
    let mut conn = accepted;
    assert_eq!(conn.peer, ua.local_addr());

    let reg = conn.next_request().await;
    assert_eq!(reg.method(), Some("REGISTER"));
    assert!(reg.top_via().unwrap().starts_with("SIP/2.0/TLS "));
    let contact = format!("<sip:blf@{};transport=tls>", ua.local_addr());
    assert_eq!(reg.headers.get("Contact"), Some(contact.as_str()));
    conn.send(&ok(&reg, &[("Expires", "300")])).await;
    next_event(&mut events, |e| matches!(e, Event::Registered { .. })).await;

    let sub = conn.next_request().await;
    assert_eq!(sub.method(), Some("SUBSCRIBE"));
    conn.send(&ok(&sub, &[("Expires", "300")])).await;
    // The PBX reaches the subscriber through the connection it opened.
    conn.send(&notify(&sub, "<dialog-info/>")).await;
    let n = next_event(&mut events, |e| matches!(e, Event::Notify(_))).await;
    let Event::Notify(n) = n else { unreachable!() };
    assert_eq!(n.user, "1001");
    let answer = conn.next_request().await;
    assert!(matches!(
        answer.start,
        StartLine::Response { status: 200, .. }
    ));

    // The PBX goes away: a new connection, a new REGISTER over it.
    drop(conn);
    let mut conn = pbx.accept().await;
    let reg = conn.next_request().await;
    assert_eq!(reg.method(), Some("REGISTER"));
    let contact = format!("<sip:blf@{};transport=tls>", conn.peer);
    assert_eq!(reg.headers.get("Contact"), Some(contact.as_str()));
    conn.send(&ok(&reg, &[("Expires", "300")])).await;
    next_event(&mut events, |e| matches!(e, Event::Registered { .. })).await;
    let sub = conn.next_request().await;
    assert_eq!(sub.method(), Some("SUBSCRIBE"));
    drop(ua);
}

async fn refused(pki: &TestPki, tls: TlsConfig) -> Error {
    let pbx = Pbx::start(pki).await;
    let cfg = config(pbx.addr(), tls);
    let task = pbx.refuse_all();
    let r = driver::spawn(cfg, vec![], None).await;
    task.abort();
    match r {
        Ok(_) => panic!("the connection was accepted"),
        Err(e) => e,
    }
}

#[tokio::test]
async fn each_refused_certificate_is_named() {
    let pki = TestPki::new(ServerCertOptions::default()).unwrap();
    let unknown = refused(
        &pki,
        TlsConfig {
            ca_file: Some(pki.other_ca_file()),
            ..TlsConfig::default()
        },
    )
    .await;
    assert!(
        matches!(unknown, Error::Tls(TlsError::UnknownCa { .. })),
        "{unknown:?}"
    );
    let wrong_name = refused(
        &pki,
        TlsConfig {
            server_name: Some("wrong.example".into()),
            ..trusting(&pki)
        },
    )
    .await;
    assert!(
        matches!(&wrong_name, Error::Tls(TlsError::NameMismatch { name, .. }) if name == "wrong.example"),
        "{wrong_name:?}"
    );
    let old = TestPki::new(ServerCertOptions {
        expired: true,
        ..ServerCertOptions::default()
    })
    .unwrap();
    let expired = refused(&old, trusting(&old)).await;
    assert!(
        matches!(expired, Error::Tls(TlsError::Expired { .. })),
        "{expired:?}"
    );
}

#[tokio::test]
async fn insecure_skip_verify_accepts_an_unknown_ca() {
    let pki = TestPki::new(ServerCertOptions::default()).unwrap();
    let pbx = Pbx::start(&pki).await;
    let cfg = config(
        pbx.addr(),
        TlsConfig {
            ca_file: Some(pki.other_ca_file()),
            insecure_skip_verify: true,
            ..TlsConfig::default()
        },
    );
    let (accepted, spawned) = tokio::join!(pbx.accept(), driver::spawn(cfg, vec![], None));
    let (ua, _events) = spawned.unwrap();
    let mut conn = accepted;
    assert_eq!(conn.next_request().await.method(), Some("REGISTER"));
    drop(ua);
}
