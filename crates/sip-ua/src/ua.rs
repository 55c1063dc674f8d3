//! The sans-IO user agent: registration, subscriptions and NOTIFY handling.

use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::config::{ContactAddress, EventPackage, Subscription, Transport, UaConfig};
use crate::digest::{AuthError, DigestSession};
use crate::discovery::AddressDiscovery;
use crate::headers::{
    contact_expires, parse_delta_seconds, parse_event, parse_min_expires, parse_retry_after,
    parse_subscription_state, parse_via, SubState, SubscriptionState, TerminationReason,
};
use crate::message::{split_name_addr, Message, StartLine};
use crate::transaction::{ClientOutput, ClientTransaction, ServerTransactions};

/// A datagram (or, on TCP, a chunk of the stream) to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// A NOTIFY that belongs to one of our subscriptions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notify {
    /// The extension it is about.
    pub extension: String,
    /// Its event package.
    pub package: EventPackage,
    /// `Content-Type`, if any (none: no body, e.g. Kamailio's "no dialogs").
    pub content_type: Option<String>,
    /// The body, unparsed (parse it with the `blf` crate).
    pub body: Vec<u8>,
    /// `Subscription-State`, if it parsed.
    pub subscription_state: Option<SubscriptionState>,
    /// When it arrived: the `now` of the [`UserAgent::handle_input`] call
    /// that carried it.
    pub received_at: Instant,
}

/// What happened; poll with [`UserAgent::poll_event`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The PBX accepted the registration.
    Registered {
        /// Granted expiry, seconds.
        expires: u32,
        /// The Contact URI registered.
        contact: String,
    },
    /// REGISTER failed; `retry_at` says when it is tried again.
    RegistrationFailed {
        /// The status code, `None` on time-out.
        status: Option<u16>,
        /// Plain-words reason.
        reason: String,
        /// Next attempt.
        retry_at: Option<Instant>,
    },
    /// The un-REGISTER finished (or gave up).
    Unregistered,
    /// A subscription was accepted (2xx) or refreshed, or became active by NOTIFY.
    SubscriptionActive {
        /// Extension.
        extension: String,
        /// Seconds until it expires.
        expires: u32,
    },
    /// The PBX holds the subscription as `pending` (awaiting authorisation).
    SubscriptionPending {
        /// Extension.
        extension: String,
    },
    /// The PBX ended a subscription (`Subscription-State: terminated`).
    SubscriptionTerminated {
        /// Extension.
        extension: String,
        /// The `reason` parameter.
        reason: Option<TerminationReason>,
        /// When it is subscribed again; `None`: never (`invariant`).
        retry_at: Option<Instant>,
    },
    /// A SUBSCRIBE failed; `diagnosis` says what to do about it.
    SubscriptionFailed {
        /// Extension.
        extension: String,
        /// Status code, `None` on time-out.
        status: Option<u16>,
        /// Plain-words diagnosis, e.g. "PBX has no BLF hint for 500: …".
        diagnosis: String,
        /// Next attempt.
        retry_at: Option<Instant>,
    },
    /// A NOTIFY for one of our subscriptions.
    Notify(Notify),
    /// A NOTIFY that matched no subscription got 481 and changed nothing.
    NotifyRejected {
        /// Who sent it.
        from: SocketAddr,
        /// Why, in few enough kinds to count by.
        kind: NotifyRejection,
        /// Why, in words (e.g. the unknown Call-ID).
        reason: String,
    },
    /// The Contact address changed; registration and subscriptions are refreshed.
    ContactChanged {
        /// The previous address.
        old: SocketAddr,
        /// The new address.
        new: SocketAddr,
    },
    /// The PBX did not answer (REGISTER timed out).
    Unreachable {
        /// What timed out.
        reason: String,
        /// Next attempt.
        retry_at: Option<Instant>,
    },
    /// [`UserAgent::shutdown`] finished.
    ShutDown,
}

/// Why a NOTIFY was rejected with 481 ([`Event::NotifyRejected`]): a small,
/// fixed set, fit for a metric label.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyRejection {
    /// Its Call-ID is no subscription of ours (a forged NOTIFY, or one for
    /// a subscription that has ended).
    UnknownDialog,
    /// The Call-ID is ours but the tags or the event package are not.
    DialogMismatch,
    /// It cannot be matched at all (no Call-ID).
    Malformed,
}

impl NotifyRejection {
    /// Every kind, in declaration order.
    pub const ALL: [NotifyRejection; 3] = [
        NotifyRejection::UnknownDialog,
        NotifyRejection::DialogMismatch,
        NotifyRejection::Malformed,
    ];

    /// Snake-case name (`unknown_dialog`, `dialog_mismatch`, `malformed`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::UnknownDialog => "unknown_dialog",
            Self::DialogMismatch => "dialog_mismatch",
            Self::Malformed => "malformed",
        }
    }
}

