//! Queue members: the `QueueStatus` list, the `QueueMember*` events (class
//! `agent`) on add, remove, pause and device state changes, and who gets them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::HashMap;

use ami_emulator::{AmiEmulator, DeviceState, EmulatorConfig, ManagerUser};
use common::Raw;

/// The fields of every `QueueMember*` event, in the emulator's order.
const MEMBER_EVENT_FIELDS: [&str; 18] = [
    "Event",
    "Privilege",
    "Queue",
    "MemberName",
    "Interface",
    "StateInterface",
    "Membership",
    "Penalty",
    "CallsTaken",
    "LastCall",
    "LastPause",
    "LoginTime",
    "InCall",
    "Status",
    "Paused",
    "PausedReason",
    "Ringinuse",
    "Wrapuptime",
];

/// The fields of a `QueueMember` list item (`ActionID` last, as app_queue appends it).
const MEMBER_ITEM_FIELDS: [&str; 17] = [
    "Event",
    "Queue",
    "Name",
    "Location",
    "StateInterface",
    "Membership",
    "Penalty",
    "CallsTaken",
    "LastCall",
    "LastPause",
    "LoginTime",
    "InCall",
    "Status",
    "Paused",
    "PausedReason",
    "Wrapuptime",
    "ActionID",
];

fn keys(m: &ami::Message) -> Vec<&str> {
    m.fields().iter().map(|(k, _)| k.as_str()).collect()
}

fn config() -> EmulatorConfig {
    EmulatorConfig::new()
        .user("u", "p")
        .manager_user(ManagerUser::new("noagent", "p").read("system,call"))
        .extensions(1001..=1003)
        .static_queue_member("support", "1002")
        .queue("sales")
}

/// Reads messages until every event named in `names` has come (in any
/// order, others skipped); the first of each.
async fn events(s: &mut Raw, names: &[&str]) -> HashMap<String, ami::Message> {
    let mut got = HashMap::new();
    while names.iter().any(|n| !got.contains_key(*n)) {
        let m = s.next_msg().await.expect("connection open");
        if let Some(name) = m.get("Event").filter(|n| names.contains(n)) {
            got.entry(name.to_string()).or_insert(m);
        }
    }
    got
}

/// The next `QueueMemberStatus` of `interface`.
async fn member_status(s: &mut Raw, interface: &str) -> ami::Message {
    loop {
        let m = s.next_event("QueueMemberStatus").await;
        if m.get("Interface") == Some(interface) {
            return m;
        }
    }
}

/// `QueueStatus` with extra headers: the list items (start and end checked).
async fn queue_status(s: &mut Raw, extra: &str) -> Vec<ami::Message> {
    s.send(&format!("Action: QueueStatus\nActionID: qs\n{extra}"))
        .await;
    assert_eq!(
        s.next().await.unwrap(),
        "Response: Success\r\nActionID: qs\r\nEventList: start\r\nMessage: Queue status will follow\r\n\r\n"
    );
    let mut items = Vec::new();
    loop {
        let m = s.next_msg().await.unwrap();
        if m.get("Event") == Some("QueueStatusComplete") {
            assert_eq!(
                m.fields(),
                [
                    ("Event".into(), "QueueStatusComplete".into()),
                    ("ActionID".into(), "qs".into()),
                    ("EventList".into(), "Complete".into()),
                    ("ListItems".into(), items.len().to_string()),
                ]
            );
            return items;
        }
        items.push(m);
    }
}

