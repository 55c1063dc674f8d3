//! When a subscription has been lost for too long, its last line state is no
//! longer news: the line becomes `unknown` (mapped like any other state).
//!
//! [`StaleTracker`] is sans-IO: the SIP source tells it when a subscription
//! was lost ([`lost`](StaleTracker::lost)) and when a NOTIFY brought a line
//! state again ([`restored`](StaleTracker::restored)), and drives one timer
//! ([`poll_timeout`](StaleTracker::poll_timeout),
//! [`handle_timeout`](StaleTracker::handle_timeout)). Each loss is reported
//! once, however many failures follow, until the line is restored.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use sip_blf_sync::sip_source::StaleTracker;
//!
//! let t0 = Instant::now();
//! let mut stale = StaleTracker::new(Some(Duration::from_secs(120)));
//! stale.lost("1001", "no answer to SUBSCRIBE", t0);
//! assert_eq!(stale.poll_timeout(), Some(t0 + Duration::from_secs(120)));
//! let expired = stale.handle_timeout(t0 + Duration::from_secs(120));
//! assert_eq!(expired[0].key, "1001");
//! assert!(stale.restored(&"1001"), "the next NOTIFY must be passed on");
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use blf::LineState;
use sip_ua::{Event, EventPackage as Package, Notify, SubState};

use super::{LineChange, SipHealth, SipSource, SourceEvent};

/// Why a line state is `unknown`: its subscription has been lost too long.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Staleness {
    /// How long the subscription had been lost when the line was declared unknown.
    pub lost_for: Duration,
    /// When it was lost (wall clock).
    pub since: SystemTime,
    /// The last failure reported for it, in plain words.
    pub reason: String,
}

/// One subscription lost for longer than the limit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Expired<K> {
    /// Which subscription.
    pub key: K,
    /// When it was lost.
    pub lost_at: Instant,
    /// How long it had been lost at the `now` given to `handle_timeout`.
    pub lost_for: Duration,
    /// The last failure reported for it.
    pub reason: String,
}

#[derive(Debug)]
struct Lost {
    at: Instant,
    reason: String,
    /// `true` once reported by `handle_timeout`.
    reported: bool,
}

/// Tracks lost subscriptions by key (an extension, or whatever identifies
/// a subscription) and says when each has been lost too long.
#[derive(Debug)]
pub struct StaleTracker<K> {
    after: Option<Duration>,
    lost: BTreeMap<K, Lost>,
    /// Deadlines not reported yet, earliest first.
    due: BTreeSet<(Instant, K)>,
}

impl<K: Ord + Clone> StaleTracker<K> {
    /// Lines become unknown after `after` without their subscription;
    /// `None` (or zero): never.
    pub fn new(after: Option<Duration>) -> Self {
        Self {
            after: after.filter(|d| !d.is_zero()),
            lost: BTreeMap::new(),
            due: BTreeSet::new(),
        }
    }

    /// The subscription `key` stopped being active at `now` because of
    /// `reason`. A later failure while still lost keeps the first time and
    /// takes the newer reason.
    pub fn lost(&mut self, key: K, reason: impl Into<String>, now: Instant) {
        let Some(after) = self.after else {
            return;
        };
        let reason = reason.into();
        match self.lost.get_mut(&key) {
            Some(l) => l.reason = reason,
            None => {
                self.due.insert((now + after, key.clone()));
                self.lost.insert(
                    key,
                    Lost {
                        at: now,
                        reason,
                        reported: false,
                    },
                );
            }
        }
    }

    /// A NOTIFY brought `key`'s line state again. `true` when the line had
    /// been reported unknown: that state must then be passed on even if it
    /// is the one held before the loss.
    pub fn restored(&mut self, key: &K) -> bool {
        let Some(l) = self.lost.remove(key) else {
            return false;
        };
        if let Some(after) = self.after {
            self.due.remove(&(l.at + after, key.clone()));
        }
        l.reported
    }

    /// Whether `key`'s line has been reported unknown and not restored since.
    pub fn is_stale(&self, key: &K) -> bool {
        self.lost.get(key).is_some_and(|l| l.reported)
    }

