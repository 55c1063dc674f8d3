//! The index of every subscription's timer, by time.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Instant;

use super::Sub;

/// Subscription timers ordered by time. Kept in step with each
/// subscription's `timer` by [`TimerIndex::set`], the only way it changes.
#[derive(Debug, Default)]
pub(super) struct TimerIndex(BTreeSet<(Instant, u64)>);

impl TimerIndex {
    /// Sets subscription `id`'s `timer` to `at`, and the index with it.
    pub(super) fn set(&mut self, id: u64, timer: &mut Option<Instant>, at: Option<Instant>) {
        if *timer == at {
            return;
        }
        if let Some(old) = timer.take() {
            self.0.remove(&(old, id));
        }
        if let Some(t) = at {
            self.0.insert((t, id));
        }
        *timer = at;
    }

    /// The earliest timer.
    pub(super) fn first(&self) -> Option<Instant> {
        self.0.first().map(|(t, _)| *t)
    }

    /// The subscriptions whose timer is due at `now`, earliest first.
    pub(super) fn due(&self, now: Instant) -> Vec<u64> {
        self.0
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Whether the index holds exactly the subscriptions' timers (checked in
    /// debug builds).
    pub(super) fn matches(&self, subs: &BTreeMap<u64, Sub>) -> bool {
        let timers: BTreeSet<(Instant, u64)> = subs
            .iter()
            .filter_map(|(id, s)| Some((s.timer?, *id)))
            .collect();
        timers == self.0
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn the_timer_index_follows_every_change_of_a_timer() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut index = TimerIndex::default();
        let (mut a, mut b) = (None, None);
        index.set(1, &mut a, Some(at(30)));
        index.set(2, &mut b, Some(at(10)));
        assert_eq!(index.first(), Some(at(10)));
        assert_eq!(index.due(at(20)), vec![2]);
        // Moved later, then cleared: the old entries go with it.
        index.set(2, &mut b, Some(at(40)));
        assert_eq!(index.first(), Some(at(30)));
        assert_eq!(index.due(at(40)), vec![1, 2]);
        index.set(1, &mut a, None);
        assert_eq!((a, b), (None, Some(at(40))));
        assert_eq!(index.due(at(100)), vec![2]);
        index.set(2, &mut b, None);
        assert_eq!(index.first(), None);
    }
}
