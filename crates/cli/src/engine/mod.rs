//! The sync engine: line-state changes from a [`LineSource`] become presence
//! commands for a [`PresenceSink`].
//!
//! - [`Engine`] is the per-user logic, sans-IO (line changes and `now` in,
//!   [`PresenceCommand`]s and the next deadline out): mapping, debounce,
//!   keep-alives, reconciliation, restart correction, shutdown clears.
//! - [`Mapping`] is the Teams mapping: line state (or the PBX's
//!   do-not-disturb, which wins while on) → [`PresenceAction`] (set one of
//!   Graph's five [`PresenceState`](graph_presence::PresenceState)s, clear,
//!   keep), from TOML (`MAPPING_FILE`, an extension's `mapping`).
//! - [`state`] is the state file (object ids, what was applied): a snapshot
//!   written atomically and a journal of changes ([`StateStore`]).
//! - [`LogSink`] prints decisions (`--dry-run`); [`GraphSink`] applies them
//!   with Microsoft Graph.
//! - [`run_engine`] is the tokio loop around them.
//!
//! When Graph fails, the engine is the one layer that retries (the service's
//! Graph client does not retry by itself, so no call lasts longer than one
//! request and holds its user or a stop): a transient failure (429, 5xx,
//! network) is retried after the server's `Retry-After`, else after a backoff
//! doubling from 1 s to 30 s with each such failure; a permanent
//! one (user not in the tenant, permission missing, credentials refused) is
//! logged as an error that says what to fix and retried with a backoff
//! doubling from 30 s to an hour. A success starts both over. A set (with the status message it carries) is recorded in the
//! state file before it is sent, so a crash never leaves a presence or a
//! message the next start does not know about; a stop does
//! not wait for calls in flight and clears what they may have set.
//!
//! Up to [`RunOptions::calls_in_flight`] sink calls run at once, each for
//! other users: a change that comes while a call is in flight goes out at
//! once instead of waiting for it. A user with a call in flight gets no
//! second one until the first is answered, so Graph sees each user's changes
//! in order; when every call is in flight, changes wait and go out together
//! (one `$batch`), each line with its final state only.
//!
//! A new source or sink is one trait implementation away.
//!
//! Wiring, as `run --dry-run` does it:
//!
//! ```no_run
//! # async fn demo(env: sip_blf_sync::settings::Env,
//! #     extensions: Vec<sip_blf_sync::extensions::Extension>,
//! #     source: sip_blf_sync::sip_source::SipSource) -> Result<(), Box<dyn std::error::Error>> {
//! use sip_blf_sync::engine::{run_engine, EngineConfig, LogSink};
//! use sip_blf_sync::observe::Telemetry;
//!
//! let config = EngineConfig::from_env(&env)?;
//! let (engine, loaded) = config.prepare(&extensions, tokio::time::Instant::now().into_std())?;
//! if let Some(warning) = loaded.warning {
//!     tracing::warn!("{warning}");
//! }
//! // With a tenant: GraphSink::new(client, telemetry.clone()), then sink.seed_from(&loaded.state).
//! let telemetry = Telemetry::new();
//! let mut source = source;
//! let engine = run_engine(
//!     &mut source,
//!     LogSink::printing(),
//!     engine,
//!     telemetry,
//!     sip_blf_sync::signals::shutdown_signal(),
//!     config.run_options(),
//! )
//! .await;
//! // Then un-SUBSCRIBE and un-REGISTER.
//! source.shutdown(std::time::Duration::from_secs(5)).await;
//! # drop(engine); Ok(()) }
//! ```

mod command;
mod machine;
mod mapping;
mod persistence;
mod retry;
mod sinks;
pub mod state;
mod store;

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use futures_util::stream::{FuturesUnordered, StreamExt as _};
use sip_blf_engine::FeedReport;

use persistence::Persistence;
use tokio::sync::mpsc;

pub use command::{PresenceCommand, PresenceCommandKind, Reason};
pub use machine::{Engine, EngineSettings, Failure};
pub use mapping::{valid_values, Mapping, MappingError, PresenceAction};
pub use sinks::{GraphSink, LogSink, SinkError};
pub use state::{AppliedRecord, Loaded, PersistedState, StateError};
pub use store::{StateStore, COMPACT_AFTER_LINES, JOURNAL_SYNC_EVERY};

