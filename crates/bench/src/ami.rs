//! AMI events through the engine on one core: the AMI source (`SOURCES=ami`)
//! reading the AMI emulator, the engine's hub, and a [`ViewFeed`] that counts
//! the changed views, all on one tokio current-thread runtime pinned to
//! core 0. The emulator runs on the harness's runtime (core 1) and writes a
//! stream of events built before the clock starts, so it is not the limit,
//! keeping a window of changes in flight so that the service neither waits
//! for input nor holds a backlog (the `ami` driver queues without bound).
//!
//! Two figures: the full state at connect (login → every extension known:
//! `ExtensionStateList`, `DeviceStateList` and one `DBGet` per extension for
//! FreePBX's DND flag), then the event rate. Each line change is the pair
//! Asterisk sends for it, `DeviceStateChange` of the phone then
//! `ExtensionStatus` of its hint, in the wire form of Asterisk 22; every
//! extension goes round a call (ringing → in use → on hold → idle), so each
//! `ExtensionStatus` changes its person's view.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use ami_emulator::{status_text, AmiEmulator, DeviceState, EmulatorConfig, DEFAULT_CONTEXT};
use sip_blf_engine::{FedView, LineState, Runtime, RuntimeConfig, ViewFeed};
use sip_blf_sync::ami_source::{AmiSettings, AmiSource};
use sip_blf_sync::extensions::Extension;
use sip_blf_sync::settings::Env;

use crate::figures::{Figure, Report};
use crate::fixture::{self, Fixture};
use crate::procfs::ThreadTimes;
use crate::BenchError;

/// The call each extension goes round: the phone's device state, the hint's
/// `Status`, and the line state the engine shows for it.
const CALL: [(DeviceState, i32, LineState); 4] = [
    (DeviceState::Ringing, 8, LineState::Ringing),
    (DeviceState::InUse, 1, LineState::Busy),
    (DeviceState::OnHold, 16, LineState::Hold),
    (DeviceState::NotInUse, 0, LineState::Idle),
];

/// Where each extension is in [`CALL`] after the full state: idle.
const IDLE: usize = 3;

/// The size of each write handed to the emulator.
const CHUNK: usize = 1 << 20;

/// The manager user and its secret.
const USER: (&str, &str) = ("blf", "bench-secret");

/// How long the feed may stay silent before the run is given up.
const STALL: Duration = Duration::from_secs(30);

/// AMI events per line change (`DeviceStateChange` + `ExtensionStatus`).
const EVENTS_PER_CHANGE: u64 = 2;

/// The bytes Asterisk 22 sends for one line change of extension `exten`
/// (FreePBX hints, as the emulator lists them) to step `step` of [`CALL`].
pub fn change_bytes(exten: &str, step: usize, out: &mut Vec<u8>) {
    use std::io::Write as _;
    let (device, status, _) = CALL[step % CALL.len()];
    // Writing into a Vec cannot fail.
    let _ = write!(
        out,
        "Event: DeviceStateChange\r\nPrivilege: call,all\r\nDevice: PJSIP/{exten}\r\n\
         State: {device}\r\n\r\n\
         Event: ExtensionStatus\r\nPrivilege: call,all\r\nExten: {exten}\r\n\
         Context: {DEFAULT_CONTEXT}\r\nHint: PJSIP/{exten}&Custom:DND{exten},CustomPresence:{exten}\r\n\
         Status: {status}\r\nStatusText: {}\r\n\r\n",
        status_text(status)
    );
}

/// One write of the stream: its bytes, and how many line changes the
/// stream holds up to its end.
#[derive(Debug)]
pub struct Chunk {
    /// The events.
    pub bytes: Vec<u8>,
    /// Line changes from the stream's start to this chunk's end.
    pub changes_to_end: u64,
}

