//! Non-INVITE transactions (RFC 3261 §17.1.2 and §17.2.2), sans-IO.
//!
//! The client transaction retransmits on unreliable transports (Timer E,
//! doubling from T1 up to T2; from T2 on once a provisional response came), gives
//! up after Timer F (64·T1) and absorbs retransmitted responses for Timer K (T4;
//! zero on reliable transports). The server side remembers the answer to each
//! request for Timer J (64·T1; zero on reliable transports) and answers a
//! retransmitted request with the same response.

use crate::headers::parse_via;
use crate::message::Message;
use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// A datagram (or, on TCP, a chunk of the stream) to send: what the sans-IO
/// state machines hand their drivers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where to send it.
    pub destination: SocketAddr,
    /// The bytes.
    pub payload: Vec<u8>,
}

/// RFC 3261 timer base values: start from [`Timers::default`] (the RFC's
/// values) and change one with the `with_*` setters. More timers may come.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Timers {
    /// RTT estimate, 500 ms.
    pub t1: Duration,
    /// Longest retransmit interval for non-INVITE requests, 4 s.
    pub t2: Duration,
    /// Longest time a message stays in the network, 5 s.
    pub t4: Duration,
}

impl Default for Timers {
    fn default() -> Self {
        Self {
            t1: Duration::from_millis(500),
            t2: Duration::from_secs(4),
            t4: Duration::from_secs(5),
        }
    }
}

impl Timers {
    /// Sets T1, the RTT estimate.
    pub fn with_t1(mut self, t1: Duration) -> Self {
        self.t1 = t1;
        self
    }

    /// Sets T2, the longest retransmit interval for non-INVITE requests.
    pub fn with_t2(mut self, t2: Duration) -> Self {
        self.t2 = t2;
        self
    }

    /// Sets T4, the longest time a message stays in the network.
    pub fn with_t4(mut self, t4: Duration) -> Self {
        self.t4 = t4;
        self
    }

    /// Timer F (and J): 64·T1.
    pub fn timer_f(&self) -> Duration {
        self.t1.saturating_mul(64)
    }
}

/// State of a non-INVITE client transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientState {
    /// Request sent, nothing heard.
    Trying,
    /// A provisional response came.
    Proceeding,
    /// A final response came; absorbing retransmissions until Timer K.
    Completed,
    /// Done.
    Terminated,
}

/// What a client transaction tells its user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ClientOutput {
    /// Send these bytes again (retransmission).
    Retransmit(Vec<u8>),
    /// Timer F fired: no final response (treat as 408).
    TimedOut,
}

/// A non-INVITE client transaction.
#[derive(Debug, Clone)]
pub struct ClientTransaction {
    request: Vec<u8>,
    destination: SocketAddr,
    reliable: bool,
    timers: Timers,
    state: ClientState,
    timer_e: Option<Instant>,
    interval: Duration,
    timer_f: Instant,
    timer_k: Option<Instant>,
}

impl ClientTransaction {
    /// Starts a transaction; the caller sends `request` once now.
    pub fn new(
        request: Vec<u8>,
        destination: SocketAddr,
        reliable: bool,
        timers: Timers,
        now: Instant,
    ) -> Self {
        Self {
            request,
            destination,
            reliable,
            timers,
            state: ClientState::Trying,
            timer_e: (!reliable).then(|| now + timers.t1),
            interval: timers.t1,
            timer_f: now + timers.timer_f(),
            timer_k: None,
        }
    }

    /// Current state.
    pub fn state(&self) -> ClientState {
        self.state
    }

    /// Where the request goes.
    pub fn destination(&self) -> SocketAddr {
        self.destination
    }

    /// Takes a response status; returns `true` when the response must be passed
    /// to the transaction user (provisional, or the first final response).
    pub fn on_response(&mut self, status: u16, now: Instant) -> bool {
        match self.state {
            ClientState::Trying | ClientState::Proceeding if status < 200 => {
                self.state = ClientState::Proceeding;
                if !self.reliable {
                    // Retransmit at T2 from now on (§17.1.2.2).
                    self.interval = self.timers.t2;
                    self.timer_e = Some(now + self.timers.t2);
                }
                true
            }
            ClientState::Trying | ClientState::Proceeding => {
                self.timer_e = None;
                if self.reliable {
                    self.state = ClientState::Terminated;
                } else {
                    self.state = ClientState::Completed;
                    self.timer_k = Some(now + self.timers.t4);
                }
                true
            }
            // Retransmitted responses are absorbed.
            ClientState::Completed | ClientState::Terminated => false,
        }
    }

