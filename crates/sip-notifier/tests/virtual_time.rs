//! The notifier in virtual time: against hand-written requests, and against
//! the real sans-IO `sip_ua::UserAgent`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use blf::{LineState, Notification, Tracker};
use sip_notifier::{
    Account, DialogSpec, DialogState, Direction, EndReason, Notifier, NotifierConfig, NotifierEvent,
};
use sip_proto::DigestSession;
use sip_ua::{Event, Message, Subscription, UaConfig, UserAgent};

const PBX: &str = "127.0.0.1:5060";
const WATCHER: &str = "127.0.0.1:5062";

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

fn config(auth: bool) -> NotifierConfig {
    let mut c = NotifierConfig::new("pbx.test", vec![Account::new("blf", "secret")])
        .with_extensions(["1001", "1002"]);
    c.require_auth = auth;
    c
}

fn subscribe(call_id: &str, cseq: u32, to_tag: Option<&str>, expires: u32, extra: &str) -> String {
    let to = match to_tag {
        Some(t) => format!("<sip:1001@pbx.test>;tag={t}"),
        None => "<sip:1001@pbx.test>".to_string(),
    };
    format!(
        "SUBSCRIBE sip:1001@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {WATCHER};rport;branch=z9hG4bK{call_id}{cseq}\r\n\
         From: <sip:blf@pbx.test>;tag=w-{call_id}\r\nTo: {to}\r\nCall-ID: {call_id}\r\nCSeq: {cseq} SUBSCRIBE\r\n\
         Contact: <sip:blf@{WATCHER}>\r\nEvent: dialog\r\nExpires: {expires}\r\n{extra}Content-Length: 0\r\n\r\n"
    )
}

fn drain(n: &mut Notifier) -> Vec<Message> {
    std::iter::from_fn(|| n.poll_transmit())
        .map(|t| Message::parse(&t.payload).unwrap())
        .collect()
}

fn events(n: &mut Notifier) -> Vec<NotifierEvent> {
    std::iter::from_fn(|| n.poll_event()).collect()
}

/// The 200 a watcher sends for a NOTIFY.
fn answer(notify: &Message, status: u16) -> Vec<u8> {
    format!(
        "SIP/2.0 {status} X\r\nVia: {}\r\nFrom: {}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {}\r\nContent-Length: 0\r\n\r\n",
        notify.headers.get("Via").unwrap(),
        notify.headers.get("From").unwrap(),
        notify.headers.get("To").unwrap(),
        notify.call_id().unwrap(),
        notify.headers.get("CSeq").unwrap(),
    )
    .into_bytes()
}

fn line_state(notify: &Message) -> LineState {
    Notification::parse(notify.headers.get("Content-Type"), &notify.body)
        .unwrap()
        .line_state()
}

fn version(notify: &Message) -> u32 {
    let body = String::from_utf8_lossy(&notify.body);
    let root = body.split("<dialog-info").nth(1).unwrap();
    let v = root.split("version=\"").nth(1).unwrap();
    v.split('"').next().unwrap().parse().unwrap()
}

/// Subscribes without authentication; returns the 200 and the first NOTIFY.
fn subscribed(n: &mut Notifier, now: Instant, expires: u32) -> (Message, Message) {
    n.handle_input(
        addr(WATCHER),
        subscribe("c1", 1, None, expires, "").as_bytes(),
        now,
    );
    let out = drain(n);
    assert_eq!(out.len(), 2, "{out:?}");
    (out[0].clone(), out[1].clone())
}

