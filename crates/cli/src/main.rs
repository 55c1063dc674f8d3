//! `sip-blf-sync`: carry PBX line state (SIP BLF) into Microsoft Teams presence.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use sip_blf_sync::dashboard::DashboardSettings;
use sip_blf_sync::problems::Problems;
use sip_blf_sync::settings::{self, Env, SipSettings};
use sip_blf_sync::teams_to_pbx::TeamsToPbx;
use sip_blf_sync::{extensions, graph_cmd, test_notify, watch};

/// Carry PBX line state (SIP BLF, RFC 4235) into Microsoft Teams presence.
#[derive(Parser)]
#[command(name = "sip-blf-sync", version, about, long_about = None)]
struct Cli {
    /// Read settings from this file as well as the environment (default: ./.env
    /// when it exists). Variables already set in the environment win.
    #[arg(long, global = true, value_name = "FILE")]
    env_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Show what a NOTIFY means: its dialogs, the line state and the presence it maps to.
    ///
    /// Reads a bare XML body or a whole SIP NOTIFY (headers and body; its
    /// Content-Type picks the parser). Exit status 0 when the body was understood.
    TestNotify {
        /// The file to read; `-` or nothing for standard input.
        file: Option<PathBuf>,
        /// Print one JSON object instead of text.
        #[arg(long)]
        json: bool,
        /// A mapping file (line state = "Availability/Activity" | "clear" | "keep").
        #[arg(long, value_name = "FILE")]
        mapping: Option<PathBuf>,
        /// Treat the input as this content type (overrides the message's Content-Type).
        #[arg(long, value_name = "TYPE")]
        content_type: Option<String>,
    },
    /// Register to the PBX, subscribe to every configured extension and print one
    /// line per line-state change until stopped (no Microsoft tenant needed).
    ///
    /// Settings: SIP_SERVER, SIP_TRANSPORT, SIP_USERNAME, SIP_PASSWORD,
    /// SIP_CONTACT_IP, SIP_LISTEN, STUN_SERVERS, EXTENSIONS_JSON, SIP_TLS_* (and .env).
    Watch {
        /// One JSON object per line: {"extension", "line_state", "time"}.
        #[arg(long)]
        json: bool,
    },
    /// The service: carry every configured extension's line state into Teams presence.
    ///
    /// Without AZURE_TENANT_ID (or with --dry-run) each presence decision is printed
    /// instead of sent to Microsoft Graph. Stops on SIGINT/SIGTERM, clearing what it set.
    Run {
        /// Print the presence decisions instead of calling Microsoft Graph.
        #[arg(long)]
        dry_run: bool,
    },
    /// The whole flow on this machine with no PBX and no tenant: an embedded PBX
    /// plays a day at the office, an embedded Microsoft Graph shows the presence,
    /// and the real service runs between them.
    ///
    /// Shows each extension's line state and Teams presence as they change (a
    /// table on a terminal, one line per change otherwise), serves /status and
    /// /metrics, stops at the end of the day or on Ctrl-C, clearing what it set.
    /// Reads no settings and writes nothing outside the system's temporary
    /// directory (the day's line states stay there in an SQLite file).
    #[cfg(feature = "demo")]
    Demo {
        /// Time factor: 10 plays the 60 s day in 6 s.
        #[arg(long, default_value_t = 1.0)]
        speed: f64,
        /// Extensions watched: the five of the script, and generated ones above
        /// five (a quick load check).
        #[arg(long, default_value_t = 5, value_name = "N")]
        extensions: usize,
        /// Address of /status and /metrics (default: HTTP_LISTEN, else 127.0.0.1 on a free port).
        #[arg(long, value_name = "ADDR")]
        http: Option<String>,
        /// Write a JSON summary (per user: the line states and presences seen,
        /// the Graph requests, the final presence) to this file.
        #[arg(long, value_name = "FILE")]
        summary_json: Option<PathBuf>,
        /// The SQLite file the database sink writes the day into (default: a
        /// new file in the system's temporary directory, kept after the demo
        /// so that it can be opened with sqlite3).
        #[arg(long, value_name = "FILE")]
        database: Option<PathBuf>,
        /// One line per change even on a terminal.
        #[arg(long)]
        plain: bool,
    },
    /// Check the whole setup once: settings, Graph token and users, PBX
    /// registration and each extension's subscription; one table with the fix
    /// for each failure.
    ///
    /// Reads the same settings as `run`; with TEAMS_TO_PBX not off, also checks
    /// that Teams presence can be read (Presence.Read.All). Exit status 0 when everything works,
    /// 1 when something failed, 2 when the configuration has problems.
    Check {
        /// Print one JSON object instead of the table.
        #[arg(long)]
        json: bool,
        /// Wait at most this many seconds for the PBX and Graph (un-subscribing
        /// afterwards takes at most 3 s more).
        #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
        timeout: f64,
    },
    /// Discover the public address of a UDP socket with STUN.
    Stun {
        /// A STUN server as HOST:PORT (repeatable; default: STUN_SERVERS).
        #[arg(long = "server", value_name = "HOST:PORT")]
        servers: Vec<String>,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10)]
        timeout: u64,
    },
    /// One-shot checks and actions against Microsoft Graph.
    ///
    /// Settings: AZURE_TENANT_ID, AZURE_CLIENT_ID, AZURE_CLIENT_SECRET (or
    /// AZURE_CLIENT_CERTIFICATE_PATH), GRAPH_BASE_URL, AZURE_AUTHORITY_HOST (and .env).
    Graph {
        #[command(subcommand)]
        action: GraphAction,
    },
    /// Asterisk's manager interface (AMI): watch line states, set an extension's DND.
    ///
    /// Settings: AMI_HOST, AMI_USERNAME, AMI_SECRET, AMI_AUTH, AMI_CONTEXT,
    /// AMI_DND, EXTENSIONS_JSON (and .env).
    Ami {
        #[command(subcommand)]
        action: AmiAction,
    },
}

