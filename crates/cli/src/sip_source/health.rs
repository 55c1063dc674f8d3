//! What the SIP source says about itself besides line changes, as typed
//! values: the registration, each subscription, NOTIFYs it could not use,
//! the Contact and STUN discovery. [`crate::observe::sip_health`] is the one
//! place that turns them into log lines, `/status` and `/metrics`; `check`
//! reads the same values for its table.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant, SystemTime};

use sip_ua::{EventPackage as Package, NotifyRejection, TerminationReason};

use super::subscription_name;
use crate::observe::RejectedSummary;

/// How loud a [`SipHealth`] is in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// Only with `RUST_LOG=debug` (every NOTIFY).
    Debug,
    /// Informational: registered, subscribed…
    Info,
    /// A problem, with what to do about it where known.
    Warn,
}

/// The health of the SIP source: one fact about its registration, a
/// subscription, a NOTIFY or the Contact. [`Display`](fmt::Display) gives the
/// log line; [`severity`](Self::severity) its level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SipHealth {
    /// The registration is in force.
    Registered {
        /// The Contact registered.
        contact: String,
        /// For how many seconds.
        expires: u32,
    },
    /// The PBX refused the REGISTER, or did not answer it.
    RegistrationFailed {
        /// The final status, `None` when no answer came.
        status: Option<u16>,
        /// Why, in words.
        reason: String,
    },
    /// A subscription is active at the PBX.
    Subscribed {
        /// The extension.
        extension: String,
        /// Its event package.
        package: Package,
        /// For how many seconds.
        expires: u32,
    },
    /// The PBX holds a subscription as pending (not authorised yet).
    Pending {
        /// The extension.
        extension: String,
        /// Its event package.
        package: Package,
    },
    /// The PBX ended a subscription; the source subscribes again.
    EndedByPbx {
        /// The extension.
        extension: String,
        /// Its event package.
        package: Package,
        /// The reason the PBX gave, if any.
        reason: Option<TerminationReason>,
    },
    /// A SUBSCRIBE failed; it is retried later.
    SubscriptionFailed {
        /// The extension.
        extension: String,
        /// Its event package.
        package: Package,
        /// The final status, `None` when no answer came.
        status: Option<u16>,
        /// What went wrong and what to do about it.
        diagnosis: String,
    },
    /// A NOTIFY arrived for a subscription (counted in `/metrics` and
    /// `/status`, logged at debug level only).
    NotifyReceived {
        /// The extension.
        extension: String,
        /// Its event package.
        package: Package,
        /// When it was read off the socket.
        received_at: Instant,
    },
    /// A NOTIFY body could not be read: the line state is unchanged.
    NotifyNotUnderstood {
        /// The extension.
        extension: String,
        /// Its event package.
        package: Package,
        /// The parse error, in words.
        error: String,
    },
    /// A NOTIFY skipped a version of the subscription's document.
    VersionGap {
        /// The extension.
        extension: String,
        /// Its event package.
        package: Package,
        /// The version expected (`None`: no full document yet).
        expected: Option<u64>,
        /// The version received.
        received: Option<u64>,
        /// `true`: the subscription is refreshed for the full state;
        /// `false`: a refresh is already under way, waiting for it.
        refreshing: bool,
    },
    /// A NOTIFY was rejected (481): the first of a spell, in full.
    NotifyRejected {
        /// Where it came from.
        from: SocketAddr,
        /// Why it was rejected.
        kind: NotifyRejection,
        /// Why, in words.
        reason: String,
    },
    /// The NOTIFYs rejected (481) since the last line, summed up
    /// (rate-limited by [`RejectedNotifies`](crate::observe::RejectedNotifies)).
    NotifiesRejected(RejectedSummary),
    /// The Contact address changed; the source registers again.
    ContactChanged {
        /// The address before.
        old: SocketAddr,
        /// The address now.
        new: SocketAddr,
    },
    /// The PBX does not answer.
    Unreachable {
        /// Why, in words.
        reason: String,
    },
    /// A line is unknown: one of its subscriptions has been lost longer than
    /// `SIP_STALE_AFTER`.
    LineUnknown {
        /// The extension.
        extension: String,
        /// The package of the lost subscription.
        package: Package,
        /// For how long it has been lost.
        lost_for: Duration,
        /// Since when (wall clock).
        since: SystemTime,
        /// Why it was lost.
        reason: String,
    },
    /// `STUN_SERVERS` could not be read: no STUN discovery.
    StunServersInvalid {
        /// The error, in words.
        error: String,
    },
    /// One STUN server could not be resolved.
    StunServerFailed {
        /// Which, and why.
        failure: String,
    },
    /// No STUN server is usable for the SIP socket.
    NoStunServer,
}

impl SipHealth {
    /// How loud it is in the log.
    pub fn severity(&self) -> Severity {
        match self {
            Self::NotifyReceived { .. } => Severity::Debug,
            Self::Registered { .. }
            | Self::Subscribed { .. }
            | Self::Pending { .. }
            | Self::EndedByPbx { .. }
            | Self::ContactChanged { .. } => Severity::Info,
            Self::RegistrationFailed { .. }
            | Self::SubscriptionFailed { .. }
            | Self::NotifyNotUnderstood { .. }
            | Self::VersionGap { .. }
            | Self::NotifyRejected { .. }
            | Self::NotifiesRejected(_)
            | Self::Unreachable { .. }
            | Self::LineUnknown { .. }
            | Self::StunServersInvalid { .. }
            | Self::StunServerFailed { .. }
            | Self::NoStunServer => Severity::Warn,
        }
    }

