//! The emulator's replies compared byte for byte with what a real Asterisk
//! 22.10.1 sent (tests/data, recorded on loopback).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ami_emulator::{parse_transcript, AmiEmulator, EmulatorConfig};
use common::{connections, replay, transcript, Raw};

fn lab() -> EmulatorConfig {
    EmulatorConfig::new()
        .user("lab", "labsecret")
        .context("from-internal")
        .extensions(1001..=1003)
}

/// Actions of lists.txt the emulator answers exactly; the others depend on
/// the lab's other devices (PJSIP/blf, queues) or are not modelled.
fn lists_skip(action: &str) -> bool {
    !["Login", "ExtensionStateList", "Logoff"]
        .iter()
        .any(|a| action.starts_with(&format!("Action: {a}\r\n")))
}

#[tokio::test]
async fn extension_state_list_idle_mid_call_after() {
    let emu = AmiEmulator::start(lab()).await.unwrap();
    let conns = connections(&transcript("lists.txt"));
    assert_eq!(conns.len(), 3);
    // 1) idle: nothing registered yet
    replay(emu.addr(), &conns[0], lists_skip).await;
    // 2) mid-call: 1001 -> 1002 answered
    emu.register("1002");
    emu.register("1001");
    let call = emu.call("1001", "1002");
    emu.answer(call);
    replay(emu.addr(), &conns[1], lists_skip).await;
    // 3) after the call
    emu.hangup(call);
    replay(emu.addr(), &conns[2], lists_skip).await;
}

#[tokio::test]
async fn md5_challenge_login_and_ping() {
    let emu = AmiEmulator::start(
        EmulatorConfig::new()
            .user("lab", "labsecret")
            .fixed_challenge("443206330")
            .fixed_challenge("238715597"),
    )
    .await
    .unwrap();
    let conns = connections(&transcript("md5-challenge-login.txt"));
    assert_eq!(conns.len(), 2);
    replay(emu.addr(), &conns[0], |_| false).await;
    // wrong secret: "Authentication failed" (after 1 s), then the server closes
    replay(emu.addr(), &conns[1], |_| false).await;
    let logins: Vec<_> = emu
        .actions()
        .into_iter()
        .filter(|a| a.is("Login"))
        .collect();
    assert_eq!(logins.len(), 2);
    assert_eq!(logins[0].get("Key"), Some("<redacted>"));
}

#[tokio::test]
async fn freepbx_dnd_actions() {
    let emu = AmiEmulator::start(lab()).await.unwrap();
    emu.register("1001");
    emu.register("1002");
    let conns = connections(&transcript("dnd-actions.txt"));
    // phase 1, plain hints: DND on, DND off
    replay(emu.addr(), &conns[0], |_| false).await;
    assert_eq!(emu.db_get("DND", "1001").as_deref(), Some("YES"));
    replay(emu.addr(), &conns[1], |_| false).await;
    assert_eq!(emu.db_get("DND", "1001"), None);
    // phase 2: FreePBX-style hints after a dialplan reload
    for n in 1001..=1003 {
        emu.add_hint(
            &n.to_string(),
            &format!("PJSIP/{n}&Custom:DND{n},CustomPresence:{n}"),
        );
    }
    replay(emu.addr(), &conns[2], |_| false).await;
    assert_eq!(emu.extension_status("1001"), Some(2));
    // PRESENCE_STATE / PresenceState are not modelled
    let no_presence =
        |a: &str| a.contains("PRESENCE_STATE") || a.starts_with("Action: PresenceState");
    for conn in &conns[3..] {
        replay(emu.addr(), conn, no_presence).await;
    }
    assert_eq!(emu.extension_status("1001"), Some(0));
    assert_eq!(emu.extension_status("1002"), Some(0));
    assert_eq!(
        emu.db_get("CustomDevstate", "DND1002").as_deref(),
        Some("NOT_INUSE")
    );
}

