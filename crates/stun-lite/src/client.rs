//! The sans-IO Binding client: request bytes out, response bytes in, timers
//! driven by the caller's `now`.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::Failure;
use crate::message::TransactionId;
use crate::message::{binding_request, decode_response, is_stun, BindingResponse, DecodeError};

/// No single wait is longer than this, whatever the configuration.
const MAX_WAIT: Duration = Duration::from_secs(24 * 3600);
/// Events kept for a caller that never polls them (e.g. through the
/// `AddressDiscovery` trait, which only looks at the address).
const MAX_QUEUED_EVENTS: usize = 32;

/// Timing of the client.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ClientConfig {
    /// Initial retransmission timeout (RFC 8489 §6.2.1 RTO), doubled after each
    /// retransmission. Default 500 ms.
    pub rto: Duration,
    /// Requests sent per server, the first included (Rc). Default 7.
    pub max_transmissions: u32,
    /// After the last request, wait `rto × last_wait_factor` (Rm). Default 16.
    pub last_wait_factor: u32,
    /// Give up on a server after this long even if the schedule above is not
    /// over (a one-shot query with a time budget). Default: none (39.5 s with
    /// the defaults above).
    pub transaction_timeout: Option<Duration>,
    /// Run discovery again this long after a success (re-discovery; it also
    /// refreshes the NAT binding). `None`: once only. Default 60 s.
    pub refresh_interval: Option<Duration>,
    /// Run discovery again this long after every server failed. `None`: never.
    /// Default 30 s.
    pub retry_interval: Option<Duration>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            rto: Duration::from_millis(500),
            max_transmissions: 7,
            last_wait_factor: 16,
            transaction_timeout: None,
            refresh_interval: Some(Duration::from_secs(60)),
            retry_interval: Some(Duration::from_secs(30)),
        }
    }
}

impl ClientConfig {
    /// One discovery round only: no refresh, no retry.
    pub fn one_shot() -> Self {
        Self {
            refresh_interval: None,
            retry_interval: None,
            ..Self::default()
        }
    }

    /// Sets [`refresh_interval`](Self::refresh_interval).
    pub fn with_refresh_interval(mut self, interval: Option<Duration>) -> Self {
        self.refresh_interval = interval;
        self
    }

    /// Sets [`retry_interval`](Self::retry_interval).
    pub fn with_retry_interval(mut self, interval: Option<Duration>) -> Self {
        self.retry_interval = interval;
        self
    }

    /// Sets [`transaction_timeout`](Self::transaction_timeout).
    pub fn with_transaction_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.transaction_timeout = timeout;
        self
    }

    /// Sets [`rto`](Self::rto).
    pub fn with_rto(mut self, rto: Duration) -> Self {
        self.rto = rto;
        self
    }

    /// Sets [`max_transmissions`](Self::max_transmissions) (at least 1).
    pub fn with_max_transmissions(mut self, n: u32) -> Self {
        self.max_transmissions = n.max(1);
        self
    }
}

/// A datagram to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// The STUN server.
    pub destination: SocketAddr,
    /// A Binding request.
    pub payload: Vec<u8>,
}

/// The public address of a socket and the server that reported it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Discovery {
    /// The server-reflexive address: what the NAT gave the socket.
    pub public: SocketAddr,
    /// The STUN server that answered.
    pub server: SocketAddr,
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// The first mapped address.
    Discovered(Discovery),
    /// Re-discovery found another mapping (NAT rebinding, new public IP): the
    /// user agent must re-register with the new Contact.
    Changed {
        /// The address reported before.
        old: SocketAddr,
        /// The address reported now.
        new: SocketAddr,
        /// The STUN server that reported it.
        server: SocketAddr,
    },
    /// A round ended without an answer from any server; one entry per server,
    /// in the order tried. The last known address (if any) is kept.
    Failed {
        /// Why each server failed.
        failures: Vec<Failure>,
    },
}

/// What [`BindingClient::handle_datagram`] did with a datagram.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Handled {
    /// Not STUN: hand it to the other protocol on the socket (SIP).
    NotStun,
    /// STUN, but dropped: invalid, or not an answer to the current request.
    Ignored(Ignored),
    /// The current server refused the request; the next one is tried.
    ErrorResponse {
        /// `ERROR-CODE` number.
        code: u16,
        /// `ERROR-CODE` reason phrase.
        reason: String,
    },
    /// A valid answer: the socket's public address.
    Mapped(SocketAddr),
}

