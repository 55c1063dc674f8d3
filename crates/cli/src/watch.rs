//! `sip-blf-sync watch`: register, subscribe, print each line-state change.
//! No Microsoft tenant needed.

use std::time::{Duration, SystemTime};

use serde_json::json;

use crate::extensions::Extension;
use crate::settings::SipSettings;
use crate::sip_source::{Notice, SipSource, SourceEvent};

/// One printed line for a change.
pub fn format_change(extension: &str, line_state: blf::LineState, json: bool) -> String {
    if json {
        let ts = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        json!({ "extension": extension, "line_state": line_state.as_str(), "time": ts }).to_string()
    } else {
        format!("{extension} {line_state}")
    }
}

/// Runs until SIGINT/SIGTERM, then un-SUBSCRIBEs and un-REGISTERs.
pub async fn run(
    settings: &SipSettings,
    extensions: &[Extension],
    json: bool,
) -> Result<(), sip_ua::Error> {
    let (mut source, notices) = SipSource::start(settings, extensions).await?;
    for n in notices {
        log_notice(&n);
    }
    if let Some(addr) = source.local_addr() {
        tracing::info!(
            "SIP socket {addr}; watching {} extension(s) on {}",
            extensions.len(),
            settings.server
        );
    }
    let stop = crate::signals::shutdown_signal();
    tokio::pin!(stop);
    loop {
        tokio::select! {
            _ = &mut stop => break,
            event = source.next() => match event {
                None => break,
                Some(SourceEvent::Line(change)) => {
                    println!("{}", format_change(&change.extension, change.line_state, json));
                }
                Some(SourceEvent::Notice(n)) => log_notice(&n),
            }
        }
    }
    tracing::info!("stopping: un-subscribing and un-registering");
    source.shutdown(Duration::from_secs(10)).await;
    Ok(())
}

fn log_notice(n: &Notice) {
    match n {
        Notice::Info(s) => tracing::info!("{s}"),
        Notice::Warning(s) => tracing::warn!("{s}"),
    }
}
