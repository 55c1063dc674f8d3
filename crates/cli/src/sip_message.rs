//! The SIP MESSAGE sink (`SINKS=…,sip-message`, `SIP_MESSAGE_TO`): for web
//! phones that listen on a SIP account, one MESSAGE (RFC 3428) per extension
//! whose line changed, through the SIP source's registered user agent, with
//! `Content-Type: application/json` and the body
//! `{"to":"all","type":"statusupdate","data":"<extension>"}`; the web phones
//! then read that extension's state again.
//!
//! The sink keeps what it last sent per extension: a person with two phones
//! whose view changed on one gets one MESSAGE, for that phone. At start and on
//! a replay it sends one per extension, so that web phones read everything
//! again after a restart. A refused MESSAGE maps to a [`SinkError`] with the
//! fix; the lane retries it.

use std::collections::HashMap;
use std::future::Future;
use std::sync::{Mutex, PoisonError};

use sip_blf_engine::{LineView, Sink, SinkError, View, Write, WriteReason};
use sip_ua::driver::{MessageError, Messenger};

use crate::problems::{Problem, Problems};
use crate::settings::Env;
use crate::sip_source::PBX;

/// The content type of every MESSAGE.
pub const CONTENT_TYPE: &str = "application/json";

/// What to write for `SIP_MESSAGE_TO`.
const TO_HELP: &str = "use the SIP URI of the account the web phones listen on, e.g. \
                       sip:webphones@pbx.example.com";

/// The sink's settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SipMessageSettings {
    /// `SIP_MESSAGE_TO`: the recipient's SIP URI.
    pub to: String,
}

impl SipMessageSettings {
    /// Reads the settings; `Ok(None)` when `SIP_MESSAGE_TO` is not set.
    pub fn from_env(env: &Env) -> Result<Option<SipMessageSettings>, Problems> {
        let Some(to) = env.get("SIP_MESSAGE_TO") else {
            return Ok(None);
        };
        let to = to.trim();
        match check_uri(to) {
            Ok(()) => Ok(Some(SipMessageSettings { to: to.to_owned() })),
            Err(why) => Err(Problem::in_var("SIP_MESSAGE_TO", format!("{why}: {TO_HELP}")).into()),
        }
    }
}

/// `sip:user@host[:port][;params]` (or `sips:`), nothing that could break a
/// header line.
pub(crate) fn check_uri(to: &str) -> Result<(), String> {
    let lower = to.to_ascii_lowercase();
    let Some(rest) = lower
        .strip_prefix("sip:")
        .or_else(|| lower.strip_prefix("sips:"))
    else {
        return Err(format!("{to:?} is not a SIP URI (sip:…)"));
    };
    if to
        .chars()
        .any(|c| c.is_control() || c.is_whitespace() || "<>\",".contains(c))
    {
        return Err(format!(
            "{to:?} has a space, a quote, an angle bracket or a comma"
        ));
    }
    match rest.split_once('@') {
        Some((user, host)) if !user.is_empty() && !host.is_empty() => Ok(()),
        _ => Err(format!("{to:?} has no user@host")),
    }
}

