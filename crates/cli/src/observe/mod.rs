//! What the service shows about itself: counters and gauges for `/metrics`
//! (Prometheus text format), per-extension status for `/status`, and the
//! readiness behind `/readyz`. One [`Telemetry`] handle is shared (cheap to
//! clone) by the SIP source, the engine and the sinks; [`serve`] puts it on
//! HTTP.
//!
//! Metrics are kept with the `prometheus-client` crate (the Prometheus
//! project's own Rust client: typed families, OpenMetrics text encoding).
//! Totals only in `/metrics` (bounded cardinality: no per-extension series);
//! the per-extension detail lives in `/status`.
//!
//! | metric | type | labels |
//! |---|---|---|
//! | `sip_registered` | gauge (0/1) | |
//! | `graph_token_valid` | gauge (0/1) | |
//! | `graph_token_expiry_timestamp_seconds` | gauge (Unix time, 0 if unknown) | |
//! | `ready` | gauge (0/1) | |
//! | `extensions_configured` | gauge | |
//! | `sip_subscriptions` | gauge | `state` = `pending`, `active`, `failed`, `terminated` |
//! | `blf_lines` | gauge | `state` = a [`LineState`] name, or `none` before the first NOTIFY |
//! | `sip_notifies_total` | counter | |
//! | `sip_notifies_rejected_total` | counter (answered 481) | `reason` = `unknown_dialog`, `dialog_mismatch`, `malformed` |
//! | `blf_parse_errors_total` | counter | |
//! | `sip_events_delayed_total`, `sip_notifies_replaced_total`, `sip_events_dropped_total` | counter (the SIP user agent's events the service was too slow to read) | |
//! | `sip_events_waiting` | gauge | |
//! | `graph_calls_total` | counter | `operation`, `outcome` = `ok`, `throttled`, `error` |
//! | `graph_throttled_total` | counter (429s) | |
//! | `notify_to_graph_seconds` | histogram, 0.1 ms … 10 s | |
//! | `sink_queue_depth`, `sink_in_flight` | gauge | `sink` |
//! | `sink_connected` | gauge (0/1) | `sink` |
//! | `sink_last_success_timestamp_seconds` | gauge (Unix time, 0 if never) | `sink` |
//! | `sink_write_failures_total` | counter | `sink` |
//!
//! ```
//! use sip_blf_sync::observe::{CallOutcome, SubscriptionStatus, Telemetry};
//!
//! let telemetry = Telemetry::new();
//! telemetry.add_extension("1001", "user1@contoso.com");
//! telemetry.set_subscription("1001", SubscriptionStatus::Active);
//! telemetry.graph_call("setPresence", CallOutcome::Ok);
//! assert!(!telemetry.is_ready());
//! telemetry.set_registered(true);
//! telemetry.set_token_valid(true);
//! assert!(telemetry.is_ready());
//! let text = telemetry.metrics_text();
//! assert!(text.contains(r#"graph_calls_total{operation="setPresence",outcome="ok"} 1"#));
//! assert_eq!(telemetry.status_json()["extensions"][0]["subscription"], "active");
//! ```

mod board;
mod ha;
mod http;
mod listener;
mod log_limit;
mod phones;
mod reverse;
mod sinks;
mod sip;
mod sip_events;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use blf::LineState;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use serde_json::json;

pub use board::SipSummary;
pub use ha::{HaStatus, STANDBY};
pub use log_limit::{
    LogLimiter, RejectedNotifies, RejectedSummary, WARNING_BURST, WARNING_INTERVAL,
};
pub use sip::sip_health;

pub use listener::{
    HttpLimits, DEFAULT_HEADER_READ_TIMEOUT, DEFAULT_IDLE_TIMEOUT, DEFAULT_MAX_CONNECTIONS,
};

pub(crate) use http::serve_router;
pub use http::{
    parse_http_listen, serve, serve_board, serve_with, HttpListenError, HttpServer,
    DEFAULT_HTTP_LISTEN, METRICS_CONTENT_TYPE,
};

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

