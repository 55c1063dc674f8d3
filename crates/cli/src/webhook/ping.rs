//! `check`'s ping: one request, signed as every request is, whose body
//! `{"type":"ping","time":…,"timestamp":…}` a receiver tells apart from a
//! person's state (those have no `type`) and ignores. The mark is in the
//! body, so the signature covers it.

use std::time::{Duration, SystemTime};

use reqwest::header::HeaderMap;
use reqwest::StatusCode;
use ring::hmac;
use serde::Serialize;

use super::payload::{self, SignedRequest};
use super::WebhookSettings;

/// The body's `type` of a ping.
pub const PING_TYPE: &str = "ping";

#[derive(Serialize)]
struct Body<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    time: String,
    timestamp: u64,
}

/// The signed ping at `now`.
pub fn signed_ping(key: &hmac::Key, now: SystemTime) -> SignedRequest {
    let (timestamp, time) = payload::stamp(now);
    let body = Body {
        kind: PING_TYPE,
        time,
        timestamp,
    };
    // A string and a number: serialising cannot fail.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let signature = payload::signature(key, timestamp, &body);
    SignedRequest {
        body,
        timestamp,
        signature,
    }
}

/// The ping got no answer. No variant holds the URL's query or the secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PingError {
    /// The HTTP client could not be built (TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Client(String),
    /// No answer within `WEBHOOK_TIMEOUT_SECONDS`.
    #[error("no answer within {} s", .0.as_secs())]
    Timeout(Duration),
    /// The TLS handshake failed (certificate, protocol).
    #[error("the TLS handshake failed: {0}")]
    Tls(String),
    /// No connection (refused, unknown host, unreachable).
    #[error("cannot connect: {0}")]
    Connect(String),
    /// Anything else on the way.
    #[error("{0}")]
    Other(String),
}

/// What the receiver answered the ping.
#[derive(Debug, Clone)]
pub struct PingAnswer {
    /// Its status.
    pub status: StatusCode,
    /// Its headers (`Location` of a redirect).
    pub headers: HeaderMap,
}

/// Sends one signed ping to `WEBHOOK_URL` with the sink's client.
pub async fn ping(settings: &WebhookSettings) -> Result<PingAnswer, PingError> {
    let client = super::http_client(settings)
        .map_err(|e| PingError::Client(crate::http_error::with_causes(&e)))?;
    let key = payload::signing_key(settings.secret.expose());
    let request = signed_ping(&key, SystemTime::now());
    let response = super::send_signed(&client, &settings.url, request)
        .await
        .map_err(|e| {
            let e = e.without_url();
            let text = crate::http_error::with_causes(&e);
            if e.is_timeout() {
                PingError::Timeout(settings.timeout)
            } else if settings.url.scheme() == "https" && is_tls(&text) {
                PingError::Tls(text)
            } else if e.is_connect() {
                PingError::Connect(text)
            } else {
                PingError::Other(text)
            }
        })?;
    Ok(PingAnswer {
        status: response.status(),
        headers: response.headers().clone(),
    })
}

/// Whether a connection error came from the TLS handshake rather than TCP.
fn is_tls(text: &str) -> bool {
    let lower = text.to_ascii_lowercase();
    !lower.contains("tcp connect error")
        && [
            "certificate",
            "tls",
            "handshake",
            "corrupt message",
            "alert",
        ]
        .iter()
        .any(|w| lower.contains(w))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ping_is_signed_like_any_request_and_says_it_is_a_ping() {
        let key = payload::signing_key("0123456789abcdef-secret");
        let at = SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_289_247);
        let ping = signed_ping(&key, at);
        assert_eq!(
            String::from_utf8(ping.body.clone()).unwrap(),
            r#"{"type":"ping","time":"2026-12-03T09:14:07Z","timestamp":1796289247}"#
        );
        assert_eq!(ping.timestamp, 1_796_289_247);
        assert_eq!(
            ping.signature,
            payload::signature(&key, ping.timestamp, &ping.body)
        );
    }

    #[test]
    fn tls_failures_are_told_from_tcp_ones() {
        assert!(is_tls(
            "error sending request: client error (Connect): invalid peer certificate: UnknownIssuer"
        ));
        assert!(!is_tls(
            "error sending request: client error (Connect): tcp connect error: Connection refused"
        ));
    }
}
