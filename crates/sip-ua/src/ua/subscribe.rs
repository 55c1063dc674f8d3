//! Subscriptions: adding and removing them, the SUBSCRIBE requests and their
//! answers, and the plain-words diagnosis of a refusal.

use std::time::{Duration, Instant};

use super::*;

/// The plain-words diagnosis of a failed SUBSCRIBE.
pub(crate) fn diagnose_subscribe_failure(
    status: u16,
    extension: &str,
    username: &str,
    package: EventPackage,
) -> String {
    match status {
        404 => format!(
            "PBX has no BLF hint for {extension}: add `exten => {extension},hint,PJSIP/{extension}` \
             (Asterisk/FreePBX) or check that extension {extension} exists"
        ),
        403 => format!(
            "PBX forbids user {username} to watch {extension}: allow subscriptions for this account \
             (Asterisk: `allow_subscribe = yes` and a `subscribe_context` containing the hint) \
             or check that the account may see {extension}"
        ),
        // Asterisk's answer when the endpoint we subscribe as has `allow_subscribe=no`.
        603 => format!(
            "PBX declined user {username}'s subscription to {extension} (603 Decline): \
             allow subscriptions for endpoint {username} (Asterisk: `allow_subscribe=yes` in its \
             endpoint section of pjsip.conf; FreePBX: the same line for {username} in \
             pjsip.endpoint_custom_post.conf), then reload"
        ),
        489 => format!(
            "PBX does not offer `Event: {}` for {extension} (489 Bad Event): enable the {} event package \
             (Asterisk: a hint for {extension}; Kamailio: presence_dialoginfo)",
            package.event_name(),
            package.event_name()
        ),
        480 => format!("extension {extension} is temporarily unavailable at the PBX (480)"),
        423 => format!("PBX keeps refusing the subscription interval for {extension} (423)"),
        s if (500..600).contains(&s) => {
            format!("PBX failed on the subscription to {extension} ({s}); retrying")
        }
        s => format!("PBX refused the subscription to {extension} with {s}"),
    }
}

impl UserAgent {
    /// Adds a subscription at run time (replaces nothing: a user already
    /// watched with the same package is ignored).
    pub fn add_subscription(&mut self, sub: Subscription, now: Instant) {
        if self
            .subs
            .values()
            .any(|s| s.ext == sub.user && s.package == sub.package && s.phase != SubPhase::Closed)
        {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.subs.insert(
            id,
            Sub {
                ext: sub.user,
                package: sub.package,
                phase: SubPhase::Waiting,
                call_id: String::new(),
                local_tag: String::new(),
                cseq: 0,
                remote_tag: None,
                remote_target: None,
                route_set: Vec::new(),
                timer: None,
                auth: DigestSession::new(),
                expires_req: self.cfg.subscribe_expires,
                failures: 0,
                pending_tx: None,
                established_at: None,
                reported_pending: false,
                remove_after_unsubscribe: false,
                final_notify: false,
                count_423: 0,
                slot_reserved: false,
                expires_at: None,
                last_error: None,
            },
        );
        if let Some(sub) = self.subs.get_mut(&id) {
            let at = (self.subs_started && !self.shutting_down).then_some(now);
            self.sub_timers.set(id, &mut sub.timer, at);
        }
    }

    /// Ends the subscription to `user` for `package` (un-SUBSCRIBE when a
    /// dialog is up); one for the other package stays.
    pub fn remove_subscription(&mut self, user: &str, package: EventPackage, now: Instant) {
        let ids: Vec<u64> = self
            .subs
            .iter()
            .filter(|(_, s)| s.ext == user && s.package == package)
            .map(|(id, _)| *id)
            .collect();
        for id in ids {
            let has_dialog = self
                .subs
                .get(&id)
                .is_some_and(|s| s.remote_tag.is_some() && s.phase != SubPhase::Closed);
            if has_dialog {
                if let Some(s) = self.subs.get_mut(&id) {
                    s.remove_after_unsubscribe = true;
                }
                self.send_unsubscribe(id, now);
            } else {
                self.drop_sub(id);
            }
        }
    }

    /// Sends an in-dialog re-SUBSCRIBE for `user` and `package` now, e.g.
    /// when a partial NOTIFY skipped a version (RFC 4235 §4.1): the PBX
    /// answers it with a NOTIFY of the full state. Returns whether one went
    /// out: not when no dialog is up (the next subscription brings the full
    /// state anyway), a SUBSCRIBE is in flight already, or shutting down.
    pub fn refresh_subscription(
        &mut self,
        user: &str,
        package: EventPackage,
        now: Instant,
    ) -> bool {
        self.now = now;
        if self.shutting_down {
            return false;
        }
        let Some((id, expires)) = self
            .subs
            .iter()
            .find(|(_, s)| {
                s.ext == user
                    && s.package == package
                    && s.phase == SubPhase::Active
                    && s.remote_tag.is_some()
                    && s.pending_tx.is_none()
            })
            .map(|(id, s)| (*id, s.expires_req))
        else {
            return false;
        };
        if let Some(s) = self.subs.get_mut(&id) {
            // Not paced: it replaces the refresh that was due, whose slot is freed.
            s.slot_reserved = false;
        }
        self.send_subscribe(id, expires, now);
        true
    }

    /// The subscriptions currently held (users and event packages).
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.subs
            .values()
            .filter(|s| s.phase != SubPhase::Closed)
            .map(|s| Subscription {
                user: s.ext.clone(),
                package: s.package,
            })
            .collect()
    }