/// The body that tells web phones to read `extension` again.
pub fn status_update(extension: &str) -> Vec<u8> {
    // In this order, as web phones written for it expect; the extension escaped.
    let data = serde_json::Value::from(extension);
    format!(r#"{{"to":"all","type":"statusupdate","data":{data}}}"#).into_bytes()
}

/// Sends one MESSAGE and waits for its final answer (the user agent's
/// [`Messenger`]; a fake in tests).
pub trait SendMessage: Send + Sync + 'static {
    /// `Ok(status)` for a 2xx.
    fn send(
        &self,
        to: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<u16, MessageError>> + Send;
}

impl SendMessage for Messenger {
    fn send(
        &self,
        to: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> impl Future<Output = Result<u16, MessageError>> + Send {
        Messenger::send(self, to, content_type, body)
    }
}

/// The sink: one MESSAGE per changed extension (see the module docs).
pub struct SipMessageSink<S = Messenger> {
    sender: S,
    to: String,
    /// What was last delivered per extension.
    sent: Mutex<HashMap<String, LineView>>,
}

impl<S: SendMessage> SipMessageSink<S> {
    /// A sink that sends to `to` through `sender`.
    pub fn new(sender: S, to: impl Into<String>) -> Self {
        Self {
            sender,
            to: to.into(),
            sent: Mutex::new(HashMap::new()),
        }
    }

    fn last_sent(&self, extension: &str) -> Option<LineView> {
        let sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        sent.get(extension).cloned()
    }

    fn record(&self, extension: &str, line: &LineView) {
        let mut sent = self.sent.lock().unwrap_or_else(PoisonError::into_inner);
        sent.insert(extension.to_owned(), line.clone());
    }

    /// Sends what one person's write needs; the first failure, if any.
    async fn write_one(&self, write: &Write<Vec<LineView>>) -> Result<(), SinkError> {
        let mut first_error = None;
        for line in &write.held {
            let extension = line.address.address.as_str();
            let changed = self.last_sent(extension).as_ref() != Some(line);
            if !changed && write.reason != WriteReason::Replay {
                continue;
            }
            match self
                .sender
                .send(&self.to, CONTENT_TYPE, status_update(extension))
                .await
            {
                Ok(_) => {
                    tracing::debug!(%extension, line = %line.line, to = %self.to, "status update sent");
                    self.record(extension, line);
                }
                Err(e) => {
                    // The others still go; the lane retries the failed ones.
                    first_error.get_or_insert_with(|| sink_error(extension, &self.to, e));
                }
            }
        }
        first_error.map_or(Ok(()), Err)
    }
}

/// A failed MESSAGE as the lane takes it, with the fix where one is known.
pub fn sink_error(extension: &str, to: &str, error: MessageError) -> SinkError {
    let about = format!("status update of {extension} to {to}");
    match error {
        MessageError::Invalid(reason) => {
            SinkError::permanent(format!("{about} not sent: {reason}; fix SIP_MESSAGE_TO"))
        }
        MessageError::Stopped => {
            SinkError::transient(format!("{about} not sent: the SIP user agent has stopped"))
        }
        MessageError::Failed { status, reason } => {
            let fix = match status {
                Some(401 | 407) => Some("check SIP_USERNAME and SIP_PASSWORD"),
                Some(403) => Some(
                    "let the SIP account (SIP_USERNAME) send MESSAGE requests at the PBX, \
                     to the account in SIP_MESSAGE_TO",
                ),
                Some(404 | 604) => Some(
                    "register the web phones on the account in SIP_MESSAGE_TO, or fix \
                     SIP_MESSAGE_TO",
                ),
                Some(413 | 415 | 488 | 606) => Some(
                    "the recipient must take application/json MESSAGEs: check that \
                     SIP_MESSAGE_TO names the web phones' account",
                ),
                Some(300..=399) => Some("set SIP_MESSAGE_TO to the address redirected to"),
                _ => None,
            };
            match (fix, status) {
                (Some(fix), _) => SinkError::permanent(format!("{about} failed: {reason}: {fix}")),
                (None, Some(480 | 486 | 408 | 500..=599) | None) => {
                    SinkError::transient(format!("{about} failed: {reason}"))
                }
                (None, Some(_)) => SinkError::permanent(format!("{about} failed: {reason}")),
            }
        }
        // A kind of failure this version does not know: retried.
        other => SinkError::transient(format!("{about} failed: {other}")),
    }
}

impl<S: SendMessage> Sink for SipMessageSink<S> {
    /// Every PBX line of the person, as it shows.
    type Held = Vec<LineView>;

    fn name(&self) -> &str {
        "sip-message"
    }

    fn desired(&self, view: &View) -> Option<Vec<LineView>> {
        let lines: Vec<LineView> = view
            .lines
            .iter()
            .filter(|l| l.address.system == PBX)
            .cloned()
            .collect();
        (!lines.is_empty()).then_some(lines)
    }

    async fn write(&self, batch: Vec<Write<Vec<LineView>>>) -> Vec<Result<(), SinkError>> {
        let writes = batch.iter().map(|w| self.write_one(w));
        futures_util::future::join_all(writes).await
    }
}

#[cfg(test)]
#[path = "sip_message_tests.rs"]
mod tests;