use crate::extensions::Extension;
use crate::observe::Telemetry;
use crate::problems::{Problem, Problems};
use crate::settings::Env;
use crate::sip_source::{SipSource, SourceEvent};

/// Where line-state changes come from (the PBX, a test channel…).
pub trait LineSource: Send {
    /// The next change or notice; `None` once the source has stopped. Must be
    /// cancel-safe: the driver drops the future when a timer fires first.
    fn next_event(&mut self) -> impl Future<Output = Option<SourceEvent>> + Send;

    /// How the sink is doing, for a source that reports it on (an engine
    /// [`ViewFeed`](sip_blf_engine::ViewFeed)); the default drops it.
    fn report(&self, report: FeedReport) {
        let _ = report;
    }
}

/// Lend a source to [`run_engine`] and keep it (e.g. to un-SUBSCRIBE after).
impl<T: LineSource> LineSource for &mut T {
    fn next_event(&mut self) -> impl Future<Output = Option<SourceEvent>> + Send {
        (**self).next_event()
    }

    fn report(&self, report: FeedReport) {
        (**self).report(report);
    }
}

impl LineSource for SipSource {
    fn next_event(&mut self) -> impl Future<Output = Option<SourceEvent>> + Send {
        self.next()
    }
}

/// A source fed through a channel (tests, other integrations).
#[derive(Debug)]
pub struct ChannelSource(pub mpsc::UnboundedReceiver<SourceEvent>);

impl LineSource for ChannelSource {
    fn next_event(&mut self) -> impl Future<Output = Option<SourceEvent>> + Send {
        self.0.recv()
    }
}

/// Where presence commands go.
///
/// [`run_engine`] may call [`apply`](Self::apply) again before an earlier
/// call has finished (never with a user whose call is still in flight), so
/// a sink that keeps state keeps it behind a lock or in a shared client.
pub trait PresenceSink: Send + Sync {
    /// Applies the commands (in order per user); one result per command, in order.
    fn apply(
        &self,
        commands: &[PresenceCommand],
    ) -> impl Future<Output = Vec<Result<(), SinkError>>> + Send;

    /// Reads back users' presence as `Availability/Activity` text, for drift
    /// reports; sinks that cannot read return an empty list.
    fn read_back(
        &self,
        users: &[String],
    ) -> impl Future<Output = Result<Vec<(String, String)>, SinkError>> + Send {
        let _ = users;
        async { Ok(Vec::new()) }
    }

    /// User → object id, to persist (sinks without ids return an empty map).
    fn object_ids(&self) -> HashMap<String, String> {
        HashMap::new()
    }
}

/// Default state file.
pub const DEFAULT_STATE_FILE: &str = "config/presence-state.json";

/// Everything `run` needs for the engine, from the environment.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// `PRESENCE_STATE_JSON` (default `config/presence-state.json`).
    pub state_file: PathBuf,
    /// `MAPPING_FILE`: the default mapping (TOML), if set.
    pub mapping: Mapping,
    /// Timing and behaviour (`SYNC_DEBOUNCE_MS`, `PRESENCE_EXPIRATION_MINUTES`,
    /// `RECONCILE_MINUTES`, `STATUS_MESSAGE`).
    pub settings: EngineSettings,
    /// Longest time spent clearing presences at shutdown.
    pub shutdown_limit: Duration,
}

