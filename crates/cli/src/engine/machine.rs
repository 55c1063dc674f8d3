//! The per-user logic, sans-IO: line changes and `now` in; presence commands
//! and the next deadline out.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant, SystemTime};

use blf::LineState;
use graph_presence::{refresh_interval, PresenceState};

use super::command::{PresenceCommand, PresenceCommandKind, Reason};
use super::mapping::{Mapping, PresenceAction};
pub use super::retry::Failure;
use super::retry::Streak;
use super::state::{unix_seconds, AppliedRecord, PersistedState};

/// The engine's timing and behaviour.
#[derive(Debug, Clone, PartialEq)]
pub struct EngineSettings {
    /// Coalescing window for bursts of changes (zero = off).
    pub debounce: Duration,
    /// `expirationDuration` of each set presence (PT5M..PT4H).
    pub expiration: Duration,
    /// Re-assert the presences we set this often (zero = never); clears that
    /// went through are not repeated.
    pub reconcile_every: Duration,
    /// After a restart, how long to wait for a first NOTIFY before clearing a
    /// presence an earlier run left set.
    pub restart_grace: Duration,
    /// Wait this long before retrying a failed command whose cause is not
    /// known ([`Engine::command_failed`]); the longest wait after transient
    /// failures without a `Retry-After`; and the first step of the backoff
    /// after a permanent failure.
    pub retry_after: Duration,
    /// First wait after a transient failure without a `Retry-After` (e.g. a
    /// 500 or a timeout); it doubles with each such failure since the last
    /// success, up to [`retry_after`](Self::retry_after), so a single server
    /// error is retried within about a second.
    pub transient_backoff_first: Duration,
    /// Longest wait between attempts after permanent failures (the backoff
    /// doubles from [`retry_after`](Self::retry_after) up to this).
    pub permanent_backoff_max: Duration,
    /// Status message while the line is busy (set presence is a Busy pair); `None` = off.
    pub status_message: Option<String>,
}

impl Default for EngineSettings {
    fn default() -> Self {
        Self {
            debounce: Duration::ZERO,
            expiration: Duration::from_secs(3600),
            reconcile_every: Duration::from_secs(15 * 60),
            restart_grace: Duration::from_secs(30),
            retry_after: Duration::from_secs(30),
            transient_backoff_first: Duration::from_secs(1),
            permanent_backoff_max: Duration::from_secs(3600),
            status_message: None,
        }
    }
}

/// What we want or hold for a user.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Want {
    Set(PresenceState),
    Clear,
}

impl Want {
    fn text(self) -> String {
        match self {
            Want::Set(p) => p.to_string(),
            Want::Clear => "clear".into(),
        }
    }
    fn parse(text: &str) -> Option<Want> {
        match PresenceAction::parse(text)? {
            PresenceAction::Set(p) => Some(Want::Set(p)),
            PresenceAction::Clear => Some(Want::Clear),
            PresenceAction::Keep => None,
        }
    }
}

/// A line as reported: its state and the PBX's do-not-disturb.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Line {
    state: LineState,
    dnd: bool,
}

/// A change waiting for its debounce window to end: the last one reported,
/// the window's end and when its first change came.
#[derive(Debug, Clone, Copy)]
struct Pending {
    line: Line,
    deadline: Instant,
    first: Instant,
}

#[derive(Debug, Clone)]
struct Slot {
    user: String,
    mapping: Mapping,
    line: Option<Line>,
    pending: Option<Pending>,
    desired: Option<Want>,
    /// What we last sent (successfully or in flight); `None` = nothing known.
    applied: Option<Want>,
    applied_wall: Option<SystemTime>,
    /// The last pair sent with `setPresence`, so a presence whose clear failed
    /// is still recorded (and corrected after a restart).
    last_set: Option<PresenceState>,
    /// An earlier run's presence, still to be confirmed or corrected.
    inherited: bool,
    /// `applied` is a guess ([`Engine::assume_unknown`]): not to be re-sent as is.
    assumed: bool,
    keepalive_at: Option<Instant>,
    retry_at: Option<Instant>,
    /// Failures in a row (drive the backoffs; reset by a success).
    failures: Streak,
    status_set: bool,
    last_notify: Option<Instant>,
    /// Commands sent for this slot's user whose outcome is not known yet (see
    /// [`Engine::dispatched`]); while any are, the slot sends nothing new.
    in_flight: u32,
    /// The times this slot has in [`Engine::wake`].
    armed: Vec<Instant>,
}

