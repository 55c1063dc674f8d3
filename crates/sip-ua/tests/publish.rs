//! PUBLISH (RFC 3903) against a scripted presence server, in virtual time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_proto::message::StartLine;
use sip_ua::{Event, Message, UaConfig, UserAgent};

const PIDF: &str = "application/pidf+xml";

fn pbx() -> SocketAddr {
    "127.0.0.1:5060".parse().unwrap()
}

struct Harness {
    ua: UserAgent,
    now: Instant,
    start: Instant,
}

impl Harness {
    /// A user agent that does not register (PUBLISH needs no registration).
    fn new() -> Self {
        let mut cfg = UaConfig::new("127.0.0.1:5060", "blf", "blfsecret");
        cfg.keepalive_interval = None;
        cfg.register = false;
        cfg.publish_expires = 600;
        let now = Instant::now();
        let mut ua = UserAgent::new(cfg, pbx(), "127.0.0.1:40000".parse().unwrap(), vec![], now);
        ua.handle_timeout(now);
        Self {
            ua,
            now,
            start: now,
        }
    }

    /// Every PUBLISH the user agent wants to send now.
    fn publishes(&mut self) -> Vec<Message> {
        let mut out = Vec::new();
        while let Some(t) = self.ua.poll_transmit() {
            assert_eq!(t.destination, pbx());
            let m = Message::parse(&t.payload).unwrap();
            if m.is_request() && m.method() == Some("PUBLISH") {
                out.push(m);
            }
        }
        out
    }

    fn one_publish(&mut self) -> Message {
        let mut p = self.publishes();
        assert_eq!(p.len(), 1, "expected one PUBLISH, got {p:#?}");
        p.remove(0)
    }

    fn publish(&mut self, presentity: &str, body: Option<&str>) {
        let body = body.map(|b| (PIDF.to_string(), b.as_bytes().to_vec()));
        self.ua.publish(presentity, body, self.now).unwrap();
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
            "To: {};tag=ps\r\n",
            req.headers.get("To").unwrap()
        ));
        for (n, v) in extra {
            s.push_str(&format!("{n}: {v}\r\n"));
        }
        s.push_str("Content-Length: 0\r\n\r\n");
        self.ua.handle_input(pbx(), s.as_bytes(), self.now);
    }

    fn events(&mut self) -> Vec<Event> {
        std::iter::from_fn(|| self.ua.poll_event()).collect()
    }

    /// Advances virtual time to `t`, firing every timer on the way.
    fn advance_to(&mut self, t: Instant) {
        while let Some(next) = self.ua.poll_timeout() {
            if next > t {
                break;
            }
            self.now = next.max(self.now);
            self.ua.handle_timeout(self.now);
        }
        self.now = self.now.max(t);
    }

    /// Advances timer by timer until a PUBLISH goes out; when (since the
    /// start) and the PUBLISH.
    fn next_publish(&mut self) -> (Duration, Message) {
        loop {
            let next = self.ua.poll_timeout().expect("a timer");
            self.advance_to(next);
            let mut p = self.publishes();
            if !p.is_empty() {
                assert_eq!(p.len(), 1, "{p:#?}");
                return (self.now - self.start, p.remove(0));
            }
        }
    }
}

fn expires(m: &Message) -> u32 {
    m.headers.get("Expires").unwrap().parse().unwrap()
}

fn uri(m: &Message) -> &str {
    match &m.start {
        StartLine::Request { uri, .. } => uri,
        StartLine::Response { .. } => panic!("not a request"),
    }
}

fn published(presentity: &str, expires: u32) -> Event {
    Event::Published {
        presentity: presentity.into(),
        expires,
    }
}

/// Initial PUBLISH through a 407 round, accepted with `etag` for `granted` s.
fn publish_ok(h: &mut Harness, body: &str, etag: &str, granted: u32) -> Message {
    h.publish("1001", Some(body));
    let p = h.one_publish();
    h.reply(
        &p,
        407,
        &[(
            "Proxy-Authenticate",
            "Digest realm=\"127.0.0.1\", nonce=\"n1\", qop=\"auth\"",
        )],
    );
    let p = h.one_publish();
    assert!(p.headers.get("Proxy-Authorization").is_some());
    h.reply(
        &p,
        200,
        &[("SIP-ETag", etag), ("Expires", &granted.to_string())],
    );
    assert_eq!(h.events(), vec![published("1001", granted)]);
    p
}

