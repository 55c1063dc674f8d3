//! The user agent against a scripted PBX, in virtual time (no sockets, no sleeps).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_proto::digest::{compute_response, Algorithm, Qop};
use sip_proto::message::{name_addr_param, split_name_addr, StartLine};
use sip_ua::{
    AddressDiscovery, ContactAddress, DiscoveryTransmit, Event, EventPackage, Message, SubState,
    Subscription, TerminationReason, UaConfig, UserAgent,
};

const PBX: &str = "127.0.0.1:5060";

fn pbx() -> SocketAddr {
    PBX.parse().unwrap()
}
fn local() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

fn config() -> UaConfig {
    let mut c = UaConfig::new(PBX, "blf", "blfsecret");
    c.keepalive_interval = None;
    c
}

struct Harness {
    ua: UserAgent,
    now: Instant,
    start: Instant,
    events: Vec<Event>,
    queue: Vec<sip_ua::Transmit>,
}

impl Harness {
    fn new(cfg: UaConfig, subs: &[&str]) -> Self {
        let now = Instant::now();
        let ua = UserAgent::new(
            cfg,
            pbx(),
            local(),
            subs.iter().map(|e| Subscription::dialog(*e)).collect(),
            now,
        );
        let mut h = Self {
            ua,
            now,
            start: now,
            events: Vec::new(),
            queue: Vec::new(),
        };
        h.ua.handle_timeout(now);
        h
    }

    /// Everything the UA wants to send now, parsed (keep-alives skipped).
    fn sent(&mut self) -> Vec<(SocketAddr, Message)> {
        self.collect();
        std::mem::take(&mut self.queue)
            .into_iter()
            .filter(|t| !t.payload.iter().all(|b| *b == b'\r' || *b == b'\n'))
            .filter(|t| !sip_proto::is_stun(&t.payload) && t.payload.first() != Some(&0))
            .map(|t| (t.destination, Message::parse(&t.payload).unwrap()))
            .collect()
    }

    /// Fires the timers due now (as a driver does after every input) and queues the transmits.
    fn collect(&mut self) {
        while let Some(next) = self.ua.poll_timeout() {
            if next > self.now {
                break;
            }
            self.ua.handle_timeout(self.now);
            while let Some(t) = self.ua.poll_transmit() {
                self.queue.push(t);
            }
        }
        while let Some(t) = self.ua.poll_transmit() {
            self.queue.push(t);
        }
    }

    fn sent_requests(&mut self) -> Vec<Message> {
        self.sent().into_iter().map(|(_, m)| m).collect()
    }

    fn requests(&mut self, method: &str) -> Vec<Message> {
        self.sent_requests()
            .into_iter()
            .filter(|m| m.method() == Some(method))
            .collect()
    }

    fn one_request(&mut self, method: &str) -> Message {
        let mut reqs = self.sent_requests();
        assert_eq!(reqs.len(), 1, "expected one {method}, got {reqs:#?}");
        let r = reqs.remove(0);
        assert_eq!(r.method(), Some(method));
        r
    }

    fn drain_events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.ua.poll_event() {
            out.push(e.clone());
            self.events.push(e);
        }
        out
    }

    fn input(&mut self, from: SocketAddr, data: &[u8]) {
        self.ua.handle_input(from, data, self.now);
    }

    fn reply(&mut self, req: &Message, status: u16, extra: &[(&str, String)]) {
        let bytes = response(req, status, extra);
        self.input(pbx(), &bytes);
    }

    /// Advances virtual time to `t`, firing every timer on the way.
    fn advance_to(&mut self, t: Instant) {
        while let Some(next) = self.ua.poll_timeout() {
            if next > t {
                break;
            }
            self.now = next.max(self.now);
            self.ua.handle_timeout(self.now);
            self.collect();
        }
        self.now = self.now.max(t);
    }

    fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}

fn response(req: &Message, status: u16, extra: &[(&str, String)]) -> Vec<u8> {
    let mut s = format!("SIP/2.0 {status} Reason\r\n");
    for v in req.headers.get_all("Via") {
        s.push_str(&format!("Via: {v}\r\n"));
    }
    s.push_str(&format!("From: {}\r\n", req.headers.get("From").unwrap()));
    let to = req.headers.get("To").unwrap();
    if name_addr_param(to, "tag").is_none() && status > 100 {
        s.push_str(&format!("To: {to};tag=pbxtag\r\n"));
    } else {
        s.push_str(&format!("To: {to}\r\n"));
    }
    s.push_str(&format!("Call-ID: {}\r\n", req.call_id().unwrap()));
    s.push_str(&format!("CSeq: {}\r\n", req.headers.get("CSeq").unwrap()));
    for (n, v) in extra {
        s.push_str(&format!("{n}: {v}\r\n"));
    }
    s.push_str("Content-Length: 0\r\n\r\n");
    s.into_bytes()
}

/// A NOTIFY in the dialog of `sub` (a SUBSCRIBE the UA sent).
fn notify(sub: &Message, cseq: u32, state: &str, body: Option<&str>) -> Vec<u8> {
    notify_branch(sub, cseq, state, body, &format!("z9hG4bKn{cseq}"))
}

fn notify_branch(
    sub: &Message,
    cseq: u32,
    state: &str,
    body: Option<&str>,
    branch: &str,
) -> Vec<u8> {
    let from = sub.headers.get("To").unwrap();
    let from = if name_addr_param(from, "tag").is_some() {
        from.to_string()
    } else {
        format!("{from};tag=pbxtag")
    };
    let mut s = format!(
        "NOTIFY sip:blf@127.0.0.1:40000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch={branch}\r\n\
         From: {from}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} NOTIFY\r\nEvent: dialog\r\n\
         Contact: <sip:127.0.0.1:5060>\r\nSubscription-State: {state}\r\n",
        sub.headers.get("From").unwrap(),
        sub.call_id().unwrap()
    );
    match body {
        Some(b) => s.push_str(&format!(
            "Content-Type: application/dialog-info+xml\r\nContent-Length: {}\r\n\r\n{b}",
            b.len()
        )),
        None => s.push_str("Content-Length: 0\r\n\r\n"),
    }
    s.into_bytes()
}

fn expires_of(m: &Message) -> u32 {
    m.headers.get("Expires").unwrap().parse().unwrap()
}

