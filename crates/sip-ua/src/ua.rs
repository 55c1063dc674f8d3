//! The sans-IO user agent: registration, subscriptions, NOTIFY handling and
//! publications.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::{ContactAddress, EventPackage, Subscription, Transport, UaConfig};
use crate::digest::{AuthError, DigestSession};
use crate::discovery::AddressDiscovery;
use crate::headers::{
    contact_expires, parse_delta_seconds, parse_event, parse_min_expires, parse_retry_after,
    parse_subscription_state, parse_via, SubState, TerminationReason,
};
use crate::message::{split_name_addr, Message, StartLine};
use crate::transaction::{Absorb, ClientOutput, ClientTransaction, ServerTransactions};

mod message;
mod notify;
mod publish;
mod register;
mod request;
mod subscribe;
mod timers;
mod types;

use timers::TimerIndex;

pub(crate) use message::validate as validate_message;
pub use message::{MessageId, MAX_MESSAGE_BODY};
pub(crate) use publish::validate as validate_publication;
pub use publish::PublicationStatus;
pub use types::{
    Event, Notify, NotifyRejection, RegistrationStatus, SubscriptionPhase, SubscriptionStatus,
    Transmit, UaStatus,
};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Register,
    Subscribe(u64),
    Publish(u64),
    Message(u64),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegPhase {
    /// Waiting for `timer` to send a REGISTER.
    Idle,
    /// REGISTER in flight.
    Sending,
    /// Registered; `timer` is the refresh.
    Registered,
    /// un-REGISTER in flight.
    Unregistering,
    /// Not registering (config, or shut down).
    Done,
}

#[derive(Debug)]
struct Registration {
    phase: RegPhase,
    call_id: String,
    from_tag: String,
    cseq: u32,
    auth: DigestSession,
    expires_req: u32,
    timer: Option<Instant>,
    pending_tx: Option<String>,
    failures: u32,
    registered: bool,
    count_423: u32,
    /// A REGISTER timed out since the last success.
    unreachable: bool,
    expires_at: Option<Instant>,
    last_error: Option<String>,
    /// Contact address of the last successful REGISTER.
    contact: Option<SocketAddr>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubPhase {
    /// No dialog; `timer` starts a new subscription.
    Waiting,
    /// Initial SUBSCRIBE in flight.
    Subscribing,
    /// Dialog up; `timer` is the refresh.
    Active,
    /// In-dialog refresh in flight.
    Refreshing,
    /// Un-SUBSCRIBE in flight.
    Unsubscribing,
    /// Shutting down: the un-SUBSCRIBE was answered 2xx, its final NOTIFY
    /// (`terminated`) is still to come.
    AwaitingFinalNotify,
    /// Finished (invariant, removed, shut down).
    Closed,
}

#[derive(Debug)]
struct Sub {
    ext: String,
    package: EventPackage,
    phase: SubPhase,
    call_id: String,
    local_tag: String,
    cseq: u32,
    remote_tag: Option<String>,
    remote_target: Option<String>,
    route_set: Vec<String>,
    timer: Option<Instant>,
    auth: DigestSession,
    expires_req: u32,
    failures: u32,
    pending_tx: Option<String>,
    established_at: Option<Instant>,
    reported_pending: bool,
    remove_after_unsubscribe: bool,
    /// A NOTIFY `terminated` came while un-subscribing.
    final_notify: bool,
    count_423: u32,
    /// `timer` is a pacing slot already taken.
    slot_reserved: bool,
    expires_at: Option<Instant>,
    last_error: Option<String>,
}

/// The sans-IO SIP user agent.
///
/// Feed it with [`handle_input`](Self::handle_input) and
/// [`handle_timeout`](Self::handle_timeout); send what
/// [`poll_transmit`](Self::poll_transmit) returns; call `handle_timeout` at
/// [`poll_timeout`](Self::poll_timeout); read [`poll_event`](Self::poll_event).
pub struct UserAgent {
    cfg: UaConfig,
    domain: String,
    server: SocketAddr,
    local: SocketAddr,
    learned: Option<SocketAddr>,
    discovery: Option<Box<dyn AddressDiscovery>>,
    contact_in_use: Option<SocketAddr>,
    reg: Registration,
    subs: BTreeMap<u64, Sub>,
    /// Every subscription's `timer`, by time: the next deadline and the due
    /// subscriptions without a scan of them all (10,000 at a large PBX).
    sub_timers: TimerIndex,
    by_call_id: HashMap<String, u64>,
    /// Publications (PUBLISH), by id from `next_id` as well.
    pubs: BTreeMap<u64, publish::Publication>,
    /// MESSAGEs awaiting their final answer, by id from `next_id` as well.
    msgs: BTreeMap<u64, message::OutMessage>,
    /// The digest state of the last MESSAGE accepted, which the next ones start from.
    msg_auth: DigestSession,
    next_id: u64,
    txs: HashMap<String, (ClientTransaction, Owner)>,
    server_txs: ServerTransactions,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_slot: Instant,
    subs_started: bool,
    shutting_down: bool,
    /// Until when the shutdown waits for the un-SUBSCRIBEs' final NOTIFYs.
    final_notify_deadline: Option<Instant>,
    shut_down: bool,
    keepalive_at: Option<Instant>,
    pong_deadline: Option<Instant>,
    transport_failed: bool,
    now: Instant,
}

impl std::fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgent")
            .field("cfg", &self.cfg)
            .field("server", &self.server)
            .field("local", &self.local)
            .field("subscriptions", &self.subs.len())
            .finish_non_exhaustive()
    }
}