#[derive(Subcommand)]
enum AmiAction {
    /// Print every line-state, DND and registration change AMI reports for the
    /// configured extensions, until stopped (the full state first).
    Watch {
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Turn an extension's DND on or off on the PBX (the FreePBX way), or show it.
    Dnd {
        /// The extension.
        extension: String,
        /// on | off | show
        #[arg(value_parser = ["on", "off", "show"])]
        state: String,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 10.0, value_name = "SECONDS")]
        timeout: f64,
    },
}

#[derive(Subcommand)]
enum GraphAction {
    /// Get a token and resolve every configured user; report what fails and why.
    /// With TEAMS_TO_PBX not off, also read one user's presence back (which
    /// needs Presence.Read.All).
    Check,
    /// Show a user's presence.
    Get {
        /// UPN (e-mail) or object id.
        user: String,
    },
    /// Set our presence session for a user: busy, available, away, dnd (or Availability/Activity).
    Set {
        /// UPN (e-mail) or object id.
        user: String,
        /// busy | available | away | dnd | conference | Availability/Activity
        state: String,
    },
    /// Clear our presence session for a user, so the user's own status shows.
    Clear {
        /// UPN (e-mail) or object id.
        user: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::TestNotify {
            file,
            json,
            mapping,
            content_type,
        } => run_test_notify(file, json, mapping, content_type),
        command => {
            // The settings first: RUST_LOG and LOG_FORMAT may be in the file.
            let env = match Env::load(cli.env_file.as_deref()) {
                Ok(env) => env,
                Err(p) => return config_failure(&p),
            };
            // The check's table says what matters; the log only adds warnings.
            init_logging(
                &env,
                if matches!(command, Command::Check { .. }) || is_demo(&command) {
                    "warn"
                } else {
                    "info"
                },
            );
            match &env.dotenv_file {
                Some(f) => tracing::debug!("settings: the environment, then {}", f.display()),
                None => tracing::debug!("settings: the environment (no .env file)"),
            }
            let runtime = match tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => return fail(format!("cannot start the runtime: {e}")),
            };
            runtime.block_on(run_async(command, env))
        }
    }
}

/// Logs to stderr. `RUST_LOG` filters (default: `default`) and `LOG_FORMAT=json`
/// gives JSON lines, from the environment or the `.env` file. Colours only on a
/// terminal (not in a file or the journal), and not with `NO_COLOR`.
fn init_logging(env: &Env, default: &str) {
    let mut warnings = Vec::new();
    let filter = match env.get("RUST_LOG") {
        None => tracing_subscriber::EnvFilter::new(default),
        Some(v) => tracing_subscriber::EnvFilter::try_new(v).unwrap_or_else(|e| {
            warnings.push(format!(
                "RUST_LOG: {v:?} is not a log filter ({e}); logging at {default}, \
                 e.g. RUST_LOG=debug or RUST_LOG=info,sip_ua=debug"
            ));
            tracing_subscriber::EnvFilter::new(default)
        }),
    };
    let json = match env
        .get("LOG_FORMAT")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        Some("json") => true,
        None | Some("text") => false,
        Some(other) => {
            warnings.push(format!(
                "LOG_FORMAT: {other:?} is not a log format; use json, or text (the default)"
            ));
            false
        }
    };
    let ansi = !json && std::io::stderr().is_terminal() && env.get("NO_COLOR").is_none();
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    for w in warnings {
        tracing::warn!("{w}");
    }
}