/// `rounds` line changes of every extension, round by round (so the same
/// extension changes again only after all the others), in writes of about
/// [`CHUNK`] bytes.
pub fn event_stream(extensions: &[String], rounds: usize) -> Vec<Chunk> {
    let mut chunks = Vec::new();
    let mut chunk = Vec::with_capacity(CHUNK + 512);
    let mut changes = 0;
    for round in 0..rounds {
        for exten in extensions {
            change_bytes(exten, round, &mut chunk);
            changes += 1;
            if chunk.len() >= CHUNK {
                let bytes = std::mem::replace(&mut chunk, Vec::with_capacity(CHUNK + 512));
                chunks.push(Chunk {
                    bytes,
                    changes_to_end: changes,
                });
            }
        }
    }
    if !chunk.is_empty() {
        chunks.push(Chunk {
            bytes: chunk,
            changes_to_end: changes,
        });
    }
    chunks
}

/// The changes counted at the feed so far, for the writer's window.
#[derive(Debug, Default)]
struct Counted {
    changes: AtomicU64,
    more: tokio::sync::Notify,
}

/// What the service thread tells the harness.
enum Progress {
    /// Every extension known (the full state read), and the service
    /// thread's times from the source's start to then.
    Known {
        at: Instant,
        started: Instant,
        cpu: Option<ThreadTimes>,
    },
    /// Every change of the stream counted at the feed.
    Done {
        at: Instant,
        counts: Counts,
        cpu: Option<ThreadTimes>,
    },
    Failed(String),
}

/// What the feed handed out during the load.
#[derive(Debug, Default, Clone, Copy)]
struct Counts {
    /// Views taken from the feed.
    views: u64,
    /// Line changes they carry: a person's view that moved k steps round
    /// [`CALL`] carries k (the feed keeps the latest view per person).
    changes: u64,
    /// Views whose line had not moved (none expected).
    unmoved: u64,
}

/// The service: AMI source → engine → a counting feed, on a current-thread
/// runtime on this thread.
fn service(
    settings: &AmiSettings,
    list: &[Extension],
    rounds: usize,
    progress: &mpsc::Sender<Progress>,
    counted: &Counted,
) -> Result<(), BenchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let directory = sip_blf_sync::people::directory(list)
            .map_err(|e| BenchError::setup(format!("directory: {e}")))?;
        let mut runtime = Runtime::start(directory, RuntimeConfig::default())
            .map_err(|e| BenchError::setup(e.to_string()))?;
        let mut feed = runtime
            .add_feed("bench")
            .await
            .map_err(|e| BenchError::setup(e.to_string()))?;
        let names: Vec<String> = list.iter().map(|e| e.extension.clone()).collect();
        let started = Instant::now();
        let cpu_start = crate::procfs::thread_times();
        runtime.add_source(AmiSource::start(settings, &names));

        // The full state: every person's line known (idle).
        let mut step: Vec<Option<usize>> = vec![None; list.len()];
        let mut known = 0;
        while known < list.len() {
            for fed in next(&mut feed, known as u64, "extensions known").await? {
                let i = person_index(&fed)?;
                if !fed.replay && fed.view.line == LineState::Idle && step[i].is_none() {
                    step[i] = Some(IDLE);
                    known += 1;
                }
            }
        }
        let cpu_known = crate::procfs::thread_times();
        let _ = progress.send(Progress::Known {
            at: Instant::now(),
            started,
            cpu: cpu_start.zip(cpu_known).map(|(a, b)| b.since(a)),
        });

        // The load: count the changes each view carries.
        let total = (list.len() * rounds) as u64;
        let mut counts = Counts::default();
        while counts.changes < total {
            for fed in next(&mut feed, counts.changes, "line changes counted").await? {
                let i = person_index(&fed)?;
                let Some(at) = CALL.iter().position(|c| c.2 == fed.view.line) else {
                    return Err(BenchError::Peer(format!(
                        "{} shows {:?}, not a state of the call",
                        fed.view.person.as_str(),
                        fed.view.line
                    )));
                };
                counts.views += 1;
                let from = step[i].unwrap_or(IDLE);
                let moved = (at + CALL.len() - from) % CALL.len();
                if moved == 0 {
                    counts.unmoved += 1;
                }
                counts.changes += moved as u64;
                step[i] = Some(at);
            }
            counted.changes.store(counts.changes, Ordering::Release);
            counted.more.notify_one();
        }
        let at = Instant::now();
        let cpu_done = crate::procfs::thread_times();
        let _ = progress.send(Progress::Done {
            at,
            counts,
            cpu: cpu_known.zip(cpu_done).map(|(a, b)| b.since(a)),
        });
        runtime.stop(Duration::from_secs(2)).await;
        Ok(())
    })
}

