//! SUBSCRIBE: new subscriptions, refreshes and their ending.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_proto::headers::{parse_delta_seconds, parse_event};
use sip_proto::message::{split_name_addr, StartLine};
use sip_proto::Message;

use crate::dialog::push_escaped;

use super::{
    dialog_key, remote_tag, uri_user, After, Auth, EndReason, Notifier, NotifierEvent, Package,
    Sub, TimerKey,
};

impl Notifier {
    pub(super) fn handle_subscribe(
        &mut self,
        from: SocketAddr,
        req: &Message,
        now: Instant,
    ) -> (Message, After) {
        let package = match req.headers.get("Event").map(parse_event) {
            None => {
                return (
                    self.reject(from, req, 400, "Missing Event Header", "no Event header"),
                    After::Nothing,
                )
            }
            Some(Ok(e)) if e.package == "dialog" => (Package::Dialog, e.id),
            Some(Ok(e)) if e.package == "presence" => (Package::Presence, e.id),
            Some(_) => {
                let mut r = self.reject(from, req, 489, "Bad Event", "event package not supported");
                r.headers.push("Allow-Events", "dialog, presence");
                return (r, After::Nothing);
            }
        };
        let (package, event_id) = package;
        let (Some(call_id), Some(from_tag), Some(from_value)) =
            (req.call_id(), req.from_tag(), req.headers.get("From"))
        else {
            return (
                self.reject(from, req, 400, "Bad Request", "Call-ID or From tag missing"),
                After::Nothing,
            );
        };
        match self.check_auth(req, "SUBSCRIBE", now) {
            Auth::Ok(_) => {}
            other => {
                return (
                    self.auth_response(from, req, "SUBSCRIBE", other, now),
                    After::Nothing,
                )
            }
        }
        let requested = req.headers.get("Expires").and_then(parse_delta_seconds);
        let expires = match self.granted(requested) {
            Ok(e) => e,
            Err(min) => {
                let mut r = self.reject(from, req, 423, "Interval Too Brief", "expiry too short");
                r.headers.push("Min-Expires", min.to_string());
                return (r, After::Nothing);
            }
        };
        let key = dialog_key(call_id, from_tag);
        let existing = self.by_dialog.get(&key).copied();
        let target = req
            .headers
            .get_list("Contact")
            .first()
            .map(|c| split_name_addr(c).0.to_string());
        match (req.to_tag(), existing) {
            (Some(to_tag), Some(id))
                if self.subs.get(&id).is_some_and(|s| s.local_tag == to_tag) =>
            {
                self.refresh(from, req, id, expires, target, now)
            }
            (Some(_), _) => (
                self.reject(
                    from,
                    req,
                    481,
                    "Subscription Does Not Exist",
                    "no such subscription",
                ),
                After::Nothing,
            ),
            // An initial SUBSCRIBE sent again with a new CSeq (its 200 was
            // lost): the subscription it created.
            (None, Some(id)) => self.refresh(from, req, id, expires, target, now),
            (None, None) => {
                let uri = match &req.start {
                    StartLine::Request { uri, .. } => uri.as_str(),
                    StartLine::Response { .. } => "",
                };
                let mut extension = uri_user(uri);
                if extension.is_empty() {
                    extension = req
                        .headers
                        .get("To")
                        .map(|t| uri_user(split_name_addr(t).0))
                        .unwrap_or("");
                }
                if !self.lines.contains_key(extension) {
                    let why = format!("no extension {extension:?}");
                    return (
                        self.reject(from, req, 404, "Not Found", &why),
                        After::Nothing,
                    );
                }
                let extension = extension.to_string();
                let id = self.next_id();
                let local_tag = self.new_tag();
                let target = target.unwrap_or_else(|| split_name_addr(from_value).0.to_string());
                let expires_at = now + Duration::from_secs(u64::from(expires));
                self.subs.insert(
                    id,
                    Sub {
                        extension: extension.clone(),
                        package,
                        call_id: call_id.to_string(),
                        remote: from_value.to_string(),
                        local_tag: local_tag.clone(),
                        target,
                        destination: from,
                        event_id,
                        cseq: 0,
                        version: 0,
                        expires_at,
                        timer_at: None,
                        in_flight: None,
                        dirty: false,
                        ending: None,
                        final_sent: false,
                    },
                );
                let mut r = self.response(from, req, 200, "OK", Some(&local_tag));
                r.headers.push("Expires", expires.to_string());
                r.headers.push("Contact", self.contact(&extension));
                if expires == 0 {
                    // A fetch: one NOTIFY with the state, then it is over.
                    if let Some(s) = self.subs.get_mut(&id) {
                        s.ending = Some("timeout");
                    }
                    return (r, After::End(id));
                }
                self.by_dialog.insert(key, id);
                if let Some(line) = self.lines.get_mut(&extension) {
                    line.subs.push(id);
                }
                self.set_sub_timer(id, expires_at);
                self.events.push_back(NotifierEvent::Subscribed {
                    extension,
                    package,
                    subscriber: from,
                    expires,
                });
                (r, After::Notify(id))
            }
        }
    }

