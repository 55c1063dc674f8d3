//! The tokio driver against small AMI servers written here, on 127.0.0.1.
//!
//! Delays (backoff, the stop's limit) run in tokio's paused time, so nothing
//! waits for real. Paused time is used only while no timer but the one under
//! test is pending: whenever the runtime waits on a socket, paused time jumps
//! to the next timer (a login or ping deadline would fire early).
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::Duration;

use ami::driver::{self, AmiHandle, Backoff, DriverConfig, DriverError, SessionEvent};
use ami::{Action, Auth, Config, Error, Event, Limits, Message};
use ami::{Decoder, Frame};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc::UnboundedReceiver;
use tokio::time::Instant;

const S: Duration = Duration::from_secs(1);
const SECRET: &str = "s3cret";

/// One accepted connection, seen from the server's side.
struct Peer {
    stream: TcpStream,
    decoder: Decoder,
}

impl Peer {
    /// Accepts a connection and greets it as Asterisk 22 does.
    async fn accept(listener: &TcpListener) -> Self {
        let (mut stream, _) = listener.accept().await.unwrap();
        stream
            .write_all(b"Asterisk Call Manager/11.0.0\r\n")
            .await
            .unwrap();
        Self {
            stream,
            decoder: Decoder::without_banner(Limits::default()),
        }
    }

    /// The next action, or `None` when the client closed.
    async fn next_action(&mut self) -> Option<Message> {
        let mut buf = [0u8; 4096];
        loop {
            if let Some(Frame::Message(m)) = self.decoder.next_frame().unwrap() {
                return Some(m);
            }
            let n = self.stream.read(&mut buf).await.unwrap_or(0);
            if n == 0 {
                return None;
            }
            self.decoder.push(&buf[..n]);
        }
    }

    async fn expect(&mut self, name: &str) -> Message {
        let action = self.next_action().await.expect("an action");
        assert_eq!(action.get("Action"), Some(name), "{action:?}");
        action
    }

    /// Writes one message made of `lines`.
    async fn send(&mut self, lines: &[&str]) {
        let mut wire = lines.join("\r\n");
        wire.push_str("\r\n\r\n");
        self.stream.write_all(wire.as_bytes()).await.unwrap();
    }

    /// Answers `action` with `Response: <kind>`, its ActionID and `lines`.
    async fn reply(&mut self, action: &Message, kind: &str, lines: &[&str]) {
        let response = format!("Response: {kind}");
        let id = format!("ActionID: {}", action.action_id().unwrap());
        let mut all = vec![response.as_str(), id.as_str()];
        all.extend_from_slice(lines);
        self.send(&all).await;
    }

    /// Accepts a plain login; returns it.
    async fn login(&mut self) -> Message {
        let login = self.expect("Login").await;
        self.reply(&login, "Success", &["Message: Authentication accepted"])
            .await;
        login
    }
}

async fn listener() -> (TcpListener, SocketAddr) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    (listener, addr)
}

/// An address nothing listens on.
async fn closed_port() -> SocketAddr {
    listener().await.1
}

fn config(addr: SocketAddr) -> DriverConfig {
    let mut client = Config::new("blf", SECRET);
    client.auth = Auth::Plain;
    client.events = Some("system,call".into());
    DriverConfig::new(addr.to_string(), client)
}

/// `since` is `delay` ago, to the timer's resolution (1 ms: a clock paused
/// mid-run is not on a millisecond boundary).
fn assert_waited(since: Instant, delay: Duration) {
    let waited = since.elapsed();
    assert!(
        waited >= delay && waited <= delay + Duration::from_millis(1),
        "waited {waited:?}, not {delay:?}"
    );
}

async fn next(events: &mut UnboundedReceiver<SessionEvent>) -> SessionEvent {
    events.recv().await.expect("an event")
}

fn event(e: SessionEvent) -> Event {
    match e {
        SessionEvent::Event(e) => e,
        other => panic!("not an AMI event: {other:?}"),
    }
}

fn extension_status(exten: &str, status: &str, text: &str) -> Vec<String> {
    [
        "Event: ExtensionStatus",
        "Privilege: call,all",
        &format!("Exten: {exten}"),
        "Context: ext-local",
        &format!("Hint: PJSIP/{exten}"),
        &format!("Status: {status}"),
        &format!("StatusText: {text}"),
    ]
    .map(String::from)
    .to_vec()
}

