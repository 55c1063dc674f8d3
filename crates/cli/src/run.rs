//! `sip-blf-sync run`: the service. Sources (`SOURCES`, default `sip`: the
//! PBX's BLF subscriptions; `ami`: Asterisk's manager interface; or both)
//! feed the engine ([`sip_blf_engine::Runtime`]),
//! which keeps each person's combined view and hands it to every sink
//! (`SINKS`): Teams presence through Microsoft Graph (`graph`, the default
//! when `AZURE_TENANT_ID` is set), or the same decisions printed (`log`, the
//! default otherwise, and what `--dry-run` turns `graph` into). With
//! `/healthz`, `/readyz`, `/metrics` and `/status`.

use std::time::Duration;

use sip_blf_engine::{Runtime, RuntimeConfig};

use crate::ami_source::{AmiSettings, AmiSource, DeferToAmi};
use crate::background::Background;
use crate::dashboard::{self, DashboardSettings};
use crate::database::{self, DatabaseSettings};
use crate::engine::{run_engine, EngineConfig, GraphSink, LogSink};
use crate::extensions::{self, Extension};
use crate::ha::{Fence, FencedSink, HaSettings};
use crate::observe::{self, Telemetry};
use crate::people::{self, PersonLines};
use crate::problems::{Problem, Problems};
use crate::settings::{self, Env, SipSettings};
use crate::sip_source::{SipSource, PBX};
use crate::teams_to_pbx::{
    AmiTarget, OwnDnd, OwnPresence, PublishTarget, Reverse, TeamsRules, TeamsToPbx,
};

/// What `SOURCES` may list.
pub const SOURCE_NAMES: [&str; 2] = ["sip", "ami"];

/// What `SINKS` may list.
pub const SINK_NAMES: [&str; 3] = ["graph", "log", "database"];

/// Where views go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinkKind {
    /// Teams presence through Microsoft Graph.
    Graph,
    /// The presence decisions, printed instead of applied.
    Log,
    /// Each extension's line in a database table (`DATABASE_URL`).
    Database,
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
    sip: Option<SipSettings>,
    ami: Option<AmiSettings>,
    extensions: Vec<Extension>,
    engine: EngineConfig,
    http: Option<std::net::SocketAddr>,
    dashboard: DashboardSettings,
    /// A dashboard served by the caller (`demo`) instead of on `http`.
    board: Option<line_board::Board>,
    graph: Option<graph_presence::GraphConfig>,
    sinks: Vec<SinkKind>,
    database: Option<DatabaseSettings>,
    calls_in_flight: Option<usize>,
    persist: bool,
    teams: TeamsPlan,
    /// `HA_LEASE`: one of an HA pair ([`crate::ha`]).
    ha: Option<HaSettings>,
    /// The write gate while this instance holds the HA lease.
    fence: Option<Fence>,
}

/// Teams → PBX, when `TEAMS_TO_PBX` is not `off`.
#[derive(Debug, Clone, Default)]
struct TeamsPlan {
    mode: TeamsToPbx,
    poll: Duration,
    rules: TeamsRules,
    /// The AMI for DND when `ami` is not a source.
    ami: Option<AmiSettings>,
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
                    extensions,
                    engine,
                    http,
                    dashboard,
                    board: None,
                    graph,
                    sinks,
                    database,
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
    /// (`sip`, `ami`, `sip+ami`).
    pub fn source_label(&self) -> String {
        let names: Vec<&str> = [("sip", self.sip.is_some()), ("ami", self.ami.is_some())]
            .into_iter()
            .filter_map(|(name, on)| on.then_some(name))
            .collect();
        names.join("+")
    }

