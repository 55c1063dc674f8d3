//! `SIP_TRANSPORT=tls` through the binary, against a real Kamailio with its
//! TLS module and a certificate signed by a CA the test makes: `watch` sees
//! a SIPp call's NOTIFYs over TLS and comes back after Kamailio restarts;
//! `check` names a CA it does not trust, a name the certificate does not
//! hold, an expired certificate and a refused TLS version, each with its
//! fix; `SIP_TLS_INSECURE` warns. Against a Kamailio that requires a client
//! certificate: one from its CA (`SIP_TLS_CERT`/`SIP_TLS_KEY`) registers and
//! subscribes, none or one from another CA is named by `check` with its fix.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use testbed::{Kamailio, KamailioOptions, ServerCertOptions, SippCall, TestPki};

fn tls_pbx(pki: &TestPki) -> Kamailio {
    Kamailio::start(KamailioOptions::default().with_tls(pki)).unwrap()
}

/// The settings of a service that talks TLS to `pbx`, trusting `ca`.
fn tls_env(pbx: &Kamailio, ca: &Path) -> Vec<(&'static str, String)> {
    vec![
        ("SIP_SERVER", pbx.tls_addr().unwrap().to_string()),
        ("SIP_TRANSPORT", "tls".into()),
        ("SIP_TLS_CA_FILE", ca.display().to_string()),
        ("SIP_USERNAME", "blf".into()),
        ("SIP_PASSWORD", "blfsecret".into()),
        ("SIP_LISTEN", "127.0.0.1:0".into()),
        ("HTTP_LISTEN", "off".into()),
    ]
}

fn write_extensions(dir: &Path) {
    std::fs::create_dir_all(dir.join("config")).unwrap();
    std::fs::write(
        dir.join("config/extensions.csv"),
        "1001,user1@contoso.com\n1002,user2@contoso.com\n",
    )
    .unwrap();
}

struct Watch {
    child: Child,
    lines: mpsc::Receiver<serde_json::Value>,
}

impl Watch {
    fn start(dir: &Path, env: &[(&str, String)]) -> Watch {
        write_extensions(dir);
        let mut child = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
            .args(["watch", "--json"])
            .current_dir(dir)
            .env_clear()
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("RUST_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let v: serde_json::Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
                if tx.send(v).is_err() {
                    break;
                }
            }
        });
        Watch { child, lines }
    }

    /// Reads lines until each `(extension, state)` was reported, in any order.
    fn expect_all(&mut self, wanted: &[(&str, &str)]) {
        let mut read = Vec::new();
        common::wait_for_all_matching(&self.lines, &mut read, wanted, |v, (e, s)| {
            v["extension"] == *e && v["line_state"] == *s
        });
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Waits until Kamailio's location table holds the service's TLS contact
/// (the deadline is a failure guard; the wait ends when it is there).
fn wait_registered_over_tls(pbx: &Kamailio) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let dump = pbx.kamcmd(&["ul.dump"]).unwrap_or_default();
        if dump.contains("sip:blf@") && dump.contains("transport=tls") {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "blf not registered over TLS: {dump}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
#[ignore = "real peer: needs kamailio + kamailio-tls-modules + sipp (scripts/install-peers.sh)"]
fn watch_over_tls_sees_a_call_and_comes_back_after_a_restart() {
    let pki = TestPki::new(ServerCertOptions::default()).unwrap();
    let mut pbx = tls_pbx(&pki);
    let dir = tempfile::tempdir().unwrap();
    let mut watch = Watch::start(dir.path(), &tls_env(&pbx, &pki.ca_file()));
    watch.expect_all(&[("1001", "idle"), ("1002", "idle")]);
    wait_registered_over_tls(&pbx);

    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(300)).unwrap();
    watch.expect_all(&[("1001", "busy"), ("1002", "busy")]);
    call.hang_up().unwrap();
    call.wait().unwrap();
    watch.expect_all(&[("1001", "idle"), ("1002", "idle")]);

    // Kamailio restarts and forgets everything; the TLS connection drops.
    pbx.restart_with_state_lost().unwrap();
    wait_registered_over_tls(&pbx);
    // A call held up: whenever the new subscriptions are up, their first
    // NOTIFY shows it.
    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(300)).unwrap();
    watch.expect_all(&[("1001", "busy"), ("1002", "busy")]);
    call.hang_up().unwrap();
    call.wait().unwrap();
    watch.expect_all(&[("1001", "idle"), ("1002", "idle")]);
}

fn check(pbx: &Kamailio, ca: &Path, extra: &[(&str, &str)]) -> (Output, String) {
    let dir = tempfile::tempdir().unwrap();
    write_extensions(dir.path());
    let out = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .args(["check", "--timeout", "60"])
        .current_dir(dir.path())
        .env_clear()
        .envs(tls_env(pbx, ca).iter().map(|(k, v)| (k, v)))
        .envs(extra.iter().copied())
        .output()
        .unwrap();
    let text = common::output_text(&out);
    (out, text)
}