async fn send_owned(peer: &mut Peer, lines: &[String]) {
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    peer.send(&lines).await;
}

/// A driver logged in to a fresh server.
async fn logged_in(
    config: DriverConfig,
    listener: &TcpListener,
) -> (AmiHandle, UnboundedReceiver<SessionEvent>, Peer) {
    let (ami, mut events) = driver::spawn(config);
    assert_eq!(
        next(&mut events).await,
        SessionEvent::Connecting { attempt: 1 }
    );
    let mut peer = Peer::accept(listener).await;
    peer.login().await;
    assert_eq!(
        next(&mut events).await,
        SessionEvent::LoggedIn {
            version: Some("11.0.0".into())
        }
    );
    (ami, events, peer)
}

#[tokio::test]
async fn login_then_events_flow_in_order() {
    let (listener, addr) = listener().await;
    let (_ami, mut events) = driver::spawn(config(addr));
    assert_eq!(
        next(&mut events).await,
        SessionEvent::Connecting { attempt: 1 }
    );
    let mut peer = Peer::accept(&listener).await;
    let login = peer.login().await;
    assert_eq!(login.get("Username"), Some("blf"));
    assert_eq!(login.get("Secret"), Some(SECRET));
    assert_eq!(login.get("Events"), Some("system,call"));
    peer.send(&[
        "Event: FullyBooted",
        "Privilege: system,all",
        "Uptime: 12",
        "LastReload: 12",
        "Status: Fully Booted",
    ])
    .await;
    send_owned(&mut peer, &extension_status("1001", "1", "InUse")).await;
    send_owned(&mut peer, &extension_status("1002", "8", "Ringing")).await;
    peer.send(&[
        "Event: DeviceStateChange",
        "Privilege: call,all",
        "Device: Custom:DND1001",
        "State: BUSY",
    ])
    .await;

    assert_eq!(
        next(&mut events).await,
        SessionEvent::LoggedIn {
            version: Some("11.0.0".into())
        }
    );
    assert_eq!(next(&mut events).await, SessionEvent::FullyBooted);
    let first = event(next(&mut events).await);
    assert_eq!(
        (first.get("Exten"), first.get("StatusText")),
        (Some("1001"), Some("InUse"))
    );
    let second = event(next(&mut events).await);
    assert_eq!(
        (second.get("Exten"), second.get("StatusText")),
        (Some("1002"), Some("Ringing"))
    );
    let third = event(next(&mut events).await);
    assert!(third.is("DeviceStateChange"));
    assert_eq!(third.get("State"), Some("BUSY"));
}

