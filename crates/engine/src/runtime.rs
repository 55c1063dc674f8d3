//! A small tokio runtime around the sans-IO parts: sources feed one hub
//! task that keeps every person's [`View`]; each sink runs in a task of its
//! own with its own [`Lane`], so a slow or stalled sink never delays another.
//!
//! The hub never waits for a sink: it leaves each change in the sink's
//! mailbox (one entry per person, latest view wins) and moves on. Memory per
//! sink is bounded by the number of people, whatever the rate of changes.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::facts::Observation;
use crate::feed::ViewFeed;
use crate::lane::{Lane, LaneConfig};
use crate::mailbox::Mailbox;
use crate::sink::{Sink, SinkError};
use crate::view::{Directory, Observed, PersonId, View, Views};

/// Where observations come from (a PBX, a test channel…).
pub trait Source: Send + 'static {
    /// The source's name, for logs and status (`sip`, `ami`).
    fn name(&self) -> &str;

    /// The next observation; `None` once the source has stopped. Must be
    /// cancel-safe: the runtime drops the future when it stops the source.
    fn next(&mut self) -> impl Future<Output = Option<Observation>> + Send;

    /// Called once when the runtime stops the source, with the time it may
    /// take: let go of what the source holds (un-subscribe, log out). The
    /// default does nothing.
    fn stop(&mut self, limit: Duration) -> impl Future<Output = ()> + Send {
        let _ = limit;
        async {}
    }
}

/// A source fed through a channel (tests, other integrations).
#[derive(Debug)]
pub struct ChannelSource {
    name: String,
    receiver: mpsc::Receiver<Observation>,
}

impl ChannelSource {
    /// A source named `name` and the sender that feeds it (`capacity`
    /// observations may wait; at least one).
    pub fn channel(name: impl Into<String>, capacity: usize) -> (mpsc::Sender<Observation>, Self) {
        let (sender, receiver) = mpsc::channel(capacity.max(1));
        let source = Self {
            name: name.into(),
            receiver,
        };
        (sender, source)
    }
}

impl Source for ChannelSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn next(&mut self) -> impl Future<Output = Option<Observation>> + Send {
        self.receiver.recv()
    }
}

/// The runtime could not do what was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RuntimeError {
    /// Started outside a tokio runtime.
    #[error("the engine runtime must be started from within a tokio runtime")]
    NoTokioRuntime,
    /// The hub task has ended.
    #[error("the engine runtime has stopped")]
    Stopped,
}

/// The runtime's sizes and the lanes' pace. [`RuntimeConfig::default`]
/// gives the defaults; the `with_*` methods (or the public fields) change
/// them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct RuntimeConfig {
    /// Every sink's lane.
    pub lane: LaneConfig,
    /// Observations that may wait for the hub (sources wait when it is full).
    pub inbox_capacity: usize,
    /// View changes a tap receiver may lag behind before it loses some.
    pub tap_capacity: usize,
}

impl Default for RuntimeConfig {
    fn default() -> Self {
        Self {
            lane: LaneConfig::default(),
            inbox_capacity: 4096,
            tap_capacity: 1024,
        }
    }
}

impl RuntimeConfig {
    /// Sets [`lane`](Self::lane).
    pub fn with_lane(mut self, lane: LaneConfig) -> Self {
        self.lane = lane;
        self
    }

    /// Sets [`inbox_capacity`](Self::inbox_capacity).
    pub fn with_inbox_capacity(mut self, capacity: usize) -> Self {
        self.inbox_capacity = capacity;
        self
    }

    /// Sets [`tap_capacity`](Self::tap_capacity).
    pub fn with_tap_capacity(mut self, capacity: usize) -> Self {
        self.tap_capacity = capacity;
        self
    }
}

/// One sink's health, for status pages and metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct SinkStatus {
    /// The sink's name.
    pub name: String,
    /// People with a write waiting.
    pub queue_depth: usize,
    /// Writes in flight.
    pub in_flight: usize,
    /// Failed writes since start.
    pub failures: u64,
    /// When a write last succeeded.
    pub last_success: Option<Instant>,
    /// Paused after a lost connection.
    pub paused: bool,
}

