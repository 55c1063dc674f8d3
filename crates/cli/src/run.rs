//! `sip-blf-sync run`: the service. The SIP BLF source wired to the Graph
//! sink, or to the log sink (`--dry-run`, and the default when no tenant is
//! configured), with `/healthz`, `/readyz`, `/metrics` and `/status`.

use std::time::Duration;

use crate::engine::{run_engine, EngineConfig, GraphSink, LogSink};
use crate::extensions::{self, Extension};
use crate::observe::{self, Telemetry};
use crate::problems::{Problem, Problems};
use crate::settings::{self, Env, SipSettings};
use crate::sip_source::{Notice, SipSource};

/// Everything `run` needs, read and checked before anything connects.
pub struct RunPlan {
    sip: SipSettings,
    extensions: Vec<Extension>,
    engine: EngineConfig,
    http: Option<std::net::SocketAddr>,
    graph: Option<graph_presence::GraphConfig>,
}

impl RunPlan {
    /// Reads every setting; all problems are reported together. Without
    /// `AZURE_TENANT_ID` (or with `dry_run`) the decisions are only logged.
    pub fn from_env(env: &Env, dry_run: bool) -> Result<RunPlan, Problems> {
        let mut problems = Problems::default();
        let sip = take(SipSettings::from_env(env), &mut problems);
        let extensions = take(
            extensions::load(&settings::extensions_path(env)),
            &mut problems,
        );
        let engine = take(EngineConfig::from_env(env), &mut problems);
        let graph = if dry_run || env.get("AZURE_TENANT_ID").is_none() {
            None
        } else {
            take(settings::graph_config(env), &mut problems)
        };
        let http = match observe::parse_http_listen(env.get("HTTP_LISTEN")) {
            Ok(h) => h,
            Err(e) => {
                problems.push(Problem::in_var("HTTP_LISTEN", e.to_string()));
                None
            }
        };
        match (sip, extensions, engine) {
            (Some(sip), Some(extensions), Some(engine)) if problems.is_empty() => Ok(RunPlan {
                sip,
                extensions,
                engine,
                http,
                graph,
            }),
            _ => Err(problems),
        }
    }
}

impl RunPlan {
    /// The PBX side.
    pub fn sip(&self) -> &SipSettings {
        &self.sip
    }

    /// The extension list.
    pub fn extensions(&self) -> &[Extension] {
        &self.extensions
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
}

fn take<T>(result: Result<T, Problems>, problems: &mut Problems) -> Option<T> {
    result.map_err(|p| problems.extend(p.0)).ok()
}

fn log_notice(n: &Notice) {
    match n {
        Notice::Info(s) => tracing::info!("{s}"),
        Notice::Warning(s) => tracing::warn!("{s}"),
    }
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
    for e in &plan.extensions {
        telemetry.add_extension(&e.extension, e.user());
    }
    let (engine, loaded) = plan
        .engine
        .prepare(&plan.extensions, tokio::time::Instant::now().into_std())?;
    if let Some(w) = &loaded.warning {
        tracing::warn!("{w}");
    }
    let client = match &plan.graph {
        None => {
            tracing::info!(
                "dry run: presence decisions are printed, Microsoft Graph is not called"
            );
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
    let http = match plan.http {
        Some(addr) => {
            let server = observe::serve(addr, telemetry.clone())
                .await
                .map_err(|e| format!("HTTP_LISTEN {addr}: {e}"))?;
            tracing::info!("status on http://{}/status", server.local_addr());
            Some(server)
        }
        None => None,
    };
    let (mut source, notices) = SipSource::start(&plan.sip, &plan.extensions).await?;
    source.set_telemetry(telemetry.clone());
    notices.iter().for_each(log_notice);
    tracing::info!(
        "watching {} extension(s) on {} from SIP socket {}",
        plan.extensions.len(),
        plan.sip.server,
        source.local_addr().unwrap_or(plan.sip.listen)
    );
    let options = plan.engine.run_options();
    match client {
        None => {
            run_engine(
                &mut source,
                LogSink::printing(),
                engine,
                telemetry,
                shutdown,
                options,
            )
            .await;
        }
        Some(client) => {
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
            run_engine(&mut source, sink, engine, telemetry, shutdown, options).await;
            token_watch.abort();
            warm_up.abort();
        }
    }
    tracing::info!("stopping: un-subscribing and un-registering");
    source.shutdown(Duration::from_secs(10)).await;
    if let Some(server) = http {
        let _ = server.shutdown().await;
    }
    Ok(())
}
