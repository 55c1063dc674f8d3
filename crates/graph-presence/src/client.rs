//! The client: tokens, retries, budget, users, presence calls and `$batch`.
//!
//! This module holds the client itself, its tokens and its transport; the `users`,
//! `presence` and `batch` submodules add the calls.

mod batch;
mod presence;
mod users;

pub use users::CachedUsers;

use crate::budget::{BudgetGate, Priority};
use crate::clock::{Clock, SystemClock};
use crate::config::{endpoint_url, Credential, GraphConfig, RetryPolicy};
use crate::error::GraphError;
use crate::ops::Parts;
use crate::token::{EntraClient, EntraErrorResponse};
use crate::types::ObjectId;
use oauth2::{AuthType, ClientId, ClientSecret, RequestTokenError, Scope, TokenResponse, TokenUrl};
use reqwest::header::HeaderMap;
use reqwest::Method;
use serde_json::Value;
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
#[non_exhaustive]
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
    /// Copied on write only while a [`CachedUsers`] snapshot is out.
    users: Mutex<Arc<HashMap<String, ObjectId>>>,
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
            .field("tenant_id", &self.inner.config.tenant_id())
            .field("client_id", &self.inner.config.client_id())
            .field("graph_url", &self.inner.config.graph_url())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
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
        if config.tenant_id().trim().is_empty() || config.client_id().trim().is_empty() {
            return Err(GraphError::Config(
                "tenant id and client id are required".into(),
            ));
        }
        if config.tenant_id().contains(['/', '?', '#']) {
            return Err(GraphError::Config(
                "the tenant id must be a GUID or a domain name".into(),
            ));
        }
        let authority = endpoint_url("authority host", config.authority_url())?;
        let graph_base = endpoint_url("Graph base URL", config.graph_url())?;
        let token_url_text = format!(
            "{}/{}/oauth2/v2.0/token",
            authority.as_str().trim_end_matches('/'),
            config.tenant_id()
        );
        let scope = format!("{}/.default", graph_base.origin().ascii_serialization());
        let mut oauth = oauth2::Client::new(ClientId::new(config.client_id().to_owned()))
            .set_auth_type(AuthType::RequestBody)
            .set_token_uri(
                TokenUrl::new(token_url_text.clone())
                    .map_err(|e| GraphError::Config(format!("token URL: {e}")))?,
            );
        match config.credential() {
            Credential::Secret(s) => {
                oauth = oauth.set_client_secret(ClientSecret::new(s.expose_secret().to_owned()));
            }
            // The assertion is made fresh for every token request (see `fetch_token`).
            Credential::Certificate(_) => {}
        }
        let http = match config.http_client() {
            Some(http) => http.clone(),
            None => reqwest::Client::builder()
                // No redirects: the token endpoint must not bounce credentials elsewhere.
                .redirect(reqwest::redirect::Policy::none())
                .timeout(config.request_timeout())
                .connect_timeout(config.connect_timeout())
                .user_agent(concat!("graph-presence/", env!("CARGO_PKG_VERSION")))
                .build()
                .map_err(|e| GraphError::Config(format!("HTTP client: {e}")))?,
        };
        Ok(GraphClient {
            inner: Arc::new(Inner {
                budget: BudgetGate::new(config.request_budget()),
                config,
                http,
                oauth,
                scope,
                token_url: token_url_text,
                graph_base,
                token: tokio::sync::Mutex::new(None),
                users: Mutex::new(Arc::default()),
                clock,
            }),
        })
    }

    /// The application (client) id, which is also the presence `sessionId`.
    pub fn client_id(&self) -> &str {
        self.inner.config.client_id()
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
            if now + self.inner.config.token_refresh_margin() < t.expires_at {
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
        let mut waited = Duration::ZERO;
        loop {
            let mut req = self
                .inner
                .oauth
                .exchange_client_credentials()
                .add_scope(Scope::new(self.inner.scope.clone()));
            if let Credential::Certificate(cert) = self.inner.config.credential() {
                let jwt = cert.assertion(
                    self.inner.config.client_id(),
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
            if let Some(d) = transient
                .then(|| self.retry_policy().next_wait(attempt, None, waited))
                .flatten()
            {
                self.inner.clock.sleep(d).await;
                waited += d;
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

    fn retry_policy(&self) -> RetryPolicy {
        self.inner.config.retry_policy()
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
    /// waiting writes, by `op`'s [`Priority`]): 401 → new token once; 429, 5xx, timeouts and
    /// connection errors → retried as the [`RetryPolicy`] allows (by default not at all);
    /// everything else is returned as it is.
    async fn send<B: serde::Serialize + ?Sized>(
        &self,
        op: &'static str,
        method: Method,
        url: url::Url,
        body: Option<&B>,
        cost: u32,
    ) -> Result<RawResponse, GraphError> {
        let policy = self.retry_policy();
        let mut attempt: u32 = 0;
        let mut waited = Duration::ZERO;
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
                    if let Some(d) = policy.next_wait(attempt, None, waited) {
                        tracing::warn!(op, %message, retry_in_ms = d.as_millis() as u64, "request failed; retrying");
                        self.inner.clock.sleep(d).await;
                        waited += d;
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
                    if let Some(d) = policy.next_wait(attempt, retry_after, waited) {
                        tracing::warn!(
                            op,
                            status,
                            retry_in_ms = d.as_millis() as u64,
                            "Graph asked to retry"
                        );
                        self.inner.clock.sleep(d).await;
                        waited += d;
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
