//! Typed errors.

pub use sip_proto::ParseError;

/// Errors of the user agent and its driver.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(#[from] ConfigError),
    /// A MESSAGE or PUBLISH was refused before it was sent: what the caller
    /// gave cannot go into a SIP request.
    #[error("{0}")]
    InvalidRequest(#[from] InvalidRequest),
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

/// Why a [`UaConfig`](crate::UaConfig) cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// No account user name.
    #[error("username is empty")]
    EmptyUsername,
    /// A transport name other than `udp`, `tcp` or `tls`.
    #[error("unknown SIP transport {0:?} (use udp, tcp or tls)")]
    UnknownTransport(String),
    /// The driver's event capacity is zero.
    #[error("event capacity must be at least 1")]
    ZeroEventCapacity,
}

/// Why a MESSAGE or PUBLISH was refused before it was sent.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum InvalidRequest {
    /// The MESSAGE recipient is not a usable SIP URI.
    #[error("invalid recipient {0:?}: a SIP URI such as sip:webphones@pbx.example.com")]
    Recipient(String),
    /// The PUBLISH presentity cannot go into a URI.
    #[error("invalid presentity {0:?}: a user name or a SIP URI without spaces, quotes or angle brackets")]
    Presentity(String),
    /// The content type is not a media type, or would break the header.
    #[error("invalid content type {0:?}: a media type such as application/json")]
    ContentType(String),
    /// The MESSAGE body is larger than RFC 3428 §8 allows outside a session.
    #[error("a MESSAGE body of {len} bytes is over the {max} bytes taken (RFC 3428 §8)")]
    BodyTooLarge {
        /// The body's size.
        len: usize,
        /// The largest body taken ([`MAX_MESSAGE_BODY`](crate::MAX_MESSAGE_BODY)).
        max: usize,
    },
}
