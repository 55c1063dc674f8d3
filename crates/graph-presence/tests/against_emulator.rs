//! Every client behaviour, against the Graph emulator over real HTTP on loopback.
//! Waits (Retry-After, backoff, budget) run on a virtual clock that also moves the
//! emulator's clock, so nothing here sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use graph_emulator::{EmulatorConfig, Fault, GraphEmulator, Operation, PresencePair, RateLimit};
use graph_presence::{
    refresh_interval, BudgetConfig, ClearOutcome, Credential, GraphClient, GraphConfig, GraphError,
    ManualClock, ObjectId, OperationOutcome, PresenceOperation, PresenceState, RetryPolicy,
    StatusMessageExpiry,
};
use std::sync::Arc;
use std::time::Duration;

const ALICE: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const BOB: &str = "bbbbbbbb-0000-4000-8000-000000000002";
const CAROL_GUEST: &str = "carol_fabrikam.com#EXT#@contoso.onmicrosoft.com";
const HOUR: Option<Duration> = Some(Duration::from_secs(3600));

struct Fx {
    emu: Arc<GraphEmulator>,
    clock: ManualClock,
    graph: GraphClient,
}

fn alice() -> ObjectId {
    ObjectId::parse(ALICE).unwrap()
}

fn config_for(emu: &GraphEmulator) -> GraphConfig {
    let c = emu.config();
    config_as(emu, &c.tenant_id, &c.client_id)
}

/// The emulator's endpoints and secret, with this tenant and application.
fn config_as(emu: &GraphEmulator, tenant: &str, client: &str) -> GraphConfig {
    let secret = emu.config().client_secret.clone();
    GraphConfig::new(tenant, client, Credential::Secret(secret.into()))
        .with_authority_url(emu.authority_url())
        .with_graph_url(emu.base_url())
}

/// `retries` retries with no cap on the total wait short of an hour.
fn retrying(retries: u32) -> RetryPolicy {
    RetryPolicy::retries(retries)
        .with_max_retry_after(Duration::from_secs(300))
        .with_max_wait(Duration::from_secs(3600))
}

async fn fx_with(emu_cfg: EmulatorConfig, tweak: impl FnOnce(GraphConfig) -> GraphConfig) -> Fx {
    let emu = Arc::new(GraphEmulator::start(emu_cfg).await.unwrap());
    let clock = ManualClock::new();
    let weak = Arc::downgrade(&emu);
    clock.on_advance(move |d| {
        if let Some(e) = weak.upgrade() {
            e.advance(d)
        }
    });
    let cfg = tweak(config_for(&emu));
    let graph = GraphClient::with_clock(cfg, Arc::new(clock.clone())).unwrap();
    Fx { emu, clock, graph }
}

async fn fx() -> Fx {
    fx_with(EmulatorConfig::default(), |c| c).await
}

/// A client that retries by itself (it does not by default).
async fn fx_retrying(max_retries: u32) -> Fx {
    fx_with(EmulatorConfig::default(), |c| {
        c.with_retry_policy(retrying(max_retries))
    })
    .await
}

#[tokio::test]
async fn token_is_reused_and_renewed_ahead_of_expiry() {
    let f = fx().await;
    let info = f.graph.token_check().await.unwrap();
    assert_eq!(info.expires_in, Duration::from_secs(3599));
    f.graph
        .set_presence(&alice(), PresenceState::Away, None)
        .await
        .unwrap();
    f.graph.get_presence(&alice()).await.unwrap();
    assert_eq!(f.emu.tokens_issued(), 1, "one token for several calls");
    // Still more than the 5-minute margin left: reused.
    f.clock.advance(Duration::from_secs(3599 - 300 - 10));
    f.graph.get_presence(&alice()).await.unwrap();
    assert_eq!(f.emu.tokens_issued(), 1);
    // Inside the margin, before it expires: renewed without any 401.
    f.clock.advance(Duration::from_secs(20));
    f.graph.get_presence(&alice()).await.unwrap();
    assert_eq!(f.emu.tokens_issued(), 2);
    assert!(f.emu.requests().iter().all(|r| r.status != 401));
}

