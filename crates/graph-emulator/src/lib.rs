//! An emulator of the Microsoft Graph presence API and the Entra ID token endpoint.
//!
//! It serves, on `127.0.0.1:<ephemeral port>`, the client-credentials token endpoint and the
//! v1.0 presence routes, and it enforces the documented rules (collected with sources in the
//! project's Graph facts file):
//!
//! * **Tokens**: `POST /{tenant}/oauth2/v2.0/token` with `grant_type=client_credentials`,
//!   a `.default` scope and the client secret (or a client assertion) in the body. Errors have
//!   Entra's shape (`error`, `error_description` = `"AADSTSnnnn: …"`, `error_codes`): wrong
//!   secret → `invalid_client` 7000215 (HTTP 401), expired secret → 7000222, unknown client →
//!   `unauthorized_client` 700016, unknown tenant → 90002. Graph calls need a bearer token the
//!   emulator issued and that has not expired.
//! * **setPresence**: `sessionId` must equal the client id; only the five documented pairs;
//!   `expirationDuration` ISO 8601 within `PT5M`..=`PT4H` (default `PT5M`); otherwise 400.
//! * **Object ids only**: a UPN on a presence route gets **400 `BadRequest`** (Graph is reported
//!   to refuse UPNs there, msgraph-sdk-dotnet#1942, without a documented status; 400 was chosen
//!   because it is a caller bug that must not be retried). `GET /users/{upn}` resolves UPNs,
//!   guest `#EXT#` UPNs included (sent as `%23EXT%23`).
//! * **Sessions**: one app session per user with its expiry; an app-set `Available` fades to
//!   `Available/AvailableInactive` after 5 minutes and to `Away/Away` after 10; an expired
//!   session is gone (the user shows `Offline` when no session is left); `clearPresence` on a
//!   missing session → 404.
//! * **Aggregation**: user-preferred presence over sessions (only while a session exists);
//!   among sessions DoNotDisturb > Busy > Available > Away.
//! * **Limits**: `getPresencesByUserId` ≤ 650 ids; `$batch` ≤ 20 requests with unique ids,
//!   relative urls and a `Content-Type` header when a body is present; sub-responses come back
//!   in reverse order (deterministic, and different from the request order); each sub-request
//!   is throttled on its own (429 + `Retry-After` in the sub-response headers).
//! * **Permissions**: each call needs one of its application roles (`app_roles`), else 403;
//!   presence reads can be withheld on their own (a missing `Presence.Read.All`).
//! * **The user's own Teams activity**: Teams-client sessions (a call:
//!   [`GraphEmulator::start_teams_call`]) and the preferred presence the user picks.
//! * **Faults on demand**: 429 with `Retry-After`, 503 (with or without `Retry-After`), slow
//!   answers, 401, expired tokens, and an optional rate limit (N requests per window → 429
//!   with `Retry-After`).
//! * **Time**: the emulator clock is the real clock plus an offset that tests move forward
//!   with [`GraphEmulator::advance`], so session expiry and the Available timeout are tested
//!   without sleeping.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use graph_emulator::{EmulatorConfig, GraphEmulator};
//! use std::time::Duration;
//!
//! let emu = GraphEmulator::start(EmulatorConfig::default()).await?;
//! let alice = emu.config().users[0].object_id.clone();
//! // A test (or a demo) can put the user in a state and move time forward.
//! emu.set_client_session(&alice, "Available", "Available");
//! emu.set_user_preferred(&alice, "DoNotDisturb", "DoNotDisturb", Duration::from_secs(3600));
//! assert_eq!(emu.presence_of(&alice).map(|p| p.availability), Some("DoNotDisturb".into()));
//! emu.advance(Duration::from_secs(3601));
//! assert_eq!(emu.presence_of(&alice).map(|p| p.availability), Some("Available".into()));
//! println!("Graph at {}, tokens at {}", emu.base_url(), emu.authority_url());
//! # Ok(())
//! # }
//! ```

mod model;
mod server;

