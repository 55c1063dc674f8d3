//! Teams → PBX (`TEAMS_TO_PBX`): the presence read back from Teams (the
//! Teams source) turns the person's extensions' DND on and off on the PBX:
//! through AMI (`ami`, the FreePBX way) or SIP PUBLISH (`publish`, for
//! presence servers). The rules are the mapping file's `[teams_to_pbx]`
//! section ([`TeamsRules`]); the decisions, and why they cannot loop, are in
//! [`Reverse`].

mod decide;
mod rules;

use std::future::Future;
use std::time::Duration;

use sip_blf_engine::{FeedReport, PersonId, TeamsPresence, View, ViewFeed};
use tokio::sync::watch;
use tokio::time::Instant;

pub use decide::{OwnDnd, PbxAction, Reverse};
pub use rules::{PbxWish, TeamsRules};

use crate::engine::{Mapping, PresenceAction};
use crate::observe::Telemetry;
use crate::problems::Problem;
use crate::settings::Env;
use crate::sip_source::PBX;

/// A failed PBX action is tried again after this long.
const RETRY: Duration = Duration::from_secs(10);

/// How `TEAMS_TO_PBX` acts on the PBX.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum TeamsToPbx {
    /// Not at all (the default).
    #[default]
    Off,
    /// DND through AMI (`AMI_*`).
    Ami,
    /// SIP PUBLISH of a presence document.
    Publish,
}

impl TeamsToPbx {
    /// Reads `TEAMS_TO_PBX` (`off`, `ami`, `publish`).
    pub fn from_env(env: &Env) -> Result<Self, Problem> {
        match env
            .get("TEAMS_TO_PBX")
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("off") => Ok(Self::Off),
            Some("ami") => Ok(Self::Ami),
            Some("publish") => Ok(Self::Publish),
            Some(other) => Err(Problem::in_var(
                "TEAMS_TO_PBX",
                format!(
                    "{other:?} is not one of off, ami (DND through Asterisk's manager \
                     interface) or publish (SIP PUBLISH to a presence server)"
                ),
            )),
        }
    }
}

impl TeamsToPbx {
    /// Whether Teams presence is read at all.
    pub fn is_on(self) -> bool {
        self != Self::Off
    }
}

/// Where DND is set.
pub trait PbxTarget: Send + Sync + 'static {
    /// Turns DND on or off for `extensions`; the error says what failed.
    fn set_dnd(
        &self,
        extensions: &[String],
        on: bool,
        because: Option<&TeamsPresence>,
    ) -> impl Future<Output = Result<(), String>> + Send;
}

/// DND through AMI, the FreePBX way ([`crate::ami_source::dnd`]).
pub struct AmiTarget {
    handle: ami::driver::AmiHandle,
    scheme: crate::ami_source::DndScheme,
}

impl AmiTarget {
    /// DND on the PBX behind `handle`, where `scheme` says it lives.
    pub fn new(handle: ami::driver::AmiHandle, scheme: crate::ami_source::DndScheme) -> Self {
        Self { handle, scheme }
    }
}

impl PbxTarget for AmiTarget {
    async fn set_dnd(
        &self,
        extensions: &[String],
        on: bool,
        _because: Option<&TeamsPresence>,
    ) -> Result<(), String> {
        for extension in extensions {
            crate::ami_source::dnd::set_dnd(&self.handle, &self.scheme, extension, on)
                .await
                .map_err(|e| format!("{extension}: {e}"))?;
        }
        Ok(())
    }
}

/// DND as a published presence (RFC 3903): while on, each extension's
/// presence is `open` with the RPID activity `busy` and a note naming the
/// Teams presence, so that its presence watchers (BLF keys, softphones) see
/// the person busy; off withdraws the publication.
pub struct PublishTarget {
    handle: sip_ua::driver::Publisher,
    domain: String,
}

impl PublishTarget {
    /// Publications through `handle` for extensions on `domain`.
    pub fn new(handle: sip_ua::driver::Publisher, domain: impl Into<String>) -> Self {
        Self {
            handle,
            domain: domain.into(),
        }
    }

    /// The document published for `extension`.
    pub fn document(&self, extension: &str, because: Option<&TeamsPresence>) -> String {
        Self::document_for(&self.domain, extension, because)
    }

    fn document_for(domain: &str, extension: &str, because: Option<&TeamsPresence>) -> String {
        let note = match because {
            Some(p) => format!("Do not disturb (Teams: {}/{})", p.availability, p.activity),
            None => "Do not disturb".to_owned(),
        };
        blf::PresenceDocument::new(format!("sip:{extension}@{domain}"), blf::Basic::Open)
            .activity("busy")
            .note(note)
            .to_xml()
    }
}

impl PbxTarget for PublishTarget {
    async fn set_dnd(
        &self,
        extensions: &[String],
        on: bool,
        because: Option<&TeamsPresence>,
    ) -> Result<(), String> {
        for extension in extensions {
            let body = on.then(|| {
                (
                    "application/pidf+xml".to_owned(),
                    self.document(extension, because).into_bytes(),
                )
            });
            self.handle
                .publish(extension, body)
                .map_err(|e| format!("{extension}: {e}"))?;
        }
        Ok(())
    }
}

/// Says whether our own Teams session explains a presence: the pair the
/// Teams sink holds for one of the person's extensions, or the pair it
/// would set for the person's line right now (a call that has just
/// started, its `setPresence` not yet recorded).
#[derive(Debug, Clone)]
pub struct OwnPresence {
    telemetry: Telemetry,
    mapping: Mapping,
    own_dnd: OwnDnd,
}

