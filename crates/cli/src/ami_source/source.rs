//! The running AMI source: the `ami` driver's connection, the full state read
//! at every login, events through the [`AmiTracker`], and the rules for an
//! outage (every line `unknown` after `AMI_STALE_AFTER`).

use std::collections::VecDeque;
use std::time::Duration;

use ami::driver::{AmiHandle, DriverConfig, DriverError, SessionEvent};
use ami::{Action, Event};
use futures_util::StreamExt;
use sip_blf_engine::{Observation, Source};
use tokio::sync::{mpsc, watch};
use tokio::time::Instant;

use super::tracker::Lists;
use super::{AmiSettings, AmiTracker};
use crate::sip_source::PBX;

/// How many `DBGet`s may wait for their answer at once.
const DBGET_WINDOW: usize = 64;

/// A failed full-state read is tried again after this long.
const RESYNC_RETRY: Duration = Duration::from_secs(5);

/// What a full-state read gathered.
#[derive(Debug, Default)]
pub struct FullState {
    /// `ExtensionStateList`'s items.
    pub hints: Vec<Event>,
    /// `DeviceStateList`'s items (none when the PBX lacks
    /// `res_manager_devicestate`).
    pub devices: Vec<Event>,
    /// astdb's DND flag of each extension read.
    pub dnd: Vec<(String, bool)>,
    /// `QueueStatus`'s `QueueMember` items (none without `app_queue`).
    pub members: Vec<Event>,
    /// Why the hints are missing, when the PBX refused the list.
    pub hints_refused: Option<String>,
}

impl FullState {
    /// The lists, as the tracker takes them.
    pub fn lists(&self) -> Lists<'_> {
        Lists {
            hints: &self.hints,
            devices: &self.devices,
            dnd_flags: &self.dnd,
            members: &self.members,
        }
    }
}

/// Reads the full state: every hint, every device state, and when the
/// scheme has an astdb family, each extension's DND flag.
pub async fn read_full_state(
    handle: &AmiHandle,
    extensions: &[String],
    db_family: Option<&str>,
) -> Result<FullState, DriverError> {
    let mut state = FullState::default();
    let hints = handle.list(Action::extension_state_list()).await?;
    if let Some(e) = hints.error {
        return Err(DriverError::Ami(e));
    }
    if hints.response.is_success() {
        state.hints = hints.items;
    } else {
        // "No dialplan hints are available", or a permission problem.
        state.hints_refused = Some(hints.response.text().unwrap_or("refused").to_owned());
    }
    let devices = handle.list(Action::device_state_list()).await?;
    if let Some(e) = devices.error {
        return Err(DriverError::Ami(e));
    }
    state.devices = devices.items;
    let queues = handle.list(Action::new("QueueStatus")).await?;
    if let Some(e) = queues.error {
        return Err(DriverError::Ami(e));
    }
    state.members = queues
        .items
        .into_iter()
        .filter(|e| e.is("QueueMember"))
        .collect();
    if let Some(family) = db_family {
        state.dnd = read_dnd_flags(handle, extensions, family).await?;
    }
    Ok(state)
}

/// Each extension's astdb flag in `family` (set and not `NO`/empty = on).
pub async fn read_dnd_flags(
    handle: &AmiHandle,
    extensions: &[String],
    family: &str,
) -> Result<Vec<(String, bool)>, DriverError> {
    let reads = futures_util::stream::iter(extensions.iter().cloned())
        .map(|extension| async move {
            let list = handle.list(Action::db_get(family, &extension)).await?;
            if let Some(e) = list.error {
                return Err(DriverError::Ami(e));
            }
            let on = list
                .items
                .first()
                .and_then(|item| item.get("Val"))
                .is_some_and(dnd_value_is_on);
            Ok((extension, on))
        })
        .buffer_unordered(DBGET_WINDOW);
    reads.collect::<Vec<_>>().await.into_iter().collect()
}

/// FreePBX writes `YES` and deletes the key for off; its dial plan treats
/// any non-empty value as DND.
fn dnd_value_is_on(value: &str) -> bool {
    let v = value.trim();
    !v.is_empty() && !v.eq_ignore_ascii_case("no")
}

/// How the AMI connection is doing (for `/status`, readiness and the SIP
/// source's gate when both run).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AmiStatus {
    /// Logged in and the full state read: AMI speaks for every extension.
    pub current: bool,
    /// The AMI version from the banner.
    pub version: Option<String>,
    /// The last connection problem, if the connection is down.
    pub problem: Option<String>,
}

