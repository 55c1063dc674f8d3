//! End to end through a real NAT: the `sip-ua` driver inside the NAT with
//! STUN on its SIP socket (Contact = discovered address), Kamailio and coturn
//! outside. Kamailio runs without NAT handling, so a NOTIFY reaches the
//! service only if the Contact carries the NAT's public address and port.
//!
//! Skipped, with a message saying so, only where network namespaces cannot be
//! created.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sip_ua::{AddressDiscovery, DiscoveryTransmit};
use sip_ua::{ContactAddress, Event, Subscription, UaConfig};
use stun_lite::{BindingClient, ClientConfig, Handled};
use testbed::{KamailioOptions, NatLab};

const SIP_PORT: u16 = 5060;

/// The client behind `sip_ua`'s trait, recording every mapped address it
/// accepts. (The crate's own impl is behind the `sip-ua` feature; this keeps
/// the test independent of feature selection.)
struct Recorded {
    client: BindingClient,
    mapped: Arc<Mutex<Vec<SocketAddr>>>,
}

impl AddressDiscovery for Recorded {
    fn poll_transmit(&mut self, now: Instant) -> Option<DiscoveryTransmit> {
        self.client.poll_transmit(now).map(|t| DiscoveryTransmit {
            destination: t.destination,
            payload: t.payload,
        })
    }
    fn handle_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) -> bool {
        match self.client.handle_datagram(from, data, now) {
            Handled::NotStun => false,
            Handled::Mapped(addr) => {
                self.mapped.lock().unwrap().push(addr);
                true
            }
            _ => true,
        }
    }
    fn poll_timeout(&self) -> Option<Instant> {
        self.client.poll_timeout()
    }
    fn handle_timeout(&mut self, now: Instant) {
        self.client.handle_timeout(now);
    }
    fn public_addr(&self) -> Option<SocketAddr> {
        self.client.public_addr()
    }
}

#[test]
#[ignore = "real peer: needs coturn, Kamailio, nftables and root for network namespaces (scripts/install-peers.sh); run by scripts/test-all"]
fn notifies_reach_the_service_behind_nat_with_the_discovered_contact() {
    if let Err(reason) = NatLab::check() {
        println!(
            "SKIPPED notifies_reach_the_service_behind_nat_with_the_discovered_contact: \
             network namespaces cannot be created here: {reason}"
        );
        return;
    }
    let lab = NatLab::create().unwrap();
    let stun = lab.start_coturn().unwrap();
    let pbx = lab.start_kamailio(KamailioOptions::default()).unwrap();
    let public = SocketAddr::new(lab.public_ip(), SIP_PORT);
    let (stun_addr, pbx_addr, inside_ip) = (stun.addr(), pbx.sip_addr(), lab.inside_ip());
    let mapped = Arc::new(Mutex::new(Vec::new()));
    let recorded = Arc::clone(&mapped);

    // Everything the user agent does happens on a thread inside the NAT.
    let seen = lab
        .in_inside(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let mut config = UaConfig::new(pbx_addr.to_string(), "blf", "blfsecret");
                config.listen = Some(SocketAddr::new(inside_ip, SIP_PORT));
                config.contact = ContactAddress::Discovered;
                let discovery = Recorded {
                    client: BindingClient::new(vec![stun_addr], ClientConfig::default(), Instant::now()),
                    mapped: recorded,
                };
                let (handle, mut events) = sip_ua::driver::spawn(
                    config,
                    vec![Subscription::dialog("1001")],
                    Some(Box::new(discovery)),
                )
                .await
                .unwrap();
                let mut seen = Vec::new();
                let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                let done = |seen: &[Event]| {
                    let registered = seen.iter().any(|e| {
                        matches!(e, Event::Registered { contact, .. } if contact.contains(&public.to_string()))
                    });
                    let notified = seen
                        .iter()
                        .any(|e| matches!(e, Event::Notify(n) if n.user == "1001"));
                    registered && notified
                };
                while !done(&seen) {
                    match tokio::time::timeout_at(deadline, events.recv()).await {
                        Ok(Some(e)) => seen.push(e),
                        Ok(None) => panic!("user agent stopped; saw {seen:#?}"),
                        Err(_) => panic!("no registration with {public} and NOTIFY; saw {seen:#?}"),
                    }
                }
                let _ = tokio::time::timeout(Duration::from_secs(10), handle.shutdown()).await;
                seen
            })
        })
        .unwrap();

    // STUN on the SIP socket found the NAT's public address and port ...
    let mapped = mapped.lock().unwrap().clone();
    assert!(mapped.contains(&public), "STUN answers: {mapped:?}");
    assert!(mapped.iter().all(|m| *m == public), "{mapped:?}");
    // ... the Contact registered carries it, and the NOTIFY came through.
    let contact = seen
        .iter()
        .rev()
        .find_map(|e| match e {
            Event::Registered { contact, .. } => Some(contact.clone()),
            _ => None,
        })
        .unwrap();
    assert!(contact.contains(&public.to_string()), "{contact}");
    assert!(!contact.contains(&inside_ip.to_string()), "{contact}");
    println!("registered Contact {contact}; STUN said {public}");
}