#[test]
fn challenge_then_subscribe_then_full_state_notify() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(true), addr(PBX), t0);
    n.handle_input(
        addr(WATCHER),
        subscribe("c1", 1, None, 600, "").as_bytes(),
        t0,
    );
    let out = drain(&mut n);
    assert_eq!(out.len(), 1);
    let challenge = &out[0];
    assert_eq!(challenge.status(), Some(401));
    let offered: Vec<&str> = challenge.headers.get_all("WWW-Authenticate").collect();
    assert_eq!(offered.len(), 2);
    assert!(offered[0].contains("algorithm=SHA-256") && offered[0].contains("qop=\"auth\""));
    assert!(offered[1].contains("algorithm=MD5"));
    // rport: the watcher learns how it is seen.
    assert!(challenge
        .top_via()
        .unwrap()
        .contains("received=127.0.0.1;rport=5062"));

    // The client's digest code answers; the strongest (SHA-256) is chosen.
    let mut session = DigestSession::new();
    session.on_challenge(challenge, "blf").unwrap();
    let (name, value) = session
        .authorize("blf", "secret", "SUBSCRIBE", "sip:1001@pbx.test", b"")
        .unwrap();
    assert!(value.contains("algorithm=SHA-256"));
    let req = subscribe("c1", 2, None, 600, &format!("{name}: {value}\r\n"));
    n.handle_input(addr(WATCHER), req.as_bytes(), t0);
    let out = drain(&mut n);
    assert_eq!(out.len(), 2, "{out:?}");
    let ok = &out[0];
    assert_eq!(ok.status(), Some(200));
    assert_eq!(ok.headers.get("Expires"), Some("600"));
    let tag = ok.to_tag().unwrap().to_string();
    let notify = &out[1];
    assert_eq!(notify.method(), Some("NOTIFY"));
    assert_eq!(notify.from_tag(), Some(tag.as_str()));
    assert_eq!(notify.to_tag(), Some("w-c1"));
    assert_eq!(notify.call_id(), Some("c1"));
    assert_eq!(notify.headers.get("Event"), Some("dialog"));
    assert_eq!(
        notify.headers.get("Subscription-State"),
        Some("active;expires=600")
    );
    assert_eq!(
        notify.headers.get("Content-Type"),
        Some("application/dialog-info+xml")
    );
    let body = String::from_utf8_lossy(&notify.body);
    assert!(body.contains("version=\"0\" state=\"full\" entity=\"sip:1001@pbx.test\""));
    assert_eq!(line_state(notify), LineState::Idle);
    assert!(matches!(
        events(&mut n).as_slice(),
        [NotifierEvent::Subscribed { extension, expires: 600, .. }] if extension == "1001"
    ));

    // Wrong password: 403, reported.
    let mut session = DigestSession::new();
    session.on_challenge(challenge, "blf").unwrap();
    let (name, value) = session
        .authorize("blf", "wrong", "SUBSCRIBE", "sip:1001@pbx.test", b"")
        .unwrap();
    let req = subscribe("c2", 2, None, 600, &format!("{name}: {value}\r\n"));
    n.handle_input(addr(WATCHER), req.as_bytes(), t0);
    assert_eq!(drain(&mut n)[0].status(), Some(403));
    assert!(matches!(
        events(&mut n).as_slice(),
        [NotifierEvent::AuthFailed { user, .. }] if user == "blf"
    ));

    // A right answer to a nonce too old: 401 with stale=true.
    let later = t0 + Duration::from_secs(301);
    let (name, value) = {
        let mut s = DigestSession::new();
        s.on_challenge(challenge, "blf").unwrap();
        s.authorize("blf", "secret", "SUBSCRIBE", "sip:1001@pbx.test", b"")
            .unwrap()
    };
    let req = subscribe("c3", 2, None, 600, &format!("{name}: {value}\r\n"));
    n.handle_input(addr(WATCHER), req.as_bytes(), later);
    let out = drain(&mut n);
    assert_eq!(out[0].status(), Some(401));
    assert!(out[0]
        .headers
        .get("WWW-Authenticate")
        .unwrap()
        .contains("stale=true"));
    assert_eq!(n.stats().challenges, 2);
}

