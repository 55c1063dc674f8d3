//! The Mattermost sink (`SINKS=…,mattermost`): while a person is on the
//! phone their Mattermost status (default `dnd`) and custom status (default
//! "On the phone") show it; afterwards what they had before comes back,
//! unless they changed it themselves during the call. Optionally a post per
//! change in a channel, and the `/sip-status` slash command.
//!
//! - [`settings`]: `MATTERMOST_*` read and checked;
//! - [`client`]: the REST API v4 calls, with its rate limit honoured;
//! - [`restore`]: what to put back at the end of a call (sans-IO);
//! - [`sink`]: the [`sip_blf_engine::Sink`], with what it saved kept beside
//!   the state file so that a restart mid-call still restores;
//! - [`command`]: the `/sip-status` slash command's endpoint.

pub mod client;
pub mod command;
pub mod restore;
pub mod settings;
pub mod sink;

pub use settings::{MattermostSettings, PostOn};
pub use sink::MattermostSink;
