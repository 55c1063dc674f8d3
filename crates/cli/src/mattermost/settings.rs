//! `MATTERMOST_*`: where the server is, what to show while busy, and where
//! to post.

use std::fmt;
use std::time::Duration;

use sip_blf_engine::LineState;

use crate::problems::{Problem, Problems};
use crate::settings::{Env, Secret};

/// The status set while busy when `MATTERMOST_BUSY_STATUS` is not set.
pub const DEFAULT_BUSY_STATUS: &str = "dnd";
/// The custom status text when `MATTERMOST_CUSTOM_STATUS` is not set.
pub const DEFAULT_CUSTOM_TEXT: &str = "On the phone";
/// The custom status emoji when `MATTERMOST_CUSTOM_EMOJI` is not set.
pub const DEFAULT_CUSTOM_EMOJI: &str = "telephone_receiver";
/// How long what is set while busy lasts when nothing restores it (a crash).
pub const DEFAULT_EXPIRY_MINUTES: u64 = 240;
/// What is posted when `MATTERMOST_POST_STATES` is not set: no on/off-hook noise.
pub const DEFAULT_POST_STATES: &str = "dnd,offline";

/// A change that may be posted to `MATTERMOST_CHANNEL`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostOn {
    /// The line starts ringing.
    Ringing,
    /// Off-hook: a call is answered or dialled.
    Busy,
    /// A call on hold.
    Hold,
    /// On-hook: the line is free again.
    Idle,
    /// The phone is unregistered.
    Offline,
    /// DND goes on or off.
    Dnd,
}

impl PostOn {
    const ALL: [(&'static str, PostOn); 6] = [
        ("ringing", PostOn::Ringing),
        ("busy", PostOn::Busy),
        ("hold", PostOn::Hold),
        ("idle", PostOn::Idle),
        ("offline", PostOn::Offline),
        ("dnd", PostOn::Dnd),
    ];

    /// The change of line that this is, if any.
    pub fn of_line(line: LineState) -> Option<PostOn> {
        match line {
            LineState::Ringing => Some(Self::Ringing),
            LineState::Busy => Some(Self::Busy),
            LineState::Hold => Some(Self::Hold),
            LineState::Idle => Some(Self::Idle),
            LineState::Offline => Some(Self::Offline),
            _ => None,
        }
    }
}

/// The Mattermost sink's settings. `Debug` never shows the token.
#[derive(Clone, PartialEq, Eq)]
pub struct MattermostSettings {
    /// `MATTERMOST_URL` without a trailing `/` (`https://chat.example.com`).
    pub url: String,
    /// `MATTERMOST_TOKEN`: a bot or personal access token.
    pub token: Secret,
    /// `MATTERMOST_BUSY_STATUS`: `dnd`, `away` or `offline` while busy;
    /// `None` (`none`) leaves the status alone.
    pub busy_status: Option<String>,
    /// `MATTERMOST_CUSTOM_EMOJI` and `MATTERMOST_CUSTOM_STATUS`: the custom
    /// status while busy; `None` (`none`) sets none.
    pub custom: Option<(String, String)>,
    /// `MATTERMOST_BUSY_EXPIRY_MINUTES`: the DND end and the custom
    /// status's expiry, should nothing restore them.
    pub expiry: Duration,
    /// `MATTERMOST_CHANNEL` as `(team, channel)` URL names.
    pub channel: Option<(String, String)>,
    /// `MATTERMOST_POST_STATES`: which changes are posted.
    pub post_on: Vec<PostOn>,
}

impl fmt::Debug for MattermostSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MattermostSettings")
            .field("url", &self.url)
            .field("token", &self.token)
            .field("busy_status", &self.busy_status)
            .field("custom", &self.custom)
            .field("expiry", &self.expiry)
            .field("channel", &self.channel)
            .field("post_on", &self.post_on)
            .finish()
    }
}

/// The variables the Mattermost sink reads; the first two turn it on.
pub const VARIABLES: [&str; 8] = [
    "MATTERMOST_URL",
    "MATTERMOST_TOKEN",
    "MATTERMOST_BUSY_STATUS",
    "MATTERMOST_CUSTOM_STATUS",
    "MATTERMOST_CUSTOM_EMOJI",
    "MATTERMOST_BUSY_EXPIRY_MINUTES",
    "MATTERMOST_CHANNEL",
    "MATTERMOST_POST_STATES",
];