pub use model::{
    is_guid, parse_iso8601_duration, AppSession, Preferred, PresencePair, StatusMessage, UserState,
    AVAILABLE_TIMEOUT, MAX_EXPIRATION, MIN_EXPIRATION, PREFERRED_PAIRS, SET_PRESENCE_PAIRS,
};

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Errors from starting the emulator.
#[derive(Debug, thiserror::Error)]
pub enum EmulatorError {
    /// The listening socket could not be bound.
    #[error("could not bind the emulator socket: {0}")]
    Bind(#[source] std::io::Error),
    /// The configuration is inconsistent.
    #[error("invalid emulator configuration: {0}")]
    Config(String),
}

/// A user known to the emulated directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmulatedUser {
    /// The user principal name, e.g. `alice@contoso.com` or a guest `x_y.com#EXT#@contoso.onmicrosoft.com`.
    pub upn: String,
    /// The object id (a GUID).
    pub object_id: String,
}

impl EmulatedUser {
    /// Builds a user.
    pub fn new(upn: &str, object_id: &str) -> Self {
        Self {
            upn: upn.to_owned(),
            object_id: object_id.to_owned(),
        }
    }
}

/// A rate limit: at most `requests` Graph operations per fixed `window` (batch sub-requests
/// count one each, as Graph evaluates them individually); more get 429 with `Retry-After`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Operations allowed per window.
    pub requests: u32,
    /// Window length.
    pub window: Duration,
}

/// Emulator settings. [`EmulatorConfig::default`] has a tenant, an app, a secret and three
/// users (one a B2B guest with an `#EXT#` UPN).
#[derive(Debug, Clone)]
pub struct EmulatorConfig {
    /// The tenant id (GUID) accepted in the token URL.
    pub tenant_id: String,
    /// Tenant domain names also accepted in the token URL.
    pub tenant_domains: Vec<String>,
    /// The application (client) id; also the only valid `sessionId`.
    pub client_id: String,
    /// The client secret's value.
    pub client_secret: String,
    /// Answer the correct secret with AADSTS7000222 (expired).
    pub secret_expired: bool,
    /// Accept `client_assertion` (certificate) authentication. The assertion's structure
    /// (header `alg`, claims `iss`/`sub`/`aud`/`exp`) is checked, its signature is not.
    pub accept_client_assertion: bool,
    /// When not empty, a client assertion's `x5t#S256` header must be one of these
    /// thumbprints (the certificates uploaded to the app registration).
    pub certificate_thumbprints: Vec<String>,
    /// Lifetime of issued access tokens (`expires_in`).
    pub token_lifetime: Duration,
    /// The directory.
    pub users: Vec<EmulatedUser>,
    /// Application permissions granted (with admin consent) to the app. Calls needing a
    /// permission that is missing get 403.
    pub app_roles: Vec<String>,
    /// Refuse presence reads (`GET …/presence`, `getPresencesByUserId`) with 403 whatever
    /// `app_roles` says, as Graph answers an app that lacks `Presence.Read.All` (before
    /// app-only reads were supported, even `Presence.ReadWrite.All` did not cover them).
    /// Changed at run time with [`GraphEmulator::set_presence_read_withheld`].
    pub presence_read_withheld: bool,
    /// An optional rate limit.
    pub rate_limit: Option<RateLimit>,
    /// Answer a `$batch` whose sub-requests did not all succeed with an outer 424 instead of
    /// 200 (the throttling guide says 424, the batching page says 200; clients must take both).
    pub batch_424_on_failure: bool,
}