#[test]
fn refusals_404_489_423_481_405() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(false), addr(PBX), t0);
    let unknown = subscribe("c1", 1, None, 600, "").replace("sip:1001@", "sip:2999@");
    n.handle_input(addr(WATCHER), unknown.as_bytes(), t0);
    assert_eq!(drain(&mut n)[0].status(), Some(404));
    let bad_event =
        subscribe("c2", 1, None, 600, "").replace("Event: dialog", "Event: message-summary");
    n.handle_input(addr(WATCHER), bad_event.as_bytes(), t0);
    let r = drain(&mut n);
    assert_eq!(r[0].status(), Some(489));
    assert_eq!(r[0].headers.get("Allow-Events"), Some("dialog, presence"));
    n.handle_input(
        addr(WATCHER),
        subscribe("c3", 1, None, 10, "").as_bytes(),
        t0,
    );
    let r = drain(&mut n);
    assert_eq!(r[0].status(), Some(423));
    assert_eq!(r[0].headers.get("Min-Expires"), Some("60"));
    n.handle_input(
        addr(WATCHER),
        subscribe("c4", 2, Some("nope"), 600, "").as_bytes(),
        t0,
    );
    assert_eq!(drain(&mut n)[0].status(), Some(481));
    let publish = subscribe("c5", 1, None, 600, "").replace("SUBSCRIBE", "PUBLISH");
    n.handle_input(addr(WATCHER), publish.as_bytes(), t0);
    assert_eq!(drain(&mut n)[0].status(), Some(405));
    assert_eq!(n.stats().rejected, 5);
    assert_eq!(n.stats().active_subscriptions, 0);
}

#[test]
fn set_line_sends_next_version_and_coalesces_while_in_flight() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(false), addr(PBX), t0);
    let (_, first) = subscribed(&mut n, t0, 600);
    assert_eq!(version(&first), 0);
    // Unanswered: changes wait for the answer, and only the newest goes out.
    let ringing =
        DialogSpec::new("x", Direction::Recipient, DialogState::Early).with_remote("1002");
    n.set_line("1001", vec![ringing.clone()], t0);
    let talking = DialogSpec {
        state: DialogState::Confirmed,
        ..ringing.clone()
    };
    n.set_line("1001", vec![talking.clone()], t0);
    assert!(drain(&mut n).is_empty());
    n.handle_input(addr(WATCHER), &answer(&first, 200), t0);
    let out = drain(&mut n);
    assert_eq!(out.len(), 1);
    assert_eq!(version(&out[0]), 1);
    assert_eq!(line_state(&out[0]), LineState::Busy);
    let cseq1 = first.cseq().unwrap().0;
    assert_eq!(out[0].cseq().unwrap().0, cseq1 + 1);
    n.handle_input(addr(WATCHER), &answer(&out[0], 200), t0);
    // Answered: the next change goes at once. Hold, then two calls at once.
    n.set_line("1001", vec![talking.clone().on_hold()], t0);
    let held = drain(&mut n).remove(0);
    assert_eq!((version(&held), line_state(&held)), (2, LineState::Hold));
    n.handle_input(addr(WATCHER), &answer(&held, 200), t0);
    let second = DialogSpec::new("y", Direction::Recipient, DialogState::Early).with_remote("1003");
    n.set_line("1001", vec![talking.on_hold(), second], t0);
    let two = drain(&mut n).remove(0);
    assert_eq!((version(&two), line_state(&two)), (3, LineState::Ringing));
    n.handle_input(addr(WATCHER), &answer(&two, 200), t0);
    // Another extension's change goes to nobody.
    n.set_line("1002", vec![ringing], t0);
    assert!(drain(&mut n).is_empty());
    let s = n.stats();
    assert_eq!((s.notifies_sent, s.notifies_answered), (4, 4));
    let answered: Vec<u32> = events(&mut n)
        .into_iter()
        .filter_map(|e| match e {
            NotifierEvent::NotifyAnswered { version, .. } => Some(version),
            _ => None,
        })
        .collect();
    assert_eq!(answered, vec![0, 1, 2, 3]);
}

#[test]
fn retransmitted_subscribe_gets_the_same_answer_and_no_second_notify() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(false), addr(PBX), t0);
    let (ok, _) = subscribed(&mut n, t0, 600);
    n.handle_input(
        addr(WATCHER),
        subscribe("c1", 1, None, 600, "").as_bytes(),
        t0,
    );
    let again = drain(&mut n);
    assert_eq!(again, vec![ok]);
}

