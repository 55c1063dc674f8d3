//! `sip-blf-sync ami watch` (every change AMI reports, printed) and
//! `sip-blf-sync ami dnd <ext> on|off|show` (the PBX's DND, set the FreePBX
//! way).

use std::time::{Duration, SystemTime};

use ami::driver::{self, DriverConfig};
use serde_json::json;
use sip_blf_engine::{Fact, Observation, Source};

use crate::ami_source::dnd::{read_dnd, set_dnd, DndError};
use crate::ami_source::{AmiSettings, AmiSource};
use crate::extensions::Extension;

/// What `ami dnd` does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DndCommand {
    /// Turn DND on.
    On,
    /// Turn DND off.
    Off,
    /// Print it.
    Show,
}

/// One printed line for an observation.
pub fn format_observation(o: &Observation, json: bool) -> String {
    let time = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    match (&o.fact, json) {
        (
            Fact::Line {
                state,
                counterparty,
                direction,
            },
            true,
        ) => json!({
            "extension": o.address, "line_state": state.as_str(), "time": time,
            "counterparty": counterparty.as_ref().map(|p| &p.number),
            "counterparty_name": counterparty.as_ref().and_then(|p| p.name.as_ref()),
            "direction": direction.map(|d| d.as_str()),
        })
        .to_string(),
        (Fact::Dnd(on), true) => {
            json!({ "extension": o.address, "dnd": on, "time": time }).to_string()
        }
        (Fact::Queues(queues), true) => {
            json!({ "extension": o.address, "queues": queues, "time": time }).to_string()
        }
        (Fact::Queues(queues), false) => {
            let list: Vec<String> = queues
                .iter()
                .map(|q| {
                    let mut text = q.queue.clone();
                    if q.paused {
                        text.push_str(" paused");
                        if let Some(reason) = &q.reason {
                            text.push_str(&format!(" ({reason})"));
                        }
                    }
                    if q.in_call {
                        text.push_str(" in a call");
                    }
                    text
                })
                .collect();
            format!(
                "{} queues: {}",
                o.address,
                if list.is_empty() {
                    "none".into()
                } else {
                    list.join(", ")
                }
            )
        }
        (Fact::Registration(on), true) => {
            json!({ "extension": o.address, "registered": on, "time": time }).to_string()
        }
        (
            Fact::Line {
                state,
                counterparty,
                direction,
            },
            false,
        ) => {
            let mut line = format!("{} {state}", o.address);
            if let Some(p) = counterparty {
                line.push_str(&format!(" with {}", p.number));
                if let Some(name) = &p.name {
                    line.push_str(&format!(" ({name})"));
                }
            }
            if let Some(d) = direction {
                line.push_str(&format!(" {}", d.as_str()));
            }
            line
        }
        (Fact::Dnd(on), false) => format!("{} dnd {}", o.address, if *on { "on" } else { "off" }),
        (Fact::Registration(on), false) => format!(
            "{} {}",
            o.address,
            if *on { "registered" } else { "not registered" }
        ),
        (other, _) => format!("{} {other:?}", o.address),
    }
}

/// Prints every change AMI reports for `extensions` until `stop` resolves.
pub async fn watch(
    settings: &AmiSettings,
    extensions: &[Extension],
    json: bool,
    stop: impl std::future::Future<Output = ()>,
) {
    let names: Vec<String> = extensions.iter().map(|e| e.extension.clone()).collect();
    let mut source = AmiSource::start(settings, &names);
    tracing::info!(
        "watching {} extension(s) through AMI at {}",
        names.len(),
        settings.address
    );
    tokio::pin!(stop);
    loop {
        tokio::select! {
            o = source.next() => match o {
                Some(o) => println!("{}", format_observation(&o, json)),
                None => break,
            },
            () = &mut stop => break,
        }
    }
    source.stop(Duration::from_secs(3)).await;
}

/// Sets or shows `extension`'s DND; the line to print.
pub async fn dnd(
    settings: &AmiSettings,
    extension: &str,
    command: DndCommand,
    timeout: Duration,
) -> Result<String, DndError> {
    let mut config = DriverConfig::new(settings.address.clone(), settings.client_config());
    config.client.events = Some("off".into());
    config.connect_timeout = timeout;
    let (handle, _events) = driver::connect(config).await?;
    let result = async {
        if command != DndCommand::Show {
            set_dnd(&handle, &settings.dnd, extension, command == DndCommand::On).await?;
        }
        read_dnd(&handle, &settings.dnd, extension).await
    }
    .await;
    handle.stop(Duration::from_secs(2)).await;
    let reading = result?;
    let db = match reading.db {
        Some(true) => ", astdb DND/<ext> set",
        Some(false) => ", astdb DND/<ext> not set",
        None => "",
    };
    Ok(format!(
        "{extension}: dnd {} (device {} {}{db})",
        if reading.is_on() { "on" } else { "off" },
        settings.dnd.device(extension),
        reading.device
    ))
}
