//! A small sans-IO STUN Binding client.
//!
//! Will hold: RFC 8489 Binding requests and responses with retransmission timing, usable on a socket shared with SIP.
