//! The user agent against a real Kamailio (registrar, digest auth, presence +
//! dialog-info) and real SIPp phones, all on 127.0.0.1.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use sip_ua::driver::EventReceiver;
use sip_ua::driver::{spawn, UaHandle};
use sip_ua::{Event, Message, Subscription, Transport, UaConfig};
use testbed::{Kamailio, KamailioOptions, ServerCertOptions, SippCall, TestPki};

/// How long a wait for events lasts before the test fails: generous for a
/// loaded 2-core machine; a passing run never waits for it.
const PATIENCE: Duration = Duration::from_secs(60);

fn config(pbx: &Kamailio, transport: Transport) -> UaConfig {
    let mut c = UaConfig::new(pbx.sip_addr().to_string(), "blf", "blfsecret");
    c.transport = transport;
    c.listen = Some("127.0.0.1:0".parse().unwrap());
    c.user_agent = "sip-ua-test".into();
    c
}

async fn start(cfg: UaConfig, exts: &[&str]) -> (UaHandle, EventReceiver) {
    spawn(
        cfg,
        exts.iter().map(|e| Subscription::dialog(*e)).collect(),
        None,
    )
    .await
    .unwrap()
}

/// Collects events until `done(seen)` holds; panics with what was seen after `limit`.
async fn wait_until(
    rx: &mut EventReceiver,
    seen: &mut Vec<Event>,
    limit: Duration,
    what: &str,
    done: impl Fn(&[Event]) -> bool,
) {
    let deadline = tokio::time::Instant::now() + limit;
    while !done(seen) {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => seen.push(e),
            Ok(None) => panic!("event channel closed while waiting for {what}; saw {seen:#?}"),
            Err(_) => panic!("timed out waiting for {what}; saw {seen:#?}"),
        }
    }
}

fn count(seen: &[Event], f: impl Fn(&Event) -> bool) -> usize {
    seen.iter().filter(|e| f(e)).count()
}

fn active(seen: &[Event], ext: &str) -> usize {
    count(
        seen,
        |e| matches!(e, Event::SubscriptionActive { user, .. } if user == ext),
    )
}

fn registered(seen: &[Event]) -> usize {
    count(seen, |e| matches!(e, Event::Registered { .. }))
}

/// Bodies of the NOTIFYs for `ext`, in order.
fn bodies(seen: &[Event], ext: &str) -> Vec<String> {
    seen.iter()
        .filter_map(|e| match e {
            Event::Notify(n) if n.user == ext => {
                Some(String::from_utf8_lossy(&n.body).into_owned())
            }
            _ => None,
        })
        .collect()
}

/// `true` when the NOTIFY bodies of `ext` show the call, then its end: a
/// NOTIFY with an `early` or `confirmed` dialog, and a later one with a
/// `terminated` dialog. Kamailio sends a NOTIFY per PUBLISH it processes,
/// and under load it may fold the ringing and answered states into one
/// document or skip one, so the test asks for "a call, then its end" rather
/// than for every step (the unit tests check each state's mapping).
fn saw_call(seen: &[Event], ext: &str) -> bool {
    let bodies = bodies(seen, ext);
    let has = |b: &String, s: &str| b.contains(&format!("<state>{s}</state>"));
    let in_call = bodies
        .iter()
        .position(|b| has(b, "early") || has(b, "confirmed"));
    matches!(in_call, Some(i) if bodies[i + 1..].iter().any(|b| has(b, "terminated")))
}

async fn up(pbx: &Kamailio, cfg: UaConfig, exts: &[&str]) -> (UaHandle, EventReceiver, Vec<Event>) {
    let _ = pbx;
    let (h, mut rx) = start(cfg, exts).await;
    let mut seen = Vec::new();
    wait_until(
        &mut rx,
        &mut seen,
        PATIENCE,
        "registration and subscriptions",
        |s| registered(s) >= 1 && exts.iter().all(|e| active(s, e) >= 1),
    )
    .await;
    (h, rx, seen)
}

