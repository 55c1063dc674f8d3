//! The state file (`PRESENCE_STATE_JSON`): the object-id cache and what was
//! last applied per user, so a restart (even after `kill -9`) can correct a
//! presence left behind.
//!
//! Two parts:
//! - the snapshot, `<file>`: the whole state, written atomically (a temporary
//!   file in the same directory, `fsync`, `rename` over the old file, `fsync`
//!   of the directory), so a crash leaves either the old or the new file;
//! - the journal, `<file>.journal` (and `<file>.journal.old` while it is being
//!   folded into the snapshot): one JSON line per user whose record changed,
//!   appended by the running service ([`super::StateStore`]). Rewriting the
//!   whole snapshot for every change cost 8 ms at 10,000 users; a journal
//!   line costs a few microseconds.
//!
//! Each journal starts with a header line naming its generation; the snapshot
//! names the last generation folded into it. [`PersistedState::load`] reads the
//! snapshot and replays the newer journals in order, skipping a line that does
//! not parse (the torn end of a write a crash interrupted; a damaged line
//! inside is also reported).
//!
//! Every one of these files is created with mode 0600 (owner only), whatever
//! the umask: they name users and when they were on the phone.
//!
//! A snapshot that cannot be parsed is set aside as
//! `<name>.corrupt-<unix seconds>` and reported; the service starts from the
//! journals alone (or an empty state) instead of failing.
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

/// Largest state file read (a bigger one is treated as corrupt).
pub const MAX_STATE_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// What we last applied to one user.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppliedRecord {
    /// The extension the user belongs to.
    pub extension: String,
    /// `"Availability/Activity"` for a set presence, `"clear"` once cleared.
    pub applied: String,
    /// When it was applied (Unix seconds).
    pub at_unix: f64,
    /// A status message of ours is (or may be) shown: `STATUS_MESSAGE`
    /// during a call. Recorded with the set that carries it, so a restart
    /// after `kill -9` clears it with the presence. Absent in files of
    /// earlier versions (read as `false`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub status_message: bool,
}

/// The persisted state.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PersistedState {
    /// User (UPN or e-mail as configured) → Entra object id.
    #[serde(default)]
    pub object_ids: BTreeMap<String, String>,
    /// User → what we last applied.
    #[serde(default)]
    pub users: BTreeMap<String, AppliedRecord>,
    /// The last journal generation folded into this snapshot (0: none).
    #[serde(default)]
    pub journal_generation: u64,
}

/// The first line of a journal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct JournalHeader {
    /// Journals are replayed in generation order; those not newer than the
    /// snapshot's [`PersistedState::journal_generation`] are already in it.
    pub generation: u64,
}

/// One journal line: a user's record as it now stands (`None`: removed).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JournalEntry {
    /// The user.
    pub user: String,
    /// The record, or `None` when the user no longer has one.
    pub record: Option<AppliedRecord>,
}

/// The journal being appended to.
pub(crate) fn journal_path(path: &Path) -> PathBuf {
    with_suffix(path, ".journal")
}

/// The journal being folded into the snapshot.
pub(crate) fn old_journal_path(path: &Path) -> PathBuf {
    with_suffix(path, ".journal.old")
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(suffix);
    PathBuf::from(name)
}

/// A journal as read: its generation, its entries, and a warning when a line
/// other than the last could not be parsed (the last may be a torn write).
/// A damaged line is skipped, not the end: each line is a user's whole
/// record, so the lines after it are still right.
#[derive(Debug)]
pub(crate) struct JournalRead {
    pub generation: u64,
    pub entries: Vec<JournalEntry>,
    pub warning: Option<String>,
}

/// Reads a journal; `None` when it does not exist or has no valid header.
pub(crate) fn read_journal(path: &Path) -> Option<JournalRead> {
    let bytes = match std::fs::metadata(path) {
        Ok(m) if m.len() <= MAX_STATE_FILE_BYTES => std::fs::read(path).ok()?,
        _ => return None,
    };
    let mut lines = bytes.split(|b| *b == b'\n');
    let header: JournalHeader = serde_json::from_slice(lines.next()?).ok()?;
    let mut entries = Vec::new();
    let mut damaged = Vec::new();
    let rest: Vec<&[u8]> = lines.filter(|l| !l.is_empty()).collect();
    for (i, line) in rest.iter().enumerate() {
        match serde_json::from_slice::<JournalEntry>(line) {
            Ok(entry) => entries.push(entry),
            Err(e) if i + 1 < rest.len() => damaged.push(format!("line {} ({e})", i + 2)),
            Err(_) => {}
        }
    }
    let warning = (!damaged.is_empty()).then(|| {
        format!(
            "journal {}: skipped what does not parse: {}",
            path.display(),
            damaged.join(", ")
        )
    });
    Some(JournalRead {
        generation: header.generation,
        entries,
        warning,
    })
}