#[test]
fn initial_publish_carries_the_body_and_no_if_match() {
    let mut h = Harness::new();
    let p = publish_ok(&mut h, "<presence/>", "e1", 600);
    assert_eq!(uri(&p), "sip:1001@127.0.0.1");
    assert_eq!(p.headers.get("To"), Some("<sip:1001@127.0.0.1>"));
    assert!(p
        .headers
        .get("From")
        .unwrap()
        .starts_with("<sip:blf@127.0.0.1>;tag="));
    assert_eq!(p.headers.get("Event"), Some("presence"));
    assert_eq!(p.headers.get("Content-Type"), Some(PIDF));
    assert_eq!(p.headers.get("SIP-If-Match"), None);
    assert_eq!(expires(&p), 600);
    assert_eq!(p.body, b"<presence/>");
    let st = &h.ua.publications()[0];
    assert!(st.published && !st.sending);
    assert_eq!(st.expires_at, Some(h.now + Duration::from_secs(600)));
}

#[test]
fn refreshes_before_the_granted_expiry_with_if_match_and_no_body() {
    let mut h = Harness::new();
    publish_ok(&mut h, "<presence/>", "e1", 300);
    // 300 s granted: refreshed 32 s (Timer F) before it runs out.
    let (at, r) = h.next_publish();
    assert_eq!(at, Duration::from_secs(268));
    assert_eq!(r.headers.get("SIP-If-Match"), Some("e1"));
    assert!(r.body.is_empty());
    assert_eq!(r.headers.get("Content-Type"), None);
    assert_eq!(expires(&r), 600);
    // The nonce of the challenge is reused: credentials without a new 407.
    assert!(r.headers.get("Proxy-Authorization").is_some());
    h.reply(&r, 200, &[("SIP-ETag", "e2"), ("Expires", "120")]);
    assert_eq!(h.events(), vec![published("1001", 120)]);
    // The new tag is used, on the new grant's schedule (120 - 32).
    let (at, r) = h.next_publish();
    assert_eq!(at, Duration::from_secs(268 + 88));
    assert_eq!(r.headers.get("SIP-If-Match"), Some("e2"));
}

#[test]
fn a_new_body_modifies_with_if_match_also_while_a_publish_is_in_flight() {
    let mut h = Harness::new();
    publish_ok(&mut h, "<a/>", "e1", 600);
    h.publish("1001", Some("<b/>"));
    let m = h.one_publish();
    assert_eq!(m.headers.get("SIP-If-Match"), Some("e1"));
    assert_eq!(m.body, b"<b/>");
    // Two more changes while the modify is in flight: only the last goes out, after it.
    h.publish("1001", Some("<c/>"));
    h.publish("1001", Some("<d/>"));
    assert!(h.publishes().is_empty());
    h.reply(&m, 200, &[("SIP-ETag", "e2"), ("Expires", "600")]);
    let m = h.one_publish();
    assert_eq!(m.headers.get("SIP-If-Match"), Some("e2"));
    assert_eq!(m.body, b"<d/>");
    h.reply(&m, 200, &[("SIP-ETag", "e3"), ("Expires", "600")]);
    assert_eq!(
        h.events(),
        vec![published("1001", 600), published("1001", 600)]
    );
}

#[test]
fn a_412_on_a_refresh_starts_a_new_initial_publish_with_the_body() {
    let mut h = Harness::new();
    publish_ok(&mut h, "<presence/>", "e1", 300);
    let (_, r) = h.next_publish();
    h.reply(&r, 412, &[]);
    let i = h.one_publish();
    assert_eq!(i.headers.get("SIP-If-Match"), None);
    assert_eq!(i.body, b"<presence/>");
    assert_eq!(expires(&i), 600);
    h.reply(&i, 200, &[("SIP-ETag", "f1"), ("Expires", "600")]);
    assert_eq!(h.events(), vec![published("1001", 600)]);
    // The same on a modify.
    h.publish("1001", Some("<new/>"));
    let m = h.one_publish();
    assert_eq!(m.headers.get("SIP-If-Match"), Some("f1"));
    h.reply(&m, 412, &[]);
    let i = h.one_publish();
    assert_eq!(i.headers.get("SIP-If-Match"), None);
    assert_eq!(i.body, b"<new/>");
}

#[test]
fn a_423_retries_with_min_expires() {
    let mut h = Harness::new();
    h.publish("1001", Some("<presence/>"));
    let p = h.one_publish();
    assert_eq!(expires(&p), 600);
    h.reply(&p, 423, &[("Min-Expires", "1800")]);
    let p = h.one_publish();
    assert_eq!(expires(&p), 1800);
    assert_eq!(p.body, b"<presence/>");
    h.reply(&p, 200, &[("SIP-ETag", "e1"), ("Expires", "1800")]);
    assert_eq!(h.events(), vec![published("1001", 1800)]);
    // Refreshes keep asking for what the server wants.
    let (at, r) = h.next_publish();
    assert_eq!(at, Duration::from_secs(1800 - 32));
    assert_eq!(expires(&r), 1800);
}

