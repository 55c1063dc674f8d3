//! Runs the emulator until Ctrl-C and prints the environment that points a client at it:
//! `cargo run -p graph-emulator --example serve`.
//! An optional argument fixes the port: `… --example serve -- 8444`.

use graph_emulator::{EmulatorConfig, GraphEmulator};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let port = match std::env::args().nth(1) {
        Some(p) => Some(p.parse::<u16>()?),
        None => None,
    };
    let emu = GraphEmulator::start_on(EmulatorConfig::default(), port.unwrap_or(0)).await?;
    let c = emu.config();
    println!("# Graph emulator running; paste into a shell or a .env file:");
    println!("AZURE_TENANT_ID={}", c.tenant_id);
    println!("AZURE_CLIENT_ID={}", c.client_id);
    println!("AZURE_CLIENT_SECRET={}", c.client_secret);
    println!("AZURE_AUTHORITY_HOST={}", emu.authority_url());
    println!("GRAPH_BASE_URL={}", emu.base_url());
    println!("# users:");
    for u in &c.users {
        println!("#   {} = {}", u.upn, u.object_id);
    }
    tokio::signal::ctrl_c().await?;
    Ok(())
}
