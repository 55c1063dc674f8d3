//! A thin tokio driver around [`Client`](crate::Client): it connects over
//! TCP, feeds the client the bytes read and the time, writes what the client
//! sends, and reconnects with [`Backoff`] when the connection ends. Feature
//! `tokio` (on by default).
//!
//! Every protocol decision (login, ActionID matching, lists, keep-alive,
//! time-outs) stays in the sans-IO client; the driver only moves bytes, keeps
//! the clock and reports what happened as [`SessionEvent`]s, in order, on an
//! unbounded channel. Asterisk closes a session whose reader falls more than
//! 100 ms behind, so the driver reads as soon as bytes arrive and never waits
//! for the consumer of the events.
//!
//! - [`spawn`]: connects at once and reconnects forever (until
//!   [`AmiHandle::stop`] or until every handle is dropped).
//! - [`connect`]: connects and logs in once, for one-shot commands; no retry.
//!
//! Actions go through an [`AmiHandle`]: [`AmiHandle::action`] waits for the
//! response, [`AmiHandle::list`] for a whole event list. Both need a logged-in
//! connection ([`DriverError::NotConnected`] otherwise): after
//! [`SessionEvent::LoggedIn`], every earlier state is void, so ask for the full
//! state again.
//!
//! # Example
//!
//! ```no_run
//! use ami::driver::{self, DriverConfig, DriverError, SessionEvent};
//! use ami::{Action, Config};
//!
//! # async fn run() -> Result<(), DriverError> {
//! let mut client = Config::new("blf", "secret");
//! client.events = Some("system,call".into());
//! let (ami, mut events) = driver::spawn(DriverConfig::new("pbx.example.com:5038", client));
//! while let Some(event) = events.recv().await {
//!     match event {
//!         SessionEvent::LoggedIn { .. } => {
//!             // A new session: read the whole state again.
//!             let hints = ami.list(Action::extension_state_list()).await?;
//!             for hint in &hints.items {
//!                 println!("{:?} {:?}", hint.get("Exten"), hint.get("StatusText"));
//!             }
//!         }
//!         SessionEvent::Event(e) if e.is("ExtensionStatus") => {
//!             println!("{:?} is now {:?}", e.get("Exten"), e.get("StatusText"));
//!         }
//!         SessionEvent::Disconnected { error, retry_in } => {
//!             eprintln!("AMI: {error}; retry in {retry_in:?}");
//!         }
//!         SessionEvent::Stopped => break,
//!         _ => {}
//!     }
//! }
//! # Ok(())
//! # }
//! ```

mod task;

use std::time::Duration;

use tokio::sync::{mpsc, oneshot};

pub use crate::backoff::Backoff;
use crate::{Action, Config, Event, EventList, Response};
use task::{Command, Task};

/// Where and how the driver connects.
///
/// Its `Debug` never shows the secret (see [`crate::Secret`]).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DriverConfig {
    /// `host:port` (the caller adds the default port, 5038).
    pub address: String,
    /// The client's settings (credentials, event mask, timers, limits).
    pub client: Config,
    /// Delays between connection attempts.
    pub backoff: Backoff,
    /// How long a TCP connection may take to open (default 5 s).
    pub connect_timeout: Duration,
}

