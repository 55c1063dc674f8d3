//! `.env.example` must document every variable the program reads, and parse.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

#[test]
fn env_example_parses_and_documents_every_variable() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let example = root.join(".env.example");
    let text = std::fs::read_to_string(&example).unwrap();
    let env = sip_blf_sync::settings::Env::load(Some(&example)).unwrap();
    assert_eq!(env.get("SIP_TRANSPORT"), Some("udp"));
    // Every variable name the sources mention must be in the example.
    let mut missing = Vec::new();
    for dir in [
        "crates/cli/src",
        "crates/cli/src/engine",
        "crates/cli/src/observe",
        "crates/cli/src/ami_source",
        "crates/cli/src/webhook",
        "crates/cli/src/action_url",
        "crates/cli/src/mattermost",
        "crates/graph-presence/src",
    ] {
        for entry in std::fs::read_dir(root.join(dir)).unwrap() {
            let src = std::fs::read_to_string(entry.unwrap().path()).unwrap_or_default();
            for word in
                src.split(|c: char| !(c.is_ascii_uppercase() || c == '_' || c.is_ascii_digit()))
            {
                let known_prefix = [
                    "SIP_",
                    "AZURE_",
                    "GRAPH_",
                    "STUN_",
                    "EXTENSIONS_",
                    "PRESENCE_",
                    "MAPPING_",
                    "SYNC_",
                    "RECONCILE_",
                    "STATUS_",
                    "HTTP_",
                    "DATABASE_",
                    "AMI_",
                    "TEAMS_",
                    "WEBHOOK_",
                    "ACTION_URL_",
                    "MATTERMOST_",
                ]
                .iter()
                .any(|p| word.starts_with(p))
                    || ["SOURCES", "SINKS", "DASHBOARD_URL"].contains(&word);
                if known_prefix
                    && word.len() >= 5
                    && !text.contains(word)
                    && !missing.contains(&word.to_string())
                {
                    missing.push(word.to_string());
                }
            }
        }
    }
    assert!(missing.is_empty(), ".env.example lacks {missing:?}");
}
