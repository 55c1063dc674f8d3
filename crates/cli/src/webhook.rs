//! The webhook sink (`SINKS=…,webhook`): a signed JSON `POST` to
//! `WEBHOOK_URL` for each change of a person's state.
//!
//! Each request carries `X-Timestamp` (unix seconds) and `X-Signature-256:
//! sha256=<hex HMAC-SHA256(WEBHOOK_SECRET, timestamp "." body)>`
//! ([`payload`]). The engine's lane coalesces per person (a receiver that
//! was slow or down gets the latest state, not a backlog), retries with
//! backoff, and re-sends everyone every `WEBHOOK_RESEND_SECONDS`
//! ([`sip_blf_engine::LaneConfig::refresh`]). Redirects are not followed:
//! the signature is meant for the configured receiver. See `docs/webhooks.md`.

pub mod payload;
pub mod ping;

use std::collections::BTreeMap;
use std::fmt;
use std::time::{Duration, SystemTime};

use reqwest::header::{HeaderMap, CONTENT_TYPE, LOCATION, RETRY_AFTER};
use reqwest::{StatusCode, Url};
use ring::hmac;
use sip_blf_engine::{LaneConfig, PersonId, Sink, SinkError, View, Write};

use crate::engine::{Mapping, MappingError};
use crate::extensions::Extension;
use crate::problems::{Problem, Problems};
use crate::settings::{Env, Secret};

pub use payload::{PersonInfo, SignedRequest, Snapshot};
pub use ping::{ping, PingError};

/// `WEBHOOK_RESEND_SECONDS` when not set: every 15 minutes.
pub const DEFAULT_RESEND_SECONDS: u64 = 900;
/// `WEBHOOK_TIMEOUT_SECONDS` when not set.
pub const DEFAULT_TIMEOUT_SECONDS: u64 = 10;
/// The shortest `WEBHOOK_SECRET` accepted, in bytes.
pub const MIN_SECRET_LEN: usize = 16;
/// Requests in flight at once (one lane batch, sent side by side).
const BATCH: usize = 8;

/// The webhook sink's settings. `Debug` never shows the secret, nor the
/// URL's password or query (which may hold a token).
#[derive(Clone)]
pub struct WebhookSettings {
    /// `WEBHOOK_URL`: where the requests go (http or https).
    pub url: Url,
    /// `WEBHOOK_SECRET`: the HMAC key.
    pub secret: Secret,
    /// `WEBHOOK_RESEND_SECONDS`: every person's state again this often;
    /// `None` for 0.
    pub resend: Option<Duration>,
    /// `WEBHOOK_TIMEOUT_SECONDS`: the longest wait for a response.
    pub timeout: Duration,
}

impl fmt::Debug for WebhookSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSettings")
            .field("url", &self.redacted_url())
            .field("secret", &self.secret)
            .field("resend", &self.resend)
            .field("timeout", &self.timeout)
            .finish()
    }
}

impl WebhookSettings {
    /// Reads the settings; `Ok(None)` when `WEBHOOK_URL` is not set (no
    /// webhook sink). Every problem is collected; none shows the secret.
    pub fn from_env(env: &Env) -> Result<Option<WebhookSettings>, Problems> {
        let Some(raw) = env.get("WEBHOOK_URL") else {
            return Ok(None);
        };
        let mut problems = Problems::default();
        let url = match parse_url(raw) {
            Ok(url) => Some(url),
            Err(why) => {
                problems.push(Problem::in_var(
                    "WEBHOOK_URL",
                    format!(
                        "{why}: use http:// or https:// with a host, e.g. \
                         https://ha.example.com/api/webhook/LONG-RANDOM-ID"
                    ),
                ));
                None
            }
        };
        let secret = match env.get("WEBHOOK_SECRET") {
            None => {
                problems.push(Problem::in_var(
                    "WEBHOOK_SECRET",
                    format!(
                        "is not set: the key that signs each request (at least \
                         {MIN_SECRET_LEN} characters; e.g. openssl rand -hex 32), which the \
                         receiver uses to check the signature"
                    ),
                ));
                None
            }
            Some(s) if s.len() < MIN_SECRET_LEN => {
                problems.push(Problem::in_var(
                    "WEBHOOK_SECRET",
                    format!(
                        "is too short ({} characters): use at least {MIN_SECRET_LEN}, e.g. \
                         openssl rand -hex 32",
                        s.len()
                    ),
                ));
                None
            }
            Some(s) => Some(Secret::new(s)),
        };
        let resend = match seconds(env, "WEBHOOK_RESEND_SECONDS", DEFAULT_RESEND_SECONDS, 0) {
            Ok(0) => None,
            Ok(s) => Some(Duration::from_secs(s)),
            Err(p) => {
                problems.push(p);
                None
            }
        };
        let timeout = seconds(env, "WEBHOOK_TIMEOUT_SECONDS", DEFAULT_TIMEOUT_SECONDS, 1)
            .unwrap_or_else(|p| {
                problems.push(p);
                DEFAULT_TIMEOUT_SECONDS
            });
        match (url, secret) {
            (Some(url), Some(secret)) if problems.is_empty() => Ok(Some(WebhookSettings {
                url,
                secret,
                resend,
                timeout: Duration::from_secs(timeout),
            })),
            _ => Err(problems),
        }
    }

