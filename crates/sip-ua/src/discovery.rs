//! Public-address discovery for the SIP socket (implemented by `stun-lite`).
//!
//! Behind NAT the PBX must send NOTIFYs to the address and port that the NAT gave
//! *the SIP socket itself*. A discoverer therefore runs on that socket: the user
//! agent hands it every datagram that is not SIP and sends the datagrams it asks
//! for, from the same socket. The trait is sans-IO, like the rest of this crate.

use std::net::SocketAddr;
use std::time::Instant;

/// A datagram that a discoverer wants sent from the SIP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DiscoveryTransmit {
    /// Where to send it (e.g. a STUN server).
    pub destination: SocketAddr,
    /// The bytes to send.
    pub payload: Vec<u8>,
}

/// Learns the public (server-reflexive) address of the SIP socket.
///
/// The user agent polls it like any other sans-IO state machine: it sends what
/// [`poll_transmit`](Self::poll_transmit) returns, offers every received datagram
/// to [`handle_datagram`](Self::handle_datagram) before parsing it as SIP, and
/// calls [`handle_timeout`](Self::handle_timeout) at [`poll_timeout`](Self::poll_timeout).
/// When [`public_addr`](Self::public_addr) changes, the user agent re-registers
/// with the new Contact.
pub trait AddressDiscovery: Send {
    /// The next datagram to send from the SIP socket, if any.
    fn poll_transmit(&mut self, now: Instant) -> Option<DiscoveryTransmit>;
    /// Offers a datagram received on the SIP socket. Returns `true` when it was
    /// the discoverer's (e.g. a STUN response) and must not be parsed as SIP.
    fn handle_datagram(&mut self, from: SocketAddr, data: &[u8], now: Instant) -> bool;
    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    fn poll_timeout(&self) -> Option<Instant>;
    /// Advances timers (retransmissions, periodic re-discovery).
    fn handle_timeout(&mut self, now: Instant);
    /// The public address of the SIP socket as last discovered, if any.
    fn public_addr(&self) -> Option<SocketAddr>;
}