#[tokio::test]
async fn unauthorized_gets_a_new_token_once() {
    let f = fx().await;
    f.graph.get_presence(&alice()).await.unwrap();
    f.emu.expire_all_tokens();
    f.graph.get_presence(&alice()).await.unwrap();
    assert_eq!(f.emu.tokens_issued(), 2);
    assert_eq!(
        f.emu.requests().iter().filter(|r| r.status == 401).count(),
        1
    );

    // A 401 that persists: one renewal, one retry, then a clear error.
    f.emu.inject(Fault::Unauthorized { times: 10 });
    let before = f.emu.count(Operation::GetPresence);
    let e = f.graph.get_presence(&alice()).await.unwrap_err();
    assert!(matches!(e, GraphError::Unauthorized { .. }), "{e}");
    assert_eq!(f.emu.tokens_issued(), 3);
    assert_eq!(f.emu.count(Operation::GetPresence) - before, 2);
}

#[tokio::test]
async fn throttled_request_waits_its_retry_after() {
    let f = fx_retrying(5).await;
    f.emu.inject(Fault::TooManyRequests {
        retry_after: Duration::from_secs(7),
        times: 2,
    });
    f.graph
        .set_presence(&alice(), PresenceState::BusyInACall, HOUR)
        .await
        .unwrap();
    assert_eq!(f.clock.sleeps(), vec![Duration::from_secs(7); 2]);
    let sets: Vec<_> = f
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.operation == Operation::SetPresence)
        .collect();
    assert_eq!(
        sets.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 429, 200]
    );
    assert!(sets[2].at.duration_since(sets[0].at) >= Duration::from_secs(14));
    assert_eq!(
        f.emu.presence_of(ALICE).unwrap(),
        PresencePair::new("Busy", "InACall")
    );

    // Still throttled after max_retries: a Throttled error.
    f.emu.inject(Fault::TooManyRequests {
        retry_after: Duration::from_secs(1),
        times: 100,
    });
    let e = f.graph.get_presence(&alice()).await.unwrap_err();
    assert!(
        matches!(e, GraphError::Throttled { attempts: 6, .. }),
        "{e:?}"
    );
    assert!(e.is_transient());
}

