//! What `run` needs, read and checked before anything connects: which
//! sources and sinks (`SOURCES`, `SINKS`), each one's settings, and the
//! problems of all of them at once.

use std::time::Duration;

use crate::action_url::{self, ActionUrlSettings, PHONE};
use crate::ami_source::AmiSettings;
use crate::dashboard::DashboardSettings;
use crate::database::DatabaseSettings;
use crate::engine::EngineConfig;
use crate::extensions::{self, Extension};
use crate::ha::{Fence, HaSettings};
use crate::mattermost::command::CommandSettings;
use crate::mattermost::MattermostSettings;
use crate::observe;
use crate::problems::{Problem, Problems};
use crate::settings::{self, Env, SipSettings};
use crate::sip_message::SipMessageSettings;
use crate::sip_source::PBX;
use crate::teams_to_pbx::{TeamsRules, TeamsToPbx};
use crate::webhook::WebhookSettings;

/// What `SOURCES` may list.
pub const SOURCE_NAMES: [&str; 3] = ["sip", "ami", "action-url"];

/// What `SINKS` may list.
pub const SINK_NAMES: [&str; 6] = [
    "graph",
    "log",
    "database",
    "webhook",
    "mattermost",
    "sip-message",
];

/// Where views go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// Teams presence through Microsoft Graph.
    Graph,
    /// The presence decisions, printed instead of applied.
    Log,
    /// Each extension's line in a database table (`DATABASE_URL`).
    Database,
    /// A signed JSON POST per change to `WEBHOOK_URL`.
    Webhook,
    /// Mattermost status while on the phone (`MATTERMOST_URL`).
    Mattermost,
    /// A SIP MESSAGE per changed extension to web phones (`SIP_MESSAGE_TO`).
    SipMessage,
}

impl SinkKind {
    /// The sink's name as `SINKS` lists it.
    pub fn name(self) -> &'static str {
        match self {
            Self::Graph => "graph",
            Self::Log => "log",
            Self::Database => "database",
            Self::Webhook => "webhook",
            Self::Mattermost => "mattermost",
            Self::SipMessage => "sip-message",
        }
    }
}

/// Reads a comma list of names (`SOURCES`, `SINKS`): each must be one of
/// `valid`; duplicates count once; an empty list is a problem.
fn names(var: &str, value: &str, valid: &[&str]) -> Result<Vec<String>, Problem> {
    let mut out: Vec<String> = Vec::new();
    for name in value.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let name = name.to_ascii_lowercase();
        if !valid.contains(&name.as_str()) {
            return Err(Problem::in_var(
                var,
                format!("unknown name {name:?}; valid: {}", valid.join(", ")),
            ));
        }
        if !out.contains(&name) {
            out.push(name);
        }
    }
    if out.is_empty() {
        return Err(Problem::in_var(
            var,
            format!("lists nothing; valid: {}", valid.join(", ")),
        ));
    }
    Ok(out)
}

/// The sinks from `SINKS` (default: `graph` with a tenant, else `log`);
/// `--dry-run` turns `graph` into `log`.
pub fn sinks_from_env(env: &Env, dry_run: bool) -> Result<Vec<SinkKind>, Problem> {
    let default = if env.get("AZURE_TENANT_ID").is_some() {
        "graph"
    } else {
        "log"
    };
    let listed = names("SINKS", env.get("SINKS").unwrap_or(default), &SINK_NAMES)?;
    let mut sinks = Vec::new();
    for name in listed {
        let kind = match name.as_str() {
            "graph" if dry_run => SinkKind::Log,
            "graph" => SinkKind::Graph,
            "database" => SinkKind::Database,
            "webhook" => SinkKind::Webhook,
            "mattermost" => SinkKind::Mattermost,
            "sip-message" => SinkKind::SipMessage,
            _ => SinkKind::Log,
        };
        if !sinks.contains(&kind) {
            sinks.push(kind);
        }
    }
    if sinks.contains(&SinkKind::Graph) && sinks.contains(&SinkKind::Log) {
        return Err(Problem::in_var(
            "SINKS",
            "graph and log are the same presence decisions, applied or printed: list one \
             (or use --dry-run)",
        ));
    }
    Ok(sinks)
}

