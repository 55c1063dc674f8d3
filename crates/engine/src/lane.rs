//! One sink's queue as a sans-IO machine: views in, writes out, with
//! per-person coalescing, ordering, retry and backoff, replay, and an
//! optional periodic re-send ([`LaneConfig::refresh`]).
//!
//! Drive it like this (the runtime does):
//! 1. feed each change: [`Lane::handle_view`];
//! 2. take writes: [`Lane::poll_write`] until `None`; run them;
//! 3. report each outcome: [`Lane::write_finished`];
//! 4. sleep until [`Lane::poll_timeout`], then [`Lane::handle_timeout`].
//!
//! Time only comes in as arguments, so tests move it by hand.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use crate::sink::SinkError;
use crate::view::PersonId;

/// A lane's pace and backoff. [`LaneConfig::default`] gives the defaults;
/// the `with_*` methods (or the public fields) change them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct LaneConfig {
    /// Most writes in one batch.
    pub max_batch: usize,
    /// First wait after a failure; it doubles with each failure in a row.
    pub backoff_base: Duration,
    /// Longest wait between attempts.
    pub backoff_max: Duration,
    /// How long changes are gathered before a batch is written (zero: at
    /// once). A sink that people read rather than one on a call path (a
    /// table) writes far fewer, larger transactions this way; a full batch
    /// ([`max_batch`](Self::max_batch)) goes at once.
    pub linger: Duration,
    /// Every this long, every person's current value is written again
    /// ([`WriteReason::Replay`]), for a receiver that was down or lost
    /// what it held (a webhook). `None` (the default): never. People with
    /// a write in flight or waiting for a retry are left to that write; a
    /// paused lane replays everyone when the pause ends anyway.
    pub refresh: Option<Duration>,
}

impl Default for LaneConfig {
    fn default() -> Self {
        Self {
            max_batch: 100,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            linger: Duration::ZERO,
            refresh: None,
        }
    }
}

impl LaneConfig {
    /// Sets [`max_batch`](Self::max_batch).
    pub fn with_max_batch(mut self, max_batch: usize) -> Self {
        self.max_batch = max_batch;
        self
    }

    /// Sets [`backoff_base`](Self::backoff_base) and
    /// [`backoff_max`](Self::backoff_max).
    pub fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// Sets [`linger`](Self::linger).
    pub fn with_linger(mut self, linger: Duration) -> Self {
        self.linger = linger;
        self
    }

    /// Sets [`refresh`](Self::refresh).
    pub fn with_refresh(mut self, refresh: Option<Duration>) -> Self {
        self.refresh = refresh;
        self
    }

    /// The wait after `failures` failures in a row (at least one):
    /// `backoff_base × 2^(failures−1)`, at most `backoff_max`, and never
    /// shorter than the server's `retry_after`.
    pub fn backoff(&self, failures: u32, retry_after: Option<Duration>) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1));
        let wait = self
            .backoff_base
            .saturating_mul(factor)
            .min(self.backoff_max);
        wait.max(retry_after.unwrap_or(Duration::ZERO))
    }
}

/// Why a write is made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WriteReason {
    /// The person's view changed.
    Change,
    /// An earlier write for the person failed.
    Retry,
    /// The sink started or reconnected, or the periodic re-send
    /// ([`LaneConfig::refresh`]) is due: it gets every current view.
    Replay,
}

impl WriteReason {
    /// Lowercase name, for logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Change => "change",
            Self::Retry => "retry",
            Self::Replay => "replay",
        }
    }
}

/// One thing for a sink to hold for one person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write<H> {
    /// For whom.
    pub person: PersonId,
    /// What to hold.
    pub held: H,
    /// Why now.
    pub reason: WriteReason,
    /// When the first change this write carries was observed (the start of
    /// the source→sink latency).
    pub caused_at: Instant,
}

#[derive(Debug, Clone)]
struct Slot<H> {
    /// What the sink should hold (`None`: leave alone). Only the latest
    /// counts: one pending value per person, however many changes came.
    latest: Option<H>,
    /// When the first change not yet sent was observed.
    pending_since: Option<Instant>,
    /// What the sink confirmed holding; `None` = not known.
    confirmed: Option<H>,
    /// The value in flight and when its first change was observed.
    in_flight: Option<(H, Instant)>,
    retry_at: Option<Instant>,
    failures: u32,
    /// In [`Lane::ready`].
    queued: bool,
    reason: WriteReason,
}

impl<H: Clone + Eq> Slot<H> {
    fn wants_write(&self) -> bool {
        self.in_flight.is_none()
            && self.retry_at.is_none()
            && self.latest.is_some()
            && self.latest != self.confirmed
    }
}