/// Why a STUN datagram was dropped.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ignored {
    /// Not a valid Binding response.
    Invalid(DecodeError),
    /// A valid response, but not to the request in flight (wrong or stale
    /// transaction id, or no request in flight).
    UnknownTransaction,
}

#[derive(Debug)]
struct Transaction {
    server_index: usize,
    server: SocketAddr,
    id: TransactionId,
    request: Vec<u8>,
    sent: u32,
    /// Retransmit (or give up) at this time.
    next_deadline: Instant,
    /// `transaction_timeout` after the first request.
    give_up_at: Option<Instant>,
}

#[derive(Debug)]
enum State {
    /// Waiting for the next round (`None`: none planned).
    Idle { next_round: Option<Instant> },
    /// A round in progress: one transaction at a time, servers in order.
    Querying {
        transaction: Transaction,
        failures: Vec<Failure>,
    },
}

/// A sans-IO STUN Binding client for one socket, with several servers tried in
/// order and periodic re-discovery.
///
/// Drive it like any sans-IO state machine: send what
/// [`poll_transmit`](Self::poll_transmit) returns *from the socket whose public
/// address you want*, offer every received datagram to
/// [`handle_datagram`](Self::handle_datagram) (it answers
/// [`Handled::NotStun`] for SIP), call [`handle_timeout`](Self::handle_timeout)
/// at [`poll_timeout`](Self::poll_timeout), and read
/// [`poll_event`](Self::poll_event).
///
/// Retransmissions follow RFC 8489 §6.2.1: with the defaults, requests at 0, 0.5,
/// 1.5, 3.5, 7.5, 15.5 and 31.5 s, and the server is given up at 39.5 s.
#[derive(Debug)]
pub struct BindingClient {
    servers: Vec<SocketAddr>,
    config: ClientConfig,
    rng: StdRng,
    state: State,
    /// From [`set_servers`](Self::set_servers), applied when the next round starts.
    next_servers: Option<Vec<SocketAddr>>,
    public: Option<Discovery>,
    transmit: Option<Transmit>,
    events: VecDeque<Event>,
}

impl BindingClient {
    /// A client that starts a discovery round at `now`, with transaction ids
    /// from a generator seeded by the operating system.
    pub fn new(servers: Vec<SocketAddr>, config: ClientConfig, now: Instant) -> Self {
        Self::with_rng(servers, config, now, StdRng::from_rng(&mut rand::rng()))
    }

    /// Same as [`new`](Self::new) with a fixed seed (reproducible tests).
    pub fn with_seed(
        servers: Vec<SocketAddr>,
        config: ClientConfig,
        now: Instant,
        seed: u64,
    ) -> Self {
        Self::with_rng(servers, config, now, StdRng::seed_from_u64(seed))
    }

    fn with_rng(servers: Vec<SocketAddr>, config: ClientConfig, now: Instant, rng: StdRng) -> Self {
        let mut client = Self {
            servers,
            config,
            rng,
            state: State::Idle { next_round: None },
            next_servers: None,
            public: None,
            transmit: None,
            events: VecDeque::new(),
        };
        client.start_round(now);
        client
    }

    /// The servers, in the order they are tried.
    pub fn servers(&self) -> &[SocketAddr] {
        &self.servers
    }

    /// Replaces the server list (e.g. after resolving the names again); used
    /// from the next round on.
    pub fn set_servers(&mut self, servers: Vec<SocketAddr>) {
        if self.is_querying() {
            self.next_servers = Some(servers);
        } else {
            self.servers = servers;
        }
    }

    /// The last discovered address and the server that reported it.
    pub fn discovery(&self) -> Option<Discovery> {
        self.public
    }

    /// The last discovered public address.
    pub fn public_addr(&self) -> Option<SocketAddr> {
        self.public.map(|d| d.public)
    }

    /// True while a round is in progress.
    pub fn is_querying(&self) -> bool {
        matches!(self.state, State::Querying { .. })
    }

    /// Starts a round now (e.g. after the network changed), unless one is
    /// already in progress.
    pub fn rediscover(&mut self, now: Instant) {
        if !self.is_querying() {
            self.start_round(now);
        }
    }

    /// The next datagram to send. Also runs due timers first.
    pub fn poll_transmit(&mut self, now: Instant) -> Option<Transmit> {
        self.handle_timeout(now);
        self.transmit.take()
    }