/// The sync engine for every configured extension.
///
/// ```
/// use std::time::{Duration, Instant};
/// use blf::LineState;
/// use sip_blf_sync::engine::Mapping;
/// use sip_blf_sync::engine::{Engine, EngineSettings, PresenceCommandKind};
///
/// let t0 = Instant::now();
/// let mut engine = Engine::new(EngineSettings::default(), t0);
/// engine.add_extension("1001", "alice@contoso.com", Mapping::default());
/// engine.line_changed("1001", LineState::Busy, t0);
/// let cmds = engine.poll(t0);
/// assert!(matches!(cmds[0].kind, PresenceCommandKind::Set { .. }));
/// engine.line_changed("1001", LineState::Idle, t0);
/// assert_eq!(engine.poll(t0)[0].kind, PresenceCommandKind::Clear);
/// ```
#[derive(Debug, Clone)]
pub struct Engine {
    settings: EngineSettings,
    slots: BTreeMap<String, Slot>,
    /// Each user's extensions: a call in flight for a user holds every one
    /// of them, so that a user on two phones still gets calls in order.
    extensions_of: BTreeMap<String, Vec<String>>,
    started: Instant,
    next_reconcile: Option<Instant>,
    /// Users no longer configured whose presence an earlier run left set:
    /// record and when to (re)try clearing it.
    orphans: BTreeMap<String, (AppliedRecord, Instant)>,
    /// Failures in a row clearing an orphan (drive its backoff).
    orphan_failures: BTreeMap<String, Streak>,
    /// When a slot has something to do: (time, extension), kept in step with
    /// each slot's timers. With it a poll touches the due slots, not every one.
    wake: BTreeSet<(Instant, String)>,
    /// The restart grace period is over and was handled (one pass over every
    /// slot), or no earlier presence was restored.
    grace_done: bool,
    out: Vec<PresenceCommand>,
}

impl Engine {
    /// An engine with no extensions yet.
    pub fn new(settings: EngineSettings, now: Instant) -> Self {
        let next_reconcile =
            (!settings.reconcile_every.is_zero()).then(|| now + settings.reconcile_every);
        Self {
            settings,
            slots: BTreeMap::new(),
            extensions_of: BTreeMap::new(),
            started: now,
            next_reconcile,
            orphans: BTreeMap::new(),
            orphan_failures: BTreeMap::new(),
            wake: BTreeSet::new(),
            grace_done: true,
            out: Vec::new(),
        }
    }

    /// The settings.
    pub fn settings(&self) -> &EngineSettings {
        &self.settings
    }

    /// Monitors `extension` for `user`, with its mapping.
    pub fn add_extension(&mut self, extension: &str, user: &str, mapping: Mapping) {
        if let Some(earlier) = self.slots.get(extension) {
            if let Some(exts) = self.extensions_of.get_mut(&earlier.user) {
                exts.retain(|e| e != extension);
            }
        }
        self.extensions_of
            .entry(user.to_owned())
            .or_default()
            .push(extension.to_owned());
        self.slots.insert(
            extension.to_owned(),
            Slot {
                user: user.to_owned(),
                mapping,
                line: None,
                pending: None,
                desired: None,
                applied: None,
                applied_wall: None,
                last_set: None,
                inherited: false,
                assumed: false,
                keepalive_at: None,
                retry_at: None,
                failures: Streak::default(),
                status_set: false,
                last_notify: None,
                in_flight: 0,
                armed: Vec::new(),
            },
        );
    }

