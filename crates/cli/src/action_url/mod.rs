//! The desk-phone action-URL source (`SOURCES=…,action-url`): a listener of
//! its own (`ACTION_URL_LISTEN`, HTTPS with `ACTION_URL_TLS_CERT` and
//! `ACTION_URL_TLS_KEY`) that takes the requests Yealink, Snom and Fanvil
//! phones send on call events, and mattersip's `/sip/<action>/<user>`
//! paths, and reports each extension on system [`PHONE`].
//!
//! The request's meaning is [`event`] (sans-IO), the calls behind a line
//! and the ordering rule are [`tracker`] (sans-IO); [`serve`] checks the
//! secret (`ACTION_URL_SECRET`, constant time, never logged) and the
//! extension, and feeds the engine. See `docs/action-urls.md`.

pub mod event;
mod server;
pub mod settings;
pub mod tracker;

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use sip_blf_engine::{ChannelSource, Observation};
use tokio::sync::mpsc;

use crate::extensions::Extension;
use crate::observe::{HttpLimits, HttpServer, WARNING_INTERVAL};

pub use event::{parse, EventKind, PhoneEvent, RequestError, Vendor};
pub use server::{redact, secret_matches, Counters, SECRET_HEADER};
pub use settings::{ActionUrlSettings, TlsFiles};
pub use tracker::{Outcome, Tracker};

/// The system the phones' reports are on; the address is the extension.
pub const PHONE: &str = "phone";

/// The source's name in `SOURCES` and in logs.
pub const SOURCE_NAME: &str = "action-url";

/// Observations that may wait for the engine.
const QUEUE: usize = 1024;

/// The engine source the listener feeds, and the sender for [`serve`].
pub fn source() -> (mpsc::Sender<Observation>, ChannelSource) {
    ChannelSource::channel(SOURCE_NAME, QUEUE)
}

/// The extensions a request may name: by number, or by a person's e-mail
/// (case-insensitive), which stands for that person's first listed
/// extension.
#[derive(Debug, Clone, Default)]
pub struct Phones {
    extensions: HashSet<String>,
    by_email: HashMap<String, String>,
}

impl Phones {
    /// The extensions of the list.
    pub fn new(extensions: &[Extension]) -> Self {
        let mut phones = Self::default();
        for e in extensions {
            phones.extensions.insert(e.extension.clone());
            if !e.email.is_empty() {
                phones
                    .by_email
                    .entry(e.email.to_ascii_lowercase())
                    .or_insert_with(|| e.extension.clone());
            }
        }
        phones
    }

    /// The extension `user` (an extension or an e-mail address) stands for.
    pub fn resolve(&self, user: &str) -> Option<&str> {
        if let Some(e) = self.extensions.get(user) {
            return Some(e);
        }
        if user.contains('@') {
            return self
                .by_email
                .get(&user.to_ascii_lowercase())
                .map(String::as_str);
        }
        None
    }
}

/// The listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The certificate or key could not be read or used.
    #[error("{var} {path}: {message}")]
    Tls {
        /// The variable that names the file.
        var: &'static str,
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// The address could not be bound.
    #[error("ACTION_URL_LISTEN {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
}

/// The running listener. Dropping it stops it.
#[derive(Debug)]
pub struct ActionUrlServer {
    http: HttpServer,
    /// Logs the warnings' summaries.
    _summaries: AbortOnDrop,
    counters: Arc<Counters>,
}

impl ActionUrlServer {
    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.http.local_addr()
    }

    /// The requests so far, by outcome.
    pub fn counters(&self) -> Arc<Counters> {
        self.counters.clone()
    }

    /// Stops accepting, lets requests in progress finish (at most 5 s).
    pub async fn shutdown(self) -> Result<(), std::io::Error> {
        self.http.shutdown().await
    }
}