impl MattermostSettings {
    /// Reads the settings; `Ok(None)` when neither `MATTERMOST_URL` nor
    /// `MATTERMOST_TOKEN` is set (the other variables have defaults, and
    /// `.env.example` lists them). Every problem is collected; none shows
    /// the token.
    pub fn from_env(env: &Env) -> Result<Option<MattermostSettings>, Problems> {
        if VARIABLES[..2].iter().all(|v| env.get(v).is_none()) {
            return Ok(None);
        }
        let mut problems = Problems::default();
        let url = match env.get("MATTERMOST_URL").map(str::trim) {
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => {
                u.trim_end_matches('/').to_owned()
            }
            Some(u) => {
                problems.push(Problem::in_var(
                    "MATTERMOST_URL",
                    format!("{u:?} is not an http(s) URL; use the server's address, e.g. https://chat.example.com"),
                ));
                String::new()
            }
            None => {
                problems.push(Problem::in_var(
                    "MATTERMOST_URL",
                    "is needed by the mattermost sink: the server's address, e.g. https://chat.example.com",
                ));
                String::new()
            }
        };
        let token = match env.get("MATTERMOST_TOKEN").map(str::trim) {
            Some(t) if !t.is_empty() => Secret::new(t),
            _ => {
                problems.push(Problem::in_var(
                    "MATTERMOST_TOKEN",
                    "is needed by the mattermost sink: a bot's access token (System Console → \
                     Integrations → Bot Accounts, role System Admin) or a System Admin's personal \
                     access token",
                ));
                Secret::new("")
            }
        };
        let busy_status = match env.get("MATTERMOST_BUSY_STATUS").map(str::trim) {
            None => Some(DEFAULT_BUSY_STATUS.to_owned()),
            Some(s) if s.eq_ignore_ascii_case("none") => None,
            Some(s) if ["dnd", "away", "offline"].contains(&s.to_ascii_lowercase().as_str()) => {
                Some(s.to_ascii_lowercase())
            }
            Some(s) => {
                problems.push(Problem::in_var(
                    "MATTERMOST_BUSY_STATUS",
                    format!(
                        "{s:?} is not a status to set while busy; use dnd, away, offline or none"
                    ),
                ));
                None
            }
        };
        let text = env
            .get("MATTERMOST_CUSTOM_STATUS")
            .unwrap_or(DEFAULT_CUSTOM_TEXT)
            .trim();
        let emoji = env
            .get("MATTERMOST_CUSTOM_EMOJI")
            .unwrap_or(DEFAULT_CUSTOM_EMOJI)
            .trim()
            .trim_matches(':');
        let custom = if text.eq_ignore_ascii_case("none") || (text.is_empty() && emoji.is_empty()) {
            None
        } else if text.chars().count() > 100 {
            problems.push(Problem::in_var(
                "MATTERMOST_CUSTOM_STATUS",
                "is longer than Mattermost's 100 characters: shorten it",
            ));
            None
        } else {
            Some((emoji.to_owned(), text.to_owned()))
        };
        if busy_status.is_none() && custom.is_none() && problems.is_empty() {
            problems.push(Problem::in_var(
                "MATTERMOST_BUSY_STATUS",
                "is none and so is MATTERMOST_CUSTOM_STATUS: the sink would show nothing; set one",
            ));
        }
        let expiry = match env.get("MATTERMOST_BUSY_EXPIRY_MINUTES").map(str::trim) {
            None => Duration::from_secs(DEFAULT_EXPIRY_MINUTES * 60),
            Some(v) => match v.parse::<u64>() {
                Ok(m) if (1..=10_080).contains(&m) => Duration::from_secs(m * 60),
                _ => {
                    problems.push(Problem::in_var(
                        "MATTERMOST_BUSY_EXPIRY_MINUTES",
                        format!("{v:?} is not a number of minutes from 1 to 10080 (a week), e.g. {DEFAULT_EXPIRY_MINUTES}"),
                    ));
                    Duration::from_secs(DEFAULT_EXPIRY_MINUTES * 60)
                }
            },
        };
        let channel = match env.get("MATTERMOST_CHANNEL").map(str::trim) {
            None | Some("") => None,
            Some(c) => match c.split_once('/') {
                Some((team, name))
                    if !team.is_empty() && !name.is_empty() && !name.contains('/') =>
                {
                    Some((team.to_owned(), name.to_owned()))
                }
                _ => {
                    problems.push(Problem::in_var(
                        "MATTERMOST_CHANNEL",
                        format!("{c:?} is not team/channel; use the URL names, e.g. acme/town-square (as in https://chat.example.com/acme/channels/town-square)"),
                    ));
                    None
                }
            },
        };
        let post_on = post_states(
            env.get("MATTERMOST_POST_STATES")
                .unwrap_or(DEFAULT_POST_STATES),
        )
        .unwrap_or_else(|p| {
            problems.push(p);
            Vec::new()
        });
        if channel.is_none() && env.get("MATTERMOST_POST_STATES").is_some() {
            problems.push(Problem::in_var(
                "MATTERMOST_POST_STATES",
                "is set but MATTERMOST_CHANNEL is not: set the channel to post in (team/channel) or remove it",
            ));
        }
        problems.into_result(Some(MattermostSettings {
            url,
            token,
            busy_status,
            custom,
            expiry,
            channel,
            post_on,
        }))
    }
}