    /// When [`handle_timeout`](Self::handle_timeout) has something to report.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.due.first().map(|(at, _)| *at)
    }

    /// The subscriptions lost for the limit or longer at `now`, each reported once.
    pub fn handle_timeout(&mut self, now: Instant) -> Vec<Expired<K>> {
        let mut out = Vec::new();
        while let Some((at, _)) = self.due.first() {
            if *at > now {
                break;
            }
            let Some((_, key)) = self.due.pop_first() else {
                break;
            };
            if let Some(l) = self.lost.get_mut(&key) {
                l.reported = true;
                out.push(Expired {
                    lost_at: l.at,
                    lost_for: now.saturating_duration_since(l.at),
                    reason: l.reason.clone(),
                    key,
                });
            }
        }
        out
    }
}

/// The source's clock: tokio's, so paused-time tests drive it.
pub(super) fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// Sleeps until `at` (forever when `None`).
pub(super) async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(tokio::time::Instant::from_std(at)).await,
        None => std::future::pending().await,
    }
}

impl SipSource {
    /// Notes the subscriptions an event shows lost: failed, ended by the
    /// PBX, or all of them when the PBX stops answering. A REGISTER the PBX
    /// refuses loses none: subscriptions do not need the registration.
    pub(super) fn note_loss(&mut self, event: &Event) {
        let now = now();
        match event {
            Event::SubscriptionFailed {
                user: extension,
                package,
                diagnosis,
                ..
            } => self
                .stale
                .lost((extension.clone(), *package), diagnosis.as_str(), now),
            Event::SubscriptionTerminated {
                user: extension,
                package,
                reason,
                ..
            } => {
                let why = match reason {
                    Some(r) => format!("the PBX ended the subscription (reason {r})"),
                    None => "the PBX ended the subscription".to_owned(),
                };
                self.stale.lost((extension.clone(), *package), why, now);
            }
            Event::Unreachable { reason, .. } => {
                for key in self.trackers.keys() {
                    self.stale.lost(key.clone(), reason.as_str(), now);
                }
            }
            _ => {}
        }
    }

    /// Whether one of `extension`'s subscriptions has been lost too long.
    pub(super) fn is_line_stale(&self, extension: &str) -> bool {
        [Package::Dialog, Package::Presence]
            .into_iter()
            .any(|p| self.stale.is_stale(&(extension.to_owned(), p)))
    }

    /// A NOTIFY gave `n.extension` a line state. `true` when the line had
    /// been reported unknown (its state must be passed on). A NOTIFY that
    /// ends the subscription restores nothing: the loss follows it.
    pub(super) fn note_restored(&mut self, n: &Notify) -> bool {
        if n.subscription_state
            .as_ref()
            .is_some_and(|s| s.state == SubState::Terminated)
        {
            return false;
        }
        let was_stale = self.stale.restored(&(n.user.clone(), n.package));
        if was_stale && !self.is_line_stale(&n.user) {
            self.telemetry.clear_stale(&n.user);
        }
        was_stale
    }

