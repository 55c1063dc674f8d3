//! PBX line state in a database table that web phones, wallboards and CRMs
//! read: the database side of sip-blf-sync's database sink.
//!
//! [`LineStore::connect`] takes a `DATABASE_URL`:
//!
//! - `sqlite://PATH` (relative) or `sqlite:///ABSOLUTE/PATH`: an embedded
//!   SQLite file, created on first start; needs no server.
//! - `postgres://USER:PASSWORD@HOST:PORT/DB` (or `postgresql://`), with an
//!   optional `?sslmode=disable|prefer|require`.
//!
//! Versioned migrations run at connect. Then [`LineStore::write_batch`]
//! writes a burst of changes in **one transaction**: each row is upserted
//! into `line_states` (one row per extension), appended to `line_events`
//! (history kept [`StoreOptions::history_days`] days, 0 = none; see
//! [`LineStore::prune_history`]) and, on PostgreSQL, announced with
//! `pg_notify(channel, payload)` where the payload is JSON
//! `{"extension":…,"line_state":…,"counterparty":…,"at":…}`, so that a web
//! app can `LISTEN line_state`. Notifications are delivered at commit, so a
//! listener never sees a change the table does not have. All SQL takes its
//! values as bound parameters.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use line_store::{LineRow, LineState, LineStore};
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let url = format!("sqlite://{}", dir.path().join("lines.db").display());
//! let store = LineStore::connect(&url).await?;
//!
//! let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
//! let mut row = LineRow::new("1001", LineState::Ringing, "sip", now);
//! row.email = Some("alice@example.com".into());
//! row.counterparty = Some("1002".into());
//! store.write_batch(&[row.clone()]).await?;
//! row.line_state = LineState::Busy;
//! store.write_batch(&[row]).await?;
//!
//! let lines = store.line_states().await?;
//! assert_eq!(lines.len(), 1);
//! assert_eq!(lines[0].line_state, LineState::Busy);
//! assert_eq!(store.history("1001").await?.len(), 2);
//! store.close().await;
//! # Ok(()) }
//! ```
//!
//! ## The sink
//!
//! [`DatabaseSink`] is the engine's database sink
//! ([`sip_blf_engine::Sink`]): each person's lines become rows of
//! `line_states`, one per extension, a batch is one transaction, and
//! [`DatabaseSink::prepare`] / [`DatabaseSink::finish`] make sure a restart
//! leaves no stale row. See its docs.
//!
//! ## Why sqlx
//!
//! One well-kept crate gives both backends behind the same async API, with
//! bound parameters everywhere, a connection pool, and `LISTEN` built in
//! (`sqlx::postgres::PgListener`, which a reader of the notifications can
//! use). rusqlite + tokio-postgres would mean two APIs, a blocking SQLite
//! call to move off the runtime, and a hand-driven connection future for
//! notifications. sqlx is used without its compile-time-checked macros (they
//! need a database at build time) and without its migrator (the schema
//! differs per backend; the migrations are a short versioned list of our
//! own); SQLite is compiled in (`bundled`), so nothing has to be installed.
//! The cost is build time: about a minute more on 2 cores, once.
//!
//! ## Tables
//!
//! | `line_states` | |
//! | --- | --- |
//! | `extension` | primary key |
//! | `email`, `name` | the person, where known |
//! | `line_state` | `idle`, `ringing`, `busy`, `hold`, `offline` or `unknown` |
//! | `dnd` | do-not-disturb, where known (NULL otherwise) |
//! | `counterparty` | the other party's number or name, where known |
//! | `direction` | `inbound` or `outbound`, where known |
//! | `source` | which source reported it (e.g. `sip`) |
//! | `since` | when the line entered this state |
//! | `updated_at` | when this row was last written |
//!
//! `line_events` has an `id`, `extension`, `line_state`, `dnd`,
//! `counterparty`, `direction`, `source` and `at` (indexed). Timestamps are
//! `timestamptz` on PostgreSQL and UTC text `YYYY-MM-DDTHH:MM:SS.ffffffZ`
//! (which sorts as time) on SQLite; both keep microseconds, so a time read
//! back has lost its nanoseconds.
//!
//! ## Errors
//!
//! [`StoreError`] says what to fix and never contains the password. A
//! server that is away, before or after connect, is
//! [`StoreError::Unreachable`]; with [`StoreError::Query`] (e.g. SQLite
//! locked by another program for longer than 5 s) it is
//! [`StoreError::is_transient`]: the caller keeps the batch and retries, and
//! the pool opens a new connection by itself once the server is back.

