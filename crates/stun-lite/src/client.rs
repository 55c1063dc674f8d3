//! The sans-IO Binding client: request bytes out, response bytes in, timers
//! driven by the caller's `now`.

mod config;
mod events;
mod timers;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::Instant;

use rand::rngs::StdRng;
use rand::SeedableRng;

use crate::error::Failure;
use crate::message::TransactionId;
use crate::message::{binding_request, decode_response, is_stun, BindingResponse, DecodeError};

pub use config::ClientConfig;
pub use events::{Discovery, Event, Transmit};
use timers::{later, wait_after};

/// Events kept for a caller that never polls them (e.g. through the
/// `AddressDiscovery` trait, which only looks at the address).
const MAX_QUEUED_EVENTS: usize = 32;

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

#[cfg(test)]
#[path = "client_tests.rs"]
pub(crate) mod tests;