impl SubscriptionStatus {
    /// Every status, in declaration order.
    pub const ALL: [SubscriptionStatus; 4] = [
        SubscriptionStatus::Pending,
        SubscriptionStatus::Active,
        SubscriptionStatus::Failed,
        SubscriptionStatus::Terminated,
    ];

    /// Lowercase name, as in `/status` and the `state` label of `sip_subscriptions`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Active => "active",
            Self::Failed => "failed",
            Self::Terminated => "terminated",
        }
    }
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

impl CallOutcome {
    /// Lowercase name, the `outcome` label of `graph_calls_total`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ok => "ok",
            Self::Throttled => "throttled",
            Self::Error => "error",
        }
    }
}

/// Why the service is not ready, as reported by `/readyz`.
pub const NOT_REGISTERED: &str = "not registered with the PBX";
/// Why the service is not ready, as reported by `/readyz`.
pub const NO_AMI: &str = "no current state from the PBX's manager interface (AMI)";
/// Why the service is not ready, as reported by `/readyz`.
pub const NO_TOKEN: &str = "no valid Graph token";

/// Upper bounds of the `notify_to_graph_seconds` buckets: 0.1 ms to 10 s.
pub const LATENCY_BUCKETS: [f64; 16] = [
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0,
];

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct StateLabel {
    state: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct GraphCallLabels {
    operation: String,
    outcome: &'static str,
}

/// What `/status` shows for one extension.
#[derive(Debug, Clone, Default)]
struct ExtensionStatus {
    user: Option<String>,
    subscription: Option<SubscriptionStatus>,
    line_state: Option<LineState>,
    presence: Option<String>,
    last_notify: Option<SystemTime>,
    notifies: u64,
    parse_errors: u64,
    /// Since when the subscription has been lost and why, while the line
    /// is `unknown` for it (`SIP_STALE_AFTER`).
    stale: Option<(SystemTime, String)>,
    /// The PBX's DND is on because this service set it (Teams → PBX).
    pbx_dnd_by_us: bool,
}

#[derive(Debug)]
struct Inner {
    registry: Registry,
    registered: AtomicBool,
    /// Whether the SIP source runs (else its registration is not needed).
    sip_source: AtomicBool,
    /// The AMI source's state, when it runs: current, and the last problem.
    ami: Mutex<Option<(bool, Option<String>)>>,
    token_valid: AtomicBool,
    graph_required: AtomicBool,
    registered_gauge: Gauge,
    token_gauge: Gauge,
    token_expiry_gauge: Gauge,
    token_expiry: Mutex<Option<SystemTime>>,
    ready_gauge: Gauge,
    extensions_gauge: Gauge,
    subscriptions: Family<StateLabel, Gauge>,
    lines: Family<StateLabel, Gauge>,
    notifies: Counter,
    rejected: Family<ReasonLabel, Counter>,
    parse_errors: Counter,
    graph_calls: Family<GraphCallLabels, Counter>,
    throttled: Counter,
    latency: Histogram,
    latency_hook: HookSlot,
    notify_hook: std::sync::OnceLock<NotifyHookSlot>,
    extensions: Mutex<BTreeMap<String, ExtensionStatus>>,
    sinks: sinks::SinkMetrics,
    reverse: reverse::ReverseTelemetry,
    phones: phones::PhoneTelemetry,
    sip_events: sip_events::SipEventTelemetry,
    board: board::BoardSlot,
    ha: ha::HaSlot,
}

/// Receives every NOTIFY→Graph latency sample (benchmarks keep the raw values).
pub type LatencyHook = Arc<dyn Fn(Duration) + Send + Sync>;

/// Receives the extension and arrival time of every NOTIFY (benchmarks match
/// them with the Graph requests they caused).
pub type NotifyHook = Arc<dyn Fn(&str, std::time::Instant) + Send + Sync>;

struct NotifyHookSlot(NotifyHook);

impl std::fmt::Debug for NotifyHookSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("set")
    }
}

