//! The Mattermost line of `check`: the sink's own first request
//! (`GET /api/v4/users/me` with `MATTERMOST_TOKEN`), then each person's
//! e-mail looked up as the sink looks it up. Nothing is changed.

use futures_util::stream::{self, StreamExt as _};
use tokio::time::Instant;

use super::{failed, Summary};
use crate::extensions::Extension;
use crate::mattermost::client::{ApiError, Client};
use crate::mattermost::MattermostSettings;

/// Look-ups in flight at once (well under the server's default rate limit).
const LOOKUPS: usize = 4;
/// The e-mails named in the line at most.
const SHOWN: usize = 3;

const FIX_URL: &str = "check MATTERMOST_URL (the server's address, e.g. \
     https://chat.example.com, without /api/v4) and that this machine may reach it";
const FIX_TOKEN: &str = "Mattermost refused MATTERMOST_TOKEN: the token is wrong or revoked, or \
     personal access tokens are disabled (System Console → Integrations → Enable Personal Access \
     Tokens); create a bot token (System Console → Integrations → Bot Accounts) and put it in \
     MATTERMOST_TOKEN";
const FIX_ME_FORBIDDEN: &str = "the account of MATTERMOST_TOKEN may not read its own user: give \
     it the System Admin role (bots: System Console → Integrations → Bot Accounts → role)";
const FIX_LOOKUP_FORBIDDEN: &str = "the account of MATTERMOST_TOKEN may not look people up by \
     e-mail: give it the System Admin role (bots: System Console → Integrations → Bot Accounts → \
     role), or show e-mail addresses (Privacy → Show Email Address)";
const FIX_NOT_FOUND: &str = "fix the e-mail in the extension list, or create the Mattermost user";

pub(super) async fn probe_mattermost(
    settings: &MattermostSettings,
    exts: &[Extension],
    deadline: Instant,
) -> Summary {
    let url = settings.url.as_str();
    let client = match Client::new(url, settings.token.clone()) {
        Ok(c) => c,
        Err(e) => return failed(format!("MATTERMOST_URL {url}: {e}"), FIX_URL),
    };
    let me = match tokio::time::timeout_at(deadline, client.me()).await {
        Err(_) => {
            return failed(
                format!("MATTERMOST_URL {url}: no answer within the check's time limit"),
                FIX_URL,
            )
        }
        Ok(Err(e)) => return me_failed(url, &e),
        Ok(Ok(me)) => me,
    };
    let mut emails: Vec<&str> = Vec::new();
    for e in exts {
        if !emails.contains(&e.email.as_str()) {
            emails.push(&e.email);
        }
    }
    let lookups = stream::iter(emails.iter().map(|&email| {
        let client = &client;
        async move {
            if email.is_empty() {
                return (email, Some(Lookup::NoEmail));
            }
            let found = client.user_by_email(email).await;
            (email, found.err().map(Lookup::Failed))
        }
    }))
    .buffered(LOOKUPS)
    .collect::<Vec<_>>();
    let looked = tokio::time::timeout_at(deadline, lookups).await.ok();
    mattermost_line(url, &me.username, emails.len(), looked)
}

/// Why one person's e-mail does not lead to a Mattermost user.
#[derive(Debug)]
pub(super) enum Lookup {
    /// The extension list gives no e-mail.
    NoEmail,
    /// The look-up failed.
    Failed(ApiError),
}

/// The line when `/users/me` failed.
pub(super) fn me_failed(url: &str, e: &ApiError) -> Summary {
    let text = format!("MATTERMOST_URL {url}: {e}");
    match e.status() {
        None => failed(text, FIX_URL),
        Some(401) => failed(text, FIX_TOKEN),
        Some(403) => failed(text, FIX_ME_FORBIDDEN),
        Some(404) => failed(
            format!("MATTERMOST_URL {url}: no Mattermost API there ({e})"),
            FIX_URL,
        ),
        Some(_) => failed(text, "the server failed: see its log, and try again"),
    }
}