/// Errors writing the state file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// An I/O error, with the file concerned.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        #[source]
        source: std::io::Error,
    },
    /// Serialisation failed (not expected for this plain data).
    #[error("{path}: cannot encode the state: {message}")]
    Encode {
        /// The file.
        path: PathBuf,
        /// The cause.
        message: String,
    },
}

/// The result of loading: the state and, if the file was unusable, a warning
/// naming it and where it was moved.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Loaded {
    /// The state (empty when the file was missing or corrupt).
    pub state: PersistedState,
    /// A warning for the operator, if any.
    pub warning: Option<String>,
}

/// Seconds since the Unix epoch (0 for a clock before 1970).
pub fn unix_seconds(t: SystemTime) -> f64 {
    t.duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl PersistedState {
    /// Loads `path` and replays its journals. Missing file → empty state, no
    /// warning. Unreadable or unparsable snapshot → the file renamed to
    /// `<name>.corrupt-<unix seconds>`, a warning naming both, and the state
    /// the journals alone give.
    ///
    /// Safe while a service writes the files: a journal folded into the
    /// snapshot between two reads shows as a gap in the generations, and the
    /// files are read again.
    pub fn load(path: &Path, now: SystemTime) -> Loaded {
        let (mut state, mut warning) = match read_snapshot(path) {
            Ok(state) => (state.unwrap_or_default(), None),
            Err(reason) => (Self::default(), Some(set_aside(path, now, &reason))),
        };
        for attempt in 0..3 {
            // The current journal before the old one: a rotation renames the
            // current onto the old name, so in this order a rotation between
            // the two reads shows the same journal twice, never not at all.
            let mut journals: Vec<JournalRead> = [journal_path(path), old_journal_path(path)]
                .iter()
                .filter_map(|p| read_journal(p))
                .filter(|j| j.generation > state.journal_generation)
                .collect();
            // Of one journal read twice, the later read (more lines) wins.
            journals.sort_by(|a, b| {
                (a.generation, b.entries.len()).cmp(&(b.generation, a.entries.len()))
            });
            journals.dedup_by_key(|j| j.generation);
            let contiguous = journals
                .iter()
                .zip(state.journal_generation + 1..)
                .all(|(j, expected)| j.generation == expected);
            if !contiguous && attempt < 2 {
                // The snapshot changed under us (a fold finished): read it again.
                if let Ok(Some(newer)) = read_snapshot(path) {
                    state = newer;
                }
                continue;
            }
            for journal in journals {
                warning = warning.or(journal.warning);
                state.replay(journal.generation, journal.entries);
            }
            break;
        }
        Loaded { state, warning }
    }

    /// Applies a journal's entries on top of this state.
    pub(crate) fn replay(&mut self, generation: u64, entries: Vec<JournalEntry>) {
        for entry in entries {
            match entry.record {
                Some(record) => self.users.insert(entry.user, record),
                None => self.users.remove(&entry.user),
            };
        }
        self.journal_generation = self.journal_generation.max(generation);
    }

    /// Writes the state to `path` atomically (temp file in the same directory,
    /// fsync, rename, fsync of the directory). Creates the directory if needed.
    pub fn save(&self, path: &Path) -> Result<(), StateError> {
        let io = |source| StateError::Io {
            path: path.to_path_buf(),
            source,
        };
        let dir = match path.parent() {
            Some(d) if !d.as_os_str().is_empty() => d.to_path_buf(),
            _ => PathBuf::from("."),
        };
        std::fs::create_dir_all(&dir).map_err(io)?;
        let bytes = serde_json::to_vec_pretty(self).map_err(|e| StateError::Encode {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "presence-state.json".into());
        let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            let mut f = create_private(&tmp)?;
            f.write_all(&bytes)?;
            f.write_all(b"\n")?;
            f.sync_all()?;
            drop(f);
            std::fs::rename(&tmp, path)?;
            // Make the rename itself durable.
            if let Ok(d) = std::fs::File::open(&dir) {
                let _ = d.sync_all();
            }
            Ok(())
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            io(e)
        })
    }
}

