//! Timers in virtual time: the tests pass `now`, nothing sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use ami::parse_message;
use ami::{Action, Auth, Client, ClientEvent, Config, Error, Message};

const S: Duration = Duration::from_secs(1);

fn plain() -> Config {
    let mut c = Config::new("lab", "labsecret");
    c.auth = Auth::Plain;
    c
}

fn no_ping() -> Config {
    let mut c = plain();
    c.ping_interval = None;
    c
}

fn sent(c: &mut Client) -> Message {
    parse_message(&c.poll_transmit().expect("something to send")).unwrap()
}

fn events(c: &mut Client) -> Vec<ClientEvent> {
    std::iter::from_fn(|| c.poll_event()).collect()
}

fn answer(c: &mut Client, m: &Message, body: &str, now: Instant) {
    let id = m.action_id().unwrap();
    let wire = format!("Response: Success\r\nActionID: {id}\r\n{body}\r\n");
    c.handle_input(wire.as_bytes(), now);
}

/// A client logged in at `t0`.
fn logged_in(config: Config, t0: Instant) -> Client {
    let mut c = Client::new(config);
    c.handle_timeout(t0);
    c.handle_input(b"Asterisk Call Manager/11.0.0\r\n", t0);
    let login = sent(&mut c);
    answer(&mut c, &login, "Message: Authentication accepted\r\n", t0);
    assert!(events(&mut c).contains(&ClientEvent::Authenticated));
    c
}

#[test]
fn ping_on_interval_then_timeout() {
    let t0 = Instant::now();
    let mut c = logged_in(plain(), t0);
    assert_eq!(c.poll_timeout(), Some(t0 + 20 * S));
    c.handle_timeout(t0 + 19 * S);
    assert!(c.poll_transmit().is_none());

    // answered: the next one 20 s after the answer
    c.handle_timeout(t0 + 20 * S);
    let ping = sent(&mut c);
    assert_eq!(ping.get("Action"), Some("Ping"));
    assert_eq!(c.poll_timeout(), Some(t0 + 30 * S));
    answer(
        &mut c,
        &ping,
        "Ping: Pong\r\nTimestamp: 1796232812.214459\r\n",
        t0 + 21 * S,
    );
    assert!(events(&mut c).is_empty(), "the keep-alive is not reported");
    assert_eq!(c.poll_timeout(), Some(t0 + 41 * S));

    // not answered: dead after 10 s
    c.handle_timeout(t0 + 41 * S);
    assert_eq!(sent(&mut c).get("Action"), Some("Ping"));
    c.handle_timeout(t0 + 50 * S);
    assert!(!c.is_closed());
    c.handle_timeout(t0 + 51 * S);
    assert!(c.is_closed());
    assert_eq!(
        events(&mut c),
        [ClientEvent::Closed(Some(Error::PingTimeout(10 * S)))]
    );
    assert_eq!(c.poll_timeout(), None);
}

#[test]
fn action_timeout_and_late_answer() {
    let t0 = Instant::now();
    let mut c = logged_in(no_ping(), t0);
    let id = c
        .send_action(Action::extension_state("1001", "from-internal"), t0)
        .unwrap();
    let m = sent(&mut c);
    assert_eq!(m.action_id(), Some(id.as_str()));
    assert_eq!(m.get("Exten"), Some("1001"));
    assert_eq!(c.poll_timeout(), Some(t0 + 10 * S));
    c.handle_timeout(t0 + 10 * S);
    assert_eq!(
        events(&mut c),
        [ClientEvent::ActionFailed {
            id: id.clone(),
            error: Error::ActionTimeout(id)
        }]
    );
    // a late answer is not matched any more, and does not close
    answer(&mut c, &m, "Message: Extension Status\r\n", t0 + 11 * S);
    assert!(matches!(
        &events(&mut c)[..],
        [ClientEvent::UnmatchedResponse(_)]
    ));
    assert!(!c.is_closed());
}

#[test]
fn list_deadline_moves_with_each_item() {
    let t0 = Instant::now();
    let mut c = logged_in(no_ping(), t0);
    let id = c.send_action(Action::device_state_list(), t0).unwrap();
    let m = sent(&mut c);
    answer(
        &mut c,
        &m,
        "EventList: start\r\nMessage: Device State Changes will follow\r\n",
        t0 + 5 * S,
    );
    let item = format!(
        "Event: DeviceStateChange\r\nActionID: {id}\r\nDevice: PJSIP/1001\r\nState: INUSE\r\n\r\n"
    );
    c.handle_input(item.as_bytes(), t0 + 14 * S);
    assert_eq!(c.poll_timeout(), Some(t0 + 24 * S));
    c.handle_timeout(t0 + 24 * S);
    let ev = events(&mut c);
    let [ClientEvent::List(l)] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(l.items.len(), 1);
    assert!(!l.is_complete());
    assert_eq!(l.error, Some(Error::ActionTimeout(id)));
}

