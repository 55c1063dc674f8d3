//! The HTTP side: the gate every request passes (log, faults, rate limit,
//! token) and the API routes.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::{Body, Bytes};
use axum::extract::{Path, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};

use crate::model::{Account, CustomStatus, Post, Status, DURATIONS};
use crate::{lock, Fault, Recorded, Shared};

type Shd = State<Arc<Shared>>;

pub(crate) async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) {
    let app = Router::new()
        .route("/api/v4/users/me", get(me))
        .route("/api/v4/users/email/{email}", get(by_email))
        .route("/api/v4/users/{id}", get(user))
        .route("/api/v4/users/{id}/status", get(get_status).put(put_status))
        .route(
            "/api/v4/users/{id}/status/custom",
            put(put_custom).delete(delete_custom),
        )
        .route(
            "/api/v4/teams/name/{team}/channels/name/{channel}",
            get(channel),
        )
        .route("/api/v4/posts", post(create_post))
        .layer(axum::middleware::from_fn_with_state(shared.clone(), gate))
        .with_state(shared);
    let _ = axum::serve(listener, app).await;
}

/// The `AppError` body.
pub(crate) fn app_error(status: StatusCode, id: &str, message: &str) -> Response {
    let body = serde_json::json!({
        "id": id,
        "message": message,
        "detailed_error": "",
        "request_id": "emulatorrequest0000000000r",
        "status_code": status.as_u16(),
    });
    (status, Json(body)).into_response()
}

fn secs_up(d: Duration) -> u64 {
    d.as_millis().div_ceil(1000) as u64
}

fn limit_exceeded(limit: u32, reset: u64) -> Response {
    let mut r = (StatusCode::TOO_MANY_REQUESTS, "limit exceeded\n").into_response();
    let h = r.headers_mut();
    h.insert("X-Ratelimit-Limit", HeaderValue::from(limit));
    h.insert("X-Ratelimit-Remaining", HeaderValue::from(0u32));
    h.insert("X-Ratelimit-Reset", HeaderValue::from(reset));
    h.insert("Retry-After", HeaderValue::from(reset));
    r
}

fn token_of(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get("authorization")?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    (scheme.eq_ignore_ascii_case("bearer") || scheme.eq_ignore_ascii_case("token"))
        .then_some(token.trim())
}

/// Log, faults, rate limit, token; then the route.
async fn gate(State(shared): Shd, request: Request, next: Next) -> Response {
    let at = Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_owned();
    let (parts, body) = request.into_parts();
    let bytes = axum::body::to_bytes(body, 1 << 20)
        .await
        .unwrap_or_else(|_| Bytes::new());
    let json = serde_json::from_slice(&bytes).ok();
    let response = answer(&shared, parts, bytes, next).await;
    let mut log = lock(&shared.log);
    log.push(Recorded {
        at,
        method,
        path,
        body: json,
        status: response.status().as_u16(),
    });
    shared.logged.notify_all();
    response
}

async fn answer(
    shared: &Arc<Shared>,
    mut parts: axum::http::request::Parts,
    bytes: Bytes,
    next: Next,
) -> Response {
    let fault = lock(&shared.faults).pop_front();
    match fault {
        Some(Fault::RateLimited { reset }) => return limit_exceeded(10, secs_up(reset)),
        Some(Fault::Unauthorized) => {
            return app_error(
                StatusCode::UNAUTHORIZED,
                "api.context.session_expired.app_error",
                "Invalid or expired session, please login again.",
            )
        }
        Some(Fault::Forbidden) => {
            return app_error(
                StatusCode::FORBIDDEN,
                "api.context.permissions.app_error",
                "You do not have the appropriate permissions.",
            )
        }
        Some(Fault::ServerError(code)) => {
            let code = StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            return app_error(code, "app.emulator.fault", "Internal server error.");
        }
        None => {}
    }
    // Fixed window: the count, and the seconds until it resets.
    let mut headers = None;
    if let Some(rate) = shared.rate {
        let mut window = lock(&shared.window);
        let now = Instant::now();
        if now.duration_since(window.0) >= rate.window {
            *window = (now, 0);
        }
        let reset = secs_up(rate.window.saturating_sub(now.duration_since(window.0)));
        if window.1 >= rate.requests {
            return limit_exceeded(rate.requests, reset);
        }
        window.1 += 1;
        headers = Some((rate.requests, rate.requests - window.1, reset));
    }
    let caller = token_of(&parts.headers).and_then(|t| {
        shared
            .tokens
            .iter()
            .find(|(token, _)| token == t)
            .and_then(|(_, id)| lock(&shared.store).account(id).cloned())
    });
    let mut response = match caller {
        None => app_error(
            StatusCode::UNAUTHORIZED,
            "api.context.session_expired.app_error",
            "Invalid or expired session, please login again.",
        ),
        Some(caller) => {
            parts.extensions.insert(caller);
            next.run(Request::from_parts(parts, Body::from(bytes)))
                .await
        }
    };
    if let Some((limit, remaining, reset)) = headers {
        let h = response.headers_mut();
        h.insert("X-Ratelimit-Limit", HeaderValue::from(limit));
        h.insert("X-Ratelimit-Remaining", HeaderValue::from(remaining));
        h.insert("X-Ratelimit-Reset", HeaderValue::from(reset));
    }
    response
}

fn forbidden() -> Response {
    app_error(
        StatusCode::FORBIDDEN,
        "api.context.permissions.app_error",
        "You do not have the appropriate permissions. (edit_other_users)",
    )
}