    /// Takes over what an earlier run applied (from the state file): a
    /// presence or status message left set is corrected once the first line
    /// state is known, or cleared after [`EngineSettings::restart_grace`]
    /// without one.
    ///
    /// A user the state file shows with a presence set but who is no longer
    /// in the extension list is cleared at the first poll.
    pub fn restore(&mut self, state: &PersistedState) {
        for (user, record) in &state.users {
            let configured = self.slots.values().any(|s| &s.user == user);
            let set = matches!(Want::parse(&record.applied), Some(Want::Set(_)));
            if !configured && (set || record.status_message) {
                self.orphans
                    .insert(user.clone(), (record.clone(), self.started));
            }
        }
        for slot in self.slots.values_mut() {
            let Some(record) = state.users.get(&slot.user) else {
                continue;
            };
            if let Some(Want::Set(p)) = Want::parse(&record.applied) {
                slot.applied = Some(Want::Set(p));
                slot.last_set = Some(p);
                slot.inherited = true;
                self.grace_done = false;
            } else if record.status_message {
                // The presence was cleared but the message's clear was not
                // confirmed: it is corrected like a presence left set.
                slot.applied = Some(Want::Clear);
                slot.inherited = true;
                self.grace_done = false;
            }
            slot.status_set = record.status_message;
        }
    }

    /// Takes over from another instance whose last writes are unknown (an HA
    /// takeover): every user may show a presence (and a status message) it
    /// set, so each is corrected once their line state is known, or cleared
    /// after [`EngineSettings::restart_grace`] without one. A line whose
    /// mapping keeps the presence as is sends nothing: what shows is unknown.
    pub fn assume_unknown(&mut self) {
        let message = self.settings.status_message.is_some();
        for slot in self.slots.values_mut() {
            if !matches!(slot.applied, Some(Want::Set(_))) {
                // Any pair: it only has to differ from a clear.
                slot.applied = Some(Want::Set(PresenceState::BusyInACall));
                slot.assumed = true;
            }
            slot.inherited = true;
            slot.status_set |= message;
        }
        self.grace_done = false;
    }

    /// What to persist about applied presences (object ids are the sink's).
    pub fn applied_records(&self) -> BTreeMap<String, AppliedRecord> {
        self.slots
            .iter()
            .filter_map(|(ext, s)| Some((s.user.clone(), Self::record_of(ext, s)?)))
            .chain(
                self.orphans
                    .iter()
                    .map(|(user, (record, _))| (user.clone(), record.clone())),
            )
            .collect()
    }

    /// Every configured user (each once, in order).
    pub fn users(&self) -> impl Iterator<Item = &str> {
        self.extensions_of.keys().map(String::as_str)
    }

    /// What to persist about `user` of `extension` now: their entry in
    /// [`applied_records`](Self::applied_records), if they have one.
    pub fn applied_record(&self, extension: &str, user: &str) -> Option<AppliedRecord> {
        match self.slots.get(extension).filter(|s| s.user == user) {
            Some(slot) => Self::record_of(extension, slot),
            None => self.orphans.get(user).map(|(record, _)| record.clone()),
        }
    }

    /// A presence we hold, or may hold after a failed command.
    fn record_of(extension: &str, slot: &Slot) -> Option<AppliedRecord> {
        let applied = slot.applied.or(slot.last_set.map(Want::Set))?;
        Some(AppliedRecord {
            extension: extension.to_owned(),
            applied: applied.text(),
            at_unix: slot.applied_wall.map(unix_seconds).unwrap_or(0.0),
            status_message: slot.status_set,
        })
    }

    /// The line state of `extension`, as last reported.
    pub fn line_state(&self, extension: &str) -> Option<LineState> {
        Some(self.last_line(extension)?.state)
    }

    /// Whether the PBX's do-not-disturb is on for `extension`, as last reported.
    pub fn dnd(&self, extension: &str) -> Option<bool> {
        Some(self.last_line(extension)?.dnd)
    }

    fn last_line(&self, extension: &str) -> Option<Line> {
        let slot = self.slots.get(extension)?;
        slot.pending.map(|p| p.line).or(slot.line)
    }

    /// What we hold for the extension's user as text (`Busy/InACall`, `clear`), if anything.
    pub fn applied(&self, extension: &str) -> Option<String> {
        self.slots.get(extension)?.applied.map(Want::text)
    }

    /// Time since the last line report for `extension`.
    pub fn since_last_notify(&self, extension: &str, now: Instant) -> Option<Duration> {
        let at = self.slots.get(extension)?.last_notify?;
        Some(now.saturating_duration_since(at))
    }