mod error;
mod migrations;
mod postgres;
mod sink;
mod sqlite;
mod target;

use std::time::SystemTime;

use chrono::{DateTime, Utc};

pub use error::StoreError;
pub use sink::{AddressBookError, DatabaseSink, HeldLine, LineIdentity, GATHER, PRUNE_EVERY};
pub use target::{PgTarget, SslMode, Target};

/// The state of one line, as stored in `line_state`: the engine's own
/// [`sip_blf_engine::LineState`], so that the sink and the table speak of
/// the same six states. Its `as_str` is the stored text; the text parses
/// back with `str::parse`.
pub use sip_blf_engine::LineState;

/// Which way the current call goes, seen from the extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// The extension is called.
    Inbound,
    /// The extension calls.
    Outbound,
}

impl Direction {
    /// The text stored in the table.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::Inbound => "inbound",
            Direction::Outbound => "outbound",
        }
    }

    /// Parses the stored text; `None` for anything else.
    pub fn parse(text: &str) -> Option<Direction> {
        [Direction::Inbound, Direction::Outbound]
            .into_iter()
            .find(|d| d.as_str() == text)
    }
}

/// One extension's line as written to `line_states` (and, per change, to
/// `line_events`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRow {
    /// The extension (primary key).
    pub extension: String,
    /// The person's e-mail, where known.
    pub email: Option<String>,
    /// The person's name, where known.
    pub name: Option<String>,
    /// The line state.
    pub line_state: LineState,
    /// Do-not-disturb, where known.
    pub dnd: Option<bool>,
    /// The other party's number or name, where known.
    pub counterparty: Option<String>,
    /// Which way the call goes, where known.
    pub direction: Option<Direction>,
    /// Which source reported it.
    pub source: String,
    /// When the line entered this state.
    pub since: SystemTime,
    /// When this change was observed: the row's `updated_at`, the event's
    /// `at` and the notification's `at`.
    pub updated_at: SystemTime,
}

impl LineRow {
    /// A row with the optional columns empty and `since` = `updated_at` = `at`.
    pub fn new(
        extension: impl Into<String>,
        line_state: LineState,
        source: impl Into<String>,
        at: SystemTime,
    ) -> LineRow {
        LineRow {
            extension: extension.into(),
            email: None,
            name: None,
            line_state,
            dnd: None,
            counterparty: None,
            direction: None,
            source: source.into(),
            since: at,
            updated_at: at,
        }
    }

    /// The JSON payload of this change's notification.
    pub fn notify_payload(&self) -> String {
        let payload = |counterparty: Option<&str>| {
            serde_json::json!({
                "extension": self.extension,
                "line_state": self.line_state.as_str(),
                "counterparty": counterparty,
                "at": rfc3339(self.updated_at),
            })
            .to_string()
        };
        let full = payload(self.counterparty.as_deref());
        // PostgreSQL refuses payloads of 8000 bytes or more, which would
        // fail the whole batch: an absurdly long counterparty is left out
        if full.len() < NOTIFY_MAX {
            full
        } else {
            payload(None)
        }
    }
}

/// PostgreSQL's payload limit (bytes, exclusive).
pub(crate) const NOTIFY_MAX: usize = 8000;

/// One row of `line_events`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineEvent {
    /// The extension.
    pub extension: String,
    /// The state it changed to.
    pub line_state: LineState,
    /// Do-not-disturb, where known.
    pub dnd: Option<bool>,
    /// The other party, where known.
    pub counterparty: Option<String>,
    /// Which way the call goes, where known.
    pub direction: Option<Direction>,
    /// Which source reported it.
    pub source: String,
    /// When it was observed.
    pub at: SystemTime,
}