#[test]
fn removal_sends_expires_zero_with_if_match_and_reports_it() {
    let mut h = Harness::new();
    publish_ok(&mut h, "<presence/>", "e1", 600);
    h.ua.publish("1001", None, h.now).unwrap();
    let r = h.one_publish();
    assert_eq!(expires(&r), 0);
    assert_eq!(r.headers.get("SIP-If-Match"), Some("e1"));
    assert!(r.body.is_empty());
    h.reply(&r, 200, &[("Expires", "0")]);
    assert_eq!(
        h.events(),
        vec![Event::PublicationRemoved {
            presentity: "1001".into()
        }]
    );
    assert!(h.ua.publications().is_empty());
    // Nothing is refreshed any more.
    h.advance_to(h.now + Duration::from_secs(3600));
    assert!(h.publishes().is_empty());
    // A removal the server no longer knows (412) is done as well.
    publish_ok(&mut h, "<presence/>", "e2", 600);
    h.ua.publish("1001", None, h.now).unwrap();
    let r = h.one_publish();
    h.reply(&r, 412, &[]);
    assert!(h.publishes().is_empty());
    assert_eq!(
        h.events(),
        vec![Event::PublicationRemoved {
            presentity: "1001".into()
        }]
    );
}

#[test]
fn publishing_again_while_the_removal_is_in_flight_publishes_anew() {
    let mut h = Harness::new();
    publish_ok(&mut h, "<a/>", "e1", 600);
    h.ua.publish("1001", None, h.now).unwrap();
    let r = h.one_publish();
    h.publish("1001", Some("<b/>"));
    h.reply(&r, 200, &[]);
    let i = h.one_publish();
    assert_eq!(i.headers.get("SIP-If-Match"), None);
    assert_eq!(i.body, b"<b/>");
}

#[test]
fn failures_are_reported_and_retried_with_backoff() {
    let mut h = Harness::new();
    h.publish("1001", Some("<presence/>"));
    let p = h.one_publish();
    h.reply(&p, 503, &[]);
    let ev = h.events();
    let [Event::PublicationFailed {
        presentity,
        status: Some(503),
        retry_at: Some(retry),
        ..
    }] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert_eq!(presentity, "1001");
    assert!(*retry > h.now);
    assert!(h.ua.publications()[0].last_error.is_some());
    h.advance_to(*retry);
    let p = h.one_publish();
    assert_eq!(p.body, b"<presence/>");
    // 403: told in plain words, retried slowly.
    h.reply(&p, 403, &[]);
    let ev = h.events();
    let [Event::PublicationFailed {
        reason,
        retry_at: Some(retry),
        ..
    }] = ev.as_slice()
    else {
        panic!("{ev:?}")
    };
    assert!(reason.contains("forbids user blf"), "{reason}");
    assert_eq!(*retry, h.now + Duration::from_secs(300));
}

#[test]
fn a_wrong_password_is_reported_not_looped() {
    let mut h = Harness::new();
    h.publish("1001", Some("<presence/>"));
    let challenge = [(
        "Proxy-Authenticate",
        "Digest realm=\"127.0.0.1\", nonce=\"n1\", qop=\"auth\"",
    )];
    let p = h.one_publish();
    h.reply(&p, 407, &challenge);
    let p = h.one_publish();
    h.reply(&p, 407, &challenge);
    assert!(h.publishes().is_empty());
    assert!(matches!(
        h.events().as_slice(),
        [Event::PublicationFailed {
            status: Some(407),
            ..
        }]
    ));
}

#[test]
fn shutdown_removes_every_publication_before_it_ends() {
    let mut h = Harness::new();
    publish_ok(&mut h, "<presence/>", "e1", 600);
    h.publish("1002", Some("<other/>"));
    let in_flight = h.one_publish();
    h.ua.shutdown(h.now);
    let r = h.one_publish();
    assert_eq!(uri(&r), "sip:1001@127.0.0.1");
    assert_eq!(expires(&r), 0);
    assert!(!h.ua.is_shut_down());
    h.reply(&r, 200, &[]);
    // 1002's initial PUBLISH is answered: it is removed at once with its new tag.
    h.reply(&in_flight, 200, &[("SIP-ETag", "x1"), ("Expires", "600")]);
    let r2 = h.one_publish();
    assert_eq!(uri(&r2), "sip:1002@127.0.0.1");
    assert_eq!(expires(&r2), 0);
    assert_eq!(r2.headers.get("SIP-If-Match"), Some("x1"));
    assert!(!h.ua.is_shut_down());
    h.reply(&r2, 200, &[]);
    assert!(h.ua.is_shut_down());
    let ev = h.events();
    assert!(ev.contains(&Event::PublicationRemoved {
        presentity: "1001".into()
    }));
    assert!(ev.contains(&Event::PublicationRemoved {
        presentity: "1002".into()
    }));
    assert_eq!(ev.last(), Some(&Event::ShutDown));
    assert!(h
        .ua
        .publish("1001", Some((PIDF.into(), vec![])), h.now)
        .is_err());
}

