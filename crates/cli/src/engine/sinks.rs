//! The two sinks: [`LogSink`] (print decisions, `--dry-run`) and
//! [`GraphSink`] (Microsoft Graph).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use graph_presence::{GraphClient, GraphError, ObjectId, OperationOutcome, PresenceOperation};

use super::command::{PresenceCommand, PresenceCommandKind, Reason};
use super::machine::Failure;
use super::PresenceSink;
use crate::observe::{CallOutcome, Telemetry};

/// A command could not be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SinkError {
    /// What went wrong (and, for a permanent failure, what to fix).
    pub message: String,
    /// Whether Graph throttled the call (429).
    pub throttled: bool,
    /// The server's `Retry-After` (of a 429 or a 5xx), if it gave one.
    pub retry_after: Option<Duration>,
    /// Retrying will not help until something is fixed (user gone,
    /// permission missing, credentials refused).
    pub permanent: bool,
}

impl SinkError {
    /// A failure that may go away by itself.
    pub fn transient(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            throttled: false,
            retry_after: None,
            permanent: false,
        }
    }

    /// A failure that needs a fix before a retry can succeed.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            permanent: true,
            ..Self::transient(message)
        }
    }

    /// How the engine should treat it.
    pub fn failure(&self) -> Failure {
        if self.permanent {
            Failure::Permanent
        } else {
            Failure::Transient {
                retry_after: self.retry_after,
            }
        }
    }
}

impl From<GraphError> for SinkError {
    fn from(e: GraphError) -> Self {
        // Throttled (429) or a server error (5xx) that said when to come back.
        let retry_after = e.retry_after();
        let message = match &e {
            GraphError::NotFound { .. } => format!(
                "{e}; the user is not in the tenant (deleted, or a wrong e-mail or object id \
                 in the extension list): fix the extension list"
            ),
            _ => e.to_string(),
        };
        Self {
            throttled: matches!(e, GraphError::Throttled { .. }),
            retry_after,
            permanent: !e.is_transient(),
            message,
        }
    }
}

/// Whether the error says that no valid token can be had (as opposed to a
/// failure of the call itself).
fn is_auth_failure(e: &GraphError) -> bool {
    matches!(
        e,
        GraphError::Token { .. } | GraphError::TokenTransport(_) | GraphError::Unauthorized { .. }
    )
}

fn outcome_of(e: &GraphError) -> CallOutcome {
    if matches!(e, GraphError::Throttled { .. }) {
        CallOutcome::Throttled
    } else {
        CallOutcome::Error
    }
}

/// One line describing a decision, e.g.
/// `1001 alice@contoso.com: setPresence Busy/InACall for 3600 s (change)`.
pub fn describe(command: &PresenceCommand) -> String {
    let what = match &command.kind {
        PresenceCommandKind::Set { pair, expiration } => {
            format!("setPresence {pair} for {} s", expiration.as_secs())
        }
        PresenceCommandKind::Clear => "clearPresence".to_owned(),
        PresenceCommandKind::StatusMessage { text } if text.is_empty() => {
            "setStatusMessage (clear)".to_owned()
        }
        PresenceCommandKind::StatusMessage { text } => format!("setStatusMessage {text:?}"),
    };
    format!(
        "{} {}: {what} ({})",
        command.extension,
        command.user,
        command.reason.as_str()
    )
}

/// Prints each decision instead of calling Graph (`--dry-run`), and keeps
/// them for inspection.
#[derive(Debug, Clone, Default)]
pub struct LogSink {
    lines: Arc<Mutex<Vec<String>>>,
    print: bool,
}

impl LogSink {
    /// A sink that prints each decision on standard output (and keeps it).
    pub fn printing() -> Self {
        Self {
            lines: Arc::default(),
            print: true,
        }
    }
    /// A sink that only keeps the decisions.
    pub fn quiet() -> Self {
        Self::default()
    }
    /// Every decision so far, as printed.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

impl PresenceSink for LogSink {
    async fn apply(&self, commands: &[PresenceCommand]) -> Vec<Result<(), SinkError>> {
        let mut lines = self.lines.lock().unwrap_or_else(|p| p.into_inner());
        commands
            .iter()
            .map(|c| {
                let line = describe(c);
                tracing::info!(target: "sip_blf_sync::decision", "{line}");
                if self.print {
                    println!("{line}");
                }
                lines.push(line);
                Ok(())
            })
            .collect()
    }
}

/// Applies commands with Microsoft Graph: users resolved to object ids
/// (cached; pre-filled from the state file or the extension list), one call
/// for a single command, `$batch` for several.
#[derive(Debug, Clone)]
pub struct GraphSink {
    client: GraphClient,
    telemetry: Telemetry,
}

impl GraphSink {
    /// A sink over `client`, reporting each call to `telemetry`.
    pub fn new(client: GraphClient, telemetry: Telemetry) -> Self {
        Self { client, telemetry }
    }

