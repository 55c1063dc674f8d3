//! The client state machine: bytes and time in; bytes to send, events and a
//! deadline out.

use std::collections::{BTreeMap, VecDeque};
use std::time::Instant;

use md5::{Digest, Md5};

use crate::action::{Action, ActionId};
use crate::codec::{encode_action, Decoder, Frame};
use crate::config::{Auth, Config};
use crate::error::Error;
use crate::message::{Event, Incoming, Message, Response, ResponseKind};

/// What the client reports.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClientEvent {
    /// The banner arrived; the login starts.
    Connected {
        /// The AMI version from the banner (e.g. `11.0.0`), if any.
        version: Option<String>,
    },
    /// `Authentication accepted`: actions may be sent (those sent before are
    /// now on their way).
    Authenticated,
    /// `Event: FullyBooted`: the PBX's state is now valid (sent once at boot,
    /// and right after the login when the PBX is already up and the `system`
    /// class is on).
    FullyBooted(Event),
    /// `Event: Shutdown`: the PBX is stopping; the connection will close.
    Shutdown {
        /// `Restart: True`.
        restart: bool,
        /// `Shutdown: Cleanly` (no channels were up).
        clean: bool,
        /// The event itself.
        event: Event,
    },
    /// Any other event (asynchronous, or tagged with an `ActionID` that is
    /// not a list in progress).
    Event(Event),
    /// The response to an action that is not a list (or a list that failed:
    /// `Response: Error`).
    Response {
        /// The action's identifier.
        id: ActionId,
        /// The response.
        response: Response,
    },
    /// A list action's answer, collected up to its `...Complete` event, or cut
    /// short (see [`EventList::error`]).
    List(EventList),
    /// An action got no answer: time-out or connection end.
    ActionFailed {
        /// The action's identifier.
        id: ActionId,
        /// [`Error::ActionTimeout`] or [`Error::ConnectionClosed`].
        error: Error,
    },
    /// A response with no (or an unknown) `ActionID`.
    UnmatchedResponse(Response),
    /// A message that is neither a response nor an event.
    Unrecognised(Message),
    /// `Response: Goodbye` to [`Client::logoff`].
    LoggedOff,
    /// The client is closed: drop the connection. `None` after a logoff.
    Closed(Option<Error>),
}

/// A list action's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventList {
    /// The action's identifier.
    pub id: ActionId,
    /// The `Response: Success` / `EventList: start`.
    pub response: Response,
    /// The items, in order.
    pub items: Vec<Event>,
    /// The `...Complete` event (with `ListItems`), if it came.
    pub complete: Option<Event>,
    /// Why the list is incomplete (time-out, connection end), if it is.
    pub error: Option<Error>,
}

impl EventList {
    /// Whether the `...Complete` event came.
    pub fn is_complete(&self) -> bool {
        self.complete.is_some()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitBanner,
    Challenging,
    LoggingIn,
    Ready,
    LoggingOff,
    Closed,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Challenge,
    Login,
    Ping,
    Logoff,
    User,
}

#[derive(Debug)]
struct Pending {
    kind: Kind,
    seq: u64,
    deadline: Instant,
    list: Option<(Response, Vec<Event>)>,
}

/// The sans-IO AMI client. See the [crate docs](crate) for the loop that
/// drives it.
///
/// Its `Debug` shows the state, not the bytes waiting to be sent (a plain
/// login holds the secret).
pub struct Client {
    config: Config,
    state: State,
    decoder: Decoder,
    transmit: VecDeque<Vec<u8>>,
    events: VecDeque<ClientEvent>,
    pending: BTreeMap<String, Pending>,
    queued: Vec<(ActionId, Vec<u8>, u64)>,
    next_id: u64,
    login_deadline: Option<Instant>,
    next_ping: Option<Instant>,
    ping_deadline: Option<Instant>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("config", &self.config)
            .field("state", &self.state)
            .field("transmit_queued", &self.transmit.len())
            .field("events_queued", &self.events.len())
            .field("pending", &self.pending.keys().collect::<Vec<_>>())
            .field("queued_actions", &self.queued.len())
            .field("login_deadline", &self.login_deadline)
            .field("next_ping", &self.next_ping)
            .field("ping_deadline", &self.ping_deadline)
            .finish_non_exhaustive()
    }
}

