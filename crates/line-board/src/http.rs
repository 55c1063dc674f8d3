//! The routes: the page, its assets, the JSON API, the event stream and
//! `/login`.

use axum::extract::rejection::{FormRejection, QueryRejection};
use axum::extract::{Form, Path, Query, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::middleware;
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;

use crate::assets;
use crate::auth::{protect, protect_page, Access};
use crate::board::Board;
use crate::model::{ExtensionFilter, StateFilter};
use crate::sse::{events, push_array, push_server_time};

/// The `Content-Security-Policy` of every response.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; \
     style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The login form: no script, no inline style.
const LOGIN_HTML: &str = r#"<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>sip-blf-sync: log in</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/app.css"></head>
<body class="login"><main class="login">
<h1>sip-blf-sync</h1>
<form method="post" action="/login">
<label for="token">Token (the service's HTTP_TOKEN)</label>
<input id="token" name="token" type="password" autocomplete="current-password" required autofocus>
<button type="submit">Log in</button>
</form>
<!--MESSAGE-->
</main></body></html>
"#;

/// The routes of the board (see the crate documentation), with `access`
/// applied and the security headers on every response:
///
/// - open: `/login`, `/app.js`, `/app.css`;
/// - the page `/`: without access, 303 to `/login`;
/// - `/api/v1/...`: without access, 401 `{"error": "..."}`.
///
/// `/healthz`, `/readyz`, `/metrics` and `/status` are the embedding
/// program's; put the latter two behind [`protect`] and
/// [`Router::merge`] them in.
pub fn app(board: Board, access: Access) -> Router {
    let open = Router::new()
        .route("/app.js", get(app_js))
        .route("/app.css", get(app_css))
        .route("/login", get(login_form).post(login))
        .with_state(access.clone());
    let page = protect_page(Router::new().route("/", get(index)), &access);
    let api = Router::new()
        .route("/api/v1/extensions", get(list_extensions))
        .route("/api/v1/extensions/{ext}", get(one_extension))
        .route("/api/v1/health", get(health))
        .route("/api/v1/events", get(event_stream))
        .route("/api/{*rest}", get(no_such_endpoint))
        .with_state(board)
        .layer(middleware::map_response(no_store));
    let api = protect(api, &access);
    with_security_headers(open.merge(page).merge(api))
}

/// Adds the security headers to every response of `router`:
/// [`CONTENT_SECURITY_POLICY`], `X-Content-Type-Options: nosniff`,
/// `Referrer-Policy: no-referrer`.
pub fn with_security_headers(router: Router) -> Router {
    router.layer(middleware::map_response(security_headers))
}

async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CONTENT_SECURITY_POLICY),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    response
}

async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", assets::INDEX_HTML)
}

async fn app_js() -> Response {
    asset("text/javascript; charset=utf-8", assets::APP_JS)
}

async fn app_css() -> Response {
    asset("text/css; charset=utf-8", assets::APP_CSS)
}

/// A JSON body made of pieces (no re-serialisation of the extensions).
fn json(status: StatusCode, body: String) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

/// `{"error": message}` with `status`.
fn error(status: StatusCode, message: &str) -> Response {
    json(status, serde_json::json!({ "error": message }).to_string())
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    state: Option<String>,
    q: Option<String>,
}

async fn list_extensions(
    State(board): State<Board>,
    query: Result<Query<ListQuery>, QueryRejection>,
) -> Response {
    let Query(query) = match query {
        Ok(query) => query,
        Err(rejection) => return error(StatusCode::BAD_REQUEST, &rejection.body_text()),
    };
    let state = match query
        .state
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
    {
        None => None,
        Some(text) => match text.parse::<StateFilter>() {
            Ok(state) => Some(state),
            Err(unknown) => return error(StatusCode::BAD_REQUEST, &unknown.to_string()),
        },
    };
    let filter = ExtensionFilter { state, q: query.q };
    let extensions = board.extensions_json(&filter);
    let mut body =
        String::with_capacity(extensions.iter().map(|e| e.len() + 1).sum::<usize>() + 64);
    body.push_str(r#"{"extensions":"#);
    push_array(&mut body, &extensions);
    push_server_time(&mut body);
    json(StatusCode::OK, body)
}

async fn one_extension(State(board): State<Board>, Path(ext): Path<String>) -> Response {
    match board.extension_json(&ext) {
        Some(json_text) => json(StatusCode::OK, json_text.to_string()),
        None => error(
            StatusCode::NOT_FOUND,
            &format!("extension {ext:?} is not in the extension list"),
        ),
    }
}

async fn health(State(board): State<Board>) -> Response {
    let health = board.health_json();
    let mut body = String::with_capacity(health.sources.len() + health.sinks.len() + 120);
    body.push_str(r#"{"sources":"#);
    body.push_str(&health.sources);
    body.push_str(r#","sinks":"#);
    body.push_str(&health.sinks);
    body.push_str(&format!(
        r#","stale_after_seconds":{}"#,
        board.config().stale_after.as_secs()
    ));
    push_server_time(&mut body);
    json(StatusCode::OK, body)
}

async fn event_stream(State(board): State<Board>, headers: HeaderMap) -> Response {
    let last_event_id = headers
        .get(HeaderName::from_static("last-event-id"))
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok());
    let mut response = events(board, last_event_id).into_response();
    // Proxies (nginx) must not buffer the stream.
    response.headers_mut().insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    response
}

async fn no_such_endpoint() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint; see /api/v1/extensions, /api/v1/health, /api/v1/events",
    )
}

fn login_page(status: StatusCode, message: Option<&str>) -> Response {
    let message = message.map_or(String::new(), |m| format!(r#"<p class="error">{m}</p>"#));
    (status, Html(LOGIN_HTML.replace("<!--MESSAGE-->", &message))).into_response()
}

async fn login_form(State(access): State<Access>) -> Response {
    if !access.requires_token() {
        return Redirect::to("/").into_response();
    }
    login_page(StatusCode::OK, None)
}

#[derive(Deserialize)]
struct LoginForm {
    token: String,
}

async fn login(
    State(access): State<Access>,
    form: Result<Form<LoginForm>, FormRejection>,
) -> Response {
    let Some(cookie) = access.session_cookie() else {
        return Redirect::to("/").into_response();
    };
    match form {
        Ok(Form(form)) if access.accepts_token(&form.token) => {
            let mut response = Redirect::to("/").into_response();
            response.headers_mut().insert(header::SET_COOKIE, cookie);
            response
        }
        _ => {
            tracing::info!("line board: a login with a wrong token");
            login_page(StatusCode::UNAUTHORIZED, Some("That token is not right."))
        }
    }
}
