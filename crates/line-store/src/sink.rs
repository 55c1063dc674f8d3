//! [`DatabaseSink`]: the engine's views as rows of `line_states`, one row
//! per extension.
//!
//! The engine gives the sink each person's [`View`]; the sink holds one row
//! per extension of that person that has reported anything
//! ([`View::lines`]) and is in the sink's address book. A batch of writes
//! from the engine's lane is one [`LineStore::write_batch`] transaction.
//!
//! ## A restart never leaves a stale row
//!
//! - [`DatabaseSink::prepare`], at start, before the sink is added to the
//!   runtime: deletes the rows of extensions that are no longer configured,
//!   sets every configured extension to `unknown` (nobody has vouched for
//!   it yet; the first observation replaces it), and prunes the history.
//! - [`DatabaseSink::finish`], at a clean stop, after the runtime stopped:
//!   sets every configured extension to `unknown`, since nobody keeps the
//!   rows up to date any more.
//!
//! A crash skips `finish`; the next start's `prepare` corrects the rows.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use sip_blf_engine::{AddressKey, LaneConfig, LineView, Sink, SinkError, View, Write, WriteReason};

use crate::{Direction, LineRow, LineState, LineStore, StoreError};

/// How long the sink gathers changes before it writes them in one
/// transaction (a batch of 500 goes at once).
pub const GATHER: Duration = Duration::from_millis(100);

/// How often the history is pruned while writes go on (history only grows
/// with writes, so pruning after a write is enough).
pub const PRUNE_EVERY: Duration = Duration::from_secs(3600);

/// Who is behind an address, as the table shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineIdentity {
    /// The extension: the row's key.
    pub extension: String,
    /// The person's e-mail, where known.
    pub email: Option<String>,
    /// The person's display name, where known.
    pub name: Option<String>,
}

/// The address book could not be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum AddressBookError {
    /// Two addresses would write the same row.
    #[error(
        "extension {extension} is listed for both {first} and {second}; the database table has \
         one row per extension: list each extension once"
    )]
    ExtensionTwice {
        /// The extension.
        extension: String,
        /// The first address with it.
        first: AddressKey,
        /// The second.
        second: AddressKey,
    },
    /// An entry without an extension.
    #[error("{address} has an empty extension: give every entry an extension")]
    EmptyExtension {
        /// The address.
        address: AddressKey,
    },
}

/// What the sink holds for one extension: a row of `line_states` without
/// its timestamps (so equal views are one write).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldLine {
    /// The extension.
    pub extension: String,
    /// The person's e-mail, where known.
    pub email: Option<String>,
    /// The person's display name, where known.
    pub name: Option<String>,
    /// The line's effective state.
    pub line_state: LineState,
    /// Do-not-disturb, where reported.
    pub dnd: Option<bool>,
    /// The other party's number (or name when it has no number), where known.
    pub counterparty: Option<String>,
    /// Which way the call goes, where known.
    pub direction: Option<Direction>,
}

impl HeldLine {
    fn unknown(id: &LineIdentity) -> HeldLine {
        HeldLine {
            extension: id.extension.clone(),
            email: id.email.clone(),
            name: id.name.clone(),
            line_state: LineState::Unknown,
            dnd: None,
            counterparty: None,
            direction: None,
        }
    }

    fn of(id: &LineIdentity, line: &LineView) -> HeldLine {
        HeldLine {
            extension: id.extension.clone(),
            email: id.email.clone(),
            name: id.name.clone(),
            line_state: line.line,
            dnd: line.dnd,
            counterparty: line.counterparty.as_ref().and_then(|p| {
                if p.number.is_empty() {
                    p.name.clone()
                } else {
                    Some(p.number.clone())
                }
            }),
            direction: line.direction.map(|d| match d {
                sip_blf_engine::Direction::Inbound => Direction::Inbound,
                sip_blf_engine::Direction::Outbound => Direction::Outbound,
            }),
        }
    }
}

/// The database sink: each person's lines as rows of `line_states` (one per
/// extension), with history and, on PostgreSQL, a notification per change.
///
/// Cloning is cheap and shares everything: keep a clone to call
/// [`finish`](Self::finish) after the runtime (which owns the other) stopped.
///
/// Write errors: a server that is away (connection refused, pool timeout,
/// I/O) is [`SinkError::Disconnected`], so the lane pauses and then replays
/// every view: that is the catch-up after an outage. Anything else
/// (SQLite locked or busy, a serialization failure, a refused statement) is
/// [`SinkError::Transient`] with the database's message: retried with
/// backoff, never given up.
#[derive(Debug, Clone)]
pub struct DatabaseSink {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    store: LineStore,
    source: String,
    book: BTreeMap<AddressKey, LineIdentity>,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    /// Per extension: the latest state the engine gave and since when.
    since: HashMap<String, (LineState, SystemTime)>,
    /// Per extension: what the table is known to hold.
    written: HashMap<String, HeldLine>,
    last_prune: Option<Instant>,
}