#[tokio::test]
async fn an_action_and_a_list_are_answered() {
    let (listener, addr) = listener().await;
    let (ami, mut events, mut peer) = logged_in(config(addr), &listener).await;

    let (answer, ()) = tokio::join!(
        ami.action(Action::extension_state("1001", "ext-local")),
        async {
            let a = peer.expect("ExtensionState").await;
            assert_eq!(a.get("Exten"), Some("1001"));
            peer.reply(
                &a,
                "Success",
                &[
                    "Message: Extension Status",
                    "Exten: 1001",
                    "Context: ext-local",
                    "Hint: PJSIP/1001",
                    "Status: 0",
                    "StatusText: Idle",
                ],
            )
            .await;
        }
    );
    let answer = answer.unwrap();
    assert!(answer.is_success());
    assert_eq!(answer.get("StatusText"), Some("Idle"));

    // The list's items carry its ActionID; an async event in the middle is
    // not part of it and goes to the event channel.
    let (list, ()) = tokio::join!(ami.list(Action::extension_state_list()), async {
        let a = peer.expect("ExtensionStateList").await;
        let id = format!("ActionID: {}", a.action_id().unwrap());
        peer.reply(
            &a,
            "Success",
            &[
                "EventList: start",
                "Message: Extension Statuses will follow",
            ],
        )
        .await;
        for (exten, status, text) in [("1001", "0", "Idle"), ("1002", "4", "Unavailable")] {
            let mut item = extension_status(exten, status, text);
            item.remove(1); // list items have no Privilege
            item.insert(1, id.clone());
            send_owned(&mut peer, &item).await;
            if exten == "1001" {
                send_owned(&mut peer, &extension_status("1003", "1", "InUse")).await;
            }
        }
        peer.send(&[
            "Event: ExtensionStateListComplete",
            &id,
            "EventList: Complete",
            "ListItems: 2",
        ])
        .await;
    });
    let list = list.unwrap();
    assert!(list.is_complete() && list.error.is_none());
    let extens: Vec<_> = list.items.iter().map(|e| e.get("Exten").unwrap()).collect();
    assert_eq!(extens, ["1001", "1002"]);
    let async_event = event(next(&mut events).await);
    assert_eq!(async_event.get("Exten"), Some("1003"));

    // An error is an answer, not a failure.
    let (answer, ()) = tokio::join!(ami.action(Action::new("Bogus")), async {
        let a = peer.expect("Bogus").await;
        peer.reply(
            &a,
            "Error",
            &["Message: Invalid/unknown command: Bogus. Use Action: ListCommands to show available commands."],
        )
        .await;
    });
    let answer = answer.unwrap();
    assert!(!answer.is_success());
    assert!(answer
        .text()
        .unwrap()
        .starts_with("Invalid/unknown command"));

    // A list action refused: an empty list whose response is the error.
    let (list, ()) = tokio::join!(ami.list(Action::db_get("DND", "1001")), async {
        let a = peer.expect("DBGet").await;
        peer.reply(&a, "Error", &["Message: Database entry not found"])
            .await;
    });
    let list = list.unwrap();
    assert!(!list.response.is_success());
    assert_eq!(list.response.text(), Some("Database entry not found"));
    assert!(list.items.is_empty() && list.complete.is_none() && list.error.is_none());

    // An action the client cannot encode fails without reaching the server.
    let bad = ami
        .action(Action::new("Setvar").field("Variable", "a\r\nAction: Logoff"))
        .await;
    assert!(matches!(
        bad,
        Err(DriverError::Ami(Error::InvalidAction(_)))
    ));
}

/// A config whose client has no timer running once logged in (no keep-alive),
/// so that paused time can jump only to the driver's own delays.
fn quiet_config(addr: SocketAddr) -> DriverConfig {
    let mut config = config(addr);
    config.client.ping_interval = None;
    config
}

#[tokio::test]
async fn an_action_in_flight_fails_when_the_connection_ends() {
    let (listener, addr) = listener().await;
    let (ami, mut events, mut peer) = logged_in(config(addr), &listener).await;
    let (answer, ()) = tokio::join!(ami.action(Action::ping()), async {
        peer.expect("Ping").await;
        peer.stream.shutdown().await.unwrap();
    });
    assert_eq!(answer, Err(DriverError::Ami(Error::ConnectionClosed)));
    assert_eq!(
        next(&mut events).await,
        SessionEvent::Disconnected {
            error: DriverError::Ami(Error::ConnectionClosed),
            retry_in: S,
        }
    );
    ami.stop(S).await;
    assert_eq!(next(&mut events).await, SessionEvent::Stopped);
}

#[tokio::test]
async fn a_closed_connection_is_reopened_and_logged_in_again() {
    let (listener, addr) = listener().await;
    let (ami, mut events, mut peer) = logged_in(quiet_config(addr), &listener).await;

    // Paused time from here to the next attempt: nothing else has a timer.
    tokio::time::pause();
    peer.stream.shutdown().await.unwrap();
    assert_eq!(
        next(&mut events).await,
        SessionEvent::Disconnected {
            error: DriverError::Ami(Error::ConnectionClosed),
            retry_in: S,
        }
    );
    let lost_at = Instant::now();
    // After a login the count starts again.
    assert_eq!(
        next(&mut events).await,
        SessionEvent::Connecting { attempt: 1 }
    );
    assert_waited(lost_at, S);
    // The login's timers run on a real clock: a paused one would jump to
    // them whenever the runtime waits for the socket.
    tokio::time::resume();
    drop(peer);

    let mut peer = Peer::accept(&listener).await;
    peer.login().await;
    assert_eq!(
        next(&mut events).await,
        SessionEvent::LoggedIn {
            version: Some("11.0.0".into())
        }
    );
    send_owned(&mut peer, &extension_status("1001", "0", "Idle")).await;
    assert_eq!(event(next(&mut events).await).get("Exten"), Some("1001"));

    // Shutdown then the end of the connection; the delay is `initial` again.
    peer.send(&[
        "Event: Shutdown",
        "Privilege: system,all",
        "Shutdown: Cleanly",
        "Restart: True",
    ])
    .await;
    peer.stream.shutdown().await.unwrap();
    assert_eq!(
        next(&mut events).await,
        SessionEvent::Shutdown { restart: true }
    );
    assert_eq!(
        next(&mut events).await,
        SessionEvent::Disconnected {
            error: DriverError::Ami(Error::ConnectionClosed),
            retry_in: S,
        }
    );
    ami.stop(S).await;
    assert_eq!(next(&mut events).await, SessionEvent::Stopped);
}