/// Everything `run` needs, read and checked before anything connects.
pub struct RunPlan {
    pub(super) sip: Option<SipSettings>,
    pub(super) ami: Option<AmiSettings>,
    pub(super) action_url: Option<ActionUrlSettings>,
    /// The `/sip-status` slash command, served on the action-URL listener.
    pub(super) mattermost_command: Option<CommandSettings>,
    pub(super) extensions: Vec<Extension>,
    pub(super) engine: EngineConfig,
    pub(super) http: Option<std::net::SocketAddr>,
    pub(super) dashboard: DashboardSettings,
    /// A dashboard served by the caller (`demo`) instead of on `http`.
    pub(super) board: Option<line_board::Board>,
    pub(super) graph: Option<graph_presence::GraphConfig>,
    pub(super) sinks: Vec<SinkKind>,
    pub(super) database: Option<DatabaseSettings>,
    pub(super) webhook: Option<WebhookSettings>,
    pub(super) mattermost: Option<MattermostSettings>,
    pub(super) sip_message: Option<SipMessageSettings>,
    pub(super) calls_in_flight: Option<usize>,
    pub(super) persist: bool,
    pub(super) teams: TeamsPlan,
    /// `HA_LEASE`: one of an HA pair ([`crate::ha`]).
    pub(super) ha: Option<HaSettings>,
    /// The write gate while this instance holds the HA lease.
    pub(super) fence: Option<Fence>,
}

/// Teams → PBX, when `TEAMS_TO_PBX` is not `off`.
#[derive(Debug, Clone, Default)]
pub(super) struct TeamsPlan {
    pub(super) mode: TeamsToPbx,
    pub(super) poll: Duration,
    pub(super) rules: TeamsRules,
    /// The AMI for DND when `ami` is not a source.
    pub(super) ami: Option<AmiSettings>,
}

