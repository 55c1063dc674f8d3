//! The AMI side of `check`: connect, log in, see the `system` events the
//! source needs, list the hints, and give each extension its hint's state
//! or the fix for a missing one.

use std::collections::HashMap;
use std::time::Duration;

use ami::driver::{self, DriverConfig, DriverError, SessionEvent};
use ami::{Action, ExtensionState};
use tokio::time::Instant;

use super::{failed, Column, Summary};
use crate::ami_source::{line_state, AmiSettings};
use crate::extensions::Extension;

/// How long to wait for `FullyBooted` after the login: Asterisk sends it at
/// once to a user that may read `system` events.
const BOOTED_WAIT: Duration = Duration::from_secs(2);

const FIX_CONNECT: &str = "enable the manager interface in manager.conf ([general] enabled = yes, \
     port = 5038, bindaddr) and let this machine reach it; AMI_HOST is host or host:port";
const FIX_LOGIN: &str = "check AMI_USERNAME and AMI_SECRET against the user's section in \
     manager.conf, and that its permit= lines allow this machine's address";
const FIX_READ: &str = "give the AMI user read = system,call in manager.conf (and reload the \
     manager): without them no state changes reach sip-blf-sync";
const FIX_WRITE: &str = "give the AMI user write = system,call (or reporting) in manager.conf: \
     the hint list needs it";

pub(super) async fn probe_ami(
    settings: &AmiSettings,
    exts: &[Extension],
    deadline: Instant,
) -> (Summary, Column) {
    let none = |text: &str| exts.iter().map(|_| (text.to_owned(), None)).collect();
    let mut config = DriverConfig::new(settings.address.clone(), settings.client_config());
    config.connect_timeout = deadline.saturating_duration_since(Instant::now());
    let address = &settings.address;
    let (handle, mut events) =
        match tokio::time::timeout_at(deadline, driver::connect(config)).await {
            Err(_) => {
                return (
                    failed(format!("{address}: no answer in time"), FIX_CONNECT),
                    none("-"),
                )
            }
            Ok(Err(e @ DriverError::Ami(ami::Error::LoginRefused { .. }))) => {
                return (failed(format!("{address}: {e}"), FIX_LOGIN), none("-"))
            }
            Ok(Err(e)) => return (failed(format!("{address}: {e}"), FIX_CONNECT), none("-")),
            Ok(Ok(connected)) => connected,
        };
    let mut version = None;
    let booted_by = (Instant::now() + BOOTED_WAIT).min(deadline);
    let mut booted = false;
    while !booted {
        match tokio::time::timeout_at(booted_by, events.recv()).await {
            Ok(Some(SessionEvent::LoggedIn { version: v })) => version = v,
            Ok(Some(SessionEvent::FullyBooted)) => booted = true,
            Ok(Some(_)) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let listed =
        tokio::time::timeout_at(deadline, handle.list(Action::extension_state_list())).await;
    handle.stop(Duration::from_secs(1)).await;
    let mut summary = Summary {
        ok: true,
        text: format!(
            "{address}: logged in as {} (manager version {})",
            settings.username,
            version.as_deref().unwrap_or("unknown")
        ),
        fix: None,
    };
    if !booted {
        summary = failed(
            format!("{}; no FullyBooted event after the login", summary.text),
            FIX_READ,
        );
    }
    let hints: HashMap<String, (String, Option<ExtensionState>)> = match listed {
        Err(_) => {
            return (
                failed(format!("{address}: the hint list took too long"), FIX_WRITE),
                none("-"),
            )
        }
        Ok(Err(e)) => return (failed(format!("{address}: {e}"), FIX_CONNECT), none("-")),
        Ok(Ok(list)) if !list.response.is_success() => {
            let why = list.response.text().unwrap_or("refused").trim().to_owned();
            if why.to_ascii_lowercase().contains("permission") {
                return (
                    failed(
                        format!("{address}: the hint list was refused ({why})"),
                        FIX_WRITE,
                    ),
                    none("-"),
                );
            }
            // "No dialplan hints are available": every row says so.
            HashMap::new()
        }
        Ok(Ok(list)) => list
            .items
            .iter()
            .filter(|e| {
                settings
                    .context
                    .as_deref()
                    .is_none_or(|c| e.get("Context") == Some(c))
            })
            .filter_map(|e| {
                let exten = e.get("Exten")?.to_owned();
                let hint = e.get("Hint").unwrap_or_default().to_owned();
                let status = e.get("Status").and_then(ExtensionState::parse);
                Some((exten, (hint, status)))
            })
            .collect(),
    };
    let rows = exts
        .iter()
        .map(|e| match hints.get(&e.extension) {
            Some((hint, Some(status))) => {
                (format!("{} (hint {hint})", line_state(*status)), None)
            }
            _ => (
                "no hint".to_owned(),
                Some(format!(
                    "add a hint for {0} to the PBX's dial plan (e.g. `exten => {0},hint,PJSIP/{0}`; \
                     FreePBX creates it for every extension)",
                    e.extension
                )),
            ),
        })
        .collect();
    (summary, rows)
}
