//! The `/sip-status` slash command: Mattermost POSTs the command's form to
//! `/mattermost/command`; the answer is an ephemeral Markdown table of who
//! is on the phone, with a link to the dashboard.

use std::collections::BTreeMap;
use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::rejection::FormRejection;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Form, Json, Router};
use sip_blf_engine::{LineState, PersonId, View, ViewFeed};
use subtle::ConstantTimeEq;

use crate::extensions::Extension;
use crate::problems::{Problem, Problems};
use crate::settings::{Env, Secret};

/// The slash command's settings. `Debug` never shows the token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandSettings {
    /// `MATTERMOST_COMMAND_TOKEN`: the token Mattermost shows for the command.
    pub token: Secret,
    /// `DASHBOARD_URL`: the dashboard's address as people reach it, linked
    /// in the answer (none when not set).
    pub dashboard_url: Option<String>,
}

impl CommandSettings {
    /// Reads the settings; `Ok(None)` when `MATTERMOST_COMMAND_TOKEN` is not set.
    pub fn from_env(env: &Env) -> Result<Option<CommandSettings>, Problems> {
        let mut problems = Problems::default();
        let dashboard_url = match env.get("DASHBOARD_URL").map(str::trim) {
            None | Some("") => None,
            Some(u) if u.starts_with("http://") || u.starts_with("https://") => Some(u.to_owned()),
            Some(u) => {
                problems.push(Problem::in_var(
                    "DASHBOARD_URL",
                    format!("{u:?} is not an http(s) URL; use the dashboard's address as people open it, e.g. https://phones.example.com/"),
                ));
                None
            }
        };
        let Some(token) = env.get("MATTERMOST_COMMAND_TOKEN").map(str::trim) else {
            return problems.into_result(None);
        };
        if token.is_empty() {
            problems.push(Problem::in_var(
                "MATTERMOST_COMMAND_TOKEN",
                "is empty: copy the token Mattermost shows for the /sip-status command \
                 (Integrations → Slash Commands)",
            ));
        }
        problems.into_result(Some(CommandSettings {
            token: Secret::new(token),
            dashboard_url,
        }))
    }
}

/// One person as the command shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The name from the extension list (else the e-mail).
    pub name: String,
    /// The combined line.
    pub line: LineState,
    /// DND on a phone.
    pub dnd: bool,
    /// The other party's number, in a call.
    pub with: Option<String>,
}

/// Every person's current view, shared (clones share it).
#[derive(Debug, Clone, Default)]
pub struct Roster(Arc<RwLock<BTreeMap<PersonId, Entry>>>);

impl Roster {
    /// Everyone of `extensions`, line unknown until a view comes.
    pub fn new(extensions: &[Extension]) -> Roster {
        let map = extensions
            .iter()
            .map(|e| {
                let entry = Entry {
                    name: e.name.clone().unwrap_or_else(|| e.email.clone()),
                    line: LineState::Unknown,
                    dnd: false,
                    with: None,
                };
                (PersonId(e.user().to_owned()), entry)
            })
            .collect();
        Roster(Arc::new(RwLock::new(map)))
    }

    /// Takes `view` in (people not listed are ignored).
    pub fn update(&self, view: &View) {
        let mut map = self.0.write().unwrap_or_else(PoisonError::into_inner);
        if let Some(entry) = map.get_mut(&view.person) {
            entry.line = view.line;
            entry.dnd = view.dnd;
            entry.with = view.counterparty.as_ref().map(|p| p.number.clone());
        }
    }

    /// Follows `feed` (from `Runtime::add_feed("mattermost-command")`)
    /// until the runtime stops.
    pub async fn follow(self, mut feed: ViewFeed) {
        while let Some(views) = feed.next().await {
            for fed in &views {
                self.update(&fed.view);
            }
        }
    }

    /// Everyone, in name order.
    pub fn entries(&self) -> Vec<Entry> {
        let map = self.0.read().unwrap_or_else(PoisonError::into_inner);
        let mut all: Vec<Entry> = map.values().cloned().collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }
}

#[derive(Clone)]
struct Shared {
    settings: Arc<CommandSettings>,
    roster: Roster,
}

/// The route `POST /mattermost/command`, to merge into a listener.
pub fn router(settings: CommandSettings, roster: Roster) -> Router {
    Router::new()
        .route("/mattermost/command", post(command))
        .with_state(Shared {
            settings: Arc::new(settings),
            roster,
        })
}