/// The line once signed in as `username`: `looked` is each e-mail with its
/// problem, if any; `None` when the look-ups took longer than the check.
pub(super) fn mattermost_line(
    url: &str,
    username: &str,
    total: usize,
    looked: Option<Vec<(&str, Option<Lookup>)>>,
) -> Summary {
    let signed_in = format!("{url}: signed in as @{username}");
    let Some(looked) = looked else {
        return failed(
            format!("{signed_in}; the {total} e-mail look-up(s) took longer than the check"),
            "give check more --timeout, or see the server's rate limit",
        );
    };
    let problems: Vec<(&str, Lookup)> = looked
        .into_iter()
        .filter_map(|(email, problem)| problem.map(|p| (email, p)))
        .collect();
    if problems.is_empty() {
        return Summary {
            ok: true,
            text: format!("{signed_in}; {total} e-mail(s) found"),
            fix: None,
        };
    }
    let mut fixes: Vec<&str> = Vec::new();
    let mut shown = Vec::new();
    for (email, problem) in &problems {
        let (what, fix) = match problem {
            Lookup::NoEmail => (
                "an extension without an e-mail".to_owned(),
                "give every extension its person's e-mail in the extension list",
            ),
            Lookup::Failed(e) => {
                let fix = match e.status() {
                    Some(401) => FIX_TOKEN,
                    Some(403) => FIX_LOOKUP_FORBIDDEN,
                    Some(404) => FIX_NOT_FOUND,
                    None => FIX_URL,
                    Some(_) => "the server failed: see its log, and try again",
                };
                let why = match e.status() {
                    Some(404) => "not found".to_owned(),
                    Some(s) => format!("HTTP {s}"),
                    None => e.to_string(),
                };
                (format!("{email} ({why})"), fix)
            }
        };
        if shown.len() < SHOWN {
            shown.push(what);
        }
        if !fixes.contains(&fix) {
            fixes.push(fix);
        }
    }
    let more = problems.len().saturating_sub(SHOWN);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    failed(
        format!(
            "{signed_in}; {} of {total} e-mail(s) not usable: {}{more}",
            problems.len(),
            shown.join(", ")
        ),
        &fixes.join("; "),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const URL: &str = "https://chat.example.com";

    fn status(code: u16) -> ApiError {
        ApiError::Status {
            status: code,
            id: "api.x".into(),
            message: "m".into(),
            retry_after: None,
        }
    }

    #[test]
    fn signed_in_with_every_email_found_is_ok() {
        let s = mattermost_line(URL, "sipbot", 2, Some(vec![("a@x", None), ("b@x", None)]));
        assert!(s.ok);
        assert_eq!(
            s.text,
            "https://chat.example.com: signed in as @sipbot; 2 e-mail(s) found"
        );
    }

    #[test]
    fn a_refused_token_a_permission_and_an_unreachable_server_each_name_their_fix() {
        let s = me_failed(URL, &status(401));
        assert!(!s.ok);
        assert!(
            s.text
                .starts_with("MATTERMOST_URL https://chat.example.com: HTTP 401"),
            "{}",
            s.text
        );
        assert!(s.fix.unwrap().contains("put it in MATTERMOST_TOKEN"));
        let s = me_failed(URL, &status(403));
        assert!(s.fix.unwrap().contains("System Admin role"));
        let s = me_failed(URL, &ApiError::Network("connection refused".into()));
        assert_eq!(
            s.text,
            "MATTERMOST_URL https://chat.example.com: cannot reach Mattermost: connection refused"
        );
        assert!(s.fix.unwrap().starts_with("check MATTERMOST_URL"));
        let s = me_failed(URL, &status(404));
        assert!(s.text.contains("no Mattermost API there"), "{}", s.text);
    }

    #[test]
    fn emails_that_do_not_resolve_are_named_with_their_fixes_once() {
        let looked = vec![
            ("a@x", Some(Lookup::Failed(status(404)))),
            ("b@x", None),
            ("c@x", Some(Lookup::Failed(status(404)))),
            ("d@x", Some(Lookup::Failed(status(403)))),
            ("", Some(Lookup::NoEmail)),
        ];
        let s = mattermost_line(URL, "sipbot", 5, Some(looked));
        assert!(!s.ok);
        assert_eq!(
            s.text,
            "https://chat.example.com: signed in as @sipbot; 4 of 5 e-mail(s) not usable: \
             a@x (not found), c@x (not found), d@x (HTTP 403) and 1 more"
        );
        let fix = s.fix.unwrap();
        assert_eq!(fix.matches(FIX_NOT_FOUND).count(), 1, "{fix}");
        assert!(fix.contains("Show Email Address"), "{fix}");
        assert!(fix.contains("without an e-mail") || fix.contains("give every extension"));
        let s = mattermost_line(URL, "sipbot", 9, None);
        assert!(s.text.contains("took longer than the check"), "{}", s.text);
    }
}