    pub(super) fn new_dialog_ids(&mut self, id: u64) {
        let call_id = format!("{}@sip-ua", random_hex(12));
        let tag = random_hex(8);
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        if !s.call_id.is_empty() {
            self.by_call_id.remove(&s.call_id);
        }
        s.call_id = call_id.clone();
        s.local_tag = tag;
        s.remote_tag = None;
        s.remote_target = None;
        s.route_set.clear();
        s.auth.reset();
        s.established_at = None;
        s.reported_pending = false;
        s.final_notify = false;
        s.pending_tx = None;
        self.by_call_id.insert(call_id, id);
    }

    /// Builds and sends a SUBSCRIBE: initial when no dialog is up, in-dialog otherwise.
    pub(super) fn send_subscribe(&mut self, id: u64, expires: u32, now: Instant) {
        let needs_new = self
            .subs
            .get(&id)
            .is_some_and(|s| s.call_id.is_empty() || s.remote_tag.is_none() && s.cseq == 0);
        if needs_new {
            self.new_dialog_ids(id);
        }
        let branch = format!("z9hG4bK{}", random_hex(10));
        let via = self.via(&branch);
        let contact = format!("<{}>", self.contact_uri());
        let domain = self.domain.clone();
        let ruri_param = self.ruri_param();
        let user = self.cfg.username.clone();
        let password = self.cfg.password().expose().to_string();
        let ua_name = self.cfg.user_agent.clone();
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        s.cseq += 1;
        let in_dialog = s.remote_tag.is_some();
        let ruri = match (&s.remote_target, in_dialog) {
            (Some(t), true) => t.clone(),
            _ => format!("sip:{}@{}{}", s.ext, domain, ruri_param),
        };
        let to = match &s.remote_tag {
            Some(tag) => format!("<sip:{}@{}>;tag={}", s.ext, domain, tag),
            None => format!("<sip:{}@{}>", s.ext, domain),
        };
        let mut h = crate::message::Headers::new();
        h.push("Via", via);
        h.push("Max-Forwards", "70");
        for r in &s.route_set {
            h.push("Route", r.clone());
        }
        h.push("From", format!("<sip:{user}@{domain}>;tag={}", s.local_tag));
        h.push("To", to);
        h.push("Call-ID", s.call_id.clone());
        h.push("CSeq", format!("{} SUBSCRIBE", s.cseq));
        h.push("Contact", contact);
        h.push("Event", s.package.event_name());
        h.push("Accept", s.package.accept());
        h.push("Expires", expires.to_string());
        h.push("User-Agent", ua_name);
        match s.auth.authorize(&user, &password, "SUBSCRIBE", &ruri, b"") {
            Some((name, value)) => h.push(name, value),
            None => s.auth.sent_without_credentials(),
        }
        let msg = Message {
            start: StartLine::Request {
                method: "SUBSCRIBE".into(),
                uri: ruri,
            },
            headers: h,
            body: Vec::new(),
        };
        s.pending_tx = Some(branch.clone());
        self.sub_timers.set(id, &mut s.timer, None);
        s.phase = if expires == 0 {
            SubPhase::Unsubscribing
        } else if in_dialog {
            SubPhase::Refreshing
        } else {
            SubPhase::Subscribing
        };
        self.send_request(Owner::Subscribe(id), msg, branch, now);
    }

