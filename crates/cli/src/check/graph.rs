//! The Graph half of `check`: a token, then every user resolved; when Teams
//! presence goes to the PBX, whether presence can be read back.

use std::time::Duration;

use graph_presence::{GraphClient, GraphError};
use tokio::time::Instant;

use super::{failed, Column, Summary};
use crate::extensions::Extension;
use crate::graph_cmd;

pub(super) async fn probe_graph(
    config: Option<&graph_presence::GraphConfig>,
    exts: &[Extension],
    deadline: Instant,
    timeout: Duration,
    read_presence: bool,
) -> (Summary, Column) {
    let every = |text: &str, fix: Option<&str>| -> Column {
        exts.iter()
            .map(|_| (text.to_string(), fix.map(str::to_string)))
            .collect()
    };
    let Some(config) = config else {
        let summary = Summary {
            ok: true,
            text: "not configured (dry run): AZURE_TENANT_ID is not set, presence is only printed"
                .into(),
            fix: None,
        };
        return (summary, every("not configured (dry run)", None));
    };
    // One shot, no retry loop of its own: the client retries.
    let client = match GraphClient::new(crate::settings::one_shot(config.clone())) {
        Ok(c) => c,
        Err(e) => {
            let summary = failed(
                e.to_string(),
                "check the AZURE_* and GRAPH_BASE_URL settings",
            );
            return (summary, every("not started", Some("see Graph above")));
        }
    };
    let outcome = match tokio::time::timeout_at(
        deadline,
        graph_cmd::check_users(&client, exts, read_presence),
    )
    .await
    {
        Ok(o) => o,
        Err(_) => {
            let summary = failed(
                format!("no answer within {} s", timeout.as_secs_f32()),
                "check GRAPH_BASE_URL, AZURE_AUTHORITY_HOST and the network (proxy, firewall)",
            );
            return (summary, every("timeout", Some("see Graph above")));
        }
    };
    let info = match outcome.token {
        Ok(info) => info,
        Err(e) => {
            let summary = failed(
                format!("no token: {e}"),
                "fix AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or the certificate)",
            );
            return (
                summary,
                every("no token", Some("get a Graph token first (see above)")),
            );
        }
    };
    let token = format!(
        "token ok (valid for {} more minutes)",
        info.expires_in.as_secs() / 60
    );
    let summary = match &outcome.presence_read {
        None => Summary {
            ok: true,
            text: token,
            fix: None,
        },
        Some(Ok(())) => Summary {
            ok: true,
            text: format!("{token}, presence read ok"),
            fix: None,
        },
        Some(Err(e)) => {
            let what = match e {
                GraphError::Forbidden { .. } => "403 forbidden".to_string(),
                other => other.to_string(),
            };
            failed(
                format!("{token}, presence read FAILED: {what}"),
                &graph_cmd::presence_read_fix(e),
            )
        }
    };
    let rows = exts
        .iter()
        .zip(outcome.users)
        .map(|(ext, result)| match result {
            Ok(id) if ext.object_id.is_some() => (format!("ok (object id {id})"), None),
            Ok(_) => ("ok".to_string(), None),
            Err(e) => graph_failure(&e, ext),
        })
        .collect();
    (summary, rows)
}

/// The Graph column and the fix for a user that could not be resolved.
pub(super) fn graph_failure(e: &GraphError, ext: &Extension) -> (String, Option<String>) {
    let (text, fix) = match e {
        GraphError::NotFound { .. } => (
            "404 no such user".to_string(),
            format!(
                "no such user in tenant: check the e-mail in {}",
                ext.origin
            ),
        ),
        GraphError::Forbidden { permission, .. } => (
            "403 forbidden".to_string(),
            format!(
                "give the app registration the {permission} application permission and grant admin consent"
            ),
        ),
        GraphError::InvalidInput(m) => (
            "invalid user".to_string(),
            format!("{m}: check the e-mail in {}", ext.origin),
        ),
        other => ("failed".to_string(), other.to_string()),
    };
    (text, Some(fix))
}
