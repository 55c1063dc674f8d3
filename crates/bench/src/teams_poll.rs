//! Reading Teams presence back (`TEAMS_TO_PBX`): the Teams source polling
//! `getPresencesByUserId` for N people against the Graph emulator.
//!
//! The people are given by UPN, as an extension list with only e-mail
//! addresses gives them, so each needs a lookup before it can be read. The
//! lookups are made first, not timed with the cycles, by a client whose
//! budget is raised for them; the polling client starts with their results in
//! its user cache and keeps Graph's default budget (1,500 requests per 30 s).
//! Then the first poll (everyone reported) is timed on its own, and N cycles
//! after it, each after one person's Teams presence changed (a Teams call
//! starts or ends), which that cycle must report. The source runs on a tokio
//! current-thread runtime in a thread pinned to core 0; the emulator on the
//! harness's runtime (core 1). Requests are counted both by the source
//! ([`PollOutcome::requests`]) and by the emulator.

use std::time::{Duration, Instant};

use graph_emulator::{GraphEmulator, Operation};
use graph_presence::{BudgetConfig, GraphClient, GraphConfig, MAX_IDS_PER_PRESENCE_READ};
use sip_blf_engine::{Fact, Source};
use sip_blf_sync::extensions::Extension;
use sip_blf_sync::settings::Env;
use sip_blf_sync::teams_source::{PollOutcome, TeamsSource};

use crate::figures::{percentiles_ms, Figure, Report};
use crate::fixture::{self, Fixture};
use crate::procfs::ThreadTimes;
use crate::BenchError;

/// The presence everyone has between calls.
const AVAILABLE: (&str, &str) = ("Available", "Available");

/// The presence of a person in a Teams call.
const IN_A_CALL: (&str, &str) = ("Busy", "InACall");

/// The poll period the source is built with (unused: the cycles are driven
/// with `poll_once`, back to back).
const PERIOD: Duration = Duration::from_secs(30);

/// The extension list as a CSV with only e-mail addresses: `n` people, one
/// extension each, keyed by UPN.
pub fn extensions_by_upn(n: usize) -> Result<Vec<Extension>, BenchError> {
    let mut csv = String::from("extension,email\n");
    for i in 0..n {
        csv.push_str(&format!("{},{}\n", fixture::extension(i), fixture::upn(i)));
    }
    sip_blf_sync::extensions::parse_csv(std::path::Path::new("extensions.csv"), &csv)
        .map_err(|e| BenchError::setup(format!("extension list: {e}")))
}

/// The person whose presence changes before cycle `cycle`: spread over the
/// list, so that no two cycles in a row touch the same part of it.
fn changed_person(cycle: usize, n: usize) -> usize {
    (cycle.wrapping_mul(7_919) + 1) % n.max(1)
}

/// What the service thread measured.
#[derive(Debug, Default)]
struct Run {
    lookups: Duration,
    first: Duration,
    first_outcome: Option<PollOutcome>,
    first_reported: usize,
    cycles: Vec<Duration>,
    /// `PollOutcome::requests` of each timed cycle.
    requests: Vec<usize>,
    /// `getPresencesByUserId` requests the emulator saw in each timed cycle.
    emulator_requests: Vec<usize>,
    /// Cycles that reported exactly the changed person, with the new presence.
    changes_reported: usize,
    /// Cycles that reported anything else, or failed.
    wrong: Vec<String>,
    lookups_in_cycles: usize,
    cpu: Option<ThreadTimes>,
}

/// The benchmark: `n` people, `cycles` timed polls.
pub fn teams_poll(
    rt: &tokio::runtime::Runtime,
    n: usize,
    cycles: usize,
) -> Result<Report, BenchError> {
    let fixture = Fixture::new(n)?;
    let emulator = rt.block_on(fixture.emulator(None))?;
    for i in 0..n {
        emulator.set_client_session(&fixture::object_id(i), AVAILABLE.0, AVAILABLE.1);
    }
    let env: Vec<(String, String)> = fixture::graph_env(&emulator);
    let env = Env::from_pairs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    let graph = sip_blf_sync::settings::graph_config(&env)
        .map_err(|e| BenchError::setup(format!("Graph settings: {e}")))?;
    let extensions = extensions_by_upn(n)?;

    let one_core = crate::pin::cores() >= 2;
    let outcome = std::thread::scope(|scope| {
        let service = std::thread::Builder::new()
            .name("teams-source".into())
            .spawn_scoped(scope, || {
                if one_core {
                    crate::pin::pin_current_thread(0);
                }
                measure(&emulator, graph, &extensions, cycles)
            })?;
        service
            .join()
            .map_err(|_| BenchError::Peer("the source thread panicked".into()))?
    });
    let largest_read = emulator
        .requests()
        .iter()
        .filter(|r| r.operation == Operation::GetPresencesByUserId)
        .filter_map(|r| r.id_count)
        .max()
        .unwrap_or(0);
    let throttled = emulator.throttled_count();
    drop(emulator);
    let run = outcome?;
    Ok(report(n, cycles, one_core, &run, largest_read, throttled))
}

