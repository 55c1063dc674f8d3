//! The HTTP side: the token endpoint, the Graph routes and `$batch`.
//!
//! This module authenticates, classifies and logs each request and applies faults, rate limits
//! and permissions; the `token`, `presence` and `batch` submodules hold the endpoints' own rules.

mod batch;
mod presence;
mod token;

use crate::{lock, Fault, LoggedRequest, Operation, Shared};
use axum::extract::{Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use batch::batch;
use presence::execute;
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::{Duration, Instant};
use token::token;

const MAX_BODY: usize = 4 * 1024 * 1024;

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/{tenant}/oauth2/v2.0/token", post(token))
        .fallback(graph)
        .with_state(shared)
}

/// A reply before it becomes an HTTP response (also used for batch sub-responses).
#[derive(Debug)]
struct Reply {
    status: u16,
    headers: Vec<(String, String)>,
    body: Option<Value>,
}

impl Reply {
    fn ok(body: Option<Value>) -> Self {
        Reply {
            status: 200,
            headers: Vec::new(),
            body,
        }
    }

    fn error(status: u16, code: &str, message: &str) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body: Some(json!({"error": {
                "code": code,
                "message": message,
                "innerError": {"request-id": random_id(), "client-request-id": random_id()}
            }})),
        }
    }

    fn throttled(retry_after: Duration) -> Self {
        let secs = whole_seconds(retry_after);
        let mut r = Reply {
            status: 429,
            headers: Vec::new(),
            // Shape from the throttling guide (FACTS §5).
            body: Some(json!({"error": {
                "code": "TooManyRequests",
                "innerError": {"code": "429", "request-id": random_id()},
                "message": "Please retry again later."
            }})),
        };
        r.headers.push(("Retry-After".into(), secs.to_string()));
        r
    }

    fn into_response(self) -> Response {
        let status = StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut resp = match self.body {
            Some(b) => (status, axum::Json(b)).into_response(),
            None => status.into_response(),
        };
        for (k, v) in self.headers {
            if let (Ok(k), Ok(v)) = (
                header::HeaderName::from_bytes(k.as_bytes()),
                HeaderValue::from_str(&v),
            ) {
                resp.headers_mut().insert(k, v);
            }
        }
        resp
    }
}