    /// A line changed state, with do-not-disturb off (unknown extensions are
    /// ignored); decided by the next [`poll`](Self::poll) at or after the
    /// debounce window's end.
    pub fn line_changed(&mut self, extension: &str, state: LineState, now: Instant) {
        self.line_changed_with_dnd(extension, state, false, now);
    }

    /// A line changed state or the PBX's do-not-disturb (`dnd`) was switched
    /// (unknown extensions are ignored); decided like
    /// [`line_changed`](Self::line_changed). While `dnd` is on, the mapping's
    /// [`dnd`](Mapping::dnd) action applies ([`Mapping::action_for`]).
    pub fn line_changed_with_dnd(
        &mut self,
        extension: &str,
        state: LineState,
        dnd: bool,
        now: Instant,
    ) {
        let debounce = self.settings.debounce;
        let Some(slot) = self.slots.get_mut(extension) else {
            return;
        };
        slot.last_notify = Some(now);
        // Decided at the next poll: the window starts with the first change of
        // a burst; later changes only replace the state that will be sent.
        // Without debounce the window ends at once, but changes reported
        // before the next poll still coalesce (a backlog sends its final state).
        let (deadline, first) = match slot.pending {
            Some(p) => (p.deadline, p.first),
            None => (now + debounce, now),
        };
        let new_window = slot.pending.is_none();
        slot.pending = Some(Pending {
            line: Line { state, dnd },
            deadline,
            first,
        });
        if new_window {
            Self::arm(&mut self.wake, extension, slot);
        }
    }

    /// Puts the slot's current timers into the wake index, in place of the
    /// ones it had there.
    fn arm(wake: &mut BTreeSet<(Instant, String)>, extension: &str, slot: &mut Slot) {
        let keepalive = slot
            .keepalive_at
            .filter(|_| matches!(slot.applied, Some(Want::Set(_))));
        let times = [slot.pending.map(|p| p.deadline), slot.retry_at, keepalive];
        // A slot with a call in flight waits for its outcome, not for a timer.
        let held = slot.in_flight > 0;
        let times = times.into_iter().flatten().filter(|_| !held);
        if slot.armed.iter().copied().eq(times.clone()) {
            return;
        }
        let mut key = (Instant::now(), extension.to_owned());
        for at in slot.armed.drain(..) {
            key.0 = at;
            wake.remove(&key);
        }
        for at in times {
            wake.insert((at, extension.to_owned()));
            slot.armed.push(at);
        }
    }

    fn decide(
        settings: &EngineSettings,
        extension: &str,
        slot: &mut Slot,
        now: Instant,
        caused_at: Option<Instant>,
        out: &mut Vec<PresenceCommand>,
    ) {
        let Some(line) = slot.line else { return };
        let inherited = std::mem::take(&mut slot.inherited);
        let assumed = std::mem::take(&mut slot.assumed);
        let want = match slot.mapping.action_for(line.state, line.dnd) {
            PresenceAction::Set(p) => Want::Set(p),
            PresenceAction::Clear => Want::Clear,
            PresenceAction::Keep => {
                // An inherited presence kept as is gets refreshed now: its
                // session's remaining time is unknown.
                if inherited && !assumed {
                    if let Some(Want::Set(p)) = slot.applied {
                        Self::send(
                            settings,
                            extension,
                            slot,
                            Want::Set(p),
                            Reason::Restart,
                            now,
                            caused_at,
                            out,
                        );
                    }
                }
                return;
            }
        };
        slot.desired = Some(want);
        let reason = if inherited {
            Reason::Restart
        } else {
            Reason::Change
        };
        // An inherited Set is re-sent even when it matches (unknown remaining time).
        if slot.applied == Some(want) && !(inherited && matches!(want, Want::Set(_))) {
            Self::clear_stale_message(settings, extension, slot, want, reason, out);
            return;
        }
        if want == Want::Clear && slot.applied.is_none() {
            // No presence of ours to clear; a message may still be.
            Self::clear_stale_message(settings, extension, slot, want, reason, out);
            return;
        }
        Self::send(settings, extension, slot, want, reason, now, caused_at, out);
    }

