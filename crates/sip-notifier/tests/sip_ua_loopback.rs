//! The real `sip_ua` tokio driver subscribes to the notifier on 127.0.0.1
//! (digest challenges included) and receives its NOTIFYs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use blf::{LineState, Notification, Tracker};
use sip_notifier::{
    Account, DialogSpec, DialogState, Direction, NotifierConfig, NotifierEvent, NotifierServer,
};
use sip_ua::driver::EventReceiver;
use sip_ua::{Event, Subscription, UaConfig};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

async fn next_line_state(events: &mut EventReceiver, tracker: &mut Tracker) -> LineState {
    loop {
        let event = timeout(LIMIT, events.recv()).await.unwrap().unwrap();
        if let Event::Notify(n) = event {
            assert_eq!(n.user, "1001");
            let parsed = Notification::parse(n.content_type.as_deref(), &n.body).unwrap();
            return tracker.apply(parsed).line_state;
        }
    }
}

#[tokio::test]
async fn sip_ua_driver_subscribes_on_loopback_and_follows_a_call() {
    let config = NotifierConfig::new("pbx.test", vec![Account::new("blf", "secret")])
        .with_extensions(["1001"]);
    let mut pbx = NotifierServer::start(config, "127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let mut ua_config = UaConfig::new(pbx.local_addr().to_string(), "blf", "secret");
    ua_config.domain = Some("pbx.test".into());
    let (ua, mut events) =
        sip_ua::driver::spawn(ua_config, vec![Subscription::dialog("1001")], None)
            .await
            .unwrap();
    let mut tracker = Tracker::new();
    assert_eq!(
        next_line_state(&mut events, &mut tracker).await,
        LineState::Idle
    );
    // The PBX side saw the registration and the subscription.
    let mut registered = false;
    loop {
        match timeout(LIMIT, pbx.next_event()).await.unwrap().unwrap() {
            NotifierEvent::Registered { user, .. } => {
                assert_eq!(user, "blf");
                registered = true;
            }
            NotifierEvent::Subscribed { extension, .. } => {
                assert_eq!(extension, "1001");
                break;
            }
            _ => {}
        }
    }
    assert!(registered);

    let call = DialogSpec::new("c1", Direction::Recipient, DialogState::Early).with_remote("1002");
    let script = [
        (vec![call.clone()], LineState::Ringing),
        (
            vec![DialogSpec {
                state: DialogState::Confirmed,
                ..call.clone()
            }],
            LineState::Busy,
        ),
        (
            vec![DialogSpec {
                state: DialogState::Confirmed,
                ..call.clone()
            }
            .on_hold()],
            LineState::Hold,
        ),
        (vec![], LineState::Idle),
    ];
    for (dialogs, want) in script {
        pbx.set_line("1001", dialogs).unwrap();
        assert_eq!(next_line_state(&mut events, &mut tracker).await, want);
    }
    let stats = pbx.stats().await.unwrap();
    assert_eq!(stats.registrations, 1);
    assert_eq!(stats.active_subscriptions, 1);
    assert_eq!(stats.notifies_sent, 5);
    assert!(stats.challenges >= 2, "{stats:?}");

    // The user agent un-SUBSCRIBEs and un-REGISTERs.
    ua.shutdown().await.unwrap();
    let stats = pbx.stats().await.unwrap();
    assert_eq!((stats.registrations, stats.active_subscriptions), (0, 0));
    let stats = pbx.shutdown().await.unwrap();
    assert_eq!(stats.notifies_failed, 0);
}
