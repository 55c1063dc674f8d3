//! Reconnect delays, as a pure function of the number of failures in a row.

use std::time::Duration;

/// Reconnect delays: [`initial`](Self::initial), doubled after each failed
/// attempt up to [`max`](Self::max); back to `initial` once a connection
/// reached `Authenticated`. Sans-IO: the caller counts the failures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Backoff {
    /// The delay after the first failure (default 1 s).
    pub initial: Duration,
    /// The longest delay (default 30 s).
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            initial: Duration::from_secs(1),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// Delays from `initial`, doubling, to at most `max`.
    pub fn new(initial: Duration, max: Duration) -> Self {
        Self { initial, max }
    }

    /// The delay before the next attempt after `failures` failures in a row:
    /// 1 → `initial`, 2 → 2 × `initial`, 3 → 4 × `initial`, ..., never more
    /// than `max`. 0 counts as 1.
    pub fn delay(&self, failures: u32) -> Duration {
        let doublings = failures.saturating_sub(1).min(31);
        self.initial
            .checked_mul(1u32 << doublings)
            .unwrap_or(self.max)
            .min(self.max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::default();
        let delays: Vec<u64> = (1..=8).map(|n| b.delay(n).as_secs()).collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 30, 30, 30]);
    }

    #[test]
    fn zero_failures_counts_as_one() {
        assert_eq!(Backoff::default().delay(0), S);
    }

    #[test]
    fn huge_counts_do_not_overflow() {
        let b = Backoff {
            initial: Duration::from_secs(u64::MAX / 4),
            max: Duration::MAX,
        };
        assert_eq!(b.delay(u32::MAX), Duration::MAX);
        assert_eq!(Backoff::default().delay(u32::MAX), 30 * S);
    }

    #[test]
    fn initial_above_max_is_capped() {
        let b = Backoff {
            initial: 10 * S,
            max: 3 * S,
        };
        assert_eq!(b.delay(1), 3 * S);
    }

    #[test]
    fn sub_second_steps() {
        let b = Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(350),
        };
        let delays: Vec<u128> = (1..=4).map(|n| b.delay(n).as_millis()).collect();
        assert_eq!(delays, [100, 200, 350, 350]);
    }
}
