//! A thin tokio driver: one UDP socket, the notifier's timers, a command
//! channel and an event channel. Feature `tokio` (on by default).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tokio::net::UdpSocket;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::config::NotifierConfig;
use crate::dialog::DialogSpec;
use crate::notifier::{Notifier, NotifierEvent, NotifierStats};
use crate::Error;

enum Command {
    SetLine(String, Vec<DialogSpec>),
    AddExtension(String),
    Stats(oneshot::Sender<NotifierStats>),
    Shutdown(oneshot::Sender<NotifierStats>),
}

/// Starts notifiers; see [`NotifierServer::start`].
#[derive(Debug)]
pub struct NotifierServer;

impl NotifierServer {
    /// Binds `bind` (e.g. `127.0.0.1:0`) and runs a [`Notifier`] on it in a
    /// tokio task.
    pub async fn start(config: NotifierConfig, bind: SocketAddr) -> Result<NotifierHandle, Error> {
        let socket = UdpSocket::bind(bind).await?;
        let local_addr = socket.local_addr()?;
        let notifier = Notifier::new(config, local_addr, Instant::now());
        let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = mpsc::unbounded_channel();
        let task = tokio::spawn(run(socket, notifier, cmd_rx, ev_tx));
        Ok(NotifierHandle {
            cmd: cmd_tx,
            events: Some(ev_rx),
            local_addr,
            task: Some(task),
        })
    }
}

/// Controls a running notifier. Dropping it stops the task (without final NOTIFYs).
#[derive(Debug)]
pub struct NotifierHandle {
    cmd: mpsc::UnboundedSender<Command>,
    events: Option<mpsc::UnboundedReceiver<NotifierEvent>>,
    local_addr: SocketAddr,
    task: Option<JoinHandle<()>>,
}

impl Drop for NotifierHandle {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl NotifierHandle {
    /// The address the notifier listens on (the PBX address for subscribers).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Replaces the dialogs of an extension; every subscriber gets a NOTIFY.
    pub fn set_line(
        &self,
        extension: impl Into<String>,
        dialogs: Vec<DialogSpec>,
    ) -> Result<(), Error> {
        self.cmd
            .send(Command::SetLine(extension.into(), dialogs))
            .map_err(|_| Error::Stopped)
    }

    /// Makes an extension known (idle), so SUBSCRIBEs to it are accepted.
    pub fn add_extension(&self, extension: impl Into<String>) -> Result<(), Error> {
        self.cmd
            .send(Command::AddExtension(extension.into()))
            .map_err(|_| Error::Stopped)
    }

    /// The counters now.
    pub async fn stats(&self) -> Result<NotifierStats, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Stats(tx))
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)
    }

    /// The next event; `None` once the notifier stopped (or after
    /// [`take_events`](Self::take_events)). Events queue up until read: with
    /// nobody reading, turn [`NotifierConfig::notify_events`] off.
    pub async fn next_event(&mut self) -> Option<NotifierEvent> {
        self.events.as_mut()?.recv().await
    }

    /// The event receiver, to read events in another task.
    pub fn take_events(&mut self) -> Option<mpsc::UnboundedReceiver<NotifierEvent>> {
        self.events.take()
    }

    /// Ends every subscription with a final NOTIFY, waits for their answers
    /// (at most `limit`), stops, and returns the last counters.
    pub async fn shutdown_within(mut self, limit: Duration) -> Result<NotifierStats, Error> {
        let (tx, rx) = oneshot::channel();
        self.cmd
            .send(Command::Shutdown(tx))
            .map_err(|_| Error::Stopped)?;
        let stats = tokio::time::timeout(limit, rx).await;
        if let Some(task) = self.task.take() {
            task.abort();
            let _ = task.await;
        }
        match stats {
            Ok(Ok(s)) => Ok(s),
            _ => Err(Error::Stopped),
        }
    }

    /// [`shutdown_within`](Self::shutdown_within) two seconds.
    pub async fn shutdown(self) -> Result<NotifierStats, Error> {
        self.shutdown_within(Duration::from_secs(2)).await
    }
}

async fn flush(
    socket: &UdpSocket,
    n: &mut Notifier,
    events: &mpsc::UnboundedSender<NotifierEvent>,
) {
    while let Some(t) = n.poll_transmit() {
        // A send error (e.g. ICMP unreachable reported late) is a lost datagram:
        // the transaction's retransmission and Timer F deal with it.
        let _ = socket.send_to(&t.payload, t.destination).await;
    }
    while let Some(e) = n.poll_event() {
        let _ = events.send(e);
    }
}

fn apply(n: &mut Notifier, cmd: Command, waiter: &mut Option<oneshot::Sender<NotifierStats>>) {
    let now = Instant::now();
    match cmd {
        Command::SetLine(ext, dialogs) => n.set_line(&ext, dialogs, now),
        Command::AddExtension(ext) => n.add_extension(&ext),
        Command::Stats(tx) => {
            let _ = tx.send(n.stats());
        }
        Command::Shutdown(tx) => {
            n.shutdown(now);
            *waiter = Some(tx);
        }
    }
}

async fn run(
    socket: UdpSocket,
    mut n: Notifier,
    mut cmds: mpsc::UnboundedReceiver<Command>,
    events: mpsc::UnboundedSender<NotifierEvent>,
) {
    let mut buf = vec![0u8; sip_proto::message::MAX_MESSAGE_SIZE + 1];
    let mut waiter: Option<oneshot::Sender<NotifierStats>> = None;
    loop {
        flush(&socket, &mut n, &events).await;
        if waiter.is_some() && n.is_shut_down() {
            if let Some(w) = waiter.take() {
                let _ = w.send(n.stats());
            }
            return;
        }
        let deadline = n.poll_timeout();
        let sleep = async {
            match deadline {
                Some(d) => tokio::time::sleep_until(tokio::time::Instant::from_std(d)).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            r = socket.recv_from(&mut buf) => {
                if let Ok((len, from)) = r {
                    if let Some(data) = buf.get(..len) {
                        n.handle_input(from, data, Instant::now());
                    }
                }
                // Take what else is queued before sending (fewer wake-ups under load).
                for _ in 0..256 {
                    match socket.try_recv_from(&mut buf) {
                        Ok((len, from)) => {
                            if let Some(data) = buf.get(..len) {
                                n.handle_input(from, data, Instant::now());
                            }
                        }
                        Err(_) => break,
                    }
                }
            }
            cmd = cmds.recv() => match cmd {
                Some(cmd) => {
                    apply(&mut n, cmd, &mut waiter);
                    for _ in 0..256 {
                        match cmds.try_recv() {
                            Ok(cmd) => apply(&mut n, cmd, &mut waiter),
                            Err(_) => break,
                        }
                    }
                }
                None => return,
            },
            () = sleep => n.handle_timeout(Instant::now()),
        }
    }
}
