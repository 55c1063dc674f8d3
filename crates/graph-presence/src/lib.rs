//! A Microsoft Graph presence client for app-only services, following Teams' real rules.
//!
//! * **Tokens**: client credentials (the `oauth2` crate, credentials in the request body)
//!   against `{authority}/{tenant}/oauth2/v2.0/token` with scope `{graph origin}/.default`,
//!   with a client secret or a certificate ([`CertificateCredential`], PS256 assertion);
//!   cached, renewed ahead of expiry (lifetimes vary 60–90 min), fetched anew once on a 401.
//!   Entra errors become advice (AADSTS7000215 → "client secret is wrong", …).
//! * **Users**: UPN → object id with `GET /users/{upn}?$select=id` (guest `#EXT#` UPNs are
//!   percent-encoded), cached; presence routes take only object ids ([`ObjectId`]).
//! * **Presence**: `setPresence` with `sessionId` = client id and only the five valid pairs
//!   ([`PresenceState`]; [`PresencePair`] is the same five as a configuration names and a
//!   report shows them), `expirationDuration` checked to be PT5M..PT4H before sending;
//!   `clearPresence` (404 = already cleared); `setStatusMessage`; `getPresencesByUserId`
//!   (650 ids per call, split automatically); user-preferred presence (not for BLF).
//! * **Keep-alive**: [`refresh_interval`] and [`PresenceKeeper`] say when to re-send.
//! * **Batching**: `$batch` of up to 20, correlated by id, each sub-response checked.
//! * **Failures**: every failure is a typed [`GraphError`]; 429 and 5xx carry the server's
//!   `Retry-After` ([`GraphError::retry_after`]) and [`GraphError::is_transient`] says whether
//!   trying again may help; 400/403 say what is wrong; a client-side [budget](BudgetConfig)
//!   (1,500 per 30 s by default) keeps requests under Graph's limit. Reads and writes share
//!   it, writes first: a read (user lookup, presence) waits while any write waits for a slot.
//! * **Retries are opt-in**: the client does not retry unless
//!   [`GraphConfig::max_retries`] is set; a caller without its own retry loop sets it. Then
//!   429 honours `Retry-After` and 5xx, timeouts and connection errors back off exponentially
//!   with jitter. A caller with its own retry loop leaves it at 0, so that each call lasts
//!   one request and all waiting is decided in one place. (A 401 always fetches a new token
//!   once: that is not a retry policy.)
//! * Secrets and tokens never appear in logs or `Debug` output.
//!
//! Permissions (application, admin-consented): `Presence.ReadWrite.All` (set/clear),
//! `Presence.Read.All` (read), `User.Read.All` (UPN lookup; `User.ReadBasic.All` alone is
//! reported to fail for apps).
//!
//! Why some things are hand-written: the `$batch` envelope, the retry loop and the budget are
//! a few dozen lines each and must follow Graph-specific rules (sub-response `Retry-After`,
//! 424, per-sub-request cost) that generic retry crates do not know.
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! use graph_presence::{ClearOutcome, Credential, GraphClient, GraphConfig, PresenceState};
//! use std::time::Duration;
//! # let emu = graph_emulator::GraphEmulator::start(Default::default()).await?;
//! # let (tenant, client, secret) = (emu.config().tenant_id.clone(), emu.config().client_id.clone(), emu.config().client_secret.clone());
//!
//! let mut config = GraphConfig::new(tenant, client, Credential::Secret(secret.into()));
//! # config.authority_host = emu.authority_url();
//! # config.graph_base_url = emu.base_url();
//! let graph = GraphClient::new(config)?;
//! let alice = graph.resolve_user("alice@contoso.com").await?;
//! graph.set_presence(&alice, PresenceState::BusyInACall, Some(Duration::from_secs(3600))).await?;
//! assert!(graph.get_presence(&alice).await?.is_availability("busy"));
//! assert_eq!(graph.clear_presence(&alice).await?, ClearOutcome::Cleared);
//! assert_eq!(graph.clear_presence(&alice).await?, ClearOutcome::AlreadyCleared);
//! # Ok(())
//! # }
//! ```

mod budget;
mod cert;
mod client;
mod clock;
mod config;
mod error;
mod keepalive;
mod ops;
mod pair;
mod token;
mod types;

pub use budget::{BudgetConfig, RequestBudget};
pub use cert::CertificateCredential;
pub use client::{
    backoff_delay, GraphClient, TokenInfo, MAX_BATCH_REQUESTS, MAX_IDS_PER_PRESENCE_READ,
};
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use config::{Credential, GraphConfig, NationalCloud, SecretString};
pub use error::{entra_advice, GraphError};
pub use keepalive::{refresh_interval, PresenceKeeper};
pub use ops::{ClearOutcome, OperationOutcome, PresenceOperation, StatusMessageExpiry};
pub use pair::PresencePair;
pub use types::{
    expiration_iso8601, ObjectId, PreferredPresence, Presence, PresenceState, AVAILABLE_TIMEOUT,
    DEFAULT_EXPIRATION, MAX_EXPIRATION, MIN_EXPIRATION,
};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
