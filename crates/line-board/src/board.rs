//! The [`Board`]: every listed extension and what is known about it, each
//! change numbered, with a bounded log of recent changes so an event stream
//! can resume where a client left off.

use std::cmp::Ordering;
use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, SystemTime};

use sip_blf_engine::{Direction, FeedReport, LineState, LineView, QueueMember, ViewFeed};
use tokio::sync::watch;

use crate::model::{Counterparty, DndBy, Extension, ExtensionFilter, Health, Listing, Teams};

/// The default of [`BoardConfig::stale_after`].
pub const DEFAULT_STALE_AFTER: Duration = Duration::from_secs(120);
/// The default of [`BoardConfig::log_capacity`].
pub const DEFAULT_LOG_CAPACITY: usize = 65_536;
/// The default of [`BoardConfig::batch_interval`].
pub const DEFAULT_BATCH_INTERVAL: Duration = Duration::from_millis(100);

/// How a [`Board`] behaves. [`BoardConfig::new`] or
/// [`BoardConfig::default`] give the defaults; the `with_*` method (or the
/// public fields) change them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BoardConfig {
    /// After how long without news the page shows a value as stale (sent to
    /// clients as `stale_after_seconds`).
    pub stale_after: Duration,
    /// How many changes the log keeps for clients that resume with
    /// `Last-Event-ID`; a client further behind gets a fresh snapshot.
    /// About 16 bytes a change.
    pub log_capacity: usize,
    /// The shortest time between two `changes` events to one client: what
    /// changes in between goes out together, the latest state of each
    /// extension once. Keeps many clients cheap under many changes.
    pub batch_interval: Duration,
}

impl BoardConfig {
    /// A configuration with the default [`batch_interval`](Self::batch_interval).
    pub fn new(stale_after: Duration, log_capacity: usize) -> Self {
        Self {
            stale_after,
            log_capacity,
            batch_interval: DEFAULT_BATCH_INTERVAL,
        }
    }

    /// Sets [`batch_interval`](Self::batch_interval).
    pub fn with_batch_interval(mut self, interval: Duration) -> Self {
        self.batch_interval = interval;
        self
    }
}

impl Default for BoardConfig {
    fn default() -> Self {
        Self::new(DEFAULT_STALE_AFTER, DEFAULT_LOG_CAPACITY)
    }
}

/// A line's state as the PBX reports it, for [`Board::set_line`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineUpdate {
    /// The line state.
    pub state: LineState,
    /// Do-not-disturb.
    pub dnd: bool,
    /// The other party of the call, if known.
    pub counterparty: Option<Counterparty>,
    /// The call's direction, if known.
    pub direction: Option<Direction>,
    /// The call queues it is an agent of, sorted by queue name.
    pub queues: Vec<QueueMember>,
}

impl LineUpdate {
    /// `state`, DND off, no counterparty, direction or queue.
    pub fn new(state: LineState) -> Self {
        Self {
            state,
            dnd: false,
            counterparty: None,
            direction: None,
            queues: Vec::new(),
        }
    }

    /// Whether `ext` shows this already (its event time aside).
    fn shown_by(&self, ext: &Extension) -> bool {
        ext.line_state == self.state
            && ext.dnd == self.dnd
            && ext.counterparty == self.counterparty
            && ext.direction == self.direction
            && ext.queues == self.queues
    }
}

impl From<&LineView> for LineUpdate {
    fn from(line: &LineView) -> Self {
        Self {
            state: line.line,
            dnd: line.dnd.unwrap_or(false),
            counterparty: line.counterparty.clone().map(Counterparty::from),
            direction: line.direction,
            queues: line.queues.clone(),
        }
    }
}

/// The live state of every listed extension, shared by the HTTP handlers
/// and whatever feeds it. Cheap to clone (one shared state); no lock is
/// held across an `.await`.
///
/// Every change (of a line, an event time, a Teams presence) gets the next
/// sequence number. Numbers start at the board's creation time in
/// microseconds since 1970, so the numbers of a restarted service are past
/// any a client kept from before, and such a client gets a fresh snapshot.
#[derive(Debug, Clone)]
pub struct Board {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: BoardConfig,
    state: Mutex<State>,
    /// A new value after every change; `true` once the board is closed.
    changed: watch::Sender<bool>,
}

