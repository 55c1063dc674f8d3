//! What the webhook sends, without I/O: a person's [`Snapshot`] from their
//! view, and the signed request ([`SignedRequest`]) built from a snapshot,
//! the reason and the time.
//!
//! The signature is `sha256=<hex HMAC-SHA256(secret, timestamp "." body)>`
//! over the exact body bytes, with the timestamp sent in `X-Timestamp`: a
//! receiver recomputes it to reject forgeries, and rejects old timestamps
//! to reject replays.

use std::time::{SystemTime, UNIX_EPOCH};

use ring::hmac;
use serde::Serialize;
use sip_blf_engine::{Direction, LineState, Party, View, WriteReason};

use crate::engine::{Mapping, PresenceAction};
use crate::people::blf_line_state;
use crate::teams_source::TEAMS;

/// The header with the signing time, in unix seconds.
pub const TIMESTAMP_HEADER: &str = "X-Timestamp";
/// The header with the signature, `sha256=<hex>`.
pub const SIGNATURE_HEADER: &str = "X-Signature-256";

/// Who a person is, from the extension list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonInfo {
    /// The name of the first of their entries that has one.
    pub name: Option<String>,
    /// Their UPN (e-mail), when the list gives one.
    pub email: Option<String>,
    /// Their extensions, in list order.
    pub extensions: Vec<String>,
    /// The Teams mapping that applies to them.
    pub mapping: Mapping,
}

/// One extension of a person in the payload.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtensionState {
    /// The extension (`1001`).
    pub extension: String,
    /// Its line: `idle`, `ringing`, `busy`, `hold`, `offline`, `unknown`
    /// (`unknown` before its first report).
    pub state: LineState,
    /// Its do-not-disturb, once reported.
    pub dnd: Option<bool>,
    /// Its registration, once reported.
    pub registered: Option<bool>,
    /// The other party of its call, if known.
    pub counterparty: Option<Party>,
    /// `inbound` or `outbound`, if known.
    pub direction: Option<Direction>,
}

/// What the webhook holds for a person: the payload without the reason and
/// the time. Two equal snapshots are one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Snapshot {
    /// The person's id (`Extension::user`: the object id, else the UPN).
    pub person: String,
    /// Their name, when the extension list has one.
    pub name: Option<String>,
    /// Their UPN (e-mail), when the extension list has one.
    pub email: Option<String>,
    /// The combined line state (a call on any phone wins).
    pub state: LineState,
    /// Do-not-disturb on any phone.
    pub dnd: bool,
    /// Registered on any phone (`null` before any report).
    pub registered: Option<bool>,
    /// The other party of the call that gives `state`, if known.
    pub counterparty: Option<Party>,
    /// Its direction, if known.
    pub direction: Option<Direction>,
    /// What the Teams sink sets for this state under the person's mapping:
    /// `Availability/Activity` (`Busy/InACall`), `clear` or `keep`.
    pub teams_presence: String,
    /// Each of their extensions.
    pub extensions: Vec<ExtensionState>,
}

impl Snapshot {
    /// The snapshot of `view` for the person `info` describes.
    pub fn of(view: &View, info: &PersonInfo) -> Snapshot {
        let extensions = info
            .extensions
            .iter()
            .map(|extension| extension_state(view, extension))
            .collect();
        let teams = info.mapping.action_for(blf_line_state(view.line), view.dnd);
        Snapshot {
            person: view.person.0.clone(),
            name: info.name.clone(),
            email: info.email.clone(),
            state: view.line,
            dnd: view.dnd,
            registered: view.registered,
            counterparty: view.counterparty.clone(),
            direction: view.direction,
            teams_presence: match teams {
                PresenceAction::Set(pair) => pair.to_string(),
                PresenceAction::Clear => "clear".to_owned(),
                PresenceAction::Keep => "keep".to_owned(),
            },
            extensions,
        }
    }
}

/// `extension`'s line in `view`: the busiest report of that address from
/// any phone system (Teams' address is the person, not a phone).
fn extension_state(view: &View, extension: &str) -> ExtensionState {
    let line = view
        .lines
        .iter()
        .filter(|l| l.address.address == extension && l.address.system != TEAMS)
        .max_by_key(|l| l.line.person_rank());
    match line {
        Some(l) => ExtensionState {
            extension: extension.to_owned(),
            state: l.line,
            dnd: l.dnd,
            registered: l.registered,
            counterparty: l.counterparty.clone(),
            direction: l.direction,
        },
        None => ExtensionState {
            extension: extension.to_owned(),
            state: LineState::Unknown,
            dnd: None,
            registered: None,
            counterparty: None,
            direction: None,
        },
    }
}

/// The body: the snapshot's fields, then why and when.
#[derive(Serialize)]
struct Body<'a> {
    #[serde(flatten)]
    snapshot: &'a Snapshot,
    reason: &'static str,
    time: String,
    timestamp: u64,
}

/// A request ready to send: the body and its two headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedRequest {
    /// The JSON body, exactly as signed.
    pub body: Vec<u8>,
    /// `X-Timestamp`: unix seconds.
    pub timestamp: u64,
    /// `X-Signature-256`: `sha256=<hex>`.
    pub signature: String,
}

impl SignedRequest {
    /// The headers to send with the body.
    pub fn headers(&self) -> [(&'static str, String); 2] {
        [
            (TIMESTAMP_HEADER, self.timestamp.to_string()),
            (SIGNATURE_HEADER, self.signature.clone()),
        ]
    }
}

/// The signing key for `secret` (HMAC-SHA256).
pub fn signing_key(secret: &str) -> hmac::Key {
    hmac::Key::new(hmac::HMAC_SHA256, secret.as_bytes())
}

/// `sha256=<hex HMAC-SHA256(key, timestamp "." body)>`.
pub fn signature(key: &hmac::Key, timestamp: u64, body: &[u8]) -> String {
    let mut context = hmac::Context::with_key(key);
    context.update(timestamp.to_string().as_bytes());
    context.update(b".");
    context.update(body);
    format!("sha256={}", hex::encode(context.sign().as_ref()))
}

/// `now` as unix seconds and as ISO-8601 UTC (`time` and `timestamp`).
pub(super) fn stamp(now: SystemTime) -> (u64, String) {
    // Before 1970 only with a broken clock: 0 then, and receivers refuse it.
    let timestamp = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let time = chrono::DateTime::<chrono::Utc>::from(
        UNIX_EPOCH + std::time::Duration::from_secs(timestamp),
    )
    .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    (timestamp, time)
}

/// The signed request for `snapshot`, sent for `reason` at `now`.
pub fn signed_request(
    key: &hmac::Key,
    snapshot: &Snapshot,
    reason: WriteReason,
    now: SystemTime,
) -> SignedRequest {
    let (timestamp, time) = stamp(now);
    let body = Body {
        snapshot,
        reason: reason.as_str(),
        time,
        timestamp,
    };
    // Plain strings, enums and options: serialising cannot fail.
    let body = serde_json::to_vec(&body).unwrap_or_default();
    let signature = signature(key, timestamp, &body);
    SignedRequest {
        body,
        timestamp,
        signature,
    }
}

#[cfg(test)]
#[path = "payload_tests.rs"]
mod tests;
