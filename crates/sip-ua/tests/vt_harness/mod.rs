//! The scripted PBX and its helpers, shared by the virtual-time tests of
//! the user agent (`virtual_time.rs`, `virtual_time_lifecycle.rs`).
// Each test file uses a part of it (and of what it re-exports).
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub use std::net::SocketAddr;
pub use std::time::{Duration, Instant};

pub use sip_proto::digest::{compute_response, Algorithm, Qop};
pub use sip_proto::message::{name_addr_param, split_name_addr, StartLine};
pub use sip_ua::{
    AddressDiscovery, ContactAddress, DiscoveryTransmit, Event, EventPackage, Message, SubState,
    Subscription, TerminationReason, UaConfig, UserAgent,
};

pub const PBX: &str = "127.0.0.1:5060";

pub fn pbx() -> SocketAddr {
    PBX.parse().unwrap()
}
pub fn local() -> SocketAddr {
    "127.0.0.1:40000".parse().unwrap()
}

pub fn config() -> UaConfig {
    let mut c = UaConfig::new(PBX, "blf", "blfsecret");
    c.keepalive_interval = None;
    c
}

pub struct Harness {
    pub ua: UserAgent,
    pub now: Instant,
    pub start: Instant,
    pub events: Vec<Event>,
    pub queue: Vec<sip_ua::Transmit>,
}

impl Harness {
    pub fn new(cfg: UaConfig, subs: &[&str]) -> Self {
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
    pub fn sent(&mut self) -> Vec<(SocketAddr, Message)> {
        self.collect();
        std::mem::take(&mut self.queue)
            .into_iter()
            .filter(|t| !t.payload.iter().all(|b| *b == b'\r' || *b == b'\n'))
            .filter(|t| !sip_proto::is_stun(&t.payload) && t.payload.first() != Some(&0))
            .map(|t| (t.destination, Message::parse(&t.payload).unwrap()))
            .collect()
    }

    /// Fires the timers due now (as a driver does after every input) and queues the transmits.
    pub fn collect(&mut self) {
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

    pub fn sent_requests(&mut self) -> Vec<Message> {
        self.sent().into_iter().map(|(_, m)| m).collect()
    }

    pub fn requests(&mut self, method: &str) -> Vec<Message> {
        self.sent_requests()
            .into_iter()
            .filter(|m| m.method() == Some(method))
            .collect()
    }

    pub fn one_request(&mut self, method: &str) -> Message {
        let mut reqs = self.sent_requests();
        assert_eq!(reqs.len(), 1, "expected one {method}, got {reqs:#?}");
        let r = reqs.remove(0);
        assert_eq!(r.method(), Some(method));
        r
    }

    pub fn drain_events(&mut self) -> Vec<Event> {
        let mut out = Vec::new();
        while let Some(e) = self.ua.poll_event() {
            out.push(e.clone());
            self.events.push(e);
        }
        out
    }

    pub fn input(&mut self, from: SocketAddr, data: &[u8]) {
        self.ua.handle_input(from, data, self.now);
    }

    pub fn reply(&mut self, req: &Message, status: u16, extra: &[(&str, String)]) {
        let bytes = response(req, status, extra);
        self.input(pbx(), &bytes);
    }

    /// Advances virtual time to `t`, firing every timer on the way.
    pub fn advance_to(&mut self, t: Instant) {
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

    pub fn elapsed(&self) -> Duration {
        self.now - self.start
    }
}

pub fn response(req: &Message, status: u16, extra: &[(&str, String)]) -> Vec<u8> {
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
pub fn notify(sub: &Message, cseq: u32, state: &str, body: Option<&str>) -> Vec<u8> {
    notify_branch(sub, cseq, state, body, &format!("z9hG4bKn{cseq}"))
}

pub fn notify_branch(
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

pub fn expires_of(m: &Message) -> u32 {
    m.headers.get("Expires").unwrap().parse().unwrap()
}

pub fn challenge(nonce: &str, extra: &str) -> String {
    format!("Digest realm=\"127.0.0.1\", nonce=\"{nonce}\", qop=\"auth\"{extra}")
}

/// Checks the Authorization of `req` against the password.
pub fn assert_digest_ok(req: &Message, header: &str, password: &str) {
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
pub fn registered(subs: &[&str]) -> Harness {
    let mut h = Harness::new(config(), subs);
    let r = h.one_request("REGISTER");
    h.reply(&r, 401, &[("WWW-Authenticate", challenge("n1", ""))]);
    let r = h.one_request("REGISTER");
    h.reply(&r, 200, &[("Expires", "600".into())]);
    h
}

/// Subscribes `ext` with a 407 round and a 200 granting `expires`; returns the last SUBSCRIBE.
pub fn subscribe_ok(h: &mut Harness, expires: u32) -> Message {
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

pub fn presence_notify(sub: &Message, cseq: u32, state: &str) -> Vec<u8> {
    let n = String::from_utf8(notify(sub, cseq, state, None)).unwrap();
    n.replace("Event: dialog", "Event: presence").into_bytes()
}