    #[allow(clippy::too_many_arguments)]
    fn send(
        settings: &EngineSettings,
        extension: &str,
        slot: &mut Slot,
        want: Want,
        reason: Reason,
        now: Instant,
        caused_at: Option<Instant>,
        out: &mut Vec<PresenceCommand>,
    ) {
        let mut push = |kind| {
            out.push(PresenceCommand {
                extension: extension.to_owned(),
                user: slot.user.clone(),
                kind,
                reason,
                caused_at,
            })
        };
        match want {
            Want::Set(pair) => {
                slot.last_set = Some(pair);
                push(PresenceCommandKind::Set {
                    pair,
                    expiration: settings.expiration,
                });
                slot.keepalive_at = Some(now + refresh_interval(pair, Some(settings.expiration)));
                match Self::message_for(settings, want) {
                    Some(text) if !slot.status_set && reason != Reason::KeepAlive => {
                        push(PresenceCommandKind::StatusMessage { text: text.clone() });
                        slot.status_set = true;
                    }
                    // Also one an earlier run set with another STATUS_MESSAGE, or none now.
                    None if slot.status_set => {
                        push(PresenceCommandKind::StatusMessage {
                            text: String::new(),
                        });
                        slot.status_set = false;
                    }
                    _ => {}
                }
            }
            Want::Clear => {
                push(PresenceCommandKind::Clear);
                slot.keepalive_at = None;
                if slot.status_set {
                    push(PresenceCommandKind::StatusMessage {
                        text: String::new(),
                    });
                    slot.status_set = false;
                }
            }
        }
        slot.applied = Some(want);
        slot.applied_wall = Some(SystemTime::now());
        slot.retry_at = None;
    }

    /// The status message `want` shows: `STATUS_MESSAGE` while Busy.
    fn message_for(settings: &EngineSettings, want: Want) -> Option<&String> {
        match want {
            Want::Set(pair) if pair.availability() == "Busy" => settings.status_message.as_ref(),
            _ => None,
        }
    }

    /// Clears a status message of ours that `want` does not show, when no
    /// presence command goes out to do it (the presence is already right).
    fn clear_stale_message(
        settings: &EngineSettings,
        extension: &str,
        slot: &mut Slot,
        want: Want,
        reason: Reason,
        out: &mut Vec<PresenceCommand>,
    ) {
        if slot.status_set && Self::message_for(settings, want).is_none() {
            out.push(PresenceCommand {
                extension: extension.to_owned(),
                user: slot.user.clone(),
                kind: PresenceCommandKind::StatusMessage {
                    text: String::new(),
                },
                reason,
                caused_at: None,
            });
            slot.status_set = false;
        }
    }

    /// Commands due at `now` (decisions, debounced changes, keep-alives,
    /// retries, reconciliation, restart corrections), in extension order.
    pub fn poll(&mut self, now: Instant) -> Vec<PresenceCommand> {
        let settings = &self.settings;
        let grace_over = now >= self.started + settings.restart_grace;
        let reconcile = self.next_reconcile.is_some_and(|t| now >= t);
        if reconcile {
            self.next_reconcile = Some(now + settings.reconcile_every);
        }
        let due: Vec<String> = self
            .orphans
            .iter()
            .filter(|(_, (_, at))| now >= *at)
            .map(|(user, _)| user.clone())
            .collect();
        for user in due {
            if let Some((record, _)) = self.orphans.remove(&user) {
                let mut kinds = vec![PresenceCommandKind::Clear];
                if record.status_message {
                    kinds.push(PresenceCommandKind::StatusMessage {
                        text: String::new(),
                    });
                }
                for kind in kinds {
                    self.out.push(PresenceCommand {
                        extension: record.extension.clone(),
                        user: user.clone(),
                        kind,
                        reason: Reason::Restart,
                        caused_at: None,
                    });
                }
            }
        }
        // Every slot on reconciliation and once the restart grace is over;
        // otherwise only the slots whose timers are due.
        let full = reconcile || (grace_over && !self.grace_done);
        self.grace_done |= grace_over;
        if full {
            self.wake.clear();
            for (ext, slot) in &mut self.slots {
                slot.armed.clear();
                Self::poll_slot(
                    settings,
                    ext,
                    slot,
                    now,
                    grace_over,
                    reconcile,
                    &mut self.out,
                );
                Self::arm(&mut self.wake, ext, slot);
            }
        } else {
            let mut due = Vec::new();
            // Left in the index: arm() below replaces the slot's entries.
            for (_, ext) in self.wake.iter().take_while(|(at, _)| *at <= now) {
                due.push(ext.clone());
            }
            due.sort_unstable();
            due.dedup();
            for ext in due {
                if let Some(slot) = self.slots.get_mut(&ext) {
                    Self::poll_slot(settings, &ext, slot, now, grace_over, false, &mut self.out);
                    Self::arm(&mut self.wake, &ext, slot);
                }
            }
        }
        std::mem::take(&mut self.out)
    }

