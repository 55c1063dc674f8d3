//! Typed values: object ids, the five settable presence states, read presence.

use crate::error::GraphError;
use std::fmt;
use std::str::FromStr;
use std::time::Duration;

/// A user's Entra object id (a GUID). Presence routes take only object ids, not UPNs.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectId(String);

impl ObjectId {
    /// Parses a GUID (`8-4-4-4-12` hex digits); stored in lower case.
    pub fn parse(s: &str) -> Result<ObjectId, GraphError> {
        let s = s.trim();
        let parts: Vec<&str> = s.split('-').collect();
        let ok = parts.len() == 5
            && parts
                .iter()
                .zip([8, 4, 4, 4, 12])
                .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()));
        if ok {
            Ok(ObjectId(s.to_ascii_lowercase()))
        } else {
            Err(GraphError::InvalidInput(format!(
                "{s:?} is not an object id (GUID)"
            )))
        }
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for ObjectId {
    type Error = GraphError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        ObjectId::parse(&s)
    }
}

impl From<ObjectId> for String {
    fn from(o: ObjectId) -> String {
        o.0
    }
}

impl FromStr for ObjectId {
    type Err = GraphError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        ObjectId::parse(s)
    }
}

impl fmt::Display for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for ObjectId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ObjectId({})", self.0)
    }
}

/// The availability/activity pairs `setPresence` accepts: exactly the five documented ones
/// (setPresence v1.0 page, 2024-04-04). Anything else cannot be expressed, so it is refused
/// before a request is sent.
///
/// The one type for the five pairs: the client's calls take it, and a configuration names
/// it as `Availability/Activity` (its [`Display`](fmt::Display) and [`FromStr`] forms;
/// [`from_pair`](Self::from_pair) takes the two halves).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PresenceState {
    /// `Available/Available`. Fades to Away unless re-sent within 5 minutes.
    Available,
    /// `Busy/InACall`.
    BusyInACall,
    /// `Busy/InAConferenceCall`.
    BusyInAConferenceCall,
    /// `Away/Away`.
    Away,
    /// `DoNotDisturb/Presenting`.
    DoNotDisturbPresenting,
}

impl PresenceState {
    /// All five states.
    pub const ALL: [PresenceState; 5] = [
        PresenceState::Available,
        PresenceState::BusyInACall,
        PresenceState::BusyInAConferenceCall,
        PresenceState::Away,
        PresenceState::DoNotDisturbPresenting,
    ];

    /// The `availability` value.
    pub fn availability(self) -> &'static str {
        match self {
            PresenceState::Available => "Available",
            PresenceState::BusyInACall | PresenceState::BusyInAConferenceCall => "Busy",
            PresenceState::Away => "Away",
            PresenceState::DoNotDisturbPresenting => "DoNotDisturb",
        }
    }

    /// The `activity` value.
    pub fn activity(self) -> &'static str {
        match self {
            PresenceState::Available => "Available",
            PresenceState::BusyInACall => "InACall",
            PresenceState::BusyInAConferenceCall => "InAConferenceCall",
            PresenceState::Away => "Away",
            PresenceState::DoNotDisturbPresenting => "Presenting",
        }
    }

    /// The state for an availability/activity pair (case-insensitive, surrounding
    /// whitespace ignored), or an error naming the valid pairs.
    pub fn from_pair(availability: &str, activity: &str) -> Result<PresenceState, GraphError> {
        let (availability, activity) = (availability.trim(), activity.trim());
        PresenceState::ALL
            .into_iter()
            .find(|s| {
                s.availability().eq_ignore_ascii_case(availability)
                    && s.activity().eq_ignore_ascii_case(activity)
            })
            .ok_or_else(|| invalid_state(&format!("{availability}/{activity}")))
    }
}

