//! The instance's HA role in `/readyz` and `/status` (`HA_LEASE`).

use std::sync::Mutex;

use serde_json::json;

/// Why a standby is not ready, as reported by `/readyz`.
pub const STANDBY: &str = "standby: another instance holds the HA lease";

/// The role `/status` shows (`"role": "standby" | "active"`, the epoch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HaStatus {
    /// The lease's name.
    pub lease: String,
    /// The lease's epoch while active.
    pub epoch: Option<i64>,
}

impl HaStatus {
    /// Waiting for the lease.
    pub fn standby(lease: &str) -> Self {
        Self {
            lease: lease.to_owned(),
            epoch: None,
        }
    }

    /// Holding the lease with `epoch`.
    pub fn active(lease: &str, epoch: i64) -> Self {
        Self {
            lease: lease.to_owned(),
            epoch: Some(epoch),
        }
    }

    fn role(&self) -> &'static str {
        if self.epoch.is_some() {
            "active"
        } else {
            "standby"
        }
    }
}

#[derive(Debug, Default)]
pub(super) struct HaSlot(Mutex<Option<HaStatus>>);

impl HaSlot {
    pub(super) fn set(&self, status: Option<HaStatus>) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = status;
    }

    fn get(&self) -> Option<HaStatus> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(super) fn is_standby(&self) -> bool {
        self.get().is_some_and(|s| s.epoch.is_none())
    }

    /// `/status`'s fields: `role`, `epoch`, `lease`; `null`s without HA.
    pub(super) fn json(&self) -> (serde_json::Value, serde_json::Value) {
        match self.get() {
            None => (serde_json::Value::Null, serde_json::Value::Null),
            Some(s) => (
                json!(s.role()),
                json!({ "lease": s.lease, "epoch": s.epoch }),
            ),
        }
    }
}
