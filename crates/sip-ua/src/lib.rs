//! A sans-IO SIP user agent for REGISTER and BLF subscriptions.
#![doc = "placeholder"]

pub mod config;
pub mod digest;
pub mod discovery;
#[cfg(feature = "tokio")]
pub mod driver;
pub mod error;
pub mod framing;
pub mod headers;
pub mod message;
pub mod transaction;
pub mod ua;

pub use config::{ContactAddress, EventPackage, Subscription, Transport, UaConfig};
pub use discovery::{AddressDiscovery, DiscoveryTransmit};
pub use error::{Error, ParseError};
pub use headers::{SubState, SubscriptionState, TerminationReason};
pub use message::Message;
pub use transaction::Timers;
pub use ua::{Event, Notify, Transmit, UserAgent};
