//! `sip-blf-sync-bench`: one subcommand per figure; each prints a small table
//! (or `--json`). See docs/benchmarks.md.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand};

use sip_blf_sync_bench::figures::Report;
use sip_blf_sync_bench::runs::{self, Cores, NotifierKind as Notifier, Pacing};
use sip_blf_sync_bench::BenchError;

/// The offered NOTIFY rates `throughput` climbs through, by default and in `all`.
const THROUGHPUT_RATES: &str = "5000,10000,11000,12500,15000,17500,20000";

/// Benchmarks of sip-blf-sync: latency, throughput, memory, start-up, Graph economy, parsing.
#[derive(Parser)]
#[command(name = "sip-blf-sync-bench", version, about)]
struct Cli {
    /// Print one JSON document instead of tables.
    #[arg(long, global = true)]
    json: bool,
    /// Tiny sizes, a few seconds in all: checks that the harness works, measures nothing.
    #[arg(long, global = true)]
    smoke: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// NOTIFY received → Graph request sent, p50/p99/max, debounce off.
    Latency {
        /// Subscribed extensions.
        #[arg(long, default_value_t = 10_000)]
        extensions: usize,
        /// NOTIFYs per second, spread over every extension.
        #[arg(long, default_value_t = 2_000.0)]
        rate: f64,
        /// Seconds of load.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
        /// Who sends the NOTIFYs.
        #[arg(long, value_enum, default_value_t = Notifier::Sipp)]
        notifier: Notifier,
        /// Where the service and its peers run.
        #[arg(long, value_enum, default_value_t = Cores::Split)]
        cores: Cores,
    },
    /// The highest NOTIFY rate taken on one core with no NOTIFY lost or unanswered.
    Throughput {
        /// Subscribed extensions.
        #[arg(long, default_value_t = 10_000)]
        extensions: usize,
        /// Offered rates to try, NOTIFYs per second, in increasing order.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = THROUGHPUT_RATES
        )]
        rates: Vec<f64>,
        /// Seconds of load per rate.
        #[arg(long, default_value_t = 10)]
        seconds: u64,
        /// Who sends the NOTIFYs.
        #[arg(long, value_enum, default_value_t = Notifier::Sipp)]
        notifier: Notifier,
    },
    /// Resident set size of the `sip-blf-sync run` process with 1,000 and 10,000 subscriptions.
    Memory {
        /// Subscription counts to measure.
        #[arg(long, value_delimiter = ',', default_value = "1000,10000")]
        extensions: Vec<usize>,
        /// The service binary (default: `sip-blf-sync` beside this one, else this
        /// binary's own copy of `run`).
        #[arg(long)]
        service_bin: Option<PathBuf>,
    },
    /// Time from process start to every subscription active, per /status.
    Startup {
        /// Subscriptions.
        #[arg(long, default_value_t = 10_000)]
        extensions: usize,
        /// SUBSCRIBE pacing: none, or the default 50 per second.
        #[arg(long, value_enum, default_value_t = Pacing::Unlimited)]
        pacing: Pacing,
        /// The service binary (as for `memory`).
        #[arg(long)]
        service_bin: Option<PathBuf>,
    },
    /// Graph requests per 1,000 line-state changes with flapping lines, debounce and `$batch`.
    GraphEconomy {
        /// Users (one extension each).
        #[arg(long, default_value_t = 300)]
        users: usize,
        /// Flap-then-settle rounds.
        #[arg(long, default_value_t = 4)]
        rounds: u32,
        /// Debounce window (SYNC_DEBOUNCE_MS).
        #[arg(long, default_value_t = 500)]
        debounce_ms: u64,
    },
    /// `blf` bodies parsed per second on one core.
    Parse,
    /// The dashboard in headless Chromium: frame rate under a stream of changes.
    Dashboard {
        /// Extensions on the board.
        #[arg(long, default_value_t = 10_000)]
        extensions: usize,
        /// Line changes per second.
        #[arg(long, default_value_t = 2_000)]
        rate: usize,
        /// Seconds of load.
        #[arg(long, default_value_t = 20)]
        seconds: u64,
    },
    /// AMI events per second through the AMI source and the engine on one core,
    /// and the full state at connect.
    Ami {
        /// Extensions (FreePBX hints on the AMI emulator).
        #[arg(long, default_value_t = 10_000)]
        extensions: usize,
        /// Line changes per extension (two AMI events each).
        #[arg(long, default_value_t = 40)]
        rounds: usize,
        /// Line changes written and not yet counted at the feed, at most
        /// (0: the whole stream at once, a backlog the service must hold).
        #[arg(long, default_value_t = 20_000)]
        window: u64,
    },
    /// Teams presence read back: `getPresencesByUserId` requests per poll
    /// cycle and the cycle time, against the Graph emulator.
    TeamsPoll {
        /// People (one extension each, given by UPN).
        #[arg(long, default_value_t = 10_000)]
        users: usize,
        /// Timed poll cycles (after a first one timed on its own).
        #[arg(long, default_value_t = 20)]
        cycles: usize,
    },
    /// Every benchmark in turn (start-up with both pacings).
    All {
        /// The service binary (as for `memory`).
        #[arg(long)]
        service_bin: Option<PathBuf>,
    },
    /// The service itself (`sip-blf-sync run`, same code), for machines where
    /// the `sip-blf-sync` binary is not built beside this one.
    #[command(hide = true)]
    Serve,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if matches!(cli.command, Command::Serve) {
        return runs::serve();
    }
    let smoke = cli.smoke;
    let reports = match run(cli.command, smoke) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::FAILURE;
        }
    };
    if cli.json {
        println!(
            "{}",
            serde_json::to_string_pretty(&reports).unwrap_or_default()
        );
    } else {
        for r in &reports {
            println!("{}", r.table());
        }
    }
    ExitCode::SUCCESS
}