    /// The subscription it is about, if it is about one.
    pub fn subscription(&self) -> Option<(&str, Package)> {
        match self {
            Self::Subscribed {
                extension, package, ..
            }
            | Self::Pending { extension, package }
            | Self::EndedByPbx {
                extension, package, ..
            }
            | Self::SubscriptionFailed {
                extension, package, ..
            }
            | Self::NotifyReceived {
                extension, package, ..
            }
            | Self::NotifyNotUnderstood {
                extension, package, ..
            }
            | Self::VersionGap {
                extension, package, ..
            }
            | Self::LineUnknown {
                extension, package, ..
            } => Some((extension, *package)),
            _ => None,
        }
    }
}

impl fmt::Display for SipHealth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Registered { contact, expires } => {
                write!(f, "registered as {contact} for {expires} s")
            }
            Self::RegistrationFailed { status, reason } => {
                f.write_str("registration failed")?;
                if let Some(s) = status {
                    write!(f, " ({s})")?;
                }
                write!(f, ": {reason}")
            }
            Self::Subscribed {
                extension,
                package,
                expires,
            } => write!(
                f,
                "subscribed to {} for {expires} s",
                subscription_name(extension, *package)
            ),
            Self::Pending { extension, package } => write!(
                f,
                "subscription to {} is pending at the PBX",
                subscription_name(extension, *package)
            ),
            Self::EndedByPbx {
                extension,
                package,
                reason,
            } => write!(
                f,
                "subscription to {} ended by the PBX ({reason:?}); subscribing again",
                subscription_name(extension, *package)
            ),
            Self::SubscriptionFailed {
                extension,
                package,
                diagnosis,
                ..
            } => write!(f, "{}: {diagnosis}", subscription_name(extension, *package)),
            Self::NotifyReceived {
                extension, package, ..
            } => write!(f, "NOTIFY for {}", subscription_name(extension, *package)),
            Self::NotifyNotUnderstood {
                extension, error, ..
            } => write!(
                f,
                "NOTIFY for {extension} not understood, line state unchanged: {error}"
            ),
            Self::VersionGap {
                extension,
                package,
                expected,
                received,
                refreshing,
            } => {
                let next = if *refreshing {
                    "refreshing the subscription for the full state"
                } else {
                    "waiting for the full state"
                };
                write!(
                    f,
                    "NOTIFY for {} skipped a version (expected {expected:?}, got {received:?}); {next}",
                    subscription_name(extension, *package)
                )
            }
            Self::NotifyRejected { from, reason, .. } => {
                write!(f, "NOTIFY from {from} rejected (481): {reason}")
            }
            Self::NotifiesRejected(summary) => summary.fmt(f),
            Self::ContactChanged { old, new } => write!(
                f,
                "contact address changed from {old} to {new}; registering again"
            ),
            Self::Unreachable { reason } => write!(f, "PBX unreachable: {reason}"),
            Self::LineUnknown {
                extension,
                package,
                lost_for,
                reason,
                ..
            } => write!(
                f,
                "{}: line state unknown, the subscription has been lost for {} s: {reason}",
                subscription_name(extension, *package),
                lost_for.as_secs()
            ),
            Self::StunServersInvalid { error } => write!(f, "STUN_SERVERS: {error}"),
            Self::StunServerFailed { failure } => write!(f, "STUN server {failure}"),
            Self::NoStunServer => f.write_str(
                "no STUN server usable: the Contact uses what the PBX reports (received/rport); \
                 set SIP_CONTACT_IP to the public address if NOTIFYs do not arrive",
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_lines_read_as_before() {
        let cases = [
            (
                SipHealth::Registered {
                    contact: "sip:blf@192.0.2.1:5060".into(),
                    expires: 600,
                },
                Severity::Info,
                "registered as sip:blf@192.0.2.1:5060 for 600 s",
            ),
            (
                SipHealth::RegistrationFailed {
                    status: Some(403),
                    reason: "forbidden".into(),
                },
                Severity::Warn,
                "registration failed (403): forbidden",
            ),
            (
                SipHealth::RegistrationFailed {
                    status: None,
                    reason: "no answer".into(),
                },
                Severity::Warn,
                "registration failed: no answer",
            ),
            (
                SipHealth::Subscribed {
                    extension: "1001".into(),
                    package: Package::Presence,
                    expires: 300,
                },
                Severity::Info,
                "subscribed to 1001 (presence) for 300 s",
            ),
            (
                SipHealth::Pending {
                    extension: "1001".into(),
                    package: Package::Dialog,
                },
                Severity::Info,
                "subscription to 1001 is pending at the PBX",
            ),
            (
                SipHealth::EndedByPbx {
                    extension: "1001".into(),
                    package: Package::Dialog,
                    reason: None,
                },
                Severity::Info,
                "subscription to 1001 ended by the PBX (None); subscribing again",
            ),
            (
                SipHealth::VersionGap {
                    extension: "1001".into(),
                    package: Package::Dialog,
                    expected: Some(2),
                    received: Some(3),
                    refreshing: true,
                },
                Severity::Warn,
                "NOTIFY for 1001 skipped a version (expected Some(2), got Some(3)); \
                 refreshing the subscription for the full state",
            ),
            (
                SipHealth::ContactChanged {
                    old: "192.0.2.1:5060".parse().unwrap(),
                    new: "192.0.2.2:5060".parse().unwrap(),
                },
                Severity::Info,
                "contact address changed from 192.0.2.1:5060 to 192.0.2.2:5060; registering again",
            ),
            (
                SipHealth::Unreachable {
                    reason: "no answer".into(),
                },
                Severity::Warn,
                "PBX unreachable: no answer",
            ),
        ];
        for (health, severity, text) in cases {
            assert_eq!(health.severity(), severity, "{health:?}");
            assert_eq!(health.to_string(), text);
        }
    }
}
