//! The PostgreSQL backend: a small pool; a batch is three statements over
//! arrays (upsert, history, notify), so its cost hardly grows with its size.

use std::time::Duration;

use chrono::{DateTime, Utc};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions, PgSslMode};
use sqlx::{Connection, PgConnection, PgPool, Row};

use crate::error::Peer;
use crate::migrations::{latest, POSTGRES};
use crate::sqlite::{direction, state};
use crate::target::{PgTarget, SslMode};
use crate::{last_per_extension, to_utc, Direction, LineEvent, LineRow, StoreError};

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a write waits for a connection while the server is away before
/// it fails (and the caller retries later).
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(5);
/// Serialises migrations of several services starting at once.
const MIGRATION_LOCK: i64 = 0x6c69_6e65_7374_6f72; // "linestor"

#[derive(Debug)]
pub(crate) struct Store {
    pool: PgPool,
    peer: Peer,
}

impl Store {
    pub(crate) async fn open(t: PgTarget) -> Result<Store, StoreError> {
        let peer = Peer {
            server: t.server(),
            user: t.user.clone(),
            database: t.database.clone(),
            password: t.password.clone(),
        };
        let mut options = PgConnectOptions::new_without_pgpass()
            .host(&t.host)
            .port(t.port)
            .username(&t.user)
            .database(&t.database)
            .application_name("sip-blf-sync")
            .ssl_mode(match t.sslmode {
                SslMode::Disable => PgSslMode::Disable,
                SslMode::Prefer => PgSslMode::Prefer,
                SslMode::Require => PgSslMode::Require,
            });
        if let Some(p) = &t.password {
            options = options.password(p);
        }
        // one plain connection first: a wrong login or a server that is not
        // there is reported at once (the pool would retry until its timeout)
        let probe = tokio::time::timeout(CONNECT_TIMEOUT, PgConnection::connect_with(&options))
            .await
            .map_err(|_| StoreError::Unreachable {
                server: peer.server.clone(),
                detail: format!("no answer within {CONNECT_TIMEOUT:?}"),
            })?
            .map_err(|e| peer.connect_error(e))?;
        let _ = probe.close().await;
        let pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect_with(options)
            .await
            .map_err(|e| peer.connect_error(e))?;
        let store = Store { pool, peer };
        store.migrate().await?;
        Ok(store)
    }

    fn err(&self, action: &'static str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
        move |e| self.peer.query_error(action, e)
    }

