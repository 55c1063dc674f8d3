//! `run` with `HA_LEASE`: standby (HTTP only) until the lease is ours, then
//! the whole service behind the write gate, back to standby when it is lost.

use std::time::Instant;

use tokio::sync::watch;

use super::{hold_lease, Fence, HaSettings, LeaseStore, Role};
use crate::observe::{self, HaStatus, Telemetry};
use crate::run::{run_until_ready, RunPlan};
use crate::settings::Env;

/// Runs the service as one of an HA pair until `shutdown` resolves: waits
/// as standby (serving `/healthz`, `/readyz` = 503 `standby`, `/status`),
/// runs the service while this instance holds the lease, and goes back to
/// standby the moment it is lost, without clearing anything (the new active
/// owns the presences). At `shutdown` the active stops as `run` does, then
/// gives the lease back.
pub async fn run(
    env: &Env,
    dry_run: bool,
    ha: HaSettings,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error>> {
    let mut http = observe::parse_http_listen(env.get("HTTP_LISTEN"))?;
    let timing = ha.timing();
    tracing::info!(
        "HA: lease {:?} in {} as {}; takeover within {:?}",
        ha.name,
        ha.redacted_url(),
        ha.holder,
        ha.takeover
    );
    let store = LeaseStore::new(
        ha.url.clone(),
        &ha.name,
        &ha.holder,
        timing.lease,
        timing.every,
    );
    let fence = Fence::new();
    let (roles_tx, mut roles) = watch::channel(Role::Standby);
    let (stop_lease, lease_stop) = watch::channel(false);
    let lease = tokio::spawn(hold_lease(
        store,
        timing,
        fence.clone(),
        roles_tx,
        lease_stop,
    ));
    let (stop_tx, stopped) = watch::channel(false);
    let signal = async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    };
    let service = async {
        loop {
            let telemetry = Telemetry::new();
            telemetry.set_ha(Some(HaStatus::standby(&ha.name)));
            let server = match http {
                Some(addr) => {
                    let server = observe::serve(addr, telemetry.clone())
                        .await
                        .map_err(|e| format!("HTTP_LISTEN {addr}: {e}"))?;
                    // Port 0: the active serves where the standby did.
                    http = Some(server.local_addr());
                    tracing::info!(
                        "HA standby: status on http://{}/status",
                        server.local_addr()
                    );
                    Some(server)
                }
                None => None,
            };
            tracing::info!("HA: standby, waiting for the lease");
            let waited = Instant::now();
            let mut stop = stopped.clone();
            let epoch = tokio::select! {
                r = roles.wait_for(|r| matches!(r, Role::Active { .. })) => match r.map(|r| *r) {
                    Ok(Role::Active { epoch, .. }) => Some(epoch),
                    _ => None,
                },
                _ = stop.wait_for(|s| *s) => None,
            };
            if let Some(server) = server {
                let _ = server.shutdown().await;
            }
            let Some(epoch) = epoch else {
                return Ok::<(), Box<dyn std::error::Error>>(());
            };
            tracing::info!(
                "HA: active (epoch {epoch}) after {:.3} s as standby: starting",
                waited.elapsed().as_secs_f64()
            );
            let mut plan = RunPlan::from_env(env, dry_run).map_err(|p| p.to_string())?;
            plan.set_fence(fence.clone());
            plan.set_http(http);
            let telemetry = Telemetry::new();
            telemetry.set_ha(Some(HaStatus::active(&ha.name, epoch)));
            let mut lost = roles.clone();
            let mut stop = stopped.clone();
            let until = async move {
                tokio::select! {
                    _ = lost.wait_for(|r| !matches!(r, Role::Active { epoch: e, .. } if *e == epoch)) => {}
                    _ = stop.wait_for(|s| *s) => {}
                }
            };
            run_until_ready(plan, telemetry, until, |_| {}).await?;
            if *stopped.borrow() {
                return Ok(());
            }
            tracing::warn!("HA: lease lost (epoch {epoch}): back to standby");
        }
    };
    tokio::pin!(service);
    let result = tokio::select! {
        r = &mut service => r,
        () = signal => service.await,
    };
    let _ = stop_lease.send(true);
    let _ = lease.await;
    result
}