impl Client {
    /// A client for one connection, before the banner. Give it the first
    /// `now` with [`handle_timeout`](Self::handle_timeout) right after
    /// connecting (the login time-out starts then).
    pub fn new(config: Config) -> Self {
        let decoder = Decoder::new(config.limits);
        Self {
            config,
            state: State::AwaitBanner,
            decoder,
            transmit: VecDeque::new(),
            events: VecDeque::new(),
            pending: BTreeMap::new(),
            queued: Vec::new(),
            next_id: 0,
            login_deadline: None,
            next_ping: None,
            ping_deadline: None,
        }
    }

    /// Whether the login is done and the connection is up.
    pub fn is_authenticated(&self) -> bool {
        matches!(self.state, State::Ready | State::LoggingOff)
    }

    /// Whether the client has closed: drop the connection.
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }

    /// Bytes received from the server.
    pub fn handle_input(&mut self, data: &[u8], now: Instant) {
        self.start(now);
        if self.state == State::Closed {
            return;
        }
        self.decoder.push(data);
        loop {
            match self.decoder.next_frame() {
                Ok(None) => break,
                Ok(Some(Frame::Banner(b))) => self.on_banner(b.version().map(str::to_string), now),
                Ok(Some(Frame::Message(m))) => self.on_message(m, now),
                Err(e) => {
                    self.close(Some(e.into()));
                    break;
                }
            }
            if self.state == State::Closed {
                break;
            }
        }
    }

    /// The input has ended (the server closed the connection). Pending
    /// actions fail, lists in progress are reported incomplete.
    pub fn handle_eof(&mut self) {
        if self.state == State::Closed {
            return;
        }
        let error = match self.decoder.finish() {
            Err(e) => Error::Codec(e),
            Ok(()) => Error::ConnectionClosed,
        };
        self.close(Some(error));
    }

    /// Time has passed: login, action and ping deadlines; a ping when due.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.start(now);
        match self.state {
            State::Closed => return,
            State::AwaitBanner | State::Challenging | State::LoggingIn => {
                if self.login_deadline.is_some_and(|d| now >= d) {
                    self.close(Some(Error::LoginTimeout(self.config.login_timeout)));
                    return;
                }
            }
            State::Ready | State::LoggingOff => {}
        }
        if self.ping_deadline.is_some_and(|d| now >= d) {
            self.close(Some(Error::PingTimeout(self.config.ping_timeout)));
            return;
        }
        let expired: Vec<String> = self
            .pending
            .iter()
            .filter(|(_, p)| now >= p.deadline && matches!(p.kind, Kind::User | Kind::Logoff))
            .map(|(id, _)| id.clone())
            .collect();
        for id in expired {
            let Some(p) = self.pending.remove(&id) else {
                continue;
            };
            match p.kind {
                Kind::User => {
                    let id = ActionId(id);
                    let error = Error::ActionTimeout(id.clone());
                    self.report_failure(id, p, error);
                }
                Kind::Logoff => {
                    self.close(None);
                    return;
                }
                Kind::Challenge | Kind::Login | Kind::Ping => {}
            }
        }
        if self.state == State::Ready && self.next_ping.is_some_and(|t| now >= t) {
            self.send_ping(now);
        }
    }

    /// The earliest instant at which [`handle_timeout`](Self::handle_timeout)
    /// has work; `None` when closed (or before the first `now`).
    pub fn poll_timeout(&self) -> Option<Instant> {
        if self.state == State::Closed {
            return None;
        }
        let mut t: Option<Instant> = None;
        let mut consider = |d: Option<Instant>| {
            if let Some(d) = d {
                t = Some(t.map_or(d, |t| t.min(d)));
            }
        };
        if !self.is_authenticated() {
            consider(self.login_deadline);
        }
        consider(self.ping_deadline);
        if self.state == State::Ready && self.ping_deadline.is_none() {
            consider(self.next_ping);
        }
        for p in self.pending.values() {
            if matches!(p.kind, Kind::User | Kind::Logoff) {
                consider(Some(p.deadline));
            }
        }
        t
    }

    /// The next bytes to write, in order.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmit.pop_front()
    }

    /// The next thing that happened.
    pub fn poll_event(&mut self) -> Option<ClientEvent> {
        self.events.pop_front()
    }

    /// Sends an action (queued until the login is done) and returns its
    /// identifier; its answer comes as [`ClientEvent::Response`],
    /// [`ClientEvent::List`] or [`ClientEvent::ActionFailed`].
    pub fn send_action(&mut self, action: Action, now: Instant) -> Result<ActionId, Error> {
        self.start(now);
        if matches!(self.state, State::Closed | State::LoggingOff) {
            return Err(Error::ConnectionClosed);
        }
        if action
            .fields
            .iter()
            .any(|(k, _)| k.eq_ignore_ascii_case("ActionID"))
        {
            return Err(Error::InvalidAction(
                crate::codec::EncodeError::ActionIdGiven,
            ));
        }
        let id = self.new_id();
        let wire = encode_action(&action.name, id.as_str(), &action.fields)?;
        let seq = self.next_id;
        if self.state == State::Ready {
            self.transmit.push_back(wire);
            self.track(
                id.clone(),
                Kind::User,
                seq,
                now + self.config.action_timeout,
            );
        } else {
            self.queued.push((id.clone(), wire, seq));
        }
        Ok(id)
    }

    /// Sends `Logoff`; `Response: Goodbye` gives [`ClientEvent::LoggedOff`]
    /// then [`ClientEvent::Closed`]`(None)`. Before the banner it just closes.
    pub fn logoff(&mut self, now: Instant) {
        self.start(now);
        match self.state {
            State::Closed | State::LoggingOff => {}
            State::AwaitBanner => self.close(None),
            _ => {
                let id = self.new_id();
                if let Ok(wire) = encode_action("Logoff", id.as_str(), &[]) {
                    self.transmit.push_back(wire);
                }
                let seq = self.next_id;
                self.track(id, Kind::Logoff, seq, now + self.config.action_timeout);
                self.state = State::LoggingOff;
            }
        }
    }

    fn start(&mut self, now: Instant) {
        if self.login_deadline.is_none() {
            self.login_deadline = Some(now + self.config.login_timeout);
        }
    }

    fn new_id(&mut self) -> ActionId {
        self.next_id += 1;
        ActionId(format!("{}{}", self.config.action_id_prefix, self.next_id))
    }

    fn track(&mut self, id: ActionId, kind: Kind, seq: u64, deadline: Instant) {
        self.pending.insert(
            id.0,
            Pending {
                kind,
                seq,
                deadline,
                list: None,
            },
        );
    }

    fn send_internal(&mut self, kind: Kind, name: &str, fields: &[(String, String)], now: Instant) {
        let id = self.new_id();
        match encode_action(name, id.as_str(), fields) {
            Ok(wire) => {
                self.transmit.push_back(wire);
                let seq = self.next_id;
                self.track(id, kind, seq, now + self.config.action_timeout);
            }
            Err(e) => self.close(Some(e.into())),
        }
    }

    fn on_banner(&mut self, version: Option<String>, now: Instant) {
        if self.state != State::AwaitBanner {
            return;
        }
        self.events.push_back(ClientEvent::Connected { version });
        match self.config.auth {
            Auth::Md5 => {
                self.state = State::Challenging;
                let fields = [("AuthType".to_string(), "MD5".to_string())];
                self.send_internal(Kind::Challenge, "Challenge", &fields, now);
            }
            Auth::Plain => {
                self.state = State::LoggingIn;
                let mut fields = vec![
                    ("Username".to_string(), self.config.username.clone()),
                    (
                        "Secret".to_string(),
                        self.config.secret.expose().to_string(),
                    ),
                ];
                self.push_events_field(&mut fields);
                self.send_internal(Kind::Login, "Login", &fields, now);
            }
        }
    }

    fn push_events_field(&self, fields: &mut Vec<(String, String)>) {
        if let Some(mask) = &self.config.events {
            fields.push(("Events".to_string(), mask.clone()));
        }
    }

    fn on_message(&mut self, m: Message, now: Instant) {
        match m.classify() {
            Ok(Incoming::Response(r)) => self.on_response(r, now),
            Ok(Incoming::Event(e)) => self.on_event(e, now),
            Err(m) => self.events.push_back(ClientEvent::Unrecognised(m)),
        }
    }

    fn on_response(&mut self, r: Response, now: Instant) {
        let Some(id) = r.action_id().map(str::to_string) else {
            self.events.push_back(ClientEvent::UnmatchedResponse(r));
            return;
        };
        let Some(kind) = self.pending.get(&id).map(|p| p.kind) else {
            self.events.push_back(ClientEvent::UnmatchedResponse(r));
            return;
        };
        if kind == Kind::User && r.starts_list() {
            if let Some(p) = self.pending.get_mut(&id) {
                if p.list.is_none() {
                    p.list = Some((r, Vec::new()));
                    p.deadline = now + self.config.action_timeout;
                    return;
                }
            }
        }
        self.pending.remove(&id);
        match kind {
            Kind::User => self.events.push_back(ClientEvent::Response {
                id: ActionId(id),
                response: r,
            }),
            Kind::Challenge => self.on_challenge(r, now),
            Kind::Login => self.on_login(r, now),
            Kind::Ping => {
                self.ping_deadline = None;
                self.next_ping = self.config.ping_interval.map(|i| now + i);
            }
            Kind::Logoff => {
                if r.kind == ResponseKind::Goodbye {
                    self.events.push_back(ClientEvent::LoggedOff);
                }
                self.close(None);
            }
        }
    }

    fn on_challenge(&mut self, r: Response, now: Instant) {
        if !r.is_success() {
            let message = r.text().unwrap_or_default().to_string();
            self.close(Some(Error::LoginRefused { message }));
            return;
        }
        let Some(challenge) = r.get("Challenge").map(str::trim) else {
            self.close(Some(Error::Protocol("challenge without Challenge:".into())));
            return;
        };
        let mut md5 = Md5::new();
        md5.update(challenge.as_bytes());
        md5.update(self.config.secret.expose().as_bytes());
        let key = hex::encode(md5.finalize());
        let mut fields = vec![
            ("AuthType".to_string(), "MD5".to_string()),
            ("Username".to_string(), self.config.username.clone()),
            ("Key".to_string(), key),
        ];
        self.push_events_field(&mut fields);
        self.state = State::LoggingIn;
        self.send_internal(Kind::Login, "Login", &fields, now);
    }

    fn on_login(&mut self, r: Response, now: Instant) {
        if !r.is_success() {
            let message = r.text().unwrap_or_default().to_string();
            self.close(Some(Error::LoginRefused { message }));
            return;
        }
        self.state = State::Ready;
        self.events.push_back(ClientEvent::Authenticated);
        self.next_ping = self.config.ping_interval.map(|i| now + i);
        for (id, wire, seq) in std::mem::take(&mut self.queued) {
            self.transmit.push_back(wire);
            self.track(id, Kind::User, seq, now + self.config.action_timeout);
        }
    }

    fn on_event(&mut self, e: Event, now: Instant) {
        if let Some(id) = e.action_id() {
            if let Some(p) = self.pending.get_mut(id) {
                if let Some((_, items)) = &mut p.list {
                    if e.ends_list() {
                        let id = id.to_string();
                        if let Some(Pending {
                            list: Some((response, items)),
                            ..
                        }) = self.pending.remove(&id)
                        {
                            self.events.push_back(ClientEvent::List(EventList {
                                id: ActionId(id),
                                response,
                                items,
                                complete: Some(e),
                                error: None,
                            }));
                        }
                        return;
                    }
                    if items.len() >= self.config.limits.max_list_items {
                        let limit = self.config.limits.max_list_items;
                        self.close(Some(Error::Protocol(format!(
                            "event list longer than {limit} items"
                        ))));
                        return;
                    }
                    items.push(e);
                    p.deadline = now + self.config.action_timeout;
                    return;
                }
            }
        }
        let event = if e.is("FullyBooted") {
            ClientEvent::FullyBooted(e)
        } else if e.is("Shutdown") {
            let restart = e
                .get("Restart")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("true"));
            let clean = e
                .get("Shutdown")
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("cleanly"));
            ClientEvent::Shutdown {
                restart,
                clean,
                event: e,
            }
        } else {
            ClientEvent::Event(e)
        };
        self.events.push_back(event);
    }

    fn send_ping(&mut self, now: Instant) {
        self.send_internal(Kind::Ping, "Ping", &[], now);
        self.next_ping = None;
        self.ping_deadline = Some(now + self.config.ping_timeout);
    }

    fn report_failure(&mut self, id: ActionId, p: Pending, error: Error) {
        let event = match p.list {
            Some((response, items)) => ClientEvent::List(EventList {
                id,
                response,
                items,
                complete: None,
                error: Some(error),
            }),
            None => ClientEvent::ActionFailed { id, error },
        };
        self.events.push_back(event);
    }

    fn close(&mut self, error: Option<Error>) {
        if self.state == State::Closed {
            return;
        }
        self.state = State::Closed;
        self.transmit.clear();
        self.ping_deadline = None;
        self.next_ping = None;
        let mut left: Vec<(String, Pending)> = std::mem::take(&mut self.pending)
            .into_iter()
            .filter(|(_, p)| p.kind == Kind::User)
            .collect();
        left.sort_by_key(|(_, p)| p.seq);
        for (id, p) in left {
            self.report_failure(ActionId(id), p, Error::ConnectionClosed);
        }
        for (id, _, _) in std::mem::take(&mut self.queued) {
            self.events.push_back(ClientEvent::ActionFailed {
                id,
                error: Error::ConnectionClosed,
            });
        }
        self.events.push_back(ClientEvent::Closed(error));
    }
}
