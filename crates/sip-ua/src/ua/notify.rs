//! Requests from the PBX: NOTIFYs matched to their subscription, OPTIONS, and
//! what a `Subscription-State: terminated` does.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use super::*;

impl UserAgent {
    pub(super) fn handle_request(&mut self, from: SocketAddr, msg: Message, now: Instant) {
        let method = msg.method().unwrap_or("").to_ascii_uppercase();
        if method == "ACK" {
            return;
        }
        let key = match self.server_txs.absorb(&msg, from) {
            Absorb::New(key) => key,
            Absorb::Retransmission(payload) => {
                self.transmits.push_back(Transmit {
                    destination: from,
                    payload,
                });
                return;
            }
        };
        let response = match method.as_str() {
            "NOTIFY" => self.handle_notify(from, &msg, now),
            "OPTIONS" => {
                let mut r = self.response_to(&msg, 200, "OK");
                r.headers.push("Allow", "NOTIFY, OPTIONS");
                r
            }
            _ => {
                let mut r = self.response_to(&msg, 405, "Method Not Allowed");
                r.headers.push("Allow", "NOTIFY, OPTIONS");
                r
            }
        };
        let bytes = response.to_bytes();
        self.server_txs.answered(
            key,
            bytes.clone(),
            self.cfg.transport.is_reliable(),
            self.cfg.timers,
            now,
        );
        self.transmits.push_back(Transmit {
            destination: from,
            payload: bytes,
        });
        // A final NOTIFY may have been the last thing a shutdown waited for:
        // the un-REGISTER goes out after its 200.
        self.maybe_finish_shutdown(now);
    }

    pub(super) fn response_to(&self, req: &Message, status: u16, reason: &str) -> Message {
        let mut r = req.response(status, reason, || random_hex(8));
        r.headers.push("User-Agent", self.cfg.user_agent.clone());
        r
    }

    pub(super) fn find_dialog(&self, msg: &Message) -> Result<u64, (NotifyRejection, String)> {
        use NotifyRejection::{DialogMismatch, Malformed, UnknownDialog};
        let call_id = msg.call_id().ok_or((Malformed, "no Call-ID".into()))?;
        let id = *self.by_call_id.get(call_id).ok_or_else(|| {
            (
                UnknownDialog,
                format!("NOTIFY for unknown Call-ID {call_id}"),
            )
        })?;
        let s = self
            .subs
            .get(&id)
            .ok_or((UnknownDialog, "subscription gone".into()))?;
        if s.phase == SubPhase::Closed && !self.shutting_down {
            return Err((UnknownDialog, "subscription closed".into()));
        }
        if msg.to_tag() != Some(s.local_tag.as_str()) {
            return Err((
                DialogMismatch,
                "NOTIFY To-tag does not match our dialog".into(),
            ));
        }
        match (&s.remote_tag, msg.from_tag()) {
            (Some(ours), Some(theirs)) if ours == theirs => {}
            (None, Some(_)) if s.phase == SubPhase::Subscribing => {}
            _ => {
                return Err((
                    DialogMismatch,
                    "NOTIFY From-tag does not match our dialog".into(),
                ))
            }
        }
        if let Some(ev) = msg.headers.get("Event").and_then(|e| parse_event(e).ok()) {
            if ev.package != s.package.event_name() {
                return Err((
                    DialogMismatch,
                    format!("NOTIFY for event package {}", ev.package),
                ));
            }
        }
        Ok(id)
    }

