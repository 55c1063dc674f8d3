//! The gate every sink write passes: open only while this instance's lease
//! is valid on its own clock.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::engine::{PresenceCommand, PresenceSink, SinkError};

/// The write gate. Cloning shares it; without HA it is never consulted.
#[derive(Debug, Clone, Default)]
pub struct Fence(Arc<Mutex<Option<(i64, Instant)>>>);

impl Fence {
    /// A closed gate.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes may go out until `until` (the lease's validity with `epoch`).
    pub fn open_until(&self, epoch: i64, until: Instant) {
        *self.lock() = Some((epoch, until));
    }

    /// No write goes out any more.
    pub fn close(&self) {
        *self.lock() = None;
    }

    /// The epoch whose writes may go out at `now`, if any.
    pub fn allows(&self, now: Instant) -> Option<i64> {
        match *self.lock() {
            Some((epoch, until)) if now < until => Some(epoch),
            _ => None,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<(i64, Instant)>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A presence sink whose calls pass the [`Fence`] (checked just before each
/// call, on the monotonic clock): a closed gate fails the call without
/// sending anything.
#[derive(Debug, Clone)]
pub struct FencedSink<K> {
    inner: K,
    fence: Option<Fence>,
}

impl<K> FencedSink<K> {
    /// `inner` behind `fence`; `None` = no gate (no HA).
    pub fn new(inner: K, fence: Option<Fence>) -> Self {
        Self { inner, fence }
    }

    fn open(&self) -> bool {
        match &self.fence {
            None => true,
            Some(f) => f.allows(crate::engine::tokio_now()).is_some(),
        }
    }
}

/// Why a fenced call was not sent.
const FENCED: &str = "not sent: this instance no longer holds the HA lease";

impl<K: PresenceSink> PresenceSink for FencedSink<K> {
    async fn apply(&self, commands: &[PresenceCommand]) -> Vec<Result<(), SinkError>> {
        if !self.open() {
            return commands
                .iter()
                .map(|_| Err(SinkError::transient(FENCED)))
                .collect();
        }
        self.inner.apply(commands).await
    }

    async fn read_back(&self, users: &[String]) -> Result<Vec<(String, String)>, SinkError> {
        if !self.open() {
            return Ok(Vec::new());
        }
        self.inner.read_back(users).await
    }

    fn object_ids(&self) -> HashMap<String, String> {
        self.inner.object_ids()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_gate_is_open_until_the_validity_ends() {
        let fence = Fence::new();
        let t0 = Instant::now();
        assert_eq!(fence.allows(t0), None, "closed at first");
        fence.open_until(3, t0 + Duration::from_secs(2));
        assert_eq!(fence.allows(t0), Some(3));
        assert_eq!(fence.allows(t0 + Duration::from_secs(2)), None);
        fence.open_until(3, t0 + Duration::from_secs(4));
        fence.close();
        assert_eq!(fence.allows(t0), None);
    }

    #[tokio::test(start_paused = true)]
    async fn a_closed_gate_sends_nothing() {
        let sink = crate::engine::LogSink::quiet();
        let log = sink.clone();
        let fence = Fence::new();
        let fenced = FencedSink::new(sink, Some(fence.clone()));
        let mut engine = crate::engine::Engine::new(
            crate::engine::EngineSettings::default(),
            crate::engine::tokio_now(),
        );
        engine.add_extension(
            "1001",
            "alice@contoso.com",
            crate::engine::Mapping::default(),
        );
        engine.line_changed("1001", blf::LineState::Busy, crate::engine::tokio_now());
        let commands = engine.poll(crate::engine::tokio_now());
        let results = fenced.apply(&commands).await;
        assert!(results.iter().all(Result::is_err));
        assert!(log.lines().is_empty());
        fence.open_until(1, crate::engine::tokio_now() + Duration::from_secs(1));
        assert!(fenced.apply(&commands).await.iter().all(Result::is_ok));
        assert_eq!(log.lines().len(), 1);
        // Time passes without a renewal: closed again.
        tokio::time::advance(Duration::from_secs(1)).await;
        assert!(fenced.apply(&commands).await.iter().all(Result::is_err));
        assert_eq!(log.lines().len(), 1);
    }
}
