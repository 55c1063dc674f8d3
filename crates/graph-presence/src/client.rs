//! The client: tokens, retries, budget, users, presence calls and `$batch`.

use crate::budget::{BudgetGate, Priority};
use crate::clock::{Clock, SystemClock};
use crate::config::{endpoint_url, Credential, GraphConfig};
use crate::error::GraphError;
use crate::ops::{
    Body, ClearOutcome, OperationOutcome, Parts, PresenceOperation, StatusMessageExpiry,
};
use crate::token::{EntraClient, EntraErrorResponse};
use crate::types::{iso8601, ObjectId, PreferredPresence, Presence, PresenceState};
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Most ids `getPresencesByUserId` takes per call.
pub const MAX_IDS_PER_PRESENCE_READ: usize = 650;
/// Most requests per `$batch`.
pub const MAX_BATCH_REQUESTS: usize = 20;
/// Largest response body read (bytes).
const MAX_RESPONSE: usize = 8 * 1024 * 1024;

/// What [`GraphClient::token_check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TokenInfo {
    /// Time left on the cached token.
    pub expires_in: Duration,
}

struct CachedToken {
    token: oauth2::AccessToken,
    expires_at: Instant,
}

struct Inner {
    config: GraphConfig,
    http: reqwest::Client,
    oauth: EntraClient,
    scope: String,
    token_url: String,
    graph_base: url::Url,
    token: tokio::sync::Mutex<Option<CachedToken>>,
    budget: BudgetGate,
    users: Mutex<HashMap<String, ObjectId>>,
    clock: Arc<dyn Clock>,
}

/// A Microsoft Graph presence client for one application in one tenant. Cheap to clone;
/// clones share the token cache, the user cache and the request budget.
#[derive(Clone)]
pub struct GraphClient {
    inner: Arc<Inner>,
}

