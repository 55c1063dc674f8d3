//! `sip-blf-sync stun` as a user runs it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn stun(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .arg("stun")
        .args(args)
        .env_remove("STUN_SERVERS")
        .output()
        .unwrap()
}

#[test]
#[ignore = "real peer: needs coturn (scripts/install-peers.sh); run by scripts/test-all"]
fn prints_the_mapped_address_and_which_server_answered() {
    let coturn = testbed::Coturn::start().unwrap();
    // The first server does not answer (nothing listens there): fallback to coturn.
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let out = stun(&[
        "--server",
        &silent_addr,
        "--server",
        &coturn.addr().to_string(),
    ]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.starts_with("127.0.0.1:"), "{text}");
    assert!(
        text.contains(&format!("(answered by {})", coturn.addr())),
        "{text}"
    );
}

#[test]
fn no_answer_is_a_clear_failure() {
    let silent = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let addr = silent.local_addr().unwrap().to_string();
    let out = stun(&["--server", &addr, "--timeout", "1"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&addr), "the error names the server: {err}");
}

#[test]
fn a_bad_server_name_is_refused() {
    let out = stun(&["--server", "host:notaport"]);
    assert!(!out.status.success());
    assert!(!String::from_utf8_lossy(&out.stderr).is_empty());
}
