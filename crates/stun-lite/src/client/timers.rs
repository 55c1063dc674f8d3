//! The retransmission schedule (RFC 8489 §6.2.1) and overflow-safe deadlines.

use std::time::{Duration, Instant};

use super::ClientConfig;

/// No single wait is longer than this, whatever the configuration.
pub(super) const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);

/// How long to wait after the `sent`-th request: RTO doubled each time, the
/// last one `Rm × RTO`.
pub(super) fn wait_after(config: &ClientConfig, sent: u32) -> Duration {
    let wait = if sent >= config.max_transmissions {
        config.rto.checked_mul(config.last_wait_factor)
    } else {
        1u32.checked_shl(sent.saturating_sub(1))
            .and_then(|factor| config.rto.checked_mul(factor))
    };
    wait.unwrap_or(MAX_WAIT).min(MAX_WAIT)
}

/// `now + wait`, with `wait` capped at [`MAX_WAIT`] (so `Duration::MAX` means
/// "a day", never an overflow or a timer in the past).
pub(super) fn later(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait.min(MAX_WAIT)).unwrap_or(now)
}