#[derive(Default)]
struct HookSlot(std::sync::OnceLock<LatencyHook>);

impl std::fmt::Debug for HookSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(if self.0.get().is_some() {
            "set"
        } else {
            "unset"
        })
    }
}

/// The shared handle: metrics, per-extension status and readiness.
///
/// Cloning is cheap (one `Arc`); every method takes `&self` and may be called
/// from any thread or task at the same time.
#[derive(Debug, Clone)]
pub struct Telemetry {
    inner: Arc<Inner>,
}

impl Default for Telemetry {
    fn default() -> Self {
        Self::new()
    }
}

impl Telemetry {
    /// A fresh set of metrics and status.
    pub fn new() -> Self {
        let mut registry = Registry::default();
        let registered_gauge = Gauge::default();
        let token_gauge = Gauge::default();
        let token_expiry_gauge = Gauge::default();
        let ready_gauge = Gauge::default();
        let extensions_gauge = Gauge::default();
        let subscriptions = Family::<StateLabel, Gauge>::default();
        let lines = Family::<StateLabel, Gauge>::default();
        let notifies = Counter::default();
        let rejected = Family::<ReasonLabel, Counter>::default();
        let parse_errors = Counter::default();
        let graph_calls = Family::<GraphCallLabels, Counter>::default();
        let throttled = Counter::default();
        let latency = Histogram::new(LATENCY_BUCKETS);
        registry.register(
            "sip_registered",
            "1 while the SIP registration with the PBX is in force",
            registered_gauge.clone(),
        );
        registry.register(
            "graph_token_valid",
            "1 while a valid Microsoft Graph token is held",
            token_gauge.clone(),
        );
        registry.register(
            "graph_token_expiry_timestamp_seconds",
            "When the Graph token held expires (Unix time; 0 if none is known)",
            token_expiry_gauge.clone(),
        );
        registry.register(
            "ready",
            "1 while the service is ready (registered, token valid)",
            ready_gauge.clone(),
        );
        registry.register(
            "extensions_configured",
            "Extensions configured for monitoring",
            extensions_gauge.clone(),
        );
        registry.register(
            "sip_subscriptions",
            "Dialog subscriptions by state",
            subscriptions.clone(),
        );
        registry.register("blf_lines", "Monitored lines by line state", lines.clone());
        registry.register("sip_notifies", "NOTIFY requests received", notifies.clone());
        registry.register(
            "sip_notifies_rejected",
            "NOTIFY requests answered 481 (no subscription of ours), by reason",
            rejected.clone(),
        );
        // Every reason is always exported, at 0 until one comes.
        for kind in sip_ua::NotifyRejection::ALL {
            rejected
                .get_or_create(&ReasonLabel {
                    reason: kind.as_str(),
                })
                .inc_by(0);
        }
        registry.register(
            "blf_parse_errors",
            "NOTIFY bodies that could not be parsed",
            parse_errors.clone(),
        );
        registry.register(
            "graph_calls",
            "Microsoft Graph calls by operation and outcome",
            graph_calls.clone(),
        );
        registry.register(
            "graph_throttled",
            "Microsoft Graph calls answered 429 Too Many Requests",
            throttled.clone(),
        );
        registry.register(
            "notify_to_graph_seconds",
            "Time from a NOTIFY's arrival to the Graph request it caused",
            latency.clone(),
        );
        // Every subscription state is always exported, at 0 when unused.
        for status in SubscriptionStatus::ALL {
            subscriptions
                .get_or_create(&StateLabel {
                    state: status.as_str(),
                })
                .set(0);
        }
        let sink_metrics = sinks::SinkMetrics::default();
        sink_metrics.register(&mut registry);
        let reverse = reverse::ReverseTelemetry::default();
        reverse.register(&mut registry);
        let phones = phones::PhoneTelemetry::default();
        phones.register(&mut registry);
        let sip_events = sip_events::SipEventTelemetry::default();
        sip_events.register(&mut registry);
        lines.get_or_create(&StateLabel { state: "none" }).set(0);
        for state in LineState::ALL {
            lines
                .get_or_create(&StateLabel {
                    state: state.as_str(),
                })
                .set(0);
        }
        Self {
            inner: Arc::new(Inner {
                registry,
                registered: AtomicBool::new(false),
                sip_source: AtomicBool::new(true),
                ami: Mutex::new(None),
                token_valid: AtomicBool::new(false),
                graph_required: AtomicBool::new(true),
                registered_gauge,
                token_gauge,
                token_expiry_gauge,
                token_expiry: Mutex::new(None),
                ready_gauge,
                extensions_gauge,
                subscriptions,
                lines,
                notifies,
                rejected,
                parse_errors,
                graph_calls,
                throttled,
                latency,
                latency_hook: HookSlot::default(),
                notify_hook: std::sync::OnceLock::new(),
                extensions: Mutex::new(BTreeMap::new()),
                sinks: sink_metrics,
                reverse,
                phones,
                sip_events,
                board: board::BoardSlot::default(),
                ha: ha::HaSlot::default(),
            }),
        }
    }