    /// Pre-fills the user → object id cache (invalid ids are skipped).
    pub fn seed<'a>(&self, ids: impl IntoIterator<Item = (&'a str, &'a str)>) {
        self.client.seed_user_cache(
            ids.into_iter()
                .filter_map(|(u, id)| Some((u.to_owned(), ObjectId::parse(id).ok()?))),
        );
    }

    /// Pre-fills the cache with the object ids of an earlier run's state file.
    pub fn seed_from(&self, state: &super::PersistedState) {
        self.seed(
            state
                .object_ids
                .iter()
                .map(|(u, id)| (u.as_str(), id.as_str())),
        );
    }

    /// The client.
    pub fn client(&self) -> &GraphClient {
        &self.client
    }

    /// Looks up the object id of every user not known yet, so that the first
    /// change of each line costs one Graph call, and a user missing from the
    /// tenant is reported at start. Returns the users that could not be
    /// looked up, with why.
    pub async fn warm_up(&self, users: &[String]) -> Vec<(String, SinkError)> {
        let mut failed = Vec::new();
        for user in users {
            if let Err(e) = self.resolve(user).await {
                failed.push((user.clone(), SinkError::from(e)));
            }
        }
        failed
    }

    /// Checks the token (the cached one unless it is about to expire, else a
    /// new one) and shows the outcome in `/readyz`, `/status` and `/metrics`.
    pub async fn refresh_token_status(&self) -> Result<(), GraphError> {
        match self.client.token_check().await {
            Ok(info) => {
                self.telemetry.set_token_valid(true);
                self.telemetry
                    .set_token_expiry(Some(SystemTime::now() + info.expires_in));
                Ok(())
            }
            Err(e) => {
                self.telemetry.set_token_valid(false);
                self.telemetry.set_token_expiry(None);
                Err(e)
            }
        }
    }

    async fn resolve(&self, user: &str) -> Result<ObjectId, GraphError> {
        // Per command: a look in the cache, not a copy of it.
        if let Some(id) = self.client.cached_user(user) {
            return Ok(id);
        }
        let r = self.client.resolve_user(user).await;
        self.telemetry.graph_call(
            "getUser",
            r.as_ref().err().map(outcome_of).unwrap_or(CallOutcome::Ok),
        );
        r
    }

    fn operation(command: &PresenceCommand, user: ObjectId) -> PresenceOperation {
        match &command.kind {
            PresenceCommandKind::Set { pair, expiration } => PresenceOperation::SetPresence {
                user,
                state: *pair,
                expiration: Some(*expiration),
            },
            PresenceCommandKind::Clear => PresenceOperation::ClearPresence { user },
            PresenceCommandKind::StatusMessage { text } => PresenceOperation::SetStatusMessage {
                user,
                message: text.clone(),
                expiry: None,
            },
        }
    }

    async fn single(&self, op: PresenceOperation) -> Result<(), GraphError> {
        match op {
            PresenceOperation::SetPresence {
                user,
                state,
                expiration,
            } => self.client.set_presence(&user, state, expiration).await,
            PresenceOperation::ClearPresence { user } => {
                self.client.clear_presence(&user).await.map(|_| ())
            }
            PresenceOperation::SetStatusMessage {
                user,
                message,
                expiry,
            } => {
                self.client
                    .set_status_message(&user, &message, expiry)
                    .await
            }
            PresenceOperation::GetPresence { user } => {
                self.client.get_presence(&user).await.map(|_| ())
            }
            other => Err(GraphError::InvalidInput(format!(
                "{other:?} is not an operation of this sink"
            ))),
        }
    }
}

