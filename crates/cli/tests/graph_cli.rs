//! `sip-blf-sync graph …` one-shots as a user runs them, against the Graph
//! emulator on loopback.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::{Command, Output};

use graph_emulator::{EmulatorConfig, GraphEmulator, Operation};

const ALICE: &str = "aaaaaaaa-0000-4000-8000-000000000001";

struct Setup {
    emu: GraphEmulator,
    dir: tempfile::TempDir,
}

async fn setup() -> Setup {
    let emu = GraphEmulator::start(EmulatorConfig::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("config")).unwrap();
    std::fs::write(
        dir.path().join("config/extensions.csv"),
        "extension,email\n1001,alice@contoso.com\n1002,bob@contoso.com\n\
         1003,carol_fabrikam.com#EXT#@contoso.onmicrosoft.com\n1004,dave@contoso.com\n",
    )
    .unwrap();
    Setup { emu, dir }
}

impl Setup {
    async fn run(&self, args: &[&str], secret: &str) -> Output {
        self.run_with(args, secret, &[]).await
    }

    /// [`run`](Self::run) with more variables (`TEAMS_TO_PBX` is unset unless given).
    async fn run_with(&self, args: &[&str], secret: &str, vars: &[(&str, &str)]) -> Output {
        let c = self.emu.config();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"));
        cmd.arg("graph")
            .args(args)
            .current_dir(self.dir.path())
            .env_remove("EXTENSIONS_JSON")
            .env("AZURE_TENANT_ID", &c.tenant_id)
            .env("AZURE_CLIENT_ID", &c.client_id)
            .env("AZURE_CLIENT_SECRET", secret)
            .env("AZURE_AUTHORITY_HOST", self.emu.authority_url())
            .env("GRAPH_BASE_URL", self.emu.base_url())
            .env("RUST_LOG", "trace")
            .env_remove("TEAMS_TO_PBX")
            .envs(vars.iter().copied());
        tokio::task::spawn_blocking(move || cmd.output().unwrap())
            .await
            .unwrap()
    }

    async fn ok(&self, args: &[&str]) -> String {
        let secret = self.emu.config().client_secret.clone();
        let out = self.run(args, &secret).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "{args:?}: {stderr}");
        assert!(
            !stderr.contains(&secret),
            "the client secret must never be logged"
        );
        String::from_utf8_lossy(&out.stdout).to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_reports_each_user_and_fails_for_an_unknown_one() {
    let s = setup().await;
    let secret = s.emu.config().client_secret.clone();
    let out = s.run(&["check"], &secret).await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("token: ok"), "{text}");
    assert!(
        text.contains(&format!("alice@contoso.com: ok ({ALICE})")),
        "{text}"
    );
    assert!(text.contains("bob@contoso.com: ok"), "{text}");
    assert!(text.contains("#EXT#@contoso.onmicrosoft.com: ok"), "{text}");
    assert!(text.contains("dave@contoso.com: FAILED"), "{text}");
    assert!(text.contains("4 user(s) checked, 1 failed"), "{text}");
    // Teams presence does not go to the PBX: nothing is read back.
    assert!(!text.contains("presence read"), "{text}");
    assert_eq!(s.emu.count(Operation::GetPresencesByUserId), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_says_when_presence_read_all_is_missing_with_teams_to_pbx() {
    let s = setup().await;
    let secret = s.emu.config().client_secret.clone();
    s.emu.set_presence_read_withheld(true);
    let out = s
        .run_with(&["check"], &secret, &[("TEAMS_TO_PBX", "ami")])
        .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("presence read (getPresencesByUserId): FAILED"),
        "{text}"
    );
    assert!(
        text.contains(
            "fix: give the app registration the Presence.Read.All application permission \
             and grant admin consent"
        ),
        "{text}"
    );
    assert_eq!(
        s.emu.count(Operation::GetPresencesByUserId),
        1,
        "one read, for the first resolved user"
    );

    s.emu.set_presence_read_withheld(false);
    let out = s
        .run_with(&["check"], &secret, &[("TEAMS_TO_PBX", "publish")])
        .await;
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("presence read (getPresencesByUserId): ok"),
        "{text}"
    );

    let out = s
        .run_with(&["check"], &secret, &[("TEAMS_TO_PBX", "sometimes")])
        .await;
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TEAMS_TO_PBX") && err.contains("off, ami") && err.contains("publish"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_get_and_clear_a_users_presence() {
    let s = setup().await;
    let out = s.ok(&["set", "alice@contoso.com", "busy"]).await;
    assert!(out.contains("set Busy/InACall"), "{out}");
    let p = s.emu.presence_of(ALICE).unwrap();
    assert_eq!(
        (p.availability.as_str(), p.activity.as_str()),
        ("Busy", "InACall")
    );
    let session = s.emu.app_session(ALICE).unwrap();
    assert!(format!("{session:?}").contains(&s.emu.config().client_id));

    let out = s.ok(&["get", ALICE]).await;
    assert!(out.contains("Busy/InACall"), "{out}");

    let out = s.ok(&["clear", "alice@contoso.com"]).await;
    assert!(out.contains("cleared"), "{out}");
    assert!(s.emu.app_session(ALICE).is_none());
    let out = s.ok(&["clear", "alice@contoso.com"]).await;
    assert!(out.contains("nothing to clear"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_state_and_wrong_secret_say_what_to_fix() {
    let s = setup().await;
    let secret = s.emu.config().client_secret.clone();
    let out = s
        .run(&["set", "alice@contoso.com", "Offline/OffWork"], &secret)
        .await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("Busy/InACall"),
        "the valid pairs are listed: {err}"
    );
    assert!(s.emu.app_session(ALICE).is_none());

    let out = s.run(&["get", "alice@contoso.com"], "not-the-secret").await;
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("client secret is wrong"), "{err}");
    assert!(!err.contains("not-the-secret"), "{err}");
}
