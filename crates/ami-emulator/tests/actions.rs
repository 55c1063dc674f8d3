//! Actions, their error texts, permissions and event masks.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use ami_emulator::{AmiEmulator, DeviceState, EmulatorConfig, ManagerUser};
use common::Raw;

async fn ask(s: &mut Raw, action: &str) -> String {
    s.send(action).await;
    s.next().await.expect("reply")
}

#[tokio::test]
async fn errors_before_and_after_login() {
    let emu = AmiEmulator::start(EmulatorConfig::new().user("u", "p").extensions(1001..=1002))
        .await
        .unwrap();
    let (mut s, banner) = Raw::connect(emu.addr()).await;
    assert_eq!(banner, "Asterisk Call Manager/11.0.0\r\n");
    assert_eq!(
        ask(&mut s, "Action: Ping\nActionID: 1").await,
        "Response: Error\r\nActionID: 1\r\nMessage: Permission denied\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "ActionID: 2").await,
        "Response: Error\r\nActionID: 2\r\nMessage: Missing action in request\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: Challenge\nAuthType: plain").await,
        "Response: Error\r\nMessage: Must specify AuthType\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: login\nUsername: U\nSecret: p\nEvents: off").await,
        "Response: Success\r\nMessage: Authentication accepted\r\n\r\n"
    );
    assert_eq!(emu.sessions(), 1);
    assert_eq!(
        ask(&mut s, "Action: Login\nUsername: u\nSecret: p").await,
        "Response: Success\r\nMessage: Already authenticated\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: Frobnicate\nActionID: 3").await,
        "Response: Error\r\nActionID: 3\r\nMessage: Invalid/unknown command: Frobnicate. Use Action: ListCommands to show available commands.\r\n\r\n"
    );
    let long = format!("Action: Ping\nActionID: 4\nX: {}", "a".repeat(2000));
    assert_eq!(
        ask(&mut s, &long).await,
        "Response: Error\r\nActionID: 4\r\nMessage: Failed to parse message: line too long\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: ExtensionState\nActionID: 5").await,
        "Response: Error\r\nActionID: 5\r\nMessage: Extension not specified\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: ExtensionState\nExten: 1099\nContext: ext-local").await,
        "Response: Success\r\nMessage: Extension Status\r\nExten: 1099\r\nContext: ext-local\r\nHint: \r\nStatus: -1\r\nStatusText: Unknown\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: ExtensionState\nExten: 1001").await,
        "Response: Success\r\nMessage: Extension Status\r\nExten: 1001\r\nContext: default\r\nHint: \r\nStatus: -1\r\nStatusText: Unknown\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: ExtensionState\nExten: 1001\nContext: ext-local").await,
        "Response: Success\r\nMessage: Extension Status\r\nExten: 1001\r\nContext: ext-local\r\nHint: PJSIP/1001\r\nStatus: 4\r\nStatusText: Unavailable\r\n\r\n"
    );
    // no contact: the stray LF of Asterisk's message
    assert_eq!(
        ask(&mut s, "Action: PJSIPShowContacts\nActionID: 6").await,
        "Response: Error\r\nActionID: 6\r\nMessage: No Contacts found\n\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: Logoff").await,
        "Response: Goodbye\r\nMessage: Thanks for all the fish.\r\n\r\n"
    );
    assert_eq!(s.read_to_end().await, "");
    emu.wait_sessions(0).await;
}