    /// One slot's due work: a debounced change, the restart correction, a
    /// retry, reconciliation or a keep-alive.
    fn poll_slot(
        settings: &EngineSettings,
        ext: &str,
        slot: &mut Slot,
        now: Instant,
        grace_over: bool,
        reconcile: bool,
        out: &mut Vec<PresenceCommand>,
    ) {
        if slot.in_flight > 0 {
            return;
        }
        if let Some(pending) = slot.pending {
            if now >= pending.deadline {
                slot.pending = None;
                slot.line = Some(pending.line);
                Self::decide(settings, ext, slot, now, Some(pending.first), out);
            }
        }
        if slot.inherited && grace_over && slot.line.is_none() {
            // No line report in time: do not leave an old presence standing.
            slot.inherited = false;
            Self::send(
                settings,
                ext,
                slot,
                Want::Clear,
                Reason::Restart,
                now,
                None,
                out,
            );
            return;
        }
        if slot.inherited {
            return;
        }
        if let (Some(at), Some(want)) = (slot.retry_at, slot.desired) {
            if now >= at {
                Self::send(settings, ext, slot, want, Reason::Retry, now, None, out);
                return;
            }
        }
        // A clear that succeeded is known applied; only what we set can
        // have been lost (session expired, Graph restored) and is re-asserted.
        if reconcile {
            if let Some(want @ Want::Set(_)) = slot.desired {
                Self::send(settings, ext, slot, want, Reason::Reconcile, now, None, out);
                return;
            }
        }
        if let (Some(at), Some(Want::Set(p))) = (slot.keepalive_at, slot.applied) {
            if now >= at {
                Self::send(
                    settings,
                    ext,
                    slot,
                    Want::Set(p),
                    Reason::KeepAlive,
                    now,
                    None,
                    out,
                );
            }
        }
    }

