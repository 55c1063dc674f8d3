//! Two instances, one active (`HA_LEASE`): instances sharing a lease row in
//! PostgreSQL elect one active; the others wait as standby.
//!
//! - [`lease`]: the lease, sans-IO (when to ask, what answers mean, until
//!   when the active may write), tested in virtual time.
//! - [`store`]: the lease row (`ha_lease`), expiries on the database's clock.
//! - [`fence`]: the gate every sink write passes ([`Fence`], [`FencedSink`]).
//! - [`hold_lease`]: the task that drives the machine and keeps the gate.
//! - [`run`](serve::run): `run` with HA: standby, active, back to standby.
//!
//! See `docs/ha.md` for the design (lease rather than advisory lock,
//! fencing, the state rebuilt from the sources at takeover).

pub mod fence;
pub mod lease;
mod serve;
pub mod store;

use std::time::Duration;

pub use fence::{Fence, FencedSink};
pub use lease::{Answer, Change, LeaseMachine, LeaseTiming, Loss, Request, Role};
pub use serve::run;
pub use store::{LeaseStore, LeaseStoreError};

use crate::problems::{Problem, Problems};
use crate::settings::{Env, Secret};

/// `HA_TAKEOVER_SECONDS` when not set.
pub const DEFAULT_TAKEOVER: Duration = Duration::from_secs(15);
/// The accepted `HA_TAKEOVER_SECONDS`.
pub const TAKEOVER_BOUNDS: std::ops::RangeInclusive<u64> = 2..=600;

/// The HA settings. `Debug` never shows the password.
#[derive(Clone)]
pub struct HaSettings {
    /// `HA_LEASE`: the PostgreSQL URL (contains the password, if any).
    pub url: Secret,
    /// `HA_TAKEOVER_SECONDS`: the longest time from a failure to a takeover.
    pub takeover: Duration,
    /// `HA_NAME`: the lease's name, shared by the instances of one pair.
    pub name: String,
    /// This instance, as the lease row shows it (host, process, start time).
    pub holder: String,
}

impl std::fmt::Debug for HaSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HaSettings")
            .field("url", &self.redacted_url())
            .field("takeover", &self.takeover)
            .field("name", &self.name)
            .field("holder", &self.holder)
            .finish()
    }
}

impl HaSettings {
    /// Reads `HA_LEASE`, `HA_TAKEOVER_SECONDS` and `HA_NAME` (default
    /// `default_name`, e.g. the PBX's host); `Ok(None)` without `HA_LEASE`.
    pub fn from_env(env: &Env, default_name: &str) -> Result<Option<HaSettings>, Problems> {
        let mut problems = Problems::default();
        let takeover = match env.get("HA_TAKEOVER_SECONDS") {
            None => DEFAULT_TAKEOVER,
            Some(v) => match v.trim().parse::<u64>() {
                Ok(n) if TAKEOVER_BOUNDS.contains(&n) => Duration::from_secs(n),
                _ => {
                    problems.push(Problem::in_var(
                        "HA_TAKEOVER_SECONDS",
                        format!(
                            "{v:?} is not a whole number of seconds in {}..={}",
                            TAKEOVER_BOUNDS.start(),
                            TAKEOVER_BOUNDS.end()
                        ),
                    ));
                    DEFAULT_TAKEOVER
                }
            },
        };
        let Some(url) = env.get("HA_LEASE") else {
            for var in ["HA_TAKEOVER_SECONDS", "HA_NAME"] {
                if env.get(var).is_some() {
                    problems.push(Problem::in_var(
                        var,
                        "is set but HA_LEASE is not: set HA_LEASE=postgres://USER:PASSWORD@HOST:PORT/DB \
                         or remove it",
                    ));
                }
            }
            return problems.into_result(None);
        };
        let lower = url.to_ascii_lowercase();
        if !(lower.starts_with("postgres://") || lower.starts_with("postgresql://")) {
            problems.push(Problem::in_var(
                "HA_LEASE",
                "is not a PostgreSQL URL: use postgres://USER:PASSWORD@HOST:PORT/DB",
            ));
        }
        let name = env.get("HA_NAME").unwrap_or(default_name).trim().to_owned();
        if name.is_empty() {
            problems.push(Problem::in_var("HA_NAME", "is empty"));
        }
        let settings = HaSettings {
            url: Secret::new(url),
            takeover,
            name,
            holder: holder_id(),
        };
        problems.into_result(Some(settings))
    }

    /// `HA_LEASE` without its password.
    pub fn redacted_url(&self) -> String {
        crate::database::redact(self.url.expose())
    }

