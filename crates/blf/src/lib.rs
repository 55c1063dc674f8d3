//! Turn BLF NOTIFY bodies into one line state you can trust.
//!
//! Parses `application/dialog-info+xml` (RFC 4235) and `application/pidf+xml` (RFC 3863 with
//! RPID, RFC 4480), aggregates every dialog into one [`LineState`] and tracks versions per
//! subscription ([`Tracker`]). The crate is sans-IO: bytes in, values out. What a line state
//! means for someone's presence is the consumer's business: sip-blf-sync's Teams sink keeps
//! its mapping from line states to Teams presence itself.
//!
//! ```
//! use blf::{LineState, Notification};
//!
//! let body = br#"<?xml version="1.0"?>
//! <dialog-info xmlns="urn:ietf:params:xml:ns:dialog-info" version="4" state="full" entity="sip:1001@pbx">
//!   <dialog id="padi-1" call-id="c1" direction="initiator"><state>confirmed</state></dialog>
//! </dialog-info>"#;
//! let n = Notification::parse(Some("application/dialog-info+xml; charset=utf-8"), body)?;
//! assert_eq!(n.line_state(), LineState::Busy);
//! # Ok::<(), blf::ParseError>(())
//! ```
//!
//! # Aggregation rule
//!
//! Each `<dialog>` contributes one state (state text trimmed and compared ignoring case,
//! since Kamailio sends `Trying`):
//!
//! | dialog | contributes |
//! | --- | --- |
//! | `terminated` | nothing |
//! | any other state with `+sip.rendering=no` on the **local** target | `Hold` (FreeSWITCH sends held calls as `early`) |
//! | `confirmed` | `Busy` |
//! | `early` / `proceeding`, `direction="initiator"` (outgoing call) | `Busy` |
//! | `early` / `proceeding`, otherwise | `Ringing` |
//! | `trying`, `direction="recipient"` | `Ringing` |
//! | `trying`, otherwise | `Busy` |
//! | unknown or missing state text | `Unknown` |
//!
//! The line takes the highest contribution, `Ringing > Busy > Hold > Unknown > Idle`
//! (`Offline` sits between `Hold` and `Unknown`; only PIDF produces it). No dialogs, or only
//! terminated ones, is `Idle`.
//!
//! PIDF: an RPID `on-the-phone`/`busy` activity is `Busy` (`Ringing`/`Hold` when Asterisk's
//! note says `Ringing`/`On hold`; Asterisk marks in-use lines `closed`, so the activity wins);
//! otherwise a tuple `open` is `Idle`, `closed` is `Offline`, and nothing usable is `Unknown`.
//!
//! The other way round, [`PresenceDocument`] writes a PIDF document (entity, `open`/`closed`,
//! RPID activities, a note) for a presence publisher (SIP PUBLISH, RFC 3903); what it writes
//! reads back through [`Pidf::parse`] to the same line state.
//!
//! # Dialog and presence together
//!
//! Over the dialog event a phone that is not registered looks idle (Asterisk sends the same
//! `terminated` body); only presence (`closed`) says offline. For a line watched through both,
//! [`LineState::from_dialog_and_presence`] takes the dialog state for a call (`Ringing`, `Busy`,
//! `Hold`), `Offline` for a dialog-idle line whose presence is `closed`, `Idle` otherwise, and
//! the presence state while no dialog state is known.
//!
//! # Empty bodies: `Unknown` or idle?
//!
//! A body-less NOTIFY carries no document, so on its own it says nothing:
//! [`Notification::parse`] returns [`Notification::Empty`], whose `line_state()` is
//! `Unknown`. But Kamailio's presence server sends exactly such a NOTIFY (no Content-Type,
//! `Content-Length: 0`) when the extension has **no dialogs**: the initial NOTIFY and the one
//! after a call's `terminated` state expires. The subscription context decides, so the
//! [`Tracker`] reads it per [`EmptyBody`]: by default [`EmptyBody::NoDialogs`] (idle, known
//! dialogs dropped), or [`EmptyBody::Unknown`] for the strict reading.
//!
//! # Robustness
//!
//! Bodies are untrusted network input: no input panics. Bodies over
//! [`Limits::max_body_size`] (64 KiB by default), invalid UTF-8, malformed or truncated XML
//! and nesting deeper than [`Limits::max_depth`] give a [`ParseError`] with the 1-based line
//! and column. Elements and namespaces we do not know are skipped; elements are matched by
//! namespace, not prefix (`ns0:dialog-info`, a default namespace, or no namespace at all
//! all work). A stray `&` as FreeSWITCH writes in caller names
//! (`display="Smith & Sons"`) is kept verbatim so the states are still read.
//!
//! XML is read with quick-xml's namespace-aware `NsReader`; only the small tree walk over
//! the few elements we need is written here.

mod dialog_info;
mod error;
mod notification;
mod pidf;
mod state;
mod tracker;
mod xml;

pub use dialog_info::{
    aggregate, Dialog, DialogInfo, DialogState, Direction, DocState, Participant,
};
pub use error::{
    line_column, Limits, ParseError, ParseErrorKind, DEFAULT_MAX_BODY_SIZE, DEFAULT_MAX_DEPTH,
};
pub use notification::{Notification, CONTENT_TYPE_DIALOG_INFO, CONTENT_TYPE_PIDF};
pub use pidf::{Basic, Pidf, PresenceDocument, Tuple};
pub use state::{LineState, UnknownLineState};
pub use tracker::{EmptyBody, Tracker, TrackerEvent, TrackerUpdate};

/// The README's example is compiled and run as a doc test.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
