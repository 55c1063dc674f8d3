//! Errors that say what to fix.

use std::time::Duration;

/// Everything that can go wrong. Messages name the cause and, where possible, the fix.
/// Secrets and tokens never appear in them.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum GraphError {
    /// The configuration cannot work (bad URL, missing value).
    #[error("invalid Graph configuration: {0}")]
    Config(String),
    /// An argument was refused before anything was sent (bad pair, duration, id).
    #[error("{0}")]
    InvalidInput(String),
    /// Entra refused the token request.
    #[error("Entra refused the token request ({error}{}): {advice}", codes_text(.codes))]
    Token {
        /// The OAuth `error` value, e.g. `invalid_client`.
        error: String,
        /// The AADSTS codes from `error_codes`.
        codes: Vec<u32>,
        /// What to do about it.
        advice: String,
        /// Entra's `trace_id`, for a support ticket.
        trace_id: Option<String>,
        /// Entra's `correlation_id`, for a support ticket.
        correlation_id: Option<String>,
    },
    /// The token endpoint could not be reached or answered nonsense.
    #[error("token request failed: {0}")]
    TokenTransport(String),
    /// Graph answered 401 again after a fresh token was fetched.
    #[error("{operation}: Graph refused a freshly issued token (401 {code}: {message}); check that the tenant and Graph base URL belong to the same cloud")]
    Unauthorized {
        /// The operation.
        operation: &'static str,
        /// Graph error code.
        code: String,
        /// Graph error message.
        message: String,
    },
    /// 403: a permission or admin consent is missing. Not retried.
    #[error("{operation}: 403 Forbidden ({code}); the app registration needs the {permission} application permission with admin consent granted (Entra admin center → App registrations → API permissions → Grant admin consent)")]
    Forbidden {
        /// The operation.
        operation: &'static str,
        /// The permission the operation needs.
        permission: &'static str,
        /// Graph error code.
        code: String,
        /// Graph error message (often empty for 403).
        message: String,
    },
    /// 400: the request is wrong; retrying will not help.
    #[error("{operation}: 400 Bad Request ({code}: {message})")]
    BadRequest {
        /// The operation.
        operation: &'static str,
        /// Graph error code.
        code: String,
        /// Graph error message.
        message: String,
    },
    /// 404: unknown user (or, for clearPresence, no session — which the client treats as success).
    #[error("{operation}: 404 Not Found ({code}: {message})")]
    NotFound {
        /// The operation.
        operation: &'static str,
        /// Graph error code.
        code: String,
        /// Graph error message.
        message: String,
    },
    /// 429: throttled (after every retry, if the client retries; see
    /// [`RetryPolicy`](crate::RetryPolicy)).
    #[error("{operation}: throttled (429){}{}; lower the request rate or the request budget", attempts_text(*.attempts), retry_after_text(.retry_after))]
    Throttled {
        /// The operation.
        operation: &'static str,
        /// Attempts made.
        attempts: u32,
        /// The last `Retry-After`, if any: when to try again.
        retry_after: Option<Duration>,
    },
    /// 5xx (after every retry, if the client retries).
    #[error(
        "{operation}: Graph server error {status}{}{} ({code}: {message})",
        attempts_text(*.attempts),
        retry_after_text(.retry_after)
    )]
    Server {
        /// The operation.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// Attempts made.
        attempts: u32,
        /// Graph error code.
        code: String,
        /// Graph error message.
        message: String,
        /// The server's `Retry-After` (503 often has one), if any.
        retry_after: Option<Duration>,
    },
    /// Timeouts or connection errors (after every retry, if the client retries).
    #[error("{operation}: {message}{}", attempts_text(*.attempts))]
    Transport {
        /// The operation.
        operation: &'static str,
        /// Attempts made.
        attempts: u32,
        /// What failed.
        message: String,
    },
    /// Any other HTTP status.
    #[error("{operation}: unexpected HTTP {status} ({code}: {message})")]
    Http {
        /// The operation.
        operation: &'static str,
        /// HTTP status.
        status: u16,
        /// Graph error code.
        code: String,
        /// Graph error message.
        message: String,
    },
    /// The response could not be understood.
    #[error("{operation}: invalid response: {message}")]
    InvalidResponse {
        /// The operation.
        operation: &'static str,
        /// What was wrong.
        message: String,
    },
}

fn codes_text(codes: &[u32]) -> String {
    codes.iter().map(|c| format!(", AADSTS{c}")).collect()
}

fn attempts_text(attempts: u32) -> String {
    if attempts > 1 {
        format!(" after {attempts} attempts")
    } else {
        String::new()
    }
}

fn retry_after_text(retry_after: &Option<Duration>) -> String {
    retry_after
        .map(|d| format!(", retry after {} s", d.as_secs()))
        .unwrap_or_default()
}

impl GraphError {
    /// True when retrying later may succeed (throttling, server errors, transport).
    pub fn is_transient(&self) -> bool {
        matches!(
            self,
            GraphError::Throttled { .. }
                | GraphError::Server { .. }
                | GraphError::Transport { .. }
                | GraphError::TokenTransport(_)
        )
    }

    /// The application permission a 403 says is missing (`Presence.Read.All` for
    /// `getPresencesByUserId`), or `None` for any other error.
    pub fn missing_permission(&self) -> Option<&'static str> {
        match self {
            GraphError::Forbidden { permission, .. } => Some(permission),
            _ => None,
        }
    }

    /// When the server said to try again (`Retry-After` of a 429 or a 5xx), if it did.
    /// A caller that retries waits this long; without it, it backs off as it sees fit.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            GraphError::Throttled { retry_after, .. } | GraphError::Server { retry_after, .. } => {
                *retry_after
            }
            _ => None,
        }
    }
}

/// Advice for an Entra token error, from its AADSTS code (or the OAuth `error` value).
pub(crate) fn entra_advice(error: &str, codes: &[u32]) -> String {
    for code in codes {
        let advice = match code {
            7000215 => "client secret is wrong (use the secret's Value, not its Secret ID)",
            7000222 => "client secret expired; create a new one under Certificates & secrets and update the configuration",
            700016 => "application not found in tenant; check the client id and tenant id, and that the app is registered (or consented) in that tenant",
            90002 => "tenant not found; check the tenant id (a GUID or a verified domain) and the authority host for your cloud",
            7000218 => "no credential was sent; configure a client secret or a certificate",
            700027 => "the client assertion failed validation; upload the certificate that matches the private key to the app registration",
            70011 => "invalid scope; the scope must be '<graph origin>/.default'",
            9001023 => "use the tenant-specific token endpoint, not /common or /consumers",
            _ => continue,
        };
        return advice.to_owned();
    }
    match error {
        "invalid_client" => {
            "client authentication failed; check the client id and its secret or certificate".into()
        }
        "unauthorized_client" => {
            "the application is not allowed to use this grant in this tenant".into()
        }
        "invalid_scope" => "invalid scope; the scope must be '<graph origin>/.default'".into(),
        "temporarily_unavailable" => "Entra is temporarily unavailable; retry later".into(),
        other => format!("unexpected Entra error '{other}'"),
    }
}