#[tokio::test]
async fn a_retry_after_past_the_max_wait_is_not_waited_for() {
    let f = fx_with(EmulatorConfig::default(), |c| {
        c.with_retry_policy(RetryPolicy::retries(5).with_max_wait(Duration::from_secs(10)))
    })
    .await;
    f.emu.inject(Fault::TooManyRequests {
        retry_after: Duration::from_secs(6),
        times: 5,
    });
    let e = f
        .graph
        .set_presence(&alice(), PresenceState::BusyInACall, HOUR)
        .await
        .unwrap_err();
    // One wait of 6 s fits in 10 s, a second would not: the error comes back with the
    // server's Retry-After for the caller to decide.
    assert_eq!(f.clock.sleeps(), vec![Duration::from_secs(6)]);
    assert!(
        matches!(
            e,
            GraphError::Throttled {
                attempts: 2,
                retry_after: Some(r),
                ..
            } if r == Duration::from_secs(6)
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn throttled_sub_requests_in_a_batch_are_retried() {
    for outer_424 in [false, true] {
        let f = fx_with(
            EmulatorConfig {
                batch_424_on_failure: outer_424,
                ..EmulatorConfig::default()
            },
            |c| c.with_retry_policy(retrying(5)),
        )
        .await;
        let users: Vec<ObjectId> = (1..=25)
            .map(|i| ObjectId::parse(&format!("dddddddd-0000-4000-8000-{i:012}")).unwrap())
            .collect();
        for u in &users {
            f.emu.add_user(&format!("{}@contoso.com", u), u.as_str());
        }
        f.emu.inject(Fault::TooManyRequests {
            retry_after: Duration::from_secs(3),
            times: 2,
        });
        let ops: Vec<PresenceOperation> = users
            .iter()
            .map(|u| PresenceOperation::SetPresence {
                user: u.clone(),
                state: PresenceState::BusyInACall,
                expiration: HOUR,
            })
            .collect();
        let results = f.graph.batch(ops.clone()).await;
        assert_eq!(results.len(), 25);
        for ((op, r), want) in results.iter().zip(&ops) {
            assert_eq!(op, want, "results in input order");
            assert_eq!(r.as_ref().unwrap(), &OperationOutcome::Done);
        }
        for u in &users {
            assert_eq!(f.emu.presence_of(u.as_str()).unwrap().availability, "Busy");
        }
        // 25 ops → batches of 20 and 5, plus one retry batch of the 2 throttled ones.
        assert_eq!(f.emu.count(Operation::Batch), 3, "outer 424 = {outer_424}");
        assert_eq!(f.emu.count(Operation::SetPresence), 27);
        assert_eq!(f.emu.throttled_count(), 2);
        assert_eq!(f.clock.sleeps(), vec![Duration::from_secs(3)]);
    }
}

#[tokio::test]
async fn server_errors_back_off_exponentially_with_jitter() {
    let f = fx_retrying(5).await;
    f.emu.inject(Fault::ServiceUnavailable { times: 3 });
    f.graph
        .set_presence(&alice(), PresenceState::Away, None)
        .await
        .unwrap();
    let sleeps = f.clock.sleeps();
    assert_eq!(sleeps.len(), 3);
    // base 500 ms: steps of 0.5, 1, 2 s, each between half and all of the step.
    for (i, s) in sleeps.iter().enumerate() {
        let step = Duration::from_millis(500) * 2u32.pow(i as u32);
        assert!(*s >= step / 2 && *s <= step, "retry {i}: {s:?}");
    }

    // A 503 that says when to come back is retried then, not after a backoff.
    let f = fx_retrying(5).await;
    f.emu.inject(Fault::ServiceUnavailableRetryAfter {
        retry_after: Duration::from_secs(5),
        times: 1,
    });
    f.graph.get_presence(&alice()).await.unwrap();
    assert_eq!(f.clock.sleeps(), vec![Duration::from_secs(5)]);

    let f = fx_with(EmulatorConfig::default(), |c| {
        c.with_retry_policy(retrying(2))
    })
    .await;
    f.emu.inject(Fault::ServiceUnavailable { times: 10 });
    let e = f.graph.get_presence(&alice()).await.unwrap_err();
    assert!(
        matches!(
            e,
            GraphError::Server {
                status: 503,
                attempts: 3,
                ..
            }
        ),
        "{e:?}"
    );
}

#[tokio::test]
async fn without_max_retries_a_failed_call_returns_its_error_at_once() {
    let f = fx_with(EmulatorConfig::default(), |c| {
        c.with_request_timeout(Duration::from_millis(300))
    })
    .await;
    f.graph.token_check().await.unwrap();

    // 429: the server's Retry-After comes back in the error, nothing waited.
    f.emu.inject(Fault::TooManyRequests {
        retry_after: Duration::from_secs(7),
        times: 1,
    });
    let e = f
        .graph
        .set_presence(&alice(), PresenceState::BusyInACall, HOUR)
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            GraphError::Throttled {
                attempts: 1,
                retry_after: Some(r),
                ..
            } if r == Duration::from_secs(7)
        ),
        "{e:?}"
    );
    assert!(e.is_transient());
    assert_eq!(e.retry_after(), Some(Duration::from_secs(7)));
    assert_eq!(e.to_string(), "setPresence: throttled (429), retry after 7 s; lower the request rate or the request budget");
    assert_eq!(f.emu.count(Operation::SetPresence), 1);

    // 5xx: a transient server error, no Retry-After from this server.
    f.emu.inject(Fault::ServiceUnavailable { times: 1 });
    let e = f.graph.get_presence(&alice()).await.unwrap_err();
    assert!(
        matches!(
            e,
            GraphError::Server {
                status: 503,
                attempts: 1,
                retry_after: None,
                ..
            }
        ),
        "{e:?}"
    );
    assert!(e.is_transient());
    // A 503 with Retry-After passes it on.
    f.emu.inject(Fault::ServiceUnavailableRetryAfter {
        retry_after: Duration::from_secs(4),
        times: 1,
    });
    let e = f.graph.get_presence(&alice()).await.unwrap_err();
    assert!(matches!(e, GraphError::Server { status: 503, .. }), "{e:?}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(4)));

    // Timeout: a transient transport error after one request timeout.
    f.emu.inject(Fault::Delay {
        delay: Duration::from_secs(2),
        times: 1,
    });
    let e = f.graph.get_presence(&alice()).await.unwrap_err();
    assert!(
        matches!(e, GraphError::Transport { attempts: 1, .. }),
        "{e:?}"
    );
    assert!(e.is_transient());

    // $batch: a throttled sub-request fails alone, with its Retry-After; the rest go through.
    f.emu.inject(Fault::TooManyRequests {
        retry_after: Duration::from_secs(3),
        times: 1,
    });
    let ops = vec![
        PresenceOperation::SetPresence {
            user: alice(),
            state: PresenceState::Away,
            expiration: HOUR,
        },
        PresenceOperation::SetPresence {
            user: ObjectId::parse(BOB).unwrap(),
            state: PresenceState::Away,
            expiration: HOUR,
        },
    ];
    let results = f.graph.batch(ops).await;
    let throttled: Vec<_> = results.iter().filter(|(_, r)| r.is_err()).collect();
    assert_eq!(throttled.len(), 1, "{results:?}");
    let e = throttled[0].1.as_ref().unwrap_err();
    assert_eq!(e.retry_after(), Some(Duration::from_secs(3)), "{e:?}");
    assert_eq!(f.emu.count(Operation::Batch), 1);

    // A 401 still fetches a new token once: that is not a retry.
    f.emu.expire_all_tokens();
    f.graph.get_presence(&alice()).await.unwrap();
    assert_eq!(f.emu.tokens_issued(), 2);

    assert!(f.clock.sleeps().is_empty(), "{:?}", f.clock.sleeps());
}

#[tokio::test]
async fn timeouts_are_retried() {
    let f = fx_with(EmulatorConfig::default(), |c| {
        c.with_request_timeout(Duration::from_millis(300))
            .with_retry_policy(retrying(5))
    })
    .await;
    f.graph.token_check().await.unwrap();
    f.emu.inject(Fault::Delay {
        delay: Duration::from_secs(2),
        times: 1,
    });
    f.graph.get_presence(&alice()).await.unwrap();
    assert_eq!(f.clock.sleeps().len(), 1, "one backoff after the timeout");
    // The abandoned first attempt is dropped by the server before it is logged; the retry is.
    assert_eq!(
        f.emu
            .requests()
            .iter()
            .filter(|r| r.operation == Operation::GetPresence && r.status == 200)
            .count(),
        1
    );
}

#[tokio::test]
async fn connection_errors_give_up_after_retries() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let cfg = config_for(&emu)
        .with_graph_url("http://127.0.0.1:9/v1.0") // discard port: refused
        .with_retry_policy(retrying(2));
    let clock = ManualClock::new();
    let graph = GraphClient::with_clock(cfg, Arc::new(clock.clone())).unwrap();
    let e = graph.get_presence(&alice()).await.unwrap_err();
    assert!(
        matches!(e, GraphError::Transport { attempts: 3, .. }),
        "{e:?}"
    );
    assert_eq!(clock.sleeps().len(), 2);
}

#[tokio::test]
async fn budget_keeps_the_client_under_the_rate_limit() {
    let limit = RateLimit {
        requests: 10,
        window: Duration::from_secs(1),
    };
    let emu_cfg = EmulatorConfig {
        rate_limit: Some(limit),
        ..EmulatorConfig::default()
    };
    let f = fx_with(emu_cfg.clone(), |c| {
        c.with_request_budget(BudgetConfig::new(10, Duration::from_secs(1)))
    })
    .await;
    for _ in 0..25 {
        f.graph
            .set_presence(&alice(), PresenceState::BusyInACall, None)
            .await
            .unwrap();
    }
    assert_eq!(
        f.emu.throttled_count(),
        0,
        "the budget waited instead of hitting the limit"
    );
    assert_eq!(f.emu.count(Operation::SetPresence), 25);
    assert!(
        f.clock.elapsed() >= Duration::from_secs(2),
        "25 requests at 10/s need two waits"
    );

    // The same load without a matching budget does run into the limit (and, retrying,
    // gets through).
    let f = fx_with(emu_cfg, |c| c.with_retry_policy(retrying(5))).await;
    for _ in 0..25 {
        f.graph
            .set_presence(&alice(), PresenceState::BusyInACall, None)
            .await
            .unwrap();
    }
    assert!(f.emu.throttled_count() > 0);
}

#[tokio::test]
async fn presence_reads_are_split_by_650() {
    let f = fx().await;
    let mut ids: Vec<ObjectId> = (0..1300)
        .map(|i| ObjectId::parse(&format!("eeeeeeee-0000-4000-8000-{i:012}")).unwrap())
        .collect();
    ids.push(alice());
    f.graph
        .set_presence(&alice(), PresenceState::DoNotDisturbPresenting, None)
        .await
        .unwrap();
    let ps = f.graph.get_presences(&ids).await.unwrap();
    assert_eq!(ps.len(), 1301);
    assert!(ps[1300].is_availability("donotdisturb"));
    let counts: Vec<_> = f
        .emu
        .requests()
        .iter()
        .filter(|r| r.operation == Operation::GetPresencesByUserId)
        .map(|r| r.id_count)
        .collect();
    assert_eq!(counts, [Some(650), Some(650), Some(1)]);
}

#[tokio::test]
async fn invalid_pairs_and_durations_are_refused_before_sending() {
    let f = fx().await;
    for bad in ["Offline/OffWork", "Busy/InAMeeting", "Busy/Busy", "brb"] {
        assert!(
            matches!(
                bad.parse::<PresenceState>(),
                Err(GraphError::InvalidInput(_))
            ),
            "{bad}"
        );
    }
    let state: PresenceState = "busy".parse().unwrap();
    for d in [Duration::from_secs(299), Duration::from_secs(4 * 3600 + 1)] {
        let e = f
            .graph
            .set_presence(&alice(), state, Some(d))
            .await
            .unwrap_err();
        assert!(matches!(e, GraphError::InvalidInput(_)), "{e}");
    }
    // In a batch an invalid operation fails alone.
    let r = f
        .graph
        .batch(vec![
            PresenceOperation::SetPresence {
                user: alice(),
                state,
                expiration: Some(Duration::from_secs(60)),
            },
            PresenceOperation::GetPresence { user: alice() },
        ])
        .await;
    assert!(matches!(r[0].1, Err(GraphError::InvalidInput(_))));
    assert!(matches!(r[1].1, Ok(OperationOutcome::Presence(_))));
    assert_eq!(
        f.emu.count(Operation::SetPresence),
        0,
        "nothing invalid was sent"
    );
}

#[tokio::test]
async fn clear_presence_404_means_already_cleared() {
    let f = fx().await;
    assert_eq!(
        f.graph.clear_presence(&alice()).await.unwrap(),
        ClearOutcome::AlreadyCleared
    );
    f.graph
        .set_presence(&alice(), PresenceState::Away, None)
        .await
        .unwrap();
    assert_eq!(
        f.graph.clear_presence(&alice()).await.unwrap(),
        ClearOutcome::Cleared
    );
    assert_eq!(f.emu.presence_of(ALICE).unwrap().availability, "Offline");
    let r = f
        .graph
        .batch(vec![PresenceOperation::ClearPresence { user: alice() }])
        .await;
    assert_eq!(r[0].1, Ok(OperationOutcome::AlreadyCleared));
}

#[tokio::test]
async fn entra_errors_come_with_advice() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let c = emu.config();
    let cases: Vec<(GraphConfig, u32, &str)> = vec![
        (
            config_for(&emu).with_credential(Credential::Secret("the-secret-id".into())),
            7000215,
            "client secret is wrong",
        ),
        (
            config_as(&emu, &c.tenant_id, "99999999-2222-4333-8444-555555555555"),
            700016,
            "application not found in tenant",
        ),
        (
            config_as(&emu, "nosuch.onmicrosoft.com", &c.client_id),
            90002,
            "tenant not found",
        ),
    ];
    for (cfg, code, advice) in cases {
        let e = GraphClient::new(cfg)
            .unwrap()
            .token_check()
            .await
            .unwrap_err();
        match &e {
            GraphError::Token {
                codes,
                advice: a,
                trace_id,
                ..
            } => {
                assert_eq!(codes, &[code]);
                assert!(a.contains(advice), "{a}");
                assert!(trace_id.is_some());
            }
            other => panic!("{other:?}"),
        }
        assert!(e.to_string().contains(&format!("AADSTS{code}")), "{e}");
        assert!(!format!("{e:?}{e}").contains("the-secret-id"));
    }
    let expired = GraphEmulator::start(EmulatorConfig {
        secret_expired: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let e = GraphClient::new(config_for(&expired))
        .unwrap()
        .token_check()
        .await
        .unwrap_err();
    assert!(e.to_string().contains("client secret expired"), "{e}");
}

#[tokio::test]
async fn guest_upns_are_encoded_resolved_and_cached() {
    let f = fx().await;
    let id = f.graph.resolve_user(CAROL_GUEST).await.unwrap();
    assert_eq!(id.as_str(), "cccccccc-0000-4000-8000-000000000003");
    let lookups: Vec<_> = f
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.operation == Operation::GetUser)
        .collect();
    assert_eq!(lookups.len(), 1);
    assert!(
        lookups[0]
            .path
            .contains("carol_fabrikam.com%23EXT%23@contoso.onmicrosoft.com"),
        "{}",
        lookups[0].path
    );
    assert!(lookups[0].path.contains("select=id"));
    // Cached (case-insensitively), and object ids pass through without a lookup.
    assert_eq!(
        f.graph
            .resolve_user(&CAROL_GUEST.to_uppercase())
            .await
            .unwrap(),
        id
    );
    assert_eq!(f.graph.resolve_user(BOB).await.unwrap().as_str(), BOB);
    assert_eq!(f.emu.count(Operation::GetUser), 1);
    // What a resolve would give without a request, or None.
    assert_eq!(
        f.graph.cached_user(&CAROL_GUEST.to_uppercase()),
        Some(id.clone())
    );
    assert_eq!(f.graph.cached_user(BOB).unwrap().as_str(), BOB);
    assert_eq!(f.graph.cached_user("nobody@contoso.com"), None);
    // The cache can be saved and restored by the caller.
    let saved = f.graph.cached_users();
    assert_eq!(saved.get(CAROL_GUEST), Some(&id));
    assert_eq!(saved.len(), 1, "object ids are not cached: {saved:?}");
    let g = GraphClient::new(config_for(&f.emu)).unwrap();
    g.seed_user_cache(saved.iter().map(|(upn, id)| (upn.to_owned(), id.clone())));
    assert_eq!(g.resolve_user(CAROL_GUEST).await.unwrap(), id);
    assert_eq!(f.emu.count(Operation::GetUser), 1);
    // Unknown users are a 404 that names the operation.
    let e = f
        .graph
        .resolve_user("nobody@contoso.com")
        .await
        .unwrap_err();
    assert!(
        matches!(
            e,
            GraphError::NotFound {
                operation: "getUser",
                ..
            }
        ),
        "{e}"
    );
}

#[tokio::test]
async fn forbidden_names_the_missing_permission_and_is_not_retried() {
    let f = fx_with(
        EmulatorConfig {
            app_roles: vec!["User.ReadBasic.All".into()],
            ..EmulatorConfig::default()
        },
        |c| c,
    )
    .await;
    let e = f
        .graph
        .set_presence(&alice(), PresenceState::Away, None)
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("Presence.ReadWrite.All") && e.to_string().contains("admin consent"),
        "{e}"
    );
    let e = f.graph.get_presences(&[alice()]).await.unwrap_err();
    assert!(
        matches!(
            e,
            GraphError::Forbidden {
                permission: "Presence.Read.All",
                ..
            }
        ),
        "{e}"
    );
    let e = f.graph.resolve_user("alice@contoso.com").await.unwrap_err();
    assert!(e.to_string().contains("User.Read.All"), "{e}");
    assert_eq!(f.emu.count(Operation::SetPresence), 1);
    assert!(f.clock.sleeps().is_empty());
}