#[tokio::test]
async fn astdb_and_device_state_functions() {
    let emu = AmiEmulator::start(EmulatorConfig::new().user("u", "p"))
        .await
        .unwrap();
    let mut s = Raw::login(emu.addr(), "u", "p", Some("off")).await;
    assert_eq!(
        ask(&mut s, "Action: DBGet\nFamily: DND\nKey: 1001").await,
        "Response: Error\r\nMessage: Database entry not found\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: DBGet\nKey: 1001").await,
        "Response: Error\r\nMessage: No family specified.\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: DBPut\nFamily: DND").await,
        "Response: Error\r\nMessage: No key specified\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: DBDel\nFamily: DND\nKey: 1001").await,
        "Response: Error\r\nMessage: Database entry could not be deleted\r\n\r\n"
    );
    assert_eq!(
        ask(
            &mut s,
            "Action: DBPut\nFamily: AMPUSER\nKey: 1001/device\nVal: "
        )
        .await,
        "Response: Success\r\nMessage: Updated database successfully\r\n\r\n"
    );
    assert_eq!(emu.db_get("AMPUSER", "1001/device").as_deref(), Some(""));
    for bad in ["UNKNOWN", "garbage", ""] {
        assert_eq!(
            ask(
                &mut s,
                &format!("Action: Setvar\nVariable: DEVICE_STATE(Custom:DND1001)\nValue: {bad}")
            )
            .await,
            "Response: Error\r\nMessage: Variable not set\r\n\r\n",
            "{bad}"
        );
    }
    assert_eq!(
        ask(
            &mut s,
            "Action: Setvar\nVariable: DEVICE_STATE(PJSIP/1001)\nValue: BUSY"
        )
        .await,
        "Response: Error\r\nMessage: Variable not set\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: Setvar\nValue: BUSY").await,
        "Response: Error\r\nMessage: No variable specified\r\n\r\n"
    );
    assert_eq!(
        ask(
            &mut s,
            "Action: Getvar\nVariable: DEVICE_STATE(Custom:DND1001)"
        )
        .await,
        "Response: Success\r\nVariable: DEVICE_STATE(Custom:DND1001)\r\nValue: UNKNOWN\r\n\r\n"
    );
    assert_eq!(
        ask(
            &mut s,
            "Action: Setvar\nVariable: DEVICE_STATE(custom:DND1001)\nValue: busy"
        )
        .await,
        "Response: Success\r\nMessage: Variable Set\r\n\r\n"
    );
    assert_eq!(emu.device_state("Custom:DND1001"), DeviceState::Busy);
    assert_eq!(
        emu.db_get("CustomDevstate", "DND1001").as_deref(),
        Some("busy")
    );
    assert_eq!(
        ask(
            &mut s,
            "Action: Setvar\nVariable: X\nValue: 1\nChannel: PJSIP/9-00000001"
        )
        .await,
        "Response: Error\r\nMessage: No such channel\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: QueueStatus\nActionID: q").await,
        "Response: Success\r\nActionID: q\r\nEventList: start\r\nMessage: Queue status will follow\r\n\r\n"
    );
    assert_eq!(
        s.next().await.unwrap(),
        "Event: QueueStatusComplete\r\nActionID: q\r\nEventList: Complete\r\nListItems: 0\r\n\r\n"
    );
    // no hints at all
    assert_eq!(
        ask(&mut s, "Action: ExtensionStateList").await,
        "Response: Error\r\nMessage: No dialplan hints are available\r\n\r\n"
    );
}

#[tokio::test]
async fn write_permissions_per_action() {
    let user = ManagerUser::new("ro", "p")
        .read("system,call")
        .write("call");
    let emu = AmiEmulator::start(EmulatorConfig::new().manager_user(user).extensions([1001]))
        .await
        .unwrap();
    let mut s = Raw::login(emu.addr(), "ro", "p", None).await;
    assert!(s
        .next()
        .await
        .unwrap()
        .starts_with("Event: FullyBooted\r\n"));
    assert_eq!(
        ask(&mut s, "Action: DBPut\nFamily: DND\nKey: 1\nVal: YES").await,
        "Response: Error\r\nMessage: Permission denied\r\n\r\n"
    );
    assert_eq!(
        ask(&mut s, "Action: PJSIPShowContacts").await,
        "Response: Error\r\nMessage: Permission denied\r\n\r\n"
    );
    assert!(ask(&mut s, "Action: ExtensionStateList")
        .await
        .contains("EventList: start"));
}

