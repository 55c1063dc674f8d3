//! The aggregated state of one monitored line.

use std::fmt;
use std::str::FromStr;

/// The state of one line (extension), aggregated from every dialog of a NOTIFY body.
///
/// When several dialogs are present the line takes the state with the highest
/// [`precedence`](LineState::precedence): `Ringing > Busy > Hold > Offline > Unknown > Idle`.
///
/// More states may come in a minor release: a `match` outside this crate needs a
/// wildcard arm (treating a state it does not know like [`LineState::Unknown`] is the
/// safe reading).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum LineState {
    /// No live dialog: the line is free.
    Idle,
    /// An incoming call is alerting.
    Ringing,
    /// In a call (confirmed), or placing an outgoing call.
    Busy,
    /// Every live call is on hold (`+sip.rendering=no` on the local target).
    Hold,
    /// The device is not reachable (PIDF `closed`).
    Offline,
    /// The body says nothing usable (empty body, unknown dialog state).
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

    /// Rank used to combine dialogs: higher wins.
    /// `Ringing (5) > Busy (4) > Hold (3) > Offline (2) > Unknown (1) > Idle (0)`.
    ///
    /// `Offline` only comes from PIDF, never from a dialog; it ranks above `Unknown` because
    /// it is a definite statement about the line.
    pub fn precedence(self) -> u8 {
        match self {
            Self::Ringing => 5,
            Self::Busy => 4,
            Self::Hold => 3,
            Self::Offline => 2,
            Self::Unknown => 1,
            Self::Idle => 0,
        }
    }

    /// The state of higher [`precedence`](Self::precedence) of `self` and `other`.
    #[must_use]
    pub fn combine(self, other: LineState) -> LineState {
        if other.precedence() > self.precedence() {
            other
        } else {
            self
        }
    }

    /// The state of a line watched through both the dialog event (BLF) and the
    /// presence event (PIDF). Over the dialog event a phone that is not
    /// registered looks idle (Asterisk sends the same `terminated` body), so:
    /// - a call in the dialog state (`Ringing`, `Busy`, `Hold`) wins;
    /// - a dialog-idle line is `Offline` when presence says `closed`, else `Idle`
    ///   (presence's own busy/ringing is not trusted over the dialog event);
    /// - while the dialog state is `Unknown` (no NOTIFY yet), presence stands.
    #[must_use]
    pub fn from_dialog_and_presence(dialog: LineState, presence: LineState) -> LineState {
        match dialog {
            Self::Idle if presence == Self::Offline => Self::Offline,
            Self::Unknown => presence,
            other => other,
        }
    }

    /// Combines many states; an empty iterator gives `Idle` (no dialogs = idle line).
    pub fn aggregate<I: IntoIterator<Item = LineState>>(states: I) -> LineState {
        states.into_iter().fold(LineState::Idle, LineState::combine)
    }
}

impl fmt::Display for LineState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of the line-state names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown line state {0:?}; expected one of idle, ringing, busy, hold, offline, unknown")]
pub struct UnknownLineState(String);

impl UnknownLineState {
    /// The text that was refused.
    pub fn input(&self) -> &str {
        &self.0
    }
}

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
    fn precedence_is_ringing_busy_hold_offline_unknown_idle() {
        use LineState::*;
        let order = [Ringing, Busy, Hold, Offline, Unknown, Idle];
        for (i, high) in order.iter().enumerate() {
            for low in &order[i..] {
                assert_eq!(high.combine(*low), *high, "{high} vs {low}");
                assert_eq!(low.combine(*high), *high, "{low} vs {high}");
            }
        }
        assert_eq!(LineState::aggregate([]), Idle);
        assert_eq!(LineState::aggregate([Hold, Busy, Unknown]), Busy);
    }

    #[test]
    fn dialog_and_presence_combine_offline_over_idle_and_calls_over_all() {
        use LineState::*;
        let both = LineState::from_dialog_and_presence;
        // An unplugged phone: idle over dialog, closed over presence.
        assert_eq!(both(Idle, Offline), Offline);
        assert_eq!(both(Idle, Idle), Idle);
        // Presence's own activity does not override an idle dialog state.
        assert_eq!(both(Idle, Busy), Idle);
        assert_eq!(both(Idle, Unknown), Idle);
        for call in [Ringing, Busy, Hold] {
            for presence in LineState::ALL {
                assert_eq!(both(call, presence), call, "{call} + {presence}");
            }
        }
        // No dialog NOTIFY yet: what presence says.
        for presence in LineState::ALL {
            assert_eq!(both(Unknown, presence), presence);
        }
    }

    #[test]
    fn serde_uses_lowercase_names() {
        assert_eq!(
            serde_json::to_string(&LineState::Ringing).unwrap(),
            "\"ringing\""
        );
        let back: LineState = serde_json::from_str("\"hold\"").unwrap();
        assert_eq!(back, LineState::Hold);
    }
}
