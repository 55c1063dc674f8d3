//! What can go wrong, each with what to fix. Never carries a password.

use std::path::PathBuf;

/// Errors of [`crate::LineStore`]. Every message names what to fix; none
/// contains the password of `DATABASE_URL`.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// `DATABASE_URL` could not be understood.
    #[error("DATABASE_URL is not valid ({reason}): use sqlite://PATH or postgres://USER:PASSWORD@HOST:PORT/DB")]
    BadUrl {
        /// What is wrong with it.
        reason: String,
    },
    /// The notify channel is not a plain identifier that `LISTEN` can name.
    #[error("notify channel {0:?} is not valid: use 1 to 63 letters, digits or _ , not starting with a digit")]
    BadChannel(String),
    /// The SQLite file could not be opened or created.
    #[error("cannot open the SQLite database {}: {detail}; check that its directory exists and is writable, or fix DATABASE_URL", path.display())]
    SqliteOpen {
        /// The file.
        path: PathBuf,
        /// What SQLite said.
        detail: String,
    },
    /// No PostgreSQL server answered.
    #[error("cannot reach the PostgreSQL server at {server}: {detail}; check that it runs and that the host and port in DATABASE_URL are right")]
    Unreachable {
        /// `host:port`.
        server: String,
        /// What failed (connection refused, timeout, name lookup...).
        detail: String,
    },
    /// The server refused the user or the password.
    #[error("the PostgreSQL server at {server} refused the login of user {user:?}: {detail}; check the user and password in DATABASE_URL (and the server's pg_hba.conf)")]
    LoginRefused {
        /// `host:port`.
        server: String,
        /// The user name of `DATABASE_URL`.
        user: String,
        /// What the server said.
        detail: String,
    },
    /// The database named in the URL does not exist.
    #[error("database {database:?} does not exist on the PostgreSQL server at {server}: create it (createdb {database}) or fix the database name in DATABASE_URL")]
    NoSuchDatabase {
        /// `host:port`.
        server: String,
        /// The database name.
        database: String,
    },
    /// The database was migrated by a newer build.
    #[error("the database schema is at version {found}, newer than this build knows ({known}): upgrade sip-blf-sync or point DATABASE_URL at another database")]
    SchemaTooNew {
        /// Version found in the database.
        found: i64,
        /// The newest version this build has.
        known: i64,
    },
    /// A migration failed (and was rolled back).
    #[error("database migration {version} ({description}) failed: {detail}")]
    Migration {
        /// Its version.
        version: i64,
        /// What it does.
        description: &'static str,
        /// What the database said.
        detail: String,
    },
    /// A read or write failed (database down, locked, full...).
    #[error("database {action} failed: {detail}")]
    Query {
        /// What was being done.
        action: &'static str,
        /// What the driver said.
        detail: String,
    },
}

impl StoreError {
    /// Does retrying later make sense (server down, locked, busy), as
    /// opposed to a configuration that must be fixed first?
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            StoreError::Unreachable { .. } | StoreError::Query { .. }
        )
    }
}

/// Who we were talking to, to classify and word a driver error.
#[derive(Debug, Clone)]
pub(crate) struct Peer {
    pub(crate) server: String,
    pub(crate) user: String,
    pub(crate) database: String,
    /// Removed from any text taken from the driver, should it ever echo it.
    pub(crate) password: Option<String>,
}

impl Peer {
    pub(crate) fn redact(&self, text: String) -> String {
        match &self.password {
            Some(p) if !p.is_empty() => text.replace(p.as_str(), "***"),
            _ => text,
        }
    }

    /// A PostgreSQL error at connect time, sorted into what to fix.
    pub(crate) fn connect_error(&self, e: sqlx::Error) -> StoreError {
        let server = self.server.clone();
        match &e {
            sqlx::Error::Database(db) => match db.code().as_deref() {
                // invalid_password, invalid_authorization_specification
                Some("28P01") | Some("28000") => StoreError::LoginRefused {
                    server,
                    user: self.user.clone(),
                    detail: self.redact(db.message().to_owned()),
                },
                Some("3D000") => StoreError::NoSuchDatabase {
                    server,
                    database: self.database.clone(),
                },
                _ => StoreError::Query {
                    action: "connect",
                    detail: self.redact(e.to_string()),
                },
            },
            sqlx::Error::Io(_)
            | sqlx::Error::Tls(_)
            | sqlx::Error::Protocol(_)
            | sqlx::Error::PoolTimedOut => StoreError::Unreachable {
                server,
                detail: self.redact(e.to_string()),
            },
            _ => self.query_error("connect", e),
        }
    }

    /// A PostgreSQL error after connect: the server gone (or going) is
    /// [`StoreError::Unreachable`], anything else [`StoreError::Query`].
    pub(crate) fn query_error(&self, action: &'static str, e: sqlx::Error) -> StoreError {
        let gone = match &e {
            sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut => true,
            // admin_shutdown, crash_shutdown, cannot_connect_now
            sqlx::Error::Database(db) => {
                matches!(db.code().as_deref(), Some("57P01" | "57P02" | "57P03"))
            }
            _ => false,
        };
        if gone {
            StoreError::Unreachable {
                server: self.server.clone(),
                detail: self.redact(e.to_string()),
            }
        } else {
            StoreError::Query {
                action,
                detail: self.redact(e.to_string()),
            }
        }
    }
}
