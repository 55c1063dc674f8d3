//! The JSON of the board's API: [`Extension`], [`Health`] and what they
//! are made of. Field names are snake_case and stable; absent values are
//! `null`, never missing keys; times are RFC 3339 UTC with milliseconds.

use std::fmt;
use std::str::FromStr;
use std::time::SystemTime;

use serde::{Deserialize, Serialize};
use sip_blf_engine::{Direction, LineState, Party, QueueMember};

/// One listed extension, as the extension list gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Listing {
    /// The PBX extension (the address on its system): `1001`.
    pub extension: String,
    /// The person's display name.
    pub name: Option<String>,
    /// The person (Teams user) the extension belongs to.
    pub email: Option<String>,
    /// The extension list's optional `group` (a team, a floor).
    pub group: Option<String>,
}

impl Listing {
    /// A listing of `extension` with no name, e-mail or group.
    pub fn new(extension: impl Into<String>) -> Self {
        Self {
            extension: extension.into(),
            name: None,
            email: None,
            group: None,
        }
    }
}

/// The other party of a call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counterparty {
    /// Number or URI user part (`1002`, `+4930123`).
    pub number: String,
    /// Display name, when the PBX gave one.
    pub name: Option<String>,
}

impl From<Party> for Counterparty {
    fn from(party: Party) -> Self {
        Self {
            number: party.number,
            name: party.name,
        }
    }
}

/// The Teams presence the service set for the person behind an extension.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Teams {
    /// Graph's availability (`Busy`, `Available`, ...).
    pub availability: String,
    /// Graph's activity (`InACall`, `Available`, ...).
    pub activity: String,
    /// Graph accepted it; `false`: the write failed and is retried.
    pub accepted: bool,
    /// When it was set (or last tried).
    #[serde(with = "crate::time::rfc3339")]
    pub at: SystemTime,
}

/// Who turned on an extension's do-not-disturb ([`Extension::dnd_by`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum DndBy {
    /// This service, because of the person's presence in Teams (Teams → PBX).
    Teams,
    /// Anyone else: the phone, a feature code, the PBX.
    Pbx,
}

impl DndBy {
    /// The name in the JSON: `teams`, `pbx`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Teams => "teams",
            Self::Pbx => "pbx",
        }
    }
}

/// One listed extension and what is known about it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Extension {
    /// The PBX extension.
    pub extension: String,
    /// From the extension list.
    pub name: Option<String>,
    /// The person (Teams user) it belongs to.
    pub email: Option<String>,
    /// The extension list's `group`.
    pub group: Option<String>,
    /// The line's state: `idle`, `ringing`, `busy`, `hold`, `offline`, `unknown`.
    pub line_state: LineState,
    /// Do-not-disturb.
    pub dnd: bool,
    /// When `line_state` or `dnd` last changed.
    #[serde(with = "crate::time::rfc3339_opt")]
    pub since: Option<SystemTime>,
    /// The other party of the call, if known.
    pub counterparty: Option<Counterparty>,
    /// The call's direction, if known.
    pub direction: Option<Direction>,
    /// The last event from the PBX for this extension.
    #[serde(with = "crate::time::rfc3339_opt")]
    pub last_event: Option<SystemTime>,
    /// The Teams presence the service set for the person.
    pub teams: Option<Teams>,
    /// The person's presence last read from Teams (`Availability/Activity`,
    /// `DoNotDisturb/Presenting`), when Teams is read (Teams → PBX).
    #[serde(default)]
    pub teams_read: Option<String>,
    /// Who turned DND on: `teams` (this service, because of Teams) or
    /// `pbx`; `None` while DND is off.
    #[serde(default)]
    pub dnd_by: Option<DndBy>,
    /// The call queues the extension is an agent of, sorted by queue name
    /// (empty: none, or no source reports queues).
    #[serde(default)]
    pub queues: Vec<QueueMember>,
}

impl Extension {
    /// A listed extension with nothing known yet (`unknown`, no DND).
    pub fn listed(listing: Listing) -> Self {
        Self {
            extension: listing.extension,
            name: listing.name,
            email: listing.email,
            group: listing.group,
            line_state: LineState::Unknown,
            dnd: false,
            since: None,
            counterparty: None,
            direction: None,
            last_event: None,
            teams: None,
            teams_read: None,
            dnd_by: None,
            queues: Vec::new(),
        }
    }

    /// Whether `needle` (already lowercase) is a substring of the
    /// extension, name, e-mail, counterparty (number or name) or a queue's
    /// name, ignoring case.
    pub(crate) fn matches_text(&self, needle: &str) -> bool {
        let has = |text: &str| text.to_lowercase().contains(needle);
        has(&self.extension)
            || self.name.as_deref().is_some_and(has)
            || self.email.as_deref().is_some_and(has)
            || self
                .counterparty
                .as_ref()
                .is_some_and(|c| has(&c.number) || c.name.as_deref().is_some_and(has))
            || self.queues.iter().any(|q| has(&q.queue))
    }
}

/// Whether a [`Health`] is of a source or a sink.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
#[non_exhaustive]
pub enum HealthKind {
    /// Where line state comes from (the SIP source).
    Source,
    /// Where it goes (Teams, the database, ...).
    Sink,
}

