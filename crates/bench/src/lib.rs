//! The benchmark suite of sip-blf-sync: the service's own code (SIP source,
//! engine, Graph sink and client) driven by a SIP notifier and answered by the
//! Graph emulator on loopback, with figures anyone can reproduce.
//!
//! The binary `sip-blf-sync-bench` has one subcommand per figure (`latency`,
//! `throughput`, `memory`, `startup`, `graph-economy`, `parse`, `dashboard`,
//! `ami`, `teams-poll`, `all`); each prints a small table (or `--json`). `docs/benchmarks.md` lists the commands,
//! the figures measured and what limits each one.
//!
//! The pieces are usable on their own, e.g. the in-process service against a
//! Graph emulator:
//!
//! ```no_run
//! # fn demo() -> Result<(), sip_blf_sync_bench::BenchError> {
//! use sip_blf_sync_bench::{fixture::Fixture, service::{Service, ServiceOptions}};
//!
//! let runtime = tokio::runtime::Runtime::new()?;
//! let fixture = Fixture::new(1_000)?;
//! let emulator = runtime.block_on(fixture.emulator(None))?;
//! // A notifier (SIPp, or sip-notifier) listens at this address.
//! let pbx: std::net::SocketAddr = "127.0.0.1:5070".parse().unwrap();
//! let service = Service::start(ServiceOptions::new(&fixture, &emulator, pbx))?;
//! // ... drive the notifier, then:
//! let samples = service.latency_samples();
//! service.stop()?;
//! # drop(samples); Ok(()) }
//! ```

pub mod ami;
pub mod dashboard;
pub mod figures;
pub mod fixture;
pub mod pin;
pub mod procfs;
pub mod runs;
pub mod service;
pub mod sipp;
pub mod teams_poll;

/// Why a benchmark could not run.
#[derive(Debug, thiserror::Error)]
pub enum BenchError {
    /// An I/O error (sockets, files, processes).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// Something the benchmark needs did not work.
    #[error("{0}")]
    Setup(String),
    /// A peer (SIPp, the service process) misbehaved.
    #[error("{0}")]
    Peer(String),
}

impl BenchError {
    /// A setup problem with a message.
    pub fn setup(message: impl Into<String>) -> Self {
        Self::Setup(message.into())
    }
}
