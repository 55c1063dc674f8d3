//! The presence model: sessions, timeouts, expiry and aggregation.
//!
//! Sans-IO: every function takes `now` and never looks at a clock itself.
//! The rules come from `FACTS.md` §1–§2 (the setPresence, clearPresence and
//! setUserPreferredPresence pages and the "Manage presence state" concept page).

use std::time::{Duration, Instant};

/// The availability/activity pairs that `setPresence` accepts (FACTS §1, the v1.0 page of 2024-04-04).
pub const SET_PRESENCE_PAIRS: [(&str, &str); 5] = [
    ("Available", "Available"),
    ("Busy", "InACall"),
    ("Busy", "InAConferenceCall"),
    ("Away", "Away"),
    ("DoNotDisturb", "Presenting"),
];

/// The pairs that `setUserPreferredPresence` accepts (FACTS §2).
pub const PREFERRED_PAIRS: [(&str, &str); 6] = [
    ("Available", "Available"),
    ("Busy", "Busy"),
    ("DoNotDisturb", "DoNotDisturb"),
    ("BeRightBack", "BeRightBack"),
    ("Away", "Away"),
    ("Offline", "OffWork"),
];

/// The shortest accepted `expirationDuration` (PT5M).
pub const MIN_EXPIRATION: Duration = Duration::from_secs(5 * 60);
/// The longest accepted `expirationDuration` (PT4H).
pub const MAX_EXPIRATION: Duration = Duration::from_secs(240 * 60);
/// An app-set `Available` fades to `Available/AvailableInactive` after this long
/// and to `Away/Away` after twice this long (FACTS §1 "Timeout vs expiration", §8.2).
pub const AVAILABLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);

/// An availability/activity pair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresencePair {
    /// Base presence, e.g. `Busy`.
    pub availability: String,
    /// Supplementary activity, e.g. `InACall`.
    pub activity: String,
}

impl PresencePair {
    /// Builds a pair.
    pub fn new(availability: &str, activity: &str) -> Self {
        Self {
            availability: availability.to_owned(),
            activity: activity.to_owned(),
        }
    }
}

/// The application's presence session for one user, as set by `setPresence`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppSession {
    /// The `sessionId` (always the application's client id).
    pub session_id: String,
    /// The pair as set.
    pub pair: PresencePair,
    /// When it was (last) set.
    pub set_at: Instant,
    /// When the session expires (`set_at + expirationDuration`).
    pub expires_at: Instant,
}

impl AppSession {
    /// The session's state at `now`, after the Available timeout, or `None` once expired.
    pub fn state_at(&self, now: Instant) -> Option<PresencePair> {
        if now >= self.expires_at {
            return None;
        }
        if self.pair.availability == "Available" {
            let idle = now.saturating_duration_since(self.set_at);
            if idle >= AVAILABLE_TIMEOUT * 2 {
                return Some(PresencePair::new("Away", "Away"));
            }
            if idle >= AVAILABLE_TIMEOUT {
                return Some(PresencePair::new("Available", "AvailableInactive"));
            }
        }
        Some(self.pair.clone())
    }
}

/// A user-preferred presence (what the user picks in Teams, or `setUserPreferredPresence`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Preferred {
    /// The pair.
    pub pair: PresencePair,
    /// When it stops applying.
    pub expires_at: Instant,
}

/// A status message set by `setStatusMessage`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatusMessage {
    /// The text.
    pub content: String,
    /// The `expiryDateTime` as sent (`dateTime`, `timeZone`), if any.
    pub expiry: Option<(String, String)>,
}

/// Everything the emulator knows about one user.
#[derive(Debug, Clone, Default)]
pub struct UserState {
    /// The app session, if any (one per application; there is only one application).
    pub app_session: Option<AppSession>,
    /// Sessions of Teams clients (desktop, mobile, …) set by the test; they do not expire.
    pub client_sessions: Vec<PresencePair>,
    /// The user-preferred presence, if set.
    pub preferred: Option<Preferred>,
    /// The status message, if set.
    pub status_message: Option<StatusMessage>,
}

/// Rank of a session-level availability: DoNotDisturb > Busy > Available > Away (FACTS §1).
fn rank(availability: &str) -> u8 {
    match availability {
        "DoNotDisturb" => 5,
        "Busy" | "BusyIdle" => 4,
        "Available" | "AvailableIdle" => 3,
        "Away" => 2,
        "BeRightBack" => 1,
        _ => 0,
    }
}

impl UserState {
    /// Drops an expired app session or preferred presence.
    pub fn expire(&mut self, now: Instant) {
        if self
            .app_session
            .as_ref()
            .is_some_and(|s| now >= s.expires_at)
        {
            self.app_session = None;
        }
        if self.preferred.as_ref().is_some_and(|p| now >= p.expires_at) {
            self.preferred = None;
        }
    }

    /// The aggregated presence at `now`.
    ///
    /// * No live session → `Offline/Offline` (an expired app session becomes Offline;
    ///   a preferred presence "takes effect only when at least one presence session exists").
    /// * Otherwise the user-preferred presence wins over every session.
    /// * Otherwise the highest-ranked session: DoNotDisturb > Busy > Available > Away.
    pub fn aggregate(&self, now: Instant) -> PresencePair {
        let mut sessions: Vec<PresencePair> = self.client_sessions.clone();
        if let Some(state) = self.app_session.as_ref().and_then(|s| s.state_at(now)) {
            sessions.push(state);
        }
        if sessions.is_empty() {
            return PresencePair::new("Offline", "Offline");
        }
        if let Some(p) = self.preferred.as_ref().filter(|p| now < p.expires_at) {
            return p.pair.clone();
        }
        let mut best = PresencePair::new("Offline", "Offline");
        let mut best_rank = 0;
        for s in sessions {
            let r = rank(&s.availability);
            if r > best_rank {
                best_rank = r;
                best = s;
            }
        }
        best
    }
}

