//! The five availability/activity pairs as a value to configure and report.

use std::fmt;

use crate::types::PresenceState;

/// One of the five availability/activity pairs Microsoft Graph accepts for
/// `setPresence` (application presence sessions). Nothing else can be expressed.
///
/// The same five pairs as [`PresenceState`], which is what the client's calls take;
/// the two convert into each other with [`From`]. `PresencePair` is the form a
/// configuration names and a report shows: it parses leniently ([`from_parts`](Self::from_parts)
/// trims and returns `None` instead of an error) and serialises as its variant name
/// (`"BusyInACall"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
pub enum PresencePair {
    /// `Available` / `Available`.
    AvailableAvailable,
    /// `Busy` / `InACall`.
    BusyInACall,
    /// `Busy` / `InAConferenceCall`.
    BusyInAConferenceCall,
    /// `Away` / `Away`.
    AwayAway,
    /// `DoNotDisturb` / `Presenting`.
    DoNotDisturbPresenting,
}

impl PresencePair {
    /// All five pairs.
    pub const ALL: [PresencePair; 5] = [
        PresencePair::AvailableAvailable,
        PresencePair::BusyInACall,
        PresencePair::BusyInAConferenceCall,
        PresencePair::AwayAway,
        PresencePair::DoNotDisturbPresenting,
    ];

    /// Graph `availability` value.
    pub fn availability(self) -> &'static str {
        match self {
            Self::AvailableAvailable => "Available",
            Self::BusyInACall | Self::BusyInAConferenceCall => "Busy",
            Self::AwayAway => "Away",
            Self::DoNotDisturbPresenting => "DoNotDisturb",
        }
    }

    /// Graph `activity` value.
    pub fn activity(self) -> &'static str {
        match self {
            Self::AvailableAvailable => "Available",
            Self::BusyInACall => "InACall",
            Self::BusyInAConferenceCall => "InAConferenceCall",
            Self::AwayAway => "Away",
            Self::DoNotDisturbPresenting => "Presenting",
        }
    }

    /// The pair with these Graph values (exact spelling, ignoring ASCII case).
    pub fn from_parts(availability: &str, activity: &str) -> Option<PresencePair> {
        Self::ALL.into_iter().find(|p| {
            p.availability().eq_ignore_ascii_case(availability.trim())
                && p.activity().eq_ignore_ascii_case(activity.trim())
        })
    }
}

impl fmt::Display for PresencePair {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.availability(), self.activity())
    }
}

impl From<PresencePair> for PresenceState {
    fn from(pair: PresencePair) -> Self {
        match pair {
            PresencePair::AvailableAvailable => PresenceState::Available,
            PresencePair::BusyInACall => PresenceState::BusyInACall,
            PresencePair::BusyInAConferenceCall => PresenceState::BusyInAConferenceCall,
            PresencePair::AwayAway => PresenceState::Away,
            PresencePair::DoNotDisturbPresenting => PresenceState::DoNotDisturbPresenting,
        }
    }
}

impl From<PresenceState> for PresencePair {
    fn from(state: PresenceState) -> Self {
        match state {
            PresenceState::Available => PresencePair::AvailableAvailable,
            PresenceState::BusyInACall => PresencePair::BusyInACall,
            PresenceState::BusyInAConferenceCall => PresencePair::BusyInAConferenceCall,
            PresenceState::Away => PresencePair::AwayAway,
            PresenceState::DoNotDisturbPresenting => PresencePair::DoNotDisturbPresenting,
        }
    }
}
