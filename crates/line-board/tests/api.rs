//! The JSON API, the page and the access rule over real HTTP on loopback.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use axum::routing::get;
use axum::Router;
use common::{board, client, now, serve};
use line_board::{
    check_bind, protect, Access, Counterparty, Health, HealthKind, LineState, LineUpdate,
    QueueMember, CONTENT_SECURITY_POLICY,
};
use serde_json::Value;

fn extensions(json: &Value) -> Vec<&str> {
    json["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["extension"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn lists_filters_and_finds_extensions() {
    let board = board(100);
    let mut busy = LineUpdate::new(LineState::Busy);
    busy.counterparty = Some(Counterparty {
        number: "+4930123".into(),
        name: Some("Dave Miller".into()),
    });
    board.record("1002", busy, now());
    let mut dnd = LineUpdate::new(LineState::Idle);
    dnd.dnd = true;
    board.record("1003", dnd, now());
    let base = serve(board, Access::open()).await;
    let get = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            let response = client().get(url).send().await.unwrap();
            let status = response.status().as_u16();
            let cache = response.headers().get("cache-control").cloned();
            (status, response.json::<Value>().await.unwrap(), cache)
        }
    };

    let (status, all, cache) = get("/api/v1/extensions").await;
    assert_eq!(status, 200);
    assert_eq!(cache.unwrap(), "no-store");
    assert_eq!(extensions(&all), ["1001", "1002", "1003"]);
    assert!(all["server_time"].as_str().unwrap().ends_with('Z'));
    let bob = &all["extensions"][1];
    assert_eq!(bob["line_state"], "busy");
    assert_eq!(bob["counterparty"]["name"], "Dave Miller");
    assert_eq!(bob["email"], "bob@contoso.com");
    assert_eq!(bob["group"], "Sales");
    assert!(bob["direction"].is_null() && bob["teams"].is_null());
    assert!(bob["since"].is_string() && bob["last_event"].is_string());
    assert_eq!(all["extensions"][0]["line_state"], "unknown");

    assert_eq!(
        extensions(&get("/api/v1/extensions?state=busy").await.1),
        ["1002"]
    );
    assert_eq!(
        extensions(&get("/api/v1/extensions?state=dnd").await.1),
        ["1003"]
    );
    assert_eq!(
        extensions(&get("/api/v1/extensions?q=ALI").await.1),
        ["1001"]
    );
    assert_eq!(
        extensions(&get("/api/v1/extensions?q=miller").await.1),
        ["1002"],
        "counterparty"
    );
    assert_eq!(
        extensions(&get("/api/v1/extensions?q=contoso").await.1).len(),
        3
    );
    assert_eq!(
        extensions(&get("/api/v1/extensions?q=100&state=idle").await.1),
        ["1003"]
    );
    assert!(extensions(&get("/api/v1/extensions?q=100&state=ringing").await.1).is_empty());
    let (status, bad, _) = get("/api/v1/extensions?state=talking").await;
    assert_eq!(status, 400);
    assert!(bad["error"].as_str().unwrap().contains("talking"), "{bad}");

    let (status, one, _) = get("/api/v1/extensions/1002").await;
    assert_eq!(status, 200);
    assert_eq!(one["extension"], "1002");
    assert_eq!(one["line_state"], "busy");
    let (status, missing, _) = get("/api/v1/extensions/4711").await;
    assert_eq!(status, 404);
    assert!(
        missing["error"].as_str().unwrap().contains("4711"),
        "{missing}"
    );
    let (status, nothing, _) = get("/api/v2/anything").await;
    assert_eq!(status, 404);
    assert!(nothing["error"].is_string());
}

#[tokio::test]
async fn an_extension_lists_its_queues() {
    let board = board(100);
    let mut agent = LineUpdate::new(LineState::Busy);
    agent.queues = vec![
        QueueMember {
            queue: "billing".into(),
            paused: false,
            reason: None,
            in_call: true,
        },
        QueueMember {
            queue: "support".into(),
            paused: true,
            reason: Some("lunch".into()),
            in_call: true,
        },
    ];
    board.record("1002", agent, now());
    let base = serve(board, Access::open()).await;
    let get = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            let response = client().get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };

    let all = get("/api/v1/extensions").await;
    assert_eq!(all["extensions"][0]["queues"], serde_json::json!([]));
    let queues = serde_json::json!([
        { "queue": "billing", "paused": false, "reason": null, "in_call": true },
        { "queue": "support", "paused": true, "reason": "lunch", "in_call": true },
    ]);
    assert_eq!(all["extensions"][1]["queues"], queues);
    assert_eq!(get("/api/v1/extensions/1002").await["queues"], queues);
    assert_eq!(
        extensions(&get("/api/v1/extensions?q=billing").await),
        ["1002"],
        "a queue's name"
    );
}

