//! The live dashboard and its API (crate `line-board`) in `run`, `watch`
//! and `demo`: its settings, the board of the configured extensions, and
//! what feeds it besides the engine (each source's and sink's health).
//!
//! The page and the API are served on `HTTP_LISTEN` beside `/status` and
//! `/metrics`. On loopback (the default) they are open; on any other address
//! they need `HTTP_TOKEN`, and the service refuses to start without one.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use line_board::{Access, Board, BoardConfig, Health, HealthKind, Listing, DEFAULT_LOG_CAPACITY};

use crate::extensions::Extension;
use crate::observe::Telemetry;
use crate::problems::Problem;
use crate::settings::Env;

/// How often the board's health line is brought up to date.
const HEALTH_EVERY: Duration = Duration::from_secs(1);

/// The dashboard's settings: `HTTP_TOKEN` and `DASHBOARD_STALE_SECONDS`.
#[derive(Clone, PartialEq, Eq)]
pub struct DashboardSettings {
    token: Option<String>,
    /// After how long without an event from the PBX a tile shows as stale.
    pub stale_after: Duration,
}

/// The default of `DASHBOARD_STALE_SECONDS` for subscriptions of
/// `subscribe_expires` seconds: twice that. The PBX sends a NOTIFY on each
/// refresh (RFC 6665), so a line that is merely quiet is never stale.
pub fn default_stale_after(subscribe_expires: u32) -> Duration {
    Duration::from_secs(2 * u64::from(subscribe_expires.max(1)))
}

impl fmt::Debug for DashboardSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The token is a secret: never in a log or a panic message.
        f.debug_struct("DashboardSettings")
            .field("token", &self.token.as_ref().map(|_| "<set>"))
            .field("stale_after", &self.stale_after)
            .finish()
    }
}

impl Default for DashboardSettings {
    fn default() -> Self {
        Self {
            token: None,
            stale_after: default_stale_after(crate::settings::DEFAULT_SUBSCRIBE_EXPIRES),
        }
    }
}

impl DashboardSettings {
    /// Reads `HTTP_TOKEN` and `DASHBOARD_STALE_SECONDS` (default: twice
    /// `subscribe_expires`), and refuses a non-loopback `listen` without a
    /// token.
    pub fn from_env(
        env: &Env,
        listen: Option<SocketAddr>,
        subscribe_expires: u32,
    ) -> Result<Self, Vec<Problem>> {
        let default = default_stale_after(subscribe_expires);
        let mut problems = Vec::new();
        let token = env
            .get("HTTP_TOKEN")
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned);
        let stale_after = match env.get("DASHBOARD_STALE_SECONDS").map(str::trim) {
            None | Some("") => default,
            Some(v) => match v.parse::<u64>() {
                Ok(s) if s > 0 => Duration::from_secs(s),
                _ => {
                    problems.push(Problem::in_var(
                        "DASHBOARD_STALE_SECONDS",
                        format!(
                            "{v:?} is not a number of seconds above 0 (default {}: twice \
                             SIP_SUBSCRIBE_EXPIRES)",
                            default.as_secs()
                        ),
                    ));
                    default
                }
            },
        };
        if let Some(addr) = listen {
            if let Err(e) = line_board::check_bind(addr, token.as_deref()) {
                problems.push(Problem::in_var("HTTP_LISTEN", e.to_string()));
            }
        }
        if problems.is_empty() {
            Ok(Self { token, stale_after })
        } else {
            Err(problems)
        }
    }

    /// Who may see the page and the API.
    pub fn access(&self) -> Access {
        Access::new(self.token.as_deref())
    }
}

/// The board of `extensions`, each with its name, person and group.
pub fn board(extensions: &[Extension], settings: &DashboardSettings) -> Board {
    let listings = extensions.iter().map(|e| Listing {
        extension: e.extension.clone(),
        name: e.name.clone(),
        email: Some(e.email.clone())
            .filter(|m| !m.is_empty())
            .or_else(|| e.object_id.clone()),
        group: e.group.clone(),
    });
    Board::new(
        listings,
        BoardConfig::new(settings.stale_after, DEFAULT_LOG_CAPACITY),
    )
}