/// Where a subscription stands (see [`UserAgent::status`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SubscriptionPhase {
    /// No dialog; waiting for the next attempt.
    Waiting,
    /// Initial SUBSCRIBE sent.
    Subscribing,
    /// Accepted; NOTIFYs flow.
    Active,
    /// Accepted but `pending` at the PBX.
    Pending,
    /// Refresh in flight.
    Refreshing,
    /// Un-SUBSCRIBE in flight.
    Unsubscribing,
    /// Ended for good (`invariant`, removed, shut down).
    Closed,
}

/// The state of one subscription.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionStatus {
    /// Extension.
    pub extension: String,
    /// Event package.
    pub package: EventPackage,
    /// Phase.
    pub phase: SubscriptionPhase,
    /// When the PBX's grant runs out, while active.
    pub expires_at: Option<Instant>,
    /// Next SUBSCRIBE (refresh or retry).
    pub next_attempt: Option<Instant>,
    /// What went wrong last, in plain words (cleared on success).
    pub last_error: Option<String>,
}

/// The state of the registration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationStatus {
    /// Registered now.
    pub registered: bool,
    /// When the granted registration runs out.
    pub expires_at: Option<Instant>,
    /// What went wrong last, in plain words.
    pub last_error: Option<String>,
    /// The Contact address in use.
    pub contact: SocketAddr,
}

/// Snapshot returned by [`UserAgent::status`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UaStatus {
    /// Registration.
    pub registration: RegistrationStatus,
    /// Every subscription.
    pub subscriptions: Vec<SubscriptionStatus>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Register,
    Subscribe(u64),
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
    next_id: u64,
    txs: HashMap<String, (ClientTransaction, Owner)>,
    server_txs: ServerTransactions,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    next_slot: Instant,
    subs_started: bool,
    shutting_down: bool,
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

/// How long to wait for the answer to a TCP keep-alive (RFC 5626 §4.4.1).
const PONG_TIMEOUT: Duration = Duration::from_secs(10);

fn random_hex(bytes: usize) -> String {
    let v: Vec<u8> = (0..bytes).map(|_| rand::random::<u8>()).collect();
    hex::encode(v)
}

/// When to refresh something granted for `granted` seconds: 32 s (Timer F)
/// before it runs out, or half-way for short expiries.
pub fn refresh_delay(granted: u32) -> Duration {
    let g = u64::from(granted);
    let secs = if g > 64 { g - 32 } else { (g / 2).max(1) };
    Duration::from_secs(secs)
}

/// `Min-Expires` to use when a 423 has none: double the request, at least 60 s,
/// at most 3600 s (Asterisk also falls back to a fixed sane value).
fn min_expires_fallback(requested: u32) -> u32 {
    requested.saturating_mul(2).clamp(60, 3600)
}

