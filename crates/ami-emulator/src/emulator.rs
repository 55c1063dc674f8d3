//! The handle: start, PBX changes, observation.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;
use tokio::sync::broadcast;

use crate::config::EmulatorConfig;
use crate::model::Pbx;
use crate::queues::QueueMemberInfo;
use crate::request::Request;
use crate::session::accept_loop;
use crate::shared::{Faults, Inner, Shared, DEFAULT_WRITE_TIMEOUT};
use crate::state::DeviceState;
use crate::transcript::read_transcript;

/// A call made with [`AmiEmulator::call`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct CallId(pub(crate) u64);

/// An action the emulator received, with `Secret` and `Key` redacted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceivedAction {
    /// The session it came on (numbered from 0 in accept order).
    pub session: u64,
    /// The `Action:` value as sent (empty when missing).
    pub name: String,
    /// Every line as `(name, value)`, in order (`Action` included).
    pub fields: Vec<(String, String)>,
}

impl ReceivedAction {
    pub(crate) fn from_request(session: u64, req: &Request) -> Self {
        let fields = req
            .fields()
            .into_iter()
            .map(|(k, v)| {
                if k.eq_ignore_ascii_case("Secret") || k.eq_ignore_ascii_case("Key") {
                    (k, "<redacted>".to_string())
                } else {
                    (k, v)
                }
            })
            .collect();
        Self {
            session,
            name: req.header("Action").to_string(),
            fields,
        }
    }

    /// The first field named `key` (ASCII case ignored).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(key))
            .map(|(_, v)| v.as_str())
    }

    /// Whether it is the action `name` (ASCII case ignored).
    pub fn is(&self, name: &str) -> bool {
        self.name.eq_ignore_ascii_case(name)
    }
}

/// The emulator: a clone-able handle; the server runs in tokio tasks.
#[derive(Debug, Clone)]
pub struct AmiEmulator {
    shared: Arc<Shared>,
}

fn spawn_listener(shared: &Arc<Shared>, listener: TcpListener) {
    let listener = Arc::new(listener);
    let task = shared
        .handle
        .spawn(accept_loop(shared.clone(), listener.clone()));
    let mut inner = shared.lock();
    inner.listener = Some(listener);
    inner.accept_task = Some(task);
}

