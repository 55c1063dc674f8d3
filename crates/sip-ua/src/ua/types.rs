//! The public types of the user agent: what it sends, what it reports and its status.

use std::net::SocketAddr;
use std::time::Instant;

use crate::config::EventPackage;
use crate::headers::{SubscriptionState, TerminationReason};
use crate::ua::MessageId;
#[cfg(doc)]
use crate::ua::UserAgent;

pub use sip_proto::Transmit;

/// A NOTIFY that belongs to one of our subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The user part of the watched resource's URI it is about (for BLF,
    /// the extension number).
    pub user: String,
    /// Its event package.
    pub package: EventPackage,
    /// `Content-Type`, if any (none: no body, e.g. Kamailio's "no dialogs").
    pub content_type: Option<String>,
    /// The body, unparsed (parse it with the `blf` crate).
    pub body: Vec<u8>,
    /// `Subscription-State`, if it parsed.
    pub subscription_state: Option<SubscriptionState>,
    /// When it arrived: the `now` of the [`UserAgent::handle_input`] call
    /// that carried it.
    pub received_at: Instant,
}

/// What happened; poll with [`UserAgent::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The PBX accepted the registration.
    Registered {
        /// Granted expiry, seconds.
        expires: u32,
        /// The Contact URI registered.
        contact: String,
    },
    /// REGISTER failed; `retry_at` says when it is tried again.
    RegistrationFailed {
        /// The status code, `None` on time-out.
        status: Option<u16>,
        /// Plain-words reason.
        reason: String,
        /// Next attempt.
        retry_at: Option<Instant>,
    },
    /// The un-REGISTER finished (or gave up).
    Unregistered,
    /// A subscription was accepted (2xx) or refreshed, or became active by NOTIFY.
    SubscriptionActive {
        /// The user part of the watched URI (for BLF, the extension number).
        user: String,
        /// Event package.
        package: EventPackage,
        /// Seconds until it expires.
        expires: u32,
    },
    /// The PBX holds the subscription as `pending` (awaiting authorisation).
    SubscriptionPending {
        /// The user part of the watched URI (for BLF, the extension number).
        user: String,
        /// Event package.
        package: EventPackage,
    },
    /// The PBX ended a subscription (`Subscription-State: terminated`).
    SubscriptionTerminated {
        /// The user part of the watched URI (for BLF, the extension number).
        user: String,
        /// Event package.
        package: EventPackage,
        /// The `reason` parameter.
        reason: Option<TerminationReason>,
        /// When it is subscribed again; `None`: never (`invariant`).
        retry_at: Option<Instant>,
    },
    /// A SUBSCRIBE failed; `diagnosis` says what to do about it.
    SubscriptionFailed {
        /// The user part of the watched URI (for BLF, the extension number).
        user: String,
        /// Event package.
        package: EventPackage,
        /// Status code, `None` on time-out.
        status: Option<u16>,
        /// Plain-words diagnosis, e.g. "PBX has no BLF hint for 500: …".
        diagnosis: String,
        /// Next attempt.
        retry_at: Option<Instant>,
    },
    /// A NOTIFY for one of our subscriptions.
    Notify(Notify),
    /// A NOTIFY that matched no subscription got 481 and changed nothing.
    NotifyRejected {
        /// Who sent it.
        from: SocketAddr,
        /// Why, in few enough kinds to count by.
        kind: NotifyRejection,
        /// Why, in words (e.g. the unknown Call-ID).
        reason: String,
    },
    /// The Contact address changed; registration and subscriptions are refreshed.
    ContactChanged {
        /// The previous address.
        old: SocketAddr,
        /// The new address.
        new: SocketAddr,
    },
    /// The PBX did not answer (REGISTER timed out).
    Unreachable {
        /// What timed out.
        reason: String,
        /// Next attempt.
        retry_at: Option<Instant>,
    },
    /// A PUBLISH for a presentity was accepted: initial, refresh or modify
    /// (see [`UserAgent::publish`]).
    Published {
        /// The presentity, as given to [`UserAgent::publish`].
        presentity: String,
        /// Granted expiry, seconds (refreshed before it runs out).
        expires: u32,
    },
    /// A publication was removed (`Expires: 0` accepted), or there was
    /// nothing left at the server to remove.
    PublicationRemoved {
        /// The presentity.
        presentity: String,
    },
    /// A PUBLISH failed; `retry_at` says when it is tried again (`None`: a
    /// removal that is given up; the server lets the publication expire).
    PublicationFailed {
        /// The presentity.
        presentity: String,
        /// Status code, `None` on time-out.
        status: Option<u16>,
        /// Plain-words reason.
        reason: String,
        /// Next attempt.
        retry_at: Option<Instant>,
    },
    /// A MESSAGE ([`UserAgent::send_message`]) got a 2xx: delivered.
    MessageDelivered {
        /// The id `send_message` returned.
        id: MessageId,
        /// The recipient, as given.
        to: String,
        /// The final status (200 or 202).
        status: u16,
    },
    /// A MESSAGE failed for good (it is not retried: the caller decides).
    MessageFailed {
        /// The id `send_message` returned.
        id: MessageId,
        /// The recipient, as given.
        to: String,
        /// The final status; `408` on time-out (RFC 3261 §8.1.3.1), `None`
        /// when the user agent shut down before an answer came.
        status: Option<u16>,
        /// Plain-words reason.
        reason: String,
    },
    /// [`UserAgent::shutdown`] finished.
    ShutDown,
}

