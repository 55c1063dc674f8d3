//! The Mattermost sink: a person's status and custom status while they are
//! on the phone, what they had before afterwards, and optional posts.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use sip_blf_engine::{LineState, PersonId, Sink, SinkError, View, Write, WriteReason};

use super::client::{ApiError, Client, CustomStatus};
use super::restore::{self, Before, CustomStep, Ours, Saved, StatusStep};
use super::settings::{MattermostSettings, PostOn};
use crate::extensions::Extension;

/// What Mattermost should show for a person.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Shown {
    /// On the phone: our status and custom status are set.
    pub busy: bool,
    /// The line, when changes are posted (`None` otherwise, so that only
    /// `busy` makes a write).
    pub line: Option<LineState>,
    /// DND on the phone, when changes are posted.
    pub dnd: Option<bool>,
}

/// Who a person is in Mattermost's terms.
#[derive(Debug, Clone)]
struct Person {
    email: String,
    name: String,
}

/// The call a request was part of, for the error's words.
enum Call<'a> {
    Lookup(&'a str),
    Change(&'a str),
    Channel,
    Post,
}

struct Inner {
    client: Client,
    settings: MattermostSettings,
    people: BTreeMap<PersonId, Person>,
    /// E-mail → user id, found once.
    ids: Mutex<HashMap<String, String>>,
    channel_id: tokio::sync::Mutex<Option<String>>,
    saved: Mutex<BTreeMap<PersonId, Saved>>,
    saved_path: Option<PathBuf>,
    last: Mutex<BTreeMap<PersonId, Shown>>,
}

/// The sink; clones share everything (keep one to call
/// [`restore_all`](Self::restore_all) at a clean stop).
#[derive(Clone)]
pub struct MattermostSink(Arc<Inner>);

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MattermostSink {
    /// A sink for the people of `extensions`, keeping what it saved in
    /// `saved_path` (beside the state file) when given, read back here.
    pub fn new(
        settings: MattermostSettings,
        extensions: &[Extension],
        saved_path: Option<PathBuf>,
    ) -> Result<MattermostSink, ApiError> {
        let client = Client::new(&settings.url, settings.token.clone())?;
        let people = extensions
            .iter()
            .map(|e| {
                let person = Person {
                    email: e.email.clone(),
                    name: e.name.clone().unwrap_or_else(|| e.email.clone()),
                };
                (PersonId(e.user().to_owned()), person)
            })
            .collect();
        let saved = match &saved_path {
            Some(path) => match std::fs::read(path) {
                Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                    tracing::warn!(
                        "{}: {e}; no saved Mattermost status to restore",
                        path.display()
                    );
                    BTreeMap::new()
                }),
                Err(_) => BTreeMap::new(),
            },
            None => BTreeMap::new(),
        };
        Ok(MattermostSink(Arc::new(Inner {
            client,
            settings,
            people,
            ids: Mutex::new(HashMap::new()),
            channel_id: tokio::sync::Mutex::new(None),
            saved: Mutex::new(saved),
            saved_path,
            last: Mutex::new(BTreeMap::new()),
        })))
    }

    /// Checks the token (`GET /users/me`): `Ok` with the account's username,
    /// or the problem with its fix.
    pub async fn check_token(&self) -> Result<String, SinkError> {
        self.0
            .client
            .me()
            .await
            .map(|u| u.username)
            .map_err(|e| self.error(e, Call::Lookup("")))
    }

    /// The people whose status is set now (saved for restoring).
    pub fn changed(&self) -> Vec<PersonId> {
        lock(&self.0.saved).keys().cloned().collect()
    }

    /// At a clean stop: restores everyone whose status was set; the
    /// failures, each with its person.
    pub async fn restore_all(&self) -> Vec<(PersonId, SinkError)> {
        let mut failed = Vec::new();
        for person in self.changed() {
            if let Err(e) = self.end(&person).await {
                failed.push((person, e));
            }
        }
        failed
    }

    fn persist(&self, saved: &BTreeMap<PersonId, Saved>) {
        let Some(path) = &self.0.saved_path else {
            return;
        };
        let written = serde_json::to_vec_pretty(saved)
            .map_err(std::io::Error::other)
            .and_then(|json| {
                let tmp = path.with_extension("tmp");
                std::fs::write(&tmp, json)?;
                std::fs::rename(&tmp, path)
            });
        if let Err(e) = written {
            tracing::warn!("cannot write {}: {e}", path.display());
        }
    }

    fn save(&self, person: &PersonId, entry: Option<Saved>) {
        let mut saved = lock(&self.0.saved);
        match entry {
            Some(s) => saved.insert(person.clone(), s),
            None => saved.remove(person),
        };
        self.persist(&saved);
    }

    fn error(&self, e: ApiError, call: Call<'_>) -> SinkError {
        let channel = || {
            self.0
                .settings
                .channel
                .as_ref()
                .map(|(t, c)| format!("{t}/{c}"))
                .unwrap_or_default()
        };
        match (&e, e.status()) {
            (ApiError::Network(_), _) => SinkError::transient(e.to_string()),
            (ApiError::Status { retry_after, .. }, Some(429)) => SinkError::Transient {
                message: format!("Mattermost's rate limit: {e}"),
                retry_after: *retry_after,
            },
            (_, Some(401)) => SinkError::permanent(format!(
                "Mattermost refused MATTERMOST_TOKEN ({e}): the token is wrong or revoked, or \
                 personal access tokens are disabled (System Console → Integrations → Enable \
                 Personal Access Tokens); create a new bot token (System Console → Integrations \
                 → Bot Accounts) and put it in MATTERMOST_TOKEN"
            )),
            (_, Some(403)) => SinkError::permanent(match call {
                Call::Lookup(email) => format!(
                    "the account of MATTERMOST_TOKEN may not look up {email} by e-mail ({e}): \
                     give it the System Admin role (bots: System Console → Integrations → Bot \
                     Accounts → role), or show e-mail addresses (Privacy → Show Email Address)"
                ),
                Call::Change(email) => format!(
                    "the account of MATTERMOST_TOKEN may not change {email}'s status ({e}): it \
                     needs the System Admin role (bots: System Console → Integrations → Bot \
                     Accounts → role), or the edit_other_users permission for users who are not \
                     admins"
                ),
                Call::Channel | Call::Post => format!(
                    "the account of MATTERMOST_TOKEN may not post in {} ({e}): add it to the \
                     channel, or give the bot post:channels",
                    channel()
                ),
            }),
            (_, Some(404)) => SinkError::permanent(match call {
                Call::Lookup(email) => format!(
                    "no Mattermost user has the e-mail {email} ({e}): fix the e-mail in the \
                     extension list, or create the user"
                ),
                Call::Channel | Call::Post => format!(
                    "MATTERMOST_CHANNEL {} was not found ({e}): use the team's and channel's URL \
                     names, and add the token's account to the channel",
                    channel()
                ),
                Call::Change(email) => format!(
                    "Mattermost has no status for {email} ({e}): are user statuses enabled \
                     (ServiceSettings.EnableUserStatuses)?"
                ),
            }),
            (_, Some(501)) => SinkError::permanent(format!(
                "custom statuses are disabled on the server ({e}): enable them (Site \
                 Configuration → Users and Teams → Enable Custom Statuses) or set \
                 MATTERMOST_CUSTOM_STATUS=none"
            )),
            (_, Some(s)) if s >= 500 => SinkError::transient(e.to_string()),
            _ => SinkError::permanent(format!("Mattermost: {e}")),
        }
    }

    async fn user_id(&self, person: &Person) -> Result<String, SinkError> {
        let cached = lock(&self.0.ids).get(&person.email).cloned();
        if let Some(id) = cached {
            return Ok(id);
        }
        let user = self
            .0
            .client
            .user_by_email(&person.email)
            .await
            .map_err(|e| self.error(e, Call::Lookup(&person.email)))?;
        lock(&self.0.ids).insert(person.email.clone(), user.id.clone());
        Ok(user.id)
    }

    /// The call starts: keep what they have, then set ours.
    async fn begin(&self, id: &PersonId, person: &Person) -> Result<(), SinkError> {
        let saved = lock(&self.0.saved).get(id).cloned();
        let mut saved = match saved {
            Some(s) if s.applied => return Ok(()),
            Some(s) => s,
            None => {
                let user_id = self.user_id(person).await?;
                let change = |e| self.error(e, Call::Change(&person.email));
                let status = self.0.client.status(&user_id).await.map_err(change)?;
                let user = self.0.client.user(&user_id).await.map_err(change)?;
                let s = Saved {
                    user_id,
                    before: Before {
                        status,
                        custom: user.custom,
                    },
                    ours: Ours {
                        status: self.0.settings.busy_status.clone(),
                        custom: self.0.settings.custom.clone(),
                    },
                    applied: false,
                };
                // Kept before anything changes: a crash in between still restores.
                self.save(id, Some(s.clone()));
                s
            }
        };
        let until = chrono::Utc::now()
            + chrono::Duration::from_std(self.0.settings.expiry).unwrap_or_default();
        let change = |e| self.error(e, Call::Change(&person.email));
        if let Some(status) = &saved.ours.status {
            self.0
                .client
                .set_status(&saved.user_id, status, until.timestamp())
                .await
                .map_err(change)?;
        }
        if let Some((emoji, text)) = &saved.ours.custom {
            let custom = CustomStatus {
                emoji: emoji.clone(),
                text: text.clone(),
                duration: "date_and_time".into(),
                expires_at: until.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            };
            self.0
                .client
                .set_custom(&saved.user_id, &custom)
                .await
                .map_err(change)?;
        }
        saved.applied = true;
        self.save(id, Some(saved));
        tracing::info!(person = %person.email, "Mattermost shows the call");
        Ok(())
    }

    /// The call ended: put back what they had, unless they changed it.
    async fn end(&self, id: &PersonId) -> Result<(), SinkError> {
        let Some(saved) = lock(&self.0.saved).get(id).cloned() else {
            return Ok(());
        };
        let email = self
            .0
            .people
            .get(id)
            .map_or_else(|| id.to_string(), |p| p.email.clone());
        let change = |e| self.error(e, Call::Change(&email));
        let status = self.0.client.status(&saved.user_id).await.map_err(change)?;
        let user = self.0.client.user(&saved.user_id).await.map_err(change)?;
        let now = chrono::Utc::now().timestamp();
        let (status_step, custom_step) = restore::plan(&saved, &status, user.custom.as_ref(), now);
        if let StatusStep::Set(status, end) = &status_step {
            self.0
                .client
                .set_status(&saved.user_id, status, *end)
                .await
                .map_err(change)?;
        }
        match &custom_step {
            CustomStep::Put(c) => self.0.client.set_custom(&saved.user_id, c).await,
            CustomStep::Clear => self.0.client.clear_custom(&saved.user_id).await,
            CustomStep::Leave => Ok(()),
        }
        .map_err(change)?;
        self.save(id, None);
        let left = [
            (matches!(status_step, StatusStep::Leave) && saved.ours.status.is_some())
                .then_some("status"),
            (matches!(custom_step, CustomStep::Leave) && saved.ours.custom.is_some())
                .then_some("custom status"),
        ];
        let left: Vec<&str> = left.into_iter().flatten().collect();
        if left.is_empty() {
            tracing::info!(person = %email, "Mattermost status restored");
        } else {
            tracing::info!(
                person = %email,
                "Mattermost status restored; {} left as the person changed it during the call",
                left.join(" and ")
            );
        }
        Ok(())
    }

    async fn channel_id(&self) -> Result<Option<String>, SinkError> {
        let Some((team, channel)) = &self.0.settings.channel else {
            return Ok(None);
        };
        let mut id = self.0.channel_id.lock().await;
        if id.is_none() {
            let found = self
                .0
                .client
                .channel_id(team, channel)
                .await
                .map_err(|e| self.error(e, Call::Channel))?;
            *id = Some(found);
        }
        Ok(id.clone())
    }

    /// The post for the change from `before` to `now`, if the filter lets it through.
    fn message(&self, name: &str, before: Option<&Shown>, now: &Shown) -> Option<String> {
        let posts = &self.0.settings.post_on;
        let mut lines = Vec::new();
        if let Some(line) = now.line {
            let changed = before.and_then(|b| b.line) != Some(line);
            if changed && PostOn::of_line(line).is_some_and(|p| posts.contains(&p)) {
                lines.push(match line {
                    LineState::Ringing => format!(":bell: **{name}**'s phone is ringing"),
                    LineState::Busy => format!(":telephone_receiver: **{name}** is on the phone"),
                    LineState::Hold => format!(":pause_button: **{name}** has a call on hold"),
                    LineState::Offline => format!(":electric_plug: **{name}**'s phone is offline"),
                    _ => format!(":white_check_mark: **{name}** is off the phone"),
                });
            }
        }
        if let Some(dnd) = now.dnd {
            let changed = before.and_then(|b| b.dnd).unwrap_or(false) != dnd;
            if changed && posts.contains(&PostOn::Dnd) {
                let onoff = if dnd { "on" } else { "off" };
                lines.push(format!(":no_entry: **{name}** turned DND {onoff}"));
            }
        }
        (!lines.is_empty()).then(|| lines.join("\n"))
    }

    async fn apply(&self, write: &Write<Shown>) -> Result<(), SinkError> {
        let Some(person) = self.0.people.get(&write.person) else {
            return Ok(());
        };
        if write.held.busy {
            self.begin(&write.person, person).await?;
        } else {
            self.end(&write.person).await?;
        }
        let before = lock(&self.0.last).get(&write.person).cloned();
        // The replay at start is not a change: nothing to announce.
        if write.reason != WriteReason::Replay {
            if let Some(message) = self.message(&person.name, before.as_ref(), &write.held) {
                if let Some(channel) = self.channel_id().await? {
                    self.0
                        .client
                        .post(&channel, &message)
                        .await
                        .map_err(|e| self.error(e, Call::Post))?;
                }
            }
        }
        lock(&self.0.last).insert(write.person.clone(), write.held.clone());
        Ok(())
    }
}

