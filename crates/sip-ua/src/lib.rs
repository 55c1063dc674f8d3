//! A sans-IO SIP user agent for REGISTER and BLF subscriptions.
//!
//! Will hold: SIP message parsing, non-INVITE transactions, digest authentication
//! (RFC 7616/8760), registration and dialog-event subscriptions (RFC 6665), and a
//! thin tokio driver.

pub mod discovery;