/// The AMI source: observations about every listed extension on [`PBX`].
pub struct AmiSource {
    handle: AmiHandle,
    events: mpsc::UnboundedReceiver<SessionEvent>,
    tracker: AmiTracker,
    extensions: Vec<String>,
    stale_after: Option<Duration>,
    dnd_refresh: Option<Duration>,
    queued: VecDeque<Observation>,
    /// Connection generation: a full state read for an older one is dropped.
    generation: u64,
    reads: mpsc::UnboundedSender<(u64, Read)>,
    read_results: mpsc::UnboundedReceiver<(u64, Read)>,
    down_since: Option<Instant>,
    resync_retry_at: Option<Instant>,
    next_refresh: Option<Instant>,
    status: watch::Sender<AmiStatus>,
    reported_down: bool,
    /// Every line was made `unknown` in this outage.
    stale_said: bool,
}

enum Read {
    Full(Result<FullState, DriverError>),
    Dnd(Result<Vec<(String, bool)>, DriverError>),
}

impl AmiSource {
    /// Starts the driver (it connects at once and reconnects with backoff).
    pub fn start(settings: &AmiSettings, extensions: &[String]) -> Self {
        let config = DriverConfig::new(settings.address.clone(), settings.client_config());
        let (handle, events) = ami::driver::spawn(config);
        let tracker = AmiTracker::new(
            PBX,
            extensions.iter().cloned(),
            settings.dnd.clone(),
            settings.context.clone(),
        );
        let (reads, read_results) = mpsc::unbounded_channel();
        Self {
            handle,
            events,
            tracker,
            extensions: extensions.to_vec(),
            stale_after: settings.stale_after,
            dnd_refresh: settings.dnd_refresh,
            queued: VecDeque::new(),
            generation: 0,
            reads,
            read_results,
            down_since: Some(Instant::now()),
            resync_retry_at: None,
            next_refresh: None,
            status: watch::Sender::new(AmiStatus::default()),
            reported_down: false,
            stale_said: false,
        }
    }

    /// Follows the connection's status.
    pub fn status(&self) -> watch::Receiver<AmiStatus> {
        self.status.subscribe()
    }

    /// A handle on the connection (for DND actions beside the source).
    pub fn handle(&self) -> AmiHandle {
        self.handle.clone()
    }

    fn start_full_read(&mut self) {
        self.tracker.begin_resync();
        self.resync_retry_at = None;
        let (handle, extensions, sender, generation) = (
            self.handle.clone(),
            self.extensions.clone(),
            self.reads.clone(),
            self.generation,
        );
        let family = self.tracker.dnd_scheme().db_family.clone();
        tokio::spawn(async move {
            let state = read_full_state(&handle, &extensions, family.as_deref()).await;
            let _ = sender.send((generation, Read::Full(state)));
        });
    }

    fn start_dnd_read(&mut self) {
        let Some(family) = self.tracker.dnd_scheme().db_family.clone() else {
            return;
        };
        let (handle, extensions, sender, generation) = (
            self.handle.clone(),
            self.extensions.clone(),
            self.reads.clone(),
            self.generation,
        );
        tokio::spawn(async move {
            let flags = read_dnd_flags(&handle, &extensions, &family).await;
            let _ = sender.send((generation, Read::Dnd(flags)));
        });
    }

    fn session_event(&mut self, event: SessionEvent, now: Instant) -> bool {
        match event {
            SessionEvent::LoggedIn { version } => {
                self.generation += 1;
                tracing::info!(
                    "AMI: logged in (manager version {}); reading the full state",
                    version.as_deref().unwrap_or("unknown")
                );
                self.status.send_modify(|s| {
                    s.version = version;
                    s.problem = None;
                });
                self.start_full_read();
            }
            // At the end of a boot the hints are loaded: read them again
            // (right after a login the read is under way already).
            SessionEvent::FullyBooted if self.status.borrow().current => {
                tracing::info!("AMI: the PBX has finished booting; reading the full state");
                self.start_full_read();
            }
            SessionEvent::Event(e) => {
                let seen = self.tracker.event(&e, now.into_std());
                self.queued.extend(seen);
            }
            SessionEvent::Shutdown { restart } => tracing::warn!(
                "AMI: the PBX is {}",
                if restart {
                    "restarting"
                } else {
                    "shutting down"
                }
            ),
            SessionEvent::Disconnected { error, retry_in } => {
                self.down_since.get_or_insert(now);
                self.status.send_modify(|s| {
                    s.current = false;
                    s.problem = Some(error.to_string());
                });
                let advice = advice(&error);
                if self.reported_down {
                    tracing::debug!("AMI: {error}; next try in {retry_in:?}");
                } else {
                    tracing::warn!("AMI: {error}{advice}; next try in {retry_in:?}");
                    self.reported_down = true;
                }
            }
            SessionEvent::Stopped => return false,
            _ => {}
        }
        true
    }