impl PresenceSink for GraphSink {
    async fn apply(&self, commands: &[PresenceCommand]) -> Vec<Result<(), SinkError>> {
        let mut results: Vec<Option<Result<(), GraphError>>> = vec![None; commands.len()];
        let mut ops: Vec<(usize, PresenceOperation)> = Vec::new();
        for (i, c) in commands.iter().enumerate() {
            match self.resolve(&c.user).await {
                Ok(id) => ops.push((i, Self::operation(c, id))),
                Err(e) => {
                    if let Some(slot) = results.get_mut(i) {
                        *slot = Some(Err(e));
                    }
                }
            }
        }
        if ops.len() == 1 {
            if let Some((i, op)) = ops.pop() {
                let name = op.name();
                let r = self.single(op).await;
                self.telemetry.graph_call(
                    name,
                    r.as_ref().err().map(outcome_of).unwrap_or(CallOutcome::Ok),
                );
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(r);
                }
            }
        } else if !ops.is_empty() {
            let (indexes, list): (Vec<usize>, Vec<PresenceOperation>) = ops.into_iter().unzip();
            let answers = self.client.batch(list).await;
            for (i, (op, r)) in indexes.into_iter().zip(answers) {
                self.telemetry.graph_call(
                    op.name(),
                    r.as_ref().err().map(outcome_of).unwrap_or(CallOutcome::Ok),
                );
                let r: Result<OperationOutcome, GraphError> = r;
                if let Some(slot) = results.get_mut(i) {
                    *slot = Some(r.map(|_| ()));
                }
            }
        }
        let flat = results.iter().flatten();
        let auth_failed = flat.clone().any(|r| r.as_ref().is_err_and(is_auth_failure));
        let any_ok = flat.clone().any(Result::is_ok);
        if any_ok {
            // A call went through with a token: show it (cached, no request).
            let _ = self.refresh_token_status().await;
        } else if auth_failed {
            self.telemetry.set_token_valid(false);
            self.telemetry.set_token_expiry(None);
        }
        for (c, r) in commands.iter().zip(&results) {
            if matches!(r, Some(Ok(()))) {
                // Routine refreshes only at debug: they would flood the log.
                if matches!(c.reason, Reason::KeepAlive | Reason::Reconcile) {
                    tracing::debug!(target: "sip_blf_sync::decision", "{} applied", describe(c));
                } else {
                    tracing::info!(target: "sip_blf_sync::decision", "{} applied", describe(c));
                }
            }
        }
        results
            .into_iter()
            .map(|r| match r {
                Some(r) => r.map_err(SinkError::from),
                None => Err(SinkError::transient("no result")),
            })
            .collect()
    }

    async fn read_back(&self, users: &[String]) -> Result<Vec<(String, String)>, SinkError> {
        let mut ids = Vec::new();
        for u in users {
            ids.push((u.clone(), self.resolve(u).await.map_err(SinkError::from)?));
        }
        let list: Vec<ObjectId> = ids.iter().map(|(_, id)| id.clone()).collect();
        let r = self.client.get_presences(&list).await;
        self.telemetry.graph_call(
            "getPresencesByUserId",
            r.as_ref().err().map(outcome_of).unwrap_or(CallOutcome::Ok),
        );
        let presences = r?;
        Ok(ids
            .into_iter()
            .filter_map(|(user, id)| {
                let p = presences
                    .iter()
                    .find(|p| p.id.eq_ignore_ascii_case(id.as_str()))?;
                Some((user, format!("{}/{}", p.availability, p.activity)))
            })
            .collect())
    }

    fn object_ids(&self) -> HashMap<String, String> {
        self.client
            .cached_users()
            .iter()
            .map(|(u, id)| (u.to_owned(), id.as_str().to_owned()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use graph_presence::PresenceState;

    fn cmd(kind: PresenceCommandKind, reason: Reason) -> PresenceCommand {
        PresenceCommand {
            extension: "1001".into(),
            user: "alice@contoso.com".into(),
            kind,
            reason,
            caused_at: None,
        }
    }

    #[tokio::test]
    async fn log_sink_records_each_decision_and_never_fails() {
        let sink = LogSink::quiet();
        let shared = sink.clone();
        let commands = [
            cmd(
                PresenceCommandKind::Set {
                    pair: PresenceState::BusyInACall,
                    expiration: Duration::from_secs(3600),
                },
                Reason::Change,
            ),
            cmd(
                PresenceCommandKind::StatusMessage {
                    text: "On a call".into(),
                },
                Reason::Change,
            ),
            cmd(
                PresenceCommandKind::StatusMessage {
                    text: String::new(),
                },
                Reason::Change,
            ),
            cmd(PresenceCommandKind::Clear, Reason::Shutdown),
        ];
        let results = sink.apply(&commands).await;
        assert_eq!(results, vec![Ok(()); 4]);
        assert_eq!(
            shared.lines(),
            vec![
                "1001 alice@contoso.com: setPresence Busy/InACall for 3600 s (change)",
                "1001 alice@contoso.com: setStatusMessage \"On a call\" (change)",
                "1001 alice@contoso.com: setStatusMessage (clear) (change)",
                "1001 alice@contoso.com: clearPresence (shutdown)",
            ]
        );
        assert!(sink.object_ids().is_empty());
        assert_eq!(sink.read_back(&["x".into()]).await, Ok(Vec::new()));
    }
}
