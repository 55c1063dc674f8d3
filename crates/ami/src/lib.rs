//! A sans-IO client core for the Asterisk Manager Interface (AMI).
//!
//! [`Client`] is a state machine with no socket and no clock inside: it takes
//! the bytes read from the TCP connection ([`Client::handle_input`]) and the
//! time ([`Client::handle_timeout`]), and hands back the bytes to write
//! ([`Client::poll_transmit`]), what happened ([`Client::poll_event`]) and when
//! to wake it up next ([`Client::poll_timeout`]), in the manner of
//! `quinn-proto` or `str0m`. Every timer is therefore testable in virtual time,
//! and any runtime can drive it.
//!
//! What it does:
//! - **Framing** ([`Decoder`], [`encode_action`]): the banner line `Asterisk Call Manager/x.y.z`,
//!   CRLF (or bare LF) lines, a blank line ends a message, `Key: Value` with
//!   repeated keys kept in order; limits on a line, a message and its fields
//!   ([`Limits`]) — a breach is a typed [`CodecError`] and closes the client,
//!   never a panic. Actions are encoded with their `ActionID`; line breaks or a
//!   line longer than Asterisk's 1024-byte buffer are refused.
//! - **Messages** ([`Message`]): ordered fields with case-insensitive lookup,
//!   classified into a [`Response`] (Success, Error, Goodbye) or an [`Event`].
//! - **Login**: MD5 challenge (`Action: Challenge`, then `Key =
//!   md5(challenge + secret)`, the default) or plain; the `Events:` mask from
//!   [`Config::events`]; a refusal is [`Error::LoginRefused`] with the server's
//!   `Message:`. The secret is never in a `Debug` output ([`Secret`]).
//! - **Actions**: [`Client::send_action`] returns the [`ActionId`]; the answer
//!   is matched by it. Lists (`EventList: start` ... `<Action>Complete`, e.g.
//!   `ExtensionStateList`, `DeviceStateList`, `DBGet`) are collected and
//!   delivered as one [`EventList`]; a list cut short by a time-out or the end
//!   of input is delivered incomplete, with the reason.
//! - **Keep-alive**: a `Ping` every [`Config::ping_interval`], whose answer
//!   must come within [`Config::ping_timeout`] ([`Error::PingTimeout`]).
//! - **Logoff**, and `FullyBooted` / `Shutdown` reported as their own
//!   [`ClientEvent`]s.
//!
//! - **States** ([`DeviceState`], [`ExtensionState`], [`Hint`]): device and extension (hint) states, hints,
//!   and Asterisk's aggregation of a hint's devices, for reading
//!   `ExtensionStatus` and `DeviceStateChange`.
//!
//! One [`Client`] serves one TCP connection: after [`ClientEvent::Closed`],
//! drop the connection and start a new client to reconnect.
//!
//! # Why not an existing crate
//!
//! The AMI crates on crates.io (`asterisk-rs-ami`, `asterisk-manager`,
//! `asterisk-ami`) are tokio clients: the socket, the clock, reconnection and
//! the login live inside async tasks, so their timers cannot be driven in
//! virtual time nor their state machine used without their runtime.
//! `asterisk-rs-ami` has a separate framing codec, but as a `tokio-util`
//! `Decoder` over `BytesMut` (pulling `tokio-util` and `bytes` into the core),
//! with a message-size cap and no line-length limit. The framing here is a few
//! hundred lines with its limits, tested on real Asterisk 22 transcripts
//! and fuzzed (`fuzz/fuzz_targets/ami_client.rs`).
//!
//! # Example
//!
//! ```
//! use std::time::{Duration, Instant};
//! use ami::{parse_message, Auth, Client, ClientEvent, Config};
//!
//! let now = Instant::now();
//! let mut config = Config::new("blf", "secret");
//! config.auth = Auth::Plain;
//! config.events = Some("system,call".into());
//! let mut client = Client::new(config);
//! client.handle_timeout(now); // connected: the login time-out starts
//!
//! // The server greets; the client logs in.
//! client.handle_input(b"Asterisk Call Manager/11.0.0\r\n", now);
//! assert_eq!(
//!     client.poll_event(),
//!     Some(ClientEvent::Connected { version: Some("11.0.0".into()) })
//! );
//! let login = parse_message(&client.poll_transmit().unwrap()).unwrap();
//! assert_eq!(login.get("Action"), Some("Login"));
//! assert_eq!(login.get("Events"), Some("system,call"));
//!
//! // The server accepts it.
//! let id = login.action_id().unwrap();
//! let ok = format!("Response: Success\r\nActionID: {id}\r\nMessage: Authentication accepted\r\n\r\n");
//! client.handle_input(ok.as_bytes(), now);
//! assert_eq!(client.poll_event(), Some(ClientEvent::Authenticated));
//!
//! // An event arrives.
//! client.handle_input(
//!     b"Event: ExtensionStatus\r\nPrivilege: call,all\r\nExten: 1001\r\n\
//!       Context: from-internal\r\nHint: PJSIP/1001\r\nStatus: 1\r\nStatusText: InUse\r\n\r\n",
//!     now,
//! );
//! let Some(ClientEvent::Event(event)) = client.poll_event() else { panic!() };
//! assert_eq!(event.name, "ExtensionStatus");
//! assert_eq!(event.get("statustext"), Some("InUse"));
//!
//! // Twenty seconds later a Ping is due.
//! let later = now + Duration::from_secs(20);
//! assert_eq!(client.poll_timeout(), Some(later));
//! client.handle_timeout(later);
//! let ping = parse_message(&client.poll_transmit().unwrap()).unwrap();
//! assert_eq!(ping.get("Action"), Some("Ping"));
//! ```
//!
//! A driver's loop, in outline: connect; `handle_timeout(now)`; then repeat —
//! write every `poll_transmit()`, handle every `poll_event()`, wait for
//! readable bytes or `poll_timeout()`, and call `handle_input` (or
//! `handle_eof` when the read returns 0) or `handle_timeout`; stop at
//! [`ClientEvent::Closed`].
//!
//! # The tokio driver
//!
//! With the feature `tokio` (on by default), `driver` runs that loop on a
//! TCP connection: `driver::spawn` connects, logs in, reconnects with
//! [`Backoff`] (1 s doubling to 30 s, back to 1 s after a login) and reports
//! `SessionEvent`s (`Connecting`, `LoggedIn`, `FullyBooted`, `Event`,
//! `Shutdown`, `Disconnected`, `Stopped`) on an unbounded channel, so that
//! reading the socket never waits for the application (Asterisk drops a
//! reader more than 100 ms behind). `driver::connect` logs in once, for
//! one-shot commands. An `AmiHandle` sends actions (`action`, `list`) and
//! stops the driver with a `Logoff`. The driver makes no protocol decision:
//! those stay in [`Client`]. See the module's docs for an example.

mod action;
mod backoff;
mod client;
mod codec;
mod config;
#[cfg(feature = "tokio")]
pub mod driver;
mod error;
mod message;
mod states;

pub use action::{Action, ActionId};
pub use backoff::Backoff;
pub use client::{Client, ClientEvent, EventList};
pub use codec::{
    encode_action, parse_message, Banner, CodecError, Decoder, EncodeError, Frame, Limits,
    BANNER_PREFIX, SERVER_MAX_HEADERS, SERVER_MAX_LINE,
};
pub use config::{Auth, Config, Secret};
pub use error::Error;
pub use message::{Event, Incoming, Message, Response, ResponseKind};
pub use states::{aggregate, channel_device, DeviceState, ExtensionState, Hint};

/// The README's examples run as doctests.
#[cfg(all(doctest, feature = "tokio"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