    fn refresh(
        &mut self,
        from: SocketAddr,
        req: &Message,
        id: u64,
        expires: u32,
        target: Option<String>,
        now: Instant,
    ) -> (Message, After) {
        let Some(s) = self.subs.get_mut(&id) else {
            return (
                self.response(from, req, 481, "Subscription Does Not Exist", None),
                After::Nothing,
            );
        };
        s.destination = from;
        if let Some(t) = target {
            s.target = t;
        }
        let extension = s.extension.clone();
        let local_tag = s.local_tag.clone();
        let mut r = self.response(from, req, 200, "OK", Some(&local_tag));
        r.headers.push("Expires", expires.to_string());
        r.headers.push("Contact", self.contact(&extension));
        if expires == 0 {
            self.end_sub_quietly(id, "timeout");
            self.events.push_back(NotifierEvent::Unsubscribed {
                extension,
                reason: EndReason::Unsubscribed,
            });
            return (r, After::End(id));
        }
        let expires_at = now + Duration::from_secs(u64::from(expires));
        if let Some(s) = self.subs.get_mut(&id) {
            s.expires_at = expires_at;
        }
        self.set_sub_timer(id, expires_at);
        self.events
            .push_back(NotifierEvent::Refreshed { extension, expires });
        (r, After::Notify(id))
    }

    fn contact(&self, extension: &str) -> String {
        let mut c = String::with_capacity(48);
        c.push_str("<sip:");
        push_escaped(&mut c, extension);
        let _ = write!(c, "@{}>", self.local);
        c
    }

    fn set_sub_timer(&mut self, id: u64, at: Instant) {
        if let Some(s) = self.subs.get_mut(&id) {
            s.timer_at = Some(at);
            self.schedule(at, TimerKey::Sub(id));
        }
    }

    /// Takes a subscription out of the line and the dialog index, marks it as
    /// ending with `reason`; the caller sends the final NOTIFY.
    fn end_sub_quietly(&mut self, id: u64, reason: &'static str) {
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        s.ending = Some(reason);
        s.timer_at = None;
        let key = dialog_key(&s.call_id, remote_tag(&s.remote));
        let extension = s.extension.clone();
        self.by_dialog.remove(&key);
        if let Some(line) = self.lines.get_mut(&extension) {
            line.subs.retain(|x| *x != id);
        }
    }

    /// Ends a subscription with a final NOTIFY and reports it.
    pub(super) fn end_sub(&mut self, id: u64, reason: &'static str, why: EndReason, now: Instant) {
        let Some(extension) = self.subs.get(&id).map(|s| s.extension.clone()) else {
            return;
        };
        self.end_sub_quietly(id, reason);
        self.events.push_back(NotifierEvent::Unsubscribed {
            extension,
            reason: why,
        });
        self.send_notify(id, now);
    }

    /// Removes a subscription for good (no NOTIFY).
    pub(super) fn drop_sub(&mut self, id: u64) {
        self.end_sub_quietly(id, "timeout");
        self.subs.remove(&id);
    }
}