/// The feed's next views, or an error when it stays silent for [`STALL`].
async fn next(feed: &mut ViewFeed, so_far: u64, what: &str) -> Result<Vec<FedView>, BenchError> {
    match tokio::time::timeout(STALL, feed.next()).await {
        Ok(Some(views)) => Ok(views),
        Ok(None) => Err(BenchError::Peer("the engine stopped".into())),
        Err(_) => Err(BenchError::Peer(format!(
            "nothing from the engine for {STALL:?} after {so_far} {what}"
        ))),
    }
}

fn person_index(fed: &FedView) -> Result<usize, BenchError> {
    fixture::index_of_object_id(fed.view.person.as_str()).ok_or_else(|| {
        BenchError::Peer(format!(
            "a view for an unknown person {}",
            fed.view.person.as_str()
        ))
    })
}

/// The emulator with `names` (FreePBX hints, every phone registered) on
/// the harness's runtime, and the time it took the `Login` action.
fn start_emulator(
    rt: &tokio::runtime::Runtime,
    names: &[String],
) -> Result<(AmiEmulator, tokio::sync::oneshot::Receiver<Instant>), BenchError> {
    let config = EmulatorConfig::new()
        .user(USER.0, USER.1)
        .freepbx_dnd(true)
        .extensions(names);
    let emulator = rt.block_on(AmiEmulator::start(config))?;
    for name in names {
        emulator.register(name);
    }
    // The stream is written faster than any reader takes it: Asterisk's
    // 100 ms write time-out would close the session.
    emulator.set_write_timeout(Duration::from_secs(3600));
    let mut actions = emulator.subscribe_actions();
    let (login_tx, login_rx) = tokio::sync::oneshot::channel();
    rt.spawn(async move {
        while let Ok(action) = actions.recv().await {
            if action.is("Login") {
                let _ = login_tx.send(Instant::now());
                return;
            }
        }
    });
    Ok((emulator, login_rx))
}

