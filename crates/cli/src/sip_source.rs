//! The PBX as a source of line-state changes: `sip-ua` subscriptions, each
//! NOTIFY body read by a per-extension `blf::Tracker`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use blf::{EmptyBody, LineState, Notification, Tracker, TrackerEvent};
use sip_ua::discovery::AddressDiscovery;
use sip_ua::driver::UaHandle;
use sip_ua::{ContactAddress, Event, Subscription, Transport, UaConfig};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::extensions::{EventPackage, Extension};
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

/// The subscriptions for the extension list.
pub fn subscriptions(extensions: &[Extension]) -> Vec<Subscription> {
    extensions
        .iter()
        .map(|e| match e.event {
            EventPackage::Dialog => Subscription::dialog(&e.extension),
            EventPackage::Presence => Subscription::presence(&e.extension),
        })
        .collect()
}

/// The tracker for one extension. A body-less NOTIFY means "no dialogs" (idle)
/// for `dialog`, but "nothing published" for `presence` (Kamailio sends one
/// before the phone's first PUBLISH): that is `Unknown`, not an idle line.
pub fn tracker(event: EventPackage) -> Tracker {
    Tracker::with_empty_body(match event {
        EventPackage::Dialog => EmptyBody::NoDialogs,
        EventPackage::Presence => EmptyBody::Unknown,
    })
}

/// The running SIP source.
pub struct SipSource {
    handle: Option<UaHandle>,
    events: UnboundedReceiver<Event>,
    trackers: HashMap<String, Tracker>,
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
        let (handle, events) =
            sip_ua::driver::spawn(config, subscriptions(extensions), discovery).await?;
        let trackers = extensions
            .iter()
            .map(|e| (e.extension.clone(), tracker(e.event)))
            .collect();
        Ok((
            Self {
                handle: Some(handle),
                events,
                trackers,
                telemetry: Telemetry::new(),
            },
            notices,
        ))
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
    /// before the first one).
    pub fn line_state(&self, extension: &str) -> LineState {
        self.trackers
            .get(extension)
            .map_or(LineState::Unknown, Tracker::line_state)
    }

    fn translate(&mut self, event: Event) -> Option<SourceEvent> {
        self.observe(&event);
        let info = |s: String| Some(SourceEvent::Notice(Notice::Info(s)));
        let warn = |s: String| Some(SourceEvent::Notice(Notice::Warning(s)));
        match event {
            Event::Notify(n) => {
                let tracker = self.trackers.entry(n.extension.clone()).or_default();
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
                        let update = tracker.apply(notification);
                        if let TrackerEvent::ResyncNeeded { expected, received } = update.event {
                            return warn(format!(
                                "NOTIFY for {} skipped a version (expected {expected:?}, got {received:?}); \
                                 waiting for the next full state",
                                n.extension
                            ));
                        }
                        update.changed.then_some(SourceEvent::Line(LineChange {
                            extension: n.extension,
                            line_state: update.line_state,
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
            Event::SubscriptionActive { extension, expires } => {
                info(format!("subscribed to {extension} for {expires} s"))
            }
            Event::SubscriptionPending { extension } => {
                info(format!("subscription to {extension} is pending at the PBX"))
            }
            Event::SubscriptionTerminated {
                extension, reason, ..
            } => {
                // The tracker's versions restart with the next subscription.
                if let Some(t) = self.trackers.get_mut(&extension) {
                    t.reset();
                }
                info(format!(
                    "subscription to {extension} ended by the PBX ({reason:?}); subscribing again"
                ))
            }
            Event::SubscriptionFailed {
                extension,
                diagnosis,
                ..
            } => warn(format!("{extension}: {diagnosis}")),
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
            Event::SubscriptionPending { extension } => {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_empty_notify_is_idle_for_dialog_but_unknown_for_presence() {
        let mut dialog = tracker(EventPackage::Dialog);
        dialog.apply(Notification::Empty);
        assert_eq!(dialog.line_state(), LineState::Idle);
        let mut presence = tracker(EventPackage::Presence);
        presence.apply(Notification::Empty);
        assert_eq!(presence.line_state(), LineState::Unknown);
    }
}