    fn read_done(&mut self, generation: u64, read: Read, now: Instant) {
        if generation != self.generation {
            return;
        }
        match read {
            Read::Full(Ok(state)) => {
                if let Some(why) = &state.hints_refused {
                    tracing::warn!("AMI: the PBX lists no hints ({why})");
                }
                let seen = self.tracker.finish_resync(state.lists(), now.into_std());
                for notice in self.tracker.take_notices() {
                    tracing::warn!("AMI: {notice}");
                }
                tracing::info!(
                    "AMI: full state read ({} hints, {} devices); watching {} extension(s)",
                    state.hints.len(),
                    state.devices.len(),
                    self.extensions.len()
                );
                self.queued.extend(seen);
                self.down_since = None;
                self.reported_down = false;
                self.stale_said = false;
                self.next_refresh = self.dnd_refresh.map(|d| now + d);
                self.status.send_modify(|s| {
                    s.current = true;
                    s.problem = None;
                });
            }
            Read::Full(Err(e)) => {
                tracing::warn!("AMI: reading the full state failed: {e}");
                self.resync_retry_at = Some(now + RESYNC_RETRY);
            }
            Read::Dnd(Ok(flags)) => {
                let seen = self.tracker.dnd_refreshed(&flags, now.into_std());
                self.queued.extend(seen);
            }
            Read::Dnd(Err(e)) => tracing::debug!("AMI: reading DND flags failed: {e}"),
        }
    }

    /// The next timer: stale lines, a retried full read, a DND refresh.
    fn next_deadline(&self) -> Option<Instant> {
        let stale = match (self.down_since, self.stale_after) {
            (Some(since), Some(after)) if !self.stale_said => Some(since + after),
            _ => None,
        };
        let refresh = self.next_refresh.filter(|_| self.status.borrow().current);
        [stale, self.resync_retry_at, refresh]
            .into_iter()
            .flatten()
            .min()
    }

    fn timer(&mut self, now: Instant) {
        if let (Some(since), Some(after)) = (self.down_since, self.stale_after) {
            if !self.stale_said && now >= since + after {
                tracing::warn!(
                    "AMI: the PBX has been out of reach for {after:?}: every line is unknown \
                     until it is back"
                );
                let seen = self.tracker.all_unknown(now.into_std());
                self.queued.extend(seen);
                self.stale_said = true;
            }
        }
        if self.resync_retry_at.is_some_and(|at| now >= at) {
            self.start_full_read();
        }
        if self.next_refresh.is_some_and(|at| now >= at) {
            self.next_refresh = self.dnd_refresh.map(|d| now + d);
            self.start_dnd_read();
        }
    }

    async fn next_observation(&mut self) -> Option<Observation> {
        loop {
            if let Some(o) = self.queued.pop_front() {
                return Some(o);
            }
            let deadline = self.next_deadline();
            let sleep = async move {
                match deadline {
                    Some(at) => tokio::time::sleep_until(at).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                event = self.events.recv() => {
                    let now = Instant::now();
                    if !self.session_event(event?, now) {
                        return None;
                    }
                }
                Some((generation, read)) = self.read_results.recv() => {
                    self.read_done(generation, read, Instant::now());
                }
                () = sleep => self.timer(Instant::now()),
            }
        }
    }
}

/// Keeps `telemetry`'s AMI state (readiness, `/status`) in step with the
/// source's, until the source is gone.
pub async fn report_status(
    mut status: watch::Receiver<AmiStatus>,
    telemetry: crate::observe::Telemetry,
) {
    loop {
        let now = status.borrow_and_update().clone();
        telemetry.set_ami_status(now.current, now.problem);
        if status.changed().await.is_err() {
            break;
        }
    }
}

/// What to check for a connection problem, when the error says enough.
fn advice(error: &DriverError) -> &'static str {
    match error {
        DriverError::Ami(ami::Error::LoginRefused { .. }) => {
            " (check AMI_USERNAME and AMI_SECRET against manager.conf, and that the user's \
             permit= allows this host)"
        }
        DriverError::Connect { .. } => {
            " (is the manager interface enabled in manager.conf, and its bindaddr/port \
             reachable from here?)"
        }
        _ => "",
    }
}

impl Source for AmiSource {
    fn name(&self) -> &str {
        "ami"
    }

    fn next(&mut self) -> impl std::future::Future<Output = Option<Observation>> + Send {
        self.next_observation()
    }

    async fn stop(&mut self, limit: Duration) {
        tracing::info!("stopping: logging off the AMI");
        self.handle.stop(limit).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dnd_flag_is_on_when_set_and_not_no() {
        assert!(dnd_value_is_on("YES"));
        assert!(dnd_value_is_on("1"));
        assert!(!dnd_value_is_on(""));
        assert!(!dnd_value_is_on(" no "));
    }
}
