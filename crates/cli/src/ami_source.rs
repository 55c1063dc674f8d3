//! Asterisk's manager interface (AMI) as a source of line state
//! (`SOURCES=ami`): one TCP connection for every extension, no SIP account.
//! The sans-IO part is [`AmiTracker`]; the table of how Asterisk's states map
//! to line states, and how DND is told apart from a call, is on its module.

mod tracker;

pub use tracker::{line_state, AmiNotice, AmiTracker, DndScheme};
