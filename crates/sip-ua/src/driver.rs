//! A thin tokio driver around [`UserAgent`]: one socket, its timers, a command
//! channel and an event channel. Feature `tokio` (on by default).
//!
//! UDP: one socket for SIP and, if given, address discovery (STUN) to the same
//! NAT binding. TCP: one connection to the PBX, framed by `Content-Length`,
//! CRLF keep-alives (RFC 5626), reconnected with capped backoff when it drops
//! (registration and subscriptions are then refreshed over the new connection).
//! TLS: the same over a rustls stream, the PBX verified as
//! [`TlsConfig`](crate::tls::TlsConfig) says. The PBX sends its NOTIFYs back
//! on the connection we opened: `Contact` names the connection's own address
//! (or the one the PBX saw, through `received`/`rport`), which a PBX that
//! keeps its connections by remote address (Kamailio, Asterisk) reuses.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::{Subscription, Transport, UaConfig};
use crate::discovery::AddressDiscovery;
use crate::error::{ConfigError, Error, InvalidRequest};
use crate::framing::{Frame, StreamFramer};
use crate::message::MAX_MESSAGE_SIZE;
use crate::ua::{Event, MessageId, PublicationStatus, UaStatus, UserAgent};

mod events;
use events::{Counters, EventSink};
pub use events::{EventReceiver, EventStats, EventStatsReader};

enum Command {
    Shutdown(oneshot::Sender<()>),
    Add(Subscription),
    Remove(Subscription),
    Refresh(Subscription),
    Publish(String, Option<(String, Vec<u8>)>),
    Status(oneshot::Sender<UaStatus>),
    Publications(oneshot::Sender<Vec<PublicationStatus>>),
    Message(OutgoingMessage),
}

/// A MESSAGE for the task, and who waits for its outcome.
struct OutgoingMessage {
    to: String,
    content_type: String,
    body: Vec<u8>,
    reply: oneshot::Sender<Result<u16, MessageError>>,
}

/// The MESSAGEs in flight, by id: whom to tell their outcome.
type MessageWaiters = HashMap<MessageId, oneshot::Sender<Result<u16, MessageError>>>;

/// Why a MESSAGE sent with [`Messenger::send`] was not delivered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum MessageError {
    /// Refused before it was sent (recipient, content type, size).
    #[error("{0}")]
    Invalid(InvalidRequest),
    /// Sent, and refused or not answered ([`Event::MessageFailed`]).
    #[error("{reason}")]
    Failed {
        /// The final status; `408` on time-out, `None` when the user agent
        /// shut down before an answer came.
        status: Option<u16>,
        /// Plain-words reason.
        reason: String,
    },
    /// The user agent has stopped.
    #[error("the user agent has stopped")]
    Stopped,
}

/// Sends SIP MESSAGEs (RFC 3428) on a running user agent
/// ([`UaHandle::messenger`]); cheap to clone and to hand to another task.
#[derive(Debug, Clone)]
pub struct Messenger {
    cmd: mpsc::UnboundedSender<Command>,
}