#[tokio::test]
async fn bad_request_is_not_retried() {
    let f = fx().await;
    let bad = StatusMessageExpiry {
        date_time: "2026-11-23T18:00:00Z".into(),
        time_zone: "UTC".into(),
    };
    let e = f
        .graph
        .set_status_message(&alice(), "on a call", Some(bad))
        .await
        .unwrap_err();
    assert!(matches!(e, GraphError::BadRequest { .. }), "{e}");
    assert!(!e.is_transient());
    assert_eq!(f.emu.count(Operation::SetStatusMessage), 1);
    assert!(f.clock.sleeps().is_empty());
}

#[tokio::test]
async fn status_message_and_preferred_presence() {
    let f = fx().await;
    let exp = StatusMessageExpiry::at_utc(std::time::SystemTime::now() + Duration::from_secs(3600));
    f.graph
        .set_status_message(&alice(), "On the phone", Some(exp.clone()))
        .await
        .unwrap();
    let m = f.emu.status_message(ALICE).unwrap();
    assert_eq!(
        (m.content.as_str(), m.expiry),
        ("On the phone", Some((exp.date_time, "UTC".to_owned())))
    );
    f.graph
        .set_presence(&alice(), PresenceState::Away, HOUR)
        .await
        .unwrap();
    let p = f.graph.get_presence(&alice()).await.unwrap();
    assert_eq!(p.status_message.as_deref(), Some("On the phone"));

    f.graph
        .set_user_preferred_presence(
            &alice(),
            graph_presence::PreferredPresence::DoNotDisturb,
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        f.emu.presence_of(ALICE).unwrap().availability,
        "DoNotDisturb"
    );
    f.graph
        .clear_user_preferred_presence(&alice())
        .await
        .unwrap();
    assert_eq!(f.emu.presence_of(ALICE).unwrap().availability, "Away");
}