#[tokio::test(start_paused = true)]
async fn a_refused_connection_is_retried_with_backoff() {
    let addr = closed_port().await;
    let mut config = config(addr);
    config.backoff = Backoff::new(S, 4 * S);
    let (ami, mut events) = driver::spawn(config);

    let mut last_failure: Option<Instant> = None;
    let mut expected_wait = Duration::ZERO;
    for (attempt, delay) in (1..).zip([1, 2, 4, 4, 4].map(|n| n * S)) {
        assert_eq!(
            next(&mut events).await,
            SessionEvent::Connecting { attempt }
        );
        if let Some(at) = last_failure {
            assert_waited(at, expected_wait);
        }
        match next(&mut events).await {
            SessionEvent::Disconnected {
                error: DriverError::Connect { address, reason },
                retry_in,
            } => {
                assert_eq!(address, addr.to_string());
                assert!(reason.contains(&addr.to_string()), "{reason}");
                assert_eq!(retry_in, delay, "attempt {attempt}");
            }
            other => panic!("{other:?}"),
        }
        last_failure = Some(Instant::now());
        expected_wait = delay;
    }

    ami.stop(S).await;
    assert_eq!(next(&mut events).await, SessionEvent::Stopped);
    assert_eq!(events.recv().await, None);
}

#[tokio::test]
async fn an_action_while_not_logged_in_is_not_connected() {
    // During the login.
    let (listener, addr) = listener().await;
    let (ami, mut events) = driver::spawn(config(addr));
    assert_eq!(
        next(&mut events).await,
        SessionEvent::Connecting { attempt: 1 }
    );
    let mut peer = Peer::accept(&listener).await;
    peer.expect("Login").await;
    assert_eq!(
        ami.action(Action::ping()).await,
        Err(DriverError::NotConnected)
    );
    drop(peer);
    ami.stop(S).await;

    // Between two connections.
    let (ami, mut events) = driver::spawn(config(closed_port().await));
    assert_eq!(
        next(&mut events).await,
        SessionEvent::Connecting { attempt: 1 }
    );
    assert!(matches!(
        next(&mut events).await,
        SessionEvent::Disconnected { .. }
    ));
    assert_eq!(
        ami.action(Action::ping()).await,
        Err(DriverError::NotConnected)
    );
    assert_eq!(
        ami.list(Action::extension_state_list()).await,
        Err(DriverError::NotConnected)
    );
    ami.stop(S).await;
    assert_eq!(next(&mut events).await, SessionEvent::Stopped);
    assert_eq!(ami.action(Action::ping()).await, Err(DriverError::Stopped));
}

#[tokio::test]
async fn stop_logs_off_then_stopped() {
    let (listener, addr) = listener().await;
    let (ami, mut events, mut peer) = logged_in(config(addr), &listener).await;
    let ((), closed) = tokio::join!(ami.stop(5 * S), async {
        let logoff = peer.expect("Logoff").await;
        peer.reply(&logoff, "Goodbye", &["Message: Thanks for all the fish."])
            .await;
        peer.next_action().await
    });
    assert_eq!(closed, None, "the driver closes the connection");
    assert_eq!(next(&mut events).await, SessionEvent::Stopped);
    assert_eq!(events.recv().await, None);
    assert_eq!(ami.action(Action::ping()).await, Err(DriverError::Stopped));
    ami.stop(S).await; // already stopped: returns at once
}

