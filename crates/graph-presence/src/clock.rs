//! Time as a dependency: the client reads the time and sleeps only through a [`Clock`], so
//! tests can run retries, `Retry-After` waits, budget waits and token renewal in virtual time.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// A boxed sleep future.
pub type Sleep = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// A source of time and sleeps.
pub trait Clock: Send + Sync + fmt::Debug + 'static {
    /// The current instant.
    fn now(&self) -> Instant;
    /// A future that completes after `d`.
    fn sleep(&self, d: Duration) -> Sleep;
}

/// The real clock (tokio timers).
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> Instant {
        tokio::time::Instant::now().into_std()
    }
    fn sleep(&self, d: Duration) -> Sleep {
        Box::pin(tokio::time::sleep(d))
    }
}

type Hook = Box<dyn Fn(Duration) + Send + Sync>;

struct ManualInner {
    base: Instant,
    offset: Duration,
    sleeps: Vec<Duration>,
    hooks: Vec<Hook>,
}

/// A virtual clock for tests: `sleep(d)` returns at once after moving the clock forward by
/// `d` and recording it, and calls the hooks (e.g. to move an emulator's clock along).
#[derive(Clone)]
pub struct ManualClock {
    inner: Arc<Mutex<ManualInner>>,
}

impl fmt::Debug for ManualClock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let g = self.lock();
        f.debug_struct("ManualClock")
            .field("offset", &g.offset)
            .field("sleeps", &g.sleeps.len())
            .finish()
    }
}

impl Default for ManualClock {
    fn default() -> Self {
        Self::new()
    }
}

impl ManualClock {
    /// A clock starting at the current instant.
    pub fn new() -> Self {
        ManualClock {
            inner: Arc::new(Mutex::new(ManualInner {
                base: Instant::now(),
                offset: Duration::ZERO,
                sleeps: Vec::new(),
                hooks: Vec::new(),
            })),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, ManualInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Calls `hook(d)` whenever the clock moves forward by `d`.
    pub fn on_advance(&self, hook: impl Fn(Duration) + Send + Sync + 'static) {
        self.lock().hooks.push(Box::new(hook));
    }

    /// Moves the clock forward (without recording a sleep).
    pub fn advance(&self, d: Duration) {
        let mut g = self.lock();
        g.offset += d;
        for h in &g.hooks {
            h(d);
        }
    }

    /// Every sleep requested so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.lock().sleeps.clone()
    }

    /// Total virtual time elapsed.
    pub fn elapsed(&self) -> Duration {
        self.lock().offset
    }
}

impl Clock for ManualClock {
    fn now(&self) -> Instant {
        let g = self.lock();
        g.base + g.offset
    }

    fn sleep(&self, d: Duration) -> Sleep {
        {
            let mut g = self.lock();
            g.sleeps.push(d);
        }
        self.advance(d);
        Box::pin(tokio::task::yield_now())
    }
}
