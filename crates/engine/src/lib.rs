//! The sync core of sip-blf-sync as a library: observations from sources,
//! each person's combined view, and one coalescing lane per sink.
//!
//! The data path: a [`Source`] reports an [`Observation`] about an address
//! it knows (extension `1001` on `pbx-a`: a [`Fact`]); the [`Directory`]
//! names the person behind the address; [`Views`] combines all of that
//! person's addresses into one [`View`] (the rule is on [`View`]; each
//! address is also in it on its own, as a [`LineView`]); each
//! [`Sink`] turns a view into what it wants to hold ([`Sink::desired`]) and
//! its [`Lane`] writes it, coalesced per person, one write in flight per
//! person, with retries and backoff, replaying every person's view when the
//! sink starts, reconnects or (with [`LaneConfig::refresh`]) periodically.
//! [`Views`] and [`Lane`] are sans-IO
//! (time comes in as arguments); [`Runtime`] drives them with tokio.
//!
//! ```
//! use std::time::Instant;
//! use sip_blf_engine::{Directory, Fact, Lane, LaneConfig, LineState, Observation, Observed, Views};
//!
//! // One person on two phones.
//! let mut directory = Directory::new();
//! directory.add("pbx-a", "1001", "alice@contoso.com")?;
//! directory.add("pbx-a", "1002", "alice@contoso.com")?;
//! let mut views = Views::new(directory);
//! let mut lane: Lane<LineState> = Lane::new(LaneConfig::default());
//! let t0 = Instant::now();
//!
//! let mut written = Vec::new();
//! for (address, state) in [("1001", LineState::Busy), ("1002", LineState::Busy),
//!                          ("1001", LineState::Idle), ("1002", LineState::Idle)] {
//!     let seen = views.observe(&Observation::new("pbx-a", address, Fact::line(state), t0));
//!     if let Observed::Changed(view) = seen {
//!         // This sink holds the line state only.
//!         lane.handle_view(&view.person, Some(view.line), t0);
//!     }
//!     while let Some(batch) = lane.poll_write(t0) {
//!         for write in batch {
//!             written.push(write.held);
//!             lane.write_finished(&write.person, Ok(()), t0);
//!         }
//!     }
//! }
//! // Busy until both calls end: one write per change.
//! assert_eq!(written, [LineState::Busy, LineState::Idle]);
//! # Ok::<(), sip_blf_engine::DirectoryError>(())
//! ```

mod facts;
mod feed;
mod lane;
mod mailbox;
mod runtime;
mod sink;
mod view;

pub use facts::{
    AddressKey, Direction, Fact, LineState, Observation, Party, QueueMember, TeamsPresence,
    UnknownLineState,
};
pub use feed::{FedView, FeedReport, ViewFeed};
pub use lane::{Lane, LaneConfig, Write, WriteReason};
pub use runtime::{
    ChannelSource, Runtime, RuntimeConfig, RuntimeError, SinkBoard, SinkStatus, Source,
};
pub use sink::{Sink, SinkError};
pub use view::{Directory, DirectoryError, LineView, Observed, PersonId, View, Views};
