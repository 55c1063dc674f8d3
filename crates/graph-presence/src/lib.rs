//! A Microsoft Graph presence client for app-only services, following Teams' real rules.
//!
//! * **Tokens**: client credentials (the `oauth2` crate, credentials in the request body)
//!   against `{authority}/{tenant}/oauth2/v2.0/token` with scope `{graph origin}/.default`,
//!   with a client secret or a certificate ([`CertificateCredential`], PS256 assertion);
//!   cached, renewed ahead of expiry (lifetimes vary 60–90 min), fetched anew once on a 401.
//!   Entra errors become advice (AADSTS7000215 → "client secret is wrong", …).
//! * **Users**: UPN → object id with `GET /users/{upn}?$select=id` (guest `#EXT#` UPNs are
//!   percent-encoded), cached ([`GraphClient::cached_user`], [`GraphClient::cached_users`]
//!   to persist, [`GraphClient::seed_user_cache`] to restore); presence routes take only
//!   object ids ([`ObjectId`]).
//! * **Presence**: `setPresence` with `sessionId` = client id and only the five valid pairs
//!   ([`PresenceState`], written and parsed as `Busy/InACall`), `expirationDuration`
//!   checked to be PT5M..PT4H before sending;
//!   `clearPresence` (404 = already cleared); `setStatusMessage`; `getPresencesByUserId`
//!   (650 ids per call, split automatically); user-preferred presence (not for BLF).
//! * **Keep-alive**: [`refresh_interval`] says when to re-send to hold a state.
//! * **Batching**: `$batch` of up to 20, correlated by id, each sub-response checked.
//! * **Failures**: every failure is a typed [`GraphError`]; 429 and 5xx carry the server's
//!   `Retry-After` ([`GraphError::retry_after`]) and [`GraphError::is_transient`] says whether
//!   trying again may help; 400/403 say what is wrong; a client-side [budget](BudgetConfig)
//!   (1,500 per 30 s by default) keeps requests under Graph's limit. Reads and writes share
//!   it, writes first: a read (user lookup, presence) waits while any write waits for a slot.
//! * **Retries are opt-in and visible**: retrying happens in one place, the caller's or the
//!   client's, never both. By default ([`RetryPolicy::none`]) the client does not retry: a
//!   call lasts one request and returns its typed error, with the server's `Retry-After`,
//!   for the caller's own retry loop (a service that orders and re-sends its calls). A
//!   caller without one opts in with [`GraphConfig::with_retry_policy`]
//!   (`RetryPolicy::retries(3)`): then 429 honours `Retry-After` and 5xx, timeouts and
//!   connection errors back off exponentially with jitter, and no call waits longer than
//!   [`RetryPolicy::max_wait`] in all. (A 401 always fetches a new token once: that is not
//!   a retry.)
//! * **Settings**: [`GraphConfig::new`] takes what is required (tenant, application,
//!   credential); `with_*` setters the rest: endpoints ([`GraphConfig::with_cloud`],
//!   [`GraphConfig::with_authority_url`], [`GraphConfig::with_graph_url`]), the budget, the
//!   timeouts, the retry policy, and an HTTP client of your own
//!   ([`GraphConfig::with_http_client`]).
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
//! let config = GraphConfig::new(tenant, client, Credential::Secret(secret.into()));
//! # let config = config.with_authority_url(emu.authority_url()).with_graph_url(emu.base_url());
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
mod token;
mod types;

pub use budget::BudgetConfig;
pub use cert::CertificateCredential;
pub use client::{
    CachedUsers, GraphClient, TokenInfo, MAX_BATCH_REQUESTS, MAX_IDS_PER_PRESENCE_READ,
};
pub use clock::{Clock, ManualClock, Sleep, SystemClock};
pub use config::{Credential, GraphConfig, NationalCloud, RetryPolicy, SecretString};
pub use error::GraphError;
pub use keepalive::refresh_interval;
pub use ops::{ClearOutcome, OperationOutcome, PresenceOperation, StatusMessageExpiry};
pub use types::{
    expiration_iso8601, ObjectId, PreferredPresence, Presence, PresenceState, AVAILABLE_TIMEOUT,
    DEFAULT_EXPIRATION, MAX_EXPIRATION, MIN_EXPIRATION,
};

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
