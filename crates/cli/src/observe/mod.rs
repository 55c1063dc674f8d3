//! What the service shows about itself: counters and gauges for `/metrics`
//! (Prometheus text format), per-extension status for `/status`, and the
//! readiness behind `/readyz`. One [`Telemetry`] handle is shared (cheap to
//! clone) by the SIP source, the engine and the sinks.

use std::time::{Duration, SystemTime};

use blf::LineState;

/// Where one extension's subscription stands, as shown in `/status` and `/metrics`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SubscriptionStatus {
    /// Not subscribed yet (paced, or waiting to retry).
    Pending,
    /// Active at the PBX.
    Active,
    /// Failed; retried later.
    Failed,
    /// Ended by the PBX; subscribing again.
    Terminated,
}

/// Outcome of one Graph call, a label of `graph_calls_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CallOutcome {
    /// 2xx.
    Ok,
    /// 429.
    Throttled,
    /// Anything else.
    Error,
}

/// The shared handle.
#[derive(Debug, Clone, Default)]
pub struct Telemetry {}

impl Telemetry {
    /// A fresh set of metrics and status.
    pub fn new() -> Self {
        Self::default()
    }
    /// The SIP registration is (or is no longer) in force.
    pub fn set_registered(&self, _registered: bool) {}
    /// A valid Graph token is (or is no longer) held.
    pub fn set_token_valid(&self, _valid: bool) {}
    /// An extension is configured (with its user); shown in `/status` from the start.
    pub fn add_extension(&self, _extension: &str, _user: &str) {}
    /// A subscription changed state.
    pub fn set_subscription(&self, _extension: &str, _status: SubscriptionStatus) {}
    /// A NOTIFY for `extension` arrived at `at`.
    pub fn notify_received(&self, _extension: &str, _at: SystemTime) {}
    /// A NOTIFY body could not be parsed.
    pub fn parse_error(&self, _extension: &str) {}
    /// The extension's line state is now `state`.
    pub fn set_line_state(&self, _extension: &str, _state: LineState) {}
    /// The presence we hold for the extension's user, as text (`Busy/InACall`, `cleared`…).
    pub fn set_presence(&self, _extension: &str, _presence: &str) {}
    /// One Graph call finished (`operation`: `setPresence`, `clearPresence`, `batch`, …).
    pub fn graph_call(&self, _operation: &str, _outcome: CallOutcome) {}
    /// Time from a NOTIFY's arrival to the Graph request it caused.
    pub fn notify_to_graph(&self, _latency: Duration) {}
    /// Whether the service is ready: registered and holding a valid token.
    pub fn is_ready(&self) -> bool {
        false
    }
    /// The `/status` document.
    pub fn status_json(&self) -> serde_json::Value {
        serde_json::Value::Null
    }
    /// The `/metrics` text (Prometheus exposition format).
    pub fn metrics_text(&self) -> String {
        String::new()
    }
}