/// Keeps the board's health line up to date from `telemetry` until the
/// board is closed.
pub async fn keep_health(board: Board, telemetry: Telemetry) {
    let mut every = tokio::time::interval(HEALTH_EVERY);
    every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while !board.is_closed() {
        every.tick().await;
        let (sources, sinks) = health(&telemetry, SystemTime::now());
        board.set_health(sources, sinks);
    }
}

/// Each source's and sink's health as the page shows it.
pub fn health(telemetry: &Telemetry, now: SystemTime) -> (Vec<Health>, Vec<Health>) {
    let sip = telemetry.sip_summary();
    let sip_ok = sip.registered && sip.active == sip.total;
    let sources = vec![Health {
        name: "sip".into(),
        kind: HealthKind::Source,
        ok: sip_ok,
        detail: format!(
            "{}; {} of {} subscriptions active",
            if sip.registered {
                "registered"
            } else {
                "not registered"
            },
            sip.active,
            sip.total
        ),
        last_success: sip.last_notify,
    }];
    let instant_now = tokio::time::Instant::now().into_std();
    let sinks = telemetry
        .sinks()
        .into_iter()
        .map(|s| {
            let graph = s.name == "graph";
            let token_ok = !graph || telemetry.token_valid();
            let mut detail = format!(
                "{} waiting, {} in flight, {} failed",
                s.queue_depth, s.in_flight, s.failures
            );
            if s.paused {
                detail.push_str("; connection lost");
            }
            if graph {
                detail.push_str(if token_ok {
                    "; Graph token valid"
                } else {
                    "; no valid Graph token"
                });
            }
            Health {
                ok: !s.paused && token_ok,
                last_success: s.last_success.map(|at| {
                    now.checked_sub(instant_now.saturating_duration_since(at))
                        .unwrap_or(now)
                }),
                name: s.name,
                kind: HealthKind::Sink,
                detail,
            }
        })
        .collect();
    (sources, sinks)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Env {
        Env::from_pairs(pairs.iter().copied())
    }

    #[test]
    fn a_non_loopback_listener_needs_a_token() {
        let anywhere: SocketAddr = "0.0.0.0:9090".parse().unwrap();
        let problems = DashboardSettings::from_env(&env(&[]), Some(anywhere), 600).unwrap_err();
        let text = problems[0].to_string();
        assert!(text.contains("HTTP_TOKEN"), "{text}");
        let with_token = env(&[("HTTP_TOKEN", "s3cret-token")]);
        let settings = DashboardSettings::from_env(&with_token, Some(anywhere), 600).unwrap();
        assert!(settings.access().requires_token());
        let loopback =
            DashboardSettings::from_env(&env(&[]), Some("127.0.0.1:9090".parse().unwrap()), 600);
        assert!(!loopback.unwrap().access().requires_token());
    }

    #[test]
    fn the_token_never_shows_in_debug_output() {
        let settings =
            DashboardSettings::from_env(&env(&[("HTTP_TOKEN", "s3cret-token")]), None, 600)
                .unwrap();
        let shown = format!("{settings:?}");
        assert!(!shown.contains("s3cret"), "{shown}");
        assert!(shown.contains("<set>"), "{shown}");
    }

    #[test]
    fn stale_seconds_are_checked() {
        let bad =
            DashboardSettings::from_env(&env(&[("DASHBOARD_STALE_SECONDS", "soon")]), None, 600);
        assert!(bad.unwrap_err()[0]
            .to_string()
            .contains("DASHBOARD_STALE_SECONDS"));
        let good =
            DashboardSettings::from_env(&env(&[("DASHBOARD_STALE_SECONDS", "90")]), None, 600)
                .unwrap();
        assert_eq!(good.stale_after, Duration::from_secs(90));
    }
}