#[tokio::test]
async fn stop_gives_up_on_goodbye_after_its_limit() {
    let (listener, addr) = listener().await;
    let (ami, mut events, mut peer) = logged_in(quiet_config(addr), &listener).await;
    // The only timers left: the stop's limit and the Logoff's time-out (10 s).
    tokio::time::pause();
    let started = Instant::now();
    let ((), _logoff) = tokio::join!(ami.stop(2 * S), peer.expect("Logoff"));
    assert_waited(started, 2 * S);
    assert_eq!(next(&mut events).await, SessionEvent::Stopped);
}

#[tokio::test]
async fn dropping_every_handle_logs_off_and_stops() {
    let (listener, addr) = listener().await;
    let (ami, mut events, mut peer) = logged_in(config(addr), &listener).await;
    let other = ami.clone();
    drop(ami);
    // One handle left: the driver goes on.
    let (pong, ()) = tokio::join!(other.action(Action::ping()), async {
        let ping = peer.expect("Ping").await;
        peer.reply(&ping, "Success", &["Ping: Pong", "Timestamp: 1.0"])
            .await;
    });
    assert!(pong.unwrap().is_success());
    drop(other);
    let logoff = peer.expect("Logoff").await;
    peer.reply(&logoff, "Goodbye", &["Message: Thanks for all the fish."])
        .await;
    assert_eq!(next(&mut events).await, SessionEvent::Stopped);
    assert_eq!(events.recv().await, None);
}

#[tokio::test]
async fn connect_reports_a_refused_login() {
    let (listener, addr) = listener().await;
    let mut config = config(addr);
    config.client.auth = Auth::Md5;
    let (result, ()) = tokio::join!(driver::connect(config), async {
        let mut peer = Peer::accept(&listener).await;
        let challenge = peer.expect("Challenge").await;
        assert_eq!(challenge.get("AuthType"), Some("MD5"));
        peer.reply(&challenge, "Success", &["Challenge: 840109047"])
            .await;
        let login = peer.expect("Login").await;
        assert_eq!(login.get("Secret"), None);
        assert_eq!(login.get("Key").map(str::len), Some(32));
        peer.reply(&login, "Error", &["Message: Authentication failed"])
            .await;
    });
    match result {
        Err(DriverError::Ami(Error::LoginRefused { message })) => {
            assert_eq!(message, "Authentication failed");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connect_reports_a_refused_connection() {
    let addr = closed_port().await;
    match driver::connect(config(addr)).await {
        Err(e @ DriverError::Connect { .. }) => {
            assert!(e.to_string().contains(&addr.to_string()), "{e}");
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn connect_does_not_reconnect() {
    let (listener, addr) = listener().await;
    let (connected, mut peer) = tokio::join!(driver::connect(config(addr)), async {
        let mut peer = Peer::accept(&listener).await;
        peer.login().await;
        peer
    });
    let (ami, mut events) = connected.unwrap();
    assert_eq!(
        next(&mut events).await,
        SessionEvent::LoggedIn {
            version: Some("11.0.0".into())
        }
    );
    let (pong, ()) = tokio::join!(ami.action(Action::ping()), async {
        let ping = peer.expect("Ping").await;
        peer.reply(&ping, "Success", &["Ping: Pong", "Timestamp: 1.0"])
            .await;
    });
    assert!(pong.unwrap().is_success());
    drop(peer);
    assert_eq!(
        next(&mut events).await,
        SessionEvent::Disconnected {
            error: DriverError::Ami(Error::ConnectionClosed),
            retry_in: Duration::ZERO,
        }
    );
    assert_eq!(next(&mut events).await, SessionEvent::Stopped);
    assert_eq!(events.recv().await, None);
}

#[tokio::test]
async fn garbage_from_the_server_ends_the_connection_with_a_codec_error() {
    let (listener, addr) = listener().await;
    let (ami, mut events, mut peer) = logged_in(config(addr), &listener).await;
    // A line longer than the client's 8 KiB limit.
    peer.stream.write_all(&[b'x'; 10_000]).await.unwrap();
    match next(&mut events).await {
        SessionEvent::Disconnected {
            error: DriverError::Ami(Error::Codec(_)),
            ..
        } => {}
        other => panic!("{other:?}"),
    }
    ami.stop(S).await;
    assert_eq!(next(&mut events).await, SessionEvent::Stopped);
}

#[tokio::test]
async fn the_secret_stays_out_of_debug() {
    let config = config(closed_port().await);
    let debug = format!("{config:?}");
    assert!(debug.contains("blf") && !debug.contains(SECRET), "{debug}");
}
