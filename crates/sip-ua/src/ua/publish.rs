//! Publications (RFC 3903 PUBLISH, `Event: presence`): one per presentity,
//! initial PUBLISH with the body, refreshed before expiry with `SIP-If-Match`
//! and no body, modified with a new body, removed with `Expires: 0`.

use std::time::{Duration, Instant};

use super::request::RequestFields;
use super::*;
use crate::error::{Error, InvalidRequest};

/// Which kind of PUBLISH a request is (RFC 3903 §4.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum PubRequest {
    /// No `SIP-If-Match`, with the body.
    Initial,
    /// `SIP-If-Match`, no body.
    Refresh,
    /// `SIP-If-Match`, with the new body.
    Modify,
    /// `SIP-If-Match`, `Expires: 0`, no body.
    Remove,
}

/// One presentity's publication.
#[derive(Debug)]
pub(super) struct Publication {
    presentity: String,
    /// The document wanted at the server (content type, bytes); `None`: to be removed.
    body: Option<(String, Vec<u8>)>,
    /// The wanted body changed after the PUBLISH in flight was built.
    dirty: bool,
    /// The entity tag the server gave (`SIP-ETag`), while the publication stands.
    etag: Option<String>,
    /// Branch and kind of the PUBLISH in flight.
    in_flight: Option<(String, PubRequest)>,
    call_id: String,
    from_tag: String,
    cseq: u32,
    auth: DigestSession,
    expires_req: u32,
    /// Refresh (published) or retry (after a failure).
    timer: Option<Instant>,
    expires_at: Option<Instant>,
    failures: u32,
    count_423: u32,
    count_412: u32,
    last_error: Option<String>,
}

/// The state of one publication (see [`UserAgent::publications`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicationStatus {
    /// The presentity, as given to [`UserAgent::publish`].
    pub presentity: String,
    /// The server holds our document (an entity tag is known and not expired).
    pub published: bool,
    /// A PUBLISH is in flight.
    pub sending: bool,
    /// When the server's grant runs out.
    pub expires_at: Option<Instant>,
    /// Next PUBLISH (refresh or retry).
    pub next_attempt: Option<Instant>,
    /// What went wrong last, in plain words (cleared on success).
    pub last_error: Option<String>,
}

/// Most `412`s in a row before giving up on a publication until its retry.
const MAX_412: u32 = 3;

/// The Request-URI for `presentity`: a `sip:`/`sips:` URI as it is, else
/// `sip:<presentity>@<domain>`.
fn presentity_uri(presentity: &str, domain: &str) -> String {
    let lower = presentity.to_ascii_lowercase();
    if lower.starts_with("sip:") || lower.starts_with("sips:") {
        presentity.to_string()
    } else {
        format!("sip:{presentity}@{domain}")
    }
}

/// Checks what goes into header fields, so no caller can break the message.
pub(crate) fn validate(
    presentity: &str,
    body: Option<&(String, Vec<u8>)>,
) -> Result<(), InvalidRequest> {
    let bad_uri_char = |c: char| c.is_control() || c.is_whitespace() || "<>\",".contains(c);
    if presentity.is_empty() || presentity.chars().any(bad_uri_char) {
        return Err(InvalidRequest::Presentity(presentity.to_string()));
    }
    if let Some((ct, _)) = body {
        if ct.trim().is_empty() || ct.chars().any(char::is_control) {
            return Err(InvalidRequest::ContentType(ct.clone()));
        }
    }
    Ok(())
}

