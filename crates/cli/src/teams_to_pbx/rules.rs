//! Which Teams presence puts the PBX extension in DND: the `[teams_to_pbx]`
//! section of the mapping file.
//!
//! ```toml
//! [teams_to_pbx]
//! # "Availability/Activity" as Graph spells them; either side may be "*".
//! # Values: "dnd" (DND on), "off" (DND off, where this service turned it on), "keep".
//! "DoNotDisturb/*" = "dnd"
//! "Busy/InACall" = "dnd"
//! "Busy/InAConferenceCall" = "dnd"
//! "Busy/InAMeeting" = "dnd"
//! "*/*" = "off"
//! ```
//!
//! The entries given replace the defaults above key by key. The most
//! specific key wins: `A/B`, then `A/*`, then `*/B`, then `*/*`.

use std::collections::BTreeMap;

use sip_blf_engine::TeamsPresence;

/// What a Teams presence asks of the PBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PbxWish {
    /// DND on.
    Dnd,
    /// DND off, where this service turned it on.
    Off,
    /// Change nothing.
    Keep,
}

impl PbxWish {
    fn parse(text: &str) -> Option<Self> {
        match text.trim().to_ascii_lowercase().as_str() {
            "dnd" => Some(Self::Dnd),
            "off" => Some(Self::Off),
            "keep" => Some(Self::Keep),
            _ => None,
        }
    }
}

/// The rules, by `Availability/Activity` pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TeamsRules {
    rules: BTreeMap<(String, String), PbxWish>,
}

impl Default for TeamsRules {
    /// Teams DND (any activity), a Teams call or a meeting → DND; else off.
    fn default() -> Self {
        let mut rules = BTreeMap::new();
        for (pattern, wish) in [
            ("DoNotDisturb/*", PbxWish::Dnd),
            ("Busy/InACall", PbxWish::Dnd),
            ("Busy/InAConferenceCall", PbxWish::Dnd),
            ("Busy/InAMeeting", PbxWish::Dnd),
            ("*/*", PbxWish::Off),
        ] {
            if let Some(key) = split(pattern) {
                rules.insert(key, wish);
            }
        }
        Self { rules }
    }
}

fn split(pattern: &str) -> Option<(String, String)> {
    let (a, b) = pattern.trim().split_once('/')?;
    let (a, b) = (a.trim(), b.trim());
    (!a.is_empty() && !b.is_empty()).then(|| (a.to_ascii_lowercase(), b.to_ascii_lowercase()))
}

impl TeamsRules {
    /// The defaults with the `[teams_to_pbx]` table's entries over them;
    /// an error names the key and says what is valid.
    pub fn with_table(table: &toml::Table) -> Result<Self, String> {
        let mut rules = Self::default();
        for (key, value) in table {
            let pattern = split(key).ok_or_else(|| {
                format!(
                    "[teams_to_pbx] key {key:?} is not \"Availability/Activity\" \
                     (either side may be *), e.g. \"Busy/InAMeeting\""
                )
            })?;
            let wish = value.as_str().and_then(PbxWish::parse).ok_or_else(|| {
                format!("[teams_to_pbx] {key:?} = {value}: use \"dnd\", \"off\" or \"keep\"")
            })?;
            rules.rules.insert(pattern, wish);
        }
        Ok(rules)
    }

    /// Reads the `[teams_to_pbx]` section of a mapping file (the defaults
    /// when it has none).
    pub fn load(path: &std::path::Path) -> Result<Self, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        let doc: toml::Table =
            toml::from_str(&text).map_err(|e| format!("{}: {}", path.display(), e.message()))?;
        match doc.get("teams_to_pbx") {
            None => Ok(Self::default()),
            Some(toml::Value::Table(t)) => Self::with_table(t),
            Some(_) => Err(format!("{}: teams_to_pbx must be a table", path.display())),
        }
    }

    /// What `presence` asks of the PBX.
    pub fn wish(&self, presence: &TeamsPresence) -> PbxWish {
        let (a, b) = (
            presence.availability.to_ascii_lowercase(),
            presence.activity.to_ascii_lowercase(),
        );
        let star = || "*".to_owned();
        [
            (a.clone(), b.clone()),
            (a, star()),
            (star(), b),
            (star(), star()),
        ]
        .iter()
        .find_map(|k| self.rules.get(k).copied())
        .unwrap_or(PbxWish::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(a: &str, b: &str) -> TeamsPresence {
        TeamsPresence {
            availability: a.into(),
            activity: b.into(),
        }
    }

    #[test]
    fn defaults_put_teams_dnd_calls_and_meetings_in_dnd() {
        let r = TeamsRules::default();
        assert_eq!(r.wish(&p("DoNotDisturb", "Presenting")), PbxWish::Dnd);
        assert_eq!(
            r.wish(&p("DoNotDisturb", "UrgentInterruptionsOnly")),
            PbxWish::Dnd
        );
        assert_eq!(r.wish(&p("Busy", "InACall")), PbxWish::Dnd);
        assert_eq!(r.wish(&p("Busy", "InAMeeting")), PbxWish::Dnd);
        assert_eq!(r.wish(&p("Busy", "Busy")), PbxWish::Off);
        assert_eq!(r.wish(&p("Available", "Available")), PbxWish::Off);
    }

    #[test]
    fn a_table_overrides_key_by_key_with_the_most_specific_winning() {
        let table: toml::Table = toml::from_str(
            r#""Busy/InAMeeting" = "keep"
               "*/Away" = "dnd"
               "Away/Away" = "off""#,
        )
        .unwrap();
        let r = TeamsRules::with_table(&table).unwrap();
        assert_eq!(r.wish(&p("Busy", "InAMeeting")), PbxWish::Keep);
        assert_eq!(r.wish(&p("BeRightBack", "Away")), PbxWish::Dnd);
        assert_eq!(r.wish(&p("Away", "Away")), PbxWish::Off);
        assert_eq!(r.wish(&p("Busy", "InACall")), PbxWish::Dnd);
        let bad: toml::Table = toml::from_str(r#""Busy" = "dnd""#).unwrap();
        assert!(TeamsRules::with_table(&bad)
            .unwrap_err()
            .contains("Availability/Activity"));
        let bad: toml::Table = toml::from_str(r#""Busy/InACall" = "on""#).unwrap();
        assert!(TeamsRules::with_table(&bad)
            .unwrap_err()
            .contains("\"dnd\", \"off\""));
    }
}
