//! The PBX as a source of line-state changes: `sip-ua` subscriptions, each
//! NOTIFY body read by a `blf::Tracker` per subscription (extension and event
//! package). An extension watched through both packages (`dialog+presence`)
//! has one line state, [`LineState::from_dialog_and_presence`]: a call over
//! the dialog event wins, presence `closed` turns a dialog-idle line offline.
//! A line one of whose subscriptions stays lost becomes `unknown` ([`StaleTracker`]).

mod health;
mod observations;
mod stale;

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use blf::{EmptyBody, LineState, Notification, Tracker, TrackerEvent};
use sip_ua::driver::EventReceiver;
use sip_ua::driver::UaHandle;
use sip_ua::AddressDiscovery;
use sip_ua::{ContactAddress, Event, EventPackage as Package, Subscription, Transport, UaConfig};

use crate::extensions::Extension;
use crate::observe::{RejectedNotifies, Telemetry};
use crate::settings::{ContactSetting, SipSettings, SipTransport};

pub use health::{Severity, SipHealth};
pub use observations::{engine_line_state, observation, PBX};
pub use stale::{Expired, StaleTracker, Staleness};

/// One extension's line changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineChange {
    /// The extension.
    pub extension: String,
    /// Its new line state.
    pub line_state: LineState,
    /// Do-not-disturb is on at the PBX for this key (for a person, on any
    /// of their extensions).
    pub dnd: bool,
    /// When the NOTIFY that reported it arrived (`None`: when the engine
    /// takes it), the start of the NOTIFY→Graph latency.
    pub received_at: Option<Instant>,
    /// Set when the line is `Unknown` because its subscription has been
    /// lost for longer than `SIP_STALE_AFTER`: since when and why.
    pub stale: Option<Staleness>,
}

/// What the source yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// A line state changed.
    Line(LineChange),
    /// How the source is doing: for the log, `/status` and `/metrics`
    /// ([`crate::observe::sip_health`]).
    Health(SipHealth),
}

/// Builds the user agent's configuration from the settings.
pub fn ua_config(settings: &SipSettings) -> UaConfig {
    let mut config = UaConfig::new(
        settings.server.clone(),
        settings.username.clone(),
        settings.password.expose(),
    );
    config.transport = match settings.transport {
        SipTransport::Udp => Transport::Udp,
        SipTransport::Tcp => Transport::Tcp,
        SipTransport::Tls => Transport::Tls,
    };
    config.tls = settings.tls.ua_config();
    // SIP_LISTEN=0.0.0.0:0: let the driver choose (loopback for a local PBX).
    config.listen = Some(settings.listen).filter(|l| !(l.ip().is_unspecified() && l.port() == 0));
    config.contact = match settings.contact {
        ContactSetting::Fixed(ip) => ContactAddress::Fixed(ip),
        ContactSetting::Auto => ContactAddress::Discovered,
    };
    config.user_agent = concat!("sip-blf-sync/", env!("CARGO_PKG_VERSION")).to_string();
    config.subscribe_expires = settings.subscribe_expires;
    // 0 = unpaced: sip-ua's interval, one second divided by u32::MAX, rounds to zero.
    config.subscribe_rate = match settings.subscribe_rate {
        0 => u32::MAX,
        n => n,
    };
    config
}

/// A STUN client for the SIP socket, when `SIP_CONTACT_IP` asks for discovery
/// and the PBX is not on this machine (a loopback PBX needs no public address).
pub async fn stun_discovery(
    settings: &SipSettings,
    server: SocketAddr,
) -> (Option<Box<dyn AddressDiscovery>>, Vec<SipHealth>) {
    let mut notices = Vec::new();
    if settings.contact != ContactSetting::Auto || server.ip().is_loopback() {
        return (None, notices);
    }
    let specs = match stun_lite::parse_server_list(&settings.stun_servers.join(",")) {
        Ok(s) => s,
        Err(e) => {
            notices.push(SipHealth::StunServersInvalid {
                error: e.to_string(),
            });
            return (None, notices);
        }
    };
    let (addrs, failures) = stun_lite::resolve_servers(&specs).await;
    for f in failures {
        notices.push(SipHealth::StunServerFailed {
            failure: f.to_string(),
        });
    }
    let local = sip_ua::driver::default_listen(server);
    let usable = stun_lite::servers_for_socket(&addrs, local);
    if usable.is_empty() {
        notices.push(SipHealth::NoStunServer);
        return (None, notices);
    }
    let client =
        stun_lite::BindingClient::new(usable, stun_lite::ClientConfig::default(), Instant::now());
    (Some(Box::new(client)), notices)
}