/// The benchmark: `n` extensions, `rounds` line changes each, with at most
/// `window` line changes written and not yet counted at the feed (0: the
/// whole stream at once).
pub fn ami(
    rt: &tokio::runtime::Runtime,
    n: usize,
    rounds: usize,
    window: u64,
) -> Result<Report, BenchError> {
    let fixture = Fixture::new(n)?;
    let list = sip_blf_sync::extensions::load(&fixture.extensions_path())
        .map_err(|e| BenchError::setup(format!("extension list: {e}")))?;
    let names: Vec<String> = list.iter().map(|e| e.extension.clone()).collect();
    let (emulator, login) = start_emulator(rt, &names)?;
    let chunks = event_stream(&names, rounds);
    let bytes: usize = chunks.iter().map(|c| c.bytes.len()).sum();
    let host = emulator.addr().to_string();
    let settings = AmiSettings::from_env(&Env::from_pairs([
        ("AMI_HOST", host.as_str()),
        ("AMI_USERNAME", USER.0),
        ("AMI_SECRET", USER.1),
    ]))
    .map_err(|e| BenchError::setup(format!("AMI settings: {e}")))?;

    let one_core = crate::pin::cores() >= 2;
    let (progress, reports) = mpsc::channel();
    let counted = Arc::new(Counted::default());
    let counting = counted.clone();
    let service_thread = std::thread::Builder::new()
        .name("ami-service".into())
        .spawn(move || {
            if one_core {
                crate::pin::pin_current_thread(0);
            }
            if let Err(e) = service(&settings, &list, rounds, &progress, &counting) {
                let _ = progress.send(Progress::Failed(e.to_string()));
            }
        })?;
    let outcome = measure(rt, &emulator, login, chunks, &reports, (&counted, window));
    let _ = service_thread.join();
    rt.block_on(emulator.stop());
    let run = outcome?;

    let changes = (n * rounds) as u64;
    let events = changes * EVENTS_PER_CHANGE;
    let load = run.done.saturating_duration_since(run.sent).as_secs_f64();
    let mut report = Report::new(
        "ami",
        format!(
            "{n} extensions (FreePBX hints), {rounds} line changes each, {}; AMI source, engine \
             and a counting feed on {}, AMI emulator on {}",
            if window == 0 {
                "the whole stream at once".to_owned()
            } else {
                format!("at most {window} changes in flight")
            },
            if one_core { "core 0" } else { "the only core" },
            if one_core { "core 1" } else { "it too" },
        ),
    );
    report.push(Figure::new(
        format!("full state: login to {n} extensions known"),
        run.known.saturating_duration_since(run.login).as_secs_f64() * 1e3,
        "ms",
    ));
    report.push(Figure::new(
        "full state: connect and log in",
        run.login
            .saturating_duration_since(run.started)
            .as_secs_f64()
            * 1e3,
        "ms",
    ));
    if let Some(cpu) = run.cpu_full {
        let wall = run
            .known
            .saturating_duration_since(run.started)
            .as_secs_f64();
        report.push(Figure::new(
            "full state: service thread on its core",
            100.0 * cpu.on_cpu.as_secs_f64() / wall.max(1e-9),
            "%",
        ));
    }
    report.push(Figure::new(
        "AMI events per second through the engine",
        events as f64 / load.max(1e-9),
        "/s",
    ));
    report.push(Figure::new(
        "line changes per second at the feed",
        run.counts.changes as f64 / load.max(1e-9),
        "/s",
    ));
    report.push(Figure::new("line changes sent", changes as f64, ""));
    report.push(Figure::new(
        "line changes counted at the feed",
        run.counts.changes as f64,
        "",
    ));
    report.push(Figure::new(
        "views taken from the feed",
        run.counts.views as f64,
        "",
    ));
    report.push(Figure::new(
        "views that did not move",
        run.counts.unmoved as f64,
        "",
    ));
    if let Some(cpu) = run.cpu_load {
        report.push(Figure::new(
            "load: service thread on its core",
            100.0 * cpu.on_cpu.as_secs_f64() / load.max(1e-9),
            "%",
        ));
        report.push(Figure::new(
            "load: service thread waiting for its core",
            100.0 * cpu.waiting.as_secs_f64() / load.max(1e-9),
            "%",
        ));
        report.push(Figure::new(
            "load: service CPU per AMI event",
            cpu.on_cpu.as_secs_f64() * 1e6 / events.max(1) as f64,
            "µs",
        ));
    }
    report.note(format!(
        "{events} events, {:.1} MiB, built before the clock starts; timed from the first \
         write to the last change counted at the feed",
        bytes as f64 / (1024.0 * 1024.0)
    ));
    if let Some(memory) = crate::procfs::memory(std::process::id()) {
        report.push(Figure::new(
            "process VmHWM (stream, emulator and service)",
            memory.hwm_kib as f64 / 1024.0,
            "MiB",
        ));
    }
    if run.counts.views < run.counts.changes {
        report.note(format!(
            "the feed handed out {} views for {} changes: it keeps the latest view per person",
            run.counts.views, run.counts.changes
        ));
    }
    Ok(report)
}

/// The instants of one run.
struct Run {
    started: Instant,
    login: Instant,
    known: Instant,
    sent: Instant,
    done: Instant,
    cpu_full: Option<ThreadTimes>,
    cpu_load: Option<ThreadTimes>,
    counts: Counts,
}

