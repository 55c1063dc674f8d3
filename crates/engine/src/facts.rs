//! What sources report: observations about an address they know.
//!
//! Sources never know people; the [`Directory`](crate::Directory) maps an
//! address to a person.

use std::fmt;
use std::str::FromStr;
use std::time::Instant;

use serde::{Deserialize, Serialize};

/// The state of one line, as the engine sees it.
///
/// Sources map their own states onto it (the SIP source maps BLF's line
/// state one to one). How a person's lines combine is
/// [`person_rank`](Self::person_rank).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LineState {
    /// No call: the line is free.
    Idle,
    /// An incoming call is alerting.
    Ringing,
    /// In a call, or placing one.
    Busy,
    /// Every call on the line is on hold.
    Hold,
    /// The device is not reachable (not registered, presence closed).
    Offline,
    /// Nothing usable is known (no report yet, subscription lost).
    Unknown,
}

impl LineState {
    /// Every state, in declaration order.
    pub const ALL: [LineState; 6] = [
        LineState::Idle,
        LineState::Ringing,
        LineState::Busy,
        LineState::Hold,
        LineState::Offline,
        LineState::Unknown,
    ];

    /// Lowercase name: `idle`, `ringing`, `busy`, `hold`, `offline`, `unknown`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Idle => "idle",
            Self::Ringing => "ringing",
            Self::Busy => "busy",
            Self::Hold => "hold",
            Self::Offline => "offline",
            Self::Unknown => "unknown",
        }
    }

    /// Rank used to combine a person's lines into one: higher wins.
    ///
    /// `Ringing (5) > Busy (4) > Hold (3) > Idle (2) > Offline (1) > Unknown (0)`.
    ///
    /// A call on any line says the most about the person. Unlike the
    /// aggregation of one line's dialogs (where `Offline` outranks `Idle`),
    /// an idle line that can take a call outranks a phone that is off: a
    /// person with a reachable free phone is reachable. `Offline` and
    /// `Unknown` show only when no line says more.
    pub fn person_rank(self) -> u8 {
        match self {
            Self::Ringing => 5,
            Self::Busy => 4,
            Self::Hold => 3,
            Self::Idle => 2,
            Self::Offline => 1,
            Self::Unknown => 0,
        }
    }

    /// Whether the state is a call (`Ringing`, `Busy` or `Hold`).
    pub fn is_call(self) -> bool {
        matches!(self, Self::Ringing | Self::Busy | Self::Hold)
    }
}

impl fmt::Display for LineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// The text was not one of the six line-state names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown line state {0:?}; expected one of idle, ringing, busy, hold, offline, unknown")]
pub struct UnknownLineState(pub String);

impl FromStr for LineState {
    type Err = UnknownLineState;

    /// Parses the lowercase name (case-insensitive, surrounding whitespace ignored).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        LineState::ALL
            .into_iter()
            .find(|state| state.as_str().eq_ignore_ascii_case(t))
            .ok_or_else(|| UnknownLineState(s.to_owned()))
    }
}

/// Which way a call goes, seen from the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The line was called.
    Inbound,
    /// The line placed the call.
    Outbound,
}

impl Direction {
    /// Lowercase name: `inbound`, `outbound`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Inbound => "inbound",
            Self::Outbound => "outbound",
        }
    }
}

/// The other party of a call, as far as the source knows it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Party {
    /// Number or URI user part (`+4930123`, `1002`).
    pub number: String,
    /// Display name, when the source has one.
    pub name: Option<String>,
}

/// One queue membership of an address (an agent in a call queue).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct QueueMember {
    /// The queue's name (`support`).
    pub queue: String,
    /// Paused: takes no calls from this queue.
    pub paused: bool,
    /// Why, when the PBX says (`PausedReason`, e.g. `lunch`).
    pub reason: Option<String>,
    /// In a call (from this queue or another).
    pub in_call: bool,
}

/// A person's presence as read back from Teams, in Graph's spelling
/// (`availability` `Busy`, `activity` `InACall`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct TeamsPresence {
    /// Base presence (`Available`, `Busy`, `DoNotDisturb`, `Away`, `Offline`...).
    pub availability: String,
    /// Its supplement (`Available`, `InACall`, `InAMeeting`, `Presenting`...).
    pub activity: String,
}

impl TeamsPresence {
    /// The presence `availability`/`activity`.
    pub fn new(availability: impl Into<String>, activity: impl Into<String>) -> Self {
        Self {
            availability: availability.into(),
            activity: activity.into(),
        }
    }
}

impl fmt::Display for TeamsPresence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.availability, self.activity)
    }
}

/// One thing a source knows about an address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum Fact {
    /// The line's state, with the other party and the direction where known.
    Line {
        /// The state.
        state: LineState,
        /// The other party of the call shown by `state`, if known.
        counterparty: Option<Party>,
        /// The call's direction, if known.
        direction: Option<Direction>,
    },
    /// Do-not-disturb is on (`true`) or off.
    Dnd(bool),
    /// The device is registered (`true`) or not.
    Registration(bool),
    /// Every queue the address is a member of (replaces what was known;
    /// empty: none).
    Queues(Vec<QueueMember>),
    /// The presence Teams shows for the person behind this address (read,
    /// not set by us).
    Presence(TeamsPresence),
}

impl Fact {
    /// A line state with no other party or direction.
    pub fn line(state: LineState) -> Self {
        Self::Line {
            state,
            counterparty: None,
            direction: None,
        }
    }
}

/// An address on a system: extension `1001` on `pbx-a`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct AddressKey {
    /// The system's name as the source reports it (`pbx-a`).
    pub system: String,
    /// The address on that system (`1001`).
    pub address: String,
}

impl AddressKey {
    /// The key of `address` on `system`.
    pub fn new(system: impl Into<String>, address: impl Into<String>) -> Self {
        Self {
            system: system.into(),
            address: address.into(),
        }
    }
}

impl fmt::Display for AddressKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.system, self.address)
    }
}

/// A fact from a source about an address it knows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Observation {
    /// The system the source reports for (`pbx-a`).
    pub system: String,
    /// The address on it (`1001`).
    pub address: String,
    /// What is known.
    pub fact: Fact,
    /// When the source learnt it (start of the source→sink latency).
    pub at: Instant,
}

impl Observation {
    /// An observation of `fact` about `address` on `system` at `at`.
    pub fn new(
        system: impl Into<String>,
        address: impl Into<String>,
        fact: Fact,
        at: Instant,
    ) -> Self {
        Self {
            system: system.into(),
            address: address.into(),
            fact,
            at,
        }
    }

    /// The observed address as a key.
    pub fn key(&self) -> AddressKey {
        AddressKey::new(self.system.clone(), self.address.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for state in LineState::ALL {
            assert_eq!(state.as_str().parse::<LineState>(), Ok(state));
            assert_eq!(state.to_string(), state.as_str());
        }
        assert_eq!(" BUSY ".parse::<LineState>(), Ok(LineState::Busy));
        assert!("talking".parse::<LineState>().is_err());
    }

    #[test]
    fn person_rank_is_ringing_busy_hold_idle_offline_unknown() {
        use LineState::*;
        let order = [Ringing, Busy, Hold, Idle, Offline, Unknown];
        for pair in order.windows(2) {
            assert!(pair[0].person_rank() > pair[1].person_rank(), "{pair:?}");
        }
    }
}
