//! A channel source feeding a sink that prints each write.
//!
//! ```text
//! cargo run -p sip-blf-engine --example channel_to_print
//! ```
//!
//! Alice has a desk phone and a softphone on `pbx-a` and a mobile on
//! `pbx-b`; Bob has one phone. Watch Alice stay busy until both of her
//! calls have ended. This sink holds the whole view, every phone's line
//! included, so a change on any phone is a write (her second call too, and
//! the moment her busy line moves from one phone to the other); a sink that
//! holds only the line state (Teams) would not write then.

use std::error::Error;
use std::time::{Duration, Instant};

use sip_blf_engine::{
    ChannelSource, Directory, Fact, LineState, Observation, Runtime, RuntimeConfig, Sink,
    SinkError, View, Write,
};

/// Prints every write; holds the whole view (any change is worth a line).
struct PrintSink;

impl Sink for PrintSink {
    type Held = View;

    fn name(&self) -> &str {
        "print"
    }

    fn desired(&self, view: &View) -> Option<View> {
        Some(view.clone())
    }

    async fn write(&self, batch: Vec<Write<View>>) -> Vec<Result<(), SinkError>> {
        for write in &batch {
            let view = &write.held;
            let cause = view
                .cause
                .as_ref()
                .map_or_else(|| "-".to_owned(), ToString::to_string);
            println!(
                "{:<8} {:<8} (from {cause}, {}{})",
                view.person,
                view.line,
                write.reason.as_str(),
                if view.dnd { ", dnd" } else { "" },
            );
        }
        batch.iter().map(|_| Ok(())).collect()
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> Result<(), Box<dyn Error>> {
    let mut directory = Directory::new();
    directory.add("pbx-a", "1001", "alice")?;
    directory.add("pbx-a", "1002", "alice")?;
    directory.add("pbx-b", "555-0100", "alice")?;
    directory.add("pbx-a", "1003", "bob")?;

    let mut runtime = Runtime::start(directory, RuntimeConfig::default())?;
    runtime.add_sink(PrintSink).await?;
    let (pbx, source) = ChannelSource::channel("pbx-a", 64);
    runtime.add_source(source);

    let script = [
        ("pbx-a", "1001", Fact::line(LineState::Idle)),
        ("pbx-b", "555-0100", Fact::line(LineState::Idle)),
        ("pbx-a", "1003", Fact::line(LineState::Idle)),
        ("pbx-a", "1001", Fact::line(LineState::Ringing)),
        ("pbx-a", "1001", Fact::line(LineState::Busy)),
        ("pbx-a", "1002", Fact::line(LineState::Busy)),
        // The desk phone's call ends; the softphone's goes on: still busy.
        ("pbx-a", "1001", Fact::line(LineState::Idle)),
        ("pbx-a", "1003", Fact::Dnd(true)),
        ("pbx-a", "1002", Fact::line(LineState::Idle)),
    ];
    for (system, address, fact) in script {
        pbx.send(Observation::new(system, address, fact, Instant::now()))
            .await?;
        // One step at a time, so that every change shows (the sink would
        // otherwise get only the latest view of a burst).
        tokio::task::yield_now().await;
        runtime.views().await?;
    }
    drop(pbx);
    runtime.stop(Duration::from_secs(1)).await;
    Ok(())
}