#[tokio::test]
async fn re_sending_at_the_refresh_interval_holds_available_past_its_timeout() {
    let f = fx().await;
    let interval = refresh_interval(PresenceState::Available, HOUR);
    assert!(interval < Duration::from_secs(300));
    for _ in 0..4 {
        f.graph
            .set_presence(&alice(), PresenceState::Available, HOUR)
            .await
            .unwrap();
        f.clock.advance(interval);
    }
    // 16 minutes in: without re-sends it would have faded to Away.
    assert_eq!(
        f.emu.presence_of(ALICE).unwrap(),
        PresencePair::new("Available", "Available")
    );
    assert_eq!(f.emu.count(Operation::SetPresence), 4);
    // Without a re-send the same state fades.
    f.clock.advance(Duration::from_secs(300));
    assert_eq!(
        f.emu.presence_of(ALICE).unwrap(),
        PresencePair::new("Available", "AvailableInactive")
    );
}

#[tokio::test]
async fn secrets_and_tokens_stay_out_of_debug_output() {
    let f = fx().await;
    f.graph.token_check().await.unwrap();
    let secret = f.emu.config().client_secret.clone();
    let cfg = config_for(&f.emu);
    for text in [format!("{cfg:?}"), format!("{:?}", f.graph)] {
        assert!(!text.contains(&secret), "{text}");
        assert!(!text.contains("emu."), "no token in {text}");
    }
}

