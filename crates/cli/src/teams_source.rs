//! The Teams source: each person's Teams presence, read back from Microsoft
//! Graph and reported to the engine as [`Fact::Presence`].
//!
//! App-only presence subscriptions do not exist, so the source polls
//! `getPresencesByUserId` (650 ids per request: 1,300 people cost two
//! requests a cycle) every `TEAMS_POLL_SECONDS` (default 30). Each person's
//! address on system [`TEAMS`] is their key, [`Extension::user`] (the object
//! id when the list gives one, else the UPN, resolved once with the client's
//! cache); the directory lists it with [`crate::people::directory_with_teams`].
//! Only a presence that changed since the last poll is reported. A failed
//! poll is logged (at most every [`FAILURE_LOG_EVERY`]) and tried again the
//! next period; [`TeamsSource::poll_lag`] says how long ago a poll last
//! succeeded.
//!
//! The Graph reads share the client's request budget with the presence
//! writes, which go first.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use graph_presence::{GraphClient, GraphError, ObjectId, Presence, MAX_IDS_PER_PRESENCE_READ};
use sip_blf_engine::{Fact, Observation, Source, TeamsPresence};
use tokio::time::Instant;

use crate::extensions::Extension;
use crate::people::group_by_person;
use crate::problems::Problem;
use crate::settings::Env;

/// The system name of the Teams addresses.
pub const TEAMS: &str = "teams";

/// The setting for the poll period, in seconds.
pub const POLL_VAR: &str = "TEAMS_POLL_SECONDS";

/// The poll period when `TEAMS_POLL_SECONDS` is not set.
pub const DEFAULT_POLL: Duration = Duration::from_secs(30);

/// The shortest and longest poll period accepted, in seconds.
pub const POLL_RANGE: std::ops::RangeInclusive<u64> = 1..=3600;

/// A failed poll is logged at most this often (the first one always).
pub const FAILURE_LOG_EVERY: Duration = Duration::from_secs(300);

/// `TEAMS_POLL_SECONDS`: the poll period, or a problem naming the variable.
pub fn poll_interval(env: &Env) -> Result<Duration, Problem> {
    let Some(v) = env.get(POLL_VAR) else {
        return Ok(DEFAULT_POLL);
    };
    match v.parse::<u64>() {
        Ok(n) if POLL_RANGE.contains(&n) => Ok(Duration::from_secs(n)),
        _ => Err(Problem::in_var(
            POLL_VAR,
            format!(
                "{v:?} is not a whole number of seconds from {} to {} (default {})",
                POLL_RANGE.start(),
                POLL_RANGE.end(),
                DEFAULT_POLL.as_secs()
            ),
        )),
    }
}

/// What the source needs of Graph (the [`GraphClient`]; tests give a
/// stand-in to run the schedule in virtual time).
pub trait PresenceReader: Send + Sync + 'static {
    /// The object id of a UPN (or an object id as it is).
    fn resolve(&self, user: &str) -> impl Future<Output = Result<ObjectId, GraphError>> + Send;

    /// The presences of at most [`MAX_IDS_PER_PRESENCE_READ`] users, in one request.
    fn read(
        &self,
        ids: &[ObjectId],
    ) -> impl Future<Output = Result<Vec<Presence>, GraphError>> + Send;
}

impl PresenceReader for GraphClient {
    fn resolve(&self, user: &str) -> impl Future<Output = Result<ObjectId, GraphError>> + Send {
        self.resolve_user(user)
    }

    fn read(
        &self,
        ids: &[ObjectId],
    ) -> impl Future<Output = Result<Vec<Presence>, GraphError>> + Send {
        self.get_presences(ids)
    }
}

/// How the polls went, shared with [`PollStatus`] handles.
#[derive(Debug)]
struct PollState {
    started: Instant,
    last_success: Option<Instant>,
    failed_polls: u64,
}

/// How the Teams source's polls go, for `/status` (cheap to clone; stays
/// valid after the source moved into the engine).
#[derive(Debug, Clone)]
pub struct PollStatus(Arc<Mutex<PollState>>);