    /// The PBX's manager interface, when `SOURCES` lists `ami`.
    pub fn ami(&self) -> Option<&AmiSettings> {
        self.ami.as_ref()
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

    /// Sets the Graph client's request budget (benchmarks).
    pub fn set_request_budget(&mut self, budget: graph_presence::BudgetConfig) {
        if let Some(graph) = &mut self.graph {
            graph.request_budget = budget;
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

/// The domain of presentities on the PBX: `SIP_SERVER`'s host.
fn sip_domain(server: &str) -> String {
    let host = server.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_owned();
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() && !h.contains(':') => h.to_owned(),
        _ => host.to_owned(),
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

/// Reads the HA settings (lease named after the PBX by default) and refuses
/// what HA does not fence yet.
fn ha_settings(
    env: &Env,
    sip: &Option<Option<SipSettings>>,
    ami: &Option<Option<AmiSettings>>,
    sinks: &[SinkKind],
    teams: &TeamsPlan,
    problems: &mut Problems,
) -> Option<HaSettings> {
    let default_name = match (sip, ami) {
        (Some(Some(s)), _) => sip_domain(&s.server),
        (_, Some(Some(a))) => a.address.clone(),
        _ => "sip-blf-sync".to_owned(),
    };
    let ha = take(HaSettings::from_env(env, &default_name), problems).flatten()?;
    if sinks.contains(&SinkKind::Database) {
        problems.push(Problem::in_var(
            "HA_LEASE",
            "the database sink is not fenced yet: remove database from SINKS or HA_LEASE",
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

/// How often the Graph token is checked while no call shows its state.
const TOKEN_CHECK_EVERY: Duration = Duration::from_secs(60);

/// Keeps `/readyz` true to the token: checks it periodically (renewing it
/// when it is about to expire), logging only changes.
async fn watch_token(sink: GraphSink) {
    let mut tick = tokio::time::interval(TOKEN_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is immediate: the token was checked at start.
    tick.tick().await;
    let mut was_ok = true;
    loop {
        tick.tick().await;
        match sink.refresh_token_status().await {
            Ok(()) if !was_ok => {
                tracing::info!("Microsoft Graph: a valid token is held again");
                was_ok = true;
            }
            Ok(()) => {}
            Err(e) => {
                if was_ok {
                    tracing::error!("Microsoft Graph token: {e}");
                }
                was_ok = false;
            }
        }
    }
}

/// Runs the service until SIGINT/SIGTERM, then clears what it set,
/// un-SUBSCRIBEs, un-REGISTERs and saves its state.
pub async fn run(plan: RunPlan) -> Result<(), Box<dyn std::error::Error>> {
    run_until(plan, Telemetry::new(), crate::signals::shutdown_signal()).await
}

/// [`run`] reporting to `telemetry` and stopping (the same way) when
/// `shutdown` resolves; `demo` drives it with its own stop and status page.
pub async fn run_until(
    plan: RunPlan,
    telemetry: Telemetry,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<(), Box<dyn std::error::Error>> {
    run_until_ready(plan, telemetry, shutdown, |_| {}).await
}

/// [`run_until`], calling `ready` with the SIP socket's address once the
/// source has started (benchmarks point their PBX at it).
pub async fn run_until_ready(
    plan: RunPlan,
    telemetry: Telemetry,
    shutdown: impl std::future::Future<Output = ()> + Send,
    ready: impl FnOnce(std::net::SocketAddr),
) -> Result<(), Box<dyn std::error::Error>> {
    for e in &plan.extensions {
        telemetry.add_extension(&e.extension, e.user());
    }
    let (mut engine, loaded) = plan
        .engine
        .prepare(&plan.extensions, tokio::time::Instant::now().into_std())?;
    if plan.fence.is_some() {
        // Taking over: what the earlier active set is unknown here.
        engine.assume_unknown();
    }
    let fence = plan.fence.clone();
    if let Some(w) = &loaded.warning {
        tracing::warn!("{w}");
    }
    let printing = plan.sinks.contains(&SinkKind::Log);
    let client = match &plan.graph {
        None => {
            if printing {
                tracing::info!(
                    "dry run: presence decisions are printed, Microsoft Graph is not called"
                );
            }
            telemetry.set_graph_required(false);
            None
        }
        Some(config) => {
            let client = graph_presence::GraphClient::new(config.clone())?;
            match client.token_check().await {
                Ok(info) => {
                    telemetry.set_token_valid(true);
                    telemetry
                        .set_token_expiry(Some(std::time::SystemTime::now() + info.expires_in));
                }
                // Not fatal: Graph may come back; /readyz says what is missing.
                Err(e) => tracing::error!("Microsoft Graph: {e}"),
            }
            Some(client)
        }
    };
    let board = plan
        .board
        .clone()
        .unwrap_or_else(|| dashboard::board(&plan.extensions, &plan.dashboard));
    let http = match plan.http {
        Some(addr) => {
            let server = observe::serve_board(
                addr,
                telemetry.clone(),
                board.clone(),
                plan.dashboard.access(),
            )
            .await
            .map_err(|e| format!("HTTP_LISTEN {addr}: {e}"))?;
            tracing::info!(
                "dashboard on http://{0}/ (status on http://{0}/status)",
                server.local_addr()
            );
            telemetry.set_board(board.clone());
            tokio::spawn(dashboard::keep_health(board.clone(), telemetry.clone()));
            Some(server)
        }
        None => None,
    };
    let teams_on = plan.teams.mode != TeamsToPbx::Off && client.is_some();
    let directory = if teams_on {
        people::directory_with_teams(&plan.extensions)?
    } else {
        people::directory(&plan.extensions)?
    };
    let mut runtime = Runtime::start(directory, RuntimeConfig::default())?;
    telemetry.set_sink_board(runtime.board());
    let database = match &plan.database {
        None => None,
        Some(settings) => {
            // Off the call path: the table's work runs at a lower priority.
            let background = Background::start("database")?;
            let (owned, extensions) = (settings.clone(), plan.extensions.clone());
            let label = plan.source_label();
            let sink = background
                .run(async move { database::open_sink(&owned, &extensions, PBX, &label).await })
                .await?
                .map_err(|e| format!("DATABASE_URL {}: {e}", settings.redacted_url()))?;
            tracing::info!(
                "line states go to {} (table line_states)",
                settings.redacted_url()
            );
            runtime
                .add_sink_on(sink.clone(), background.handle())
                .await?;
            Some((sink, background))
        }
    };
    // The DND Teams → PBX sets, which the Teams sink must not show back.
    let own_dnd = if plan.persist {
        // Beside the state file: which DND on the PBX is ours survives a restart.
        OwnDnd::persisted(plan.engine.state_file.with_extension("pbx-dnd.json"))
    } else {
        OwnDnd::default()
    };
    let reverse_feed = if teams_on {
        Some(runtime.add_feed("teams-to-pbx").await?)
    } else {
        None
    };
    // Teams presence, applied or printed, when SINKS lists it.
    let lines = match (&client, printing) {
        (Some(_), _) => Some(runtime.add_feed("graph").await?),
        (None, true) => Some(runtime.add_feed("log").await?),
        (None, false) => None,
    }
    .map(|feed| PersonLines::new(feed, &plan.extensions).without_own_dnd(own_dnd.clone()));
    // The dashboard last: the sinks the user configured come first in /status.
    if http.is_some() || plan.board.is_some() {
        let feed = runtime.add_feed("dashboard").await?;
        tokio::spawn(board.clone().follow(feed, PBX));
    }
    // AMI first: when both run, the SIP source defers to it (see `ami_source::DeferToAmi`).
    telemetry.set_sip_source(plan.sip.is_some());
    let mut ami_handle = None;
    let ami = plan.ami.as_ref().map(|settings| {
        let names: Vec<String> = plan
            .extensions
            .iter()
            .map(|e| e.extension.clone())
            .collect();
        let source = AmiSource::start(settings, &names);
        ami_handle = Some((source.handle(), settings.dnd.clone()));
        tracing::info!(
            "watching {} extension(s) through AMI at {}",
            names.len(),
            settings.address
        );
        let status = source.status();
        tokio::spawn(crate::ami_source::report_status(
            status.clone(),
            telemetry.clone(),
        ));
        runtime.add_source(source);
        status
    });
    let mut publisher = None;
    if let Some(sip) = &plan.sip {
        let (mut source, notices) = SipSource::start(sip, &plan.extensions).await?;
        publisher = source.publisher().map(|p| (p, sip_domain(&sip.server)));
        source.set_telemetry(telemetry.clone());
        for health in &notices {
            crate::observe::sip_health(&telemetry, health);
        }
        tracing::info!(
            "watching {} extension(s) on {} from SIP socket {}",
            plan.extensions.len(),
            sip.server,
            source.local_addr().unwrap_or(sip.listen)
        );
        ready(source.local_addr().unwrap_or(sip.listen));
        match ami {
            Some(status) => runtime.add_source(DeferToAmi::new(source, status)),
            None => runtime.add_source(source),
        }
    }
    // One stop for the presence engine (it clears what it set), then the
    // runtime (sources un-SUBSCRIBE and un-REGISTER, sinks finish).
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let reverse_stop = stopping.clone();
    let stopped = async move {
        let mut stopping = stopping;
        let _ = stopping.wait_for(|s| *s).await;
    };
    let signal = async move {
        shutdown.await;
        let _ = stop.send(true);
    };
    // Teams → PBX: the presence read back, and DND on the PBX.
    let reverse = match (reverse_feed, &client) {
        (Some(feed), Some(graph)) => {
            let teams = crate::teams_source::TeamsSource::new(
                graph.clone(),
                &plan.extensions,
                plan.teams.poll,
            );
            telemetry.set_teams_poll(teams.status());
            runtime.add_source(teams);
            let people: Vec<(sip_blf_engine::PersonId, Vec<String>)> =
                people::group_by_person(&plan.extensions)
                    .into_iter()
                    .map(|(user, entries)| {
                        let extensions = entries.iter().map(|e| e.extension.clone()).collect();
                        (sip_blf_engine::PersonId(user), extensions)
                    })
                    .collect();
            let decide = Reverse::new(plan.teams.rules.clone(), own_dnd.clone(), people);
            let own = OwnPresence::new(telemetry.clone(), plan.engine.mapping.clone(), own_dnd);
            let stop_rx = reverse_stop;
            let telemetry = telemetry.clone();
            tracing::info!(
                "Teams → PBX: presence read every {:?}, DND through {}",
                plan.teams.poll,
                if plan.teams.mode == TeamsToPbx::Ami {
                    "AMI"
                } else {
                    "SIP PUBLISH"
                }
            );
            Some(match plan.teams.mode {
                TeamsToPbx::Publish => {
                    let (publisher, domain) = publisher
                        .take()
                        .ok_or("TEAMS_TO_PBX=publish needs the SIP source's user agent")?;
                    let target = PublishTarget::new(publisher, domain);
                    tokio::spawn(crate::teams_to_pbx::run(
                        feed, decide, target, own, telemetry, stop_rx,
                    ))
                }
                _ => {
                    let (handle, scheme) = match ami_handle.take() {
                        Some(h) => h,
                        None => {
                            let settings = plan
                                .teams
                                .ami
                                .as_ref()
                                .ok_or("TEAMS_TO_PBX=ami needs the AMI_* settings")?;
                            let config = ami::driver::DriverConfig::new(
                                settings.address.clone(),
                                settings.client_config(),
                            );
                            (ami::driver::spawn(config).0, settings.dnd.clone())
                        }
                    };
                    let target = AmiTarget::new(handle, scheme);
                    tokio::spawn(crate::teams_to_pbx::run(
                        feed, decide, target, own, telemetry, stop_rx,
                    ))
                }
            })
        }
        _ => None,
    };
    let mut options = plan.engine.run_options();
    if let Some(calls) = plan.calls_in_flight {
        options.calls_in_flight = calls;
    }
    if !plan.persist {
        options.state_file = None;
    }
    match (client, lines) {
        (_, None) => signal.await,
        (None, Some(lines)) => {
            let presence = run_engine(
                lines,
                FencedSink::new(LogSink::printing(), fence),
                engine,
                telemetry,
                stopped,
                options,
            );
            tokio::join!(signal, presence);
        }
        (Some(client), Some(lines)) => {
            let sink = GraphSink::new(client, telemetry.clone());
            sink.seed_from(&loaded.state);
            let token_watch = tokio::spawn(watch_token(sink.clone()));
            let users: Vec<String> = plan
                .extensions
                .iter()
                .map(|e| e.user().to_owned())
                .collect();
            let warm = sink.clone();
            // In the background: a throttled directory must not delay the start.
            let warm_up = tokio::spawn(async move {
                for (user, e) in warm.warm_up(&users).await {
                    tracing::error!(%user, "cannot look up the user: {e}");
                }
            });
            let sink = FencedSink::new(sink, fence);
            let presence = run_engine(lines, sink, engine, telemetry, stopped, options);
            tokio::join!(signal, presence);
            token_watch.abort();
            warm_up.abort();
        }
    }
    // Every DND Teams → PBX set comes off while the PBX is still reachable.
    if let Some(task) = reverse {
        let _ = tokio::time::timeout(Duration::from_secs(10), task).await;
    }
    runtime.stop(Duration::from_secs(10)).await;
    if let Some((sink, background)) = database {
        // Nobody vouches for the rows once we stop: they read `unknown`.
        let finished = background
            .run(async move {
                let result = sink.finish().await;
                sink.close().await;
                result
            })
            .await;
        if let Ok(Err(e)) = finished {
            tracing::warn!("the database rows could not be marked unknown at the stop: {e}");
        }
    }
    if let Some(server) = http {
        let _ = server.shutdown().await;
    }
    Ok(())
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
}