#[tokio::test]
async fn queue_status_lists_members_with_paused_and_in_call() {
    let emu = AmiEmulator::start(config()).await.unwrap();
    emu.register("1001");
    emu.register("1002");
    emu.register("1003");
    emu.add_queue_member("support", "1001");
    emu.pause_queue_member("support", "1002", true, "lunch");
    let call = emu.call("1003", "1001");
    emu.answer(call);

    let mut s = Raw::login(emu.addr(), "u", "p", Some("off")).await;
    s.send("Action: QueueStatus\nActionID: qs").await;
    assert_eq!(
        s.next().await.unwrap(),
        "Response: Success\r\nActionID: qs\r\nEventList: start\r\nMessage: Queue status will follow\r\n\r\n"
    );
    // the queues by name: sales (empty), then support
    assert_eq!(
        s.next().await.unwrap(),
        "Event: QueueParams\r\nQueue: sales\r\nMax: 0\r\nStrategy: ringall\r\nCalls: 0\r\n\
         Holdtime: 0\r\nTalkTime: 0\r\nCompleted: 0\r\nAbandoned: 0\r\nServiceLevel: 0\r\n\
         ServicelevelPerf: 0.0\r\nServicelevelPerf2: 0.0\r\nWeight: 0\r\nActionID: qs\r\n\r\n"
    );
    let params = s.next_msg().await.unwrap();
    assert_eq!(params.get("Event"), Some("QueueParams"));
    assert_eq!(params.get("Queue"), Some("support"));
    let paused = s.next_msg().await.unwrap();
    let busy = s.next_msg().await.unwrap();
    assert_eq!(
        s.next().await.unwrap(),
        "Event: QueueStatusComplete\r\nActionID: qs\r\nEventList: Complete\r\nListItems: 4\r\n\r\n"
    );
    for m in [&paused, &busy] {
        assert_eq!(keys(m), MEMBER_ITEM_FIELDS);
        assert_eq!(m.get("Queue"), Some("support"));
        assert_eq!(m.get("Penalty"), Some("0"));
        assert_eq!(m.get("CallsTaken"), Some("0"));
        assert_eq!(m.get("Wrapuptime"), Some("0"));
    }
    // the static member, paused for lunch, idle
    assert_eq!(paused.get("Name"), Some("Ext 1002"));
    assert_eq!(paused.get("Location"), Some("Local/1002@from-queue/n"));
    assert_eq!(paused.get("StateInterface"), Some("PJSIP/1002"));
    assert_eq!(paused.get("Membership"), Some("static"));
    assert_eq!(paused.get("Paused"), Some("1"));
    assert_eq!(paused.get("PausedReason"), Some("lunch"));
    assert_eq!(paused.get("InCall"), Some("0"));
    assert_eq!(paused.get("Status"), Some("1"));
    assert_ne!(paused.get("LastPause"), Some("0"));
    // the dynamic member, on a call
    assert_eq!(busy.get("Name"), Some("Ext 1001"));
    assert_eq!(busy.get("Location"), Some("Local/1001@from-queue/n"));
    assert_eq!(busy.get("Membership"), Some("dynamic"));
    assert_eq!(busy.get("Paused"), Some("0"));
    assert_eq!(busy.get("PausedReason"), Some(""));
    assert_eq!(busy.get("InCall"), Some("1"));
    assert_eq!(busy.get("Status"), Some("2"));
    assert_eq!(busy.get("LastPause"), Some("0"));

    // filters: a queue (ignoring case), a member by interface or by name
    let only = queue_status(&mut s, "Queue: SUPPORT").await;
    assert_eq!(only.len(), 3);
    let one = queue_status(&mut s, "Queue: support\nMember: Local/1001@from-queue/n").await;
    assert_eq!(one.len(), 2);
    assert_eq!(one[1].get("Name"), Some("Ext 1001"));
    let by_name = queue_status(&mut s, "Member: Ext 1002").await;
    let names: Vec<_> = by_name.iter().filter_map(|m| m.get("Name")).collect();
    assert_eq!(names, ["Ext 1002"]);
    assert_eq!(by_name.len(), 3, "both QueueParams and one member");
    assert!(queue_status(&mut s, "Queue: nope").await.is_empty());

    let info = emu.queue_member("support", "1001").unwrap();
    assert!(info.in_call && info.dynamic && !info.paused);
    assert_eq!(info.status, DeviceState::InUse);
    emu.stop().await;
}

#[tokio::test]
async fn pause_emits_pause_then_status() {
    let emu = AmiEmulator::start(config()).await.unwrap();
    emu.register("1001");
    let mut s = Raw::login(emu.addr(), "u", "p", Some("call,agent")).await;
    emu.add_queue_member("support", "1001");
    let added = events(&mut s, &["QueueMemberAdded", "DeviceStateChange"]).await;
    let m = &added["QueueMemberAdded"];
    assert_eq!(keys(m), MEMBER_EVENT_FIELDS);
    assert_eq!(m.get("Privilege"), Some("agent,all"));
    assert_eq!(m.get("Membership"), Some("dynamic"));
    assert_eq!(m.get("Status"), Some("1"));
    assert_eq!(m.get("Ringinuse"), Some("1"));
    // app_queue's pause device (a Queue: device, not a phone)
    let dev = &added["DeviceStateChange"];
    assert_eq!(
        dev.get("Device"),
        Some("Queue:support_pause_Local/1001@from-queue/n")
    );
    assert_eq!(dev.get("State"), Some("NOT_INUSE"));

    emu.pause_queue_member("support", "1001", true, "lunch");
    let got = events(
        &mut s,
        &["QueueMemberPause", "QueueMemberStatus", "DeviceStateChange"],
    )
    .await;
    for name in ["QueueMemberPause", "QueueMemberStatus"] {
        let m = &got[name];
        assert_eq!(keys(m), MEMBER_EVENT_FIELDS);
        assert_eq!(m.get("Queue"), Some("support"));
        assert_eq!(m.get("MemberName"), Some("Ext 1001"));
        assert_eq!(m.get("Interface"), Some("Local/1001@from-queue/n"));
        assert_eq!(m.get("StateInterface"), Some("PJSIP/1001"));
        assert_eq!(m.get("Paused"), Some("1"));
        assert_eq!(m.get("PausedReason"), Some("lunch"));
        assert_eq!(m.get("InCall"), Some("0"));
    }
    assert_eq!(got["DeviceStateChange"].get("State"), Some("INUSE"));

    emu.pause_queue_member("support", "1001", false, "");
    let got = events(&mut s, &["QueueMemberPause", "QueueMemberStatus"]).await;
    for m in got.values() {
        assert_eq!(m.get("Paused"), Some("0"));
        assert_eq!(m.get("PausedReason"), Some(""));
    }
    assert!(!emu.queue_member("support", "1001").unwrap().paused);

    // removed: a dynamic member goes, a static one stays (NOTDYNAMIC)
    emu.remove_queue_member("support", "1002");
    emu.remove_queue_member("support", "1001");
    let removed = s.next_event("QueueMemberRemoved").await;
    assert_eq!(keys(&removed), MEMBER_EVENT_FIELDS);
    assert_eq!(removed.get("Interface"), Some("Local/1001@from-queue/n"));
    assert!(emu.queue_member("support", "1001").is_none());
    assert!(emu.queue_member("support", "1002").is_some());
    emu.stop().await;
}