/// One sink's queue: views in, writes out, with per-person coalescing,
/// ordering, retry and backoff, and replay.
///
/// Drive it like this (the runtime does):
/// 1. feed each change: [`handle_view`](Self::handle_view);
/// 2. take writes: [`poll_write`](Self::poll_write) until `None`; run them;
/// 3. report each outcome: [`write_finished`](Self::write_finished);
/// 4. sleep until [`poll_timeout`](Self::poll_timeout), then
///    [`handle_timeout`](Self::handle_timeout).
///
/// Time only comes in as arguments, so tests move it by hand. Memory is one
/// slot per person, whatever the rate of changes.
#[derive(Debug, Clone)]
pub struct Lane<H> {
    config: LaneConfig,
    slots: BTreeMap<PersonId, Slot<H>>,
    /// People with a write to make, oldest first.
    ready: VecDeque<PersonId>,
    /// Retries: (when, who).
    wake: BTreeSet<(Instant, PersonId)>,
    /// The sink is disconnected: nothing is written before this.
    paused_until: Option<Instant>,
    outages: u32,
    in_flight: usize,
    /// Changes are gathered until then before a batch is written
    /// ([`LaneConfig::linger`]).
    gather_until: Option<Instant>,
    /// The next periodic re-send ([`LaneConfig::refresh`]); set by the
    /// first call that brings the time.
    refresh_at: Option<Instant>,
}

impl<H: Clone + Eq> Lane<H> {
    /// An empty lane.
    pub fn new(config: LaneConfig) -> Self {
        Self {
            config,
            slots: BTreeMap::new(),
            ready: VecDeque::new(),
            wake: BTreeSet::new(),
            paused_until: None,
            outages: 0,
            in_flight: 0,
            gather_until: None,
            refresh_at: None,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &LaneConfig {
        &self.config
    }

    /// `person`'s view changed and the sink's policy wants `desired` for it
    /// (`None`: leave alone), observed at `at`. Replaces whatever was
    /// pending for the person; written at once unless a write for them is
    /// in flight or waiting for a retry.
    pub fn handle_view(&mut self, person: &PersonId, desired: Option<H>, at: Instant) {
        let slot = self.slots.entry(person.clone()).or_insert_with(|| Slot {
            latest: None,
            pending_since: None,
            confirmed: None,
            in_flight: None,
            retry_at: None,
            failures: 0,
            queued: false,
            reason: WriteReason::Change,
        });
        if slot.latest == desired {
            return;
        }
        // The first change not yet sent starts the latency clock.
        slot.pending_since.get_or_insert(at);
        slot.latest = desired;
        Self::enqueue(&mut self.ready, person, slot);
    }

    fn enqueue(ready: &mut VecDeque<PersonId>, person: &PersonId, slot: &mut Slot<H>) {
        if !slot.queued && slot.wants_write() {
            slot.queued = true;
            ready.push_back(person.clone());
        }
    }

    /// The next batch to write, if any (at most one write per person in
    /// flight; at most [`LaneConfig::max_batch`] writes). Call until `None`.
    pub fn poll_write(&mut self, now: Instant) -> Option<Vec<Write<H>>> {
        self.handle_timeout(now);
        if self.paused_until.is_some() || self.gathering(now) {
            return None;
        }
        let mut batch = Vec::new();
        while batch.len() < self.config.max_batch.max(1) {
            let Some(person) = self.ready.pop_front() else {
                break;
            };
            let Some(slot) = self.slots.get_mut(&person) else {
                continue;
            };
            slot.queued = false;
            if !slot.wants_write() {
                continue;
            }
            let Some(held) = slot.latest.clone() else {
                continue;
            };
            let caused_at = slot.pending_since.take().unwrap_or(now);
            slot.in_flight = Some((held.clone(), caused_at));
            self.in_flight += 1;
            batch.push(Write {
                person,
                held,
                reason: slot.reason,
                caused_at,
            });
        }
        if self.ready.is_empty() {
            self.gather_until = None;
        }
        (!batch.is_empty()).then_some(batch)
    }

    /// Whether changes are still being gathered for the next batch
    /// ([`LaneConfig::linger`]); starts the gathering at the first one.
    fn gathering(&mut self, now: Instant) -> bool {
        if self.config.linger.is_zero() || self.ready.is_empty() {
            return false;
        }
        if self.ready.len() >= self.config.max_batch.max(1) {
            return false;
        }
        let until = *self.gather_until.get_or_insert(now + self.config.linger);
        now < until
    }

    /// The outcome of `person`'s write in flight. On failure the write is
    /// retried after the returned wait, with the then latest value; a
    /// [`SinkError::Disconnected`] pauses the whole lane that long and then
    /// replays every person. Unknown outcomes are ignored.
    pub fn write_finished(
        &mut self,
        person: &PersonId,
        result: Result<(), &SinkError>,
        now: Instant,
    ) -> Option<Duration> {
        let slot = self.slots.get_mut(person)?;
        let (held, caused_at) = slot.in_flight.take()?;
        self.in_flight = self.in_flight.saturating_sub(1);
        if result.is_err() {
            // The retry carries the older change's time.
            let since = slot.pending_since.map_or(caused_at, |t| t.min(caused_at));
            slot.pending_since = Some(since);
        }
        match result {
            Ok(()) => {
                slot.confirmed = Some(held);
                slot.failures = 0;
                slot.reason = WriteReason::Change;
                self.outages = 0;
                Self::enqueue(&mut self.ready, person, slot);
                None
            }
            Err(SinkError::Disconnected { .. }) => {
                self.outages = self.outages.saturating_add(1);
                let wait = self.config.backoff(self.outages, None);
                self.paused_until = Some(now + wait);
                self.wake.clear();
                self.replay_all();
                Some(wait)
            }
            Err(error) => {
                slot.failures = slot.failures.saturating_add(1);
                // What the sink holds is not known now.
                slot.confirmed = None;
                slot.reason = WriteReason::Retry;
                let wait = self.config.backoff(slot.failures, error.retry_after());
                if let Some(earlier) = slot.retry_at.replace(now + wait) {
                    self.wake.remove(&(earlier, person.clone()));
                }
                self.wake.insert((now + wait, person.clone()));
                Some(wait)
            }
        }
    }

    /// The sink started or reconnected: every person's current value is
    /// written again (retry waits are cut short).
    pub fn replay(&mut self) {
        self.wake.clear();
        self.replay_all();
    }

    fn replay_all(&mut self) {
        for (person, slot) in &mut self.slots {
            slot.confirmed = None;
            slot.retry_at = None;
            if slot.latest.is_some() {
                slot.reason = WriteReason::Replay;
            }
            Self::enqueue(&mut self.ready, person, slot);
        }
    }

    /// When [`handle_timeout`](Self::handle_timeout) has something to do
    /// (a retry, the end of a pause or of a gathering, the periodic
    /// re-send).
    pub fn poll_timeout(&self) -> Option<Instant> {
        let retry = self.wake.first().map(|(at, _)| *at);
        // Only a gathering that a poll could end: not while a write is in
        // flight (the driver polls again when it returns) or paused.
        let gathered = self.gather_until.filter(|_| {
            !self.ready.is_empty() && self.in_flight == 0 && self.paused_until.is_none()
        });
        [retry, self.paused_until, gathered, self.refresh_at]
            .into_iter()
            .flatten()
            .min()
    }

    /// Time passed: due retries become ready, a pause that is over ends,
    /// a due periodic re-send queues every person.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.paused_until.is_some_and(|at| at <= now) {
            self.paused_until = None;
        }
        self.refresh_due(now);
        while let Some((at, person)) = self.wake.first().cloned() {
            if at > now {
                break;
            }
            self.wake.remove(&(at, person.clone()));
            if let Some(slot) = self.slots.get_mut(&person) {
                slot.retry_at = None;
                Self::enqueue(&mut self.ready, &person, slot);
            }
        }
    }