    /// `WEBHOOK_URL` without its password and query, for messages.
    pub fn redacted_url(&self) -> String {
        redact(&self.url)
    }
}

/// The most seconds accepted for the webhook's durations (a day).
const MAX_SECONDS: u64 = 86_400;

/// A whole number of seconds from `min` to a day, `default` when unset.
fn seconds(env: &Env, var: &str, default: u64, min: u64) -> Result<u64, Problem> {
    let Some(v) = env.get(var) else {
        return Ok(default);
    };
    match v.parse::<u64>() {
        Ok(s) if (min..=MAX_SECONDS).contains(&s) => Ok(s),
        _ => Err(Problem::in_var(
            var,
            format!(
                "{v:?} is not a number of seconds from {min} to {MAX_SECONDS}, e.g. {default}{}",
                if min == 0 { " (0 = off)" } else { "" }
            ),
        )),
    }
}

/// An http(s) URL with a host, or why not (never echoing the URL: it may
/// hold a token).
fn parse_url(raw: &str) -> Result<Url, String> {
    let url = Url::parse(raw).map_err(|e| format!("is not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("has scheme {:?}", url.scheme()));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err("has no host".to_owned());
    }
    Ok(url)
}

/// `url` without password and query.
fn redact(url: &Url) -> String {
    let mut shown = url.clone();
    if shown.password().is_some() {
        let _ = shown.set_password(Some("***"));
    }
    if shown.query().is_some() {
        shown.set_query(Some("***"));
    }
    shown.to_string()
}

/// The webhook sink could not be built.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WebhookError {
    /// The HTTP client could not be built (TLS roots).
    #[error("cannot build the HTTP client: {0}")]
    Client(#[from] reqwest::Error),
    /// A person's mapping file could not be read.
    #[error(transparent)]
    Mapping(#[from] MappingError),
}

/// The webhook sink: one signed `POST` per person per change.
#[derive(Clone)]
pub struct WebhookSink {
    client: reqwest::Client,
    url: Url,
    shown_url: String,
    key: hmac::Key,
    resend: Option<Duration>,
    people: BTreeMap<PersonId, PersonInfo>,
}

impl fmt::Debug for WebhookSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSink")
            .field("url", &self.shown_url)
            .field("people", &self.people.len())
            .finish_non_exhaustive()
    }
}

impl WebhookSink {
    /// The sink for the people of `extensions`, each with the Teams mapping
    /// of the first of their entries that names one, else `mapping`.
    pub fn new(
        settings: &WebhookSettings,
        extensions: &[Extension],
        mapping: &Mapping,
    ) -> Result<WebhookSink, WebhookError> {
        let client = http_client(settings)?;
        let mut people = BTreeMap::new();
        for (user, entries) in crate::people::group_by_person(extensions) {
            let mapping = match entries.iter().find_map(|e| e.mapping.as_ref()) {
                Some(path) => Mapping::load(path)?,
                None => mapping.clone(),
            };
            let info = PersonInfo {
                name: entries.iter().find_map(|e| e.name.clone()),
                email: entries
                    .iter()
                    .map(|e| e.email.clone())
                    .find(|m| !m.is_empty()),
                extensions: entries.iter().map(|e| e.extension.clone()).collect(),
                mapping,
            };
            people.insert(PersonId(user), info);
        }
        Ok(WebhookSink {
            client,
            url: settings.url.clone(),
            shown_url: settings.redacted_url(),
            key: payload::signing_key(settings.secret.expose()),
            resend: settings.resend,
            people,
        })
    }

