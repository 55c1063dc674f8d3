//! Typed errors.

/// Why a message from the network was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Nothing but whitespace.
    #[error("empty message")]
    Empty,
    /// Larger than the size limits allow.
    #[error("message or header too large")]
    TooLarge,
    /// More header fields than allowed.
    #[error("too many header fields")]
    TooManyHeaders,
    /// The header section is not UTF-8.
    #[error("header section is not UTF-8")]
    NotUtf8,
    /// Request line or status line malformed.
    #[error("malformed request or status line")]
    BadStartLine,
    /// A header line without `name:`.
    #[error("malformed header line")]
    BadHeader,
    /// `Content-Length` is not a number.
    #[error("malformed Content-Length")]
    BadContentLength,
    /// Fewer bytes than `Content-Length` announces.
    #[error("message truncated")]
    Truncated,
    /// A header value that could not be understood.
    #[error("malformed {0} header")]
    BadValue(&'static str),
}

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