async fn call_and_check(pbx: &Kamailio, rx: &mut EventReceiver, seen: &mut Vec<Event>) {
    let call = SippCall::start(
        pbx,
        "1001",
        "1002",
        Duration::from_millis(800),
        Duration::from_millis(800),
    )
    .unwrap();
    wait_until(
        rx,
        seen,
        PATIENCE,
        "a call (early or confirmed), then terminated, for 1001 and 1002",
        |s| saw_call(s, "1001") && saw_call(s, "1002"),
    )
    .await;
    tokio::task::spawn_blocking(move || call.wait())
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio + sipp (scripts/install-peers.sh); run by scripts/test-all"]
async fn kamailio_407_register_subscribe_and_a_call() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let (h, mut rx, mut seen) = up(&pbx, config(&pbx, Transport::Udp), &["1001", "1002"]).await;
    // Initial NOTIFYs (no body: idle).
    wait_until(&mut rx, &mut seen, PATIENCE, "initial NOTIFYs", |s| {
        !bodies(s, "1001").is_empty() && !bodies(s, "1002").is_empty()
    })
    .await;
    call_and_check(&pbx, &mut rx, &mut seen).await;
    h.shutdown().await.unwrap();
    // After shutdown Kamailio has no registration of blf left.
    let ul = pbx.kamcmd(&["ul.dump"]).unwrap();
    assert!(!ul.contains("sip:blf@"), "un-REGISTER left a contact: {ul}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio + sipp (scripts/install-peers.sh); run by scripts/test-all"]
async fn kamailio_401_challenges_for_subscribe() {
    let pbx = Kamailio::start(KamailioOptions::default().sub_challenge_401()).unwrap();
    let (h, mut rx, mut seen) = up(&pbx, config(&pbx, Transport::Udp), &["1001", "1002"]).await;
    call_and_check(&pbx, &mut rx, &mut seen).await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
async fn kamailio_sha256_digest() {
    let pbx = Kamailio::start(KamailioOptions::default().auth_sha256()).unwrap();
    let (h, _rx, _seen) = up(&pbx, config(&pbx, Transport::Udp), &["1001"]).await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
async fn kamailio_refreshes_happen_before_expiry() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let mut cfg = config(&pbx, Transport::Udp);
    cfg.subscribe_expires = 6;
    cfg.register_expires = 6;
    let (h, mut rx, mut seen) = up(&pbx, cfg, &["1001"]).await;
    let t0 = std::time::Instant::now();
    // Expiry 6 s → refresh every 3 s: three refreshes in about 9 s, and the
    // subscription never times out at the PBX. Refreshing only near the
    // expiry (5 s or more each) would take 15 s or more; the slack below is
    // for round trips on a loaded machine.
    wait_until(
        &mut rx,
        &mut seen,
        Duration::from_secs(20),
        "three subscription refreshes",
        |s| active(s, "1001") >= 4,
    )
    .await;
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(14), "{took:?}");
    // The registrar raises 6 s to its minimum of 60 s: the granted value counts,
    // so the REGISTER is refreshed after 30 s, before it runs out (the asked
    // 6 s would refresh after 3 s). t0 came a little after the registration.
    assert!(
        matches!(seen[0], Event::Registered { expires: 60, .. }),
        "{seen:#?}"
    );
    wait_until(
        &mut rx,
        &mut seen,
        Duration::from_secs(50),
        "registration refresh",
        |s| registered(s) >= 2,
    )
    .await;
    let took = t0.elapsed();
    assert!(
        took > Duration::from_secs(20) && took < Duration::from_secs(45),
        "{took:?}"
    );
    assert_eq!(
        count(&seen, |e| matches!(
            e,
            Event::SubscriptionTerminated { .. } | Event::SubscriptionFailed { .. }
        )),
        0,
        "{seen:#?}"
    );
    for e in &seen {
        if let Event::Notify(n) = e {
            let st = n.subscription_state.as_ref().unwrap();
            assert_eq!(st.state, sip_ua::SubState::Active, "{seen:#?}");
        }
    }
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio + sipp (scripts/install-peers.sh); run by scripts/test-all"]
async fn kamailio_restart_with_state_lost_recovers_by_itself() {
    let mut pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let mut cfg = config(&pbx, Transport::Udp);
    cfg.subscribe_expires = 10;
    let (h, mut rx, mut seen) = up(&pbx, cfg, &["1001", "1002"]).await;
    tokio::task::block_in_place(|| pbx.restart_with_state_lost()).unwrap();
    let before = seen.len();
    // The next refresh gets 481 → new SUBSCRIBE → active again, for both.
    wait_until(&mut rx, &mut seen, PATIENCE, "re-subscription after 481", |s| {
        let after = &s[before..];
        ["1001", "1002"].iter().all(|e| {
            after.iter().any(|ev| matches!(ev, Event::SubscriptionFailed { user, status: Some(481), .. } if user == e))
                && active(after, e) >= 1
        })
    })
    .await;
    // And live NOTIFYs again.
    let mut after: Vec<Event> = Vec::new();
    call_and_check(&pbx, &mut rx, &mut after).await;
    seen.extend(after);
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
async fn spoofed_notify_from_another_port_gets_481() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let (h, mut rx, mut seen) = up(&pbx, config(&pbx, Transport::Udp), &["1001"]).await;
    let ua_addr: SocketAddr = h.local_addr();
    let spoofer = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let spoof = format!(
        "NOTIFY sip:blf@{ua_addr} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bKspoof\r\n\
         From: <sip:1001@127.0.0.1>;tag=evil\r\nTo: <sip:blf@127.0.0.1>;tag=guess\r\n\
         Call-ID: forged-call-id\r\nCSeq: 1 NOTIFY\r\nEvent: dialog\r\nMax-Forwards: 70\r\n\
         Subscription-State: terminated;reason=noresource\r\nContent-Length: 0\r\n\r\n",
        spoofer.local_addr().unwrap()
    );
    spoofer.send_to(spoof.as_bytes(), ua_addr).await.unwrap();
    let mut buf = vec![0u8; 4096];
    let (n, _) = tokio::time::timeout(PATIENCE, spoofer.recv_from(&mut buf))
        .await
        .expect("an answer to the spoofed NOTIFY")
        .unwrap();
    let resp = Message::parse(&buf[..n]).unwrap();
    assert_eq!(resp.status(), Some(481));
    wait_until(&mut rx, &mut seen, PATIENCE, "NotifyRejected", |s| {
        s.iter().any(|e| matches!(e, Event::NotifyRejected { from, .. } if *from == spoofer.local_addr().unwrap()))
    })
    .await;
    // Nothing changed: a call still produces NOTIFYs for 1001.
    let call = SippCall::start(
        &pbx,
        "1001",
        "1002",
        Duration::from_millis(500),
        Duration::from_millis(500),
    )
    .unwrap();
    wait_until(&mut rx, &mut seen, PATIENCE, "call NOTIFYs for 1001", |s| {
        saw_call(s, "1001")
    })
    .await;
    assert_eq!(
        count(&seen, |e| matches!(e, Event::SubscriptionTerminated { .. })),
        0
    );
    tokio::task::spawn_blocking(move || call.wait())
        .await
        .unwrap()
        .unwrap();
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio + sipp (scripts/install-peers.sh); run by scripts/test-all"]
async fn kamailio_over_tcp() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let (h, mut rx, mut seen) = up(&pbx, config(&pbx, Transport::Tcp), &["1001", "1002"]).await;
    call_and_check(&pbx, &mut rx, &mut seen).await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
async fn kamailio_423_min_expires_for_subscribe() {
    let pbx = Kamailio::start(KamailioOptions::default().min_expires(60, 1)).unwrap();
    let mut cfg = config(&pbx, Transport::Udp);
    cfg.subscribe_expires = 10;
    let (h, _rx, seen) = up(&pbx, cfg, &["1001"]).await;
    // 423 + Min-Expires: 60 → the SUBSCRIBE is sent again asking 60 s.
    assert!(
        seen.iter().any(
            |e| matches!(e, Event::SubscriptionActive { user, expires: 60, .. } if user == "1001")
        ),
        "{seen:#?}"
    );
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio + sipp (scripts/install-peers.sh); run by scripts/test-all"]
async fn kamailio_tcp_restart_reconnects_and_resubscribes() {
    let mut pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    // Long expiry: recovery must come from the reconnect, not from a refresh.
    let (h, mut rx, mut seen) = up(&pbx, config(&pbx, Transport::Tcp), &["1001", "1002"]).await;
    tokio::task::block_in_place(|| pbx.restart_with_state_lost()).unwrap();
    let before = seen.len();
    wait_until(
        &mut rx,
        &mut seen,
        PATIENCE,
        "re-subscription over a new TCP connection",
        |s| {
            let after = &s[before..];
            registered(after) >= 1 && ["1001", "1002"].iter().all(|e| active(after, e) >= 1)
        },
    )
    .await;
    let mut after: Vec<Event> = Vec::new();
    call_and_check(&pbx, &mut rx, &mut after).await;
    h.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
async fn kamailio_wrong_password_is_reported_not_looped() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let mut cfg = config(&pbx, Transport::Udp);
    cfg.set_password("not-the-password");
    let (h, mut rx) = start(cfg, &["1001"]).await;
    let mut seen = Vec::new();
    wait_until(&mut rx, &mut seen, PATIENCE, "RegistrationFailed and SubscriptionFailed", |s| {
        s.iter().any(|e| matches!(e, Event::RegistrationFailed { reason, .. } if reason.contains("password")))
            && s.iter().any(|e| matches!(e, Event::SubscriptionFailed { diagnosis, .. } if diagnosis.contains("password")))
    })
    .await;
    // Nothing more for a while: no retry loop (the next attempt is minutes away).
    let more = tokio::time::timeout(Duration::from_secs(2), rx.recv()).await;
    assert!(more.is_err(), "unexpected event {more:?}");
    let st = h.status().await.unwrap();
    assert!(!st.registration.registered);
    assert!(st.registration.last_error.unwrap().contains("password"));
    drop(h);
}

fn tls_config(pbx: &Kamailio, pki: &TestPki) -> UaConfig {
    let mut c = config(pbx, Transport::Tls);
    c.server = pbx.tls_addr().unwrap().to_string();
    c.tls.ca_file = Some(pki.ca_file());
    c
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio + kamailio-tls-modules + sipp (scripts/install-peers.sh); run by scripts/test-all"]
async fn kamailio_over_tls_call_restart_and_back() {
    let pki = TestPki::new(ServerCertOptions::default()).unwrap();
    let mut pbx = Kamailio::start(KamailioOptions::default().with_tls(&pki)).unwrap();
    let (h, mut rx, mut seen) = up(&pbx, tls_config(&pbx, &pki), &["1001", "1002"]).await;
    // The NOTIFYs of a real call come back over the TLS connection.
    call_and_check(&pbx, &mut rx, &mut seen).await;
    tokio::task::block_in_place(|| pbx.restart_with_state_lost()).unwrap();
    let before = seen.len();
    wait_until(
        &mut rx,
        &mut seen,
        PATIENCE,
        "re-registration and re-subscription over a new TLS connection",
        |s| {
            let after = &s[before..];
            registered(after) >= 1 && ["1001", "1002"].iter().all(|e| active(after, e) >= 1)
        },
    )
    .await;
    let mut after: Vec<Event> = Vec::new();
    call_and_check(&pbx, &mut rx, &mut after).await;
    h.shutdown().await.unwrap();
}