#[test]
fn refresh_in_dialog_gets_200_and_a_notify_then_unsubscribe_gets_terminated() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(false), addr(PBX), t0);
    let (ok, first) = subscribed(&mut n, t0, 120);
    n.handle_input(addr(WATCHER), &answer(&first, 200), t0);
    let tag = ok.to_tag().unwrap().to_string();
    let t1 = t0 + Duration::from_secs(90);
    n.handle_timeout(t1);
    assert!(drain(&mut n).is_empty());
    n.handle_input(
        addr(WATCHER),
        subscribe("c1", 2, Some(&tag), 120, "").as_bytes(),
        t1,
    );
    let out = drain(&mut n);
    assert_eq!(out[0].status(), Some(200));
    assert_eq!(out[0].to_tag(), Some(tag.as_str()));
    assert_eq!(version(&out[1]), 1);
    assert_eq!(
        out[1].headers.get("Subscription-State"),
        Some("active;expires=120")
    );
    n.handle_input(addr(WATCHER), &answer(&out[1], 200), t1);
    // The first grant would have run out at 120 s: the refresh moved it.
    n.handle_timeout(t0 + Duration::from_secs(150));
    assert!(drain(&mut n).is_empty());
    // Expires: 0.
    n.handle_input(
        addr(WATCHER),
        subscribe("c1", 3, Some(&tag), 0, "").as_bytes(),
        t1,
    );
    let out = drain(&mut n);
    assert_eq!(out[0].status(), Some(200));
    assert_eq!(
        out[1].headers.get("Subscription-State"),
        Some("terminated;reason=timeout")
    );
    assert_eq!(version(&out[1]), 2);
    assert_eq!(n.stats().active_subscriptions, 0);
    n.handle_input(addr(WATCHER), &answer(&out[1], 200), t1);
    assert!(events(&mut n).iter().any(|e| matches!(
        e,
        NotifierEvent::Unsubscribed {
            reason: EndReason::Unsubscribed,
            ..
        }
    )));
    // The dialog is gone: a refresh now is 481, a change sends nothing.
    n.handle_input(
        addr(WATCHER),
        subscribe("c1", 4, Some(&tag), 120, "").as_bytes(),
        t1,
    );
    assert_eq!(drain(&mut n)[0].status(), Some(481));
    n.set_line("1001", Vec::new(), t1);
    assert!(drain(&mut n).is_empty());
}

#[test]
fn unrefreshed_subscription_expires_with_a_final_notify() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(false), addr(PBX), t0);
    let (_, first) = subscribed(&mut n, t0, 60);
    n.handle_input(addr(WATCHER), &answer(&first, 200), t0);
    let deadline = t0 + Duration::from_secs(60);
    while let Some(at) = n.poll_timeout().filter(|at| *at < deadline) {
        n.handle_timeout(at);
        assert!(drain(&mut n).is_empty());
    }
    assert_eq!(n.poll_timeout(), Some(deadline));
    n.handle_timeout(deadline);
    let out = drain(&mut n);
    assert_eq!(
        out[0].headers.get("Subscription-State"),
        Some("terminated;reason=timeout")
    );
    assert!(events(&mut n).iter().any(|e| matches!(
        e,
        NotifierEvent::Unsubscribed {
            reason: EndReason::Expired,
            ..
        }
    )));
    assert_eq!(n.stats().active_subscriptions, 0);
}

#[test]
fn unanswered_notify_is_retransmitted_per_timer_e_then_times_out() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(false), addr(PBX), t0);
    let (_, first) = subscribed(&mut n, t0, 600);
    let mut sent_at = Vec::new();
    let mut now = t0;
    while let Some(at) = n.poll_timeout() {
        if at > t0 + Duration::from_secs(40) {
            break;
        }
        now = at;
        n.handle_timeout(now);
        for m in drain(&mut n) {
            assert_eq!(m.headers.get("CSeq"), first.headers.get("CSeq"));
            sent_at.push(now.duration_since(t0).as_millis());
        }
    }
    // T1 = 500 ms doubling to T2 = 4 s, until Timer F (32 s).
    assert_eq!(
        sent_at,
        vec![500, 1500, 3500, 7500, 11500, 15500, 19500, 23500, 27500, 31500]
    );
    assert_eq!(now.duration_since(t0), Duration::from_secs(32));
    let ev = events(&mut n);
    assert!(ev.contains(&NotifierEvent::NotifyFailed {
        extension: "1001".into(),
        version: 0,
        status: None
    }));
    assert!(ev.iter().any(|e| matches!(
        e,
        NotifierEvent::Unsubscribed {
            reason: EndReason::TimedOut,
            ..
        }
    )));
    let s = n.stats();
    assert_eq!(
        (s.retransmissions, s.notifies_failed, s.active_subscriptions),
        (10, 1, 0)
    );
}