    async fn post(&self, write: Write<Snapshot>) -> Result<(), SinkError> {
        let request =
            payload::signed_request(&self.key, &write.held, write.reason, SystemTime::now());
        let response = send_signed(&self.client, &self.url, request)
            .await
            .map_err(|e| {
                // Without the URL: its query may hold a token.
                let e = e.without_url();
                let message = format!("{}: {e}", self.shown_url);
                if e.is_connect() {
                    SinkError::disconnected(message)
                } else {
                    SinkError::transient(message)
                }
            })?;
        classify(response.status(), response.headers(), &self.shown_url)
    }
}

/// POSTs a signed request (JSON body, timestamp and signature headers): a
/// state of the sink or `check`'s ping.
async fn send_signed(
    client: &reqwest::Client,
    url: &Url,
    request: payload::SignedRequest,
) -> Result<reqwest::Response, reqwest::Error> {
    let mut call = client
        .post(url.clone())
        .header(CONTENT_TYPE, "application/json");
    for (name, value) in request.headers() {
        call = call.header(name, value);
    }
    call.body(request.body).send().await
}

/// The HTTP client of the sink and of `check`'s ping: the settings'
/// timeout, no redirects.
fn http_client(settings: &WebhookSettings) -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .timeout(settings.timeout)
        .connect_timeout(settings.timeout)
        // The signature is for this receiver: a redirect is an error.
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("sip-blf-sync/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// The outcome of a response: 2xx is done; 408, 429 and 5xx are retried
/// (after `Retry-After` when longer than the backoff); the rest needs a fix
/// on one side or the other, which the message names.
pub fn classify(status: StatusCode, headers: &HeaderMap, url: &str) -> Result<(), SinkError> {
    if status.is_success() {
        return Ok(());
    }
    let code = status.as_u16();
    if code == 408 || code == 429 || status.is_server_error() {
        return Err(SinkError::Transient {
            message: format!("{url} answered {status}"),
            retry_after: headers
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(retry_after),
        });
    }
    let hint = refusal_hint(status, headers);
    Err(SinkError::permanent(format!(
        "{url} answered {status}: {hint}"
    )))
}

/// What a refusal (a 3xx or 4xx other than 408 and 429) means, and the fix.
pub fn refusal_hint(status: StatusCode, headers: &HeaderMap) -> String {
    match status.as_u16() {
        300..=399 => {
            let to = headers
                .get(LOCATION)
                .and_then(|v| v.to_str().ok())
                .map_or(String::new(), |l| format!(" to {l}"));
            format!(
                "a redirect{to}, which is not followed (the signed request is for this URL \
                 only): set WEBHOOK_URL to the final URL"
            )
        }
        401 | 403 => "the receiver refused the request: check that its secret is WEBHOOK_SECRET \
                    and that its clock is right (X-Timestamp)"
            .to_owned(),
        404 => "nothing is there: check WEBHOOK_URL".to_owned(),
        410 => "the receiver says this webhook is gone: set WEBHOOK_URL anew, or take webhook \
                out of SINKS"
            .to_owned(),
        _ => "the receiver refused the request".to_owned(),
    }
}

/// `Retry-After` as seconds or an HTTP date (as far from now).
fn retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds.min(MAX_SECONDS)));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = at.with_timezone(&chrono::Utc) - chrono::Utc::now();
    wait.to_std()
        .ok()
        .map(|w| w.min(Duration::from_secs(MAX_SECONDS)))
}

impl Sink for WebhookSink {
    type Held = Snapshot;

    fn name(&self) -> &str {
        "webhook"
    }

    fn desired(&self, view: &View) -> Option<Snapshot> {
        // People not in the extension list are not ours to report.
        let info = self.people.get(&view.person)?;
        Some(Snapshot::of(view, info))
    }

    fn lane_config(&self, default: &LaneConfig) -> LaneConfig {
        default
            .clone()
            .with_max_batch(BATCH)
            .with_refresh(self.resend)
    }

    async fn write(&self, batch: Vec<Write<Snapshot>>) -> Vec<Result<(), SinkError>> {
        futures_util::future::join_all(batch.into_iter().map(|w| self.post(w))).await
    }
}

#[cfg(test)]
#[path = "webhook/tests.rs"]
mod tests;