#[tokio::test]
async fn a_call_on_the_members_phone_sets_in_call() {
    let emu = AmiEmulator::start(config()).await.unwrap();
    let mut s = Raw::login(emu.addr(), "u", "p", Some("agent")).await;
    emu.add_queue_member("support", "1001");
    let added = s.next_event("QueueMemberAdded").await;
    assert_eq!(
        added.get("Status"),
        Some("5"),
        "not registered: UNAVAILABLE"
    );
    let iface = "Local/1001@from-queue/n";
    let step = |m: &ami::Message| {
        (
            m.get("Status").unwrap().to_string(),
            m.get("InCall").unwrap().to_string(),
        )
    };
    emu.register("1001");
    emu.register("1002");
    assert_eq!(
        step(&member_status(&mut s, iface).await),
        ("1".into(), "0".into())
    );
    let call = emu.call("1002", "1001");
    assert_eq!(
        step(&member_status(&mut s, iface).await),
        ("6".into(), "0".into())
    );
    emu.answer(call);
    assert_eq!(
        step(&member_status(&mut s, iface).await),
        ("2".into(), "1".into())
    );
    emu.hold(call);
    assert_eq!(
        step(&member_status(&mut s, iface).await),
        ("8".into(), "1".into())
    );
    emu.unhold(call);
    assert_eq!(
        step(&member_status(&mut s, iface).await),
        ("2".into(), "1".into())
    );
    emu.hangup(call);
    assert_eq!(
        step(&member_status(&mut s, iface).await),
        ("1".into(), "0".into())
    );
    // the static member 1002 made the call: its own status events, InCall 1 then 0
    emu.set_device_state("PJSIP/1002", DeviceState::RingInUse);
    let m = member_status(&mut s, "Local/1002@from-queue/n").await;
    assert_eq!(step(&m), ("7".into(), "1".into()));
    emu.stop().await;
}

#[tokio::test]
async fn sessions_without_agent_get_no_member_events() {
    let emu = AmiEmulator::start(config()).await.unwrap();
    emu.register("1001");
    // read permission without agent, and a mask without agent
    let mut no_perm = Raw::login(emu.addr(), "noagent", "p", None).await;
    let mut no_mask = Raw::login(emu.addr(), "u", "p", Some("system,call")).await;
    let mut agent = Raw::login(emu.addr(), "u", "p", Some("agent")).await;

    emu.add_queue_member("support", "1001");
    emu.pause_queue_member("support", "1001", true, "break");
    let call = emu.call("1001", "1002");
    emu.hangup(call);
    emu.remove_queue_member("support", "1001");

    let seen = events(
        &mut agent,
        &[
            "QueueMemberAdded",
            "QueueMemberPause",
            "QueueMemberStatus",
            "QueueMemberRemoved",
        ],
    )
    .await;
    assert_eq!(seen.len(), 4);
    for s in [&mut no_perm, &mut no_mask] {
        // everything published so far comes before the answer to this Ping
        s.send("Action: Ping\nActionID: end").await;
        let mut devices = 0;
        loop {
            let m = s.next_msg().await.unwrap();
            if m.get("ActionID") == Some("end") {
                break;
            }
            let name = m.get("Event").unwrap_or_default();
            assert!(!name.starts_with("QueueMember"), "{m:?}");
            if name == "DeviceStateChange" {
                devices += 1;
            }
        }
        // the call-class events did come: pause device ×2, PJSIP/1001 ×2, PJSIP/1002
        assert!(devices >= 4, "{devices}");
    }
    // QueueStatus needs no write class
    let items = queue_status(&mut no_perm, "Queue: support").await;
    assert_eq!(items.len(), 2);
    emu.stop().await;
}