fn report(
    n: usize,
    cycles: usize,
    one_core: bool,
    run: &Run,
    largest_read: usize,
    throttled: u64,
) -> Report {
    let expected = n.div_ceil(MAX_IDS_PER_PRESENCE_READ);
    let mut report = Report::new(
        "teams-poll",
        format!(
            "{n} people by UPN, Teams source (`poll_once`) on {}, Graph emulator on {}; \
             {cycles} cycles, one person's presence changed before each",
            if one_core { "core 0" } else { "the only core" },
            if one_core { "core 1" } else { "it too" },
        ),
    );
    let same = |v: &[usize]| match v.first() {
        Some(&first) if v.iter().all(|&x| x == first) => first as f64,
        // Differing counts show as -1: a cycle sent more or fewer than the others.
        Some(_) => -1.0,
        None => 0.0,
    };
    report.push(Figure::new(
        "requests per cycle (the source's count)",
        same(&run.requests),
        "",
    ));
    report.push(Figure::new(
        "getPresencesByUserId per cycle (the emulator's count)",
        same(&run.emulator_requests),
        "",
    ));
    report.push(Figure::new(
        format!("requests per cycle expected: ceil({n} / {MAX_IDS_PER_PRESENCE_READ})"),
        expected as f64,
        "",
    ));
    report.push(Figure::new(
        "ids in the largest request",
        largest_read as f64,
        "",
    ));
    if let Some((p50, _, max)) = percentiles_ms(&run.cycles) {
        report.push(Figure::new("cycle time, median", p50, "ms"));
        report.push(Figure::new("cycle time, max", max, "ms"));
    }
    report.push(Figure::new(
        "changes reported (one per cycle)",
        run.changes_reported as f64,
        "",
    ));
    report.push(Figure::new(
        "cycles that reported something else or failed",
        run.wrong.len() as f64,
        "",
    ));
    report.push(Figure::new(
        format!("first cycle: {n} presences read and reported"),
        run.first.as_secs_f64() * 1e3,
        "ms",
    ));
    report.push(Figure::new(
        "first cycle: presences reported",
        run.first_reported as f64,
        "",
    ));
    report.push(Figure::new(
        format!("before it, not timed with the cycles: {n} user lookups"),
        run.lookups.as_secs_f64() * 1e3,
        "ms",
    ));
    report.push(Figure::new(
        "user lookups during the cycles",
        run.lookups_in_cycles as f64,
        "",
    ));
    report.push(Figure::new("429 answers", throttled as f64, ""));
    if let Some(cpu) = run.cpu {
        report.push(Figure::new(
            "source CPU per cycle",
            cpu.on_cpu.as_secs_f64() * 1e3 / run.cycles.len().max(1) as f64,
            "ms",
        ));
    }
    if let Some(first) = &run.first_outcome {
        if let Some(e) = &first.error {
            report.note(format!("the first cycle failed: {e}"));
        }
    }
    for w in run.wrong.iter().take(5) {
        report.note(w.clone());
    }
    let budget = BudgetConfig::default();
    if (cycles + 1) * expected > budget.requests() as usize {
        report.note(format!(
            "{} requests in all: past the client's budget ({} per {} s), so later cycles \
             include waits for it",
            (cycles + 1) * expected,
            budget.requests(),
            budget.window().as_secs()
        ));
    }
    let windows = n.div_ceil(budget.requests() as usize).saturating_sub(1);
    if windows > 0 {
        // Computed, not measured: the lookups here run with the budget raised.
        report.note(format!(
            "under the default budget ({} per {} s), looking up {n} users by UPN (a first \
             start without a saved user cache) takes at least {} s",
            budget.requests(),
            budget.window().as_secs(),
            windows as u64 * budget.window().as_secs()
        ));
    }
    report
}

