//! The HTTP side: the token endpoint, the Graph routes and `$batch`.

use crate::model::{
    is_guid, parse_iso8601_duration, AppSession, Preferred, PresencePair, StatusMessage,
    MAX_EXPIRATION, MIN_EXPIRATION, PREFERRED_PAIRS, SET_PRESENCE_PAIRS,
};
use crate::{lock, Fault, LoggedRequest, Operation, Shared};
use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use serde_json::{json, Value};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

const MAX_BODY: usize = 4 * 1024 * 1024;
const MAX_BATCH: usize = 20;
const MAX_PRESENCE_IDS: usize = 650;

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

fn entra_error(status: StatusCode, error: &str, code: u32, text: &str) -> Response {
    let trace = random_id();
    let corr = random_id();
    let body = json!({
        "error": error,
        "error_description": format!("AADSTS{code}: {text} Trace ID: {trace} Correlation ID: {corr} Timestamp: 2026-01-01 00:00:00Z"),
        "error_codes": [code],
        "timestamp": "2026-01-01 00:00:00Z",
        "trace_id": trace,
        "correlation_id": corr,
        "error_uri": format!("https://login.microsoftonline.com/error?code={code}"),
    });
    (status, axum::Json(body)).into_response()
}

fn log(shared: &Shared, entry: LoggedRequest) {
    let mut st = lock(&shared.state);
    if entry.status == 429 {
        st.throttled += 1;
    }
    st.log.push(entry);
}

/// `POST /{tenant}/oauth2/v2.0/token` (FACTS §6).
async fn token(
    State(shared): State<Arc<Shared>>,
    Path(tenant): Path<String>,
    body: Bytes,
) -> Response {
    let now = shared.clock.now();
    let resp = token_inner(&shared, &tenant, &body, now);
    log(
        &shared,
        LoggedRequest {
            operation: Operation::Token,
            method: "POST".into(),
            path: format!("/{tenant}/oauth2/v2.0/token"),
            at: now,
            status: resp.status().as_u16(),
            in_batch: false,
            id_count: None,
        },
    );
    resp
}

fn token_inner(shared: &Shared, tenant: &str, body: &[u8], now: Instant) -> Response {
    let cfg = &shared.config;
    let form: std::collections::HashMap<String, String> =
        url::form_urlencoded::parse(body).into_owned().collect();
    let tenant_ok = tenant.eq_ignore_ascii_case(&cfg.tenant_id)
        || cfg
            .tenant_domains
            .iter()
            .any(|d| d.eq_ignore_ascii_case(tenant));
    if tenant.eq_ignore_ascii_case("common") || tenant.eq_ignore_ascii_case("consumers") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            9001023,
            "The grant type isn't supported over the /common or /consumers endpoints.",
        );
    }
    if !tenant_ok {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            90002,
            &format!("Tenant '{tenant}' not found."),
        );
    }
    if form.get("grant_type").map(String::as_str) != Some("client_credentials") {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unsupported_grant_type",
            70003,
            "The app requested an unsupported grant type.",
        );
    }
    let Some(client_id) = form.get("client_id") else {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "invalid_request",
            900144,
            "The request body must contain the following parameter: 'client_id'.",
        );
    };
    if !client_id.eq_ignore_ascii_case(&cfg.client_id) {
        return entra_error(
            StatusCode::BAD_REQUEST,
            "unauthorized_client",
            700016,
            &format!("Application with identifier '{client_id}' was not found in the directory '{tenant}'."),
        );
    }
    match form.get("scope") {
        Some(s) if s.ends_with("/.default") && !s.contains(' ') => {}
        _ => {
            return entra_error(
                StatusCode::BAD_REQUEST,
                "invalid_scope",
                70011,
                "The provided value for the input parameter 'scope' is not valid. The scope must be '<resource>/.default'.",
            )
        }
    }
    match (form.get("client_secret"), form.get("client_assertion")) {
        (Some(secret), _) => {
            if *secret != cfg.client_secret {
                return entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000215,
                    "Invalid client secret provided. Ensure the secret being sent in the request is the client secret value, not the client secret ID.",
                );
            }
            if cfg.secret_expired {
                return entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    7000222,
                    "The provided client secret keys are expired.",
                );
            }
        }
        (None, Some(assertion)) => {
            let type_ok = form.get("client_assertion_type").map(String::as_str)
                == Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer");
            if !cfg.accept_client_assertion || !type_ok || !assertion_ok(assertion, &cfg.client_id, tenant, &cfg.certificate_thumbprints) {
                return entra_error(
                    StatusCode::UNAUTHORIZED,
                    "invalid_client",
                    700027,
                    "Client assertion failed signature validation.",
                );
            }
        }
        (None, None) => {
            return entra_error(
                StatusCode::UNAUTHORIZED,
                "invalid_client",
                7000218,
                "The request body must contain the following parameter: 'client_assertion' or 'client_secret'.",
            )
        }
    }
    let token = format!("emu.{}", random_id().replace('-', ""));
    let lifetime = cfg.token_lifetime;
    {
        let mut st = lock(&shared.state);
        st.tokens.insert(token.clone(), now + lifetime);
        st.tokens_issued += 1;
    }
    axum::Json(json!({
        "token_type": "Bearer",
        "expires_in": lifetime.as_secs(),
        "ext_expires_in": lifetime.as_secs(),
        "access_token": token,
    }))
    .into_response()
}

