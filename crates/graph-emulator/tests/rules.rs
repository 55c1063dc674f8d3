//! The emulator's own rules, checked over real HTTP on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use graph_emulator::{EmulatorConfig, Fault, GraphEmulator, Operation, PresencePair, RateLimit};
use serde_json::{json, Value};
use std::time::Duration;

const ALICE: &str = "aaaaaaaa-0000-4000-8000-000000000001";
const MIN: Duration = Duration::from_secs(60);

struct T {
    emu: GraphEmulator,
    http: reqwest::Client,
    token: String,
}

async fn token_response(emu: &GraphEmulator, tenant: &str, form: &[(&str, &str)]) -> (u16, Value) {
    let url = format!("{}/{tenant}/oauth2/v2.0/token", emu.authority_url());
    let r = reqwest::Client::new()
        .post(url)
        .form(form)
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

async fn start(cfg: EmulatorConfig) -> T {
    let emu = GraphEmulator::start(cfg).await.unwrap();
    let c = emu.config().clone();
    let (status, body) = token_response(
        &emu,
        &c.tenant_id,
        &[
            ("grant_type", "client_credentials"),
            ("client_id", &c.client_id),
            ("client_secret", &c.client_secret),
            ("scope", "https://graph.microsoft.com/.default"),
        ],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["token_type"], "Bearer");
    assert_eq!(body["expires_in"], 3599);
    T {
        token: body["access_token"].as_str().unwrap().to_owned(),
        emu,
        http: reqwest::Client::new(),
    }
}

impl T {
    async fn post(&self, path: &str, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = self
            .http
            .post(format!("{}{path}", self.emu.base_url()))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.unwrap();
        (
            status,
            headers,
            serde_json::from_str(&text).unwrap_or(Value::Null),
        )
    }

    async fn set(&self, user: &str, a: &str, b: &str, exp: Option<&str>) -> (u16, Value) {
        let mut body =
            json!({"sessionId": self.emu.config().client_id, "availability": a, "activity": b});
        if let Some(e) = exp {
            body["expirationDuration"] = json!(e);
        }
        let (s, _, v) = self
            .post(&format!("/users/{user}/presence/setPresence"), body)
            .await;
        (s, v)
    }
}

#[tokio::test]
async fn token_endpoint_errors_have_entra_shape() {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let c = emu.config().clone();
    let scope = "https://graph.microsoft.com/.default";
    let form = |id: &str, secret: &str| {
        vec![
            ("grant_type", "client_credentials".to_owned()),
            ("client_id", id.to_owned()),
            ("client_secret", secret.to_owned()),
            ("scope", scope.to_owned()),
        ]
    };
    let cases = [
        (
            c.tenant_id.clone(),
            form(&c.client_id, "wrong"),
            401,
            "invalid_client",
            7000215,
        ),
        (
            c.tenant_id.clone(),
            form("99999999-2222-4333-8444-555555555555", &c.client_secret),
            400,
            "unauthorized_client",
            700016,
        ),
        (
            "nosuch.onmicrosoft.com".to_owned(),
            form(&c.client_id, &c.client_secret),
            400,
            "invalid_request",
            90002,
        ),
    ];
    for (tenant, f, status, error, code) in cases {
        let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let (s, body) = token_response(&emu, &tenant, &f).await;
        assert_eq!(s, status, "{body}");
        assert_eq!(body["error"], error);
        assert_eq!(body["error_codes"], json!([code]));
        assert!(body["error_description"]
            .as_str()
            .unwrap()
            .starts_with(&format!("AADSTS{code}:")));
        assert!(body["trace_id"].is_string() && body["correlation_id"].is_string());
    }
    // The tenant's domain name works as well as its id.
    let f = form(&c.client_id, &c.client_secret);
    let f: Vec<(&str, &str)> = f.iter().map(|(k, v)| (*k, v.as_str())).collect();
    assert_eq!(
        token_response(&emu, "contoso.onmicrosoft.com", &f).await.0,
        200
    );

    let expired = GraphEmulator::start(EmulatorConfig {
        secret_expired: true,
        ..EmulatorConfig::default()
    })
    .await
    .unwrap();
    let (s, body) = token_response(&expired, &c.tenant_id, &f).await;
    assert_eq!((s, body["error_codes"].clone()), (401, json!([7000222])));
    assert_eq!(emu.tokens_issued(), 1);
}

#[tokio::test]
async fn bearer_token_is_checked_with_its_expiry() {
    let t = start(EmulatorConfig::default()).await;
    let url = format!("{}/users/{ALICE}/presence", t.emu.base_url());
    let r = t.http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = t.http.get(&url).bearer_auth("forged").send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = t.http.get(&url).bearer_auth(&t.token).send().await.unwrap();
    assert_eq!(r.status(), 200);
    t.emu.advance(Duration::from_secs(3599));
    let r = t.http.get(&url).bearer_auth(&t.token).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["error"]["code"], "InvalidAuthenticationToken");
}

