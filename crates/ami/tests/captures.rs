//! The client against what a real Asterisk 22.10.1 sent (tests/data/).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ami::{Auth, Client, ClientEvent, Config, Error, EventList};
use common::{data, sessions, wire, Replay};

fn config(secret: &str, auth: Auth, events: &str) -> Config {
    let mut c = Config::new("lab", secret);
    c.auth = auth;
    c.events = Some(events.to_string());
    c
}

fn lists(events: &[ClientEvent]) -> Vec<&EventList> {
    events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::List(l) => Some(l),
            _ => None,
        })
        .collect()
}

#[test]
fn md5_login_ping_logoff() {
    let s = sessions(&data("md5-challenge-login.txt"));
    assert_eq!(s.len(), 2);
    let mut r = Replay::new(Client::new(config("labsecret", Auth::Md5, "off")));
    r.play(&s[0]);

    // The key the client computed is the one Asterisk accepted.
    let login = &r.sent[1];
    assert_eq!(login.get("AuthType"), Some("MD5"));
    assert_eq!(login.get("Username"), Some("lab"));
    assert_eq!(login.get("Key"), Some("e1b9a660179d9482207e1a3c64c3b48c"));
    assert_eq!(login.get("Events"), Some("off"));
    assert_eq!(login.get("Secret"), None);

    let e = &r.events;
    assert_eq!(
        e[0],
        ClientEvent::Connected {
            version: Some("11.0.0".into())
        }
    );
    assert_eq!(e[1], ClientEvent::Authenticated);
    let ClientEvent::Response { response, .. } = &e[2] else {
        panic!("{e:?}")
    };
    assert_eq!(response.get("Ping"), Some("Pong"));
    assert_eq!(e[3], ClientEvent::LoggedOff);
    assert_eq!(e[4], ClientEvent::Closed(None));
    assert_eq!(e.len(), 5);
    assert!(r.client.is_closed());
}

#[test]
fn md5_login_refused() {
    let s = sessions(&data("md5-challenge-login.txt"));
    let mut r = Replay::new(Client::new(config("wrong", Auth::Md5, "off")));
    r.play(&s[1]);
    assert_eq!(
        r.events.last(),
        Some(&ClientEvent::Closed(Some(Error::LoginRefused {
            message: "Authentication failed".into()
        })))
    );
    assert!(!r.client.is_authenticated() && r.client.is_closed());
}

#[test]
fn plain_login_and_every_list_of_the_capture() {
    let s = sessions(&data("lists.txt"));
    assert_eq!(s.len(), 3);
    for session in &s {
        let mut r = Replay::new(Client::new(config("labsecret", Auth::Plain, "off")));
        r.play(session);
        assert_eq!(r.sent[0].get("Secret"), Some("labsecret"));
        let lists = lists(&r.events);
        let names: Vec<_> = lists
            .iter()
            .map(|l| l.complete.as_ref().unwrap().name.as_str())
            .collect();
        assert_eq!(
            names,
            [
                "ExtensionStateListComplete",
                "DeviceStateListComplete",
                "PresenceStateListComplete",
                "ContactListComplete",
                "InboundSubscriptionDetailComplete"
            ]
        );
        for l in &lists {
            assert!(l.is_complete() && l.error.is_none());
            let n: usize = l
                .complete
                .as_ref()
                .unwrap()
                .get("ListItems")
                .unwrap()
                .parse()
                .unwrap();
            assert_eq!(l.items.len(), n, "{}", l.response.message);
            assert!(l.items.iter().all(|i| i.action_id() == Some(l.id.as_str())));
        }
        let exten = lists[0];
        assert_eq!(exten.items.len(), 3);
        assert!(exten.items.iter().all(|i| i.is("ExtensionStatus")));
        assert_eq!(exten.items[0].get("Exten"), Some("1001"));
        // an empty value is kept as such
        assert_eq!(lists[3].items[0].get("RegServer"), Some(""));
        // nothing else than the lists, the login and the logoff
        assert!(r.events.iter().all(|e| matches!(
            e,
            ClientEvent::Connected { .. }
                | ClientEvent::Authenticated
                | ClientEvent::List(_)
                | ClientEvent::LoggedOff
                | ClientEvent::Closed(None)
        )));
    }
}

#[test]
fn connection_cut_in_the_middle_of_a_list() {
    let s = sessions(&data("lists.txt"));
    let session = &s[1];
    // banner, login, its answer, the ExtensionStateList action and its answer
    let start = session
        .iter()
        .position(|b| b.get("Event") == Some("ExtensionStatus"))
        .unwrap();
    let mut r = Replay::new(Client::new(config("labsecret", Auth::Plain, "off")));
    r.play(&session[..start]);
    // one whole item, then half of the next one; then the input ends
    let now = r.base + std::time::Duration::from_secs(2);
    let first = wire(&session[start], &r.ids);
    r.client.handle_input(&first, now);
    let second = wire(&session[start + 1], &r.ids);
    r.client.handle_input(&second[..second.len() / 2], now);
    r.drain_events();
    assert!(lists(&r.events).is_empty(), "nothing before the end");
    r.client.handle_eof();
    r.drain_events();
    let l = lists(&r.events);
    assert_eq!(l.len(), 1);
    assert!(!l[0].is_complete());
    assert_eq!(l[0].items.len(), 1);
    assert_eq!(l[0].error, Some(Error::ConnectionClosed));
    assert_eq!(
        r.events.last(),
        Some(&ClientEvent::Closed(Some(Error::Codec(
            ami::CodecError::Truncated
        ))))
    );
    assert_eq!(r.client.poll_timeout(), None);
}

#[test]
fn a_call_seen_with_events_on() {
    let s = sessions(&data("call-transcript.txt"));
    assert_eq!(s.len(), 1);
    // 22 s of capture: no keep-alive in the way
    let mut quiet = config("labsecret", Auth::Plain, "on");
    quiet.ping_interval = None;
    let mut r = Replay::new(Client::new(quiet));
    r.play(&s[0]);
    let booted = r
        .events
        .iter()
        .position(|e| matches!(e, ClientEvent::FullyBooted(ev) if ev.get("Status") == Some("Fully Booted")))
        .expect("FullyBooted");
    assert_eq!(r.events[booted - 1], ClientEvent::Authenticated);
    let status: Vec<(&str, &str)> = r
        .events
        .iter()
        .filter_map(|e| match e {
            ClientEvent::Event(ev) if ev.is("ExtensionStatus") => {
                Some((ev.get("Exten")?, ev.get("StatusText")?))
            }
            _ => None,
        })
        .collect();
    for want in [("1001", "InUse"), ("1002", "Ringing"), ("1001", "Idle")] {
        assert!(status.contains(&want), "{want:?} not in {status:?}");
    }
    let received = s[0].iter().filter(|b| !b.sent && !b.banner).count();
    // every received message became exactly one event (login answer included)
    assert_eq!(r.events.len(), received + 1, "{:?}", r.events.last());
    assert!(r.events.iter().all(|e| !matches!(
        e,
        ClientEvent::Unrecognised(_) | ClientEvent::UnmatchedResponse(_)
    )));

    // The capture ends with a Logoff whose Goodbye was not recorded: the
    // client gives it the action time-out, then closes.
    assert!(!r.client.is_closed());
    let deadline = r.client.poll_timeout().unwrap();
    r.client.handle_timeout(deadline);
    assert_eq!(r.client.poll_event(), Some(ClientEvent::Closed(None)));
    assert!(r.client.is_closed());
}