    /// The lines whose subscription has been lost too long at `now`, each
    /// an `Unknown` line change followed by a warning that says why (after:
    /// a consumer that logs it has taken the change).
    pub(super) fn stale_lines(&mut self, now: Instant) -> Vec<SourceEvent> {
        let wall = SystemTime::now();
        let mut out = Vec::new();
        let expired = self.stale.handle_timeout(now);
        let in_batch: Vec<(String, Package)> = expired.iter().map(|e| e.key.clone()).collect();
        let mut reported = Vec::new();
        for e in expired {
            let (extension, package) = e.key;
            // A line both of whose subscriptions expire together is unknown once;
            // one already unknown through its other subscription is not news.
            let other = match package {
                Package::Dialog => Package::Presence,
                Package::Presence => Package::Dialog,
                // A package without a partner: the line has no other subscription.
                p => p,
            };
            let other = (extension.clone(), other);
            let stale_before = self.stale.is_stale(&other) && !in_batch.contains(&other);
            if reported.contains(&extension) || stale_before {
                continue;
            }
            reported.push(extension.clone());
            let since = wall.checked_sub(e.lost_for).unwrap_or(wall);
            out.push(SourceEvent::Line(LineChange {
                extension: extension.clone(),
                line_state: LineState::Unknown,
                dnd: false,
                received_at: None,
                stale: Some(Staleness {
                    lost_for: e.lost_for,
                    since,
                    reason: e.reason.clone(),
                }),
            }));
            out.push(SourceEvent::Health(SipHealth::LineUnknown {
                extension,
                package,
                lost_for: e.lost_for,
                since,
                reason: e.reason,
            }));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn tracker() -> StaleTracker<&'static str> {
        StaleTracker::new(Some(secs(120)))
    }

    #[test]
    fn lost_becomes_unknown_after_the_limit_once() {
        let t0 = Instant::now();
        let mut s = tracker();
        assert_eq!(s.poll_timeout(), None);
        s.lost("1001", "terminated by the PBX", t0);
        // A later failure keeps the first time, takes the newer reason.
        s.lost("1001", "no answer to SUBSCRIBE", t0 + secs(40));
        assert_eq!(s.poll_timeout(), Some(t0 + secs(120)));
        assert!(s.handle_timeout(t0 + secs(119)).is_empty());
        assert!(!s.is_stale(&"1001"));
        let expired = s.handle_timeout(t0 + secs(121));
        assert_eq!(
            expired,
            vec![Expired {
                key: "1001",
                lost_at: t0,
                lost_for: secs(121),
                reason: "no answer to SUBSCRIBE".into(),
            }]
        );
        assert!(s.is_stale(&"1001"));
        // Once: more failures and time report nothing more.
        s.lost("1001", "no answer to SUBSCRIBE", t0 + secs(200));
        assert_eq!(s.poll_timeout(), None);
        assert!(s.handle_timeout(t0 + secs(1000)).is_empty());
    }

    #[test]
    fn restored_before_the_limit_reports_nothing() {
        let t0 = Instant::now();
        let mut s = tracker();
        s.lost("1001", "terminated", t0);
        assert!(!s.restored(&"1001"), "not reported: nothing to re-send");
        assert_eq!(s.poll_timeout(), None);
        assert!(s.handle_timeout(t0 + secs(500)).is_empty());
        // A loss after the restore counts from its own time.
        s.lost("1001", "terminated", t0 + secs(100));
        assert!(s.handle_timeout(t0 + secs(219)).is_empty());
        assert_eq!(s.handle_timeout(t0 + secs(220)).len(), 1);
    }

    #[test]
    fn restored_after_the_limit_asks_for_the_state_and_reports_no_more() {
        let t0 = Instant::now();
        let mut s = tracker();
        s.lost("1001", "terminated", t0);
        assert_eq!(s.handle_timeout(t0 + secs(120)).len(), 1);
        assert!(s.restored(&"1001"));
        assert!(!s.is_stale(&"1001"));
        assert!(!s.restored(&"1001"), "a second NOTIFY is ordinary");
        assert_eq!(s.poll_timeout(), None);
        assert!(s.handle_timeout(t0 + secs(10_000)).is_empty());
    }

    #[test]
    fn each_key_has_its_own_deadline() {
        let t0 = Instant::now();
        let mut s = tracker();
        s.lost("1002", "b", t0 + secs(10));
        s.lost("1001", "a", t0);
        s.lost("1003", "c", t0 + secs(20));
        s.restored(&"1003");
        let keys = |v: Vec<Expired<&'static str>>| v.into_iter().map(|e| e.key).collect::<Vec<_>>();
        assert_eq!(keys(s.handle_timeout(t0 + secs(125))), ["1001"]);
        assert_eq!(s.poll_timeout(), Some(t0 + secs(130)));
        assert_eq!(keys(s.handle_timeout(t0 + secs(500))), ["1002"]);
        assert_eq!(s.poll_timeout(), None);
    }

    #[test]
    fn zero_or_none_means_never() {
        let t0 = Instant::now();
        for after in [None, Some(Duration::ZERO)] {
            let mut s = StaleTracker::new(after);
            s.lost("1001", "terminated", t0);
            assert_eq!(s.poll_timeout(), None);
            assert!(s.handle_timeout(t0 + secs(1_000_000)).is_empty());
            assert!(!s.restored(&"1001"));
        }
    }
}

/// The source's side: events in, `unknown` line changes out, on tokio's
/// paused clock.
#[cfg(test)]
mod wiring {
    use std::time::Duration;

