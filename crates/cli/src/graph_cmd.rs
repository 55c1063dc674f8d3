//! `sip-blf-sync graph …`: one-shot checks and actions against Microsoft Graph.

use std::fmt::Write as _;

use graph_presence::{ClearOutcome, GraphClient, GraphError, ObjectId, PresenceState, TokenInfo};

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

/// A token, then every configured user resolved (in the list's order).
pub struct UserCheck {
    /// The token request's outcome; no user is looked up without a token.
    pub token: Result<TokenInfo, GraphError>,
    /// One result per extension, in order (empty when there is no token).
    pub users: Vec<Result<ObjectId, GraphError>>,
}

/// Gets a token, then resolves every configured user.
pub async fn check_users(client: &GraphClient, extensions: &[Extension]) -> UserCheck {
    let token = client.token_check().await;
    let mut users = Vec::new();
    if token.is_ok() {
        let names: Vec<&str> = extensions.iter().map(Extension::user).collect();
        users = client
            .resolve_users(names.iter().copied())
            .await
            .into_iter()
            .map(|(_, r)| r)
            .collect();
    }
    UserCheck { token, users }
}

/// `graph check`: a token, then every configured user resolved; each failure
/// with its reason.
pub async fn check(client: &GraphClient, extensions: &[Extension]) -> CheckReport {
    let mut text = String::new();
    let outcome = check_users(client, extensions).await;
    match &outcome.token {
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
    let mut failed = 0;
    for (ext, result) in extensions.iter().zip(&outcome.users) {
        let who = ext.user();
        match result {
            Ok(id) => {
                let _ = writeln!(text, "{:>8}  {who}: ok ({id})", ext.extension);
            }
            Err(e) => {
                failed += 1;
                let _ = writeln!(text, "{:>8}  {who}: FAILED: {e}", ext.extension);
            }
        }
    }
    let _ = writeln!(
        text,
        "{} user(s) checked, {failed} failed",
        extensions.len()
    );
    CheckReport {
        text,
        ok: failed == 0,
    }
}