#[tokio::test]
async fn an_extension_shows_the_teams_read_and_who_set_dnd() {
    let board = board(100);
    let mut on = LineUpdate::new(LineState::Idle);
    on.dnd = true;
    board.record("1001", on.clone(), now());
    board.record("1002", on, now());
    board.set_teams_read("1001", Some("DoNotDisturb/DoNotDisturb"));
    board.set_dnd_by_teams("1001", true);
    let base = serve(board, Access::open()).await;
    let get = |path: &str| {
        let url = format!("{base}{path}");
        async move {
            let response = client().get(url).send().await.unwrap();
            assert_eq!(response.status(), 200);
            response.json::<Value>().await.unwrap()
        }
    };

    let alice = get("/api/v1/extensions/1001").await;
    assert_eq!(alice["teams_read"], "DoNotDisturb/DoNotDisturb", "{alice}");
    assert_eq!(alice["dnd_by"], "teams", "{alice}");
    let all = get("/api/v1/extensions").await;
    let bob = &all["extensions"][1];
    assert_eq!(
        (bob["dnd_by"].as_str(), bob["teams_read"].is_null()),
        (Some("pbx"), true)
    );
    let carol = &all["extensions"][2];
    assert!(carol["dnd_by"].is_null(), "DND off: {carol}");
}

