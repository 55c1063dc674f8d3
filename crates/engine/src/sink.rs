//! The [`Sink`] trait and its errors.

use std::future::Future;
use std::time::Duration;

use crate::lane::{LaneConfig, Write};
use crate::view::View;

/// A write to a sink failed; the [`Lane`](crate::Lane) retries it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// May go away by itself (throttled, server error, network); retried
    /// after the backoff, or after `retry_after` when that is longer.
    #[error("{message}")]
    Transient {
        /// What went wrong.
        message: String,
        /// The server's `Retry-After`, if it gave one.
        retry_after: Option<Duration>,
    },
    /// Will not succeed until someone fixes something (a person unknown to
    /// the sink, a permission missing); retried with the same capped backoff
    /// so that a fix is picked up without a restart.
    #[error("{message}")]
    Permanent {
        /// What went wrong and what to fix.
        message: String,
    },
    /// The sink lost its connection: the whole lane waits out the backoff,
    /// then replays every person's current view (what the sink held is not
    /// known any more).
    #[error("{message}")]
    Disconnected {
        /// What went wrong.
        message: String,
    },
}

impl SinkError {
    /// A transient failure without `Retry-After`.
    pub fn transient(message: impl Into<String>) -> Self {
        Self::Transient {
            message: message.into(),
            retry_after: None,
        }
    }

    /// A failure that needs a fix.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self::Permanent {
            message: message.into(),
        }
    }

    /// A lost connection.
    pub fn disconnected(message: impl Into<String>) -> Self {
        Self::Disconnected {
            message: message.into(),
        }
    }

    /// The server's `Retry-After`, if any.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Self::Transient { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// Where views go: a policy (what this sink wants to hold for a view) and a
/// batched write.
///
/// The runtime gives each sink a task and a [`Lane`](crate::Lane) of its
/// own: it calls [`desired`](Self::desired) for every change of a person's
/// view, and [`write`](Self::write) with at most one write per person in a
/// batch and one batch at a time, so writes for a person arrive in order.
pub trait Sink: Send + Sync + 'static {
    /// What the sink holds for a person (a Teams presence, a table row, the
    /// whole [`View`]). Two equal values are one write.
    type Held: Clone + Eq + Send + Sync + std::fmt::Debug + 'static;

    /// The sink's name, for logs and status (`graph`, `database`).
    fn name(&self) -> &str;

    /// What to hold for `view`; `None` leaves the person alone (a sink that
    /// does not care about this view, or about this person).
    fn desired(&self, view: &View) -> Option<Self::Held>;

    /// The lane this sink wants, given the runtime's default: a sink that
    /// people read rather than one on a call path may gather changes into
    /// larger batches ([`LaneConfig::linger`]). The default keeps `default`.
    fn lane_config(&self, default: &LaneConfig) -> LaneConfig {
        default.clone()
    }

    /// Writes the batch; one result per write, in order (a missing result
    /// counts as a transient failure).
    fn write(
        &self,
        batch: Vec<Write<Self::Held>>,
    ) -> impl Future<Output = Vec<Result<(), SinkError>>> + Send;
}
