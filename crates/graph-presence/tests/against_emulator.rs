//! Client behaviour against the Graph emulator over real HTTP on loopback:
//! reading presence, refusals, users, credentials. Waits run on a virtual
//! clock that also moves the emulator's clock, so nothing here sleeps.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod emu_fixture;

use emu_fixture::*;

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