/// Parses an ISO 8601 duration of the forms Graph uses (`PT5M`, `PT1H30M`, `P1D`, `PT300S`).
///
/// Years and months are refused because their length is ambiguous.
pub fn parse_iso8601_duration(s: &str) -> Option<Duration> {
    let rest = s.strip_prefix('P')?;
    if rest.is_empty() || s.len() > 64 {
        return None;
    }
    let (date, time) = match rest.split_once('T') {
        Some((d, t)) => {
            if t.is_empty() {
                return None;
            }
            (d, Some(t))
        }
        None => (rest, None),
    };
    let mut total = 0f64;
    let mut parse_part = |part: &str, units: &[(char, f64)]| -> Option<()> {
        let mut num = String::new();
        let mut last_unit = 0usize;
        for c in part.chars() {
            if c.is_ascii_digit() || c == '.' {
                num.push(c);
                continue;
            }
            let pos = units.iter().position(|(u, _)| *u == c)?;
            if pos < last_unit || num.is_empty() {
                return None;
            }
            last_unit = pos + 1;
            let v: f64 = num.parse().ok()?;
            total += v * units[pos].1;
            num.clear();
        }
        if num.is_empty() {
            Some(())
        } else {
            None
        }
    };
    parse_part(date, &[('W', 604_800.0), ('D', 86_400.0)])?;
    if let Some(t) = time {
        parse_part(t, &[('H', 3600.0), ('M', 60.0), ('S', 1.0)])?;
    }
    if !total.is_finite() || total > 1e9 {
        return None;
    }
    Some(Duration::from_secs_f64(total))
}

/// True when `s` looks like an object id (a GUID, `8-4-4-4-12` hex digits).
pub fn is_guid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.chars().all(|c| c.is_ascii_hexdigit()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session(pair: (&str, &str), now: Instant, exp: Duration) -> AppSession {
        AppSession {
            session_id: "app".into(),
            pair: PresencePair::new(pair.0, pair.1),
            set_at: now,
            expires_at: now + exp,
        }
    }

    #[test]
    fn durations_parse() {
        assert_eq!(
            parse_iso8601_duration("PT5M"),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_iso8601_duration("PT4H"),
            Some(Duration::from_secs(14400))
        );
        assert_eq!(
            parse_iso8601_duration("PT1H30M"),
            Some(Duration::from_secs(5400))
        );
        assert_eq!(
            parse_iso8601_duration("P1D"),
            Some(Duration::from_secs(86400))
        );
        assert_eq!(
            parse_iso8601_duration("PT90S"),
            Some(Duration::from_secs(90))
        );
        for bad in ["", "P", "PT", "5M", "PTM", "PT5X", "PT5M1H", "P1Y"] {
            assert_eq!(parse_iso8601_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn available_fades_then_expires_to_offline() {
        let t0 = Instant::now();
        let mut u = UserState {
            app_session: Some(session(
                ("Available", "Available"),
                t0,
                Duration::from_secs(3600),
            )),
            ..UserState::default()
        };
        let m = Duration::from_secs(60);
        assert_eq!(
            u.aggregate(t0 + 4 * m),
            PresencePair::new("Available", "Available")
        );
        assert_eq!(
            u.aggregate(t0 + 5 * m),
            PresencePair::new("Available", "AvailableInactive")
        );
        assert_eq!(u.aggregate(t0 + 10 * m), PresencePair::new("Away", "Away"));
        assert_eq!(
            u.aggregate(t0 + 60 * m),
            PresencePair::new("Offline", "Offline")
        );
        u.expire(t0 + 60 * m);
        assert!(u.app_session.is_none());
    }

    #[test]
    fn busy_does_not_fade() {
        let t0 = Instant::now();
        let u = UserState {
            app_session: Some(session(("Busy", "InACall"), t0, Duration::from_secs(3600))),
            ..UserState::default()
        };
        assert_eq!(
            u.aggregate(t0 + Duration::from_secs(3000)),
            PresencePair::new("Busy", "InACall")
        );
    }

    #[test]
    fn precedence_preferred_then_dnd_busy_available_away() {
        let t0 = Instant::now();
        let mut u = UserState {
            app_session: Some(session(
                ("Available", "Available"),
                t0,
                Duration::from_secs(3600),
            )),
            client_sessions: vec![PresencePair::new("Away", "Away")],
            ..UserState::default()
        };
        assert_eq!(u.aggregate(t0).availability, "Available");
        u.client_sessions
            .push(PresencePair::new("Busy", "InAMeeting"));
        assert_eq!(u.aggregate(t0), PresencePair::new("Busy", "InAMeeting"));
        u.app_session = Some(session(
            ("DoNotDisturb", "Presenting"),
            t0,
            Duration::from_secs(3600),
        ));
        assert_eq!(u.aggregate(t0).availability, "DoNotDisturb");
        u.preferred = Some(Preferred {
            pair: PresencePair::new("Available", "Available"),
            expires_at: t0 + Duration::from_secs(60),
        });
        assert_eq!(u.aggregate(t0).availability, "Available");
        // Preferred without any session shows Offline.
        let lonely = UserState {
            preferred: u.preferred.clone(),
            ..UserState::default()
        };
        assert_eq!(lonely.aggregate(t0).availability, "Offline");
    }

    #[test]
    fn guid_shape() {
        assert!(is_guid("6e1a2b3c-0000-4000-8000-00000000000a"));
        assert!(!is_guid("alice@contoso.com"));
        assert!(!is_guid("6e1a2b3c-0000-4000-8000-00000000000"));
    }
}
