//! Kamailio started by the testbed: free ports, readiness, restart, parallel instances.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::UdpSocket;
use std::time::Duration;

use testbed::{Kamailio, KamailioOptions};

#[test]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
fn starts_on_a_free_port_answers_options_and_stops() {
    let mut pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let addr = pbx.sip_addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 5060, "must not use the well-known port");
    assert_eq!(pbx.domain(), "127.0.0.1");
    pbx.ping(Duration::from_secs(2)).unwrap();
    let version = pbx.kamcmd(&["core.version"]).unwrap();
    assert!(version.contains("kamailio"), "{version}");
    let pid = pbx.pid().unwrap();
    assert!(std::path::Path::new(&format!("/proc/{pid}")).exists());
    pbx.stop();
    assert!(pbx.pid().is_none());
    // the port is free again: nothing of that instance is left listening
    UdpSocket::bind(addr).expect("port released after stop");
    assert!(pbx.ping(Duration::from_millis(300)).is_err());
}

#[test]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
fn two_instances_run_in_parallel_on_different_ports() {
    let (a, b) = std::thread::scope(|s| {
        let a = s.spawn(|| Kamailio::start(KamailioOptions::default()).unwrap());
        let b =
            s.spawn(|| Kamailio::start(KamailioOptions::default().sub_challenge_401()).unwrap());
        (a.join().unwrap(), b.join().unwrap())
    });
    assert_ne!(a.port(), b.port());
    assert_ne!(a.run_dir(), b.run_dir());
    a.ping(Duration::from_secs(2)).unwrap();
    b.ping(Duration::from_secs(2)).unwrap();
}

#[test]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
fn restart_with_state_lost_keeps_the_port() {
    let mut pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let port = pbx.port();
    let first = pbx.pid().unwrap();
    pbx.restart_with_state_lost().unwrap();
    assert_eq!(pbx.port(), port);
    assert_ne!(pbx.pid().unwrap(), first);
    assert!(
        !std::path::Path::new(&format!("/proc/{first}")).exists() || {
            // pid reused by something else: then it is not our Kamailio anymore
            std::fs::read_to_string(format!("/proc/{first}/comm"))
                .unwrap_or_default()
                .trim()
                != "kamailio"
        }
    );
    pbx.ping(Duration::from_secs(2)).unwrap();
    // a fresh subscriber table: accounts still there, nothing else
    let active = std::fs::read_to_string(pbx.run_dir().join("dbtext/active_watchers")).unwrap();
    assert_eq!(active.lines().count(), 1, "only the header line: {active}");
}

#[test]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
fn a_broken_define_fails_with_the_log_tail() {
    let opts = KamailioOptions {
        extra_defines: vec!["PRES_MIN_EXPIRES=notanumber".into()],
        start_timeout: Duration::from_secs(10),
        ..KamailioOptions::default()
    };
    let err = Kamailio::start(opts).unwrap_err().to_string();
    eprintln!("{err}");
    assert!(err.contains("did not start"), "{err}");
    assert!(err.contains("last lines of"), "{err}");
}