impl Messenger {
    /// Sends `body` (of `content_type`) to `to` (a SIP URI) through the PBX
    /// and waits for the final answer: `Ok(status)` for a 2xx. A challenge
    /// is answered once; over UDP the request is retransmitted until Timer F
    /// (32 s by default), then it fails with status 408. See
    /// [`UserAgent::send_message`]; its events also reach the event channel.
    pub async fn send(
        &self,
        to: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> Result<u16, MessageError> {
        crate::ua::validate_message(to, content_type, &body).map_err(MessageError::Invalid)?;
        let (reply, rx) = oneshot::channel();
        self.cmd
            .send(Command::Message(OutgoingMessage {
                to: to.to_string(),
                content_type: content_type.to_string(),
                body,
                reply,
            }))
            .map_err(|_| MessageError::Stopped)?;
        rx.await.map_err(|_| MessageError::Stopped)?
    }
}

/// Controls a running user agent. Dropping it shuts the user agent down in the
/// background (un-SUBSCRIBE, un-REGISTER).
#[derive(Debug)]
pub struct UaHandle {
    cmd: mpsc::UnboundedSender<Command>,
    local_addr: SocketAddr,
    server_addr: SocketAddr,
    task: Option<JoinHandle<()>>,
    shutdown_limit: Duration,
    event_counters: std::sync::Arc<Counters>,
}

/// Publishes presence on a running user agent ([`UaHandle::publisher`]).
#[derive(Debug, Clone)]
pub struct Publisher {
    cmd: mpsc::UnboundedSender<Command>,
}

impl Publisher {
    /// As [`UaHandle::publish`]: `body` replaces the presentity's
    /// publication, `None` removes it.
    pub fn publish(&self, presentity: &str, body: Option<(String, Vec<u8>)>) -> Result<(), Error> {
        crate::ua::validate_publication(presentity, body.as_ref())?;
        self.cmd
            .send(Command::Publish(presentity.to_string(), body))
            .map_err(|_| Error::Stopped)
    }
}

impl UaHandle {
    /// What happened to events the reader was not ready for (see
    /// [`spawn`]'s back-pressure rule).
    pub fn event_stats(&self) -> EventStats {
        self.event_counters.snapshot()
    }

    /// Reads [`event_stats`](Self::event_stats) from elsewhere (e.g. a
    /// metrics exporter) without holding this handle.
    pub fn event_stats_reader(&self) -> EventStatsReader {
        EventStatsReader::new(self.event_counters.clone())
    }

    /// The local address of the SIP socket (or TCP connection).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// The PBX address in use.
    pub fn server_addr(&self) -> SocketAddr {
        self.server_addr
    }

    /// Subscribes to one more user and event package.
    pub fn add_subscription(&self, sub: Subscription) -> Result<(), Error> {
        self.cmd.send(Command::Add(sub)).map_err(|_| Error::Stopped)
    }

    /// Un-subscribes from a user's event package (a subscription to the
    /// same user for the other package stays).
    pub fn remove_subscription(&self, sub: Subscription) -> Result<(), Error> {
        self.cmd
            .send(Command::Remove(sub))
            .map_err(|_| Error::Stopped)
    }

    /// Re-SUBSCRIBEs in the dialog now, to get a NOTIFY with the full state
    /// (see [`UserAgent::refresh_subscription`]); nothing when no dialog is up.
    pub fn refresh_subscription(&self, sub: Subscription) -> Result<(), Error> {
        self.cmd
            .send(Command::Refresh(sub))
            .map_err(|_| Error::Stopped)
    }

    /// Publishes `body` (content type, bytes; e.g. `application/pidf+xml`) as
    /// the `presence` of `presentity` (a user name at the domain, or a SIP
    /// URI), replacing the previous one; `None` removes it (RFC 3903 PUBLISH,
    /// see [`UserAgent::publish`]). The outcome arrives on the event channel
    /// ([`Event::Published`], [`Event::PublicationRemoved`],
    /// [`Event::PublicationFailed`]). [`shutdown`](Self::shutdown) removes
    /// every publication.
    pub fn publish(&self, presentity: &str, body: Option<(String, Vec<u8>)>) -> Result<(), Error> {
        crate::ua::validate_publication(presentity, body.as_ref())?;
        self.cmd
            .send(Command::Publish(presentity.to_string(), body))
            .map_err(|_| Error::Stopped)
    }

    /// Removes the publication of `presentity` (`publish(presentity, None)`).
    pub fn unpublish(&self, presentity: &str) -> Result<(), Error> {
        self.publish(presentity, None)
    }

    /// A handle that only publishes, cheap to clone and to hand to another
    /// task (the user agent keeps running while this handle lives).
    pub fn publisher(&self) -> Publisher {
        Publisher {
            cmd: self.cmd.clone(),
        }
    }

