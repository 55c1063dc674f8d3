//! An emulator of the parts of the Mattermost REST API v4 that a presence
//! integration uses, on `127.0.0.1:<ephemeral port>`, with the documented
//! rules and error bodies:
//!
//! * **Tokens**: `Authorization: Bearer <token>` (or `Token <token>`); a
//!   missing or unknown token → 401 `api.context.session_expired.app_error`.
//! * **Users**: `GET /api/v4/users/me`, `/users/{id}`, `/users/email/{email}`
//!   (unknown e-mail → 404 `app.user.missing_account.const`). The custom
//!   status is in `props.customStatus` as a JSON string, as the server keeps it.
//! * **Status**: `GET`/`PUT /api/v4/users/{id}/status` (`online`, `away`,
//!   `offline`, `dnd`; `dnd_end_time` in seconds; `online` is not manual);
//!   `PUT`/`DELETE /api/v4/users/{id}/status/custom`. Changing another user
//!   needs System Admin, or `edit_other_users` for a target that is not an
//!   admin; otherwise 403 `api.context.permissions.app_error`.
//! * **Channels and posts**: `GET /api/v4/teams/name/{team}/channels/name/{channel}`,
//!   `POST /api/v4/posts` (201; the poster must be a member).
//! * **Rate limit** (optional): `X-Ratelimit-Limit`, `-Remaining` and
//!   `-Reset` (seconds from now) on every answer; over the limit → 429,
//!   plain text `limit exceeded`, with `Retry-After`.
//! * **Faults** on demand ([`Fault`]): 429 with a reset, 401, 403, 5xx;
//!   and an outage ([`MattermostEmulator::set_outage`]: connections refused).
//! * **Log**: every request with its answer ([`Recorded`]); tests wait on it
//!   ([`MattermostEmulator::wait_for`]) instead of sleeping.
//! * **By hand**: [`MattermostEmulator::set_status_by_hand`] and
//!   [`MattermostEmulator::set_custom_status_by_hand`] change a user as the
//!   user would in the app.

mod model;
mod server;

pub use model::{Account, Channel, CustomStatus, Post, Role, Status, DURATIONS};

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use model::Store;

/// The emulator could not start.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listening socket could not be bound.
    #[error("could not bind the emulator socket: {0}")]
    Bind(#[source] std::io::Error),
}

/// A rate limit: at most `requests` per fixed `window`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests allowed per window.
    pub requests: u32,
    /// The window.
    pub window: Duration,
}

/// Settings. The default has alice and bob (members), an admin bot with the
/// token `admin-token`, a member bot with `member-token`, and the channel
/// `acme/phones` with the admin bot in it.
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// Every account.
    pub accounts: Vec<Account>,
    /// `(token, account id)`.
    pub tokens: Vec<(String, String)>,
    /// Every channel.
    pub channels: Vec<Channel>,
    /// An optional rate limit.
    pub rate_limit: Option<RateLimit>,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            accounts: vec![
                Account::new(
                    "alice0000000000000000000a",
                    "alice",
                    "alice@contoso.com",
                    Role::Member,
                ),
                Account::new(
                    "bob000000000000000000000b",
                    "bob",
                    "bob@contoso.com",
                    Role::Member,
                ),
                Account::new(
                    "sipbot00000000000000000bt",
                    "sipbot",
                    "sipbot@localhost",
                    Role::SystemAdmin,
                ),
                Account::new(
                    "plainbot0000000000000000p",
                    "plainbot",
                    "plainbot@localhost",
                    Role::Member,
                ),
            ],
            tokens: vec![
                ("admin-token".into(), "sipbot00000000000000000bt".into()),
                ("member-token".into(), "plainbot0000000000000000p".into()),
            ],
            channels: vec![Channel {
                id: "phoneschannel000000000000c".into(),
                team: "acme".into(),
                name: "phones".into(),
                members: vec!["sipbot00000000000000000bt".into()],
            }],
            rate_limit: None,
        }
    }
}

/// A fault for the next requests (consumed in order).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// 429 `limit exceeded` with `Retry-After` and `X-Ratelimit-Reset` of
    /// `reset` (whole seconds, rounded up) and `X-Ratelimit-Remaining: 0`.
    RateLimited {
        /// Until the limit resets.
        reset: Duration,
    },
    /// 401 as for a revoked token.
    Unauthorized,
    /// 403 as for a missing permission.
    Forbidden,
    /// This server error (500, 502, 503…).
    ServerError(u16),
}

/// One request as the emulator saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// When it arrived.
    pub at: Instant,
    /// `GET`, `PUT`…
    pub method: String,
    /// The path (no query).
    pub path: String,
    /// The JSON body, when there was one.
    pub body: Option<serde_json::Value>,
    /// The answer's status code.
    pub status: u16,
}

impl Recorded {
    /// `"PUT /api/v4/users/x/status"`.
    pub fn line(&self) -> String {
        format!("{} {}", self.method, self.path)
    }
}

