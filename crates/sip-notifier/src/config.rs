//! Configuration of a [`Notifier`](crate::Notifier).

use std::fmt;
use std::time::Duration;

use sip_proto::digest::Algorithm;
use sip_proto::Timers;

/// A SIP account that may REGISTER and SUBSCRIBE. `Debug` hides the password.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// User name (also the digest user name).
    pub user: String,
    /// Password.
    pub password: String,
}

impl Account {
    /// An account.
    pub fn new(user: impl Into<String>, password: impl Into<String>) -> Self {
        Self {
            user: user.into(),
            password: password.into(),
        }
    }
}

impl fmt::Debug for Account {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Account")
            .field("user", &self.user)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// How the notifier behaves. Start from [`NotifierConfig::new`] and change fields.
#[derive(Debug, Clone)]
pub struct NotifierConfig {
    /// Digest realm and SIP domain (`entity="sip:EXT@realm"`).
    pub realm: String,
    /// Who may REGISTER and SUBSCRIBE.
    pub accounts: Vec<Account>,
    /// Challenge every REGISTER and SUBSCRIBE (401 with a digest challenge). Default `true`.
    pub require_auth: bool,
    /// Algorithms offered in a challenge, one `WWW-Authenticate` each, strongest first
    /// (RFC 8760 §2.4). Default SHA-256 then MD5.
    pub algorithms: Vec<Algorithm>,
    /// Extensions that can be subscribed to from the start (more come with
    /// [`Notifier::set_line`](crate::Notifier::set_line)); others get 404.
    pub extensions: Vec<String>,
    /// Expiry granted when a request names none, seconds. Default 3600.
    pub default_expires: u32,
    /// Shortest expiry accepted (a shorter non-zero one gets 423 with `Min-Expires`). Default 60.
    pub min_expires: u32,
    /// Longest expiry granted (longer requests are shortened). Default 3600.
    pub max_expires: u32,
    /// How long a nonce is accepted; after that the answer gets `stale=true`. Default 300 s.
    pub nonce_lifetime: Duration,
    /// RFC 3261 timers of the NOTIFY transactions (retransmission, Timer F).
    pub timers: Timers,
    /// `Server` and `User-Agent` header.
    pub server_name: String,
    /// Report [`NotifierEvent::NotifyAnswered`](crate::NotifierEvent::NotifyAnswered)
    /// for every answered NOTIFY. Turn off for load generation: the counters in
    /// [`NotifierStats`](crate::NotifierStats) still count them.
    pub notify_events: bool,
}

impl NotifierConfig {
    /// Defaults: authentication required, SHA-256 and MD5 offered, expiries
    /// 60..=3600 s (3600 by default), nonces valid 300 s, RFC 3261 timers.
    pub fn new(realm: impl Into<String>, accounts: Vec<Account>) -> Self {
        Self {
            realm: realm.into(),
            accounts,
            require_auth: true,
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            extensions: Vec::new(),
            default_expires: 3600,
            min_expires: 60,
            max_expires: 3600,
            nonce_lifetime: Duration::from_secs(300),
            timers: Timers::default(),
            server_name: concat!("sip-notifier/", env!("CARGO_PKG_VERSION")).to_string(),
            notify_events: true,
        }
    }

    /// The same configuration with these extensions known from the start.
    pub fn with_extensions<I, S>(mut self, extensions: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.extensions
            .extend(extensions.into_iter().map(Into::into));
        self
    }
}