fn post_states(value: &str) -> Result<Vec<PostOn>, Problem> {
    let mut out = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let name = name.to_ascii_lowercase();
        if name == "all" {
            return Ok(PostOn::ALL.iter().map(|(_, p)| *p).collect());
        }
        match PostOn::ALL.iter().find(|(n, _)| *n == name) {
            Some((_, p)) if !out.contains(p) => out.push(*p),
            Some(_) => {}
            None => {
                return Err(Problem::in_var(
                    "MATTERMOST_POST_STATES",
                    format!(
                    "unknown change {name:?}; valid: ringing, busy, hold, idle, offline, dnd, all \
                         (default {DEFAULT_POST_STATES})"
                ),
                ))
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(pairs: &[(&str, &str)]) -> Result<Option<MattermostSettings>, String> {
        MattermostSettings::from_env(&Env::from_pairs(pairs.iter().copied()))
            .map_err(|p| p.to_string())
    }

    const BASE: [(&str, &str); 2] = [
        ("MATTERMOST_URL", "https://chat.example.com/"),
        ("MATTERMOST_TOKEN", "s3cr3t-token"),
    ];

    #[test]
    fn defaults_show_dnd_and_on_the_phone_without_posts() {
        assert_eq!(read(&[]), Ok(None));
        let s = read(&BASE).unwrap().unwrap();
        assert_eq!(s.url, "https://chat.example.com");
        assert_eq!(s.busy_status.as_deref(), Some("dnd"));
        assert_eq!(
            s.custom,
            Some(("telephone_receiver".into(), "On the phone".into()))
        );
        assert_eq!(s.expiry, Duration::from_secs(4 * 3600));
        assert_eq!(s.channel, None);
        assert_eq!(s.post_on, [PostOn::Dnd, PostOn::Offline]);
        assert!(
            !format!("{s:?}").contains("s3cr3t"),
            "Debug shows the token"
        );
    }

    #[test]
    fn each_bad_value_is_named_with_its_fix() {
        assert_eq!(read(&[("MATTERMOST_BUSY_STATUS", "dnd")]), Ok(None));
        let e = read(&[
            ("MATTERMOST_TOKEN", " "),
            ("MATTERMOST_URL", "chat"),
            ("MATTERMOST_CHANNEL", "town-square"),
        ])
        .unwrap_err();
        for want in ["MATTERMOST_URL", "not an http(s) URL", "team/channel"] {
            assert!(e.contains(want), "{want}: {e}");
        }
        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("MATTERMOST_BUSY_STATUS", "busy"),
            ("MATTERMOST_BUSY_EXPIRY_MINUTES", "0"),
            ("MATTERMOST_POST_STATES", "busy,offhook"),
        ]);
        let e = read(&pairs).unwrap_err();
        for want in [
            "dnd, away, offline or none",
            "1 to 10080",
            "\"offhook\"",
            "MATTERMOST_CHANNEL is not",
        ] {
            assert!(e.contains(want), "{want}: {e}");
        }
        assert!(!e.contains("s3cr3t"));
        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("MATTERMOST_BUSY_STATUS", "none"),
            ("MATTERMOST_CUSTOM_STATUS", "none"),
        ]);
        assert!(read(&pairs).unwrap_err().contains("would show nothing"));
        let mut pairs = BASE.to_vec();
        pairs.extend([
            ("MATTERMOST_CHANNEL", "acme/phones"),
            ("MATTERMOST_POST_STATES", "all"),
        ]);
        let s = read(&pairs).unwrap().unwrap();
        assert_eq!(s.channel, Some(("acme".into(), "phones".into())));
        assert_eq!(s.post_on.len(), 6);
    }
}