#[tokio::test]
async fn set_presence_validates_session_pair_duration_and_ids() {
    let t = start(EmulatorConfig::default()).await;
    for (a, b) in graph_emulator::SET_PRESENCE_PAIRS {
        assert_eq!(t.set(ALICE, a, b, None).await.0, 200, "{a}/{b}");
    }
    for (a, b) in [
        ("Offline", "OffWork"),
        ("Busy", "InAMeeting"),
        ("Busy", "Busy"),
        ("DoNotDisturb", "DoNotDisturb"),
    ] {
        assert_eq!(t.set(ALICE, a, b, None).await.0, 400, "{a}/{b}");
    }
    for (d, status) in [
        ("PT4M59S", 400),
        ("PT5M", 200),
        ("PT4H", 200),
        ("PT4H1M", 400),
        ("P1D", 400),
        ("soon", 400),
    ] {
        assert_eq!(
            t.set(ALICE, "Busy", "InACall", Some(d)).await.0,
            status,
            "{d}"
        );
    }
    let (s, _, _) = t
        .post(
            &format!("/users/{ALICE}/presence/setPresence"),
            json!({"sessionId": "another-app", "availability": "Busy", "activity": "InACall"}),
        )
        .await;
    assert_eq!(s, 400);
    // UPNs are refused on presence routes; unknown object ids are 404.
    let (s, v) = t.set("alice@contoso.com", "Busy", "InACall", None).await;
    assert_eq!(s, 400);
    assert!(v["error"]["message"]
        .as_str()
        .unwrap()
        .contains("object id"));
    assert_eq!(
        t.set(
            "dddddddd-0000-4000-8000-000000000009",
            "Busy",
            "InACall",
            None
        )
        .await
        .0,
        404
    );
}

#[tokio::test]
async fn available_fades_and_expired_session_goes_offline() {
    let t = start(EmulatorConfig::default()).await;
    assert_eq!(
        t.set(ALICE, "Available", "Available", Some("PT1H")).await.0,
        200
    );
    t.emu.advance(5 * MIN);
    assert_eq!(
        t.emu.presence_of(ALICE),
        Some(PresencePair::new("Available", "AvailableInactive"))
    );
    t.emu.advance(5 * MIN);
    let r = t
        .http
        .get(format!("{}/users/{ALICE}/presence", t.emu.base_url()))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    let v: Value = r.json().await.unwrap();
    assert_eq!(
        (v["availability"].as_str(), v["activity"].as_str()),
        (Some("Away"), Some("Away"))
    );
    // Re-sending resets the timeout.
    assert_eq!(
        t.set(ALICE, "Available", "Available", Some("PT1H")).await.0,
        200
    );
    assert_eq!(
        t.emu.presence_of(ALICE),
        Some(PresencePair::new("Available", "Available"))
    );
    // Busy with the default 5-minute expiration: gone after 5 minutes.
    assert_eq!(t.set(ALICE, "Busy", "InACall", None).await.0, 200);
    t.emu.advance(5 * MIN - Duration::from_secs(1));
    assert_eq!(t.emu.presence_of(ALICE).unwrap().availability, "Busy");
    t.emu.advance(Duration::from_secs(1));
    assert_eq!(
        t.emu.presence_of(ALICE),
        Some(PresencePair::new("Offline", "Offline"))
    );
    assert!(t.emu.app_session(ALICE).is_none());
    // clearPresence without a session is 404.
    let (s, _, _) = t
        .post(
            &format!("/users/{ALICE}/presence/clearPresence"),
            json!({"sessionId": t.emu.config().client_id}),
        )
        .await;
    assert_eq!(s, 404);
}