impl OwnPresence {
    /// From what `telemetry` records of the Teams sink, and its `mapping`.
    pub fn new(telemetry: Telemetry, mapping: Mapping, own_dnd: OwnDnd) -> Self {
        Self {
            telemetry,
            mapping,
            own_dnd,
        }
    }

    /// Whether `presence` is ours.
    pub fn explains(&self, view: &View, presence: &TeamsPresence) -> bool {
        let text = format!("{}/{}", presence.availability, presence.activity);
        let extensions = view.lines.iter().filter(|l| l.address.system == PBX);
        for line in extensions.clone() {
            if self
                .telemetry
                .held_presence(&line.address.address)
                .as_deref()
                == Some(&text)
            {
                return true;
            }
        }
        let phone_dnd = extensions
            .filter(|l| l.dnd == Some(true))
            .any(|l| !self.own_dnd.contains(&l.address.address));
        let line = crate::people::blf_line_state(view.line);
        matches!(
            self.mapping.action_for(line, phone_dnd),
            PresenceAction::Set(pair) if pair.to_string() == text
        )
    }
}

/// Runs the reverse sync on `feed` until `stop` turns true, then turns off
/// every DND it set.
pub async fn run(
    mut feed: ViewFeed,
    mut reverse: Reverse,
    target: impl PbxTarget,
    own: OwnPresence,
    telemetry: Telemetry,
    mut stop: watch::Receiver<bool>,
) {
    let mut retries: Vec<(Instant, PersonId)> = Vec::new();
    loop {
        let next_retry = retries.iter().map(|r| r.0).min();
        let mut actions = Vec::new();
        tokio::select! {
            batch = feed.next() => {
                let Some(batch) = batch else { break };
                for fed in batch {
                    if let Some(presence) = &fed.view.presence {
                        telemetry.teams_presence_read(&fed.view.person.0, presence);
                    }
                    actions.extend(reverse.view(&fed.view, |v, p| own.explains(v, p)));
                }
            }
            () = sleep_until(next_retry) => {
                let now = Instant::now();
                let due: Vec<PersonId> = retries
                    .iter()
                    .filter(|r| r.0 <= now)
                    .map(|r| r.1.clone())
                    .collect();
                retries.retain(|r| r.0 > now);
                for person in due {
                    actions.extend(reverse.retry(&person, |v, p| own.explains(v, p)));
                }
            }
            _ = stop.wait_for(|s| *s) => break,
        }
        while let Some(action) = actions.pop() {
            let result = target
                .set_dnd(&action.extensions, action.dnd, action.because.as_ref())
                .await;
            telemetry.reverse_action(action.dnd, result.is_ok());
            feed.report(if result.is_ok() {
                FeedReport::Succeeded
            } else {
                FeedReport::Failed
            });
            match &result {
                Ok(()) => {
                    tracing::info!(
                        person = %action.person.0,
                        "Teams {}: DND {} on {}",
                        action
                            .because
                            .as_ref()
                            .map_or("-".into(), |p| format!("{}/{}", p.availability, p.activity)),
                        if action.dnd { "on" } else { "off" },
                        action.extensions.join(", ")
                    );
                    for e in &action.extensions {
                        telemetry.set_pbx_dnd_by_us(e, action.dnd);
                    }
                }
                Err(e) => {
                    tracing::warn!(person = %action.person.0, "DND on the PBX failed: {e}; tried again in {RETRY:?}");
                    retries.push((Instant::now() + RETRY, action.person.clone()));
                }
            }
            actions.extend(reverse.done(&action, result.is_ok(), |v, p| own.explains(v, p)));
        }
    }
    for action in reverse.release_all() {
        if let Err(e) = target.set_dnd(&action.extensions, false, None).await {
            tracing::warn!(person = %action.person.0, "could not turn off the DND set on the PBX: {e}");
        }
        for e in &action.extensions {
            telemetry.set_pbx_dnd_by_us(e, false);
        }
    }
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn teams_to_pbx_is_off_unless_ami_or_publish() {
        let env = |v: &str| Env::from_pairs([("TEAMS_TO_PBX", v)]);
        assert_eq!(TeamsToPbx::from_env(&Env::default()), Ok(TeamsToPbx::Off));
        assert_eq!(TeamsToPbx::from_env(&env("off")), Ok(TeamsToPbx::Off));
        assert_eq!(TeamsToPbx::from_env(&env("AMI")), Ok(TeamsToPbx::Ami));
        assert_eq!(
            TeamsToPbx::from_env(&env("publish")),
            Ok(TeamsToPbx::Publish)
        );
        assert!(TeamsToPbx::Ami.is_on() && !TeamsToPbx::Off.is_on());
        let problem = TeamsToPbx::from_env(&env("sip")).unwrap_err();
        assert!(problem.to_string().contains("TEAMS_TO_PBX"), "{problem}");
        assert!(problem.to_string().contains("off, ami"), "{problem}");
    }

    #[test]
    fn a_published_dnd_reads_back_busy() {
        let doc = PublishTarget::document_for(
            "pbx.example.com",
            "1001",
            Some(&TeamsPresence::new("Busy", "InAMeeting")),
        );
        let pidf = blf::Pidf::parse(doc.as_bytes()).unwrap();
        assert_eq!(pidf.line_state(), blf::LineState::Busy);
        assert!(doc.contains("sip:1001@pbx.example.com"), "{doc}");
        assert!(doc.contains("Teams: Busy/InAMeeting"), "{doc}");
    }
}
