//! Configuration: tenant, app, credential, endpoints, budget, timeouts, retries.

use crate::budget::BudgetConfig;
use crate::error::GraphError;
use std::fmt;
use std::time::Duration;

/// A secret string: its `Debug` prints `[redacted]` and it has no `Display`.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretString(String);

impl SecretString {
    /// Wraps a secret.
    pub fn new(s: impl Into<String>) -> Self {
        SecretString(s.into())
    }

    /// The secret itself. Do not log it.
    pub fn expose_secret(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretString([redacted])")
    }
}

impl From<String> for SecretString {
    fn from(s: String) -> Self {
        SecretString(s)
    }
}

impl From<&str> for SecretString {
    fn from(s: &str) -> Self {
        SecretString(s.to_owned())
    }
}

/// How the application proves its identity to Entra.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Credential {
    /// A client secret's **Value** (not its Secret ID). Sent in the request body, as
    /// Microsoft wants.
    Secret(SecretString),
    /// A certificate: a client assertion (PS256 JWT) signed with its private key — the safer
    /// option, as nothing reusable crosses the wire.
    Certificate(crate::cert::CertificateCredential),
}

/// A Microsoft cloud: its Entra authority host and Graph base URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NationalCloud {
    /// Global service.
    Global,
    /// US Government L4.
    UsGovL4,
    /// US Government L5 (DOD).
    UsGovL5Dod,
    /// China (operated by 21Vianet). `setPresence` is **not** supported there.
    China,
}

impl NationalCloud {
    /// The authority host.
    pub fn authority_host(self) -> &'static str {
        match self {
            NationalCloud::Global => "https://login.microsoftonline.com",
            NationalCloud::UsGovL4 | NationalCloud::UsGovL5Dod => {
                "https://login.microsoftonline.us"
            }
            NationalCloud::China => "https://login.chinacloudapi.cn",
        }
    }

    /// The Graph v1.0 base URL.
    pub fn graph_base_url(self) -> &'static str {
        match self {
            NationalCloud::Global => "https://graph.microsoft.com/v1.0",
            NationalCloud::UsGovL4 => "https://graph.microsoft.us/v1.0",
            NationalCloud::UsGovL5Dod => "https://dod-graph.microsoft.us/v1.0",
            NationalCloud::China => "https://microsoftgraph.chinacloudapi.cn/v1.0",
        }
    }
}

/// How the client itself retries a failed call: after a 429, a 5xx, a timeout or a
/// connection error (and a token endpoint that is temporarily unavailable).
///
/// The default is [`RetryPolicy::none`]: a failed call returns its typed error at once —
/// [`GraphError::Throttled`] and [`GraphError::Server`] with the server's `Retry-After`,
/// [`GraphError::Transport`] for timeouts and connection errors, all
/// [`GraphError::is_transient`] — so that a caller with a retry loop of its own (a service
/// that orders and re-sends its calls) keeps every wait in one place and no call lasts
/// longer than one request. A caller without one (a one-shot command, a script) opts in with
/// [`RetryPolicy::retries`]. Then a 429 waits for its `Retry-After` (at most
/// [`max_retry_after`](Self::max_retry_after)), anything else backs off exponentially with
/// jitter, and one call never waits more than [`max_wait`](Self::max_wait) in all: past that
/// it returns the error it has.
///
/// The renewal of the token after a 401 is not a retry and always happens.
///
/// ```
/// use graph_presence::RetryPolicy;
/// use std::time::Duration;
///
/// let policy = RetryPolicy::retries(3).with_max_wait(Duration::from_secs(20));
/// assert_eq!(policy.max_retries(), 3);
/// assert_eq!(RetryPolicy::default(), RetryPolicy::none());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct RetryPolicy {
    max_retries: u32,
    backoff_base: Duration,
    backoff_max: Duration,
    max_retry_after: Duration,
    max_wait: Duration,
}

impl RetryPolicy {
    /// No retries: every call is one request (the default).
    pub const fn none() -> Self {
        RetryPolicy {
            max_retries: 0,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(60),
            max_wait: Duration::from_secs(60),
        }
    }

