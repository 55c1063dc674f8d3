//! The driver's task: open a connection, run one [`Client`] on it, back off,
//! again; answer the handle's commands all along.

use std::collections::HashMap;
use std::future::Future;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};

use super::{DriverConfig, DriverError, SessionEvent};
use crate::{Action, ActionId, Client, ClientEvent, Error, EventList, Response};

/// Bytes asked of the socket per read.
const READ_BUFFER: usize = 16 * 1024;

/// How long the `Logoff` may take when every handle is dropped.
const DROPPED_LOGOFF_LIMIT: Duration = Duration::from_secs(2);

/// What an [`super::AmiHandle`] asks of the task.
pub(super) enum Command {
    Action {
        action: Action,
        reply: oneshot::Sender<Result<Response, DriverError>>,
    },
    List {
        action: Action,
        reply: oneshot::Sender<Result<EventList, DriverError>>,
    },
    Stop {
        limit: Duration,
        done: oneshot::Sender<()>,
    },
}

impl std::fmt::Debug for Command {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Action fields are the caller's; only the name is shown.
        match self {
            Self::Action { action, .. } => write!(f, "Action({})", action.name),
            Self::List { action, .. } => write!(f, "List({})", action.name),
            Self::Stop { limit, .. } => write!(f, "Stop({limit:?})"),
        }
    }
}

/// A caller waiting for an action's answer.
enum Waiter {
    Action(oneshot::Sender<Result<Response, DriverError>>),
    List(oneshot::Sender<Result<EventList, DriverError>>),
}

impl Waiter {
    fn fail(self, error: DriverError) {
        match self {
            Self::Action(tx) => drop(tx.send(Err(error))),
            Self::List(tx) => drop(tx.send(Err(error))),
        }
    }
}

/// Those waiting for the stop to finish.
type Stoppers = Vec<oneshot::Sender<()>>;

/// A stop in progress on a live connection.
struct Stopping {
    deadline: Instant,
    done: Stoppers,
}

/// How a connection ended.
enum End {
    Stop(Stoppers),
    Lost(DriverError),
}

pub(super) struct Task {
    config: DriverConfig,
    events: mpsc::UnboundedSender<SessionEvent>,
    commands: mpsc::UnboundedReceiver<Command>,
    /// Whether a handle is left (`recv` is not polled again once it is not).
    handles_left: bool,
    /// [`super::connect`]: no retry, no `Connecting`; the login's outcome
    /// goes here.
    once: bool,
    login: Option<oneshot::Sender<Result<(), DriverError>>>,
    /// Attempts since the last login.
    attempt: u32,
    /// Failures in a row (a dropped logged-in connection counts as the first).
    failures: u32,
}

/// The clock the client is given: tokio's, so that paused time drives it.
fn now() -> Instant {
    tokio::time::Instant::now().into_std()
}

impl Task {
    pub(super) fn new(
        config: DriverConfig,
        events: mpsc::UnboundedSender<SessionEvent>,
        commands: mpsc::UnboundedReceiver<Command>,
        login: Option<oneshot::Sender<Result<(), DriverError>>>,
    ) -> Self {
        Self {
            config,
            events,
            commands,
            handles_left: true,
            once: login.is_some(),
            login,
            attempt: 0,
            failures: 0,
        }
    }

    pub(super) async fn run(mut self) {
        let done = loop {
            self.attempt = self.attempt.saturating_add(1);
            if !self.once {
                self.emit(SessionEvent::Connecting {
                    attempt: self.attempt,
                });
            }
            let opening = open(self.config.address.clone(), self.config.connect_timeout);
            let end = match self.idle_until(opening).await {
                Err(done) => End::Stop(done),
                Ok(Err(error)) => End::Lost(error),
                Ok(Ok(stream)) => self.session(stream).await,
            };
            match end {
                End::Stop(done) => break done,
                End::Lost(error) => {
                    if let Some(done) = self.lost(error).await {
                        break done;
                    }
                }
            }
        };
        self.emit(SessionEvent::Stopped);
        for tx in done {
            let _ = tx.send(());
        }
    }

    fn emit(&self, event: SessionEvent) {
        // A dropped receiver does not stop the driver: the handles decide.
        let _ = self.events.send(event);
    }