    use blf::LineState;
    use sip_ua::{Event, EventPackage, Notify, Subscription};
    use tokio::sync::mpsc;

    use super::StaleTracker;
    use crate::observe::Telemetry;
    use crate::sip_source::{LineChange, SipHealth, SipSource, SourceEvent};

    fn source(after: u64) -> (SipSource, mpsc::Sender<Event>, Telemetry) {
        let (tx, events) = mpsc::channel(256);
        let telemetry = Telemetry::new();
        let subs = [
            Subscription::dialog("1001"),
            Subscription::dialog("1002"),
            Subscription::presence("1002"),
        ];
        let mut source = SipSource::new(None, events, &subs);
        source.stale = StaleTracker::new(Some(Duration::from_secs(after)));
        source.set_telemetry(telemetry.clone());
        (source, tx, telemetry)
    }

    /// A full dialog-info NOTIFY: one confirmed dialog (busy) or none (idle).
    fn notify(ext: &str, version: u32, busy: bool) -> Event {
        let dialog = if busy {
            r#"<dialog id="a"><state>confirmed</state></dialog>"#
        } else {
            ""
        };
        let body = format!(
            r#"<?xml version="1.0"?><dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" state="full" entity="sip:{ext}@pbx">{dialog}</dialog-info>"#
        );
        Event::Notify(Notify {
            user: ext.to_owned(),
            package: EventPackage::Dialog,
            content_type: Some("application/dialog-info+xml".into()),
            body: body.into_bytes(),
            subscription_state: None,
            received_at: super::now(),
        })
    }

    /// A full PIDF NOTIFY: `open` or `closed`.
    fn pidf(ext: &str, basic: &str) -> Event {
        let body = format!(
            r#"<?xml version="1.0"?><presence xmlns="urn:ietf:params:xml:ns:pidf" entity="sip:{ext}@pbx"><tuple id="t"><status><basic>{basic}</basic></status></tuple></presence>"#
        );
        Event::Notify(Notify {
            user: ext.to_owned(),
            package: EventPackage::Presence,
            content_type: Some("application/pidf+xml".into()),
            body: body.into_bytes(),
            subscription_state: None,
            received_at: super::now(),
        })
    }

    fn failed(ext: &str) -> Event {
        failed_package(ext, EventPackage::Dialog)
    }

    fn failed_package(ext: &str, package: EventPackage) -> Event {
        Event::SubscriptionFailed {
            user: ext.to_owned(),
            package,
            status: None,
            diagnosis: "no answer from the PBX to SUBSCRIBE (time-out)".into(),
            retry_at: None,
        }
    }

    /// The next line change; health goes where `run` sends it.
    async fn line_change(source: &mut SipSource) -> LineChange {
        loop {
            match source.next().await.expect("source ended") {
                SourceEvent::Line(change) => return change,
                SourceEvent::Health(h) => crate::observe::sip_health(&source.telemetry, &h),
            }
        }
    }

    /// The next line change within a day of virtual time.
    async fn next_line(source: &mut SipSource) -> LineChange {
        tokio::time::timeout(Duration::from_secs(86_400), line_change(source))
            .await
            .expect("no line change within a day")
    }

