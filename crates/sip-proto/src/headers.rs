//! Parsers for the header fields the user agent acts on.
//!
//! `Event` (RFC 6665 §8.2.1), `Subscription-State` (§8.2.3), `Min-Expires`,
//! `Retry-After`, `Expires` (RFC 3261 §20) and `Via` (with RFC 3581 `rport`).
//! The authentication challenges are in [`crate::digest`].

use std::net::IpAddr;

use crate::error::ParseError;
use crate::message::{param, split_params};

/// Longest delta-seconds value we accept: RFC 3261 caps them at 2^32-1, we cap
/// at ten years so arithmetic on `Instant`s cannot overflow.
pub const MAX_DELTA_SECONDS: u32 = 10 * 365 * 24 * 3600;

/// Parses a delta-seconds value (`Expires`, `Min-Expires`), clamped to [`MAX_DELTA_SECONDS`].
pub fn parse_delta_seconds(v: &str) -> Option<u32> {
    let v = v.trim();
    if v.is_empty() || v.len() > 12 || !v.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = v.parse().ok()?;
    Some(n.min(u64::from(MAX_DELTA_SECONDS)) as u32)
}

/// `Min-Expires: 60`.
pub fn parse_min_expires(v: &str) -> Option<u32> {
    parse_delta_seconds(v)
}

/// `Retry-After: 120 (I'm in a meeting);duration=60` → 120.
pub fn parse_retry_after(v: &str) -> Option<u32> {
    let v = v.trim();
    let end = v.find(|c: char| !c.is_ascii_digit()).unwrap_or(v.len());
    parse_delta_seconds(v.get(..end)?)
}

/// An `Event` header: package and optional `id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventHeader {
    /// Event package, lower-cased (`dialog`, `presence`).
    pub package: String,
    /// The `id` parameter.
    pub id: Option<String>,
}

/// Parses `Event: dialog;id=1`.
pub fn parse_event(v: &str) -> Result<EventHeader, ParseError> {
    let (pkg, params) = split_params(v);
    if pkg.is_empty()
        || !pkg
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
    {
        return Err(ParseError::BadValue("Event"));
    }
    let id = params
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("id"))
        .and_then(|(_, v)| v.map(str::to_string));
    Ok(EventHeader {
        package: pkg.to_ascii_lowercase(),
        id,
    })
}

/// The state in a `Subscription-State` header.
///
/// Exhaustive on purpose: RFC 6665 §4.1.3 fixes the three states a
/// subscriber acts on, and any other value arrives as [`Other`](Self::Other),
/// so a `match` over it stays complete.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubState {
    /// `active`
    Active,
    /// `pending`
    Pending,
    /// `terminated`
    Terminated,
    /// An extension value.
    Other(String),
}

/// Why a subscription was terminated (RFC 6665 §4.2.2). The reason codes
/// form an IANA registry that may grow, so more variants may come.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum TerminationReason {
    /// `deactivated`: re-subscribe at once.
    Deactivated,
    /// `probation`: re-subscribe after `retry-after`.
    Probation,
    /// `rejected`: not allowed.
    Rejected,
    /// `timeout`: re-subscribe at once.
    Timeout,
    /// `giveup`: re-subscribe after `retry-after`.
    Giveup,
    /// `noresource`: the resource does not exist.
    Noresource,
    /// `invariant`: the resource will never change; do not re-subscribe.
    Invariant,
    /// An extension value.
    Other(String),
}

impl TerminationReason {
    fn parse(v: &str) -> Self {
        match v.to_ascii_lowercase().as_str() {
            "deactivated" => Self::Deactivated,
            "probation" => Self::Probation,
            "rejected" => Self::Rejected,
            "timeout" => Self::Timeout,
            "giveup" => Self::Giveup,
            "noresource" => Self::Noresource,
            "invariant" => Self::Invariant,
            other => Self::Other(other.to_string()),
        }
    }
}

impl std::fmt::Display for TerminationReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let s = match self {
            Self::Deactivated => "deactivated",
            Self::Probation => "probation",
            Self::Rejected => "rejected",
            Self::Timeout => "timeout",
            Self::Giveup => "giveup",
            Self::Noresource => "noresource",
            Self::Invariant => "invariant",
            Self::Other(s) => s,
        };
        f.write_str(s)
    }
}

/// A parsed `Subscription-State` header.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionState {
    /// active / pending / terminated.
    pub state: SubState,
    /// `expires` parameter (seconds left).
    pub expires: Option<u32>,
    /// `reason` parameter.
    pub reason: Option<TerminationReason>,
    /// `retry-after` parameter (seconds).
    pub retry_after: Option<u32>,
}