impl DatabaseSink {
    /// A sink writing to `store`, naming `source` (`sip`) in each row, for
    /// the addresses of `book` (address → extension, e-mail, name);
    /// addresses not in the book are left out of the table.
    pub fn new(
        store: LineStore,
        source: impl Into<String>,
        book: impl IntoIterator<Item = (AddressKey, LineIdentity)>,
    ) -> Result<DatabaseSink, AddressBookError> {
        let mut by_extension: HashMap<String, AddressKey> = HashMap::new();
        let mut map = BTreeMap::new();
        for (address, id) in book {
            if id.extension.is_empty() {
                return Err(AddressBookError::EmptyExtension { address });
            }
            if let Some(first) = by_extension.get(&id.extension) {
                if *first != address {
                    return Err(AddressBookError::ExtensionTwice {
                        extension: id.extension,
                        first: first.clone(),
                        second: address,
                    });
                }
            }
            by_extension.insert(id.extension.clone(), address.clone());
            map.insert(address, id);
        }
        Ok(DatabaseSink {
            shared: Arc::new(Shared {
                store,
                source: source.into(),
                book: map,
                state: Mutex::new(State::default()),
            }),
        })
    }

    /// The store written to.
    pub fn store(&self) -> &LineStore {
        &self.shared.store
    }

    /// The configured extensions, in address order.
    pub fn extensions(&self) -> impl Iterator<Item = &str> {
        self.shared.book.values().map(|id| id.extension.as_str())
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.shared
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// At start, before the sink is added to the runtime: deletes the rows
    /// of extensions no longer configured, sets every configured extension
    /// to `unknown` until its first observation, and prunes the history.
    /// Returns how many rows were deleted.
    pub async fn prepare(&self) -> Result<u64, StoreError> {
        let keep: Vec<String> = self.extensions().map(str::to_owned).collect();
        let deleted = self.shared.store.retain_extensions(&keep).await?;
        self.all_unknown().await?;
        self.prune(SystemTime::now()).await?;
        Ok(deleted)
    }

    /// At a clean stop, after the runtime stopped: every configured
    /// extension to `unknown`, since nobody keeps its row up to date now.
    pub async fn finish(&self) -> Result<(), StoreError> {
        self.all_unknown().await
    }

    async fn all_unknown(&self) -> Result<(), StoreError> {
        let now = SystemTime::now();
        let held: Vec<HeldLine> = self.shared.book.values().map(HeldLine::unknown).collect();
        let rows: Vec<LineRow> = held.iter().map(|h| self.row(h, now, now)).collect();
        self.shared.store.write_batch(&rows).await?;
        let mut state = self.state();
        for h in held {
            state
                .since
                .insert(h.extension.clone(), (LineState::Unknown, now));
            state.written.insert(h.extension.clone(), h);
        }
        Ok(())
    }

    async fn prune(&self, now: SystemTime) -> Result<u64, StoreError> {
        self.state().last_prune = Some(Instant::now());
        self.shared.store.prune_history(now).await
    }

    fn row(&self, h: &HeldLine, since: SystemTime, now: SystemTime) -> LineRow {
        LineRow {
            extension: h.extension.clone(),
            email: h.email.clone(),
            name: h.name.clone(),
            line_state: h.line_state,
            dnd: h.dnd,
            counterparty: h.counterparty.clone(),
            direction: h.direction,
            source: self.shared.source.clone(),
            since,
            updated_at: now,
        }
    }

    /// Closes the store's connections once no other clone is left (the
    /// runtime's is dropped when it stops); otherwise they close with the
    /// last clone.
    pub async fn close(self) {
        if let Ok(shared) = Arc::try_unwrap(self.shared) {
            shared.store.close().await;
        }
    }
}

/// How a store error reaches the lane (see [`DatabaseSink`]).
pub(crate) fn sink_error(e: &StoreError) -> SinkError {
    match e {
        StoreError::Unreachable { .. } => SinkError::disconnected(e.to_string()),
        StoreError::Query { detail, .. } => {
            let d = detail.to_ascii_lowercase();
            // SQLITE_BUSY (5) and SQLITE_LOCKED (6)
            if d.contains("database is locked")
                || d.contains("database table is locked")
                || d.contains("(code: 5)")
                || d.contains("(code: 6)")
            {
                SinkError::transient(format!(
                    "{e}; the SQLite file is locked by another program: retrying"
                ))
            } else if d.contains("could not serialize") || d.contains("deadlock detected") {
                SinkError::transient(format!("{e}; a concurrent transaction won: retrying"))
            } else {
                SinkError::transient(format!("{e}; retrying"))
            }
        }
        other => SinkError::transient(format!("{other}; retrying")),
    }
}

/// The wall-clock time of `at`, a moment on the monotonic clock.
fn wall(at: Instant) -> SystemTime {
    let ago = Instant::now().saturating_duration_since(at);
    SystemTime::now()
        .checked_sub(ago)
        .unwrap_or_else(SystemTime::now)
}

impl Sink for DatabaseSink {
    type Held = Vec<HeldLine>;

