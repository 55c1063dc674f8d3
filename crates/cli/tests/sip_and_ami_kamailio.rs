//! `SOURCES=sip,ami`: BLF from a real Kamailio (SIPp phones) and AMI from
//! the emulator report the same extensions. While AMI is current it speaks
//! for every line and SIP's line reports are dropped; while AMI is down they
//! pass; when AMI is back its full state replaces them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::process::{Command, Stdio};
use std::time::Duration;

use ami_emulator::{AmiEmulator, EmulatorConfig};
use common::{http_get, lines_of, status_addr, wait_for, wait_for_all, wait_until, PATIENCE};
use testbed::{Kamailio, KamailioOptions, SippCall};

#[test]
#[ignore = "real peer: needs kamailio and sipp (scripts/install-peers.sh); run by scripts/test-all"]
fn ami_speaks_for_the_lines_while_current_and_sip_fills_in_while_it_is_down() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let ami = rt
        .block_on(AmiEmulator::start(
            EmulatorConfig::new()
                .user("blf", "amisecret")
                .freepbx_dnd(true)
                .extensions(["1001", "1002"]),
        ))
        .unwrap();
    ami.register("1001");
    ami.register("1002");
    let pbx = Kamailio::start(KamailioOptions::default()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("extensions.csv"),
        "1001,user1@contoso.com\n1002,user2@contoso.com\n",
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_sip-blf-sync"))
        .args(["run", "--dry-run"])
        .current_dir(dir.path())
        .env("SOURCES", "sip,ami")
        .env("SIP_SERVER", pbx.sip_addr().to_string())
        .env("SIP_USERNAME", "blf")
        .env("SIP_PASSWORD", "blfsecret")
        .env("SIP_LISTEN", "127.0.0.1:0")
        .env("AMI_HOST", ami.addr().to_string())
        .env("AMI_USERNAME", "blf")
        .env("AMI_SECRET", "amisecret")
        .env("EXTENSIONS_JSON", dir.path().join("extensions.json"))
        .env("PRESENCE_STATE_JSON", dir.path().join("state.json"))
        .env("HTTP_LISTEN", "127.0.0.1:0")
        .env("SYNC_DEBOUNCE_MS", "0")
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let out = lines_of(child.stdout.take().unwrap());
    let err = lines_of(child.stderr.take().unwrap());
    let mut log = Vec::new();
    let up = wait_for_all(
        &err,
        &mut log,
        &[
            "status on http://",
            "subscribed to 1001 ",
            "subscribed to 1002 ",
            "AMI: full state read",
        ],
    );
    let addr = status_addr(&up[0]);
    let status = || -> serde_json::Value {
        let (code, body) = http_get(&addr, "/status");
        assert_eq!(code, 200, "{body}");
        serde_json::from_str(&body).unwrap()
    };
    let sip_line = |ext: &str| -> String {
        status()["extensions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["extension"] == ext)
            .map(|e| e["line_state"].as_str().unwrap_or("").to_owned())
            .unwrap_or_default()
    };
    let ami_connected = || status()["sources"][1]["connected"] == true;
    assert_eq!(status()["sources"][1]["name"], "ami");
    wait_until("AMI current", PATIENCE, ami_connected, || {
        status().to_string()
    });
    let mut decisions = Vec::new();

    // AMI current: a call AMI does not report (the emulator has none) is
    // BLF's word only, and is dropped.
    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(300)).unwrap();
    wait_until(
        "BLF busy on both lines",
        PATIENCE,
        || sip_line("1001") == "busy" && sip_line("1002") == "busy",
        || status().to_string(),
    );
    // Something AMI does say: it arrives, and nothing of BLF's came before it.
    ami.set_dnd("1002", true);
    wait_for(
        &out,
        &mut decisions,
        "1002 user2@contoso.com: setPresence DoNotDisturb/Presenting",
    );
    assert!(
        !decisions.iter().any(|d| d.contains("Busy/InACall")),
        "BLF's busy got through while AMI was current: {decisions:#?}"
    );
    call.hang_up().unwrap();
    wait_until(
        "BLF idle again",
        PATIENCE,
        || sip_line("1001") == "idle",
        || status().to_string(),
    );

    // AMI down: BLF's lines pass.
    ami.shutdown(false);
    wait_until(
        "AMI down",
        PATIENCE,
        || !ami_connected(),
        || status().to_string(),
    );
    let call = SippCall::start_held(&pbx, "1001", "1002", Duration::from_millis(300)).unwrap();
    wait_for(
        &out,
        &mut decisions,
        "1001 user1@contoso.com: setPresence Busy/InACall",
    );

    // AMI back: its full state (1001 idle) replaces BLF's busy.
    ami.boot();
    wait_for(
        &out,
        &mut decisions,
        "1001 user1@contoso.com: clearPresence",
    );
    call.hang_up().unwrap();
    child.kill().unwrap();
    child.wait().unwrap();
}