fn bad_param(name: &str) -> Response {
    app_error(
        StatusCode::BAD_REQUEST,
        "api.context.invalid_body_param.app_error",
        &format!("Invalid or missing {name} in request body."),
    )
}

async fn me(Extension(caller): Extension<Account>, State(s): Shd) -> Response {
    Json(lock(&s.store).user_json(&caller)).into_response()
}

async fn by_email(State(s): Shd, Path(email): Path<String>) -> Response {
    let store = lock(&s.store);
    match store.by_email(&email) {
        Some(a) => Json(store.user_json(a)).into_response(),
        None => app_error(
            StatusCode::NOT_FOUND,
            "app.user.missing_account.const",
            "Unable to find the user.",
        ),
    }
}

async fn user(State(s): Shd, Path(id): Path<String>) -> Response {
    let store = lock(&s.store);
    match store.account(&id) {
        Some(a) => Json(store.user_json(a)).into_response(),
        None => app_error(
            StatusCode::NOT_FOUND,
            "app.user.missing_account.const",
            "Unable to find the user.",
        ),
    }
}

async fn get_status(State(s): Shd, Path(id): Path<String>) -> Response {
    Json(lock(&s.store).status(&id)).into_response()
}

async fn put_status(
    Extension(caller): Extension<Account>,
    State(s): Shd,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return bad_param("status");
    };
    if v["user_id"].as_str() != Some(id.as_str()) {
        return bad_param("user_id");
    }
    let status = v["status"].as_str().unwrap_or_default().to_owned();
    if !["online", "away", "offline", "dnd"].contains(&status.as_str()) {
        return bad_param("status");
    }
    let mut store = lock(&s.store);
    if !store.may_change(&caller, &id) {
        return forbidden();
    }
    let dnd_end_time = match status.as_str() {
        "dnd" => v["dnd_end_time"].as_i64().unwrap_or(0),
        _ => 0,
    };
    let manual = status != "online";
    store.statuses.insert(
        id.clone(),
        Status {
            user_id: id.clone(),
            status,
            manual,
            last_activity_at: chrono::Utc::now().timestamp_millis(),
            dnd_end_time,
        },
    );
    Json(store.status(&id)).into_response()
}

/// `AreDurationAndExpirationTimeValid`: a set expiry is not in the past.
fn valid_custom(c: &CustomStatus) -> bool {
    if c.emoji.is_empty() && c.text.is_empty() {
        return false;
    }
    let expiry = match c.expires_at.as_str() {
        "" | "0001-01-01T00:00:00Z" => None,
        t => match chrono::DateTime::parse_from_rfc3339(t) {
            Ok(t) => Some(t),
            Err(_) => return false,
        },
    };
    if expiry.is_some_and(|t| t < chrono::Utc::now()) {
        return false;
    }
    c.duration.is_empty() || DURATIONS.contains(&c.duration.as_str())
}

async fn put_custom(
    Extension(caller): Extension<Account>,
    State(s): Shd,
    Path(id): Path<String>,
    body: Bytes,
) -> Response {
    let Ok(mut c) = serde_json::from_slice::<CustomStatus>(&body) else {
        return bad_param("custom_status");
    };
    if !valid_custom(&c) {
        return bad_param("custom_status");
    }
    let mut store = lock(&s.store);
    if !store.may_change(&caller, &id) {
        return forbidden();
    }
    c.text = c.text.chars().take(100).collect();
    if c.duration.is_empty() && !c.expires_at.is_empty() {
        c.duration = "date_and_time".into();
    }
    store.custom.insert(id, c);
    Json(serde_json::json!({"status": "OK"})).into_response()
}

async fn delete_custom(
    Extension(caller): Extension<Account>,
    State(s): Shd,
    Path(id): Path<String>,
) -> Response {
    let mut store = lock(&s.store);
    if !store.may_change(&caller, &id) {
        return forbidden();
    }
    store.custom.remove(&id);
    Json(serde_json::json!({"status": "OK"})).into_response()
}

async fn channel(State(s): Shd, Path((team, name)): Path<(String, String)>) -> Response {
    let store = lock(&s.store);
    match store
        .channels
        .iter()
        .find(|c| c.team == team && c.name == name)
    {
        Some(c) => Json(serde_json::json!({
            "id": c.id, "name": c.name, "display_name": c.name, "type": "O",
        }))
        .into_response(),
        None => app_error(
            StatusCode::NOT_FOUND,
            "app.channel.get_by_name.missing.app_error",
            "Channel does not exist.",
        ),
    }
}

async fn create_post(
    Extension(caller): Extension<Account>,
    State(s): Shd,
    body: Bytes,
) -> Response {
    let Ok(v) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return bad_param("post");
    };
    let (Some(channel_id), Some(message)) = (v["channel_id"].as_str(), v["message"].as_str())
    else {
        return bad_param("post");
    };
    let mut store = lock(&s.store);
    let Some(channel) = store.channels.iter().find(|c| c.id == channel_id) else {
        return bad_param("channel_id");
    };
    if !channel.members.contains(&caller.id) {
        return app_error(
            StatusCode::FORBIDDEN,
            "api.context.permissions.app_error",
            "You do not have the appropriate permissions. (create_post)",
        );
    }
    store.posts.push(Post {
        channel_id: channel_id.to_owned(),
        user_id: caller.id.clone(),
        message: message.to_owned(),
    });
    let post = serde_json::json!({
        "id": format!("post{:022}", store.posts.len()),
        "channel_id": channel_id,
        "user_id": caller.id,
        "message": message,
    });
    (StatusCode::CREATED, Json(post)).into_response()
}