/// Structural check of a client assertion JWT (FACTS §6): `alg` PS256 or RS256, a thumbprint
/// header, `iss` = `sub` = client id, `aud` naming the tenant's token endpoint. The signature
/// is not verified (the emulator holds no certificate).
fn assertion_ok(jwt: &str, client_id: &str, tenant: &str, thumbprints: &[String]) -> bool {
    use base64::Engine as _;
    let dec = |s: &str| -> Option<Value> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(s)
            .ok()?;
        serde_json::from_slice(&bytes).ok()
    };
    let mut parts = jwt.split('.');
    let (Some(h), Some(c), Some(sig), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return false;
    };
    let (Some(h), Some(c)) = (dec(h), dec(c)) else {
        return false;
    };
    let alg_ok = matches!(
        h.get("alg").and_then(Value::as_str),
        Some("PS256" | "RS256")
    );
    let thumb = h
        .get("x5t#S256")
        .or_else(|| h.get("x5t"))
        .and_then(Value::as_str);
    let thumb_ok =
        thumb.is_some_and(|t| thumbprints.is_empty() || thumbprints.iter().any(|k| k == t));
    let iss_ok = c.get("iss").and_then(Value::as_str) == Some(client_id)
        && c.get("sub").and_then(Value::as_str) == Some(client_id);
    let aud_ok = c
        .get("aud")
        .and_then(Value::as_str)
        .is_some_and(|a| a.ends_with(&format!("/{tenant}/oauth2/v2.0/token")));
    alg_ok && thumb_ok && iss_ok && aud_ok && c.get("exp").is_some() && !sig.is_empty()
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
        let reply = batch(&shared, &body).await;
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
    operation(&shared, method.as_str(), &rel, json_body, false)
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
async fn operation(
    shared: &Shared,
    method: &str,
    rel: &str,
    body: Option<Result<Value, &'static str>>,
    in_batch: bool,
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
            at: shared.clock.now(),
            status: reply.status,
            in_batch,
            id_count,
        },
    );
    reply
}

fn presence_json(id: &str, pair: &PresencePair, msg: Option<&StatusMessage>) -> Value {
    json!({
        "id": id,
        "availability": pair.availability,
        "activity": pair.activity,
        "statusMessage": msg.map(|m| json!({
            "message": {"content": m.content, "contentType": "text"},
            "expiryDateTime": m.expiry.as_ref().map(|(d, z)| json!({"dateTime": d, "timeZone": z})),
        })),
    })
}

