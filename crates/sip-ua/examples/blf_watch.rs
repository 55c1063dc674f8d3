//! Watches BLF (`Event: dialog`) of some extensions and prints every event.
//!
//! `cargo run -p sip-ua --example blf_watch -- PBX USER PASSWORD 1001 [1002 …]`
//! (Ctrl-C ends it with un-SUBSCRIBE and un-REGISTER).

use sip_ua::{driver, Event, Subscription, UaConfig};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [server, user, password, extensions @ ..] = args.as_slice() else {
        eprintln!("usage: blf_watch PBX USER PASSWORD EXTENSION...");
        std::process::exit(2);
    };
    let config =
        UaConfig::new(server.as_str(), user.as_str(), password.as_str()).with_event_capacity(256);
    // For BLF, the subscription's user is the extension number.
    let subs = extensions.iter().map(Subscription::dialog).collect();
    let (ua, mut events) = driver::spawn(config, subs, None).await?;
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Some(Event::Notify(n)) => {
                    println!("{} {:?}: {}", n.user, n.package, String::from_utf8_lossy(&n.body));
                }
                Some(other) => println!("{other:?}"),
                None => break,
            },
            _ = tokio::signal::ctrl_c() => break,
        }
    }
    println!("events: {:?}", ua.event_stats());
    ua.shutdown().await?;
    Ok(())
}