impl Sink for MattermostSink {
    type Held = Shown;

    fn name(&self) -> &str {
        "mattermost"
    }

    fn desired(&self, view: &View) -> Option<Shown> {
        // Not known yet (before the first report, or the PBX out of
        // reach): whatever Mattermost shows stays until it is known.
        if !self.0.people.contains_key(&view.person) || view.line == LineState::Unknown {
            return None;
        }
        let posting = self.0.settings.channel.is_some();
        Some(Shown {
            busy: view.line.is_call(),
            line: posting.then_some(view.line),
            dnd: posting.then_some(view.dnd),
        })
    }

    async fn write(&self, batch: Vec<Write<Shown>>) -> Vec<Result<(), SinkError>> {
        let mut results = Vec::with_capacity(batch.len());
        for write in &batch {
            results.push(self.apply(write).await);
        }
        results
    }
}

/// Builds the sink and adds it to `runtime`; the token is checked in the
/// background (a failure is logged with its fix, the writes retry).
pub async fn add_to(
    runtime: &mut sip_blf_engine::Runtime,
    settings: &MattermostSettings,
    extensions: &[Extension],
    saved: Option<PathBuf>,
) -> Result<MattermostSink, Box<dyn std::error::Error>> {
    let sink = MattermostSink::new(settings.clone(), extensions, saved)
        .map_err(|e| format!("MATTERMOST_URL {}: {e}", settings.url))?;
    let check = sink.clone();
    tokio::spawn(async move {
        match check.check_token().await {
            Ok(name) => tracing::info!("Mattermost: signed in as {name}"),
            Err(e) => tracing::error!("Mattermost: {e}"),
        }
    });
    tracing::info!("statuses go to Mattermost at {}", settings.url);
    runtime.add_sink(sink.clone()).await?;
    Ok(sink)
}

/// At a clean stop: everyone whose status was set gets theirs back (within `limit`).
pub async fn restore_at_stop(sink: &MattermostSink, limit: std::time::Duration) {
    match tokio::time::timeout(limit, sink.restore_all()).await {
        Ok(failed) => {
            for (person, e) in failed {
                tracing::warn!(%person, "Mattermost status not restored at the stop: {e}");
            }
        }
        Err(_) => tracing::warn!(
            "Mattermost statuses not all restored in {limit:?}; they are restored at the next start"
        ),
    }
}