    /// The earliest time [`poll`](Self::poll) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        let grace = (!self.grace_done).then_some(self.started + self.settings.restart_grace);
        self.wake
            .first()
            .map(|(at, _)| *at)
            .into_iter()
            .chain(grace)
            .chain(self.next_reconcile)
            .chain(self.orphans.values().map(|(_, at)| *at))
            .min()
    }

    /// Marks `commands` as sent. Until each one's outcome is reported
    /// ([`command_succeeded`](Self::command_succeeded) or
    /// [`command_failed`](Self::command_failed)), its user gets no new
    /// command: changes wait and are decided once the outcome is in. A driver
    /// with several calls in flight needs this, or two calls for one user
    /// could reach Graph out of order; one that reports every outcome before
    /// it polls again need not call it.
    pub fn dispatched(&mut self, commands: &[PresenceCommand]) {
        for c in commands {
            for ext in self.extensions_of.get(&c.user).into_iter().flatten() {
                if let Some(slot) = self.slots.get_mut(ext) {
                    slot.in_flight = slot.in_flight.saturating_add(1);
                    Self::arm(&mut self.wake, ext, slot);
                }
            }
        }
    }

    /// The outcome of a command marked by [`dispatched`](Self::dispatched) is
    /// in; the last one frees its slot.
    fn settled(&mut self, command: &PresenceCommand) {
        for ext in self.extensions_of.get(&command.user).into_iter().flatten() {
            if let Some(slot) = self.slots.get_mut(ext) {
                if slot.in_flight > 0 {
                    slot.in_flight -= 1;
                    Self::arm(&mut self.wake, ext, slot);
                }
            }
        }
    }

    /// Whether some command for `extension`'s user awaits its outcome.
    pub fn in_flight(&self, extension: &str) -> bool {
        self.slots.get(extension).is_some_and(|s| s.in_flight > 0)
    }

    /// A command could not be applied, for a reason not known (given up
    /// unanswered, no result): it is retried after
    /// [`EngineSettings::retry_after`] (with the then desired presence), as
    /// after a transient failure whose `Retry-After` says so.
    pub fn command_failed(&mut self, command: &PresenceCommand, now: Instant) {
        let retry_after = Some(self.settings.retry_after);
        self.command_failed_with(command, now, Failure::Transient { retry_after });
    }

    /// A command could not be applied, for the given reason: it is retried
    /// (with the then desired presence) after the returned delay.
    pub fn command_failed_with(
        &mut self,
        command: &PresenceCommand,
        now: Instant,
        failure: Failure,
    ) -> Duration {
        self.settled(command);
        let settings = &self.settings;
        let configured = self
            .slots
            .get(&command.extension)
            .is_some_and(|s| s.user == command.user);
        let message = matches!(command.kind, PresenceCommandKind::StatusMessage { .. });
        if !configured && (command.kind == PresenceCommandKind::Clear || message) {
            // A user no longer configured: keep trying (and keep the record).
            let wait = self
                .orphan_failures
                .entry(command.user.clone())
                .or_default()
                .failed(settings, failure);
            let record = AppliedRecord {
                extension: command.extension.clone(),
                applied: PresenceState::BusyInACall.to_string(),
                at_unix: 0.0,
                status_message: false,
            };
            // The presence's clear and the message's may both have failed.
            let orphan = self
                .orphans
                .entry(command.user.clone())
                .or_insert((record, now + wait));
            orphan.0.status_message |= message;
            orphan.1 = now + wait;
            return wait;
        }
        let Some(slot) = self.slots.get_mut(&command.extension) else {
            return Duration::ZERO;
        };
        match &command.kind {
            // A message that did not show is not worth a retry of its own.
            PresenceCommandKind::StatusMessage { text } if !text.is_empty() => {
                return Duration::ZERO
            }
            PresenceCommandKind::StatusMessage { .. } => {
                // The message may still show: cleared again with the retry.
                slot.status_set = true;
                if slot.desired.is_none() {
                    slot.desired = Some(slot.applied.unwrap_or(Want::Clear));
                }
            }
            _ => {
                // What Graph holds is unknown now.
                slot.applied = None;
                if slot.desired.is_none() {
                    slot.desired = match command.kind {
                        PresenceCommandKind::Set { pair, .. } => Some(Want::Set(pair)),
                        _ => Some(Want::Clear),
                    };
                }
            }
        }
        let wait = slot.failures.failed(settings, failure);
        slot.retry_at = Some(now + wait);
        Self::arm(&mut self.wake, &command.extension, slot);
        wait
    }

    /// A command was applied: the backoffs start over.
    pub fn command_succeeded(&mut self, command: &PresenceCommand) {
        self.settled(command);
        if let Some(slot) = self.slots.get_mut(&command.extension) {
            if slot.user == command.user {
                slot.failures = Streak::default();
            }
        }
        self.orphan_failures.remove(&command.user);
    }

    /// Clears every presence we hold, or may hold after a failed command
    /// (for shutdown); afterwards nothing is held.
    pub fn shutdown(&mut self, now: Instant) -> Vec<PresenceCommand> {
        let mut out = Vec::new();
        for (ext, slot) in &mut self.slots {
            slot.pending = None;
            slot.inherited = false;
            // After a failure what Graph holds is unknown: clear what may be set.
            let maybe_set = slot.applied.is_none() && slot.last_set.is_some();
            if matches!(slot.applied, Some(Want::Set(_))) || maybe_set {
                Self::send(
                    &self.settings,
                    ext,
                    slot,
                    Want::Clear,
                    Reason::Shutdown,
                    now,
                    None,
                    &mut out,
                );
            } else {
                // Cleared already, but a message's clear was not confirmed.
                Self::clear_stale_message(
                    &self.settings,
                    ext,
                    slot,
                    Want::Clear,
                    Reason::Shutdown,
                    &mut out,
                );
            }
            slot.retry_at = None;
            slot.desired = None;
        }
        out
    }
}

#[cfg(test)]
#[path = "status_message_tests.rs"]
mod status_message_tests;

#[cfg(test)]
#[path = "machine_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "dnd_tests.rs"]
mod dnd_tests;