#[test]
#[ignore = "real peer: needs kamailio + kamailio-tls-modules (scripts/install-peers.sh)"]
fn check_over_tls_names_a_wrong_ca_and_a_wrong_name_with_the_fix() {
    let pki = TestPki::new(ServerCertOptions::default()).unwrap();
    let pbx = tls_pbx(&pki);

    let (out, text) = check(&pbx, &pki.ca_file(), &[]);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("(tls)"), "{text}");
    assert!(text.contains("transport=tls"), "{text}");

    let (out, text) = check(&pbx, &pki.other_ca_file(), &[]);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("signed by a CA this machine does not trust"),
        "{text}"
    );
    assert!(
        text.contains("set SIP_TLS_CA_FILE to the PEM file of the CA that signed it"),
        "{text}"
    );

    let (out, text) = check(
        &pbx,
        &pki.ca_file(),
        &[("SIP_TLS_SERVER_NAME", "wrong.example")],
    );
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("not valid for the name \"wrong.example\""),
        "{text}"
    );
    assert!(text.contains("SIP_TLS_SERVER_NAME"), "{text}");

    // Without verification the wrong CA passes, with a warning.
    let (out, text) = check(
        &pbx,
        &pki.other_ca_file(),
        &[("SIP_TLS_INSECURE", "true"), ("RUST_LOG", "warn")],
    );
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("SIP_TLS_INSECURE=true"), "{text}");
    assert!(text.contains("NOT verified"), "{text}");
}

#[test]
#[ignore = "real peer: needs kamailio + kamailio-tls-modules (scripts/install-peers.sh)"]
fn check_over_tls_names_a_refused_tls_version() {
    let pki = TestPki::new(ServerCertOptions::default()).unwrap();
    let mut opts = KamailioOptions::default().with_tls(&pki);
    if let Some(t) = opts.tls.as_mut() {
        t.method = "TLSv1.1".into();
    }
    let pbx = Kamailio::start(opts).unwrap();
    let (out, text) = check(&pbx, &pki.ca_file(), &[]);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("no TLS version in common"), "{text}");
    assert!(text.contains("enable TLS 1.2 or 1.3 on the PBX"), "{text}");
}

#[test]
#[ignore = "real peer: needs kamailio + kamailio-tls-modules (scripts/install-peers.sh)"]
fn check_over_tls_names_an_expired_certificate() {
    let pki = TestPki::new(ServerCertOptions {
        expired: true,
        ..ServerCertOptions::default()
    })
    .unwrap();
    let pbx = tls_pbx(&pki);
    let (out, text) = check(&pbx, &pki.ca_file(), &[]);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("certificate has expired"), "{text}");
    assert!(text.contains("renew it on the PBX"), "{text}");
}

/// A Kamailio that wants a client certificate signed by the CA of `pki`.
fn client_cert_pbx(pki: &TestPki) -> Kamailio {
    Kamailio::start(KamailioOptions::default().with_tls_client_certificates(pki)).unwrap()
}

/// `SIP_TLS_CERT` and `SIP_TLS_KEY` set to `cert` and `key`.
fn client_cert_env(cert: &Path, key: &Path) -> [(&'static str, String); 2] {
    [
        ("SIP_TLS_CERT", cert.display().to_string()),
        ("SIP_TLS_KEY", key.display().to_string()),
    ]
}

#[test]
#[ignore = "real peer: needs kamailio + kamailio-tls-modules (scripts/install-peers.sh)"]
fn a_client_certificate_the_pbx_requires_registers_and_subscribes() {
    let pki = TestPki::new(ServerCertOptions::default()).unwrap();
    let pbx = client_cert_pbx(&pki);
    let cert = client_cert_env(&pki.client_cert_file(), &pki.client_key_file());

    let extra: Vec<(&str, &str)> = cert.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (out, text) = check(&pbx, &pki.ca_file(), &extra);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("transport=tls"), "{text}");

    let dir = tempfile::tempdir().unwrap();
    let mut env = tls_env(&pbx, &pki.ca_file());
    env.extend(cert);
    let mut watch = Watch::start(dir.path(), &env);
    // Each line's first NOTIFY: both subscriptions are up.
    watch.expect_all(&[("1001", "idle"), ("1002", "idle")]);
    wait_registered_over_tls(&pbx);
}

#[test]
#[ignore = "real peer: needs kamailio + kamailio-tls-modules (scripts/install-peers.sh)"]
fn check_names_a_missing_or_untrusted_client_certificate() {
    let pki = TestPki::new(ServerCertOptions::default()).unwrap();
    let pbx = client_cert_pbx(&pki);

    // TLS 1.3: the refusal comes after the handshake (alert 116).
    let (out, text) = check(&pbx, &pki.ca_file(), &[]);
    assert_no_client_certificate(out, &text);

    let other = client_cert_env(&pki.other_client_cert_file(), &pki.other_client_key_file());
    let extra: Vec<(&str, &str)> = other.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let (out, text) = check(&pbx, &pki.ca_file(), &extra);
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("wants a client certificate it accepts"),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "the PBX does not accept the client certificate in SIP_TLS_CERT={}",
            pki.other_client_cert_file().display()
        )),
        "{text}"
    );
    assert!(text.contains("signed by a CA the PBX accepts"), "{text}");
}

#[test]
#[ignore = "real peer: needs kamailio + kamailio-tls-modules (scripts/install-peers.sh)"]
fn check_names_a_missing_client_certificate_over_tls_1_2() {
    let pki = TestPki::new(ServerCertOptions::default()).unwrap();
    let mut opts = KamailioOptions::default().with_tls_client_certificates(&pki);
    if let Some(t) = opts.tls.as_mut() {
        t.method = "TLSv1.2".into();
    }
    let pbx = Kamailio::start(opts).unwrap();
    // TLS 1.2: the handshake itself fails.
    let (out, text) = check(&pbx, &pki.ca_file(), &[]);
    assert_no_client_certificate(out, &text);
}

fn assert_no_client_certificate(out: Output, text: &str) {
    assert_ne!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("TLS connection to the PBX"), "{text}");
    assert!(
        text.contains("the PBX asks for a client certificate and none is set"),
        "{text}"
    );
    assert!(text.contains("set SIP_TLS_CERT and SIP_TLS_KEY"), "{text}");
}
