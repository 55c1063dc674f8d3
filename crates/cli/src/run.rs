//! `sip-blf-sync run`: the service. Sources (`SOURCES`, default `sip`: the
//! PBX's BLF subscriptions; `ami`: Asterisk's manager interface;
//! `action-url`: the desk phones' own reports; or several)
//! feed the engine ([`sip_blf_engine::Runtime`]),
//! which keeps each person's combined view and hands it to every sink
//! (`SINKS`): Teams presence through Microsoft Graph (`graph`, the default
//! when `AZURE_TENANT_ID` is set), or the same decisions printed (`log`, the
//! default otherwise, and what `--dry-run` turns `graph` into), each
//! extension's line in a table (`database`), a signed JSON POST per change
//! (`webhook`), a Mattermost status while on the phone (`mattermost`), a SIP
//! MESSAGE to web phones (`sip-message`). With `/healthz`, `/readyz`,
//! `/metrics` and `/status`. What it needs is read first ([`RunPlan`]).

use std::time::Duration;

use sip_blf_engine::{Runtime, RuntimeConfig};

use crate::action_url;
use crate::ami_source::{AmiSource, DeferToAmi};
use crate::background::Background;
use crate::dashboard;
use crate::database;
use crate::engine::{run_engine, GraphSink, LogSink};
use crate::ha::FencedSink;
use crate::observe::{self, Telemetry};
use crate::people::{self, PersonLines};
use crate::sip_message::SipMessageSink;
use crate::sip_source::SipSource;
use crate::teams_to_pbx::{AmiTarget, OwnDnd, OwnPresence, PublishTarget, Reverse, TeamsToPbx};
use crate::webhook::WebhookSink;

mod plan;

pub use plan::{sinks_from_env, RunPlan, SinkKind, SINK_NAMES, SOURCE_NAMES};

/// The domain of presentities on the PBX: `SIP_SERVER`'s host.
pub(crate) fn sip_domain(server: &str) -> String {
    let host = server.trim();
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest).to_owned();
    }
    match host.rsplit_once(':') {
        Some((h, p)) if p.parse::<u16>().is_ok() && !h.contains(':') => h.to_owned(),
        _ => host.to_owned(),
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
    let mut directory = if teams_on {
        people::directory_with_teams(&plan.extensions)?
    } else {
        people::directory(&plan.extensions)?
    };
    if plan.action_url.is_some() {
        people::add_phones(&mut directory, &plan.extensions)?;
    }
    let line_system = plan.line_system();
    let mut runtime = Runtime::start(directory, RuntimeConfig::default())?;
    telemetry.set_sink_board(runtime.board());
    let database = match &plan.database {
        None => None,
        Some(settings) => {
            // Off the call path: the table's work runs at a lower priority.
            let background = Background::start("database")?;
            let (owned, extensions) = (settings.clone(), plan.extensions.clone());
            let label = plan.source_label();
            let sink =
                background
                    .run(async move {
                        database::open_sink(&owned, &extensions, line_system, &label).await
                    })
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
    if let Some(settings) = &plan.webhook {
        let sink = WebhookSink::new(settings, &plan.extensions, &plan.engine.mapping)?;
        tracing::info!(
            "line states go to webhook {} ({})",
            settings.redacted_url(),
            match settings.resend {
                Some(every) => format!("everyone re-sent every {}s", every.as_secs()),
                None => "no periodic re-send".to_owned(),
            }
        );
        runtime.add_sink(sink).await?;
    }
    // Beside the state file: what each person had, restored even after a restart.
    let saved = plan
        .persist
        .then(|| plan.engine.state_file.with_extension("mattermost.json"));
    let mattermost = match &plan.mattermost {
        Some(settings) => Some(
            crate::mattermost::sink::add_to(&mut runtime, settings, &plan.extensions, saved)
                .await?,
        ),
        None => None,
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
        tokio::spawn(board.clone().follow(feed, line_system));
    }
    let phones = match &plan.action_url {
        None => None,
        Some(settings) => {
            let (sender, source) = action_url::source();
            let phones = action_url::Phones::new(&plan.extensions);
            // Mattermost's /sip-status on the same listener, when configured.
            let extra = match &plan.mattermost_command {
                Some(command) => {
                    crate::mattermost::command::start(
                        &mut runtime,
                        command.clone(),
                        &plan.extensions,
                    )
                    .await?
                }
                None => axum::Router::new(),
            };
            let server = action_url::serve(settings, phones, sender, extra).await?;
            let scheme = if settings.tls.is_some() {
                "https"
            } else {
                "http"
            };
            tracing::info!(
                "taking the desk phones' action URLs on {scheme}://{}/ ({} extension(s){})",
                server.local_addr(),
                plan.extensions.len(),
                if settings.secret.is_some() {
                    ", secret required"
                } else {
                    ", no secret: loopback only"
                }
            );
            if plan.mattermost_command.is_some() {
                tracing::info!(
                    "Mattermost's /sip-status answered at {scheme}://{}/mattermost/command",
                    server.local_addr()
                );
            }
            telemetry.set_action_url(server.counters());
            runtime.add_source(source);
            Some(server)
        }
    };
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
        if let Some(settings) = &plan.sip_message {
            let messenger = source
                .messenger()
                .ok_or("SINKS=sip-message needs the SIP source's user agent")?;
            tracing::info!(
                "a SIP MESSAGE to {} for every line change (status updates for web phones)",
                settings.to
            );
            runtime
                .add_sink(SipMessageSink::new(messenger, settings.to.clone()))
                .await?;
        }
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
    if let Some(server) = phones {
        let _ = server.shutdown().await;
    }
    runtime.stop(Duration::from_secs(10)).await;
    if let Some(sink) = mattermost {
        crate::mattermost::sink::restore_at_stop(&sink, Duration::from_secs(10)).await;
    }
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