impl UserAgent {
    /// Publishes `body` (content type, bytes; e.g. `application/pidf+xml`) as
    /// the `presence` of `presentity` (a user name at the domain, or a SIP URI),
    /// replacing what was published for it before; `None` removes the
    /// publication (`Expires: 0`). Outcomes arrive as [`Event::Published`],
    /// [`Event::PublicationRemoved`] and [`Event::PublicationFailed`].
    /// Nothing is published once [`shutdown`](Self::shutdown) was called,
    /// which removes every publication.
    pub fn publish(
        &mut self,
        presentity: &str,
        body: Option<(String, Vec<u8>)>,
        now: Instant,
    ) -> Result<(), Error> {
        validate(presentity, body.as_ref())?;
        self.now = now;
        if self.shutting_down {
            return Err(Error::Stopped);
        }
        let found = self
            .pubs
            .iter()
            .find(|(_, p)| p.presentity == presentity)
            .map(|(id, _)| *id);
        let id = match found {
            Some(id) => id,
            None if body.is_none() => {
                self.events.push_back(Event::PublicationRemoved {
                    presentity: presentity.to_string(),
                });
                return Ok(());
            }
            None => {
                let id = self.next_id;
                self.next_id += 1;
                self.pubs.insert(
                    id,
                    Publication {
                        presentity: presentity.to_string(),
                        body: None,
                        dirty: false,
                        etag: None,
                        in_flight: None,
                        call_id: format!("{}@sip-ua", random_hex(12)),
                        from_tag: random_hex(8),
                        cseq: 0,
                        auth: DigestSession::new(),
                        expires_req: self.cfg.publish_expires.max(1),
                        timer: None,
                        expires_at: None,
                        failures: 0,
                        count_423: 0,
                        count_412: 0,
                        last_error: None,
                    },
                );
                id
            }
        };
        let Some(p) = self.pubs.get_mut(&id) else {
            return Ok(());
        };
        p.body = body;
        p.failures = 0;
        if p.in_flight.is_some() {
            // Sent when the answer to the one in flight came.
            p.dirty = true;
        } else {
            self.publish_wanted(id, now);
        }
        Ok(())
    }

    /// Every publication.
    pub fn publications(&self) -> Vec<PublicationStatus> {
        self.pubs
            .values()
            .map(|p| PublicationStatus {
                presentity: p.presentity.clone(),
                published: p.etag.is_some() && p.expires_at.is_some_and(|t| t > self.now),
                sending: p.in_flight.is_some(),
                expires_at: p.expires_at,
                next_attempt: p.timer,
                last_error: p.last_error.clone(),
            })
            .collect()
    }

    /// Starts removing every publication (at shutdown).
    pub(super) fn unpublish_all(&mut self, now: Instant) {
        let ids: Vec<u64> = self.pubs.keys().copied().collect();
        for id in ids {
            if let Some(p) = self.pubs.get_mut(&id) {
                p.body = None;
                if p.in_flight.is_some() {
                    p.dirty = true;
                } else {
                    self.publish_wanted(id, now);
                }
            }
        }
    }

    /// A PUBLISH is in flight (the shutdown waits for it).
    pub(super) fn publishing(&self) -> bool {
        self.pubs.values().any(|p| p.in_flight.is_some())
    }

    /// The earliest publication timer.
    pub(super) fn pub_timeout(&self) -> Option<Instant> {
        self.pubs.values().filter_map(|p| p.timer).min()
    }

    /// Fires the publication timers due at `now`: refreshes and retries.
    pub(super) fn on_pub_timers(&mut self, now: Instant) {
        let due: Vec<u64> = self
            .pubs
            .iter()
            .filter(|(_, p)| p.timer.is_some_and(|t| t <= now) && p.in_flight.is_none())
            .map(|(id, _)| *id)
            .collect();
        for id in due {
            let Some(p) = self.pubs.get_mut(&id) else {
                continue;
            };
            p.timer = None;
            if p.expires_at.is_some_and(|t| t <= now) {
                // Gone at the server already: only a new initial PUBLISH helps.
                p.etag = None;
                p.expires_at = None;
            }
            if p.failures == 0 && p.etag.is_some() && p.body.is_some() {
                self.send_publish(id, PubRequest::Refresh, now);
            } else {
                self.publish_wanted(id, now);
            }
        }
    }

    /// Sends what brings the server to the wanted state: initial, modify or
    /// remove; or drops a publication that has nothing left at the server.
    fn publish_wanted(&mut self, id: u64, now: Instant) {
        let Some(p) = self.pubs.get(&id) else {
            return;
        };
        match (p.body.is_some(), p.etag.is_some()) {
            (false, false) => self.drop_pub(id, None),
            (false, true) => self.send_publish(id, PubRequest::Remove, now),
            (true, false) => self.send_publish(id, PubRequest::Initial, now),
            (true, true) => self.send_publish(id, PubRequest::Modify, now),
        }
    }

