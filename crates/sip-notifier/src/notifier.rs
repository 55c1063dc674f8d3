//! The sans-IO notifier: REGISTER, SUBSCRIBE and NOTIFY (RFC 3261, RFC 6665).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_ua::digest::{parse_credentials, Challenge};
use sip_ua::headers::{contact_expires, parse_delta_seconds, parse_event, parse_via};
use sip_ua::message::{name_addr_param, param, split_name_addr, StartLine};
use sip_ua::transaction::{ClientOutput, ClientTransaction, ServerTransactions};
use sip_ua::{Message, Transmit};

use crate::config::NotifierConfig;
use crate::dialog::{push_escaped, push_uri, write_dialog_info, write_pidf, DialogSpec};

/// The event package of a subscription.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Package {
    /// `Event: dialog` (RFC 4235), bodies `application/dialog-info+xml`.
    Dialog,
    /// `Event: presence` (RFC 3856), bodies `application/pidf+xml`.
    Presence,
}

impl Package {
    /// The `Event` header value.
    pub fn event_name(self) -> &'static str {
        match self {
            Self::Dialog => "dialog",
            Self::Presence => "presence",
        }
    }
    fn content_type(self) -> &'static str {
        match self {
            Self::Dialog => "application/dialog-info+xml",
            Self::Presence => "application/pidf+xml",
        }
    }
}

/// Why a subscription ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndReason {
    /// The subscriber sent `Expires: 0`.
    Unsubscribed,
    /// It was not refreshed in time.
    Expired,
    /// The subscriber answered a NOTIFY with this status (481 and the other
    /// codes of RFC 6665 §4.2.2 that end a subscription).
    Rejected(u16),
    /// A NOTIFY got no answer (Timer F).
    TimedOut,
    /// [`Notifier::shutdown`].
    Shutdown,
}

/// What happened; read with [`Notifier::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotifierEvent {
    /// A REGISTER was accepted (new binding or refresh).
    Registered {
        /// The account.
        user: String,
        /// The Contact URI bound.
        contact: String,
        /// Granted expiry, seconds.
        expires: u32,
        /// Where it came from.
        from: SocketAddr,
    },
    /// A binding was removed (`Expires: 0`) or ran out.
    Unregistered {
        /// The account.
        user: String,
        /// `true` when it ran out rather than being removed.
        expired: bool,
    },
    /// A new subscription was accepted (its first NOTIFY is on its way).
    Subscribed {
        /// The extension watched.
        extension: String,
        /// Its event package.
        package: Package,
        /// The subscriber's address (where NOTIFYs go).
        subscriber: SocketAddr,
        /// Granted expiry, seconds.
        expires: u32,
    },
    /// A subscription was refreshed.
    Refreshed {
        /// The extension watched.
        extension: String,
        /// Granted expiry, seconds.
        expires: u32,
    },
    /// A subscription ended (its final NOTIFY, if any, is on its way).
    Unsubscribed {
        /// The extension watched.
        extension: String,
        /// Why.
        reason: EndReason,
    },
    /// A NOTIFY got a 2xx (only with [`NotifierConfig::notify_events`]).
    NotifyAnswered {
        /// The extension.
        extension: String,
        /// The `version` of the document it carried.
        version: u32,
        /// The status code.
        status: u16,
    },
    /// A NOTIFY got an error response or none.
    NotifyFailed {
        /// The extension.
        extension: String,
        /// The `version` of the document it carried.
        version: u32,
        /// The status, `None` on time-out.
        status: Option<u16>,
    },
    /// Credentials were wrong (403), or named an unknown account.
    AuthFailed {
        /// The user name given.
        user: String,
        /// The method of the request.
        method: String,
        /// Where it came from.
        from: SocketAddr,
    },
    /// A request was refused for another reason (unknown extension, bad event…).
    Rejected {
        /// The method.
        method: String,
        /// The status sent.
        status: u16,
        /// Why, in plain words.
        reason: String,
        /// Where it came from.
        from: SocketAddr,
    },
}

