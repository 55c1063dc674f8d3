//! A SIPp phone PUBLISHing its PIDF presence to the Kamailio of the testbed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testbed::{Kamailio, KamailioOptions, SippPublisher};

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn a_phone_publishes_open_then_closed() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let publisher = SippPublisher::publish_open(&pbx, "1001").unwrap();
    // challenged, then accepted by presence_xml (not 489 Bad Event)
    let log = pbx.log();
    assert!(log.contains("REQ PUBLISH sip:1001@127.0.0.1"), "{log}");
    assert!(!log.contains("489"), "{log}");
    publisher.publish_closed().unwrap();
}
