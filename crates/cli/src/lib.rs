//! The `sip-blf-sync` service and its one-shot commands.
//!
//! This library is the binary's inside, exposed for its integration tests and
//! benchmarks; the reusable pieces are the `blf`, `sip-ua`, `graph-presence` and
//! `stun-lite` crates.
//!
//! One module per command: [`run`] (the service), [`demo`] (the service
//! between an embedded PBX and Graph), [`check`] (the whole chain once, one
//! table with the fix for each failure), [`watch`], [`graph_cmd`] and
//! [`test_notify`].

pub mod action_url;
pub mod ami_cmd;
pub mod ami_source;
pub mod background;
pub mod check;
pub mod dashboard;
pub mod database;
#[cfg(feature = "demo")]
pub mod demo;
pub mod dotenv;
pub mod engine;
pub mod extensions;
pub mod graph_cmd;
pub mod ha;
mod http_error;
pub mod mattermost;
pub mod observe;
pub mod people;
pub mod problems;
pub mod run;
pub mod settings;
pub mod signals;
pub mod sip_message;
pub mod sip_source;
pub mod sip_tls;
pub mod teams_source;
pub mod teams_to_pbx;
pub mod test_notify;
pub mod watch;
pub mod webhook;
