//! A SIPp web phone taking status-update MESSAGEs: it registers at the
//! Kamailio of the testbed and checks each MESSAGE's type and body.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::UdpSocket;
use std::time::Duration;

use testbed::{Kamailio, KamailioOptions, SippMessageReceiver};

/// A MESSAGE sent straight to the receiver's port; its answer's status code.
fn message(port: u16, call: &str, content_type: &str, body: &str) -> String {
    let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let me = sock.local_addr().unwrap();
    let msg = format!(
        "MESSAGE sip:1003@127.0.0.1:{port} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {me};branch=z9hG4bK-{call}\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:blf@127.0.0.1>;tag=t-{call}\r\n\
         To: <sip:1003@127.0.0.1>\r\n\
         Call-ID: {call}@testbed\r\n\
         CSeq: 1 MESSAGE\r\n\
         Content-Type: {content_type}\r\n\
         Content-Length: {}\r\n\r\n{body}",
        body.len()
    );
    sock.send_to(msg.as_bytes(), ("127.0.0.1", port)).unwrap();
    let mut buf = [0u8; 4096];
    let n = sock.recv(&mut buf).expect("an answer from SIPp");
    let answer = String::from_utf8_lossy(&buf[..n]).into_owned();
    answer.split_whitespace().nth(1).unwrap().to_owned()
}

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn the_receiver_answers_status_updates_and_logs_their_extension() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let mut web = SippMessageReceiver::start(&pbx, "1003", 200).unwrap();
    assert_eq!(web.uri(&pbx), format!("sip:1003@{}", pbx.sip_addr()));
    let good = |ext: &str| format!(r#"{{"to":"all","type":"statusupdate","data":"{ext}"}}"#);
    assert_eq!(
        message(web.port(), "a", "application/json", &good("1001")),
        "200"
    );
    assert_eq!(
        message(web.port(), "b", "application/json", &good("1002")),
        "200"
    );
    assert_eq!(
        web.wait_for(2, Duration::from_secs(10)).unwrap(),
        ["1001", "1002"]
    );
    // A wrong type or body is not logged as an update (SIPp counts it failed).
    let _ = std::thread::spawn({
        let port = web.port();
        move || message(port, "c", "text/plain", &good("1003"))
    })
    .join();
    assert_eq!(web.updates(), ["1001", "1002"], "{}", web.log_tail(20));

    let mut refusing = SippMessageReceiver::start(&pbx, "1002", 404).unwrap();
    assert_eq!(
        message(refusing.port(), "d", "application/json", &good("1001")),
        "404"
    );
    assert_eq!(
        refusing.wait_for(1, Duration::from_secs(10)).unwrap(),
        ["1001"]
    );
}
