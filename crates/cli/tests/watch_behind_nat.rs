//! `sip-blf-sync watch` behind a real NAT (network namespaces with nftables
//! masquerade), configured as a user would: `SIP_CONTACT_IP=auto`; over UDP,
//! TCP and TLS.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::process::Stdio;
use std::sync::mpsc;

use testbed::{KamailioOptions, NatLab, ServerCertOptions, TestPki};

#[test]
#[ignore = "real peer: needs Kamailio, coturn, nftables and root for network namespaces (scripts/install-peers.sh); run by scripts/test-all"]
fn contact_auto_uses_the_nat_mapping_and_notifies_arrive() {
    behind_nat("udp");
}

#[test]
#[ignore = "real peer: needs Kamailio, coturn, nftables and root for network namespaces (scripts/install-peers.sh); run by scripts/test-all"]
fn over_tcp_notifies_come_back_on_the_connection_through_the_nat() {
    behind_nat("tcp");
}

#[test]
#[ignore = "real peer: needs Kamailio with kamailio-tls-modules, coturn, nftables and root for network namespaces (scripts/install-peers.sh); run by scripts/test-all"]
fn over_tls_notifies_come_back_on_the_connection_through_the_nat() {
    behind_nat("tls");
}

fn behind_nat(transport: &str) {
    if let Err(reason) = NatLab::check() {
        println!(
            "SKIPPED behind_nat({transport}): network namespaces cannot be created here: {reason}"
        );
        return;
    }
    let lab = NatLab::create().unwrap();
    let stun = lab.start_coturn().unwrap();
    let pki = TestPki::new(ServerCertOptions {
        names: vec![lab.outside_ip().to_string()],
        expired: false,
    })
    .unwrap();
    // Kamailio without any NAT handling: only a correct Contact gets NOTIFYs through.
    let opts = match transport {
        "tls" => KamailioOptions::default().with_tls(&pki),
        _ => KamailioOptions::default(),
    };
    let pbx = lab.start_kamailio(opts).unwrap();
    let server = pbx.tls_addr().unwrap_or(pbx.sip_addr());
    let dir = tempfile::tempdir().unwrap();
    let exts = dir.path().join("extensions.csv");
    std::fs::write(&exts, "1001,user1@contoso.com\n").unwrap();

    let mut cmd = lab.inside_command(env!("CARGO_BIN_EXE_sip-blf-sync"));
    cmd.args(["watch", "--json"])
        .current_dir(dir.path())
        .env("SIP_SERVER", server.to_string())
        .env("SIP_TRANSPORT", transport)
        .env("SIP_USERNAME", "blf")
        .env("SIP_PASSWORD", "blfsecret")
        .env("SIP_CONTACT_IP", "auto")
        .env("STUN_SERVERS", stun.addr().to_string())
        // 5060 is free: the inside namespace belongs to this lab alone.
        .env("SIP_LISTEN", format!("{}:5060", lab.inside_ip()))
        .env("EXTENSIONS_JSON", dir.path().join("extensions.json"))
        .env("HTTP_LISTEN", "off")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if transport == "tls" {
        cmd.env("SIP_TLS_CA_FILE", pki.ca_file());
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    // The initial NOTIFY of the subscription reaches us through the NAT.
    let line = rx.recv_timeout(common::PATIENCE);
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let line = line.unwrap_or_else(|_| {
        panic!("no NOTIFY arrived through the NAT ({transport}); log:\n{stderr}")
    });
    let v: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(v["extension"], "1001");
    assert_eq!(v["line_state"], "idle");
    // UDP: the STUN mapping of the socket; TCP/TLS: the connection's address
    // as the PBX saw it (received/rport), with the port the NAT chose.
    let public = match transport {
        "udp" => format!("sip:blf@{}:5060", lab.public_ip()),
        _ => format!("sip:blf@{}:", lab.public_ip()),
    };
    assert!(
        stderr.contains(&format!("registered as {public}")),
        "the Contact must carry the NAT's public address {public}:\n{stderr}"
    );
    if transport != "udp" {
        assert!(
            stderr.contains(&format!("transport={transport}")),
            "{stderr}"
        );
    }
    assert!(out.status.success(), "{stderr}");
}