/// The async events of a call, for a session with `Events: on`, byte for
/// byte where they do not hold times or channel numbers.
#[tokio::test]
async fn register_and_call_events_match_the_transcript() {
    let emu = AmiEmulator::start(lab()).await.unwrap();
    let recorded = parse_transcript(&transcript("call-transcript.txt"));
    let find = |start: &str, with: &str| -> String {
        recorded
            .iter()
            .find(|m| m.starts_with(start) && m.contains(with))
            .cloned()
            .unwrap_or_else(|| panic!("{start} {with} not in the transcript"))
    };
    let mut s = Raw::login(emu.addr(), "lab", "labsecret", Some("on")).await;
    let booted = s.next().await.unwrap();
    assert!(booted.starts_with("Event: FullyBooted\r\nPrivilege: system,all\r\nUptime: "));
    assert!(booted.ends_with("\r\nStatus: Fully Booted\r\n\r\n"));

    emu.register("1002");
    assert_eq!(
        s.next().await.unwrap(),
        find("Event: PeerStatus", "PJSIP/1002\r\nPeerStatus: Reachable")
    );
    let contact = s.next_msg().await.unwrap();
    assert_eq!(contact.get("Event"), Some("ContactStatus"));
    assert_eq!(contact.get("ContactStatus"), Some("NonQualified"));
    assert_eq!(contact.get("AOR"), Some("1002"));
    assert_eq!(
        s.next().await.unwrap(),
        find("Event: DeviceStateChange", "PJSIP/1002\r\nState: NOT_INUSE")
    );
    assert_eq!(
        s.next().await.unwrap(),
        find(
            "Event: ExtensionStatus",
            "Exten: 1002\r\nContext: from-internal\r\nHint: PJSIP/1002\r\nStatus: 0"
        )
    );

    emu.register("1001");
    for _ in 0..4 {
        s.next().await.unwrap();
    }
    let call = emu.call("1001", "1002");
    let a = s.next_msg().await.unwrap();
    assert_eq!(a.get("Event"), Some("Newchannel"));
    assert_eq!(a.get("ChannelStateDesc"), Some("Ring"));
    assert_eq!(a.get("CallerIDNum"), Some("1001"));
    assert_eq!(a.get("ConnectedLineNum"), Some("<unknown>"));
    assert_eq!(a.get("Exten"), Some("1002"));
    let b = s.next_msg().await.unwrap();
    assert_eq!(b.get("Event"), Some("Newchannel"));
    assert_eq!(b.get("ChannelStateDesc"), Some("Down"));
    assert_eq!(b.get("Linkedid"), a.get("Uniqueid"));
    let ring = s.next_msg().await.unwrap();
    assert_eq!(ring.get("Event"), Some("Newstate"));
    assert_eq!(ring.get("ChannelStateDesc"), Some("Ringing"));
    assert_eq!(ring.get("ConnectedLineNum"), Some("1001"));
    // the field order of a channel block is the recorded one
    let keys = |m: &ami::Message| {
        m.fields()
            .iter()
            .map(|(k, _)| k.clone())
            .collect::<Vec<_>>()
    };
    let recorded_newstate =
        ami::parse_message(find("Event: Newstate", "ChannelStateDesc: Ringing").as_bytes())
            .unwrap();
    assert_eq!(keys(&ring), keys(&recorded_newstate));
    assert_eq!(
        s.next().await.unwrap(),
        find("Event: DeviceStateChange", "PJSIP/1002\r\nState: RINGING")
    );
    assert_eq!(
        s.next().await.unwrap(),
        find(
            "Event: ExtensionStatus",
            "Exten: 1002\r\nContext: from-internal\r\nHint: PJSIP/1002\r\nStatus: 8"
        )
    );
    assert_eq!(
        s.next().await.unwrap(),
        find("Event: DeviceStateChange", "PJSIP/1001\r\nState: INUSE")
    );
    assert_eq!(
        s.next().await.unwrap(),
        find(
            "Event: ExtensionStatus",
            "Exten: 1001\r\nContext: from-internal\r\nHint: PJSIP/1001\r\nStatus: 1"
        )
    );

    emu.hangup(call);
    let h = s.next_msg().await.unwrap();
    assert_eq!(h.get("Event"), Some("Hangup"));
    assert_eq!(h.get("Cause-txt"), Some("Normal Clearing"));
    let recorded_hangup =
        ami::parse_message(find("Event: Hangup\r\n", "Channel: PJSIP/1001").as_bytes()).unwrap();
    assert_eq!(keys(&h), keys(&recorded_hangup));
}