impl PollStatus {
    fn state(&self) -> std::sync::MutexGuard<'_, PollState> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Time since the last successful poll (since the start before the first).
    pub fn lag(&self) -> Duration {
        let state = self.state();
        Instant::now().saturating_duration_since(state.last_success.unwrap_or(state.started))
    }

    /// When a poll last succeeded.
    pub fn last_success(&self) -> Option<Instant> {
        self.state().last_success
    }

    /// Polls that failed since the start.
    pub fn failed_polls(&self) -> u64 {
        self.state().failed_polls
    }
}

/// What one poll did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PollOutcome {
    /// People whose presence changed (reported).
    pub changed: usize,
    /// Read requests sent.
    pub requests: usize,
    /// People not resolved to an object id (not in the tenant, a bad
    /// name): not read this time, looked up again next time.
    pub unresolved: usize,
    /// What went wrong, if anything (the poll then counts as failed): a
    /// read, or a lookup that failed for another reason than the user.
    pub error: Option<String>,
}

/// One person: their key and, once resolved, their object id.
#[derive(Debug)]
struct Person {
    key: String,
    id: Option<ObjectId>,
}

/// The Teams source (see the module docs).
pub struct TeamsSource<R: PresenceReader = GraphClient> {
    reader: R,
    people: Vec<Person>,
    interval: Duration,
    next_poll: Instant,
    last: HashMap<String, TeamsPresence>,
    queued: VecDeque<Observation>,
    status: PollStatus,
    last_logged: Option<Instant>,
    unlogged_failures: u64,
    /// A failure was logged since the last clean poll.
    failing: bool,
}

impl<R: PresenceReader> std::fmt::Debug for TeamsSource<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TeamsSource")
            .field("people", &self.people.len())
            .field("interval", &self.interval)
            .finish_non_exhaustive()
    }
}

impl TeamsSource<GraphClient> {
    /// Polls every person of `extensions` through `client` every `interval`
    /// (the first poll at once).
    pub fn new(client: GraphClient, extensions: &[Extension], interval: Duration) -> Self {
        let keys = group_by_person(extensions)
            .into_iter()
            .map(|(user, _)| user);
        Self::with_reader(client, keys, interval)
    }
}

impl<R: PresenceReader> TeamsSource<R> {
    /// Polls the people with `keys` (each once) through `reader`.
    pub fn with_reader(
        reader: R,
        keys: impl IntoIterator<Item = String>,
        interval: Duration,
    ) -> Self {
        let now = Instant::now();
        let mut people: Vec<Person> = Vec::new();
        for key in keys {
            if !people.iter().any(|p| p.key == key) {
                people.push(Person { key, id: None });
            }
        }
        Self {
            reader,
            people,
            interval: interval.max(Duration::from_millis(1)),
            next_poll: now,
            last: HashMap::new(),
            queued: VecDeque::new(),
            status: PollStatus(Arc::new(Mutex::new(PollState {
                started: now,
                last_success: None,
                failed_polls: 0,
            }))),
            last_logged: None,
            unlogged_failures: 0,
            failing: false,
        }
    }

    /// Time since the last successful poll (since the start before the first).
    pub fn poll_lag(&self) -> Duration {
        self.status.lag()
    }

    /// A handle on the poll status that outlives handing the source over.
    pub fn status(&self) -> PollStatus {
        self.status.clone()
    }