impl RunPlan {
    /// Reads every setting; all problems are reported together. Without
    /// `AZURE_TENANT_ID` (or with `dry_run`) the decisions are only logged.
    pub fn from_env(env: &Env, dry_run: bool) -> Result<RunPlan, Problems> {
        let mut problems = Problems::default();
        let sources = names(
            "SOURCES",
            env.get("SOURCES").unwrap_or("sip"),
            &SOURCE_NAMES,
        )
        .unwrap_or_else(|p| {
            problems.push(p);
            vec!["sip".to_owned()]
        });
        let listed = |name: &str| sources.iter().any(|s| s == name);
        let sinks = sinks_from_env(env, dry_run).unwrap_or_else(|p| {
            problems.push(p);
            Vec::new()
        });
        let sip = if listed("sip") {
            take(SipSettings::from_env(env), &mut problems).map(Some)
        } else {
            Some(None)
        };
        let ami = if listed("ami") {
            take(AmiSettings::from_env(env), &mut problems).map(Some)
        } else {
            Some(None)
        };
        let action_url = action_url_plan(env, listed(action_url::SOURCE_NAME), &mut problems);
        let mattermost_command = take(CommandSettings::from_env(env), &mut problems).flatten();
        if mattermost_command.is_some() && !listed(action_url::SOURCE_NAME) {
            problems.push(Problem::in_var(
                "MATTERMOST_COMMAND_TOKEN",
                "the /sip-status command is served at POST /mattermost/command on the \
                 action-URL listener: add action-url to SOURCES and set ACTION_URL_LISTEN \
                 (or remove MATTERMOST_COMMAND_TOKEN)",
            ));
        }
        let extensions = take(
            extensions::load(&settings::extensions_path(env)),
            &mut problems,
        );
        let engine = take(EngineConfig::from_env(env), &mut problems);
        let graph = if sinks.contains(&SinkKind::Graph) {
            take(settings::graph_config(env), &mut problems)
        } else {
            None
        };
        let database = take(DatabaseSettings::from_env(env), &mut problems).flatten();
        match (&database, sinks.contains(&SinkKind::Database)) {
            (None, true) => problems.push(Problem::in_var(
                "DATABASE_URL",
                "is needed by the database sink in SINKS: sqlite://PATH (created on first \
                 start) or postgres://USER:PASSWORD@HOST:PORT/DB",
            )),
            (Some(_), false) => problems.push(Problem::in_var(
                "SINKS",
                "DATABASE_URL is set but SINKS does not list database: add it (e.g. \
                 SINKS=graph,database) or remove DATABASE_URL",
            )),
            _ => {}
        }
        let webhook = take(WebhookSettings::from_env(env), &mut problems).flatten();
        match (env.get("WEBHOOK_URL"), sinks.contains(&SinkKind::Webhook)) {
            (None, true) => problems.push(Problem::in_var(
                "WEBHOOK_URL",
                "is needed by the webhook sink in SINKS: the receiver's http:// or https:// URL, \
                 with WEBHOOK_SECRET to sign the requests",
            )),
            (Some(_), false) => problems.push(Problem::in_var(
                "SINKS",
                "WEBHOOK_URL is set but SINKS does not list webhook: add it (e.g. \
                 SINKS=graph,webhook) or remove WEBHOOK_URL",
            )),
            _ => {}
        }
        let mattermost = take(MattermostSettings::from_env(env), &mut problems).flatten();
        match (&mattermost, sinks.contains(&SinkKind::Mattermost)) {
            (None, true) => problems.push(Problem::in_var(
                "MATTERMOST_URL",
                "is needed by the mattermost sink in SINKS, with MATTERMOST_TOKEN: the server's \
                 address, e.g. https://chat.example.com",
            )),
            (Some(_), false) => problems.push(Problem::in_var(
                "SINKS",
                "MATTERMOST_URL is set but SINKS does not list mattermost: add it (e.g. \
                 SINKS=graph,mattermost) or remove MATTERMOST_URL and MATTERMOST_TOKEN",
            )),
            _ => {}
        }
        let sip_message = take(SipMessageSettings::from_env(env), &mut problems).flatten();
        match (&sip_message, sinks.contains(&SinkKind::SipMessage)) {
            (None, true) => problems.push(Problem::in_var(
                "SIP_MESSAGE_TO",
                "is needed by the sip-message sink in SINKS: the SIP URI of the account the web \
                 phones listen on, e.g. sip:webphones@pbx.example.com",
            )),
            (Some(_), false) => problems.push(Problem::in_var(
                "SINKS",
                "SIP_MESSAGE_TO is set but SINKS does not list sip-message: add it (e.g. \
                 SINKS=graph,sip-message) or remove SIP_MESSAGE_TO",
            )),
            (Some(_), true) if !listed("sip") => problems.push(Problem::in_var(
                "SINKS",
                "sip-message sends its MESSAGEs through the SIP source's registered account: \
                 add sip to SOURCES (e.g. SOURCES=sip)",
            )),
            _ => {}
        }
        let http = match observe::parse_http_listen(env.get("HTTP_LISTEN")) {
            Ok(h) => h,
            Err(e) => {
                problems.push(Problem::in_var("HTTP_LISTEN", e.to_string()));
                None
            }
        };
        let expires = sip
            .as_ref()
            .and_then(Option::as_ref)
            .map_or(settings::DEFAULT_SUBSCRIBE_EXPIRES, |s| s.subscribe_expires);
        let dashboard = DashboardSettings::from_env(env, http, expires).unwrap_or_else(|p| {
            problems.extend(p);
            DashboardSettings::default()
        });
        let teams = teams_plan(
            env,
            listed("sip"),
            listed("ami"),
            graph.is_some(),
            &mut problems,
        );
        let ha = ha_settings(env, &sip, &ami, &sinks, &teams, &mut problems);
        match (sip, ami, extensions, engine) {
            (Some(sip), Some(ami), Some(extensions), Some(engine)) if problems.is_empty() => {
                Ok(RunPlan {
                    sip,
                    ami,
                    action_url,
                    mattermost_command,
                    extensions,
                    engine,
                    http,
                    dashboard,
                    board: None,
                    graph,
                    sinks,
                    database,
                    webhook,
                    mattermost,
                    sip_message,
                    calls_in_flight: None,
                    persist: true,
                    teams,
                    ha,
                    fence: None,
                })
            }
            _ => Err(problems),
        }
    }
}

impl RunPlan {
    /// The PBX's BLF subscriptions, when `SOURCES` lists `sip`.
    pub fn sip(&self) -> Option<&SipSettings> {
        self.sip.as_ref()
    }

    /// The sources' names as the database's `source` column shows them
    /// (`sip`, `ami`, `sip+ami`, `action-url`).
    pub fn source_label(&self) -> String {
        let names: Vec<&str> = [
            ("sip", self.sip.is_some()),
            ("ami", self.ami.is_some()),
            (action_url::SOURCE_NAME, self.action_url.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, on)| on.then_some(name))
        .collect();
        names.join("+")
    }

    /// The PBX's manager interface, when `SOURCES` lists `ami`.
    pub fn ami(&self) -> Option<&AmiSettings> {
        self.ami.as_ref()
    }

