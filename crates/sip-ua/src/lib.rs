//! A sans-IO SIP user agent for REGISTER, BLF subscriptions and presence
//! publications that stays correct for weeks.
//!
//! The core, [`UserAgent`], is a state machine: it takes datagrams (or framed
//! TCP messages) and `now: Instant`, and hands back what to send
//! ([`UserAgent::poll_transmit`]), when to wake it up
//! ([`UserAgent::poll_timeout`]) and what happened ([`UserAgent::poll_event`]),
//! in the manner of `quinn-proto`. Every RFC timer is therefore testable in
//! virtual time. [`driver`] (feature `tokio`, on by default) runs it on a UDP
//! socket, a TCP connection or a TLS connection (rustls, see [`TlsConfig`]).
//!
//! What it does:
//! - **REGISTER** with digest auth, refreshed before the *granted* expiry
//!   (Contact `expires` or `Expires`), `423` → `Min-Expires` (doubled request,
//!   60..3600 s when the header is missing), failures → capped exponential
//!   backoff with jitter, un-REGISTER on [`UserAgent::shutdown`].
//! - **SUBSCRIBE** (RFC 6665) per user (for BLF, an extension) and event package, `Event: dialog`
//!   (BLF, RFC 4235) or `presence` (both at once for one user: the
//!   subscription events name the package); 200 and 202 accepted; the dialog is created by the 2xx or by a
//!   NOTIFY that comes first; refreshed before the granted expiry (re-authenticating);
//!   `481` on a refresh → new subscription with a new Call-ID at once;
//!   `404`/`403`/`489`/`603` → [`Event::SubscriptionFailed`] with a plain-words
//!   diagnosis and a slow retry; `Subscription-State: terminated` reasons
//!   handled as RFC 6665 §4.2.2 says; new SUBSCRIBEs paced (50/s by default);
//!   [`UserAgent::refresh_subscription`] re-SUBSCRIBEs in the dialog at once
//!   (for the full state after a version gap, RFC 4235 §4.1);
//!   un-SUBSCRIBE on shutdown, whose final NOTIFYs are waited for (at most
//!   [`FINAL_NOTIFY_WAIT`]) and answered before the un-REGISTER.
//! - **PUBLISH** (RFC 3903) of `Event: presence` per presentity
//!   ([`UserAgent::publish`]): initial PUBLISH with the body, `SIP-ETag` kept,
//!   refreshed before the granted expiry with `SIP-If-Match` and no body,
//!   modified with a new body, removed with `Expires: 0` (also on shutdown,
//!   before the un-REGISTER); `412` → a new initial PUBLISH, `423` →
//!   `Min-Expires`, digest as for SUBSCRIBE.
//! - **MESSAGE** (RFC 3428) to any SIP URI ([`UserAgent::send_message`],
//!   or awaited with [`driver::Messenger::send`]): outside any dialog,
//!   Request-URI = the recipient; a 2xx is [`Event::MessageDelivered`],
//!   anything else [`Event::MessageFailed`] with a plain-words reason (not
//!   retried: the caller decides); a challenge is answered once with a new
//!   CSeq, the accepted credentials go with the next MESSAGE; Timer F
//!   (64·T1) ends it with 408.
//! - **NOTIFY**: matched to a dialog by Call-ID and both tags; anything else gets
//!   `481` and changes nothing ([`Event::NotifyRejected`]); always `200` for our
//!   dialogs, also when the body will not parse (bodies are handed up unparsed);
//!   CSeq may go backwards; retransmissions get the same answer (Timer J).
//! - **Transactions** (RFC 3261 §17, non-INVITE): Timers E, F, K, J; `Via` with
//!   `rport` (RFC 3581); `received`/`rport` of responses are learned and, with
//!   [`ContactAddress::Learned`], put into `Contact` (re-REGISTER on change).
//!   An [`AddressDiscovery`] (e.g. STUN from `stun-lite`) runs on the same socket.
//! - **Digest** (RFC 7616/8760): MD5, MD5-sess, SHA-256, SHA-256-sess,
//!   SHA-512-256(-sess); qop `auth`/`auth-int`; strongest challenge chosen; 401
//!   and 407; `stale=true` retried; a second challenge for the nonce just
//!   answered means a wrong password: reported, not looped.
//! - **Keep-alive**: CRLF ping every 30 s (RFC 5626); on TCP a missing pong
//!   closes and re-opens the connection, then everything is refreshed.
//!
//! # Why not `rsip`
//!
//! The design named `rsip` (0.4) for the message model. It could not carry what
//! PBXs send and what we need, so this crate has its own small model
//! (now the `sip-proto` crate, re-exported here as [`Message`]) and header
//! parsers instead:
//! - its tokenizer knows no compact header names (`i:`, `v:`, `f:`, `t:`, `m:`,
//!   `l:`, `c:`, `o:`, `u:`) and no folded lines, so every message would have to
//!   be rewritten before it is parsed (and re-parsed after);
//! - `Event`, `Subscription-State`, `Min-Expires` and `Retry-After` are untyped
//!   strings there, and its auth types have no `SHA-512-256`, default to SHA-256
//!   when `algorithm` is absent (RFC 7616 says MD5), keep one `qop` instead of
//!   the offered list, and have no nonce count;
//! - it has no size limits and no stream framing.
//!
//! What was left for `rsip` (start line and `name: value` splitting) is about a
//! hundred lines here, with limits (`sip_proto::message::MAX_MESSAGE_SIZE`,
//! `MAX_HEADERS`, `MAX_HEADER_LINE`) and a fuzz target
//! (`fuzz/fuzz_targets/sip_message.rs`). No `rsip` type appears in the API.
//!
//! # Example (sans-IO)
//!
//! ```
//! use std::time::Instant;
//! use sip_ua::{Event, Message, Subscription, UaConfig, UserAgent};
//!
//! let now = Instant::now();
//! let pbx = "192.0.2.10:5060".parse().unwrap();
//! let local = "192.0.2.20:5062".parse().unwrap();
//! let config = UaConfig::new("192.0.2.10", "blf", "secret");
//! let mut ua = UserAgent::new(config, pbx, local, vec![Subscription::dialog("1001")], now);
//! ua.handle_timeout(now);
//!
//! // The first REGISTER goes to the PBX.
//! let t = ua.poll_transmit().unwrap();
//! assert_eq!(t.destination, pbx);
//! let register = Message::parse(&t.payload).unwrap();
//! assert_eq!(register.method(), Some("REGISTER"));
//!
//! // The PBX accepts it for 300 s.
//! let via = register.headers.get("Via").unwrap();
//! let ok = format!(
//!     "SIP/2.0 200 OK\r\nVia: {via}\r\nFrom: {}\r\nTo: {};tag=x\r\nCall-ID: {}\r\n\
//!      CSeq: {}\r\nExpires: 300\r\nContent-Length: 0\r\n\r\n",
//!     register.headers.get("From").unwrap(),
//!     register.headers.get("To").unwrap(),
//!     register.call_id().unwrap(),
//!     register.headers.get("CSeq").unwrap(),
//! );
//! ua.handle_input(pbx, ok.as_bytes(), now);
//! assert!(matches!(ua.poll_event(), Some(Event::Registered { expires: 300, .. })));
//!
//! // Now the SUBSCRIBE for 1001 is due.
//! ua.handle_timeout(now);
//! let sub = Message::parse(&ua.poll_transmit().unwrap().payload).unwrap();
//! assert_eq!(sub.method(), Some("SUBSCRIBE"));
//! assert_eq!(sub.headers.get("Event"), Some("dialog"));
//! ```
//!
//! With the tokio driver:
//!
//! ```no_run
//! # #[cfg(feature = "tokio")]
//! # async fn run() -> Result<(), sip_ua::Error> {
//! use sip_ua::{driver, Event, Subscription, UaConfig};
//!
//! let config = UaConfig::new("pbx.example.com", "blf", "secret");
//! let (ua, mut events) = driver::spawn(config, vec![Subscription::dialog("1001")], None).await?;
//! while let Some(event) = events.recv().await {
//!     if let Event::Notify(n) = event {
//!         println!("{}: {}", n.user, String::from_utf8_lossy(&n.body));
//!     }
//! }
//! ua.shutdown().await?;
//! # Ok(()) }
//! ```

mod config;
mod discovery;
#[cfg(feature = "tokio")]
pub mod driver;
mod error;
mod tls;
mod ua;

// The protocol layer lives in `sip-proto`; these names keep the internal paths short.
use sip_proto::{digest, framing, headers, message, transaction};

pub use config::{
    ContactAddress, EventPackage, Password, Subscription, Transport, UaConfig,
    DEFAULT_EVENT_CAPACITY,
};
pub use discovery::{AddressDiscovery, DiscoveryTransmit};
pub use error::{ConfigError, Error, InvalidRequest, ParseError};
pub use sip_proto::{Message, SubState, SubscriptionState, TerminationReason, Timers};
pub use tls::{TlsConfig, TlsError};
pub use ua::{
    Event, MessageId, Notify, NotifyRejection, PublicationStatus, RegistrationStatus,
    SubscriptionPhase, SubscriptionStatus, Transmit, UaStatus, UserAgent, FINAL_NOTIFY_WAIT,
    MAX_MESSAGE_BODY,
};