    /// When [`on_timeout`](Self::on_timeout) must run next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        match self.state {
            ClientState::Trying | ClientState::Proceeding => {
                Some(self.timer_e.map_or(self.timer_f, |e| e.min(self.timer_f)))
            }
            ClientState::Completed => self.timer_k,
            ClientState::Terminated => None,
        }
    }

    /// Fires due timers.
    pub fn on_timeout(&mut self, now: Instant) -> Option<ClientOutput> {
        match self.state {
            ClientState::Trying | ClientState::Proceeding => {
                if now >= self.timer_f {
                    self.state = ClientState::Terminated;
                    self.timer_e = None;
                    return Some(ClientOutput::TimedOut);
                }
                match self.timer_e {
                    Some(e) if now >= e => {
                        if self.state == ClientState::Trying {
                            self.interval = (self.interval * 2).min(self.timers.t2);
                        }
                        self.timer_e = Some(now + self.interval);
                        Some(ClientOutput::Retransmit(self.request.clone()))
                    }
                    _ => None,
                }
            }
            ClientState::Completed => {
                if self.timer_k.is_some_and(|k| now >= k) {
                    self.state = ClientState::Terminated;
                }
                None
            }
            ClientState::Terminated => None,
        }
    }

    /// `true` once the transaction can be dropped.
    pub fn is_terminated(&self) -> bool {
        self.state == ClientState::Terminated
    }
}

/// What [`ServerTransactions::absorb`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Absorb {
    /// A request not seen before: handle it, then remember the response under
    /// this key.
    New(String),
    /// A retransmission: send these bytes (the first response) again.
    Retransmission(Vec<u8>),
}

/// Answers retransmitted requests with the response given the first time.
#[derive(Debug, Default)]
pub struct ServerTransactions {
    answered: HashMap<String, (Vec<u8>, Instant)>,
    order: VecDeque<(Instant, String)>,
}

/// At most this many answered requests are remembered (bounded memory under a flood).
const MAX_SERVER_TRANSACTIONS: usize = 16 * 1024;

impl ServerTransactions {
    /// Nothing remembered.
    pub fn new() -> Self {
        Self::default()
    }

    /// The key of a server transaction (RFC 3261 §17.2.3): the top Via's
    /// branch, Call-ID, CSeq and the sender, so that a retransmission finds
    /// the response given the first time.
    pub fn key(request: &Message, from: SocketAddr) -> String {
        let branch = request
            .top_via()
            .and_then(|v| parse_via(v).ok())
            .and_then(|v| v.branch)
            .unwrap_or_default();
        format!(
            "{}|{}|{}|{}",
            branch,
            request.call_id().unwrap_or(""),
            request.headers.get("CSeq").unwrap_or(""),
            from
        )
    }

    /// The first step of every server transaction: a retransmitted request
    /// gets the response given the first time ([`Absorb::Retransmission`],
    /// send it again and do nothing else); a new one gets the key to pass to
    /// [`ServerTransactions::answered`] with its response.
    pub fn absorb(&self, request: &Message, from: SocketAddr) -> Absorb {
        let key = Self::key(request, from);
        match self.retransmission(&key) {
            Some(response) => Absorb::Retransmission(response.to_vec()),
            None => Absorb::New(key),
        }
    }

    /// The cached response of a retransmitted request.
    pub fn retransmission(&self, key: &str) -> Option<&[u8]> {
        self.answered.get(key).map(|(r, _)| r.as_slice())
    }

    /// Remembers the response to a request until Timer J (`reliable`: not at all).
    pub fn answered(
        &mut self,
        key: String,
        response: Vec<u8>,
        reliable: bool,
        timers: Timers,
        now: Instant,
    ) {
        if reliable {
            return;
        }
        while self.answered.len() >= MAX_SERVER_TRANSACTIONS {
            match self.order.pop_front() {
                Some((_, k)) => {
                    self.answered.remove(&k);
                }
                None => break,
            }
        }
        let until = now + timers.timer_f();
        self.order.push_back((until, key.clone()));
        self.answered.insert(key, (response, until));
    }