#[test]
fn shutdown_is_bounded_when_the_server_does_not_answer_the_removal() {
    let mut h = Harness::new();
    publish_ok(&mut h, "<presence/>", "e1", 600);
    h.ua.shutdown(h.now);
    assert_eq!(expires(&h.one_publish()), 0);
    let start = h.now;
    while !h.ua.is_shut_down() {
        let next = h.ua.poll_timeout().expect("a timer while shutting down");
        h.advance_to(next);
        h.publishes();
    }
    // Timer F (32 s).
    assert_eq!(h.now - start, Duration::from_secs(32));
    assert!(matches!(
        h.events().as_slice(),
        [
            Event::PublicationFailed {
                status: None,
                retry_at: None,
                ..
            },
            Event::ShutDown
        ]
    ));
}

#[test]
fn invalid_presentities_and_content_types_are_refused() {
    let mut h = Harness::new();
    for p in ["", "10 01", "a\r\nVia: x", "<sip:1001@x>"] {
        assert!(h.ua.publish(p, Some((PIDF.into(), vec![])), h.now).is_err());
    }
    let bad_ct = Some(("application/pidf+xml\r\nX: y".to_string(), vec![]));
    assert!(h.ua.publish("1001", bad_ct, h.now).is_err());
    assert!(h.publishes().is_empty());
    // A SIP URI is taken as it is.
    h.publish("sip:alice@example.com", Some("<p/>"));
    assert_eq!(uri(&h.one_publish()), "sip:alice@example.com");
    // Removing what was never published is done at once.
    h.ua.publish("1003", None, h.now).unwrap();
    assert!(h.publishes().is_empty());
    assert_eq!(
        h.events(),
        vec![Event::PublicationRemoved {
            presentity: "1003".into()
        }]
    );
}

/// Random and mutated answers, in any order, never make the user agent panic.
#[test]
fn random_input_never_panics() {
    let mut seed: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let statuses = [200, 202, 401, 407, 412, 423, 481, 489, 500, 503, 100, 0];
    for round in 0..300 {
        let mut h = Harness::new();
        h.publish("1001", Some("<a/>"));
        h.publish("1002", Some("<b/>"));
        let mut sent: Vec<Message> = h.publishes();
        for _ in 0..40 {
            match next() % 7 {
                0 => {
                    let _ =
                        h.ua.publish("1001", Some((PIDF.into(), b"<c/>".to_vec())), h.now);
                }
                1 => {
                    let _ = h.ua.publish("1002", None, h.now);
                }
                2 => {
                    let t = h.now + Duration::from_millis(next() % 400_000);
                    h.advance_to(t);
                }
                3 if round % 5 == 0 => h.ua.shutdown(h.now),
                _ => {
                    let Some(req) = sent.get((next() as usize) % sent.len().max(1)).cloned() else {
                        continue;
                    };
                    let status = statuses[(next() as usize) % statuses.len()];
                    let extra: Vec<(String, String)> = match next() % 5 {
                        0 => vec![("SIP-ETag".into(), format!("t{}", next() % 3))],
                        1 => vec![("Expires".into(), (next() % 5000).to_string())],
                        2 => vec![("Min-Expires".into(), "x\"".into())],
                        3 => vec![(
                            "Proxy-Authenticate".into(),
                            "Digest realm=\"r\", nonce=\"n\", qop=\"auth-int\", stale=true".into(),
                        )],
                        _ => vec![("Expires".into(), "-1".into())],
                    };
                    let extra: Vec<(&str, &str)> = extra
                        .iter()
                        .map(|(a, b)| (a.as_str(), b.as_str()))
                        .collect();
                    h.reply(&req, status, &extra);
                }
            }
            sent.extend(h.publishes());
            // Raw mutation of a real request, fed back as if it were an answer.
            if let Some(req) = sent.last() {
                let mut bytes = req.to_bytes();
                let i = (next() as usize) % bytes.len();
                bytes[i] = next() as u8;
                bytes.truncate((next() as usize) % (bytes.len() + 1));
                h.ua.handle_input(pbx(), &bytes, h.now);
            }
            h.events();
            let _ = h.ua.publications();
        }
    }
}
