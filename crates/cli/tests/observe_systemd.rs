//! The example systemd units (one service, and a template for one instance
//! per PBX or tenant): hardened, and accepted by `systemd-analyze verify`
//! where systemd is installed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const INSTALLED_BINARY: &str = "/usr/local/bin/sip-blf-sync";

const UNIT: &str = "sip-blf-sync.service";
const TEMPLATE: &str = "sip-blf-sync@.service";

fn unit_path(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/systemd")
        .join(name)
}

fn unit_text(name: &str) -> String {
    std::fs::read_to_string(unit_path(name))
        .unwrap_or_else(|e| panic!("examples/systemd/{name}: {e}"))
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

/// What both units must say (the template's paths differ per instance).
const HARDENING: [(&str, &str); 12] = [
    ("ExecStart", "/usr/local/bin/sip-blf-sync run"),
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
];

fn assert_service(entries: &[(String, String, String)], name: &str, expected: &[(&str, &str)]) {
    for (key, value) in expected {
        assert!(
            values(entries, "Service", key).contains(value),
            "{name}: [Service] {key}={value} missing"
        );
    }
    assert_eq!(
        values(entries, "Install", "WantedBy"),
        ["multi-user.target"],
        "{name}"
    );
}

#[test]
fn unit_has_the_hardening_settings() {
    let entries = parse_unit(&unit_text(UNIT));
    assert_service(&entries, UNIT, &HARDENING);
    assert_service(
        &entries,
        UNIT,
        &[
            ("EnvironmentFile", "/etc/sip-blf-sync/env"),
            ("StateDirectory", "sip-blf-sync"),
            ("WorkingDirectory", "/var/lib/sip-blf-sync"),
            // The state file lives in the writable StateDirectory, not under ProtectSystem=strict paths.
            (
                "Environment",
                "PRESENCE_STATE_JSON=/var/lib/sip-blf-sync/presence-state.json",
            ),
        ],
    );
}

#[test]
fn template_keeps_each_instance_apart_with_the_same_hardening() {
    let entries = parse_unit(&unit_text(TEMPLATE));
    assert_service(&entries, TEMPLATE, &HARDENING);
    // Each instance: its own settings, extension list, state directory and log name.
    assert_service(
        &entries,
        TEMPLATE,
        &[
            ("EnvironmentFile", "/etc/sip-blf-sync/%i.env"),
            (
                "Environment",
                "EXTENSIONS_JSON=/etc/sip-blf-sync/%i.extensions.json",
            ),
            ("StateDirectory", "sip-blf-sync/%i"),
            ("WorkingDirectory", "/var/lib/sip-blf-sync/%i"),
            (
                "Environment",
                "PRESENCE_STATE_JSON=/var/lib/sip-blf-sync/%i/presence-state.json",
            ),
            ("SyslogIdentifier", "sip-blf-sync-%i"),
            // Two instances cannot share one port: each env file names its own.
            ("Environment", "HTTP_LISTEN=off"),
        ],
    );
    // Everything else is the single unit's, line for line: a hardening
    // change made to one and not the other fails here.
    let single = parse_unit(&unit_text(UNIT));
    let per_instance = [
        "EnvironmentFile",
        "Environment",
        "StateDirectory",
        "WorkingDirectory",
        "SyslogIdentifier",
        "Description",
        "StartLimitIntervalSec",
        "StartLimitBurst",
    ];
    let shared = |entries: &[(String, String, String)]| -> Vec<(String, String, String)> {
        entries
            .iter()
            .filter(|(_, k, _)| !per_instance.contains(&k.as_str()))
            .cloned()
            .collect()
    };
    assert_eq!(shared(&entries), shared(&single));
}

/// Runs `systemd-analyze verify` on `text` saved as `file_name`, with
/// ExecStart's binary pointed at the one just built (verify wants it to exist).
/// Unknown keys and bad values are only warnings (exit 0): none may name the unit.
fn assert_verified(text: &str, file_name: &str) {
    let dir = tempfile::tempdir().unwrap();
    let unit = dir.path().join(file_name);
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
        "systemd-analyze verify {file_name} failed:\n{stderr}"
    );
    let about_unit: Vec<&str> = stderr.lines().filter(|l| l.contains(file_name)).collect();
    assert!(
        about_unit.is_empty(),
        "warnings:\n{}",
        about_unit.join("\n")
    );
}

fn systemd_analyze_installed() -> bool {
    match Command::new("systemd-analyze").arg("--version").output() {
        Ok(version) => {
            assert!(version.status.success());
            true
        }
        Err(_) => {
            eprintln!("systemd-analyze not installed: only the parse tests checked the units");
            false
        }
    }
}

#[test]
fn systemd_analyze_verify_accepts_the_unit() {
    if systemd_analyze_installed() {
        assert_verified(&unit_text(UNIT), UNIT);
    }
}

#[test]
fn systemd_analyze_verify_accepts_an_instance_of_the_template() {
    if systemd_analyze_installed() {
        // An instance (its %i resolved) and the template itself.
        assert_verified(&unit_text(TEMPLATE), "sip-blf-sync@acme.service");
        assert_verified(&unit_text(TEMPLATE), TEMPLATE);
    }
}

#[test]
fn parser_reads_sections_and_repeated_keys() {
    let entries = parse_unit("# c\n[Service]\nA=1\nA=2\nEmpty=\n");
    assert_eq!(values(&entries, "Service", "A"), ["1", "2"]);
    assert_eq!(values(&entries, "Service", "Empty"), [""]);
    assert!(values(&entries, "Unit", "A").is_empty());
}