#[test]
fn login_timeout_without_banner_and_during_md5() {
    let t0 = Instant::now();
    let mut c = Client::new(plain());
    c.handle_timeout(t0);
    assert_eq!(c.poll_timeout(), Some(t0 + 10 * S));
    c.handle_timeout(t0 + 10 * S);
    assert_eq!(
        events(&mut c),
        [ClientEvent::Closed(Some(Error::LoginTimeout(10 * S)))]
    );

    let mut c = Client::new(Config::new("lab", "labsecret"));
    c.handle_input(b"Asterisk Call Manager/11.0.0\r\n", t0);
    assert_eq!(sent(&mut c).get("Action"), Some("Challenge"));
    c.handle_timeout(t0 + 10 * S);
    assert!(c.is_closed());
}

#[test]
fn actions_wait_for_the_login_and_fail_on_close() {
    let t0 = Instant::now();
    let mut c = Client::new(plain());
    c.handle_timeout(t0);
    let early = c.send_action(Action::extension_state_list(), t0).unwrap();
    assert!(c.poll_transmit().is_none(), "nothing before the banner");
    c.handle_input(b"Asterisk Call Manager/11.0.0\r\n", t0);
    let login = sent(&mut c);
    assert_eq!(login.get("Action"), Some("Login"));
    assert!(
        c.poll_transmit().is_none(),
        "nothing before the login is accepted"
    );
    answer(&mut c, &login, "Message: Authentication accepted\r\n", t0);
    let m = sent(&mut c);
    assert_eq!(m.get("Action"), Some("ExtensionStateList"));
    assert_eq!(m.action_id(), Some(early.as_str()));
    events(&mut c);
    c.handle_eof();
    assert_eq!(
        events(&mut c),
        [
            ClientEvent::ActionFailed {
                id: early,
                error: Error::ConnectionClosed
            },
            ClientEvent::Closed(Some(Error::ConnectionClosed))
        ]
    );
    assert_eq!(
        c.send_action(Action::ping(), t0),
        Err(Error::ConnectionClosed)
    );
}

#[test]
fn shutdown_and_fully_booted_are_reported() {
    let t0 = Instant::now();
    let mut c = logged_in(plain(), t0);
    c.handle_input(b"Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: 3\r\nLastReload: 3\r\nStatus: Fully Booted\r\n\r\nEvent: Shutdown\r\nPrivilege: system,all\r\nShutdown: Cleanly\r\nRestart: True\r\n\r\n", t0);
    let ev = events(&mut c);
    assert!(matches!(&ev[0], ClientEvent::FullyBooted(e) if e.get("Uptime") == Some("3")));
    assert!(matches!(
        &ev[1],
        ClientEvent::Shutdown {
            restart: true,
            clean: true,
            ..
        }
    ));
    c.handle_eof();
    assert_eq!(
        events(&mut c),
        [ClientEvent::Closed(Some(Error::ConnectionClosed))]
    );
}

#[test]
fn a_list_that_fails_is_a_plain_response() {
    let t0 = Instant::now();
    let mut c = logged_in(plain(), t0);
    let id = c.send_action(Action::extension_state_list(), t0).unwrap();
    let m = sent(&mut c);
    let wire = format!(
        "Response: Error\r\nActionID: {}\r\nMessage: No dialplan hints are available\r\n\r\n",
        m.action_id().unwrap()
    );
    c.handle_input(wire.as_bytes(), t0);
    let ev = events(&mut c);
    let [ClientEvent::Response { id: got, response }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(got, &id);
    assert!(!response.is_success());
    assert_eq!(response.text(), Some("No dialplan hints are available"));
}

#[test]
fn secret_is_never_in_debug_output() {
    let t0 = Instant::now();
    let mut c = Client::new(plain());
    c.handle_input(b"Asterisk Call Manager/11.0.0\r\n", t0);
    // the plain login (with the secret) waits in the transmit queue
    let dbg = format!("{c:?} {:?}", plain());
    assert!(!dbg.contains("labsecret"), "{dbg}");
    assert!(dbg.contains("***"));
    assert!(!format!("{:?}", ami::Secret::new("labsecret")).contains("labsecret"));
}

#[test]
fn invalid_actions_are_refused() {
    let t0 = Instant::now();
    let mut c = logged_in(plain(), t0);
    let bad = Action::new("Setvar").field("Value", "x\r\nAction: Originate");
    assert!(matches!(
        c.send_action(bad, t0),
        Err(Error::InvalidAction(_))
    ));
    let bad = Action::new("Ping").field("ActionID", "mine");
    assert!(matches!(
        c.send_action(bad, t0),
        Err(Error::InvalidAction(_))
    ));
    assert!(c.poll_transmit().is_none());
    assert!(!c.is_closed());
}