    /// When the oldest remembered answer expires.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.order.front().map(|(t, _)| *t)
    }

    /// Forgets answers whose Timer J fired.
    pub fn on_timeout(&mut self, now: Instant) {
        while let Some((t, _)) = self.order.front() {
            if *t > now {
                break;
            }
            if let Some((_, k)) = self.order.pop_front() {
                self.answered.remove(&k);
            }
        }
    }

    /// Number of remembered answers.
    pub fn len(&self) -> usize {
        self.answered.len()
    }

    /// `true` when nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.answered.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr() -> SocketAddr {
        "127.0.0.1:5060".parse().unwrap()
    }

    /// Runs timers of `tx` until `end`, returning the offsets of retransmissions
    /// and of the time-out.
    fn run(tx: &mut ClientTransaction, start: Instant, end: Instant) -> (Vec<u64>, Option<u64>) {
        let mut retrans = Vec::new();
        let mut timeout = None;
        while let Some(t) = tx.poll_timeout() {
            if t > end {
                break;
            }
            match tx.on_timeout(t) {
                Some(ClientOutput::Retransmit(_)) => retrans.push((t - start).as_millis() as u64),
                Some(ClientOutput::TimedOut) => timeout = Some((t - start).as_millis() as u64),
                None => {}
            }
        }
        (retrans, timeout)
    }

    #[test]
    fn timer_e_doubles_to_t2_and_timer_f_fires_at_64_t1() {
        let now = Instant::now();
        let mut tx = ClientTransaction::new(b"REQ".to_vec(), addr(), false, Timers::default(), now);
        let (r, t) = run(&mut tx, now, now + Duration::from_secs(60));
        assert_eq!(
            &r[..6],
            &[500, 1500, 3500, 7500, 11500, 15500],
            "E: 0.5, 1, 2, 4, 4, 4 s apart"
        );
        assert!(r.iter().all(|ms| *ms < 32_000));
        assert_eq!(t, Some(32_000));
        assert!(tx.is_terminated());
    }

    #[test]
    fn provisional_moves_timer_e_to_t2_and_final_starts_k() {
        let now = Instant::now();
        let mut tx = ClientTransaction::new(b"REQ".to_vec(), addr(), false, Timers::default(), now);
        assert!(tx.on_response(100, now + Duration::from_millis(100)));
        assert_eq!(tx.state(), ClientState::Proceeding);
        assert_eq!(tx.poll_timeout(), Some(now + Duration::from_millis(4100)));
        assert!(tx.on_response(200, now + Duration::from_secs(1)));
        assert_eq!(tx.state(), ClientState::Completed);
        // Retransmitted 200 absorbed.
        assert!(!tx.on_response(200, now + Duration::from_secs(2)));
        assert_eq!(tx.poll_timeout(), Some(now + Duration::from_secs(6)));
        assert_eq!(tx.on_timeout(now + Duration::from_secs(6)), None);
        assert!(tx.is_terminated());
    }

    #[test]
    fn reliable_transport_never_retransmits_and_skips_k() {
        let now = Instant::now();
        let mut tx = ClientTransaction::new(b"REQ".to_vec(), addr(), true, Timers::default(), now);
        let (r, t) = run(&mut tx, now, now + Duration::from_secs(60));
        assert!(r.is_empty());
        assert_eq!(t, Some(32_000));
        let mut tx = ClientTransaction::new(b"REQ".to_vec(), addr(), true, Timers::default(), now);
        assert!(tx.on_response(404, now));
        assert!(tx.is_terminated());
    }

    #[test]
    fn server_timer_j() {
        let now = Instant::now();
        let mut s = ServerTransactions::new();
        s.answered("k".into(), b"200".to_vec(), false, Timers::default(), now);
        assert_eq!(s.retransmission("k"), Some(&b"200"[..]));
        assert_eq!(s.poll_timeout(), Some(now + Duration::from_secs(32)));
        s.on_timeout(now + Duration::from_secs(31));
        assert_eq!(s.len(), 1);
        s.on_timeout(now + Duration::from_secs(32));
        assert!(s.is_empty());
        s.answered("k".into(), b"200".to_vec(), true, Timers::default(), now);
        assert!(s.retransmission("k").is_none());
    }
}