/// The control: the same user agent with its private address in Contact. The
/// SUBSCRIBE is answered (Kamailio replies to the source port), but the NOTIFY
/// goes to the private address and is lost.
#[test]
#[ignore = "real peer: needs Kamailio, nftables and root for network namespaces (scripts/install-peers.sh); run by scripts/test-all"]
fn without_discovery_the_private_contact_loses_the_notifies() {
    if let Err(reason) = NatLab::check() {
        println!(
            "SKIPPED without_discovery_the_private_contact_loses_the_notifies: \
             network namespaces cannot be created here: {reason}"
        );
        return;
    }
    let lab = NatLab::create().unwrap();
    let pbx = lab.start_kamailio(KamailioOptions::default()).unwrap();
    let (pbx_addr, inside_ip) = (pbx.sip_addr(), lab.inside_ip());
    let (to_test, from_ua) = std::sync::mpsc::channel::<Vec<Event>>();
    let (to_ua, from_test) = std::sync::mpsc::channel::<()>();

    let ua = std::thread::scope(|scope| {
        let ua = scope.spawn(|| {
            lab.in_inside(move || {
                let rt = tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                    .unwrap();
                rt.block_on(async move {
                    let mut config = UaConfig::new(pbx_addr.to_string(), "blf", "blfsecret");
                    config.listen = Some(SocketAddr::new(inside_ip, SIP_PORT));
                    config.contact = ContactAddress::Fixed(inside_ip);
                    let (handle, mut events) =
                        sip_ua::driver::spawn(config, vec![Subscription::dialog("1001")], None)
                            .await
                            .unwrap();
                    let mut seen = Vec::new();
                    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
                    while !seen
                        .iter()
                        .any(|e| matches!(e, Event::SubscriptionActive { .. }))
                    {
                        match tokio::time::timeout_at(deadline, events.recv()).await {
                            Ok(Some(e)) => seen.push(e),
                            _ => panic!("no subscription; saw {seen:#?}"),
                        }
                    }
                    to_test.send(seen.clone()).unwrap();
                    // Wait until the test has seen Kamailio fail to send the NOTIFY.
                    tokio::task::spawn_blocking(move || from_test.recv())
                        .await
                        .unwrap()
                        .unwrap();
                    while let Ok(e) = events.try_recv() {
                        seen.push(e);
                    }
                    let _ = tokio::time::timeout(Duration::from_secs(10), handle.shutdown()).await;
                    seen
                })
            })
            .unwrap()
        });
        let active = from_ua
            .recv_timeout(Duration::from_secs(30))
            .expect("subscription");
        assert!(
            active.iter().any(|e| matches!(e, Event::Registered { .. })),
            "{active:#?}"
        );
        // Kamailio sends the initial NOTIFY to the private Contact: no route.
        let guard = Instant::now() + Duration::from_secs(20);
        while !pbx.log().contains("Network is unreachable") {
            assert!(
                Instant::now() < guard,
                "no failed NOTIFY in Kamailio's log:\n{}",
                pbx.log_tail(40)
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        to_ua.send(()).unwrap();
        ua.join().unwrap()
    });
    assert!(
        !ua.iter().any(|e| matches!(e, Event::Notify(_))),
        "a NOTIFY to the private Contact cannot arrive: {ua:#?}"
    );
}
