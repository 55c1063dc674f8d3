//! The `sip-blf-sync` service and its one-shot commands.
//!
//! This library is the binary's inside, exposed for its integration tests and
//! benchmarks; the reusable pieces are the `blf`, `sip-ua`, `graph-presence` and
//! `stun-lite` crates.

pub mod extensions;
pub mod problems;
pub mod settings;
pub mod test_notify;