    fn extensions(&self) -> MutexGuard<'_, BTreeMap<String, ExtensionStatus>> {
        // A panic elsewhere while holding the lock leaves plain data behind: keep going.
        self.inner
            .extensions
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `f` on the extension's entry (created if unknown) and moves the
    /// gauges derived from all entries by what changed, under one lock so they
    /// stay consistent. Constant time: a NOTIFY costs the same with 10 or
    /// 10,000 extensions.
    fn update(&self, extension: &str, f: impl FnOnce(&mut ExtensionStatus)) {
        let inner = &self.inner;
        let mut map = self.extensions();
        if !map.contains_key(extension) {
            map.insert(extension.to_owned(), ExtensionStatus::default());
            inner.extensions_gauge.inc();
            self.subscription_gauge(SubscriptionStatus::Pending).inc();
            self.line_gauge(None).inc();
        }
        let Some(entry) = map.get_mut(extension) else {
            return;
        };
        let before = (
            entry.subscription.unwrap_or(SubscriptionStatus::Pending),
            entry.line_state,
        );
        f(entry);
        let after = (
            entry.subscription.unwrap_or(SubscriptionStatus::Pending),
            entry.line_state,
        );
        if before.0 != after.0 {
            self.subscription_gauge(before.0).dec();
            self.subscription_gauge(after.0).inc();
        }
        if before.1 != after.1 {
            self.line_gauge(before.1).dec();
            self.line_gauge(after.1).inc();
        }
    }

