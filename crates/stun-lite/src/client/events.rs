//! What the client sends and reports.

use std::net::SocketAddr;

use crate::error::Failure;

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The STUN server.
    pub destination: SocketAddr,
    /// A Binding request.
    pub payload: Vec<u8>,
}

/// The public address of a socket and the server that reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discovery {
    /// The server-reflexive address: what the NAT gave the socket.
    pub public: SocketAddr,
    /// The STUN server that answered.
    pub server: SocketAddr,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The first mapped address.
    Discovered(Discovery),
    /// Re-discovery found another mapping (NAT rebinding, new public IP): the
    /// user agent must re-register with the new Contact.
    Changed {
        /// The address reported before.
        old: SocketAddr,
        /// The address reported now.
        new: SocketAddr,
        /// The STUN server that reported it.
        server: SocketAddr,
    },
    /// A round ended without an answer from any server; one entry per server,
    /// in the order tried. The last known address (if any) is kept.
    Failed {
        /// Why each server failed.
        failures: Vec<Failure>,
    },
}
