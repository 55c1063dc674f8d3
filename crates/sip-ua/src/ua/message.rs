//! Instant messages (RFC 3428 MESSAGE): one request outside any dialog,
//! Request-URI = the recipient, a 2xx final answer means delivered. A
//! challenge (401/407, RFC 3261 §22) is answered once per message with a new
//! CSeq; a second one is a failure, not a loop. Over UDP the transaction
//! retransmits (Timer E) and gives up after Timer F (64·T1) with a 408.

use std::time::Instant;

use super::request::RequestFields;
use super::*;
use crate::error::{Error, InvalidRequest};

/// The largest MESSAGE body taken: with its headers and credentials the
/// request stays under the 1300 bytes RFC 3428 §8 allows over UDP.
pub const MAX_MESSAGE_BODY: usize = 800;

/// Identifies one MESSAGE sent with [`UserAgent::send_message`]; its outcome
/// ([`Event::MessageDelivered`] or [`Event::MessageFailed`]) carries it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MessageId(pub(crate) u64);

impl MessageId {
    /// The number behind the id (unique within one user agent).
    pub fn get(self) -> u64 {
        self.0
    }
}

/// One MESSAGE waiting for its final answer.
#[derive(Debug)]
pub(super) struct OutMessage {
    to: String,
    content_type: String,
    body: Vec<u8>,
    call_id: String,
    from_tag: String,
    cseq: u32,
    auth: DigestSession,
    /// A challenge was answered already: another one is a failure.
    challenged: bool,
    /// Branch of the request in flight.
    branch: String,
}

/// Checks the recipient and the content type, so that no caller can break the
/// request: `to` must be a `sip:`/`sips:` URI without spaces, quotes, angle
/// brackets or commas.
pub(crate) fn validate(to: &str, content_type: &str, body: &[u8]) -> Result<(), InvalidRequest> {
    let lower = to.to_ascii_lowercase();
    let bad_uri_char = |c: char| c.is_control() || c.is_whitespace() || "<>\",".contains(c);
    let host = lower
        .strip_prefix("sip:")
        .or_else(|| lower.strip_prefix("sips:"))
        .map(|rest| rest.rsplit('@').next().unwrap_or(rest));
    if host.is_none_or(str::is_empty) || to.chars().any(bad_uri_char) {
        return Err(InvalidRequest::Recipient(to.to_string()));
    }
    let ct = content_type.trim();
    if ct.is_empty() || !ct.contains('/') || ct.chars().any(char::is_control) {
        return Err(InvalidRequest::ContentType(content_type.to_string()));
    }
    if body.len() > MAX_MESSAGE_BODY {
        return Err(InvalidRequest::BodyTooLarge {
            len: body.len(),
            max: MAX_MESSAGE_BODY,
        });
    }
    Ok(())
}

impl UserAgent {
    /// Sends `body` (of `content_type`, e.g. `application/json`) to `to` (a
    /// SIP URI) in a MESSAGE (RFC 3428) from the configured account, through
    /// the PBX. The outcome arrives as [`Event::MessageDelivered`] (a 2xx) or
    /// [`Event::MessageFailed`] with the returned id. Needs no registration.
    /// Refused once [`shutdown`](Self::shutdown) was called; a MESSAGE still
    /// unanswered at shutdown fails with no status.
    pub fn send_message(
        &mut self,
        to: &str,
        content_type: &str,
        body: Vec<u8>,
        now: Instant,
    ) -> Result<MessageId, Error> {
        validate(to, content_type, &body)?;
        self.now = now;
        if self.shutting_down {
            return Err(Error::Stopped);
        }
        let id = self.next_id;
        self.next_id += 1;
        self.msgs.insert(
            id,
            OutMessage {
                to: to.to_string(),
                content_type: content_type.trim().to_string(),
                body,
                call_id: format!("{}@sip-ua", random_hex(12)),
                from_tag: random_hex(8),
                cseq: 0,
                // The last accepted credentials, so that most messages need
                // no challenge round; a fresh cnonce each.
                auth: self.msg_auth.fork(),
                challenged: false,
                branch: String::new(),
            },
        );
        self.send_msg(id, now);
        Ok(MessageId(id))
    }

    /// MESSAGEs sent and not yet answered.
    pub fn messages_in_flight(&self) -> usize {
        self.msgs.len()
    }

