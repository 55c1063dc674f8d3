//! A SIPp phone PUBLISHing its PIDF presence to the Kamailio of the testbed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use testbed::{Kamailio, KamailioOptions, SippPublisher};

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn a_phone_publishes_open_then_closed() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let publisher = SippPublisher::publish_open(&pbx, "1001").unwrap();
    // challenged, then accepted by presence_xml: publish_open returns only
    // once Kamailio answered 200 (without presence_xml it is 489 Bad Event,
    // and SIPp fails on it)
    let log = pbx.log();
    assert!(log.contains("REQ PUBLISH sip:1001@127.0.0.1"), "{log}");
    // (not a bare "489": ports and pids in the log contain those digits)
    assert!(!log.contains("Bad Event"), "{log}");
    publisher.publish_closed().unwrap();
}
