//! The benchmark's PBX and tenant: N extensions, each with a user in the
//! Graph emulator's directory.

use std::path::{Path, PathBuf};

use graph_emulator::{EmulatedUser, EmulatorConfig, GraphEmulator, RateLimit};

use crate::BenchError;

/// First extension number; extension `i` is `FIRST_EXTENSION + i`.
pub const FIRST_EXTENSION: u32 = 20_000;

/// N extensions and their users, with the extension list written to a
/// temporary directory (also the state file's home).
#[derive(Debug)]
pub struct Fixture {
    count: usize,
    dir: tempfile::TempDir,
}

impl Fixture {
    /// `count` extensions.
    pub fn new(count: usize) -> Result<Self, BenchError> {
        let dir = tempfile::Builder::new().prefix("blf-bench-").tempdir()?;
        let list: Vec<serde_json::Value> = (0..count)
            .map(|i| {
                serde_json::json!({
                    "extension": extension(i),
                    "email": upn(i),
                    "object_id": object_id(i),
                })
            })
            .collect();
        let text = serde_json::to_string(&list).map_err(|e| BenchError::setup(e.to_string()))?;
        std::fs::write(dir.path().join("extensions.json"), text)?;
        Ok(Self { count, dir })
    }

    /// How many extensions.
    pub fn count(&self) -> usize {
        self.count
    }

    /// The extension list (JSON).
    pub fn extensions_path(&self) -> PathBuf {
        self.dir.path().join("extensions.json")
    }

    /// A directory for state files and logs, removed with the fixture.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The emulator config: every user in the directory, optionally rate limited.
    pub fn emulator_config(&self, rate_limit: Option<RateLimit>) -> EmulatorConfig {
        let mut config = EmulatorConfig::default();
        config
            .users
            .extend((0..self.count).map(|i| EmulatedUser::new(&upn(i), &object_id(i))));
        config.rate_limit = rate_limit;
        // Long enough that no token is renewed during a run.
        config.token_lifetime = std::time::Duration::from_secs(24 * 3600);
        config
    }

    /// Starts the Graph emulator (needs a tokio runtime).
    pub async fn emulator(
        &self,
        rate_limit: Option<RateLimit>,
    ) -> Result<GraphEmulator, BenchError> {
        GraphEmulator::start(self.emulator_config(rate_limit))
            .await
            .map_err(|e| BenchError::setup(e.to_string()))
    }
}

/// The environment that points the service at the emulator (tenant, app,
/// secret, endpoints), as `run` reads it.
pub fn graph_env(emulator: &GraphEmulator) -> Vec<(String, String)> {
    let c = emulator.config();
    vec![
        ("AZURE_TENANT_ID".into(), c.tenant_id.clone()),
        ("AZURE_CLIENT_ID".into(), c.client_id.clone()),
        ("AZURE_CLIENT_SECRET".into(), c.client_secret.clone()),
        ("AZURE_AUTHORITY_HOST".into(), emulator.authority_url()),
        ("GRAPH_BASE_URL".into(), emulator.base_url()),
    ]
}

/// Extension number `i`.
pub fn extension(i: usize) -> String {
    (FIRST_EXTENSION as usize + i).to_string()
}

/// The index of an extension number, if it is one of ours.
pub fn index_of(extension: &str) -> Option<usize> {
    let n: usize = extension.parse().ok()?;
    n.checked_sub(FIRST_EXTENSION as usize)
}

/// The index of one of our object ids.
pub fn index_of_object_id(id: &str) -> Option<usize> {
    usize::from_str_radix(id.get(..8)?, 16).ok()
}

/// User `i`'s UPN.
pub fn upn(i: usize) -> String {
    format!("user{i}@contoso.com")
}

/// User `i`'s object id (a GUID).
pub fn object_id(i: usize) -> String {
    format!("{:08x}-0000-4000-8000-{:012x}", i, i)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_parses_as_the_service_reads_it() {
        let f = Fixture::new(3).unwrap();
        let list = sip_blf_sync::extensions::load(&f.extensions_path()).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[2].extension, extension(2));
        assert_eq!(list[2].user(), object_id(2));
        assert_eq!(index_of(&extension(2)), Some(2));
        assert_eq!(index_of_object_id(&object_id(12345)), Some(12345));
        assert!(graph_emulator::is_guid(&object_id(12345)));
    }
}
