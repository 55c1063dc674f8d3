//! Typed errors of the driver.

/// Why the notifier cannot start or be reached.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The socket could not be bound or read.
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// The notifier task has stopped.
    #[error("the notifier has stopped")]
    Stopped,
}