impl fmt::Debug for GraphClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("GraphClient")
            .field("tenant_id", &self.inner.config.tenant_id)
            .field("client_id", &self.inner.config.client_id)
            .field("graph_base_url", &self.inner.config.graph_base_url)
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Exponential backoff with "equal jitter": half the step fixed, half random.
/// `jitter` is a number in `[0, 1)`.
pub fn backoff_delay(base: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let step = base
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(max);
    step / 2 + step.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

fn parse_retry_after(headers: &HeaderMap) -> Option<Duration> {
    let v = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    v.trim().parse::<u64>().ok().map(Duration::from_secs)
}

/// A Graph error body's `code` and `message`.
fn graph_error_parts(body: &[u8]) -> (String, String) {
    let v: Option<Value> = serde_json::from_slice(body).ok();
    error_parts_value(v.as_ref())
}

fn error_parts_value(v: Option<&Value>) -> (String, String) {
    let e = v.and_then(|v| v.get("error"));
    let s = |k: &str| {
        e.and_then(|e| e.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    (s("code"), s("message"))
}

/// The permission an operation needs, for 403 advice.
fn permission_for(op: &str) -> &'static str {
    match op {
        "getUser" => "User.Read.All (User.ReadBasic.All alone is reported to be refused for apps)",
        "getPresence" | "getPresencesByUserId" => "Presence.Read.All",
        _ => "Presence.ReadWrite.All",
    }
}

/// Maps a final non-2xx status to an error.
fn status_error(op: &'static str, status: u16, body: Option<&Value>) -> GraphError {
    let (code, message) = error_parts_value(body);
    match status {
        400 => GraphError::BadRequest {
            operation: op,
            code,
            message,
        },
        403 => GraphError::Forbidden {
            operation: op,
            permission: permission_for(op),
            code,
            message,
        },
        404 => GraphError::NotFound {
            operation: op,
            code,
            message,
        },
        401 => GraphError::Unauthorized {
            operation: op,
            code,
            message,
        },
        _ => GraphError::Http {
            operation: op,
            status,
            code,
            message,
        },
    }
}

struct RawResponse {
    status: u16,
    body: Vec<u8>,
}

impl RawResponse {
    fn json(&self, op: &'static str) -> Result<Value, GraphError> {
        serde_json::from_slice(&self.body).map_err(|e| GraphError::InvalidResponse {
            operation: op,
            message: format!("body is not JSON: {e}"),
        })
    }
}

impl GraphClient {
    /// A client using the real clock.
    pub fn new(config: GraphConfig) -> Result<GraphClient, GraphError> {
        Self::with_clock(config, Arc::new(SystemClock))
    }

    /// A client whose waits and token lifetimes go through `clock` (tests use
    /// [`crate::ManualClock`]).
    pub fn with_clock(
        config: GraphConfig,
        clock: Arc<dyn Clock>,
    ) -> Result<GraphClient, GraphError> {
        if config.tenant_id.trim().is_empty() || config.client_id.trim().is_empty() {
            return Err(GraphError::Config(
                "tenant id and client id are required".into(),
            ));
        }
        if config.tenant_id.contains(['/', '?', '#']) {
            return Err(GraphError::Config(
                "the tenant id must be a GUID or a domain name".into(),
            ));
        }
        let authority = endpoint_url("authority host", &config.authority_host)?;
        let graph_base = endpoint_url("Graph base URL", &config.graph_base_url)?;
        let token_url_text = format!(
            "{}/{}/oauth2/v2.0/token",
            authority.as_str().trim_end_matches('/'),
            config.tenant_id
        );
        let scope = format!("{}/.default", graph_base.origin().ascii_serialization());
        let mut oauth = oauth2::Client::new(ClientId::new(config.client_id.clone()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(
                TokenUrl::new(token_url_text.clone())
                    .map_err(|e| GraphError::Config(format!("token URL: {e}")))?,
            );
        match &config.credential {
            Credential::Secret(s) => {
                oauth = oauth.set_client_secret(ClientSecret::new(s.expose_secret().to_owned()));
            }
            // The assertion is made fresh for every token request (see `fetch_token`).
            Credential::Certificate(_) => {}
        }
        let http = reqwest::Client::builder()
            // No redirects: the token endpoint must not bounce credentials elsewhere.
            .redirect(reqwest::redirect::Policy::none())
            .timeout(config.request_timeout)
            .connect_timeout(config.connect_timeout)
            .user_agent(concat!("graph-presence/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| GraphError::Config(format!("HTTP client: {e}")))?;
        Ok(GraphClient {
            inner: Arc::new(Inner {
                budget: BudgetGate::new(config.request_budget),
                config,
                http,
                oauth,
                scope,
                token_url: token_url_text,
                graph_base,
                token: tokio::sync::Mutex::new(None),
                users: Mutex::new(HashMap::new()),
                clock,
            }),
        })
    }

    /// The application (client) id, which is also the presence `sessionId`.
    pub fn client_id(&self) -> &str {
        &self.inner.config.client_id
    }

    // ---------------------------------------------------------------- tokens

    /// Gets a token (cached if still good) and reports its remaining lifetime. Use it to
    /// check credentials at start-up.
    pub async fn token_check(&self) -> Result<TokenInfo, GraphError> {
        self.access_token().await?;
        let guard = self.inner.token.lock().await;
        let now = self.inner.clock.now();
        Ok(TokenInfo {
            expires_in: guard
                .as_ref()
                .map(|t| t.expires_at.saturating_duration_since(now))
                .unwrap_or_default(),
        })
    }

    async fn access_token(&self) -> Result<oauth2::AccessToken, GraphError> {
        let mut guard = self.inner.token.lock().await;
        let now = self.inner.clock.now();
        if let Some(t) = guard.as_ref() {
            if now + self.inner.config.token_refresh_margin < t.expires_at {
                return Ok(t.token.clone());
            }
        }
        let fetched = self.fetch_token().await?;
        let token = fetched.0.clone();
        *guard = Some(CachedToken {
            token: fetched.0,
            expires_at: self.inner.clock.now() + fetched.1,
        });
        Ok(token)
    }

    /// Drops the cached token if it is still `used` (another task may have renewed it).
    async fn invalidate_token(&self, used: &oauth2::AccessToken) {
        let mut guard = self.inner.token.lock().await;
        if guard
            .as_ref()
            .is_some_and(|t| t.token.secret() == used.secret())
        {
            *guard = None;
        }
    }

    async fn fetch_token(&self) -> Result<(oauth2::AccessToken, Duration), GraphError> {
        let mut attempt = 0;
        loop {
            let mut req = self
                .inner
                .oauth
                .exchange_client_credentials()
                .add_scope(Scope::new(self.inner.scope.clone()));
            if let Credential::Certificate(cert) = &self.inner.config.credential {
                let jwt = cert.assertion(
                    &self.inner.config.client_id,
                    &self.inner.token_url,
                    std::time::SystemTime::now(),
                )?;
                req = req
                    .add_extra_param(
                        "client_assertion_type",
                        "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                    )
                    .add_extra_param("client_assertion", jwt);
            }
            let err = match req.request_async(&self.inner.http).await {
                Ok(resp) => {
                    // Entra's lifetimes vary (60–90 min): use expires_in, default to 1 h.
                    let lifetime = resp.expires_in().unwrap_or(Duration::from_secs(3600));
                    tracing::debug!(expires_in = lifetime.as_secs(), "access token acquired");
                    return Ok((resp.access_token().clone(), lifetime));
                }
                Err(e) => e,
            };
            let transient = match &err {
                RequestTokenError::ServerResponse(r) => r.error == "temporarily_unavailable",
                RequestTokenError::Request(_) => true,
                RequestTokenError::Parse(..) | RequestTokenError::Other(_) => false,
            };
            if transient && attempt < self.inner.config.max_retries {
                self.inner.clock.sleep(self.backoff(attempt)).await;
                attempt += 1;
                continue;
            }
            return Err(match err {
                RequestTokenError::ServerResponse(r) => {
                    let e = EntraErrorResponse::into_error(r);
                    if let GraphError::Token {
                        trace_id,
                        correlation_id,
                        codes,
                        ..
                    } = &e
                    {
                        tracing::warn!(?codes, ?trace_id, ?correlation_id, "token request refused");
                    }
                    e
                }
                RequestTokenError::Request(e) => GraphError::TokenTransport(format!(
                    "cannot reach the token endpoint{}: {}",
                    if attempt > 0 {
                        format!(" after {} attempts", attempt + 1)
                    } else {
                        String::new()
                    },
                    match &e {
                        oauth2::HttpClientError::Reqwest(r) => describe_reqwest(r),
                        other => other.to_string(),
                    }
                )),
                RequestTokenError::Parse(e, _) => {
                    GraphError::TokenTransport(format!("unreadable token response: {e}"))
                }
                RequestTokenError::Other(s) => GraphError::TokenTransport(s),
            });
        }
    }

    fn backoff(&self, attempt: u32) -> Duration {
        backoff_delay(
            self.inner.config.backoff_base,
            self.inner.config.backoff_max,
            attempt,
            rand::random::<f64>(),
        )
    }

    // ---------------------------------------------------------------- transport

    fn url(&self, segments: &[String], query: &[(&str, &str)]) -> Result<url::Url, GraphError> {
        let mut u = self.inner.graph_base.clone();
        {
            let mut p = u
                .path_segments_mut()
                .map_err(|_| GraphError::Config("the Graph base URL cannot have a path".into()))?;
            p.pop_if_empty();
            for s in segments {
                p.push(s);
            }
        }
        if !query.is_empty() {
            u.query_pairs_mut().extend_pairs(query);
        }
        Ok(u)
    }

    /// Sends one request, after taking `cost` slots of the budget (reads wait behind
    /// waiting writes, by `op`'s [`Priority`]): 401 → new token once; with `max_retries` set, 429 → wait
    /// `Retry-After` (or back off) and 5xx, timeouts, connection errors → exponential backoff
    /// with jitter, up to `max_retries` times; everything else is returned as it is.
    async fn send<B: serde::Serialize + ?Sized>(
        &self,
        op: &'static str,
        method: Method,
        url: url::Url,
        body: Option<&B>,
        cost: u32,
    ) -> Result<RawResponse, GraphError> {
        let max = self.inner.config.max_retries;
        let mut attempt: u32 = 0;
        let mut renewed = false;
        loop {
            self.inner
                .budget
                .acquire(self.inner.clock.as_ref(), cost, Priority::of(op))
                .await;
            let token = self.access_token().await?;
            let mut rb = self
                .inner
                .http
                .request(method.clone(), url.clone())
                .bearer_auth(token.secret());
            if let Some(b) = body {
                rb = rb.json(b);
            }
            let result = match rb.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let headers = resp.headers().clone();
                    read_limited(resp).await.map(|body| (status, headers, body))
                }
                Err(e) => Err(e),
            };
            let (status, headers, body_bytes) = match result {
                Ok(r) => r,
                Err(e) => {
                    let message = describe_reqwest(&e);
                    if attempt < max {
                        let d = self.backoff(attempt);
                        tracing::warn!(op, %message, retry_in_ms = d.as_millis() as u64, "request failed; retrying");
                        self.inner.clock.sleep(d).await;
                        attempt += 1;
                        continue;
                    }
                    return Err(GraphError::Transport {
                        operation: op,
                        attempts: attempt + 1,
                        message,
                    });
                }
            };
            match status {
                401 if !renewed => {
                    tracing::info!(op, "401 from Graph; fetching a new token once");
                    renewed = true;
                    self.invalidate_token(&token).await;
                    continue;
                }
                401 => {
                    let (code, message) = graph_error_parts(&body_bytes);
                    return Err(GraphError::Unauthorized {
                        operation: op,
                        code,
                        message,
                    });
                }
                429 | 500 | 502 | 503 | 504 => {
                    let retry_after = parse_retry_after(&headers);
                    if attempt < max {
                        let d = match retry_after {
                            Some(ra) => ra.min(self.inner.config.max_retry_after),
                            None => self.backoff(attempt),
                        };
                        tracing::warn!(
                            op,
                            status,
                            retry_in_ms = d.as_millis() as u64,
                            "Graph asked to retry"
                        );
                        self.inner.clock.sleep(d).await;
                        attempt += 1;
                        continue;
                    }
                    let (code, message) = graph_error_parts(&body_bytes);
                    return Err(if status == 429 {
                        GraphError::Throttled {
                            operation: op,
                            attempts: attempt + 1,
                            retry_after,
                        }
                    } else {
                        GraphError::Server {
                            operation: op,
                            status,
                            attempts: attempt + 1,
                            code,
                            message,
                            retry_after,
                        }
                    });
                }
                _ => {
                    return Ok(RawResponse {
                        status,
                        body: body_bytes,
                    })
                }
            }
        }
    }

    async fn call(&self, parts: Parts) -> Result<RawResponse, GraphError> {
        let url = self.url(&parts.segments, &[])?;
        self.send(parts.op, parts.method, url, parts.body.as_ref(), 1)
            .await
    }

    fn ensure_ok(op: &'static str, raw: RawResponse) -> Result<RawResponse, GraphError> {
        if (200..300).contains(&raw.status) {
            Ok(raw)
        } else {
            let v: Option<Value> = serde_json::from_slice(&raw.body).ok();
            Err(status_error(op, raw.status, v.as_ref()))
        }
    }

    // ---------------------------------------------------------------- users

    /// Resolves a UPN (or passes an object id through) to an object id, with
    /// `GET /users/{upn}?$select=id` (needs `User.Read.All`). Results are cached; see
    /// [`GraphClient::user_cache`] to persist them.
    pub async fn resolve_user(&self, upn_or_id: &str) -> Result<ObjectId, GraphError> {
        if let Some(id) = self.cached_user(upn_or_id) {
            return Ok(id);
        }
        let key = upn_or_id.trim();
        if key.is_empty() || key.len() > 1024 {
            return Err(GraphError::InvalidInput(format!(
                "{upn_or_id:?} is not a user principal name"
            )));
        }
        let cache_key = key.to_lowercase();
        // UPNs starting with '$' need the key syntax; '#' (guests' #EXT#) is percent-encoded
        // by the URL builder (user-get page tips).
        let segment = if key.starts_with('$') {
            format!("users('{key}')")
        } else {
            key.to_owned()
        };
        let segments = if key.starts_with('$') {
            vec![segment]
        } else {
            vec!["users".to_owned(), segment]
        };
        let url = self.url(&segments, &[("$select", "id")])?;
        let raw = Self::ensure_ok(
            "getUser",
            self.send("getUser", Method::GET, url, None::<&()>, 1)
                .await?,
        )?;
        let v = raw.json("getUser")?;
        let id = v
            .get("id")
            .and_then(Value::as_str)
            .ok_or_else(|| GraphError::InvalidResponse {
                operation: "getUser",
                message: "no id".into(),
            })
            .and_then(ObjectId::parse)?;
        lock(&self.inner.users).insert(cache_key, id.clone());
        Ok(id)
    }

    /// Resolves several users one by one (cached ones cost nothing) and reports each
    /// outcome, e.g. for a configuration check that lists every user that fails and why.
    pub async fn resolve_users<'a>(
        &self,
        users: impl IntoIterator<Item = &'a str>,
    ) -> Vec<(String, Result<ObjectId, GraphError>)> {
        let mut out = Vec::new();
        for u in users {
            out.push((u.to_owned(), self.resolve_user(u).await));
        }
        out
    }

    /// The UPN → object id cache (UPNs in lower case), for the caller to persist.
    pub fn user_cache(&self) -> HashMap<String, ObjectId> {
        lock(&self.inner.users).clone()
    }

    /// The object id [`resolve_user`](Self::resolve_user) would give without a
    /// request: an object id as it is, a UPN from the cache; `None` when it
    /// would have to look the user up.
    pub fn cached_user(&self, upn_or_id: &str) -> Option<ObjectId> {
        let key = upn_or_id.trim();
        if let Ok(id) = ObjectId::parse(key) {
            return Some(id);
        }
        lock(&self.inner.users).get(&key.to_lowercase()).cloned()
    }

    /// Pre-fills the UPN → object id cache (e.g. from a previous run).
    pub fn seed_user_cache(&self, entries: impl IntoIterator<Item = (String, ObjectId)>) {
        let mut c = lock(&self.inner.users);
        for (upn, id) in entries {
            c.insert(upn.to_lowercase(), id);
        }
    }

    // ---------------------------------------------------------------- presence

    /// Sets the app's presence session for `user` (`sessionId` = client id). `expiration`
    /// must be within 5 minutes..=4 hours (checked before sending); `None` leaves Graph's
    /// default of 5 minutes. Re-send before it ends, and within 5 minutes for `Available`
    /// (see [`crate::refresh_interval`]).
    pub async fn set_presence(
        &self,
        user: &ObjectId,
        state: PresenceState,
        expiration: Option<Duration>,
    ) -> Result<(), GraphError> {
        let parts = PresenceOperation::SetPresence {
            user: user.clone(),
            state,
            expiration,
        }
        .parts(self.client_id())?;
        Self::ensure_ok("setPresence", self.call(parts).await?).map(|_| ())
    }

    /// Clears the app's presence session. A 404 (no session) is success:
    /// [`ClearOutcome::AlreadyCleared`]. If it was the user's only session the user shows
    /// Offline.
    pub async fn clear_presence(&self, user: &ObjectId) -> Result<ClearOutcome, GraphError> {
        let parts =
            PresenceOperation::ClearPresence { user: user.clone() }.parts(self.client_id())?;
        let raw = self.call(parts).await?;
        if raw.status == 404 {
            return Ok(ClearOutcome::AlreadyCleared);
        }
        Self::ensure_ok("clearPresence", raw).map(|_| ClearOutcome::Cleared)
    }

    /// Sets the user's status message (plain text), optionally expiring.
    pub async fn set_status_message(
        &self,
        user: &ObjectId,
        message: &str,
        expiry: Option<StatusMessageExpiry>,
    ) -> Result<(), GraphError> {
        let parts = PresenceOperation::SetStatusMessage {
            user: user.clone(),
            message: message.to_owned(),
            expiry,
        }
        .parts(self.client_id())?;
        Self::ensure_ok("setStatusMessage", self.call(parts).await?).map(|_| ())
    }

    /// Reads one user's aggregated presence.
    pub async fn get_presence(&self, user: &ObjectId) -> Result<Presence, GraphError> {
        let parts =
            PresenceOperation::GetPresence { user: user.clone() }.parts(self.client_id())?;
        let raw = Self::ensure_ok("getPresence", self.call(parts).await?)?;
        serde_json::from_slice(&raw.body).map_err(|e| GraphError::InvalidResponse {
            operation: "getPresence",
            message: e.to_string(),
        })
    }

    /// Reads many users' presence with `getPresencesByUserId`, in calls of at most 650 ids.
    pub async fn get_presences(&self, users: &[ObjectId]) -> Result<Vec<Presence>, GraphError> {
        let mut out = Vec::with_capacity(users.len());
        for chunk in users.chunks(MAX_IDS_PER_PRESENCE_READ) {
            let body = json!({"ids": chunk.iter().map(ObjectId::as_str).collect::<Vec<_>>()});
            let url = self.url(
                &["communications".into(), "getPresencesByUserId".into()],
                &[],
            )?;
            let raw = self
                .send("getPresencesByUserId", Method::POST, url, Some(&body), 1)
                .await?;
            let raw = Self::ensure_ok("getPresencesByUserId", raw)?;
            #[derive(serde::Deserialize)]
            struct List {
                value: Vec<Presence>,
            }
            let list: List =
                serde_json::from_slice(&raw.body).map_err(|e| GraphError::InvalidResponse {
                    operation: "getPresencesByUserId",
                    message: e.to_string(),
                })?;
            out.extend(list.value);
        }
        Ok(out)
    }

    /// Sets the user's **preferred** presence. **Not for BLF**: this is the user's own
    /// choice in Teams, overrides every session, and lasts 1 day (Busy, DoNotDisturb) or
    /// 7 days (others) unless `expiration` is given. Use [`GraphClient::set_presence`].
    pub async fn set_user_preferred_presence(
        &self,
        user: &ObjectId,
        presence: PreferredPresence,
        expiration: Option<Duration>,
    ) -> Result<(), GraphError> {
        let (a, b) = presence.pair();
        let mut body = json!({"availability": a, "activity": b});
        if let (Some(d), Some(o)) = (expiration, body.as_object_mut()) {
            o.insert("expirationDuration".into(), Value::String(iso8601(d)));
        }
        let segs = vec![
            "users".into(),
            user.as_str().into(),
            "presence".into(),
            "setUserPreferredPresence".into(),
        ];
        let url = self.url(&segs, &[])?;
        let raw = self
            .send(
                "setUserPreferredPresence",
                Method::POST,
                url,
                Some(&body),
                1,
            )
            .await?;
        Self::ensure_ok("setUserPreferredPresence", raw).map(|_| ())
    }

    /// Clears the user's preferred presence. **Not for BLF** (see
    /// [`GraphClient::set_user_preferred_presence`]).
    pub async fn clear_user_preferred_presence(&self, user: &ObjectId) -> Result<(), GraphError> {
        let segs = vec![
            "users".into(),
            user.as_str().into(),
            "presence".into(),
            "clearUserPreferredPresence".into(),
        ];
        let url = self.url(&segs, &[])?;
        let raw = self
            .send(
                "clearUserPreferredPresence",
                Method::POST,
                url,
                Some(&json!({})),
                1,
            )
            .await?;
        Self::ensure_ok("clearUserPreferredPresence", raw).map(|_| ())
    }

    // ---------------------------------------------------------------- batch

    /// Runs operations through `$batch`, 20 per request. Every sub-response is checked and
    /// correlated by id; with [`GraphConfig::max_retries`] set, throttled (429) or failing
    /// (5xx) sub-requests are retried after the longest `Retry-After` (or a backoff), else
    /// they fail with their own `Retry-After`; an outer 200 or 424 is accepted. Invalid
    /// operations fail alone, before anything is sent. Results are in input order.
    pub async fn batch(
        &self,
        ops: Vec<PresenceOperation>,
    ) -> Vec<(PresenceOperation, Result<OperationOutcome, GraphError>)> {
        let mut results: Vec<Option<Result<OperationOutcome, GraphError>>> = vec![None; ops.len()];
        let mut valid: Vec<(usize, Parts)> = Vec::new();
        for (i, op) in ops.iter().enumerate() {
            match op.parts(self.client_id()) {
                Ok(p) => valid.push((i, p)),
                Err(e) => results[i] = Some(Err(e)),
            }
        }
        let mut queue = valid.into_iter();
        loop {
            let chunk: Vec<(usize, Parts)> = queue.by_ref().take(MAX_BATCH_REQUESTS).collect();
            if chunk.is_empty() {
                break;
            }
            for (i, r) in self.run_batch(chunk).await {
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(r);
                }
            }
        }
        ops.into_iter()
            .zip(results)
            .map(|(op, r)| {
                let r = r.unwrap_or_else(|| {
                    Err(GraphError::InvalidResponse {
                        operation: "$batch",
                        message: "no result".into(),
                    })
                });
                (op, r)
            })
            .collect()
    }

    async fn run_batch(
        &self,
        chunk: Vec<(usize, Parts)>,
    ) -> Vec<(usize, Result<OperationOutcome, GraphError>)> {
        let mut done = Vec::with_capacity(chunk.len());
        let mut todo = chunk;
        let mut round: u32 = 0;
        let max = self.inner.config.max_retries;
        while !todo.is_empty() {
            let body = BatchRequest {
                requests: todo
                    .iter()
                    .map(|(i, p)| BatchSubRequest {
                        id: i.to_string(),
                        method: p.method.as_str(),
                        url: p.segments.iter().fold(String::new(), |mut acc, s| {
                            acc.push('/');
                            acc.push_str(&encode_segment(s));
                            acc
                        }),
                        headers: p.body.as_ref().map(|_| JsonContentType {
                            content_type: "application/json",
                        }),
                        body: p.body.as_ref(),
                    })
                    .collect(),
            };
            let cost = u32::try_from(todo.len()).unwrap_or(u32::MAX);
            let outer = match self.url(&["$batch".into()], &[]) {
                Ok(url) => {
                    self.send("$batch", Method::POST, url, Some(&body), cost)
                        .await
                }
                Err(e) => Err(e),
            };
            let value = match outer.and_then(|raw| {
                if raw.status == 200 || raw.status == 424 {
                    raw.json("$batch")
                } else {
                    Err(status_error(
                        "$batch",
                        raw.status,
                        serde_json::from_slice::<Value>(&raw.body).ok().as_ref(),
                    ))
                }
            }) {
                Ok(v) => v,
                Err(e) => {
                    done.extend(todo.into_iter().map(|(i, _)| (i, Err(e.clone()))));
                    return done;
                }
            };
            let responses: HashMap<String, &Value> = value
                .get("responses")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|r| Some((r.get("id")?.as_str()?.to_ascii_lowercase(), r)))
                        .collect()
                })
                .unwrap_or_default();
            let mut retry = Vec::new();
            let mut wait: Option<Duration> = None;
            let mut last_throttle: Option<Duration> = None;
            let mut any_server_error = false;
            for (i, parts) in todo {
                let Some(r) = responses.get(&i.to_string()) else {
                    done.push((
                        i,
                        Err(GraphError::InvalidResponse {
                            operation: parts.op,
                            message: "the $batch response has no sub-response for this request"
                                .into(),
                        }),
                    ));
                    continue;
                };
                let status = r.get("status").and_then(Value::as_u64).unwrap_or(0) as u16;
                let body = r.get("body");
                match status {
                    200..=299 => {
                        let outcome = if parts.op == "getPresence" {
                            match body.cloned().map(serde_json::from_value::<Presence>) {
                                Some(Ok(p)) => Ok(OperationOutcome::Presence(p)),
                                _ => Err(GraphError::InvalidResponse {
                                    operation: parts.op,
                                    message: "no presence in the sub-response".into(),
                                }),
                            }
                        } else {
                            Ok(OperationOutcome::Done)
                        };
                        done.push((i, outcome));
                    }
                    404 if parts.op == "clearPresence" => {
                        done.push((i, Ok(OperationOutcome::AlreadyCleared)))
                    }
                    429 | 500 | 502 | 503 | 504 => {
                        let ra = r
                            .get("headers")
                            .and_then(Value::as_object)
                            .and_then(|h| {
                                h.iter()
                                    .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))
                            })
                            .and_then(|(_, v)| {
                                v.as_str()
                                    .and_then(|s| s.trim().parse::<u64>().ok())
                                    .or(v.as_u64())
                            })
                            .map(Duration::from_secs);
                        if status == 429 {
                            last_throttle = ra;
                        } else {
                            any_server_error = true;
                        }
                        if let Some(ra) = ra {
                            wait = Some(wait.map_or(ra, |w| w.max(ra)));
                        }
                        if round < max {
                            retry.push((i, parts));
                        } else if status == 429 {
                            done.push((
                                i,
                                Err(GraphError::Throttled {
                                    operation: parts.op,
                                    attempts: round + 1,
                                    retry_after: ra,
                                }),
                            ));
                        } else {
                            let (code, message) = error_parts_value(body);
                            done.push((
                                i,
                                Err(GraphError::Server {
                                    operation: parts.op,
                                    status,
                                    attempts: round + 1,
                                    code,
                                    message,
                                    retry_after: ra,
                                }),
                            ));
                        }
                    }
                    s => done.push((i, Err(status_error(parts.op, s, body)))),
                }
            }
            if !retry.is_empty() {
                let d = match wait {
                    Some(w) => w.min(self.inner.config.max_retry_after),
                    None => self.backoff(round),
                };
                tracing::warn!(
                    count = retry.len(),
                    throttled = last_throttle.is_some(),
                    server_errors = any_server_error,
                    retry_in_ms = d.as_millis() as u64,
                    "retrying $batch sub-requests"
                );
                self.inner.clock.sleep(d).await;
                round += 1;
            }
            todo = retry;
        }
        done
    }
}

