//! Start and stop the real peers the tests talk to: Kamailio (registrar,
//! proxy and presence server for the `dialog` and `presence` event packages),
//! SIPp phones (calls, PIDF PUBLISHes with [`SippPublisher`], status-update
//! MESSAGEs taken by [`SippMessageReceiver`]),
//! a STUN-only coturn, a private PostgreSQL ([`Postgres`]) and headless
//! Chromium through chromedriver ([`ChromeDriver`], [`Browser`]), all on
//! loopback, each instance on its own free ports with its own temporary run
//! directory, so tests can run in parallel.
//!
//! Every process is a child of the test; it is stopped by its pid (SIGTERM,
//! then SIGKILL for it and its own children) by `stop()` or on `Drop`, never
//! by name. Configuration files (a templated `kamailio.cfg`, the db_text
//! tables, the SIPp scenarios) are embedded in the crate, so nothing outside
//! the repository is read at run time. The peers themselves come from Debian
//! packages installed by `scripts/install-peers.sh`; when one is missing the
//! error says so ("kamailio not found: run scripts/install-peers.sh").
//!
//! ```no_run
//! # fn main() -> Result<(), testbed::Error> {
//! use std::time::Duration;
//!
//! let pbx = testbed::Kamailio::start(testbed::KamailioOptions::default())?;
//! println!("PBX at {} (domain {})", pbx.sip_addr(), pbx.domain());
//! let (user, password) = (testbed::ACCOUNTS[0].user, testbed::ACCOUNTS[0].password);
//! assert_eq!((user, password), ("1001", "pw1001"));
//!
//! // 1002 registers and answers after 500 ms of ringing, 1001 calls it and
//! // hangs up after 1 s of talk, all through Kamailio
//! let call = testbed::SippCall::start(&pbx, "1001", "1002",
//!     Duration::from_millis(500), Duration::from_secs(1))?;
//! call.wait()?;
//!
//! let stun = testbed::Coturn::start()?;
//! println!("STUN at {}", stun.addr());
//! # Ok(()) }
//! ```
//!
//! The accounts are plain constants and need no peer:
//!
//! ```
//! let blf = testbed::account("blf").unwrap();
//! assert_eq!(blf.password, "blfsecret");
//! assert_eq!(testbed::ACCOUNTS.len(), 4);
//! ```
//!
//! [`NatLab`] builds a NAT out of network namespaces (root only) for the
//! STUN/NAT tests: the service inside, Kamailio and coturn outside.
//!
//! Why hand-written process handling instead of a crate: the needs are small
//! (spawn, SIGTERM/SIGKILL by pid through `rustix`, a `/proc` scan for the
//! children) and keeping it here makes sure that only our own pids are ever
//! signalled. Why hand-written SIP OPTIONS / STUN probes for readiness: one
//! fixed request each, and this crate must not depend on the crates it helps
//! to test.

mod browser;
mod chromium;
mod coturn;
mod kamailio;
mod natlab;
mod ports;
mod postgres;
mod process;
mod sipp;
mod sipp_message;
mod sipp_publish;
mod tls;

use std::path::PathBuf;
use std::time::Duration;

pub use browser::Browser;
pub use chromium::{
    headless_capabilities, headless_capabilities_via, ChromeDriver, DEAD_PROXY, WINDOW_SIZE,
};
pub use coturn::Coturn;
pub use kamailio::{Kamailio, KamailioOptions, KamailioTls};
pub use natlab::NatLab;
pub use postgres::{Postgres, POSTGRES_DB, POSTGRES_PASSWORD, POSTGRES_USER};
pub use sipp::{SippCall, SippCallee, SippCaller};
pub use sipp_message::SippMessageReceiver;
pub use sipp_publish::SippPublisher;
pub use tls::{ServerCertOptions, TestPki};

/// One SIP account of the test PBX (realm = domain = the PBX's listen address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    /// User part of the AoR and digest user name.
    pub user: &'static str,
    /// Digest password.
    pub password: &'static str,
}

/// The accounts of Kamailio's `subscriber` table: three phones and the BLF
/// watcher.
pub const ACCOUNTS: [Account; 4] = [
    Account {
        user: "1001",
        password: "pw1001",
    },
    Account {
        user: "1002",
        password: "pw1002",
    },
    Account {
        user: "1003",
        password: "pw1003",
    },
    Account {
        user: "blf",
        password: "blfsecret",
    },
];

/// The account named `user`, if it exists.
pub fn account(user: &str) -> Option<Account> {
    ACCOUNTS.iter().copied().find(|a| a.user == user)
}

/// Errors from starting, driving or stopping a peer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A peer's binary is not installed.
    #[error("{program} not found: run scripts/install-peers.sh")]
    Missing {
        /// The program looked for (`kamailio`, `sipp`, `turnserver`, ...).
        program: &'static str,
    },
    /// A peer did not become ready (or exited) within its start-up deadline.
    #[error("{what} did not start: {detail}\n--- last lines of {} ---\n{tail}", log.display())]
    NotReady {
        /// Which peer.
        what: String,
        /// What was observed.
        detail: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// A peer ran but did not do what was asked (e.g. a SIPp call failed).
    #[error("{what} failed: {detail}\n--- last lines of {} ---\n{tail}", log.display())]
    Failed {
        /// Which peer or step.
        what: String,
        /// What was observed.
        detail: String,
        /// Its log file.
        log: PathBuf,
        /// The last lines of that log.
        tail: String,
    },
    /// A peer did not finish within its deadline.
    #[error("{what} did not finish within {timeout:?}")]
    Timeout {
        /// Which peer or step.
        what: String,
        /// The deadline that passed.
        timeout: Duration,
    },
    /// The user is not one of [`ACCOUNTS`].
    #[error("no account {0:?} on the test PBX")]
    UnknownAccount(String),
    /// No free port was found.
    #[error("no free port found for a peer")]
    NoFreePort,
    /// Network namespaces cannot be used here (not root, or `ip netns` fails).
    #[error("network namespaces unavailable: {0}")]
    NetnsUnavailable(String),
    /// chromedriver did not open a browser session.
    #[error("no browser session from chromedriver at {driver}: {source}\n--- last lines of its log ---\n{tail}")]
    Session {
        /// The driver's URL.
        driver: String,
        /// What the driver answered.
        #[source]
        source: Box<fantoccini::error::NewSessionError>,
        /// The last lines of the driver's log.
        tail: String,
    },
    /// A WebDriver command failed (no such element, the browser went away, ...).
    #[error("{what}: {source}")]
    WebDriver {
        /// What was being done.
        what: String,
        /// The driver's error.
        #[source]
        source: Box<fantoccini::error::CmdError>,
    },
    /// A file or process operation failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Error {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias of this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
