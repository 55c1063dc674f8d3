//! `sip-blf-sync demo` as a newcomer runs it, output not a terminal: the
//! scripted day shows in order, /status answers while it runs, and the
//! embedded Graph ends with every presence cleared.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{http_get, lines_of, status_addr, wait_for};

/// The line states printed for `ext`, in order, without repeats.
fn line_states(lines: &[String], ext: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for l in lines {
        let mut words = l.split_whitespace();
        // "  1.25s  1001   Alice     line busy     Teams Busy/InACall"
        let (Some(_time), Some(e), Some(_name), Some("line"), Some(state)) = (
            words.next(),
            words.next(),
            words.next(),
            words.next(),
            words.next(),
        ) else {
            continue;
        };
        if e == ext && state != "-" && out.last().map(String::as_str) != Some(state) {
            out.push(state.to_string());
        }
    }
    out
}

fn strings(v: &serde_json::Value) -> Vec<String> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

#[test]
fn demo_plays_the_day_serves_status_and_clears_every_presence() {
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let database = dir.path().join("day.db");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .args(["demo", "--speed", "20", "--summary-json"])
        .arg(&summary_path)
        .arg("--database")
        .arg(&database)
        // Nothing from the user's settings or environment is read.
        .current_dir(dir.path())
        .env_remove("HTTP_LISTEN")
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    let errors = lines_of(child.stderr.take().unwrap());
    let mut seen = Vec::new();

    // /status answers while the demo runs (before it prints its first change).
    let status_line = wait_for(&lines, &mut seen, "status:  http://");
    let addr = status_addr(&status_line);
    let (code, body) = http_get(&addr, "/status");
    assert_eq!(code, 200, "{body}");
    let status: serde_json::Value = serde_json::from_str(&body).unwrap();
    let exts: Vec<&str> = status["extensions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["extension"].as_str().unwrap())
        .collect();
    assert_eq!(exts, ["1001", "1002", "1003", "1004", "1005"]);
    let (code, metrics) = http_get(&addr, "/metrics");
    assert_eq!(code, 200);
    assert!(metrics.contains("notifies"), "{metrics}");

    // It stops by itself at the end of the day.
    wait_for(
        &lines,
        &mut seen,
        "done: every presence the service set is cleared",
    );
    let deadline = Instant::now() + common::PATIENCE;
    let exit = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "demo did not exit");
        std::thread::sleep(Duration::from_millis(20));
    };
    seen.extend(lines.try_iter());
    let stderr: Vec<String> = errors.try_iter().collect();
    assert!(exit.success(), "{exit:?}\n{seen:#?}\n{stderr:#?}");
    assert!(stderr.iter().all(|l| !l.contains("ERROR")), "{stderr:#?}");

    // Every scene, in order, as the service saw the lines.
    let want: [(&str, &[&str]); 5] = [
        (
            "1001",
            &[
                "idle", "ringing", "busy", "hold", "busy", "idle", "busy", "idle",
            ],
        ),
        ("1002", &["idle", "busy", "idle", "busy", "idle"]),
        ("1003", &["idle", "busy", "ringing", "busy", "idle"]),
        ("1004", &["idle", "ringing", "busy", "idle"]),
        ("1005", &["idle", "busy", "idle", "ringing", "idle"]),
    ];
    for (ext, states) in want {
        assert_eq!(line_states(&seen, ext), states, "{ext}: {seen:#?}");
    }

    // What the emulated Graph saw and ended with.
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["app_sessions_left"], 0);
    assert_eq!(summary["interrupted"], false);
    assert_eq!(summary["pbx"]["notifies_failed"], 0);
    assert!(
        summary["pbx"]["challenges"].as_u64().unwrap() >= 6,
        "{summary}"
    );
    let users = summary["users"].as_array().unwrap();
    assert_eq!(users.len(), 5);
    for (user, (ext, states)) in users.iter().zip(want) {
        assert_eq!(user["extension"], ext);
        assert_eq!(strings(&user["line_states"]), states, "{user}");
        // Busy while a call is up, the user's own Available after each one.
        let calls = states
            .windows(2)
            .filter(|w| w[0] == "idle" && w[1] != "idle")
            .count();
        let mut teams = vec!["Available/Available".to_string()];
        for _ in 0..calls {
            teams.push("Busy/InACall".into());
            teams.push("Available/Available".into());
        }
        // A call that only rang never set anything (ringing keeps the presence).
        if ext == "1005" {
            teams.truncate(3);
        }
        assert_eq!(strings(&user["teams_presences"]), teams, "{user}");
        let requests = strings(&user["graph_requests"]);
        let expected: Vec<&str> = teams
            .iter()
            .skip(1)
            .map(|t| {
                if t == "Busy/InACall" {
                    "setPresence 200"
                } else {
                    "clearPresence 200"
                }
            })
            .collect();
        assert_eq!(requests, expected, "{user}");
        assert_eq!(user["final_presence"], "Available/Available");
        assert_eq!(user["app_session"], false);
    }

    // The day is in the SQLite file too: each line's history follows the
    // scenes (a change the sink had not written yet when the next came may
    // be folded into it), and after the stop every row reads unknown.
    assert!(
        seen.iter()
            .any(|l| l.contains(&database.display().to_string())),
        "the demo says where the database is: {seen:#?}"
    );
    assert_eq!(summary["database"], database.display().to_string());
    let url = format!("sqlite://{}", database.display());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (rows, histories) = rt.block_on(async {
        let store = line_store::LineStore::connect(&url).await.unwrap();
        let rows = store.line_states().await.unwrap();
        let mut histories = Vec::new();
        for (ext, _) in want {
            let h = store.history(ext).await.unwrap();
            histories.push(
                h.into_iter()
                    .map(|e| e.line_state.as_str())
                    .collect::<Vec<_>>(),
            );
        }
        store.close().await;
        (rows, histories)
    });
    assert_eq!(rows.len(), 5);
    assert!(
        rows.iter()
            .all(|r| r.line_state == line_store::LineState::Unknown),
        "{rows:?}"
    );
    for ((ext, states), history) in want.iter().zip(histories) {
        let written: Vec<&str> = history.into_iter().filter(|s| *s != "unknown").collect();
        let mut rest = states.iter();
        assert!(
            written.iter().all(|w| rest.any(|s| s == w)),
            "{ext}: history {written:?} is not in the order of {states:?}"
        );
        assert_eq!(written.first(), Some(&"idle"), "{ext}: {written:?}");
        assert_eq!(written.last(), Some(&"idle"), "{ext}: {written:?}");
        assert!(written.contains(&"busy"), "{ext}: {written:?}");
    }
}