pub(crate) struct Shared {
    pub store: Mutex<Store>,
    pub tokens: Vec<(String, String)>,
    pub faults: Mutex<VecDeque<Fault>>,
    pub rate: Option<RateLimit>,
    /// Start of the current window and requests in it.
    pub window: Mutex<(Instant, u32)>,
    pub log: Mutex<Vec<Recorded>>,
    pub logged: Condvar,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

/// The running emulator; stops when dropped.
pub struct MattermostEmulator {
    shared: Arc<Shared>,
    addr: SocketAddr,
    server: Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl MattermostEmulator {
    /// Starts on `127.0.0.1` on a free port (inside a tokio runtime).
    pub async fn start(config: EmulatorConfig) -> Result<Self, EmulatorError> {
        let store = Store {
            accounts: config.accounts,
            channels: config.channels,
            ..Store::default()
        };
        let shared = Arc::new(Shared {
            store: Mutex::new(store),
            tokens: config.tokens,
            faults: Mutex::new(VecDeque::new()),
            rate: config.rate_limit,
            window: Mutex::new((Instant::now(), 0)),
            log: Mutex::new(Vec::new()),
            logged: Condvar::new(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(EmulatorError::Bind)?;
        let addr = listener.local_addr().map_err(EmulatorError::Bind)?;
        let task = tokio::spawn(server::serve(listener, shared.clone()));
        Ok(Self {
            shared,
            addr,
            server: Mutex::new(Some(task)),
        })
    }

    /// `http://127.0.0.1:<port>` (what `MATTERMOST_URL` takes).
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queues `fault` for the next request (after those queued before).
    pub fn fail_next(&self, fault: Fault) {
        lock(&self.shared.faults).push_back(fault);
    }

    /// Outage on: the socket closes (connections refused). Off: it listens
    /// again on the same port. Call inside the runtime that started it.
    pub async fn set_outage(&self, down: bool) -> Result<(), EmulatorError> {
        let running = lock(&self.server).take();
        if let Some(task) = running {
            task.abort();
            let _ = task.await;
        }
        if !down {
            let listener = tokio::net::TcpListener::bind(self.addr)
                .await
                .map_err(EmulatorError::Bind)?;
            *lock(&self.server) = Some(tokio::spawn(server::serve(listener, self.shared.clone())));
        }
        Ok(())
    }

    /// The user `email` sets `status` in the app (manual unless `online`).
    pub fn set_status_by_hand(&self, email: &str, status: &str) {
        let mut store = lock(&self.shared.store);
        if let Some(id) = store.by_email(email).map(|a| a.id.clone()) {
            store.statuses.insert(
                id.clone(),
                Status {
                    user_id: id,
                    status: status.to_owned(),
                    manual: status != "online",
                    last_activity_at: chrono::Utc::now().timestamp_millis(),
                    dnd_end_time: 0,
                },
            );
        }
    }

    /// The user `email` sets (or with `None` clears) a custom status in the app.
    pub fn set_custom_status_by_hand(&self, email: &str, custom: Option<CustomStatus>) {
        let mut store = lock(&self.shared.store);
        if let Some(id) = store.by_email(email).map(|a| a.id.clone()) {
            match custom {
                Some(c) => store.custom.insert(id, c),
                None => store.custom.remove(&id),
            };
        }
    }

    /// The status `email` shows (`offline` for a user never seen).
    pub fn status_of(&self, email: &str) -> Option<Status> {
        let store = lock(&self.shared.store);
        let id = store.by_email(email)?.id.clone();
        Some(store.status(&id))
    }

    /// The custom status `email` shows.
    pub fn custom_status_of(&self, email: &str) -> Option<CustomStatus> {
        let store = lock(&self.shared.store);
        let id = store.by_email(email)?.id.clone();
        store.custom.get(&id).cloned()
    }

    /// Every post, oldest first.
    pub fn posts(&self) -> Vec<Post> {
        lock(&self.shared.store).posts.clone()
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<Recorded> {
        lock(&self.shared.log).clone()
    }

    /// Blocks (a test thread, not the runtime's) until a request recorded
    /// from index `from` on satisfies `matches`; returns its index and it,
    /// or `None` after `timeout`.
    pub fn wait_for(
        &self,
        from: usize,
        timeout: Duration,
        matches: impl Fn(&Recorded) -> bool,
    ) -> Option<(usize, Recorded)> {
        let deadline = Instant::now() + timeout;
        let mut log = lock(&self.shared.log);
        let mut checked = from;
        loop {
            if let Some(i) = (checked..log.len()).find(|&i| matches(&log[i])) {
                return Some((i, log[i].clone()));
            }
            checked = checked.max(log.len());
            let left = deadline.checked_duration_since(Instant::now())?;
            log = self
                .shared
                .logged
                .wait_timeout(log, left)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
    }
}

impl Drop for MattermostEmulator {
    fn drop(&mut self) {
        if let Some(task) = lock(&self.server).take() {
            task.abort();
        }
    }
}
