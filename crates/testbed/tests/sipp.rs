//! SIPp phones placing calls through a Kamailio started by the testbed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use testbed::{Kamailio, KamailioOptions, SippCall, SippCallee, SippCaller};

/// Deadline of a step that takes a second or so: generous for a loaded
/// machine, never waited for when the step is done.
const PATIENCE: Duration = Duration::from_secs(60);

/// `dlg.list` of Kamailio mentions a dialog in `state` (dialog module states:
/// 1 unconfirmed, 2 early, 3 confirmed (no ACK), 4 confirmed, 5 deleted).
fn dialogs(pbx: &Kamailio) -> String {
    pbx.kamcmd(&["dlg.list"]).unwrap()
}

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn a_call_through_kamailio_completes() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let call = SippCall::start(
        &pbx,
        "1001",
        "1002",
        Duration::from_millis(300),
        Duration::from_millis(500),
    )
    .unwrap();
    assert_ne!(call.caller().port(), call.callee().port());
    call.wait().unwrap();
    // both phones registered through this Kamailio, and the call was tracked
    let ul = pbx.kamcmd(&["ul.dump"]).unwrap();
    assert!(ul.contains("1001") && ul.contains("1002"), "{ul}");
    let log = pbx.log();
    assert!(log.contains("REQ INVITE sip:1002@127.0.0.1"), "{log}");
    assert!(log.contains("BYE in call"), "{log}");
    // the dialog states reached the presence server (pua PUBLISH -> 200)
    pbx.wait_for_log("REPLY 200 OK for PUBLISH", PATIENCE)
        .unwrap();
    assert!(pbx
        .wait_for_log("no such line", Duration::from_millis(50))
        .is_err());
}

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn a_held_call_hangs_up_when_told() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(200)).unwrap();
    // wait until Kamailio sees the dialog confirmed
    let deadline = Instant::now() + PATIENCE;
    while !dialogs(&pbx).contains("state: 4") {
        assert!(
            Instant::now() < deadline,
            "call never confirmed: {}",
            dialogs(&pbx)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let hung_up_at = Instant::now();
    call.hang_up().unwrap();
    call.wait().unwrap();
    // Well before the held call's own end (10 minutes), with slack for a loaded machine.
    assert!(hung_up_at.elapsed() < Duration::from_secs(30));
    assert!(pbx.log().contains("BYE in call"));
}

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn two_concurrent_calls_to_one_extension() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let callee = SippCallee::start(&pbx, "1002", 2, Duration::from_millis(300)).unwrap();
    let first = SippCaller::start_held(&pbx, "1001", "1002").unwrap();
    let deadline = Instant::now() + PATIENCE;
    while !dialogs(&pbx).contains("state: 4") {
        assert!(Instant::now() < deadline, "first call never confirmed");
        std::thread::sleep(Duration::from_millis(50));
    }
    let second = SippCaller::start(&pbx, "1003", "1002", Duration::from_millis(300)).unwrap();
    second.wait(PATIENCE).unwrap();
    first.hang_up().unwrap();
    first.wait(PATIENCE).unwrap();
    callee.wait(PATIENCE).unwrap();
    let log = pbx.log();
    assert_eq!(log.matches("BYE in call").count(), 2, "{log}");
}

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn an_unknown_account_is_refused_before_starting_sipp() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let err = SippCaller::start(&pbx, "9999", "1002", Duration::from_millis(1)).unwrap_err();
    assert!(matches!(err, testbed::Error::UnknownAccount(_)), "{err}");
}
