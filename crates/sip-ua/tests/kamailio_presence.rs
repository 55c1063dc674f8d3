//! A `presence` subscription (RFC 3856) against a real Kamailio presence
//! server, fed by a SIPp phone that PUBLISHes its PIDF (RFC 3903), on 127.0.0.1.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use sip_ua::driver::spawn;
use sip_ua::driver::EventReceiver;
use sip_ua::{Event, EventPackage, Notify, Subscription, UaConfig};
use testbed::{Kamailio, KamailioOptions, SippPublisher};

/// The next NOTIFY for `ext` (other events are skipped); 30 s without one is a failure.
async fn next_notify(rx: &mut EventReceiver, ext: &str) -> Notify {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(Event::Notify(n))) if n.user == ext => return n,
            Ok(Some(_)) => {}
            Ok(None) => panic!("event channel closed while waiting for a NOTIFY for {ext}"),
            Err(_) => panic!("no NOTIFY for {ext} within 30 s"),
        }
    }
}

fn body(n: &Notify) -> String {
    String::from_utf8_lossy(&n.body).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
async fn a_presence_subscription_receives_the_published_pidf() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let mut cfg = UaConfig::new(pbx.sip_addr().to_string(), "blf", "blfsecret");
    cfg.listen = Some("127.0.0.1:0".parse().unwrap());
    let (handle, mut rx) = spawn(cfg, vec![Subscription::presence("1001")], None)
        .await
        .unwrap();

    // nothing published yet: accepted (not 489), first NOTIFY without a body
    let first = next_notify(&mut rx, "1001").await;
    assert_eq!(first.package, EventPackage::Presence);
    assert!(first.body.is_empty(), "{}", body(&first));

    // multi-thread runtime: the blocking SIPp calls leave the driver running
    let publisher = SippPublisher::publish_open(&pbx, "1001").unwrap();
    let open = next_notify(&mut rx, "1001").await;
    assert_eq!(open.content_type.as_deref(), Some("application/pidf+xml"));
    assert!(
        body(&open).contains("<basic>open</basic>"),
        "{}",
        body(&open)
    );

    publisher.publish_closed().unwrap();
    let closed = next_notify(&mut rx, "1001").await;
    assert!(
        body(&closed).contains("<basic>closed</basic>"),
        "{}",
        body(&closed)
    );
    handle.shutdown().await.unwrap();
}