#[test]
fn demo_refuses_a_speed_of_zero() {
    let out = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .args(["demo", "--speed", "0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--speed"));
}

#[test]
fn ctrl_c_mid_call_clears_the_presence_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let summary_path = dir.path().join("summary.json");
    let mut child = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .args(["demo", "--speed", "1", "--summary-json"])
        .arg(&summary_path)
        // Not the default file in the system's temporary directory.
        .arg("--database")
        .arg(dir.path().join("day.db"))
        .current_dir(dir.path())
        .env_remove("HTTP_LISTEN")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let lines = lines_of(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    // Bob dials Alice: his presence turns Busy; then Ctrl-C.
    wait_for(
        &lines,
        &mut seen,
        "Bob       line busy     Teams Busy/InACall",
    );
    let kill = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    wait_for(
        &lines,
        &mut seen,
        "stopped: every presence the service set is cleared",
    );
    let exit = child.wait().unwrap();
    assert!(exit.success(), "{exit:?} {seen:#?}");
    let summary: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&summary_path).unwrap()).unwrap();
    assert_eq!(summary["interrupted"], true);
    assert_eq!(summary["app_sessions_left"], 0);
    let bob = &summary["users"][1];
    assert_eq!(bob["extension"], "1002");
    assert_eq!(
        strings(&bob["graph_requests"]),
        ["setPresence 200", "clearPresence 200"]
    );
    assert_eq!(bob["final_presence"], "Available/Available");
}
