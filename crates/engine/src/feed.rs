//! A sink that drives itself: the [`ViewFeed`].

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use crate::mailbox::Mailbox;
use crate::runtime::SinkStatus;
use crate::view::View;

/// A person's view as a [`ViewFeed`] hands it out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FedView {
    /// The person's latest view.
    pub view: View,
    /// When the first change it carries was observed (the start of the
    /// source→sink latency).
    pub observed_at: Instant,
    /// Part of the replay a feed starts with, not a change.
    pub replay: bool,
}

/// What the owner of a [`ViewFeed`] tells the runtime about its sink, for
/// [`Runtime::sink_status`](crate::Runtime::sink_status).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeedReport {
    /// Writes waiting and writes in flight in the sink's own queue.
    Queue {
        /// People with a write waiting.
        waiting: usize,
        /// Writes in flight.
        in_flight: usize,
    },
    /// A write succeeded.
    Succeeded,
    /// A write failed.
    Failed,
    /// The sink lost (`false`) or regained (`true`) its connection.
    Connected(bool),
}

/// The views for a sink with a state machine of its own (one that keeps
/// sessions alive, reconciles, or corrects what an earlier run left), which
/// a [`Lane`](crate::Lane) cannot express: such a sink takes views from the
/// feed at its own pace and reports its health back.
///
/// Like a [`Sink`](crate::Sink)'s lane, the feed coalesces per person (the
/// latest view wins), so memory stays bounded by the number of people
/// however slow the sink is, and a slow feed never delays another sink. Its
/// first batch is every person's current view (the replay).
#[derive(Debug)]
pub struct ViewFeed {
    mailbox: Arc<Mailbox>,
    status: Arc<Mutex<SinkStatus>>,
    replay: Option<Vec<View>>,
    replayed_at: Instant,
}

impl ViewFeed {
    pub(crate) fn new(
        mailbox: Arc<Mailbox>,
        status: Arc<Mutex<SinkStatus>>,
        replay: Vec<View>,
        replayed_at: Instant,
    ) -> Self {
        Self {
            mailbox,
            status,
            replay: Some(replay),
            replayed_at,
        }
    }

    /// The sink's name, as given to [`Runtime::add_feed`](crate::Runtime::add_feed).
    pub fn name(&self) -> String {
        self.lock().name.clone()
    }

    /// The next views to act on: first every person's current view (the
    /// replay; possibly empty), then the latest view of each person whose
    /// view changed since the last call. `None` once the runtime has
    /// stopped and every change was taken.
    ///
    /// Cancel-safe: a call dropped before it returns loses nothing.
    pub async fn next(&mut self) -> Option<Vec<FedView>> {
        if let Some(views) = self.replay.take() {
            let at = self.replayed_at;
            return Some(
                views
                    .into_iter()
                    .map(|view| FedView {
                        view,
                        observed_at: at,
                        replay: true,
                    })
                    .collect(),
            );
        }
        loop {
            let (views, closed) = self.mailbox.take();
            if !views.is_empty() {
                return Some(
                    views
                        .into_values()
                        .map(|(view, observed_at)| FedView {
                            view,
                            observed_at,
                            replay: false,
                        })
                        .collect(),
                );
            }
            if closed {
                return None;
            }
            self.mailbox.notify.notified().await;
        }
    }

    /// Tells the runtime how the sink is doing.
    pub fn report(&self, report: FeedReport) {
        let waiting_here = self.mailbox.len();
        let mut status = self.lock();
        match report {
            FeedReport::Queue { waiting, in_flight } => {
                status.queue_depth = waiting + waiting_here;
                status.in_flight = in_flight;
            }
            FeedReport::Succeeded => {
                status.last_success = Some(tokio::time::Instant::now().into_std());
                status.paused = false;
            }
            FeedReport::Failed => status.failures = status.failures.saturating_add(1),
            FeedReport::Connected(connected) => status.paused = !connected,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SinkStatus> {
        self.status.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
