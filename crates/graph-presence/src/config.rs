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

/// Client settings. Build with [`GraphConfig::new`] and adjust the public fields.
#[derive(Debug, Clone)]
pub struct GraphConfig {
    /// Directory (tenant) id: a GUID or a verified domain.
    pub tenant_id: String,
    /// Application (client) id. Also the `sessionId` of every presence session.
    pub client_id: String,
    /// The credential.
    pub credential: Credential,
    /// Entra authority host (default `https://login.microsoftonline.com`).
    pub authority_host: String,
    /// Graph base URL including the version (default `https://graph.microsoft.com/v1.0`).
    pub graph_base_url: String,
    /// Client-side request budget (default 1,500 per 30 s).
    pub request_budget: BudgetConfig,
    /// Timeout of one HTTP request (default 30 s).
    pub request_timeout: Duration,
    /// Connect timeout (default 10 s).
    pub connect_timeout: Duration,
    /// Retries the client makes itself after a 429, 5xx, timeout or connection error
    /// (default **0**: it does not retry).
    ///
    /// With 0 a failed call returns its typed error at once — [`GraphError::Throttled`] and
    /// [`GraphError::Server`] with the server's `Retry-After`, [`GraphError::Transport`] for
    /// timeouts and connection errors, all [`GraphError::is_transient`] — so that a caller
    /// with its own retry loop (a service that orders and re-sends its calls) keeps every
    /// wait in one place and no call lasts longer than one request. A caller without a retry
    /// loop of its own (a one-shot command, a script) sets it, e.g. to 3. The renewal of the
    /// token after a 401 is not a retry and always happens.
    pub max_retries: u32,
    /// First backoff step for 5xx/timeouts when retrying (default 500 ms; doubles each retry,
    /// with jitter).
    pub backoff_base: Duration,
    /// Longest backoff step when retrying (default 60 s).
    pub backoff_max: Duration,
    /// Longest `Retry-After` honoured as given when retrying (default 5 minutes); longer
    /// values are cut to this so a bad header cannot stall the client for hours.
    pub max_retry_after: Duration,
    /// Renew the token when it has less than this left (default 5 minutes).
    pub token_refresh_margin: Duration,
}

impl GraphConfig {
    /// Settings for the global cloud with the defaults above.
    pub fn new(
        tenant_id: impl Into<String>,
        client_id: impl Into<String>,
        credential: Credential,
    ) -> Self {
        GraphConfig {
            tenant_id: tenant_id.into(),
            client_id: client_id.into(),
            credential,
            authority_host: NationalCloud::Global.authority_host().into(),
            graph_base_url: NationalCloud::Global.graph_base_url().into(),
            request_budget: BudgetConfig::default(),
            request_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
            max_retries: 0,
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            max_retry_after: Duration::from_secs(300),
            token_refresh_margin: Duration::from_secs(5 * 60),
        }
    }

    /// Uses a national cloud's endpoints.
    pub fn with_cloud(mut self, cloud: NationalCloud) -> Self {
        self.authority_host = cloud.authority_host().into();
        self.graph_base_url = cloud.graph_base_url().into();
        self
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
            c.authority_host = a;
        }
        if let Some(g) = get("GRAPH_BASE_URL") {
            c.graph_base_url = g;
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
    fn env_and_endpoints() {
        let c = GraphConfig::from_env_with(|k| match k {
            "AZURE_TENANT_ID" => Some("t".into()),
            "AZURE_CLIENT_ID" => Some("c".into()),
            "AZURE_CLIENT_SECRET" => Some("s".into()),
            "GRAPH_BASE_URL" => Some("http://127.0.0.1:1/v1.0".into()),
            _ => None,
        })
        .unwrap();
        assert_eq!(c.graph_base_url, "http://127.0.0.1:1/v1.0");
        assert_eq!(c.authority_host, "https://login.microsoftonline.com");
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
        assert!(matches!(c.credential, Credential::Certificate(_)));
        let e = GraphConfig::from_env_with(|_| None).unwrap_err();
        assert!(e.to_string().contains("AZURE_TENANT_ID"));
        assert!(endpoint_url("x", "http://graph.example.com/v1.0").is_err());
        assert!(endpoint_url("x", "http://[::1]:8/v1.0").is_ok());
        assert!(endpoint_url("x", "https://graph.microsoft.us/v1.0").is_ok());
    }
}
