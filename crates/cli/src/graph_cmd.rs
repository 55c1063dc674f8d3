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
        other => format!("{who} ({id}): {other:?}"),
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
    /// Whether presence can be read back (one `getPresencesByUserId` for the
    /// first resolved user); `None` when not asked or no user was resolved.
    pub presence_read: Option<Result<(), GraphError>>,
}

/// Gets a token, then resolves every configured user; with `read_presence`,
/// then reads the first resolved user's presence back, which needs
/// `Presence.Read.All` (reading Teams presence for the PBX).
pub async fn check_users(
    client: &GraphClient,
    extensions: &[Extension],
    read_presence: bool,
) -> UserCheck {
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
    let first = users.iter().find_map(|r| r.as_ref().ok()).cloned();
    let presence_read = match first {
        Some(id) if read_presence => Some(
            client
                .get_presences(std::slice::from_ref(&id))
                .await
                .map(drop),
        ),
        _ => None,
    };
    UserCheck {
        token,
        users,
        presence_read,
    }
}

/// What to do when reading presence back failed: for a 403, the permission
/// to grant; else the error.
pub fn presence_read_fix(e: &GraphError) -> String {
    match e.missing_permission() {
        Some(permission) => format!(
            "give the app registration the {permission} application permission and grant admin \
             consent (Entra admin center → App registrations → API permissions); \
             TEAMS_TO_PBX reads Teams presence with it"
        ),
        None => e.to_string(),
    }
}

/// `graph check`: a token, then every configured user resolved; each failure
/// with its reason. With `read_presence` (`TEAMS_TO_PBX` not `off`), also
/// whether presence can be read back (`Presence.Read.All`).
pub async fn check(
    client: &GraphClient,
    extensions: &[Extension],
    read_presence: bool,
) -> CheckReport {
    let mut text = String::new();
    let outcome = check_users(client, extensions, read_presence).await;
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
    let mut read_ok = true;
    match (&outcome.presence_read, read_presence) {
        (Some(Ok(())), _) => {
            let _ = writeln!(text, "presence read (getPresencesByUserId): ok");
        }
        (Some(Err(e)), _) => {
            read_ok = false;
            let _ = writeln!(text, "presence read (getPresencesByUserId): FAILED: {e}");
            let _ = writeln!(text, "  fix: {}", presence_read_fix(e));
        }
        (None, true) => {
            let _ = writeln!(text, "presence read: not checked (no user resolved)");
        }
        (None, false) => {}
    }
    CheckReport {
        text,
        ok: failed == 0 && read_ok,
    }
}