/// The subscriptions for the extension list (two for `dialog+presence`).
pub fn subscriptions(extensions: &[Extension]) -> Vec<Subscription> {
    extensions
        .iter()
        .flat_map(|e| {
            e.event.packages().iter().map(|package| Subscription {
                user: e.extension.clone(),
                package: *package,
            })
        })
        .collect()
}

/// How messages name a subscription: the extension, and the package when it
/// is not the usual dialog event.
fn subscription_name(extension: &str, package: Package) -> String {
    match package {
        Package::Dialog => extension.to_string(),
        other => format!("{extension} ({})", other.event_name()),
    }
}

/// The tracker for one subscription. A body-less NOTIFY means "no dialogs"
/// (idle) for `dialog`, but "nothing published" for `presence` (Kamailio sends
/// one before the phone's first PUBLISH): that is `Unknown`, not an idle line.
pub fn tracker(package: Package) -> Tracker {
    Tracker::with_empty_body(match package {
        Package::Dialog => EmptyBody::NoDialogs,
        // For presence (and any other package) it says nothing of the line.
        _ => EmptyBody::Unknown,
    })
}

/// The running SIP source.
pub struct SipSource {
    handle: Option<UaHandle>,
    events: EventReceiver,
    /// One per subscription: (extension, package).
    trackers: HashMap<(String, Package), Tracker>,
    telemetry: Telemetry,
    /// Lost subscriptions, by (extension, package).
    stale: StaleTracker<(String, Package)>,
    /// Events made at once that [`next`](SipSource::next) hands out one by one.
    queued: VecDeque<SourceEvent>,
    /// Forged NOTIFYs cost a datagram each: their warnings are rate-limited.
    rejected: RejectedNotifies,
}

impl SipSource {
    /// Registers and subscribes to every extension.
    pub async fn start(
        settings: &SipSettings,
        extensions: &[Extension],
    ) -> Result<(Self, Vec<SipHealth>), sip_ua::Error> {
        let config = ua_config(settings);
        settings.tls.warn_if_insecure();
        let server = sip_ua::driver::resolve_server(&config).await?;
        let (discovery, notices) = stun_discovery(settings, server).await;
        let subs = subscriptions(extensions);
        let (handle, events) = sip_ua::driver::spawn(config, subs.clone(), discovery).await?;
        let mut source = Self::new(Some(handle), events, &subs);
        source.stale = StaleTracker::new(settings.stale_after);
        Ok((source, notices))
    }

    fn new(
        handle: Option<UaHandle>,
        events: EventReceiver,
        subscriptions: &[Subscription],
    ) -> Self {
        let trackers = subscriptions
            .iter()
            .map(|s| ((s.user.clone(), s.package), tracker(s.package)))
            .collect();
        Self {
            handle,
            events,
            trackers,
            telemetry: Telemetry::new(),
            stale: StaleTracker::new(None),
            queued: VecDeque::new(),
            rejected: RejectedNotifies::default(),
        }
    }

    /// Counts rejected NOTIFYs and clears a line's staleness in
    /// `telemetry`; the rest (registration, subscriptions, every NOTIFY) is
    /// recorded from the [`SipHealth`] the source yields, by
    /// [`crate::observe::sip_health`]. Also shows the user agent's event
    /// counts (a slow reader) in `/metrics`.
    pub fn set_telemetry(&mut self, telemetry: Telemetry) {
        if let Some(handle) = &self.handle {
            telemetry.set_sip_event_stats(handle.event_stats_reader());
        }
        self.telemetry = telemetry;
    }

    /// Publishes on this source's user agent (Teams → PBX), while it runs.
    pub fn publisher(&self) -> Option<sip_ua::driver::Publisher> {
        self.handle.as_ref().map(UaHandle::publisher)
    }

    /// Sends SIP MESSAGEs on this source's user agent (the sip-message sink), while it runs.
    pub fn messenger(&self) -> Option<sip_ua::driver::Messenger> {
        self.handle.as_ref().map(UaHandle::messenger)
    }

