//! The PBX as a source of line-state changes: `sip-ua` subscriptions, each
//! NOTIFY body read by a per-extension `blf::Tracker`.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use blf::{LineState, Notification, Tracker, TrackerEvent};
use sip_ua::discovery::AddressDiscovery;
use sip_ua::driver::UaHandle;
use sip_ua::{ContactAddress, Event, Subscription, Transport, UaConfig};
use tokio::sync::mpsc::UnboundedReceiver;

use crate::extensions::{EventPackage, Extension};
use crate::observe::{RejectedNotifies, SubscriptionStatus, Telemetry};
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

/// The running SIP source.
pub struct SipSource {
    handle: Option<UaHandle>,
    events: UnboundedReceiver<Event>,
    trackers: HashMap<String, Tracker>,
    telemetry: Telemetry,
    /// Forged NOTIFYs cost a datagram each: their warnings are rate-limited.
    rejected: RejectedNotifies,
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
            .map(|e| (e.extension.clone(), Tracker::new()))
            .collect();
        Ok((
            Self {
                handle: Some(handle),
                events,
                trackers,
                telemetry: Telemetry::new(),
                rejected: RejectedNotifies::default(),
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
            // The count of rejected NOTIFYs held back is due even when no
            // event follows them.
            let summary = self
                .rejected
                .next_deadline()
                .map(tokio::time::Instant::from_std);
            let event = tokio::select! {
                event = self.events.recv() => event?,
                () = tokio::time::sleep_until(summary.unwrap_or_else(tokio::time::Instant::now)),
                    if summary.is_some() =>
                {
                    match self.rejected.poll(tokio_now()) {
                        Some(line) => return Some(SourceEvent::Notice(Notice::Warning(line))),
                        None => continue,
                    }
                }
            };
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
            Event::NotifyRejected { from, kind, reason } => self
                .rejected
                .rejected(from, kind, &reason, tokio_now())
                .and_then(warn),
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
            Event::NotifyRejected { kind, .. } => t.notify_rejected(*kind),
            Event::ContactChanged { .. } | Event::ShutDown => {}
        }
    }

    /// Un-SUBSCRIBEs and un-REGISTERs (bounded in time).
    pub async fn shutdown(&mut self, limit: Duration) {
        if let Some(handle) = self.handle.take() {
            let _ = tokio::time::timeout(limit, handle.shutdown()).await;
        }
    }
}

fn tokio_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A source fed with user-agent events by the test.
    fn source() -> (tokio::sync::mpsc::UnboundedSender<Event>, SipSource) {
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let source = SipSource {
            handle: None,
            events,
            trackers: HashMap::new(),
            telemetry: Telemetry::new(),
            rejected: RejectedNotifies::default(),
        };
        (tx, source)
    }

    #[tokio::test(start_paused = true)]
    async fn a_flood_of_forged_notifies_is_two_warnings_and_every_one_is_counted() {
        let (tx, mut source) = source();
        let from: SocketAddr = "192.0.2.7:5060".parse().unwrap();
        for i in 0..2000 {
            let kind = if i % 100 == 99 {
                sip_ua::NotifyRejection::DialogMismatch
            } else {
                sip_ua::NotifyRejection::UnknownDialog
            };
            tx.send(Event::NotifyRejected {
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
                SourceEvent::Notice(Notice::Warning(w)) => {
                    warnings.push((started.elapsed().as_secs(), w))
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
}