/// Counters, from [`Notifier::stats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NotifierStats {
    /// Current registrations (accounts with a binding).
    pub registrations: usize,
    /// Current subscriptions (not ending).
    pub active_subscriptions: usize,
    /// NOTIFY requests sent (not counting retransmissions).
    pub notifies_sent: u64,
    /// NOTIFY requests answered with 2xx.
    pub notifies_answered: u64,
    /// NOTIFY requests answered with an error, or not at all.
    pub notifies_failed: u64,
    /// NOTIFY retransmissions (Timer E).
    pub retransmissions: u64,
    /// Challenges sent (401).
    pub challenges: u64,
    /// Requests refused with another error (403, 404, 423, 481, 489…).
    pub rejected: u64,
    /// Datagrams that were not SIP.
    pub malformed: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum TimerKey {
    Tx(u64),
    Sub(u64),
    Reg(u64),
}

#[derive(Debug)]
struct Sub {
    extension: String,
    package: Package,
    call_id: String,
    /// The subscriber's `From` value (with its tag): our `To`.
    remote: String,
    local_tag: String,
    /// The subscriber's Contact URI: the NOTIFY Request-URI.
    target: String,
    destination: SocketAddr,
    event_id: Option<String>,
    cseq: u32,
    /// The next document version.
    version: u32,
    expires_at: Instant,
    timer_at: Option<Instant>,
    in_flight: Option<u64>,
    /// The line changed while a NOTIFY was in flight.
    dirty: bool,
    /// `Some(reason)`: ending; the final NOTIFY says `terminated;reason=…`.
    ending: Option<&'static str>,
    /// The final NOTIFY has been sent.
    final_sent: bool,
}

#[derive(Debug)]
struct Tx {
    sub: u64,
    tx: ClientTransaction,
    version: u32,
    timer_at: Option<Instant>,
}

#[derive(Debug)]
struct Binding {
    id: u64,
    contact: String,
    expires_at: Instant,
}

#[derive(Debug, Default)]
struct Line {
    dialogs: Vec<DialogSpec>,
    subs: Vec<u64>,
}

enum Auth {
    Ok(String),
    Challenge { stale: bool },
    Forbidden(String),
}

enum After {
    Nothing,
    Notify(u64),
    End(u64),
}

/// Most nonces remembered at once (bounded memory under a flood of REGISTERs).
const MAX_NONCES: usize = 64 * 1024;

/// The sans-IO notifier. Feed it datagrams with [`handle_input`](Self::handle_input)
/// and time with [`handle_timeout`](Self::handle_timeout) (at
/// [`poll_timeout`](Self::poll_timeout)); send what
/// [`poll_transmit`](Self::poll_transmit) returns; read
/// [`poll_event`](Self::poll_event). Change a line with
/// [`set_line`](Self::set_line): every subscriber of it gets a NOTIFY.
#[derive(Debug)]
pub struct Notifier {
    config: NotifierConfig,
    local: SocketAddr,
    lines: HashMap<String, Line>,
    subs: HashMap<u64, Sub>,
    /// `Call-ID` + NUL + subscriber tag → subscription.
    by_dialog: HashMap<String, u64>,
    txs: HashMap<u64, Tx>,
    bindings: HashMap<String, Binding>,
    /// Binding id → account, for the expiry timers.
    binding_ids: HashMap<u64, String>,
    nonces: HashMap<String, Instant>,
    nonce_order: VecDeque<(Instant, String)>,
    timers: BinaryHeap<Reverse<(Instant, TimerKey)>>,
    server_txs: ServerTransactions,
    transmits: VecDeque<Transmit>,
    events: VecDeque<NotifierEvent>,
    stats: NotifierStats,
    next_id: u64,
    /// Random prefix of our branches and tags, so two runs never collide.
    instance: u32,
    shutting_down: bool,
}

