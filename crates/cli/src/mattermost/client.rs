//! The Mattermost REST API v4 calls the sink makes, with the server's rate
//! limit honoured: after a 429, or an answer saying no request is left in
//! the window (`X-Ratelimit-Remaining: 0`), no request goes out before the
//! reset.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::settings::Secret;

/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(15);

/// A call failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error status.
    #[error("HTTP {status} {id}: {message}")]
    Status {
        /// The HTTP status.
        status: u16,
        /// The error's id (`api.context.session_expired.app_error`), if any.
        id: String,
        /// The server's message (or the body's start).
        message: String,
        /// When to try again (`Retry-After`, else `X-Ratelimit-Reset`).
        retry_after: Option<Duration>,
    },
    /// No answer (connection refused, timeout).
    #[error("cannot reach Mattermost: {0}")]
    Network(String),
    /// An answer that is not what the API documents.
    #[error("unexpected answer from Mattermost: {0}")]
    Decode(String),
}

impl ApiError {
    /// The HTTP status, when the server answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            Self::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A user's status (`GET /users/{id}/status`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserStatus {
    /// `online`, `away`, `offline` or `dnd`.
    pub status: String,
    /// Set by hand rather than by activity.
    #[serde(default)]
    pub manual: bool,
    /// End of a timed DND, epoch seconds (0: none).
    #[serde(default)]
    pub dnd_end_time: i64,
}

/// A custom status.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct CustomStatus {
    /// The emoji's name.
    #[serde(default)]
    pub emoji: String,
    /// The text.
    #[serde(default)]
    pub text: String,
    /// The duration's name, or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub duration: String,
    /// RFC 3339 expiry, or empty.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub expires_at: String,
}

/// A user, with the custom status from its props.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The user id.
    pub id: String,
    /// The username.
    pub username: String,
    /// The custom status, if one is set.
    pub custom: Option<CustomStatus>,
}

impl User {
    fn from_json(v: &serde_json::Value) -> Result<User, ApiError> {
        let id = v["id"]
            .as_str()
            .ok_or_else(|| ApiError::Decode("a user without an id".into()))?;
        // The server keeps it as a JSON string in the props; accept an object too.
        let custom = match &v["props"]["customStatus"] {
            serde_json::Value::String(s) if !s.is_empty() => serde_json::from_str(s).ok(),
            o @ serde_json::Value::Object(_) => serde_json::from_value(o.clone()).ok(),
            _ => None,
        }
        .filter(|c: &CustomStatus| !(c.emoji.is_empty() && c.text.is_empty()));
        Ok(User {
            id: id.to_owned(),
            username: v["username"].as_str().unwrap_or_default().to_owned(),
            custom,
        })
    }
}

/// A client for one server and token.
#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: Secret,
    /// No request before this (the rate limit's reset).
    not_before: Mutex<Option<tokio::time::Instant>>,
}

/// Seconds from a rate-limit header. The server sends seconds from now;
/// its reference calls it an epoch time: a value that can only be one is
/// read as one.
fn seconds(value: Option<&reqwest::header::HeaderValue>) -> Option<Duration> {
    let n: u64 = value?.to_str().ok()?.trim().parse().ok()?;
    if n > 1_000_000_000 {
        let now = chrono::Utc::now().timestamp().max(0) as u64;
        return Some(Duration::from_secs(n.saturating_sub(now)));
    }
    Some(Duration::from_secs(n))
}

