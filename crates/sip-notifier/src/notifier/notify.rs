//! NOTIFY: sending, retransmission, answers, and the subscription and binding timers.

use std::fmt::Write as _;
use std::time::Instant;

use sip_proto::headers::parse_via;
use sip_proto::transaction::{ClientOutput, ClientTransaction};
use sip_proto::{Message, Transmit};

use crate::dialog::{push_escaped, push_uri, write_dialog_info, write_pidf};

use super::{EndReason, Notifier, NotifierEvent, Package, TimerKey, Tx};

impl Notifier {
    /// Sends the current state to one subscriber, or marks it for sending once
    /// the NOTIFY in flight is answered.
    pub(super) fn send_notify(&mut self, id: u64, now: Instant) {
        let tx_id = self.next_id();
        let realm = &self.config.realm;
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        if s.final_sent {
            return;
        }
        if s.in_flight.is_some() {
            s.dirty = true;
            return;
        }
        s.dirty = false;
        let dialogs = self
            .lines
            .get(&s.extension)
            .map(|l| l.dialogs.as_slice())
            .unwrap_or(&[]);
        let version = s.version;
        s.version = s.version.wrapping_add(1);
        s.cseq = s.cseq.wrapping_add(1);
        let mut body = String::with_capacity(256 + 400 * dialogs.len());
        match s.package {
            Package::Dialog => write_dialog_info(&mut body, &s.extension, realm, version, dialogs),
            Package::Presence => write_pidf(&mut body, &s.extension, realm, dialogs),
        }
        let mut m = String::with_capacity(600 + body.len());
        let _ = write!(
            m,
            "NOTIFY {} SIP/2.0\r\nVia: SIP/2.0/UDP {};branch=z9hG4bK-sn{:08x}-{tx_id:x}\r\nMax-Forwards: 70\r\nFrom: <",
            s.target, self.local, self.instance
        );
        push_uri(&mut m, &s.extension, realm);
        let _ = write!(
            m,
            ">;tag={}\r\nTo: {}\r\nCall-ID: {}\r\nCSeq: {} NOTIFY\r\nContact: <sip:",
            s.local_tag, s.remote, s.call_id, s.cseq
        );
        push_escaped(&mut m, &s.extension);
        let _ = write!(m, "@{}>\r\nEvent: {}", self.local, s.package.event_name());
        if let Some(eid) = &s.event_id {
            let _ = write!(m, ";id={eid}");
        }
        match s.ending {
            Some(reason) => {
                let _ = write!(m, "\r\nSubscription-State: terminated;reason={reason}");
                s.final_sent = true;
            }
            None => {
                let left = s.expires_at.saturating_duration_since(now).as_secs();
                let _ = write!(m, "\r\nSubscription-State: active;expires={left}");
            }
        }
        let _ = write!(
            m,
            "\r\nContent-Type: {}\r\nUser-Agent: {}\r\nContent-Length: {}\r\n\r\n",
            s.package.content_type(),
            self.config.server_name,
            body.len()
        );
        m.push_str(&body);
        s.in_flight = Some(tx_id);
        let destination = s.destination;
        let payload = m.into_bytes();
        let tx =
            ClientTransaction::new(payload.clone(), destination, false, self.config.timers, now);
        let timer_at = tx.poll_timeout();
        self.txs.insert(
            tx_id,
            Tx {
                sub: id,
                tx,
                version,
                timer_at,
            },
        );
        if let Some(at) = timer_at {
            self.schedule(at, TimerKey::Tx(tx_id));
        }
        self.stats.notifies_sent += 1;
        self.transmits.push_back(Transmit {
            destination,
            payload,
        });
    }

    pub(super) fn handle_response(&mut self, msg: &Message, now: Instant) {
        let Some(status) = msg.status() else { return };
        let Some(tx_id) = msg
            .top_via()
            .and_then(|v| parse_via(v).ok())
            .and_then(|v| v.branch)
            .and_then(|b| self.tx_id_of_branch(&b))
        else {
            return;
        };
        let Some(t) = self.txs.get_mut(&tx_id) else {
            return;
        };
        if !t.tx.on_response(status, now) {
            return;
        }
        if status < 200 {
            // Proceeding: retransmissions slow down to T2.
            t.timer_at = t.tx.poll_timeout();
            if let Some(at) = t.timer_at {
                self.schedule(at, TimerKey::Tx(tx_id));
            }
            return;
        }
        // Retransmitted final responses find no transaction and are dropped.
        if let Some(t) = self.txs.remove(&tx_id) {
            self.notify_done(t.sub, t.version, Some(status), now);
        }
    }

