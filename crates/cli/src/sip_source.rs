//! The PBX as a source of line-state changes: `sip-ua` subscriptions, each
//! NOTIFY body read by a `blf::Tracker` per subscription (extension and event
//! package). An extension watched through both packages (`dialog+presence`)
//! has one line state, [`LineState::from_dialog_and_presence`]: a call over
//! the dialog event wins, presence `closed` turns a dialog-idle line offline.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use blf::{LineState, Notification, Tracker, TrackerEvent};
use sip_ua::discovery::AddressDiscovery;
use sip_ua::driver::UaHandle;
use sip_ua::{ContactAddress, Event, EventPackage as Package, Subscription, Transport, UaConfig};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::extensions::Extension;
use crate::observe::{SubscriptionStatus, Telemetry};
use crate::settings::{ContactSetting, SipSettings, SipTransport};

/// One extension's line changed state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineChange {
    /// The extension.
    pub extension: String,
    /// Its new line state.
    pub line_state: LineState,
    /// When the NOTIFY that reported it arrived (`None`: when the engine
    /// takes it), the start of the NOTIFY→Graph latency.
    pub received_at: Option<Instant>,
}

/// Something worth telling the operator that is not a line change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// Informational (registered, subscribed…).
    Info(String),
    /// A problem with what to do about it.
    Warning(String),
}

/// What the source yields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SourceEvent {
    /// A line state changed.
    Line(LineChange),
    /// Something for the log.
    Notice(Notice),
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
    };
    // 0.0.0.0:0 is the default: let the driver choose (loopback for a local PBX).
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
) -> (Option<Box<dyn AddressDiscovery>>, Vec<Notice>) {
    let mut notices = Vec::new();
    if settings.contact != ContactSetting::Auto || server.ip().is_loopback() {
        return (None, notices);
    }
    let specs = match stun_lite::parse_server_list(&settings.stun_servers.join(",")) {
        Ok(s) => s,
        Err(e) => {
            notices.push(Notice::Warning(format!("STUN_SERVERS: {e}")));
            return (None, notices);
        }
    };
    let (addrs, failures) = stun_lite::resolve_servers(&specs).await;
    for f in failures {
        notices.push(Notice::Warning(format!("STUN server {f}")));
    }
    let local = sip_ua::driver::default_listen(server);
    let usable = stun_lite::servers_for_socket(&addrs, local);
    if usable.is_empty() {
        notices.push(Notice::Warning(
            "no STUN server usable: the Contact uses what the PBX reports (received/rport); \
             set SIP_CONTACT_IP to the public address if NOTIFYs do not arrive"
                .into(),
        ));
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
                extension: e.extension.clone(),
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
        Package::Presence => format!("{extension} (presence)"),
    }
}

/// The running SIP source.
pub struct SipSource {
    handle: Option<UaHandle>,
    events: UnboundedReceiver<Event>,
    /// One per subscription: (extension, package).
    trackers: HashMap<(String, Package), Tracker>,
    telemetry: Telemetry,
}

impl SipSource {
    /// Registers and subscribes to every extension.
    pub async fn start(
        settings: &SipSettings,
        extensions: &[Extension],
    ) -> Result<(Self, Vec<Notice>), sip_ua::Error> {
        let config = ua_config(settings);
        let server = sip_ua::driver::resolve_server(&config).await?;
        let (discovery, notices) = stun_discovery(settings, server).await;
        let subs = subscriptions(extensions);
        let (handle, events) = sip_ua::driver::spawn(config, subs.clone(), discovery).await?;
        Ok((Self::new(Some(handle), events, &subs), notices))
    }

    fn new(
        handle: Option<UaHandle>,
        events: UnboundedReceiver<Event>,
        subscriptions: &[Subscription],
    ) -> Self {
        let trackers = subscriptions
            .iter()
            .map(|s| ((s.extension.clone(), s.package), Tracker::new()))
            .collect();
        Self {
            handle,
            events,
            trackers,
            telemetry: Telemetry::new(),
        }
    }

    /// Reports registration, subscriptions and every NOTIFY to `telemetry`.
    pub fn set_telemetry(&mut self, telemetry: Telemetry) {
        self.telemetry = telemetry;
    }

