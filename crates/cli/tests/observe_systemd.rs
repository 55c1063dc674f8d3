//! The example systemd unit: hardened, and accepted by `systemd-analyze verify`
//! where systemd is installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALLED_BINARY: &str = "/usr/local/bin/sip-blf-sync";

fn unit_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/systemd/sip-blf-sync.service")
}

fn unit_text() -> String {
    std::fs::read_to_string(unit_path()).expect("examples/systemd/sip-blf-sync.service")
}

/// `(section, key, value)` for every assignment, comments and blank lines skipped.
fn parse_unit(text: &str) -> Vec<(String, String, String)> {
    let mut section = String::new();
    let mut entries = Vec::new();
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            section = name.to_owned();
            continue;
        }
        let (key, value) = line
            .split_once('=')
            .unwrap_or_else(|| panic!("line {}: not `key=value`: {line}", n + 1));
        assert!(!section.is_empty(), "line {}: outside a section", n + 1);
        entries.push((
            section.clone(),
            key.trim().to_owned(),
            value.trim().to_owned(),
        ));
    }
    entries
}

fn values<'a>(entries: &'a [(String, String, String)], section: &str, key: &str) -> Vec<&'a str> {
    entries
        .iter()
        .filter(|(s, k, _)| s == section && k == key)
        .map(|(_, _, v)| v.as_str())
        .collect()
}

#[test]
fn unit_has_the_hardening_settings() {
    let entries = parse_unit(&unit_text());
    for (key, value) in [
        ("ExecStart", "/usr/local/bin/sip-blf-sync run"),
        ("EnvironmentFile", "/etc/sip-blf-sync/env"),
        ("StateDirectory", "sip-blf-sync"),
        ("WorkingDirectory", "/var/lib/sip-blf-sync"),
        ("DynamicUser", "yes"),
        ("ProtectSystem", "strict"),
        ("ProtectHome", "yes"),
        ("PrivateTmp", "yes"),
        ("NoNewPrivileges", "yes"),
        ("RestrictAddressFamilies", "AF_INET AF_INET6 AF_UNIX"),
        ("CapabilityBoundingSet", ""),
        ("SystemCallFilter", "@system-service"),
        ("Restart", "on-failure"),
        ("KillSignal", "SIGTERM"),
        ("TimeoutStopSec", "30"),
    ] {
        assert!(
            values(&entries, "Service", key).contains(&value),
            "[Service] {key}={value} missing"
        );
    }
    assert_eq!(
        values(&entries, "Install", "WantedBy"),
        ["multi-user.target"]
    );
    // The state file lives in the writable StateDirectory, not under ProtectSystem=strict paths.
    assert!(values(&entries, "Service", "Environment")
        .contains(&"PRESENCE_STATE_JSON=/var/lib/sip-blf-sync/presence-state.json"));
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    let Ok(version) = Command::new("systemd-analyze").arg("--version").output() else {
        eprintln!("systemd-analyze not installed: only the parse test above checked the unit");
        return;
    };
    assert!(version.status.success());
    // verify wants ExecStart's binary to exist: point it at the one just built.
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join("sip-blf-sync.service");
    let text = unit_text();
    assert!(text.contains(INSTALLED_BINARY));
    std::fs::write(
        &unit,
        text.replace(INSTALLED_BINARY, env!("CARGO_BIN_EXE_sip-blf-sync")),
    )
    .unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&unit)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "systemd-analyze verify failed:\n{stderr}"
    );
    // Unknown keys and bad values are only warnings (exit 0): none may name our unit.
    let about_unit: Vec<&str> = stderr
        .lines()
        .filter(|l| l.contains("sip-blf-sync.service"))
        .collect();
    assert!(
        about_unit.is_empty(),
        "warnings:\n{}",
        about_unit.join("\n")
    );
}

#[test]
fn parser_reads_sections_and_repeated_keys() {
    let entries = parse_unit("# c\n[Service]\nA=1\nA=2\nEmpty=\n");
    assert_eq!(values(&entries, "Service", "A"), ["1", "2"]);
    assert_eq!(values(&entries, "Service", "Empty"), [""]);
    assert!(values(&entries, "Unit", "A").is_empty());
}
