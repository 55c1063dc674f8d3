//! Asterisk's manager interface (AMI) as a source of line state
//! (`SOURCES=ami`): one TCP connection for every extension, no SIP account.
//! The sans-IO part is [`AmiTracker`]; the table of how Asterisk's states map
//! to line states, and how DND is told apart from a call, is on its module.

pub mod dnd;
mod precedence;
mod settings;
mod source;
mod tracker;

pub use precedence::DeferToAmi;
pub use settings::{with_default_port, AmiSettings, DEFAULT_AMI_PORT};
pub use source::{read_dnd_flags, read_full_state, report_status, AmiSource, AmiStatus, FullState};
pub use tracker::{line_state, AmiNotice, AmiTracker, DndScheme, Lists};
