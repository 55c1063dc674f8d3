//! `DATABASE_URL` → which database, parsed here so that the driver never
//! sees (nor echoes) the password.

use std::path::PathBuf;

use crate::StoreError;

/// What a `DATABASE_URL` points at.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Target {
    /// An SQLite file.
    Sqlite {
        /// The file (relative to the working directory unless absolute).
        path: PathBuf,
    },
    /// A PostgreSQL database.
    Postgres(PgTarget),
}

/// The parts of a `postgres://` URL.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PgTarget {
    /// Host name or address.
    pub host: String,
    /// Port (default 5432).
    pub port: u16,
    /// User name.
    pub user: String,
    /// Password, if any (never printed: `Debug` shows `***`); private so
    /// that it is read on purpose only ([`PgTarget::password`]).
    pub(crate) password: Option<String>,
    /// Database name (default: the user name, as libpq does).
    pub database: String,
    /// TLS: `disable`, `prefer` (default) or `require`.
    pub sslmode: SslMode,
}

/// How TLS is used towards PostgreSQL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SslMode {
    /// Never.
    Disable,
    /// If the server offers it.
    Prefer,
    /// Always; fail otherwise.
    Require,
}

impl std::fmt::Debug for Target {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Target::Sqlite { path } => f.debug_struct("Sqlite").field("path", path).finish(),
            Target::Postgres(pg) => f.debug_tuple("Postgres").field(pg).finish(),
        }
    }
}

impl std::fmt::Debug for PgTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgTarget")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("user", &self.user)
            .field("password", &self.password.as_ref().map(|_| "***"))
            .field("database", &self.database)
            .field("sslmode", &self.sslmode)
            .finish()
    }
}

impl PgTarget {
    /// The password, if any: for the login only, never for a message.
    pub fn password(&self) -> Option<&str> {
        self.password.as_deref()
    }

    /// `host:port`, for messages.
    pub fn server(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

fn bad(reason: impl Into<String>) -> StoreError {
    StoreError::BadUrl {
        reason: reason.into(),
    }
}

impl Target {
    /// Parses `sqlite://PATH` or `postgres://USER[:PASSWORD]@HOST[:PORT]/DB[?sslmode=…]`.
    pub fn parse(url: &str) -> Result<Target, StoreError> {
        let url = url.trim();
        let Some((scheme, rest)) = url.split_once("://") else {
            return Err(bad("no scheme"));
        };
        match scheme.to_ascii_lowercase().as_str() {
            "sqlite" => {
                // sqlite://lines.db is relative, sqlite:///var/lib/x.db absolute
                let path = rest.split('?').next().unwrap_or_default();
                if path.is_empty() {
                    return Err(bad("sqlite:// without a file path"));
                }
                if path == ":memory:" || path.starts_with("file:") {
                    return Err(bad(format!(
                        "{path:?} is not a file path; an in-memory database would lose every row at restart"
                    )));
                }
                Ok(Target::Sqlite {
                    path: PathBuf::from(path),
                })
            }
            "postgres" | "postgresql" => Target::parse_pg(url).map(Target::Postgres),
            other => Err(bad(format!("unknown scheme {other:?}"))),
        }
    }

    fn parse_pg(text: &str) -> Result<PgTarget, StoreError> {
        // the url crate's own message never contains the input
        let url = url::Url::parse(text).map_err(|e| bad(e.to_string()))?;
        let host = url
            .host_str()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| bad("no host"))?
            .trim_matches(|c| c == '[' || c == ']')
            .to_owned();
        let decode = |s: &str| {
            url::form_urlencoded::parse(format!("x={}", s.replace('+', "%2B")).as_bytes())
                .next()
                .map(|(_, v)| v.into_owned())
                .unwrap_or_default()
        };
        let user = decode(url.username());
        if user.is_empty() {
            return Err(bad("no user name (postgres://USER@HOST/DB)"));
        }
        let password = url.password().map(decode);
        let database = match url.path().trim_start_matches('/') {
            "" => user.clone(),
            db if db.contains('/') => return Err(bad("the database name contains '/'")),
            db => decode(db),
        };
        let mut sslmode = SslMode::Prefer;
        for (key, value) in url.query_pairs() {
            match (key.as_ref(), value.as_ref()) {
                ("sslmode", "disable") => sslmode = SslMode::Disable,
                ("sslmode", "prefer") => sslmode = SslMode::Prefer,
                ("sslmode", "require") => sslmode = SslMode::Require,
                ("sslmode", other) => {
                    return Err(bad(format!(
                        "sslmode={other} is not supported: use disable, prefer or require"
                    )))
                }
                (other, _) => return Err(bad(format!("unknown parameter {other:?}"))),
            }
        }
        Ok(PgTarget {
            host,
            port: url.port().unwrap_or(5432),
            user,
            password,
            database,
            sslmode,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_paths_relative_and_absolute() {
        assert_eq!(
            Target::parse("sqlite://lines.db").ok(),
            Some(Target::Sqlite {
                path: "lines.db".into()
            })
        );
        assert_eq!(
            Target::parse("sqlite:///var/lib/x/lines.db").ok(),
            Some(Target::Sqlite {
                path: "/var/lib/x/lines.db".into()
            })
        );
    }

    #[test]
    fn postgres_parts_with_defaults() {
        let Ok(Target::Postgres(pg)) =
            Target::parse("postgres://blf:s%40cret@db.example:6543/lines?sslmode=require")
        else {
            panic!("not parsed");
        };
        assert_eq!(pg.host, "db.example");
        assert_eq!(pg.port, 6543);
        assert_eq!(pg.user, "blf");
        assert_eq!(pg.password.as_deref(), Some("s@cret"));
        assert_eq!(pg.database, "lines");
        assert_eq!(pg.sslmode, SslMode::Require);
        assert!(!format!("{pg:?}").contains("cret"));

        let Ok(Target::Postgres(pg)) = Target::parse("postgresql://blf@127.0.0.1") else {
            panic!("not parsed");
        };
        assert_eq!((pg.port, pg.database.as_str()), (5432, "blf"));
        assert_eq!(pg.password, None);
        assert_eq!(pg.server(), "127.0.0.1:5432");
    }

    #[test]
    fn bad_urls_say_what_to_use_and_hide_the_password() {
        for (url, reason) in [
            ("lines.db", "no scheme"),
            ("mysql://u:hunter2@h/db", "unknown scheme"),
            ("sqlite://", "without a file path"),
            ("sqlite://:memory:", "in-memory"),
            ("postgres://:hunter2@h/db", "no user name"),
            (
                "postgres://u:hunter2@h/db?sslmode=verify-full",
                "sslmode=verify-full",
            ),
            ("postgres://u:hunter2@h/db?pool=3", "unknown parameter"),
            ("postgres://u:hunter2@h:99999/db", "invalid port"),
        ] {
            let msg = Target::parse(url).unwrap_err().to_string();
            assert!(msg.contains(reason), "{url}: {msg}");
            assert!(msg.contains("use sqlite://PATH or postgres://"), "{msg}");
            assert!(!msg.contains("hunter2"), "{msg}");
        }
    }
}
