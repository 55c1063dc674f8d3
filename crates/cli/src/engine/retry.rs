//! When a failed presence command is tried again: the engine is the one
//! place that retries presence calls (the service's Graph client does not
//! retry by itself, so each call returns its failure at once).

use std::time::Duration;

use super::machine::EngineSettings;

/// How a command failed, which decides when it is tried again.
///
/// The engine is the one place that retries presence calls: the Graph client
/// of the service does not retry by itself, so each call returns its failure
/// at once and no call holds a user for longer than one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// May succeed later (throttling, server errors, network): retried after
    /// `retry_after` when the server gave one (at most
    /// [`EngineSettings::permanent_backoff_max`]), else after a short backoff
    /// that doubles from [`EngineSettings::transient_backoff_first`] up to
    /// [`EngineSettings::retry_after`] with each such failure (without
    /// `Retry-After`) since the last success.
    Transient {
        /// The server's `Retry-After`, if any.
        retry_after: Option<Duration>,
    },
    /// Will not succeed until someone fixes something (user gone, permission
    /// missing, credentials refused): retried with a doubling backoff from
    /// [`EngineSettings::retry_after`] up to [`EngineSettings::permanent_backoff_max`].
    Permanent,
}

/// Failures in a row, by kind; reset by a success.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Streak {
    /// Transient failures without `Retry-After` (drive the short backoff).
    transient: u32,
    /// Permanent failures (drive the long backoff).
    permanent: u32,
}

impl Streak {
    /// Counts `failure` and returns the wait before the next attempt.
    pub(super) fn failed(&mut self, settings: &EngineSettings, failure: Failure) -> Duration {
        let doubled = |first: Duration, failures: u32| {
            first.saturating_mul(2u32.saturating_pow(failures.saturating_sub(1).min(31)))
        };
        match failure {
            // The server's word: it paces us, it does not say that it is
            // failing, so the backoff below goes on where it was. (A
            // Retry-After of days is cut to the longest backoff.)
            Failure::Transient {
                retry_after: Some(wait),
            } => wait.min(settings.permanent_backoff_max),
            // A short backoff, as a single 500 or timeout usually passes
            // within a second.
            Failure::Transient { retry_after: None } => {
                self.transient = self.transient.saturating_add(1);
                doubled(settings.transient_backoff_first, self.transient).min(settings.retry_after)
            }
            Failure::Permanent => {
                self.permanent = self.permanent.saturating_add(1);
                doubled(settings.retry_after, self.permanent).min(settings.permanent_backoff_max)
            }
        }
    }
}