#[tokio::test]
async fn certificate_credential_gets_a_token() {
    let key = include_str!("fixtures/test-app.key.pem");
    let cert_pem = include_str!("fixtures/test-app.cert.pem");
    let cert = graph_presence::CertificateCredential::from_pem(key, cert_pem).unwrap();
    let emu = GraphEmulator::start(EmulatorConfig {
        certificate_thumbprints: vec![cert.thumbprint_sha256().to_owned()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let cfg = config_for(&emu).with_credential(Credential::Certificate(cert));
    let graph = GraphClient::new(cfg.clone()).unwrap();
    graph.token_check().await.unwrap();
    graph
        .set_presence(&alice(), PresenceState::Away, None)
        .await
        .unwrap();
    assert_eq!(emu.tokens_issued(), 1);
    assert!(!format!("{cfg:?}").contains("PRIVATE KEY"));

    // A certificate the app registration does not know is refused with advice.
    let other = GraphEmulator::start(EmulatorConfig {
        certificate_thumbprints: vec!["someone-else".into()],
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let cfg2 = config_for(&other).with_credential(cfg.credential().clone());
    let e = GraphClient::new(cfg2)
        .unwrap()
        .token_check()
        .await
        .unwrap_err();
    assert!(
        e.to_string().contains("AADSTS700027") && e.to_string().contains("certificate"),
        "{e}"
    );
}

/// The engine spawns these futures on a multi-threaded runtime: they must be `Send`.
#[test]
fn client_futures_are_send() {
    fn send<T: Send>(_: &T) {}
    fn check(g: &GraphClient, u: &ObjectId) {
        send(g);
        send(&g.token_check());
        send(&g.resolve_user("a@b.c"));
        send(&g.set_presence(u, PresenceState::Away, None));
        send(&g.clear_presence(u));
        send(&g.get_presences(&[]));
        send(&g.batch(Vec::new()));
    }
    let _ = check;
}

#[tokio::test]
async fn many_tasks_share_one_token() {
    let f = fx().await;
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let g = f.graph.clone();
        tasks.push(tokio::spawn(async move {
            g.set_presence(&alice(), PresenceState::BusyInACall, None)
                .await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(f.emu.tokens_issued(), 1, "token fetches are single-flight");
}

#[tokio::test]
async fn resolve_users_reports_each_failure() {
    let f = fx().await;
    let r = f
        .graph
        .resolve_users([
            "alice@contoso.com",
            "nobody@contoso.com",
            BOB,
            "$weird@contoso.com",
        ])
        .await;
    assert_eq!(r[0].1.as_ref().unwrap(), &alice());
    assert!(matches!(r[1].1, Err(GraphError::NotFound { .. })));
    assert_eq!(r[2].1.as_ref().unwrap().as_str(), BOB);
    // '$' UPNs use the key syntax /users('$…') and reach the directory.
    assert!(matches!(r[3].1, Err(GraphError::NotFound { .. })));
    f.emu
        .add_user("$weird@contoso.com", "ffffffff-0000-4000-8000-000000000006");
    let id = f.graph.resolve_user("$weird@contoso.com").await.unwrap();
    assert_eq!(id.as_str(), "ffffffff-0000-4000-8000-000000000006");
    let last = f.emu.requests().pop().unwrap();
    assert!(
        last.path.starts_with("/users('$weird@contoso.com')"),
        "{}",
        last.path
    );
}
