//! Errors and per-server failures.

use std::fmt;
use std::net::SocketAddr;

/// Why one STUN server gave no mapped address.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Failure {
    /// No valid response within the retransmission schedule (or the time budget).
    Timeout {
        /// The server.
        server: SocketAddr,
    },
    /// The server answered with a Binding error response.
    ErrorResponse {
        /// The server.
        server: SocketAddr,
        /// `ERROR-CODE` number.
        code: u16,
        /// `ERROR-CODE` reason phrase.
        reason: String,
    },
    /// The request could not be sent (e.g. no route, wrong address family).
    SendFailed {
        /// The server.
        server: SocketAddr,
        /// The socket error, as text.
        reason: String,
    },
    /// The server name did not resolve.
    Unresolved {
        /// The server as given (`host:port`).
        server: String,
        /// The resolver error, as text.
        reason: String,
    },
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Timeout { server } => write!(f, "{server}: no response"),
            Self::ErrorResponse {
                server,
                code,
                reason,
            } => write!(f, "{server}: error response {code} {reason}"),
            Self::SendFailed { server, reason } => write!(f, "{server}: cannot send: {reason}"),
            Self::Unresolved { server, reason } => write!(f, "{server}: cannot resolve: {reason}"),
        }
    }
}

/// Errors of the `stun-lite` API.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StunError {
    /// A server entry is not `host[:port]`.
    #[error("invalid STUN server {input:?}: {reason}")]
    InvalidServer {
        /// The entry as given.
        input: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// The server list is empty.
    #[error("no STUN server configured")]
    NoServers,
    /// Every server failed.
    #[error("no STUN server answered ({})", FailureList(.0))]
    NoAnswer(Vec<Failure>),
    /// A socket error.
    #[error("STUN socket error: {0}")]
    Io(#[from] std::io::Error),
}

struct FailureList<'a>(&'a [Failure]);

impl fmt::Display for FailureList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return write!(f, "no server tried");
        }
        for (i, failure) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, "; ")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}