#[test]
fn notify_answered_481_ends_the_subscription() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(false), addr(PBX), t0);
    let (_, first) = subscribed(&mut n, t0, 600);
    n.handle_input(addr(WATCHER), &answer(&first, 481), t0);
    assert!(events(&mut n).iter().any(|e| matches!(
        e,
        NotifierEvent::Unsubscribed {
            reason: EndReason::Rejected(481),
            ..
        }
    )));
    n.set_line("1001", Vec::new(), t0);
    assert!(drain(&mut n).is_empty());
    assert_eq!(n.stats().active_subscriptions, 0);
    // No retransmission left to time (only the 200's Timer J, 32 s).
    assert_eq!(n.poll_timeout(), Some(t0 + Duration::from_secs(32)));
}

#[test]
fn shutdown_terminates_every_subscription() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(false), addr(PBX), t0);
    let (_, first) = subscribed(&mut n, t0, 600);
    n.handle_input(addr(WATCHER), &answer(&first, 200), t0);
    n.shutdown(t0);
    assert!(!n.is_shut_down());
    let out = drain(&mut n);
    assert_eq!(
        out[0].headers.get("Subscription-State"),
        Some("terminated;reason=deactivated")
    );
    n.handle_input(addr(WATCHER), &answer(&out[0], 200), t0);
    assert!(n.is_shut_down());
}

#[test]
fn no_input_panics() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(true), addr(PBX), t0);
    let good = subscribe("c1", 1, None, 600, "");
    let mut inputs: Vec<Vec<u8>> = vec![
        Vec::new(),
        b"\r\n\r\n".to_vec(),
        b"garbage".to_vec(),
        b"SIP/2.0 200 OK\r\n\r\n".to_vec(),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK-snzz-1\r\n\r\n".to_vec(),
        b"SIP/2.0 200 OK\r\nVia: SIP/2.0/UDP x;branch=z9hG4bK-sn-\r\n\r\n".to_vec(),
        b"SUBSCRIBE sip:1001 SIP/2.0\r\n\r\n".to_vec(),
        b"REGISTER sip:x SIP/2.0\r\nVia: SIP/2.0/UDP a;branch=z9hG4bKa\r\nContact: *\r\nAuthorization: Digest \r\n\r\n".to_vec(),
        good.replace("Event: dialog", "Event:").into_bytes(),
        good.replace("From: <sip:blf@pbx.test>;tag=w-c1", "From: <").into_bytes(),
        good.replace("Expires: 600", "Expires: 99999999999999999999").into_bytes(),
        format!("{good}Authorization: Digest username=\"\u{e9}\", nc=ffffffffffff").into_bytes(),
    ];
    // Every prefix and a few byte flips of a valid SUBSCRIBE.
    for i in 0..good.len() {
        inputs.push(good.as_bytes()[..i].to_vec());
        let mut flipped = good.clone().into_bytes();
        flipped[i] ^= 0x5a;
        inputs.push(flipped);
    }
    for input in &inputs {
        n.handle_input(addr(WATCHER), input, t0);
        n.handle_timeout(t0);
        drain_raw(&mut n);
    }
}

fn drain_raw(n: &mut Notifier) {
    while n.poll_transmit().is_some() {}
    while n.poll_event().is_some() {}
}

