use super::*;
use crate::extensions::EventPackage;

fn env(pairs: &[(&str, &str)]) -> Env {
    Env::from_pairs(pairs.iter().copied())
}

#[test]
fn no_url_is_no_database_sink() {
    assert_eq!(DatabaseSettings::from_env(&env(&[])), Ok(None));
    // the other variables alone change nothing
    assert_eq!(
        DatabaseSettings::from_env(&env(&[("DATABASE_HISTORY_DAYS", "3")])),
        Ok(None)
    );
}

#[test]
fn defaults() {
    let s = DatabaseSettings::from_env(&env(&[("DATABASE_URL", "sqlite://lines.db")]))
        .unwrap()
        .unwrap();
    assert_eq!(s.url.expose(), "sqlite://lines.db");
    assert_eq!(s.history_days, DEFAULT_HISTORY_DAYS);
    assert_eq!(s.notify_channel, "line_state");
    assert_eq!(s.store_options(), StoreOptions::default());
}

#[test]
fn postgres_with_options_and_the_password_never_shown() {
    let s = DatabaseSettings::from_env(&env(&[
        (
            "DATABASE_URL",
            "postgres://blf:hunter2@db.example:5433/lines",
        ),
        ("DATABASE_HISTORY_DAYS", "0"),
        ("DATABASE_NOTIFY_CHANNEL", "phones_1"),
    ]))
    .unwrap()
    .unwrap();
    assert_eq!(s.history_days, 0);
    assert_eq!(s.notify_channel, "phones_1");
    assert_eq!(s.redacted_url(), "postgres://blf:***@db.example:5433/lines");
    assert!(!format!("{s:?}").contains("hunter2"));
}

#[test]
fn every_problem_says_what_to_write_without_the_password() {
    let err = DatabaseSettings::from_env(&env(&[
        ("DATABASE_URL", "mysql://blf:hunter2@db/lines"),
        ("DATABASE_HISTORY_DAYS", "a week"),
        ("DATABASE_NOTIFY_CHANNEL", "line-state; DROP"),
    ]))
    .unwrap_err();
    assert_eq!(err.0.len(), 3, "{err}");
    let text = err.to_string();
    assert!(
        text.contains("DATABASE_URL: is not valid (unknown scheme \"mysql\"): use sqlite://PATH"),
        "{text}"
    );
    assert!(
        text.contains("postgres://USER:PASSWORD@HOST:PORT/DB"),
        "{text}"
    );
    assert!(
        text.contains("DATABASE_HISTORY_DAYS: \"a week\" is not a number of days"),
        "{text}"
    );
    assert!(
        text.contains(
            "DATABASE_NOTIFY_CHANNEL: \"line-state; DROP\" is not a plain SQL identifier"
        ),
        "{text}"
    );
    assert!(!text.contains("hunter2"), "{text}");

    for bad in ["lines.db", "sqlite://", "postgres://:hunter2@h/db"] {
        let err = DatabaseSettings::from_env(&env(&[("DATABASE_URL", bad)])).unwrap_err();
        assert!(
            err.to_string().starts_with("DATABASE_URL: is not valid"),
            "{err}"
        );
        assert!(!err.to_string().contains("hunter2"), "{err}");
    }
    for bad in ["-1", "99999999", "7d"] {
        assert!(
            DatabaseSettings::from_env(&env(&[
                ("DATABASE_URL", "sqlite://x.db"),
                ("DATABASE_HISTORY_DAYS", bad)
            ]))
            .is_err(),
            "{bad}"
        );
    }
    for bad in ["1abc", &"a".repeat(64)] {
        assert!(
            DatabaseSettings::from_env(&env(&[
                ("DATABASE_URL", "sqlite://x.db"),
                ("DATABASE_NOTIFY_CHANNEL", bad)
            ]))
            .is_err(),
            "{bad}"
        );
    }
}

#[test]
fn redaction_keeps_everything_but_the_password() {
    assert_eq!(redact("sqlite:///var/lib/x.db"), "sqlite:///var/lib/x.db");
    assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
    assert_eq!(
        redact("postgresql://u:p@ss:w@rd@h:1/db?sslmode=require"),
        "postgresql://u:***@h:1/db?sslmode=require"
    );
}

fn extension(number: &str, email: &str) -> Extension {
    Extension {
        extension: number.into(),
        email: email.into(),
        object_id: None,
        event: EventPackage::default(),
        mapping: None,
        name: None,
        group: None,
        origin: String::new(),
    }
}

#[test]
fn the_address_book_is_the_extension_list_on_one_system() {
    let book = address_book(
        &[
            extension("1001", "alice@example.com"),
            extension("1002", ""),
        ],
        "pbx",
    );
    assert_eq!(
        book,
        [
            (
                AddressKey::new("pbx", "1001"),
                LineIdentity {
                    extension: "1001".into(),
                    email: Some("alice@example.com".into()),
                    name: None
                }
            ),
            (
                AddressKey::new("pbx", "1002"),
                LineIdentity {
                    extension: "1002".into(),
                    email: None,
                    name: None
                }
            ),
        ]
    );
}

#[tokio::test]
async fn check_and_open_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("lines.db").display());
    let s = DatabaseSettings::from_env(&env(&[("DATABASE_URL", url.as_str())]))
        .unwrap()
        .unwrap();
    let line = check_database(&s).await.unwrap();
    assert!(
        line.starts_with("SQLite at sqlite://") && line.contains("0 rows in line_states"),
        "{line}"
    );
    let sink = open_sink(&s, &[extension("1001", "alice@example.com")], "pbx", "sip")
        .await
        .unwrap();
    let rows = sink.store().line_states().await.unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].line_state, line_store::LineState::Unknown);
    sink.close().await;
    let line = check_database(&s).await.unwrap();
    assert!(line.contains("1 row in line_states"), "{line}");

    let missing = DatabaseSettings::from_env(&env(&[(
        "DATABASE_URL",
        "sqlite:///nonexistent-dir/x/lines.db",
    )]))
    .unwrap()
    .unwrap();
    let err = check_database(&missing).await.unwrap_err();
    assert!(err.contains("check that its directory exists"), "{err}");
}
