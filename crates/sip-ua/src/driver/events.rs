//! The bounded hand-over of events from the driver task to its reader.
//!
//! The driver never waits for the reader: the socket is always read and
//! answered, so a slow reader never makes the PBX retransmit. The channel
//! holds at most `capacity` events; when it is full:
//! - a NOTIFY is kept aside, one per subscription (user and package): a newer
//!   NOTIFY for the same subscription replaces the one kept (counted in
//!   [`EventStats::notifies_replaced`]); NOTIFY bodies are full state, so the
//!   newest one says all the reader needs;
//! - any other event waits in a backlog of at most `capacity` events (counted
//!   in [`EventStats::delayed`]); when that is full too, the oldest waiting
//!   event is dropped (counted in [`EventStats::dropped`]).
//!
//! Waiting events go out, oldest first, as soon as the reader makes room.
//! Memory is therefore bounded by twice the capacity plus one NOTIFY per
//! subscription, however long the reader stops.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::sync::mpsc::error::TrySendError;

use crate::config::EventPackage;
use crate::ua::{Event, Notify};

/// The receiving end of the driver's events ([`spawn`](super::spawn)).
pub type EventReceiver = mpsc::Receiver<Event>;

/// What the driver did with events its reader was not ready for
/// ([`UaHandle::event_stats`](super::UaHandle::event_stats)); counts since the start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct EventStats {
    /// Events that found the channel full and waited in the driver.
    pub delayed: u64,
    /// NOTIFYs replaced, while waiting, by a newer NOTIFY for the same subscription.
    pub notifies_replaced: u64,
    /// Events dropped because the backlog was full as well.
    pub dropped: u64,
    /// Events waiting in the driver now (not counting the channel).
    pub waiting: u64,
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    delayed: AtomicU64,
    notifies_replaced: AtomicU64,
    dropped: AtomicU64,
    waiting: AtomicU64,
}

impl Counters {
    pub(crate) fn snapshot(&self) -> EventStats {
        EventStats {
            delayed: self.delayed.load(Ordering::Relaxed),
            notifies_replaced: self.notifies_replaced.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            waiting: self.waiting.load(Ordering::Relaxed),
        }
    }
}

/// Reads a user agent's [`EventStats`] without its
/// [`UaHandle`](super::UaHandle) (from [`UaHandle::event_stats_reader`](super::UaHandle::event_stats_reader)),
/// e.g. for a metrics exporter. Cheap to clone; after the user agent
/// stopped it keeps showing the last counts.
#[derive(Debug, Clone)]
pub struct EventStatsReader(Arc<Counters>);

impl EventStatsReader {
    pub(crate) fn new(counters: Arc<Counters>) -> Self {
        Self(counters)
    }

    /// The counts now.
    pub fn get(&self) -> EventStats {
        self.0.snapshot()
    }
}

type SubKey = (String, EventPackage);

enum Waiting {
    Event(Event),
    /// The NOTIFY kept aside for this subscription.
    Notify(SubKey),
}

/// The driver's side: never blocks, applies the rule of the module docs.
pub(crate) struct EventSink {
    tx: mpsc::Sender<Event>,
    backlog: VecDeque<Waiting>,
    notifies: HashMap<SubKey, Notify>,
    /// `Waiting::Event` entries in `backlog`.
    others: usize,
    capacity: usize,
    counters: Arc<Counters>,
}

impl EventSink {
    pub(crate) fn new(capacity: usize) -> (Self, EventReceiver, Arc<Counters>) {
        let (tx, rx) = mpsc::channel(capacity);
        let counters = Arc::new(Counters::default());
        let sink = Self {
            tx,
            backlog: VecDeque::new(),
            notifies: HashMap::new(),
            others: 0,
            capacity,
            counters: counters.clone(),
        };
        (sink, rx, counters)
    }

    /// Hands `event` to the reader, or keeps it as the rule says.
    pub(crate) fn send(&mut self, event: Event) {
        self.flush();
        if self.backlog.is_empty() {
            match self.tx.try_send(event) {
                Ok(()) => return,
                // The application stopped listening; keep running regardless.
                Err(TrySendError::Closed(_)) => return,
                Err(TrySendError::Full(event)) => self.keep(event),
            }
        } else {
            self.keep(event);
        }
        self.publish_waiting();
    }

    fn keep(&mut self, event: Event) {
        match event {
            Event::Notify(n) => {
                let key = (n.user.clone(), n.package);
                if self.notifies.insert(key.clone(), n).is_some() {
                    self.counters
                        .notifies_replaced
                        .fetch_add(1, Ordering::Relaxed);
                } else {
                    self.backlog.push_back(Waiting::Notify(key));
                    self.counters.delayed.fetch_add(1, Ordering::Relaxed);
                }
            }
            other => {
                if self.others >= self.capacity {
                    if let Some(i) = self
                        .backlog
                        .iter()
                        .position(|w| matches!(w, Waiting::Event(_)))
                    {
                        self.backlog.remove(i);
                        self.others -= 1;
                        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                    }
                }
                self.backlog.push_back(Waiting::Event(other));
                self.others += 1;
                self.counters.delayed.fetch_add(1, Ordering::Relaxed);
            }
        }
    }

