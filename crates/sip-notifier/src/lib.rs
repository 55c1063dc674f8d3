//! The PBX side of BLF in a box: a SIP registrar and dialog-event notifier for
//! demos, tests and load generation.
//!
//! It accepts REGISTER and SUBSCRIBE (`Event: dialog`, RFC 4235, or
//! `presence`), challenges both with digest authentication (RFC 7616/8760,
//! SHA-256 and MD5 offered), and sends RFC 6665 NOTIFYs with full-state
//! `dialog-info` documents written the way Kamailio and Asterisk write them:
//! version 0 right after the 200, then version + 1 on every
//! [`Notifier::set_line`].
//!
//! The core, [`Notifier`], is sans-IO (datagrams and `now: Instant` in;
//! datagrams, a deadline and [`NotifierEvent`]s out), so every timer is
//! testable in virtual time. [`driver`] (feature `tokio`, on by default) runs
//! it on a UDP socket. Message parsing, digest and transactions come from `sip-proto`; the
//! RFC 4235 words ([`DialogState`], [`Direction`]) from `blf`.
//!
//! Behaviour:
//! - **REGISTER**: 401 with a challenge, then 200 with `Contact;expires`;
//!   `Expires: 0` or `Contact: *` removes the binding; bindings expire.
//! - **SUBSCRIBE**: 401, then 200 with `Expires` and a `To` tag, then a NOTIFY
//!   with the full state. A refresh in the dialog gets 200 and a NOTIFY;
//!   `Expires: 0` gets 200 and a final NOTIFY `Subscription-State:
//!   terminated`; an unknown extension 404; an unknown dialog 481; another
//!   event package 489; a too short expiry 423 with `Min-Expires`. Subscriptions
//!   not refreshed in time end with `terminated;reason=timeout`.
//! - **NOTIFY** is a non-INVITE client transaction over UDP (Timer E
//!   retransmissions, Timer F time-out). One NOTIFY is in flight per
//!   subscription; changes made meanwhile go out, newest state only, once it
//!   is answered. 481 (and the other codes of RFC 6665 §4.2.2) or no answer
//!   ends the subscription.
//! - NOTIFYs go to the address the SUBSCRIBE came from (as a PBX does for a
//!   watcher behind NAT), with the watcher's Contact as Request-URI.
//! - Responses honour `rport` (RFC 3581); retransmitted requests get the same
//!   answer; no input panics.
//!
//! # Example (sans-IO)
//!
//! ```
//! use std::time::Instant;
//! use sip_notifier::{Account, DialogSpec, DialogState, Direction, Notifier, NotifierConfig};
//!
//! let now = Instant::now();
//! let mut config = NotifierConfig::new("pbx.test", vec![Account::new("blf", "secret")]);
//! config.require_auth = false;
//! let pbx = "127.0.0.1:5060".parse().unwrap();
//! let mut notifier = Notifier::new(config.with_extensions(["1001"]), pbx, now);
//!
//! // A watcher subscribes to 1001.
//! let watcher = "127.0.0.1:5062".parse().unwrap();
//! let subscribe = "SUBSCRIBE sip:1001@pbx.test SIP/2.0\r\n\
//!     Via: SIP/2.0/UDP 127.0.0.1:5062;branch=z9hG4bK1\r\n\
//!     From: <sip:blf@pbx.test>;tag=w1\r\nTo: <sip:1001@pbx.test>\r\n\
//!     Call-ID: c1\r\nCSeq: 1 SUBSCRIBE\r\nContact: <sip:blf@127.0.0.1:5062>\r\n\
//!     Event: dialog\r\nExpires: 600\r\nContent-Length: 0\r\n\r\n";
//! notifier.handle_input(watcher, subscribe.as_bytes(), now);
//! let ok = notifier.poll_transmit().unwrap();
//! assert!(ok.payload.starts_with(b"SIP/2.0 200 OK"));
//! let first = String::from_utf8(notifier.poll_transmit().unwrap().payload).unwrap();
//! assert!(first.starts_with("NOTIFY sip:blf@127.0.0.1:5062 SIP/2.0"));
//! assert!(first.contains("version=\"0\" state=\"full\" entity=\"sip:1001@pbx.test\""));
//!
//! // 1001 rings: the watcher gets version 1 (once it answered version 0).
//! let ringing = DialogSpec::new("call-1", Direction::Recipient, DialogState::Early).with_remote("1002");
//! notifier.set_line("1001", vec![ringing], now);
//! assert_eq!(notifier.stats().active_subscriptions, 1);
//! ```
//!
//! With the tokio driver:
//!
//! ```no_run
//! # async fn run() -> Result<(), sip_notifier::Error> {
//! use sip_notifier::{Account, DialogSpec, DialogState, Direction, NotifierConfig, NotifierServer};
//!
//! let config = NotifierConfig::new("pbx.test", vec![Account::new("blf", "secret")])
//!     .with_extensions(["1001", "1002"]);
//! let mut pbx = NotifierServer::start(config, "127.0.0.1:0".parse().unwrap()).await?;
//! println!("PBX on {}", pbx.local_addr());
//! let call = DialogSpec::new("c1", Direction::Initiator, DialogState::Confirmed).with_remote("1002");
//! pbx.set_line("1001", vec![call])?;
//! while let Some(event) = pbx.next_event().await {
//!     println!("{event:?}");
//! }
//! # Ok(()) }
//! ```

mod config;
mod dialog;
#[cfg(feature = "tokio")]
pub mod driver;
mod error;
mod notifier;

pub use config::{Account, NotifierConfig};
pub use dialog::{write_dialog_info, write_pidf, DialogSpec, DialogState, Direction};
#[cfg(feature = "tokio")]
pub use driver::{NotifierHandle, NotifierServer};
pub use error::Error;
pub use notifier::{EndReason, Notifier, NotifierEvent, NotifierStats, Package};
pub use sip_proto::digest::Algorithm;
pub use sip_proto::Transmit;