impl SinkStatus {
    fn new(name: &str) -> Self {
        Self {
            name: name.to_owned(),
            queue_depth: 0,
            in_flight: 0,
            failures: 0,
            last_success: None,
            paused: false,
        }
    }
}

enum Input {
    Observation(Observation),
    /// Registers the mailbox; the reply is every view at that moment.
    AddSink(Arc<Mailbox>, oneshot::Sender<Vec<View>>),
    Snapshot(oneshot::Sender<Vec<View>>),
}

fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// A sink's status, written by its task (or a feed's owner), read by
/// [`Runtime::sink_status`].
type SharedStatus = Arc<Mutex<SinkStatus>>;

/// Every sink's status, shared: a handle a status page keeps (cheap to
/// clone) that shows sinks added later too.
#[derive(Debug, Clone, Default)]
pub struct SinkBoard(Arc<Mutex<Vec<SharedStatus>>>);

impl SinkBoard {
    /// Each sink's health, in the order they were added.
    pub fn sinks(&self) -> Vec<SinkStatus> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .map(|s| s.lock().unwrap_or_else(PoisonError::into_inner).clone())
            .collect()
    }

    fn add(&self, status: SharedStatus) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(status);
    }
}

/// The running engine: add sources and sinks, watch the tap, stop.
///
/// See the crate docs for an example.
#[derive(Debug)]
pub struct Runtime {
    tokio: tokio::runtime::Handle,
    inbox: mpsc::Sender<Input>,
    tap: broadcast::Sender<View>,
    lane: LaneConfig,
    hub: JoinHandle<()>,
    sources: Vec<(JoinHandle<()>, oneshot::Sender<Duration>)>,
    /// Each sink's task (none for a feed, which its owner drives) and status.
    sinks: Vec<(Option<JoinHandle<()>>, SharedStatus)>,
    board: SinkBoard,
}

impl Runtime {
    /// Starts the hub for the people of `directory`; sources and sinks are
    /// added after.
    pub fn start(directory: Directory, config: RuntimeConfig) -> Result<Self, RuntimeError> {
        let tokio =
            tokio::runtime::Handle::try_current().map_err(|_| RuntimeError::NoTokioRuntime)?;
        let (inbox, receiver) = mpsc::channel(config.inbox_capacity.max(1));
        let (tap, _) = broadcast::channel(config.tap_capacity.max(1));
        let hub = tokio.spawn(hub(Views::new(directory), receiver, tap.clone()));
        Ok(Self {
            tokio,
            inbox,
            tap,
            lane: config.lane,
            hub,
            sources: Vec::new(),
            sinks: Vec::new(),
            board: SinkBoard::default(),
        })
    }

    /// Runs `source` in a task of its own until it ends or the runtime
    /// stops it (then [`Source::stop`] is called).
    pub fn add_source(&mut self, mut source: impl Source) {
        let inbox = self.inbox.clone();
        let (stop, mut stopping) = oneshot::channel::<Duration>();
        let task = self.tokio.spawn(async move {
            loop {
                tokio::select! {
                    biased;
                    limit = &mut stopping => {
                        if let Ok(limit) = limit {
                            source.stop(limit).await;
                        }
                        return;
                    }
                    observation = source.next() => {
                        let Some(observation) = observation else { break };
                        if inbox.send(Input::Observation(observation)).await.is_err() {
                            return;
                        }
                    }
                }
            }
            tracing::info!(source = source.name(), "source ended");
        });
        self.sources.push((task, stop));
    }

