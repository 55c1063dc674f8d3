//! The lease, sans-IO: when to ask the database, what its answers mean for
//! the role, and until when the active instance may write.
//!
//! The database's clock decides who holds the lease (`expires_at < now()` on
//! the server); this machine decides, on the instance's own monotonic clock,
//! until when the holder counts itself active: the time it *sent* its last
//! successful renewal plus the lease length minus a margin. That is never
//! later than the expiry the database recorded, so an instance that is
//! frozen, cut off or slow stops writing before another may take over.

use std::time::{Duration, Instant};

/// The lease's timing, all derived from the takeover time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseTiming {
    /// How long a granted or renewed lease lasts on the database's clock.
    pub lease: Duration,
    /// How often the active renews and the standby tries to take the lease;
    /// also the longest wait for one database answer.
    pub every: Duration,
    /// How much sooner than the lease the active stops counting on it.
    pub margin: Duration,
}

impl LeaseTiming {
    /// The timing for a takeover within `takeover`: attempts every fifth of
    /// it, a lease of four fifths (so that lease plus one standby attempt
    /// fits), the active's own validity a fifth shorter than the lease.
    pub fn for_takeover(takeover: Duration) -> Self {
        let every = takeover / 5;
        Self {
            lease: takeover.saturating_sub(every),
            every,
            margin: every,
        }
    }
}

/// What the instance is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Waits for the lease; writes nothing.
    Standby,
    /// Holds the lease with this fencing `epoch`; may write until `until`.
    Active {
        /// The lease's epoch (incremented by every takeover).
        epoch: i64,
        /// The end of the validity on this instance's clock.
        until: Instant,
    },
}

/// What to ask the database.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Request {
    /// Take the lease if it has expired (a new epoch).
    Acquire,
    /// Extend the lease held with `epoch`.
    Renew {
        /// The epoch held.
        epoch: i64,
    },
}

/// The database's answer to a [`Request`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Answer {
    /// The lease is ours with this epoch.
    Granted {
        /// The epoch held now.
        epoch: i64,
    },
    /// Another instance holds it (or took it over).
    Refused,
    /// No answer (connection lost, time-out, error).
    Failed,
}

/// A change of role to act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The lease was taken: start the service.
    Activated {
        /// The new epoch.
        epoch: i64,
    },
    /// The lease is gone: stop writing at once, back to standby.
    Lost {
        /// The epoch that was held.
        epoch: i64,
        /// Why.
        cause: Loss,
    },
}

/// Why the lease was lost.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loss {
    /// The database says another instance holds it.
    TakenOver,
    /// No renewal succeeded in time.
    Expired,
}

/// The lease state machine.
#[derive(Debug, Clone)]
pub struct LeaseMachine {
    timing: LeaseTiming,
    role: Role,
    next_at: Instant,
    /// When the request in flight was sent.
    sent: Option<Instant>,
}

impl LeaseMachine {
    /// A standby that asks at once.
    pub fn new(timing: LeaseTiming, now: Instant) -> Self {
        Self {
            timing,
            role: Role::Standby,
            next_at: now,
            sent: None,
        }
    }

    /// The current role.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The timing.
    pub fn timing(&self) -> LeaseTiming {
        self.timing
    }

    /// The request to send now, if one is due and none is in flight.
    pub fn request(&mut self, now: Instant) -> Option<Request> {
        if self.sent.is_some() || now < self.next_at {
            return None;
        }
        self.sent = Some(now);
        Some(match self.role {
            Role::Standby => Request::Acquire,
            Role::Active { epoch, .. } => Request::Renew { epoch },
        })
    }

    /// The answer to the request in flight, received at `now`.
    pub fn answer(&mut self, answer: Answer, now: Instant) -> Option<Change> {
        let sent = self.sent.take()?;
        self.next_at = sent + self.timing.every;
        let valid = (sent + self.timing.lease).checked_sub(self.timing.margin);
        let change = match (self.role, answer) {
            (Role::Standby, Answer::Granted { epoch }) => match valid {
                // An answer that came too late to count on: not active; the
                // row expires on the database and is taken again then.
                Some(until) if until > now => {
                    self.role = Role::Active { epoch, until };
                    Some(Change::Activated { epoch })
                }
                _ => None,
            },
            (Role::Standby, _) => None,
            (Role::Active { epoch, until }, Answer::Granted { epoch: granted })
                if granted == epoch =>
            {
                let until = valid.map_or(until, |v| v.max(until));
                self.role = Role::Active { epoch, until };
                None
            }
            (Role::Active { epoch, .. }, Answer::Granted { .. } | Answer::Refused) => {
                self.role = Role::Standby;
                Some(Change::Lost {
                    epoch,
                    cause: Loss::TakenOver,
                })
            }
            (Role::Active { .. }, Answer::Failed) => None,
        };
        change.or_else(|| self.tick(now))
    }

    /// Checks the active's validity at `now`.
    pub fn tick(&mut self, now: Instant) -> Option<Change> {
        match self.role {
            Role::Active { epoch, until } if now >= until => {
                self.role = Role::Standby;
                Some(Change::Lost {
                    epoch,
                    cause: Loss::Expired,
                })
            }
            _ => None,
        }
    }

    /// When to call [`request`](Self::request) or [`tick`](Self::tick) next.
    pub fn next_deadline(&self) -> Instant {
        match self.role {
            Role::Active { until, .. } => self.next_at.min(until),
            Role::Standby => self.next_at,
        }
    }
}

#[cfg(test)]
#[path = "lease_tests.rs"]
mod tests;
