//! Sans-IO SIP building blocks, shared by the `sip-ua` user agent and the
//! `sip-notifier` test PBX: no sockets, no runtime, no clock of its own
//! (every timer takes `now: Instant`).
//!
//! - [`message`]: a lenient, size-limited message model ([`Message`]):
//!   compact header names, folded lines, bounded sizes, never a panic;
//! - [`headers`]: parsers for `Event`, `Subscription-State`, `Min-Expires`,
//!   `Retry-After`, `Via` and `Contact` expiry;
//! - [`digest`]: RFC 7616/8760 digest authentication, both sides (answering a
//!   challenge with [`DigestSession`], checking credentials with
//!   [`digest::Credentials::verify`]);
//! - [`framing`]: `Content-Length` framing of a TCP/TLS byte stream;
//! - [`transaction`]: non-INVITE client transactions (Timers E, F, K) and the
//!   server side's answer to retransmitted requests (Timer J,
//!   [`ServerTransactions::absorb`]);
//! - [`is_stun`]: tells STUN from SIP on a shared socket (RFC 7983).
//!
//! # Example
//!
//! Parse a challenge and answer it:
//!
//! ```
//! use sip_proto::{digest, DigestSession, Message};
//!
//! let challenge = Message::parse(
//!     b"SIP/2.0 401 Unauthorized\r\n\
//!       Via: SIP/2.0/UDP 192.0.2.20:5062;branch=z9hG4bK1\r\n\
//!       From: <sip:blf@pbx.test>;tag=a\r\nTo: <sip:blf@pbx.test>;tag=b\r\n\
//!       i: c1\r\nCSeq: 1 REGISTER\r\n\
//!       WWW-Authenticate: Digest realm=\"pbx.test\", nonce=\"n1\", qop=\"auth\", algorithm=SHA-256\r\n\
//!       Content-Length: 0\r\n\r\n",
//! )
//! .unwrap();
//! assert_eq!(challenge.status(), Some(401));
//! assert_eq!(challenge.call_id(), Some("c1")); // `i:` is the compact Call-ID
//!
//! let mut session = DigestSession::new();
//! session.on_challenge(&challenge, "blf").unwrap();
//! let (header, value) = session
//!     .authorize("blf", "secret", "REGISTER", "sip:pbx.test", b"")
//!     .unwrap();
//! assert_eq!(header, "Authorization");
//! assert!(value.contains("algorithm=SHA-256"));
//!
//! // The server side checks the same credentials.
//! let credentials = digest::parse_credentials(&value).unwrap();
//! assert!(credentials.verify("secret", "REGISTER", b""));
//! assert!(!credentials.verify("wrong", "REGISTER", b""));
//! ```

mod demux;
pub mod digest;
mod error;
pub mod framing;
pub mod headers;
pub mod message;
pub mod transaction;

pub use demux::is_stun;
pub use digest::{Algorithm, AuthError, DigestSession};
pub use error::ParseError;
pub use framing::{Frame, StreamFramer};
pub use headers::{SubState, SubscriptionState, TerminationReason};
pub use message::{Headers, Message, StartLine};
pub use transaction::{Absorb, ClientTransaction, ServerTransactions, Timers, Transmit};

/// The README's example, compiled as a doctest.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