    /// Registers a mailbox with the hub; returns it with every current view.
    async fn mailbox(&self) -> Result<(Arc<Mailbox>, Vec<View>), RuntimeError> {
        let mailbox = Arc::new(Mailbox::default());
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Input::AddSink(mailbox.clone(), reply))
            .await
            .map_err(|_| RuntimeError::Stopped)?;
        let current = answer.await.map_err(|_| RuntimeError::Stopped)?;
        Ok((mailbox, current))
    }

    /// Runs `sink` in a task of its own; it first gets every person's current
    /// view (a replay), then every change.
    pub async fn add_sink<S: Sink>(&mut self, sink: S) -> Result<(), RuntimeError> {
        let tokio = self.tokio.clone();
        self.add_sink_on(sink, &tokio).await
    }

    /// [`add_sink`](Self::add_sink), with the sink's task on another tokio
    /// runtime: a sink off the call path (a database) can run on threads of
    /// lower priority, so that its work never takes the CPU from the sources
    /// and the sinks that people wait for.
    pub async fn add_sink_on<S: Sink>(
        &mut self,
        sink: S,
        on: &tokio::runtime::Handle,
    ) -> Result<(), RuntimeError> {
        let (mailbox, current) = self.mailbox().await?;
        let status = Arc::new(Mutex::new(SinkStatus::new(sink.name())));
        let mut lane = Lane::new(sink.lane_config(&self.lane));
        // What there was when the sink was added is a replay.
        let at = now();
        for view in &current {
            lane.handle_view(&view.person, sink.desired(view), at);
        }
        lane.replay();
        let task = run_sink(sink, mailbox, lane, status.clone());
        self.board.add(status.clone());
        self.sinks.push((Some(on.spawn(task)), status));
        Ok(())
    }

    /// A [`ViewFeed`] for a sink named `name` that its owner drives (see
    /// [`ViewFeed`]); its first batch is every person's current view. It
    /// is listed in [`sink_status`](Self::sink_status) with what the owner
    /// reports.
    pub async fn add_feed(&mut self, name: &str) -> Result<ViewFeed, RuntimeError> {
        let (mailbox, current) = self.mailbox().await?;
        let status = Arc::new(Mutex::new(SinkStatus::new(name)));
        self.board.add(status.clone());
        self.sinks.push((None, status.clone()));
        Ok(ViewFeed::new(mailbox, status, current, now()))
    }

    /// Takes `observation` in, as a source would.
    pub async fn observe(&self, observation: Observation) -> Result<(), RuntimeError> {
        self.inbox
            .send(Input::Observation(observation))
            .await
            .map_err(|_| RuntimeError::Stopped)
    }

    /// Every person's view, after every observation sent before this call.
    pub async fn views(&self) -> Result<Vec<View>, RuntimeError> {
        let (reply, answer) = oneshot::channel();
        self.inbox
            .send(Input::Snapshot(reply))
            .await
            .map_err(|_| RuntimeError::Stopped)?;
        answer.await.map_err(|_| RuntimeError::Stopped)
    }

    /// A lossy feed of view changes for watchers that are not sinks
    /// (dashboards, `/status`): a receiver that falls behind by more than
    /// [`RuntimeConfig::tap_capacity`] loses the oldest.
    pub fn tap(&self) -> broadcast::Receiver<View> {
        self.tap.subscribe()
    }

    /// Each sink's health, in the order they were added.
    pub fn sink_status(&self) -> Vec<SinkStatus> {
        self.board.sinks()
    }

    /// A shared handle on every sink's health, for status pages.
    pub fn board(&self) -> SinkBoard {
        self.board.clone()
    }

    /// Stops the sources (each gets [`Source::stop`]), lets each sink
    /// finish what it has to write (within `limit` in all), and stops what
    /// is left. A [`ViewFeed`] gets its last changes, then `None`.
    pub async fn stop(self, limit: Duration) {
        let deadline = tokio::time::Instant::now() + limit;
        let mut stopping = Vec::new();
        for (task, stop) in self.sources {
            // A source that has ended already has dropped its receiver.
            let _ = stop.send(limit);
            stopping.push(task);
        }
        for task in stopping {
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
            }
        }
        drop(self.inbox);
        let _ = tokio::time::timeout_at(deadline, self.hub).await;
        for (task, status) in self.sinks {
            let Some(task) = task else { continue };
            let abort = task.abort_handle();
            if tokio::time::timeout_at(deadline, task).await.is_err() {
                abort.abort();
                let name = status
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .name
                    .clone();
                tracing::warn!(sink = %name, "sink did not finish its writes in {limit:?}; stopped");
            }
        }
    }
}