#[tokio::test]
async fn health_endpoint() {
    let board = board(100);
    board.set_health(
        vec![Health {
            name: "sip".into(),
            kind: HealthKind::Source,
            ok: true,
            detail: "registered; 3 of 3 subscriptions active".into(),
            last_success: Some(now()),
        }],
        vec![Health {
            name: "teams".into(),
            kind: HealthKind::Sink,
            ok: false,
            detail: "Graph refuses the token".into(),
            last_success: None,
        }],
    );
    let base = serve(board, Access::open()).await;
    let health: Value = client()
        .get(format!("{base}/api/v1/health"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(health["sources"][0]["name"], "sip");
    assert_eq!(health["sources"][0]["kind"], "source");
    assert_eq!(health["sinks"][0]["ok"], false);
    assert!(health["sinks"][0]["last_success"].is_null());
    assert_eq!(health["stale_after_seconds"], 90);
    assert!(health["server_time"].is_string());
}

#[tokio::test]
async fn the_page_and_its_assets_carry_the_security_headers() {
    let base = serve(board(100), Access::open()).await;
    for (path, kind) in [
        ("/", "text/html"),
        ("/?view=wall", "text/html"),
        ("/app.js", "text/javascript"),
        ("/app.css", "text/css"),
    ] {
        let response = client().get(format!("{base}{path}")).send().await.unwrap();
        assert_eq!(response.status(), 200, "{path}");
        let headers = response.headers();
        assert!(
            headers["content-type"].to_str().unwrap().starts_with(kind),
            "{path}"
        );
        assert_eq!(headers["content-security-policy"], CONTENT_SECURITY_POLICY);
        assert_eq!(headers["x-content-type-options"], "nosniff");
        assert_eq!(headers["referrer-policy"], "no-referrer");
    }
    let page = client()
        .get(format!("{base}/"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(page, line_board::assets::INDEX_HTML);
    // Open access: no login needed.
    let login = client().get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(login.status(), 303);
}

#[tokio::test]
async fn a_token_is_needed_as_bearer_or_session_cookie() {
    let base = serve(board(100), Access::new(Some("s3cret-token"))).await;
    let api = format!("{base}/api/v1/extensions");

    let denied = client().get(&api).send().await.unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(
        denied.headers()["content-security-policy"],
        CONTENT_SECURITY_POLICY
    );
    let body: Value = denied.json().await.unwrap();
    let why = body["error"].as_str().unwrap();
    assert!(
        why.contains("Authorization: Bearer") && why.contains("/login"),
        "{why}"
    );
    for path in [
        "/api/v1/health",
        "/api/v1/events",
        "/api/v1/extensions/1001",
        "/api/v1/nope",
    ] {
        let status = client()
            .get(format!("{base}{path}"))
            .send()
            .await
            .unwrap()
            .status();
        assert_eq!(status, 401, "{path}");
    }
    let wrong = client()
        .get(&api)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status(), 401);
    let ok = client()
        .get(&api)
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    // The page sends a person to the login form.
    let page = client().get(format!("{base}/")).send().await.unwrap();
    assert_eq!(page.status(), 303);
    assert_eq!(page.headers()["location"], "/login");
    assert_eq!(
        page.headers()["content-security-policy"],
        CONTENT_SECURITY_POLICY
    );
    let form = client().get(format!("{base}/login")).send().await.unwrap();
    assert_eq!(form.status(), 200);
    let html = form.text().await.unwrap();
    assert!(
        html.contains(r#"name="token""#) && !html.contains("<script"),
        "{html}"
    );
    // The assets are open (the login form uses the style sheet).
    let css = client()
        .get(format!("{base}/app.css"))
        .send()
        .await
        .unwrap();
    assert_eq!(css.status(), 200);

    let failed = client()
        .post(format!("{base}/login"))
        .form(&[("token", "guess")])
        .send()
        .await
        .unwrap();
    assert_eq!(failed.status(), 401);
    assert!(failed.headers().get("set-cookie").is_none());
    assert!(failed.text().await.unwrap().contains("<form"));

    let logged_in = client()
        .post(format!("{base}/login"))
        .form(&[("token", "s3cret-token")])
        .send()
        .await
        .unwrap();
    assert_eq!(logged_in.status(), 303);
    assert_eq!(logged_in.headers()["location"], "/");
    let cookie = logged_in.headers()["set-cookie"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        cookie.contains("HttpOnly")
            && cookie.contains("SameSite=Strict")
            && cookie.contains("Path=/")
    );
    assert!(
        !cookie.contains("s3cret-token"),
        "the cookie is not the token"
    );
    let pair = cookie.split(';').next().unwrap().to_owned();
    assert!(pair.starts_with("blf_session="));

    let with_cookie = client()
        .get(&api)
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(with_cookie.status(), 200);
    let page = client()
        .get(format!("{base}/"))
        .header("cookie", &pair)
        .send()
        .await
        .unwrap();
    assert_eq!(page.status(), 200);
    let forged = client()
        .get(&api)
        .header("cookie", "blf_session=deadbeef")
        .send()
        .await
        .unwrap();
    assert_eq!(forged.status(), 401);
}

#[tokio::test]
async fn protect_puts_other_routes_behind_the_same_rule() {
    let access = Access::new(Some("s3cret-token"));
    let metrics = protect(
        Router::new().route("/metrics", get(|| async { "# EOF\n" })),
        &access,
    );
    let open = Router::new().route("/healthz", get(|| async { "ok" }));
    let router = line_board::with_security_headers(metrics.merge(open));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

    let denied = client()
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status(), 401);
    assert_eq!(denied.headers()["x-content-type-options"], "nosniff");
    assert!(denied.json::<Value>().await.unwrap()["error"].is_string());
    let ok = client()
        .get(format!("{base}/metrics"))
        .bearer_auth("s3cret-token")
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    let healthz = client()
        .get(format!("{base}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(healthz.status(), 200);
}

#[test]
fn a_public_bind_needs_a_token() {
    let any = "0.0.0.0:8080".parse().unwrap();
    let refused = check_bind(any, None).unwrap_err().to_string();
    assert!(
        refused.contains("HTTP_TOKEN") && refused.contains("127.0.0.1"),
        "{refused}"
    );
    assert!(check_bind(any, Some("s3cret-token")).is_ok());
    assert!(check_bind("127.0.0.1:8080".parse().unwrap(), None).is_ok());
}

#[test]
fn the_openapi_document_names_every_field_and_endpoint() {
    let openapi = include_str!("../openapi.yaml");
    let ext =
        serde_json::to_value(line_board::Extension::listed(line_board::Listing::new("1"))).unwrap();
    let health = serde_json::to_value(Health {
        name: "sip".into(),
        kind: HealthKind::Source,
        ok: true,
        detail: String::new(),
        last_success: None,
    })
    .unwrap();
    for key in ext
        .as_object()
        .unwrap()
        .keys()
        .chain(health.as_object().unwrap().keys())
    {
        assert!(
            openapi.contains(&format!("{key}:")),
            "{key} is not in openapi.yaml"
        );
    }
    for path in [
        "  /:",
        "  /app.js:",
        "  /app.css:",
        "  /login:",
        "  /api/v1/extensions:",
        "  /api/v1/extensions/{ext}:",
        "  /api/v1/health:",
        "  /api/v1/events:",
    ] {
        assert!(openapi.contains(path), "{path} is not in openapi.yaml");
    }
}
