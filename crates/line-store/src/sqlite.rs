//! The SQLite backend: one file, one connection, WAL so that readers (a web
//! app, `sqlite3`) do not block the writer.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, SystemTime};

use chrono::{DateTime, Utc};
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous};
use sqlx::{Row, SqlitePool};

use crate::migrations::{latest, SQLITE};
use crate::{last_per_extension, rfc3339, Direction, LineEvent, LineRow, LineState, StoreError};

/// Rows per INSERT: 10 columns each stays far below SQLite's limit of
/// 32,766 bound parameters.
const ROWS_PER_STATEMENT: usize = 100;

/// How long a write waits for another process's lock before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub(crate) struct Store {
    pool: SqlitePool,
}

fn query_error(action: &'static str, e: sqlx::Error) -> StoreError {
    StoreError::Query {
        action,
        detail: e.to_string(),
    }
}

impl Store {
    pub(crate) async fn open(path: PathBuf) -> Result<Store, StoreError> {
        let open_error = |e: sqlx::Error| StoreError::SqliteOpen {
            path: path.clone(),
            detail: e.to_string(),
        };
        let options = SqliteConnectOptions::from_str("sqlite:")
            .map_err(open_error)?
            .filename(&path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // with WAL, NORMAL loses no committed write on a crash of the
            // process, only (maybe) the last ones on a power cut
            .synchronous(SqliteSynchronous::Normal)
            .busy_timeout(BUSY_TIMEOUT)
            .foreign_keys(true);
        // one connection: the writes are serialised anyway, and a second
        // connection of our own would only meet our own lock
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(open_error)?;
        let store = Store { pool };
        store.migrate().await?;
        Ok(store)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let mut tx = self
            .pool
            .begin()
            .await
            .map_err(|e| query_error("migration", e))?;
        // Executor::execute with a plain string runs unprepared, several
        // statements at once, as raw_sql does; raw_sql's generic async fn is
        // not provably Send inside a spawned caller's future.
        sqlx::Executor::execute(
            &mut *tx,
            "CREATE TABLE IF NOT EXISTS line_store_migrations (
                version INTEGER PRIMARY KEY NOT NULL,
                description TEXT NOT NULL,
                applied_at TEXT NOT NULL)",
        )
        .await
        .map_err(|e| query_error("migration", e))?;
        let found: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM line_store_migrations")
                .fetch_one(&mut *tx)
                .await
                .map_err(|e| query_error("migration", e))?;
        let known = latest(SQLITE);
        if found > known {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        for m in SQLITE.iter().filter(|m| m.version > found) {
            let failed = |e: sqlx::Error| StoreError::Migration {
                version: m.version,
                description: m.description,
                detail: e.to_string(),
            };
            sqlx::Executor::execute(&mut *tx, m.sql)
                .await
                .map_err(failed)?;
            sqlx::query("INSERT INTO line_store_migrations (version, description, applied_at) VALUES (?1, ?2, ?3)")
                .bind(m.version)
                .bind(m.description)
                .bind(rfc3339(SystemTime::now()))
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        tx.commit().await.map_err(|e| query_error("migration", e))
    }

    pub(crate) async fn write_batch(
        &self,
        rows: &[LineRow],
        history: bool,
    ) -> Result<(), StoreError> {
        let err = |e| query_error("write", e);
        let mut tx = self.pool.begin().await.map_err(err)?;
        // many rows per statement: each statement is a hand-over to sqlx's
        // SQLite thread, which is what a burst would otherwise wait on
        let last = last_per_extension(rows);
        for chunk in last.chunks(ROWS_PER_STATEMENT) {
            let sql = format!(
                "INSERT INTO line_states (extension, email, name, line_state, dnd, counterparty, direction, source, since, updated_at)
                 VALUES {}
                 ON CONFLICT (extension) DO UPDATE SET
                    email = excluded.email, name = excluded.name, line_state = excluded.line_state,
                    dnd = excluded.dnd, counterparty = excluded.counterparty, direction = excluded.direction,
                    source = excluded.source, since = excluded.since, updated_at = excluded.updated_at",
                placeholders(chunk.len(), 10)
            );
            let mut q = sqlx::query(&sql);
            for r in chunk {
                q = q
                    .bind(&r.extension)
                    .bind(&r.email)
                    .bind(&r.name)
                    .bind(r.line_state.as_str())
                    .bind(r.dnd)
                    .bind(&r.counterparty)
                    .bind(r.direction.map(Direction::as_str))
                    .bind(&r.source)
                    .bind(rfc3339(r.since))
                    .bind(rfc3339(r.updated_at));
            }
            q.execute(&mut *tx).await.map_err(err)?;
        }
        if history {
            for chunk in rows.chunks(ROWS_PER_STATEMENT) {
                let sql = format!(
                    "INSERT INTO line_events (extension, line_state, dnd, counterparty, direction, source, at) VALUES {}",
                    placeholders(chunk.len(), 7)
                );
                let mut q = sqlx::query(&sql);
                for r in chunk {
                    q = q
                        .bind(&r.extension)
                        .bind(r.line_state.as_str())
                        .bind(r.dnd)
                        .bind(&r.counterparty)
                        .bind(r.direction.map(Direction::as_str))
                        .bind(&r.source)
                        .bind(rfc3339(r.updated_at));
                }
                q.execute(&mut *tx).await.map_err(err)?;
            }
        }
        tx.commit().await.map_err(err)
    }

    pub(crate) async fn prune(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let cutoff = rfc3339(cutoff.into());
        let done = sqlx::query("DELETE FROM line_events WHERE at < ?1")
            .bind(cutoff)
            .execute(&self.pool)
            .await
            .map_err(|e| query_error("history prune", e))?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn retain(&self, keep: &[String]) -> Result<u64, StoreError> {
        let keep = serde_json::to_string(keep).map_err(|e| StoreError::Query {
            action: "delete",
            detail: e.to_string(),
        })?;
        let done = sqlx::query(
            "DELETE FROM line_states WHERE extension NOT IN (SELECT value FROM json_each(?1))",
        )
        .bind(keep)
        .execute(&self.pool)
        .await
        .map_err(|e| query_error("delete", e))?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn line_states(&self) -> Result<Vec<LineRow>, StoreError> {
        let err = |e| query_error("read", e);
        let rows = sqlx::query(
            "SELECT extension, email, name, line_state, dnd, counterparty, direction, source, since, updated_at
             FROM line_states ORDER BY extension",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|row| {
                Ok(LineRow {
                    extension: row.try_get("extension").map_err(err)?,
                    email: row.try_get("email").map_err(err)?,
                    name: row.try_get("name").map_err(err)?,
                    line_state: state(row.try_get("line_state").map_err(err)?)?,
                    dnd: row.try_get("dnd").map_err(err)?,
                    counterparty: row.try_get("counterparty").map_err(err)?,
                    direction: direction(row.try_get("direction").map_err(err)?)?,
                    source: row.try_get("source").map_err(err)?,
                    since: time(row.try_get("since").map_err(err)?)?,
                    updated_at: time(row.try_get("updated_at").map_err(err)?)?,
                })
            })
            .collect()
    }

    pub(crate) async fn history(&self, extension: &str) -> Result<Vec<LineEvent>, StoreError> {
        let err = |e| query_error("read", e);
        let rows = sqlx::query(
            "SELECT extension, line_state, dnd, counterparty, direction, source, at
             FROM line_events WHERE extension = ?1 ORDER BY at, id",
        )
        .bind(extension)
        .fetch_all(&self.pool)
        .await
        .map_err(err)?;
        rows.iter()
            .map(|row| {
                Ok(LineEvent {
                    extension: row.try_get("extension").map_err(err)?,
                    line_state: state(row.try_get("line_state").map_err(err)?)?,
                    dnd: row.try_get("dnd").map_err(err)?,
                    counterparty: row.try_get("counterparty").map_err(err)?,
                    direction: direction(row.try_get("direction").map_err(err)?)?,
                    source: row.try_get("source").map_err(err)?,
                    at: time(row.try_get("at").map_err(err)?)?,
                })
            })
            .collect()
    }

    pub(crate) async fn schema_version(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0) FROM line_store_migrations")
            .fetch_one(&self.pool)
            .await
            .map_err(|e| query_error("read", e))
    }

    pub(crate) async fn close(self) {
        self.pool.close().await;
    }
}

fn unexpected(what: &str, value: &str) -> StoreError {
    StoreError::Query {
        action: "read",
        detail: format!("unexpected {what} {value:?} in the table"),
    }
}

pub(crate) fn state(text: String) -> Result<LineState, StoreError> {
    text.parse::<LineState>()
        .map_err(|_| unexpected("line_state", &text))
}

pub(crate) fn direction(text: Option<String>) -> Result<Option<Direction>, StoreError> {
    text.map(|t| Direction::parse(&t).ok_or_else(|| unexpected("direction", &t)))
        .transpose()
}

fn time(text: String) -> Result<SystemTime, StoreError> {
    DateTime::parse_from_rfc3339(&text)
        .map(|t| SystemTime::from(t.with_timezone(&Utc)))
        .map_err(|_| unexpected("timestamp", &text))
}

/// `(?, ?, …), (?, ?, …)`: `rows` groups of `columns` placeholders (only
/// placeholders: every value is bound).
fn placeholders(rows: usize, columns: usize) -> String {
    let group = format!("({})", vec!["?"; columns].join(", "));
    vec![group; rows].join(", ")
}

#[cfg(test)]
mod tests {
    #[test]
    fn placeholders_make_groups() {
        assert_eq!(super::placeholders(2, 3), "(?, ?, ?), (?, ?, ?)");
    }
}
