//! [`StateStore`]: how the running service keeps the state file current
//! without rewriting it for every change.
//!
//! Each change is one line appended to the journal (a `write` of ~150 bytes,
//! so a `kill -9` right after it loses nothing); a thread of its own
//! `fdatasync`s the journal at most every [`JOURNAL_SYNC_EVERY`], taking every append
//! made meanwhile, so the loop never waits for the disk and a power cut loses
//! at most that much. (A sync per append cost the loop's core a VM exit
//! each: at 5,000 NOTIFYs a second NOTIFYs were answered late. Waking that
//! thread per append, to tell it, was 3 % of the loop's core at 15,000: an
//! append wakes it only when no sync is pending.) Now and then the
//! journal is rotated (`<file>.journal` → `<file>.journal.old`, a new journal
//! started) and a second thread folds the old one into the snapshot. At a stop
//! everything is folded into the snapshot and the journals are removed.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::state::{
    create_private, journal_path, old_journal_path, read_journal, read_snapshot, set_aside,
    AppliedRecord, JournalEntry, JournalHeader, StateError,
};

/// Longest time an appended journal line waits for its `fdatasync`.
pub const JOURNAL_SYNC_EVERY: Duration = Duration::from_millis(50);

/// Journal lines after which the journal is folded into the snapshot (about
/// 3 MiB; at 10,000 users a fold takes some 20 ms on its own thread).
pub const COMPACT_AFTER_LINES: usize = 20_000;

/// The state file of a running service: snapshot plus journal.
///
/// ```
/// use std::collections::BTreeMap;
/// use sip_blf_sync::engine::{AppliedRecord, PersistedState, StateStore};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("presence-state.json");
/// let mut store = StateStore::open(&path, BTreeMap::new())?;
/// let busy = AppliedRecord {
///     extension: "1001".into(),
///     applied: "Busy/InACall".into(),
///     at_unix: 1_795_000_000.0,
///     status_message: false,
/// };
/// store.record([("alice@contoso.com", Some(&busy))])?;
/// // Already there for the next start, even if the process were killed now.
/// let loaded = PersistedState::load(&path, std::time::SystemTime::now());
/// assert_eq!(loaded.state.users["alice@contoso.com"], busy);
/// store.close([], BTreeMap::new())?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct StateStore {
    path: PathBuf,
    journal: Arc<File>,
    /// The journal's length after the last whole write.
    len: u64,
    /// A failed write left a fragment at the end.
    torn: bool,
    generation: u64,
    lines: usize,
    buf: Vec<u8>,
    syncs: Arc<SyncQueue>,
    flusher: Option<JoinHandle<()>>,
    fold: Option<JoinHandle<Result<(), StateError>>>,
}

impl StateStore {
    /// Takes over the state file at `path`: folds what an earlier run left in
    /// journals into the snapshot (adding `object_ids`), then starts a new
    /// journal. Creates the directory if needed.
    pub fn open(path: &Path, object_ids: BTreeMap<String, String>) -> Result<Self, StateError> {
        let generation = fold(path, None, object_ids)?;
        let journal = start_journal(path, generation + 1)?;
        let len = journal_len(path, &journal)?;
        let journal = Arc::new(journal);
        let syncs = Arc::new(SyncQueue::default());
        let queue = syncs.clone();
        let flusher = std::thread::Builder::new()
            .name("state-flush".into())
            .spawn(move || flush_loop(&queue))
            .map_err(|source| io_error(path, source))?;
        Ok(Self {
            path: path.to_path_buf(),
            journal,
            len,
            torn: false,
            generation: generation + 1,
            lines: 0,
            buf: Vec::new(),
            syncs,
            flusher: Some(flusher),
            fold: None,
        })
    }