    fn tx_id_of_branch(&self, branch: &str) -> Option<u64> {
        let rest = branch.strip_prefix("z9hG4bK-sn")?;
        let (instance, id) = rest.split_once('-')?;
        if u32::from_str_radix(instance, 16).ok()? != self.instance {
            return None;
        }
        u64::from_str_radix(id, 16).ok()
    }

    pub(super) fn on_tx_timer(&mut self, tx_id: u64, at: Instant, now: Instant) {
        let Some(t) = self.txs.get_mut(&tx_id) else {
            return;
        };
        if t.timer_at != Some(at) {
            return;
        }
        match t.tx.on_timeout(now) {
            Some(ClientOutput::Retransmit(payload)) => {
                self.stats.retransmissions += 1;
                let destination = t.tx.destination();
                t.timer_at = t.tx.poll_timeout();
                if let Some(next) = t.timer_at {
                    self.schedule(next, TimerKey::Tx(tx_id));
                }
                self.transmits.push_back(Transmit {
                    destination,
                    payload,
                });
            }
            Some(ClientOutput::TimedOut) => {
                if let Some(t) = self.txs.remove(&tx_id) {
                    self.notify_done(t.sub, t.version, None, now);
                }
            }
            None => {
                t.timer_at = t.tx.poll_timeout();
                if let Some(next) = t.timer_at {
                    self.schedule(next, TimerKey::Tx(tx_id));
                } else if t.tx.is_terminated() {
                    self.txs.remove(&tx_id);
                }
            }
        }
    }

    /// A NOTIFY transaction finished: `status` is `None` on time-out.
    fn notify_done(&mut self, id: u64, version: u32, status: Option<u16>, now: Instant) {
        let notify_events = self.config.notify_events;
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        s.in_flight = None;
        let extension = s.extension.clone();
        let ok = status.is_some_and(|c| (200..300).contains(&c));
        if ok {
            self.stats.notifies_answered += 1;
            if notify_events {
                self.events.push_back(NotifierEvent::NotifyAnswered {
                    extension: extension.clone(),
                    version,
                    status: status.unwrap_or(200),
                });
            }
        } else {
            self.stats.notifies_failed += 1;
            self.events.push_back(NotifierEvent::NotifyFailed {
                extension: extension.clone(),
                version,
                status,
            });
        }
        let Some(s) = self.subs.get(&id) else { return };
        if s.final_sent {
            self.subs.remove(&id);
            return;
        }
        // RFC 6665 §4.2.2: these end the subscription.
        let ends = match status {
            None => Some(EndReason::TimedOut),
            Some(c @ (404 | 405 | 410 | 416 | 480..=485 | 489 | 501 | 604)) => {
                Some(EndReason::Rejected(c))
            }
            Some(_) => None,
        };
        if let Some(reason) = ends {
            let active = self.by_dialog.values().any(|x| *x == id);
            self.drop_sub(id);
            if active {
                self.events
                    .push_back(NotifierEvent::Unsubscribed { extension, reason });
            }
            return;
        }
        if s.dirty || s.ending.is_some() {
            self.send_notify(id, now);
        }
    }

    pub(super) fn on_sub_timer(&mut self, id: u64, at: Instant, now: Instant) {
        let Some(s) = self.subs.get(&id) else { return };
        if s.timer_at != Some(at) || s.ending.is_some() {
            return;
        }
        if s.expires_at > now {
            return;
        }
        self.end_sub(id, "timeout", EndReason::Expired, now);
    }

    pub(super) fn on_reg_timer(&mut self, id: u64, at: Instant) {
        let Some(user) = self.binding_ids.get(&id).cloned() else {
            return;
        };
        if self.bindings.get(&user).is_some_and(|b| b.expires_at <= at) {
            self.remove_binding(&user);
            self.events.push_back(NotifierEvent::Unregistered {
                user,
                expired: true,
            });
        }
    }

    /// Forgets an account's binding; `true` when it had one.
    pub(super) fn remove_binding(&mut self, user: &str) -> bool {
        match self.bindings.remove(user) {
            Some(b) => {
                self.binding_ids.remove(&b.id);
                true
            }
            None => false,
        }
    }
}
