//! The database sink's settings (`DATABASE_URL`, `DATABASE_HISTORY_DAYS`,
//! `DATABASE_NOTIFY_CHANNEL`), its line for `check`, and the sink built from
//! the extension list.
//!
//! The table has one row per extension (see the `line-store` crate):
//! [`open_sink`] connects, runs the migrations and prepares the rows (rows
//! of extensions no longer listed go, the others read `unknown` until their
//! first observation); call [`DatabaseSink::finish`] at a clean stop.

use std::fmt;

use line_store::{
    AddressBookError, DatabaseSink, LineIdentity, LineStore, StoreError, StoreOptions, Target,
};
use sip_blf_engine::AddressKey;

use crate::extensions::Extension;
use crate::problems::{Problem, Problems};
use crate::settings::{Env, Secret};

/// History kept when `DATABASE_HISTORY_DAYS` is not set.
pub const DEFAULT_HISTORY_DAYS: u32 = 7;
/// The notify channel when `DATABASE_NOTIFY_CHANNEL` is not set.
pub const DEFAULT_NOTIFY_CHANNEL: &str = "line_state";
/// The most history days accepted (a hundred years).
pub const MAX_HISTORY_DAYS: u32 = 36_500;

/// What to write for `DATABASE_URL`.
const URL_HELP: &str = "use sqlite://PATH (e.g. sqlite:///var/lib/sip-blf-sync/lines.db) \
                        or postgres://USER:PASSWORD@HOST:PORT/DB";

/// The database sink's settings. `Debug` never shows the password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseSettings {
    /// `DATABASE_URL` as given (contains the password, if any).
    pub url: Secret,
    /// `DATABASE_HISTORY_DAYS`: days of `line_events` kept; 0 = none.
    pub history_days: u32,
    /// `DATABASE_NOTIFY_CHANNEL`: the PostgreSQL `NOTIFY` channel.
    pub notify_channel: String,
}

impl fmt::Debug for DatabaseSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DatabaseSettings")
            .field("url", &self.redacted_url())
            .field("history_days", &self.history_days)
            .field("notify_channel", &self.notify_channel)
            .finish()
    }
}

impl DatabaseSettings {
    /// Reads the settings; `Ok(None)` when `DATABASE_URL` is not set (no
    /// database sink). Every problem is collected; none shows the password.
    pub fn from_env(env: &Env) -> Result<Option<DatabaseSettings>, Problems> {
        let Some(url) = env.get("DATABASE_URL") else {
            return Ok(None);
        };
        let mut problems = Problems::default();
        match Target::parse(url) {
            Ok(_) => {}
            Err(StoreError::BadUrl { reason }) => problems.push(Problem::in_var(
                "DATABASE_URL",
                format!("is not valid ({reason}): {URL_HELP}"),
            )),
            Err(_) => problems.push(Problem::in_var(
                "DATABASE_URL",
                format!("is not valid: {URL_HELP}"),
            )),
        }
        let history_days = match env.get("DATABASE_HISTORY_DAYS") {
            None => DEFAULT_HISTORY_DAYS,
            Some(v) => match v.parse::<u32>() {
                Ok(days) if days <= MAX_HISTORY_DAYS => days,
                _ => {
                    problems.push(Problem::in_var(
                        "DATABASE_HISTORY_DAYS",
                        format!(
                            "{v:?} is not a number of days; use a whole number from 0 (no \
                             history) to {MAX_HISTORY_DAYS}, e.g. {DEFAULT_HISTORY_DAYS}"
                        ),
                    ));
                    DEFAULT_HISTORY_DAYS
                }
            },
        };
        let notify_channel = match env.get("DATABASE_NOTIFY_CHANNEL") {
            None => DEFAULT_NOTIFY_CHANNEL.to_owned(),
            Some(c) if is_identifier(c) => c.to_owned(),
            Some(c) => {
                problems.push(Problem::in_var(
                    "DATABASE_NOTIFY_CHANNEL",
                    format!(
                        "{c:?} is not a plain SQL identifier; use 1 to 63 letters, digits or _, \
                         not starting with a digit, e.g. {DEFAULT_NOTIFY_CHANNEL}"
                    ),
                ));
                DEFAULT_NOTIFY_CHANNEL.to_owned()
            }
        };
        problems.into_result(Some(DatabaseSettings {
            url: Secret::new(url),
            history_days,
            notify_channel,
        }))
    }

