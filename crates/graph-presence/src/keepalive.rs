//! Holding a presence: when to re-send `setPresence`.
//!
//! Two clocks run on an app session (setPresence page, "Manage presence state" concept page):
//! the **expiration** (`expirationDuration`, PT5M..PT4H; then the session is gone and the user
//! may show Offline) and, for `Available` only, a **five-minute timeout** after which the state
//! fades to `Available/AvailableInactive` and then `Away`. To hold a state, re-send before the
//! earlier of the two.

use crate::types::{PresenceState, AVAILABLE_TIMEOUT, DEFAULT_EXPIRATION};
use std::time::Duration;

/// How long after a successful `setPresence` it must be re-sent to hold `state`:
/// the expiration (or, for `Available`, the 5-minute timeout if earlier) minus a safety
/// margin of a fifth, at most one minute.
///
/// ```
/// use graph_presence::{refresh_interval, PresenceState};
/// use std::time::Duration;
///
/// let hour = Some(Duration::from_secs(3600));
/// assert_eq!(refresh_interval(PresenceState::BusyInACall, hour), Duration::from_secs(3540));
/// // An app-set Available fades after 5 minutes, whatever the expiration.
/// assert_eq!(refresh_interval(PresenceState::Available, hour), Duration::from_secs(240));
/// ```
pub fn refresh_interval(state: PresenceState, expiration: Option<Duration>) -> Duration {
    let mut limit = expiration.unwrap_or(DEFAULT_EXPIRATION);
    if state == PresenceState::Available {
        limit = limit.min(AVAILABLE_TIMEOUT);
    }
    limit - (limit / 5).min(Duration::from_secs(60))
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
