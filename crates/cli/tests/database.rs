//! The `check` line of the database sink against a private PostgreSQL
//! server: what it says when all is well, and what to fix when the login is
//! refused or the server is away.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use sip_blf_sync::database::{check_database, DatabaseSettings};
use sip_blf_sync::settings::Env;
use testbed::{Postgres, POSTGRES_PASSWORD};

fn settings(url: &str) -> DatabaseSettings {
    DatabaseSettings::from_env(&Env::from_pairs([("DATABASE_URL", url)]))
        .unwrap()
        .unwrap()
}

#[tokio::test]
#[ignore = "real peer: PostgreSQL"]
async fn check_names_the_backend_or_what_to_fix() {
    let mut pg = Postgres::start().unwrap();
    let line = check_database(&settings(&pg.url())).await.unwrap();
    assert!(line.starts_with("PostgreSQL at postgres://"), "{line}");
    assert!(line.contains("0 rows in line_states"), "{line}");
    assert!(!line.contains(POSTGRES_PASSWORD), "{line}");

    let wrong = pg.url().replace(POSTGRES_PASSWORD, "hunter2");
    let err = check_database(&settings(&wrong)).await.unwrap_err();
    assert!(
        err.contains("check the user and password in DATABASE_URL"),
        "{err}"
    );
    assert!(!err.contains("hunter2"), "{err}");

    let url = pg.url();
    pg.stop();
    let err = check_database(&settings(&url)).await.unwrap_err();
    assert!(err.contains("check that it runs"), "{err}");
    assert!(!err.contains(POSTGRES_PASSWORD), "{err}");
}