/// Settings of a [`LineStore`]. [`StoreOptions::default`] gives the
/// defaults; the `with_*` methods (or the public fields) change them.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreOptions {
    /// PostgreSQL `NOTIFY` channel (default `line_state`); unused on SQLite.
    pub notify_channel: String,
    /// Days of `line_events` history to keep (default 7); 0 = no history.
    pub history_days: u32,
}

impl Default for StoreOptions {
    fn default() -> Self {
        StoreOptions {
            notify_channel: "line_state".into(),
            history_days: 7,
        }
    }
}

impl StoreOptions {
    /// Sets [`notify_channel`](Self::notify_channel).
    pub fn with_notify_channel(mut self, channel: impl Into<String>) -> Self {
        self.notify_channel = channel.into();
        self
    }

    /// Sets [`history_days`](Self::history_days).
    pub fn with_history_days(mut self, days: u32) -> Self {
        self.history_days = days;
        self
    }

    fn check(&self) -> Result<(), StoreError> {
        let c = &self.notify_channel;
        let ok = (1..=63).contains(&c.len())
            && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
            && !c.starts_with(|ch: char| ch.is_ascii_digit());
        if ok {
            Ok(())
        } else {
            Err(StoreError::BadChannel(c.clone()))
        }
    }
}

/// Which kind of database a [`LineStore`] writes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Backend {
    /// Embedded SQLite.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Backend {
    /// Its name for people: `SQLite`, `PostgreSQL`.
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "SQLite",
            Backend::Postgres => "PostgreSQL",
        }
    }
}

/// A connection (pool) to the line-state database, migrated and ready.
#[derive(Debug)]
pub struct LineStore {
    inner: Inner,
    options: StoreOptions,
}

#[derive(Debug)]
enum Inner {
    Sqlite(sqlite::Store),
    Postgres(postgres::Store),
}

impl LineStore {
    /// Connects with the default [`StoreOptions`] and runs the migrations.
    pub async fn connect(url: &str) -> Result<LineStore, StoreError> {
        LineStore::connect_with(url, StoreOptions::default()).await
    }

    /// Connects to `url` (see the crate docs), creating an SQLite file if
    /// there is none, and runs the migrations.
    pub async fn connect_with(url: &str, options: StoreOptions) -> Result<LineStore, StoreError> {
        options.check()?;
        let inner = match Target::parse(url)? {
            Target::Sqlite { path } => Inner::Sqlite(sqlite::Store::open(path).await?),
            Target::Postgres(pg) => Inner::Postgres(postgres::Store::open(pg).await?),
        };
        Ok(LineStore { inner, options })
    }

    /// Which backend this is.
    pub fn backend(&self) -> Backend {
        match self.inner {
            Inner::Sqlite(_) => Backend::Sqlite,
            Inner::Postgres(_) => Backend::Postgres,
        }
    }

    /// The options in force.
    pub fn options(&self) -> &StoreOptions {
        &self.options
    }

    /// Writes a burst of changes in one transaction: every row upserted into
    /// `line_states` (a later row for the same extension wins), appended to
    /// `line_events` unless `history_days` is 0, and on PostgreSQL notified
    /// on the channel. On error nothing of the batch is written.
    pub async fn write_batch(&self, rows: &[LineRow]) -> Result<(), StoreError> {
        if rows.is_empty() {
            return Ok(());
        }
        let history = self.options.history_days > 0;
        match &self.inner {
            Inner::Sqlite(s) => s.write_batch(rows, history).await,
            Inner::Postgres(s) => {
                s.write_batch(rows, history, &self.options.notify_channel)
                    .await
            }
        }
    }

    /// Deletes the `line_events` older than `history_days` before `now`
    /// (all of them when `history_days` is 0); returns how many.
    pub async fn prune_history(&self, now: SystemTime) -> Result<u64, StoreError> {
        let days = i64::from(self.options.history_days);
        let cutoff = to_utc(now) - chrono::Duration::days(days);
        match &self.inner {
            Inner::Sqlite(s) => s.prune(cutoff).await,
            Inner::Postgres(s) => s.prune(cutoff).await,
        }
    }

