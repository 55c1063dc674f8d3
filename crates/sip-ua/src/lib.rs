//! A sans-IO SIP user agent for REGISTER and BLF subscriptions.
#![doc = "placeholder"]

pub mod digest;
pub mod discovery;
pub mod error;
pub mod framing;
pub mod headers;
pub mod message;

pub use error::{Error, ParseError};
pub use message::Message;