    /// The desk phones' listener, when `SOURCES` lists `action-url`.
    pub fn action_url(&self) -> Option<&ActionUrlSettings> {
        self.action_url.as_ref()
    }

    /// The system whose lines the dashboard and the database show: the
    /// PBX's, or the phones' when only they report.
    pub(super) fn line_system(&self) -> &'static str {
        if self.sip.is_none() && self.ami.is_none() && self.action_url.is_some() {
            PHONE
        } else {
            PBX
        }
    }

    /// The extension list.
    pub fn extensions(&self) -> &[Extension] {
        &self.extensions
    }

    /// Feeds `board`, a dashboard the caller serves itself (`demo`, which
    /// serves its own status page), with every line as the engine sees it.
    pub fn set_board(&mut self, board: line_board::Board) {
        self.board = Some(board);
    }

    /// Gives the presence clearing at stop this long (default 10 s): with many
    /// users, Graph's request budget makes clearing them all take longer.
    pub fn set_shutdown_limit(&mut self, limit: Duration) {
        self.engine.shutdown_limit = limit;
    }

    /// The Microsoft Graph configuration; `None` for a dry run.
    pub fn graph(&self) -> Option<&graph_presence::GraphConfig> {
        self.graph.as_ref()
    }

    /// The sinks, in the order listed.
    pub fn sinks(&self) -> &[SinkKind] {
        &self.sinks
    }

    /// The database sink's settings, when `SINKS` lists `database`.
    pub fn database(&self) -> Option<&DatabaseSettings> {
        self.database.as_ref()
    }

    /// The webhook sink's settings, when `SINKS` lists `webhook`.
    pub fn webhook(&self) -> Option<&WebhookSettings> {
        self.webhook.as_ref()
    }

    /// The Mattermost sink's settings, when `SINKS` lists `mattermost`.
    pub fn mattermost(&self) -> Option<&MattermostSettings> {
        self.mattermost.as_ref()
    }

    /// The SIP MESSAGE sink's settings, when `SINKS` lists `sip-message`.
    pub fn sip_message(&self) -> Option<&SipMessageSettings> {
        self.sip_message.as_ref()
    }

    /// Sets the Graph client's request budget (benchmarks).
    pub fn set_request_budget(&mut self, budget: graph_presence::BudgetConfig) {
        if let Some(graph) = self.graph.take() {
            self.graph = Some(graph.with_request_budget(budget));
        }
    }

    /// Sets how many Graph calls may be in flight at once (default
    /// [`crate::engine::DEFAULT_CALLS_IN_FLIGHT`]).
    pub fn set_calls_in_flight(&mut self, calls: usize) {
        self.calls_in_flight = Some(calls);
    }

    /// The HA settings, when `HA_LEASE` is set: run through [`crate::ha::run`].
    pub fn ha(&self) -> Option<&HaSettings> {
        self.ha.as_ref()
    }

    /// Serves HTTP on `addr` instead of `HTTP_LISTEN` (the HA standby's
    /// listener's address, so that both roles answer on one port).
    pub fn set_http(&mut self, addr: Option<std::net::SocketAddr>) {
        self.http = addr;
    }

    /// Puts every sink write behind `fence` and takes over from an earlier
    /// active whose writes are unknown ([`crate::engine::Engine::assume_unknown`]).
    pub fn set_fence(&mut self, fence: Fence) {
        self.fence = Some(fence);
    }

    /// Runs without the state file (benchmarks that measure the rest alone).
    pub fn without_state_file(&mut self) {
        self.persist = false;
    }
}