    /// Up to `max_retries` retries per call; backoff from 500 ms doubling to at most 60 s,
    /// a `Retry-After` honoured up to 60 s, and at most 60 s of waiting per call.
    pub const fn retries(max_retries: u32) -> Self {
        let mut p = Self::none();
        p.max_retries = max_retries;
        p
    }

    /// The backoff when the server gave no `Retry-After`: `base` doubling each retry up to
    /// `max`, with "equal jitter" (half the step fixed, half random).
    #[must_use]
    pub const fn with_backoff(mut self, base: Duration, max: Duration) -> Self {
        self.backoff_base = base;
        self.backoff_max = max;
        self
    }

    /// The longest `Retry-After` honoured as given; longer values are cut to this so a bad
    /// header cannot stall the client for hours.
    #[must_use]
    pub const fn with_max_retry_after(mut self, max: Duration) -> Self {
        self.max_retry_after = max;
        self
    }

    /// The most one call waits between its attempts, in all. A retry whose wait would go
    /// past it is not made: the call returns its error (with the server's `Retry-After`).
    #[must_use]
    pub const fn with_max_wait(mut self, max: Duration) -> Self {
        self.max_wait = max;
        self
    }

    /// Retries per call (0: none).
    pub const fn max_retries(&self) -> u32 {
        self.max_retries
    }

    /// First backoff step.
    pub const fn backoff_base(&self) -> Duration {
        self.backoff_base
    }

    /// Longest backoff step.
    pub const fn backoff_max(&self) -> Duration {
        self.backoff_max
    }

    /// Longest `Retry-After` honoured as given.
    pub const fn max_retry_after(&self) -> Duration {
        self.max_retry_after
    }

    /// Most waiting per call, in all.
    pub const fn max_wait(&self) -> Duration {
        self.max_wait
    }

    /// The wait before retry number `attempt + 1`, or `None` when the policy says stop:
    /// no retries left, or the wait would take the call past [`max_wait`](Self::max_wait).
    /// `retry_after` is the server's, if it sent one; `waited` what the call waited so far.
    pub(crate) fn next_wait(
        &self,
        attempt: u32,
        retry_after: Option<Duration>,
        waited: Duration,
    ) -> Option<Duration> {
        if attempt >= self.max_retries {
            return None;
        }
        let wait = match retry_after {
            Some(ra) => ra.min(self.max_retry_after),
            None => backoff_delay(
                self.backoff_base,
                self.backoff_max,
                attempt,
                rand::random::<f64>(),
            ),
        };
        (waited.saturating_add(wait) <= self.max_wait).then_some(wait)
    }
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self::none()
    }
}

/// Exponential backoff with "equal jitter": half the step fixed, half random.
/// `jitter` is a number in `[0, 1)`.
pub(crate) fn backoff_delay(base: Duration, max: Duration, attempt: u32, jitter: f64) -> Duration {
    let step = base
        .saturating_mul(2u32.saturating_pow(attempt.min(20)))
        .min(max);
    step / 2 + step.mul_f64(jitter.clamp(0.0, 1.0) / 2.0)
}

/// Client settings: the required tenant, application and credential from
/// [`GraphConfig::new`] (or [`GraphConfig::from_env`]), the rest through `with_*` setters.
///
/// ```
/// use graph_presence::{BudgetConfig, Credential, GraphConfig, NationalCloud, RetryPolicy};
/// use std::time::Duration;
///
/// let config = GraphConfig::new("contoso.onmicrosoft.com", "11111111-2222-4333-8444-555555555555",
///         Credential::Secret("the secret's Value".into()))
///     .with_cloud(NationalCloud::UsGovL4)
///     .with_request_budget(BudgetConfig::new(600, Duration::from_secs(30)))
///     .with_retry_policy(RetryPolicy::retries(3));
/// assert_eq!(config.graph_url(), "https://graph.microsoft.us/v1.0");
/// // The secret never shows in `Debug`.
/// assert!(!format!("{config:?}").contains("the secret's Value"));
/// ```
#[derive(Clone)]
#[non_exhaustive]
pub struct GraphConfig {
    tenant_id: String,
    client_id: String,
    credential: Credential,
    authority_url: String,
    graph_url: String,
    request_budget: BudgetConfig,
    request_timeout: Duration,
    connect_timeout: Duration,
    retry: RetryPolicy,
    token_refresh_margin: Duration,
    http_client: Option<reqwest::Client>,
}