/// Longest wait at shutdown for the final NOTIFYs (`Subscription-State:
/// terminated`) that answer the un-SUBSCRIBEs (RFC 6665 §4.1.2.3), so that
/// none arrives at a closed socket (Asterisk then retransmits it for 32 s, and
/// the next start sees it as a NOTIFY for no subscription). Timer F if shorter.
pub const FINAL_NOTIFY_WAIT: Duration = Duration::from_secs(2);

/// How long to wait for the answer to a TCP keep-alive (RFC 5626 §4.4.1).
const PONG_TIMEOUT: Duration = Duration::from_secs(10);

fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

/// When to refresh something granted for `granted` seconds: 32 s (Timer F)
/// before it runs out, or half-way for short expiries.
pub(crate) fn refresh_delay(granted: u32) -> Duration {
    let g = u64::from(granted);
    let secs = if g > 64 { g - 32 } else { (g / 2).max(1) };
    Duration::from_secs(secs)
}

/// `Min-Expires` to use when a 423 has none: double the request, at least 60 s,
/// at most 3600 s (Asterisk also falls back to a fixed sane value).
fn min_expires_fallback(requested: u32) -> u32 {
    requested.saturating_mul(2).clamp(60, 3600)
}

impl UserAgent {
    /// A user agent that will REGISTER at `server` and subscribe to `subscriptions`.
    /// `local` is the local socket address (the driver calls
    /// [`set_local_addr`](Self::set_local_addr) when it knows better).
    pub fn new(
        cfg: UaConfig,
        server: SocketAddr,
        local: SocketAddr,
        subscriptions: Vec<Subscription>,
        now: Instant,
    ) -> Self {
        let domain = cfg.sip_domain();
        let reg = Registration {
            phase: if cfg.register {
                RegPhase::Idle
            } else {
                RegPhase::Done
            },
            call_id: format!("{}@sip-ua", random_hex(12)),
            from_tag: random_hex(8),
            cseq: 0,
            auth: DigestSession::new(),
            expires_req: cfg.register_expires,
            timer: cfg.register.then_some(now),
            pending_tx: None,
            failures: 0,
            registered: false,
            count_423: 0,
            unreachable: false,
            expires_at: None,
            last_error: None,
            contact: None,
        };
        let mut ua = Self {
            domain,
            server,
            local,
            learned: None,
            discovery: None,
            contact_in_use: None,
            reg,
            subs: BTreeMap::new(),
            sub_timers: TimerIndex::default(),
            by_call_id: HashMap::new(),
            pubs: BTreeMap::new(),
            msgs: BTreeMap::new(),
            msg_auth: DigestSession::new(),
            next_id: 1,
            txs: HashMap::new(),
            server_txs: ServerTransactions::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_slot: now,
            subs_started: false,
            shutting_down: false,
            final_notify_deadline: None,
            shut_down: false,
            keepalive_at: cfg.keepalive_interval.map(|i| now + i),
            pong_deadline: None,
            transport_failed: false,
            now,
            cfg,
        };
        for s in subscriptions {
            ua.add_subscription(s, now);
        }
        if !ua.cfg.register {
            ua.start_subscriptions(now);
        }
        ua
    }