    /// Appends the users' records as they now stand (`None`: the user has no
    /// record any more) in one write; the disk sync follows on another thread.
    pub fn record<'a>(
        &mut self,
        entries: impl IntoIterator<Item = (&'a str, Option<&'a AppliedRecord>)>,
    ) -> Result<(), StateError> {
        self.buf.clear();
        if std::mem::take(&mut self.torn) {
            self.buf.push(b'\n');
        }
        for (user, record) in entries {
            let entry = JournalEntry {
                user: user.to_owned(),
                record: record.cloned(),
            };
            serde_json::to_writer(&mut self.buf, &entry).map_err(|e| StateError::Encode {
                path: journal_path(&self.path),
                message: e.to_string(),
            })?;
            self.buf.push(b'\n');
            self.lines += 1;
        }
        if self.buf.is_empty() {
            return Ok(());
        }
        if let Err(e) = (&*self.journal).write_all(&self.buf) {
            // A part-written line would run into the next one: cut it off.
            // Should that fail too, the next write starts on a line of its
            // own, and the fragment is one damaged line the reader skips.
            if self.journal.set_len(self.len).is_err() {
                self.torn = true;
            }
            return Err(io_error(&journal_path(&self.path), e));
        }
        self.len += self.buf.len() as u64;
        self.syncs.request(&self.journal);
        Ok(())
    }

    /// Makes the following writes fail (a handle that cannot write), or
    /// mends that: for tests of what a failed write leaves.
    #[cfg(test)]
    pub(crate) fn fail_writes(&mut self, fail: bool) {
        let journal = journal_path(&self.path);
        let file = if fail {
            File::open(&journal)
        } else {
            std::fs::OpenOptions::new().append(true).open(&journal)
        };
        if let Ok(file) = file {
            self.journal = Arc::new(file);
        }
    }

    /// Lines in the journal not yet folded into the snapshot.
    pub fn journal_lines(&self) -> usize {
        self.lines
    }

    /// Whether the journal has grown enough to be folded.
    pub fn compaction_due(&self) -> bool {
        self.lines >= COMPACT_AFTER_LINES
    }

    /// Starts folding the journal into the snapshot (with `object_ids`) on a
    /// thread of its own; does nothing while an earlier fold still runs. An
    /// error of the last fold is returned (the journal it left is folded again).
    pub fn compact(&mut self, object_ids: BTreeMap<String, String>) -> Result<(), StateError> {
        if self.fold.as_ref().is_some_and(|h| !h.is_finished()) {
            return Ok(());
        }
        let last = self.fold.take().map(join_fold).unwrap_or(Ok(()));
        let old = old_journal_path(&self.path);
        // A journal an earlier fold could not take is folded before the
        // current one is rotated onto its name.
        if !old.exists() {
            let current = journal_path(&self.path);
            std::fs::rename(&current, &old).map_err(|e| io_error(&old, e))?;
            let next = start_journal(&self.path, self.generation + 1)
                .and_then(|j| Ok((journal_len(&self.path, &j)?, j)));
            let (len, journal) = match next {
                Ok(next) => next,
                Err(e) => {
                    // Go on appending to the journal as it was, under its name.
                    let _ = std::fs::rename(&old, &current);
                    return Err(e);
                }
            };
            self.journal = Arc::new(journal);
            self.len = len;
            self.torn = false;
            self.generation += 1;
            self.lines = 0;
        }
        let upto = self.generation - 1;
        let path = self.path.clone();
        let handle = std::thread::Builder::new()
            .name("state-fold".into())
            .spawn(move || fold(&path, Some(upto), object_ids).map(|_| ()))
            .map_err(|e| io_error(&self.path, e))?;
        self.fold = Some(handle);
        last
    }

    /// At a stop: appends the final `records` (the whole state as the engine
    /// holds it), waits for a running fold, folds everything into the
    /// snapshot with `object_ids` and removes the journals.
    pub fn close<'a>(
        mut self,
        records: impl IntoIterator<Item = (&'a str, Option<&'a AppliedRecord>)>,
        object_ids: BTreeMap<String, String>,
    ) -> Result<(), StateError> {
        let recorded = self.record(records);
        let folded = self.fold.take().map(join_fold).unwrap_or(Ok(()));
        let last = fold(&self.path, None, object_ids).map(|_| ());
        recorded.and(folded).and(last)
    }
}

impl Drop for StateStore {
    fn drop(&mut self) {
        // The flush thread syncs what is pending at once, then ends.
        self.syncs.close();
        if let Some(h) = self.flusher.take() {
            let _ = h.join();
        }
    }
}

