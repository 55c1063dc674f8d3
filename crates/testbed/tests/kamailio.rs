//! Kamailio started by the testbed: free ports, readiness, restart, parallel instances.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::UdpSocket;
use std::time::Duration;

use testbed::{Kamailio, KamailioOptions};

/// Deadline of an answer that should come at once: generous for a loaded
/// machine, never waited for when the answer comes.
const PATIENCE: Duration = Duration::from_secs(30);

#[test]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
fn starts_on_a_free_port_answers_options_and_stops() {
    let mut pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let addr = pbx.sip_addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 5060, "must not use the well-known port");
    assert_eq!(pbx.domain(), "127.0.0.1");
    pbx.ping(PATIENCE).unwrap();
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
    a.ping(PATIENCE).unwrap();
    b.ping(PATIENCE).unwrap();
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
    pbx.ping(PATIENCE).unwrap();
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

#[test]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
fn with_ipv6_also_answers_on_loopback_v6() {
    let pbx = Kamailio::start(KamailioOptions::default().with_ipv6()).unwrap();
    let v6 = pbx.sip_addr_v6().unwrap();
    assert_eq!(v6.ip().to_string(), "::1");
    assert_eq!(v6.port(), pbx.port());
    pbx.ping(PATIENCE).unwrap();
    let sock = UdpSocket::bind("[::1]:0").unwrap();
    sock.set_read_timeout(Some(PATIENCE)).unwrap();
    let me = sock.local_addr().unwrap();
    let msg = format!(
        "OPTIONS sip:[::1]:{p} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bK-v6\r\n\
         Max-Forwards: 70\r\nFrom: <sip:probe@[::1]>;tag=1\r\nTo: <sip:[::1]:{p}>\r\n\
         Call-ID: v6-options@[::1]\r\nCSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n",
        p = v6.port()
    );
    sock.send_to(msg.as_bytes(), v6).unwrap();
    let mut buf = [0u8; 2048];
    let (len, _) = sock.recv_from(&mut buf).unwrap();
    assert!(buf[..len].starts_with(b"SIP/2.0 200"));
}

#[test]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
fn restart_keeping_state_keeps_the_tables_and_state_lost_replaces_them() {
    let mut pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let port = pbx.port();
    let table = pbx.run_dir().join("dbtext/subscriber");
    let row = "5:1004:127.0.0.1:pw1004:x:y\n";
    let mut rows = std::fs::read_to_string(&table).unwrap();
    rows.push_str(row);
    std::fs::write(&table, rows).unwrap();

    pbx.restart_keeping_state().unwrap();
    assert_eq!(pbx.port(), port);
    pbx.ping(PATIENCE).unwrap();
    assert!(std::fs::read_to_string(&table).unwrap().contains(row));

    pbx.restart_with_state_lost().unwrap();
    assert_eq!(pbx.port(), port);
    pbx.ping(PATIENCE).unwrap();
    assert!(!std::fs::read_to_string(&table).unwrap().contains(row));
}
