//! Parse + aggregate throughput on typical BLF bodies (`cargo bench -p blf --bench parse`).
//! Criterion reports elements/s = bodies per second.
// criterion_group! generates an undocumented public function.
#![allow(missing_docs)]

use criterion::{black_box, criterion_group, criterion_main, Criterion, Throughput};

/// (name, content type, body)
const BODIES: &[(&str, &str, &[u8])] = &[
    (
        "kamailio_confirmed",
        "application/dialog-info+xml",
        include_bytes!("../tests/fixtures/kamailio/busy_callee_confirmed.xml"),
    ),
    (
        "kamailio_two_dialogs",
        "application/dialog-info+xml",
        include_bytes!("../tests/fixtures/kamailio/ringing_two_calls_confirmed_early.xml"),
    ),
    (
        "asterisk_pjsip_idle",
        "application/dialog-info+xml",
        include_bytes!("../tests/fixtures/asterisk-pjsip/idle_not_inuse.xml"),
    ),
    (
        "asterisk_pjsip_busy",
        "application/dialog-info+xml",
        include_bytes!("../tests/fixtures/asterisk-pjsip/busy_inuse.xml"),
    ),
    (
        "freeswitch_ringing",
        "application/dialog-info+xml",
        include_bytes!("../tests/fixtures/freeswitch/ringing_incoming_early.xml"),
    ),
    (
        "asterisk_pidf_busy",
        "application/pidf+xml",
        include_bytes!("../tests/fixtures/asterisk-pjsip/busy_pidf_on_the_phone.xml"),
    ),
];

fn parse_and_aggregate(c: &mut Criterion) {
    let mut group = c.benchmark_group("parse_and_aggregate");
    group.throughput(Throughput::Elements(1));
    for (name, content_type, body) in BODIES {
        group.bench_function(*name, |b| {
            b.iter(|| {
                let n = blf::Notification::parse(Some(content_type), black_box(body));
                black_box(n.map(|n| n.line_state()))
            })
        });
    }
    group.finish();
}

criterion_group!(benches, parse_and_aggregate);
criterion_main!(benches);
