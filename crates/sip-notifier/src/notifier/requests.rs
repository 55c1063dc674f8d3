//! Incoming requests: dispatch, responses, digest authentication and REGISTER.

use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_proto::digest::{parse_credentials, Challenge};
use sip_proto::headers::{contact_expires, parse_delta_seconds};
use sip_proto::message::{param, split_name_addr};
use sip_proto::transaction::Absorb;
use sip_proto::{Message, Transmit};

use super::{uri_user, After, Auth, Binding, Notifier, NotifierEvent, TimerKey, MAX_NONCES};

impl Notifier {
    pub(super) fn handle_request(&mut self, from: SocketAddr, msg: Message, now: Instant) {
        let method = msg.method().unwrap_or("").to_ascii_uppercase();
        if method == "ACK" {
            return;
        }
        if msg.top_via().is_none() {
            self.stats.malformed += 1;
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
        let (response, after) = match method.as_str() {
            "REGISTER" => (self.handle_register(from, &msg, now), After::Nothing),
            "SUBSCRIBE" => self.handle_subscribe(from, &msg, now),
            "OPTIONS" => {
                let mut r = self.response(from, &msg, 200, "OK", None);
                r.headers.push("Allow", "REGISTER, SUBSCRIBE, OPTIONS");
                r.headers.push("Allow-Events", "dialog, presence");
                (r, After::Nothing)
            }
            _ => {
                let mut r = self.reject(
                    from,
                    &msg,
                    405,
                    "Method Not Allowed",
                    "method not supported",
                );
                r.headers.push("Allow", "REGISTER, SUBSCRIBE, OPTIONS");
                (r, After::Nothing)
            }
        };
        let bytes = response.to_bytes();
        self.server_txs
            .answered(key, bytes.clone(), false, self.config.timers, now);
        self.transmits.push_back(Transmit {
            destination: from,
            payload: bytes,
        });
        match after {
            After::Nothing => {}
            After::Notify(id) => self.send_notify(id, now),
            After::End(id) => self.send_notify(id, now),
        }
    }

    /// A response to `req`: Via (with `received`/`rport` per RFC 3581), From,
    /// To (with `to_tag` when it has none), Call-ID, CSeq.
    pub(super) fn response(
        &mut self,
        from: SocketAddr,
        req: &Message,
        status: u16,
        reason: &str,
        to_tag: Option<&str>,
    ) -> Message {
        let mut r = req.response(status, reason, || match to_tag {
            Some(t) => t.to_string(),
            None => self.new_tag(),
        });
        if let Some(v) = req.top_via().filter(|v| param(v, "rport").is_some()) {
            let (base, params) = v.split_once(';').unwrap_or((v, ""));
            let mut out = String::with_capacity(v.len() + 40);
            out.push_str(base);
            for p in params.split(';') {
                let name = p.split('=').next().unwrap_or("").trim();
                if name.eq_ignore_ascii_case("rport") || name.eq_ignore_ascii_case("received") {
                    continue;
                }
                out.push(';');
                out.push_str(p);
            }
            let _ = write!(out, ";received={};rport={}", from.ip(), from.port());
            r.headers.replace_first("Via", out);
        }
        r.headers.push("Server", self.config.server_name.clone());
        r
    }

    pub(super) fn reject(
        &mut self,
        from: SocketAddr,
        req: &Message,
        status: u16,
        phrase: &str,
        why: &str,
    ) -> Message {
        self.stats.rejected += 1;
        self.events.push_back(NotifierEvent::Rejected {
            method: req.method().unwrap_or("").to_string(),
            status,
            reason: why.to_string(),
            from,
        });
        self.response(from, req, status, phrase, None)
    }

    fn new_nonce(&mut self, now: Instant) -> String {
        while let Some((t, _)) = self.nonce_order.front() {
            let old = now.saturating_duration_since(*t) > self.config.nonce_lifetime;
            if !old && self.nonce_order.len() < MAX_NONCES {
                break;
            }
            if let Some((_, n)) = self.nonce_order.pop_front() {
                self.nonces.remove(&n);
            }
        }
        let nonce = format!("{:016x}{:08x}", rand::random::<u64>(), self.next_id());
        self.nonces.insert(nonce.clone(), now);
        self.nonce_order.push_back((now, nonce.clone()));
        nonce
    }

    pub(super) fn check_auth(&mut self, req: &Message, method: &str, now: Instant) -> Auth {
        let from_user = req
            .headers
            .get("From")
            .map(|f| uri_user(split_name_addr(f).0).to_string())
            .unwrap_or_default();
        if !self.config.require_auth {
            return Auth::Ok(from_user);
        }
        let header = req
            .headers
            .get("Authorization")
            .or_else(|| req.headers.get("Proxy-Authorization"));
        let Some(creds) = header.and_then(parse_credentials) else {
            return Auth::Challenge { stale: false };
        };
        if creds.realm != self.config.realm {
            return Auth::Challenge { stale: false };
        }
        let Some(account) = self
            .config
            .accounts
            .iter()
            .find(|a| a.user == creds.username)
        else {
            return Auth::Forbidden(creds.username);
        };
        let valid = creds.verify(&account.password, method, &req.body);
        let fresh = self
            .nonces
            .get(&creds.nonce)
            .is_some_and(|t| now.saturating_duration_since(*t) <= self.config.nonce_lifetime);
        match (valid, fresh) {
            (true, true) => Auth::Ok(creds.username),
            (true, false) => Auth::Challenge { stale: true },
            (false, true) => Auth::Forbidden(creds.username),
            // A wrong answer to a nonce we do not know: start over.
            (false, false) => Auth::Challenge { stale: false },
        }
    }

    /// The 401 (or 403) for a request that failed [`check_auth`](Self::check_auth).
    pub(super) fn auth_response(
        &mut self,
        from: SocketAddr,
        req: &Message,
        method: &str,
        auth: Auth,
        now: Instant,
    ) -> Message {
        match auth {
            Auth::Ok(_) => self.response(from, req, 200, "OK", None),
            Auth::Forbidden(user) => {
                self.stats.rejected += 1;
                self.events.push_back(NotifierEvent::AuthFailed {
                    user,
                    method: method.to_string(),
                    from,
                });
                self.response(from, req, 403, "Forbidden", None)
            }
            Auth::Challenge { stale } => {
                self.stats.challenges += 1;
                let nonce = self.new_nonce(now);
                let mut r = self.response(from, req, 401, "Unauthorized", None);
                for algorithm in self.config.algorithms.clone() {
                    let mut c = Challenge::new(self.config.realm.clone(), nonce.clone(), algorithm);
                    c.stale = stale;
                    r.headers.push("WWW-Authenticate", c.to_header_value());
                }
                r
            }
        }
    }

    pub(super) fn granted(&self, requested: Option<u32>) -> Result<u32, u32> {
        let e = requested
            .unwrap_or(self.config.default_expires)
            .min(self.config.max_expires);
        if e != 0 && e < self.config.min_expires {
            return Err(self.config.min_expires);
        }
        Ok(e)
    }

    fn handle_register(&mut self, from: SocketAddr, req: &Message, now: Instant) -> Message {
        let user = match self.check_auth(req, "REGISTER", now) {
            Auth::Ok(user) => user,
            other => return self.auth_response(from, req, "REGISTER", other, now),
        };
        let header_expires = req.headers.get("Expires").and_then(parse_delta_seconds);
        let contacts = req.headers.get_list("Contact");
        let Some(contact) = contacts.first().copied() else {
            // A query: the current binding.
            let mut r = self.response(from, req, 200, "OK", None);
            if let Some(b) = self.bindings.get(&user) {
                let left = b.expires_at.saturating_duration_since(now).as_secs();
                r.headers
                    .push("Contact", format!("<{}>;expires={left}", b.contact));
            }
            return r;
        };
        if contact.trim() == "*" {
            if self.remove_binding(&user) {
                self.events.push_back(NotifierEvent::Unregistered {
                    user,
                    expired: false,
                });
            }
            return self.response(from, req, 200, "OK", None);
        }
        let uri = split_name_addr(contact).0.to_string();
        let requested = contact_expires(contact).or(header_expires);
        let expires = match self.granted(requested) {
            Ok(e) => e,
            Err(min) => {
                let mut r = self.reject(from, req, 423, "Interval Too Brief", "expiry too short");
                r.headers.push("Min-Expires", min.to_string());
                return r;
            }
        };
        if expires == 0 {
            if self.remove_binding(&user) {
                self.events.push_back(NotifierEvent::Unregistered {
                    user,
                    expired: false,
                });
            }
            return self.response(from, req, 200, "OK", None);
        }
        let id = self.next_id();
        let expires_at = now + Duration::from_secs(u64::from(expires));
        self.remove_binding(&user);
        self.binding_ids.insert(id, user.clone());
        self.bindings.insert(
            user.clone(),
            Binding {
                id,
                contact: uri.clone(),
                expires_at,
            },
        );
        self.schedule(expires_at, TimerKey::Reg(id));
        self.events.push_back(NotifierEvent::Registered {
            user,
            contact: uri.clone(),
            expires,
            from,
        });
        let mut r = self.response(from, req, 200, "OK", None);
        r.headers
            .push("Contact", format!("<{uri}>;expires={expires}"));
        r.headers.push("Expires", expires.to_string());
        r
    }
}
