//! What to put back when a call ends (sans-IO: the clock comes in as an
//! argument).
//!
//! Before the first change for a call the sink keeps what the person had
//! ([`Saved::before`]) and what it sets ([`Saved::ours`]). When the call
//! ends, each part (status, custom status) goes back to what it was, unless
//! Mattermost no longer shows what was set: then the person changed it
//! during the call, and their choice stays.

use serde::{Deserialize, Serialize};

use super::client::{CustomStatus, UserStatus};

/// What the person had before the call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Before {
    /// Their status.
    pub status: UserStatus,
    /// Their custom status, if any.
    pub custom: Option<CustomStatus>,
}

/// What the sink set while busy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct Ours {
    /// The status (`dnd`), if one is set.
    pub status: Option<String>,
    /// The custom status's `(emoji, text)`, if one is set.
    pub custom: Option<(String, String)>,
}

/// One person's saved state for the call under way (persisted).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Saved {
    /// Their Mattermost user id.
    pub user_id: String,
    /// What they had.
    pub before: Before,
    /// What was set.
    pub ours: Ours,
    /// Whether what was set is known to be in place.
    pub applied: bool,
}

/// What to do with the status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusStep {
    /// Leave it (not ours, or changed by the person).
    Leave,
    /// Set it, with this DND end (epoch seconds, 0: none).
    Set(String, i64),
}

/// What to do with the custom status.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CustomStep {
    /// Leave it.
    Leave,
    /// Put this one back.
    Put(CustomStatus),
    /// Remove it (there was none, or it has expired meanwhile).
    Clear,
}

/// Whether an RFC 3339 expiry has passed at `now` (epoch seconds); empty
/// or unreadable means none.
fn expired(expires_at: &str, now: i64) -> bool {
    chrono::DateTime::parse_from_rfc3339(expires_at)
        .is_ok_and(|t| t.timestamp() > 0 && t.timestamp() <= now)
}

/// The steps that restore `saved`, given what Mattermost shows now
/// (`status`, `custom`) at `now` (epoch seconds).
pub fn plan(
    saved: &Saved,
    status: &UserStatus,
    custom: Option<&CustomStatus>,
    now: i64,
) -> (StatusStep, CustomStep) {
    let status_step = match &saved.ours.status {
        Some(ours) if *ours == status.status => {
            let b = &saved.before.status;
            let dnd_over = b.status == "dnd" && b.dnd_end_time > 0 && b.dnd_end_time <= now;
            if b.manual && !dnd_over {
                StatusStep::Set(b.status.clone(), b.dnd_end_time)
            } else {
                // An automatic status: `online` hands it back to Mattermost's
                // activity tracking (it is the one status that is not manual).
                StatusStep::Set("online".into(), 0)
            }
        }
        _ => StatusStep::Leave,
    };
    let shows_ours = match (&saved.ours.custom, custom) {
        (Some((emoji, text)), Some(c)) => c.emoji == *emoji && c.text == *text,
        _ => false,
    };
    let custom_step = if !shows_ours {
        CustomStep::Leave
    } else {
        match &saved.before.custom {
            Some(c) if !expired(&c.expires_at, now) => CustomStep::Put(c.clone()),
            _ => CustomStep::Clear,
        }
    };
    (status_step, custom_step)
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_750_000_000;

    fn status(s: &str, manual: bool, end: i64) -> UserStatus {
        UserStatus {
            status: s.into(),
            manual,
            dnd_end_time: end,
        }
    }

    fn custom(emoji: &str, text: &str, expires_at: &str) -> CustomStatus {
        CustomStatus {
            emoji: emoji.into(),
            text: text.into(),
            duration: String::new(),
            expires_at: expires_at.into(),
        }
    }

    fn saved(before: UserStatus, before_custom: Option<CustomStatus>) -> Saved {
        Saved {
            user_id: "u1".into(),
            before: Before {
                status: before,
                custom: before_custom,
            },
            ours: Ours {
                status: Some("dnd".into()),
                custom: Some(("telephone_receiver".into(), "On the phone".into())),
            },
            applied: true,
        }
    }

    fn ours_custom() -> CustomStatus {
        custom("telephone_receiver", "On the phone", "2099-01-01T00:00:00Z")
    }

    #[test]
    fn what_the_person_had_comes_back_not_a_blind_online() {
        let lunch = custom("hamburger", "Lunch", "2099-01-01T00:00:00Z");
        let s = saved(status("away", true, 0), Some(lunch.clone()));
        let (st, cu) = plan(
            &s,
            &status("dnd", true, NOW + 60),
            Some(&ours_custom()),
            NOW,
        );
        assert_eq!(st, StatusStep::Set("away".into(), 0));
        assert_eq!(cu, CustomStep::Put(lunch));
        // A timed DND of their own keeps its end.
        let s = saved(status("dnd", true, NOW + 600), None);
        let (st, cu) = plan(
            &s,
            &status("dnd", true, NOW + 60),
            Some(&ours_custom()),
            NOW,
        );
        assert_eq!(st, StatusStep::Set("dnd".into(), NOW + 600));
        assert_eq!(cu, CustomStep::Clear, "there was no custom status");
    }

    #[test]
    fn an_automatic_status_or_a_dnd_that_ended_is_handed_back_as_online() {
        let s = saved(status("away", false, 0), None);
        let (st, _) = plan(&s, &status("dnd", true, 0), None, NOW);
        assert_eq!(st, StatusStep::Set("online".into(), 0));
        let s = saved(status("dnd", true, NOW - 1), None);
        let (st, _) = plan(&s, &status("dnd", true, 0), None, NOW);
        assert_eq!(st, StatusStep::Set("online".into(), 0));
        // A custom status that expired during the call is not put back.
        let s = saved(
            status("online", false, 0),
            Some(custom("x", "y", "2001-01-01T00:00:00Z")),
        );
        let (_, cu) = plan(&s, &status("dnd", true, 0), Some(&ours_custom()), NOW);
        assert_eq!(cu, CustomStep::Clear);
    }

    #[test]
    fn what_the_person_changed_during_the_call_stays() {
        let s = saved(status("online", false, 0), None);
        let theirs = custom("palm_tree", "Holiday", "");
        let (st, cu) = plan(&s, &status("away", true, 0), Some(&theirs), NOW);
        assert_eq!((st, cu), (StatusStep::Leave, CustomStep::Leave));
        // One part changed, the other not: only ours is restored.
        let (st, cu) = plan(&s, &status("dnd", true, 0), Some(&theirs), NOW);
        assert_eq!(
            (st, cu),
            (StatusStep::Set("online".into(), 0), CustomStep::Leave)
        );
        let (_, cu) = plan(&s, &status("dnd", true, 0), None, NOW);
        assert_eq!(cu, CustomStep::Leave, "they cleared it themselves");
    }

    #[test]
    fn parts_not_set_are_left_alone() {
        let mut s = saved(status("away", true, 0), None);
        s.ours = Ours::default();
        let (st, cu) = plan(&s, &status("away", true, 0), Some(&ours_custom()), NOW);
        assert_eq!((st, cu), (StatusStep::Leave, CustomStep::Leave));
    }
}
