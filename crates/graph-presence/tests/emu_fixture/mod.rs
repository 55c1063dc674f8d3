//! The Graph emulator and a client pointed at it, on a virtual clock, shared
//! by `against_emulator.rs` and `against_emulator_retries.rs`.
// Each test file uses a part of it (and of what it re-exports).
#![allow(dead_code, unused_imports, clippy::unwrap_used, clippy::expect_used)]

pub use graph_emulator::{
    EmulatorConfig, Fault, GraphEmulator, Operation, PresencePair, RateLimit,
};
pub use graph_presence::{
    refresh_interval, BudgetConfig, ClearOutcome, Credential, GraphClient, GraphConfig, GraphError,
    ManualClock, ObjectId, OperationOutcome, PresenceOperation, PresenceState, RetryPolicy,
    StatusMessageExpiry,
};
pub use std::sync::Arc;
pub use std::time::Duration;

pub const ALICE: &str = "aaaaaaaa-0000-4000-8000-000000000001";
pub const BOB: &str = "bbbbbbbb-0000-4000-8000-000000000002";
pub const CAROL_GUEST: &str = "carol_fabrikam.com#EXT#@contoso.onmicrosoft.com";
pub const HOUR: Option<Duration> = Some(Duration::from_secs(3600));

pub struct Fx {
    pub emu: Arc<GraphEmulator>,
    pub clock: ManualClock,
    pub graph: GraphClient,
}

pub fn alice() -> ObjectId {
    ObjectId::parse(ALICE).unwrap()
}

pub fn config_for(emu: &GraphEmulator) -> GraphConfig {
    let c = emu.config();
    config_as(emu, &c.tenant_id, &c.client_id)
}

/// The emulator's endpoints and secret, with this tenant and application.
pub fn config_as(emu: &GraphEmulator, tenant: &str, client: &str) -> GraphConfig {
    let secret = emu.config().client_secret.clone();
    GraphConfig::new(tenant, client, Credential::Secret(secret.into()))
        .with_authority_url(emu.authority_url())
        .with_graph_url(emu.base_url())
}

/// `retries` retries with no cap on the total wait short of an hour.
pub fn retrying(retries: u32) -> RetryPolicy {
    RetryPolicy::retries(retries)
        .with_max_retry_after(Duration::from_secs(300))
        .with_max_wait(Duration::from_secs(3600))
}

pub async fn fx_with(
    emu_cfg: EmulatorConfig,
    tweak: impl FnOnce(GraphConfig) -> GraphConfig,
) -> Fx {
    let emu = Arc::new(GraphEmulator::start(emu_cfg).await.unwrap());
    let clock = ManualClock::new();
    let weak = Arc::downgrade(&emu);
    clock.on_advance(move |d| {
        if let Some(e) = weak.upgrade() {
            e.advance(d)
        }
    });
    let cfg = tweak(config_for(&emu));
    let graph = GraphClient::with_clock(cfg, Arc::new(clock.clone())).unwrap();
    Fx { emu, clock, graph }
}

pub async fn fx() -> Fx {
    fx_with(EmulatorConfig::default(), |c| c).await
}

/// A client that retries by itself (it does not by default).
pub async fn fx_retrying(max_retries: u32) -> Fx {
    fx_with(EmulatorConfig::default(), |c| {
        c.with_retry_policy(retrying(max_retries))
    })
    .await
}
