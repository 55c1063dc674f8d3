//! The Teams sink's mapping: from a line state (and the PBX's do-not-disturb)
//! to what to do with the user's Teams presence ([`Mapping`]), loaded from
//! TOML (`MAPPING_FILE`, an extension's `mapping`, `test-notify --mapping`).

use std::fmt;
use std::path::Path;

use blf::LineState;
use graph_presence::PresenceState;
use serde::Deserialize;
use toml::Spanned;

/// What to do with the user's presence for a line state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(tag = "action", content = "pair", rename_all = "lowercase")]
pub enum PresenceAction {
    /// Set our presence session to this pair (serialised as `"Busy/InACall"`).
    Set(#[serde(serialize_with = "pair_text")] PresenceState),
    /// Drop our presence session so the user's own status shows again.
    Clear,
    /// Change nothing.
    Keep,
}

fn pair_text<S: serde::Serializer>(pair: &PresenceState, s: S) -> Result<S::Ok, S::Error> {
    s.collect_str(pair)
}

impl fmt::Display for PresenceAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Set(p) => p.fmt(f),
            Self::Clear => f.write_str("clear"),
            Self::Keep => f.write_str("keep"),
        }
    }
}

impl PresenceAction {
    /// Parses `"Availability/Activity"`, `"clear"` or `"keep"`.
    pub fn parse(text: &str) -> Option<PresenceAction> {
        let t = text.trim();
        if t.eq_ignore_ascii_case("clear") {
            return Some(Self::Clear);
        }
        if t.eq_ignore_ascii_case("keep") {
            return Some(Self::Keep);
        }
        let (availability, activity) = t.split_once('/')?;
        PresenceState::from_pair(availability, activity)
            .ok()
            .map(Self::Set)
    }
}

/// Line state → presence action, for every line state, and the action
/// while the PBX's do-not-disturb is on.
///
/// While DND is on, [`dnd`](Self::dnd) applies whatever the line state (the
/// user asked not to be disturbed, in a call or not); `dnd = "keep"` ignores
/// DND, and the line state's action applies ([`Mapping::action_for`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Mapping {
    /// Action for [`LineState::Idle`].
    pub idle: PresenceAction,
    /// Action for [`LineState::Ringing`].
    pub ringing: PresenceAction,
    /// Action for [`LineState::Busy`].
    pub busy: PresenceAction,
    /// Action for [`LineState::Hold`].
    pub hold: PresenceAction,
    /// Action for [`LineState::Offline`].
    pub offline: PresenceAction,
    /// Action for [`LineState::Unknown`].
    pub unknown: PresenceAction,
    /// Action while the PBX's do-not-disturb is on, whatever the line state;
    /// [`PresenceAction::Keep`] ignores DND.
    pub dnd: PresenceAction,
}

impl Default for Mapping {
    /// busy, hold → `Busy/InACall`; idle, offline → clear; ringing, unknown →
    /// keep; DND on → `DoNotDisturb/Presenting`.
    fn default() -> Self {
        Self {
            idle: PresenceAction::Clear,
            ringing: PresenceAction::Keep,
            busy: PresenceAction::Set(PresenceState::BusyInACall),
            hold: PresenceAction::Set(PresenceState::BusyInACall),
            offline: PresenceAction::Clear,
            unknown: PresenceAction::Keep,
            dnd: PresenceAction::Set(PresenceState::DoNotDisturbPresenting),
        }
    }
}