fn challenge(nonce: &str, extra: &str) -> String {
    format!("Digest realm=\"127.0.0.1\", nonce=\"{nonce}\", qop=\"auth\"{extra}")
}

/// Checks the Authorization of `req` against the password.
fn assert_digest_ok(req: &Message, header: &str, password: &str) {
    let v = req
        .headers
        .get(header)
        .unwrap_or_else(|| panic!("no {header} in {req:#?}"));
    let get = |k: &str| {
        let i = v.find(&format!("{k}=")).unwrap() + k.len() + 1;
        let rest = &v[i..];
        let rest = rest.strip_prefix('"').unwrap_or(rest);
        rest.split(['"', ',']).next().unwrap().to_string()
    };
    let alg = Algorithm::from_name(&get("algorithm")).unwrap();
    let method = req.method().unwrap();
    let StartLine::Request { uri, .. } = &req.start else {
        panic!()
    };
    assert_eq!(&get("uri"), uri);
    let want = compute_response(
        alg,
        &get("username"),
        password,
        &get("realm"),
        &get("nonce"),
        &get("cnonce"),
        u32::from_str_radix(&get("nc"), 16).unwrap(),
        Some(Qop::Auth),
        method,
        uri,
        b"",
    );
    assert_eq!(get("response"), want);
}

/// Registers with a 401 round; returns the harness with subscriptions starting.
fn registered(subs: &[&str]) -> Harness {
    let mut h = Harness::new(config(), subs);
    let r = h.one_request("REGISTER");
    h.reply(&r, 401, &[("WWW-Authenticate", challenge("n1", ""))]);
    let r = h.one_request("REGISTER");
    h.reply(&r, 200, &[("Expires", "600".into())]);
    h
}

/// Subscribes `ext` with a 407 round and a 200 granting `expires`; returns the last SUBSCRIBE.
fn subscribe_ok(h: &mut Harness, expires: u32) -> Message {
    let s = h.one_request("SUBSCRIBE");
    h.reply(&s, 407, &[("Proxy-Authenticate", challenge("s1", ""))]);
    let s = h.one_request("SUBSCRIBE");
    assert_digest_ok(&s, "Proxy-Authorization", "blfsecret");
    h.reply(
        &s,
        200,
        &[
            ("Expires", expires.to_string()),
            ("Contact", "<sip:127.0.0.1:5060>".into()),
        ],
    );
    s
}

#[test]
fn register_401_then_subscribe_407_with_digest() {
    let mut h = Harness::new(config(), &["1001"]);
    // Subscriptions wait for the registration result.
    let r = h.one_request("REGISTER");
    assert!(r.headers.get("Authorization").is_none());
    assert_eq!(expires_of(&r), 600);
    assert!(r.top_via().unwrap().contains(";rport"));
    h.reply(
        &r,
        401,
        &[("WWW-Authenticate", challenge("n1", ", algorithm=MD5"))],
    );
    let r2 = h.one_request("REGISTER");
    assert_digest_ok(&r2, "Authorization", "blfsecret");
    assert_eq!(r2.call_id(), r.call_id());
    assert_eq!(r2.cseq().unwrap().0, r.cseq().unwrap().0 + 1);
    h.reply(&r2, 200, &[("Expires", "600".into())]);
    assert!(matches!(
        h.drain_events()[..],
        [Event::Registered { expires: 600, .. }]
    ));
    let s = subscribe_ok(&mut h, 600);
    assert_eq!(s.headers.get("Event"), Some("dialog"));
    assert_eq!(s.headers.get("Accept"), Some("application/dialog-info+xml"));
    let ev = h.drain_events();
    assert_eq!(
        ev,
        vec![Event::SubscriptionActive {
            user: "1001".into(),
            package: EventPackage::Dialog,
            expires: 600
        }]
    );
}

#[test]
fn sha256_and_strongest_challenge() {
    let mut h = Harness::new(config(), &[]);
    let r = h.one_request("REGISTER");
    h.reply(
        &r,
        401,
        &[
            ("WWW-Authenticate", challenge("md5n", "")),
            ("WWW-Authenticate", challenge("shan", ", algorithm=sha-256")),
        ],
    );
    let r = h.one_request("REGISTER");
    let auth = r.headers.get("Authorization").unwrap();
    assert!(
        auth.contains("algorithm=SHA-256") && auth.contains("nonce=\"shan\""),
        "{auth}"
    );
    assert_digest_ok(&r, "Authorization", "blfsecret");
}

#[test]
fn wrong_password_stops_instead_of_looping() {
    let mut cfg = config();
    cfg.set_password("wrong");
    let mut h = Harness::new(cfg, &[]);
    let r = h.one_request("REGISTER");
    h.reply(&r, 401, &[("WWW-Authenticate", challenge("n1", ""))]);
    let r = h.one_request("REGISTER");
    h.reply(&r, 401, &[("WWW-Authenticate", challenge("n1", ""))]);
    assert!(
        h.sent_requests().is_empty(),
        "must not answer the same nonce again"
    );
    let ev = h.drain_events();
    let Some(Event::RegistrationFailed {
        status: Some(401),
        reason,
        retry_at: Some(at),
    }) = ev.first()
    else {
        panic!("{ev:?}")
    };
    assert!(reason.contains("password"), "{reason}");
    assert_eq!(*at - h.start, Duration::from_secs(300));
    // stale=true with the same nonce is not a wrong password.
    let mut h = Harness::new(config(), &[]);
    let r = h.one_request("REGISTER");
    h.reply(&r, 401, &[("WWW-Authenticate", challenge("n1", ""))]);
    let r = h.one_request("REGISTER");
    h.reply(
        &r,
        401,
        &[("WWW-Authenticate", challenge("n2", ", stale=true"))],
    );
    let r = h.one_request("REGISTER");
    assert!(r.headers.get("Authorization").unwrap().contains("\"n2\""));
}