/// Why a NOTIFY was rejected with 481 ([`Event::NotifyRejected`]): a small,
/// fixed set, fit for a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum NotifyRejection {
    /// Its Call-ID is no subscription of ours (a forged NOTIFY, or one for
    /// a subscription that has ended).
    UnknownDialog,
    /// The Call-ID is ours but the tags or the event package are not.
    DialogMismatch,
    /// It cannot be matched at all (no Call-ID).
    Malformed,
}

impl NotifyRejection {
    /// Every kind, in declaration order.
    pub const ALL: [NotifyRejection; 3] = [
        NotifyRejection::UnknownDialog,
        NotifyRejection::DialogMismatch,
        NotifyRejection::Malformed,
    ];

    /// Snake-case name (`unknown_dialog`, `dialog_mismatch`, `malformed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownDialog => "unknown_dialog",
            Self::DialogMismatch => "dialog_mismatch",
            Self::Malformed => "malformed",
        }
    }
}

/// Where a subscription stands (see [`UserAgent::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SubscriptionPhase {
    /// No dialog; waiting for the next attempt.
    Waiting,
    /// Initial SUBSCRIBE sent.
    Subscribing,
    /// Accepted; NOTIFYs flow.
    Active,
    /// Accepted but `pending` at the PBX.
    Pending,
    /// Refresh in flight.
    Refreshing,
    /// Un-SUBSCRIBE in flight.
    Unsubscribing,
    /// Ended for good (`invariant`, removed, shut down).
    Closed,
}

/// The state of one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStatus {
    /// The user part of the watched resource's URI (for BLF, the extension
    /// number).
    pub user: String,
    /// Event package.
    pub package: EventPackage,
    /// Phase.
    pub phase: SubscriptionPhase,
    /// When the PBX's grant runs out, while active.
    pub expires_at: Option<Instant>,
    /// Next SUBSCRIBE (refresh or retry).
    pub next_attempt: Option<Instant>,
    /// What went wrong last, in plain words (cleared on success).
    pub last_error: Option<String>,
}

/// The state of the registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationStatus {
    /// Registered now.
    pub registered: bool,
    /// When the granted registration runs out.
    pub expires_at: Option<Instant>,
    /// What went wrong last, in plain words.
    pub last_error: Option<String>,
    /// The Contact address in use.
    pub contact: SocketAddr,
}

/// Snapshot returned by [`UserAgent::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UaStatus {
    /// Registration.
    pub registration: RegistrationStatus,
    /// Every subscription.
    pub subscriptions: Vec<SubscriptionStatus>,
}