    fn name(&self) -> &str {
        "database"
    }

    /// Gathers changes for [`GATHER`] into one transaction: a table is read
    /// by people and web apps, not on a call path, and a transaction per
    /// change would cost the machine far more than a batch (see the
    /// `write_rate` example), time the SIP and Graph paths need.
    fn lane_config(&self, default: &LaneConfig) -> LaneConfig {
        default
            .clone()
            .with_linger(GATHER)
            .with_max_batch(default.max_batch.max(500))
    }

    fn desired(&self, view: &View) -> Option<Vec<HeldLine>> {
        let held: Vec<HeldLine> = view
            .lines
            .iter()
            .filter_map(|line| {
                let id = self.shared.book.get(&line.address)?;
                Some(HeldLine::of(id, line))
            })
            .collect();
        if held.is_empty() {
            return None;
        }
        // a line state's `since` is when the engine first gave it
        let now = SystemTime::now();
        let mut state = self.state();
        for h in &held {
            let entry = state
                .since
                .entry(h.extension.clone())
                .or_insert((h.line_state, now));
            if entry.0 != h.line_state {
                *entry = (h.line_state, now);
            }
        }
        Some(held)
    }

    async fn write(&self, batch: Vec<Write<Vec<HeldLine>>>) -> Vec<Result<(), SinkError>> {
        let now = SystemTime::now();
        let rows: Vec<LineRow> = {
            let state = self.state();
            batch
                .iter()
                .flat_map(|w| w.held.iter().map(move |h| (w, h)))
                // a row the table holds already is not written again
                // (another phone of the person changed), unless replayed
                .filter(|(w, h)| {
                    w.reason == WriteReason::Replay || state.written.get(&h.extension) != Some(*h)
                })
                .map(|(w, h)| {
                    let since = match state.since.get(&h.extension) {
                        Some((s, t)) if *s == h.line_state => *t,
                        _ => wall(w.caused_at),
                    };
                    self.row(h, since, now)
                })
                .collect()
        };
        match self.shared.store.write_batch(&rows).await {
            Ok(()) => {
                let prune_due = {
                    let mut state = self.state();
                    for h in batch.iter().flat_map(|w| w.held.iter()) {
                        state.written.insert(h.extension.clone(), h.clone());
                    }
                    state.last_prune.is_none_or(|t| t.elapsed() >= PRUNE_EVERY)
                };
                if prune_due {
                    if let Err(e) = self.prune(now).await {
                        tracing::warn!(error = %e, "database history prune failed; retried in an hour");
                    }
                }
                batch.iter().map(|_| Ok(())).collect()
            }
            Err(e) => {
                let error = sink_error(&e);
                {
                    // the commit may or may not have happened: written
                    // again next time
                    let mut state = self.state();
                    if matches!(error, SinkError::Disconnected { .. }) {
                        state.written.clear();
                    } else {
                        for h in batch.iter().flat_map(|w| w.held.iter()) {
                            state.written.remove(&h.extension);
                        }
                    }
                }
                batch.iter().map(|_| Err(error.clone())).collect()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_a_lost_connection_and_a_lock_is_transient() {
        let away = StoreError::Unreachable {
            server: "db:5432".into(),
            detail: "connection refused".into(),
        };
        assert!(matches!(sink_error(&away), SinkError::Disconnected { .. }));
        let locked = StoreError::Query {
            action: "write",
            detail: "error returned from database: (code: 5) database is locked".into(),
        };
        let e = sink_error(&locked);
        assert!(matches!(e, SinkError::Transient { .. }), "{e:?}");
        assert!(e.to_string().contains("locked by another program"), "{e}");
        let refused = StoreError::Query {
            action: "write",
            detail: "refused by a trigger".into(),
        };
        assert!(matches!(sink_error(&refused), SinkError::Transient { .. }));
    }
}
