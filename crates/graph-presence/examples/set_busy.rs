//! Sets a user Busy/InACall, reads it back, and clears it — against the Graph emulator, so
//! it runs anywhere: `cargo run -p graph-presence --example set_busy`.
//!
//! Against real Graph, build the configuration with `GraphConfig::from_env()` instead
//! (`AZURE_TENANT_ID`, `AZURE_CLIENT_ID`, `AZURE_CLIENT_SECRET`).

use graph_emulator::{EmulatorConfig, GraphEmulator};
use graph_presence::{Credential, GraphClient, GraphConfig, PresenceState, RetryPolicy};
use std::time::Duration;

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let emu = GraphEmulator::start(EmulatorConfig::default()).await?;
    let app = emu.config().clone();
    println!(
        "Graph emulator: {} (tokens at {})",
        emu.base_url(),
        emu.authority_url()
    );

    let config = GraphConfig::new(
        app.tenant_id,
        app.client_id,
        Credential::Secret(app.client_secret.into()),
    )
    // Against real Graph, leave these two out (or use `with_cloud`).
    .with_authority_url(emu.authority_url())
    .with_graph_url(emu.base_url())
    // A one-shot program with no retry loop of its own: the client retries 429/5xx/timeouts,
    // waiting at most 60 s per call in all.
    .with_retry_policy(RetryPolicy::retries(3));
    let graph = GraphClient::new(config)?;

    let token = graph.token_check().await?;
    println!("token ok, {} s left", token.expires_in.as_secs());

    let user = graph.resolve_user("alice@contoso.com").await?;
    println!("alice@contoso.com → {user}");

    let state: PresenceState = "busy".parse()?;
    graph
        .set_presence(&user, state, Some(Duration::from_secs(3600)))
        .await?;
    let p = graph.get_presence(&user).await?;
    println!(
        "after setPresence({state}): {}/{}",
        p.availability, p.activity
    );

    let outcome = graph.clear_presence(&user).await?;
    let p = graph.get_presence(&user).await?;
    println!(
        "after clearPresence ({outcome:?}): {}/{}",
        p.availability, p.activity
    );
    Ok(())
}