    /// The local SIP address.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.handle.as_ref().map(UaHandle::local_addr)
    }

    /// The next event; `None` once the user agent has stopped.
    pub async fn next(&mut self) -> Option<SourceEvent> {
        loop {
            let event = self.events.recv().await?;
            if let Some(out) = self.translate(event) {
                return Some(out);
            }
        }
    }

    /// The next user-agent event as it came, with what [`next`](Self::next)
    /// makes of it (for callers that need each subscription's outcome).
    pub async fn next_raw(&mut self) -> Option<(Event, Option<SourceEvent>)> {
        let event = self.events.recv().await?;
        let out = self.translate(event.clone());
        Some((event, out))
    }

    /// The line state the NOTIFYs so far give for `extension` (`Unknown`
    /// before the first one), both packages combined when it has both.
    pub fn line_state(&self, extension: &str) -> LineState {
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
                extension: extension.to_string(),
                package,
            });
        }
    }

    fn translate(&mut self, event: Event) -> Option<SourceEvent> {
        self.observe(&event);
        let info = |s: String| Some(SourceEvent::Notice(Notice::Info(s)));
        let warn = |s: String| Some(SourceEvent::Notice(Notice::Warning(s)));
        match event {
            Event::Notify(n) => {
                let parsed = Notification::parse(n.content_type.as_deref(), &n.body);
                match parsed {
                    Err(e) => {
                        self.telemetry.parse_error(&n.extension);
                        warn(format!(
                            "NOTIFY for {} not understood, line state unchanged: {e}",
                            n.extension
                        ))
                    }
                    Ok(notification) => {
                        let before = self.line_state(&n.extension);
                        let update = self
                            .trackers
                            .entry((n.extension.clone(), n.package))
                            .or_default()
                            .apply(notification);
                        if update.refresh {
                            // RFC 4235 §4.1: a refresh makes the PBX send the full state.
                            self.refresh(&n.extension, n.package);
                        }
                        if let TrackerEvent::ResyncNeeded { expected, received } = update.event {
                            let next = if update.refresh {
                                "refreshing the subscription for the full state"
                            } else {
                                "waiting for the full state"
                            };
                            return warn(format!(
                                "NOTIFY for {} skipped a version (expected {expected:?}, got {received:?}); {next}",
                                subscription_name(&n.extension, n.package)
                            ));
                        }
                        let after = self.line_state(&n.extension);
                        (after != before).then_some(SourceEvent::Line(LineChange {
                            extension: n.extension,
                            line_state: after,
                            received_at: Some(n.received_at),
                        }))
                    }
                }
            }
            Event::Registered { expires, contact } => {
                info(format!("registered as {contact} for {expires} s"))
            }
            Event::RegistrationFailed { status, reason, .. } => warn(format!(
                "registration failed{}: {reason}",
                status.map(|s| format!(" ({s})")).unwrap_or_default()
            )),
            Event::SubscriptionActive {
                extension,
                package,
                expires,
            } => info(format!(
                "subscribed to {} for {expires} s",
                subscription_name(&extension, package)
            )),
            Event::SubscriptionPending { extension, package } => info(format!(
                "subscription to {} is pending at the PBX",
                subscription_name(&extension, package)
            )),
            Event::SubscriptionTerminated {
                extension,
                package,
                reason,
                ..
            } => {
                // The tracker's versions restart with the next subscription.
                if let Some(t) = self.trackers.get_mut(&(extension.clone(), package)) {
                    t.reset();
                }
                info(format!(
                    "subscription to {} ended by the PBX ({reason:?}); subscribing again",
                    subscription_name(&extension, package)
                ))
            }
            Event::SubscriptionFailed {
                extension,
                package,
                diagnosis,
                ..
            } => warn(format!(
                "{}: {diagnosis}",
                subscription_name(&extension, package)
            )),
            Event::NotifyRejected { from, reason } => {
                warn(format!("NOTIFY from {from} rejected (481): {reason}"))
            }
            Event::ContactChanged { old, new } => info(format!(
                "contact address changed from {old} to {new}; registering again"
            )),
            Event::Unreachable { reason, .. } => warn(format!("PBX unreachable: {reason}")),
            Event::Unregistered | Event::ShutDown => None,
        }
    }

    /// What `/status` and `/metrics` learn from one user-agent event.
    fn observe(&self, event: &Event) {
        let t = &self.telemetry;
        match event {
            Event::Notify(n) => {
                t.notify_arrived(&n.extension, std::time::SystemTime::now(), n.received_at)
            }
            Event::Registered { .. } => t.set_registered(true),
            Event::RegistrationFailed { .. } | Event::Unreachable { .. } | Event::Unregistered => {
                t.set_registered(false)
            }
            Event::SubscriptionActive { extension, .. } => {
                t.set_subscription(extension, SubscriptionStatus::Active)
            }
            Event::SubscriptionPending { extension, .. } => {
                t.set_subscription(extension, SubscriptionStatus::Pending)
            }
            Event::SubscriptionFailed { extension, .. } => {
                t.set_subscription(extension, SubscriptionStatus::Failed)
            }
            Event::SubscriptionTerminated { extension, .. } => {
                t.set_subscription(extension, SubscriptionStatus::Terminated)
            }
            Event::NotifyRejected { .. } | Event::ContactChanged { .. } | Event::ShutDown => {}
        }
    }

    /// Un-SUBSCRIBEs and un-REGISTERs (bounded in time).
    pub async fn shutdown(&mut self, limit: Duration) {
        if let Some(handle) = self.handle.take() {
            let _ = tokio::time::timeout(limit, handle.shutdown()).await;
        }
    }
}