    fn send_msg(&mut self, id: u64, now: Instant) {
        let out = self.out_of_dialog();
        let Some(m) = self.msgs.get_mut(&id) else {
            return;
        };
        m.cseq += 1;
        let fields = RequestFields {
            method: "MESSAGE",
            uri: &m.to,
            call_id: &m.call_id,
            from_tag: &m.from_tag,
            cseq: m.cseq,
            headers: vec![("Content-Type", m.content_type.clone())],
            body: m.body.clone(),
        };
        let msg = out.request(fields, &mut m.auth);
        m.branch = out.branch.clone();
        self.send_request(Owner::Message(id), msg, out.branch, now);
    }

    pub(super) fn on_message_response(
        &mut self,
        id: u64,
        branch: &str,
        status: u16,
        msg: &Message,
        now: Instant,
    ) {
        let user = self.cfg.username.clone();
        let Some(m) = self.msgs.get_mut(&id).filter(|m| m.branch == branch) else {
            return;
        };
        if status == 401 || status == 407 {
            if m.challenged {
                let reason = format!(
                    "PBX challenged the MESSAGE for {} again after the credentials of user \
                     {user} ({status}): check the password",
                    m.to
                );
                return self.message_failed(id, Some(status), reason);
            }
            m.challenged = true;
            return match m.auth.on_challenge(msg, &user) {
                Ok(()) => self.send_msg(id, now),
                Err(e) => self.message_failed(id, Some(status), auth_reason(&e)),
            };
        }
        if (200..300).contains(&status) {
            let Some(mut m) = self.msgs.remove(&id) else {
                return;
            };
            m.auth.on_success();
            self.msg_auth = m.auth;
            self.events.push_back(Event::MessageDelivered {
                id: MessageId(id),
                to: m.to,
                status,
            });
            return;
        }
        let reason = diagnose_message_failure(status, phrase_of(msg), &m.to, &user);
        self.message_failed(id, Some(status), reason);
    }

    pub(super) fn on_message_timeout(&mut self, id: u64, branch: &str) {
        let Some(m) = self.msgs.get(&id).filter(|m| m.branch == branch) else {
            return;
        };
        let reason = format!(
            "no answer to the MESSAGE for {} within {} s (time-out)",
            m.to,
            self.cfg.timers.timer_f().as_secs()
        );
        self.message_failed(id, Some(408), reason);
    }

    /// Every MESSAGE still unanswered fails (at shutdown).
    pub(super) fn abandon_messages(&mut self) {
        let ids: Vec<u64> = self.msgs.keys().copied().collect();
        for id in ids {
            self.message_failed(
                id,
                None,
                "not answered before the user agent shut down".to_string(),
            );
        }
    }

    fn message_failed(&mut self, id: u64, status: Option<u16>, reason: String) {
        let Some(m) = self.msgs.remove(&id) else {
            return;
        };
        self.events.push_back(Event::MessageFailed {
            id: MessageId(id),
            to: m.to,
            status,
            reason,
        });
    }
}

/// The reason phrase of a response, at most 80 characters of it.
fn phrase_of(msg: &Message) -> &str {
    match &msg.start {
        StartLine::Response { reason, .. } => match reason.char_indices().nth(80) {
            Some((end, _)) => reason.get(..end).unwrap_or(""),
            None => reason,
        },
        StartLine::Request { .. } => "",
    }
}

/// The plain-words diagnosis of a refused MESSAGE (RFC 3428 §7, RFC 3261 §21).
pub(crate) fn diagnose_message_failure(
    status: u16,
    phrase: &str,
    to: &str,
    username: &str,
) -> String {
    let phrase = phrase.trim();
    let said = if phrase.is_empty() {
        status.to_string()
    } else {
        format!("{status} {phrase}")
    };
    match status {
        300..=399 => format!(
            "the MESSAGE for {to} was redirected ({said}); redirects are not followed: \
             send to the target address"
        ),
        403 => format!("PBX forbids user {username} to send a MESSAGE to {to} ({said})"),
        404 | 480 => format!("PBX knows no one registered as {to} ({said})"),
        408 => format!("no answer from {to} ({said})"),
        413 => format!("{to} refused the MESSAGE as too large ({said})"),
        415 => format!("{to} does not accept this content type ({said})"),
        488 => format!("{to} does not accept this MESSAGE ({said})"),
        500..=599 => format!("the MESSAGE for {to} failed at the PBX or the recipient ({said})"),
        _ => format!("the MESSAGE for {to} was refused ({said})"),
    }
}
