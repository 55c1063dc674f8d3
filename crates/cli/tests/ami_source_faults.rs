//! The AMI source against the AMI emulator's faults, in process: a list cut
//! in the middle, garbage and an oversized line, a burst while the engine is
//! not reading, and 10,000 extensions in the full state.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use ami_emulator::{AmiEmulator, DeviceState, EmulatorConfig};
use common::PATIENCE;
use sip_blf_engine::{Fact, LineState, Observation, Source};
use sip_blf_sync::ami_source::{AmiSettings, AmiSource};
use sip_blf_sync::settings::Env;

async fn emulator(extensions: impl IntoIterator<Item = u32>) -> AmiEmulator {
    let config = EmulatorConfig::new()
        .user("blf", "amisecret")
        .freepbx_dnd(true)
        .extensions(extensions);
    AmiEmulator::start(config).await.unwrap()
}

fn source(ami: &AmiEmulator, extensions: &[String]) -> AmiSource {
    let env = Env::from_pairs([
        ("AMI_HOST", ami.addr().to_string().as_str()),
        ("AMI_USERNAME", "blf"),
        ("AMI_SECRET", "amisecret"),
    ]);
    AmiSource::start(&AmiSettings::from_env(&env).unwrap(), extensions)
}

/// Reads observations until every extension's last line state is `want`.
async fn until_all(source: &mut AmiSource, extensions: &[String], want: LineState) -> usize {
    let listed: HashSet<&String> = extensions.iter().collect();
    let mut last: HashMap<String, LineState> = HashMap::new();
    let (mut seen, mut matching) = (0, 0);
    let all = async {
        while matching < extensions.len() {
            let o: Observation = source.next().await.expect("the source stopped");
            seen += 1;
            let Fact::Line { state, .. } = o.fact else {
                continue;
            };
            if !listed.contains(&o.address) {
                continue;
            }
            let before = last.insert(o.address, state);
            matching += usize::from(state == want);
            matching -= usize::from(before == Some(want));
        }
    };
    tokio::time::timeout(PATIENCE, all)
        .await
        .unwrap_or_else(|_| panic!("not every extension {want} within {PATIENCE:?}"));
    seen
}

fn names(range: std::ops::Range<u32>) -> Vec<String> {
    range.map(|n| n.to_string()).collect()
}

/// 1001 and 1002 registered, and a source that has read them idle.
async fn two_idle_phones() -> (AmiEmulator, Vec<String>, AmiSource) {
    let ami = emulator(1001..1003).await;
    ami.register("1001");
    ami.register("1002");
    let exts = names(1001..1003);
    let mut source = source(&ami, &exts);
    until_all(&mut source, &exts, LineState::Idle).await;
    (ami, exts, source)
}

fn logins(ami: &AmiEmulator) -> usize {
    ami.actions().iter().filter(|a| a.is("Login")).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_list_cut_in_the_middle_is_read_again_after_the_reconnect() {
    let ami = emulator(1001..1004).await;
    for e in ["1001", "1002", "1003"] {
        ami.register(e);
    }
    ami.cut_next_list_after(1);
    let exts = names(1001..1004);
    let mut source = source(&ami, &exts);
    until_all(&mut source, &exts, LineState::Idle).await;
    let lists = ami
        .actions()
        .iter()
        .filter(|a| a.is("ExtensionStateList"))
        .count();
    assert_eq!(lists, 2, "the cut list was asked for again");
    assert_eq!(logins(&ami), 2);
    source.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_and_an_oversized_line_cost_a_reconnect_not_the_state() {
    let (ami, exts, mut source) = two_idle_phones().await;

    // An oversized line, then a call the broken session cannot report.
    ami.send_raw(&vec![b'x'; 256 * 1024]);
    ami.send_raw(b"\r\n\r\n\x00\xff: \r\n\r\n");
    let call = ami.call("1001", "1002");
    ami.answer(call);
    until_all(&mut source, &exts, LineState::Busy).await;
    assert!(logins(&ami) >= 2, "the session was not replaced");
    source.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_while_the_engine_is_not_reading_keeps_the_session() {
    let (ami, exts, mut source) = two_idle_phones().await;
    // Asterisk drops a reader 100 ms behind; the source reads at once even
    // while nobody takes its observations.
    ami.set_write_timeout(Duration::from_millis(100));
    for i in 0..20_000 {
        let state = if i % 2 == 0 {
            DeviceState::InUse
        } else {
            DeviceState::NotInUse
        };
        ami.set_device_state("PJSIP/1001", state);
    }
    ami.set_device_state("PJSIP/1002", DeviceState::InUse);
    ami.set_device_state("PJSIP/1001", DeviceState::InUse);
    until_all(&mut source, &exts, LineState::Busy).await;
    assert_eq!(logins(&ami), 1, "the session was dropped");
    source.stop(Duration::from_secs(1)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_thousand_extensions_in_the_full_state() {
    let ami = emulator(10_000..20_000).await;
    for n in 10_000..20_000 {
        ami.register(&n.to_string());
    }
    let exts = names(10_000..20_000);
    let mut source = source(&ami, &exts);
    let seen = until_all(&mut source, &exts, LineState::Idle).await;
    assert!(seen >= 10_000);
    let dbgets = ami.actions().iter().filter(|a| a.is("DBGet")).count();
    assert_eq!(dbgets, 10_000, "one astdb read per extension");
    source.stop(Duration::from_secs(1)).await;
}