    /// A handle that only sends MESSAGEs, cheap to clone and to hand to
    /// another task (the user agent keeps running while this handle lives).
    pub fn messenger(&self) -> Messenger {
        Messenger {
            cmd: self.cmd.clone(),
        }
    }

    /// Every publication, with the last error of each.
    pub async fn publications(&self) -> Result<Vec<PublicationStatus>, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Publications(tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// A snapshot of the registration and every subscription (with the last
    /// error of each, in plain words).
    pub async fn status(&self) -> Result<UaStatus, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Status(tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// Removes every publication, un-SUBSCRIBEs everything, un-REGISTERs and stops, within a bounded time
    /// (two Timer F periods, 65 s by default; the task is aborted after that).
    pub async fn shutdown(mut self) -> Result<(), Error> {
        let (tx, rx) = oneshot::channel();
        let sent = self.cmd.send(Command::Shutdown(tx)).is_ok();
        let task = self.task.take();
        if sent {
            let _ = tokio::time::timeout(self.shutdown_limit, rx).await;
        }
        if let Some(task) = task {
            if !task.is_finished() {
                task.abort();
            }
            let _ = task.await;
        }
        Ok(())
    }
}

/// Receive buffer asked for on the UDP socket (the kernel caps it at
/// `net.core.rmem_max`): the answers and first NOTIFYs for thousands of
/// subscriptions arrive in one burst, far more than the default ~200 KiB holds.
const UDP_RECV_BUFFER: usize = 4 * 1024 * 1024;

/// Most datagrams taken in a row before the timers are looked at again.
const MAX_BURST: usize = 256;

/// Longest time the events of a burst wait for the application while the
/// driver takes the rest of the burst (see `flush_udp`). At 2,000 NOTIFYs a
/// second, yielding after every message halved the NOTIFY→Graph p99 but
/// made a Graph call per NOTIFY, which at 15,000 a second cost the
/// notifier's side more than it had; this bound keeps both.
const YIELD_EVERY: Duration = Duration::from_micros(100);

fn bind_udp(addr: SocketAddr) -> Result<UdpSocket, Error> {
    let socket = socket2::Socket::new(
        socket2::Domain::for_address(addr),
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )?;
    // Best effort: a smaller buffer still works, it only drops more in a burst.
    let _ = socket.set_recv_buffer_size(UDP_RECV_BUFFER);
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    Ok(UdpSocket::from_std(socket.into())?)
}

/// Resolves `config.server` (first address).
pub async fn resolve_server(config: &UaConfig) -> Result<SocketAddr, Error> {
    let host = config.server_host().to_string();
    let port = config.server_port();
    let target = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    let mut addrs = tokio::net::lookup_host(target.clone())
        .await
        .map_err(|e| Error::Resolve {
            server: config.server.clone(),
            reason: e.to_string(),
        })?;
    addrs.next().ok_or_else(|| Error::Resolve {
        server: config.server.clone(),
        reason: "no address".into(),
    })
}

/// `127.0.0.1:0` / `[::1]:0` for a PBX on loopback, else `0.0.0.0:0` / `[::]:0`.
pub fn default_listen(server: SocketAddr) -> SocketAddr {
    match (server.ip().is_loopback(), server.is_ipv4()) {
        (true, true) => (Ipv4Addr::LOCALHOST, 0).into(),
        (true, false) => (Ipv6Addr::LOCALHOST, 0).into(),
        (false, true) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        (false, false) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    }
}

/// The local IP the OS would use towards `server` (no packet is sent).
fn route_source_ip(server: SocketAddr) -> Option<IpAddr> {
    let bind: SocketAddr = if server.is_ipv4() {
        (Ipv4Addr::UNSPECIFIED, 0).into()
    } else {
        (Ipv6Addr::UNSPECIFIED, 0).into()
    };
    let s = std::net::UdpSocket::bind(bind).ok()?;
    s.connect(server).ok()?;
    s.local_addr().ok().map(|a| a.ip())
}

fn concrete_local(bound: SocketAddr, server: SocketAddr) -> SocketAddr {
    if bound.ip().is_unspecified() {
        if let Some(ip) = route_source_ip(server) {
            return SocketAddr::new(ip, bound.port());
        }
    }
    bound
}

/// Starts the user agent on a tokio runtime: binds the socket (or connects),
/// registers and subscribes. Events arrive on the returned receiver.
///
/// # Back-pressure
///
/// The receiver is bounded ([`UaConfig::event_capacity`], 1024 by
/// default), and the driver never waits for it: the socket is always read
/// and answered, so a slow reader never makes the PBX retransmit. When the
/// channel is full, a NOTIFY is kept aside, one per subscription, a newer one
/// replacing it; any other event waits in a backlog of at most the capacity,
/// whose oldest entry is dropped when it is full. Waiting events go out,
/// oldest first, as soon as the reader makes room. Every delayed, replaced
/// or dropped event is counted in [`UaHandle::event_stats`]. A reader that
/// sees `notifies_replaced` or `dropped` grow can re-read the state with
/// [`UaHandle::refresh_subscription`].
pub async fn spawn(
    config: UaConfig,
    subscriptions: Vec<Subscription>,
    discovery: Option<Box<dyn AddressDiscovery>>,
) -> Result<(UaHandle, EventReceiver), Error> {
    if config.username.is_empty() {
        return Err(ConfigError::EmptyUsername.into());
    }
    if config.event_capacity == 0 {
        return Err(ConfigError::ZeroEventCapacity.into());
    }
    let server = resolve_server(&config).await?;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx, event_counters) = EventSink::new(config.event_capacity);
    let shutdown_limit = config.timers.timer_f() * 2 + Duration::from_secs(1);
    let (local_addr, task) = match config.transport {
        Transport::Udp => {
            let bind = config.listen.unwrap_or_else(|| default_listen(server));
            let socket = bind_udp(bind)?;
            let local = concrete_local(socket.local_addr()?, server);
            let mut ua = UserAgent::new(config, server, local, subscriptions, Instant::now());
            if let Some(d) = discovery {
                ua.set_discovery(d);
            }
            let task = tokio::spawn(run_udp(ua, socket, cmd_rx, ev_tx));
            (local, task)
        }
        Transport::Tcp | Transport::Tls => {
            let connector = Connector::new(&config, server)?;
            let (stream, local, early) = connector.connect().await?;
            let ua = UserAgent::new(config, server, local, subscriptions, Instant::now());
            let first = Connection { stream, early };
            let task = tokio::spawn(run_tcp(ua, connector, first, cmd_rx, ev_tx));
            (local, task)
        }
    };
    Ok((
        UaHandle {
            cmd: cmd_tx,
            local_addr,
            server_addr: server,
            task: Some(task),
            shutdown_limit,
            event_counters,
        },
        ev_rx,
    ))
}

/// Applies one command from the handle; returns whether the command channel
/// is still open (a dropped handle shuts the agent down).
fn handle_command(
    ua: &mut UserAgent,
    command: Option<Command>,
    waiters: &mut Vec<oneshot::Sender<()>>,
    messages: &mut MessageWaiters,
) -> bool {
    match command {
        Some(Command::Shutdown(w)) => {
            waiters.push(w);
            ua.shutdown(Instant::now());
        }
        Some(Command::Add(s)) => ua.add_subscription(s, Instant::now()),
        Some(Command::Remove(s)) => ua.remove_subscription(&s.user, s.package, Instant::now()),
        Some(Command::Refresh(s)) => {
            ua.refresh_subscription(&s.user, s.package, Instant::now());
        }
        Some(Command::Publish(presentity, body)) => {
            if let Err(e) = ua.publish(&presentity, body, Instant::now()) {
                tracing::debug!(error = %e, %presentity, "publication not taken");
            }
        }
        Some(Command::Status(reply)) => {
            let _ = reply.send(ua.status());
        }
        Some(Command::Publications(reply)) => {
            let _ = reply.send(ua.publications());
        }
        Some(Command::Message(m)) => {
            match ua.send_message(&m.to, &m.content_type, m.body, Instant::now()) {
                Ok(id) => {
                    messages.insert(id, m.reply);
                }
                Err(Error::Stopped) => {
                    let _ = m.reply.send(Err(MessageError::Stopped));
                }
                Err(Error::InvalidRequest(e)) => {
                    let _ = m.reply.send(Err(MessageError::Invalid(e)));
                }
                Err(e) => {
                    let _ = m.reply.send(Err(MessageError::Failed {
                        status: None,
                        reason: e.to_string(),
                    }));
                }
            }
        }
        None => {
            ua.shutdown(Instant::now());
            return false;
        }
    }
    true
}

/// Hands the user agent's events to the application; whether there were any.
fn deliver(ua: &mut UserAgent, events: &mut EventSink, messages: &mut MessageWaiters) -> bool {
    let mut any = false;
    while let Some(e) = ua.poll_event() {
        tracing::debug!(event = ?e, "sip-ua event");
        let outcome = match &e {
            Event::MessageDelivered { id, status, .. } => Some((*id, Ok(*status))),
            Event::MessageFailed {
                id, status, reason, ..
            } => Some((
                *id,
                Err(MessageError::Failed {
                    status: *status,
                    reason: reason.clone(),
                }),
            )),
            _ => None,
        };
        if let Some((id, result)) = outcome {
            if let Some(waiter) = messages.remove(&id) {
                let _ = waiter.send(result);
            }
        }
        events.send(e);
        any = true;
    }
    any
}

fn far_future() -> tokio::time::Instant {
    tokio::time::Instant::now() + Duration::from_secs(3600)
}

/// Delivers the events and sends what the user agent has to send, then
/// lets the application act on the events: tokio keeps the task an event
/// wakes on the waking worker, where no other worker can take it, so it
/// runs only when this task yields. The first message of a burst (`first`:
/// the socket had been drained) is acted on at once; within a burst, every
/// [`YIELD_EVERY`], so that the application takes the burst's events a few
/// at a time (and sends them in few Graph calls) instead of one by one.
async fn flush_udp(
    ua: &mut UserAgent,
    socket: &UdpSocket,
    events: &mut EventSink,
    waiting: &mut Option<Instant>,
    first: bool,
    messages: &mut MessageWaiters,
) {
    if deliver(ua, events, messages) && waiting.is_none() {
        *waiting = Some(Instant::now());
    }
    while let Some(t) = ua.poll_transmit() {
        if let Err(e) = socket.send_to(&t.payload, t.destination).await {
            tracing::debug!(error = %e, to = %t.destination, "send failed");
        }
    }
    if waiting.is_some_and(|since| first || since.elapsed() >= YIELD_EVERY) {
        *waiting = None;
        tokio::task::yield_now().await;
    }
}

async fn run_udp(
    mut ua: UserAgent,
    socket: UdpSocket,
    mut cmds: mpsc::UnboundedReceiver<Command>,
    mut events: EventSink,
) {
    let mut buf = vec![0u8; MAX_MESSAGE_SIZE + 1];
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let mut messages = MessageWaiters::new();
    let mut cmds_open = true;
    // Since when delivered events wait for this task to let their reader run.
    let mut waiting: Option<Instant> = None;
    loop {
        flush_udp(
            &mut ua,
            &socket,
            &mut events,
            &mut waiting,
            false,
            &mut messages,
        )
        .await;
        if ua.is_shut_down() {
            break;
        }
        let deadline = ua
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(far_future);
        let first = tokio::select! {
            r = socket.recv_from(&mut buf) => match r {
                Ok((n, from)) => Some((n, from, Instant::now())),
                Err(e) => {
                    // ICMP errors surface here on some systems; never spin on them.
                    tracing::debug!(error = %e, "recv failed");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                    None
                }
            },
            _ = tokio::time::sleep_until(deadline) => {
                ua.handle_timeout(Instant::now());
                None
            }
            c = cmds.recv(), if cmds_open => {
                cmds_open = handle_command(&mut ua, c, &mut waiters, &mut messages);
                None
            }
            _ = events.room(), if events.has_waiting() => None,
        };
        // Take what else is queued before the timers are looked at again
        // (a burst would otherwise overflow the socket), answering and
        // delivering each message as it is taken.
        let mut next = first;
        let mut taken = 0;
        while let Some((n, from, now)) = next {
            if let Some(data) = buf.get(..n) {
                ua.handle_input(from, data, now);
            }
            taken += 1;
            if taken >= MAX_BURST {
                break;
            }
            flush_udp(
                &mut ua,
                &socket,
                &mut events,
                &mut waiting,
                taken == 1,
                &mut messages,
            )
            .await;
            next = socket
                .try_recv_from(&mut buf)
                .ok()
                .map(|(n, from)| (n, from, Instant::now()));
            if next.is_none() {
                // The socket is drained: the select below lets them run.
                waiting = None;
            }
        }
    }
    for w in waiters {
        let _ = w.send(());
    }
}

/// A TCP or TLS stream to the PBX.
trait SipStream: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> SipStream for T {}

/// Opens the stream to the PBX, first and after every drop.
struct Connector {
    listen: Option<SocketAddr>,
    server: SocketAddr,
    tls: Option<crate::tls::TlsDialer>,
}

impl Connector {
    fn new(config: &UaConfig, server: SocketAddr) -> Result<Self, Error> {
        let tls = if config.transport == Transport::Tls {
            if config.tls.insecure_skip_verify {
                tracing::warn!(
                    server = %config.server,
                    "the PBX's TLS certificate is NOT verified (insecure_skip_verify): \
                     anyone on the path can read and change the SIP traffic"
                );
            }
            Some(crate::tls::TlsDialer::new(config)?)
        } else {
            None
        };
        Ok(Self {
            listen: config.listen,
            server,
            tls,
        })
    }