    /// The lease's timing.
    pub fn timing(&self) -> LeaseTiming {
        LeaseTiming::for_takeover(self.takeover)
    }
}

/// `host:pid:start` — unique per process, readable in the lease row.
fn holder_id() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_owned())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "host".to_owned());
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("{host}:{}:{started}", std::process::id())
}

/// Drives the lease until `stop` turns true (then gives an active lease
/// back): asks the database when due, keeps `fence` open exactly while the
/// lease is valid, and publishes every role change on `roles`.
pub async fn hold_lease(
    mut store: LeaseStore,
    timing: LeaseTiming,
    fence: Fence,
    roles: tokio::sync::watch::Sender<Role>,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    let now = crate::engine::tokio_now();
    let mut machine = LeaseMachine::new(timing, now);
    let mut warned = false;
    loop {
        if *stop.borrow() {
            break;
        }
        let now = crate::engine::tokio_now();
        let mut change = machine.tick(now);
        if let Some(request) = machine.request(now) {
            let answer = match store.ask(request).await {
                Ok(answer) => {
                    warned = false;
                    answer
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!("HA lease: the database did not answer: {e}");
                        warned = true;
                    }
                    Answer::Failed
                }
            };
            change = change.or(machine.answer(answer, crate::engine::tokio_now()));
        }
        // The gate first: nothing may write on a lease the machine gave up.
        match machine.role() {
            Role::Active { epoch, until } => fence.open_until(epoch, until),
            Role::Standby => fence.close(),
        }
        match change {
            Some(Change::Activated { epoch }) => {
                tracing::info!("HA lease taken (epoch {epoch})");
            }
            Some(Change::Lost { epoch, cause }) => {
                let why = match cause {
                    Loss::TakenOver => "another instance holds it",
                    Loss::Expired => "not renewed in time",
                };
                tracing::warn!("HA lease lost (epoch {epoch}): {why}; writes stopped");
            }
            None => {}
        }
        roles.send_if_modified(|r| {
            let now = machine.role();
            let changed = !same_role(*r, now);
            *r = now;
            changed
        });
        let wake = tokio::time::Instant::from_std(machine.next_deadline());
        tokio::select! {
            () = tokio::time::sleep_until(wake) => {}
            _ = stop.changed() => {}
        }
    }
    fence.close();
    if let Role::Active { epoch, .. } = machine.role() {
        match store.release(epoch).await {
            Ok(()) => tracing::info!("HA lease given back (epoch {epoch})"),
            Err(e) => tracing::warn!("HA lease: could not give it back ({e}); it expires"),
        }
    }
    roles.send_replace(Role::Standby);
}

/// The same role, ignoring the validity's end (extended by each renewal).
fn same_role(a: Role, b: Role) -> bool {
    match (a, b) {
        (Role::Standby, Role::Standby) => true,
        (Role::Active { epoch: x, .. }, Role::Active { epoch: y, .. }) => x == y,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(pairs: &[(&str, &str)]) -> Result<Option<HaSettings>, String> {
        HaSettings::from_env(&Env::from_pairs(pairs.iter().copied()), "pbx.example.com")
            .map_err(|p| p.to_string())
    }

    #[test]
    fn settings_defaults_bounds_and_no_password_shown() {
        assert!(settings(&[]).unwrap().is_none());
        let s = settings(&[("HA_LEASE", "postgres://blf:s3cret@db:5432/ha")])
            .unwrap()
            .unwrap();
        assert_eq!(s.takeover, DEFAULT_TAKEOVER);
        assert_eq!(s.name, "pbx.example.com");
        assert!(!format!("{s:?}").contains("s3cret"), "{s:?}");
        assert!(!s.redacted_url().contains("s3cret"));
        let s = settings(&[
            ("HA_LEASE", "postgresql://db/ha"),
            ("HA_TAKEOVER_SECONDS", "5"),
            ("HA_NAME", "pair-a"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(
            (s.takeover, s.name.as_str()),
            (Duration::from_secs(5), "pair-a")
        );
        let e = settings(&[("HA_LEASE", "sqlite://x"), ("HA_TAKEOVER_SECONDS", "1")]).unwrap_err();
        assert!(
            e.contains("HA_LEASE") && e.contains("HA_TAKEOVER_SECONDS"),
            "{e}"
        );
        let e = settings(&[("HA_NAME", "x")]).unwrap_err();
        assert!(
            e.contains("HA_NAME") && e.contains("HA_LEASE is not"),
            "{e}"
        );
    }
}
