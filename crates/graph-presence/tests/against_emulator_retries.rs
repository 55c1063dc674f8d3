//! Tokens, throttling, backoff, timeouts and the request budget against the
//! Graph emulator over real HTTP on loopback. Waits (Retry-After, backoff,
//! budget) run on a virtual clock that also moves the emulator's clock, so
//! nothing here sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod emu_fixture;

use emu_fixture::*;

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
