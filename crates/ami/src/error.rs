//! The client's errors.

use std::time::Duration;

use crate::action::ActionId;
use crate::codec::{CodecError, EncodeError};

/// Why the client closed, or why an action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The server refused the login (`Message:` text, e.g. `Authentication
    /// failed`, `Login Already In Use`). The server closes the connection.
    #[error("login refused: {message}")]
    LoginRefused {
        /// The server's `Message:` (empty if none).
        message: String,
    },
    /// No `Authentication accepted` within [`crate::Config::login_timeout`].
    #[error("no login within {0:?}")]
    LoginTimeout(Duration),
    /// No answer to a `Ping` within [`crate::Config::ping_timeout`].
    #[error("no answer to Ping within {0:?}")]
    PingTimeout(Duration),
    /// No response (or no next list item) within [`crate::Config::action_timeout`].
    #[error("action {0} timed out")]
    ActionTimeout(ActionId),
    /// Input that cannot be framed or breaks a size limit.
    #[error(transparent)]
    Codec(#[from] CodecError),
    /// Framed input that breaks the protocol (e.g. a list longer than allowed,
    /// a challenge without `Challenge:`).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// The action cannot be encoded (line breaks, bad key, too long).
    #[error(transparent)]
    InvalidAction(#[from] EncodeError),
    /// The connection ended (input ended, or the client closed) before the
    /// answer.
    #[error("connection closed")]
    ConnectionClosed,
}