/// A [`Roster`] following the engine (a feed named `mattermost-command`)
/// with the names of `extensions`, and the route answering from it: merge
/// the router into the listener that serves `/mattermost/command`.
pub async fn start(
    runtime: &mut sip_blf_engine::Runtime,
    settings: CommandSettings,
    extensions: &[Extension],
) -> Result<Router, sip_blf_engine::RuntimeError> {
    let roster = Roster::new(extensions);
    let feed = runtime.add_feed("mattermost-command").await?;
    tokio::spawn(roster.clone().follow(feed));
    Ok(router(settings, roster))
}

/// Form fields Mattermost sends (only those used).
#[derive(Debug, serde::Deserialize)]
struct CommandForm {
    #[serde(default)]
    token: String,
    #[serde(default)]
    text: String,
}

fn ephemeral(status: StatusCode, text: &str) -> Response {
    let body = serde_json::json!({"response_type": "ephemeral", "text": text});
    (status, Json(body)).into_response()
}

async fn command(
    State(shared): State<Shared>,
    headers: HeaderMap,
    form: Result<Form<CommandForm>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return ephemeral(
            StatusCode::BAD_REQUEST,
            "This endpoint takes Mattermost's slash-command request (a form POST).",
        );
    };
    // The form's token, else `Authorization: Token …`.
    let header = headers
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split_once(' '))
        .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("token"))
        .map(|(_, t)| t.trim());
    let given = if form.token.is_empty() {
        header.unwrap_or_default()
    } else {
        form.token.as_str()
    };
    let expected = shared.settings.token.expose().as_bytes();
    if given.is_empty() {
        tracing::warn!("/sip-status: a request without a token was refused");
        return ephemeral(
            StatusCode::UNAUTHORIZED,
            "The request has no command token.",
        );
    }
    if !bool::from(given.as_bytes().ct_eq(expected)) {
        tracing::warn!("/sip-status: a request with a wrong token was refused");
        return ephemeral(
            StatusCode::FORBIDDEN,
            "The command token does not match MATTERMOST_COMMAND_TOKEN: copy the token \
             Mattermost shows for this slash command into the service's settings.",
        );
    }
    let all = form.text.trim().eq_ignore_ascii_case("all");
    let text = table(
        &shared.roster.entries(),
        all,
        shared.settings.dashboard_url.as_deref(),
    );
    ephemeral(StatusCode::OK, &text)
}

/// Markdown table cells must not break the table.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace(['\n', '\r'], " ")
}

fn state(e: &Entry) -> String {
    let call = match e.line {
        LineState::Ringing => ":bell: ringing",
        LineState::Busy => ":telephone_receiver: on the phone",
        LineState::Hold => ":pause_button: on hold",
        LineState::Idle => ":white_check_mark: free",
        LineState::Offline => ":electric_plug: offline",
        LineState::Unknown => ":grey_question: unknown",
    };
    let mut s = call.to_owned();
    if let Some(with) = e.with.as_deref().filter(|_| e.line.is_call()) {
        s.push_str(&format!(" with {}", cell(with)));
    }
    if e.dnd {
        s.push_str(" · :no_entry: DND");
    }
    s
}