impl Default for EmulatorConfig {
    fn default() -> Self {
        Self {
            tenant_id: "7d4f2c1e-5b6a-4c3d-9e8f-0a1b2c3d4e5f".into(),
            tenant_domains: vec!["contoso.onmicrosoft.com".into(), "contoso.com".into()],
            client_id: "11111111-2222-4333-8444-555555555555".into(),
            client_secret: "emulator-secret-value".into(),
            secret_expired: false,
            accept_client_assertion: true,
            certificate_thumbprints: Vec::new(),
            token_lifetime: Duration::from_secs(3599),
            users: vec![
                EmulatedUser::new("alice@contoso.com", "aaaaaaaa-0000-4000-8000-000000000001"),
                EmulatedUser::new("bob@contoso.com", "bbbbbbbb-0000-4000-8000-000000000002"),
                EmulatedUser::new(
                    "carol_fabrikam.com#EXT#@contoso.onmicrosoft.com",
                    "cccccccc-0000-4000-8000-000000000003",
                ),
            ],
            app_roles: vec![
                "Presence.ReadWrite.All".into(),
                "Presence.Read.All".into(),
                "User.Read.All".into(),
            ],
            presence_read_withheld: false,
            rate_limit: None,
            batch_424_on_failure: false,
        }
    }
}

/// A fault to inject into the next Graph operations (token requests are not affected).
/// Faults are consumed in the order they were injected; a batch sub-request is an operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Answer 429 `TooManyRequests` with `Retry-After` (whole seconds, rounded up).
    TooManyRequests {
        /// The `Retry-After` value.
        retry_after: Duration,
        /// How many operations get it.
        times: u32,
    },
    /// Answer 503 `ServiceUnavailable` (no `Retry-After`).
    ServiceUnavailable {
        /// How many operations get it.
        times: u32,
    },
    /// Answer 503 `ServiceUnavailable` with `Retry-After` (whole seconds, rounded up).
    ServiceUnavailableRetryAfter {
        /// The `Retry-After` value.
        retry_after: Duration,
        /// How many operations get it.
        times: u32,
    },
    /// Wait (real time) before answering.
    Delay {
        /// How long.
        delay: Duration,
        /// How many operations get it.
        times: u32,
    },
    /// Answer 401 `InvalidAuthenticationToken` even to a valid token (HTTP requests, batches included).
    Unauthorized {
        /// How many requests get it.
        times: u32,
    },
}

impl Fault {
    fn times(&self) -> u32 {
        match self {
            Fault::TooManyRequests { times, .. }
            | Fault::ServiceUnavailable { times }
            | Fault::ServiceUnavailableRetryAfter { times, .. }
            | Fault::Delay { times, .. }
            | Fault::Unauthorized { times } => *times,
        }
    }
}

/// What a logged request was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Token endpoint.
    Token,
    /// `GET /users/{id|upn}`.
    GetUser,
    /// `GET /users/{id}/presence` or `/communications/presences/{id}`.
    GetPresence,
    /// `setPresence`.
    SetPresence,
    /// `clearPresence`.
    ClearPresence,
    /// `setStatusMessage`.
    SetStatusMessage,
    /// `setUserPreferredPresence`.
    SetUserPreferredPresence,
    /// `clearUserPreferredPresence`.
    ClearUserPreferredPresence,
    /// `getPresencesByUserId`.
    GetPresencesByUserId,
    /// `$batch` (the outer request).
    Batch,
    /// Anything else.
    Unknown,
}

/// One request as the emulator saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// What it was.
    pub operation: Operation,
    /// HTTP method.
    pub method: String,
    /// The path and query as received (still percent-encoded), relative to the Graph base for
    /// Graph calls.
    pub path: String,
    /// Emulator-clock time of arrival.
    pub at: Instant,
    /// The status answered.
    pub status: u16,
    /// True for a `$batch` sub-request.
    pub in_batch: bool,
    /// For `getPresencesByUserId`, the number of ids asked for.
    pub id_count: Option<usize>,
}

/// The emulator clock: real time plus an offset moved by [`GraphEmulator::advance`].
#[derive(Debug)]
struct Clock {
    offset: Mutex<Duration>,
}

impl Clock {
    fn now(&self) -> Instant {
        Instant::now() + *lock(&self.offset)
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Default)]
struct State {
    users: HashMap<String, UserState>,
    upn_index: HashMap<String, String>,
    tokens: HashMap<String, Instant>,
    tokens_issued: u64,
    faults: VecDeque<Fault>,
    log: Vec<LoggedRequest>,
    throttled: u64,
    rate_window: Option<(Instant, u32)>,
    rate_limit: Option<RateLimit>,
    presence_read_withheld: bool,
}