fn journal_len(path: &Path, journal: &File) -> Result<u64, StateError> {
    journal
        .metadata()
        .map(|m| m.len())
        .map_err(|e| io_error(&journal_path(path), e))
}

/// Syncs the directory of `path`, so that a rename or a new file in it
/// outlives a power cut (best effort: not every filesystem allows it).
fn sync_dir(path: &Path) {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
    }
}

fn io_error(path: &Path, source: std::io::Error) -> StateError {
    StateError::Io {
        path: path.to_path_buf(),
        source,
    }
}

fn join_fold(handle: JoinHandle<Result<(), StateError>>) -> Result<(), StateError> {
    handle.join().unwrap_or_else(|_| {
        Err(StateError::Encode {
            path: PathBuf::from("state-fold"),
            message: "the fold thread panicked".into(),
        })
    })
}

/// Creates the journal of `generation` (replacing any file of that name)
/// with its header line.
fn start_journal(path: &Path, generation: u64) -> Result<File, StateError> {
    let journal = journal_path(path);
    let mut header =
        serde_json::to_vec(&JournalHeader { generation }).map_err(|e| StateError::Encode {
            path: journal.clone(),
            message: e.to_string(),
        })?;
    header.push(b'\n');
    let mut file = create_private(&journal).map_err(|e| io_error(&journal, e))?;
    file.write_all(&header).map_err(|e| io_error(&journal, e))?;
    // Appends from here on: every write goes to the end.
    drop(file);
    sync_dir(path);
    std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .map_err(|e| io_error(&journal, e))
}

/// Folds the journals up to generation `upto` (all of them when `None`) into
/// the snapshot, adds `object_ids` (they win over the file's), writes the
/// snapshot atomically and removes the journals it took. Returns the
/// generation the snapshot now holds.
fn fold(
    path: &Path,
    upto: Option<u64>,
    object_ids: BTreeMap<String, String>,
) -> Result<u64, StateError> {
    // The load at start set aside a snapshot it could not use; one that
    // cannot be read now (an I/O error) must not be overwritten with less.
    let mut state = read_snapshot(path)
        .map_err(|reason| {
            io_error(
                path,
                std::io::Error::other(format!("cannot fold the journal into it: {reason}")),
            )
        })?
        .unwrap_or_default();
    let mut taken = Vec::new();
    let mut journals: Vec<_> = [old_journal_path(path), journal_path(path)]
        .into_iter()
        .filter_map(|p| match read_journal(&p) {
            Some(j) => Some((j, p)),
            None => {
                // Not the journal being appended to while the service runs.
                if upto.is_none() || p == old_journal_path(path) {
                    set_aside_unreadable(&p);
                }
                None
            }
        })
        .filter(|(j, _)| upto.is_none_or(|u| j.generation <= u))
        .collect();
    for (j, _) in &journals {
        if let Some(w) = &j.warning {
            tracing::warn!("{w}");
        }
    }
    journals.sort_by_key(|(j, _)| j.generation);
    for (journal, file) in journals {
        if journal.generation > state.journal_generation {
            state.replay(journal.generation, journal.entries);
        }
        taken.push(file);
    }
    if let Some(u) = upto {
        state.journal_generation = state.journal_generation.max(u);
    }
    state.object_ids.extend(object_ids);
    state.save(path)?;
    for file in taken {
        let _ = std::fs::remove_file(file);
    }
    Ok(state.journal_generation)
}

/// A journal file that exists but has no readable header (or cannot be
/// read) is moved aside, not truncated by the next journal, and reported.
/// An empty one (a start cut off before its header) is simply dropped.
fn set_aside_unreadable(journal: &Path) {
    if std::fs::metadata(journal).is_ok_and(|m| m.len() > 0) {
        // Moved first: a log macro does not evaluate its arguments when the
        // level is off.
        let warning = set_aside(
            journal,
            std::time::SystemTime::now(),
            "no readable journal header",
        );
        tracing::warn!("{warning}");
    }
}

/// Journals with appends not yet synced, shared with the flush thread.
#[derive(Debug, Default)]
struct SyncQueue {
    pending: Mutex<PendingSyncs>,
    wake: Condvar,
}

#[derive(Debug, Default)]
struct PendingSyncs {
    files: Vec<Arc<File>>,
    closed: bool,
}