/// Parses `Subscription-State: terminated;reason=probation;retry-after=30`.
pub fn parse_subscription_state(v: &str) -> Result<SubscriptionState, ParseError> {
    let (state, params) = split_params(v);
    let state = match state.to_ascii_lowercase().as_str() {
        "active" => SubState::Active,
        "pending" => SubState::Pending,
        "terminated" => SubState::Terminated,
        "" => return Err(ParseError::BadValue("Subscription-State")),
        other => SubState::Other(other.to_string()),
    };
    let mut out = SubscriptionState {
        state,
        expires: None,
        reason: None,
        retry_after: None,
    };
    for (n, v) in params {
        let Some(v) = v else { continue };
        if n.eq_ignore_ascii_case("expires") {
            out.expires = parse_delta_seconds(v);
        } else if n.eq_ignore_ascii_case("reason") {
            out.reason = Some(TerminationReason::parse(v));
        } else if n.eq_ignore_ascii_case("retry-after") {
            out.retry_after = parse_delta_seconds(v);
        }
    }
    Ok(out)
}

/// What the user agent needs from a `Via` value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ViaInfo {
    /// `UDP`, `TCP`, ...
    pub transport: String,
    /// host[:port]
    pub sent_by: String,
    /// `branch`
    pub branch: Option<String>,
    /// `received` (RFC 3261 §18.2.1)
    pub received: Option<IpAddr>,
    /// `rport` with a value (RFC 3581)
    pub rport: Option<u16>,
}

/// Parses `SIP/2.0/UDP host:port;branch=z9hG4bK..;received=1.2.3.4;rport=5060`.
pub fn parse_via(v: &str) -> Result<ViaInfo, ParseError> {
    let (first, _) = split_params(v);
    let mut it = first.split_whitespace();
    let proto = it.next().ok_or(ParseError::BadValue("Via"))?;
    let sent_by = it.next().ok_or(ParseError::BadValue("Via"))?;
    let transport = proto
        .rsplit('/')
        .next()
        .ok_or(ParseError::BadValue("Via"))?
        .to_ascii_uppercase();
    let get = |name: &str| param(v, name).flatten();
    Ok(ViaInfo {
        transport,
        sent_by: sent_by.to_string(),
        branch: get("branch").map(str::to_string),
        received: get("received")
            .and_then(|r| r.trim_start_matches('[').trim_end_matches(']').parse().ok()),
        rport: get("rport").and_then(|p| p.parse().ok()),
    })
}

/// The `expires` parameter of a Contact value (`<sip:..>;expires=3600`).
pub fn contact_expires(contact: &str) -> Option<u32> {
    crate::message::name_addr_param(contact, "expires").and_then(parse_delta_seconds)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subscription_state_variants() {
        let s = parse_subscription_state("active;expires=600").unwrap();
        assert_eq!(s.state, SubState::Active);
        assert_eq!(s.expires, Some(600));
        let s = parse_subscription_state("Terminated; reason=Probation ;retry-after=30").unwrap();
        assert_eq!(s.state, SubState::Terminated);
        assert_eq!(s.reason, Some(TerminationReason::Probation));
        assert_eq!(s.retry_after, Some(30));
        let s = parse_subscription_state("pending").unwrap();
        assert_eq!(s.state, SubState::Pending);
        assert!(parse_subscription_state("").is_err());
        let s = parse_subscription_state("terminated;reason=timeout").unwrap();
        assert_eq!(s.reason, Some(TerminationReason::Timeout));
        let s = parse_subscription_state("active;expires=99999999999999").unwrap();
        assert_eq!(s.expires, None);
        let s = parse_subscription_state("active;expires=4294967296").unwrap();
        assert_eq!(s.expires, Some(MAX_DELTA_SECONDS));
    }

    #[test]
    fn event_and_retry() {
        assert_eq!(
            parse_event("Dialog;id=7").unwrap(),
            EventHeader {
                package: "dialog".into(),
                id: Some("7".into())
            }
        );
        assert!(parse_event("dia log").is_err());
        assert_eq!(parse_retry_after("120 (meeting);duration=60"), Some(120));
        assert_eq!(parse_retry_after("x"), None);
        assert_eq!(parse_min_expires(" 60 "), Some(60));
        assert_eq!(parse_min_expires("-1"), None);
    }

    #[test]
    fn via_received_rport() {
        let v = parse_via(
            "SIP/2.0/UDP 10.0.0.2:5060;rport=40000;branch=z9hG4bKabc;received=203.0.113.1",
        )
        .unwrap();
        assert_eq!(v.transport, "UDP");
        assert_eq!(v.sent_by, "10.0.0.2:5060");
        assert_eq!(v.branch.as_deref(), Some("z9hG4bKabc"));
        assert_eq!(v.received, Some("203.0.113.1".parse().unwrap()));
        assert_eq!(v.rport, Some(40000));
        let v = parse_via("SIP/2.0/TCP h;rport").unwrap();
        assert_eq!(v.rport, None);
        assert!(parse_via("garbage").is_err());
    }

    #[test]
    fn contact_expires_param() {
        assert_eq!(
            contact_expires("<sip:blf@1.2.3.4:5090>;expires=120"),
            Some(120)
        );
        assert_eq!(contact_expires("<sip:blf@1.2.3.4:5090;expires=9>"), None);
    }
}
