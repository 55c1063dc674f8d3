//! The listener the phones call: the secret, the extension, then the
//! event into the [`Tracker`] and its facts to the engine.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::Router;
use sip_blf_engine::Observation;
use subtle::ConstantTimeEq as _;
use tokio::sync::mpsc;

use super::event::{self, percent_decode, RequestError, MAX_TARGET};
use super::tracker::{Outcome, Tracker};
use super::{Phones, PHONE};
use crate::observe::{LogLimiter, WARNING_BURST, WARNING_INTERVAL};
use crate::settings::Secret;

/// The header that may carry the secret instead of the query.
pub const SECRET_HEADER: &str = "x-action-url-secret";

/// Requests by outcome, for `/status` and `/metrics`.
#[derive(Debug, Default)]
pub struct Counters {
    /// Taken (their facts went to the engine, or they changed nothing).
    pub accepted: AtomicU64,
    /// Taken but older than what was already known (see the tracker's rule).
    pub stale: AtomicU64,
    /// Refused for a wrong or missing secret (403).
    pub forbidden: AtomicU64,
    /// For an extension not in the list (404).
    pub unknown_extension: AtomicU64,
    /// Not a usable action URL (400, 404, 405, 414).
    pub bad_request: AtomicU64,
}

/// What the handler shares.
pub(super) struct Shared {
    pub(super) secret: Option<Secret>,
    pub(super) phones: Phones,
    pub(super) tracker: tokio::sync::Mutex<Tracker>,
    pub(super) observations: mpsc::Sender<Observation>,
    pub(super) warnings: Mutex<Warnings>,
    pub(super) counters: Arc<Counters>,
}

/// The rate-limited warnings a client can cause at will.
#[derive(Debug)]
pub(super) struct Warnings {
    forbidden: LogLimiter,
    unknown: LogLimiter,
    /// The latest unknown user held back, for the summary.
    latest_unknown: Option<String>,
}

impl Default for Warnings {
    fn default() -> Self {
        Self {
            forbidden: LogLimiter::new(WARNING_INTERVAL, WARNING_BURST),
            unknown: LogLimiter::new(WARNING_INTERVAL, WARNING_BURST),
            latest_unknown: None,
        }
    }
}

impl Warnings {
    /// Logs the summaries due at `now`.
    pub(super) fn poll(&mut self, now: Instant) {
        if let Some(n) = self.forbidden.poll(now) {
            tracing::warn!(
                "action URL: {n} more request(s) refused (403, wrong or missing secret) in the \
                 last {} s",
                WARNING_INTERVAL.as_secs()
            );
        }
        if let Some(n) = self.unknown.poll(now) {
            tracing::warn!(
                "action URL: {n} more request(s) for extensions not in the list (404) in the \
                 last {} s; the latest for {:?}",
                WARNING_INTERVAL.as_secs(),
                self.latest_unknown.take().unwrap_or_default()
            );
        }
    }
}

/// The router: every path goes to the phone handler, except `extra`'s
/// routes, which get neither the secret check nor the phone handling.
pub(super) fn router(shared: Arc<Shared>, extra: Router) -> Router {
    let phones = Router::new().fallback(phone_request).with_state(shared);
    extra
        .fallback_service(phones)
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
}

async fn phone_request(State(shared): State<Arc<Shared>>, request: Request) -> Response {
    let peer = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map_or_else(|| "-".to_owned(), |ConnectInfo(p)| p.to_string());
    let (parts, _body) = request.into_parts();
    let (method, uri) = (parts.method, parts.uri);
    let (status, body) = handle(&shared, &peer, &method, &uri, &parts.headers).await;
    let target = redact(
        uri.path_and_query().map_or("/", |p| p.as_str()),
        shared.secret.as_ref(),
    );
    tracing::debug!(
        target: "sip_blf_sync::action_url::access",
        "{peer} {method} {target} {}",
        status.as_u16()
    );
    (
        status,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        body,
    )
        .into_response()
}