    /// Uses `discovery` to learn the public address of the SIP socket
    /// (with [`ContactAddress::Discovered`]).
    pub fn set_discovery(&mut self, discovery: Box<dyn AddressDiscovery>) {
        self.discovery = Some(discovery);
    }

    /// Updates the local socket address (e.g. once the socket is bound).
    pub fn set_local_addr(&mut self, local: SocketAddr, now: Instant) {
        self.local = local;
        self.check_contact(now);
    }

    /// The PBX address requests go to.
    pub fn server_addr(&self) -> SocketAddr {
        self.server
    }

    /// The address currently used in `Contact`.
    pub fn contact_addr(&self) -> SocketAddr {
        let learned = self.learned.unwrap_or(self.local);
        match self.cfg.contact {
            ContactAddress::Fixed(ip) => SocketAddr::new(ip, self.local.port()),
            ContactAddress::Learned => learned,
            ContactAddress::Discovered => self
                .discovery
                .as_ref()
                .and_then(|d| d.public_addr())
                .unwrap_or(learned),
        }
    }

    /// The parameter of out-of-dialog Request-URIs: `;transport=tls` over TLS
    /// (so that a proxy on the way keeps to TLS, RFC 3261 §26.2.2), none
    /// otherwise (as before: UDP and TCP PBXs route by the connection).
    fn ruri_param(&self) -> &'static str {
        if self.cfg.transport == Transport::Tls {
            self.cfg.transport.uri_param()
        } else {
            ""
        }
    }

    fn contact_uri(&self) -> String {
        format!(
            "sip:{}@{}{}",
            self.cfg.username,
            self.contact_addr(),
            self.cfg.transport.uri_param()
        )
    }

    /// [`is_shut_down`](Self::is_shut_down) (bounded by Timer F).
    pub fn shutdown(&mut self, now: Instant) {
        self.now = now;
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        self.abandon_messages();
        // Removals first: a finished shutdown sends no more requests.
        self.unpublish_all(now);
        self.final_notify_deadline = Some(now + FINAL_NOTIFY_WAIT.min(self.cfg.timers.timer_f()));
        let dialog_up = |s: &Sub| {
            s.remote_tag.is_some()
                && matches!(
                    s.phase,
                    SubPhase::Active | SubPhase::Refreshing | SubPhase::Subscribing
                )
        };
        // Every un-SUBSCRIBE goes out first: closing a subscription that has
        // no dialog may finish the shutdown, which sends the un-REGISTER.
        let (up, rest): (Vec<u64>, Vec<u64>) = self
            .subs
            .keys()
            .copied()
            .partition(|id| self.subs.get(id).is_some_and(dialog_up));
        for id in up {
            self.send_unsubscribe(id, now);
        }
        for id in rest {
            if self
                .subs
                .get(&id)
                .is_some_and(|s| s.phase != SubPhase::Unsubscribing)
            {
                self.close_sub(id);
            }
        }
        self.maybe_finish_shutdown(now);
    }

    /// A snapshot of the registration and every subscription, for operators.
    pub fn status(&self) -> UaStatus {
        UaStatus {
            registration: RegistrationStatus {
                registered: self.reg.registered,
                expires_at: self.reg.expires_at,
                last_error: self.reg.last_error.clone(),
                contact: self.contact_addr(),
            },
            subscriptions: self
                .subs
                .values()
                .map(|s| SubscriptionStatus {
                    user: s.ext.clone(),
                    package: s.package,
                    phase: match s.phase {
                        SubPhase::Waiting => SubscriptionPhase::Waiting,
                        SubPhase::Subscribing => SubscriptionPhase::Subscribing,
                        SubPhase::Active if s.reported_pending => SubscriptionPhase::Pending,
                        SubPhase::Active => SubscriptionPhase::Active,
                        SubPhase::Refreshing => SubscriptionPhase::Refreshing,
                        SubPhase::Unsubscribing | SubPhase::AwaitingFinalNotify => {
                            SubscriptionPhase::Unsubscribing
                        }
                        SubPhase::Closed => SubscriptionPhase::Closed,
                    },
                    expires_at: s.expires_at,
                    next_attempt: s.timer,
                    last_error: s.last_error.clone(),
                })
                .collect(),
        }
    }

    /// `true` once [`shutdown`](Self::shutdown) was called.
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// `true` once [`shutdown`](Self::shutdown) has finished.
    pub fn is_shut_down(&self) -> bool {
        self.shut_down
    }

    /// The next thing to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        if let Some(t) = self.transmits.pop_front() {
            return Some(t);
        }
        let now = self.now;
        let d = self.discovery.as_mut()?.poll_transmit(now)?;
        Some(Transmit {
            destination: d.destination,
            payload: d.payload,
        })
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.shut_down {
            return None;
        }
        let mut t: Option<Instant> = None;
        let mut consider = |x: Option<Instant>| {
            if let Some(x) = x {
                t = Some(t.map_or(x, |t| t.min(x)));
            }
        };
        for (tx, _) in self.txs.values() {
            consider(tx.poll_timeout());
        }
        consider(self.server_txs.poll_timeout());
        if self.awaiting_final_notify() {
            consider(self.final_notify_deadline);
        }
        if !self.shutting_down {
            consider(self.reg.timer);
            consider(self.sub_timers.first());
            consider(self.pub_timeout());
            consider(self.keepalive_at);
            consider(self.pong_deadline);
            consider(self.discovery.as_ref().and_then(|d| d.poll_timeout()));
        }
        t
    }

    /// Fires every timer due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.now = now;
        // Transactions.
        let due: Vec<String> = self
            .txs
            .iter()
            .filter(|(_, (tx, _))| tx.poll_timeout().is_some_and(|t| t <= now))
            .map(|(b, _)| b.clone())
            .collect();
        for branch in due {
            let Some((tx, owner)) = self.txs.get_mut(&branch) else {
                continue;
            };
            let owner = *owner;
            let dest = tx.destination();
            let out = tx.on_timeout(now);
            if tx.is_terminated() {
                self.txs.remove(&branch);
            }
            match out {
                Some(ClientOutput::Retransmit(payload)) => self.transmits.push_back(Transmit {
                    destination: dest,
                    payload,
                }),
                Some(ClientOutput::TimedOut) => self.on_tx_timeout(owner, &branch, now),
                None => {}
            }
        }
        self.server_txs.on_timeout(now);
        if self.shutting_down {
            if self.final_notify_deadline.is_some_and(|t| t <= now) {
                // Waited long enough for the final NOTIFYs.
                for s in self.subs.values_mut() {
                    if s.phase == SubPhase::AwaitingFinalNotify {
                        s.phase = SubPhase::Closed;
                    }
                }
                self.maybe_finish_shutdown(now);
            }
            return;
        }
        if let Some(d) = self.discovery.as_mut() {
            if d.poll_timeout().is_some_and(|t| t <= now) {
                d.handle_timeout(now);
            }
        }
        self.check_contact(now);
        if let (Some(at), Some(interval)) = (self.keepalive_at, self.cfg.keepalive_interval) {
            if at <= now {
                self.transmits.push_back(Transmit {
                    destination: self.server,
                    payload: b"\r\n\r\n".to_vec(),
                });
                self.keepalive_at = Some(now + interval);
                if self.cfg.transport.is_reliable() && self.pong_deadline.is_none() {
                    self.pong_deadline = Some(now + PONG_TIMEOUT);
                }
            }
        }
        if self.pong_deadline.is_some_and(|t| t <= now) {
            // RFC 5626 §4.4.1: no pong within 10 s, the flow is dead.
            self.pong_deadline = None;
            self.transport_failed = true;
            self.events.push_back(Event::Unreachable {
                reason: format!(
                    "no keep-alive answer from the PBX at {} over {}",
                    self.server,
                    self.cfg.transport.via_name()
                ),
                retry_at: None,
            });
        }
        if self.reg.timer.is_some_and(|t| t <= now) {
            self.reg.timer = None;
            if matches!(self.reg.phase, RegPhase::Idle | RegPhase::Registered) {
                self.send_register(now, false);
            }
        }
        for id in self.sub_timers.due(now) {
            self.on_sub_timer(id, now);
        }
        self.on_pub_timers(now);
        debug_assert!(self.sub_timers.matches(&self.subs));
    }

    /// Takes a datagram (or one framed message / keep-alive on TCP) from `from`.
    pub fn handle_input(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        self.now = now;
        if from == self.server {
            // Anything from the PBX shows the flow is alive.
            self.pong_deadline = None;
        }
        if sip_proto::is_stun(data) {
            if let Some(d) = self.discovery.as_mut() {
                if d.handle_datagram(from, data, now) {
                    self.check_contact(now);
                    return;
                }
            }
        }
        if !data.is_empty() && data.iter().all(|b| *b == b'\r' || *b == b'\n') {
            if data == b"\r\n\r\n" && self.cfg.transport.is_reliable() {
                // RFC 5626 ping: answer pong.
                self.transmits.push_back(Transmit {
                    destination: from,
                    payload: b"\r\n".to_vec(),
                });
            }
            return;
        }
        let msg = match Message::parse(data) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(%from, error = %e, "dropping unparsable SIP message");
                return;
            }
        };
        if msg.is_request() {
            self.handle_request(from, msg, now);
        } else {
            self.handle_response(msg, now);
        }
        debug_assert!(self.sub_timers.matches(&self.subs));
    }

    /// `true` (once) when the connection to the PBX must be considered dead
    /// (no answer to a TCP keep-alive within 10 s): the driver closes and
    /// re-opens it, then calls [`handle_transport_reset`](Self::handle_transport_reset).
    pub fn take_transport_failure(&mut self) -> bool {
        std::mem::take(&mut self.transport_failed)
    }

    /// Tells the user agent that the transport towards the PBX was re-established
    /// (e.g. a new TCP connection): registration and subscriptions are refreshed now.
    pub fn handle_transport_reset(&mut self, now: Instant) {
        self.now = now;
        self.pong_deadline = None;
        if self.shutting_down {
            return;
        }
        if self.reg.phase == RegPhase::Registered {
            self.reg.timer = Some(now);
        }
        for (id, s) in self.subs.iter_mut() {
            if s.phase == SubPhase::Active {
                self.sub_timers.set(*id, &mut s.timer, Some(now));
            }
        }
    }

    // ---------------------------------------------------------------- requests

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};rport;branch={}",
            self.cfg.transport.via_name(),
            self.contact_addr(),
            branch
        )
    }

    fn send_request(&mut self, owner: Owner, msg: Message, branch: String, now: Instant) {
        let bytes = msg.to_bytes();
        let tx = ClientTransaction::new(
            bytes.clone(),
            self.server,
            self.cfg.transport.is_reliable(),
            self.cfg.timers,
            now,
        );
        self.txs.insert(branch, (tx, owner));
        self.transmits.push_back(Transmit {
            destination: self.server,
            payload: bytes,
        });
        if self.contact_in_use.is_none() {
            self.contact_in_use = Some(self.contact_addr());
        }
    }

    fn backoff(&self, failures: u32) -> Duration {
        let min = self.cfg.retry_min.max(Duration::from_millis(100));
        let exp = failures.saturating_sub(1).min(16);
        let base = min.saturating_mul(1u32 << exp).min(self.cfg.retry_max);
        // Jitter: 50..100 % of the base.
        let factor = 0.5 + rand::random::<f64>() * 0.5;
        base.mul_f64(factor)
    }

    // --------------------------------------------------------------- responses

    fn handle_response(&mut self, msg: Message, now: Instant) {
        let Some(via) = msg.top_via().and_then(|v| parse_via(v).ok()) else {
            return;
        };
        let Some(branch) = via.branch.clone() else {
            return;
        };
        let Some(status) = msg.status() else { return };
        let Some((tx, owner)) = self.txs.get_mut(&branch) else {
            return;
        };
        let owner = *owner;
        let pass = tx.on_response(status, now);
        if tx.is_terminated() {
            self.txs.remove(&branch);
        }
        if !pass || status < 200 {
            return;
        }
        // RFC 3581: learn how the PBX sees us.
        if via.received.is_some() || via.rport.is_some() {
            let ip = via.received.unwrap_or(self.local.ip());
            let port = via.rport.unwrap_or(self.local.port());
            self.learned = Some(SocketAddr::new(ip, port));
        }
        match owner {
            Owner::Register => self.on_register_response(&branch, status, &msg, now),
            Owner::Subscribe(id) => self.on_subscribe_response(id, &branch, status, &msg, now),
            Owner::Publish(id) => self.on_publish_response(id, &branch, status, &msg, now),
            Owner::Message(id) => self.on_message_response(id, &branch, status, &msg, now),
        }
        self.check_contact(now);
    }

    fn maybe_finish_shutdown(&mut self, now: Instant) {
        if !self.shutting_down || self.shut_down {
            return;
        }
        if self.awaiting_final_notify()
            || self
                .subs
                .values()
                .any(|s| s.phase == SubPhase::Unsubscribing)
            || self.publishing()
        {
            return;
        }
        match self.reg.phase {
            RegPhase::Registered | RegPhase::Sending if self.reg.registered => {
                self.reg.auth.on_success();
                self.send_register(now, true);
            }
            RegPhase::Unregistering => {}
            _ => {
                self.reg.phase = RegPhase::Done;
                self.reg.pending_tx = None;
                self.reg.timer = None;
                self.shut_down = true;
                self.events.push_back(Event::ShutDown);
            }
        }
    }

    /// A shutdown waits for the final NOTIFY of an answered un-SUBSCRIBE.
    fn awaiting_final_notify(&self) -> bool {
        self.shutting_down
            && !self.shut_down
            && self.final_notify_deadline.is_some_and(|t| t > self.now)
            && self
                .subs
                .values()
                .any(|s| s.phase == SubPhase::AwaitingFinalNotify)
    }

    fn on_tx_timeout(&mut self, owner: Owner, branch: &str, now: Instant) {
        match owner {
            Owner::Publish(id) => self.on_publish_timeout(id, branch, now),
            Owner::Message(id) => self.on_message_timeout(id, branch),
            Owner::Register => {
                if self.reg.pending_tx.as_deref() != Some(branch) {
                    return;
                }
                self.reg.pending_tx = None;
                if self.reg.phase == RegPhase::Unregistering {
                    return self.finish_unregister();
                }
                self.reg.failures += 1;
                self.reg.unreachable = true;
                let retry = now + self.backoff(self.reg.failures);
                self.events.push_back(Event::Unreachable {
                    reason: format!("no answer from the PBX at {} to REGISTER", self.server),
                    retry_at: Some(retry),
                });
                self.register_failed(None, "no answer from the PBX (time-out)".into(), retry);
            }
            Owner::Subscribe(id) => {
                let Some(s) = self.subs.get_mut(&id) else {
                    return;
                };
                if s.pending_tx.as_deref() != Some(branch) {
                    return;
                }
                s.pending_tx = None;
                if s.phase == SubPhase::Unsubscribing {
                    return self.close_sub(id);
                }
                s.failures += 1;
                let failures = s.failures;
                let ext = s.ext.clone();
                let retry = now + self.backoff(failures);
                self.sub_failed(
                    id,
                    None,
                    format!("no answer from the PBX to the SUBSCRIBE for {ext} (time-out)"),
                    retry,
                );
            }
        }
    }

    /// Re-registers and refreshes subscriptions when the Contact address changed.
    fn check_contact(&mut self, now: Instant) {
        let Some(old) = self.contact_in_use else {
            return;
        };
        let new = self.contact_addr();
        if old == new || self.shutting_down {
            return;
        }
        self.contact_in_use = Some(new);
        self.events.push_back(Event::ContactChanged { old, new });
        if matches!(self.reg.phase, RegPhase::Registered | RegPhase::Idle) {
            self.reg.timer = Some(now);
        } else if self.reg.phase == RegPhase::Sending {
            // The REGISTER in flight carries the old Contact: send again after it.
            self.reg.timer = None;
        }
        for (id, s) in self.subs.iter_mut() {
            if s.phase == SubPhase::Active {
                self.sub_timers.set(*id, &mut s.timer, Some(now));
            }
        }
    }
}

fn auth_reason(e: &AuthError) -> String {
    e.to_string()
}