/// Waits for the full state, writes the stream (keeping at most `window`
/// changes in flight), waits for the count.
fn measure(
    rt: &tokio::runtime::Runtime,
    emulator: &AmiEmulator,
    login: tokio::sync::oneshot::Receiver<Instant>,
    chunks: Vec<Chunk>,
    reports: &mpsc::Receiver<Progress>,
    (counted, window): (&Arc<Counted>, u64),
) -> Result<Run, BenchError> {
    let gone = || BenchError::Peer("the service thread ended".into());
    let (known, started, cpu_full) = match reports.recv().map_err(|_| gone())? {
        Progress::Known { at, started, cpu } => (at, started, cpu),
        Progress::Failed(e) => return Err(BenchError::Peer(e)),
        Progress::Done { .. } => return Err(BenchError::Peer("done before known".into())),
    };
    let login = rt
        .block_on(login)
        .map_err(|_| BenchError::Peer("the emulator saw no Login".into()))?;
    // Written from the emulator's own core, yielding between writes so
    // that its session starts writing at once.
    let sender = emulator.clone();
    let counted = counted.clone();
    let sent = Instant::now();
    rt.block_on(rt.spawn(async move {
        let mut previous = 0;
        for chunk in chunks {
            // The window holds at least one whole chunk.
            let limit = window.max(chunk.changes_to_end - previous);
            previous = chunk.changes_to_end;
            while window > 0 && counted.changes.load(Ordering::Acquire) + limit < previous {
                // notify_one keeps a permit: a count made before this wait wakes it.
                if tokio::time::timeout(STALL, counted.more.notified())
                    .await
                    .is_err()
                {
                    return Err(BenchError::Peer(format!(
                        "no change counted for {STALL:?} while writing"
                    )));
                }
            }
            sender.send_raw(&chunk.bytes);
            tokio::task::yield_now().await;
        }
        Ok(())
    }))
    .map_err(|e| BenchError::setup(e.to_string()))??;
    let (done, counts, cpu_load) = match reports.recv().map_err(|_| gone())? {
        Progress::Done { at, counts, cpu } => (at, counts, cpu),
        Progress::Failed(e) => return Err(BenchError::Peer(e)),
        Progress::Known { .. } => return Err(BenchError::Peer("known twice".into())),
    };
    Ok(Run {
        started,
        login,
        known,
        sent,
        done,
        cpu_full,
        cpu_load,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_change_is_the_pair_asterisk_sends() {
        let mut out = Vec::new();
        change_bytes("1001", 1, &mut out);
        let text = String::from_utf8(out).unwrap();
        assert_eq!(
            text,
            "Event: DeviceStateChange\r\nPrivilege: call,all\r\nDevice: PJSIP/1001\r\n\
             State: INUSE\r\n\r\n\
             Event: ExtensionStatus\r\nPrivilege: call,all\r\nExten: 1001\r\n\
             Context: ext-local\r\nHint: PJSIP/1001&Custom:DND1001,CustomPresence:1001\r\n\
             Status: 1\r\nStatusText: InUse\r\n\r\n"
        );
    }

    #[test]
    fn the_stream_goes_round_every_extension_in_turn() {
        let names = vec!["1".to_owned(), "2".to_owned()];
        let chunks = event_stream(&names, 5);
        assert_eq!(chunks.last().map(|c| c.changes_to_end), Some(10));
        let stream: Vec<u8> = chunks.into_iter().flat_map(|c| c.bytes).collect();
        let text = String::from_utf8(stream).unwrap();
        assert_eq!(text.matches("Event: ExtensionStatus").count(), 10);
        assert_eq!(text.matches("Event: DeviceStateChange").count(), 10);
        let statuses: Vec<&str> = text
            .lines()
            .filter_map(|l| l.strip_prefix("Status: "))
            .collect();
        assert_eq!(
            statuses,
            ["8", "8", "1", "1", "16", "16", "0", "0", "8", "8"]
        );
    }
}