    /// Polls once now: resolves who is not yet resolved, reads everyone's
    /// presence and queues an observation for each change (handed out by
    /// [`Source::next`]).
    pub async fn poll_once(&mut self) -> PollOutcome {
        let mut errors: Vec<String> = Vec::new();
        let mut unresolved: Vec<String> = Vec::new();
        for person in self.people.iter_mut().filter(|p| p.id.is_none()) {
            match self.reader.resolve(&person.key).await {
                Ok(id) => person.id = Some(id),
                // This user's own problem: the others are read all the same.
                Err(e @ (GraphError::NotFound { .. } | GraphError::InvalidInput(_))) => {
                    unresolved.push(format!("{}: {e}", person.key));
                }
                Err(e) => errors.push(format!("{}: {e}", person.key)),
            }
        }
        let mut keys_of: HashMap<String, Vec<usize>> = HashMap::new();
        let mut ids: Vec<ObjectId> = Vec::new();
        for (at, person) in self.people.iter().enumerate() {
            if let Some(id) = &person.id {
                let slot = keys_of.entry(id.as_str().to_ascii_lowercase()).or_default();
                if slot.is_empty() {
                    ids.push(id.clone());
                }
                slot.push(at);
            }
        }
        let mut outcome = PollOutcome {
            changed: 0,
            requests: 0,
            unresolved: unresolved.len(),
            error: None,
        };
        for chunk in ids.chunks(MAX_IDS_PER_PRESENCE_READ) {
            outcome.requests += 1;
            let presences = match self.reader.read(chunk).await {
                Ok(p) => p,
                Err(e) => {
                    errors.push(e.to_string());
                    continue;
                }
            };
            let at = Instant::now().into_std();
            for presence in presences {
                let Some(people) = keys_of.get(&presence.id.to_ascii_lowercase()) else {
                    continue;
                };
                let now = TeamsPresence::new(presence.availability, presence.activity);
                for &person in people {
                    let key = &self.people[person].key;
                    if self.last.get(key) == Some(&now) {
                        continue;
                    }
                    self.last.insert(key.clone(), now.clone());
                    self.queued.push_back(Observation::new(
                        TEAMS,
                        key.clone(),
                        Fact::Presence(now.clone()),
                        at,
                    ));
                    outcome.changed += 1;
                }
            }
        }
        if !errors.is_empty() {
            outcome.error = Some(errors.join("; "));
        }
        self.record(&outcome, &unresolved);
        outcome
    }

    /// Updates the status; logs failures and unresolved users (at most
    /// every [`FAILURE_LOG_EVERY`]) and the first clean poll after them.
    fn record(&mut self, outcome: &PollOutcome, unresolved: &[String]) {
        let now = Instant::now();
        {
            let mut state = self.status.state();
            match &outcome.error {
                None => state.last_success = Some(now),
                Some(_) => state.failed_polls += 1,
            }
        }
        if outcome.error.is_none() && unresolved.is_empty() {
            if self.failing {
                tracing::info!(source = TEAMS, "reading Teams presence works again");
                self.failing = false;
            }
            return;
        }
        let due = self
            .last_logged
            .is_none_or(|t| now.saturating_duration_since(t) >= FAILURE_LOG_EVERY);
        if !due {
            self.unlogged_failures += 1;
            return;
        }
        // Graph's errors carry no token or secret; user names are no secret.
        tracing::warn!(
            source = TEAMS,
            error = outcome.error.as_deref().unwrap_or("none"),
            unresolved = %unresolved.join("; "),
            not_logged_since = self.unlogged_failures,
            retry_in_s = self.interval.as_secs(),
            "reading Teams presence failed; trying again next period"
        );
        self.last_logged = Some(now);
        self.unlogged_failures = 0;
        self.failing = true;
    }

    async fn next_observation(&mut self) -> Option<Observation> {
        loop {
            if let Some(observation) = self.queued.pop_front() {
                return Some(observation);
            }
            tokio::time::sleep_until(self.next_poll).await;
            // The next period starts from the planned time; after a slow
            // poll it starts now, not in a burst of catch-up polls.
            self.next_poll = (self.next_poll + self.interval).max(Instant::now());
            self.poll_once().await;
        }
    }
}

impl<R: PresenceReader> Source for TeamsSource<R> {
    fn name(&self) -> &str {
        TEAMS
    }

    /// Cancel-safe between polls; a poll cut short is done again at the
    /// next period.
    fn next(&mut self) -> impl Future<Output = Option<Observation>> + Send {
        self.next_observation()
    }
}

#[cfg(test)]
#[path = "teams_source_tests.rs"]
mod tests;