/// The answer: who is on the phone (everyone with `all`), and the link.
pub fn table(entries: &[Entry], all: bool, dashboard: Option<&str>) -> String {
    let shown: Vec<&Entry> = entries.iter().filter(|e| all || e.line.is_call()).collect();
    let mut text = if shown.is_empty() {
        "Nobody is on the phone.".to_owned()
    } else {
        let mut t = String::from("| Person | Phone |\n|:---|:---|\n");
        for e in shown {
            t.push_str(&format!("| {} | {} |\n", cell(&e.name), state(e)));
        }
        t
    };
    if let Some(url) = dashboard {
        text.push_str(&format!("\n[Open the dashboard]({url})"));
    }
    if !all {
        text.push_str("\n\n`/sip-status all` lists everyone.");
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use sip_blf_engine::{AddressKey, Party};

    fn ext(extension: &str, email: &str, name: Option<&str>) -> Extension {
        let json = serde_json::json!([{"extension": extension, "email": email, "name": name}]);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("e.json");
        std::fs::write(&path, json.to_string()).unwrap();
        crate::extensions::load(&path).unwrap().remove(0)
    }

    fn view(person: &str, line: LineState, with: Option<&str>) -> View {
        View {
            person: PersonId(person.into()),
            line,
            counterparty: with.map(|n| Party {
                number: n.into(),
                name: None,
            }),
            direction: None,
            dnd: false,
            registered: Some(true),
            cause: Some(AddressKey::new("pbx", "1001")),
            lines: Vec::new(),
            queues: Vec::new(),
            presence: None,
        }
    }

    async fn serve(roster: Roster) -> String {
        let settings = CommandSettings {
            token: Secret::new("cmd-token"),
            dashboard_url: Some("https://phones.example.com/".into()),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router(settings, roster)).await });
        format!("http://{addr}/mattermost/command")
    }

    async fn ask(url: &str, form: &[(&str, &str)], auth: Option<&str>) -> (u16, serde_json::Value) {
        let mut req = reqwest::Client::new().post(url).form(form);
        if let Some(a) = auth {
            req = req.header("Authorization", a);
        }
        let r = req.send().await.unwrap();
        (r.status().as_u16(), r.json().await.unwrap())
    }

    #[tokio::test]
    async fn the_command_answers_who_is_on_the_phone_with_the_dashboard_link() {
        let roster = Roster::new(&[
            ext("1001", "alice@contoso.com", Some("Alice | Sales")),
            ext("1002", "bob@contoso.com", None),
        ]);
        roster.update(&view(
            "alice@contoso.com",
            LineState::Busy,
            Some("+4930123"),
        ));
        roster.update(&view("bob@contoso.com", LineState::Idle, None));
        roster.update(&view("stranger@contoso.com", LineState::Busy, None));
        let url = serve(roster.clone()).await;
        let form = [
            ("token", "cmd-token"),
            ("command", "/sip-status"),
            ("text", ""),
            ("user_name", "carol"),
        ];
        let (code, body) = ask(&url, &form, None).await;
        assert_eq!(code, 200);
        assert_eq!(body["response_type"], "ephemeral");
        let text = body["text"].as_str().unwrap();
        assert!(text.contains("| Person | Phone |\n|:---|:---|\n"), "{text}");
        assert!(
            text.contains("| Alice \\| Sales | :telephone_receiver: on the phone with +4930123 |"),
            "{text}"
        );
        assert!(
            !text.contains("bob@") && !text.contains("stranger"),
            "{text}"
        );
        assert!(
            text.contains("[Open the dashboard](https://phones.example.com/)"),
            "{text}"
        );
        let (_, body) = ask(&url, &[("token", "cmd-token"), ("text", "all")], None).await;
        assert!(body["text"]
            .as_str()
            .unwrap()
            .contains("| bob@contoso.com | :white_check_mark: free |"));
        // The token may also come in the header, as Mattermost sends it.
        let (code, _) = ask(&url, &[("text", "")], Some("Token cmd-token")).await;
        assert_eq!(code, 200);
        roster.update(&view("alice@contoso.com", LineState::Idle, None));
        let (_, body) = ask(&url, &form, None).await;
        assert!(body["text"]
            .as_str()
            .unwrap()
            .starts_with("Nobody is on the phone."));
    }

    #[tokio::test]
    async fn a_wrong_or_missing_token_is_refused() {
        let url = serve(Roster::default()).await;
        let (code, body) = ask(&url, &[("token", "cmd-tokeX"), ("text", "")], None).await;
        assert_eq!(code, 403);
        assert_eq!(body["response_type"], "ephemeral");
        assert!(body["text"]
            .as_str()
            .unwrap()
            .contains("MATTERMOST_COMMAND_TOKEN"));
        let (code, _) = ask(&url, &[("text", "")], None).await;
        assert_eq!(code, 401);
        let r = reqwest::Client::new()
            .post(&url)
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), 400);
    }

    #[test]
    fn settings_need_a_token_and_an_http_dashboard_url() {
        let read = |pairs: &[(&str, &str)]| {
            CommandSettings::from_env(&Env::from_pairs(pairs.iter().copied()))
        };
        assert_eq!(read(&[]), Ok(None));
        let s = read(&[
            ("MATTERMOST_COMMAND_TOKEN", "t"),
            ("DASHBOARD_URL", "https://x/"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(s.dashboard_url.as_deref(), Some("https://x/"));
        let e = read(&[("MATTERMOST_COMMAND_TOKEN", "t"), ("DASHBOARD_URL", "x")])
            .unwrap_err()
            .to_string();
        assert!(e.contains("DASHBOARD_URL") && e.contains("http(s)"), "{e}");
    }
}