#[tokio::test]
async fn event_masks_and_read_classes() {
    let emu = AmiEmulator::start(
        EmulatorConfig::new()
            .user("all", "p")
            .manager_user(ManagerUser::new("sys", "p").read("system"))
            .extensions([1001]),
    )
    .await
    .unwrap();
    let mut off = Raw::login(emu.addr(), "all", "p", Some("off")).await;
    let mut call = Raw::login(emu.addr(), "all", "p", Some("call")).await;
    let mut sys = Raw::login(emu.addr(), "sys", "p", Some("on")).await;
    assert!(sys
        .next()
        .await
        .unwrap()
        .starts_with("Event: FullyBooted\r\n"));
    emu.register("1001");
    // call class only: DeviceStateChange, ExtensionStatus (no PeerStatus/ContactStatus)
    assert!(call
        .next()
        .await
        .unwrap()
        .starts_with("Event: DeviceStateChange\r\nPrivilege: call,all\r\n"));
    assert!(call
        .next()
        .await
        .unwrap()
        .starts_with("Event: ExtensionStatus\r\nPrivilege: call,all\r\n"));
    // read = system: PeerStatus, ContactStatus only
    assert!(sys
        .next()
        .await
        .unwrap()
        .starts_with("Event: PeerStatus\r\nPrivilege: system,all\r\n"));
    assert!(sys
        .next()
        .await
        .unwrap()
        .starts_with("Event: ContactStatus\r\nPrivilege: system,all\r\n"));
    // the Events action switches them on and off
    assert_eq!(
        ask(&mut off, "Action: Events\nEventMask: system,call").await,
        "Response: Success\r\nEvents: On\r\n\r\n"
    );
    assert_eq!(
        ask(&mut call, "Action: Events\nEventMask: off").await,
        "Response: Success\r\nEvents: Off\r\n\r\n"
    );
    assert_eq!(
        ask(&mut call, "Action: Events\nEventMask: ").await,
        "Response: Error\r\nMessage: Invalid event mask\r\n\r\n"
    );
    emu.set_dnd("1001", true);
    assert_eq!(
        off.next().await.unwrap(),
        "Event: DeviceStateChange\r\nPrivilege: call,all\r\nDevice: Custom:DND1001\r\nState: BUSY\r\n\r\n"
    );
    // a marker to show the others got nothing in between
    emu.unregister("1001");
    assert!(sys
        .next()
        .await
        .unwrap()
        .starts_with("Event: PeerStatus\r\n"));
    assert_eq!(
        ask(&mut call, "Action: Ping\nActionID: p")
            .await
            .lines()
            .next(),
        Some("Response: Success")
    );
}

#[tokio::test]
async fn ten_thousand_extensions_in_one_list() {
    let emu = AmiEmulator::start(
        EmulatorConfig::new()
            .user("u", "p")
            .freepbx_dnd(true)
            .extensions(10000..20000),
    )
    .await
    .unwrap();
    emu.register("10042");
    emu.set_dnd("19999", true);
    let mut s = Raw::login(emu.addr(), "u", "p", Some("off")).await;
    s.send("Action: ExtensionStateList\nActionID: big").await;
    let start = s.next_msg().await.unwrap();
    assert_eq!(start.get("EventList"), Some("start"));
    let mut items = Vec::new();
    loop {
        let m = s.next_msg().await.unwrap();
        if m.get("Event") == Some("ExtensionStateListComplete") {
            assert_eq!(m.get("ListItems"), Some("10000"));
            break;
        }
        assert_eq!(m.get("ActionID"), Some("big"));
        items.push(m);
    }
    assert_eq!(items.len(), 10000);
    assert_eq!(items[0].get("Exten"), Some("10000"));
    assert_eq!(
        items[0].get("Hint"),
        Some("PJSIP/10000&Custom:DND10000,CustomPresence:10000")
    );
    assert_eq!(items[0].get("Status"), Some("4"));
    assert_eq!(items[42].get("StatusText"), Some("Idle"));
    assert_eq!(items[9999].get("StatusText"), Some("Busy"));
}