/// Observations in, views out to every sink's mailbox and the tap.
async fn hub(mut views: Views, mut inbox: mpsc::Receiver<Input>, tap: broadcast::Sender<View>) {
    let mut mailboxes: Vec<Arc<Mailbox>> = Vec::new();
    while let Some(input) = inbox.recv().await {
        match input {
            Input::Observation(observation) => match views.observe(&observation) {
                Observed::Changed(view) => {
                    for mailbox in &mailboxes {
                        let _ = mailbox.put(&view, observation.at);
                    }
                    // No watcher is fine.
                    let _ = tap.send(view);
                }
                Observed::Unchanged => {}
                Observed::UnknownAddress => tracing::debug!(
                    system = %observation.system,
                    address = %observation.address,
                    "observation for an address in no one's list; ignored"
                ),
            },
            Input::AddSink(mailbox, reply) => {
                if reply.send(views.iter().collect()).is_ok() {
                    mailboxes.push(mailbox);
                }
            }
            Input::Snapshot(reply) => {
                let _ = reply.send(views.iter().collect());
            }
        }
    }
    for mailbox in &mailboxes {
        mailbox.close();
    }
}

type Writing<'a> = Pin<Box<dyn Future<Output = Vec<Result<(), SinkError>>> + Send + 'a>>;

enum Woken {
    Written(Vec<Result<(), SinkError>>),
    Mail,
    Timer,
}

/// One sink's task: the mailbox into its lane, one batch in flight at a time.
async fn run_sink<S: Sink>(
    sink: S,
    mailbox: Arc<Mailbox>,
    mut lane: Lane<S::Held>,
    status: Arc<Mutex<SinkStatus>>,
) {
    let name = sink.name().to_owned();
    let mut writing: Option<(Vec<PersonId>, Writing<'_>)> = None;
    let mut closed = false;
    loop {
        let (views, is_closed) = mailbox.take();
        closed |= is_closed;
        for (view, at) in views.into_values() {
            lane.handle_view(&view.person, sink.desired(&view), at);
        }
        if writing.is_none() {
            if let Some(batch) = lane.poll_write(now()) {
                let people = batch.iter().map(|w| w.person.clone()).collect();
                writing = Some((people, Box::pin(sink.write(batch))));
            }
        }
        report(&status, &lane, None);
        if closed && writing.is_none() && lane.is_idle() {
            return;
        }
        mailbox.wake_when(lane.gathering_room().unwrap_or(0));
        let timer = lane.poll_timeout().map(tokio::time::Instant::from_std);
        let woken = tokio::select! {
            results = async {
                match writing.as_mut() {
                    Some((_, call)) => call.as_mut().await,
                    None => std::future::pending().await,
                }
            } => Woken::Written(results),
            () = mailbox.notify.notified(), if !closed => Woken::Mail,
            () = async {
                match timer {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            } => Woken::Timer,
        };
        match woken {
            Woken::Written(results) => {
                let Some((people, _)) = writing.take() else {
                    continue;
                };
                let now = now();
                let count = people.len();
                let mut results = results.into_iter();
                for person in people {
                    let result = results.next().unwrap_or_else(|| {
                        Err(SinkError::transient(format!(
                            "the sink returned fewer results than the {count} writes it was given"
                        )))
                    });
                    let ok = result.is_ok();
                    if let Some(wait) =
                        lane.write_finished(&person, result.as_ref().map(|_| ()), now)
                    {
                        if let Err(error) = &result {
                            tracing::warn!(
                                sink = %name, person = %person, %error,
                                "write failed; retrying in {wait:?}"
                            );
                        }
                    }
                    report(&status, &lane, Some((ok, now)));
                }
            }
            Woken::Mail => {}
            Woken::Timer => lane.handle_timeout(now()),
        }
    }
}

fn report<H: Clone + Eq>(
    status: &Mutex<SinkStatus>,
    lane: &Lane<H>,
    outcome: Option<(bool, Instant)>,
) {
    let mut s = status.lock().unwrap_or_else(PoisonError::into_inner);
    s.queue_depth = lane.queue_depth();
    s.in_flight = lane.in_flight();
    s.paused = lane.is_paused();
    match outcome {
        Some((true, at)) => s.last_success = Some(at),
        Some((false, _)) => s.failures = s.failures.saturating_add(1),
        None => {}
    }
}