impl EngineConfig {
    /// Reads `PRESENCE_STATE_JSON`, `MAPPING_FILE`, `SYNC_DEBOUNCE_MS`,
    /// `PRESENCE_EXPIRATION_MINUTES` (5..=240, default 60), `RECONCILE_MINUTES`
    /// (default 15, 0 = off) and `STATUS_MESSAGE` (default none). Every
    /// problem is reported at once.
    pub fn from_env(env: &Env) -> Result<Self, Problems> {
        let mut problems = Problems::default();
        let mut settings = EngineSettings::default();
        let number = |name: &str, problems: &mut Problems| -> Option<u64> {
            let v = env.get(name)?;
            match v.parse::<u64>() {
                Ok(n) => Some(n),
                Err(_) => {
                    problems.push(Problem::in_var(
                        name,
                        format!("{v:?} is not a whole number"),
                    ));
                    None
                }
            }
        };
        if let Some(ms) = number("SYNC_DEBOUNCE_MS", &mut problems) {
            settings.debounce = Duration::from_millis(ms);
        }
        if let Some(m) = number("PRESENCE_EXPIRATION_MINUTES", &mut problems) {
            if (5..=240).contains(&m) {
                settings.expiration = Duration::from_secs(m * 60);
            } else {
                problems.push(Problem::in_var(
                    "PRESENCE_EXPIRATION_MINUTES",
                    format!("{m} is outside 5..=240 (Graph accepts PT5M to PT4H)"),
                ));
            }
        }
        if let Some(m) = number("RECONCILE_MINUTES", &mut problems) {
            settings.reconcile_every = Duration::from_secs(m * 60);
        }
        settings.status_message = env.get("STATUS_MESSAGE").map(str::to_owned);
        let mapping = match env.get("MAPPING_FILE") {
            None => Mapping::default(),
            Some(path) => match Mapping::load(path) {
                Ok(m) => m,
                Err(e) => {
                    problems.push(Problem::in_var("MAPPING_FILE", e.to_string()));
                    Mapping::default()
                }
            },
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(Self {
            state_file: PathBuf::from(env.get("PRESENCE_STATE_JSON").unwrap_or(DEFAULT_STATE_FILE)),
            mapping,
            settings,
            shutdown_limit: Duration::from_secs(10),
        })
    }
}

impl EngineConfig {
    /// The engine for the extension list: one slot per person
    /// ([`crate::people`]: each extension's user, the object id when
    /// configured, else the UPN), keyed by the person's extensions, with the
    /// mapping file of the first of their entries that names one, else the
    /// default mapping. Every unreadable mapping file is reported at once.
    pub fn build_engine(&self, extensions: &[Extension], now: Instant) -> Result<Engine, Problems> {
        let mut problems = Problems::default();
        let mut engine = Engine::new(self.settings.clone(), now);
        for (user, entries) in crate::people::group_by_person(extensions) {
            let named = entries.iter().find_map(|e| Some((*e, e.mapping.as_ref()?)));
            let mapping = match named {
                None => self.mapping.clone(),
                Some((ext, path)) => match Mapping::load(path) {
                    Ok(m) => m,
                    Err(e) => {
                        problems.push(Problem::plain(format!(
                            "{}: extension {}: mapping {}: {e}",
                            ext.origin,
                            ext.extension,
                            path.display()
                        )));
                        continue;
                    }
                },
            };
            engine.add_extension(&crate::people::person_key(&entries), &user, mapping);
        }
        problems.into_result(engine)
    }

    /// The engine for the extension list with the state file taken over
    /// ([`Engine::restore`]); the returned [`Loaded`] carries the object ids to
    /// seed a [`GraphSink`] with and a warning if the file was corrupt.
    pub fn prepare(
        &self,
        extensions: &[Extension],
        now: Instant,
    ) -> Result<(Engine, Loaded), Problems> {
        let mut engine = self.build_engine(extensions, now)?;
        let loaded = PersistedState::load(&self.state_file, SystemTime::now());
        engine.restore(&loaded.state);
        Ok((engine, loaded))
    }

