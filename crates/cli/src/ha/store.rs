//! The lease row in PostgreSQL: `ha_lease(name, holder, epoch, expires_at)`,
//! every expiry on the database's clock (`now()`).

use std::time::Duration;

use sqlx::postgres::PgConnection;
use sqlx::Connection as _;

use super::lease::{Answer, Request};
use crate::settings::Secret;

/// Why the database did not answer.
#[derive(Debug, thiserror::Error)]
pub enum LeaseStoreError {
    /// Connecting or a statement failed.
    #[error("{0}")]
    Database(String),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    TimedOut(Duration),
}

const CREATE: &str = "CREATE TABLE IF NOT EXISTS ha_lease (
    name text PRIMARY KEY,
    holder text NOT NULL,
    epoch bigint NOT NULL,
    expires_at timestamptz NOT NULL)";

/// The row exists from the start, expired, so that taking it is one UPDATE.
const INSERT: &str = "INSERT INTO ha_lease (name, holder, epoch, expires_at)
    VALUES ($1, '', 0, '-infinity') ON CONFLICT (name) DO NOTHING";

/// Taken only when expired on the database's clock; a new epoch fences the old holder.
const ACQUIRE: &str = "UPDATE ha_lease
    SET holder = $2, epoch = epoch + 1, expires_at = now() + $3 * interval '1 millisecond'
    WHERE name = $1 AND expires_at < now() RETURNING epoch";

/// Extended only by the holder of the same epoch.
const RENEW: &str = "UPDATE ha_lease
    SET expires_at = now() + $4 * interval '1 millisecond'
    WHERE name = $1 AND holder = $2 AND epoch = $3 RETURNING epoch";

/// Given back at a clean stop, so the standby need not wait for the expiry.
const RELEASE: &str = "UPDATE ha_lease SET expires_at = '-infinity'
    WHERE name = $1 AND holder = $2 AND epoch = $3";

/// One connection to the lease's database, opened again after any failure.
pub struct LeaseStore {
    url: Secret,
    name: String,
    holder: String,
    lease_ms: i64,
    patience: Duration,
    conn: Option<PgConnection>,
}

impl LeaseStore {
    /// The lease `name` taken as `holder` for `lease`; each answer awaited
    /// at most `patience`.
    pub fn new(url: Secret, name: &str, holder: &str, lease: Duration, patience: Duration) -> Self {
        Self {
            url,
            name: name.to_owned(),
            holder: holder.to_owned(),
            lease_ms: i64::try_from(lease.as_millis()).unwrap_or(i64::MAX),
            patience,
            conn: None,
        }
    }

    /// Sends `request`; any failure (the connection is then dropped) is
    /// [`Answer::Failed`] to the machine, and returned here for the log.
    pub async fn ask(&mut self, request: Request) -> Result<Answer, LeaseStoreError> {
        let patience = self.patience;
        match tokio::time::timeout(patience, self.ask_once(request)).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.conn = None;
                Err(LeaseStoreError::Database(e.to_string()))
            }
            Err(_) => {
                self.conn = None;
                Err(LeaseStoreError::TimedOut(patience))
            }
        }
    }

    async fn ask_once(&mut self, request: Request) -> Result<Answer, sqlx::Error> {
        let (name, holder, lease_ms) = (self.name.clone(), self.holder.clone(), self.lease_ms);
        let conn = self.connection().await?;
        let row: Option<(i64,)> = match request {
            Request::Acquire => {
                sqlx::query_as(ACQUIRE)
                    .bind(&name)
                    .bind(&holder)
                    .bind(lease_ms)
                    .fetch_optional(&mut *conn)
                    .await?
            }
            Request::Renew { epoch } => {
                sqlx::query_as(RENEW)
                    .bind(&name)
                    .bind(&holder)
                    .bind(epoch)
                    .bind(lease_ms)
                    .fetch_optional(&mut *conn)
                    .await?
            }
        };
        Ok(match row {
            Some((epoch,)) => Answer::Granted { epoch },
            None => Answer::Refused,
        })
    }

    /// Gives the lease of `epoch` back (best effort).
    pub async fn release(&mut self, epoch: i64) -> Result<(), LeaseStoreError> {
        let patience = self.patience;
        let run = async {
            let (name, holder) = (self.name.clone(), self.holder.clone());
            let conn = self.connection().await?;
            sqlx::query(RELEASE)
                .bind(name)
                .bind(holder)
                .bind(epoch)
                .execute(&mut *conn)
                .await
        };
        match tokio::time::timeout(patience, run).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(LeaseStoreError::Database(e.to_string())),
            Err(_) => Err(LeaseStoreError::TimedOut(patience)),
        }
    }

    async fn connection(&mut self) -> Result<&mut PgConnection, sqlx::Error> {
        if self.conn.is_none() {
            let mut conn = PgConnection::connect(self.url.expose()).await?;
            // Two instances starting together may race to create the table.
            if let Err(e) = sqlx::query(CREATE).execute(&mut conn).await {
                tracing::debug!("creating ha_lease: {e}");
            }
            sqlx::query(INSERT)
                .bind(&self.name)
                .execute(&mut conn)
                .await?;
            self.conn = Some(conn);
        }
        match self.conn.as_mut() {
            Some(c) => Ok(c),
            None => Err(sqlx::Error::PoolClosed),
        }
    }
}