/// The plain-words diagnosis of a failed SUBSCRIBE.
pub fn diagnose_subscribe_failure(
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
            next_id: 1,
            txs: HashMap::new(),
            server_txs: ServerTransactions::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            next_slot: now,
            subs_started: false,
            shutting_down: false,
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

    fn contact_uri(&self) -> String {
        let tp = if self.cfg.transport == Transport::Tcp {
            ";transport=tcp"
        } else {
            ""
        };
        format!("sip:{}@{}{}", self.cfg.username, self.contact_addr(), tp)
    }

    /// Adds a subscription at run time (replaces nothing: an extension already
    /// watched with the same package is ignored).
    pub fn add_subscription(&mut self, sub: Subscription, now: Instant) {
        if self.subs.values().any(|s| {
            s.ext == sub.extension && s.package == sub.package && s.phase != SubPhase::Closed
        }) {
            return;
        }
        let id = self.next_id;
        self.next_id += 1;
        self.subs.insert(
            id,
            Sub {
                ext: sub.extension,
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

    /// Ends the subscription(s) to `extension` (un-SUBSCRIBE when a dialog is up).
    pub fn remove_subscription(&mut self, extension: &str, now: Instant) {
        let ids: Vec<u64> = self
            .subs
            .iter()
            .filter(|(_, s)| s.ext == extension)
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

    /// The extensions currently watched.
    pub fn subscriptions(&self) -> Vec<Subscription> {
        self.subs
            .values()
            .filter(|s| s.phase != SubPhase::Closed)
            .map(|s| Subscription {
                extension: s.ext.clone(),
                package: s.package,
            })
            .collect()
    }

    /// Un-SUBSCRIBEs every subscription, then un-REGISTERs. Poll until
    /// [`is_shut_down`](Self::is_shut_down) (bounded by Timer F).
    pub fn shutdown(&mut self, now: Instant) {
        self.now = now;
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
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
                    extension: s.ext.clone(),
                    package: s.package,
                    phase: match s.phase {
                        SubPhase::Waiting => SubscriptionPhase::Waiting,
                        SubPhase::Subscribing => SubscriptionPhase::Subscribing,
                        SubPhase::Active if s.reported_pending => SubscriptionPhase::Pending,
                        SubPhase::Active => SubscriptionPhase::Active,
                        SubPhase::Refreshing => SubscriptionPhase::Refreshing,
                        SubPhase::Unsubscribing => SubscriptionPhase::Unsubscribing,
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
        if !self.shutting_down {
            consider(self.reg.timer);
            consider(self.sub_timers.first());
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
                if self.cfg.transport == Transport::Tcp && self.pong_deadline.is_none() {
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
                    "no keep-alive answer from the PBX at {} over TCP",
                    self.server
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
        debug_assert!(self.sub_timers.matches(&self.subs));
    }

    /// Takes a datagram (or one framed message / keep-alive on TCP) from `from`.
    pub fn handle_input(&mut self, from: SocketAddr, data: &[u8], now: Instant) {
        self.now = now;
        if from == self.server {
            // Anything from the PBX shows the flow is alive.
            self.pong_deadline = None;
        }
        if is_stun(data) {
            if let Some(d) = self.discovery.as_mut() {
                if d.handle_datagram(from, data, now) {
                    self.check_contact(now);
                    return;
                }
            }
        }
        if !data.is_empty() && data.iter().all(|b| *b == b'\r' || *b == b'\n') {
            if data == b"\r\n\r\n" && self.cfg.transport == Transport::Tcp {
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

    fn send_register(&mut self, now: Instant, unregister: bool) {
        let branch = format!("z9hG4bK{}", random_hex(10));
        self.reg.cseq += 1;
        let ruri = format!("sip:{}", self.domain);
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
            &self.cfg.password,
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

    fn new_dialog_ids(&mut self, id: u64) {
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
        s.pending_tx = None;
        self.by_call_id.insert(call_id, id);
    }

    /// Builds and sends a SUBSCRIBE: initial when no dialog is up, in-dialog otherwise.
    fn send_subscribe(&mut self, id: u64, expires: u32, now: Instant) {
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
        let user = self.cfg.username.clone();
        let password = self.cfg.password.clone();
        let ua_name = self.cfg.user_agent.clone();
        let Some(s) = self.subs.get_mut(&id) else {
            return;
        };
        s.cseq += 1;
        let in_dialog = s.remote_tag.is_some();
        let ruri = match (&s.remote_target, in_dialog) {
            (Some(t), true) => t.clone(),
            _ => format!("sip:{}@{}", s.ext, domain),
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

    fn send_unsubscribe(&mut self, id: u64, now: Instant) {
        self.send_subscribe(id, 0, now);
    }

    /// Takes a pacing slot; `Some(at)` means "not before `at`".
    fn take_slot(&mut self, now: Instant) -> Option<Instant> {
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

    fn on_sub_timer(&mut self, id: u64, now: Instant) {
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

    fn start_subscriptions(&mut self, now: Instant) {
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
        }
        self.check_contact(now);
    }

    fn on_register_response(&mut self, branch: &str, status: u16, msg: &Message, now: Instant) {
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

    fn register_failed(&mut self, status: Option<u16>, reason: String, retry_at: Instant) {
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

    fn finish_unregister(&mut self) {
        self.reg.phase = RegPhase::Done;
        self.reg.registered = false;
        self.events.push_back(Event::Unregistered);
        self.maybe_finish_shutdown(self.now);
    }

    fn on_subscribe_response(
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
                extension: ext,
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
            404 | 403 | 489 | 484 | 488 | 405 => self.cfg.slow_retry,
            _ => retry_after.unwrap_or_else(|| self.backoff(failures)),
        };
        self.sub_failed(id, Some(status), diagnosis, now + delay);
    }

    /// Drops the dialog and schedules a new subscription at `retry_at`.
    fn sub_failed(&mut self, id: u64, status: Option<u16>, diagnosis: String, retry_at: Instant) {
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
            extension: s.ext.clone(),
            status,
            diagnosis,
            retry_at: Some(retry_at),
        });
    }

    fn close_sub(&mut self, id: u64) {
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

    fn drop_sub(&mut self, id: u64) {
        if let Some(mut s) = self.subs.remove(&id) {
            self.by_call_id.remove(&s.call_id);
            self.sub_timers.set(id, &mut s.timer, None);
        }
    }

    fn maybe_finish_shutdown(&mut self, now: Instant) {
        if !self.shutting_down || self.shut_down {
            return;
        }
        if self
            .subs
            .values()
            .any(|s| s.phase == SubPhase::Unsubscribing)
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

    fn on_tx_timeout(&mut self, owner: Owner, branch: &str, now: Instant) {
        match owner {
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

    // ---------------------------------------------------------------- requests in

    fn handle_request(&mut self, from: SocketAddr, msg: Message, now: Instant) {
        let method = msg.method().unwrap_or("").to_ascii_uppercase();
        if method == "ACK" {
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
    }

    fn response_to(&self, req: &Message, status: u16, reason: &str) -> Message {
        let mut r = req.response(status, reason, || random_hex(8));
        r.headers.push("User-Agent", self.cfg.user_agent.clone());
        r
    }

    fn find_dialog(&self, msg: &Message) -> Result<u64, (NotifyRejection, String)> {
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

    fn handle_notify(&mut self, from: SocketAddr, msg: &Message, now: Instant) -> Message {
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
            extension: ext.clone(),
            package: s.package,
            content_type,
            body: msg.body.clone(),
            subscription_state: sub_state.clone(),
            received_at: now,
        }));
        if shutting_down || matches!(s.phase, SubPhase::Unsubscribing | SubPhase::Closed) {
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
                        extension: ext,
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
                    self.events
                        .push_back(Event::SubscriptionPending { extension: ext });
                }
            }
            SubState::Terminated => {
                self.on_terminated(id, state.reason, state.retry_after, now);
            }
            SubState::Other(_) => {}
        }
        ok
    }

    fn on_terminated(
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
        let retry_after = retry_after.map(|r| Duration::from_secs(u64::from(r)));
        let delay = match &reason {
            None | Some(TerminationReason::Deactivated) | Some(TerminationReason::Timeout) => {
                if failures <= 1 {
                    Some(Duration::ZERO)
                } else {
                    Some(self.backoff(failures - 1))
                }
            }
            Some(TerminationReason::Other(_)) => Some(self.backoff(failures)),
            Some(TerminationReason::Probation) | Some(TerminationReason::Giveup) => {
                Some(retry_after.unwrap_or_else(|| self.backoff(failures)))
            }
            Some(TerminationReason::Rejected) | Some(TerminationReason::Noresource) => {
                Some(retry_after.unwrap_or(slow).max(slow))
            }
            Some(TerminationReason::Invariant) => None,
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
            extension: ext,
            reason,
            retry_at,
        });
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

/// STUN (RFC 5389): first two bits zero and the magic cookie at bytes 4..8.
pub fn is_stun(data: &[u8]) -> bool {
    data.len() >= 20
        && matches!(data.first(), Some(0x00) | Some(0x01))
        && data.get(4..8) == Some(&[0x21, 0x12, 0xA4, 0x42][..])
}

/// Subscription timers ordered by time. Kept in step with each
/// subscription's `timer` by [`TimerIndex::set`], the only way it changes.
#[derive(Debug, Default)]
struct TimerIndex(BTreeSet<(Instant, u64)>);

impl TimerIndex {
    /// Sets subscription `id`'s `timer` to `at`, and the index with it.
    fn set(&mut self, id: u64, timer: &mut Option<Instant>, at: Option<Instant>) {
        if *timer == at {
            return;
        }
        if let Some(old) = timer.take() {
            self.0.remove(&(old, id));
        }
        if let Some(t) = at {
            self.0.insert((t, id));
        }
        *timer = at;
    }

    /// The earliest timer.
    fn first(&self) -> Option<Instant> {
        self.0.first().map(|(t, _)| *t)
    }

    /// The subscriptions whose timer is due at `now`, earliest first.
    fn due(&self, now: Instant) -> Vec<u64> {
        self.0
            .iter()
            .take_while(|(t, _)| *t <= now)
            .map(|(_, id)| *id)
            .collect()
    }

    /// Whether the index holds exactly the subscriptions' timers (checked in
    /// debug builds).
    fn matches(&self, subs: &BTreeMap<u64, Sub>) -> bool {
        let timers: BTreeSet<(Instant, u64)> = subs
            .iter()
            .filter_map(|(id, s)| Some((s.timer?, *id)))
            .collect();
        timers == self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_timer_index_follows_every_change_of_a_timer() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let mut index = TimerIndex::default();
        let (mut a, mut b) = (None, None);
        index.set(1, &mut a, Some(at(30)));
        index.set(2, &mut b, Some(at(10)));
        assert_eq!(index.first(), Some(at(10)));
        assert_eq!(index.due(at(20)), vec![2]);
        // Moved later, then cleared: the old entries go with it.
        index.set(2, &mut b, Some(at(40)));
        assert_eq!(index.first(), Some(at(30)));
        assert_eq!(index.due(at(40)), vec![1, 2]);
        index.set(1, &mut a, None);
        assert_eq!((a, b), (None, Some(at(40))));
        assert_eq!(index.due(at(100)), vec![2]);
        index.set(2, &mut b, None);
        assert_eq!(index.first(), None);
    }
}
