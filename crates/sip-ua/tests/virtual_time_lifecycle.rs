//! The user agent against a scripted PBX, in virtual time (no sockets, no
//! sleeps): shutdown, the Contact learnt or discovered, keep-alives, an
//! outage, and subscriptions added and removed at run time.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod vt_harness;

use vt_harness::*;

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