    /// Takes the oldest waiting event out of the backlog.
    fn pop(&mut self) -> Option<Event> {
        while let Some(w) = self.backlog.pop_front() {
            match w {
                Waiting::Event(e) => {
                    self.others -= 1;
                    return Some(e);
                }
                Waiting::Notify(key) => {
                    if let Some(n) = self.notifies.remove(&key) {
                        return Some(Event::Notify(n));
                    }
                }
            }
        }
        None
    }

    /// Puts an event taken by [`pop`](Self::pop) back in front.
    fn unpop(&mut self, event: Event) {
        match event {
            Event::Notify(n) => {
                let key = (n.user.clone(), n.package);
                self.notifies.insert(key.clone(), n);
                self.backlog.push_front(Waiting::Notify(key));
            }
            other => {
                self.backlog.push_front(Waiting::Event(other));
                self.others += 1;
            }
        }
    }

    /// Moves waiting events into the channel while it has room.
    pub(crate) fn flush(&mut self) {
        while let Some(e) = self.pop() {
            match self.tx.try_send(e) {
                Ok(()) => {}
                Err(TrySendError::Full(e)) => {
                    self.unpop(e);
                    break;
                }
                Err(TrySendError::Closed(_)) => {
                    self.backlog.clear();
                    self.notifies.clear();
                    self.others = 0;
                    break;
                }
            }
        }
        self.publish_waiting();
    }

    fn publish_waiting(&self) {
        self.counters
            .waiting
            .store(self.backlog.len() as u64, Ordering::Relaxed);
    }

    /// `true` while events wait for room in the channel.
    pub(crate) fn has_waiting(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Resolves once the reader made room, then moves what fits (for the
    /// driver's `select!`, guarded by [`has_waiting`](Self::has_waiting)).
    pub(crate) async fn room(&mut self) {
        // A clone, so that the permit does not borrow `self`.
        let tx = self.tx.clone();
        match tx.reserve().await {
            Ok(permit) => {
                if let Some(e) = self.pop() {
                    permit.send(e);
                }
            }
            Err(_) => {
                self.backlog.clear();
                self.notifies.clear();
                self.others = 0;
            }
        }
        self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    fn notify(user: &str, body: &str) -> Event {
        Event::Notify(Notify {
            user: user.into(),
            package: EventPackage::Dialog,
            content_type: None,
            body: body.as_bytes().to_vec(),
            subscription_state: None,
            received_at: Instant::now(),
        })
    }

    #[test]
    fn a_stopped_reader_keeps_memory_bounded_and_the_counts_say_why() {
        let (mut sink, mut rx, counters) = EventSink::new(8);
        // 5000 NOTIFYs for 10 subscriptions and 100 other events, nobody reading.
        for i in 0..5000 {
            sink.send(notify(&format!("10{:02}", i % 10), &i.to_string()));
            if i % 50 == 0 {
                sink.send(Event::Unregistered);
            }
        }
        let stats = counters.snapshot();
        assert_eq!(EventStatsReader::new(counters.clone()).get(), stats);
        // The channel is full (8); waiting: at most 8 others + one NOTIFY per subscription.
        assert!(stats.waiting <= 8 + 10, "{stats:?}");
        assert_eq!(sink.notifies.len(), 10);
        assert_eq!(sink.others, 8);
        // One `Unregistered` went into the channel, 8 wait, the other 91 were dropped.
        assert_eq!(stats.dropped, 91, "{stats:?}");
        // Every event is accounted for: delivered, waiting, replaced or dropped.
        assert_eq!(
            8 + stats.waiting + stats.notifies_replaced + stats.dropped,
            5000 + 100,
            "{stats:?}"
        );

        // The reader comes back: first what the channel held, then the
        // waiting events, each subscription's newest NOTIFY among them.
        let mut got = Vec::new();
        while let Ok(e) = rx.try_recv() {
            got.push(e);
            sink.flush();
        }
        assert_eq!(got.len() as u64, 8 + stats.waiting);
        assert_eq!(counters.snapshot().waiting, 0);
        let last_for_1003 = got
            .iter()
            .rev()
            .find_map(|e| match e {
                Event::Notify(n) if n.user == "1003" => Some(n.body.clone()),
                _ => None,
            })
            .unwrap();
        assert_eq!(last_for_1003, b"4993");
    }

    #[test]
    fn a_reader_that_keeps_up_loses_nothing() {
        let (mut sink, mut rx, counters) = EventSink::new(4);
        for i in 0..100 {
            sink.send(notify("1001", &i.to_string()));
            assert!(rx.try_recv().is_ok());
        }
        assert_eq!(counters.snapshot(), EventStats::default());
    }
}
