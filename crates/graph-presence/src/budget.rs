//! The client-side request budget (sans-IO): a sliding-window log that keeps the client
//! under Graph's presence limit instead of running into it. Graph documents 1,500 requests
//! per 30 seconds per application per tenant on the presence pages (the newer limits page
//! says 10,000; the lower figure is the safe default).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

/// The budget's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BudgetConfig {
    /// Requests allowed in any window.
    pub requests: u32,
    /// Window length.
    pub window: Duration,
}

impl Default for BudgetConfig {
    fn default() -> Self {
        BudgetConfig {
            requests: 1500,
            window: Duration::from_secs(30),
        }
    }
}

/// A sliding-window request budget: never more than `requests` sends in any `window`.
#[derive(Debug, Clone)]
pub struct RequestBudget {
    config: BudgetConfig,
    sent: VecDeque<Instant>,
}

impl RequestBudget {
    /// A fresh budget. A `requests` of 0 is treated as 1.
    pub fn new(config: BudgetConfig) -> Self {
        RequestBudget {
            config: BudgetConfig {
                requests: config.requests.max(1),
                window: config.window,
            },
            sent: VecDeque::new(),
        }
    }

    /// Takes `cost` slots at `now`, or returns the instant from which it will fit.
    /// A cost above the whole budget is clamped to the budget (it then needs an empty window).
    pub fn try_acquire(&mut self, now: Instant, cost: u32) -> Result<(), Instant> {
        let limit = self.config.requests as usize;
        let cost = (cost as usize).clamp(1, limit);
        while self
            .sent
            .front()
            .is_some_and(|t| *t + self.config.window <= now)
        {
            self.sent.pop_front();
        }
        if self.sent.len() + cost <= limit {
            self.sent.extend(std::iter::repeat_n(now, cost));
            return Ok(());
        }
        // The slot that must leave the window before `cost` more fit.
        let must_leave = self.sent.len() + cost - limit - 1;
        let t = self.sent.get(must_leave).copied().unwrap_or(now);
        Err(t + self.config.window)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sliding_window() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut b = RequestBudget::new(BudgetConfig {
            requests: 3,
            window: s,
        });
        assert!(b.try_acquire(t0, 1).is_ok());
        assert!(b.try_acquire(t0 + s / 2, 2).is_ok());
        assert_eq!(b.try_acquire(t0 + s / 2, 1), Err(t0 + s));
        assert!(b.try_acquire(t0 + s, 1).is_ok());
        assert_eq!(b.try_acquire(t0 + s, 2), Err(t0 + s / 2 + s));
        // Oversized costs are clamped and wait for an empty window.
        assert_eq!(b.try_acquire(t0 + s, 10), Err(t0 + 2 * s));
        assert!(b.try_acquire(t0 + 2 * s, 10).is_ok());
    }
}