    /// When [`handle_timeout`](Self::handle_timeout) must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match &self.state {
            State::Idle { next_round } => *next_round,
            State::Querying { transaction, .. } => Some(match transaction.give_up_at {
                Some(give_up) => give_up.min(transaction.next_deadline),
                None => transaction.next_deadline,
            }),
        }
    }

    /// The next event.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Advances timers: retransmits, moves to the next server, starts the
    /// next round.
    pub fn handle_timeout(&mut self, now: Instant) {
        enum Action {
            StartRound,
            Retransmit,
            GiveUp(SocketAddr),
        }
        let action = match &self.state {
            State::Idle { next_round } if next_round.is_some_and(|at| at <= now) => {
                Action::StartRound
            }
            State::Idle { .. } => return,
            State::Querying { transaction, .. } => {
                if transaction.give_up_at.is_some_and(|at| at <= now) {
                    Action::GiveUp(transaction.server)
                } else if transaction.next_deadline > now {
                    return;
                } else if transaction.sent < self.config.max_transmissions.max(1) {
                    Action::Retransmit
                } else {
                    Action::GiveUp(transaction.server)
                }
            }
        };
        match action {
            Action::StartRound => self.start_round(now),
            Action::GiveUp(server) => {
                self.server_failed(Failure::Timeout { server }, now);
            }
            Action::Retransmit => {
                if let State::Querying { transaction, .. } = &mut self.state {
                    transaction.sent = transaction.sent.saturating_add(1);
                    transaction.next_deadline =
                        later(now, wait_after(&self.config, transaction.sent));
                    let destination = transaction.server;
                    tracing::debug!(server = %destination, n = transaction.sent, "STUN retransmission");
                    self.transmit = Some(Transmit {
                        destination,
                        payload: transaction.request.clone(),
                    });
                }
            }
        }
    }

    /// Offers a datagram received on the socket.
    pub fn handle_datagram(&mut self, from: SocketAddr, datagram: &[u8], now: Instant) -> Handled {
        if !is_stun(datagram) {
            return Handled::NotStun;
        }
        let response = match decode_response(datagram) {
            Ok(response) => response,
            Err(error) => {
                tracing::debug!(%from, %error, "STUN datagram dropped");
                return Handled::Ignored(Ignored::Invalid(error));
            }
        };
        let (server, current) = match &self.state {
            State::Querying { transaction, .. } => (transaction.server, transaction.id),
            State::Idle { .. } => return Handled::Ignored(Ignored::UnknownTransaction),
        };
        if response.transaction_id() != current {
            tracing::debug!(%from, "STUN response to another transaction dropped");
            return Handled::Ignored(Ignored::UnknownTransaction);
        }
        match response {
            BindingResponse::Success { mapped, .. } => {
                self.succeeded(
                    Discovery {
                        public: mapped,
                        server,
                    },
                    now,
                );
                Handled::Mapped(mapped)
            }
            BindingResponse::Error { code, reason, .. } => {
                tracing::debug!(%server, code, %reason, "STUN error response");
                self.server_failed(
                    Failure::ErrorResponse {
                        server,
                        code,
                        reason: reason.clone(),
                    },
                    now,
                );
                Handled::ErrorResponse { code, reason }
            }
        }
    }

    /// Tells the client that sending to `destination` failed; if it is the
    /// current server, the next one is tried at once.
    pub fn handle_send_failure(&mut self, destination: SocketAddr, reason: String, now: Instant) {
        if let State::Querying { transaction, .. } = &self.state {
            let server = transaction.server;
            if server == destination {
                self.server_failed(Failure::SendFailed { server, reason }, now);
            }
        }
    }

    fn start_round(&mut self, now: Instant) {
        if let Some(servers) = self.next_servers.take() {
            self.servers = servers;
        }
        self.start_transaction(0, Vec::new(), now);
    }

    fn start_transaction(&mut self, server_index: usize, failures: Vec<Failure>, now: Instant) {
        let Some(&server) = self.servers.get(server_index) else {
            self.round_failed(failures, now);
            return;
        };
        let id = TransactionId::random(&mut self.rng);
        let request = binding_request(id);
        self.transmit = Some(Transmit {
            destination: server,
            payload: request.clone(),
        });
        tracing::debug!(%server, "STUN Binding request");
        self.state = State::Querying {
            transaction: Transaction {
                server_index,
                server,
                id,
                request,
                sent: 1,
                next_deadline: later(now, wait_after(&self.config, 1)),
                give_up_at: self.config.transaction_timeout.map(|t| later(now, t)),
            },
            failures,
        };
    }

    fn server_failed(&mut self, failure: Failure, now: Instant) {
        let state = std::mem::replace(&mut self.state, State::Idle { next_round: None });
        self.transmit = None;
        if let State::Querying {
            transaction,
            mut failures,
        } = state
        {
            tracing::debug!(%failure, "STUN server failed");
            failures.push(failure);
            self.start_transaction(transaction.server_index.saturating_add(1), failures, now);
        }
    }

    fn round_failed(&mut self, failures: Vec<Failure>, now: Instant) {
        tracing::debug!(servers = failures.len(), "STUN discovery failed");
        self.push_event(Event::Failed { failures });
        self.transmit = None;
        self.state = State::Idle {
            next_round: self.config.retry_interval.map(|d| later(now, d)),
        };
    }

    fn succeeded(&mut self, discovery: Discovery, now: Instant) {
        match self.public {
            None => self.push_event(Event::Discovered(discovery)),
            Some(old) if old.public != discovery.public => self.push_event(Event::Changed {
                old: old.public,
                new: discovery.public,
                server: discovery.server,
            }),
            Some(_) => {}
        }
        self.public = Some(discovery);
        self.transmit = None;
        self.state = State::Idle {
            next_round: self.config.refresh_interval.map(|d| later(now, d)),
        };
    }

    fn push_event(&mut self, event: Event) {
        if self.events.len() >= MAX_QUEUED_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(event);
    }
}