    pub(super) fn send_unsubscribe(&mut self, id: u64, now: Instant) {
        self.send_subscribe(id, 0, now);
    }

    /// Takes a pacing slot; `Some(at)` means "not before `at`".
    pub(super) fn take_slot(&mut self, now: Instant) -> Option<Instant> {
        let rate = self.cfg.subscribe_rate.max(1);
        let interval = Duration::from_secs(1) / rate;
        if self.next_slot <= now {
            self.next_slot = now + interval;
            None
        } else {
            let at = self.next_slot;
            self.next_slot += interval;
            Some(at)
        }
    }

    pub(super) fn on_sub_timer(&mut self, id: u64, now: Instant) {
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        self.sub_timers.set(id, &mut s.timer, None);
        let phase = s.phase;
        let expires = s.expires_req;
        let reserved = std::mem::take(&mut s.slot_reserved);
        match phase {
            SubPhase::Waiting | SubPhase::Active => {
                if !reserved {
                    if let Some(at) = self.take_slot(now) {
                        if let Some(s) = self.subs.get_mut(&id) {
                            self.sub_timers.set(id, &mut s.timer, Some(at));
                            s.slot_reserved = true;
                        }
                        return;
                    }
                }
                self.send_subscribe(id, expires, now);
            }
            _ => {}
        }
    }

    pub(super) fn start_subscriptions(&mut self, now: Instant) {
        if self.subs_started {
            return;
        }
        self.subs_started = true;
        for (id, s) in self.subs.iter_mut() {
            if s.phase == SubPhase::Waiting && s.timer.is_none() {
                self.sub_timers.set(*id, &mut s.timer, Some(now));
            }
        }
    }