/// Reads `TEAMS_TO_PBX`, `TEAMS_POLL_SECONDS` and the mapping file's
/// `[teams_to_pbx]`; says what else the mode needs.
fn teams_plan(env: &Env, sip: bool, ami: bool, graph: bool, problems: &mut Problems) -> TeamsPlan {
    let mode = TeamsToPbx::from_env(env).unwrap_or_else(|p| {
        problems.push(p);
        TeamsToPbx::Off
    });
    if mode == TeamsToPbx::Off {
        return TeamsPlan::default();
    }
    let poll = crate::teams_source::poll_interval(env).unwrap_or_else(|p| {
        problems.push(p);
        crate::teams_source::DEFAULT_POLL
    });
    let rules = match env.get("MAPPING_FILE") {
        None => TeamsRules::default(),
        Some(path) => TeamsRules::load(std::path::Path::new(path)).unwrap_or_else(|e| {
            problems.push(Problem::in_var("MAPPING_FILE", e));
            TeamsRules::default()
        }),
    };
    if !graph {
        problems.push(Problem::in_var(
            "TEAMS_TO_PBX",
            "reads presence from Microsoft Graph: set AZURE_TENANT_ID, AZURE_CLIENT_ID and \
             AZURE_CLIENT_SECRET, with graph in SINKS (and not --dry-run)",
        ));
    }
    let ami_settings = match mode {
        TeamsToPbx::Ami if !ami => take(AmiSettings::from_env(env), problems),
        TeamsToPbx::Publish if !sip => {
            problems.push(Problem::in_var(
                "TEAMS_TO_PBX",
                "publish sends SIP PUBLISH from the SIP source's account: add sip to SOURCES",
            ));
            None
        }
        _ => None,
    };
    TeamsPlan {
        mode,
        poll,
        rules,
        ami: ami_settings,
    }
}

/// The `ACTION_URL_*` settings: needed when `SOURCES` lists action-url,
/// refused when it does not.
fn action_url_plan(env: &Env, listed: bool, problems: &mut Problems) -> Option<ActionUrlSettings> {
    let read = ActionUrlSettings::from_env(env);
    let unreadable = read.is_err();
    let settings = take(read, problems).flatten();
    match (&settings, listed) {
        (None, true) if !unreadable => {
            problems.push(Problem::in_var(
                "ACTION_URL_LISTEN",
                "is needed by action-url in SOURCES: the address the desk phones call, e.g. \
                 127.0.0.1:8088 behind a reverse proxy, or 0.0.0.0:8088 with ACTION_URL_SECRET",
            ));
        }
        (Some(_), false) => problems.push(Problem::in_var(
            "SOURCES",
            "ACTION_URL_LISTEN is set but SOURCES does not list action-url: add it (e.g. \
             SOURCES=ami,action-url) or remove the ACTION_URL_* settings",
        )),
        _ => {}
    }
    settings
}

/// Reads the HA settings (lease named after the PBX by default) and refuses
/// what HA does not fence yet: only Teams presence (`graph`) and its printed
/// twin (`log`) go through the lease's write gate.
fn ha_settings(
    env: &Env,
    sip: &Option<Option<SipSettings>>,
    ami: &Option<Option<AmiSettings>>,
    sinks: &[SinkKind],
    teams: &TeamsPlan,
    problems: &mut Problems,
) -> Option<HaSettings> {
    let default_name = match (sip, ami) {
        (Some(Some(s)), _) => super::sip_domain(&s.server),
        (_, Some(Some(a))) => a.address.clone(),
        _ => "sip-blf-sync".to_owned(),
    };
    let ha = take(HaSettings::from_env(env, &default_name), problems).flatten()?;
    let unfenced: Vec<&str> = sinks
        .iter()
        .filter(|k| !matches!(k, SinkKind::Graph | SinkKind::Log))
        .map(|k| k.name())
        .collect();
    if !unfenced.is_empty() {
        problems.push(Problem::in_var(
            "HA_LEASE",
            format!(
                "only graph and log go through the HA write gate; {} would be written by both \
                 instances: remove {} from SINKS or remove HA_LEASE",
                unfenced.join(", "),
                unfenced.join(", ")
            ),
        ));
    }
    if teams.mode != TeamsToPbx::Off {
        problems.push(Problem::in_var(
            "HA_LEASE",
            "Teams → PBX writes to the PBX, which is not fenced yet: set TEAMS_TO_PBX=off or \
             remove HA_LEASE",
        ));
    }
    Some(ha)
}

