//! Registration: REGISTER and un-REGISTER, and what their answers do.

use std::time::{Duration, Instant};

use super::*;

impl UserAgent {
    pub(super) fn send_register(&mut self, now: Instant, unregister: bool) {
        let branch = format!("z9hG4bK{}", random_hex(10));
        self.reg.cseq += 1;
        let ruri = format!("sip:{}{}", self.domain, self.ruri_param());
        let aor = format!("<sip:{}@{}>", self.cfg.username, self.domain);
        let contact_addr = self.contact_addr();
        let mut h = crate::message::Headers::new();
        h.push("Via", self.via(&branch));
        h.push("Max-Forwards", "70");
        h.push("From", format!("{aor};tag={}", self.reg.from_tag));
        h.push("To", aor);
        h.push("Call-ID", self.reg.call_id.clone());
        h.push("CSeq", format!("{} REGISTER", self.reg.cseq));
        h.push("Contact", format!("<{}>", self.contact_uri()));
        h.push(
            "Expires",
            if unregister {
                "0".to_string()
            } else {
                self.reg.expires_req.to_string()
            },
        );
        h.push("Allow", "NOTIFY, OPTIONS");
        h.push("User-Agent", self.cfg.user_agent.clone());
        match self.reg.auth.authorize(
            &self.cfg.username,
            self.cfg.password().expose(),
            "REGISTER",
            &ruri,
            b"",
        ) {
            Some((name, value)) => h.push(name, value),
            None => self.reg.auth.sent_without_credentials(),
        }
        let msg = Message {
            start: StartLine::Request {
                method: "REGISTER".into(),
                uri: ruri,
            },
            headers: h,
            body: Vec::new(),
        };
        self.reg.phase = if unregister {
            RegPhase::Unregistering
        } else {
            RegPhase::Sending
        };
        self.reg.pending_tx = Some(branch.clone());
        self.reg.timer = None;
        if !unregister {
            self.reg.contact = Some(contact_addr);
        }
        self.send_request(Owner::Register, msg, branch, now);
    }

    pub(super) fn on_register_response(
        &mut self,
        branch: &str,
        status: u16,
        msg: &Message,
        now: Instant,
    ) {
        if self.reg.pending_tx.as_deref() != Some(branch) {
            return;
        }
        self.reg.pending_tx = None;
        let unregistering = self.reg.phase == RegPhase::Unregistering;
        if status == 401 || status == 407 {
            match self.reg.auth.on_challenge(msg, &self.cfg.username) {
                Ok(()) => {
                    self.send_register(now, unregistering);
                    return;
                }
                Err(e) => {
                    if unregistering {
                        return self.finish_unregister();
                    }
                    let retry = now + self.cfg.slow_retry;
                    self.reg.auth.reset();
                    return self.register_failed(Some(status), auth_reason(&e), retry);
                }
            }
        }
        if unregistering {
            return self.finish_unregister();
        }
        if (200..300).contains(&status) {
            self.reg.auth.on_success();
            let contact_uri = self.contact_uri();
            let addr = self.contact_addr().to_string();
            let granted = msg
                .headers
                .get_list("Contact")
                .into_iter()
                .find(|c| split_name_addr(c).0.contains(&addr))
                .and_then(contact_expires)
                .or_else(|| msg.headers.get("Expires").and_then(parse_delta_seconds))
                .unwrap_or(self.reg.expires_req);
            if granted == 0 {
                let retry = now + self.backoff(self.reg.failures.max(1));
                return self.register_failed(
                    Some(status),
                    "PBX answered the REGISTER with expiry 0".into(),
                    retry,
                );
            }
            self.reg.failures = 0;
            self.reg.count_423 = 0;
            if std::mem::take(&mut self.reg.unreachable) {
                // The PBX is back after an outage: it may have lost our
                // subscriptions, so refresh them all now (paced) instead of
                // waiting for their refresh time (481 → new subscription).
                for (id, s) in self.subs.iter_mut() {
                    if s.phase == SubPhase::Active {
                        self.sub_timers.set(*id, &mut s.timer, Some(now));
                    }
                }
            }
            self.reg.registered = true;
            self.reg.phase = RegPhase::Registered;
            self.reg.expires_at = Some(now + Duration::from_secs(u64::from(granted)));
            self.reg.last_error = None;
            self.reg.timer = Some(now + refresh_delay(granted));
            if self.reg.contact != Some(self.contact_addr()) {
                // The Contact changed while this REGISTER was in flight.
                self.reg.timer = Some(now);
            }
            self.events.push_back(Event::Registered {
                expires: granted,
                contact: contact_uri,
            });
            self.start_subscriptions(now);
            return;
        }
        if status == 423 {
            self.reg.count_423 += 1;
            let min = msg
                .headers
                .get("Min-Expires")
                .and_then(parse_min_expires)
                .unwrap_or_else(|| min_expires_fallback(self.reg.expires_req));
            if min > self.reg.expires_req && self.reg.count_423 <= 3 {
                self.reg.expires_req = min;
                self.send_register(now, false);
                return;
            }
        }
        self.reg.failures += 1;
        let delay = msg
            .headers
            .get("Retry-After")
            .and_then(parse_retry_after)
            .map(|s| Duration::from_secs(u64::from(s)))
            .unwrap_or_else(|| self.backoff(self.reg.failures));
        let reason = match status {
            403 => format!(
                "PBX forbids registration of {} (403): check the user name and that the account may register",
                self.cfg.username
            ),
            404 => format!("PBX does not know user {} (404)", self.cfg.username),
            423 => "PBX keeps refusing the registration interval (423)".to_string(),
            s => format!("PBX refused the registration with {s}"),
        };
        self.register_failed(Some(status), reason, now + delay);
    }

    pub(super) fn register_failed(
        &mut self,
        status: Option<u16>,
        reason: String,
        retry_at: Instant,
    ) {
        self.reg.registered = false;
        self.reg.phase = RegPhase::Idle;
        self.reg.timer = Some(retry_at);
        self.reg.expires_at = None;
        self.reg.last_error = Some(reason.clone());
        self.events.push_back(Event::RegistrationFailed {
            status,
            reason,
            retry_at: Some(retry_at),
        });
        // Subscriptions do not need the registration at every PBX: start them anyway.
        let now = self.now;
        self.start_subscriptions(now);
    }

    pub(super) fn finish_unregister(&mut self) {
        self.reg.phase = RegPhase::Done;
        self.reg.registered = false;
        self.events.push_back(Event::Unregistered);
        self.maybe_finish_shutdown(self.now);
    }
}