impl DriverConfig {
    /// Defaults: [`Backoff::default`] (1 s doubling to 30 s), a 5 s connect
    /// time-out.
    pub fn new(address: impl Into<String>, client: Config) -> Self {
        Self {
            address: address.into(),
            client,
            backoff: Backoff::default(),
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// What the driver reports, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SessionEvent {
    /// A connection attempt starts. `attempt` counts from 1 since the last
    /// successful login (or since the start). Not sent by [`connect`].
    Connecting {
        /// The attempt's number.
        attempt: u32,
    },
    /// Logged in (`Authentication accepted`): every earlier state is void;
    /// ask for the full state now (`ExtensionStateList`, ...).
    LoggedIn {
        /// The AMI version from the banner (e.g. `11.0.0`), if any.
        version: Option<String>,
    },
    /// `FullyBooted`: right after the login when the PBX is up (and the
    /// `system` class is on), or at the end of its boot.
    FullyBooted,
    /// An asynchronous event (not part of a list). Only events after the
    /// login are reported.
    Event(Event),
    /// `Shutdown`: the PBX is stopping; the connection will drop and the
    /// driver reconnect.
    Shutdown {
        /// `Restart: True`.
        restart: bool,
    },
    /// The connection ended, or could not be made or logged in. The next
    /// attempt starts in `retry_in` (zero after [`connect`], which does not
    /// retry: [`SessionEvent::Stopped`] follows).
    Disconnected {
        /// Why.
        error: DriverError,
        /// The delay before the next attempt ([`Backoff::delay`]).
        retry_in: Duration,
    },
    /// The driver stopped (after [`AmiHandle::stop`], when every handle is
    /// dropped, or after [`connect`]'s connection ended). The last event.
    Stopped,
}

/// Why a connection or an action failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DriverError {
    /// The TCP connection could not be opened (refused, unreachable, time-out).
    #[error("cannot connect to {address}: {reason}")]
    Connect {
        /// The address tried.
        address: String,
        /// The system's error, or the time-out.
        reason: String,
    },
    /// The host name could not be resolved.
    #[error("cannot resolve {address}: {reason}")]
    Resolve {
        /// The address given.
        address: String,
        /// The resolver's error.
        reason: String,
    },
    /// Reading or writing the socket failed.
    #[error("connection error: {0}")]
    Io(String),
    /// The AMI client closed (login refused, ping time-out, size limit, end
    /// of input, ...) or failed the action (time-out, connection end, an
    /// action that cannot be encoded).
    #[error(transparent)]
    Ami(#[from] crate::Error),
    /// Not logged in right now (an action sent between two connections, or
    /// during a login).
    #[error("not logged in to the AMI server")]
    NotConnected,
    /// The driver has stopped (or is stopping).
    #[error("the AMI driver has stopped")]
    Stopped,
}

/// Sends actions on the driver's connection and stops it. Cheap to clone;
/// the driver stops (with a `Logoff`) when every clone is dropped.
#[derive(Debug, Clone)]
pub struct AmiHandle {
    commands: mpsc::UnboundedSender<Command>,
}

impl AmiHandle {
    /// Sends an action on the current connection and waits for its response.
    /// A `Response: Error` is `Ok` with that response: read
    /// [`Response::is_success`] and [`Response::text`]. A list action sent
    /// this way gives the list's first response; its items are dropped (use
    /// [`list`](Self::list)).
    ///
    /// Errors: [`DriverError::NotConnected`] when not logged in,
    /// [`DriverError::Ami`] with [`crate::Error::ActionTimeout`] or
    /// [`crate::Error::ConnectionClosed`] when no answer came,
    /// [`DriverError::Stopped`] when the driver has stopped.
    pub async fn action(&self, action: Action) -> Result<Response, DriverError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::Action { action, reply })?;
        answer.await.map_err(|_| DriverError::Stopped)?
    }

    /// Sends a list action (`ExtensionStateList`, `DeviceStateList`, `DBGet`,
    /// ...) and waits for the whole list. A list cut short (time-out,
    /// connection end) comes back incomplete with its [`EventList::error`].
    /// A list action answered without a list (e.g. `Response: Error`, as
    /// `DBGet` answers a missing key) gives an [`EventList`] with no items,
    /// no `complete` event and no error, whose `response` is that answer:
    /// check `list.response.is_success()`.
    ///
    /// Errors: as [`action`](Self::action).
    pub async fn list(&self, action: Action) -> Result<EventList, DriverError> {
        let (reply, answer) = oneshot::channel();
        self.send(Command::List { action, reply })?;
        answer.await.map_err(|_| DriverError::Stopped)?
    }

    /// Logs off (waits at most `limit` for `Response: Goodbye`) and stops the
    /// driver; [`SessionEvent::Stopped`] is in the event channel when this
    /// returns. Returns at once if the driver has already stopped.
    pub async fn stop(&self, limit: Duration) {
        let (done, stopped) = oneshot::channel();
        if self.send(Command::Stop { limit, done }).is_ok() {
            let _ = stopped.await;
        }
    }

    fn send(&self, command: Command) -> Result<(), DriverError> {
        self.commands
            .send(command)
            .map_err(|_| DriverError::Stopped)
    }
}

/// Spawns the driver task on the current tokio runtime (panics outside one,
/// as `tokio::spawn` does). It connects at once and reconnects forever, with
/// [`DriverConfig::backoff`] between attempts.
pub fn spawn(config: DriverConfig) -> (AmiHandle, mpsc::UnboundedReceiver<SessionEvent>) {
    start(config, None)
}

/// Connects and logs in once, with no retry: for one-shot commands.
///
/// Returns once the login is accepted (the first event in the receiver is
/// [`SessionEvent::LoggedIn`]), or the error, e.g.
/// `DriverError::Ami(Error::LoginRefused { .. })` or
/// [`DriverError::Connect`]. When the connection ends later, the receiver
/// gets [`SessionEvent::Disconnected`] (with `retry_in` zero) then
/// [`SessionEvent::Stopped`].
pub async fn connect(
    config: DriverConfig,
) -> Result<(AmiHandle, mpsc::UnboundedReceiver<SessionEvent>), DriverError> {
    let (login, logged_in) = oneshot::channel();
    let (handle, events) = start(config, Some(login));
    match logged_in.await {
        Ok(Ok(())) => Ok((handle, events)),
        Ok(Err(e)) => Err(e),
        Err(_) => Err(DriverError::Stopped),
    }
}

fn start(
    config: DriverConfig,
    login: Option<oneshot::Sender<Result<(), DriverError>>>,
) -> (AmiHandle, mpsc::UnboundedReceiver<SessionEvent>) {
    let (commands, command_rx) = mpsc::unbounded_channel();
    let (event_tx, events) = mpsc::unbounded_channel();
    tokio::spawn(Task::new(config, event_tx, command_rx, login).run());
    (AmiHandle { commands }, events)
}
