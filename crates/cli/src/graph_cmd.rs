//! `sip-blf-sync graph …`: one-shot checks and actions against Microsoft Graph.

use std::fmt::Write as _;

use graph_presence::{ClearOutcome, GraphClient, GraphError, ObjectId, PresenceState};

use crate::extensions::Extension;

/// Resolves a UPN or object id given on the command line.
pub async fn user(client: &GraphClient, who: &str) -> Result<ObjectId, GraphError> {
    client.resolve_user(who).await
}

/// `graph get`: the user's presence, one line.
pub async fn get(client: &GraphClient, who: &str) -> Result<String, GraphError> {
    let id = user(client, who).await?;
    let p = client.get_presence(&id).await?;
    let mut line = format!("{who} ({}): {}/{}", id, p.availability, p.activity);
    if let Some(m) = p.status_message.filter(|m| !m.is_empty()) {
        let _ = write!(line, " \"{m}\"");
    }
    Ok(line)
}

/// `graph set`: sets our presence session for the user.
pub async fn set(client: &GraphClient, who: &str, state: &str) -> Result<String, GraphError> {
    let state: PresenceState = state.parse()?;
    let id = user(client, who).await?;
    client.set_presence(&id, state, None).await?;
    Ok(format!(
        "{who} ({id}): set {}/{} (session {}, expires in 5 minutes unless renewed)",
        state.availability(),
        state.activity(),
        client.client_id()
    ))
}

/// `graph clear`: drops our presence session for the user.
pub async fn clear(client: &GraphClient, who: &str) -> Result<String, GraphError> {
    let id = user(client, who).await?;
    Ok(match client.clear_presence(&id).await? {
        ClearOutcome::Cleared => format!("{who} ({id}): cleared"),
        ClearOutcome::AlreadyCleared => {
            format!("{who} ({id}): nothing to clear (no session of ours)")
        }
    })
}

/// The outcome of `graph check`.
pub struct CheckReport {
    /// The printable report.
    pub text: String,
    /// Whether everything worked.
    pub ok: bool,
}

/// `graph check`: a token, then every configured user resolved; each failure
/// with its reason.
pub async fn check(client: &GraphClient, extensions: &[Extension]) -> CheckReport {
    let mut text = String::new();
    let mut ok = true;
    match client.token_check().await {
        Ok(info) => {
            let _ = writeln!(
                text,
                "token: ok (valid for {} more minutes)",
                info.expires_in.as_secs() / 60
            );
        }
        Err(e) => {
            let _ = writeln!(text, "token: FAILED: {e}");
            return CheckReport { text, ok: false };
        }
    }
    let users: Vec<&str> = extensions.iter().map(Extension::user).collect();
    let results = client.resolve_users(users.iter().copied()).await;
    for (ext, (who, result)) in extensions.iter().zip(results) {
        match result {
            Ok(id) => {
                let _ = writeln!(text, "{:>8}  {who}: ok ({id})", ext.extension);
            }
            Err(e) => {
                ok = false;
                let _ = writeln!(text, "{:>8}  {who}: FAILED: {e}", ext.extension);
            }
        }
    }
    let failed = text.matches("FAILED").count();
    let _ = writeln!(
        text,
        "{} user(s) checked, {failed} failed",
        extensions.len()
    );
    CheckReport { text, ok }
}