    fn subscription_gauge(
        &self,
        status: SubscriptionStatus,
    ) -> impl std::ops::Deref<Target = Gauge> + '_ {
        self.inner.subscriptions.get_or_create(&StateLabel {
            state: status.as_str(),
        })
    }

    fn line_gauge(&self, state: Option<LineState>) -> impl std::ops::Deref<Target = Gauge> + '_ {
        self.inner.lines.get_or_create(&StateLabel {
            state: state.map_or("none", LineState::as_str),
        })
    }

    fn refresh_ready(&self) {
        let ready = self.is_ready();
        self.inner.ready_gauge.set(i64::from(ready));
    }

    /// The SIP registration is (or is no longer) in force.
    pub fn set_registered(&self, registered: bool) {
        self.inner.registered.store(registered, Ordering::SeqCst);
        self.inner.registered_gauge.set(i64::from(registered));
        self.refresh_ready();
    }
    /// A valid Graph token is (or is no longer) held.
    pub fn set_token_valid(&self, valid: bool) {
        self.inner.token_valid.store(valid, Ordering::SeqCst);
        self.inner.token_gauge.set(i64::from(valid));
        self.refresh_ready();
    }
    /// The Graph token held expires at `at` (`None`: no token). Shown in
    /// `/status` as `token_expires_in_seconds` and in `/metrics`.
    pub fn set_token_expiry(&self, at: Option<SystemTime>) {
        let unix = at
            .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        *self
            .inner
            .token_expiry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = at;
        self.inner.token_expiry_gauge.set(unix);
    }
    /// Whether readiness needs a Graph token (default `true`). A run without a
    /// tenant (`--dry-run`, log sink) sets `false`: it is then ready once registered.
    pub fn set_graph_required(&self, required: bool) {
        self.inner.graph_required.store(required, Ordering::SeqCst);
        self.refresh_ready();
    }
    /// An extension is configured (with its user); shown in `/status` from the start.
    pub fn add_extension(&self, extension: &str, user: &str) {
        self.update(extension, |e| {
            e.user = Some(user.to_owned());
            e.subscription.get_or_insert(SubscriptionStatus::Pending);
        });
    }
    /// A subscription changed state.
    pub fn set_subscription(&self, extension: &str, status: SubscriptionStatus) {
        self.update(extension, |e| e.subscription = Some(status));
    }
    /// A NOTIFY for `extension` arrived at `at`.
    pub fn notify_received(&self, extension: &str, at: SystemTime) {
        self.notify_arrived(extension, at, std::time::Instant::now());
    }
    /// A NOTIFY for `extension` arrived at `at`, read off the socket at
    /// `received` (monotonic; what the notify hook gets).
    pub fn notify_arrived(&self, extension: &str, at: SystemTime, received: std::time::Instant) {
        if let Some(hook) = self.inner.notify_hook.get() {
            (hook.0)(extension, received);
        }
        self.inner.notifies.inc();
        self.inner.board.notify(extension, at);
        self.update(extension, |e| {
            e.notifies += 1;
            // Out-of-order reports never move the time back.
            if e.last_notify.is_none_or(|prev| at > prev) {
                e.last_notify = Some(at);
            }
        });
    }
    /// A NOTIFY was rejected (481) for `kind`.
    pub fn notify_rejected(&self, kind: sip_ua::NotifyRejection) {
        self.inner
            .rejected
            .get_or_create(&ReasonLabel {
                reason: kind.as_str(),
            })
            .inc();
    }
    /// A NOTIFY body could not be parsed.
    pub fn parse_error(&self, extension: &str) {
        self.inner.parse_errors.inc();
        self.update(extension, |e| e.parse_errors += 1);
    }
    /// The extension's line state is now `state`.
    pub fn set_line_state(&self, extension: &str, state: LineState) {
        self.update(extension, |e| e.line_state = Some(state));
    }
    /// The extension's line state is unknown: its subscription has been lost
    /// since `since` because of `reason`. Shown in `/status` until [`clear_stale`](Self::clear_stale).
    pub fn set_stale(&self, extension: &str, since: SystemTime, reason: &str) {
        self.update(extension, |e| e.stale = Some((since, reason.to_owned())));
    }
    /// A NOTIFY brought the extension's line state back.
    pub fn clear_stale(&self, extension: &str) {
        self.update(extension, |e| e.stale = None);
    }
    /// The presence we hold for the extension's user, as text (`Busy/InACall`, `cleared`…).
    pub fn set_presence(&self, extension: &str, presence: &str) {
        self.inner.board.presence(extension, presence, true);
        self.update(extension, |e| e.presence = Some(presence.to_owned()));
    }
    /// One Graph call finished (`operation`: `setPresence`, `clearPresence`, `batch`, …).
    pub fn graph_call(&self, operation: &str, outcome: CallOutcome) {
        self.inner
            .graph_calls
            .get_or_create(&GraphCallLabels {
                operation: operation.to_owned(),
                outcome: outcome.as_str(),
            })
            .inc();
        if outcome == CallOutcome::Throttled {
            self.inner.throttled.inc();
        }
    }
    /// Time from a NOTIFY's arrival to the Graph request it caused.
    pub fn notify_to_graph(&self, latency: Duration) {
        self.inner.latency.observe(latency.as_secs_f64());
        if let Some(hook) = self.inner.latency_hook.0.get() {
            hook(latency);
        }
    }
    /// Also hands every [`notify_to_graph`](Self::notify_to_graph) sample to
    /// `hook` (the histogram keeps only buckets). Set once; later calls are
    /// ignored and return `false`.
    pub fn set_latency_hook(&self, hook: LatencyHook) -> bool {
        self.inner.latency_hook.0.set(hook).is_ok()
    }
    /// Also hands every [`notify_received`](Self::notify_received) to `hook`
    /// with the monotonic time the NOTIFY was read off the socket. Set once; later calls are ignored
    /// and return `false`.
    pub fn set_notify_hook(&self, hook: NotifyHook) -> bool {
        self.inner.notify_hook.set(NotifyHookSlot(hook)).is_ok()
    }
    /// What is missing for readiness, as the sentences `/readyz` shows
    /// ([`NOT_REGISTERED`], [`NO_TOKEN`]); empty when ready.
    pub fn readiness_problems(&self) -> Vec<&'static str> {
        let mut missing = Vec::new();
        if self.inner.ha.is_standby() {
            // A standby runs no source nor sink: nothing else applies.
            missing.push(ha::STANDBY);
            return missing;
        }
        if self.inner.sip_source.load(Ordering::SeqCst)
            && !self.inner.registered.load(Ordering::SeqCst)
        {
            missing.push(NOT_REGISTERED);
        }
        if self.ami().is_some_and(|(current, _)| !current) {
            missing.push(NO_AMI);
        }
        if self.inner.graph_required.load(Ordering::SeqCst)
            && !self.inner.token_valid.load(Ordering::SeqCst)
        {
            missing.push(NO_TOKEN);
        }
        missing
    }
    /// The HA role (`HA_LEASE`), shown in `/status` and, as standby, in `/readyz`.
    pub fn set_ha(&self, status: Option<HaStatus>) {
        self.inner.ha.set(status);
        self.refresh_ready();
    }
    /// Whether the SIP source runs (default); without it, registration is
    /// not needed for readiness.
    pub fn set_sip_source(&self, runs: bool) {
        self.inner.sip_source.store(runs, Ordering::SeqCst);
        self.refresh_ready();
    }
    /// The AMI source's state: `current` once logged in with the full state
    /// read; `problem`, the last connection problem. Readiness then needs
    /// `current`.
    pub fn set_ami_status(&self, current: bool, problem: Option<String>) {
        *self
            .inner
            .ami
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some((current, problem));
        self.refresh_ready();
    }
    fn ami(&self) -> Option<(bool, Option<String>)> {
        self.inner
            .ami
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }
    /// Whether the service is ready: registered and holding a valid token.
    pub fn is_ready(&self) -> bool {
        self.readiness_problems().is_empty()
    }
    /// The `/status` document, with ages computed against the current time.
    pub fn status_json(&self) -> serde_json::Value {
        self.status_json_at(SystemTime::now())
    }
    /// The `/status` document, with ages computed against `now`.
    ///
    /// ```json
    /// { "ready": false, "missing": ["no valid Graph token"],
    ///   "registered": true, "token_valid": false, "token_expires_in_seconds": null,
    ///   "graph_required": true,
    ///   "sources": [ { "name": "sip", "connected": true } ],
    ///   "sinks": [ { "name": "graph", "connected": true, "queue_depth": 0,
    ///       "in_flight": 0, "failures": 0, "last_success_unix": 1795000000.5,
    ///       "last_success_age_seconds": 2.0 } ],
    ///   "extensions": [ { "extension": "1001", "user": "user1@contoso.com",
    ///       "subscription": "active", "line_state": "busy", "presence": "Busy/InACall",
    ///       "last_notify_unix": 1795000000.25, "last_notify_age_seconds": 3.5,
    ///       "notifies": 4, "parse_errors": 0, "stale": null } ] }
    /// ```
    /// Fields not known yet are `null`; extensions are sorted by number.
    /// `stale`, while the line is unknown because its subscription has been
    /// lost too long: `{ "since_unix": …, "for_seconds": …, "reason": "…" }`.
    pub fn status_json_at(&self, now: SystemTime) -> serde_json::Value {
        let missing = self.readiness_problems();
        let token_expiry = *self
            .inner
            .token_expiry
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // Negative once expired.
        let token_expires_in = token_expiry.map(|t| match t.duration_since(now) {
            Ok(left) => left.as_secs_f64(),
            Err(past) => -past.duration().as_secs_f64(),
        });
        let extensions: Vec<serde_json::Value> = self
            .extensions()
            .iter()
            .map(|(extension, e)| {
                let unix = e
                    .last_notify
                    .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
                    .map(|d| d.as_secs_f64());
                // A NOTIFY stamped in the future (clock step) shows age 0, not an error.
                let age = e.last_notify.map(|t| {
                    now.duration_since(t)
                        .unwrap_or(Duration::ZERO)
                        .as_secs_f64()
                });
                json!({
                    "extension": extension,
                    "user": e.user,
                    "subscription": e.subscription,
                    "line_state": e.line_state,
                    "presence": e.presence,
                    "last_notify_unix": unix,
                    "last_notify_age_seconds": age,
                    "notifies": e.notifies,
                    "parse_errors": e.parse_errors,
                    "teams_presence_read": e.user.as_deref().and_then(|u| self.teams_read(u)),
                    "pbx_dnd_set_by_us": e.pbx_dnd_by_us,
                    "stale": e.stale.as_ref().map(|(since, reason)| json!({
                        "since_unix": since
                            .duration_since(UNIX_EPOCH)
                            .map_or(0.0, |d| d.as_secs_f64()),
                        "for_seconds": now
                            .duration_since(*since)
                            .unwrap_or(Duration::ZERO)
                            .as_secs_f64(),
                        "reason": reason,
                    })),
                })
            })
            .collect();
        let (role, ha) = self.inner.ha.json();
        json!({
            "ready": missing.is_empty(),
            "missing": missing,
            "role": role,
            "ha": ha,
            "registered": self.inner.registered.load(Ordering::SeqCst),
            "token_valid": self.inner.token_valid.load(Ordering::SeqCst),
            "token_expires_in_seconds": token_expires_in,
            "graph_required": self.inner.graph_required.load(Ordering::SeqCst),
            "sources": self.sources_json(),
            "teams_poll_lag_seconds": self.inner.reverse.lag(),
            "sinks": self.inner.sinks.status_json(now),
            "extensions": extensions,
        })
    }
    fn sources_json(&self) -> Vec<serde_json::Value> {
        let mut sources = Vec::new();
        if self.inner.sip_source.load(Ordering::SeqCst) {
            sources.push(json!({
                "name": "sip",
                "connected": self.inner.registered.load(Ordering::SeqCst),
            }));
        }
        if let Some((current, problem)) = self.ami() {
            sources.push(json!({ "name": "ami", "connected": current, "problem": problem }));
        }
        sources.extend(self.inner.phones.status_json());
        sources
    }
    /// Shows each sink of the engine's `board` (its name, connection,
    /// queue, failures, last success) in `/status` and `/metrics`. Set once;
    /// later calls are ignored.
    pub fn set_sink_board(&self, board: sip_blf_engine::SinkBoard) {
        self.inner.sinks.set_board(board);
    }
    /// The `/metrics` text (OpenMetrics text format, which Prometheus reads;
    /// serve it with [`METRICS_CONTENT_TYPE`]).
    pub fn metrics_text(&self) -> String {
        self.inner.sinks.refresh();
        self.inner.phones.refresh();
        self.inner.sip_events.refresh();
        let _ = self.inner.reverse.lag();
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would only drop the text.
        if prometheus_client::encoding::text::encode(&mut out, &self.inner.registry).is_err() {
            out.clear();
        }
        out
    }
}