#[test]
fn registration_refreshes_before_the_granted_expiry() {
    let mut h = Harness::new(config(), &[]);
    let r = h.one_request("REGISTER");
    let contact = r.headers.get("Contact").unwrap().to_string();
    // Asked 600, granted 120 in the Contact's expires (Expires header says otherwise).
    h.reply(
        &r,
        200,
        &[
            ("Contact", format!("{contact};expires=120")),
            ("Expires", "600".into()),
        ],
    );
    assert!(matches!(
        h.drain_events()[..],
        [Event::Registered { expires: 120, .. }]
    ));
    h.advance_to(h.start + Duration::from_secs(87));
    assert!(h.sent_requests().is_empty());
    h.advance_to(h.start + Duration::from_secs(88));
    let r2 = h.one_request("REGISTER");
    assert_eq!(r2.call_id(), r.call_id());
    // Short expiry: refresh half-way.
    h.reply(&r2, 200, &[("Expires", "20".into())]);
    let t = h.now;
    h.advance_to(t + Duration::from_secs(9));
    assert!(h.sent_requests().is_empty());
    h.advance_to(t + Duration::from_secs(10));
    h.one_request("REGISTER");
}

#[test]
fn interval_too_brief_uses_min_expires_or_a_sane_default() {
    let mut cfg = config();
    cfg.register_expires = 30;
    let mut h = Harness::new(cfg, &[]);
    let r = h.one_request("REGISTER");
    h.reply(&r, 423, &[("Min-Expires", "900".into())]);
    let r = h.one_request("REGISTER");
    assert_eq!(expires_of(&r), 900);
    h.reply(&r, 200, &[("Expires", "900".into())]);
    assert!(matches!(
        h.drain_events()[..],
        [Event::Registered { expires: 900, .. }]
    ));
    // Without Min-Expires.
    let mut cfg = config();
    cfg.register_expires = 30;
    let mut h = Harness::new(cfg, &[]);
    let r = h.one_request("REGISTER");
    h.reply(&r, 423, &[]);
    let r = h.one_request("REGISTER");
    assert_eq!(expires_of(&r), 60);
}

#[test]
fn unreachable_pbx_retransmits_then_backs_off_with_jitter() {
    let mut h = Harness::new(config(), &[]);
    let _ = h.one_request("REGISTER");
    // Timer E retransmissions then Timer F.
    let mut retrans = Vec::new();
    while h.elapsed() < Duration::from_secs(32) {
        let Some(next) = h.ua.poll_timeout() else {
            break;
        };
        h.now = next;
        h.ua.handle_timeout(next);
        for r in h.sent_requests() {
            assert_eq!(r.method(), Some("REGISTER"));
            retrans.push(h.elapsed().as_millis());
        }
    }
    assert_eq!(&retrans[..4], &[500, 1500, 3500, 7500]);
    let ev = h.drain_events();
    let retry = ev
        .iter()
        .find_map(|e| match e {
            Event::Unreachable { retry_at, .. } => *retry_at,
            _ => None,
        })
        .expect("Unreachable event");
    let delay = retry - h.now;
    assert!(
        delay >= Duration::from_secs(1) && delay <= Duration::from_secs(2),
        "{delay:?}"
    );
    // Failures grow the delay (capped at retry_max).
    let mut last = delay;
    for _ in 0..10 {
        h.advance_to(retry.max(h.now));
        let t0 = h.now;
        // Wait out this attempt's Timer F.
        let mut got = None;
        while got.is_none() {
            let next = h.ua.poll_timeout().unwrap();
            h.now = next;
            h.ua.handle_timeout(next);
            h.sent_requests();
            got = h.drain_events().into_iter().find_map(|e| match e {
                Event::Unreachable { retry_at, .. } => retry_at,
                _ => None,
            });
        }
        let d = got.unwrap() - h.now;
        assert!(d <= Duration::from_secs(120), "{d:?}");
        assert!(h.now - t0 >= Duration::from_secs(32));
        last = d;
        h.advance_to(got.unwrap());
    }
    assert!(
        last >= Duration::from_secs(60),
        "capped backoff reached: {last:?}"
    );
}

#[test]
fn subscription_refreshes_by_granted_expiry_and_reauthenticates() {
    let mut h = registered(&["1001"]);
    h.drain_events();
    let s = subscribe_ok(&mut h, 60); // asked 600, granted 60
    assert_eq!(expires_of(&s), 600);
    h.drain_events();
    h.advance_to(h.now + Duration::from_secs(29));
    assert!(h.sent_requests().is_empty());
    h.advance_to(h.now + Duration::from_secs(1));
    let r = h.one_request("SUBSCRIBE");
    assert_eq!(r.call_id(), s.call_id());
    assert_eq!(r.to_tag(), Some("pbxtag"));
    assert_eq!(r.cseq().unwrap().0, s.cseq().unwrap().0 + 1);
    assert_eq!(
        r.start,
        StartLine::Request {
            method: "SUBSCRIBE".into(),
            uri: "sip:127.0.0.1:5060".into()
        }
    );
    // Refresh carries credentials (nc=2) and is challenged again with a new nonce.
    assert!(r
        .headers
        .get("Proxy-Authorization")
        .unwrap()
        .contains("nc=00000002"));
    h.reply(&r, 407, &[("Proxy-Authenticate", challenge("s2", ""))]);
    let r = h.one_request("SUBSCRIBE");
    assert!(r
        .headers
        .get("Proxy-Authorization")
        .unwrap()
        .contains("\"s2\""));
    h.reply(&r, 200, &[("Expires", "60".into())]);
    assert_eq!(
        h.drain_events(),
        vec![Event::SubscriptionActive {
            user: "1001".into(),
            package: EventPackage::Dialog,
            expires: 60
        }]
    );
    let st = h.ua.status();
    assert_eq!(st.subscriptions[0].phase, sip_ua::SubscriptionPhase::Active);
    assert_eq!(
        st.subscriptions[0].expires_at,
        Some(h.now + Duration::from_secs(60))
    );
    assert_eq!(st.subscriptions[0].last_error, None);
}