/// How long to wait after the `sent`-th request: RTO doubled each time, the
/// last one `Rm × RTO`.
fn wait_after(config: &ClientConfig, sent: u32) -> Duration {
    let wait = if sent >= config.max_transmissions {
        config.rto.checked_mul(config.last_wait_factor)
    } else {
        1u32.checked_shl(sent.saturating_sub(1))
            .and_then(|factor| config.rto.checked_mul(factor))
    };
    wait.unwrap_or(MAX_WAIT).min(MAX_WAIT)
}

/// `now + wait`, with `wait` capped at [`MAX_WAIT`] (so `Duration::MAX` means
/// "a day", never an overflow or a timer in the past).
fn later(now: Instant, wait: Duration) -> Instant {
    now.checked_add(wait.min(MAX_WAIT)).unwrap_or(now)
}

#[cfg(test)]
pub(crate) mod tests {
    use bytecodec::EncodeExt;
    use stun_codec::rfc5389::attributes::{ErrorCode, Fingerprint, XorMappedAddress};
    use stun_codec::rfc5389::{methods::BINDING, Attribute};
    use stun_codec::{Message, MessageClass, MessageEncoder};

    use super::*;

    fn tid_of(request: &[u8]) -> stun_codec::TransactionId {
        let mut id = [0u8; 12];
        id.copy_from_slice(&request[8..20]);
        stun_codec::TransactionId::new(id)
    }

    fn encode(m: Message<Attribute>) -> Vec<u8> {
        MessageEncoder::new().encode_into_bytes(m).unwrap()
    }

    /// A Binding success response to `request` reporting `mapped`.
    pub(crate) fn success_response(request: &[u8], mapped: &str) -> Vec<u8> {
        let mut m =
            Message::<Attribute>::new(MessageClass::SuccessResponse, BINDING, tid_of(request));
        m.add_attribute(XorMappedAddress::new(mapped.parse().unwrap()));
        encode(m)
    }

    fn success_with_fingerprint(request: &[u8], mapped: &str) -> Vec<u8> {
        let mut m =
            Message::<Attribute>::new(MessageClass::SuccessResponse, BINDING, tid_of(request));
        m.add_attribute(XorMappedAddress::new(mapped.parse().unwrap()));
        let fp = Fingerprint::new(&m).unwrap();
        m.add_attribute(fp);
        encode(m)
    }