    /// Forgets a publication and reports it removed, or failed with `error`.
    fn drop_pub(&mut self, id: u64, error: Option<(Option<u16>, String)>) {
        let Some(p) = self.pubs.remove(&id) else {
            return;
        };
        self.events.push_back(match error {
            None => Event::PublicationRemoved {
                presentity: p.presentity,
            },
            Some((status, reason)) => Event::PublicationFailed {
                presentity: p.presentity,
                status,
                reason,
                retry_at: None,
            },
        });
    }

    fn send_publish(&mut self, id: u64, kind: PubRequest, now: Instant) {
        let out = self.out_of_dialog();
        let domain = self.domain.clone();
        let Some(p) = self.pubs.get_mut(&id) else {
            return;
        };
        let body = match (kind, &p.body) {
            (PubRequest::Initial | PubRequest::Modify, Some(b)) => Some(b.clone()),
            _ => None,
        };
        p.cseq += 1;
        let ruri = presentity_uri(&p.presentity, &domain);
        let expires = if kind == PubRequest::Remove {
            0
        } else {
            p.expires_req
        };
        let mut headers = vec![
            ("Event", "presence".to_string()),
            ("Expires", expires.to_string()),
        ];
        if kind != PubRequest::Initial {
            if let Some(tag) = &p.etag {
                headers.push(("SIP-If-Match", tag.clone()));
            }
        }
        if let Some((ct, _)) = &body {
            headers.push(("Content-Type", ct.clone()));
        }
        let fields = RequestFields {
            method: "PUBLISH",
            uri: &ruri,
            call_id: &p.call_id,
            from_tag: &p.from_tag,
            cseq: p.cseq,
            headers,
            body: body.map(|(_, b)| b).unwrap_or_default(),
        };
        let msg = out.request(fields, &mut p.auth);
        p.in_flight = Some((out.branch.clone(), kind));
        p.dirty = false;
        p.timer = None;
        self.send_request(Owner::Publish(id), msg, out.branch, now);
    }

    /// The kind in flight for `branch`, taken out of the publication.
    fn take_in_flight(&mut self, id: u64, branch: &str) -> Option<PubRequest> {
        let p = self.pubs.get_mut(&id)?;
        match &p.in_flight {
            Some((b, kind)) if b == branch => {
                let kind = *kind;
                p.in_flight = None;
                Some(kind)
            }
            _ => None,
        }
    }

    pub(super) fn on_publish_response(
        &mut self,
        id: u64,
        branch: &str,
        status: u16,
        msg: &Message,
        now: Instant,
    ) {
        let Some(kind) = self.take_in_flight(id, branch) else {
            return;
        };
        let user = self.cfg.username.clone();
        let Some(p) = self.pubs.get_mut(&id) else {
            return;
        };
        if status == 401 || status == 407 {
            match p.auth.on_challenge(msg, &user) {
                Ok(()) if kind == PubRequest::Refresh && !p.dirty => {
                    self.send_publish(id, kind, now);
                }
                Ok(()) => self.publish_wanted(id, now),
                Err(e) => self.publish_failed(id, kind, Some(status), auth_reason(&e), now),
            }
            return self.maybe_finish_shutdown(now);
        }
        if (200..300).contains(&status) {
            p.auth.on_success();
            p.failures = 0;
            p.count_423 = 0;
            p.count_412 = 0;
            p.last_error = None;
            if kind == PubRequest::Remove {
                p.etag = None;
                p.expires_at = None;
                if p.body.is_some() {
                    // Published again while the removal was in flight.
                    self.publish_wanted(id, now);
                } else {
                    self.drop_pub(id, None);
                }
                return self.maybe_finish_shutdown(now);
            }
            let granted = msg
                .headers
                .get("Expires")
                .and_then(parse_delta_seconds)
                .unwrap_or(p.expires_req);
            let etag = msg
                .headers
                .get("SIP-ETag")
                .map(str::trim)
                .filter(|t| !t.is_empty());
            if granted == 0 {
                p.etag = None;
                p.expires_at = None;
                let reason = format!(
                    "PBX accepted the publication for {} with expiry 0",
                    p.presentity
                );
                return self.publish_failed(id, kind, Some(status), reason, now);
            }
            p.etag = etag.map(str::to_string);
            p.expires_at = Some(now + Duration::from_secs(u64::from(granted)));
            p.timer = Some(now + refresh_delay(granted));
            let presentity = p.presentity.clone();
            let dirty = p.dirty;
            self.events.push_back(Event::Published {
                presentity,
                expires: granted,
            });
            if dirty {
                self.publish_wanted(id, now);
            }
            return self.maybe_finish_shutdown(now);
        }
        if status == 412 && kind != PubRequest::Initial {
            // RFC 3903 §6: the server does not know the entity tag (any more).
            p.etag = None;
            p.expires_at = None;
            p.count_412 += 1;
            if p.count_412 <= MAX_412 || p.body.is_none() {
                // A removal is then done: nothing stands at the server.
                self.publish_wanted(id, now);
                return self.maybe_finish_shutdown(now);
            }
        }
        if status == 423 && kind != PubRequest::Remove {
            p.count_423 += 1;
            let min = msg
                .headers
                .get("Min-Expires")
                .and_then(parse_min_expires)
                .unwrap_or_else(|| min_expires_fallback(p.expires_req));
            if min > p.expires_req && p.count_423 <= 3 {
                p.expires_req = min;
                if kind == PubRequest::Refresh && !p.dirty {
                    self.send_publish(id, kind, now);
                } else {
                    self.publish_wanted(id, now);
                }
                return;
            }
        }
        let reason = diagnose_publish_failure(status, &p.presentity, &user);
        self.publish_failed(id, kind, Some(status), reason, now);
        self.maybe_finish_shutdown(now);
    }