async fn handle(
    shared: &Shared,
    peer: &str,
    method: &Method,
    uri: &Uri,
    headers: &HeaderMap,
) -> (StatusCode, String) {
    let counters = &shared.counters;
    let query = uri.query();
    if uri.path().len() + query.map_or(0, str::len) > MAX_TARGET {
        counters.bad_request.fetch_add(1, Ordering::Relaxed);
        return (
            StatusCode::URI_TOO_LONG,
            format!("{}\n", RequestError::TooLong),
        );
    }
    if let Some(secret) = &shared.secret {
        if !secret_matches(secret, query, headers) {
            counters.forbidden.fetch_add(1, Ordering::Relaxed);
            let mut warnings = shared.warnings.lock().unwrap_or_else(|p| p.into_inner());
            if warnings.forbidden.offer(Instant::now()) {
                tracing::warn!(
                    "action URL: request from {peer} refused (403): wrong or missing secret \
                     (phones send it as ?secret=…; ACTION_URL_SECRET)"
                );
            }
            return (StatusCode::FORBIDDEN, "forbidden\n".to_owned());
        }
    }
    let event = match event::parse(method.as_str(), uri.path(), query) {
        Ok(event) => event,
        Err(e) => {
            counters.bad_request.fetch_add(1, Ordering::Relaxed);
            let status = match e {
                RequestError::NotFound(_) => StatusCode::NOT_FOUND,
                RequestError::Method(_) => StatusCode::METHOD_NOT_ALLOWED,
                RequestError::TooLong => StatusCode::URI_TOO_LONG,
                RequestError::Malformed(_) | RequestError::UnknownEvent(_) => {
                    StatusCode::BAD_REQUEST
                }
            };
            return (status, format!("{e}\n"));
        }
    };
    let Some(extension) = shared.phones.resolve(&event.user) else {
        counters.unknown_extension.fetch_add(1, Ordering::Relaxed);
        let mut warnings = shared.warnings.lock().unwrap_or_else(|p| p.into_inner());
        if warnings.unknown.offer(Instant::now()) {
            tracing::warn!(
                "action URL from {peer} for {:?}, which is not in the extension list (404): \
                 add it to the list or fix the phone's URL",
                event.user
            );
        } else {
            warnings.latest_unknown = Some(event.user.clone());
        }
        return (
            StatusCode::NOT_FOUND,
            format!("unknown extension {:?}\n", event.user),
        );
    };
    let now = tokio::time::Instant::now().into_std();
    // Held while sending: one extension's facts reach the engine in the
    // order the tracker made them.
    let mut tracker = shared.tracker.lock().await;
    match tracker.apply(extension, &event) {
        Outcome::Stale(why) => {
            counters.stale.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%extension, event = %event.name, "action URL ignored: {why}");
            (StatusCode::OK, format!("ignored: {why}\n"))
        }
        Outcome::Facts(facts) => {
            counters.accepted.fetch_add(1, Ordering::Relaxed);
            tracing::debug!(%extension, event = %event.name, ?facts, "action URL");
            for fact in facts {
                let observation = Observation::new(PHONE, extension, fact, now);
                if shared.observations.send(observation).await.is_err() {
                    return (StatusCode::SERVICE_UNAVAILABLE, "stopping\n".to_owned());
                }
            }
            (StatusCode::OK, "ok\n".to_owned())
        }
    }
}

/// Whether the request presents `secret`: as the query's `secret`, the
/// [`SECRET_HEADER`] header, or `Authorization: Bearer …`. Compared in
/// constant time (only the length can show).
pub fn secret_matches(secret: &Secret, query: Option<&str>, headers: &HeaderMap) -> bool {
    let expected = secret.expose().as_bytes();
    let from_query = query.into_iter().flat_map(|q| {
        q.split('&')
            .filter_map(|pair| pair.split_once('='))
            .filter(|(name, _)| percent_decode(name).eq_ignore_ascii_case("secret"))
            .map(|(_, value)| percent_decode(value))
    });
    let from_headers = headers
        .get(SECRET_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned)
        .into_iter()
        .chain(
            headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::to_owned),
        );
    let mut matched = subtle::Choice::from(0);
    for presented in from_query.chain(from_headers).take(4) {
        matched |= presented.trim().as_bytes().ct_eq(expected);
    }
    matched.into()
}

/// `target` for a log line: the value of every parameter named like a
/// secret, and the secret itself wherever it appears, as `***`.
pub fn redact(target: &str, secret: Option<&Secret>) -> String {
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, Some(q)),
        None => (target, None),
    };
    let mut out = path.to_owned();
    if let Some(query) = query {
        let pairs: Vec<String> = query
            .split('&')
            .map(|pair| match pair.split_once('=') {
                Some((name, _)) if sensitive(name) => format!("{name}=***"),
                _ => pair.to_owned(),
            })
            .collect();
        out.push('?');
        out.push_str(&pairs.join("&"));
    }
    match secret.map(Secret::expose) {
        Some(s) if !s.is_empty() => out.replace(s, "***"),
        _ => out,
    }
}

fn sensitive(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    ["secret", "token", "password", "passwd", "key"]
        .iter()
        .any(|s| name.contains(s))
}
