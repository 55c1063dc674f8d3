//! The state file (`PRESENCE_STATE_JSON`): the object-id cache and what was
//! last applied per user, so a restart (even after `kill -9`) can correct a
//! presence left behind.
//!
//! Written atomically: a temporary file in the same directory, `fsync`, then
//! `rename` over the old file (and an `fsync` of the directory), so a crash
//! leaves either the old or the new file, never a torn one. A file that cannot
//! be parsed is set aside as `<name>.corrupt-<unix seconds>` and reported; the
//! service starts from an empty state instead of failing.

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
    /// Loads `path`. Missing file → empty state, no warning. Unreadable or
    /// unparsable file → empty state, the file renamed to
    /// `<name>.corrupt-<unix seconds>`, and a warning naming both.
    pub fn load(path: &Path, now: SystemTime) -> Loaded {
        let text = match std::fs::metadata(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Loaded::default(),
            Err(e) => {
                return Loaded {
                    state: Self::default(),
                    warning: Some(format!(
                        "state file {}: cannot read ({e}); starting without it",
                        path.display()
                    )),
                }
            }
            Ok(m) if m.len() > MAX_STATE_FILE_BYTES => {
                Err(format!("larger than {MAX_STATE_FILE_BYTES} bytes"))
            }
            Ok(_) => std::fs::read(path).map_err(|e| e.to_string()),
        };
        let parsed = text.and_then(|bytes| {
            serde_json::from_slice::<PersistedState>(&bytes).map_err(|e| e.to_string())
        });
        match parsed {
            Ok(state) => Loaded {
                state,
                warning: None,
            },
            Err(reason) => {
                let aside = corrupt_name(path, now);
                let moved = match std::fs::rename(path, &aside) {
                    Ok(()) => format!("set aside as {}", aside.display()),
                    Err(e) => format!("could not be set aside ({e})"),
                };
                Loaded {
                    state: Self::default(),
                    warning: Some(format!(
                        "state file {} is corrupt ({reason}); {moved}; starting from an empty state",
                        path.display()
                    )),
                }
            }
        }
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
            let mut f = std::fs::File::create(&tmp)?;
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