    /// The run options for [`run_engine`] (state file, shutdown limit).
    pub fn run_options(&self) -> RunOptions {
        RunOptions::new(Some(self.state_file.clone()), self.shutdown_limit)
    }
}

/// Sink calls in flight at once by default. Graph answers each in well under
/// a second; four keep a change from waiting behind another user's call
/// without giving up `$batch` when many lines change together.
pub const DEFAULT_CALLS_IN_FLIGHT: usize = 4;

/// What [`run_engine`] needs besides the source and the sink.
#[derive(Debug)]
pub struct RunOptions {
    /// The state file to save to (none = no persistence).
    pub state_file: Option<PathBuf>,
    /// Longest time spent clearing presences at shutdown.
    pub shutdown_limit: Duration,
    /// Most sink calls in flight at once (at least 1).
    pub calls_in_flight: usize,
}

impl RunOptions {
    /// The options with [`DEFAULT_CALLS_IN_FLIGHT`].
    pub fn new(state_file: Option<PathBuf>, shutdown_limit: Duration) -> Self {
        Self {
            state_file,
            shutdown_limit,
            calls_in_flight: DEFAULT_CALLS_IN_FLIGHT,
        }
    }
}

pub(crate) fn tokio_now() -> Instant {
    tokio::time::Instant::now().into_std()
}

/// How long a stop waits for the Graph calls in flight before it clears.
const STOP_GRACE: Duration = Duration::from_millis(500);

/// One sink call: the commands, then the read-back of what a reconciliation
/// re-asserted. Returns the call's id and one result per command.
async fn call<K: PresenceSink>(
    sink: &K,
    id: u64,
    commands: Vec<PresenceCommand>,
) -> (u64, Vec<Result<(), SinkError>>) {
    let reasserted = reasserted_sets(&commands);
    let results = sink.apply(&commands).await;
    report_drift(sink, reasserted).await;
    (id, results)
}

/// The commands' NOTIFY→Graph latency, as they are sent.
fn sending(telemetry: &Telemetry, commands: &[PresenceCommand]) {
    let now = tokio_now();
    for c in commands {
        if let Some(at) = c.caused_at {
            telemetry.notify_to_graph(now.saturating_duration_since(at));
        }
    }
}

/// Tells the engine (and `/status`) how each command of a call went.
fn settle(
    engine: &mut Engine,
    telemetry: &Telemetry,
    source: &impl LineSource,
    commands: &[PresenceCommand],
    results: &[Result<(), SinkError>],
) {
    let after = tokio_now();
    for (i, command) in commands.iter().enumerate() {
        source.report(match results.get(i) {
            Some(Ok(())) => FeedReport::Succeeded,
            _ => FeedReport::Failed,
        });
        match results.get(i) {
            Some(Ok(())) => {
                engine.command_succeeded(command);
                if let Some(text) = engine.applied(&command.extension) {
                    let shown = if text == "clear" {
                        "cleared".to_owned()
                    } else {
                        text
                    };
                    for extension in crate::people::extensions_of_key(&command.extension) {
                        telemetry.set_presence(extension, &shown);
                    }
                }
            }
            Some(Err(e)) => {
                if let PresenceCommandKind::Set { pair, .. } = &command.kind {
                    for extension in crate::people::extensions_of_key(&command.extension) {
                        telemetry.presence_failed(extension, pair);
                    }
                }
                let wait = engine.command_failed_with(command, after, e.failure());
                if e.permanent {
                    tracing::error!(
                        extension = %command.extension,
                        user = %command.user,
                        "{} ({}) failed and will keep failing until this is fixed: {e}; \
                         next attempt in {wait:?}",
                        command.operation(),
                        command.reason.as_str(),
                    );
                } else {
                    tracing::warn!(
                        extension = %command.extension,
                        user = %command.user,
                        "{} ({}) failed: {e}; retrying in {wait:?}",
                        command.operation(),
                        command.reason.as_str(),
                    );
                }
            }
            None => engine.command_failed(command, after),
        }
    }
}

/// Most events taken at once from a backlog before deciding.
const MAX_BACKLOG: usize = 10_000;

fn handle(event: SourceEvent, engine: &mut Engine, telemetry: &Telemetry) {
    match event {
        // The NOTIFY itself is counted from the source's health (below).
        // The line's state in `/status` is the source's to report.
        SourceEvent::Line(change) => {
            // From the NOTIFY's arrival: the latency counts the hop here too.
            let at = change.received_at.unwrap_or_else(tokio_now);
            engine.line_changed_with_dnd(&change.extension, change.line_state, change.dnd, at);
        }
        SourceEvent::Health(health) => crate::observe::sip_health(telemetry, &health),
    }
}

/// The users whose presence a reconciliation re-asserted with `setPresence`,
/// with the availability expected.
fn reasserted_sets(commands: &[PresenceCommand]) -> Vec<(String, &'static str)> {
    commands
        .iter()
        .filter(|c| c.reason == Reason::Reconcile)
        .filter_map(|c| match &c.kind {
            PresenceCommandKind::Set { pair, .. } => Some((c.user.clone(), pair.availability())),
            _ => None,
        })
        .collect()
}

/// After a reconciliation, reads back the re-asserted users' presence and
/// reports those that do not show what we hold (e.g. a higher-priority
/// session of the user's own).
async fn report_drift<K: PresenceSink>(sink: &K, expected: Vec<(String, &'static str)>) {
    if expected.is_empty() {
        return;
    }
    let users: Vec<String> = expected.iter().map(|(u, _)| u.clone()).collect();
    match sink.read_back(&users).await {
        Ok(shown) => {
            for (user, presence) in shown {
                let want = expected
                    .iter()
                    .find(|(u, _)| *u == user)
                    .map(|(_, a)| *a)
                    .unwrap_or_default();
                let availability = presence.split('/').next().unwrap_or_default();
                if !availability.eq_ignore_ascii_case(want) {
                    tracing::warn!(
                        %user,
                        "presence drift: shows {presence}, we hold {want}"
                    );
                }
            }
        }
        Err(e) => tracing::warn!("presence read-back failed: {e}"),
    }
}

/// Commands given up before their outcome was known: what Graph holds is
/// unknown, so they count as failed.
fn cut_off(engine: &mut Engine, commands: &[PresenceCommand]) {
    let now = tokio_now();
    for command in commands {
        engine.command_failed(command, now);
    }
}

/// Runs the engine until the source ends or `shutdown` resolves; then clears
/// every presence we set (within `options.shutdown_limit`) and saves the
/// state. Returns the engine for inspection.
pub async fn run_engine<S: LineSource, K: PresenceSink>(
    mut source: S,
    sink: K,
    mut engine: Engine,
    telemetry: Telemetry,
    shutdown: impl Future<Output = ()>,
    options: RunOptions,
) -> Engine {
    tokio::pin!(shutdown);
    let mut persistence = Persistence::open(options.state_file.clone(), &sink);
    let limit = options.calls_in_flight.max(1);
    let mut calls = FuturesUnordered::new();
    // The commands of each call in flight, by call id.
    let mut in_flight: HashMap<u64, Vec<PresenceCommand>> = HashMap::new();
    let mut next_id = 0u64;
    let mut ended = false;
    let mut stopped = false;
    loop {
        // With every call in flight, nothing can be sent before one returns.
        let room = calls.len() < limit;
        let wake = room
            .then(|| engine.next_deadline())
            .flatten()
            .map_or(persistence.next_checkpoint, |d| {
                d.min(persistence.next_checkpoint)
            });
        let timer = tokio::time::sleep_until(tokio::time::Instant::from_std(wake));
        tokio::select! {
            biased;
            () = &mut shutdown => {
                stopped = true;
                break;
            }
            Some(done) = calls.next(), if !calls.is_empty() => {
                let (id, results): (u64, Vec<Result<(), SinkError>>) = done;
                finish(&mut engine, &telemetry, &source, &mut persistence, &mut in_flight, id, &results);
            }
            event = source.next_event(), if !ended => match event {
                None => ended = true,
                Some(event) => handle(event, &mut engine, &telemetry),
            },
            () = timer => {}
        }
        // Take what else is ready (a backlog after a busy spell) so that
        // only each line's final state is sent.
        for _ in 0..MAX_BACKLOG {
            if ended {
                break;
            }
            let ready = tokio::select! {
                biased;
                event = source.next_event() => Some(event),
                () = std::future::ready(()) => None,
            };
            match ready {
                None => break,
                Some(None) => ended = true,
                Some(Some(event)) => handle(event, &mut engine, &telemetry),
            }
        }
        if calls.len() < limit {
            let commands = engine.poll(tokio_now());
            if !commands.is_empty() {
                engine.dispatched(&commands);
                // Write-ahead: a presence set by a call that a kill -9
                // interrupts must still be known to the next start.
                persistence.record(&engine, &commands, true);
                sending(&telemetry, &commands);
                next_id += 1;
                in_flight.insert(next_id, commands.clone());
                calls.push(call(&sink, next_id, commands));
            }
        }
        persistence.checkpoint(&sink);
        if ended && calls.is_empty() {
            break;
        }
    }
    if stopped && !calls.is_empty() {
        // A set already on the wire could reach Graph after the clear that
        // follows: calls that end within a moment are taken as they end.
        let grace = STOP_GRACE.min(options.shutdown_limit / 2);
        let _ = tokio::time::timeout(grace, async {
            while let Some((id, results)) = calls.next().await {
                finish(
                    &mut engine,
                    &telemetry,
                    &source,
                    &mut persistence,
                    &mut in_flight,
                    id,
                    &results,
                );
            }
        })
        .await;
    }
    if stopped && !in_flight.is_empty() {
        // Graph may take minutes (Retry-After, backoff): a stop does not wait.
        tracing::info!("stopping while Graph calls were in flight; they are given up");
        for commands in in_flight.values() {
            cut_off(&mut engine, commands);
        }
    }
    drop(calls);
    let commands = engine.shutdown(tokio_now());
    if !commands.is_empty() {
        let limit = options.shutdown_limit;
        sending(&telemetry, &commands);
        match tokio::time::timeout(limit, sink.apply(&commands)).await {
            Ok(results) => settle(&mut engine, &telemetry, &source, &commands, &results),
            Err(_) => {
                tracing::warn!(
                    "clearing presences at shutdown took longer than {limit:?}; stopped \
                     (the next start clears what is left)"
                );
                // Unconfirmed: keep them recorded as set so the next start corrects them.
                cut_off(&mut engine, &commands);
            }
        }
    }
    persistence.close(&engine, &sink);
    engine
}

/// A call returned: its outcome into the engine and the state file.
fn finish(
    engine: &mut Engine,
    telemetry: &Telemetry,
    source: &impl LineSource,
    persistence: &mut Persistence,
    in_flight: &mut HashMap<u64, Vec<PresenceCommand>>,
    id: u64,
    results: &[Result<(), SinkError>],
) {
    let Some(commands) = in_flight.remove(&id) else {
        return;
    };
    settle(engine, telemetry, source, &commands, results);
    persistence.record(engine, &commands, false);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_record_that_failed_is_written_with_the_next_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        let sink = LogSink::quiet();
        let mut persistence = Persistence::open(Some(path.clone()), &sink);
        let t0 = Instant::now();
        let mut engine = Engine::new(EngineSettings::default(), t0);
        engine.add_extension("1001", "alice@contoso.com", Mapping::default());
        engine.add_extension("1002", "bob@contoso.com", Mapping::default());
        engine.line_changed("1001", blf::LineState::Busy, t0);
        let alice = engine.poll(t0);
        engine.dispatched(&alice);
        // Alice's write-ahead record does not reach the journal.
        persistence.store.as_mut().unwrap().fail_writes(true);
        persistence.record(&engine, &alice, true);
        persistence.store.as_mut().unwrap().fail_writes(false);
        // Bob's change is the next record: it carries alice's too.
        engine.line_changed("1002", blf::LineState::Busy, t0);
        let bob = engine.poll(t0);
        engine.dispatched(&bob);
        persistence.record(&engine, &bob, true);
        let loaded = PersistedState::load(&path, std::time::SystemTime::now());
        assert!(loaded.state.users.contains_key("alice@contoso.com"));
        assert!(loaded.state.users.contains_key("bob@contoso.com"));
    }

    #[test]
    fn config_defaults() {
        let c = EngineConfig::from_env(&Env::from_pairs([])).unwrap();
        assert_eq!(c.state_file, PathBuf::from("config/presence-state.json"));
        assert_eq!(c.settings, EngineSettings::default());
        assert_eq!(c.settings.debounce, Duration::ZERO);
        assert_eq!(c.settings.status_message, None);
        assert_eq!(c.mapping, Mapping::default());
    }

    #[test]
    fn config_from_env_and_every_problem_at_once() {
        let dir = tempfile::tempdir().unwrap();
        let mapping = dir.path().join("mapping.toml");
        std::fs::write(&mapping, "ringing = \"Busy/InACall\"\n").unwrap();
        let m = mapping.to_string_lossy().into_owned();
        let env = Env::from_pairs([
            ("PRESENCE_STATE_JSON", "/var/lib/x/state.json"),
            ("SYNC_DEBOUNCE_MS", "250"),
            ("PRESENCE_EXPIRATION_MINUTES", "30"),
            ("RECONCILE_MINUTES", "0"),
            ("STATUS_MESSAGE", "On a call"),
            ("MAPPING_FILE", m.as_str()),
        ]);
        let c = EngineConfig::from_env(&env).unwrap();
        assert_eq!(c.state_file, PathBuf::from("/var/lib/x/state.json"));
        assert_eq!(c.settings.debounce, Duration::from_millis(250));
        assert_eq!(c.settings.expiration, Duration::from_secs(1800));
        assert_eq!(c.settings.reconcile_every, Duration::ZERO);
        assert_eq!(c.settings.status_message.as_deref(), Some("On a call"));
        assert_eq!(
            c.mapping.ringing,
            PresenceAction::Set(graph_presence::PresenceState::BusyInACall)
        );

        let bad = Env::from_pairs([
            ("SYNC_DEBOUNCE_MS", "soon"),
            ("PRESENCE_EXPIRATION_MINUTES", "1"),
            ("MAPPING_FILE", "/nonexistent/mapping.toml"),
        ]);
        let text = EngineConfig::from_env(&bad).unwrap_err().to_string();
        for name in [
            "SYNC_DEBOUNCE_MS",
            "PRESENCE_EXPIRATION_MINUTES",
            "MAPPING_FILE",
        ] {
            assert!(text.contains(name), "{name} missing in {text}");
        }
    }

    #[test]
    fn prepare_takes_over_the_state_file() {
        let dir = tempfile::tempdir().unwrap();
        let state_file = dir.path().join("presence-state.json");
        let mut left = PersistedState::default();
        left.object_ids.insert(
            "alice@contoso.com".into(),
            "aaaaaaaa-0000-4000-8000-000000000001".into(),
        );
        left.users.insert(
            "alice@contoso.com".into(),
            AppliedRecord {
                extension: "1001".into(),
                applied: "Busy/InACall".into(),
                at_unix: 1.0,
                status_message: false,
            },
        );
        left.save(&state_file).unwrap();
        let path = state_file.to_string_lossy().into_owned();
        let c = EngineConfig::from_env(&Env::from_pairs([("PRESENCE_STATE_JSON", path.as_str())]))
            .unwrap();
        assert_eq!(c.run_options().state_file, Some(state_file.clone()));
        let exts = crate::extensions::parse_json(
            &dir.path().join("extensions.json"),
            r#"[{"extension":"1001","email":"alice@contoso.com"}]"#,
        )
        .unwrap();
        let t0 = Instant::now();
        let (mut engine, loaded) = c.prepare(&exts, t0).unwrap();
        assert_eq!(loaded.warning, None);
        assert_eq!(loaded.state.object_ids.len(), 1);
        engine.line_changed("1001", blf::LineState::Idle, t0);
        let cmds = engine.poll(t0);
        assert_eq!(cmds.len(), 1);
        assert_eq!(cmds[0].kind, PresenceCommandKind::Clear);
        assert_eq!(cmds[0].reason, Reason::Restart);
    }

    #[test]
    fn per_extension_mapping_overrides_the_default() {
        let dir = tempfile::tempdir().unwrap();
        let mapping = dir.path().join("1002.toml");
        std::fs::write(&mapping, "busy = \"DoNotDisturb/Presenting\"\n").unwrap();
        let list = format!(
            r#"[{{"extension":"1001","email":"alice@contoso.com"}},
               {{"extension":"1002","email":"bob@contoso.com","mapping":"{}"}}]"#,
            mapping.display()
        );
        let exts =
            crate::extensions::parse_json(&dir.path().join("extensions.json"), &list).unwrap();
        let c = EngineConfig::from_env(&Env::from_pairs([])).unwrap();
        let t0 = Instant::now();
        let mut engine = c.build_engine(&exts, t0).unwrap();
        engine.line_changed("1001", blf::LineState::Busy, t0);
        engine.line_changed("1002", blf::LineState::Busy, t0);
        let pairs: Vec<String> = engine
            .poll(t0)
            .iter()
            .map(|c| format!("{} {:?}", c.user, c.kind))
            .collect();
        assert!(
            pairs[0].contains("alice@contoso.com") && pairs[0].contains("BusyInACall"),
            "{pairs:?}"
        );
        assert!(
            pairs[1].contains("bob@contoso.com") && pairs[1].contains("DoNotDisturbPresenting"),
            "{pairs:?}"
        );
    }
}
