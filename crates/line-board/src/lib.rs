//! A live web dashboard and HTTP API of PBX line state.
//!
//! A [`Board`] holds every listed extension ([`Listing`]) and what is known
//! about it ([`Extension`]: line state, DND, the other party, its call
//! queues, the Teams presence set for its person) and the health of the service's sources
//! and sinks ([`Health`]). [`Board::follow`] keeps it up to date from the
//! engine's [`ViewFeed`](sip_blf_engine::ViewFeed); [`app`] serves it:
//!
//! - `/` the page (`/?view=wall`: the wallboard), `/app.js`, `/app.css`;
//! - `GET /api/v1/extensions[?state=busy|dnd|...&q=text]`,
//!   `/api/v1/extensions/{ext}`, `/api/v1/health`: JSON;
//! - `GET /api/v1/events`: Server-Sent Events: a `snapshot`, then
//!   `changes` (coalesced per extension, the latest wins) and `health`;
//!   a client that reconnects with `Last-Event-ID` gets what it missed, or
//!   a fresh snapshot when the board's log no longer has it;
//! - `/login`: a form that trades the token for the `blf_session` cookie.
//!
//! With a token ([`Access`]) every route but `/login` and the assets needs
//! `Authorization: Bearer <token>` or the cookie; [`check_bind`] refuses a
//! non-loopback listener without one. Every response carries a strict
//! Content-Security-Policy (the page has no inline script or style).
//! The crate's `openapi.yaml` documents the API.
//!
//! ```
//! use std::time::{Duration, SystemTime};
//! use line_board::{Board, BoardConfig, ExtensionFilter, LineState, LineUpdate, Listing};
//!
//! let board = Board::new(
//!     [Listing {
//!         extension: "1001".into(),
//!         name: Some("Alice Smith".into()),
//!         email: Some("alice@contoso.com".into()),
//!         group: Some("Sales".into()),
//!     }],
//!     BoardConfig::new(Duration::from_secs(120), 10_000),
//! );
//! board.set_line("1001", LineUpdate::new(LineState::Busy), SystemTime::now());
//!
//! let json = serde_json::to_value(board.extensions(&ExtensionFilter::all()))?;
//! assert_eq!(json[0]["extension"], "1001");
//! assert_eq!(json[0]["line_state"], "busy");
//! assert_eq!(json[0]["group"], "Sales");
//! assert!(json[0]["teams"].is_null());
//!
//! // Served with axum (on loopback, no token):
//! let router: axum::Router = line_board::app(board.clone(), line_board::Access::open());
//! # drop(router);
//! # Ok::<(), serde_json::Error>(())
//! ```

mod auth;
mod board;
mod http;
mod model;
mod sse;
mod time;

pub use auth::{check_bind, protect, Access, BindError, HOW_TO_GET_ACCESS, SESSION_COOKIE};
pub use board::{
    Board, BoardConfig, LineUpdate, DEFAULT_BATCH_INTERVAL, DEFAULT_LOG_CAPACITY,
    DEFAULT_STALE_AFTER,
};
pub use http::{app, with_security_headers, CONTENT_SECURITY_POLICY};
pub use model::{
    Counterparty, DndBy, Extension, ExtensionFilter, Health, HealthKind, Listing, StateFilter,
    Teams, UnknownStateFilter,
};
pub use sip_blf_engine::{Direction, LineState, QueueMember};
pub use sse::KEEP_ALIVE;

/// The README's examples, compiled as doctests.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

/// The page's files, embedded in the binary (no CDN, no build step).
pub mod assets {
    /// `index.html`: the dashboard and the wallboard (`/?view=wall`).
    pub const INDEX_HTML: &str = include_str!("../assets/index.html");
    /// `app.js`: the page's only script (no inline script: the CSP forbids it).
    pub const APP_JS: &str = include_str!("../assets/app.js");
    /// `app.css`: the page's styles.
    pub const APP_CSS: &str = include_str!("../assets/app.css");
}