#[derive(Debug)]
struct State {
    /// Every extension, sorted by [`extension_order`].
    entries: Vec<Entry>,
    /// Lowercase e-mail → indices into `entries`.
    by_email: HashMap<String, Vec<usize>>,
    /// The last change's sequence number.
    seq: u64,
    /// The extension (index) of the last `log.len()` changes, oldest
    /// first: the change numbered `seq - log.len() + 1 + i` is `log[i]`.
    log: VecDeque<u32>,
    capacity: usize,
    sources: Vec<Health>,
    sinks: Vec<Health>,
    /// The JSON arrays of `sources` and `sinks`.
    health_json: (Arc<str>, Arc<str>),
    /// Bumped on every health change.
    health_version: u64,
}

#[derive(Debug)]
struct Entry {
    ext: Extension,
    /// `ext` as JSON, written once per change and shared by every client.
    json: Arc<str>,
    /// This service turned the PBX's DND on because of Teams
    /// ([`Board::set_dnd_by_teams`]); with `ext.dnd`, it makes `ext.dnd_by`.
    dnd_by_teams: bool,
}

impl Entry {
    /// Recomputes `ext.dnd_by` from `ext.dnd` and `dnd_by_teams`.
    fn refresh_dnd_by(&mut self) {
        self.ext.dnd_by = match (self.ext.dnd, self.dnd_by_teams) {
            (false, _) => None,
            (true, true) => Some(DndBy::Teams),
            (true, false) => Some(DndBy::Pbx),
        };
    }
}

/// The state as one consistent picture, for an event stream's `snapshot`.
#[derive(Debug, Clone)]
pub(crate) struct Snapshot {
    pub seq: u64,
    pub extensions: Vec<Arc<str>>,
    pub health: HealthJson,
}

/// The health arrays as JSON, with their version.
#[derive(Debug, Clone)]
pub(crate) struct HealthJson {
    pub version: u64,
    pub sources: Arc<str>,
    pub sinks: Arc<str>,
}

/// The changes after a client's cursor: the latest JSON of each changed
/// extension (in extension order), up to `seq`.
#[derive(Debug, Clone)]
pub(crate) struct Changes {
    pub seq: u64,
    pub extensions: Vec<Arc<str>>,
}

/// Extensions that are all digits come first in numeric order, the others
/// after them in text order.
fn extension_order(a: &str, b: &str) -> Ordering {
    let number = |s: &str| !s.is_empty() && s.bytes().all(|c| c.is_ascii_digit());
    match (number(a), number(b)) {
        (true, true) => a.len().cmp(&b.len()).then_with(|| a.cmp(b)),
        (true, false) => Ordering::Less,
        (false, true) => Ordering::Greater,
        (false, false) => a.cmp(b),
    }
}

fn to_json<T: serde::Serialize>(value: &T) -> Arc<str> {
    match serde_json::to_string(value) {
        Ok(json) => json.into(),
        Err(error) => {
            // Not expected: the model has no map with non-text keys.
            tracing::error!(%error, "line board: a value could not be written as JSON");
            "null".into()
        }
    }
}

impl State {
    fn find(&self, extension: &str) -> Option<usize> {
        let found = self
            .entries
            .binary_search_by(|e| extension_order(&e.ext.extension, extension))
            .ok();
        if found.is_none() {
            tracing::debug!(extension, "line board: not a listed extension; ignored");
        }
        found
    }

    /// Records that entry `at` changed: new JSON, next sequence number.
    fn changed(&mut self, at: usize) {
        let entry = &mut self.entries[at];
        entry.json = to_json(&entry.ext);
        self.seq += 1;
        // Indices fit: a board of more than 4 billion extensions is not built.
        self.log.push_back(at as u32);
        while self.log.len() > self.capacity {
            self.log.pop_front();
        }
    }

    /// Applies `update` (and the event time `touch`) to entry `at`.
    fn apply(&mut self, at: usize, update: LineUpdate, when: SystemTime, touch: bool) -> bool {
        let entry = &mut self.entries[at];
        // DND turned off ends this service's part in it: turned on again
        // later, it is someone else's unless this service says otherwise.
        if entry.ext.dnd && !update.dnd {
            entry.dnd_by_teams = false;
        }
        let ext = &mut entry.ext;
        let moved = ext.line_state != update.state || ext.dnd != update.dnd;
        let differs = !update.shown_by(ext);
        if moved {
            ext.since = Some(when);
        }
        ext.line_state = update.state;
        ext.dnd = update.dnd;
        ext.counterparty = update.counterparty;
        ext.direction = update.direction;
        ext.queues = update.queues;
        let touched = touch && ext.last_event != Some(when);
        if touched {
            ext.last_event = Some(when);
        }
        entry.refresh_dnd_by();
        if differs || touched {
            self.changed(at);
        }
        differs || touched
    }

