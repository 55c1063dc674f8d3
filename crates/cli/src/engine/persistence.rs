//! The state file while the presence engine runs: a journal line per
//! change (the write-ahead record before a call), folded into the snapshot
//! now and then off the loop.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::{
    tokio_now, AppliedRecord, Engine, PresenceCommand, PresenceCommandKind, PresenceSink,
    StateStore,
};

/// How often the state file is looked at even without much journal: the
/// object ids looked up since the last fold are saved then.
const CHECKPOINT_EVERY: Duration = Duration::from_secs(600);

fn object_ids(sink: &impl PresenceSink) -> BTreeMap<String, String> {
    sink.object_ids().into_iter().collect()
}

/// How long a failed fold of the state journal waits before the next try.
const FOLD_RETRY: Duration = Duration::from_secs(60);

/// The state file while the loop runs: a journal line per change, folded
/// into the snapshot now and then off the loop.
pub(super) struct Persistence {
    path: Option<PathBuf>,
    pub(super) store: Option<StateStore>,
    pub(super) next_checkpoint: Instant,
    /// Object ids in the last snapshot (a new one is worth a fold).
    saved_ids: usize,
    /// A record could not be written (or the store was down): the next
    /// record writes every user's, so nothing stays out of date.
    resync: bool,
    /// A failed fold is not tried again before this.
    fold_retry_at: Option<Instant>,
}

impl Persistence {
    pub(super) fn open(path: Option<PathBuf>, sink: &impl PresenceSink) -> Self {
        let mut p = Self {
            path,
            store: None,
            next_checkpoint: tokio_now() + CHECKPOINT_EVERY,
            saved_ids: 0,
            resync: false,
            fold_retry_at: None,
        };
        p.reopen(sink);
        // At the start the store holds what the engine was restored from.
        p.resync = false;
        p
    }

    fn reopen(&mut self, sink: &impl PresenceSink) {
        let Some(path) = &self.path else { return };
        let ids = object_ids(sink);
        self.saved_ids = ids.len();
        match StateStore::open(path, ids) {
            Ok(store) => {
                self.store = Some(store);
                // What changed while the store was down is written with the next record.
                self.resync = true;
            }
            Err(e) => tracing::error!(
                "cannot save the presence state: {e}; a restart could not correct what \
                 this run sets (retried every {} minutes)",
                CHECKPOINT_EVERY.as_secs() / 60
            ),
        }
    }

    /// Records the current state of the commands' users (with `sets_only`,
    /// of those the commands set: the write-ahead before a call).
    pub(super) fn record(
        &mut self,
        engine: &Engine,
        commands: &[PresenceCommand],
        sets_only: bool,
    ) {
        let Some(store) = &mut self.store else {
            self.resync = true;
            return;
        };
        if self.resync {
            let all = engine.applied_records();
            let cleared = engine.users().filter(|u| !all.contains_key(*u));
            let entries = all
                .iter()
                .map(|(u, r)| (u.as_str(), Some(r)))
                .chain(cleared.map(|u| (u, None)));
            match store.record(entries) {
                Ok(()) => self.resync = false,
                Err(e) => tracing::warn!("cannot save the presence state: {e}"),
            }
            return;
        }
        let mut users: Vec<(&str, &str)> = commands
            .iter()
            .filter(|c| !sets_only || matches!(c.kind, PresenceCommandKind::Set { .. }))
            .map(|c| (c.extension.as_str(), c.user.as_str()))
            .collect();
        users.dedup();
        let records: Vec<(&str, Option<AppliedRecord>)> = users
            .into_iter()
            .map(|(ext, user)| (user, engine.applied_record(ext, user)))
            .collect();
        if let Err(e) = store.record(records.iter().map(|(u, r)| (*u, r.as_ref()))) {
            tracing::warn!("cannot save the presence state: {e}");
            self.resync = true;
        }
    }

    /// Folds the journal into the snapshot when it has grown, and every
    /// [`CHECKPOINT_EVERY`] when something changed.
    pub(super) fn checkpoint(&mut self, sink: &impl PresenceSink) {
        let now = tokio_now();
        let periodic = now >= self.next_checkpoint;
        if periodic {
            self.next_checkpoint = now + CHECKPOINT_EVERY;
            if self.store.is_none() {
                self.reopen(sink);
                return;
            }
        }
        let Some(store) = &mut self.store else { return };
        if !store.compaction_due() && !periodic {
            return;
        }
        if self.fold_retry_at.is_some_and(|t| now < t) {
            return;
        }
        let ids = object_ids(sink);
        if store.compaction_due() || store.journal_lines() > 0 || ids.len() != self.saved_ids {
            self.saved_ids = ids.len();
            self.fold_retry_at = None;
            if let Err(e) = store.compact(ids) {
                tracing::warn!(
                    "cannot save the presence state: {e}; trying again in {} s",
                    FOLD_RETRY.as_secs()
                );
                self.fold_retry_at = Some(now + FOLD_RETRY);
            }
        }
    }

    /// At the stop: the engine's whole state and the object ids into the
    /// snapshot.
    pub(super) fn close(self, engine: &Engine, sink: &impl PresenceSink) {
        let Some(store) = self.store else { return };
        let records = engine.applied_records();
        let result = store.close(
            records.iter().map(|(u, r)| (u.as_str(), Some(r))),
            object_ids(sink),
        );
        if let Err(e) = result {
            tracing::warn!("cannot save the presence state: {e}");
        }
    }
}
