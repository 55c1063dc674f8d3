//! Why a message from the network was not accepted.

/// Why a message from the network was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
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