    fn since(&self, cursor: u64) -> Option<Changes> {
        if cursor > self.seq {
            return None;
        }
        let missed = self.seq - cursor;
        if missed > self.log.len() as u64 {
            return None;
        }
        let skip = self.log.len() - missed as usize;
        let mut indices: Vec<u32> = self.log.range(skip..).copied().collect();
        indices.sort_unstable();
        indices.dedup();
        Some(Changes {
            seq: self.seq,
            extensions: indices
                .into_iter()
                .map(|i| Arc::clone(&self.entries[i as usize].json))
                .collect(),
        })
    }

    fn health_json(&self) -> HealthJson {
        HealthJson {
            version: self.health_version,
            sources: Arc::clone(&self.health_json.0),
            sinks: Arc::clone(&self.health_json.1),
        }
    }
}

impl Board {
    /// A board of `listings` (by extension; a second listing of the same
    /// extension is ignored with a warning), every line `unknown`.
    pub fn new(listings: impl IntoIterator<Item = Listing>, config: BoardConfig) -> Self {
        let mut listings: Vec<Listing> = listings.into_iter().collect();
        listings.sort_by(|a, b| extension_order(&a.extension, &b.extension));
        let before = listings.len();
        listings.dedup_by(|later, first| {
            let same = later.extension == first.extension;
            if same {
                tracing::warn!(extension = %later.extension, "line board: extension listed twice; the first listing is used");
            }
            same
        });
        if listings.len() < before {
            tracing::debug!(
                dropped = before - listings.len(),
                "line board: duplicate listings dropped"
            );
        }
        let mut by_email: HashMap<String, Vec<usize>> = HashMap::new();
        let entries: Vec<Entry> = listings
            .into_iter()
            .enumerate()
            .map(|(at, listing)| {
                if let Some(email) = &listing.email {
                    by_email.entry(email.to_lowercase()).or_default().push(at);
                }
                let ext = Extension::listed(listing);
                let json = to_json(&ext);
                Entry {
                    ext,
                    json,
                    dnd_by_teams: false,
                }
            })
            .collect();
        let seq = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_micros()).unwrap_or(u64::MAX / 2));
        let state = State {
            entries,
            by_email,
            seq,
            log: VecDeque::new(),
            capacity: config.log_capacity,
            sources: Vec::new(),
            sinks: Vec::new(),
            health_json: ("[]".into(), "[]".into()),
            health_version: 0,
        };
        let (changed, _) = watch::channel(false);
        Self {
            inner: Arc::new(Inner {
                config,
                state: Mutex::new(state),
                changed,
            }),
        }
    }

    /// The configuration it was made with.
    pub fn config(&self) -> &BoardConfig {
        &self.inner.config
    }

    /// Number of listed extensions.
    pub fn len(&self) -> usize {
        self.lock().entries.len()
    }

    /// Whether no extension is listed.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The sequence number of the last change.
    pub fn sequence(&self) -> u64 {
        self.lock().seq
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the state; wakes the event streams if it changed anything.
    fn update<R>(&self, f: impl FnOnce(&mut State) -> R) -> R {
        let (result, changed) = {
            let mut state = self.lock();
            let before = (state.seq, state.health_version);
            let result = f(&mut state);
            (result, before != (state.seq, state.health_version))
        };
        if changed {
            self.inner.changed.send_modify(|_| {});
        }
        result
    }

    /// Sets `extension`'s line; `since` moves only when the line state or
    /// DND changes (not with the counterparty, direction or queues). Returns whether anything changed (`false` for an
    /// extension that is not listed: ignored).
    pub fn set_line(&self, extension: &str, update: LineUpdate, at: SystemTime) -> bool {
        self.update(|state| match state.find(extension) {
            Some(i) => state.apply(i, update, at, false),
            None => false,
        })
    }

    /// Notes an event from the PBX for `extension` at `at` (`last_event`).
    /// Returns whether anything changed.
    pub fn touch(&self, extension: &str, at: SystemTime) -> bool {
        self.update(|state| match state.find(extension) {
            Some(i) => {
                let touched = state.entries[i].ext.last_event != Some(at);
                if touched {
                    state.entries[i].ext.last_event = Some(at);
                    state.changed(i);
                }
                touched
            }
            None => false,
        })
    }

    /// [`set_line`](Self::set_line) and [`touch`](Self::touch) as one
    /// change: an event from the PBX that says this.
    pub fn record(&self, extension: &str, update: LineUpdate, at: SystemTime) -> bool {
        self.update(|state| match state.find(extension) {
            Some(i) => state.apply(i, update, at, true),
            None => false,
        })
    }

    /// Sets the Teams presence of the person `email` (case-insensitive) on
    /// every extension of theirs. Returns how many extensions changed.
    pub fn set_teams(&self, email: &str, teams: Teams) -> usize {
        self.replace_teams(email, Some(teams))
    }

    /// Clears the Teams presence of the person `email` (`teams: null`).
    /// Returns how many extensions changed.
    pub fn clear_teams(&self, email: &str) -> usize {
        self.replace_teams(email, None)
    }

    fn replace_teams(&self, email: &str, teams: Option<Teams>) -> usize {
        self.update(|state| {
            let Some(indices) = state.by_email.get(&email.to_lowercase()).cloned() else {
                tracing::debug!(
                    email,
                    "line board: no extension of this person; Teams presence ignored"
                );
                return 0;
            };
            let mut changed = 0;
            for i in indices {
                if state.entries[i].ext.teams != teams {
                    state.entries[i].ext.teams = teams.clone();
                    state.changed(i);
                    changed += 1;
                }
            }
            changed
        })
    }

    /// Sets the presence last read from Teams for `extension`'s person
    /// (`Availability/Activity`; `None`: not read). A change of it alone is
    /// a change, but does not move `since`. Returns whether anything
    /// changed (`false` for an extension that is not listed: ignored).
    pub fn set_teams_read(&self, extension: &str, read: Option<&str>) -> bool {
        self.update(|state| {
            let Some(i) = state.find(extension) else {
                return false;
            };
            let ext = &mut state.entries[i].ext;
            if ext.teams_read.as_deref() == read {
                return false;
            }
            ext.teams_read = read.map(str::to_owned);
            state.changed(i);
            true
        })
    }

    /// Whether `extension`'s DND on the PBX is on because this service set
    /// it for Teams (`dnd_by` is then `teams` while DND is on, else `pbx`).
    /// A DND turned off on the PBX clears it. Does not move `since`.
    /// Returns whether the extension's JSON changed.
    pub fn set_dnd_by_teams(&self, extension: &str, by_teams: bool) -> bool {
        self.update(|state| {
            let Some(i) = state.find(extension) else {
                return false;
            };
            let entry = &mut state.entries[i];
            entry.dnd_by_teams = by_teams;
            let before = entry.ext.dnd_by;
            entry.refresh_dnd_by();
            let changed = entry.ext.dnd_by != before;
            if changed {
                state.changed(i);
            }
            changed
        })
    }

    /// Replaces the health of the sources and sinks (sent to clients when
    /// it differs from before).
    pub fn set_health(&self, sources: Vec<Health>, sinks: Vec<Health>) {
        self.update(|state| {
            if state.sources == sources && state.sinks == sinks {
                return;
            }
            state.health_json = (to_json(&sources), to_json(&sinks));
            state.sources = sources;
            state.sinks = sinks;
            state.health_version += 1;
        });
    }

    /// The health of the sources and of the sinks.
    pub fn health(&self) -> (Vec<Health>, Vec<Health>) {
        let state = self.lock();
        (state.sources.clone(), state.sinks.clone())
    }

    /// The extensions that pass `filter`, sorted by extension (numbers in
    /// numeric order first, then the others in text order).
    pub fn extensions(&self, filter: &ExtensionFilter) -> Vec<Extension> {
        let passes = filter.compile();
        let state = self.lock();
        state
            .entries
            .iter()
            .filter(|e| passes(&e.ext))
            .map(|e| e.ext.clone())
            .collect()
    }

    /// One extension, if listed.
    pub fn extension(&self, extension: &str) -> Option<Extension> {
        let state = self.lock();
        let at = state
            .entries
            .binary_search_by(|e| extension_order(&e.ext.extension, extension))
            .ok()?;
        Some(state.entries[at].ext.clone())
    }

    /// Applies every view of `feed` to the board until the feed ends: each
    /// line on `system` whose state differs from the board's is recorded
    /// (line state, DND, counterparty, direction, queues, and `last_event`) at the
    /// time its view was observed. Lines of other systems are skipped;
    /// lines of extensions that are not listed are ignored. Reports each
    /// applied batch to the runtime as a success.
    ///
    /// The future owns what it needs (`system` is copied), so it can be
    /// spawned: `tokio::spawn(board.clone().follow(feed, "pbx-a"))`.
    pub fn follow(
        self,
        mut feed: ViewFeed,
        system: &str,
    ) -> impl Future<Output = ()> + Send + 'static {
        let system = system.to_owned();
        async move {
            while let Some(batch) = feed.next().await {
                let now = SystemTime::now();
                self.update(|state| {
                    for fed in &batch {
                        let at = now.checked_sub(fed.observed_at.elapsed()).unwrap_or(now);
                        for line in fed
                            .view
                            .lines
                            .iter()
                            .filter(|l| l.address.system == system.as_str())
                        {
                            let Some(i) = state.find(&line.address.address) else {
                                continue;
                            };
                            let update = LineUpdate::from(line);
                            let ext = &state.entries[i].ext;
                            let same = update.shown_by(ext);
                            // A person's view lists all their lines; only the
                            // ones that changed had an event (the replay
                            // counts for each line new to the board).
                            if !same || (fed.replay && ext.last_event.is_none()) {
                                state.apply(i, update, at, true);
                            }
                        }
                    }
                });
                feed.report(FeedReport::Succeeded);
            }
            tracing::debug!(%system, "line board: the view feed ended");
        }
    }

    /// Ends every event stream (now and from now on), so that a graceful
    /// shutdown of the HTTP server does not wait for them. The JSON API
    /// and the setters go on working.
    pub fn close(&self) {
        self.inner.changed.send_replace(true);
    }

    /// Whether [`close`](Self::close) was called.
    pub fn is_closed(&self) -> bool {
        *self.inner.changed.borrow()
    }

    /// A receiver that sees a new value after every change, and `true`
    /// once the board is closed.
    pub(crate) fn subscribe(&self) -> watch::Receiver<bool> {
        self.inner.changed.subscribe()
    }

    /// Every extension's JSON passing `filter`, in order.
    pub(crate) fn extensions_json(&self, filter: &ExtensionFilter) -> Vec<Arc<str>> {
        let passes = filter.compile();
        let state = self.lock();
        state
            .entries
            .iter()
            .filter(|e| passes(&e.ext))
            .map(|e| Arc::clone(&e.json))
            .collect()
    }

    /// One extension's JSON.
    pub(crate) fn extension_json(&self, extension: &str) -> Option<Arc<str>> {
        let state = self.lock();
        let at = state
            .entries
            .binary_search_by(|e| extension_order(&e.ext.extension, extension))
            .ok()?;
        Some(Arc::clone(&state.entries[at].json))
    }

    /// Everything, consistent with one sequence number.
    pub(crate) fn snapshot(&self) -> Snapshot {
        let state = self.lock();
        Snapshot {
            seq: state.seq,
            extensions: state.entries.iter().map(|e| Arc::clone(&e.json)).collect(),
            health: state.health_json(),
        }
    }

    /// The changes after `cursor`, each extension once with its latest
    /// state; `None` when some are no longer in the log (or the cursor is
    /// not one of this board's): the client needs a snapshot.
    pub(crate) fn changes_since(&self, cursor: u64) -> Option<Changes> {
        self.lock().since(cursor)
    }

    /// The health, if its version is not `seen`.
    pub(crate) fn health_since(&self, seen: u64) -> Option<HealthJson> {
        let state = self.lock();
        (state.health_version != seen).then(|| state.health_json())
    }

    /// The health as JSON.
    pub(crate) fn health_json(&self) -> HealthJson {
        self.lock().health_json()
    }
}

#[cfg(test)]
#[path = "board_tests.rs"]
mod tests;
