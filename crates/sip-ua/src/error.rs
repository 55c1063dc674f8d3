//! Typed errors.

pub use sip_proto::ParseError;

/// Errors of the user agent and its driver.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The server name did not resolve.
    #[error("cannot resolve SIP server {server}: {reason}")]
    Resolve {
        /// The configured server.
        server: String,
        /// What went wrong.
        reason: String,
    },
    /// The TLS connection to the PBX was refused (which check failed, see
    /// [`TlsError`](crate::tls::TlsError)).
    #[error("{0}")]
    Tls(#[from] crate::tls::TlsError),
    /// Socket error.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The user agent task is gone.
    #[error("the user agent has stopped")]
    Stopped,
}