impl Client {
    /// A client for `base` (`https://chat.example.com`) with `token`.
    pub fn new(base: &str, token: Secret) -> Result<Client, ApiError> {
        let http = reqwest::Client::builder()
            .timeout(REQUEST_TIMEOUT)
            .user_agent(concat!("sip-blf-sync/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ApiError::Network(e.to_string()))?;
        Ok(Client {
            http,
            base: base.trim_end_matches('/').to_owned(),
            token,
            not_before: Mutex::new(None),
        })
    }

    fn hold_until(&self, at: tokio::time::Instant) {
        let mut guard = self
            .not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if guard.is_none_or(|t| t < at) {
            *guard = Some(at);
        }
    }

    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<serde_json::Value, ApiError> {
        let wait = *self
            .not_before
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(at) = wait {
            tokio::time::sleep_until(at).await;
        }
        let mut request = self
            .http
            .request(method, format!("{}/api/v4{path}", self.base))
            .bearer_auth(self.token.expose());
        if let Some(body) = body {
            request = request.json(body);
        }
        let response = request
            .send()
            .await
            .map_err(|e| ApiError::Network(crate::http_error::with_causes(&e)))?;
        let status = response.status().as_u16();
        let headers = response.headers();
        let reset = seconds(headers.get("x-ratelimit-reset"));
        let now = tokio::time::Instant::now();
        if headers
            .get("x-ratelimit-remaining")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.trim() == "0")
        {
            if let Some(reset) = reset {
                self.hold_until(now + reset);
            }
        }
        let retry_after = seconds(headers.get("retry-after")).or(reset);
        if status == 429 {
            // Without either header, a second's pause.
            self.hold_until(now + retry_after.unwrap_or(Duration::from_secs(1)));
        }
        let text = response
            .text()
            .await
            .map_err(|e| ApiError::Network(crate::http_error::with_causes(&e)))?;
        if !(200..300).contains(&status) {
            let v: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
            let message = v["message"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| text.trim().chars().take(200).collect());
            return Err(ApiError::Status {
                status,
                id: v["id"].as_str().unwrap_or_default().to_owned(),
                message,
                retry_after,
            });
        }
        if text.trim().is_empty() {
            return Ok(serde_json::Value::Null);
        }
        serde_json::from_str(&text).map_err(|e| ApiError::Decode(e.to_string()))
    }

    /// The token's own account (`GET /users/me`).
    pub async fn me(&self) -> Result<User, ApiError> {
        User::from_json(&self.call(reqwest::Method::GET, "/users/me", None).await?)
    }

    /// The user with `email`.
    pub async fn user_by_email(&self, email: &str) -> Result<User, ApiError> {
        let path = format!("/users/email/{}", path_segment(email));
        User::from_json(&self.call(reqwest::Method::GET, &path, None).await?)
    }

    /// The user `id` (for the custom status in its props).
    pub async fn user(&self, id: &str) -> Result<User, ApiError> {
        let path = format!("/users/{}", path_segment(id));
        User::from_json(&self.call(reqwest::Method::GET, &path, None).await?)
    }

    /// The user's status.
    pub async fn status(&self, id: &str) -> Result<UserStatus, ApiError> {
        let path = format!("/users/{}/status", path_segment(id));
        let v = self.call(reqwest::Method::GET, &path, None).await?;
        serde_json::from_value(v).map_err(|e| ApiError::Decode(e.to_string()))
    }

    /// Sets the user's status (`dnd_end_time` in epoch seconds, 0: none).
    pub async fn set_status(
        &self,
        id: &str,
        status: &str,
        dnd_end_time: i64,
    ) -> Result<(), ApiError> {
        let path = format!("/users/{}/status", path_segment(id));
        let mut body = serde_json::json!({"user_id": id, "status": status});
        if status == "dnd" && dnd_end_time > 0 {
            body["dnd_end_time"] = dnd_end_time.into();
        }
        self.call(reqwest::Method::PUT, &path, Some(&body))
            .await
            .map(drop)
    }

    /// Sets the user's custom status.
    pub async fn set_custom(&self, id: &str, custom: &CustomStatus) -> Result<(), ApiError> {
        let path = format!("/users/{}/status/custom", path_segment(id));
        let body = serde_json::to_value(custom).map_err(|e| ApiError::Decode(e.to_string()))?;
        self.call(reqwest::Method::PUT, &path, Some(&body))
            .await
            .map(drop)
    }

    /// Removes the user's custom status.
    pub async fn clear_custom(&self, id: &str) -> Result<(), ApiError> {
        let path = format!("/users/{}/status/custom", path_segment(id));
        self.call(reqwest::Method::DELETE, &path, None)
            .await
            .map(drop)
    }

    /// The id of `channel` in `team` (URL names).
    pub async fn channel_id(&self, team: &str, channel: &str) -> Result<String, ApiError> {
        let path = format!(
            "/teams/name/{}/channels/name/{}",
            path_segment(team),
            path_segment(channel)
        );
        let v = self.call(reqwest::Method::GET, &path, None).await?;
        v["id"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ApiError::Decode("a channel without an id".into()))
    }

    /// Posts `message` (Markdown) in the channel.
    pub async fn post(&self, channel_id: &str, message: &str) -> Result<(), ApiError> {
        let body = serde_json::json!({"channel_id": channel_id, "message": message});
        self.call(reqwest::Method::POST, "/posts", Some(&body))
            .await
            .map(drop)
    }
}

/// A URL path segment: anything but unreserved characters and `@` escaped.
fn path_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~@+".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