    /// Starts the periodic re-send's clock at the first call that brings
    /// the time; when it is due, queues every person whose value is
    /// confirmed (the others have a write coming) and sets the next one.
    fn refresh_due(&mut self, now: Instant) {
        let Some(period) = self.config.refresh.filter(|p| !p.is_zero()) else {
            return;
        };
        let due = *self.refresh_at.get_or_insert(now + period);
        if due > now {
            return;
        }
        // From now, not from `due`: a late timer does not bunch re-sends.
        self.refresh_at = Some(now + period);
        if self.paused_until.is_some() {
            return;
        }
        for (person, slot) in &mut self.slots {
            if slot.in_flight.is_some() || slot.retry_at.is_some() || slot.latest.is_none() {
                continue;
            }
            if slot.confirmed == slot.latest {
                slot.confirmed = None;
                slot.reason = WriteReason::Replay;
            }
            Self::enqueue(&mut self.ready, person, slot);
        }
    }

    /// What the sink confirmed holding for `person`, if known.
    pub fn held(&self, person: &PersonId) -> Option<&H> {
        self.slots.get(person)?.confirmed.as_ref()
    }

    /// People with a write waiting (ready or for a retry).
    pub fn queue_depth(&self) -> usize {
        self.ready.len() + self.wake.len()
    }

    /// While changes are gathered for a batch ([`LaneConfig::linger`]): how
    /// many more people may change before the batch is full and goes at
    /// once. Until then, or [`poll_timeout`](Self::poll_timeout), new
    /// changes can wait, so a driver need not wake for each one. `None`:
    /// not gathering.
    pub fn gathering_room(&self) -> Option<usize> {
        let gathering = self.gather_until.is_some()
            && !self.ready.is_empty()
            && self.in_flight == 0
            && self.paused_until.is_none();
        gathering.then(|| {
            self.config
                .max_batch
                .max(1)
                .saturating_sub(self.ready.len())
                .max(1)
        })
    }

    /// Writes in flight.
    pub fn in_flight(&self) -> usize {
        self.in_flight
    }

    /// Whether the lane is paused after a lost connection.
    pub fn is_paused(&self) -> bool {
        self.paused_until.is_some()
    }

    /// Nothing to write, nothing in flight, no retry or pause pending.
    pub fn is_idle(&self) -> bool {
        self.in_flight == 0
            && self.wake.is_empty()
            && self.paused_until.is_none()
            && self
                .ready
                .iter()
                .all(|p| self.slots.get(p).is_none_or(|s| !s.wants_write()))
    }
}

#[cfg(test)]
#[path = "lane_tests.rs"]
mod tests;
