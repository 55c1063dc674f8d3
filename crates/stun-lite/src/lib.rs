//! A small sans-IO STUN (RFC 8489) Binding client that runs on the SIP socket.
//!
//! Behind NAT, the PBX must send NOTIFYs to the public address and port that the
//! NAT gave *the SIP socket*. A STUN query from another socket learns another
//! mapping (another port, with a symmetric NAT even another IP), and the
//! NOTIFYs are lost. So the [`BindingClient`] is sans-IO: the SIP driver sends its
//! requests from the SIP socket and offers it every datagram; STUN and SIP are
//! told apart by [`is_stun`] (first two bits zero and the magic cookie; SIP
//! starts with a letter).
//!
//! - [`BindingClient`]: random transaction ids, RFC 8489 §6.2.1 retransmissions
//!   (RTO 500 ms doubling, 7 requests, last wait 16 × RTO), several servers in
//!   order, periodic re-discovery with a [`Event::Changed`] event when the mapping
//!   changes.
//! - [`decode_response`]: validates a response (header, class, Binding method,
//!   `FINGERPRINT` when present) and takes `XOR-MAPPED-ADDRESS`, falling back to
//!   `MAPPED-ADDRESS`; IPv4 and IPv6. Never panics.
//! - Feature `tokio` (default): [`query`], [`query_on`], [`query_on_with`],
//!   [`resolve_servers`].
//! - Feature `sip-ua`: `BindingClient` implements
//!   `sip_ua::AddressDiscovery`.
//!
//! The wire format is `stun_codec`'s; its error types stay inside this crate.
//! Written here rather than taken from a crate: the cheap header checks that
//! demultiplex a shared socket before anything is decoded, telling a
//! `FINGERPRINT` mismatch from other broken attributes (`stun_codec` reports
//! both alike, so the message is decoded again without the `FINGERPRINT`), and
//! the `host[:port]` list parser (`SocketAddr` parsing takes neither host names
//! nor a default port).
//!
//! # Example
//!
//! The sans-IO client with virtual time: a request, a lost answer, the
//! retransmission 500 ms later, and the answer.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use stun_lite::{BindingClient, ClientConfig, Discovery, Event, Handled};
//!
//! let server = "192.0.2.1:3478".parse()?;
//! let t0 = Instant::now();
//! let mut client = BindingClient::new(vec![server], ClientConfig::default(), t0);
//!
//! let first = client.poll_transmit(t0).expect("a Binding request");
//! assert_eq!(first.destination, server);
//! assert!(stun_lite::is_stun(&first.payload));
//!
//! // No answer: the same request again after RTO.
//! assert_eq!(client.poll_timeout(), Some(t0 + Duration::from_millis(500)));
//! let again = client.poll_transmit(t0 + Duration::from_millis(500)).expect("retransmission");
//! assert_eq!(again.payload, first.payload);
//!
//! // SIP on the same socket is not STUN's business.
//! let sip = b"SIP/2.0 200 OK\r\nContent-Length: 0\r\n\r\n";
//! assert_eq!(client.handle_datagram(server, sip, t0), Handled::NotStun);
//! // The server's answer: a Binding success response with the same transaction
//! // id and XOR-MAPPED-ADDRESS 203.0.113.1:40000 (XORed with the magic cookie).
//! let mut answer = vec![0x01, 0x01, 0x00, 0x0c, 0x21, 0x12, 0xa4, 0x42];
//! answer.extend_from_slice(&again.payload[8..20]);
//! answer.extend_from_slice(&[0x00, 0x20, 0x00, 0x08, 0x00, 0x01]);
//! answer.extend_from_slice(&(40000u16 ^ 0x2112).to_be_bytes());
//! answer.extend([203u8, 0, 113, 1].iter().zip(stun_lite::MAGIC_COOKIE.to_be_bytes()).map(|(a, c)| a ^ c));
//!
//! let now = t0 + Duration::from_millis(600);
//! let public = "203.0.113.1:40000".parse()?;
//! assert_eq!(client.handle_datagram(server, &answer, now), Handled::Mapped(public));
//! assert_eq!(client.poll_event(), Some(Event::Discovered(Discovery { public, server })));
//! // Re-discovery in 60 s (configurable).
//! assert_eq!(client.poll_timeout(), Some(now + Duration::from_secs(60)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! With tokio, a one-shot query (`sip-blf-sync stun`):
//!
//! ```no_run
//! # async fn f() -> Result<(), stun_lite::StunError> {
//! let found = stun_lite::query(&["stun.example.com", "127.0.0.1:3478"], std::time::Duration::from_secs(5)).await?;
//! println!("{} (from {})", found.public, found.server);
//! # Ok(()) }
//! ```

mod client;
#[cfg(feature = "sip-ua")]
mod discovery;
mod error;
mod message;
#[cfg(feature = "tokio")]
mod query;
mod server;

pub use client::{BindingClient, ClientConfig, Discovery, Event, Handled, Ignored, Transmit};
pub use error::{Failure, StunError};
pub use message::{
    binding_request, decode_response, is_stun, BindingResponse, DecodeError, TransactionId,
    MAGIC_COOKIE, MAX_MESSAGE_LEN,
};
#[cfg(feature = "tokio")]
pub use query::{query, query_on, query_on_with, resolve_servers};
pub use server::{parse_server_list, servers_for_socket, ServerSpec, DEFAULT_PORT};

/// The README's examples, compiled and run as doc tests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
