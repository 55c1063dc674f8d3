//! The sans-IO notifier: REGISTER, SUBSCRIBE and NOTIFY (RFC 3261, RFC 6665).

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::Instant;

use sip_proto::message::name_addr_param;
use sip_proto::transaction::{ClientTransaction, ServerTransactions};
use sip_proto::{Message, Transmit};

use crate::config::NotifierConfig;
use crate::dialog::DialogSpec;

mod notify;
mod requests;
mod subscribe;

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
