//! The benchmarks themselves, one function per subcommand; each kind of run has its own
//! submodule, and this one holds what they share.

mod economy;
mod load;
mod parse;
mod process;

pub use economy::graph_economy;
pub use load::{latency, throughput};
pub use parse::parse;
pub use process::{memory, startup};

use std::process::ExitCode;
use std::time::{Duration, Instant};

use graph_presence::BudgetConfig;
use sip_blf_sync::settings::Env;

use crate::BenchError;

/// SUBSCRIBE pacing of the service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Pacing {
    /// `SIP_SUBSCRIBE_RATE=0`: as fast as the notifier answers.
    Unlimited,
    /// The default, 50 new SUBSCRIBEs per second.
    Default,
}

/// A budget far above any load here, so the figure is the bridge's own (Graph's
/// real budget is the Graph-economy benchmark's subject).
fn unlimited_budget() -> BudgetConfig {
    BudgetConfig::new(u32::MAX / 2, Duration::from_secs(1))
}

/// The harness's own runtime (emulator, waiting): one worker, on the core the
/// service is not pinned to when there are two.
pub fn harness_runtime() -> Result<tokio::runtime::Runtime, BenchError> {
    let other = other_core();
    Ok(tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .on_thread_start(move || {
            if let Some(cpu) = other {
                crate::pin::pin_current_thread(cpu);
            }
        })
        .build()?)
}

/// The core the harness and the peers use when the service has core 0.
fn other_core() -> Option<usize> {
    (crate::pin::cores() >= 2).then_some(1)
}

fn wait_until(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if done() {
            return true;
        }
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Who sends the NOTIFYs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum NotifierKind {
    /// SIPp (sip-tester) with `crates/bench/sipp/notifier.xml`: an independent peer.
    Sipp,
    /// This workspace's `sip-notifier`, driven by the harness at a set rate.
    Ours,
}

/// Where the latency run puts the service and its peers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Cores {
    /// The service on core 0 (one runtime worker); the notifier, the Graph
    /// emulator and the harness on core 1, as peers on other machines would be.
    Split,
    /// Everything shares every core (the service with one worker per core).
    Shared,
}

fn notifier_name(n: NotifierKind) -> &'static str {
    match n {
        NotifierKind::Sipp => "SIPp",
        NotifierKind::Ours => "sip-notifier",
    }
}
/// `serve`: the service, as `sip-blf-sync run` runs it.
pub fn serve() -> ExitCode {
    let env = match Env::load(None) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let plan = match sip_blf_sync::run::RunPlan::from_env(&env, false) {
        Ok(p) => p,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(sip_blf_sync::run::run(plan)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{e}");
            ExitCode::FAILURE
        }
    }
}