fn invalid_state(what: &str) -> GraphError {
    GraphError::InvalidInput(format!(
        "{what:?} is not a presence setPresence accepts; use one of available, busy, \
         conference, away, dnd (or a pair: Available/Available, Busy/InACall, \
         Busy/InAConferenceCall, Away/Away, DoNotDisturb/Presenting)"
    ))
}

impl fmt::Display for PresenceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.availability(), self.activity())
    }
}

impl FromStr for PresenceState {
    type Err = GraphError;

    /// Accepts the short names `available`, `busy` (= Busy/InACall), `conference`,
    /// `away`, `dnd`/`donotdisturb`/`presenting`, or an `Availability/Activity` pair, all
    /// case-insensitive.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim();
        if let Some((a, b)) = t.split_once('/') {
            return PresenceState::from_pair(a.trim(), b.trim());
        }
        match t.to_ascii_lowercase().as_str() {
            "available" => Ok(PresenceState::Available),
            "busy" | "inacall" | "busy-inacall" => Ok(PresenceState::BusyInACall),
            "conference" | "inaconferencecall" => Ok(PresenceState::BusyInAConferenceCall),
            "away" => Ok(PresenceState::Away),
            "dnd" | "donotdisturb" | "presenting" => Ok(PresenceState::DoNotDisturbPresenting),
            _ => Err(invalid_state(t)),
        }
    }
}

/// The pairs `setUserPreferredPresence` accepts. **Not for BLF**: this is the user's own
/// choice in Teams and overrides every session for 1–7 days by default.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum PreferredPresence {
    /// `Available/Available`.
    Available,
    /// `Busy/Busy`.
    Busy,
    /// `DoNotDisturb/DoNotDisturb`.
    DoNotDisturb,
    /// `BeRightBack/BeRightBack`.
    BeRightBack,
    /// `Away/Away`.
    Away,
    /// `Offline/OffWork`.
    Offline,
}

impl PreferredPresence {
    /// The (availability, activity) pair.
    pub fn pair(self) -> (&'static str, &'static str) {
        match self {
            PreferredPresence::Available => ("Available", "Available"),
            PreferredPresence::Busy => ("Busy", "Busy"),
            PreferredPresence::DoNotDisturb => ("DoNotDisturb", "DoNotDisturb"),
            PreferredPresence::BeRightBack => ("BeRightBack", "BeRightBack"),
            PreferredPresence::Away => ("Away", "Away"),
            PreferredPresence::Offline => ("Offline", "OffWork"),
        }
    }
}

/// A presence as read from Graph. `availability` and `activity` are kept as text because
/// Graph's lists grow and their casing changed over time; compare with
/// [`Presence::is_availability`], which ignores case.
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "camelCase")]
#[non_exhaustive]
pub struct Presence {
    /// The user's object id.
    #[serde(default)]
    pub id: String,
    /// E.g. `Available`, `Busy`, `Away`, `Offline`, `PresenceUnknown`.
    #[serde(default)]
    pub availability: String,
    /// E.g. `InACall`, `Presenting`, `OffWork`.
    #[serde(default)]
    pub activity: String,
    /// The status message text, if any.
    #[serde(default, deserialize_with = "status_text")]
    pub status_message: Option<String>,
}

impl Presence {
    /// A presence with no status message (e.g. for a test double of a reader).
    pub fn new(
        id: impl Into<String>,
        availability: impl Into<String>,
        activity: impl Into<String>,
    ) -> Self {
        Presence {
            id: id.into(),
            availability: availability.into(),
            activity: activity.into(),
            status_message: None,
        }
    }

    /// This presence with a status message.
    #[must_use]
    pub fn with_status_message(mut self, text: impl Into<String>) -> Self {
        self.status_message = Some(text.into());
        self
    }

    /// Case-insensitive comparison of `availability`.
    pub fn is_availability(&self, value: &str) -> bool {
        self.availability.eq_ignore_ascii_case(value)
    }
}

