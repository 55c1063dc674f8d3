use super::*;

const SECRET: &str = "0123456789abcdef-secret";

fn settings(pairs: &[(&str, &str)]) -> Result<Option<WebhookSettings>, String> {
    WebhookSettings::from_env(&Env::from_pairs(pairs.iter().copied())).map_err(|p| p.to_string())
}

#[test]
fn no_url_is_no_webhook_and_the_defaults_apply() {
    assert!(settings(&[("WEBHOOK_SECRET", SECRET)]).unwrap().is_none());
    let s = settings(&[
        ("WEBHOOK_URL", "https://ha.example.com/api/webhook/abc"),
        ("WEBHOOK_SECRET", SECRET),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(s.resend, Some(Duration::from_secs(DEFAULT_RESEND_SECONDS)));
    assert_eq!(s.timeout, Duration::from_secs(DEFAULT_TIMEOUT_SECONDS));
    let s = settings(&[
        ("WEBHOOK_URL", "http://127.0.0.1:8123/hook"),
        ("WEBHOOK_SECRET", SECRET),
        ("WEBHOOK_RESEND_SECONDS", "0"),
        ("WEBHOOK_TIMEOUT_SECONDS", "3"),
    ])
    .unwrap()
    .unwrap();
    assert_eq!(s.resend, None, "0 = off");
    assert_eq!(s.timeout, Duration::from_secs(3));
}

#[test]
fn bad_values_are_named_and_the_secret_never_shown() {
    let e = settings(&[("WEBHOOK_URL", "ftp://example.com/x")]).unwrap_err();
    assert!(e.contains("WEBHOOK_URL: has scheme \"ftp\""), "{e}");
    assert!(e.contains("WEBHOOK_SECRET: is not set"), "{e}");
    let e = settings(&[
        ("WEBHOOK_URL", "not a url?token=hunter2"),
        ("WEBHOOK_SECRET", "short-secret"),
        ("WEBHOOK_RESEND_SECONDS", "-1"),
        ("WEBHOOK_TIMEOUT_SECONDS", "0"),
    ])
    .unwrap_err();
    for needle in [
        "WEBHOOK_URL: is not a URL",
        "WEBHOOK_SECRET: is too short (12 characters)",
        "WEBHOOK_RESEND_SECONDS: \"-1\" is not a number of seconds from 0",
        "WEBHOOK_TIMEOUT_SECONDS: \"0\" is not a number of seconds from 1",
    ] {
        assert!(e.contains(needle), "{needle} in {e}");
    }
    assert!(!e.contains("short-secret") && !e.contains("hunter2"), "{e}");
    let s = settings(&[
        (
            "WEBHOOK_URL",
            "https://user:pw@example.com/hook?token=hunter2",
        ),
        ("WEBHOOK_SECRET", SECRET),
    ])
    .unwrap()
    .unwrap();
    let shown = format!("{s:?}");
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(
        !shown.contains("hunter2") && !shown.contains(":pw@"),
        "{shown}"
    );
    assert_eq!(s.redacted_url(), "https://user:***@example.com/hook?***");
}

fn outcome(code: u16, headers: &[(&'static str, &str)]) -> Result<(), SinkError> {
    let mut map = HeaderMap::new();
    for (name, value) in headers {
        map.insert(*name, value.parse().unwrap());
    }
    classify(StatusCode::from_u16(code).unwrap(), &map, "http://r/hook")
}

#[test]
fn responses_are_done_retried_or_need_a_fix() {
    assert_eq!(outcome(200, &[]), Ok(()));
    assert_eq!(outcome(204, &[]), Ok(()));
    let throttled = outcome(429, &[("retry-after", "120")]).unwrap_err();
    assert_eq!(throttled.retry_after(), Some(Duration::from_secs(120)));
    assert!(matches!(throttled, SinkError::Transient { .. }));
    for code in [408, 500, 502, 503] {
        let e = outcome(code, &[]).unwrap_err();
        assert!(
            matches!(
                e,
                SinkError::Transient {
                    retry_after: None,
                    ..
                }
            ),
            "{code}: {e:?}"
        );
    }
    let e = outcome(503, &[("retry-after", "Wed, 21 Oct 2015 07:28:00 GMT")]).unwrap_err();
    assert_eq!(e.retry_after(), None, "a date in the past: no extra wait");
    for (code, hint) in [
        (301, "to https://elsewhere/x, which is not followed"),
        (401, "WEBHOOK_SECRET"),
        (404, "check WEBHOOK_URL"),
        (410, "gone"),
        (400, "refused"),
    ] {
        let e = outcome(code, &[("location", "https://elsewhere/x")]).unwrap_err();
        assert!(matches!(e, SinkError::Permanent { .. }), "{code}: {e:?}");
        assert!(e.to_string().contains(hint), "{code}: {e}");
        assert!(e.to_string().contains(&code.to_string()), "{code}: {e}");
    }
}

#[test]
fn retry_after_reads_seconds_and_future_dates() {
    assert_eq!(retry_after(" 7 "), Some(Duration::from_secs(7)));
    assert_eq!(retry_after("nonsense"), None);
    let later = (chrono::Utc::now() + chrono::Duration::seconds(600)).to_rfc2822();
    let wait = retry_after(&later).unwrap();
    assert!(
        wait > Duration::from_secs(500) && wait <= Duration::from_secs(600),
        "{wait:?}"
    );
}