/// How one source or sink is doing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Health {
    /// Its name (`sip`, `teams`).
    pub name: String,
    /// Source or sink.
    pub kind: HealthKind,
    /// Whether it works.
    pub ok: bool,
    /// One line for a person: `registered; 120 of 120 subscriptions active`.
    pub detail: String,
    /// Its last success.
    #[serde(with = "crate::time::rfc3339_opt")]
    pub last_success: Option<SystemTime>,
}

/// What `?state=` selects: a line state, or `dnd` (do-not-disturb on).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum StateFilter {
    /// Extensions in this line state.
    Line(LineState),
    /// Extensions with do-not-disturb on.
    Dnd,
}

impl fmt::Display for StateFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(state) => f.pad(state.as_str()),
            Self::Dnd => f.pad("dnd"),
        }
    }
}

/// `?state=` was not a line state nor `dnd`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("state={0:?} is not one of idle, ringing, busy, hold, offline, unknown, dnd")]
pub struct UnknownStateFilter(pub String);

impl FromStr for StateFilter {
    type Err = UnknownStateFilter;

    /// A line state's name or `dnd` (case-insensitive).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if s.trim().eq_ignore_ascii_case("dnd") {
            return Ok(Self::Dnd);
        }
        s.parse()
            .map(Self::Line)
            .map_err(|_| UnknownStateFilter(s.to_owned()))
    }
}

/// Which extensions a listing returns: all of them by default.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExtensionFilter {
    /// Only this line state (or DND on).
    pub state: Option<StateFilter>,
    /// Only extensions whose extension, name, e-mail, counterparty or a
    /// queue's name contains this text (case-insensitive). Empty: no
    /// restriction.
    pub q: Option<String>,
}

impl ExtensionFilter {
    /// Every extension.
    pub fn all() -> Self {
        Self::default()
    }

    /// Sets [`state`](Self::state).
    pub fn with_state(mut self, state: Option<StateFilter>) -> Self {
        self.state = state;
        self
    }

    /// Sets [`q`](Self::q).
    pub fn with_text(mut self, q: Option<String>) -> Self {
        self.q = q;
        self
    }

    pub(crate) fn compile(&self) -> impl Fn(&Extension) -> bool + '_ {
        let needle = self
            .q
            .as_deref()
            .map(str::trim)
            .filter(|q| !q.is_empty())
            .map(str::to_lowercase);
        move |ext: &Extension| {
            let state_ok = match self.state {
                None => true,
                Some(StateFilter::Dnd) => ext.dnd,
                Some(StateFilter::Line(state)) => ext.line_state == state,
            };
            state_ok && needle.as_deref().is_none_or(|n| ext.matches_text(n))
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn an_extension_has_every_key_with_null_for_absent() {
        let ext = Extension::listed(Listing::new("1001"));
        let json = serde_json::to_value(&ext).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        for key in [
            "extension",
            "name",
            "email",
            "group",
            "line_state",
            "dnd",
            "since",
            "counterparty",
            "direction",
            "last_event",
            "teams",
            "teams_read",
            "dnd_by",
            "queues",
        ] {
            assert!(keys.contains(&key), "{key} missing in {json}");
        }
        assert_eq!(json["line_state"], "unknown");
        assert!(json["since"].is_null());
        assert_eq!(json["queues"], serde_json::json!([]));
        assert!(json["teams_read"].is_null() && json["dnd_by"].is_null());
    }

    #[test]
    fn extension_round_trips() {
        let mut ext = Extension::listed(Listing::new("1001"));
        ext.line_state = LineState::Busy;
        ext.direction = Some(Direction::Inbound);
        ext.since = Some(SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_292_000_123));
        ext.teams = Some(Teams {
            availability: "Busy".into(),
            activity: "InACall".into(),
            accepted: true,
            at: SystemTime::UNIX_EPOCH + Duration::from_secs(1_796_292_000),
        });
        ext.queues = vec![QueueMember {
            queue: "support".into(),
            paused: true,
            reason: Some("lunch".into()),
            in_call: false,
        }];
        ext.dnd = true;
        ext.teams_read = Some("DoNotDisturb/Presenting".into());
        ext.dnd_by = Some(DndBy::Teams);
        let json = serde_json::to_string(&ext).unwrap();
        assert!(
            json.contains(r#""teams_read":"DoNotDisturb/Presenting","dnd_by":"teams""#),
            "{json}"
        );
        assert!(
            json.contains(r#""since":"2026-12-03T10:00:00.123Z""#),
            "{json}"
        );
        assert!(json.contains(r#""direction":"inbound""#), "{json}");
        assert!(
            json.contains(
                r#""queues":[{"queue":"support","paused":true,"reason":"lunch","in_call":false}]"#
            ),
            "{json}"
        );
        assert_eq!(serde_json::from_str::<Extension>(&json).unwrap(), ext);
    }

    #[test]
    fn state_filter_names() {
        assert_eq!("busy".parse(), Ok(StateFilter::Line(LineState::Busy)));
        assert_eq!("DND".parse(), Ok(StateFilter::Dnd));
        assert!("talking".parse::<StateFilter>().is_err());
    }
}
