//! Micro-benchmarks of the per-NOTIFY hot path at 10,000 extensions:
//! telemetry bookkeeping, BLF parsing, and the engine's decision.
//!
//! `cargo bench -p sip-blf-sync-bench --bench hot_paths`
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use std::hint::black_box;
use std::time::{Instant, SystemTime};

use blf::LineState;
use criterion::{criterion_group, criterion_main, Criterion};
use sip_blf_sync::engine::{Engine, EngineSettings, Mapping};
use sip_blf_sync::observe::{SubscriptionStatus, Telemetry};

const EXTENSIONS: usize = 10_000;

fn telemetry(c: &mut Criterion) {
    let t = Telemetry::new();
    for i in 0..EXTENSIONS {
        let ext = (20_000 + i).to_string();
        t.add_extension(&ext, &format!("user{i}@contoso.com"));
        t.set_subscription(&ext, SubscriptionStatus::Active);
    }
    let mut i = 0usize;
    c.bench_function("telemetry: one NOTIFY at 10,000 extensions", |b| {
        b.iter(|| {
            i = (i + 1) % EXTENSIONS;
            let ext = (20_000 + i).to_string();
            t.notify_received(&ext, SystemTime::now());
            let state = if i.is_multiple_of(2) {
                LineState::Busy
            } else {
                LineState::Idle
            };
            t.set_line_state(&ext, state);
        })
    });
}

fn parse(c: &mut Criterion) {
    let body = include_bytes!("../../blf/tests/fixtures/kamailio/busy_callee_confirmed.xml");
    c.bench_function("blf: parse one dialog-info body", |b| {
        b.iter(|| {
            blf::Notification::parse(Some("application/dialog-info+xml"), black_box(body))
                .map(|n| n.line_state())
                .ok()
        })
    });
}

fn engine(c: &mut Criterion) {
    let now = Instant::now();
    let mut e = Engine::new(EngineSettings::default(), now);
    for i in 0..EXTENSIONS {
        e.add_extension(
            &(20_000 + i).to_string(),
            &format!("user{i}@contoso.com"),
            Mapping::default(),
        );
    }
    let mut i = 0usize;
    c.bench_function("engine: line change then poll at 10,000 extensions", |b| {
        b.iter(|| {
            i += 1;
            let ext = (20_000 + i % EXTENSIONS).to_string();
            let state = if (i / EXTENSIONS).is_multiple_of(2) {
                LineState::Busy
            } else {
                LineState::Idle
            };
            e.line_changed(&ext, state, now);
            black_box(e.poll(now))
        })
    });
}

criterion_group!(benches, telemetry, parse, engine);
criterion_main!(benches);