#[tokio::test]
async fn aggregation_follows_documented_precedence() {
    let t = start(EmulatorConfig::default()).await;
    t.emu.set_client_session(ALICE, "Busy", "InAMeeting");
    // An app Available cannot beat a client Busy; an app DoNotDisturb can.
    t.set(ALICE, "Available", "Available", Some("PT1H")).await;
    assert_eq!(t.emu.presence_of(ALICE).unwrap().availability, "Busy");
    t.set(ALICE, "DoNotDisturb", "Presenting", Some("PT1H"))
        .await;
    assert_eq!(
        t.emu.presence_of(ALICE).unwrap(),
        PresencePair::new("DoNotDisturb", "Presenting")
    );
    // The user's own choice beats every session.
    t.emu
        .set_user_preferred(ALICE, "Available", "Available", 24 * 60 * MIN);
    assert_eq!(t.emu.presence_of(ALICE).unwrap().availability, "Available");
    let (s, _, _) = t
        .post(
            &format!("/users/{ALICE}/presence/clearUserPreferredPresence"),
            json!({}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(
        t.emu.presence_of(ALICE).unwrap().availability,
        "DoNotDisturb"
    );
    // setUserPreferredPresence defaults: 1 day for Busy.
    let (s, _, _) = t
        .post(
            &format!("/users/{ALICE}/presence/setUserPreferredPresence"),
            json!({"availability": "Busy", "activity": "Busy"}),
        )
        .await;
    assert_eq!(s, 200);
    let p = t.emu.user_preferred(ALICE).unwrap();
    assert_eq!(
        p.expires_at.duration_since(t.emu.now()).as_secs() / 3600,
        23
    );
}

#[tokio::test]
async fn presences_by_user_id_is_capped_at_650() {
    let t = start(EmulatorConfig::default()).await;
    let ids: Vec<String> = (0..651)
        .map(|i| format!("eeeeeeee-0000-4000-8000-{i:012}"))
        .collect();
    let (s, _, v) = t
        .post("/communications/getPresencesByUserId", json!({"ids": ids}))
        .await;
    assert_eq!(s, 400, "{v}");
    let (s, _, v) = t
        .post(
            "/communications/getPresencesByUserId",
            json!({"ids": &ids[..650]}),
        )
        .await;
    assert_eq!(s, 200);
    assert_eq!(v["value"].as_array().unwrap().len(), 650);
    let (s, _, v) = t
        .post(
            "/communications/getPresencesByUserId",
            json!({"ids": [ALICE]}),
        )
        .await;
    assert_eq!(
        (s, v["value"][0]["availability"].as_str()),
        (200, Some("Offline"))
    );
}

#[tokio::test]
async fn batch_limits_order_and_per_request_throttling() {
    let t = start(EmulatorConfig::default()).await;
    let sub =
        |id: &str| json!({"id": id, "method": "GET", "url": format!("/users/{ALICE}/presence")});
    let many: Vec<Value> = (0..21).map(|i| sub(&i.to_string())).collect();
    assert_eq!(t.post("/$batch", json!({"requests": many})).await.0, 400);
    assert_eq!(
        t.post("/$batch", json!({"requests": [sub("a"), sub("A")]}))
            .await
            .0,
        400
    );
    let abs = json!({"id": "1", "method": "GET", "url": format!("{}/users/{ALICE}/presence", t.emu.base_url())});
    assert_eq!(t.post("/$batch", json!({"requests": [abs]})).await.0, 400);

    t.emu.inject(Fault::TooManyRequests {
        retry_after: Duration::from_secs(4),
        times: 1,
    });
    let no_ct = json!({"id": "3", "method": "POST", "url": format!("/users/{ALICE}/presence/clearPresence"),
                        "body": {"sessionId": t.emu.config().client_id}});
    let (s, _, v) = t
        .post("/$batch", json!({"requests": [sub("1"), sub("2"), no_ct]}))
        .await;
    assert_eq!(s, 200);
    let rs = v["responses"].as_array().unwrap();
    let ids: Vec<&str> = rs.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["3", "2", "1"], "order differs from the request order");
    let by_id = |id: &str| rs.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(by_id("1")["status"], 429);
    assert_eq!(by_id("1")["headers"]["Retry-After"], "4");
    assert_eq!(by_id("2")["status"], 200);
    assert_eq!(
        by_id("3")["status"],
        400,
        "a body needs a Content-Type header"
    );
    assert_eq!(t.emu.throttled_count(), 1);
    assert_eq!(t.emu.count(Operation::Batch), 4);
}

#[tokio::test]
async fn rate_limit_and_faults() {
    let t = start(EmulatorConfig {
        rate_limit: Some(RateLimit {
            requests: 2,
            window: Duration::from_secs(10),
        }),
        ..EmulatorConfig::default()
    })
    .await;
    assert_eq!(t.set(ALICE, "Away", "Away", None).await.0, 200);
    assert_eq!(t.set(ALICE, "Away", "Away", None).await.0, 200);
    let r = t
        .http
        .post(format!("{}/users/{ALICE}/presence/setPresence", t.emu.base_url()))
        .bearer_auth(&t.token)
        .json(&json!({"sessionId": t.emu.config().client_id, "availability": "Away", "activity": "Away"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 429);
    let ra: u64 = r.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((9..=10).contains(&ra), "{ra}");
    t.emu.advance(Duration::from_secs(10));
    assert_eq!(t.set(ALICE, "Away", "Away", None).await.0, 200);

    t.emu.set_rate_limit(None);
    t.emu.inject(Fault::ServiceUnavailable { times: 1 });
    assert_eq!(t.set(ALICE, "Away", "Away", None).await.0, 503);
    t.emu.inject(Fault::ServiceUnavailableRetryAfter {
        retry_after: Duration::from_millis(2500),
        times: 1,
    });
    let r = t
        .http
        .post(format!(
            "{}/users/{ALICE}/presence/setPresence",
            t.emu.base_url()
        ))
        .bearer_auth(&t.token)
        .json(&json!({"sessionId": t.emu.config().client_id, "availability": "Away", "activity": "Away"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 503);
    assert_eq!(r.headers()["retry-after"], "3", "whole seconds, rounded up");
    t.emu.inject(Fault::Unauthorized { times: 1 });
    assert_eq!(t.set(ALICE, "Away", "Away", None).await.0, 401);
    assert_eq!(t.set(ALICE, "Away", "Away", None).await.0, 200);
    t.emu.expire_all_tokens();
    assert_eq!(t.set(ALICE, "Away", "Away", None).await.0, 401);
}

#[tokio::test]
async fn missing_permissions_get_403() {
    let t = start(EmulatorConfig {
        app_roles: vec!["User.ReadBasic.All".into()],
        ..EmulatorConfig::default()
    })
    .await;
    assert_eq!(t.set(ALICE, "Away", "Away", None).await.0, 403);
    let r = t
        .http
        .get(format!(
            "{}/users/alice@contoso.com?$select=id",
            t.emu.base_url()
        ))
        .bearer_auth(&t.token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

#[tokio::test]
async fn status_message_rules() {
    let t = start(EmulatorConfig::default()).await;
    let path = format!("/users/{ALICE}/presence/setStatusMessage");
    let msg = |ct: &str, expiry: Value| json!({"statusMessage": {"message": {"content": "Out", "contentType": ct}, "expiryDateTime": expiry}});
    assert_eq!(
        t.post(&path, msg("html", Value::Null)).await.0,
        400,
        "only text"
    );
    let with_offset = json!({"dateTime": "2026-11-23T18:00:00Z", "timeZone": "UTC"});
    assert_eq!(
        t.post(&path, msg("text", with_offset)).await.0,
        400,
        "no offset in dateTime"
    );
    let ok = json!({"dateTime": "2026-11-23T18:00:00", "timeZone": "UTC"});
    assert_eq!(t.post(&path, msg("text", ok)).await.0, 200);
    assert_eq!(t.emu.status_message(ALICE).unwrap().content, "Out");
}

#[tokio::test]
async fn presence_reads_can_be_withheld() {
    let t = start(EmulatorConfig {
        presence_read_withheld: true,
        ..EmulatorConfig::default()
    })
    .await;
    let read = || {
        t.post(
            "/communications/getPresencesByUserId",
            json!({"ids": [ALICE]}),
        )
    };
    let (s, _, v) = read().await;
    assert_eq!(s, 403, "{v}");
    assert_eq!(v["error"]["code"], "Forbidden");
    assert!(v["error"]["innerError"]["request-id"].is_string(), "{v}");
    // Writes are not affected.
    assert_eq!(t.set(ALICE, "Away", "Away", None).await.0, 200);
    t.emu.set_presence_read_withheld(false);
    assert_eq!(read().await.0, 200);
    t.emu.set_presence_read_withheld(true);
    assert_eq!(read().await.0, 403);
}

#[tokio::test]
async fn a_teams_call_and_the_preferred_presence_show_in_reads() {
    let t = start(EmulatorConfig::default()).await;
    let read = || async {
        let (s, _, v) = t
            .post(
                "/communications/getPresencesByUserId",
                json!({"ids": [ALICE]}),
            )
            .await;
        assert_eq!(s, 200, "{v}");
        let p = &v["value"][0];
        PresencePair::new(
            p["availability"].as_str().unwrap(),
            p["activity"].as_str().unwrap(),
        )
    };
    t.emu.set_client_session(ALICE, "Available", "Available");
    assert_eq!(read().await, PresencePair::new("Available", "Available"));
    t.emu.start_teams_call(ALICE);
    assert_eq!(read().await, PresencePair::new("Busy", "InACall"));
    t.emu
        .set_user_preferred(ALICE, "DoNotDisturb", "DoNotDisturb", 60 * MIN);
    assert_eq!(
        read().await,
        PresencePair::new("DoNotDisturb", "DoNotDisturb")
    );
    t.emu.clear_user_preferred(ALICE);
    assert_eq!(read().await, PresencePair::new("Busy", "InACall"));
    t.emu.end_teams_call(ALICE);
    assert_eq!(read().await, PresencePair::new("Available", "Available"));
}

#[tokio::test]
async fn presence_reads_are_throttled_under_the_rate_limit() {
    let t = start(EmulatorConfig {
        rate_limit: Some(RateLimit {
            requests: 1,
            window: Duration::from_secs(30),
        }),
        ..EmulatorConfig::default()
    })
    .await;
    let read = || {
        t.post(
            "/communications/getPresencesByUserId",
            json!({"ids": [ALICE]}),
        )
    };
    assert_eq!(read().await.0, 200);
    let (s, headers, _) = read().await;
    assert_eq!(s, 429);
    assert!(headers.contains_key("retry-after"));
    t.emu.set_rate_limit(None);
    t.emu.inject(Fault::TooManyRequests {
        retry_after: Duration::from_secs(2),
        times: 1,
    });
    let (s, headers, _) = read().await;
    assert_eq!((s, &headers["retry-after"]), (429, &"2".parse().unwrap()));
    assert_eq!(t.emu.count(Operation::GetPresencesByUserId), 3);
}

/// The log says when a request arrived, not when its answer was ready: a
/// slow emulator must not count as a slow client.
#[tokio::test]
async fn requests_are_logged_at_their_arrival() {
    let t = start(EmulatorConfig::default()).await;
    let delay = Duration::from_millis(300);
    t.emu.inject(Fault::Delay { delay, times: 2 });
    let set = json!({"sessionId": t.emu.config().client_id, "availability": "Busy", "activity": "InACall"});
    assert_eq!(t.set(ALICE, "Busy", "InACall", None).await.0, 200);
    let answered = t.emu.now();
    let batch = json!({"requests": [{
        "id": "1", "method": "POST", "url": format!("/users/{ALICE}/presence/setPresence"),
        "headers": {"Content-Type": "application/json"}, "body": set,
    }]});
    assert_eq!(t.post("/$batch", batch).await.0, 200);
    let batch_answered = t.emu.now();
    let sets: Vec<_> = t
        .emu
        .requests()
        .into_iter()
        .filter(|r| r.operation == Operation::SetPresence)
        .collect();
    assert_eq!(sets.len(), 2, "{sets:?}");
    assert!(!sets[0].in_batch && sets[1].in_batch, "{sets:?}");
    assert!(answered.duration_since(sets[0].at) >= delay, "{sets:?}");
    assert!(
        batch_answered.duration_since(sets[1].at) >= delay,
        "{sets:?}"
    );
}
