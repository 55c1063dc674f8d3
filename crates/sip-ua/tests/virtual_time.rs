//! The user agent against a scripted PBX, in virtual time (no sockets, no
//! sleeps): registration, digest, subscriptions and NOTIFY handling.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod vt_harness;

use vt_harness::*;

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