#[derive(Debug)]
struct Shared {
    config: EmulatorConfig,
    state: Mutex<State>,
    clock: Clock,
    graph_base: String,
}

/// A running emulator. Dropping it stops the server.
#[derive(Debug)]
pub struct GraphEmulator {
    addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
}

impl GraphEmulator {
    /// Starts the emulator on `127.0.0.1` with an ephemeral port. Needs a tokio runtime.
    pub async fn start(config: EmulatorConfig) -> Result<GraphEmulator, EmulatorError> {
        Self::start_on(config, 0).await
    }

    /// Starts the emulator on `127.0.0.1:port` (0 = ephemeral), e.g. for a demo that must
    /// be reachable at a known address.
    pub async fn start_on(
        config: EmulatorConfig,
        port: u16,
    ) -> Result<GraphEmulator, EmulatorError> {
        let mut state = State {
            rate_limit: config.rate_limit,
            presence_read_withheld: config.presence_read_withheld,
            ..State::default()
        };
        for u in &config.users {
            if !is_guid(&u.object_id) {
                return Err(EmulatorError::Config(format!(
                    "object id {:?} of {} is not a GUID",
                    u.object_id, u.upn
                )));
            }
            state
                .upn_index
                .insert(u.upn.to_lowercase(), u.object_id.to_lowercase());
            state
                .users
                .insert(u.object_id.to_lowercase(), UserState::default());
        }
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .map_err(EmulatorError::Bind)?;
        let addr = listener.local_addr().map_err(EmulatorError::Bind)?;
        let shared = Arc::new(Shared {
            config,
            state: Mutex::new(state),
            clock: Clock {
                offset: Mutex::new(Duration::ZERO),
            },
            graph_base: format!("http://{addr}/v1.0"),
        });
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let app = server::router(shared.clone());
        tokio::spawn(async move {
            let serve = axum::serve(listener, app).with_graceful_shutdown(async move {
                let _ = rx.await;
            });
            if let Err(e) = serve.await {
                tracing::warn!("graph emulator stopped: {e}");
            }
        });
        Ok(GraphEmulator {
            addr,
            shared,
            shutdown: Some(tx),
        })
    }

    /// The Graph base URL, e.g. `http://127.0.0.1:PORT/v1.0`.
    pub fn base_url(&self) -> String {
        self.shared.graph_base.clone()
    }

    /// The authority host (token endpoint host), e.g. `http://127.0.0.1:PORT`; the token URL
    /// is `{authority_url}/{tenant}/oauth2/v2.0/token`.
    pub fn authority_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The socket address.
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &EmulatorConfig {
        &self.shared.config
    }

    /// The emulator clock's current time.
    pub fn now(&self) -> Instant {
        self.shared.clock.now()
    }

