//! Times on the wire: RFC 3339 UTC strings with milliseconds
//! (`2026-12-03T10:00:00.123Z`).

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Deserializer, Serializer};

/// `at` as RFC 3339 UTC with milliseconds.
pub fn format(at: SystemTime) -> String {
    DateTime::<Utc>::from(at).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Parses an RFC 3339 time (any offset).
pub fn parse(text: &str) -> Option<SystemTime> {
    DateTime::parse_from_rfc3339(text)
        .ok()
        .map(|t| SystemTime::from(t.with_timezone(&Utc)))
}

/// Serde of `SystemTime` as RFC 3339 (`#[serde(with = "crate::time::rfc3339")]`).
pub mod rfc3339 {
    use super::*;

    /// Writes `at` as RFC 3339.
    pub fn serialize<S: Serializer>(at: &SystemTime, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format(*at))
    }

    /// Reads an RFC 3339 time.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<SystemTime, D::Error> {
        let text = String::deserialize(d)?;
        parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}")))
    }
}

/// Serde of `Option<SystemTime>` as RFC 3339 or `null`.
pub mod rfc3339_opt {
    use super::*;

    /// Writes `at` as RFC 3339, or `null`.
    pub fn serialize<S: Serializer>(at: &Option<SystemTime>, s: S) -> Result<S::Ok, S::Error> {
        match at {
            Some(at) => s.serialize_str(&format(*at)),
            None => s.serialize_none(),
        }
    }

    /// Reads an RFC 3339 time or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<SystemTime>, D::Error> {
        match Option::<String>::deserialize(d)? {
            None => Ok(None),
            Some(text) => parse(&text)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("not an RFC 3339 time: {text:?}"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn millisecond_utc_round_trip() {
        let at = SystemTime::UNIX_EPOCH + Duration::from_millis(1_796_292_000_123);
        let text = format(at);
        assert_eq!(text, "2026-12-03T10:00:00.123Z");
        assert_eq!(parse(&text), Some(at));
        assert_eq!(parse("2026-12-03T11:00:00.123+01:00"), Some(at));
        assert_eq!(parse("yesterday"), None);
    }
}