#[test]
fn refresh_481_starts_a_new_subscription_at_once() {
    let mut h = registered(&["1001"]);
    let s = subscribe_ok(&mut h, 60);
    h.drain_events();
    h.advance_to(h.now + Duration::from_secs(30));
    let r = h.one_request("SUBSCRIBE");
    h.reply(&r, 481, &[]);
    let ev = h.drain_events();
    assert!(
        matches!(
            &ev[..],
            [Event::SubscriptionFailed {
                status: Some(481),
                ..
            }]
        ),
        "{ev:?}"
    );
    // At once, within the pacing interval (20 ms at 50/s).
    h.advance_to(h.now + Duration::from_millis(20));
    let n = h.one_request("SUBSCRIBE");
    assert_ne!(n.call_id(), s.call_id());
    assert_eq!(n.to_tag(), None);
    assert_eq!(
        n.start,
        StartLine::Request {
            method: "SUBSCRIBE".into(),
            uri: "sip:1001@127.0.0.1".into()
        }
    );
    // A NOTIFY in the old dialog is now rejected.
    h.input(pbx(), &notify(&s, 9, "active;expires=30", None));
    let resp = h.sent();
    assert_eq!(resp[0].1.status(), Some(481));
}

#[test]
fn missing_hint_forbidden_declined_and_bad_event_are_diagnosed_and_retried_slowly() {
    for (status, needle) in [
        (404, "exten => 500,hint,PJSIP/500"),
        (403, "allow_subscribe"),
        (489, "Event: dialog"),
        // Asterisk with `allow_subscribe=no` on our endpoint.
        (603, "endpoint blf (Asterisk: `allow_subscribe=yes`"),
    ] {
        let mut h = registered(&["500"]);
        h.drain_events();
        let s = h.one_request("SUBSCRIBE");
        h.reply(&s, status, &[]);
        let ev = h.drain_events();
        let Some(Event::SubscriptionFailed {
            user,
            status: st,
            diagnosis,
            retry_at,
            package: EventPackage::Dialog,
        }) = ev.first()
        else {
            panic!("{ev:?}")
        };
        assert_eq!(user, "500");
        assert_eq!(*st, Some(status));
        assert!(diagnosis.contains(needle), "{diagnosis}");
        assert_eq!(*retry_at, Some(h.now + Duration::from_secs(300)));
        let st = h.ua.status();
        assert!(st.registration.registered);
        let sub = &st.subscriptions[0];
        assert_eq!(sub.phase, sip_ua::SubscriptionPhase::Waiting);
        assert_eq!(sub.last_error.as_deref(), Some(diagnosis.as_str()));
        assert_eq!(sub.next_attempt, *retry_at);
        h.advance_to(h.now + Duration::from_secs(299));
        assert!(h.sent_requests().is_empty());
        h.advance_to(h.now + Duration::from_secs(1));
        assert_eq!(h.one_request("SUBSCRIBE").to_tag(), None);
    }
}

