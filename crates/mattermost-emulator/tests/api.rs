//! The emulator keeps the documented rules: tokens, permissions, errors,
//! rate-limit headers, faults, and the request log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use mattermost_emulator::{EmulatorConfig, Fault, MattermostEmulator, RateLimit};
use serde_json::{json, Value};

async fn call(
    emu: &MattermostEmulator,
    method: reqwest::Method,
    path: &str,
    token: &str,
    body: Option<Value>,
) -> (u16, reqwest::header::HeaderMap, String) {
    let mut req = reqwest::Client::new()
        .request(method, format!("{}{path}", emu.url()))
        .bearer_auth(token);
    if let Some(b) = body {
        req = req.json(&b);
    }
    let r = req.send().await.unwrap();
    let (code, headers) = (r.status().as_u16(), r.headers().clone());
    (code, headers, r.text().await.unwrap())
}

const ALICE: &str = "alice0000000000000000000a";

#[tokio::test(flavor = "multi_thread")]
async fn status_custom_status_and_permissions() {
    let emu = MattermostEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let (code, _, body) = call(
        &emu,
        reqwest::Method::GET,
        "/api/v4/users/email/alice@contoso.com",
        "admin-token",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(serde_json::from_str::<Value>(&body).unwrap()["id"], ALICE);
    let (code, _, body) = call(
        &emu,
        reqwest::Method::GET,
        "/api/v4/users/email/nobody@contoso.com",
        "admin-token",
        None,
    )
    .await;
    assert_eq!(code, 404);
    assert!(body.contains("app.user.missing_account.const"), "{body}");
    let (code, _, body) = call(
        &emu,
        reqwest::Method::GET,
        "/api/v4/users/me",
        "wrong",
        None,
    )
    .await;
    assert_eq!(code, 401);
    assert!(
        body.contains("api.context.session_expired.app_error"),
        "{body}"
    );

    let status = format!("/api/v4/users/{ALICE}/status");
    let (code, _, body) = call(&emu, reqwest::Method::GET, &status, "admin-token", None).await;
    assert_eq!(
        (
            code,
            serde_json::from_str::<Value>(&body).unwrap()["status"].clone()
        ),
        (200, json!("offline"))
    );
    let dnd = json!({"user_id": ALICE, "status": "dnd", "dnd_end_time": 0});
    let (code, _, _) = call(
        &emu,
        reqwest::Method::PUT,
        &status,
        "member-token",
        Some(dnd.clone()),
    )
    .await;
    assert_eq!(code, 403, "a member bot may not change another user");
    let (code, _, body) = call(
        &emu,
        reqwest::Method::PUT,
        &status,
        "admin-token",
        Some(dnd),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    assert_eq!(emu.status_of("alice@contoso.com").unwrap().status, "dnd");
    assert!(emu.status_of("alice@contoso.com").unwrap().manual);
    let bad = json!({"user_id": "someone", "status": "dnd"});
    assert_eq!(
        call(
            &emu,
            reqwest::Method::PUT,
            &status,
            "admin-token",
            Some(bad)
        )
        .await
        .0,
        400
    );

    let custom = format!("/api/v4/users/{ALICE}/status/custom");
    let past = json!({"emoji": "phone", "text": "x", "expires_at": "2000-01-01T00:00:00Z"});
    assert_eq!(
        call(
            &emu,
            reqwest::Method::PUT,
            &custom,
            "admin-token",
            Some(past)
        )
        .await
        .0,
        400
    );
    let ok =
        json!({"emoji": "phone", "text": "On the phone", "expires_at": "2999-01-01T00:00:00Z"});
    assert_eq!(
        call(&emu, reqwest::Method::PUT, &custom, "admin-token", Some(ok))
            .await
            .0,
        200
    );
    let (_, _, body) = call(
        &emu,
        reqwest::Method::GET,
        &format!("/api/v4/users/{ALICE}"),
        "admin-token",
        None,
    )
    .await;
    let props: Value = serde_json::from_str(&body).unwrap();
    let stored: Value =
        serde_json::from_str(props["props"]["customStatus"].as_str().unwrap()).unwrap();
    assert_eq!(stored["duration"], "date_and_time");
    assert_eq!(
        call(&emu, reqwest::Method::DELETE, &custom, "admin-token", None)
            .await
            .0,
        200
    );
    assert_eq!(emu.custom_status_of("alice@contoso.com"), None);

    let (code, _, body) = call(
        &emu,
        reqwest::Method::GET,
        "/api/v4/teams/name/acme/channels/name/phones",
        "admin-token",
        None,
    )
    .await;
    assert_eq!(code, 200);
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let post = json!({"channel_id": id, "message": "hi"});
    assert_eq!(
        call(
            &emu,
            reqwest::Method::POST,
            "/api/v4/posts",
            "member-token",
            Some(post.clone())
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &emu,
            reqwest::Method::POST,
            "/api/v4/posts",
            "admin-token",
            Some(post)
        )
        .await
        .0,
        201
    );
    assert_eq!(emu.posts().len(), 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn rate_limit_faults_outage_and_the_log() {
    let config = EmulatorConfig {
        rate_limit: Some(RateLimit {
            requests: 2,
            window: Duration::from_secs(30),
        }),
        ..EmulatorConfig::default()
    };
    let emu = MattermostEmulator::start(config).await.unwrap();
    let (code, h, _) = call(
        &emu,
        reqwest::Method::GET,
        "/api/v4/users/me",
        "admin-token",
        None,
    )
    .await;
    assert_eq!(code, 200);
    assert_eq!(h["x-ratelimit-limit"], "2");
    assert_eq!(h["x-ratelimit-remaining"], "1");
    call(
        &emu,
        reqwest::Method::GET,
        "/api/v4/users/me",
        "admin-token",
        None,
    )
    .await;
    let (code, h, body) = call(
        &emu,
        reqwest::Method::GET,
        "/api/v4/users/me",
        "admin-token",
        None,
    )
    .await;
    assert_eq!((code, body.as_str()), (429, "limit exceeded\n"));
    assert_eq!(h["retry-after"], "30");

    let emu = MattermostEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    emu.fail_next(Fault::RateLimited {
        reset: Duration::from_millis(1500),
    });
    emu.fail_next(Fault::Forbidden);
    emu.fail_next(Fault::ServerError(503));
    let (code, h, _) = call(
        &emu,
        reqwest::Method::GET,
        "/api/v4/users/me",
        "admin-token",
        None,
    )
    .await;
    assert_eq!((code, h["x-ratelimit-reset"].to_str().unwrap()), (429, "2"));
    assert_eq!(
        call(
            &emu,
            reqwest::Method::GET,
            "/api/v4/users/me",
            "admin-token",
            None
        )
        .await
        .0,
        403
    );
    assert_eq!(
        call(
            &emu,
            reqwest::Method::GET,
            "/api/v4/users/me",
            "admin-token",
            None
        )
        .await
        .0,
        503
    );
    assert_eq!(
        call(
            &emu,
            reqwest::Method::GET,
            "/api/v4/users/me",
            "admin-token",
            None
        )
        .await
        .0,
        200
    );
    let log = emu.requests();
    assert_eq!(
        log.iter().map(|r| r.status).collect::<Vec<_>>(),
        [429, 403, 503, 200]
    );
    let emu = std::sync::Arc::new(emu);
    let waiter = {
        let emu = emu.clone();
        std::thread::spawn(move || {
            emu.wait_for(4, Duration::from_secs(30), |r| r.method == "PUT")
                .map(|(i, _)| i)
        })
    };
    let dnd = json!({"user_id": ALICE, "status": "away"});
    call(
        &emu,
        reqwest::Method::PUT,
        &format!("/api/v4/users/{ALICE}/status"),
        "admin-token",
        Some(dnd),
    )
    .await;
    assert_eq!(waiter.join().unwrap(), Some(4));

    emu.set_outage(true).await.unwrap();
    let refused = reqwest::Client::new()
        .get(format!("{}/api/v4/users/me", emu.url()))
        .send()
        .await;
    assert!(refused.is_err(), "connections are refused in an outage");
    emu.set_outage(false).await.unwrap();
    assert_eq!(
        call(
            &emu,
            reqwest::Method::GET,
            "/api/v4/users/me",
            "admin-token",
            None
        )
        .await
        .0,
        200
    );
}
