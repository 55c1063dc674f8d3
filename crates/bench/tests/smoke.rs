//! Every subcommand of the benchmark binary in `--smoke` mode (tiny sizes, a
//! few seconds): it runs, prints its figures as JSON, and loses no NOTIFY.
//! Timing targets are not checked here; the figures are the benchmark's job.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::process::Command;

fn smoke(args: &[&str]) -> Vec<serde_json::Value> {
    let out = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync-bench"))
        .args(["--smoke", "--json"])
        .args(args)
        .output()
        .expect("run sip-blf-sync-bench");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{args:?} failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reports: Vec<serde_json::Value> =
        serde_json::from_str(&stdout).unwrap_or_else(|e| panic!("{e}: {stdout}"));
    assert!(!reports.is_empty(), "{args:?}: no report");
    for r in &reports {
        let figures = r["figures"].as_array().unwrap();
        assert!(!figures.is_empty(), "{args:?}: no figures in {r}");
        assert!(
            figures.iter().all(|f| f["value"].as_f64().is_some()),
            "{args:?}: a figure without a value in {r}"
        );
        if !r["lost_notifies"].is_null() {
            assert_eq!(r["lost_notifies"], 0, "{args:?}: NOTIFYs lost in {r}");
        }
    }
    reports
}

fn figure(report: &serde_json::Value, name: &str) -> f64 {
    report["figures"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"].as_str().is_some_and(|n| n.starts_with(name)))
        .unwrap_or_else(|| panic!("no figure {name:?} in {report}"))["value"]
        .as_f64()
        .unwrap()
}

#[test]
fn parse_counts_bodies() {
    let r = smoke(&["parse"]);
    assert!(figure(&r[0], "bodies parsed per second") > 0.0);
}

#[test]
fn graph_economy_sends_each_final_state_once_in_batches() {
    let r = smoke(&["graph-economy"]);
    assert_eq!(figure(&r[0], "429 answers"), 0.0);
    assert!(figure(&r[0], "line-state changes") > 0.0);
    // Not a timing: the debounce makes each settled state one operation.
    assert_eq!(figure(&r[0], "operations per user per final state"), 1.0);
}

#[test]
#[ignore = "real peer: sipp"]
fn latency_with_sipp() {
    for cores in ["split", "shared"] {
        let r = smoke(&["latency", "--cores", cores]);
        assert!(figure(&r[0], "Graph operations") > 0.0);
        assert_eq!(figure(&r[0], "subscriptions active"), 20.0);
        assert!(figure(&r[0], "NOTIFYs in the busiest second") > 0.0);
    }
}

#[test]
#[ignore = "real peer: sipp"]
fn throughput_with_sipp() {
    let r = smoke(&["throughput"]);
    figure(&r[0], "highest clean rate");
}

#[test]
#[ignore = "real peer: sipp"]
fn memory_of_the_service_process() {
    let r = smoke(&["memory"]);
    assert!(figure(&r[0], "VmRSS at 20") > 0.0);
}

#[test]
#[ignore = "real peer: sipp"]
fn startup_unlimited_and_default_pacing() {
    for pacing in ["unlimited", "default"] {
        let r = smoke(&["startup", "--pacing", pacing]);
        assert!(figure(&r[0], "start to 20 active") > 0.0);
    }
}

#[test]
fn latency_with_our_notifier() {
    let r = smoke(&["latency", "--notifier", "ours"]);
    assert!(figure(&r[0], "Graph operations") > 0.0);
    assert_eq!(figure(&r[0], "subscriptions active"), 20.0);
}

#[test]
fn throughput_with_our_notifier() {
    let r = smoke(&["throughput", "--notifier", "ours"]);
    assert!(figure(&r[0], "highest clean rate") > 0.0);
}

#[test]
#[ignore = "real peer: chromium"]
fn dashboard_counts_frames_and_keeps_up() {
    let r = smoke(&["dashboard"]);
    assert!(figure(&r[0], "frames per second") > 0.0);
    assert_eq!(figure(&r[0], "page shows the last change"), 1.0);
}

#[test]
fn ami_counts_every_line_change_at_the_feed() {
    let r = smoke(&["ami"]);
    let sent = figure(&r[0], "line changes sent");
    assert_eq!(sent, 300.0 * 6.0);
    assert_eq!(figure(&r[0], "line changes counted at the feed"), sent);
    assert_eq!(figure(&r[0], "views that did not move"), 0.0);
    assert!(figure(&r[0], "AMI events per second") > 0.0);
    assert!(figure(&r[0], "full state: login to 300 extensions known") > 0.0);
}

#[test]
fn teams_poll_reads_650_ids_a_request_and_reports_each_change() {
    let r = smoke(&["teams-poll"]);
    // 1,400 people: ceil(1400 / 650) = 3 requests a cycle, counted on both sides.
    let expected = 1_400_f64 / 650.0;
    assert_eq!(
        figure(&r[0], "requests per cycle (the source"),
        expected.ceil()
    );
    assert_eq!(figure(&r[0], "getPresencesByUserId per cycle"), 3.0);
    assert_eq!(figure(&r[0], "ids in the largest request"), 650.0);
    assert_eq!(figure(&r[0], "changes reported"), 3.0);
    assert_eq!(figure(&r[0], "cycles that reported something else"), 0.0);
    assert_eq!(figure(&r[0], "first cycle: presences reported"), 1_400.0);
    assert_eq!(figure(&r[0], "user lookups during the cycles"), 0.0);
    assert!(figure(&r[0], "cycle time, median") > 0.0);
}