/// The source's side, on a current-thread runtime on this thread.
fn measure(
    emulator: &GraphEmulator,
    graph: GraphConfig,
    extensions: &[Extension],
    cycles: usize,
) -> Result<Run, BenchError> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        let n = extensions.len();
        let mut run = Run::default();

        // The user cache, warmed with the budget out of the way.
        let warm = graph.clone().with_request_budget(BudgetConfig::new(
            u32::try_from(n + 100).unwrap_or(u32::MAX),
            Duration::from_secs(30),
        ));
        let warm = GraphClient::new(warm).map_err(|e| BenchError::setup(e.to_string()))?;
        let upns: Vec<String> = extensions.iter().map(|e| e.user().to_owned()).collect();
        let started = Instant::now();
        let resolved = warm.resolve_users(upns.iter().map(String::as_str)).await;
        run.lookups = started.elapsed();
        if let Some((upn, Err(e))) = resolved.iter().find(|(_, r)| r.is_err()) {
            return Err(BenchError::Peer(format!("looking up {upn}: {e}")));
        }
        let client = GraphClient::new(graph).map_err(|e| BenchError::setup(e.to_string()))?;
        client.seed_user_cache(
            warm.cached_users()
                .iter()
                .map(|(upn, id)| (upn.to_owned(), id.clone())),
        );
        let mut source = TeamsSource::new(client, extensions, PERIOD);

        let started = Instant::now();
        let first = source.poll_once().await;
        run.first = started.elapsed();
        run.first_reported = drain(&mut source, first.changed).await.len();
        run.first_outcome = Some(first);

        let lookups_before = emulator.count(Operation::GetUser);
        let mut in_call = vec![false; n];
        let cpu_start = crate::procfs::thread_times();
        for cycle in 0..cycles {
            let who = changed_person(cycle, n);
            let id = fixture::object_id(who);
            let now = if in_call[who] {
                emulator.end_teams_call(&id);
                AVAILABLE
            } else {
                emulator.start_teams_call(&id);
                IN_A_CALL
            };
            in_call[who] = !in_call[who];
            let reads_before = emulator.count(Operation::GetPresencesByUserId);
            let started = Instant::now();
            let outcome = source.poll_once().await;
            run.cycles.push(started.elapsed());
            run.requests.push(outcome.requests);
            run.emulator_requests
                .push(emulator.count(Operation::GetPresencesByUserId) - reads_before);
            let reported = drain(&mut source, outcome.changed).await;
            let expected = (fixture::upn(who), now.0.to_owned(), now.1.to_owned());
            if outcome.error.is_none() && reported == [expected.clone()] {
                run.changes_reported += 1;
            } else {
                run.wrong.push(format!(
                    "cycle {cycle}: expected {expected:?}, reported {reported:?}, error {:?}",
                    outcome.error
                ));
            }
        }
        let cpu_end = crate::procfs::thread_times();
        run.cpu = cpu_start.zip(cpu_end).map(|(a, b)| b.since(a));
        run.lookups_in_cycles = emulator.count(Operation::GetUser) - lookups_before;
        Ok(run)
    })
}

/// The `count` observations the last poll queued: (key, availability, activity).
async fn drain(source: &mut TeamsSource, count: usize) -> Vec<(String, String, String)> {
    let mut out = Vec::with_capacity(count);
    for _ in 0..count {
        // Queued by the poll: handed out at once, without another poll.
        let Some(observation) = source.next().await else {
            break;
        };
        if let Fact::Presence(p) = observation.fact {
            out.push((observation.address, p.availability, p.activity));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_keys_everyone_by_upn() {
        let list = extensions_by_upn(3).unwrap();
        assert_eq!(list.len(), 3);
        assert_eq!(list[2].user(), fixture::upn(2));
    }

    #[test]
    fn the_changed_people_are_spread_and_in_range() {
        let picked: Vec<usize> = (0..5).map(|c| changed_person(c, 10_000)).collect();
        assert_eq!(picked, [1, 7_920, 5_839, 3_758, 1_677]);
        assert!((0..100).all(|c| changed_person(c, 7) < 7));
    }
}