    pub(super) fn handle_notify(
        &mut self,
        from: SocketAddr,
        msg: &Message,
        now: Instant,
    ) -> Message {
        let id = match self.find_dialog(msg) {
            Ok(id) => id,
            Err((kind, reason)) => {
                self.events
                    .push_back(Event::NotifyRejected { from, kind, reason });
                return self.response_to(msg, 481, "Subscription Does Not Exist");
            }
        };
        let sub_state = msg
            .headers
            .get("Subscription-State")
            .and_then(|v| parse_subscription_state(v).ok());
        let content_type = msg.headers.get("Content-Type").map(str::to_string);
        let shutting_down = self.shutting_down;
        let ok = self.response_to(msg, 200, "OK");
        let Some(s) = self.subs.get_mut(&id) else {
            return ok;
        };
        if s.remote_tag.is_none() {
            // The NOTIFY came before the 2xx: it creates the dialog (RFC 6665 §4.1.2.4).
            s.remote_tag = msg.from_tag().map(str::to_string);
            s.established_at = Some(now);
        }
        if let Some(c) = msg.headers.get_list("Contact").first() {
            s.remote_target = Some(split_name_addr(c).0.to_string());
        }
        let ext = s.ext.clone();
        self.events.push_back(Event::Notify(Notify {
            user: ext.clone(),
            package: s.package,
            content_type,
            body: msg.body.clone(),
            subscription_state: sub_state.clone(),
            received_at: now,
        }));
        let terminated = matches!(&sub_state, Some(st) if st.state == SubState::Terminated);
        if shutting_down || matches!(s.phase, SubPhase::Unsubscribing | SubPhase::Closed) {
            if terminated {
                s.final_notify = true;
                if s.phase == SubPhase::AwaitingFinalNotify {
                    s.phase = SubPhase::Closed;
                }
            }
            return ok;
        }
        let Some(state) = sub_state else {
            return ok;
        };
        match state.state {
            SubState::Active => {
                if s.reported_pending {
                    s.reported_pending = false;
                    self.events.push_back(Event::SubscriptionActive {
                        user: ext,
                        package: s.package,
                        expires: state.expires.unwrap_or(s.expires_req),
                    });
                }
                if let (Some(e), SubPhase::Active) = (state.expires, s.phase) {
                    let refresh = now + refresh_delay(e);
                    if s.timer.is_none_or(|t| refresh < t) {
                        self.sub_timers.set(id, &mut s.timer, Some(refresh));
                    }
                }
            }
            SubState::Pending => {
                if !s.reported_pending {
                    s.reported_pending = true;
                    self.events.push_back(Event::SubscriptionPending {
                        user: ext,
                        package: s.package,
                    });
                }
            }
            SubState::Terminated => {
                self.on_terminated(id, state.reason, state.retry_after, now);
            }
            SubState::Other(_) => {}
        }
        ok
    }

    pub(super) fn on_terminated(
        &mut self,
        id: u64,
        reason: Option<TerminationReason>,
        retry_after: Option<u32>,
        now: Instant,
    ) {
        let slow = self.cfg.slow_retry;
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        // A subscription that lived a while before ending is not a failure.
        if s.established_at
            .is_some_and(|t| now.saturating_duration_since(t) >= Duration::from_secs(60))
        {
            s.failures = 0;
        }
        s.failures += 1;
        let failures = s.failures;
        let ext = s.ext.clone();
        let package = s.package;
        let retry_after = retry_after.map(|r| Duration::from_secs(u64::from(r)));
        let delay = match &reason {
            None | Some(TerminationReason::Deactivated) | Some(TerminationReason::Timeout) => {
                if failures <= 1 {
                    Some(Duration::ZERO)
                } else {
                    Some(self.backoff(failures - 1))
                }
            }
            Some(TerminationReason::Probation) | Some(TerminationReason::Giveup) => {
                Some(retry_after.unwrap_or_else(|| self.backoff(failures)))
            }
            Some(TerminationReason::Rejected) | Some(TerminationReason::Noresource) => {
                Some(retry_after.unwrap_or(slow).max(slow))
            }
            Some(TerminationReason::Invariant) => None,
            // An unknown reason (`Other`, or one a newer sip-proto names).
            Some(_) => Some(self.backoff(failures)),
        };
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
        s.expires_at = None;
        s.last_error = Some(match &reason {
            Some(r) => format!("the PBX ended the subscription to {} (reason {r})", s.ext),
            None => format!("the PBX ended the subscription to {}", s.ext),
        });
        let retry_at = delay.map(|d| now + d);
        match retry_at {
            Some(at) => {
                s.phase = SubPhase::Waiting;
                self.sub_timers.set(id, &mut s.timer, Some(at));
            }
            None => {
                s.phase = SubPhase::Closed;
                self.sub_timers.set(id, &mut s.timer, None);
            }
        }
        self.events.push_back(Event::SubscriptionTerminated {
            user: ext,
            package,
            reason,
            retry_at,
        });
    }
}