impl AmiEmulator {
    /// Starts listening on `127.0.0.1:<ephemeral port>` (needs a tokio runtime).
    pub async fn start(config: EmulatorConfig) -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let base = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let mut pbx = Pbx::new(
            config
                .hints
                .into_iter()
                .map(|h| (h.exten, h.context, h.hint)),
            config.context,
            base,
        );
        // no session yet: the events of the set-up go nowhere
        let mut setup = Vec::new();
        for q in &config.queues {
            pbx.add_queue(&q.name);
            for exten in &q.static_members {
                pbx.add_queue_member(&q.name, exten, false, &mut setup);
            }
        }
        let inner = Inner {
            pbx,
            users: config.users,
            sessions: Default::default(),
            next_session: 0,
            faults: Faults {
                refuse_logins: false,
                cut_list_after: None,
                write_timeout: DEFAULT_WRITE_TIMEOUT,
            },
            actions: Vec::new(),
            listener: None,
            accept_task: None,
            booted_at: Instant::now(),
            challenges: config.challenges.into(),
            stopped: false,
        };
        let shared = Arc::new(Shared::new(inner, addr, tokio::runtime::Handle::current()));
        spawn_listener(&shared, listener);
        Ok(Self { shared })
    }

    /// The listening address (`127.0.0.1:<port>`); the same after [`AmiEmulator::boot`].
    pub fn addr(&self) -> SocketAddr {
        self.shared.addr
    }

    /// A phone registers: `PeerStatus` Reachable, `ContactStatus` NonQualified,
    /// `DeviceStateChange` NOT_INUSE, `ExtensionStatus` of its hints.
    pub fn register(&self, exten: &str) {
        self.shared.change(|p, out| p.register(exten, out));
    }

    /// A phone un-registers: `PeerStatus` Unreachable, `ContactStatus` Removed,
    /// `DeviceStateChange` UNAVAILABLE, `ExtensionStatus` 4 (unless another
    /// device of the hint, e.g. DND, outranks it).
    pub fn unregister(&self, exten: &str) {
        self.shared.change(|p, out| p.unregister(exten, out));
    }

    /// `from` calls `to`: `Newchannel` ×2, `Newstate` Ringing, then
    /// `to` RINGING / `ExtensionStatus` 8 and `from` INUSE / 1.
    pub fn call(&self, from: &str, to: &str) -> CallId {
        CallId(self.shared.change(|p, out| p.call(from, to, out)))
    }

    /// The callee answers: `Newstate` Up ×2, `to` INUSE / 1.
    pub fn answer(&self, call: CallId) {
        self.shared.change(|p, out| p.answer(call.0, out));
    }

    /// The caller holds: `Hold`, `MusicOnHoldStart`, the held party (callee)
    /// ONHOLD / `ExtensionStatus` 16.
    pub fn hold(&self, call: CallId) {
        self.shared.change(|p, out| p.hold(call.0, true, out));
    }

    /// The caller resumes: `Unhold`, `MusicOnHoldStop`, the callee INUSE / 1.
    pub fn unhold(&self, call: CallId) {
        self.shared.change(|p, out| p.hold(call.0, false, out));
    }

    /// Hang-up: `Hangup` ×2 (Cause 16), both devices back to NOT_INUSE / 0.
    pub fn hangup(&self, call: CallId) {
        self.shared.change(|p, out| p.hangup(call.0, out));
    }

    /// A device state change from anywhere: `DeviceStateChange`, then
    /// `ExtensionStatus` for each hint whose status changes.
    pub fn set_device_state(&self, device: &str, state: DeviceState) {
        self.shared
            .change(|p, out| p.publish_device(device, state, true, out));
    }

    /// DND the FreePBX way: astdb `DND/<exten>` = `YES` (deleted when off),
    /// `Custom:DND<exten>` BUSY / UNAVAILABLE (astdb `CustomDevstate` too).
    pub fn set_dnd(&self, exten: &str, on: bool) {
        self.shared.change(|p, out| p.set_dnd(exten, on, out));
    }

    /// Removes the hints of `exten`: later `ExtensionStateList`s lack it; no event.
    pub fn remove_hint(&self, exten: &str) {
        self.shared.change(|p, _| p.remove_hint(exten));
    }

    /// Adds (or replaces) a hint in the configured context; `ExtensionStatus` for it.
    pub fn add_hint(&self, exten: &str, hint: &str) {
        self.shared.change(|p, out| {
            let context = p.default_context.clone();
            p.add_hint(exten, &context, hint, out);
        });
    }

    /// `exten` joins `queue` as a dynamic member, the FreePBX way
    /// (`AddQueueMember`: interface `Local/<exten>@from-queue/n`, state
    /// interface `PJSIP/<exten>`, name `Ext <exten>`; the queue is created if
    /// missing): `DeviceStateChange` `Queue:<queue>_pause_<interface>`
    /// NOT_INUSE, then `QueueMemberAdded`. Nothing if it is a member already.
    pub fn add_queue_member(&self, queue: &str, exten: &str) {
        self.shared
            .change(|p, out| p.add_queue_member(queue, exten, true, out));
    }

    /// `exten` leaves `queue`: `QueueMemberRemoved`. Nothing for a static
    /// member (`RemoveQueueMember` answers `NOTDYNAMIC`) or a non-member.
    pub fn remove_queue_member(&self, queue: &str, exten: &str) {
        self.shared
            .change(|p, out| p.remove_queue_member(queue, exten, out));
    }

    /// Pauses (`paused`, with `reason`, e.g. `lunch`) or unpauses `exten` in
    /// `queue`: `DeviceStateChange` `Queue:<queue>_pause_<interface>` INUSE /
    /// NOT_INUSE when it changes, `QueueMemberPause`, then
    /// `QueueMemberStatus`. The reason is cleared on unpause.
    pub fn pause_queue_member(&self, queue: &str, exten: &str, paused: bool, reason: &str) {
        self.shared
            .change(|p, out| p.pause_queue_member(queue, exten, paused, reason, out));
    }

    /// The member `exten` of `queue` (queue name ignoring case), if it is one.
    pub fn queue_member(&self, queue: &str, exten: &str) -> Option<QueueMemberInfo> {
        self.shared.lock().pbx.queue_member(queue, exten)
    }

    /// An astdb value.
    pub fn db_get(&self, family: &str, key: &str) -> Option<String> {
        self.shared
            .lock()
            .pbx
            .db
            .get(&(family.to_string(), key.to_string()))
            .cloned()
    }

    /// Writes an astdb value (no event, as `DBPut`).
    pub fn db_put(&self, family: &str, key: &str, value: &str) {
        self.shared
            .lock()
            .pbx
            .db
            .insert((family.to_string(), key.to_string()), value.to_string());
    }

    /// The state of a device (`UNKNOWN` for a `Custom:` never set, `INVALID`
    /// for a `PJSIP/` endpoint that does not exist).
    pub fn device_state(&self, device: &str) -> DeviceState {
        self.shared.lock().pbx.device_state(device)
    }

    /// The `Status` number of the (first) hint of `exten`.
    pub fn extension_status(&self, exten: &str) -> Option<i32> {
        let inner = self.shared.lock();
        let status = inner
            .pbx
            .hints
            .iter()
            .find(|h| h.exten == exten)
            .map(|h| h.status);
        status
    }

    /// Writes raw bytes to every connected session (garbage, oversized lines...).
    pub fn send_raw(&self, bytes: &[u8]) {
        for s in self.shared.lock().sessions.values() {
            s.send(bytes);
        }
    }

    /// Sends the server messages of a recorded transcript (banners left out)
    /// verbatim to every session; returns how many.
    pub fn replay_transcript(&self, path: impl AsRef<Path>) -> std::io::Result<usize> {
        let messages = read_transcript(path)?;
        let mut n = 0;
        for m in messages
            .iter()
            .filter(|m| !m.starts_with("Asterisk Call Manager"))
        {
            self.send_raw(m.as_bytes());
            n += 1;
        }
        Ok(n)
    }

    /// Refuses every login (`Authentication failed` after 1 s, then the
    /// connection closes), as a wrong secret is.
    pub fn refuse_logins(&self, on: bool) {
        self.shared.lock().faults.refuse_logins = on;
    }

    /// The next list reply stops after `items` items (no `...Complete`) and
    /// the connection closes.
    pub fn cut_next_list_after(&self, items: usize) {
        self.shared.lock().faults.cut_list_after = Some(items);
    }

    /// Asterisk stops: `Shutdown` (`Cleanly`, or `Uncleanly` with calls up) to
    /// the sessions, every session closes, connections are refused until
    /// [`AmiEmulator::boot`].
    pub fn shutdown(&self, restart: bool) {
        let mut inner = self.shared.lock();
        let how = if inner.pbx.channels.is_empty() {
            "Cleanly"
        } else {
            "Uncleanly"
        };
        let event = crate::model::Emitted {
            class: crate::wire::SYSTEM,
            wire: crate::wire::Msg::event("Shutdown", crate::wire::SYSTEM)
                .h("Shutdown", how)
                .h("Restart", if restart { "True" } else { "False" })
                .done(),
        };
        inner.broadcast(&[event]);
        close_listener(&mut inner);
        for s in inner.sessions.values() {
            s.close();
        }
    }

    /// Asterisk is up again on the same address; logins get `FullyBooted`.
    /// Does nothing if it is not shut down.
    pub fn boot(&self) {
        let mut inner = self.shared.lock();
        if inner.listener.is_some() || inner.stopped {
            return;
        }
        inner.booted_at = Instant::now();
        drop(inner);
        let shared = self.shared.clone();
        let bound = {
            let _rt = shared.handle.enter();
            std::net::TcpListener::bind(shared.addr)
                .and_then(|l| l.set_nonblocking(true).map(|()| l))
                .and_then(TcpListener::from_std)
        };
        match bound {
            Ok(listener) => spawn_listener(&shared, listener),
            Err(_) => {
                // the old socket is not gone yet: bind as soon as it is
                shared.handle.clone().spawn(async move {
                    loop {
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        if let Ok(l) = TcpListener::bind(shared.addr).await {
                            spawn_listener(&shared, l);
                            return;
                        }
                    }
                });
            }
        }
    }

    /// An outage: every session closes at once; the listener stays.
    pub fn drop_connections(&self) {
        for s in self.shared.lock().sessions.values() {
            s.close();
        }
    }

    /// The write time-out of every session (Asterisk: 100 ms): a session
    /// whose write blocks longer (a slow reader) is closed.
    pub fn set_write_timeout(&self, timeout: Duration) {
        self.shared.lock().faults.write_timeout = timeout;
    }

    /// Logged-in sessions now.
    pub fn sessions(&self) -> usize {
        self.shared.lock().logged_in()
    }

    /// Resolves when exactly `n` sessions are logged in.
    pub async fn wait_sessions(&self, n: usize) {
        let mut rx = self.shared.sessions_tx.subscribe();
        let _ = rx.wait_for(|c| *c == n).await;
    }

    /// Every action received so far, in order.
    pub fn actions(&self) -> Vec<ReceivedAction> {
        self.shared.lock().actions.clone()
    }

    /// Actions as they are received (from now on).
    pub fn subscribe_actions(&self) -> broadcast::Receiver<ReceivedAction> {
        self.shared.actions_tx.subscribe()
    }

    /// Stops listening and closes every session; resolves once no session is
    /// logged in.
    pub async fn stop(self) {
        {
            let mut inner = self.shared.lock();
            inner.stopped = true;
            close_listener(&mut inner);
            for s in inner.sessions.values() {
                s.close();
            }
        }
        self.wait_sessions(0).await;
    }
}

/// Stops listening at once: new connections are refused (`shutdown(2)` on
/// the listening socket takes effect before the accept task is gone).
fn close_listener(inner: &mut Inner) {
    if let Some(l) = inner.listener.take() {
        let _ = socket2::SockRef::from(&*l).shutdown(std::net::Shutdown::Both);
    }
    if let Some(t) = inner.accept_task.take() {
        t.abort();
    }
}