    fn error_response(request: &[u8], code: u16, reason: &str) -> Vec<u8> {
        let mut m =
            Message::<Attribute>::new(MessageClass::ErrorResponse, BINDING, tid_of(request));
        m.add_attribute(ErrorCode::new(code, reason.to_owned()).unwrap());
        encode(m)
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    const S1: &str = "192.0.2.1:3478";
    const S2: &str = "192.0.2.2:3478";

    fn addr(s: &str) -> SocketAddr {
        s.parse().unwrap()
    }

    /// Runs the timers up to `until` (inclusive), returning (time, destination)
    /// of every request sent, like a driver that sleeps until `poll_timeout`.
    fn run_until(
        client: &mut BindingClient,
        from: Instant,
        until: Instant,
    ) -> Vec<(Duration, SocketAddr)> {
        let mut sent = Vec::new();
        let mut now = from;
        loop {
            while let Some(t) = client.poll_transmit(now) {
                sent.push((now - from, t.destination));
            }
            match client.poll_timeout() {
                Some(next) if next <= until => {
                    assert!(next >= now, "timer in the past");
                    now = next;
                    client.handle_timeout(now);
                }
                _ => return sent,
            }
        }
    }

    #[test]
    fn retransmission_schedule_follows_rfc8489() {
        let t0 = Instant::now();
        let mut c = BindingClient::with_seed(vec![addr(S1)], ClientConfig::one_shot(), t0, 7);
        let first = c.poll_transmit(t0).unwrap();
        assert_eq!(c.poll_timeout(), Some(t0 + ms(500)));
        let mut sent = vec![Duration::ZERO];
        let mut now = t0;
        while let Some(next) = c.poll_timeout() {
            now = next;
            c.handle_timeout(now);
            if let Some(t) = c.poll_transmit(now) {
                assert_eq!(
                    t.payload, first.payload,
                    "a retransmission is the same request"
                );
                sent.push(now - t0);
            }
        }
        assert_eq!(
            sent,
            [0, 500, 1500, 3500, 7500, 15500, 31500].map(ms).to_vec()
        );
        // Given up 16 × RTO after the last request.
        assert_eq!(now - t0, ms(39_500));
        assert_eq!(
            c.poll_event(),
            Some(Event::Failed {
                failures: vec![Failure::Timeout { server: addr(S1) }]
            })
        );
        assert_eq!(c.poll_event(), None);
        assert!(!c.is_querying());
    }

    #[test]
    fn falls_back_to_the_next_server_after_the_schedule() {
        let t0 = Instant::now();
        let mut c =
            BindingClient::with_seed(vec![addr(S1), addr(S2)], ClientConfig::default(), t0, 1);
        let sent = run_until(&mut c, t0, t0 + ms(39_500));
        assert_eq!(sent.len(), 8);
        assert!(sent[..7].iter().all(|(_, to)| *to == addr(S1)));
        assert_eq!(sent[7], (ms(39_500), addr(S2)));
        assert_eq!(c.poll_event(), None, "no event while servers remain");
        // The second server's schedule starts afresh.
        assert_eq!(c.poll_timeout(), Some(t0 + ms(40_000)));
        let request = c.poll_transmit(t0 + ms(40_000)).unwrap();
        assert_eq!(request.destination, addr(S2));
        let answer = success_response(&request.payload, "203.0.113.1:5060");
        assert_eq!(
            c.handle_datagram(addr(S2), &answer, t0 + ms(40_010)),
            Handled::Mapped(addr("203.0.113.1:5060"))
        );
        assert_eq!(
            c.poll_event(),
            Some(Event::Discovered(Discovery {
                public: addr("203.0.113.1:5060"),
                server: addr(S2)
            }))
        );
        assert_eq!(c.discovery().map(|d| d.server), Some(addr(S2)));
    }

    #[test]
    fn lost_responses_are_recovered_by_retransmission() {
        let t0 = Instant::now();
        let mut c = BindingClient::with_seed(vec![addr(S1)], ClientConfig::one_shot(), t0, 2);
        // Two requests lost, the third answered.
        let sent = run_until(&mut c, t0, t0 + ms(1_500));
        assert_eq!(sent.len(), 3);
        let request = binding_request_in_flight(&c);
        let answer = success_response(&request, "198.51.100.20:4000");
        assert_eq!(
            c.handle_datagram(addr(S1), &answer, t0 + ms(1_600)),
            Handled::Mapped(addr("198.51.100.20:4000"))
        );
        assert!(c.poll_transmit(t0 + ms(10_000)).is_none());
        assert_eq!(c.poll_timeout(), None, "one-shot: nothing more to do");
        // A duplicate answer (retransmitted request answered twice) is ignored.
        assert_eq!(
            c.handle_datagram(addr(S1), &answer, t0 + ms(1_700)),
            Handled::Ignored(Ignored::UnknownTransaction)
        );
    }

    fn binding_request_in_flight(c: &BindingClient) -> Vec<u8> {
        match &c.state {
            State::Querying { transaction, .. } => transaction.request.clone(),
            State::Idle { .. } => panic!("no request in flight"),
        }
    }

    #[test]
    fn wrong_transaction_id_is_ignored_and_retries_go_on() {
        let t0 = Instant::now();
        let mut c = BindingClient::with_seed(vec![addr(S1)], ClientConfig::one_shot(), t0, 3);
        let request = c.poll_transmit(t0).unwrap().payload;
        let mut other = request.clone();
        other[19] ^= 0xff;
        let forged = success_response(&other, "6.6.6.6:666");
        assert_eq!(
            c.handle_datagram(addr(S1), &forged, t0 + ms(10)),
            Handled::Ignored(Ignored::UnknownTransaction)
        );
        assert_eq!(c.public_addr(), None);
        assert_eq!(c.poll_timeout(), Some(t0 + ms(500)), "schedule unchanged");
        let again = c.poll_transmit(t0 + ms(500)).unwrap();
        assert_eq!(again.payload, request);
        let answer = success_response(&request, "203.0.113.1:5060");
        assert_eq!(
            c.handle_datagram(addr(S1), &answer, t0 + ms(600)),
            Handled::Mapped(addr("203.0.113.1:5060"))
        );
    }

    #[test]
    fn garbage_and_sip_are_not_taken_for_answers() {
        let t0 = Instant::now();
        let mut c = BindingClient::with_seed(vec![addr(S1)], ClientConfig::one_shot(), t0, 4);
        let request = c.poll_transmit(t0).unwrap().payload;
        let sip = b"NOTIFY sip:blf@198.51.100.10:5060 SIP/2.0\r\nContent-Length: 0\r\n\r\n";
        assert_eq!(c.handle_datagram(addr(S1), sip, t0), Handled::NotStun);
        assert_eq!(
            c.handle_datagram(addr(S1), b"\r\n\r\n", t0),
            Handled::NotStun
        );
        assert_eq!(c.handle_datagram(addr(S1), &[], t0), Handled::NotStun);
        // STUN-looking garbage: cookie right, rest random.
        let mut garbage = request.clone();
        garbage[1] = 0x01;
        garbage[0] = 0x01; // success response type
        garbage.truncate(27);
        assert!(matches!(
            c.handle_datagram(addr(S1), &garbage, t0),
            Handled::Ignored(Ignored::Invalid(_))
        ));
        // Our own request echoed back (e.g. a loop): not a response.
        assert_eq!(
            c.handle_datagram(addr(S1), &request, t0),
            Handled::Ignored(Ignored::Invalid(DecodeError::NotBindingResponse {
                message_type: 0x0001
            }))
        );
        assert!(c.is_querying());
        assert_eq!(c.poll_timeout(), Some(t0 + ms(500)));
        assert_eq!(c.poll_event(), None);
    }

    #[test]
    fn error_response_moves_to_the_next_server_at_once() {
        let t0 = Instant::now();
        let mut c =
            BindingClient::with_seed(vec![addr(S1), addr(S2)], ClientConfig::one_shot(), t0, 5);
        let request = c.poll_transmit(t0).unwrap().payload;
        let refusal = error_response(&request, 500, "Server Error");
        assert_eq!(
            c.handle_datagram(addr(S1), &refusal, t0 + ms(5)),
            Handled::ErrorResponse {
                code: 500,
                reason: "Server Error".to_owned()
            }
        );
        let next = c.poll_transmit(t0 + ms(5)).unwrap();
        assert_eq!(next.destination, addr(S2));
        assert_ne!(next.payload[8..20], request[8..20], "new transaction id");
        assert_eq!(c.poll_timeout(), Some(t0 + ms(505)));
        // The first server's late answer belongs to a finished transaction.
        let late = success_response(&request, "203.0.113.1:1");
        assert_eq!(
            c.handle_datagram(addr(S1), &late, t0 + ms(6)),
            Handled::Ignored(Ignored::UnknownTransaction)
        );
        let sent = run_until(&mut c, t0 + ms(5), t0 + ms(60_000));
        assert_eq!(
            sent.len(),
            6,
            "remaining retransmissions to the second server"
        );
        assert_eq!(
            c.poll_event(),
            Some(Event::Failed {
                failures: vec![
                    Failure::ErrorResponse {
                        server: addr(S1),
                        code: 500,
                        reason: "Server Error".to_owned()
                    },
                    Failure::Timeout { server: addr(S2) },
                ]
            })
        );
    }

    #[test]
    fn ipv6_server_and_mapping() {
        let t0 = Instant::now();
        let server = addr("[2001:db8::3478]:3478");
        let mut c = BindingClient::with_seed(vec![server], ClientConfig::one_shot(), t0, 6);
        let request = c.poll_transmit(t0).unwrap();
        assert_eq!(request.destination, server);
        let answer = success_response(
            &request.payload,
            "[2001:db8:1234:5678:11:2233:4455:6677]:32853",
        );
        assert_eq!(
            c.handle_datagram(server, &answer, t0 + ms(1)),
            Handled::Mapped(addr("[2001:db8:1234:5678:11:2233:4455:6677]:32853"))
        );
    }

    #[test]
    fn fingerprint_checked_when_present() {
        let t0 = Instant::now();
        let mut c = BindingClient::with_seed(vec![addr(S1)], ClientConfig::one_shot(), t0, 8);
        let request = c.poll_transmit(t0).unwrap().payload;
        let mut bad = success_with_fingerprint(&request, "203.0.113.1:5060");
        let last = bad.len() - 1;
        bad[last] ^= 0x55;
        assert_eq!(
            c.handle_datagram(addr(S1), &bad, t0 + ms(1)),
            Handled::Ignored(Ignored::Invalid(DecodeError::FingerprintMismatch))
        );
        assert_eq!(c.public_addr(), None);
        let good = success_with_fingerprint(&request, "203.0.113.1:5060");
        assert_eq!(
            c.handle_datagram(addr(S1), &good, t0 + ms(2)),
            Handled::Mapped(addr("203.0.113.1:5060"))
        );
    }

    #[test]
    fn rediscovery_reports_a_changed_mapping_once() {
        let t0 = Instant::now();
        let config = ClientConfig::default().with_refresh_interval(Some(Duration::from_secs(30)));
        let mut c = BindingClient::with_seed(vec![addr(S1)], config, t0, 9);
        let r1 = c.poll_transmit(t0).unwrap().payload;
        c.handle_datagram(
            addr(S1),
            &success_response(&r1, "203.0.113.1:5060"),
            t0 + ms(10),
        );
        assert!(matches!(c.poll_event(), Some(Event::Discovered(_))));
        let t1 = t0 + ms(10) + Duration::from_secs(30);
        assert_eq!(c.poll_timeout(), Some(t1));
        assert!(
            c.poll_transmit(t1 - ms(1)).is_none(),
            "not before the interval"
        );
        // Same mapping: no event.
        let r2 = c.poll_transmit(t1).unwrap().payload;
        assert_ne!(r2[8..20], r1[8..20]);
        c.handle_datagram(addr(S1), &success_response(&r2, "203.0.113.1:5060"), t1);
        assert_eq!(c.poll_event(), None);
        // The NAT rebinds: a new port.
        let t2 = t1 + Duration::from_secs(30);
        let r3 = c.poll_transmit(t2).unwrap().payload;
        assert_eq!(
            c.handle_datagram(addr(S1), &success_response(&r3, "203.0.113.1:6000"), t2),
            Handled::Mapped(addr("203.0.113.1:6000"))
        );
        assert_eq!(
            c.poll_event(),
            Some(Event::Changed {
                old: addr("203.0.113.1:5060"),
                new: addr("203.0.113.1:6000"),
                server: addr(S1)
            })
        );
        assert_eq!(c.public_addr(), Some(addr("203.0.113.1:6000")));
    }

    #[test]
    fn failed_round_keeps_the_address_and_retries_later() {
        let t0 = Instant::now();
        let config = ClientConfig::default()
            .with_refresh_interval(Some(Duration::from_secs(60)))
            .with_retry_interval(Some(Duration::from_secs(10)))
            .with_transaction_timeout(Some(Duration::from_secs(2)));
        let mut c = BindingClient::with_seed(vec![addr(S1)], config, t0, 10);
        let r1 = c.poll_transmit(t0).unwrap().payload;
        c.handle_datagram(addr(S1), &success_response(&r1, "203.0.113.1:5060"), t0);
        c.poll_event();
        // Refresh round gets no answer: capped at 2 s by the transaction timeout.
        let t1 = t0 + Duration::from_secs(60);
        let sent = run_until(&mut c, t0, t1 + Duration::from_secs(2));
        assert_eq!(
            sent.iter().map(|(at, _)| *at).collect::<Vec<_>>(),
            [60_000, 60_500, 61_500].map(ms).to_vec()
        );
        assert_eq!(
            c.poll_event(),
            Some(Event::Failed {
                failures: vec![Failure::Timeout { server: addr(S1) }]
            })
        );
        assert_eq!(c.public_addr(), Some(addr("203.0.113.1:5060")));
        assert_eq!(c.poll_timeout(), Some(t1 + Duration::from_secs(12)));
    }

    #[test]
    fn send_failure_skips_the_server() {
        let t0 = Instant::now();
        let mut c = BindingClient::with_seed(
            vec![addr("[::1]:3478"), addr(S1)],
            ClientConfig::one_shot(),
            t0,
            11,
        );
        let first = c.poll_transmit(t0).unwrap();
        c.handle_send_failure(addr(S2), "unrelated".to_owned(), t0);
        assert_eq!(
            c.poll_timeout(),
            Some(t0 + ms(500)),
            "other destinations do not count"
        );
        c.handle_send_failure(
            first.destination,
            "Address family not supported".to_owned(),
            t0,
        );
        assert_eq!(c.poll_transmit(t0).unwrap().destination, addr(S1));
    }

    #[test]
    fn new_servers_apply_from_the_next_round() {
        let t0 = Instant::now();
        let config = ClientConfig::default().with_refresh_interval(Some(Duration::from_secs(1)));
        let mut c = BindingClient::with_seed(vec![addr(S1)], config, t0, 15);
        let r1 = c.poll_transmit(t0).unwrap();
        c.set_servers(vec![addr(S2)]);
        assert_eq!(c.servers(), &[addr(S1)], "not during a round");
        assert_eq!(c.poll_transmit(t0 + ms(500)).unwrap().destination, addr(S1));
        c.handle_datagram(
            addr(S1),
            &success_response(&r1.payload, "203.0.113.1:5060"),
            t0 + ms(600),
        );
        let r2 = c.poll_transmit(t0 + ms(1600)).unwrap();
        assert_eq!(r2.destination, addr(S2));
        assert_eq!(c.servers(), &[addr(S2)]);
    }

    #[test]
    fn no_servers_fails_at_once() {
        let t0 = Instant::now();
        let mut c = BindingClient::with_seed(Vec::new(), ClientConfig::one_shot(), t0, 12);
        assert!(c.poll_transmit(t0).is_none());
        assert_eq!(
            c.poll_event(),
            Some(Event::Failed {
                failures: Vec::new()
            })
        );
        assert_eq!(c.poll_timeout(), None);
    }

    #[test]
    fn unpolled_events_are_bounded() {
        let t0 = Instant::now();
        let config = ClientConfig::default().with_retry_interval(Some(Duration::from_secs(1)));
        let mut c = BindingClient::with_seed(Vec::new(), config, t0, 13);
        for _ in 0..100 {
            let now = c.poll_timeout().unwrap();
            c.handle_timeout(now);
        }
        assert_eq!(c.events.len(), MAX_QUEUED_EVENTS);
    }

    #[test]
    fn extreme_configuration_does_not_overflow() {
        let t0 = Instant::now();
        let config = ClientConfig::one_shot()
            .with_rto(Duration::from_secs(u64::MAX / 4))
            .with_max_transmissions(u32::MAX);
        let mut c = BindingClient::with_seed(vec![addr(S1)], config, t0, 14);
        assert!(c.poll_transmit(t0).is_some());
        assert_eq!(c.poll_timeout(), Some(t0 + MAX_WAIT));
        assert_eq!(
            wait_after(&ClientConfig::default().with_max_transmissions(100), 60),
            MAX_WAIT
        );
        // "Never" as Duration::MAX is a day, not a timer in the past.
        let config = ClientConfig::default()
            .with_refresh_interval(Some(Duration::MAX))
            .with_transaction_timeout(Some(Duration::MAX));
        let mut c = BindingClient::with_seed(vec![addr(S1)], config, t0, 15);
        let r = c.poll_transmit(t0).unwrap();
        assert_eq!(c.poll_timeout(), Some(t0 + ms(500)));
        c.handle_datagram(addr(S1), &success_response(&r.payload, "203.0.113.1:1"), t0);
        assert_eq!(c.poll_timeout(), Some(t0 + MAX_WAIT));
    }

    #[test]
    fn transaction_ids_differ_between_clients_and_rounds() {
        let t0 = Instant::now();
        let a = BindingClient::new(vec![addr(S1)], ClientConfig::one_shot(), t0)
            .poll_transmit(t0)
            .unwrap();
        let b = BindingClient::new(vec![addr(S1)], ClientConfig::one_shot(), t0)
            .poll_transmit(t0)
            .unwrap();
        assert_ne!(a.payload[8..20], b.payload[8..20]);
    }
}