    /// Reports a lost connection and waits for the next attempt; `Some` when
    /// the driver must stop instead.
    async fn lost(&mut self, error: DriverError) -> Option<Stoppers> {
        if self.once {
            match self.login.take() {
                Some(login) => drop(login.send(Err(error))),
                None => self.emit(SessionEvent::Disconnected {
                    error,
                    retry_in: Duration::ZERO,
                }),
            }
            return Some(Vec::new());
        }
        self.failures = self.failures.saturating_add(1);
        let retry_in = self.config.backoff.delay(self.failures);
        self.emit(SessionEvent::Disconnected { error, retry_in });
        self.idle_until(tokio::time::sleep(retry_in)).await.err()
    }

    /// Runs `future` while answering commands with no connection: actions
    /// get [`DriverError::NotConnected`]; a stop (or the last handle gone)
    /// ends the wait with `Err`.
    async fn idle_until<F: Future>(&mut self, future: F) -> Result<F::Output, Stoppers> {
        tokio::pin!(future);
        loop {
            tokio::select! {
                output = &mut future => return Ok(output),
                command = self.commands.recv(), if self.handles_left => match command {
                    None => {
                        self.handles_left = false;
                        return Err(Vec::new());
                    }
                    Some(Command::Stop { done, .. }) => return Err(vec![done]),
                    Some(Command::Action { reply, .. }) => {
                        let _ = reply.send(Err(DriverError::NotConnected));
                    }
                    Some(Command::List { reply, .. }) => {
                        let _ = reply.send(Err(DriverError::NotConnected));
                    }
                },
            }
        }
    }