    /// Deletes the `line_states` rows of every extension not in `keep`
    /// (their history stays until pruned; nothing is notified); returns how
    /// many.
    pub async fn retain_extensions(&self, keep: &[String]) -> Result<u64, StoreError> {
        match &self.inner {
            Inner::Sqlite(s) => s.retain(keep).await,
            Inner::Postgres(s) => s.retain(keep).await,
        }
    }

    /// Every row of `line_states`, by extension.
    pub async fn line_states(&self) -> Result<Vec<LineRow>, StoreError> {
        match &self.inner {
            Inner::Sqlite(s) => s.line_states().await,
            Inner::Postgres(s) => s.line_states().await,
        }
    }

    /// The `line_events` of `extension`, oldest first.
    pub async fn history(&self, extension: &str) -> Result<Vec<LineEvent>, StoreError> {
        match &self.inner {
            Inner::Sqlite(s) => s.history(extension).await,
            Inner::Postgres(s) => s.history(extension).await,
        }
    }

    /// The schema version the database is at.
    pub async fn schema_version(&self) -> Result<i64, StoreError> {
        match &self.inner {
            Inner::Sqlite(s) => s.schema_version().await,
            Inner::Postgres(s) => s.schema_version().await,
        }
    }

    /// Closes every connection (waits for those in use).
    pub async fn close(self) {
        match self.inner {
            Inner::Sqlite(s) => s.close().await,
            Inner::Postgres(s) => s.close().await,
        }
    }
}

pub(crate) fn to_utc(t: SystemTime) -> DateTime<Utc> {
    DateTime::<Utc>::from(t)
}

/// UTC, microseconds, `Z`: sorts as time when compared as text.
pub(crate) fn rfc3339(t: SystemTime) -> String {
    to_utc(t).format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string()
}

/// Rows whose extension does not come again later in `rows`: what the
/// table holds after the batch, in one statement that touches each row once.
pub(crate) fn last_per_extension(rows: &[LineRow]) -> Vec<&LineRow> {
    let mut seen = std::collections::HashSet::new();
    let mut last: Vec<&LineRow> = rows
        .iter()
        .rev()
        .filter(|r| seen.insert(r.extension.as_str()))
        .collect();
    last.reverse();
    last
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_round_trip_through_their_text() {
        for s in LineState::ALL {
            assert_eq!(s.as_str().parse::<LineState>(), Ok(s));
        }
        assert_eq!(Direction::parse("outbound"), Some(Direction::Outbound));
    }

    #[test]
    fn timestamps_are_fixed_width_utc() {
        let t = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_800_000_000_500);
        assert_eq!(rfc3339(t), "2027-01-15T08:00:00.500000Z");
    }

    #[test]
    fn a_huge_counterparty_is_left_out_of_the_payload() {
        let mut row = LineRow::new("1001", LineState::Busy, "sip", SystemTime::UNIX_EPOCH);
        row.counterparty = Some("9".repeat(10_000));
        let p: serde_json::Value = serde_json::from_str(&row.notify_payload()).unwrap_or_default();
        assert_eq!(p["counterparty"], serde_json::Value::Null);
        assert_eq!(p["extension"], "1001");
        assert_eq!(p["at"], "1970-01-01T00:00:00.000000Z");
    }

    #[test]
    fn channels_must_be_plain_identifiers() {
        let with = |c: &str| StoreOptions {
            notify_channel: c.into(),
            history_days: 7,
        };
        assert!(with("line_state").check().is_ok());
        for bad in ["", "1x", "a b", "x;DROP", &"a".repeat(64)] {
            assert!(
                matches!(with(bad).check(), Err(StoreError::BadChannel(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn the_last_row_of_an_extension_wins() {
        let t = SystemTime::UNIX_EPOCH;
        let rows = [
            LineRow::new("1", LineState::Ringing, "s", t),
            LineRow::new("2", LineState::Busy, "s", t),
            LineRow::new("1", LineState::Busy, "s", t),
        ];
        let last: Vec<(&str, LineState)> = last_per_extension(&rows)
            .iter()
            .map(|r| (r.extension.as_str(), r.line_state))
            .collect();
        assert_eq!(last, [("2", LineState::Busy), ("1", LineState::Busy)]);
    }
}
