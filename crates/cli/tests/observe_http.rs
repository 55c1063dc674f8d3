//! The HTTP listener over real loopback HTTP, and the telemetry behind it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

use blf::LineState;
use sip_blf_sync::observe::{
    parse_http_listen, serve, serve_with, CallOutcome, HttpLimits, HttpServer, SubscriptionStatus,
    Telemetry, DEFAULT_HTTP_LISTEN, METRICS_CONTENT_TYPE, NOT_REGISTERED, NO_TOKEN,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

async fn start(telemetry: &Telemetry) -> HttpServer {
    serve("127.0.0.1:0".parse().unwrap(), telemetry.clone())
        .await
        .expect("bind loopback")
}

fn url(server: &HttpServer, path: &str) -> String {
    format!("http://{}{}", server.local_addr(), path)
}

async fn get(server: &HttpServer, path: &str) -> reqwest::Response {
    reqwest::Client::new()
        .get(url(server, path))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .expect("request")
}

async fn get_json(server: &HttpServer, path: &str) -> (u16, serde_json::Value) {
    let response = get(server, path).await;
    let code = response.status().as_u16();
    (code, response.json().await.expect("JSON body"))
}

#[tokio::test]
async fn healthz_answers_ok_even_when_not_ready() {
    let telemetry = Telemetry::new();
    let server = start(&telemetry).await;
    let response = get(&server, "/healthz").await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.text().await.unwrap().trim(), "ok");
    assert_eq!(get(&server, "/nope").await.status(), 404);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn readyz_follows_registration_and_token() {
    let telemetry = Telemetry::new();
    let server = start(&telemetry).await;

    let (code, body) = get_json(&server, "/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(body["ready"], false);
    assert_eq!(
        body["missing"],
        serde_json::json!([NOT_REGISTERED, NO_TOKEN])
    );

    telemetry.set_registered(true);
    let (code, body) = get_json(&server, "/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(body["missing"], serde_json::json!(["no valid Graph token"]));

    telemetry.set_token_valid(true);
    let (code, body) = get_json(&server, "/readyz").await;
    assert_eq!(code, 200);
    assert_eq!(body["ready"], true);
    assert!(telemetry.is_ready());

    telemetry.set_registered(false);
    let (code, body) = get_json(&server, "/readyz").await;
    assert_eq!(code, 503);
    assert_eq!(
        body["missing"],
        serde_json::json!(["not registered with the PBX"])
    );

    telemetry.set_registered(true);
    telemetry.set_token_valid(false);
    assert_eq!(get(&server, "/readyz").await.status(), 503);
    // Without a tenant (dry run) only the registration counts.
    telemetry.set_graph_required(false);
    assert_eq!(get(&server, "/readyz").await.status(), 200);
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn metrics_show_every_family_with_its_labels() {
    let telemetry = Telemetry::new();
    let server = start(&telemetry).await;
    telemetry.set_registered(true);
    telemetry.add_extension("1001", "user1@contoso.com");
    telemetry.add_extension("1002", "user2@contoso.com");
    telemetry.add_extension("1003", "user3@contoso.com");
    telemetry.set_subscription("1001", SubscriptionStatus::Active);
    telemetry.set_subscription("1002", SubscriptionStatus::Active);
    telemetry.set_subscription("1003", SubscriptionStatus::Failed);
    telemetry.notify_received("1001", SystemTime::now());
    telemetry.notify_received("1002", SystemTime::now());
    telemetry.notify_received("1002", SystemTime::now());
    telemetry.parse_error("1003");
    telemetry.notify_rejected(sip_ua::NotifyRejection::UnknownDialog);
    telemetry.notify_rejected(sip_ua::NotifyRejection::UnknownDialog);
    telemetry.set_line_state("1001", LineState::Busy);
    telemetry.set_line_state("1002", LineState::Idle);
    telemetry.graph_call("setPresence", CallOutcome::Ok);
    telemetry.graph_call("setPresence", CallOutcome::Ok);
    telemetry.graph_call("setPresence", CallOutcome::Throttled);
    telemetry.graph_call("clearPresence", CallOutcome::Error);
    telemetry.notify_to_graph(Duration::from_micros(50));
    telemetry.notify_to_graph(Duration::from_millis(30));
    telemetry.notify_to_graph(Duration::from_secs(20));

    let response = get(&server, "/metrics").await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str().unwrap(),
        METRICS_CONTENT_TYPE
    );
    let text = response.text().await.unwrap();
    let lines: Vec<&str> = text.lines().collect();
    for expected in [
        "sip_registered 1",
        "graph_token_valid 0",
        "ready 0",
        "extensions_configured 3",
        r#"sip_subscriptions{state="active"} 2"#,
        r#"sip_subscriptions{state="failed"} 1"#,
        r#"sip_subscriptions{state="pending"} 0"#,
        r#"sip_subscriptions{state="terminated"} 0"#,
        r#"blf_lines{state="busy"} 1"#,
        r#"blf_lines{state="idle"} 1"#,
        r#"blf_lines{state="none"} 1"#,
        "sip_notifies_total 3",
        "blf_parse_errors_total 1",
        // The SIP user agent's hand-over of events: a slow reader shows here.
        "sip_events_delayed_total 0",
        "sip_notifies_replaced_total 0",
        "sip_events_dropped_total 0",
        "sip_events_waiting 0",
        r#"sip_notifies_rejected_total{reason="unknown_dialog"} 2"#,
        r#"sip_notifies_rejected_total{reason="dialog_mismatch"} 0"#,
        r#"sip_notifies_rejected_total{reason="malformed"} 0"#,
        r#"graph_calls_total{operation="setPresence",outcome="ok"} 2"#,
        r#"graph_calls_total{operation="setPresence",outcome="throttled"} 1"#,
        r#"graph_calls_total{operation="clearPresence",outcome="error"} 1"#,
        "graph_throttled_total 1",
        "notify_to_graph_seconds_count 3",
        r#"notify_to_graph_seconds_bucket{le="0.0001"} 1"#,
        r#"notify_to_graph_seconds_bucket{le="0.05"} 2"#,
        r#"notify_to_graph_seconds_bucket{le="10.0"} 2"#,
        r#"notify_to_graph_seconds_bucket{le="+Inf"} 3"#,
        "# TYPE sip_notifies counter",
        "# TYPE notify_to_graph_seconds histogram",
        "# EOF",
    ] {
        assert!(lines.contains(&expected), "missing {expected:?} in\n{text}");
    }
    // Totals only: no per-extension series.
    assert!(!text.contains("1001"), "{text}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn status_lists_every_extension_with_its_age() {
    let telemetry = Telemetry::new();
    let server = start(&telemetry).await;
    telemetry.set_registered(true);
    telemetry.add_extension("1002", "user2@contoso.com");
    telemetry.add_extension("1001", "user1@contoso.com");
    telemetry.set_subscription("1001", SubscriptionStatus::Active);
    let notified = SystemTime::now() - Duration::from_secs(5);
    telemetry.notify_received("1001", notified);
    // An older report does not move the time back.
    telemetry.notify_received("1001", notified - Duration::from_secs(100));
    telemetry.set_line_state("1001", LineState::Busy);
    telemetry.set_presence("1001", "Busy/InACall");

    let (code, body) = get_json(&server, "/status").await;
    assert_eq!(code, 200);
    assert_eq!(body["registered"], true);
    assert_eq!(body["token_valid"], false);
    assert_eq!(body["ready"], false);
    assert_eq!(body["missing"], serde_json::json!([NO_TOKEN]));
    let extensions = body["extensions"].as_array().unwrap();
    assert_eq!(extensions.len(), 2);
    let first = &extensions[0];
    assert_eq!(first["extension"], "1001");
    assert_eq!(first["user"], "user1@contoso.com");
    assert_eq!(first["subscription"], "active");
    assert_eq!(first["line_state"], "busy");
    assert_eq!(first["presence"], "Busy/InACall");
    assert_eq!(first["notifies"], 2);
    let age = first["last_notify_age_seconds"].as_f64().unwrap();
    assert!((5.0..60.0).contains(&age), "age {age}");
    let second = &extensions[1];
    assert_eq!(second["extension"], "1002");
    assert_eq!(second["subscription"], "pending");
    assert!(second["line_state"].is_null());
    assert!(second["presence"].is_null());
    assert!(second["last_notify_age_seconds"].is_null());
    server.shutdown().await.unwrap();
}

#[test]
fn status_ages_are_measured_against_the_given_time() {
    let telemetry = Telemetry::new();
    let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    telemetry.notify_received("1001", t0);
    let status = telemetry.status_json_at(t0 + Duration::from_millis(2500));
    let ext = &status["extensions"][0];
    assert_eq!(ext["last_notify_age_seconds"], 2.5);
    assert_eq!(ext["last_notify_unix"], 1_800_000_000.0);
    // Unknown extension (not added): shown, without a user.
    assert!(ext["user"].is_null());
    assert!(status["token_expires_in_seconds"].is_null());
    telemetry.set_token_expiry(Some(t0 + Duration::from_secs(3600)));
    let status = telemetry.status_json_at(t0 + Duration::from_secs(600));
    assert_eq!(status["token_expires_in_seconds"], 3000.0);
    let status = telemetry.status_json_at(t0 + Duration::from_secs(3610));
    assert_eq!(status["token_expires_in_seconds"], -10.0);
    assert!(telemetry
        .metrics_text()
        .contains("graph_token_expiry_timestamp_seconds 1800003600\n"));
    telemetry.set_token_expiry(None);
    assert!(telemetry
        .metrics_text()
        .contains("graph_token_expiry_timestamp_seconds 0\n"));
    // A clock stepped back shows age 0 rather than a negative age.
    let status = telemetry.status_json_at(t0 - Duration::from_secs(3));
    assert_eq!(status["extensions"][0]["last_notify_age_seconds"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_updates_are_all_counted() {
    let telemetry = Telemetry::new();
    let server = start(&telemetry).await;
    const TASKS: usize = 8;
    const EACH: usize = 500;
    let mut handles = Vec::new();
    for t in 0..TASKS {
        let telemetry = telemetry.clone();
        handles.push(std::thread::spawn(move || {
            let extension = format!("10{t:02}");
            telemetry.add_extension(&extension, "u@contoso.com");
            for i in 0..EACH {
                telemetry.notify_received(&extension, SystemTime::now());
                telemetry.graph_call("setPresence", CallOutcome::Ok);
                telemetry.set_subscription(
                    &extension,
                    if i % 2 == 0 {
                        SubscriptionStatus::Pending
                    } else {
                        SubscriptionStatus::Active
                    },
                );
            }
        }));
    }
    // Readers at the same time as the writers.
    for _ in 0..20 {
        assert_eq!(get(&server, "/metrics").await.status(), 200);
        assert_eq!(get(&server, "/status").await.status(), 200);
    }
    for handle in handles {
        handle.join().unwrap();
    }
    let text = telemetry.metrics_text();
    let total = TASKS * EACH;
    assert!(
        text.contains(&format!("sip_notifies_total {total}\n")),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "graph_calls_total{{operation=\"setPresence\",outcome=\"ok\"}} {total}\n"
        )),
        "{text}"
    );
    assert!(text.contains(&format!("sip_subscriptions{{state=\"active\"}} {TASKS}\n")));
    assert!(text.contains("sip_subscriptions{state=\"pending\"} 0\n"));
    let (_, status) = get_json(&server, "/status").await;
    let extensions = status["extensions"].as_array().unwrap();
    assert_eq!(extensions.len(), TASKS);
    for ext in extensions {
        assert_eq!(ext["notifies"], EACH);
        assert_eq!(ext["subscription"], "active");
    }
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn shutdown_closes_the_port() {
    let telemetry = Telemetry::new();
    let server = start(&telemetry).await;
    let addr = server.local_addr();
    assert_eq!(get(&server, "/healthz").await.status(), 200);
    server.shutdown().await.unwrap();
    let refused = reqwest::Client::new()
        .get(format!("http://{addr}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(refused.is_err(), "still answering after shutdown");
}

#[tokio::test]
async fn bind_failure_is_reported() {
    let telemetry = Telemetry::new();
    let server = start(&telemetry).await;
    let taken = server.local_addr();
    let err = serve(taken, telemetry.clone()).await.unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::AddrInUse);
    server.shutdown().await.unwrap();
}

#[test]
fn http_listen_values() {
    let default: SocketAddr = DEFAULT_HTTP_LISTEN.parse().unwrap();
    assert!(default.ip().is_loopback());
    assert_eq!(parse_http_listen(None).unwrap(), Some(default));
    assert_eq!(parse_http_listen(Some("")).unwrap(), Some(default));
    assert_eq!(parse_http_listen(Some(" OFF ")).unwrap(), None);
    assert_eq!(
        parse_http_listen(Some("0.0.0.0:9100")).unwrap(),
        Some("0.0.0.0:9100".parse().unwrap())
    );
    let err = parse_http_listen(Some("9090")).unwrap_err();
    assert!(err.to_string().contains("HTTP_LISTEN=\"9090\""), "{err}");
}

/// Limits for the tests of slow clients: `header` for the headers, a cap of `max`.
async fn start_limited(telemetry: &Telemetry, header: Duration, max: usize) -> HttpServer {
    let limits = HttpLimits {
        header_read_timeout: header,
        idle_timeout: Duration::from_secs(60),
        max_connections: max,
    };
    serve_with("127.0.0.1:0".parse().unwrap(), telemetry.clone(), limits)
        .await
        .expect("bind loopback")
}

/// A client that sends part of a request's headers and then nothing.
async fn half_sent(server: &HttpServer) -> TcpStream {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n")
        .await
        .unwrap();
    stream
}

/// Waits (at most `limit`) for the server to close `stream`; what it sent
/// before closing.
async fn closed_by_server(stream: &mut TcpStream, limit: Duration) -> Vec<u8> {
    let mut got = Vec::new();
    match tokio::time::timeout(limit, stream.read_to_end(&mut got)).await {
        Ok(Ok(_)) => {}
        // A reset is a close too.
        Ok(Err(e)) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        Err(_) => panic!("still open after {limit:?}"),
    }
    got
}

/// Waits for the server to count `n` connections open.
async fn open_connections(server: &HttpServer, n: usize) {
    let mut open = server.open_connections();
    tokio::time::timeout(Duration::from_secs(10), open.wait_for(|open| *open == n))
        .await
        .unwrap_or_else(|_| panic!("never {n} connections open"))
        .unwrap();
}

/// `/healthz` on a connection of its own, read to its end.
async fn healthz_raw(server: &HttpServer) -> String {
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    String::from_utf8_lossy(&closed_by_server(&mut stream, Duration::from_secs(10)).await)
        .into_owned()
}

#[tokio::test]
async fn a_half_sent_request_is_closed_after_the_header_timeout() {
    let telemetry = Telemetry::new();
    let header = Duration::from_millis(400);
    let server = start_limited(&telemetry, header, 4).await;
    let started = tokio::time::Instant::now();
    let mut stream = half_sent(&server).await;
    open_connections(&server, 1).await;
    let answer = closed_by_server(&mut stream, Duration::from_secs(10)).await;
    let took = started.elapsed();
    assert!(took >= header, "closed after {took:?}, before the timeout");
    // No answer to a request that never was (hyper may say 408).
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    open_connections(&server, 0).await;
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn healthz_answers_while_slow_clients_hold_connections_and_the_cap_closes_more_at_once() {
    let telemetry = Telemetry::new();
    // Slow clients are not timed out during this test.
    let server = start_limited(&telemetry, Duration::from_secs(600), 3).await;
    let mut slow = vec![half_sent(&server).await, half_sent(&server).await];
    open_connections(&server, 2).await;
    let answer = healthz_raw(&server).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.ends_with("ok\n"), "{answer}");
    open_connections(&server, 2).await;

    // The cap reached: one more is closed at once, not left hanging.
    slow.push(half_sent(&server).await);
    open_connections(&server, 3).await;
    let mut extra = TcpStream::connect(server.local_addr()).await.unwrap();
    // The write may already find it closed.
    let _ = extra
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await;
    let answer = closed_by_server(&mut extra, Duration::from_secs(10)).await;
    assert!(answer.is_empty(), "{}", String::from_utf8_lossy(&answer));

    // A slow client goes away: its place is free again.
    drop(slow.pop());
    open_connections(&server, 2).await;
    let answer = healthz_raw(&server).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_client_that_stops_reading_is_closed_after_the_idle_timeout() {
    let telemetry = Telemetry::new();
    // /status large enough to fill both ends' socket buffers.
    for i in 0..60_000 {
        telemetry.add_extension(&format!("{i}"), &format!("user{i}@contoso.com"));
    }
    let limits = HttpLimits {
        header_read_timeout: Duration::from_secs(600),
        idle_timeout: Duration::from_millis(500),
        max_connections: 4,
    };
    let server = serve_with("127.0.0.1:0".parse().unwrap(), telemetry.clone(), limits)
        .await
        .unwrap();
    let mut stream = TcpStream::connect(server.local_addr()).await.unwrap();
    stream
        .write_all(b"GET /status HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    open_connections(&server, 1).await;
    // Never read: the response stalls, and the connection is given up.
    open_connections(&server, 0).await;
    drop(stream);
    server.shutdown().await.unwrap();
}
