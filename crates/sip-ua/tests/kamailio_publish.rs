//! PUBLISH (RFC 3903) of another user's presence against a real Kamailio
//! presence server, seen by a real `presence` watcher, all on 127.0.0.1.
#![cfg(feature = "tokio")]
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use blf::PresenceDocument;
use blf::{Basic, LineState, Notification, CONTENT_TYPE_PIDF};
use sip_ua::driver::EventReceiver;
use sip_ua::driver::{spawn, UaHandle};
use sip_ua::{Event, Notify, Subscription, UaConfig};
use testbed::{Kamailio, KamailioOptions};

/// Longest wait for one event: generous for a loaded machine; a passing run never waits for it.
const PATIENCE: Duration = Duration::from_secs(30);

async fn ua(
    pbx: &Kamailio,
    user: &str,
    password: &str,
    subs: Vec<Subscription>,
) -> (UaHandle, EventReceiver) {
    let mut cfg = UaConfig::new(pbx.sip_addr().to_string(), user, password);
    cfg.listen = Some("127.0.0.1:0".parse().unwrap());
    spawn(cfg, subs, None).await.unwrap()
}

/// The next event `pick` takes; other events are skipped.
async fn next<T>(
    rx: &mut EventReceiver,
    what: &str,
    mut pick: impl FnMut(Event) -> Option<T>,
) -> T {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    loop {
        match tokio::time::timeout_at(deadline, rx.recv()).await {
            Ok(Some(e)) => {
                if let Some(t) = pick(e) {
                    return t;
                }
            }
            Ok(None) => panic!("event channel closed while waiting for {what}"),
            Err(_) => panic!("no {what} within {PATIENCE:?}"),
        }
    }
}

/// The watcher's next NOTIFY for 1001 and its line state (an empty body counts as none published).
async fn next_state(rx: &mut EventReceiver) -> (Notify, LineState) {
    let n = next(rx, "NOTIFY for 1001", |e| match e {
        Event::Notify(n) if n.user == "1001" => Some(n),
        _ => None,
    })
    .await;
    let state = Notification::parse(n.content_type.as_deref(), &n.body)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&n.body)))
        .line_state();
    (n, state)
}

async fn published(rx: &mut EventReceiver) {
    next(rx, "Published for 1001", |e| match e {
        Event::Published { presentity, .. } if presentity == "1001" => Some(()),
        Event::PublicationFailed { reason, .. } => panic!("PUBLISH failed: {reason}"),
        _ => None,
    })
    .await;
}

fn in_a_call(pbx: &Kamailio) -> (String, Vec<u8>) {
    let doc = PresenceDocument::new(format!("sip:1001@{}", pbx.domain()), Basic::Open)
        .activity("busy")
        .activity("on-the-phone")
        .note("In a call (Teams)");
    (CONTENT_TYPE_PIDF.to_string(), doc.to_xml().into_bytes())
}

/// Gone: Kamailio's presence_xml then sends a document whose one tuple is `closed`.
fn assert_gone(n: &Notify, state: LineState) {
    let body = String::from_utf8_lossy(&n.body);
    assert_eq!(state, LineState::Offline, "{body}");
    assert!(!body.contains("on-the-phone"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "real peer: needs kamailio (scripts/install-peers.sh); run by scripts/test-all"]
async fn the_blf_account_publishes_1001s_presence_and_a_watcher_sees_it_come_and_go() {
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let (watcher, mut watched) =
        ua(&pbx, "1002", "pw1002", vec![Subscription::presence("1001")]).await;
    // Nothing published yet: the first NOTIFY has no document.
    let (first, state) = next_state(&mut watched).await;
    assert!(
        first.body.is_empty(),
        "{}",
        String::from_utf8_lossy(&first.body)
    );
    assert_eq!(state, LineState::Unknown);

    let (publisher, mut outcomes) = ua(&pbx, "blf", "blfsecret", vec![]).await;
    next(&mut outcomes, "Registered", |e| match e {
        Event::Registered { .. } => Some(()),
        Event::RegistrationFailed { reason, .. } => panic!("REGISTER failed: {reason}"),
        _ => None,
    })
    .await;

    publisher.publish("1001", Some(in_a_call(&pbx))).unwrap();
    published(&mut outcomes).await;
    let (n, state) = next_state(&mut watched).await;
    assert_eq!(n.content_type.as_deref(), Some(CONTENT_TYPE_PIDF));
    assert_eq!(
        state,
        LineState::Busy,
        "{}",
        String::from_utf8_lossy(&n.body)
    );
    assert!(String::from_utf8_lossy(&n.body).contains("on-the-phone"));
    assert_eq!(publisher.publications().await.unwrap().len(), 1);

    publisher.unpublish("1001").unwrap();
    next(&mut outcomes, "PublicationRemoved", |e| match e {
        Event::PublicationRemoved { presentity } if presentity == "1001" => Some(()),
        Event::PublicationFailed { reason, .. } => panic!("removal failed: {reason}"),
        _ => None,
    })
    .await;
    let (n, state) = next_state(&mut watched).await;
    assert_gone(&n, state);

    // Published again, then the publisher stops: stopping removes it.
    publisher.publish("1001", Some(in_a_call(&pbx))).unwrap();
    published(&mut outcomes).await;
    let (_, state) = next_state(&mut watched).await;
    assert_eq!(state, LineState::Busy);
    publisher.shutdown().await.unwrap();
    let removed: Vec<Event> = std::iter::from_fn(|| outcomes.try_recv().ok()).collect();
    assert!(
        removed.contains(&Event::PublicationRemoved {
            presentity: "1001".into()
        }),
        "{removed:?}"
    );
    let (n, state) = next_state(&mut watched).await;
    assert_gone(&n, state);
    watcher.shutdown().await.unwrap();
}