    /// The local SIP address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.handle.as_ref().map(UaHandle::local_addr)
    }

    /// The next event; `None` once the user agent has stopped.
    /// Cancel-safe.
    pub async fn next(&mut self) -> Option<SourceEvent> {
        loop {
            if let Some(out) = self.queued.pop_front() {
                return Some(out);
            }
            let stale_at = self.stale.poll_timeout();
            // The count of rejected NOTIFYs held back is due even when no
            // event follows them.
            let summary_at = self.rejected.next_deadline();
            tokio::select! {
                event = self.events.recv() => {
                    let out = self.translate(event?);
                    self.queued.extend(out);
                }
                () = stale::sleep_until(stale_at), if stale_at.is_some() => {
                    let lines = self.stale_lines(stale::now());
                    self.queued.extend(lines);
                }
                () = stale::sleep_until(summary_at), if summary_at.is_some() => {
                    if let Some(summary) = self.rejected.poll(stale::now()) {
                        return Some(SourceEvent::Health(SipHealth::NotifiesRejected(summary)));
                    }
                }
            }
        }
    }

    /// The line state the NOTIFYs so far give for `extension` (`Unknown`
    /// before the first one), both packages combined when it has both.
    pub fn line_state(&self, extension: &str) -> LineState {
        if self.is_line_stale(extension) {
            return LineState::Unknown;
        }
        let of = |package| {
            self.trackers
                .get(&(extension.to_string(), package))
                .map(Tracker::line_state)
        };
        match (of(Package::Dialog), of(Package::Presence)) {
            (Some(dialog), Some(presence)) => LineState::from_dialog_and_presence(dialog, presence),
            (Some(one), None) | (None, Some(one)) => one,
            (None, None) => LineState::Unknown,
        }
    }

    /// Asks the PBX for the full state of a subscription (in-dialog re-SUBSCRIBE).
    fn refresh(&self, extension: &str, package: Package) {
        if let Some(handle) = &self.handle {
            let _ = handle.refresh_subscription(Subscription {
                user: extension.to_string(),
                package,
            });
        }
    }

    /// What one user-agent event makes: line changes and health, in order.
    fn translate(&mut self, event: Event) -> Vec<SourceEvent> {
        self.observe(&event);
        self.note_loss(&event);
        let health = |h: SipHealth| vec![SourceEvent::Health(h)];
        match event {
            Event::Notify(n) => self.notified(n),
            Event::Registered { expires, contact } => {
                health(SipHealth::Registered { contact, expires })
            }
            Event::RegistrationFailed { status, reason, .. } => {
                health(SipHealth::RegistrationFailed { status, reason })
            }
            Event::SubscriptionActive {
                user: extension,
                package,
                expires,
            } => health(SipHealth::Subscribed {
                extension,
                package,
                expires,
            }),
            Event::SubscriptionPending {
                user: extension,
                package,
            } => health(SipHealth::Pending { extension, package }),
            Event::SubscriptionTerminated {
                user: extension,
                package,
                reason,
                ..
            } => {
                // The tracker's versions restart with the next subscription.
                if let Some(t) = self.trackers.get_mut(&(extension.clone(), package)) {
                    t.reset();
                }
                health(SipHealth::EndedByPbx {
                    extension,
                    package,
                    reason,
                })
            }
            Event::SubscriptionFailed {
                user: extension,
                package,
                status,
                diagnosis,
                ..
            } => health(SipHealth::SubscriptionFailed {
                extension,
                package,
                status,
                diagnosis,
            }),
            Event::NotifyRejected { from, kind, reason } => {
                if self.rejected.rejected(from, kind, &reason, stale::now()) {
                    health(SipHealth::NotifyRejected { from, kind, reason })
                } else {
                    Vec::new()
                }
            }
            Event::ContactChanged { old, new } => health(SipHealth::ContactChanged { old, new }),
            Event::Unreachable { reason, .. } => health(SipHealth::Unreachable { reason }),
            // Publications are Teams → PBX's (`TEAMS_TO_PBX=publish`) on this
            // source's user agent: their failures are logged here.
            Event::PublicationFailed {
                presentity, reason, ..
            } => {
                tracing::warn!("PUBLISH for {presentity} failed: {reason}");
                Vec::new()
            }
            Event::Published { presentity, .. } => {
                tracing::debug!("published the presence of {presentity}");
                Vec::new()
            }
            // MESSAGEs are the sip-message sink's, which reports their outcome itself.
            Event::Unregistered
            | Event::ShutDown
            | Event::PublicationRemoved { .. }
            | Event::MessageDelivered { .. }
            | Event::MessageFailed { .. } => Vec::new(),
            // Events a newer sip-ua may add: nothing to show yet.
            _ => Vec::new(),
        }
    }

    /// A NOTIFY: that it came, then the line change or the problem it brings.
    fn notified(&mut self, n: sip_ua::Notify) -> Vec<SourceEvent> {
        let mut out = vec![SourceEvent::Health(SipHealth::NotifyReceived {
            extension: n.user.clone(),
            package: n.package,
            received_at: n.received_at,
        })];
        let notification = match Notification::parse(n.content_type.as_deref(), &n.body) {
            Ok(notification) => notification,
            Err(e) => {
                out.push(SourceEvent::Health(SipHealth::NotifyNotUnderstood {
                    extension: n.user,
                    package: n.package,
                    error: e.to_string(),
                }));
                return out;
            }
        };
        let before = self.line_state(&n.user);
        let update = self
            .trackers
            .entry((n.user.clone(), n.package))
            .or_insert_with(|| tracker(n.package))
            .apply(notification);
        if update.refresh {
            // RFC 4235 §4.1: a refresh makes the PBX send the full state.
            self.refresh(&n.user, n.package);
        }
        if let TrackerEvent::ResyncNeeded { expected, received } = update.event {
            out.push(SourceEvent::Health(SipHealth::VersionGap {
                extension: n.user,
                package: n.package,
                expected,
                received,
                refreshing: update.refresh,
            }));
            return out;
        }
        // After an `unknown`, the state is news even if unchanged.
        let was_stale = self.note_restored(&n);
        let after = self.line_state(&n.user);
        if after != before || was_stale {
            out.push(SourceEvent::Line(LineChange {
                extension: n.user,
                line_state: after,
                dnd: false,
                received_at: Some(n.received_at),
                stale: None,
            }));
        }
        out
    }

    /// What `/status` and `/metrics` learn from a user-agent event that is
    /// not health: every rejected NOTIFY is counted here, as it comes (the
    /// log sums most of them up: [`RejectedNotifies`]); un-REGISTER comes at
    /// shutdown, when no one reads the source any more. The rest is
    /// recorded from [`SipHealth`] by [`crate::observe::sip_health`].
    fn observe(&self, event: &Event) {
        let t = &self.telemetry;
        match event {
            Event::NotifyRejected { kind, .. } => t.notify_rejected(*kind),
            Event::Unregistered => t.set_registered(false),
            _ => {}
        }
    }

    /// Un-SUBSCRIBEs and un-REGISTERs (bounded in time).
    pub async fn shutdown(&mut self, limit: Duration) {
        if let Some(handle) = self.handle.take() {
            let _ = tokio::time::timeout(limit, handle.shutdown()).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::SocketAddr;

    use sip_ua::{Message, Notify};
    use tokio::net::UdpSocket;
    use tokio::sync::mpsc;

    use super::*;

    /// A dialog-info body as Asterisk writes it (one dialog, id = extension).
    fn dialog_info(version: u64, doc: &str, state: &str) -> Vec<u8> {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="{version}" state="{doc}" entity="sip:1001@pbx">
 <dialog id="1001"><state>{state}</state></dialog>
</dialog-info>"#
        )
        .into_bytes()
    }

    /// A PIDF body as Asterisk writes it (`closed` + "Unavailable" when not registered).
    fn pidf(basic: &str, note: &str) -> Vec<u8> {
        format!(
            r#"<?xml version="1.0" encoding="UTF-8"?>
<presence entity="sip:1001@pbx" xmlns="urn:ietf:params:xml:ns:pidf">
 <note>{note}</note>
 <tuple id="1001"><status><basic>{basic}</basic></status><contact priority="1">sip:blf@pbx</contact></tuple>
</presence>"#
        )
        .into_bytes()
    }

    fn notify(package: Package, body: Vec<u8>) -> Event {
        let content_type = package.accept();
        Event::Notify(Notify {
            user: "1001".into(),
            package,
            content_type: Some(content_type.into()),
            body,
            subscription_state: None,
            received_at: Instant::now(),
        })
    }

    /// The line change among `events`, if any (after the NOTIFY's own health).
    fn line(events: Vec<SourceEvent>) -> Option<LineState> {
        assert!(
            matches!(
                events.first(),
                Some(SourceEvent::Health(SipHealth::NotifyReceived { .. }))
            ),
            "{events:?}"
        );
        events.into_iter().find_map(|event| match event {
            SourceEvent::Line(change) => {
                assert_eq!(change.extension, "1001");
                Some(change.line_state)
            }
            SourceEvent::Health(_) => None,
        })
    }

    #[test]
    fn dialog_and_presence_make_one_line_with_offline_for_an_unplugged_phone() {
        let (_tx, rx) = mpsc::channel(1);
        let subs = [Subscription::dialog("1001"), Subscription::presence("1001")];
        let mut source = SipSource::new(None, rx, &subs);
        assert_eq!(source.line_state("1001"), LineState::Unknown);
        let dialog = |v, state| notify(Package::Dialog, dialog_info(v, "full", state));
        // Idle over the dialog event, and the same body when the phone is unplugged…
        assert_eq!(
            line(source.translate(dialog(0, "terminated"))),
            Some(LineState::Idle)
        );
        // …which only presence tells apart.
        let closed = notify(Package::Presence, pidf("closed", "Unavailable"));
        assert_eq!(line(source.translate(closed)), Some(LineState::Offline));
        // A call over the dialog event wins over presence.
        assert_eq!(
            line(source.translate(dialog(1, "confirmed"))),
            Some(LineState::Busy)
        );
        assert_eq!(
            line(source.translate(dialog(2, "terminated"))),
            Some(LineState::Offline)
        );
        // Registered again: presence open, the dialog-idle line is idle.
        let open = notify(Package::Presence, pidf("open", "Ready"));
        assert_eq!(line(source.translate(open)), Some(LineState::Idle));
        // Nothing changed for the line: no change reported.
        let open = notify(Package::Presence, pidf("open", "Ready"));
        assert_eq!(line(source.translate(open)), None);
        assert_eq!(source.line_state("1001"), LineState::Idle);
    }

    #[test]
    fn one_package_alone_gives_its_own_state() {
        let (_tx, rx) = mpsc::channel(1);
        let mut source = SipSource::new(None, rx, &[Subscription::presence("1001")]);
        let closed = notify(Package::Presence, pidf("closed", "Unavailable"));
        assert_eq!(line(source.translate(closed)), Some(LineState::Offline));
    }

    /// Answers `request` with `status` (To-tag `pbx`, Expires 600).
    fn answer(request: &Message, status: u16) -> String {
        let mut out = format!("SIP/2.0 {status} OK\r\n");
        for v in request.headers.get_all("Via") {
            out.push_str(&format!("Via: {v}\r\n"));
        }
        let to = request.headers.get("To").unwrap_or_default();
        let to = if to.contains("tag=") {
            to.to_string()
        } else {
            format!("{to};tag=pbx")
        };
        out.push_str(&format!(
            "From: {}\r\nTo: {to}\r\nCall-ID: {}\r\nCSeq: {}\r\nContact: <sip:pbx@127.0.0.1>\r\n\
             Expires: 600\r\nContent-Length: 0\r\n\r\n",
            request.headers.get("From").unwrap_or_default(),
            request.call_id().unwrap_or_default(),
            request.headers.get("CSeq").unwrap_or_default(),
        ));
        out
    }

    /// The next request the user agent sends to `pbx` (its answers to our NOTIFYs skipped).
    async fn next_request(pbx: &UdpSocket) -> (Message, SocketAddr) {
        let mut buf = vec![0u8; 65536];
        loop {
            let (n, from) = tokio::time::timeout(Duration::from_secs(10), pbx.recv_from(&mut buf))
                .await
                .expect("a request from the user agent")
                .unwrap();
            let msg = Message::parse(&buf[..n]).unwrap();
            if msg.is_request() {
                return (msg, from);
            }
        }
    }

    #[tokio::test]
    async fn a_version_gap_refreshes_the_subscription_in_its_dialog() {
        let pbx = UdpSocket::bind("127.0.0.1:0").await.unwrap();
        let mut config = UaConfig::new(pbx.local_addr().unwrap().to_string(), "blf", "secret");
        config.register = false;
        config.keepalive_interval = None;
        let subs = [Subscription::dialog("1001")];
        let (handle, events) = sip_ua::driver::spawn(config, subs.to_vec(), None)
            .await
            .unwrap();
        let mut source = SipSource::new(Some(handle), events, &subs);
        let (subscribe, ua) = next_request(&pbx).await;
        assert_eq!(subscribe.to_tag(), None);
        pbx.send_to(answer(&subscribe, 200).as_bytes(), ua)
            .await
            .unwrap();
        let send_notify = |cseq: u32, body: Vec<u8>| {
            let mut n = format!(
                "NOTIFY sip:blf@{ua} SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1;branch=z9hG4bKn{cseq}\r\n\
                 From: <sip:1001@127.0.0.1>;tag=pbx\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {cseq} NOTIFY\r\n\
                 Event: dialog\r\nSubscription-State: active;expires=600\r\n\
                 Content-Type: application/dialog-info+xml\r\nContent-Length: {}\r\n\r\n",
                subscribe.headers.get("From").unwrap(),
                subscribe.call_id().unwrap(),
                body.len()
            )
            .into_bytes();
            n.extend_from_slice(&body);
            n
        };
        pbx.send_to(&send_notify(1, dialog_info(1, "full", "early")), ua)
            .await
            .unwrap();
        loop {
            match source.next().await {
                Some(SourceEvent::Line(c)) => {
                    assert_eq!(c.line_state, LineState::Ringing);
                    break;
                }
                Some(SourceEvent::Health(_)) => {}
                None => panic!("the source stopped"),
            }
        }
        // Version 2 was lost: version 3 (partial) cannot be applied.
        pbx.send_to(&send_notify(2, dialog_info(3, "partial", "confirmed")), ua)
            .await
            .unwrap();
        loop {
            match source.next().await {
                Some(SourceEvent::Health(
                    gap @ SipHealth::VersionGap {
                        expected, received, ..
                    },
                )) => {
                    assert_eq!((expected, received), (Some(2), Some(3)));
                    assert!(matches!(
                        gap,
                        SipHealth::VersionGap {
                            refreshing: true,
                            ..
                        }
                    ));
                    assert_eq!(gap.severity(), Severity::Warn);
                    assert!(
                        gap.to_string().contains("refreshing the subscription"),
                        "{gap}"
                    );
                    break;
                }
                Some(SourceEvent::Line(c)) => panic!("a gap changed the line: {c:?}"),
                Some(_) => {}
                None => panic!("the source stopped"),
            }
        }
        // The re-SUBSCRIBE goes out in the dialog; the PBX would answer it with the full state.
        let (refresh, _) = next_request(&pbx).await;
        assert_eq!(refresh.method(), Some("SUBSCRIBE"));
        assert_eq!(refresh.call_id(), subscribe.call_id());
        assert_eq!(refresh.to_tag(), Some("pbx"));
        assert_eq!(refresh.headers.get("Expires"), Some("600"));
        source.shutdown(Duration::from_secs(1)).await;
    }

    /// The next line change, skipping notices.
    async fn next_line(source: &mut SipSource) -> LineState {
        loop {
            let event = tokio::time::timeout(Duration::from_secs(10), source.next())
                .await
                .expect("a line change within 10 s");
            match event {
                Some(SourceEvent::Line(c)) => return c.line_state,
                Some(SourceEvent::Health(_)) => {}
                None => panic!("the source stopped"),
            }
        }
    }

    #[tokio::test]
    async fn both_packages_of_one_extension_against_a_notifier() {
        use sip_notifier::{Account, DialogSpec, DialogState, Direction, NotifierConfig};
        let config = NotifierConfig::new("127.0.0.1", vec![Account::new("blf", "blfsecret")])
            .with_extensions(["1001"]);
        let pbx = sip_notifier::NotifierServer::start(config, "127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        let server = pbx.local_addr().to_string();
        let settings = SipSettings::from_env(&crate::settings::Env::from_pairs([
            ("SIP_SERVER", server.as_str()),
            ("SIP_USERNAME", "blf"),
            ("SIP_PASSWORD", "blfsecret"),
        ]))
        .unwrap();
        let ext = Extension {
            extension: "1001".into(),
            email: "user1@contoso.com".into(),
            object_id: None,
            event: crate::extensions::EventPackage::DialogAndPresence,
            mapping: None,
            name: None,
            group: None,
            origin: "test:1".into(),
        };
        let (mut source, _) = SipSource::start(&settings, &[ext]).await.unwrap();
        // Both subscriptions are up side by side, and the line starts idle.
        let mut active = Vec::new();
        let mut first_line = None;
        while active.len() < 2 || first_line.is_none() {
            let event = tokio::time::timeout(Duration::from_secs(10), source.next())
                .await
                .expect("both subscriptions within 10 s")
                .expect("the source runs");
            match event {
                SourceEvent::Health(SipHealth::Subscribed { package, .. }) => active.push(package),
                SourceEvent::Line(c) => first_line = Some(c.line_state),
                SourceEvent::Health(_) => {}
            }
        }
        active.sort_by_key(|p| p.event_name());
        assert_eq!(active, [Package::Dialog, Package::Presence]);
        assert_eq!(first_line, Some(LineState::Idle));
        // A call: busy (whichever NOTIFY comes first), then idle again.
        let call =
            DialogSpec::new("c1", Direction::Initiator, DialogState::Confirmed).with_remote("1002");
        pbx.set_line("1001", vec![call]).unwrap();
        assert_eq!(next_line(&mut source).await, LineState::Busy);
        pbx.set_line("1001", vec![]).unwrap();
        assert_eq!(next_line(&mut source).await, LineState::Idle);
        source.shutdown(Duration::from_secs(5)).await;
        let _ = pbx.shutdown().await;
    }

    /// A source fed with user-agent events by the test.
    fn fed_source() -> (tokio::sync::mpsc::Sender<Event>, SipSource) {
        let (tx, events) = tokio::sync::mpsc::channel(4096);
        (tx, SipSource::new(None, events, &[]))
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_forged_notifies_is_two_warnings_and_every_one_is_counted() {
        let (tx, mut source) = fed_source();
        let from: SocketAddr = "192.0.2.7:5060".parse().unwrap();
        for i in 0..2000 {
            let kind = if i % 100 == 99 {
                sip_ua::NotifyRejection::DialogMismatch
            } else {
                sip_ua::NotifyRejection::UnknownDialog
            };
            tx.try_send(Event::NotifyRejected {
                from,
                kind,
                reason: format!("NOTIFY for unknown Call-ID forged-{i}"),
            })
            .unwrap();
        }
        let started = tokio::time::Instant::now();
        let mut warnings = Vec::new();
        // Paused time: the wait for the summary passes at once; a minute
        // without anything more ends the test.
        while let Ok(Some(event)) =
            tokio::time::timeout(Duration::from_secs(60), source.next()).await
        {
            match event {
                SourceEvent::Health(h) if h.severity() == Severity::Warn => {
                    warnings.push((started.elapsed().as_secs(), h.to_string()))
                }
                other => panic!("{other:?}"),
            }
        }
        assert_eq!(warnings.len(), 2, "{warnings:#?}");
        assert!(warnings[0].1.contains("forged-0"), "{warnings:?}");
        assert_eq!(warnings[1].0, 10);
        assert_eq!(
            warnings[1].1,
            "1,999 more NOTIFYs rejected (481) in the last 10 s \
             (1,979 unknown dialog, 20 dialog mismatch); the most recent from \
             192.0.2.7:5060: NOTIFY for unknown Call-ID forged-1999"
        );
        let metrics = source.telemetry.metrics_text();
        for line in [
            r#"sip_notifies_rejected_total{reason="unknown_dialog"} 1980"#,
            r#"sip_notifies_rejected_total{reason="dialog_mismatch"} 20"#,
            r#"sip_notifies_rejected_total{reason="malformed"} 0"#,
        ] {
            assert!(metrics.contains(line), "{line} not in {metrics}");
        }
        drop(tx);
    }

    #[test]
    fn an_empty_notify_is_idle_for_dialog_but_unknown_for_presence() {
        let mut dialog = tracker(Package::Dialog);
        dialog.apply(Notification::Empty);
        assert_eq!(dialog.line_state(), LineState::Idle);
        let mut presence = tracker(Package::Presence);
        presence.apply(Notification::Empty);
        assert_eq!(presence.line_state(), LineState::Unknown);
    }
}