/// A `Retry-After` value: whole seconds, rounded up.
fn whole_seconds(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

fn random_id() -> String {
    let v: u128 = rand::random();
    let h = format!("{v:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

fn log(shared: &Shared, entry: LoggedRequest) {
    let mut st = lock(&shared.state);
    if entry.status == 429 {
        st.throttled += 1;
    }
    st.log.push(entry);
}

fn percent_decode(s: &str) -> Option<String> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = std::str::from_utf8(b.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

/// The fallback: everything under `/v1.0`.
async fn graph(State(shared): State<Arc<Shared>>, req: Request) -> Response {
    let now = shared.clock.now();
    let method = req.method().clone();
    let raw = req
        .uri()
        .path_and_query()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_default();
    let headers = req.headers().clone();
    let body = match axum::body::to_bytes(req.into_body(), MAX_BODY).await {
        Ok(b) => b,
        Err(_) => {
            return Reply::error(413, "RequestEntityTooLarge", "Body too large.").into_response()
        }
    };
    let Some(rel) = raw.strip_prefix("/v1.0") else {
        return Reply::error(404, "NotFound", "Unknown API version; use /v1.0.").into_response();
    };
    let rel = rel.to_owned();
    let is_batch = rel.split('?').next() == Some("/$batch");
    let op_guess = if is_batch {
        Operation::Batch
    } else {
        classify(method.as_str(), &rel).0
    };

    if let Some(reply) = check_auth(&shared, &headers, now) {
        log(
            &shared,
            LoggedRequest {
                operation: op_guess,
                method: method.to_string(),
                path: rel,
                at: now,
                status: reply.status,
                in_batch: false,
                id_count: None,
            },
        );
        return reply.into_response();
    }
    if is_batch && method == Method::POST {
        let reply = batch(&shared, &body, now).await;
        log(
            &shared,
            LoggedRequest {
                operation: Operation::Batch,
                method: method.to_string(),
                path: rel,
                at: now,
                status: reply.status,
                in_batch: false,
                id_count: None,
            },
        );
        return reply.into_response();
    }
    let content_type_ok = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    let json_body = if body.is_empty() {
        None
    } else if !content_type_ok {
        Some(Err("Content-Type must be application/json"))
    } else {
        Some(serde_json::from_slice::<Value>(&body).map_err(|_| "Body is not valid JSON"))
    };
    operation(&shared, method.as_str(), &rel, json_body, false, now)
        .await
        .into_response()
}

fn check_auth(shared: &Shared, headers: &HeaderMap, now: Instant) -> Option<Reply> {
    let mut st = lock(&shared.state);
    if let Some(pos) = st
        .faults
        .iter()
        .position(|f| matches!(f, Fault::Unauthorized { .. }))
    {
        if let Some(Fault::Unauthorized { times }) = st.faults.get_mut(pos) {
            *times -= 1;
            if *times == 0 {
                st.faults.remove(pos);
            }
        }
        return Some(Reply::error(
            401,
            "InvalidAuthenticationToken",
            "Access token validation failure.",
        ));
    }
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    let Some(token) = token else {
        return Some(Reply::error(
            401,
            "InvalidAuthenticationToken",
            "Access token is empty.",
        ));
    };
    match st.tokens.get(token) {
        None => Some(Reply::error(
            401,
            "InvalidAuthenticationToken",
            "Invalid token.",
        )),
        Some(exp) if now >= *exp => Some(Reply::error(
            401,
            "InvalidAuthenticationToken",
            "Lifetime validation failed, the token is expired.",
        )),
        Some(_) => None,
    }
}

/// Route parts after classification.
#[derive(Debug)]
struct Route {
    user: Option<String>,
}

fn split_path(rel: &str) -> (Vec<String>, &str) {
    let (path, query) = rel.split_once('?').unwrap_or((rel, ""));
    let segs = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(|s| percent_decode(s).unwrap_or_else(|| s.to_owned()))
        .collect();
    (segs, query)
}

fn strip_ns(s: &str) -> &str {
    s.strip_prefix("microsoft.graph.").unwrap_or(s)
}

fn unwrap_key(s: &str) -> String {
    // `/users('$x@y.com')` form.
    s.strip_prefix("('")
        .and_then(|s| s.strip_suffix("')"))
        .unwrap_or(s)
        .to_owned()
}

fn classify(method: &str, rel: &str) -> (Operation, Route) {
    let (segs, _) = split_path(rel);
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let user = |u: &str| Some(unwrap_key(u));
    let action = |a: &str| match strip_ns(a) {
        "setPresence" => Operation::SetPresence,
        "clearPresence" => Operation::ClearPresence,
        "setStatusMessage" => Operation::SetStatusMessage,
        "setUserPreferredPresence" => Operation::SetUserPreferredPresence,
        "clearUserPreferredPresence" => Operation::ClearUserPreferredPresence,
        _ => Operation::Unknown,
    };
    match (method, s.as_slice()) {
        ("GET", ["users", u]) => (Operation::GetUser, Route { user: user(u) }),
        ("GET", ["users", u, "presence"]) | ("GET", ["communications", "presences", u]) => {
            (Operation::GetPresence, Route { user: user(u) })
        }
        ("POST", ["users", u, "presence", a]) | ("POST", ["communications", "presences", u, a]) => {
            (action(a), Route { user: user(u) })
        }
        ("POST", ["communications", a]) if strip_ns(a) == "getPresencesByUserId" => {
            (Operation::GetPresencesByUserId, Route { user: None })
        }
        (_, [u, ..]) if u.starts_with("users(") => (
            Operation::GetUser,
            Route {
                user: Some(unwrap_key(&u[5..])),
            },
        ),
        _ => (Operation::Unknown, Route { user: None }),
    }
}

fn required_roles(op: Operation) -> &'static [&'static str] {
    match op {
        Operation::GetUser => &[
            "User.Read.All",
            "User.ReadWrite.All",
            "Directory.Read.All",
            "Directory.ReadWrite.All",
        ],
        Operation::GetPresence | Operation::GetPresencesByUserId => {
            &["Presence.Read.All", "Presence.ReadWrite.All"]
        }
        Operation::SetPresence
        | Operation::ClearPresence
        | Operation::SetStatusMessage
        | Operation::SetUserPreferredPresence
        | Operation::ClearUserPreferredPresence => &["Presence.ReadWrite.All"],
        _ => &[],
    }
}

/// Takes the next applicable fault, if any (Unauthorized faults are handled in `check_auth`).
fn next_fault(shared: &Shared) -> Option<Fault> {
    let mut st = lock(&shared.state);
    let pos = st
        .faults
        .iter()
        .position(|f| !matches!(f, Fault::Unauthorized { .. }))?;
    let f = st.faults.get_mut(pos)?;
    let taken = *f;
    match f {
        Fault::TooManyRequests { times, .. }
        | Fault::ServiceUnavailable { times }
        | Fault::ServiceUnavailableRetryAfter { times, .. }
        | Fault::Delay { times, .. }
        | Fault::Unauthorized { times } => {
            *times -= 1;
            if *times == 0 {
                st.faults.remove(pos);
            }
        }
    }
    Some(taken)
}

/// One Graph operation (a plain request or a batch sub-request), after authentication.
/// `arrived`: when its request (or its batch) reached the handler, which the log records:
/// the time spent here, faults' delays included, is the emulator's, not the client's.
async fn operation(
    shared: &Shared,
    method: &str,
    rel: &str,
    body: Option<Result<Value, &'static str>>,
    in_batch: bool,
    arrived: Instant,
) -> Reply {
    let (op, route) = classify(method, rel);
    let mut id_count = None;
    let reply = 'reply: {
        if op == Operation::Unknown {
            break 'reply Reply::error(
                400,
                "BadRequest",
                &format!("Resource not found for the segment in '{rel}'."),
            );
        }
        // Faults: one per operation, in injection order.
        if let Some(f) = next_fault(shared) {
            match f {
                Fault::Delay { delay, .. } => tokio::time::sleep(delay).await,
                Fault::TooManyRequests { retry_after, .. } => {
                    break 'reply Reply::throttled(retry_after)
                }
                Fault::ServiceUnavailable { .. } => {
                    break 'reply Reply::error(
                        503,
                        "ServiceUnavailable",
                        "The service is temporarily unavailable.",
                    )
                }
                Fault::ServiceUnavailableRetryAfter { retry_after, .. } => {
                    let mut r = Reply::error(
                        503,
                        "ServiceUnavailable",
                        "The service is temporarily unavailable.",
                    );
                    r.headers
                        .push(("Retry-After".into(), whole_seconds(retry_after).to_string()));
                    break 'reply r;
                }
                Fault::Unauthorized { .. } => {}
            }
        }
        let now = shared.clock.now();
        // Rate limit: each operation counts, batch sub-requests individually (FACTS §4).
        {
            let mut st = lock(&shared.state);
            if let Some(rl) = st.rate_limit {
                let (start, count) = match st.rate_window {
                    Some((start, count)) if now < start + rl.window => (start, count),
                    _ => (now, 0),
                };
                if count >= rl.requests {
                    st.rate_window = Some((start, count));
                    break 'reply Reply::throttled(
                        (start + rl.window).saturating_duration_since(now),
                    );
                }
                st.rate_window = Some((start, count + 1));
            }
        }
        // Permissions (application roles with admin consent).
        let roles = required_roles(op);
        let read_withheld = matches!(op, Operation::GetPresence | Operation::GetPresencesByUserId)
            && lock(&shared.state).presence_read_withheld;
        if read_withheld
            || !roles.is_empty()
                && !roles
                    .iter()
                    .any(|r| shared.config.app_roles.iter().any(|g| g == r))
        {
            let code = if op == Operation::GetUser {
                "Authorization_RequestDenied"
            } else {
                "Forbidden"
            };
            let msg = if op == Operation::GetUser {
                "Insufficient privileges to complete the operation."
            } else {
                ""
            };
            break 'reply Reply::error(403, code, msg);
        }
        let body = match body {
            Some(Err(e)) => break 'reply Reply::error(400, "BadRequest", e),
            Some(Ok(v)) => Some(v),
            None => None,
        };
        if op == Operation::GetPresencesByUserId {
            id_count = body
                .as_ref()
                .and_then(|b| b.get("ids"))
                .and_then(Value::as_array)
                .map(Vec::len);
        }
        execute(shared, op, route, body, now)
    };
    log(
        shared,
        LoggedRequest {
            operation: op,
            method: method.to_owned(),
            path: rel.to_owned(),
            at: arrived,
            status: reply.status,
            in_batch,
            id_count,
        },
    );
    reply
}
