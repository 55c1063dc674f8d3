//! Holding a presence: when to re-send `setPresence` (sans-IO).
//!
//! Two clocks run on an app session (setPresence page, "Manage presence state" concept page):
//! the **expiration** (`expirationDuration`, PT5M..PT4H; then the session is gone and the user
//! may show Offline) and, for `Available` only, a **five-minute timeout** after which the state
//! fades to `Available/AvailableInactive` and then `Away`. To hold a state, re-send before the
//! earlier of the two.

use crate::types::{ObjectId, PresenceState, AVAILABLE_TIMEOUT, DEFAULT_EXPIRATION};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// How long after a successful `setPresence` it must be re-sent to hold `state`:
/// the expiration (or, for `Available`, the 5-minute timeout if earlier) minus a safety
/// margin of a fifth, at most one minute.
pub fn refresh_interval(state: PresenceState, expiration: Option<Duration>) -> Duration {
    let mut limit = expiration.unwrap_or(DEFAULT_EXPIRATION);
    if state == PresenceState::Available {
        limit = limit.min(AVAILABLE_TIMEOUT);
    }
    limit - (limit / 5).min(Duration::from_secs(60))
}

#[derive(Debug, Clone)]
struct Held {
    state: PresenceState,
    expiration: Option<Duration>,
    next_at: Instant,
}

/// Tracks the presences the application holds and says which are due for a re-send.
///
/// ```
/// use graph_presence::{ObjectId, PresenceKeeper, PresenceState};
/// use std::time::{Duration, Instant};
///
/// let mut keeper = PresenceKeeper::new();
/// let user = ObjectId::parse("aaaaaaaa-0000-4000-8000-000000000001").unwrap();
/// let t0 = Instant::now();
/// keeper.hold(user.clone(), PresenceState::BusyInACall, Some(Duration::from_secs(3600)), t0);
/// assert_eq!(keeper.due(t0).len(), 1); // send it now
/// keeper.sent(&user, t0);
/// assert!(keeper.due(t0 + Duration::from_secs(600)).is_empty());
/// assert_eq!(keeper.next_deadline(), Some(t0 + Duration::from_secs(3540)));
/// ```
#[derive(Debug, Clone, Default)]
pub struct PresenceKeeper {
    held: HashMap<ObjectId, Held>,
}

impl PresenceKeeper {
    /// Nothing held.
    pub fn new() -> Self {
        Self::default()
    }

    /// Wants `state` held for `user`; it is due at once.
    pub fn hold(
        &mut self,
        user: ObjectId,
        state: PresenceState,
        expiration: Option<Duration>,
        now: Instant,
    ) {
        self.held.insert(
            user,
            Held {
                state,
                expiration,
                next_at: now,
            },
        );
    }

    /// Stops holding (the caller clears the presence). Returns whether it was held.
    pub fn release(&mut self, user: &ObjectId) -> bool {
        self.held.remove(user).is_some()
    }

    /// Records a successful send at `now`; the next one is due after [`refresh_interval`].
    pub fn sent(&mut self, user: &ObjectId, now: Instant) {
        if let Some(h) = self.held.get_mut(user) {
            h.next_at = now + refresh_interval(h.state, h.expiration);
        }
    }

    /// Records a failed send; try again at `now + retry_in`.
    pub fn failed(&mut self, user: &ObjectId, now: Instant, retry_in: Duration) {
        if let Some(h) = self.held.get_mut(user) {
            h.next_at = now + retry_in;
        }
    }

    /// Operations due at `now`.
    pub fn due(&self, now: Instant) -> Vec<(ObjectId, PresenceState, Option<Duration>)> {
        let mut v: Vec<_> = self
            .held
            .iter()
            .filter(|(_, h)| h.next_at <= now)
            .map(|(u, h)| (u.clone(), h.state, h.expiration))
            .collect();
        v.sort_by(|a, b| a.0.cmp(&b.0));
        v
    }

    /// The earliest instant something is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.held.values().map(|h| h.next_at).min()
    }

    /// What is held for `user`.
    pub fn held(&self, user: &ObjectId) -> Option<PresenceState> {
        self.held.get(user).map(|h| h.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals() {
        let m = Duration::from_secs(60);
        // Available: the 5-minute timeout wins over a long expiration.
        assert_eq!(
            refresh_interval(PresenceState::Available, Some(240 * m)),
            4 * m
        );
        assert_eq!(
            refresh_interval(PresenceState::BusyInACall, Some(240 * m)),
            239 * m
        );
        assert_eq!(refresh_interval(PresenceState::BusyInACall, None), 4 * m);
        assert_eq!(refresh_interval(PresenceState::Away, Some(10 * m)), 9 * m);
        for s in PresenceState::ALL {
            for e in [5u64, 30, 240] {
                let exp = Duration::from_secs(e * 60);
                let i = refresh_interval(s, Some(exp));
                assert!(
                    i < exp
                        && i < exp.min(if s == PresenceState::Available {
                            5 * m
                        } else {
                            exp
                        }) + Duration::from_secs(1)
                );
            }
        }
    }
}