/// Moves datagrams between the real user agent and the notifier, firing
/// timers in virtual time, until `until`.
fn pump(
    ua: &mut UserAgent,
    n: &mut Notifier,
    ua_events: &mut Vec<Event>,
    now: &mut Instant,
    until: Instant,
) {
    loop {
        let mut moved = false;
        while let Some(t) = ua.poll_transmit() {
            assert_eq!(t.destination, addr(PBX));
            n.handle_input(addr(WATCHER), &t.payload, *now);
            moved = true;
        }
        while let Some(t) = n.poll_transmit() {
            assert_eq!(t.destination, addr(WATCHER));
            ua.handle_input(addr(PBX), &t.payload, *now);
            moved = true;
        }
        ua_events.extend(std::iter::from_fn(|| ua.poll_event()));
        if moved {
            continue;
        }
        let next = [ua.poll_timeout(), n.poll_timeout()]
            .into_iter()
            .flatten()
            .min();
        match next {
            Some(t) if t <= until => {
                *now = t.max(*now);
                ua.handle_timeout(*now);
                n.handle_timeout(*now);
            }
            _ => {
                *now = until;
                return;
            }
        }
    }
}

#[test]
fn real_user_agent_registers_subscribes_refreshes_and_unsubscribes() {
    let t0 = Instant::now();
    let mut now = t0;
    let mut n = Notifier::new(config(true), addr(PBX), t0);
    let mut ua_config = UaConfig::new("pbx.test", "blf", "secret");
    ua_config.subscribe_expires = 120;
    ua_config.register_expires = 300;
    let mut ua = UserAgent::new(
        ua_config,
        addr(PBX),
        addr(WATCHER),
        vec![Subscription::dialog("1001"), Subscription::dialog("1002")],
        t0,
    );
    ua.handle_timeout(t0);
    let mut ua_events = Vec::new();
    pump(
        &mut ua,
        &mut n,
        &mut ua_events,
        &mut now,
        t0 + Duration::from_secs(5),
    );
    assert!(ua_events
        .iter()
        .any(|e| matches!(e, Event::Registered { expires: 300, .. })));
    let s = n.stats();
    assert_eq!((s.registrations, s.active_subscriptions), (1, 2));
    assert!(
        s.challenges >= 3,
        "REGISTER and both SUBSCRIBEs challenged: {s:?}"
    );

    let mut tracker = Tracker::new();
    let mut states = Vec::new();
    let mut take = |events: &mut Vec<Event>| {
        for e in events.drain(..) {
            if let Event::Notify(notify) = e {
                if notify.user == "1001" {
                    let parsed =
                        Notification::parse(notify.content_type.as_deref(), &notify.body).unwrap();
                    let u = tracker.apply(parsed);
                    states.push(u.line_state);
                }
            }
        }
    };
    take(&mut ua_events);
    let call = DialogSpec::new("c", Direction::Initiator, DialogState::Early).with_remote("1002");
    n.set_line("1001", vec![call.clone()], now);
    let until = now + Duration::from_secs(1);
    pump(&mut ua, &mut n, &mut ua_events, &mut now, until);
    take(&mut ua_events);
    n.set_line(
        "1001",
        vec![DialogSpec {
            state: DialogState::Terminated,
            ..call
        }],
        now,
    );
    // Past the refresh (half of 120 s) and past the first grant.
    pump(
        &mut ua,
        &mut n,
        &mut ua_events,
        &mut now,
        t0 + Duration::from_secs(200),
    );
    take(&mut ua_events);
    assert_eq!(
        states,
        vec![
            LineState::Idle,
            LineState::Busy,
            LineState::Idle,
            LineState::Idle,
            LineState::Idle,
        ],
        "initial, call, hang-up, then one NOTIFY per refresh"
    );
    let ev = events(&mut n);
    let refreshes = ev
        .iter()
        .filter(|e| matches!(e, NotifierEvent::Refreshed { extension, .. } if extension == "1001"))
        .count();
    // Refreshed 32 s before the 120 s grant runs out: at 88 s and 176 s.
    assert_eq!(refreshes, 2);
    assert_eq!(n.stats().active_subscriptions, 2);

    ua.shutdown(now);
    let until = now + Duration::from_secs(5);
    pump(&mut ua, &mut n, &mut ua_events, &mut now, until);
    assert!(ua.is_shut_down());
    let s = n.stats();
    assert_eq!((s.registrations, s.active_subscriptions), (0, 0));
    assert_eq!(s.notifies_failed, 0);
    let ev = events(&mut n);
    assert!(ev
        .iter()
        .any(|e| matches!(e, NotifierEvent::Unregistered { expired: false, .. })));
    assert_eq!(
        ev.iter()
            .filter(|e| matches!(
                e,
                NotifierEvent::Unsubscribed {
                    reason: EndReason::Unsubscribed,
                    ..
                }
            ))
            .count(),
        2
    );
}

