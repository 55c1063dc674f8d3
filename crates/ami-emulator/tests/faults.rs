//! Faults: refused logins, cut lists, shutdown and boot, outages, slow
//! readers, raw bytes; and the observation hooks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use ami_emulator::{AmiEmulator, EmulatorConfig};
use common::Raw;
use tokio::net::TcpStream;

fn config() -> EmulatorConfig {
    EmulatorConfig::new().user("u", "p").extensions(1001..=1005)
}

#[tokio::test(start_paused = true)]
async fn refused_login_is_answered_after_one_second_then_closed() {
    let emu = AmiEmulator::start(config()).await.unwrap();
    emu.refuse_logins(true);
    let (mut s, _) = Raw::connect(emu.addr()).await;
    let t0 = tokio::time::Instant::now();
    s.send("Action: Login\nActionID: 1\nUsername: u\nSecret: p")
        .await;
    assert_eq!(
        s.next().await.unwrap(),
        "Response: Error\r\nActionID: 1\r\nMessage: Authentication failed\r\n\r\n"
    );
    assert!(t0.elapsed() >= Duration::from_secs(1));
    assert_eq!(s.read_to_end().await, "");
    emu.refuse_logins(false);
    let _ok = Raw::login(emu.addr(), "u", "p", Some("off")).await;
    emu.wait_sessions(1).await;
}

#[tokio::test]
async fn a_cut_list_ends_the_connection() {
    let emu = AmiEmulator::start(config()).await.unwrap();
    let mut s = Raw::login(emu.addr(), "u", "p", Some("off")).await;
    emu.cut_next_list_after(2);
    s.send("Action: ExtensionStateList\nActionID: x").await;
    let rest = s.read_to_end().await;
    assert!(rest.starts_with("Response: Success\r\nActionID: x\r\nEventList: start\r\n"));
    assert_eq!(rest.matches("Event: ExtensionStatus\r\n").count(), 2);
    assert!(!rest.contains("ExtensionStateListComplete"));
    emu.wait_sessions(0).await;
    // only the next list is cut
    let mut s = Raw::login(emu.addr(), "u", "p", Some("off")).await;
    s.send("Action: ExtensionStateList").await;
    let complete = s.next_event("ExtensionStateListComplete").await;
    assert_eq!(complete.get("ListItems"), Some("5"));
}

#[tokio::test]
async fn shutdown_refuses_connections_until_boot() {
    let emu = AmiEmulator::start(config()).await.unwrap();
    let mut s = Raw::login(emu.addr(), "u", "p", Some("system")).await;
    assert!(s
        .next()
        .await
        .unwrap()
        .starts_with("Event: FullyBooted\r\n"));
    emu.shutdown(true);
    assert_eq!(
        s.read_to_end().await,
        "Event: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n"
    );
    emu.wait_sessions(0).await;
    let refused = TcpStream::connect(emu.addr()).await;
    assert_eq!(
        refused.map(|_| ()).map_err(|e| e.kind()),
        Err(std::io::ErrorKind::ConnectionRefused)
    );
    emu.boot();
    let mut s = Raw::login(emu.addr(), "u", "p", None).await;
    let booted = s.next_msg().await.unwrap();
    assert_eq!(booted.get("Event"), Some("FullyBooted"));
    assert_eq!(booted.get("Uptime"), Some("0"));
}

#[tokio::test]
async fn drop_connections_keeps_listening() {
    let emu = AmiEmulator::start(config()).await.unwrap();
    let mut a = Raw::login(emu.addr(), "u", "p", Some("off")).await;
    let (mut b, _) = Raw::connect(emu.addr()).await;
    emu.wait_sessions(1).await;
    emu.drop_connections();
    assert_eq!(a.read_to_end().await, "");
    assert_eq!(b.read_to_end().await, "");
    emu.wait_sessions(0).await;
    let _again = Raw::login(emu.addr(), "u", "p", Some("off")).await;
    assert_eq!(emu.sessions(), 1);
}

#[tokio::test]
async fn a_slow_reader_is_closed() {
    let emu = AmiEmulator::start(config()).await.unwrap();
    emu.set_write_timeout(Duration::from_millis(50));
    let _reader = Raw::login(emu.addr(), "u", "p", Some("off")).await;
    emu.wait_sessions(1).await;
    // the reader never reads: the socket buffers fill, a write blocks, the
    // session is closed
    let chunk = vec![b'x'; 1 << 20];
    let closed = emu.wait_sessions(0);
    tokio::pin!(closed);
    let mut sent = 0;
    loop {
        tokio::select! {
            () = &mut closed => break,
            () = tokio::task::yield_now() => {
                assert!(sent < 512, "never closed");
                emu.send_raw(&chunk);
                sent += 1;
            }
        }
    }
}

#[tokio::test]
async fn raw_bytes_and_transcripts_reach_every_session() {
    let emu = AmiEmulator::start(config()).await.unwrap();
    let mut s = Raw::login(emu.addr(), "u", "p", Some("off")).await;
    emu.send_raw(b"garbage without colon\r\n\r\n");
    assert_eq!(s.next().await.unwrap(), "garbage without colon\r\n\r\n");
    let long = format!("Event: X\r\nBig: {}\r\n\r\n", "y".repeat(100_000));
    emu.send_raw(long.as_bytes());
    assert_eq!(s.next().await.unwrap(), long);
    let path =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/call-transcript.txt");
    let n = emu.replay_transcript(&path).unwrap();
    assert!(n > 100);
    let first = s.next().await.unwrap();
    assert_eq!(
        first,
        "Response: Success\r\nActionID: l1\r\nMessage: Authentication accepted\r\n\r\n"
    );
}

#[tokio::test]
async fn actions_are_recorded_and_streamed_with_secrets_redacted() {
    let emu = AmiEmulator::start(config()).await.unwrap();
    let mut live = emu.subscribe_actions();
    let mut s = Raw::login(emu.addr(), "u", "p", Some("off")).await;
    let login = live.recv().await.unwrap();
    assert!(login.is("Login"));
    assert_eq!(login.get("Secret"), Some("<redacted>"));
    assert_eq!(login.get("Username"), Some("u"));
    s.send("Action: Ping\nActionID: 7").await;
    let ping = live.recv().await.unwrap();
    assert!(ping.is("ping"));
    assert_eq!(ping.get("ActionID"), Some("7"));
    assert_eq!(ping.session, login.session);
    assert!(s.next().await.unwrap().contains("Ping: Pong"));
    let all = emu.actions();
    assert_eq!(all.len(), 2);
    assert!(!format!("{all:?}").contains("Secret\", \"p\""));
    let addr = emu.addr();
    emu.stop().await;
    assert_eq!(s.read_to_end().await, "");
    assert!(TcpStream::connect(addr).await.is_err());
}