    /// No line change within an hour of virtual time.
    async fn quiet(source: &mut SipSource) {
        let r = tokio::time::timeout(Duration::from_secs(3600), line_change(source)).await;
        assert!(r.is_err(), "unexpected {r:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn a_lost_subscription_turns_the_line_unknown_then_the_next_notify_restores_it() {
        let (mut source, tx, telemetry) = source(120);
        tx.try_send(notify("1001", 0, true)).unwrap();
        assert_eq!(next_line(&mut source).await.line_state, LineState::Busy);

        let t0 = tokio::time::Instant::now();
        tx.try_send(failed("1001")).unwrap();
        let change = next_line(&mut source).await;
        assert_eq!(t0.elapsed(), Duration::from_secs(120));
        match source.next().await {
            Some(SourceEvent::Health(h @ SipHealth::LineUnknown { .. })) => {
                assert!(h.to_string().contains("1001: line state unknown"), "{h}");
                crate::observe::sip_health(&telemetry, &h);
            }
            other => panic!("the log says why after the change: {other:?}"),
        }
        assert_eq!(change.extension, "1001");
        assert_eq!(change.line_state, LineState::Unknown);
        let stale = change.stale.expect("says why");
        assert_eq!(stale.lost_for, Duration::from_secs(120));
        assert!(stale.reason.contains("time-out"), "{}", stale.reason);
        let status = telemetry.status_json();
        let s = &status["extensions"][0]["stale"];
        assert!(s["reason"].as_str().unwrap().contains("time-out"), "{s}");
        assert!(s["since_unix"].as_f64().unwrap() > 0.0, "{s}");

        // Reported once, however long the loss lasts.
        tx.try_send(failed("1001")).unwrap();
        quiet(&mut source).await;

        // The same state as before the loss is news after an unknown.
        tx.try_send(notify("1001", 1, true)).unwrap();
        let change = next_line(&mut source).await;
        assert_eq!((change.line_state, change.stale), (LineState::Busy, None));
        assert!(telemetry.status_json()["extensions"][0]["stale"].is_null());
        tx.try_send(notify("1001", 2, true)).unwrap();
        quiet(&mut source).await;
    }

    #[tokio::test(start_paused = true)]
    async fn restored_in_time_is_no_news() {
        let (mut source, tx, _) = source(120);
        tx.try_send(notify("1002", 0, false)).unwrap();
        assert_eq!(next_line(&mut source).await.line_state, LineState::Idle);
        tx.try_send(failed("1002")).unwrap();
        tokio::time::advance(Duration::from_secs(119)).await;
        tx.try_send(notify("1002", 1, false)).unwrap();
        quiet(&mut source).await;
    }

    #[tokio::test(start_paused = true)]
    async fn an_unreachable_pbx_turns_every_line_unknown() {
        let (mut source, tx, _) = source(30);
        tx.try_send(Event::Unreachable {
            reason: "no answer from the PBX at 192.0.2.1:5060 to REGISTER".into(),
            retry_at: None,
        })
        .unwrap();
        let mut lines = [next_line(&mut source).await, next_line(&mut source).await];
        lines.sort_by(|a, b| a.extension.cmp(&b.extension));
        for (line, ext) in lines.iter().zip(["1001", "1002"]) {
            assert_eq!(
                (line.extension.as_str(), line.line_state),
                (ext, LineState::Unknown)
            );
            assert!(line.stale.as_ref().unwrap().reason.contains("REGISTER"));
        }
    }

    #[tokio::test(start_paused = true)]
    async fn a_line_on_two_packages_is_unknown_while_either_is_lost() {
        let (mut source, tx, telemetry) = source(60);
        tx.try_send(notify("1002", 0, false)).unwrap();
        tx.try_send(pidf("1002", "open")).unwrap();
        assert_eq!(next_line(&mut source).await.line_state, LineState::Idle);

        // Only the presence subscription is lost: the line is unknown once.
        tx.try_send(failed_package("1002", EventPackage::Presence))
            .unwrap();
        let change = next_line(&mut source).await;
        assert_eq!(change.line_state, LineState::Unknown);
        assert!(change.stale.is_some());
        // A call over the dialog event does not make the line known again:
        // whether the phone is unplugged is still not known.
        tx.try_send(notify("1002", 1, true)).unwrap();
        quiet(&mut source).await;
        let status = telemetry.status_json();
        let line = status["extensions"]
            .as_array()
            .and_then(|a| a.iter().find(|e| e["extension"] == "1002"))
            .expect("1002 in /status");
        assert!(!line["stale"].is_null(), "{line}");
        // The presence subscription is back: the combined state is news.
        tx.try_send(pidf("1002", "open")).unwrap();
        let change = next_line(&mut source).await;
        assert_eq!((change.line_state, change.stale), (LineState::Busy, None));
    }

    #[tokio::test(start_paused = true)]
    async fn both_packages_lost_together_make_one_unknown() {
        let (mut source, tx, _) = source(60);
        tx.try_send(failed_package("1002", EventPackage::Dialog))
            .unwrap();
        tx.try_send(failed_package("1002", EventPackage::Presence))
            .unwrap();
        let change = next_line(&mut source).await;
        assert_eq!(
            (change.extension.as_str(), change.line_state),
            ("1002", LineState::Unknown)
        );
        quiet(&mut source).await;
    }
}