#[test]
fn presence_subscription_gets_asterisk_style_pidf() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(false), addr(PBX), t0);
    let req = subscribe("p1", 1, None, 600, "").replace("Event: dialog", "Event: presence");
    n.handle_input(addr(WATCHER), req.as_bytes(), t0);
    let mut last = drain(&mut n).pop().unwrap();
    assert_eq!(
        last.headers.get("Content-Type"),
        Some("application/pidf+xml")
    );
    assert_eq!(line_state(&last), LineState::Idle);
    let ringing = DialogSpec::new("x", Direction::Recipient, DialogState::Early);
    let talking = DialogSpec {
        state: DialogState::Confirmed,
        ..ringing.clone()
    };
    let steps = [
        (vec![ringing], LineState::Ringing),
        (vec![talking.clone()], LineState::Busy),
        (vec![talking.clone().on_hold()], LineState::Hold),
        (vec![], LineState::Idle),
    ];
    for (dialogs, want) in steps {
        n.handle_input(addr(WATCHER), &answer(&last, 200), t0);
        n.set_line("1001", dialogs, t0);
        last = drain(&mut n).pop().unwrap();
        assert_eq!(line_state(&last), want);
    }
}

#[test]
fn registration_is_granted_refreshed_and_expires() {
    let t0 = Instant::now();
    let mut n = Notifier::new(config(false), addr(PBX), t0);
    let register = |cseq: u32, expires: u32| {
        format!(
            "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {WATCHER};branch=z9hG4bKr{cseq}\r\n\
             From: <sip:blf@pbx.test>;tag=r\r\nTo: <sip:blf@pbx.test>\r\nCall-ID: reg\r\n\
             CSeq: {cseq} REGISTER\r\nContact: <sip:blf@{WATCHER}>\r\nExpires: {expires}\r\n\
             Content-Length: 0\r\n\r\n"
        )
    };
    n.handle_input(addr(WATCHER), register(1, 60).as_bytes(), t0);
    let ok = drain(&mut n).remove(0);
    assert_eq!(ok.status(), Some(200));
    assert_eq!(
        ok.headers.get("Contact"),
        Some(format!("<sip:blf@{WATCHER}>;expires=60").as_str())
    );
    // Refreshed at 50 s: still there at 60 s, gone at 110 s.
    let t1 = t0 + Duration::from_secs(50);
    n.handle_input(addr(WATCHER), register(2, 60).as_bytes(), t1);
    drain(&mut n);
    n.handle_timeout(t0 + Duration::from_secs(60));
    assert_eq!(n.stats().registrations, 1);
    n.handle_timeout(t1 + Duration::from_secs(60));
    assert_eq!(n.stats().registrations, 0);
    let ev = events(&mut n);
    assert!(ev.contains(&NotifierEvent::Unregistered {
        user: "blf".into(),
        expired: true
    }));
    assert_eq!(
        n.poll_timeout().map(|t| t > t1 + Duration::from_secs(60)),
        None
    );
    // Expires: 0 removes it.
    let t2 = t1 + Duration::from_secs(100);
    n.handle_input(addr(WATCHER), register(3, 60).as_bytes(), t2);
    n.handle_input(addr(WATCHER), register(4, 0).as_bytes(), t2);
    assert_eq!(n.stats().registrations, 0);
    assert!(events(&mut n).contains(&NotifierEvent::Unregistered {
        user: "blf".into(),
        expired: false
    }));
}
