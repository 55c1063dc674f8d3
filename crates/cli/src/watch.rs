//! `sip-blf-sync watch`: register, subscribe, print each line-state change.
//! No Microsoft tenant needed.

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use line_board::LineUpdate;

use serde_json::json;

use crate::dashboard::DashboardSettings;
use crate::extensions::Extension;
use crate::observe::{self, sip_health, Telemetry};
use crate::settings::SipSettings;
use crate::sip_source::{LineChange, SipSource, SourceEvent, Staleness};

fn unix(t: SystemTime) -> f64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// One printed line for a change.
pub fn format_change(extension: &str, line_state: blf::LineState, json: bool) -> String {
    if json {
        json!({ "extension": extension, "line_state": line_state.as_str(), "time": unix(SystemTime::now()) })
            .to_string()
    } else {
        format!("{extension} {line_state}")
    }
}

/// One printed line for a change, saying why when the line is unknown
/// because its subscription has been lost too long:
/// `1001 unknown (subscription lost for 120 s: …)`, or in JSON a `stale`
/// object with `lost_for_seconds`, `since` (Unix time) and `reason`.
pub fn format_line_change(change: &LineChange, json: bool) -> String {
    let Some(Staleness {
        lost_for,
        since,
        reason,
    }) = &change.stale
    else {
        return format_change(&change.extension, change.line_state, json);
    };
    if json {
        json!({
            "extension": change.extension,
            "line_state": change.line_state.as_str(),
            "time": unix(SystemTime::now()),
            "stale": {
                "lost_for_seconds": lost_for.as_secs(),
                "since": unix(*since),
                "reason": reason,
            },
        })
        .to_string()
    } else {
        format!(
            "{} {} (subscription lost for {} s: {reason})",
            change.extension,
            change.line_state,
            lost_for.as_secs()
        )
    }
}

/// Runs until SIGINT/SIGTERM, then un-SUBSCRIBEs and un-REGISTERs.
///
/// With `dashboard`, the lines are also shown on the dashboard at that
/// address; if it cannot be bound (a service on the same machine holds
/// it), watch goes on without it and says so.
pub async fn run(
    settings: &SipSettings,
    extensions: &[Extension],
    json: bool,
    dashboard: Option<(SocketAddr, DashboardSettings)>,
) -> Result<(), sip_ua::Error> {
    let (mut source, health) = SipSource::start(settings, extensions).await?;
    let telemetry = Telemetry::new();
    for e in extensions {
        telemetry.add_extension(&e.extension, e.user());
    }
    source.set_telemetry(telemetry.clone());
    let mut board = None;
    let mut server = None;
    if let Some((addr, settings)) = dashboard {
        let shown = crate::dashboard::board(extensions, &settings);
        match observe::serve_board(addr, telemetry.clone(), shown.clone(), settings.access()).await
        {
            Ok(s) => {
                tracing::info!("dashboard on http://{}/", s.local_addr());
                telemetry.set_board(shown.clone());
                tokio::spawn(crate::dashboard::keep_health(
                    shown.clone(),
                    telemetry.clone(),
                ));
                board = Some(shown);
                server = Some(s);
            }
            Err(e) => tracing::warn!("no dashboard: HTTP_LISTEN {addr}: {e}"),
        }
    }
    for h in &health {
        sip_health(&telemetry, h);
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
                    println!("{}", format_line_change(&change, json));
                    if let (Some(board), Ok(state)) = (&board, change.line_state.as_str().parse()) {
                        board.set_line(&change.extension, LineUpdate::new(state), SystemTime::now());
                    }
                }
                Some(SourceEvent::Health(h)) => sip_health(&telemetry, &h),
            }
        }
    }
    tracing::info!("stopping: un-subscribing and un-registering");
    source.shutdown(Duration::from_secs(10)).await;
    if let Some(server) = server {
        let _ = server.shutdown().await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use blf::LineState;

    use super::format_line_change;
    use crate::sip_source::{LineChange, Staleness};

    #[test]
    fn an_unknown_line_says_for_how_long_and_why() {
        let mut change = LineChange {
            extension: "1001".into(),
            line_state: LineState::Unknown,
            dnd: false,
            received_at: None,
            stale: Some(Staleness {
                lost_for: Duration::from_secs(121),
                since: SystemTime::UNIX_EPOCH + Duration::from_secs(1_795_000_000),
                reason: "no answer from the PBX to REGISTER".into(),
            }),
        };
        assert_eq!(
            format_line_change(&change, false),
            "1001 unknown (subscription lost for 121 s: no answer from the PBX to REGISTER)"
        );
        let v: serde_json::Value =
            serde_json::from_str(&format_line_change(&change, true)).unwrap();
        assert_eq!(v["extension"], "1001");
        assert_eq!(v["line_state"], "unknown");
        assert_eq!(v["stale"]["lost_for_seconds"], 121);
        assert_eq!(v["stale"]["since"], 1_795_000_000.0);
        assert_eq!(v["stale"]["reason"], "no answer from the PBX to REGISTER");

        change.stale = None;
        assert_eq!(format_line_change(&change, false), "1001 unknown");
        let v: serde_json::Value =
            serde_json::from_str(&format_line_change(&change, true)).unwrap();
        assert!(v.get("stale").is_none(), "{v}");
    }
}