impl fmt::Debug for GraphConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let credential = match &self.credential {
            Credential::Secret(_) => "secret ([redacted])",
            Credential::Certificate(_) => "certificate",
        };
        f.debug_struct("GraphConfig")
            .field("tenant_id", &self.tenant_id)
            .field("client_id", &self.client_id)
            .field("credential", &credential)
            .field("authority_url", &self.authority_url)
            .field("graph_url", &self.graph_url)
            .field("request_budget", &self.request_budget)
            .field("request_timeout", &self.request_timeout)
            .field("connect_timeout", &self.connect_timeout)
            .field("retry", &self.retry)
            .field("token_refresh_margin", &self.token_refresh_margin)
            .field("own_http_client", &self.http_client.is_some())
            .finish()
    }
}

impl GraphConfig {
    /// Settings for the global cloud: a budget of 1,500 requests per 30 s, a 30 s request
    /// and 10 s connect timeout, [no retries](RetryPolicy::none), the token renewed 5
    /// minutes before it expires.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        credential: Credential,
    ) -> Self {
        GraphConfig {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            credential,
            authority_url: NationalCloud::Global.authority_host().into(),
            graph_url: NationalCloud::Global.graph_base_url().into(),
            request_budget: BudgetConfig::default(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            retry: RetryPolicy::none(),
            token_refresh_margin: Duration::from_secs(5 * 60),
            http_client: None,
        }
    }

    /// Uses a national cloud's endpoints.
    #[must_use]
    pub fn with_cloud(mut self, cloud: NationalCloud) -> Self {
        self.authority_url = cloud.authority_host().into();
        self.graph_url = cloud.graph_base_url().into();
        self
    }

    /// The Entra authority host (default `https://login.microsoftonline.com`); tokens come
    /// from `{authority}/{tenant}/oauth2/v2.0/token`. `https://` only, or `http://` on
    /// loopback (an emulator).
    #[must_use]
    pub fn with_authority_url(mut self, url: impl Into<String>) -> Self {
        self.authority_url = url.into();
        self
    }

    /// The Graph base URL including the version (default `https://graph.microsoft.com/v1.0`).
    /// `https://` only, or `http://` on loopback (an emulator).
    #[must_use]
    pub fn with_graph_url(mut self, url: impl Into<String>) -> Self {
        self.graph_url = url.into();
        self
    }

    /// Replaces the credential.
    #[must_use]
    pub fn with_credential(mut self, credential: Credential) -> Self {
        self.credential = credential;
        self
    }

    /// The client-side request budget (default 1,500 per 30 s).
    #[must_use]
    pub fn with_request_budget(mut self, budget: BudgetConfig) -> Self {
        self.request_budget = budget;
        self
    }

    /// The timeout of one HTTP request (default 30 s). Not used with
    /// [`with_http_client`](Self::with_http_client).
    #[must_use]
    pub fn with_request_timeout(mut self, timeout: Duration) -> Self {
        self.request_timeout = timeout;
        self
    }

    /// The connect timeout (default 10 s). Not used with
    /// [`with_http_client`](Self::with_http_client).
    #[must_use]
    pub fn with_connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// How the client retries by itself (default [`RetryPolicy::none`]).
    #[must_use]
    pub fn with_retry_policy(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Renew the token when it has less than this left (default 5 minutes).
    #[must_use]
    pub fn with_token_refresh_margin(mut self, margin: Duration) -> Self {
        self.token_refresh_margin = margin;
        self
    }

    /// Sends every request (tokens and Graph) through `client` — e.g. one with a proxy, a
    /// custom root store or shared connection pools — instead of one the client builds.
    /// Its timeouts apply, not [`with_request_timeout`](Self::with_request_timeout)'s.
    /// Build it with `redirect(reqwest::redirect::Policy::none())`: the token endpoint must
    /// not bounce credentials elsewhere.
    #[must_use]
    pub fn with_http_client(mut self, client: reqwest::Client) -> Self {
        self.http_client = Some(client);
        self
    }

    /// Directory (tenant) id: a GUID or a verified domain.
    pub fn tenant_id(&self) -> &str {
        &self.tenant_id
    }

    /// Application (client) id. Also the `sessionId` of every presence session.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// The credential (its `Debug` shows no secret).
    pub fn credential(&self) -> &Credential {
        &self.credential
    }

    /// The Entra authority host.
    pub fn authority_url(&self) -> &str {
        &self.authority_url
    }

    /// The Graph base URL.
    pub fn graph_url(&self) -> &str {
        &self.graph_url
    }

    /// The client-side request budget.
    pub fn request_budget(&self) -> BudgetConfig {
        self.request_budget
    }

    /// The timeout of one HTTP request.
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// The connect timeout.
    pub fn connect_timeout(&self) -> Duration {
        self.connect_timeout
    }

    /// How the client retries by itself.
    pub fn retry_policy(&self) -> RetryPolicy {
        self.retry
    }

    /// How long before its expiry the token is renewed.
    pub fn token_refresh_margin(&self) -> Duration {
        self.token_refresh_margin
    }

    pub(crate) fn http_client(&self) -> Option<&reqwest::Client> {
        self.http_client.as_ref()
    }

    /// Reads `AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET` (or
    /// `AZURE_CLIENT_CERTIFICATE_PATH`: one PEM file holding the private key and the
    /// certificate) and optionally `AZURE_AUTHORITY_HOST` and `GRAPH_BASE_URL` through `lookup` (e.g.
    /// `|k| std::env::var(k).ok()`). Loading a `.env` file is the caller's business.
    pub fn from_env_with(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, GraphError> {
        let get = |k: &str| {
            lookup(k)
                .map(|v| v.trim().to_owned())
                .filter(|v| !v.is_empty())
        };
        let need = |k: &str| get(k).ok_or_else(|| GraphError::Config(format!("{k} is not set")));
        let tenant_id = need("AZURE_TENANT_ID")?;
        let client_id = need("AZURE_CLIENT_ID")?;
        let credential = match (
            get("AZURE_CLIENT_SECRET"),
            get("AZURE_CLIENT_CERTIFICATE_PATH"),
        ) {
            (Some(secret), _) => Credential::Secret(SecretString::new(secret)),
            (None, Some(path)) => {
                let pem = std::fs::read_to_string(&path).map_err(|e| {
                    GraphError::Config(format!("AZURE_CLIENT_CERTIFICATE_PATH {path:?}: {e}"))
                })?;
                Credential::Certificate(crate::cert::CertificateCredential::from_pem(&pem, &pem)?)
            }
            (None, None) => {
                return Err(GraphError::Config(
                    "AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH) is not set".into(),
                ))
            }
        };
        let mut c = GraphConfig::new(tenant_id, client_id, credential);
        if let Some(a) = get("AZURE_AUTHORITY_HOST") {
            c.authority_url = a;
        }
        if let Some(g) = get("GRAPH_BASE_URL") {
            c.graph_url = g;
        }
        Ok(c)
    }

    /// [`GraphConfig::from_env_with`] over the process environment.
    pub fn from_env() -> Result<Self, GraphError> {
        Self::from_env_with(|k| std::env::var(k).ok())
    }
}

/// Parses an endpoint URL: `https://`, or plain `http://` only on a loopback host (emulators).
pub(crate) fn endpoint_url(what: &str, s: &str) -> Result<url::Url, GraphError> {
    let u = url::Url::parse(s.trim_end_matches('/'))
        .map_err(|e| GraphError::Config(format!("{what} {s:?} is not a URL: {e}")))?;
    let loopback = match u.host() {
        Some(url::Host::Ipv4(ip)) => ip.is_loopback(),
        Some(url::Host::Ipv6(ip)) => ip.is_loopback(),
        Some(url::Host::Domain(d)) => d.eq_ignore_ascii_case("localhost"),
        None => false,
    };
    match u.scheme() {
        "https" => Ok(u),
        "http" if loopback => Ok(u),
        _ => Err(GraphError::Config(format!(
            "{what} {s:?} must use https:// (plain http:// is allowed only on loopback)"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_is_redacted() {
        let c = GraphConfig::new("t", "c", Credential::Secret("hunter2-value".into()));
        let dbg = format!("{c:?}");
        assert!(!dbg.contains("hunter2"), "{dbg}");
        assert!(dbg.contains("redacted"));
    }

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
    fn retry_policy_stops_at_its_count_and_its_total_wait() {
        let s = Duration::from_secs;
        assert_eq!(RetryPolicy::none().next_wait(0, Some(s(1)), s(0)), None);
        let p = RetryPolicy::retries(2).with_max_wait(s(10));
        assert_eq!(p.next_wait(0, Some(s(4)), s(0)), Some(s(4)));
        assert_eq!(p.next_wait(1, Some(s(4)), s(4)), Some(s(4)));
        assert_eq!(p.next_wait(2, Some(s(1)), s(8)), None, "no retries left");
        assert_eq!(p.next_wait(1, Some(s(7)), s(4)), None, "past max_wait");
        // A Retry-After longer than max_retry_after is cut to it.
        let p = RetryPolicy::retries(1).with_max_retry_after(s(2));
        assert_eq!(p.next_wait(0, Some(s(3600)), s(0)), Some(s(2)));
        let backoff = p.next_wait(0, None, s(0)).unwrap();
        assert!(backoff >= Duration::from_millis(250) && backoff <= Duration::from_millis(500));
    }

    #[test]
    fn setters_and_getters() {
        let http = reqwest::Client::new();
        let c = GraphConfig::new("t", "c", Credential::Secret("s".into()))
            .with_authority_url("http://127.0.0.1:1")
            .with_graph_url("http://127.0.0.1:2/v1.0")
            .with_request_budget(BudgetConfig::new(10, Duration::from_secs(1)))
            .with_retry_policy(RetryPolicy::retries(3))
            .with_http_client(http);
        assert_eq!(c.authority_url(), "http://127.0.0.1:1");
        assert_eq!(c.graph_url(), "http://127.0.0.1:2/v1.0");
        assert_eq!(c.request_budget().requests(), 10);
        assert_eq!(c.retry_policy().max_retries(), 3);
        assert!(c.http_client().is_some());
        assert_eq!(
            GraphConfig::new("t", "c", Credential::Secret("s".into())).retry_policy(),
            RetryPolicy::none()
        );
    }

    #[test]
    fn env_and_endpoints() {
        let c = GraphConfig::from_env_with(|k| match k {
            "AZURE_TENANT_ID" => Some("t".into()),
            "AZURE_CLIENT_ID" => Some("c".into()),
            "AZURE_CLIENT_SECRET" => Some("s".into()),
            "GRAPH_BASE_URL" => Some("http://127.0.0.1:1/v1.0".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.graph_url(), "http://127.0.0.1:1/v1.0");
        assert_eq!(c.authority_url(), "https://login.microsoftonline.com");
        let both = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/fixtures/test-app.both.pem"
        );
        let c = GraphConfig::from_env_with(|k| match k {
            "AZURE_TENANT_ID" | "AZURE_CLIENT_ID" => Some("x".into()),
            "AZURE_CLIENT_CERTIFICATE_PATH" => Some(both.into()),
            _ => None,
        })
        .unwrap();
        assert!(matches!(c.credential(), Credential::Certificate(_)));
        let e = GraphConfig::from_env_with(|_| None).unwrap_err();
        assert!(e.to_string().contains("AZURE_TENANT_ID"));
        assert!(endpoint_url("x", "http://graph.example.com/v1.0").is_err());
        assert!(endpoint_url("x", "http://[::1]:8/v1.0").is_ok());
        assert!(endpoint_url("x", "https://graph.microsoft.us/v1.0").is_ok());
    }
}