fn take<T>(result: Result<T, Problems>, problems: &mut Problems) -> Option<T> {
    result.map_err(|p| problems.extend(p.0)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sinks(pairs: &[(&str, &str)], dry_run: bool) -> Result<Vec<SinkKind>, String> {
        sinks_from_env(&Env::from_pairs(pairs.iter().copied()), dry_run).map_err(|p| p.to_string())
    }

    #[test]
    fn sinks_default_to_graph_with_a_tenant_and_to_the_log_without() {
        assert_eq!(sinks(&[], false), Ok(vec![SinkKind::Log]));
        let tenant = [("AZURE_TENANT_ID", "contoso")];
        assert_eq!(sinks(&tenant, false), Ok(vec![SinkKind::Graph]));
        assert_eq!(sinks(&tenant, true), Ok(vec![SinkKind::Log]), "--dry-run");
        assert_eq!(
            sinks(&[("SINKS", " Graph , graph ")], false),
            Ok(vec![SinkKind::Graph])
        );
    }

    /// The settings problems of `pairs` (with an extension list and a PBX).
    fn plan_problems(pairs: &[(&str, &str)]) -> String {
        let dir = tempfile::tempdir().unwrap();
        let list = dir.path().join("extensions.csv");
        std::fs::write(&list, "1001,alice@contoso.com\n").unwrap();
        let list = list.to_string_lossy().into_owned();
        let mut all = vec![
            ("EXTENSIONS_JSON", list.as_str()),
            ("SIP_SERVER", "127.0.0.1:5060"),
            ("SIP_USERNAME", "blf"),
            ("SIP_PASSWORD", "pw"),
        ];
        all.extend_from_slice(pairs);
        match RunPlan::from_env(&Env::from_pairs(all), false) {
            Ok(_) => String::new(),
            Err(p) => p.to_string(),
        }
    }

    #[test]
    fn the_sip_message_sink_needs_its_recipient_and_the_sip_source() {
        let to = ("SIP_MESSAGE_TO", "sip:webphones@127.0.0.1");
        assert_eq!(plan_problems(&[("SINKS", "log,sip-message"), to]), "");
        let e = plan_problems(&[("SINKS", "log,sip-message")]);
        assert!(
            e.contains("SIP_MESSAGE_TO") && e.contains("sip:webphones@pbx.example.com"),
            "{e}"
        );
        let e = plan_problems(&[to]);
        assert!(e.contains("SINKS does not list sip-message"), "{e}");
        let e = plan_problems(&[("SINKS", "sip-message"), ("SIP_MESSAGE_TO", "webphones")]);
        assert!(
            e.contains("SIP_MESSAGE_TO") && e.contains("not a SIP URI"),
            "{e}"
        );
        let ami = [
            ("SOURCES", "ami"),
            ("AMI_HOST", "127.0.0.1"),
            ("AMI_USERNAME", "u"),
            ("AMI_SECRET", "s"),
            ("SINKS", "sip-message"),
            to,
        ];
        let e = plan_problems(&ami);
        assert!(e.contains("add sip to SOURCES"), "{e}");
    }

    #[test]
    fn unknown_or_empty_names_are_refused_with_the_valid_ones() {
        let e = sinks(&[("SINKS", "graph,teams")], false).unwrap_err();
        assert!(
            e.contains("SINKS") && e.contains("\"teams\"") && e.contains("graph, log"),
            "{e}"
        );
        let e = sinks(&[("SINKS", " , ")], false).unwrap_err();
        assert!(e.contains("lists nothing"), "{e}");
        let e = sinks(&[("SINKS", "graph,log")], false).unwrap_err();
        assert!(e.contains("list one"), "{e}");
        let e = names("SOURCES", "sip,asterisk", &SOURCE_NAMES)
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("SOURCES") && e.contains("\"asterisk\"") && e.contains("valid: sip, ami"),
            "{e}"
        );
        assert_eq!(
            names("SOURCES", "SIP, ami", &SOURCE_NAMES).unwrap(),
            ["sip", "ami"]
        );
    }

    #[test]
    fn ha_refuses_every_sink_its_write_gate_does_not_cover() {
        let env = |sinks: &'static str| {
            Env::from_pairs([
                ("HA_LEASE", "postgres://blf:pw@127.0.0.1:5432/blf"),
                ("SINKS", sinks),
                ("DATABASE_URL", "sqlite://lines.db"),
                ("WEBHOOK_URL", "http://127.0.0.1:1/hook"),
                ("WEBHOOK_SECRET", "0123456789abcdef0123"),
            ])
        };
        let problems = |sinks| match RunPlan::from_env(&env(sinks), false) {
            Ok(_) => String::new(),
            Err(p) => p.to_string(),
        };
        let text = problems("log,database,webhook");
        assert!(
            text.contains("HA_LEASE") && text.contains("database, webhook would be written"),
            "{text}"
        );
        assert!(!text.contains("pw@"), "the lease URL's password: {text}");
        // graph and log pass the gate: no HA problem (others, e.g. SIP_SERVER, remain).
        let text = problems("log");
        assert!(!text.contains("HA write gate"), "{text}");
    }
}
