//! A sink's inbox between the hub and the sink's task.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

use crate::view::{PersonId, View};

/// A sink's inbox: the latest view per person and when it was first seen.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    inner: Mutex<MailboxInner>,
    pub(crate) notify: Notify,
    /// `put` wakes the task once this many people wait (0: at every put).
    wake_at: AtomicUsize,
}

#[derive(Debug, Default)]
struct MailboxInner {
    views: BTreeMap<PersonId, (View, Instant)>,
    closed: bool,
}

impl Mailbox {
    /// Leaves `view` for the task; returns whether the task was woken.
    pub(crate) fn put(&self, view: &View, at: Instant) -> bool {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .views
            .entry(view.person.clone())
            .and_modify(|entry| entry.0 = view.clone())
            .or_insert_with(|| (view.clone(), at));
        let waiting = inner.views.len();
        drop(inner);
        let wake = waiting >= self.wake_at.load(Ordering::Relaxed);
        if wake {
            self.notify.notify_one();
        }
        wake
    }

    /// From now on `put` wakes the task only once `people` wait (0 or 1:
    /// at every put). A sink gathering changes into a batch sleeps until
    /// its gathering ends or its batch could be full, instead of waking
    /// for every change on the thread that carries them.
    pub(crate) fn wake_when(&self, people: usize) {
        self.wake_at.store(people, Ordering::Relaxed);
    }

    pub(crate) fn close(&self) {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.notify.notify_one();
    }

    /// People with a view waiting.
    pub(crate) fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .views
            .len()
    }

    pub(crate) fn take(&self) -> (BTreeMap<PersonId, (View, Instant)>, bool) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        (std::mem::take(&mut inner.views), inner.closed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::facts::LineState;
    use crate::view::PersonId;

    fn view(person: &str) -> View {
        View {
            person: PersonId(person.to_owned()),
            line: LineState::Busy,
            counterparty: None,
            direction: None,
            dnd: false,
            registered: None,
            cause: None,
            lines: Vec::new(),
            queues: Vec::new(),
            presence: None,
        }
    }

    #[test]
    fn a_gathering_task_is_woken_only_when_enough_people_wait() {
        let mailbox = Mailbox::default();
        let now = Instant::now();
        assert!(
            mailbox.put(&view("alice"), now),
            "every put wakes by default"
        );
        mailbox.take();
        mailbox.wake_when(3);
        assert!(!mailbox.put(&view("alice"), now));
        assert!(!mailbox.put(&view("alice"), now), "the same person again");
        assert!(!mailbox.put(&view("bob"), now));
        assert!(mailbox.put(&view("carol"), now), "three people wait");
        assert_eq!(mailbox.len(), 3);
        mailbox.take();
        mailbox.wake_when(0);
        assert!(mailbox.put(&view("alice"), now));
    }
}