/// A task that ends with its handle.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Binds `settings.listen` and serves the phones' requests on a spawned
/// task, their facts sent to `observations` (the sender of [`source`]).
/// `extra`'s routes are served on the same listener before the phone
/// paths, without the secret check (they bring their own).
pub async fn serve(
    settings: &ActionUrlSettings,
    phones: Phones,
    observations: mpsc::Sender<Observation>,
    extra: axum::Router,
) -> Result<ActionUrlServer, ServeError> {
    let tls = settings.tls.as_ref().map(tls_acceptor).transpose()?;
    let counters = Arc::new(Counters::default());
    let shared = Arc::new(server::Shared {
        secret: settings.secret.clone(),
        phones,
        tracker: tokio::sync::Mutex::new(Tracker::new()),
        observations,
        warnings: Mutex::new(server::Warnings::default()),
        counters: counters.clone(),
    });
    let app = server::router(shared.clone(), extra);
    let http = crate::observe::serve_router(settings.listen, app, HttpLimits::default(), tls)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.listen,
            source,
        })?;
    // A flood that stops still gets its summary line.
    let summaries = tokio::spawn(async move {
        let mut tick = tokio::time::interval(WARNING_INTERVAL);
        loop {
            tick.tick().await;
            let now = tokio::time::Instant::now().into_std();
            shared
                .warnings
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .poll(now);
        }
    });
    Ok(ActionUrlServer {
        http,
        _summaries: AbortOnDrop(summaries),
        counters,
    })
}

/// What `check` does instead of [`serve`]: loads the certificate and key
/// when set, binds `settings.listen` once and releases it; the address
/// bound (the port chosen, for port 0).
pub async fn check_listener(settings: &ActionUrlSettings) -> Result<SocketAddr, ServeError> {
    if let Some(files) = &settings.tls {
        tls_acceptor(files)?;
    }
    let bind_error = |source| ServeError::Bind {
        addr: settings.listen,
        source,
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(bind_error)?;
    listener.local_addr().map_err(bind_error)
}

/// The TLS server configuration of the PEM files (ring, TLS 1.2 and 1.3).
fn tls_acceptor(files: &TlsFiles) -> Result<tokio_rustls::TlsAcceptor, ServeError> {
    use rustls_pki_types::pem::PemObject as _;
    use rustls_pki_types::{CertificateDer, PrivateKeyDer};
    let cert_error = |message: String| ServeError::Tls {
        var: "ACTION_URL_TLS_CERT",
        path: files.cert.display().to_string(),
        message,
    };
    let certs = CertificateDer::pem_file_iter(&files.cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| cert_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(cert_error("no certificate in the file".to_owned()));
    }
    let key = PrivateKeyDer::from_pem_file(&files.key).map_err(|e| ServeError::Tls {
        var: "ACTION_URL_TLS_KEY",
        path: files.key.display().to_string(),
        message: e.to_string(),
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| cert_error(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| cert_error(format!("does not go with the key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(config)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::settings::Secret;
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};

    async fn status(addr: SocketAddr, request: &str) -> String {
        let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
        s.write_all(request.as_bytes()).await.unwrap();
        let mut text = String::new();
        s.read_to_string(&mut text).await.unwrap();
        text.split(' ').nth(1).unwrap_or_default().to_owned()
    }

    #[tokio::test]
    async fn the_extra_routes_share_the_listener_without_the_secret_check() {
        let settings = ActionUrlSettings {
            listen: "127.0.0.1:0".parse().unwrap(),
            secret: Some(Secret::new("s")),
            tls: None,
        };
        let extra = axum::Router::new().route(
            "/mattermost/command",
            axum::routing::post(|| async { "from the extra router" }),
        );
        let (sender, mut source) = source();
        let exts = crate::extensions::parse_json(
            std::path::Path::new("x.json"),
            r#"[{"extension":"1001","email":"alice@contoso.com"}]"#,
        )
        .unwrap();
        let server = serve(&settings, Phones::new(&exts), sender, extra)
            .await
            .unwrap();
        let addr = server.local_addr();
        let close = "HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        assert_eq!(
            status(addr, &format!("POST /mattermost/command {close}")).await,
            "200"
        );
        assert_eq!(
            status(addr, &format!("GET /yealink/1001/dnd_on {close}")).await,
            "403"
        );
        let ok = format!("GET /yealink/alice%40contoso.com/dnd_on?secret=s {close}");
        assert_eq!(status(addr, &ok).await, "200");
        let seen = sip_blf_engine::Source::next(&mut source).await.unwrap();
        assert_eq!(
            (seen.system.as_str(), seen.address.as_str()),
            (PHONE, "1001")
        );
        assert_eq!(seen.fact, sip_blf_engine::Fact::Dnd(true));
        server.shutdown().await.unwrap();
    }
}