fn status_text<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let v: Option<serde_json::Value> = serde::Deserialize::deserialize(d)?;
    Ok(v.and_then(|v| {
        v.get("message")?
            .get("content")?
            .as_str()
            .map(str::to_owned)
    }))
}

/// The shortest `expirationDuration` Graph accepts.
pub const MIN_EXPIRATION: Duration = Duration::from_secs(5 * 60);
/// The longest `expirationDuration` Graph accepts.
pub const MAX_EXPIRATION: Duration = Duration::from_secs(4 * 60 * 60);
/// The session expiry Graph applies when none is given.
pub const DEFAULT_EXPIRATION: Duration = MIN_EXPIRATION;
/// An app-set `Available` fades after this long unless re-sent.
pub const AVAILABLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// Validates an `expirationDuration` (PT5M..=PT4H) and formats it as ISO 8601.
pub fn expiration_iso8601(d: Duration) -> Result<String, GraphError> {
    if !(MIN_EXPIRATION..=MAX_EXPIRATION).contains(&d) {
        return Err(GraphError::InvalidInput(format!(
            "expirationDuration must be between 5 minutes and 4 hours (PT5M..PT4H), got {}s",
            d.as_secs_f64()
        )));
    }
    Ok(iso8601(d))
}

/// Formats a duration as `PT…H…M…S` (whole seconds).
pub(crate) fn iso8601(d: Duration) -> String {
    let s = d.as_secs();
    let (h, m, sec) = (s / 3600, (s % 3600) / 60, s % 60);
    let mut out = String::from("PT");
    if h > 0 {
        out.push_str(&format!("{h}H"));
    }
    if m > 0 {
        out.push_str(&format!("{m}M"));
    }
    if sec > 0 || (h == 0 && m == 0) {
        out.push_str(&format!("{sec}S"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_short_names_and_pairs() {
        assert_eq!(
            "busy".parse::<PresenceState>().unwrap(),
            PresenceState::BusyInACall
        );
        assert_eq!(
            "DND".parse::<PresenceState>().unwrap(),
            PresenceState::DoNotDisturbPresenting
        );
        assert_eq!(
            "busy/inaconferencecall".parse::<PresenceState>().unwrap(),
            PresenceState::BusyInAConferenceCall
        );
        for s in PresenceState::ALL {
            assert_eq!(s.to_string().parse::<PresenceState>().unwrap(), s);
        }
    }

    #[test]
    fn undocumented_pairs_are_refused() {
        for bad in [
            "Offline/OffWork",
            "Busy/InAMeeting",
            "Busy/Busy",
            "BeRightBack",
            "offline",
            "",
        ] {
            let e = bad.parse::<PresenceState>().unwrap_err();
            assert!(e.to_string().contains("Busy/InACall"), "{e}");
        }
        assert!(PresenceState::from_pair("DoNotDisturb", "DoNotDisturb").is_err());
    }

    #[test]
    fn object_ids() {
        let o = ObjectId::parse("AAAAAAAA-0000-4000-8000-000000000001").unwrap();
        assert_eq!(o.as_str(), "aaaaaaaa-0000-4000-8000-000000000001");
        assert!(ObjectId::parse("alice@contoso.com").is_err());
        assert!(ObjectId::parse("aaaaaaaa-0000-4000-8000-00000000000g").is_err());
    }

    #[test]
    fn expiration_bounds() {
        assert_eq!(
            expiration_iso8601(Duration::from_secs(300)).unwrap(),
            "PT5M"
        );
        assert_eq!(
            expiration_iso8601(Duration::from_secs(14400)).unwrap(),
            "PT4H"
        );
        assert_eq!(
            expiration_iso8601(Duration::from_secs(3930)).unwrap(),
            "PT1H5M30S"
        );
        assert!(expiration_iso8601(Duration::from_secs(299)).is_err());
        assert!(expiration_iso8601(Duration::from_secs(14401)).is_err());
    }
}