    /// Moves the emulator clock forward (session expiry, Available timeout, token expiry,
    /// rate-limit windows).
    pub fn advance(&self, by: Duration) {
        let mut o = lock(&self.shared.clock.offset);
        *o += by;
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.shared.state)
    }

    fn with_user<R>(&self, object_id: &str, f: impl FnOnce(&mut UserState) -> R) -> Option<R> {
        let now = self.now();
        let mut st = self.state();
        let u = st.users.get_mut(&object_id.to_lowercase())?;
        u.expire(now);
        Some(f(u))
    }

    /// The user's aggregated presence now, or `None` for an unknown object id.
    pub fn presence_of(&self, object_id: &str) -> Option<PresencePair> {
        let now = self.now();
        self.with_user(object_id, |u| u.aggregate(now))
    }

    /// The app's live presence session for the user (expired sessions are gone).
    pub fn app_session(&self, object_id: &str) -> Option<AppSession> {
        self.with_user(object_id, |u| u.app_session.clone())
            .flatten()
    }

    /// The user's status message.
    pub fn status_message(&self, object_id: &str) -> Option<StatusMessage> {
        self.with_user(object_id, |u| u.status_message.clone())
            .flatten()
    }

    /// Adds a Teams-client session (desktop, mobile, …) for aggregation; it never expires.
    pub fn set_client_session(&self, object_id: &str, availability: &str, activity: &str) {
        self.with_user(object_id, |u| {
            u.client_sessions
                .push(PresencePair::new(availability, activity))
        });
    }

    /// Removes every Teams-client session of the user.
    pub fn clear_client_sessions(&self, object_id: &str) {
        self.with_user(object_id, |u| u.client_sessions.clear());
    }

    /// The user starts a Teams call: a Teams-client session `Busy/InACall` is added (it
    /// outranks Available and Away sessions; a preferred presence still wins).
    pub fn start_teams_call(&self, object_id: &str) {
        self.set_client_session(object_id, "Busy", "InACall");
    }

    /// The user's Teams call ends: one `Busy/InACall` client session is removed (if any).
    pub fn end_teams_call(&self, object_id: &str) {
        self.with_user(object_id, |u| {
            let call = PresencePair::new("Busy", "InACall");
            if let Some(at) = u.client_sessions.iter().position(|s| *s == call) {
                u.client_sessions.remove(at);
            }
        });
    }

    /// Sets the user's own (preferred) presence, as if picked in Teams.
    pub fn set_user_preferred(
        &self,
        object_id: &str,
        availability: &str,
        activity: &str,
        expires_in: Duration,
    ) {
        let now = self.now();
        self.with_user(object_id, |u| {
            u.preferred = Some(Preferred {
                pair: PresencePair::new(availability, activity),
                expires_at: now + expires_in,
            })
        });
    }

    /// Clears the user's own (preferred) presence, as if reset in Teams.
    pub fn clear_user_preferred(&self, object_id: &str) {
        self.with_user(object_id, |u| u.preferred = None);
    }

    /// The user-preferred presence, if set and live.
    pub fn user_preferred(&self, object_id: &str) -> Option<Preferred> {
        self.with_user(object_id, |u| u.preferred.clone()).flatten()
    }

    /// Adds a user to the directory.
    pub fn add_user(&self, upn: &str, object_id: &str) {
        let mut st = self.state();
        st.upn_index
            .insert(upn.to_lowercase(), object_id.to_lowercase());
        st.users.entry(object_id.to_lowercase()).or_default();
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<LoggedRequest> {
        self.state().log.clone()
    }

    /// How many requests (batch sub-requests included) were `op`.
    pub fn count(&self, op: Operation) -> usize {
        self.state()
            .log
            .iter()
            .filter(|r| r.operation == op)
            .count()
    }

    /// How many 429 answers were given (outer and batch sub-responses).
    pub fn throttled_count(&self) -> u64 {
        self.state().throttled
    }

    /// How many access tokens were issued.
    pub fn tokens_issued(&self) -> u64 {
        self.state().tokens_issued
    }

    /// Queues a fault.
    pub fn inject(&self, fault: Fault) {
        if fault.times() > 0 {
            self.state().faults.push_back(fault);
        }
    }

    /// Drops every queued fault.
    pub fn clear_faults(&self) {
        self.state().faults.clear();
    }

    /// Makes every token issued so far expire now (the next Graph call with one gets 401).
    pub fn expire_all_tokens(&self) {
        let now = self.now();
        for exp in self.state().tokens.values_mut() {
            *exp = now;
        }
    }

    /// Withholds (`true`) or grants again (`false`) the permission to read presence: while
    /// withheld, `GET …/presence` and `getPresencesByUserId` answer 403 `Forbidden` (see
    /// [`EmulatorConfig::presence_read_withheld`]).
    pub fn set_presence_read_withheld(&self, withheld: bool) {
        self.state().presence_read_withheld = withheld;
    }

    /// Changes the rate limit.
    pub fn set_rate_limit(&self, limit: Option<RateLimit>) {
        let mut st = self.state();
        st.rate_limit = limit;
        st.rate_window = None;
    }
}

impl Drop for GraphEmulator {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