fn str_field<'a>(body: &'a Option<Value>, name: &str) -> Option<&'a str> {
    body.as_ref()?.get(name)?.as_str()
}

fn parse_expiration(
    body: &Option<Value>,
    default: Duration,
    bounded: bool,
) -> Result<Duration, Reply> {
    match body.as_ref().and_then(|b| b.get("expirationDuration")) {
        None | Some(Value::Null) => Ok(default),
        Some(Value::String(s)) => match parse_iso8601_duration(s) {
            Some(d) if !bounded || (MIN_EXPIRATION..=MAX_EXPIRATION).contains(&d) => Ok(d),
            Some(_) => Err(Reply::error(
                400,
                "BadRequest",
                "expirationDuration must be between PT5M and PT4H.",
            )),
            None => Err(Reply::error(
                400,
                "BadRequest",
                "expirationDuration is not an ISO 8601 duration.",
            )),
        },
        Some(_) => Err(Reply::error(
            400,
            "BadRequest",
            "expirationDuration must be a string.",
        )),
    }
}

fn execute(
    shared: &Shared,
    op: Operation,
    route: Route,
    body: Option<Value>,
    now: Instant,
) -> Reply {
    let cfg = &shared.config;
    let mut st = lock(&shared.state);
    if op == Operation::GetPresencesByUserId {
        let Some(ids) = body
            .as_ref()
            .and_then(|b| b.get("ids"))
            .and_then(Value::as_array)
        else {
            return Reply::error(400, "BadRequest", "The body must contain 'ids'.");
        };
        if ids.len() > MAX_PRESENCE_IDS {
            return Reply::error(
                400,
                "BadRequest",
                &format!(
                    "At most {MAX_PRESENCE_IDS} user ids are allowed per request; got {}.",
                    ids.len()
                ),
            );
        }
        let mut value = Vec::with_capacity(ids.len());
        for id in ids {
            let Some(id) = id.as_str().filter(|s| is_guid(s)) else {
                return Reply::error(
                    400,
                    "BadRequest",
                    "Every id must be a user object id (GUID).",
                );
            };
            let key = id.to_lowercase();
            match st.users.get_mut(&key) {
                Some(u) => {
                    u.expire(now);
                    value.push(presence_json(id, &u.aggregate(now), None));
                }
                None => value.push(presence_json(
                    id,
                    &PresencePair::new("PresenceUnknown", "PresenceUnknown"),
                    None,
                )),
            }
        }
        return Reply::ok(Some(json!({"value": value})));
    }
    let Some(user_key) = route.user else {
        return Reply::error(400, "BadRequest", "No user in the path.");
    };
    if op == Operation::GetUser {
        let oid = if is_guid(&user_key) {
            Some(user_key.to_lowercase()).filter(|k| st.users.contains_key(k))
        } else {
            st.upn_index.get(&user_key.to_lowercase()).cloned()
        };
        let Some(oid) = oid else {
            return Reply::error(
                404,
                "Request_ResourceNotFound",
                &format!("Resource '{user_key}' does not exist or one of its queried reference-property objects are not present."),
            );
        };
        let upn = st
            .upn_index
            .iter()
            .find(|(_, v)| **v == oid)
            .map(|(k, _)| k.clone());
        return Reply::ok(Some(json!({"id": oid, "userPrincipalName": upn})));
    }
    // Presence routes take object ids only (FACTS §3).
    if !is_guid(&user_key) {
        return Reply::error(
            400,
            "BadRequest",
            "Presence routes require the user's object id (GUID), not a user principal name.",
        );
    }
    let Some(user) = st.users.get_mut(&user_key.to_lowercase()) else {
        return Reply::error(
            404,
            "NotFound",
            &format!("User '{user_key}' was not found."),
        );
    };
    user.expire(now);
    match op {
        Operation::GetPresence => {
            let pair = user.aggregate(now);
            Reply::ok(Some(presence_json(
                &user_key,
                &pair,
                user.status_message.as_ref(),
            )))
        }
        Operation::SetPresence | Operation::ClearPresence => {
            let session_id = str_field(&body, "sessionId");
            if session_id.is_none_or(|s| !s.eq_ignore_ascii_case(&cfg.client_id)) {
                return Reply::error(
                    400,
                    "BadRequest",
                    "sessionId must be the application (client) id of the calling app.",
                );
            }
            if op == Operation::ClearPresence {
                return match user.app_session.take() {
                    Some(_) => Reply::ok(None),
                    None => Reply::error(404, "NotFound", "The presence session does not exist."),
                };
            }
            let pair = (
                str_field(&body, "availability"),
                str_field(&body, "activity"),
            );
            let (Some(a), Some(b)) = pair else {
                return Reply::error(400, "BadRequest", "availability and activity are required.");
            };
            if !SET_PRESENCE_PAIRS.contains(&(a, b)) {
                return Reply::error(
                    400,
                    "BadRequest",
                    &format!(
                        "The availability/activity pair {a}/{b} is not supported by setPresence."
                    ),
                );
            }
            let exp = match parse_expiration(&body, MIN_EXPIRATION, true) {
                Ok(d) => d,
                Err(r) => return r,
            };
            user.app_session = Some(AppSession {
                session_id: cfg.client_id.clone(),
                pair: PresencePair::new(a, b),
                set_at: now,
                expires_at: now + exp,
            });
            Reply::ok(None)
        }
        Operation::SetStatusMessage => {
            let sm = body.as_ref().and_then(|b| b.get("statusMessage"));
            let msg = sm.and_then(|s| s.get("message"));
            let content = msg.and_then(|m| m.get("content")).and_then(Value::as_str);
            let ctype = msg
                .and_then(|m| m.get("contentType"))
                .and_then(Value::as_str);
            let Some(content) = content else {
                return Reply::error(
                    400,
                    "BadRequest",
                    "statusMessage.message.content is required.",
                );
            };
            if ctype.is_some_and(|c| !c.eq_ignore_ascii_case("text")) {
                return Reply::error(400, "BadRequest", "Only contentType 'text' is supported.");
            }
            let expiry = sm
                .and_then(|s| s.get("expiryDateTime"))
                .filter(|v| !v.is_null());
            let expiry = match expiry {
                None => None,
                Some(e) => {
                    let dt = e.get("dateTime").and_then(Value::as_str);
                    let tz = e.get("timeZone").and_then(Value::as_str);
                    match (dt, tz) {
                        // dateTime must not carry an offset (FACTS §2).
                        (Some(dt), Some(tz)) if !dt.ends_with('Z') && !dt.contains('+') => {
                            Some((dt.to_owned(), tz.to_owned()))
                        }
                        _ => {
                            return Reply::error(
                                400,
                                "BadRequest",
                                "expiryDateTime needs dateTime (without offset) and timeZone.",
                            )
                        }
                    }
                }
            };
            user.status_message = Some(StatusMessage {
                content: content.to_owned(),
                expiry,
            });
            Reply::ok(None)
        }
        Operation::SetUserPreferredPresence => {
            let (Some(a), Some(b)) = (
                str_field(&body, "availability"),
                str_field(&body, "activity"),
            ) else {
                return Reply::error(400, "BadRequest", "availability and activity are required.");
            };
            if !PREFERRED_PAIRS.contains(&(a, b)) {
                return Reply::error(400, "BadRequest", "Unsupported preferred presence pair.");
            }
            // Defaults: 1 day for DoNotDisturb/Busy, 7 days otherwise (FACTS §2).
            let default = if a == "DoNotDisturb" || a == "Busy" {
                86_400
            } else {
                7 * 86_400
            };
            let exp = match parse_expiration(&body, Duration::from_secs(default), false) {
                Ok(d) => d,
                Err(r) => return r,
            };
            user.preferred = Some(Preferred {
                pair: PresencePair::new(a, b),
                expires_at: now + exp,
            });
            Reply::ok(None)
        }
        Operation::ClearUserPreferredPresence => {
            user.preferred = None;
            Reply::ok(None)
        }
        _ => Reply::error(400, "BadRequest", "Unsupported operation."),
    }
}

