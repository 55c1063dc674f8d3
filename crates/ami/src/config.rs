//! What the client needs to know: credentials, event mask, timers, limits.

use std::fmt;
use std::time::Duration;

use crate::codec::Limits;

/// A manager secret. Its `Debug` and `Display` never show it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        Self(secret.into())
    }

    /// The secret itself, for the login only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl From<&str> for Secret {
    fn from(s: &str) -> Self {
        Self::new(s)
    }
}

impl From<String> for Secret {
    fn from(s: String) -> Self {
        Self(s)
    }
}

/// How to log in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Auth {
    /// `Action: Challenge` / `AuthType: MD5`, then `Login` with
    /// `Key = md5(challenge + secret)`: the secret never crosses the wire.
    #[default]
    Md5,
    /// `Login` with `Secret:` in clear text.
    Plain,
}

/// Client settings. [`Config::new`] gives the defaults; set the public
/// fields to change them. The secret is set by [`Config::new`] or
/// [`Config::set_secret`] and never shown (`Debug` prints `Secret(***)`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct Config {
    /// The `manager.conf` user.
    pub username: String,
    /// Its secret (redacted in `Debug`), private so that it cannot be read
    /// by accident.
    pub(crate) secret: Secret,
    /// MD5 challenge (default) or plain.
    pub auth: Auth,
    /// The `Events:` header of the login: `on`, `off`, or a comma list of
    /// lower-case classes such as `system,call,agent`. `None` sends no header
    /// (the server's default: every class the user may read).
    pub events: Option<String>,
    /// From the first input (or timeout call) to `Authentication accepted`
    /// (default 10 s; Asterisk answers a wrong secret after 1 s).
    pub login_timeout: Duration,
    /// How long an action may wait for its response, or a list between two
    /// items (default 10 s).
    pub action_timeout: Duration,
    /// A `Ping` after this long since the last answer (default 20 s);
    /// `None`: no keep-alive.
    pub ping_interval: Option<Duration>,
    /// How long the answer to a `Ping` may take (default 10 s); then the
    /// connection is declared dead.
    pub ping_timeout: Duration,
    /// Size limits on what the server sends.
    pub limits: Limits,
    /// The start of every `ActionID` (default `ami-`), then a counter.
    pub action_id_prefix: String,
}

impl Config {
    /// Defaults: MD5 login, no `Events:` header, 10 s login and action
    /// time-outs, a `Ping` every 20 s answered within 10 s.
    pub fn new(username: impl Into<String>, secret: impl Into<Secret>) -> Self {
        Self {
            username: username.into(),
            secret: secret.into(),
            auth: Auth::Md5,
            events: None,
            login_timeout: Duration::from_secs(10),
            action_timeout: Duration::from_secs(10),
            ping_interval: Some(Duration::from_secs(20)),
            ping_timeout: Duration::from_secs(10),
            limits: Limits::default(),
            action_id_prefix: "ami-".to_string(),
        }
    }

    /// The secret (its `Debug` and `Display` show `***`; read it with
    /// [`Secret::expose`]).
    pub fn secret(&self) -> &Secret {
        &self.secret
    }

    /// Replaces the secret.
    pub fn set_secret(&mut self, secret: impl Into<Secret>) {
        self.secret = secret.into();
    }
}