/// A `$batch` request body (JSON batching: `requests`, at most 20).
#[derive(serde::Serialize)]
struct BatchRequest<'a> {
    requests: Vec<BatchSubRequest<'a>>,
}

#[derive(serde::Serialize)]
struct BatchSubRequest<'a> {
    id: String,
    method: &'a str,
    url: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    headers: Option<JsonContentType>,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a Body>,
}

/// A sub-request with a body must give its `Content-Type`.
#[derive(serde::Serialize)]
struct JsonContentType {
    #[serde(rename = "Content-Type")]
    content_type: &'static str,
}

/// Percent-encodes a path segment for a `$batch` relative URL (same set as the URL builder).
fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

fn describe_reqwest(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        "request timed out".into()
    } else if e.is_connect() {
        "connection failed".into()
    } else {
        // reqwest errors carry the URL, never headers or bodies, so no token leaks here.
        format!("HTTP error: {e}")
    }
}

async fn read_limited(mut resp: reqwest::Response) -> Result<Vec<u8>, reqwest::Error> {
    let mut out = Vec::new();
    while let Some(chunk) = resp.chunk().await? {
        if out.len() + chunk.len() > MAX_RESPONSE {
            tracing::warn!("response body larger than {MAX_RESPONSE} bytes; truncated");
            break;
        }
        out.extend_from_slice(&chunk);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let b = Duration::from_millis(500);
        let m = Duration::from_secs(8);
        assert_eq!(backoff_delay(b, m, 0, 0.0), Duration::from_millis(250));
        assert_eq!(backoff_delay(b, m, 1, 0.0), Duration::from_millis(500));
        assert_eq!(
            backoff_delay(b, m, 2, 0.999_999),
            Duration::from_millis(2000) - Duration::from_nanos(1000)
        );
        assert_eq!(backoff_delay(b, m, 30, 0.0), Duration::from_secs(4));
        assert!(backoff_delay(b, m, 30, 0.9) <= m);
    }

    #[test]
    fn segments_encode_hash() {
        assert_eq!(
            encode_segment("a_b.com#EXT#@c.com"),
            "a_b.com%23EXT%23@c.com"
        );
    }
}