/// `POST /$batch` (FACTS §4).
async fn batch(shared: &Shared, body: &[u8]) -> Reply {
    let Ok(v) = serde_json::from_slice::<Value>(body) else {
        return Reply::error(400, "BadRequest", "Invalid batch payload format.");
    };
    let Some(reqs) = v.get("requests").and_then(Value::as_array) else {
        return Reply::error(
            400,
            "BadRequest",
            "Invalid batch payload format: 'requests' is missing.",
        );
    };
    if reqs.is_empty() {
        return Reply::error(400, "BadRequest", "The batch contains no requests.");
    }
    if reqs.len() > MAX_BATCH {
        return Reply::error(
            400,
            "BadRequest",
            &format!("Number of batch request steps exceeds the maximum value of {MAX_BATCH}."),
        );
    }
    let mut seen = HashSet::new();
    for r in reqs {
        let id = r.get("id").and_then(Value::as_str);
        let method = r.get("method").and_then(Value::as_str);
        let url = r.get("url").and_then(Value::as_str);
        let (Some(id), Some(_), Some(url)) = (id, method, url) else {
            return Reply::error(
                400,
                "BadRequest",
                "Each batch request needs id, method and url.",
            );
        };
        if !seen.insert(id.to_lowercase()) {
            return Reply::error(
                400,
                "BadRequest",
                &format!("Batch request id '{id}' is not unique."),
            );
        }
        if url.contains("://") || url.starts_with("/v1.0") || url.starts_with("v1.0") {
            return Reply::error(
                400,
                "BadRequest",
                "Batch request urls must be relative to the version.",
            );
        }
    }
    let mut responses = Vec::with_capacity(reqs.len());
    let mut all_ok = true;
    for r in reqs {
        let id = r.get("id").and_then(Value::as_str).unwrap_or_default();
        let method = r
            .get("method")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_ascii_uppercase();
        let url = r.get("url").and_then(Value::as_str).unwrap_or_default();
        let url = if url.starts_with('/') {
            url.to_owned()
        } else {
            format!("/{url}")
        };
        let body = r.get("body").filter(|b| !b.is_null()).cloned();
        let has_ct = r
            .get("headers")
            .and_then(Value::as_object)
            .is_some_and(|h| {
                h.iter().any(|(k, v)| {
                    k.eq_ignore_ascii_case("content-type")
                        && v.as_str()
                            .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"))
                })
            });
        let reply = match body {
            Some(_) if !has_ct => {
                let r = Reply::error(
                    400,
                    "BadRequest",
                    "A Content-Type header is required when a body is present.",
                );
                log(
                    shared,
                    LoggedRequest {
                        operation: classify(&method, &url).0,
                        method: method.clone(),
                        path: url.clone(),
                        at: shared.clock.now(),
                        status: 400,
                        in_batch: true,
                        id_count: None,
                    },
                );
                r
            }
            b => operation(shared, &method, &url, b.map(Ok), true).await,
        };
        all_ok &= (200..300).contains(&reply.status);
        let headers: serde_json::Map<String, Value> = reply
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), Value::String(v.clone())))
            .chain(std::iter::once((
                "Content-Type".to_owned(),
                Value::String("application/json".into()),
            )))
            .collect();
        let mut entry = json!({"id": id, "status": reply.status, "headers": headers});
        if let (Some(b), Some(obj)) = (reply.body, entry.as_object_mut()) {
            obj.insert("body".into(), b);
        }
        responses.push(entry);
    }
    // Correlate by id: the order differs from the request order.
    responses.reverse();
    let status = if !all_ok && shared.config.batch_424_on_failure {
        424
    } else {
        200
    };
    Reply {
        status,
        headers: Vec::new(),
        body: Some(json!({"responses": responses})),
    }
}