impl SyncQueue {
    fn lock(&self) -> MutexGuard<'_, PendingSyncs> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Asks for `file` to be synced; wakes the flush thread only if it had
    /// nothing pending (a pending sync covers this append too).
    fn request(&self, file: &Arc<File>) {
        let mut q = self.lock();
        if q.files.iter().any(|f| Arc::ptr_eq(f, file)) {
            return;
        }
        q.files.push(file.clone());
        if q.files.len() == 1 {
            self.wake.notify_one();
        }
    }

    fn close(&self) {
        self.lock().closed = true;
        self.wake.notify_one();
    }
}

/// Syncs the journals asked for, at most once per [`JOURNAL_SYNC_EVERY`]: the
/// appends that come in before a sync are all covered by it. Once the store
/// is closed it syncs what is pending without waiting and ends.
fn flush_loop(queue: &SyncQueue) {
    let mut last_sync: Option<Instant> = None;
    let mut q = queue.lock();
    loop {
        while q.files.is_empty() && !q.closed {
            q = queue.wake.wait(q).unwrap_or_else(PoisonError::into_inner);
        }
        if q.files.is_empty() {
            return;
        }
        let due = last_sync.map_or_else(Instant::now, |t| t + JOURNAL_SYNC_EVERY);
        while !q.closed {
            let now = Instant::now();
            if now >= due {
                break;
            }
            q = queue
                .wake
                .wait_timeout(q, due - now)
                .unwrap_or_else(PoisonError::into_inner)
                .0;
        }
        // Taken before syncing: an append after this asks for a sync of its own.
        let files = std::mem::take(&mut q.files);
        drop(q);
        for file in &files {
            if let Err(e) = file.sync_data() {
                tracing::warn!("cannot sync the state journal to disk: {e}");
            }
        }
        last_sync = Some(Instant::now());
        q = queue.lock();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::PersistedState;
    use std::time::SystemTime;

    fn record(applied: &str) -> AppliedRecord {
        AppliedRecord {
            extension: "1001".into(),
            applied: applied.into(),
            at_unix: 1_795_000_000.0,
            status_message: false,
        }
    }

    fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(u, i)| ((*u).to_owned(), (*i).to_owned()))
            .collect()
    }

    fn names(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }

    fn load(path: &Path) -> PersistedState {
        let loaded = PersistedState::load(path, SystemTime::now());
        assert_eq!(loaded.warning, None);
        loaded.state
    }

    #[test]
    fn a_journal_seen_under_both_names_counts_once_with_its_later_lines() {
        // What a load can see when a rotation falls between its two reads.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        let line = |user: &str| {
            serde_json::to_string(&JournalEntry {
                user: user.into(),
                record: Some(record("Busy/InACall")),
            })
            .unwrap()
        };
        let mut current = start_journal(&path, 1).unwrap();
        writeln!(current, "{}", line("alice@c.com")).unwrap();
        std::fs::copy(journal_path(&path), old_journal_path(&path)).unwrap();
        let mut old = std::fs::OpenOptions::new()
            .append(true)
            .open(old_journal_path(&path))
            .unwrap();
        writeln!(old, "{}", line("bob@c.com")).unwrap();
        let loaded = PersistedState::load(&path, SystemTime::now());
        assert_eq!(loaded.state.users.len(), 2, "{:?}", loaded.state.users);
        assert_eq!(loaded.state.journal_generation, 1);
    }

    #[test]
    fn a_failed_write_does_not_run_into_the_next_record() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        let mut store = StateStore::open(&path, BTreeMap::new()).unwrap();
        let writable = store.journal.clone();
        // A handle that cannot write: the append fails, and so does the cut.
        store.journal = Arc::new(File::open(journal_path(&path)).unwrap());
        let busy = record("Busy/InACall");
        assert!(store.record([("bob@c.com", Some(&busy))]).is_err());
        // As if part of the line had reached the file.
        (&*writable).write_all(br#"{"user":"bo"#).unwrap();
        store.journal = writable;
        store.record([("alice@c.com", Some(&busy))]).unwrap();
        let loaded = PersistedState::load(&path, SystemTime::now());
        assert_eq!(loaded.state.users["alice@c.com"], busy);
        assert!(loaded.warning.is_some_and(|w| w.contains("line 2")));
    }

    #[test]
    fn an_unreadable_journal_is_set_aside_not_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        std::fs::write(journal_path(&path), b"not a journal header\n").unwrap();
        let store = StateStore::open(&path, BTreeMap::new()).unwrap();
        let aside: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with("presence-state.json.journal.corrupt-"))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        let kept = dir.path().join(&aside[0]);
        assert_eq!(std::fs::read(kept).unwrap(), b"not a journal header\n");
        drop(store);
    }

    #[test]
    fn a_snapshot_that_cannot_be_read_is_not_folded_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        // A directory where the snapshot should be: reading it fails.
        std::fs::create_dir(&path).unwrap();
        let err = StateStore::open(&path, BTreeMap::new()).unwrap_err();
        assert!(err.to_string().contains("cannot fold"), "{err}");
        assert!(path.is_dir(), "left as it was");
    }

    #[test]
    fn a_pending_sync_covers_later_appends_and_a_close_drains_it() {
        let dir = tempfile::tempdir().unwrap();
        let a = Arc::new(File::create(dir.path().join("a")).unwrap());
        let b = Arc::new(File::create(dir.path().join("b")).unwrap());
        let queue = Arc::new(SyncQueue::default());
        queue.request(&a);
        queue.request(&a);
        queue.request(&b);
        assert_eq!(
            queue.lock().files.len(),
            2,
            "one sync per journal, however many appends"
        );
        queue.close();
        let flusher = {
            let queue = queue.clone();
            std::thread::spawn(move || flush_loop(&queue))
        };
        flusher.join().unwrap();
        assert!(
            queue.lock().files.is_empty(),
            "closing syncs what is pending, then ends"
        );
    }

    #[test]
    fn every_record_is_readable_at_once_and_a_stop_leaves_only_the_snapshot() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        let mut store = StateStore::open(&path, ids(&[("alice@c.com", "id-a")])).unwrap();
        let busy = record("Busy/InACall");
        store.record([("alice@c.com", Some(&busy))]).unwrap();
        store.record([("bob@c.com", Some(&busy))]).unwrap();
        store.record([("bob@c.com", None)]).unwrap();
        let state = load(&path);
        assert_eq!(state.users.len(), 1);
        assert_eq!(state.users["alice@c.com"], busy);
        assert_eq!(state.object_ids["alice@c.com"], "id-a");
        assert_eq!(store.journal_lines(), 3);

        let clear = record("clear");
        store
            .close(
                [("alice@c.com", Some(&clear))],
                ids(&[("bob@c.com", "id-b")]),
            )
            .unwrap();
        assert_eq!(names(dir.path()), vec!["presence-state.json"]);
        let state = load(&path);
        assert_eq!(state.users["alice@c.com"], clear);
        assert_eq!(
            state.object_ids,
            ids(&[("alice@c.com", "id-a"), ("bob@c.com", "id-b")])
        );
    }

    #[test]
    fn a_journal_left_by_a_killed_run_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        let mut store = StateStore::open(&path, BTreeMap::new()).unwrap();
        let busy = record("Busy/InACall");
        store.record([("alice@c.com", Some(&busy))]).unwrap();
        // As after kill -9: no close; the journal stays, and a write was torn.
        std::mem::forget(store);
        let mut torn = std::fs::OpenOptions::new()
            .append(true)
            .open(journal_path(&path))
            .unwrap();
        torn.write_all(br#"{"user":"bob@c.com","rec"#).unwrap();
        assert_eq!(load(&path).users["alice@c.com"], busy);

        let store = StateStore::open(&path, BTreeMap::new()).unwrap();
        // Folded into the snapshot; the new journal holds nothing yet.
        let snapshot = read_snapshot(&path).unwrap().unwrap();
        assert_eq!(snapshot.users["alice@c.com"], busy);
        assert_eq!(store.journal_lines(), 0);
        assert_eq!(load(&path).users.len(), 1);
        store.close([], BTreeMap::new()).unwrap();
    }

    #[test]
    fn compaction_folds_the_journal_while_records_go_on() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        let mut store = StateStore::open(&path, BTreeMap::new()).unwrap();
        let busy = record("Busy/InACall");
        let clear = record("clear");
        store.record([("alice@c.com", Some(&busy))]).unwrap();
        store.compact(ids(&[("alice@c.com", "id-a")])).unwrap();
        // Written while the fold may be running: lands in the new journal.
        store.record([("bob@c.com", Some(&busy))]).unwrap();
        assert_eq!(store.journal_lines(), 1);
        let state = load(&path);
        assert_eq!(state.users["alice@c.com"], busy);
        assert_eq!(state.users["bob@c.com"], busy);
        store.record([("alice@c.com", Some(&clear))]).unwrap();
        // A second compaction waits for the first and reports its outcome.
        while store.fold.as_ref().is_some_and(|h| !h.is_finished()) {
            std::thread::yield_now();
        }
        store.compact(BTreeMap::new()).unwrap();
        let state = load(&path);
        assert_eq!(state.users["alice@c.com"], clear);
        assert_eq!(state.users["bob@c.com"], busy);
        assert_eq!(state.object_ids["alice@c.com"], "id-a");
        store.close([], BTreeMap::new()).unwrap();
        assert_eq!(names(dir.path()), vec!["presence-state.json"]);
        let state = load(&path);
        assert_eq!(state.users["alice@c.com"], clear);
        assert_eq!(state.journal_generation, 3);
    }

    /// Every file of the state (snapshot, journals, a set-aside copy) is
    /// the owner's alone, whatever the umask; so is one a crash left
    /// world-readable and the next write reuses.
    #[cfg(unix)]
    #[test]
    fn every_state_file_is_created_owner_only() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        // A corrupt snapshot an older version left readable by everyone.
        std::fs::write(&path, "{ not json").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let loaded = PersistedState::load(&path, SystemTime::now());
        assert!(loaded.warning.is_some());
        // The temporary file a killed save of this process left behind.
        let tmp = dir
            .path()
            .join(format!(".presence-state.json.tmp-{}", std::process::id()));
        std::fs::write(&tmp, "").unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o644)).unwrap();

        let mut store = StateStore::open(&path, ids(&[("alice@c.com", "id-a")])).unwrap();
        store
            .record([("alice@c.com", Some(&record("Busy/InACall")))])
            .unwrap();
        store.compact(BTreeMap::new()).unwrap();
        store
            .record([("bob@c.com", Some(&record("Busy/InACall")))])
            .unwrap();
        for name in names(dir.path()) {
            let file = dir.path().join(&name);
            assert_eq!(mode(&file), 0o600, "{name}");
        }
        assert!(names(dir.path())
            .iter()
            .any(|n| n.starts_with("presence-state.json.corrupt-")));
        assert!(journal_path(&path).exists());
        store.close([], BTreeMap::new()).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_journal_older_than_the_snapshot_is_ignored() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        let store = StateStore::open(&path, BTreeMap::new()).unwrap();
        let generation = store.generation;
        store
            .close([("alice@c.com", Some(&record("clear")))], BTreeMap::new())
            .unwrap();
        // A stop that crashed after the final snapshot, before removing the
        // journal: the journal's Busy is older than the snapshot's clear.
        let mut stale = start_journal(&path, generation).unwrap();
        let line = serde_json::to_string(&JournalEntry {
            user: "alice@c.com".into(),
            record: Some(record("Busy/InACall")),
        })
        .unwrap();
        writeln!(stale, "{line}").unwrap();
        assert_eq!(load(&path).users["alice@c.com"].applied, "clear");
    }

    #[test]
    fn a_damaged_line_inside_the_journal_is_reported_and_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        let mut journal = start_journal(&path, 1).unwrap();
        journal.write_all(b"garbage\n").unwrap();
        let line = serde_json::to_string(&JournalEntry {
            user: "alice@c.com".into(),
            record: Some(record("Busy/InACall")),
        })
        .unwrap();
        writeln!(journal, "{line}").unwrap();
        let loaded = PersistedState::load(&path, SystemTime::now());
        let warning = loaded.warning.unwrap();
        assert!(warning.contains("line 2"), "{warning}");
        // The line after the damaged one is still alice's whole record.
        assert_eq!(loaded.state.users["alice@c.com"], record("Busy/InACall"));
    }
}