fn config_failure(problems: &Problems) -> ExitCode {
    eprintln!("sip-blf-sync: the configuration has problems:");
    for p in &problems.0 {
        eprintln!("  {p}");
    }
    ExitCode::from(2)
}

async fn run_async(command: Command, env: Env) -> ExitCode {
    match command {
        Command::TestNotify { .. } => ExitCode::SUCCESS,
        Command::Watch { json } => {
            let sip = SipSettings::from_env(&env);
            let exts = extensions::load(&settings::extensions_path(&env));
            let (sip, exts) = match (sip, exts) {
                (Ok(s), Ok(e)) => (s, e),
                (s, e) => {
                    let mut all = Problems::default();
                    if let Err(p) = s {
                        all.extend(p.0);
                    }
                    if let Err(p) = e {
                        all.extend(p.0);
                    }
                    return config_failure(&all);
                }
            };
            // The dashboard on HTTP_LISTEN, as `run` serves it (off: none).
            let listen = match sip_blf_sync::observe::parse_http_listen(env.get("HTTP_LISTEN")) {
                Ok(listen) => listen,
                Err(e) => return fail(format!("HTTP_LISTEN: {e}")),
            };
            let dashboard = match listen {
                None => None,
                Some(addr) => {
                    match DashboardSettings::from_env(&env, Some(addr), sip.subscribe_expires) {
                        Ok(settings) => Some((addr, settings)),
                        Err(p) => return config_failure(&Problems(p)),
                    }
                }
            };
            match watch::run(&sip, &exts, json, dashboard).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => sip_failure(&sip, &e),
            }
        }
        Command::Run { dry_run } => {
            let plan = match sip_blf_sync::run::RunPlan::from_env(&env, dry_run) {
                Ok(p) => p,
                Err(p) => return config_failure(&p),
            };
            let sip = plan.sip().cloned();
            let result = match plan.ha().cloned() {
                Some(ha) => {
                    drop(plan);
                    let stop = sip_blf_sync::signals::shutdown_signal();
                    sip_blf_sync::ha::run(&env, dry_run, ha, stop).await
                }
                None => sip_blf_sync::run::run(plan).await,
            };
            match (result, sip) {
                (Ok(()), _) => ExitCode::SUCCESS,
                (Err(e), Some(sip)) => sip_failure(&sip, e.as_ref()),
                (Err(e), None) => fail(e),
            }
        }
        #[cfg(feature = "demo")]
        Command::Demo {
            speed,
            extensions,
            http,
            summary_json,
            database,
            plain,
        } => {
            let listen = http.as_deref().or(env.get("HTTP_LISTEN"));
            let http = match listen {
                None => None,
                Some(v) => match sip_blf_sync::observe::parse_http_listen(Some(v)) {
                    Ok(Some(addr)) => Some(addr),
                    Ok(None) => None,
                    Err(e) => return fail(format!("--http: {e}")),
                },
            };
            let options = sip_blf_sync::demo::DemoOptions {
                speed,
                extensions,
                http,
                summary_json,
                database,
                table: plain.then_some(false),
            };
            match sip_blf_sync::demo::run(options).await {
                Ok(_) => ExitCode::SUCCESS,
                Err(e) => fail(e),
            }
        }
        Command::Check { json, timeout } => {
            let plan = match sip_blf_sync::run::RunPlan::from_env(&env, false) {
                Ok(p) => p,
                Err(p) => return config_failure(&p),
            };
            let timeout = match std::time::Duration::try_from_secs_f64(timeout) {
                Ok(t) if !t.is_zero() => t,
                _ => return fail("--timeout: give a number of seconds above 0, e.g. 10"),
            };
            let teams_to_pbx = match TeamsToPbx::from_env(&env) {
                Ok(t) => t,
                Err(p) => return config_failure(&p.into()),
            };
            let report = sip_blf_sync::check::check(&plan, timeout, teams_to_pbx.is_on()).await;
            if json {
                println!("{}", report.to_json());
            } else {
                print!("{}", report.to_text());
            }
            if report.ok {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Command::Stun { servers, timeout } => {
            let servers = if servers.is_empty() {
                match SipSettings::stun_servers_from_env(&env) {
                    list if list.is_empty() => {
                        return fail("no STUN server: give --server HOST:PORT or set STUN_SERVERS")
                    }
                    list => list,
                }
            } else {
                servers
            };
            match stun_lite::query(&servers, std::time::Duration::from_secs(timeout)).await {
                Ok(found) => {
                    println!("{} (answered by {})", found.public, found.server);
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
        Command::Ami { action } => run_ami(action, env).await,
        Command::Graph { action } => {
            // One shot, no retry loop of its own: the client retries.
            let config = match settings::graph_config(&env) {
                Ok(c) => settings::one_shot(c),
                Err(p) => return config_failure(&p),
            };
            let client = match graph_presence::GraphClient::new(config) {
                Ok(c) => c,
                Err(e) => return fail(e),
            };
            let result = match action {
                GraphAction::Check => {
                    let exts = match extensions::load(&settings::extensions_path(&env)) {
                        Ok(e) => e,
                        Err(p) => return config_failure(&p),
                    };
                    let teams_to_pbx = match TeamsToPbx::from_env(&env) {
                        Ok(t) => t,
                        Err(p) => return config_failure(&p.into()),
                    };
                    let report = graph_cmd::check(&client, &exts, teams_to_pbx.is_on()).await;
                    print!("{}", report.text);
                    return if report.ok {
                        ExitCode::SUCCESS
                    } else {
                        ExitCode::FAILURE
                    };
                }
                GraphAction::Get { user } => graph_cmd::get(&client, &user).await,
                GraphAction::Set { user, state } => graph_cmd::set(&client, &user, &state).await,
                GraphAction::Clear { user } => graph_cmd::clear(&client, &user).await,
            };
            match result {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(e),
            }
        }
    }
}

async fn run_ami(action: AmiAction, env: Env) -> ExitCode {
    use sip_blf_sync::ami_cmd::{self, DndCommand};
    let settings = match sip_blf_sync::ami_source::AmiSettings::from_env(&env) {
        Ok(s) => s,
        Err(p) => return config_failure(&p),
    };
    match action {
        AmiAction::Watch { json } => {
            let exts = match extensions::load(&settings::extensions_path(&env)) {
                Ok(e) => e,
                Err(p) => return config_failure(&p),
            };
            ami_cmd::watch(
                &settings,
                &exts,
                json,
                sip_blf_sync::signals::shutdown_signal(),
            )
            .await;
            ExitCode::SUCCESS
        }
        AmiAction::Dnd {
            extension,
            state,
            timeout,
        } => {
            let command = match state.as_str() {
                "on" => DndCommand::On,
                "off" => DndCommand::Off,
                _ => DndCommand::Show,
            };
            let timeout = std::time::Duration::from_secs_f64(timeout.clamp(0.1, 3600.0));
            match ami_cmd::dnd(&settings, &extension, command, timeout).await {
                Ok(line) => {
                    println!("{line}");
                    ExitCode::SUCCESS
                }
                Err(e) => fail(format!("AMI {}: {e}", settings.address)),
            }
        }
    }
}

/// A failure, with what to set when the SIP socket could not be opened
/// (e.g. port 5060 already taken by a PBX on this machine).
fn sip_failure(sip: &SipSettings, e: &(dyn std::error::Error + 'static)) -> ExitCode {
    match e
        .downcast_ref::<sip_ua::Error>()
        .and_then(|e| sip.listen_fix(e))
    {
        Some(fix) => fail(format!("SIP socket {}: {e}; {fix}", sip.listen)),
        None => fail(e),
    }
}

/// `demo` logs warnings only, as `check` does (its display says the rest).
fn is_demo(command: &Command) -> bool {
    #[cfg(feature = "demo")]
    if matches!(command, Command::Demo { .. }) {
        return true;
    }
    let _ = command;
    false
}

fn fail(message: impl std::fmt::Display) -> ExitCode {
    eprintln!("sip-blf-sync: {message}");
    ExitCode::FAILURE
}

fn run_test_notify(
    file: Option<PathBuf>,
    json: bool,
    mapping: Option<PathBuf>,
    content_type: Option<String>,
) -> ExitCode {
    let mapping = match mapping {
        None => sip_blf_sync::engine::Mapping::default(),
        Some(path) => match sip_blf_sync::engine::Mapping::load(&path) {
            Ok(m) => m,
            Err(e) => return fail(e),
        },
    };
    let (name, data) = match file.filter(|f| f.as_os_str() != "-") {
        Some(path) => match std::fs::read(&path) {
            Ok(d) => (path.display().to_string(), d),
            Err(e) => return fail(format!("{}: {e}", path.display())),
        },
        None => {
            let mut d = Vec::new();
            if let Err(e) = std::io::stdin().read_to_end(&mut d) {
                return fail(format!("standard input: {e}"));
            }
            ("standard input".to_string(), d)
        }
    };
    let report = test_notify::read_input(&data, content_type.as_deref())
        .and_then(|input| test_notify::examine(input, &mapping));
    match report {
        Err(e) => fail(format!("{name}: {e}")),
        Ok(report) if json => {
            println!("{}", report.to_json());
            ExitCode::SUCCESS
        }
        Ok(report) => {
            print!("{}", report.to_text());
            ExitCode::SUCCESS
        }
    }
}