    async fn migrate(&self) -> Result<(), StoreError> {
        let err = self.err("migration");
        let mut tx = self.pool.begin().await.map_err(&err)?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(MIGRATION_LOCK)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        // Executor::execute with a plain string runs unprepared, several
        // statements at once, as raw_sql does; raw_sql's generic async fn is
        // not provably Send inside a spawned caller's future.
        sqlx::Executor::execute(
            &mut *tx,
            "CREATE TABLE IF NOT EXISTS line_store_migrations (
                version bigint PRIMARY KEY,
                description text NOT NULL,
                applied_at timestamptz NOT NULL DEFAULT now())",
        )
        .await
        .map_err(&err)?;
        let found: i64 = sqlx::query_scalar(
            "SELECT COALESCE(MAX(version), 0)::bigint FROM line_store_migrations",
        )
        .fetch_one(&mut *tx)
        .await
        .map_err(&err)?;
        let known = latest(POSTGRES);
        if found > known {
            return Err(StoreError::SchemaTooNew { found, known });
        }
        for m in POSTGRES.iter().filter(|m| m.version > found) {
            let failed = |e: sqlx::Error| StoreError::Migration {
                version: m.version,
                description: m.description,
                detail: self.peer.redact(e.to_string()),
            };
            sqlx::Executor::execute(&mut *tx, m.sql)
                .await
                .map_err(failed)?;
            sqlx::query("INSERT INTO line_store_migrations (version, description) VALUES ($1, $2)")
                .bind(m.version)
                .bind(m.description)
                .execute(&mut *tx)
                .await
                .map_err(failed)?;
        }
        tx.commit().await.map_err(&err)
    }

    pub(crate) async fn write_batch(
        &self,
        rows: &[LineRow],
        history: bool,
        channel: &str,
    ) -> Result<(), StoreError> {
        let err = self.err("write");
        let mut tx = self.pool.begin().await.map_err(&err)?;

        // one row per extension in the upsert: ON CONFLICT may not touch a
        // row twice in one statement
        let last = last_per_extension(rows);
        let c = Columns::of(last.iter().copied());
        sqlx::query(
            "INSERT INTO line_states (extension, email, name, line_state, dnd, counterparty, direction, source, since, updated_at)
             SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $5::boolean[],
                                  $6::text[], $7::text[], $8::text[], $9::timestamptz[], $10::timestamptz[])
             ON CONFLICT (extension) DO UPDATE SET
                email = excluded.email, name = excluded.name, line_state = excluded.line_state,
                dnd = excluded.dnd, counterparty = excluded.counterparty, direction = excluded.direction,
                source = excluded.source, since = excluded.since, updated_at = excluded.updated_at",
        )
        .bind(c.extension)
        .bind(c.email)
        .bind(c.name)
        .bind(c.line_state)
        .bind(c.dnd)
        .bind(c.counterparty)
        .bind(c.direction)
        .bind(c.source)
        .bind(c.since)
        .bind(c.updated_at)
        .execute(&mut *tx)
        .await
        .map_err(&err)?;

        if history {
            let c = Columns::of(rows.iter());
            sqlx::query(
                "INSERT INTO line_events (extension, line_state, dnd, counterparty, direction, source, at)
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::boolean[], $4::text[], $5::text[],
                                      $6::text[], $7::timestamptz[])",
            )
            .bind(c.extension)
            .bind(c.line_state)
            .bind(c.dnd)
            .bind(c.counterparty)
            .bind(c.direction)
            .bind(c.source)
            .bind(c.updated_at)
            .execute(&mut *tx)
            .await
            .map_err(&err)?;
        }

        // delivered to listeners at commit, in this order, never on rollback
        let payloads: Vec<String> = rows.iter().map(LineRow::notify_payload).collect();
        sqlx::query(
            "SELECT pg_notify($1, p) FROM UNNEST($2::text[]) WITH ORDINALITY AS n(p, i) ORDER BY i",
        )
        .bind(channel)
        .bind(payloads)
        .execute(&mut *tx)
        .await
        .map_err(&err)?;

        tx.commit().await.map_err(&err)
    }

    pub(crate) async fn prune(&self, cutoff: DateTime<Utc>) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM line_events WHERE at < $1")
            .bind(cutoff)
            .execute(&self.pool)
            .await
            .map_err(self.err("history prune"))?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn retain(&self, keep: &[String]) -> Result<u64, StoreError> {
        let done = sqlx::query("DELETE FROM line_states WHERE NOT (extension = ANY($1::text[]))")
            .bind(keep)
            .execute(&self.pool)
            .await
            .map_err(self.err("delete"))?;
        Ok(done.rows_affected())
    }

    pub(crate) async fn line_states(&self) -> Result<Vec<LineRow>, StoreError> {
        let err = self.err("read");
        let rows = sqlx::query(
            "SELECT extension, email, name, line_state, dnd, counterparty, direction, source, since, updated_at
             FROM line_states ORDER BY extension",
        )
        .fetch_all(&self.pool)
        .await
        .map_err(&err)?;
        rows.iter()
            .map(|row| {
                Ok(LineRow {
                    extension: row.try_get("extension").map_err(&err)?,
                    email: row.try_get("email").map_err(&err)?,
                    name: row.try_get("name").map_err(&err)?,
                    line_state: state(row.try_get("line_state").map_err(&err)?)?,
                    dnd: row.try_get("dnd").map_err(&err)?,
                    counterparty: row.try_get("counterparty").map_err(&err)?,
                    direction: direction(row.try_get("direction").map_err(&err)?)?,
                    source: row.try_get("source").map_err(&err)?,
                    since: row
                        .try_get::<DateTime<Utc>, _>("since")
                        .map_err(&err)?
                        .into(),
                    updated_at: row
                        .try_get::<DateTime<Utc>, _>("updated_at")
                        .map_err(&err)?
                        .into(),
                })
            })
            .collect()
    }

    pub(crate) async fn history(&self, extension: &str) -> Result<Vec<LineEvent>, StoreError> {
        let err = self.err("read");
        let rows = sqlx::query(
            "SELECT extension, line_state, dnd, counterparty, direction, source, at
             FROM line_events WHERE extension = $1 ORDER BY at, id",
        )
        .bind(extension)
        .fetch_all(&self.pool)
        .await
        .map_err(&err)?;
        rows.iter()
            .map(|row| {
                Ok(LineEvent {
                    extension: row.try_get("extension").map_err(&err)?,
                    line_state: state(row.try_get("line_state").map_err(&err)?)?,
                    dnd: row.try_get("dnd").map_err(&err)?,
                    counterparty: row.try_get("counterparty").map_err(&err)?,
                    direction: direction(row.try_get("direction").map_err(&err)?)?,
                    source: row.try_get("source").map_err(&err)?,
                    at: row.try_get::<DateTime<Utc>, _>("at").map_err(&err)?.into(),
                })
            })
            .collect()
    }

    pub(crate) async fn schema_version(&self) -> Result<i64, StoreError> {
        sqlx::query_scalar("SELECT COALESCE(MAX(version), 0)::bigint FROM line_store_migrations")
            .fetch_one(&self.pool)
            .await
            .map_err(self.err("read"))
    }

    pub(crate) async fn close(self) {
        self.pool.close().await;
    }
}

/// A batch turned into one array per column, for `UNNEST`.
struct Columns {
    extension: Vec<String>,
    email: Vec<Option<String>>,
    name: Vec<Option<String>>,
    line_state: Vec<&'static str>,
    dnd: Vec<Option<bool>>,
    counterparty: Vec<Option<String>>,
    direction: Vec<Option<&'static str>>,
    source: Vec<String>,
    since: Vec<DateTime<Utc>>,
    updated_at: Vec<DateTime<Utc>>,
}

impl Columns {
    fn of<'a>(rows: impl Iterator<Item = &'a LineRow>) -> Columns {
        let mut c = Columns {
            extension: Vec::new(),
            email: Vec::new(),
            name: Vec::new(),
            line_state: Vec::new(),
            dnd: Vec::new(),
            counterparty: Vec::new(),
            direction: Vec::new(),
            source: Vec::new(),
            since: Vec::new(),
            updated_at: Vec::new(),
        };
        for r in rows {
            c.extension.push(r.extension.clone());
            c.email.push(r.email.clone());
            c.name.push(r.name.clone());
            c.line_state.push(r.line_state.as_str());
            c.dnd.push(r.dnd);
            c.counterparty.push(r.counterparty.clone());
            c.direction.push(r.direction.map(Direction::as_str));
            c.source.push(r.source.clone());
            c.since.push(to_utc(r.since));
            c.updated_at.push(to_utc(r.updated_at));
        }
        c
    }
}
