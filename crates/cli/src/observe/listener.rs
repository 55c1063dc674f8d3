//! The status listener's connections, with limits so that slow or
//! half-open clients cannot starve `/healthz`: a request's headers must
//! arrive within [`HttpLimits::header_read_timeout`], a connection on which
//! no byte moves for [`HttpLimits::idle_timeout`] is closed, and past
//! [`HttpLimits::max_connections`] a new connection is closed at once
//! instead of waiting behind the others.
//!
//! hyper's HTTP/1 server does the parsing and the header timeout (it also
//! bounds how long a kept-alive connection waits for its next request);
//! this module adds the cap and the idle timeout, which `axum::serve` lacks.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::ConnectInfo;
use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::log_limit::{LogLimiter, WARNING_BURST, WARNING_INTERVAL};

/// Limits of the status listener's connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HttpLimits {
    /// Time for a request's headers to arrive, from the connection's
    /// opening or the previous response (default 10 s).
    pub header_read_timeout: Duration,
    /// A connection on which nothing is read or written for this long is
    /// closed, e.g. a client that stops reading a response (default 60 s).
    pub idle_timeout: Duration,
    /// Connections served at once; more are closed as they come (default 256: each open dashboard holds one for its event stream).
    pub max_connections: usize,
}

/// Default of [`HttpLimits::header_read_timeout`].
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Default of [`HttpLimits::idle_timeout`].
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default of [`HttpLimits::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 256;

impl Default for HttpLimits {
    fn default() -> Self {
        Self {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Accepts and serves connections until `stop` resolves, then lets the
/// requests in progress finish. Connections still open when this future is
/// dropped are dropped with it. With `tls`, each connection's handshake must
/// end within [`HttpLimits::header_read_timeout`]. Handlers see the peer's
/// address as [`axum::extract::ConnectInfo`].
pub(super) async fn accept_loop(
    listener: TcpListener,
    app: Router,
    limits: HttpLimits,
    open: watch::Sender<usize>,
    stop: impl Future<Output = ()>,
    tls: Option<tokio_rustls::TlsAcceptor>,
) {
    tokio::pin!(stop);
    let permits = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        .keep_alive(true);
    let graceful = GracefulShutdown::new();
    let mut connections = JoinSet::new();
    let mut refused = LogLimiter::new(WARNING_INTERVAL, WARNING_BURST);
    let open = Arc::new(open);
    loop {
        let summary = refused.next_deadline().map(Instant::from_std);
        tokio::select! {
            () = &mut stop => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            () = tokio::time::sleep_until(summary.unwrap_or_else(Instant::now)),
                if summary.is_some() =>
            {
                if let Some(n) = refused.poll(Instant::now().into_std()) {
                    tracing::warn!(
                        "HTTP listener: {n} more connections closed at once in the last {} s \
                         (all {} in use)",
                        WARNING_INTERVAL.as_secs(),
                        limits.max_connections,
                    );
                }
            }
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(accepted) => accepted,
                    Err(e) => {
                        // Out of file descriptors, say: do not spin on it.
                        tracing::debug!("HTTP listener: accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                let Ok(permit) = permits.clone().try_acquire_owned() else {
                    // Closed now rather than queued behind connections that
                    // may be slow on purpose.
                    drop(stream);
                    if refused.offer(Instant::now().into_std()) {
                        tracing::warn!(
                            %peer,
                            "HTTP listener: all {} connections in use; closing new ones \
                             until some end",
                            limits.max_connections,
                        );
                    }
                    continue;
                };
                let slot = Slot::taken(permit, open.clone());
                let activity = Arc::new(Mutex::new(Instant::now()));
                let app = app.clone().layer(axum::Extension(ConnectInfo(peer)));
                let (builder, watcher, tls) = (builder.clone(), graceful.watcher(), tls.clone());
                let idle = limits.idle_timeout;
                let handshake = limits.header_read_timeout;
                connections.spawn(async move {
                    let service = TowerToHyperService::new(app);
                    match tls {
                        None => {
                            let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
                            let conn = watcher.watch(builder.serve_connection(io, service));
                            until_idle(conn, &activity, idle).await;
                        }
                        Some(acceptor) => {
                            let accepted =
                                tokio::time::timeout(handshake, acceptor.accept(stream)).await;
                            let stream = match accepted {
                                Ok(Ok(stream)) => stream,
                                Ok(Err(e)) => {
                                    tracing::debug!(%peer, "TLS handshake failed: {e}");
                                    return;
                                }
                                Err(_) => {
                                    tracing::debug!(%peer, "TLS handshake not done in {handshake:?}");
                                    return;
                                }
                            };
                            let io = TokioIo::new(Watched { inner: stream, activity: activity.clone() });
                            let conn = watcher.watch(builder.serve_connection(io, service));
                            until_idle(conn, &activity, idle).await;
                        }
                    }
                    drop(slot);
                });
            }
        }
    }
    drop(listener);
    // Asks every connection to end after its current request, and waits.
    graceful.shutdown().await;
    while connections.join_next().await.is_some() {}
}

/// Runs `conn` until it ends or no byte has moved for `idle`.
async fn until_idle<F>(conn: F, activity: &Mutex<Instant>, idle: Duration)
where
    F: Future<Output = Result<(), hyper::Error>>,
{
    tokio::pin!(conn);
    loop {
        let last = *activity.lock().unwrap_or_else(|p| p.into_inner());
        tokio::select! {
            result = &mut conn => {
                if let Err(e) = result {
                    // Header time-outs, resets, bad requests: the client's doing.
                    tracing::debug!("HTTP connection ended: {e}");
                }
                return;
            }
            () = tokio::time::sleep_until(last + idle) => {
                let last = *activity.lock().unwrap_or_else(|p| p.into_inner());
                if last + idle <= Instant::now() {
                    tracing::debug!("HTTP connection closed after {idle:?} without traffic");
                    return;
                }
            }
        }
    }
}

/// A connection's place under the cap; gives it back when dropped.
struct Slot {
    _permit: OwnedSemaphorePermit,
    open: Arc<watch::Sender<usize>>,
}

impl Slot {
    fn taken(permit: OwnedSemaphorePermit, open: Arc<watch::Sender<usize>>) -> Self {
        open.send_modify(|n| *n += 1);
        Self {
            _permit: permit,
            open,
        }
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.open.send_modify(|n| *n = n.saturating_sub(1));
    }
}

/// A stream that notes when bytes last moved, for the idle timeout.
struct Watched<S> {
    inner: S,
    activity: Arc<Mutex<Instant>>,
}

impl<S> Watched<S> {
    fn moved(&self) {
        *self.activity.lock().unwrap_or_else(|p| p.into_inner()) = Instant::now();
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Watched<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        let polled = Pin::new(&mut self.inner).poll_read(cx, buf);
        if matches!(polled, Poll::Ready(Ok(()))) && buf.filled().len() > before {
            self.moved();
        }
        polled
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Watched<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write(cx, buf);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let polled = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        if matches!(polled, Poll::Ready(Ok(n)) if n > 0) {
            self.moved();
        }
        polled
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}