    /// One connection, from the banner to the client's `Closed`.
    async fn session(&mut self, stream: TcpStream) -> End {
        // Actions are small and must go out at once.
        let _ = stream.set_nodelay(true);
        let (mut reader, mut writer) = stream.into_split();
        let mut client = Client::new(self.config.client.clone());
        client.handle_timeout(now());
        let mut session = Session::default();
        let mut buf = vec![0u8; READ_BUFFER];
        loop {
            while let Some(bytes) = client.poll_transmit() {
                if let Err(e) = writer.write_all(&bytes).await {
                    session.io_error.get_or_insert(e.to_string());
                    client.handle_eof();
                }
            }
            while let Some(event) = client.poll_event() {
                if let ClientEvent::Closed(error) = event {
                    return self.closed(session, error);
                }
                self.on_client_event(event, &mut session);
            }
            let stop_at = session.stopping.as_ref().map(|s| s.deadline);
            let wake = match (client.poll_timeout(), stop_at) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let timer = async {
                match wake {
                    Some(t) => tokio::time::sleep_until(t.into()).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                read = reader.read(&mut buf) => match read {
                    Ok(0) => client.handle_eof(),
                    Ok(n) => client.handle_input(buf.get(..n).unwrap_or_default(), now()),
                    Err(e) => {
                        session.io_error = Some(e.to_string());
                        client.handle_eof();
                    }
                },
                command = self.commands.recv(), if self.handles_left => {
                    self.on_command(command, &mut client, &mut session);
                }
                () = timer => {
                    if let Some(stopping) = session.stopping.take_if(|s| now() >= s.deadline) {
                        // No Goodbye in time: stop anyway.
                        session.fail_waiters(DriverError::Stopped);
                        return End::Stop(stopping.done);
                    }
                    client.handle_timeout(now());
                }
            }
        }
    }

    fn closed(&mut self, mut session: Session, error: Option<Error>) -> End {
        // The client has failed every pending action already; this is a
        // safety net for any waiter left.
        session.fail_waiters(DriverError::Ami(Error::ConnectionClosed));
        if let Some(stopping) = session.stopping {
            return End::Stop(stopping.done);
        }
        let error = match (session.io_error, error) {
            (Some(io), _) => DriverError::Io(io),
            (None, Some(e)) => DriverError::Ami(e),
            (None, None) => DriverError::Ami(Error::ConnectionClosed),
        };
        End::Lost(error)
    }

    fn on_client_event(&mut self, event: ClientEvent, session: &mut Session) {
        match event {
            ClientEvent::Connected { version } => session.version = version,
            ClientEvent::Authenticated => {
                session.logged_in = true;
                self.attempt = 0;
                self.failures = 0;
                self.emit(SessionEvent::LoggedIn {
                    version: session.version.clone(),
                });
                if let Some(login) = self.login.take() {
                    let _ = login.send(Ok(()));
                }
            }
            ClientEvent::FullyBooted(_) if session.logged_in => {
                self.emit(SessionEvent::FullyBooted);
            }
            ClientEvent::Shutdown { restart, .. } if session.logged_in => {
                self.emit(SessionEvent::Shutdown { restart });
            }
            ClientEvent::Event(e) if session.logged_in => self.emit(SessionEvent::Event(e)),
            ClientEvent::Response { id, response } => match session.waiters.remove(&id) {
                Some(Waiter::Action(tx)) => drop(tx.send(Ok(response))),
                // A list action answered without a list (e.g. an error).
                Some(Waiter::List(tx)) => drop(tx.send(Ok(EventList {
                    id,
                    response,
                    items: Vec::new(),
                    complete: None,
                    error: None,
                }))),
                None => {}
            },
            ClientEvent::List(list) => match session.waiters.remove(&list.id) {
                Some(Waiter::List(tx)) => drop(tx.send(Ok(list))),
                Some(Waiter::Action(tx)) => drop(tx.send(Ok(list.response))),
                None => {}
            },
            ClientEvent::ActionFailed { id, error } => {
                if let Some(waiter) = session.waiters.remove(&id) {
                    waiter.fail(DriverError::Ami(error));
                }
            }
            // Events before the login, stray responses, `LoggedOff` (the
            // `Closed` that follows ends the session) and `Closed` (handled
            // by the caller).
            ClientEvent::FullyBooted(_)
            | ClientEvent::Shutdown { .. }
            | ClientEvent::Event(_)
            | ClientEvent::UnmatchedResponse(_)
            | ClientEvent::Unrecognised(_)
            | ClientEvent::LoggedOff
            | ClientEvent::Closed(_) => {}
        }
    }

    fn on_command(&mut self, command: Option<Command>, client: &mut Client, session: &mut Session) {
        let (action, waiter) = match command {
            None => {
                self.handles_left = false;
                session.stop(client, DROPPED_LOGOFF_LIMIT, None);
                return;
            }
            Some(Command::Stop { limit, done }) => {
                session.stop(client, limit, Some(done));
                return;
            }
            Some(Command::Action { action, reply }) => (action, Waiter::Action(reply)),
            Some(Command::List { action, reply }) => (action, Waiter::List(reply)),
        };
        if session.stopping.is_some() {
            return waiter.fail(DriverError::Stopped);
        }
        if !client.is_authenticated() {
            return waiter.fail(DriverError::NotConnected);
        }
        match client.send_action(action, now()) {
            Ok(id) => {
                session.waiters.insert(id, waiter);
            }
            Err(e) => waiter.fail(DriverError::Ami(e)),
        }
    }
}

/// The state of one connection.
#[derive(Default)]
struct Session {
    version: Option<String>,
    logged_in: bool,
    waiters: HashMap<ActionId, Waiter>,
    /// The first socket error: it names the end better than the client's
    /// `ConnectionClosed`.
    io_error: Option<String>,
    stopping: Option<Stopping>,
}

impl Session {
    fn stop(&mut self, client: &mut Client, limit: Duration, done: Option<oneshot::Sender<()>>) {
        match &mut self.stopping {
            Some(stopping) => stopping.done.extend(done),
            None => {
                let now = now();
                client.logoff(now);
                self.stopping = Some(Stopping {
                    deadline: now + limit,
                    done: done.into_iter().collect(),
                });
            }
        }
    }

    fn fail_waiters(&mut self, error: DriverError) {
        for (_, waiter) in self.waiters.drain() {
            waiter.fail(error.clone());
        }
    }
}

/// Resolves `address` and opens a TCP connection to the first address that
/// answers, each given `timeout`.
async fn open(address: String, timeout: Duration) -> Result<TcpStream, DriverError> {
    let resolve_error = |reason: String| DriverError::Resolve {
        address: address.clone(),
        reason,
    };
    let targets: Vec<_> = tokio::net::lookup_host(address.as_str())
        .await
        .map_err(|e| resolve_error(e.to_string()))?
        .collect();
    if targets.is_empty() {
        return Err(resolve_error("no address found".into()));
    }
    let mut reason = String::new();
    for target in targets {
        match tokio::time::timeout(timeout, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => reason = format!("{target}: {e}"),
            Err(_) => reason = format!("{target}: no answer within {timeout:?}"),
        }
    }
    Err(DriverError::Connect { address, reason })
}