/// A mapping file was refused.
#[derive(Debug, thiserror::Error)]
pub enum MappingError {
    /// The file could not be read.
    #[error("cannot read mapping file {path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// The file content is invalid.
    #[error("mapping {origin}line {line}, column {column}: {message}")]
    Invalid {
        /// `"file <path> "` or empty for a string.
        origin: String,
        /// 1-based line.
        line: u32,
        /// 1-based column.
        column: u32,
        /// What is wrong, with the valid values.
        message: String,
    },
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct MappingFile {
    idle: Option<Spanned<String>>,
    ringing: Option<Spanned<String>>,
    busy: Option<Spanned<String>>,
    hold: Option<Spanned<String>>,
    offline: Option<Spanned<String>>,
    unknown: Option<Spanned<String>>,
    dnd: Option<Spanned<String>>,
    /// Teams → PBX's rules, read by [`crate::teams_to_pbx::TeamsRules`].
    #[allow(dead_code)]
    teams_to_pbx: Option<toml::Table>,
}

/// The valid values of a mapping entry: the five pairs, `clear` and `keep`.
pub fn valid_values() -> impl Iterator<Item = PresenceAction> {
    PresenceState::ALL
        .into_iter()
        .map(PresenceAction::Set)
        .chain([PresenceAction::Clear, PresenceAction::Keep])
}

/// [`valid_values`] quoted and listed, for error messages.
fn valid_values_text() -> String {
    valid_values()
        .map(|v| format!("\"{v}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Mapping {
    /// The action for a line state.
    pub fn action(&self, state: LineState) -> PresenceAction {
        match state {
            LineState::Idle => self.idle,
            LineState::Ringing => self.ringing,
            LineState::Busy => self.busy,
            LineState::Hold => self.hold,
            LineState::Offline => self.offline,
            LineState::Unknown => self.unknown,
            // A state this mapping does not know yet says nothing usable.
            _ => self.unknown,
        }
    }

    /// The action for a line state with the PBX's do-not-disturb on or off:
    /// [`dnd`](Self::dnd) while DND is on, unless it is `keep`; else the line
    /// state's.
    pub fn action_for(&self, state: LineState, dnd: bool) -> PresenceAction {
        if dnd && self.dnd != PresenceAction::Keep {
            self.dnd
        } else {
            self.action(state)
        }
    }

    /// Parses a TOML mapping; missing keys keep their [default](Mapping::default).
    ///
    /// ```toml
    /// busy = "Busy/InACall"
    /// hold = "Busy/InACall"
    /// ringing = "keep"
    /// idle = "clear"
    /// offline = "clear"
    /// unknown = "keep"
    /// # While the PBX's do-not-disturb is on, whatever the line state;
    /// # "keep" ignores DND (the line state's action applies).
    /// dnd = "DoNotDisturb/Presenting"
    /// ```
    pub fn from_toml_str(text: &str) -> Result<Mapping, MappingError> {
        Self::parse_named(text, "")
    }

    /// Reads and parses a TOML mapping file.
    pub fn load(path: impl AsRef<Path>) -> Result<Mapping, MappingError> {
        let path = path.as_ref();
        let text = std::fs::read_to_string(path).map_err(|source| MappingError::Io {
            path: path.display().to_string(),
            source,
        })?;
        Self::parse_named(&text, &format!("file {} ", path.display()))
    }

    fn parse_named(text: &str, origin: &str) -> Result<Mapping, MappingError> {
        let invalid = |offset: usize, message: String| {
            let (line, column) = blf::line_column(text.as_bytes(), offset);
            MappingError::Invalid {
                origin: origin.to_owned(),
                line,
                column,
                message,
            }
        };
        let file: MappingFile = toml::from_str(text).map_err(|e| {
            let offset = e.span().map_or(0, |s| s.start);
            invalid(
                offset,
                format!(
                    "{}; keys are idle, ringing, busy, hold, offline, unknown, dnd; values are {}",
                    e.message().trim(),
                    valid_values_text()
                ),
            )
        })?;
        let mut mapping = Mapping::default();
        for (name, value, slot) in [
            ("idle", file.idle, &mut mapping.idle),
            ("ringing", file.ringing, &mut mapping.ringing),
            ("busy", file.busy, &mut mapping.busy),
            ("hold", file.hold, &mut mapping.hold),
            ("offline", file.offline, &mut mapping.offline),
            ("unknown", file.unknown, &mut mapping.unknown),
            ("dnd", file.dnd, &mut mapping.dnd),
        ] {
            let Some(value) = value else { continue };
            match PresenceAction::parse(value.get_ref()) {
                Some(action) => *slot = action,
                None => {
                    return Err(invalid(
                        value.span().start,
                        format!(
                            "invalid value {:?} for {name}; valid values are {} \
                             (the only availability/activity pairs Microsoft Graph accepts)",
                            value.get_ref(),
                            valid_values_text()
                        ),
                    ))
                }
            }
        }
        Ok(mapping)
    }
}

#[cfg(test)]
#[path = "mapping_tests.rs"]
mod tests;
