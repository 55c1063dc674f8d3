//! A sink's inbox between the hub and the sink's task.

use std::collections::BTreeMap;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use tokio::sync::Notify;

use crate::view::{PersonId, View};

/// A sink's inbox: the latest view per person and when it was first seen.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    inner: Mutex<MailboxInner>,
    pub(crate) notify: Notify,
}

#[derive(Debug, Default)]
struct MailboxInner {
    views: BTreeMap<PersonId, (View, Instant)>,
    closed: bool,
}

impl Mailbox {
    pub(crate) fn put(&self, view: &View, at: Instant) {
        let mut inner = self.inner.lock().unwrap_or_else(PoisonError::into_inner);
        inner
            .views
            .entry(view.person.clone())
            .and_modify(|entry| entry.0 = view.clone())
            .or_insert_with(|| (view.clone(), at));
        drop(inner);
        self.notify.notify_one();
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
