//! The state the handle and the session tasks share: the PBX, the sessions,
//! the faults and the log of actions.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;

use crate::config::ManagerUser;
use crate::model::{Emitted, Pbx};
use crate::ReceivedAction;

/// Asterisk's default `writetimeout` (ms).
pub(crate) const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_millis(100);

/// What a session task is told to write.
#[derive(Debug)]
pub(crate) enum Out {
    Bytes(Vec<u8>),
    Close,
}

/// One TCP session, logged in or not.
#[derive(Debug)]
pub(crate) struct SessionEntry {
    pub tx: mpsc::UnboundedSender<Out>,
    pub logged_in: bool,
    pub readperm: i32,
    pub writeperm: i32,
    /// `send_events`: -1 (every class) until a mask is set.
    pub send_events: i32,
    pub challenge: Option<String>,
}

impl SessionEntry {
    pub fn new(tx: mpsc::UnboundedSender<Out>) -> Self {
        Self {
            tx,
            logged_in: false,
            readperm: 0,
            writeperm: 0,
            send_events: -1,
            challenge: None,
        }
    }

    /// `(readperm & class) == class && (send_events & class) == class`.
    pub fn wants(&self, class: i32) -> bool {
        self.logged_in && self.readperm & class == class && self.send_events & class == class
    }

    pub fn send(&self, bytes: impl Into<Vec<u8>>) {
        // a closed session drops what is sent to it
        let _ = self.tx.send(Out::Bytes(bytes.into()));
    }

    pub fn close(&self) {
        let _ = self.tx.send(Out::Close);
    }
}

/// Faults switched on by the tests.
#[derive(Debug)]
pub(crate) struct Faults {
    pub refuse_logins: bool,
    pub cut_list_after: Option<usize>,
    pub write_timeout: Duration,
}

/// Everything behind the lock.
#[derive(Debug)]
pub(crate) struct Inner {
    pub pbx: Pbx,
    pub users: Vec<ManagerUser>,
    pub sessions: BTreeMap<u64, SessionEntry>,
    pub next_session: u64,
    pub faults: Faults,
    pub actions: Vec<ReceivedAction>,
    /// `None` while shut down: connections are refused.
    pub listener: Option<Arc<tokio::net::TcpListener>>,
    pub accept_task: Option<JoinHandle<()>>,
    pub booted_at: Instant,
    pub challenges: std::collections::VecDeque<String>,
    pub stopped: bool,
}

impl Inner {
    /// Sends events to every logged-in session whose read permission and
    /// event mask include their class.
    pub fn broadcast(&self, events: &[Emitted]) {
        for ev in events {
            for s in self.sessions.values().filter(|s| s.wants(ev.class)) {
                s.send(ev.wire.as_bytes());
            }
        }
    }

    /// Logged-in sessions.
    pub fn logged_in(&self) -> usize {
        self.sessions.values().filter(|s| s.logged_in).count()
    }
}

/// The shared part of the emulator.
#[derive(Debug)]
pub(crate) struct Shared {
    inner: Mutex<Inner>,
    pub addr: SocketAddr,
    pub handle: tokio::runtime::Handle,
    /// Logged-in sessions, for `wait_sessions`.
    pub sessions_tx: watch::Sender<usize>,
    pub actions_tx: broadcast::Sender<ReceivedAction>,
}

impl Shared {
    pub fn new(inner: Inner, addr: SocketAddr, handle: tokio::runtime::Handle) -> Self {
        let (sessions_tx, _) = watch::channel(0);
        let (actions_tx, _) = broadcast::channel(4096);
        Self {
            inner: Mutex::new(inner),
            addr,
            handle,
            sessions_tx,
            actions_tx,
        }
    }

    /// The lock (a panic elsewhere does not make the state unusable).
    pub fn lock(&self) -> MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Publishes the number of logged-in sessions.
    pub fn publish_count(&self, inner: &Inner) {
        let n = inner.logged_in();
        self.sessions_tx.send_if_modified(|c| {
            let changed = *c != n;
            *c = n;
            changed
        });
    }

    /// Applies a model change and sends its events.
    pub fn change<R>(&self, f: impl FnOnce(&mut Pbx, &mut Vec<Emitted>) -> R) -> R {
        let mut inner = self.lock();
        let mut out = Vec::new();
        let r = f(&mut inner.pbx, &mut out);
        inner.broadcast(&out);
        r
    }
}