    pub(super) fn on_publish_timeout(&mut self, id: u64, branch: &str, now: Instant) {
        let Some(kind) = self.take_in_flight(id, branch) else {
            return;
        };
        let Some(p) = self.pubs.get(&id) else {
            return;
        };
        let reason = format!(
            "no answer from the PBX to the PUBLISH for {} (time-out)",
            p.presentity
        );
        self.publish_failed(id, kind, None, reason, now);
        self.maybe_finish_shutdown(now);
    }

    /// A failed removal is given up (the server lets it expire); anything
    /// else is tried again later, or removed when that is wanted meanwhile.
    fn publish_failed(
        &mut self,
        id: u64,
        kind: PubRequest,
        status: Option<u16>,
        reason: String,
        now: Instant,
    ) {
        if kind == PubRequest::Remove {
            return self.drop_pub(id, Some((status, reason)));
        }
        let slow = self.cfg.slow_retry;
        let Some(p) = self.pubs.get_mut(&id) else {
            return;
        };
        if p.body.is_none() {
            // Removal wanted meanwhile (also at shutdown): try that instead.
            return self.publish_wanted(id, now);
        }
        p.failures += 1;
        let failures = p.failures;
        let delay = match status {
            Some(403 | 404 | 405 | 484 | 488 | 489 | 603) => slow,
            _ => self.backoff(failures),
        };
        let retry_at = now + delay;
        let Some(p) = self.pubs.get_mut(&id) else {
            return;
        };
        p.timer = Some(retry_at);
        p.last_error = Some(reason.clone());
        self.events.push_back(Event::PublicationFailed {
            presentity: p.presentity.clone(),
            status,
            reason,
            retry_at: Some(retry_at),
        });
    }
}

/// The plain-words diagnosis of a refused PUBLISH.
pub(crate) fn diagnose_publish_failure(status: u16, presentity: &str, username: &str) -> String {
    match status {
        403 => format!(
            "PBX forbids user {username} to publish the presence of {presentity} (403): \
             let the presence server trust {username} as a publisher for other users"
        ),
        404 => format!("PBX does not know presentity {presentity} (404)"),
        489 => format!(
            "PBX does not accept `Event: presence` publications for {presentity} (489 Bad Event): \
             enable its presence server (Kamailio: presence + presence_xml)"
        ),
        412 => format!("PBX keeps refusing the entity tag of {presentity}'s publication (412)"),
        423 => format!("PBX keeps refusing the publication interval for {presentity} (423)"),
        415 => format!("PBX does not accept this document type for {presentity} (415)"),
        s if (500..600).contains(&s) => {
            format!("PBX failed on the publication for {presentity} ({s}); retrying")
        }
        s => format!("PBX refused the publication for {presentity} with {s}"),
    }
}