fn run(command: Command, smoke: bool) -> Result<Vec<Report>, BenchError> {
    let rt = runs::harness_runtime()?;
    let secs = |s: u64| Duration::from_secs(if smoke { 2 } else { s });
    Ok(match command {
        Command::Latency {
            extensions,
            rate,
            seconds,
            notifier,
            cores,
        } => {
            let (n, rate) = if smoke {
                (20, 40.0)
            } else {
                (extensions, rate)
            };
            vec![runs::latency(&rt, notifier, n, rate, secs(seconds), cores)?]
        }
        Command::Throughput {
            extensions,
            rates,
            seconds,
            notifier,
        } => {
            let (n, rates) = if smoke {
                (20, vec![40.0, 80.0])
            } else {
                (extensions, rates)
            };
            vec![runs::throughput(&rt, notifier, n, &rates, secs(seconds))?]
        }
        Command::Memory {
            extensions,
            service_bin,
        } => {
            let sizes = if smoke { vec![10, 20] } else { extensions };
            vec![runs::memory(&rt, &sizes, service_bin)?]
        }
        Command::Startup {
            extensions,
            pacing,
            service_bin,
        } => {
            let n = if smoke { 20 } else { extensions };
            vec![runs::startup(&rt, n, pacing, service_bin)?]
        }
        Command::GraphEconomy {
            users,
            rounds,
            debounce_ms,
        } => {
            let (users, rounds) = if smoke { (20, 1) } else { (users, rounds) };
            vec![runs::graph_economy(
                &rt,
                users,
                rounds,
                Duration::from_millis(debounce_ms),
            )?]
        }
        Command::Parse => vec![runs::parse(secs(2))],
        Command::Dashboard {
            extensions,
            rate,
            seconds,
        } => {
            let (extensions, rate) = if smoke {
                (200, 100)
            } else {
                (extensions, rate)
            };
            vec![sip_blf_sync_bench::dashboard::dashboard(
                &rt,
                extensions,
                rate,
                secs(seconds).as_secs(),
            )?]
        }
        Command::Ami {
            extensions,
            rounds,
            window,
        } => {
            let (extensions, rounds) = if smoke {
                (300, 6)
            } else {
                (extensions, rounds)
            };
            vec![sip_blf_sync_bench::ami::ami(
                &rt, extensions, rounds, window,
            )?]
        }
        Command::TeamsPoll { users, cycles } => {
            let (users, cycles) = if smoke { (1_400, 3) } else { (users, cycles) };
            vec![sip_blf_sync_bench::teams_poll::teams_poll(
                &rt, users, cycles,
            )?]
        }
        Command::All { service_bin } => {
            let small = |n: usize| if smoke { 20 } else { n };
            let latency = |cores| {
                let rate = if smoke { 40.0 } else { 2_000.0 };
                runs::latency(&rt, Notifier::Sipp, small(10_000), rate, secs(20), cores)
            };
            vec![
                runs::parse(secs(2)),
                runs::graph_economy(
                    &rt,
                    small(300),
                    if smoke { 1 } else { 4 },
                    Duration::from_millis(500),
                )?,
                latency(Cores::Split)?,
                latency(Cores::Shared)?,
                runs::throughput(
                    &rt,
                    Notifier::Sipp,
                    small(10_000),
                    &if smoke {
                        vec![40.0]
                    } else {
                        THROUGHPUT_RATES
                            .split(',')
                            .filter_map(|r| r.parse().ok())
                            .collect()
                    },
                    secs(10),
                )?,
                runs::memory(
                    &rt,
                    &if smoke {
                        vec![10, 20]
                    } else {
                        vec![1_000, 10_000]
                    },
                    service_bin.clone(),
                )?,
                runs::startup(&rt, small(10_000), Pacing::Unlimited, service_bin.clone())?,
                runs::startup(&rt, small(10_000), Pacing::Default, service_bin)?,
                sip_blf_sync_bench::ami::ami(
                    &rt,
                    if smoke { 300 } else { 10_000 },
                    if smoke { 6 } else { 40 },
                    20_000,
                )?,
                sip_blf_sync_bench::teams_poll::teams_poll(
                    &rt,
                    if smoke { 1_400 } else { 10_000 },
                    if smoke { 3 } else { 20 },
                )?,
            ]
        }
        Command::Serve => Vec::new(),
    })
}