/// The snapshot alone: `Ok(None)` when missing, `Err` with the reason when it
/// cannot be read or parsed.
pub(crate) fn read_snapshot(path: &Path) -> Result<Option<PersistedState>, String> {
    let bytes = match std::fs::metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(format!("cannot read: {e}")),
        Ok(m) if m.len() > MAX_STATE_FILE_BYTES => {
            return Err(format!("larger than {MAX_STATE_FILE_BYTES} bytes"))
        }
        Ok(_) => std::fs::read(path).map_err(|e| format!("cannot read: {e}"))?,
    };
    serde_json::from_slice(&bytes)
        .map(Some)
        .map_err(|e| e.to_string())
}

/// Moves an unusable state file (snapshot or journal) out of the way; the
/// warning for the operator.
pub(crate) fn set_aside(path: &Path, now: SystemTime, reason: &str) -> String {
    let aside = corrupt_name(path, now);
    let moved = match std::fs::rename(path, &aside) {
        Ok(()) => {
            // A file an older version wrote may be world-readable.
            let _ = make_private(&aside);
            format!("set aside as {}", aside.display())
        }
        Err(e) => format!("could not be set aside ({e})"),
    };
    format!(
        "state file {} is corrupt ({reason}); {moved}; starting without it",
        path.display()
    )
}

/// Creates (or truncates) `path` for writing, readable by its owner only:
/// the state names users and what their lines were doing, and a service run
/// outside its unit (no `UMask=`) would otherwise leave it world-readable.
/// A file already there (a temporary file a crash left) is made private too.
pub(crate) fn create_private(path: &Path) -> std::io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(PRIVATE_MODE);
    }
    let file = options.open(path)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        file.set_permissions(std::fs::Permissions::from_mode(PRIVATE_MODE))?;
    }
    Ok(file)
}

/// Mode of every state file: owner read and write only.
#[cfg(unix)]
pub const PRIVATE_MODE: u32 = 0o600;

/// Makes an existing file readable by its owner only (no-op off unix).
pub(crate) fn make_private(path: &Path) -> std::io::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(PRIVATE_MODE))?;
    }
    #[cfg(not(unix))]
    let _ = path;
    Ok(())
}

fn corrupt_name(path: &Path, now: SystemTime) -> PathBuf {
    let secs = now
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".corrupt-{secs}"));
    PathBuf::from(name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn sample() -> PersistedState {
        let mut s = PersistedState::default();
        s.object_ids.insert(
            "alice@contoso.com".into(),
            "aaaaaaaa-0000-4000-8000-000000000001".into(),
        );
        s.users.insert(
            "alice@contoso.com".into(),
            AppliedRecord {
                extension: "1001".into(),
                applied: "Busy/InACall".into(),
                at_unix: 1_795_000_000.5,
                status_message: false,
            },
        );
        s
    }

    #[test]
    fn round_trip() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/presence-state.json");
        sample().save(&path).unwrap();
        let loaded = PersistedState::load(&path, SystemTime::now());
        assert_eq!(loaded.warning, None);
        assert_eq!(loaded.state, sample());
    }

    #[test]
    fn missing_file_is_an_empty_state_without_warning() {
        let dir = tempfile::tempdir().unwrap();
        let loaded = PersistedState::load(&dir.path().join("none.json"), SystemTime::now());
        assert_eq!(loaded, Loaded::default());
    }

    #[test]
    fn atomic_write_replaces_the_file_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        std::fs::write(&path, "old").unwrap();
        sample().save(&path).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec!["presence-state.json".to_string()]);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.contains("Busy/InACall"), "{text}");
    }

    #[test]
    fn corrupt_file_is_reported_and_set_aside() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("presence-state.json");
        std::fs::write(&path, "{ not json").unwrap();
        let now = UNIX_EPOCH + Duration::from_secs(1_795_000_123);
        let loaded = PersistedState::load(&path, now);
        assert_eq!(loaded.state, PersistedState::default());
        let warning = loaded.warning.unwrap();
        assert!(warning.contains("presence-state.json"), "{warning}");
        assert!(warning.contains("corrupt"), "{warning}");
        assert!(!path.exists());
        let aside = dir.path().join("presence-state.json.corrupt-1795000123");
        assert_eq!(std::fs::read_to_string(aside).unwrap(), "{ not json");
        // A save afterwards works and the next load is clean.
        sample().save(&path).unwrap();
        assert_eq!(PersistedState::load(&path, now).warning, None);
    }
}
