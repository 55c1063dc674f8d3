//! MESSAGE (RFC 3428) against a scripted PBX, in virtual time (no sockets, no
//! sleeps), and once through the tokio driver on a loopback UDP socket.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_proto::digest::parse_credentials;
use sip_proto::message::StartLine;
use sip_ua::{Error, Event, Message, MessageId, Transport, UaConfig, UserAgent};

const JSON: &str = "application/json";
const TO: &str = "sip:webphones@127.0.0.1";
const BODY: &str = r#"{"to":"all","type":"statusupdate","data":"1001"}"#;

fn pbx() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

struct Harness {
    ua: UserAgent,
    now: Instant,
    start: Instant,
}

impl Harness {
    /// A user agent that does not register (MESSAGE needs no registration).
    fn new(transport: Transport) -> Self {
        let mut cfg = UaConfig::new("127.0.0.1:5060", "blf", "blfsecret");
        cfg.keepalive_interval = None;
        cfg.register = false;
        cfg.transport = transport;
        let now = Instant::now();
        let mut ua = UserAgent::new(cfg, pbx(), "127.0.0.1:40000".parse().unwrap(), vec![], now);
        ua.handle_timeout(now);
        Self {
            ua,
            now,
            start: now,
        }
    }

    fn send(&mut self, ext: &str) -> MessageId {
        let body = format!(r#"{{"to":"all","type":"statusupdate","data":"{ext}"}}"#);
        self.ua
            .send_message(TO, JSON, body.into_bytes(), self.now)
            .unwrap()
    }

    /// Every MESSAGE the user agent wants to send now.
    fn messages(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(t) = self.ua.poll_transmit() {
            assert_eq!(t.destination, pbx());
            let m = Message::parse(&t.payload).unwrap();
            assert_eq!(m.method(), Some("MESSAGE"), "{m:#?}");
            out.push(m);
        }
        out
    }

    fn one(&mut self) -> Message {
        let mut m = self.messages();
        assert_eq!(m.len(), 1, "expected one MESSAGE, got {m:#?}");
        m.remove(0)
    }

    fn reply(&mut self, req: &Message, status: u16, extra: &[(&str, &str)]) {
        let mut s = format!("SIP/2.0 {status} Reason\r\n");
        for v in req.headers.get_all("Via") {
            s.push_str(&format!("Via: {v}\r\n"));
        }
        for h in ["From", "Call-ID", "CSeq"] {
            s.push_str(&format!("{h}: {}\r\n", req.headers.get(h).unwrap()));
        }
        s.push_str(&format!(
            "To: {};tag=wp\r\n",
            req.headers.get("To").unwrap()
        ));
        for (n, v) in extra {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        self.ua.handle_input(pbx(), s.as_bytes(), self.now);
    }

    fn challenge(&mut self, req: &Message, status: u16, nonce: &str) {
        let header = if status == 407 {
            "Proxy-Authenticate"
        } else {
            "WWW-Authenticate"
        };
        let value = format!("Digest realm=\"127.0.0.1\", nonce=\"{nonce}\", qop=\"auth\"");
        self.reply(req, status, &[(header, &value)]);
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ua.poll_event()).collect()
    }

    /// Advances virtual time to `t`, firing every timer on the way; the
    /// MESSAGEs sent meanwhile, with when (since the start).
    fn advance_to(&mut self, t: Instant) -> Vec<(Duration, Message)> {
        let mut sent = Vec::new();
        while let Some(next) = self.ua.poll_timeout() {
            if next > t {
                break;
            }
            self.now = next.max(self.now);
            self.ua.handle_timeout(self.now);
            for m in self.messages() {
                sent.push((self.now - self.start, m));
            }
        }
        self.now = self.now.max(t);
        sent
    }
}

fn uri(m: &Message) -> &str {
    match &m.start {
        StartLine::Request { uri, .. } => uri,
        StartLine::Response { .. } => panic!("not a request"),
    }
}

fn cseq(m: &Message) -> u32 {
    m.cseq().unwrap().0
}

fn delivered(id: MessageId) -> Event {
    Event::MessageDelivered {
        id,
        to: TO.into(),
        status: 200,
    }
}

fn failed(events: &[Event]) -> (Option<u16>, String) {
    match events {
        [Event::MessageFailed { status, reason, .. }] => (*status, reason.clone()),
        other => panic!("expected one MessageFailed, got {other:#?}"),
    }
}

#[test]
fn a_challenged_message_is_sent_again_with_credentials_and_a_new_cseq() {
    let mut h = Harness::new(Transport::Udp);
    let id = h.send("1001");
    let first = h.one();
    assert_eq!(uri(&first), TO, "Request-URI = recipient (RFC 3428 §4)");
    assert_eq!(first.headers.get("To"), Some("<sip:webphones@127.0.0.1>"));
    assert!(first.to_tag().is_none(), "outside any dialog");
    assert!(first
        .headers
        .get("From")
        .unwrap()
        .contains("sip:blf@127.0.0.1"));
    assert_eq!(first.headers.get("Content-Type"), Some(JSON));
    assert_eq!(first.body, BODY.as_bytes());
    assert!(first.headers.get("Contact").is_none());
    assert!(first.headers.get("Proxy-Authorization").is_none());

    h.challenge(&first, 407, "n1");
    let second = h.one();
    assert_eq!(second.call_id(), first.call_id());
    assert_eq!(cseq(&second), cseq(&first) + 1);
    assert_ne!(second.top_via(), first.top_via(), "a new transaction");
    let creds = parse_credentials(second.headers.get("Proxy-Authorization").unwrap()).unwrap();
    assert!(creds.verify("blfsecret", "MESSAGE", BODY.as_bytes()));
    assert!(h.events().is_empty());

    h.reply(&second, 200, &[]);
    assert_eq!(h.events(), vec![delivered(id)]);
    assert_eq!(h.ua.messages_in_flight(), 0);
    // A retransmitted 200 changes nothing.
    h.reply(&second, 200, &[]);
    assert!(h.events().is_empty());
}

#[test]
fn the_next_message_carries_the_accepted_credentials_in_a_new_call() {
    let mut h = Harness::new(Transport::Udp);
    let a = h.send("1001");
    let m = h.one();
    h.challenge(&m, 401, "n1");
    let m = h.one();
    assert!(
        m.headers.get("Authorization").is_some(),
        "401 → Authorization"
    );
    h.reply(&m, 202, &[]);
    assert!(matches!(h.events()[..], [Event::MessageDelivered { id, status: 202, .. }] if id == a));

    let b = h.send("1002");
    let next = h.one();
    assert_ne!(next.call_id(), m.call_id());
    let creds = parse_credentials(next.headers.get("Authorization").unwrap()).unwrap();
    assert!(creds.verify("blfsecret", "MESSAGE", next.body.as_slice()));
    // The server's nonce ran out meanwhile: answered once more.
    h.challenge(&next, 401, "n2");
    let again = h.one();
    h.reply(&again, 200, &[]);
    assert_eq!(h.events(), vec![delivered(b)]);
}

#[test]
fn a_second_challenge_is_a_failure_not_a_loop() {
    let mut h = Harness::new(Transport::Udp);
    h.send("1001");
    let m = h.one();
    h.challenge(&m, 407, "n1");
    let m = h.one();
    // A new nonce, so not "the same nonce again": still one round only.
    h.challenge(&m, 407, "n2");
    assert!(h.messages().is_empty(), "not sent a third time");
    let (status, reason) = failed(&h.events());
    assert_eq!(status, Some(407));
    assert!(reason.contains("password"), "{reason}");
    assert_eq!(h.ua.messages_in_flight(), 0);
}

#[test]
fn a_challenge_without_a_digest_is_a_failure() {
    let mut h = Harness::new(Transport::Udp);
    h.send("1001");
    let m = h.one();
    h.reply(&m, 401, &[("WWW-Authenticate", "Basic realm=\"x\"")]);
    assert!(h.messages().is_empty());
    assert_eq!(failed(&h.events()).0, Some(401));
}

#[test]
fn over_udp_it_retransmits_then_fails_with_408_after_64_t1() {
    let mut h = Harness::new(Transport::Udp);
    let id = h.send("1001");
    let first = h.one();
    let sent = h.advance_to(h.start + Duration::from_secs(40));
    let at: Vec<u64> = sent.iter().map(|(t, _)| t.as_millis() as u64).collect();
    // Timer E: 500 ms doubling up to T2 = 4 s (RFC 3261 §17.1.2.2).
    assert_eq!(
        at,
        [500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert!(sent.iter().all(|(_, m)| m.top_via() == first.top_via()));
    let events = h.events();
    assert!(
        matches!(&events[..], [Event::MessageFailed { id: i, status: Some(408), reason, .. }]
            if *i == id && reason.contains("time-out")),
        "{events:#?}"
    );
    assert_eq!(h.ua.poll_timeout(), None, "nothing left to do");
}

#[test]
fn over_tcp_nothing_is_retransmitted_and_timer_f_still_ends_it() {
    let mut h = Harness::new(Transport::Tcp);
    h.send("1001");
    h.one();
    assert!(h
        .advance_to(h.start + Duration::from_millis(31_999))
        .is_empty());
    assert!(h.events().is_empty());
    assert!(h.advance_to(h.start + Duration::from_secs(32)).is_empty());
    assert_eq!(failed(&h.events()).0, Some(408));
}

#[test]
fn a_provisional_answer_stops_the_retransmits_but_not_timer_f() {
    let mut h = Harness::new(Transport::Udp);
    h.send("1001");
    let m = h.one();
    h.reply(&m, 100, &[]);
    let sent = h.advance_to(h.start + Duration::from_secs(40));
    // RFC 3261 §17.1.2.2: in Proceeding, retransmits go every T2.
    assert!(
        sent.iter().all(|(t, _)| t.as_millis() % 4000 == 0),
        "{sent:?}"
    );
    assert_eq!(failed(&h.events()).0, Some(408));
}

#[test]
fn refusals_fail_at_once_with_a_diagnosis_and_are_not_retried() {
    for (status, words) in [
        (403, "forbids user blf"),
        (404, "no one registered"),
        (480, "no one registered"),
        (413, "too large"),
        (415, "content type"),
        (488, "does not accept"),
        (503, "failed at the PBX"),
        (302, "redirected"),
        (606, "refused"),
    ] {
        let mut h = Harness::new(Transport::Udp);
        h.send("1001");
        let m = h.one();
        h.reply(&m, status, &[]);
        let (got, reason) = failed(&h.events());
        assert_eq!(got, Some(status));
        assert!(reason.contains(words), "{status}: {reason}");
        assert!(reason.contains(TO), "{status}: {reason}");
        assert!(h.advance_to(h.start + Duration::from_secs(60)).is_empty());
        assert!(h.events().is_empty());
    }
}

#[test]
fn messages_in_flight_at_once_end_each_on_their_own() {
    let mut h = Harness::new(Transport::Udp);
    let a = h.send("1001");
    let b = h.send("1002");
    let ms = h.messages();
    assert_eq!(ms.len(), 2);
    assert_ne!(ms[0].call_id(), ms[1].call_id());
    h.reply(&ms[1], 200, &[]);
    h.reply(&ms[0], 404, &[]);
    let events = h.events();
    assert_eq!(events[0], delivered(b));
    assert!(matches!(&events[1], Event::MessageFailed { id, status: Some(404), .. } if *id == a));
}

#[test]
fn bad_input_is_refused_before_anything_is_sent() {
    let mut h = Harness::new(Transport::Udp);
    let now = h.now;
    for to in [
        "",
        "webphones@pbx",
        "sip:",
        "sip:a b@pbx",
        "sip:x@pbx>\r\nX: y",
        "http://pbx",
    ] {
        let e =
            h.ua.send_message(to, JSON, b"{}".to_vec(), now)
                .unwrap_err();
        assert!(
            matches!(
                &e,
                Error::InvalidRequest(sip_ua::InvalidRequest::Recipient(_))
            ),
            "{to:?}: {e}"
        );
    }
    for ct in ["", "json", "application/json\r\nX: y"] {
        let e = h.ua.send_message(TO, ct, b"{}".to_vec(), now).unwrap_err();
        assert!(
            matches!(
                e,
                Error::InvalidRequest(sip_ua::InvalidRequest::ContentType(_))
            ),
            "{ct:?}"
        );
    }
    let big = vec![b'x'; sip_ua::MAX_MESSAGE_BODY + 1];
    assert!(h.ua.send_message(TO, JSON, big, now).is_err());
    assert!(h.messages().is_empty());
    assert!(h.events().is_empty());
    // sips: and a port are fine.
    h.ua.send_message("SIPS:webphones@pbx.example.com:5061", JSON, vec![], now)
        .unwrap();
    assert_eq!(h.messages().len(), 1);
}

#[test]
fn stray_and_garbled_answers_change_nothing() {
    let mut h = Harness::new(Transport::Udp);
    let id = h.send("1001");
    let m = h.one();
    let now = h.now;
    for junk in [
        &b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP 127.0.0.1:40000;branch=z9hG4bKother\r\nContent-Length: 0\r\n\r\n"[..],
        b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n",
        b"SIP/2.0 999999 \r\n\r\n",
        b"\x00\xff garbage",
        b"MESSAGE sip:blf@127.0.0.1 SIP/2.0\r\n\r\n",
    ] {
        h.ua.handle_input(pbx(), junk, now);
    }
    assert!(h.events().is_empty());
    // A challenge with an endless reason phrase: the diagnosis stays short.
    let mut s = format!("SIP/2.0 404 {}\r\n", "x".repeat(5000));
    s.push_str(&format!("Via: {}\r\n", m.top_via().unwrap()));
    s.push_str(&format!(
        "Call-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        m.call_id().unwrap(),
        m.headers.get("CSeq").unwrap()
    ));
    h.ua.handle_input(pbx(), s.as_bytes(), now);
    let events = h.events();
    let (_, reason) = failed(&events);
    assert!(reason.len() < 300, "{}", reason.len());
    assert!(matches!(events[0], Event::MessageFailed { id: i, .. } if i == id));
}

#[test]
fn shutdown_fails_what_is_unanswered_and_refuses_new_messages() {
    let mut h = Harness::new(Transport::Udp);
    let id = h.send("1001");
    h.one();
    let now = h.now;
    h.ua.shutdown(now);
    let events = h.events();
    assert!(
        matches!(&events[..], [Event::MessageFailed { id: i, status: None, .. }, Event::ShutDown] if *i == id),
        "{events:#?}"
    );
    assert!(matches!(
        h.ua.send_message(TO, JSON, vec![], now),
        Err(Error::Stopped)
    ));
}

#[cfg(feature = "tokio")]
mod driver {
    use super::*;
    use sip_ua::driver::{spawn, MessageError};
    use tokio::net::UdpSocket;

    async fn recv(pbx: &UdpSocket) -> (Message, SocketAddr) {
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

    fn answer(req: &Message, status: u16, extra: &str) -> Vec<u8> {
        format!(
            "SIP/2.0 {status} X\r\nVia: {}\r\nFrom: {}\r\nTo: {};tag=p\r\nCall-ID: {}\r\nCSeq: {}\r\n{extra}Content-Length: 0\r\n\r\n",
            req.headers.get("Via").unwrap(),
            req.headers.get("From").unwrap(),
            req.headers.get("To").unwrap(),
            req.call_id().unwrap(),
            req.headers.get("CSeq").unwrap()
        )
        .into_bytes()
    }

    #[tokio::test]
    async fn the_messenger_awaits_the_outcome_of_each_message() {
        let pbx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut cfg = UaConfig::new(pbx.local_addr().unwrap().to_string(), "blf", "blfsecret");
        cfg.register = false;
        cfg.keepalive_interval = None;
        let (ua, mut events) = spawn(cfg, vec![], None).await.unwrap();
        let messenger = ua.messenger();

        let sending = tokio::spawn({
            let m = messenger.clone();
            async move { m.send(TO, JSON, BODY.as_bytes().to_vec()).await }
        });
        let (req, from) = recv(&pbx).await;
        let challenge =
            "Proxy-Authenticate: Digest realm=\"127.0.0.1\", nonce=\"n\", qop=\"auth\"\r\n";
        pbx.send_to(&answer(&req, 407, challenge), from)
            .await
            .unwrap();
        let (req, from) = recv(&pbx).await;
        assert!(req.headers.get("Proxy-Authorization").is_some());
        pbx.send_to(&answer(&req, 200, ""), from).await.unwrap();
        assert_eq!(sending.await.unwrap(), Ok(200));
        let ev = events.recv().await.unwrap();
        assert!(
            matches!(ev, Event::MessageDelivered { status: 200, .. }),
            "{ev:?}"
        );

        let sending = tokio::spawn({
            let m = messenger.clone();
            async move { m.send(TO, JSON, b"{}".to_vec()).await }
        });
        let (req, from) = recv(&pbx).await;
        pbx.send_to(&answer(&req, 404, ""), from).await.unwrap();
        let result = sending.await.unwrap();
        assert!(
            matches!(&result, Err(MessageError::Failed { status: Some(404), reason }) if reason.contains("no one registered")),
            "{result:?}"
        );
        assert!(matches!(
            messenger.send("not a uri", JSON, vec![]).await,
            Err(MessageError::Invalid(_))
        ));
        ua.shutdown().await.unwrap();
        assert_eq!(
            messenger.send(TO, JSON, vec![]).await,
            Err(MessageError::Stopped)
        );
    }
}
