//! The HTTP listener: `/healthz`, `/readyz`, `/metrics`, `/status`, and
//! with [`serve_board`] the dashboard and its API (crate `line-board`).

use std::net::SocketAddr;
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::json;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::listener::{accept_loop, HttpLimits};
use super::Telemetry;

/// The default of `HTTP_LISTEN`: loopback only.
pub const DEFAULT_HTTP_LISTEN: &str = "127.0.0.1:9090";

/// Content type of `/metrics` (the OpenMetrics text format `prometheus-client` writes).
pub const METRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// How long [`HttpServer::shutdown`] waits for open requests before dropping them.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// An `HTTP_LISTEN` value that is neither `off` nor an `ip:port` address.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("HTTP_LISTEN={value:?} is not an address like 127.0.0.1:9090 or [::1]:9090, nor `off`")]
pub struct HttpListenError {
    /// The value as given.
    pub value: String,
}

/// Reads `HTTP_LISTEN`: unset or empty → [`DEFAULT_HTTP_LISTEN`]; `off`
/// (any case) → `None` (no listener); otherwise an `ip:port` socket address.
///
/// ```
/// use sip_blf_sync::observe::parse_http_listen;
/// assert_eq!(parse_http_listen(None).unwrap(), Some("127.0.0.1:9090".parse().unwrap()));
/// assert_eq!(parse_http_listen(Some("off")).unwrap(), None);
/// assert_eq!(parse_http_listen(Some("[::1]:8080")).unwrap(), Some("[::1]:8080".parse().unwrap()));
/// assert!(parse_http_listen(Some("localhost")).is_err());
/// ```
pub fn parse_http_listen(value: Option<&str>) -> Result<Option<SocketAddr>, HttpListenError> {
    let value = value.map(str::trim).unwrap_or_default();
    let value = if value.is_empty() {
        DEFAULT_HTTP_LISTEN
    } else {
        value
    };
    if value.eq_ignore_ascii_case("off") {
        return Ok(None);
    }
    value.parse().map(Some).map_err(|_| HttpListenError {
        value: value.to_owned(),
    })
}

/// A running listener. Dropping it stops the server too (gracefully, in the background).
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
    open: watch::Receiver<usize>,
    /// Its event streams end before the graceful stop waits for requests.
    board: Option<line_board::Board>,
}

impl HttpServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The number of connections open, as it changes (under the cap of
    /// [`HttpLimits::max_connections`]).
    pub fn open_connections(&self) -> watch::Receiver<usize> {
        self.open.clone()
    }

    /// Stops accepting, lets requests in progress finish (at most 5 s), then returns.
    pub async fn shutdown(mut self) -> Result<(), std::io::Error> {
        if let Some(board) = &self.board {
            board.close();
        }
        if let Some(stop) = self.stop.take() {
            // The server may already be gone; then there is nothing to stop.
            let _ = stop.send(());
        }
        match tokio::time::timeout(SHUTDOWN_GRACE, &mut self.task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(join)) => Err(std::io::Error::other(join)),
            Err(_elapsed) => {
                self.task.abort();
                Ok(())
            }
        }
    }
}

/// Binds `listen` and serves `/healthz`, `/readyz`, `/metrics` and `/status`
/// from `telemetry` on a spawned task (needs a tokio runtime).
///
/// - `/healthz`: `200 ok` while the process runs.
/// - `/readyz`: `200 {"ready":true,"missing":[]}`, or `503` with `ready: false`
///   and `missing` listing what is lacking ("not registered with the PBX",
///   "no valid Graph token").
/// - `/metrics`: Prometheus/OpenMetrics text ([`METRICS_CONTENT_TYPE`]).
/// - `/status`: [`Telemetry::status_json`].
///
/// With the default [`HttpLimits`]: 10 s for a request's headers, 60 s
/// without traffic, 256 connections.
pub async fn serve(listen: SocketAddr, telemetry: Telemetry) -> Result<HttpServer, std::io::Error> {
    serve_with(listen, telemetry, HttpLimits::default()).await
}

/// [`serve`] with other limits (tests use short time-outs).
pub async fn serve_with(
    listen: SocketAddr,
    telemetry: Telemetry,
    limits: HttpLimits,
) -> Result<HttpServer, std::io::Error> {
    serve_app(listen, router(telemetry), limits, None).await
}

/// [`serve`] with the dashboard of `board` at `/` and its API under
/// `/api/v1/`; `access` guards them, `/metrics` and `/status` alike
/// (`/healthz` and `/readyz` stay open).
pub async fn serve_board(
    listen: SocketAddr,
    telemetry: Telemetry,
    board: line_board::Board,
    access: line_board::Access,
) -> Result<HttpServer, std::io::Error> {
    let open = Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(telemetry.clone());
    let guarded = Router::new()
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(telemetry);
    let app = line_board::app(board.clone(), access.clone())
        .merge(open)
        .merge(line_board::with_security_headers(line_board::protect(
            guarded, &access,
        )));
    serve_app(listen, app, HttpLimits::default(), Some(board)).await
}

async fn serve_app(
    listen: SocketAddr,
    app: Router,
    limits: HttpLimits,
    board: Option<line_board::Board>,
) -> Result<HttpServer, std::io::Error> {
    let server = serve_router(listen, app, limits, None).await?;
    tracing::info!(local_addr = %server.local_addr, "HTTP listener: /healthz /readyz /metrics /status");
    Ok(HttpServer { board, ..server })
}

/// Binds `listen` and serves `app` with `limits` on a spawned task, over
/// TLS when `tls` is given (the action-URL listener shares this serving).
pub(crate) async fn serve_router(
    listen: SocketAddr,
    app: Router,
    limits: HttpLimits,
    tls: Option<tokio_rustls::TlsAcceptor>,
) -> Result<HttpServer, std::io::Error> {
    let listener = tokio::net::TcpListener::bind(listen).await?;
    let local_addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel::<()>();
    let (open_tx, open) = watch::channel(0);
    let stop_signal = async move {
        // A sent signal or a dropped handle both stop the server.
        let _ = stopped.await;
    };
    let task = tokio::spawn(accept_loop(
        listener,
        app,
        limits,
        open_tx,
        stop_signal,
        tls,
    ));
    Ok(HttpServer {
        local_addr,
        stop: Some(stop),
        task,
        open,
        board: None,
    })
}

fn router(telemetry: Telemetry) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/status", get(status))
        .with_state(telemetry)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(telemetry): State<Telemetry>) -> Response {
    let missing = telemetry.readiness_problems();
    let code = if missing.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = json!({ "ready": missing.is_empty(), "missing": missing });
    (code, Json(body)).into_response()
}

async fn metrics(State(telemetry): State<Telemetry>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        telemetry.metrics_text(),
    )
        .into_response()
}

async fn status(State(telemetry): State<Telemetry>) -> Response {
    Json(telemetry.status_json()).into_response()
}