    /// `DATABASE_URL` with its password replaced by `***`, for messages.
    pub fn redacted_url(&self) -> String {
        redact(self.url.expose())
    }

    /// The store's options.
    pub fn store_options(&self) -> StoreOptions {
        StoreOptions::default()
            .with_notify_channel(self.notify_channel.clone())
            .with_history_days(self.history_days)
    }

    /// Connects and runs the migrations.
    pub async fn connect(&self) -> Result<LineStore, StoreError> {
        LineStore::connect_with(self.url.expose(), self.store_options()).await
    }
}

/// A name `LISTEN` takes without quoting.
fn is_identifier(c: &str) -> bool {
    (1..=63).contains(&c.len())
        && c.chars().all(|ch| ch.is_ascii_alphanumeric() || ch == '_')
        && !c.starts_with(|ch: char| ch.is_ascii_digit())
}

/// `url` without the password of its user info.
pub(crate) fn redact(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let Some((userinfo, host)) = authority.rsplit_once('@') else {
        return url.to_owned();
    };
    match userinfo.split_once(':') {
        Some((user, _)) => format!("{scheme}://{user}:***@{host}{tail}"),
        None => url.to_owned(),
    }
}

/// For `check`: connects, runs the migrations, and says which backend and
/// how many rows `line_states` has; the error says what to fix.
pub async fn check_database(settings: &DatabaseSettings) -> Result<String, String> {
    let store = settings.connect().await.map_err(|e| e.to_string())?;
    let result = async {
        let rows = store.line_states().await?.len();
        let version = store.schema_version().await?;
        Ok::<_, StoreError>((rows, version))
    }
    .await;
    let backend = store.backend().name();
    store.close().await;
    let (rows, version) = result.map_err(|e| e.to_string())?;
    let history = match settings.history_days {
        0 => "no history".to_owned(),
        1 => "1 day of history".to_owned(),
        n => format!("{n} days of history"),
    };
    Ok(format!(
        "{backend} at {}: schema version {version}, {rows} row{} in line_states, {history}",
        settings.redacted_url(),
        if rows == 1 { "" } else { "s" },
    ))
}

/// The sink's address book from the extension list: each extension on
/// `system` (the name the SIP source reports), with its e-mail and name.
pub fn address_book(extensions: &[Extension], system: &str) -> Vec<(AddressKey, LineIdentity)> {
    extensions
        .iter()
        .map(|e| {
            (
                AddressKey::new(system, e.extension.clone()),
                LineIdentity {
                    extension: e.extension.clone(),
                    email: Some(e.email.clone()).filter(|m| !m.is_empty()),
                    name: e.name.clone(),
                },
            )
        })
        .collect()
}

/// The database sink could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenSinkError {
    /// Connecting, migrating or preparing the rows failed.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The extension list does not fit one row per extension.
    #[error(transparent)]
    AddressBook(#[from] AddressBookError),
}

/// Connects, runs the migrations, builds the sink for `extensions` on
/// `system` (rows name `source`, e.g. `sip`) and prepares the table
/// ([`DatabaseSink::prepare`]); add it to the runtime after, keep a clone,
/// and call [`DatabaseSink::finish`] on it after the runtime stopped.
pub async fn open_sink(
    settings: &DatabaseSettings,
    extensions: &[Extension],
    system: &str,
    source: &str,
) -> Result<DatabaseSink, OpenSinkError> {
    let store = settings.connect().await?;
    let sink = DatabaseSink::new(store, source, address_book(extensions, system))?;
    let deleted = sink.prepare().await?;
    if deleted > 0 {
        tracing::info!(
            rows = deleted,
            "database: deleted the rows of extensions no longer listed"
        );
    }
    Ok(sink)
}

#[cfg(test)]
#[path = "database_tests.rs"]
mod tests;