    /// A new connection, its local address, and what the PBX already sent
    /// on it.
    async fn connect(&self) -> Result<(Box<dyn SipStream>, SocketAddr, Vec<u8>), Error> {
        let tcp = connect_tcp(self.listen, self.server).await?;
        let local = tcp.local_addr()?;
        let Some(tls) = &self.tls else {
            return Ok((Box::new(tcp), local, Vec::new()));
        };
        let (stream, early) = tls.connect(tcp, CONNECT_TIMEOUT).await?;
        Ok((Box::new(stream), local, early))
    }
}

/// Longest wait for a TCP connect, and then for a TLS handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

async fn connect_tcp(listen: Option<SocketAddr>, server: SocketAddr) -> Result<TcpStream, Error> {
    let socket = if server.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(l) = listen {
        socket.set_reuseaddr(true)?;
        socket.bind(l)?;
    }
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, socket.connect(server))
        .await
        .map_err(|_| Error::Io(std::io::Error::from(std::io::ErrorKind::TimedOut)))??;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A stream just opened, and what the PBX sent on it during the set-up.
struct Connection {
    stream: Box<dyn SipStream>,
    early: Vec<u8>,
}

/// Hands what was read to the user agent, message by message; `false`: the
/// stream cannot be framed (it is then reconnected).
fn take_input(ua: &mut UserAgent, framer: &mut StreamFramer, data: &[u8]) -> bool {
    let server = ua.server_addr();
    framer.push(data);
    loop {
        match framer.next_frame() {
            Ok(Some(Frame::Message(m))) => ua.handle_input(server, &m, Instant::now()),
            Ok(Some(Frame::Ping)) => ua.handle_input(server, b"\r\n\r\n", Instant::now()),
            Ok(Some(Frame::Pong)) => ua.handle_input(server, b"\r\n", Instant::now()),
            // A kind of keep-alive a newer sip-proto tells apart: nothing to do.
            Ok(Some(_)) => {}
            Ok(None) => return true,
            Err(e) => {
                tracing::debug!(error = %e, "unframeable TCP stream, reconnecting");
                return false;
            }
        }
    }
}

async fn run_tcp(
    mut ua: UserAgent,
    connector: Connector,
    first: Connection,
    mut cmds: mpsc::UnboundedReceiver<Command>,
    mut events: EventSink,
) {
    let mut stream = Some(first.stream);
    let mut framer = StreamFramer::new();
    if !take_input(&mut ua, &mut framer, &first.early) {
        stream = None;
    }
    let mut buf = vec![0u8; 16 * 1024];
    let mut waiters: Vec<oneshot::Sender<()>> = Vec::new();
    let mut messages = MessageWaiters::new();
    let mut cmds_open = true;
    let mut reconnect_failures: u32 = 0;
    let mut reconnect_at: Option<tokio::time::Instant> = None;
    loop {
        // Send what is queued; a write error drops the connection.
        deliver(&mut ua, &mut events, &mut messages);
        let mut wrote = false;
        while let Some(t) = ua.poll_transmit() {
            if let Some(s) = stream.as_mut() {
                if let Err(e) = s.write_all(&t.payload).await {
                    tracing::debug!(error = %e, "TCP write failed");
                    stream = None;
                }
                wrote = true;
            }
        }
        // TLS buffers records until flushed.
        if let (true, Some(s)) = (wrote, stream.as_mut()) {
            if let Err(e) = s.flush().await {
                tracing::debug!(error = %e, "TCP flush failed");
                stream = None;
            }
        }
        if ua.is_shut_down() {
            break;
        }
        if ua.take_transport_failure() {
            stream = None;
        }
        if stream.is_none() && reconnect_at.is_none() {
            if ua.is_shutting_down() {
                // Nothing can be sent any more: give up cleanly.
                break;
            }
            reconnect_failures += 1;
            let secs = 1u64 << reconnect_failures.min(6);
            reconnect_at = Some(tokio::time::Instant::now() + Duration::from_secs(secs));
            framer = StreamFramer::new();
        }
        let deadline = ua
            .poll_timeout()
            .map(tokio::time::Instant::from_std)
            .unwrap_or_else(far_future);
        let reconnect_deadline = reconnect_at.unwrap_or_else(far_future);
        tokio::select! {
            r = async {
                match stream.as_mut() {
                    Some(s) => s.read(&mut buf).await,
                    None => std::future::pending().await,
                }
            } => match r {
                Ok(0) | Err(_) => {
                    tracing::debug!("TCP connection to the PBX closed");
                    stream = None;
                }
                Ok(n) => {
                    if !take_input(&mut ua, &mut framer, buf.get(..n).unwrap_or(&[])) {
                        stream = None;
                    }
                }
            },
            _ = tokio::time::sleep_until(reconnect_deadline), if reconnect_at.is_some() => {
                reconnect_at = None;
                match connector.connect().await {
                    Ok((s, local, early)) => {
                        ua.set_local_addr(local, Instant::now());
                        stream = Some(s);
                        reconnect_failures = 0;
                        ua.handle_transport_reset(Instant::now());
                        if !take_input(&mut ua, &mut framer, &early) {
                            stream = None;
                        }
                    }
                    // A refused certificate needs the admin: say so every time.
                    Err(e @ Error::Tls(_)) => tracing::warn!(error = %e, "TLS reconnect to the PBX refused"),
                    Err(e) => tracing::debug!(error = %e, "TCP reconnect failed"),
                }
            }
            _ = tokio::time::sleep_until(deadline) => ua.handle_timeout(Instant::now()),
            c = cmds.recv(), if cmds_open => {
                cmds_open = handle_command(&mut ua, c, &mut waiters, &mut messages);
            }
            _ = events.room(), if events.has_waiting() => {}
        }
    }
    for w in waiters {
        let _ = w.send(());
    }
}
