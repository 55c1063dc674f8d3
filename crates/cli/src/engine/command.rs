//! What the engine asks of a presence sink: one [`PresenceCommand`] per
//! thing to do with one user's presence, and why.

use std::time::{Duration, Instant};

use graph_presence::PresenceState;

/// What a command does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceCommandKind {
    /// `setPresence` with our session.
    Set {
        /// The pair.
        pair: PresenceState,
        /// The session's `expirationDuration`.
        expiration: Duration,
    },
    /// `clearPresence` of our session.
    Clear,
    /// `setStatusMessage` (an empty text clears the message).
    StatusMessage {
        /// The text.
        text: String,
    },
}

/// Why a command is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// The line state changed.
    Change,
    /// Holding a set presence before its session expires.
    KeepAlive,
    /// The periodic re-assertion of a presence we set (a session that expired
    /// or was lost in Graph comes back).
    Reconcile,
    /// A presence left by an earlier run is corrected.
    Restart,
    /// An earlier attempt failed.
    Retry,
    /// The service is stopping.
    Shutdown,
}

impl Reason {
    /// Lowercase name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Change => "change",
            Self::KeepAlive => "keep-alive",
            Self::Reconcile => "reconcile",
            Self::Restart => "restart",
            Self::Retry => "retry",
            Self::Shutdown => "shutdown",
        }
    }
}

/// One thing to do with one user's presence.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceCommand {
    /// The extension whose line caused it.
    pub extension: String,
    /// The user (UPN or e-mail, as configured).
    pub user: String,
    /// What to do.
    pub kind: PresenceCommandKind,
    /// Why.
    pub reason: Reason,
    /// When the line change that caused it was seen, for the NOTIFY→Graph latency.
    pub caused_at: Option<Instant>,
}

impl PresenceCommand {
    /// The Graph operation's name (`setPresence`, `clearPresence`, `setStatusMessage`).
    pub fn operation(&self) -> &'static str {
        match self.kind {
            PresenceCommandKind::Set { .. } => "setPresence",
            PresenceCommandKind::Clear => "clearPresence",
            PresenceCommandKind::StatusMessage { .. } => "setStatusMessage",
        }
    }
}
