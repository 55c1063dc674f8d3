//! Prints every hint's state, then each change, from an Asterisk manager
//! interface; reconnects by itself when the PBX goes away.
//!
//! ```text
//! cargo run -p sip-blf-ami --example extension_states -- 127.0.0.1:5038 USER SECRET
//! ```
//!
//! The user needs `read = system,call` in `manager.conf`.

use std::error::Error;

use ami::driver::{self, DriverConfig, SessionEvent};
use ami::{Action, Config};

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(address), Some(user), Some(secret)) = (args.next(), args.next(), args.next()) else {
        eprintln!("usage: extension_states HOST:PORT USER SECRET");
        std::process::exit(2);
    };
    let mut config = Config::new(user, secret);
    config.events = Some("system,call".into());
    let (ami, mut events) = driver::spawn(DriverConfig::new(address, config));
    while let Some(event) = events.recv().await {
        match event {
            SessionEvent::LoggedIn { version } => {
                println!("logged in (AMI {})", version.as_deref().unwrap_or("?"));
                // A new session: whatever was known before is void.
                let hints = ami.list(Action::extension_state_list()).await?;
                for hint in &hints.items {
                    println!(
                        "{} {}",
                        hint.get("Exten").unwrap_or("?"),
                        hint.get("StatusText").unwrap_or("?")
                    );
                }
            }
            SessionEvent::Event(e) if e.is("ExtensionStatus") => {
                println!(
                    "{} is now {}",
                    e.get("Exten").unwrap_or("?"),
                    e.get("StatusText").unwrap_or("?")
                );
            }
            SessionEvent::Disconnected { error, retry_in } => {
                eprintln!("AMI: {error}; next attempt in {retry_in:?}");
            }
            SessionEvent::Stopped => break,
            _ => {}
        }
    }
    Ok(())
}