    pub(super) fn on_subscribe_response(
        &mut self,
        id: u64,
        branch: &str,
        status: u16,
        msg: &Message,
        now: Instant,
    ) {
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        if s.pending_tx.as_deref() != Some(branch) {
            return;
        }
        s.pending_tx = None;
        let phase = s.phase;
        let ext = s.ext.clone();
        let package = s.package;
        if status == 401 || status == 407 {
            let user = self.cfg.username.clone();
            let res = s.auth.on_challenge(msg, &user);
            match res {
                Ok(()) => {
                    let expires = if phase == SubPhase::Unsubscribing {
                        0
                    } else {
                        s.expires_req
                    };
                    self.send_subscribe(id, expires, now);
                }
                Err(e) => {
                    if phase == SubPhase::Unsubscribing {
                        return self.close_sub(id);
                    }
                    let retry = now + self.cfg.slow_retry;
                    self.sub_failed(id, Some(status), auth_reason(&e), retry);
                }
            }
            return;
        }
        if phase == SubPhase::Unsubscribing {
            if (200..300).contains(&status) && self.shutting_down && !s.final_notify {
                // The final NOTIFY is still to come: answer it before leaving.
                s.phase = SubPhase::AwaitingFinalNotify;
                self.sub_timers.set(id, &mut s.timer, None);
                return self.maybe_finish_shutdown(now);
            }
            return self.close_sub(id);
        }
        if (200..300).contains(&status) {
            s.auth.on_success();
            let expires = msg
                .headers
                .get("Expires")
                .and_then(parse_delta_seconds)
                .unwrap_or(s.expires_req);
            if expires == 0 {
                s.failures += 1;
                let failures = s.failures;
                let retry = now + self.backoff(failures);
                return self.sub_failed(
                    id,
                    Some(status),
                    format!("PBX accepted the subscription to {ext} with expiry 0"),
                    retry,
                );
            }
            if s.remote_tag.is_none() {
                s.remote_tag = msg.to_tag().map(str::to_string);
            }
            if phase == SubPhase::Subscribing {
                if let Some(c) = msg.headers.get_list("Contact").first() {
                    if s.remote_target.is_none() {
                        s.remote_target = Some(split_name_addr(c).0.to_string());
                    }
                }
                let mut rr: Vec<String> = msg
                    .headers
                    .get_list("Record-Route")
                    .into_iter()
                    .map(str::to_string)
                    .collect();
                rr.reverse();
                s.route_set = rr;
                s.established_at = Some(now);
            } else {
                s.failures = 0;
            }
            s.count_423 = 0;
            s.phase = SubPhase::Active;
            self.sub_timers
                .set(id, &mut s.timer, Some(now + refresh_delay(expires)));
            s.expires_at = Some(now + Duration::from_secs(u64::from(expires)));
            s.last_error = None;
            self.events.push_back(Event::SubscriptionActive {
                user: ext,
                package,
                expires,
            });
            return;
        }
        if status == 423 {
            s.count_423 += 1;
            let min = msg
                .headers
                .get("Min-Expires")
                .and_then(parse_min_expires)
                .unwrap_or_else(|| min_expires_fallback(s.expires_req));
            if min > s.expires_req && s.count_423 <= 3 {
                s.expires_req = min;
                self.send_subscribe(id, min, now);
                return;
            }
        }
        if status == 481 && phase == SubPhase::Refreshing {
            // The PBX lost the subscription (restart): a new one at once.
            let user_diag = format!(
                "PBX no longer knows the subscription to {ext} (481, it probably restarted): subscribing anew"
            );
            return self.sub_failed(id, Some(status), user_diag, now);
        }
        let diagnosis = diagnose_subscribe_failure(status, &ext, &self.cfg.username, package);
        s.failures += 1;
        let failures = s.failures;
        let retry_after = msg
            .headers
            .get("Retry-After")
            .and_then(parse_retry_after)
            .map(|x| Duration::from_secs(u64::from(x)));
        let delay = match status {
            404 | 403 | 489 | 484 | 488 | 405 | 603 => self.cfg.slow_retry,
            _ => retry_after.unwrap_or_else(|| self.backoff(failures)),
        };
        self.sub_failed(id, Some(status), diagnosis, now + delay);
    }

    /// Drops the dialog and schedules a new subscription at `retry_at`.
    pub(super) fn sub_failed(
        &mut self,
        id: u64,
        status: Option<u16>,
        diagnosis: String,
        retry_at: Instant,
    ) {
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        if !s.call_id.is_empty() {
            self.by_call_id.remove(&s.call_id);
        }
        s.call_id.clear();
        s.cseq = 0;
        s.remote_tag = None;
        s.pending_tx = None;
        s.phase = SubPhase::Waiting;
        self.sub_timers.set(id, &mut s.timer, Some(retry_at));
        s.expires_at = None;
        s.last_error = Some(diagnosis.clone());
        self.events.push_back(Event::SubscriptionFailed {
            user: s.ext.clone(),
            package: s.package,
            status,
            diagnosis,
            retry_at: Some(retry_at),
        });
    }

    pub(super) fn close_sub(&mut self, id: u64) {
        let remove = self
            .subs
            .get(&id)
            .is_some_and(|s| s.remove_after_unsubscribe);
        if let Some(s) = self.subs.get_mut(&id) {
            s.phase = SubPhase::Closed;
            self.sub_timers.set(id, &mut s.timer, None);
            s.pending_tx = None;
        }
        if remove && !self.shutting_down {
            self.drop_sub(id);
        }
        self.maybe_finish_shutdown(self.now);
    }

    pub(super) fn drop_sub(&mut self, id: u64) {
        if let Some(mut s) = self.subs.remove(&id) {
            self.by_call_id.remove(&s.call_id);
            self.sub_timers.set(id, &mut s.timer, None);
        }
    }
}