#[test]
fn notify_handling_spoofed_unparsable_backwards_and_retransmitted() {
    let mut h = registered(&["1001"]);
    let s = subscribe_ok(&mut h, 600);
    h.drain_events();
    // In-dialog NOTIFY with a body.
    let body =
        "<dialog-info state=\"full\"><dialog id=\"x\"><state>early</state></dialog></dialog-info>";
    h.input(pbx(), &notify(&s, 5, "active;expires=599", Some(body)));
    let resp = h.sent();
    assert_eq!(resp.len(), 1);
    assert_eq!(resp[0].0, pbx());
    assert_eq!(resp[0].1.status(), Some(200));
    let ev = h.drain_events();
    let [Event::Notify(n)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(n.user, "1001");
    assert_eq!(
        n.content_type.as_deref(),
        Some("application/dialog-info+xml")
    );
    assert_eq!(n.body, body.as_bytes());
    assert_eq!(
        n.subscription_state.as_ref().unwrap().state,
        SubState::Active
    );
    // Stamped with the time the input came in (the start of the
    // NOTIFY→presence latency an application measures).
    assert_eq!(n.received_at, h.now);
    // Retransmission: same answer, no second event.
    h.input(pbx(), &notify(&s, 5, "active;expires=599", Some(body)));
    let again = h.sent();
    assert_eq!(again[0].1, resp[0].1);
    assert!(h.drain_events().is_empty());
    // CSeq going backwards (FreeSWITCH): accepted. Garbage body: still 200.
    h.input(
        pbx(),
        &notify(&s, 2, "active;expires=590", Some("<<<not xml")),
    );
    assert_eq!(h.sent()[0].1.status(), Some(200));
    assert!(matches!(&h.drain_events()[..], [Event::Notify(n)] if n.body == b"<<<not xml"));
    // Spoofed: unknown Call-ID from another port.
    let spoof: SocketAddr = "127.0.0.1:6666".parse().unwrap();
    let mut fake = s.clone();
    fake.headers.set("Call-ID", "forged@evil");
    h.input(
        spoof,
        &notify(&fake, 3, "terminated;reason=noresource", None),
    );
    let resp = h.sent();
    assert_eq!(resp[0].0, spoof);
    assert_eq!(resp[0].1.status(), Some(481));
    assert!(matches!(
        &h.drain_events()[..],
        [Event::NotifyRejected { from, kind: sip_ua::NotifyRejection::UnknownDialog, .. }]
            if *from == spoof
    ));
    // Right Call-ID, wrong tags: 481 too, and the subscription is untouched.
    let mut fake = s.clone();
    fake.headers.set("From", "<sip:blf@127.0.0.1>;tag=other");
    h.input(spoof, &notify(&fake, 4, "terminated;reason=rejected", None));
    assert_eq!(h.sent()[0].1.status(), Some(481));
    assert!(matches!(
        &h.drain_events()[..],
        [Event::NotifyRejected {
            kind: sip_ua::NotifyRejection::DialogMismatch,
            ..
        }]
    ));
    h.input(pbx(), &notify(&s, 6, "active;expires=580", None));
    assert_eq!(h.sent()[0].1.status(), Some(200));
}

#[test]
fn notify_before_the_2xx_creates_the_dialog() {
    let mut h = registered(&["1001"]);
    h.drain_events();
    let s = h.one_request("SUBSCRIBE");
    h.input(pbx(), &notify(&s, 1, "active;expires=600", None));
    assert_eq!(h.sent()[0].1.status(), Some(200));
    assert!(matches!(&h.drain_events()[..], [Event::Notify(_)]));
    h.reply(&s, 202, &[("Expires", "600".into())]);
    assert!(matches!(
        &h.drain_events()[..],
        [Event::SubscriptionActive { expires: 600, .. }]
    ));
    // The refresh is in the dialog the NOTIFY created.
    h.advance_to(h.now + Duration::from_secs(568));
    let r = h.requests("SUBSCRIBE").remove(0);
    assert_eq!(r.to_tag(), Some("pbxtag"));
}

#[test]
fn termination_reasons() {
    let cases: [(&str, Option<u64>); 6] = [
        ("terminated;reason=deactivated", Some(0)),
        ("terminated;reason=timeout", Some(0)),
        ("terminated;reason=probation;retry-after=30", Some(30)),
        ("terminated;reason=giveup;retry-after=45", Some(45)),
        ("terminated;reason=noresource", Some(300)),
        ("terminated;reason=invariant", None),
    ];
    for (state, retry) in cases {
        let mut h = registered(&["1001"]);
        let s = subscribe_ok(&mut h, 600);
        h.drain_events();
        h.input(pbx(), &notify(&s, 3, state, None));
        assert_eq!(h.sent()[0].1.status(), Some(200), "{state}");
        let ev = h.drain_events();
        let Some(Event::SubscriptionTerminated {
            retry_at, reason, ..
        }) = ev.get(1)
        else {
            panic!("{state}: {ev:?}")
        };
        assert!(reason.is_some());
        assert_eq!(retry_at.map(|t| (t - h.now).as_secs()), retry, "{state}");
        match retry {
            Some(secs) => {
                if secs > 0 {
                    h.advance_to(h.now + Duration::from_secs(secs - 1));
                    assert!(h.sent_requests().is_empty(), "{state}");
                }
                h.advance_to(h.now + Duration::from_secs(1.min(secs)) + Duration::from_millis(20));
                let n = h.one_request("SUBSCRIBE");
                assert_ne!(n.call_id(), s.call_id(), "{state}");
            }
            None => {
                h.advance_to(h.now + Duration::from_secs(3600));
                assert!(h.requests("SUBSCRIBE").is_empty(), "{state}");
            }
        }
    }
    // Rejected reason is reported with its name.
    let mut h = registered(&["1001"]);
    let s = subscribe_ok(&mut h, 600);
    h.drain_events();
    h.input(pbx(), &notify(&s, 3, "terminated;reason=rejected", None));
    h.sent();
    assert!(h.drain_events().iter().any(|e| matches!(
        e,
        Event::SubscriptionTerminated {
            reason: Some(TerminationReason::Rejected),
            ..
        }
    )));
}

#[test]
fn pending_then_active() {
    let mut h = registered(&["1001"]);
    let s = subscribe_ok(&mut h, 600);
    h.drain_events();
    h.input(pbx(), &notify(&s, 2, "pending;expires=600", None));
    h.sent();
    let ev = h.drain_events();
    assert!(
        matches!(&ev[1], Event::SubscriptionPending { user, package: EventPackage::Dialog } if user == "1001"),
        "{ev:?}"
    );
    h.input(pbx(), &notify(&s, 3, "active;expires=600", None));
    h.sent();
    let ev = h.drain_events();
    assert!(matches!(&ev[1], Event::SubscriptionActive { .. }), "{ev:?}");
}

#[test]
fn initial_subscribes_are_paced() {
    let exts: Vec<String> = (0..120).map(|i| format!("{}", 2000 + i)).collect();
    let refs: Vec<&str> = exts.iter().map(String::as_str).collect();
    let mut h = registered(&refs);
    let mut per_second = [0usize; 4];
    let mut seen = std::collections::HashSet::new();
    loop {
        for r in h.sent_requests() {
            assert_eq!(r.method(), Some("SUBSCRIBE"));
            let sec = (h.elapsed().as_millis() / 1000) as usize;
            per_second[sec] += 1;
            seen.insert(r.call_id().unwrap().to_string());
            h.reply(&r, 200, &[("Expires", "600".into())]);
        }
        if seen.len() == 120 {
            break;
        }
        let next = h.ua.poll_timeout().unwrap();
        assert!(next - h.start < Duration::from_secs(3), "took too long");
        h.now = next;
        h.ua.handle_timeout(next);
    }
    assert_eq!(per_second, [50, 50, 20, 0]);
}

#[test]
fn shutdown_unsubscribes_then_unregisters() {
    let mut h = registered(&["1001", "1002"]);
    let s1 = subscribe_ok(&mut h, 600);
    h.advance_to(h.now + Duration::from_millis(20));
    let s2 = subscribe_ok(&mut h, 600);
    h.drain_events();
    h.ua.shutdown(h.now);
    let unsubs = h.sent_requests();
    assert_eq!(unsubs.len(), 2);
    for u in &unsubs {
        assert_eq!(u.method(), Some("SUBSCRIBE"));
        assert_eq!(expires_of(u), 0);
        assert_eq!(u.to_tag(), Some("pbxtag"));
        assert!(u.call_id() == s1.call_id() || u.call_id() == s2.call_id());
    }
    // 1001: its final NOTIFY overtakes the 200 of the un-SUBSCRIBE.
    h.input(
        pbx(),
        &notify(&unsubs[0], 9, "terminated;reason=timeout", None),
    );
    assert_eq!(h.sent()[0].1.status(), Some(200));
    h.reply(&unsubs[0], 200, &[("Expires", "0".into())]);
    assert!(h.sent().is_empty());
    // 1002: the 200 comes first; the un-REGISTER waits for the final NOTIFY
    // (else it would arrive at a closed socket and be retransmitted for 32 s).
    h.reply(&unsubs[1], 200, &[("Expires", "0".into())]);
    h.advance_to(h.now + Duration::from_millis(1900));
    assert!(h.sent().is_empty());
    assert!(!h.ua.is_shut_down());
    h.input(pbx(), &notify(&unsubs[1], 9, "terminated", None));
    let mut sent = h.sent();
    assert_eq!(sent.len(), 2, "{sent:#?}");
    assert_eq!(
        sent[0].1.status(),
        Some(200),
        "the NOTIFY is answered first"
    );
    assert_eq!(sent[0].1.call_id(), unsubs[1].call_id());
    let unreg = sent.remove(1).1;
    assert_eq!(unreg.method(), Some("REGISTER"));
    assert_eq!(expires_of(&unreg), 0);
    assert!(unreg.headers.get("Authorization").is_some());
    h.reply(&unreg, 200, &[]);
    assert!(h.ua.is_shut_down());
    let ev = h.drain_events();
    assert!(
        ev.ends_with(&[Event::Unregistered, Event::ShutDown]),
        "{ev:?}"
    );
    assert_eq!(h.ua.poll_timeout(), None);
}

#[test]
fn a_failed_subscription_does_not_unregister_before_the_others_unsubscribe() {
    // 1001 (first in order) was refused; 1002 is up: its un-SUBSCRIBE comes
    // first, the un-REGISTER only after its answer.
    let mut h = registered(&["1001", "1002"]);
    let s = h.one_request("SUBSCRIBE");
    h.reply(&s, 404, &[]);
    h.advance_to(h.now + Duration::from_millis(20));
    subscribe_ok(&mut h, 600);
    h.drain_events();
    h.ua.shutdown(h.now);
    let sent = h.sent_requests();
    assert_eq!(sent.len(), 1, "{sent:#?}");
    assert_eq!(sent[0].method(), Some("SUBSCRIBE"));
    assert_eq!(expires_of(&sent[0]), 0);
    h.reply(&sent[0], 200, &[("Expires", "0".into())]);
    h.input(pbx(), &notify(&sent[0], 9, "terminated", None));
    let unreg = h.requests("REGISTER").remove(0);
    assert_eq!(expires_of(&unreg), 0);
    h.reply(&unreg, 200, &[]);
    assert!(h.ua.is_shut_down());
}

#[test]
fn shutdown_waits_for_a_final_notify_only_so_long() {
    let mut h = registered(&["1001"]);
    subscribe_ok(&mut h, 600);
    h.drain_events();
    let start = h.now;
    h.ua.shutdown(h.now);
    let unsub = h.one_request("SUBSCRIBE");
    h.advance_to(start + Duration::from_millis(100));
    h.reply(&unsub, 200, &[("Expires", "0".into())]);
    // The final NOTIFY never comes: the un-REGISTER goes out after the bound.
    h.advance_to(start + sip_ua::FINAL_NOTIFY_WAIT - Duration::from_millis(1));
    assert!(h.sent().is_empty());
    assert_eq!(h.ua.poll_timeout(), Some(start + sip_ua::FINAL_NOTIFY_WAIT));
    h.advance_to(start + sip_ua::FINAL_NOTIFY_WAIT);
    let unreg = h.one_request("REGISTER");
    assert_eq!(expires_of(&unreg), 0);
    h.reply(&unreg, 200, &[]);
    assert!(h.ua.is_shut_down());
    assert_eq!(h.drain_events(), vec![Event::Unregistered, Event::ShutDown]);
}

#[test]
fn shutdown_is_bounded_when_the_pbx_is_gone() {
    let mut h = registered(&["1001"]);
    subscribe_ok(&mut h, 600);
    h.ua.shutdown(h.now);
    let mut guard = 0;
    while !h.ua.is_shut_down() {
        let next = h.ua.poll_timeout().expect("a timer while shutting down");
        h.now = next;
        h.ua.handle_timeout(next);
        h.sent();
        guard += 1;
        assert!(guard < 100);
    }
    assert!(h.elapsed() <= Duration::from_secs(65), "{:?}", h.elapsed());
}

#[test]
fn learned_contact_from_received_rport_reregisters() {
    let mut h = Harness::new(config(), &[]);
    let r = h.one_request("REGISTER");
    assert!(r
        .headers
        .get("Contact")
        .unwrap()
        .contains("127.0.0.1:40000"));
    let mut resp = String::from_utf8(response(&r, 200, &[("Expires", "600".into())])).unwrap();
    resp = resp.replacen(";rport;", ";rport=61000;received=203.0.113.7;", 1);
    h.input(pbx(), resp.as_bytes());
    let ev = h.drain_events();
    assert!(
        ev.contains(&Event::ContactChanged {
            old: local(),
            new: "203.0.113.7:61000".parse().unwrap()
        }),
        "{ev:?}"
    );
    h.advance_to(h.now);
    let r2 = h.one_request("REGISTER");
    let contact = r2.headers.get("Contact").unwrap();
    assert_eq!(split_name_addr(contact).0, "sip:blf@203.0.113.7:61000");
    // Fixed contact ignores what the PBX says.
    let mut cfg = config();
    cfg.contact = ContactAddress::Fixed("192.0.2.1".parse().unwrap());
    let mut h = Harness::new(cfg, &[]);
    let r = h.one_request("REGISTER");
    assert_eq!(
        split_name_addr(r.headers.get("Contact").unwrap()).0,
        "sip:blf@192.0.2.1:40000"
    );
}

struct FakeStun {
    public: Option<SocketAddr>,
    sent: bool,
}

impl AddressDiscovery for FakeStun {
    fn poll_transmit(&mut self, _now: Instant) -> Option<DiscoveryTransmit> {
        if self.sent {
            return None;
        }
        self.sent = true;
        Some(DiscoveryTransmit {
            destination: "127.0.0.1:3478".parse().unwrap(),
            payload: vec![0; 20],
        })
    }
    fn handle_datagram(&mut self, _from: SocketAddr, data: &[u8], _now: Instant) -> bool {
        if data.get(4..8) == Some(&[0x21, 0x12, 0xA4, 0x42]) {
            self.public = Some(SocketAddr::new(
                "198.51.100.9".parse().unwrap(),
                u16::from_be_bytes([data[8], data[9]]),
            ));
            true
        } else {
            false
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        None
    }
    fn handle_timeout(&mut self, _now: Instant) {}
    fn public_addr(&self) -> Option<SocketAddr> {
        self.public
    }
}

#[test]
fn discovered_address_changes_reregister_and_refresh_subscriptions() {
    let mut cfg = config();
    cfg.contact = ContactAddress::Discovered;
    let mut h = Harness::new(cfg, &["1001"]);
    h.ua.set_discovery(Box::new(FakeStun {
        public: None,
        sent: false,
    }));
    h.collect();
    let dests: Vec<SocketAddr> = h.queue.iter().map(|t| t.destination).collect();
    assert!(
        dests.contains(&"127.0.0.1:3478".parse().unwrap()),
        "discovery transmit from the SIP socket"
    );
    let sent = h.sent();
    assert_eq!(sent.len(), 1, "REGISTER");
    let r = &sent[0].1;
    h.reply(r, 200, &[("Expires", "600".into())]);
    let s = h.one_request("SUBSCRIBE");
    h.reply(&s, 200, &[("Expires", "600".into())]);
    h.drain_events();
    // A STUN response telling the public port 7000.
    let mut stun = vec![0x01, 0x01, 0, 0, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&7000u16.to_be_bytes());
    stun.resize(20, 0);
    h.input("127.0.0.1:3478".parse().unwrap(), &stun);
    let ev = h.drain_events();
    assert!(
        matches!(&ev[..], [Event::ContactChanged { new, .. }] if new.port() == 7000),
        "{ev:?}"
    );
    h.advance_to(h.now + Duration::from_millis(20));
    let mut reqs = h.sent_requests();
    reqs.sort_by_key(|m| m.method().unwrap().to_string());
    assert_eq!(reqs.len(), 2, "{reqs:#?}");
    assert_eq!(reqs[0].method(), Some("REGISTER"));
    assert_eq!(reqs[1].method(), Some("SUBSCRIBE"));
    for r in &reqs {
        assert!(r
            .headers
            .get("Contact")
            .unwrap()
            .contains("198.51.100.9:7000"));
    }
    assert_eq!(reqs[1].to_tag(), Some("pbxtag"), "refresh in the dialog");
}

#[test]
fn options_answered_other_methods_405() {
    let mut h = registered(&[]);
    let opt = "OPTIONS sip:blf@127.0.0.1:40000 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5060;branch=z9hG4bKo\r\nFrom: <sip:pbx@127.0.0.1>;tag=a\r\nTo: <sip:blf@127.0.0.1>\r\nCall-ID: o1\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n";
    h.input(pbx(), opt.as_bytes());
    let r = h.sent();
    assert_eq!(r[0].1.status(), Some(200));
    assert!(r[0].1.to_tag().is_some());
    let inv = opt.replace("OPTIONS", "INVITE");
    h.input(pbx(), inv.as_bytes());
    assert_eq!(h.sent()[0].1.status(), Some(405));
    // Garbage is dropped silently.
    h.input(pbx(), b"\x00\x01garbage");
    assert!(h.sent().is_empty());
}

#[test]
fn tcp_keepalive_pong_and_dead_flow() {
    let mut cfg = config();
    cfg.transport = sip_ua::Transport::Tcp;
    cfg.keepalive_interval = Some(Duration::from_secs(30));
    let mut h = Harness::new(cfg, &[]);
    let r = h.one_request("REGISTER");
    assert!(r.top_via().unwrap().starts_with("SIP/2.0/TCP "));
    assert!(r.headers.get("Contact").unwrap().contains(";transport=tcp"));
    h.reply(&r, 200, &[("Expires", "3600".into())]);
    // Reliable transport: no retransmission ever.
    h.advance_to(h.start + Duration::from_secs(30));
    let pings: Vec<_> = std::mem::take(&mut h.queue);
    assert_eq!(pings.len(), 1);
    assert_eq!(pings[0].payload, b"\r\n\r\n");
    // Pong within 10 s: alive.
    h.input(pbx(), b"\r\n");
    h.advance_to(h.start + Duration::from_secs(45));
    assert!(!h.ua.take_transport_failure());
    // Next ping unanswered: dead after 10 s.
    h.advance_to(h.start + Duration::from_secs(60));
    assert_eq!(std::mem::take(&mut h.queue)[0].payload, b"\r\n\r\n");
    h.advance_to(h.start + Duration::from_secs(69));
    assert!(!h.ua.take_transport_failure());
    h.advance_to(h.start + Duration::from_secs(70));
    assert!(h.ua.take_transport_failure());
    assert!(h
        .drain_events()
        .iter()
        .any(|e| matches!(e, Event::Unreachable { .. })));
    // After reconnecting, registration is refreshed at once.
    h.ua.handle_transport_reset(h.now);
    h.collect();
    assert_eq!(h.one_request("REGISTER").cseq().unwrap().0, 2);
    // A ping from the PBX is answered with a pong.
    h.input(pbx(), b"\r\n\r\n");
    h.collect();
    assert_eq!(h.queue.pop().unwrap().payload, b"\r\n");
}

#[test]
fn udp_keepalive_is_sent_periodically() {
    let mut cfg = config();
    cfg.keepalive_interval = Some(Duration::from_secs(20));
    let mut h = Harness::new(cfg, &[]);
    let r = h.one_request("REGISTER");
    h.reply(&r, 200, &[("Expires", "3600".into())]);
    h.advance_to(h.start + Duration::from_secs(60));
    let pings = h
        .queue
        .iter()
        .filter(|t| t.payload == b"\r\n\r\n" && t.destination == pbx())
        .count();
    assert_eq!(pings, 3);
    assert!(!h.ua.take_transport_failure());
}

#[test]
fn pbx_back_after_an_outage_gets_every_subscription_refreshed() {
    let mut cfg = config();
    cfg.register_expires = 120;
    let mut h = Harness::new(cfg, &["1001"]);
    let r = h.one_request("REGISTER");
    h.reply(&r, 200, &[("Expires", "120".into())]);
    let s = h.one_request("SUBSCRIBE");
    h.reply(&s, 200, &[("Expires", "3600".into())]);
    h.drain_events();
    // Registration refresh at 88 s goes unanswered (PBX down).
    h.advance_to(h.start + Duration::from_secs(88) + Duration::from_secs(32));
    let ev = h.drain_events();
    let retry = ev
        .iter()
        .find_map(|e| match e {
            Event::Unreachable { retry_at, .. } => *retry_at,
            _ => None,
        })
        .expect("unreachable");
    h.queue.clear();
    h.advance_to(retry);
    let r = h.one_request("REGISTER");
    h.reply(&r, 200, &[("Expires", "120".into())]);
    // Back: the subscription is refreshed at once, long before its own time.
    h.advance_to(h.now + Duration::from_millis(20));
    let refresh = h.one_request("SUBSCRIBE");
    assert_eq!(refresh.call_id(), s.call_id());
    h.reply(&refresh, 481, &[]);
    h.advance_to(h.now + Duration::from_millis(20));
    let fresh = h.one_request("SUBSCRIBE");
    assert_ne!(fresh.call_id(), s.call_id());
}

#[test]
fn subscriptions_added_and_removed_at_run_time() {
    let mut h = registered(&["1001"]);
    let s1 = subscribe_ok(&mut h, 600);
    h.drain_events();
    h.ua.add_subscription(Subscription::presence("1002"), h.now);
    // The same user and package again changes nothing.
    h.ua.add_subscription(Subscription::presence("1002"), h.now);
    h.advance_to(h.now + Duration::from_millis(20));
    let s2 = h.one_request("SUBSCRIBE");
    assert_eq!(s2.headers.get("Event"), Some("presence"));
    assert_eq!(s2.headers.get("Accept"), Some("application/pidf+xml"));
    h.reply(&s2, 202, &[("Expires", "600".into())]);
    assert_eq!(h.ua.subscriptions().len(), 2);
    h.ua.remove_subscription("1001", EventPackage::Dialog, h.now);
    let un = h.one_request("SUBSCRIBE");
    assert_eq!(un.call_id(), s1.call_id());
    assert_eq!(expires_of(&un), 0);
    h.reply(&un, 200, &[("Expires", "0".into())]);
    assert_eq!(h.ua.subscriptions(), vec![Subscription::presence("1002")]);
    // Its dialog is gone: a late NOTIFY gets 481.
    h.input(pbx(), &notify(&s1, 9, "terminated", None));
    assert_eq!(h.sent()[0].1.status(), Some(481));
}

/// A NOTIFY of the presence package in the dialog of `sub`.
fn presence_notify(sub: &Message, cseq: u32, state: &str) -> Vec<u8> {
    let n = String::from_utf8(notify(sub, cseq, state, None)).unwrap();
    n.replace("Event: dialog", "Event: presence").into_bytes()
}

#[test]
fn refresh_subscription_re_subscribes_in_the_dialog_at_once() {
    let mut h = registered(&["1001"]);
    let s = subscribe_ok(&mut h, 600);
    h.drain_events();
    h.advance_to(h.now + Duration::from_secs(100));
    assert!(h.sent().is_empty());
    // As after a partial NOTIFY that skipped a version (RFC 4235 §4.1).
    assert!(h
        .ua
        .refresh_subscription("1001", EventPackage::Dialog, h.now));
    let r = h.one_request("SUBSCRIBE");
    assert_eq!(r.call_id(), s.call_id());
    assert_eq!(r.to_tag(), Some("pbxtag"));
    assert_eq!(r.headers.get("Event"), Some("dialog"));
    assert_eq!(expires_of(&r), 600);
    let cseq = |m: &Message| -> u32 {
        let c = m.headers.get("CSeq").unwrap();
        c.split_whitespace().next().unwrap().parse().unwrap()
    };
    assert_eq!(cseq(&r), cseq(&s) + 1);
    // One in flight already, or no such subscription: nothing more is sent.
    assert!(!h
        .ua
        .refresh_subscription("1001", EventPackage::Dialog, h.now));
    assert!(!h
        .ua
        .refresh_subscription("1001", EventPackage::Presence, h.now));
    assert!(!h
        .ua
        .refresh_subscription("1002", EventPackage::Dialog, h.now));
    assert!(h.sent().is_empty());
    h.reply(&r, 200, &[("Expires", "600".into())]);
    assert!(matches!(
        h.drain_events().as_slice(),
        [Event::SubscriptionActive { expires: 600, .. }]
    ));
    // The next refresh is timed from this answer, not from the first one.
    h.advance_to(h.now + Duration::from_secs(567));
    assert!(h.requests("SUBSCRIBE").is_empty());
    h.advance_to(h.now + Duration::from_secs(1));
    let next = h.requests("SUBSCRIBE");
    assert_eq!(next.len(), 1);
    assert_eq!(next[0].call_id(), s.call_id());
}

#[test]
fn one_user_watched_through_dialog_and_presence() {
    let mut h = registered(&["1001"]);
    h.ua.add_subscription(Subscription::presence("1001"), h.now);
    let dialog = subscribe_ok(&mut h, 600);
    h.advance_to(h.now + Duration::from_millis(20));
    let presence = subscribe_ok(&mut h, 600);
    assert_eq!(dialog.headers.get("Event"), Some("dialog"));
    assert_eq!(presence.headers.get("Event"), Some("presence"));
    assert_ne!(dialog.call_id(), presence.call_id());
    let active: Vec<EventPackage> = h
        .drain_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::SubscriptionActive { user, package, .. } if user == "1001" => Some(package),
            _ => None,
        })
        .collect();
    assert_eq!(active, [EventPackage::Dialog, EventPackage::Presence]);
    // Each NOTIFY names its package.
    h.input(pbx(), &presence_notify(&presence, 1, "active;expires=600"));
    h.input(pbx(), &notify(&dialog, 1, "active;expires=600", None));
    assert!(h.sent().iter().all(|(_, m)| m.status() == Some(200)));
    let packages: Vec<EventPackage> = h
        .drain_events()
        .into_iter()
        .filter_map(|e| match e {
            Event::Notify(n) if n.user == "1001" => Some(n.package),
            _ => None,
        })
        .collect();
    assert_eq!(packages, [EventPackage::Presence, EventPackage::Dialog]);
    // The PBX ends the presence subscription: only it is subscribed again.
    h.input(
        pbx(),
        &presence_notify(&presence, 2, "terminated;reason=noresource"),
    );
    h.sent();
    assert!(matches!(
        h.drain_events().as_slice(),
        [
            Event::Notify(_),
            Event::SubscriptionTerminated {
                package: EventPackage::Presence,
                ..
            }
        ]
    ));
    let phases: Vec<(EventPackage, sip_ua::SubscriptionPhase)> =
        h.ua.status()
            .subscriptions
            .iter()
            .map(|s| (s.package, s.phase))
            .collect();
    assert_eq!(
        phases,
        [
            (EventPackage::Dialog, sip_ua::SubscriptionPhase::Active),
            (EventPackage::Presence, sip_ua::SubscriptionPhase::Waiting),
        ]
    );
    // Removing the dialog subscription leaves the presence one.
    h.ua.remove_subscription("1001", EventPackage::Dialog, h.now);
    let un = h.one_request("SUBSCRIBE");
    assert_eq!((un.call_id(), expires_of(&un)), (dialog.call_id(), 0));
    h.reply(&un, 200, &[("Expires", "0".into())]);
    assert_eq!(h.ua.subscriptions(), vec![Subscription::presence("1001")]);
}
