//! The private PostgreSQL started by the testbed: loopback only, a password
//! on TCP, stopped by pid.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;

use testbed::Postgres;

#[test]
#[ignore = "real peer: PostgreSQL (scripts/install-peers.sh); run by scripts/test-all"]
fn postgres_starts_answers_and_stops() {
    let mut pg = Postgres::start().unwrap();
    let addr = pg.addr();
    assert_eq!(addr.ip().to_string(), "127.0.0.1");
    assert_ne!(addr.port(), 5432, "must not use the system service's port");
    assert_eq!(
        pg.url(),
        format!(
            "postgres://testbed:pgsecret@127.0.0.1:{}/postgres",
            addr.port()
        )
    );

    // a client logs in over TCP with the password and runs a query
    assert_eq!(pg.psql("postgres", "SELECT 40 + 2").unwrap().trim(), "42");
    pg.create_database("lines").unwrap();
    let listen = pg.psql("lines", "SHOW listen_addresses").unwrap();
    assert_eq!(listen.trim(), "127.0.0.1");
    let data = pg.psql("lines", "SHOW data_directory").unwrap();
    assert!(
        data.trim().starts_with(pg.run_dir().to_str().unwrap()),
        "{data}"
    );
    // PostgreSQL refuses root: the postmaster runs as an unprivileged user
    let status = std::fs::read_to_string(format!("/proc/{}/status", pg.pid().unwrap())).unwrap();
    let uid = status.lines().find(|l| l.starts_with("Uid:")).unwrap();
    assert!(!uid.split_whitespace().skip(1).any(|u| u == "0"), "{uid}");

    let pid = pg.pid().unwrap();
    pg.stop();
    assert!(pg.pid().is_none());
    assert!(
        !std::path::Path::new(&format!("/proc/{pid}")).exists()
            || std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .map(|s| s.contains(") Z "))
                .unwrap_or(true),
        "postmaster {pid} still running"
    );
    TcpListener::bind(addr).expect("port released after stop");
    assert!(
        pg.psql("postgres", "SELECT 1").is_err(),
        "nothing answers any more"
    );
}

#[test]
#[ignore = "real peer: PostgreSQL (scripts/install-peers.sh); run by scripts/test-all"]
fn a_wrong_password_is_refused() {
    let pg = Postgres::start().unwrap();
    // psql with a wrong password: the server asks for one on TCP (no trust)
    let bin = std::fs::read_dir("/usr/lib/postgresql")
        .unwrap()
        .flatten()
        .map(|e| e.path().join("bin/psql"))
        .find(|p| p.is_file())
        .unwrap();
    let out = std::process::Command::new(bin)
        .args([
            "-h",
            "127.0.0.1",
            "-U",
            "testbed",
            "-d",
            "postgres",
            "-X",
            "-c",
            "SELECT 1",
            "-p",
        ])
        .arg(pg.addr().port().to_string())
        .env("PGPASSWORD", "wrong")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("password authentication failed"), "{err}");
}
