//! The client-side request budget (sans-IO): a sliding-window log that keeps the client
//! under Graph's presence limit instead of running into it. Graph documents 1,500 requests
//! per 30 seconds per application per tenant on the presence pages (the newer limits page
//! says 10,000; the lower figure is the safe default).
//!
//! Reads and writes share one budget. [`BudgetGate`] puts writes first: a read takes a slot
//! only while no write waits for one, so reading presence back never delays setting it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::clock::Clock;

/// The budget's size: never more than [`requests`](Self::requests) in any
/// [`window`](Self::window). A `$batch` counts one per sub-request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct BudgetConfig {
    requests: u32,
    window: Duration,
}

impl BudgetConfig {
    /// `requests` in any `window` (a `requests` of 0 is treated as 1).
    pub const fn new(requests: u32, window: Duration) -> Self {
        BudgetConfig { requests, window }
    }

    /// Requests allowed in any window.
    pub const fn requests(&self) -> u32 {
        self.requests
    }

    /// Window length.
    pub const fn window(&self) -> Duration {
        self.window
    }
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
pub(crate) struct RequestBudget {
    config: BudgetConfig,
    sent: VecDeque<Instant>,
}

impl RequestBudget {
    /// A fresh budget. A `requests` of 0 is treated as 1.
    pub(crate) fn new(config: BudgetConfig) -> Self {
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
    pub(crate) fn try_acquire(&mut self, now: Instant, cost: u32) -> Result<(), Instant> {
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

/// Which requests go first when both wait for the budget.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Priority {
    /// Sets something (presence, status message, `$batch`): goes first.
    Write,
    /// Only reads (users, presence): waits behind every waiting write.
    Read,
}

impl Priority {
    /// The priority of a Graph operation, by its name.
    pub(crate) fn of(op: &str) -> Priority {
        match op {
            "getUser" | "getPresence" | "getPresencesByUserId" => Priority::Read,
            _ => Priority::Write,
        }
    }
}

/// The shared budget with writes first (see the module docs).
#[derive(Debug)]
pub(crate) struct BudgetGate {
    budget: Mutex<RequestBudget>,
    /// Writes inside [`BudgetGate::acquire`] that have no slot yet.
    waiting_writes: AtomicUsize,
    /// Told when `waiting_writes` drops to zero.
    writes_drained: tokio::sync::Notify,
}

/// Counts a write as waiting for as long as it lives.
struct WaitingWrite<'a>(&'a BudgetGate);

impl Drop for WaitingWrite<'_> {
    fn drop(&mut self) {
        if self.0.waiting_writes.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.writes_drained.notify_waiters();
        }
    }
}

impl BudgetGate {
    pub(crate) fn new(config: BudgetConfig) -> Self {
        BudgetGate {
            budget: Mutex::new(RequestBudget::new(config)),
            waiting_writes: AtomicUsize::new(0),
            writes_drained: tokio::sync::Notify::new(),
        }
    }

    /// Waits until `cost` slots are taken for a request of `priority`. A read checks for
    /// waiting writes right before it takes slots (nothing is awaited in between), so a
    /// write waiting when a slot frees up always gets it first.
    pub(crate) async fn acquire(&self, clock: &dyn Clock, cost: u32, priority: Priority) {
        let _waiting = (priority == Priority::Write).then(|| {
            self.waiting_writes.fetch_add(1, Ordering::AcqRel);
            WaitingWrite(self)
        });
        loop {
            if priority == Priority::Read {
                let drained = self.writes_drained.notified();
                tokio::pin!(drained);
                // Registered before the check: a drain between the two is not missed.
                drained.as_mut().enable();
                if self.waiting_writes.load(Ordering::Acquire) > 0 {
                    drained.await;
                    continue;
                }
            }
            let now = clock.now();
            let taken = self
                .budget
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_acquire(now, cost);
            let wait = match taken {
                Ok(()) => return,
                Err(at) => at.saturating_duration_since(now),
            };
            tracing::debug!(
                wait_ms = wait.as_millis() as u64,
                ?priority,
                "request budget exhausted; waiting"
            );
            clock.sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::SystemClock;
    use std::sync::Arc;

    #[tokio::test(start_paused = true)]
    async fn a_read_waits_behind_a_waiting_write() {
        let s = Duration::from_secs(10);
        let gate = Arc::new(BudgetGate::new(BudgetConfig {
            requests: 1,
            window: s,
        }));
        let t0 = tokio::time::Instant::now();
        gate.acquire(&SystemClock, 1, Priority::Write).await;
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        // The read asks first, the write second: the write still goes first.
        for (priority, name) in [(Priority::Read, "read"), (Priority::Write, "write")] {
            let (gate, tx) = (gate.clone(), tx.clone());
            tokio::spawn(async move {
                gate.acquire(&SystemClock, 1, priority).await;
                let _ = tx.send((name, t0.elapsed()));
            });
            tokio::task::yield_now().await;
        }
        assert_eq!(rx.recv().await, Some(("write", s)));
        assert_eq!(rx.recv().await, Some(("read", 2 * s)));
    }

    #[tokio::test(start_paused = true)]
    async fn a_read_goes_at_once_when_no_write_waits() {
        let gate = BudgetGate::new(BudgetConfig::default());
        let t0 = tokio::time::Instant::now();
        gate.acquire(&SystemClock, 1, Priority::Write).await;
        gate.acquire(&SystemClock, 1, Priority::Read).await;
        assert_eq!(t0.elapsed(), Duration::ZERO);
        assert_eq!(Priority::of("getPresencesByUserId"), Priority::Read);
        assert_eq!(Priority::of("setPresence"), Priority::Write);
    }

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