impl Notifier {
    /// A notifier answering on `local` (the address it is reachable at).
    pub fn new(config: NotifierConfig, local: SocketAddr, now: Instant) -> Self {
        let _ = now;
        let lines = config
            .extensions
            .iter()
            .map(|e| (e.clone(), Line::default()))
            .collect();
        Self {
            config,
            local,
            lines,
            subs: HashMap::new(),
            by_dialog: HashMap::new(),
            txs: HashMap::new(),
            bindings: HashMap::new(),
            binding_ids: HashMap::new(),
            nonces: HashMap::new(),
            nonce_order: VecDeque::new(),
            timers: BinaryHeap::new(),
            server_txs: ServerTransactions::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: NotifierStats::default(),
            next_id: 1,
            instance: rand::random(),
            shutting_down: false,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &NotifierConfig {
        &self.config
    }

    /// The address in our Via and Contact headers.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Makes an extension known (idle) so it can be subscribed to.
    pub fn add_extension(&mut self, extension: &str) {
        if !self.lines.contains_key(extension) {
            self.lines.insert(extension.to_string(), Line::default());
        }
    }

    /// The dialogs last set for an extension.
    pub fn line(&self, extension: &str) -> Option<&[DialogSpec]> {
        self.lines.get(extension).map(|l| l.dialogs.as_slice())
    }

    /// Replaces the dialogs of an extension (making it known) and sends every
    /// subscriber a NOTIFY with the full state and the next version. A
    /// subscriber with a NOTIFY still unanswered gets the newest state once it
    /// answers (one NOTIFY in flight per subscription, RFC 6665 §4.2.2).
    pub fn set_line(&mut self, extension: &str, dialogs: Vec<DialogSpec>, now: Instant) {
        let line = match self.lines.get_mut(extension) {
            Some(l) => l,
            None => self.lines.entry(extension.to_string()).or_default(),
        };
        line.dialogs = dialogs;
        let subs = std::mem::take(&mut line.subs);
        for id in &subs {
            self.send_notify(*id, now);
        }
        if let Some(line) = self.lines.get_mut(extension) {
            line.subs = subs;
        }
        self.prune_timers();
    }

    /// Counters.
    pub fn stats(&self) -> NotifierStats {
        NotifierStats {
            registrations: self.bindings.len(),
            active_subscriptions: self.by_dialog.len(),
            ..self.stats
        }
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<NotifierEvent> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let heap = self.timers.peek().map(|Reverse((t, _))| *t);
        match (heap, self.server_txs.poll_timeout()) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Fires every timer due at `now`: NOTIFY retransmissions and time-outs,
    /// subscription and registration expiry.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.server_txs.on_timeout(now);
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            if at > now {
                break;
            }
            self.timers.pop();
            match key {
                TimerKey::Tx(id) => self.on_tx_timer(id, at, now),
                TimerKey::Sub(id) => self.on_sub_timer(id, at, now),
                TimerKey::Reg(id) => self.on_reg_timer(id, at),
            }
        }
        self.prune_timers();
    }

    /// Ends every subscription (a final NOTIFY with
    /// `Subscription-State: terminated;reason=deactivated`) and forgets every
    /// registration. [`is_shut_down`](Self::is_shut_down) says when the final
    /// NOTIFYs are answered (or timed out).
    pub fn shutdown(&mut self, now: Instant) {
        self.shutting_down = true;
        let ids: Vec<u64> = self.by_dialog.values().copied().collect();
        for id in ids {
            self.end_sub(id, "deactivated", EndReason::Shutdown, now);
        }
        self.bindings.clear();
        self.binding_ids.clear();
    }

    /// `true` after [`shutdown`](Self::shutdown) once no NOTIFY is in flight.
    pub fn is_shut_down(&self) -> bool {
        self.shutting_down && self.txs.is_empty()
    }

    /// Takes one datagram from `from`. Anything that is not SIP is counted and dropped.
    pub fn handle_input(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) {
        if datagram.iter().all(|b| b.is_ascii_whitespace()) {
            // CRLF keep-alive.
            return;
        }
        let Ok(msg) = Message::parse(datagram) else {
            self.stats.malformed += 1;
            return;
        };
        if msg.is_request() {
            self.handle_request(from, msg, now);
        } else {
            self.handle_response(&msg, now);
        }
        self.prune_timers();
    }

    // ------------------------------------------------------------------ ids

    fn next_id(&mut self) -> u64 {
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    fn new_tag(&mut self) -> String {
        let id = self.next_id();
        format!("{:08x}{id:x}", self.instance)
    }

    /// Drops timer entries that no longer fire anything, so that
    /// [`poll_timeout`](Self::poll_timeout) does not wake the caller for nothing.
    fn prune_timers(&mut self) {
        while let Some(Reverse((at, key))) = self.timers.peek().copied() {
            let live = match key {
                TimerKey::Tx(id) => self.txs.get(&id).is_some_and(|t| t.timer_at == Some(at)),
                TimerKey::Sub(id) => self
                    .subs
                    .get(&id)
                    .is_some_and(|s| s.timer_at == Some(at) && s.ending.is_none()),
                TimerKey::Reg(id) => self.binding_ids.contains_key(&id),
            };
            if live {
                return;
            }
            self.timers.pop();
        }
    }

    fn schedule(&mut self, at: Instant, key: TimerKey) {
        self.timers.push(Reverse((at, key)));
    }

    // ------------------------------------------------------------- requests

    fn handle_request(&mut self, from: SocketAddr, msg: Message, now: Instant) {
        let method = msg.method().unwrap_or("").to_ascii_uppercase();
        if method == "ACK" {
            return;
        }
        if msg.top_via().is_none() {
            self.stats.malformed += 1;
            return;
        }
        let key = ServerTransactions::key(&msg, from);
        if let Some(resp) = self.server_txs.retransmission(&key) {
            let payload = resp.to_vec();
            self.transmits.push_back(Transmit {
                destination: from,
                payload,
            });
            return;
        }
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
    fn response(
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

    fn reject(
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

    fn check_auth(&mut self, req: &Message, method: &str, now: Instant) -> Auth {
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
    fn auth_response(
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

    fn granted(&self, requested: Option<u32>) -> Result<u32, u32> {
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

    fn handle_subscribe(
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
    fn end_sub(&mut self, id: u64, reason: &'static str, why: EndReason, now: Instant) {
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
    fn drop_sub(&mut self, id: u64) {
        self.end_sub_quietly(id, "timeout");
        self.subs.remove(&id);
    }

    // ---------------------------------------------------------------- NOTIFY

    /// Sends the current state to one subscriber, or marks it for sending once
    /// the NOTIFY in flight is answered.
    fn send_notify(&mut self, id: u64, now: Instant) {
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

    fn handle_response(&mut self, msg: &Message, now: Instant) {
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

    fn on_tx_timer(&mut self, tx_id: u64, at: Instant, now: Instant) {
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

    fn on_sub_timer(&mut self, id: u64, at: Instant, now: Instant) {
        let Some(s) = self.subs.get(&id) else { return };
        if s.timer_at != Some(at) || s.ending.is_some() {
            return;
        }
        if s.expires_at > now {
            return;
        }
        self.end_sub(id, "timeout", EndReason::Expired, now);
    }

    fn on_reg_timer(&mut self, id: u64, at: Instant) {
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
    fn remove_binding(&mut self, user: &str) -> bool {
        match self.bindings.remove(user) {
            Some(b) => {
                self.binding_ids.remove(&b.id);
                true
            }
            None => false,
        }
    }
}

fn dialog_key(call_id: &str, tag: &str) -> String {
    let mut k = String::with_capacity(call_id.len() + tag.len() + 1);
    k.push_str(call_id);
    k.push('\0');
    k.push_str(tag);
    k
}

fn remote_tag(from_value: &str) -> &str {
    name_addr_param(from_value, "tag").unwrap_or("")
}

/// The user part of a SIP URI (`sip:1001@host;x` → `1001`), empty when none.
fn uri_user(uri: &str) -> &str {
    let rest = uri
        .strip_prefix("sip:")
        .or_else(|| uri.strip_prefix("sips:"))
        .or_else(|| uri.strip_prefix("SIP:"))
        .unwrap_or(uri);
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or(""),
        None => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uri_users() {
        assert_eq!(uri_user("sip:1001@pbx;transport=udp"), "1001");
        assert_eq!(uri_user("sips:alice@example.com"), "alice");
        assert_eq!(uri_user("sip:pbx.example.com"), "");
        assert_eq!(uri_user(""), "");
    }
}
