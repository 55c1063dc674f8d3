use super::*;

const S: Duration = Duration::from_secs(1);

fn timing() -> LeaseTiming {
    LeaseTiming::for_takeover(Duration::from_secs(15))
}

/// A standby at `t0` that got the lease with epoch 1 at once.
fn active(t0: Instant) -> LeaseMachine {
    let mut m = LeaseMachine::new(timing(), t0);
    assert_eq!(m.request(t0), Some(Request::Acquire));
    assert_eq!(
        m.answer(Answer::Granted { epoch: 1 }, t0),
        Some(Change::Activated { epoch: 1 })
    );
    m
}

#[test]
fn timing_fits_the_takeover() {
    let t = timing();
    assert_eq!(t.every, 3 * S);
    assert_eq!(t.lease, 12 * S);
    assert_eq!(t.margin, 3 * S);
    // A standby's last attempt before the expiry plus one more: within the takeover.
    assert!(t.lease + t.every <= 15 * S);
}

#[test]
fn a_standby_asks_every_period_until_granted() {
    let t0 = Instant::now();
    let mut m = LeaseMachine::new(timing(), t0);
    assert_eq!(m.request(t0), Some(Request::Acquire));
    assert_eq!(m.request(t0), None, "one request in flight");
    assert_eq!(m.answer(Answer::Refused, t0 + S), None);
    assert_eq!(m.next_deadline(), t0 + 3 * S);
    assert_eq!(m.request(t0 + 2 * S), None);
    assert_eq!(m.request(t0 + 3 * S), Some(Request::Acquire));
    assert_eq!(m.answer(Answer::Failed, t0 + 3 * S), None);
    assert_eq!(m.role(), Role::Standby);
    assert_eq!(m.request(t0 + 6 * S), Some(Request::Acquire));
    assert_eq!(
        m.answer(Answer::Granted { epoch: 7 }, t0 + 6 * S),
        Some(Change::Activated { epoch: 7 })
    );
    // Valid from the time the request was sent: lease minus margin.
    assert_eq!(
        m.role(),
        Role::Active {
            epoch: 7,
            until: t0 + 15 * S
        }
    );
}

#[test]
fn renewals_extend_the_validity_from_when_they_were_sent() {
    let t0 = Instant::now();
    let mut m = active(t0);
    assert_eq!(m.next_deadline(), t0 + 3 * S);
    assert_eq!(m.request(t0 + 3 * S), Some(Request::Renew { epoch: 1 }));
    // A slow answer does not stretch the validity past the lease.
    assert_eq!(m.answer(Answer::Granted { epoch: 1 }, t0 + 5 * S), None);
    assert_eq!(
        m.role(),
        Role::Active {
            epoch: 1,
            until: t0 + 12 * S
        }
    );
}

#[test]
fn failed_renewals_expire_the_lease_on_the_instances_own_clock() {
    let t0 = Instant::now();
    let mut m = active(t0);
    for at in [3, 6] {
        assert_eq!(m.request(t0 + at * S), Some(Request::Renew { epoch: 1 }));
        assert_eq!(m.answer(Answer::Failed, t0 + at * S), None);
    }
    assert_eq!(
        m.next_deadline(),
        t0 + 9 * S,
        "both the next try and the end"
    );
    assert_eq!(m.tick(t0 + 9 * S - Duration::from_millis(1)), None);
    assert_eq!(
        m.tick(t0 + 9 * S),
        Some(Change::Lost {
            epoch: 1,
            cause: Loss::Expired
        })
    );
    assert_eq!(m.role(), Role::Standby);
    assert_eq!(m.request(t0 + 9 * S), Some(Request::Acquire));
}

#[test]
fn a_frozen_active_finds_its_lease_gone_when_it_wakes() {
    let t0 = Instant::now();
    let mut m = active(t0);
    // Frozen for a minute: the first thing it does is check.
    let woke = t0 + 60 * S;
    assert_eq!(
        m.tick(woke),
        Some(Change::Lost {
            epoch: 1,
            cause: Loss::Expired
        })
    );
    // A renewal sent before the freeze and answered after it does not revive it.
    let mut m = active(t0);
    assert_eq!(m.request(t0 + 3 * S), Some(Request::Renew { epoch: 1 }));
    assert_eq!(
        m.answer(Answer::Granted { epoch: 1 }, woke),
        Some(Change::Lost {
            epoch: 1,
            cause: Loss::Expired
        })
    );
}

#[test]
fn a_refused_renewal_is_a_takeover() {
    let t0 = Instant::now();
    let mut m = active(t0);
    assert_eq!(m.request(t0 + 3 * S), Some(Request::Renew { epoch: 1 }));
    assert_eq!(
        m.answer(Answer::Refused, t0 + 3 * S),
        Some(Change::Lost {
            epoch: 1,
            cause: Loss::TakenOver
        })
    );
    assert_eq!(m.role(), Role::Standby);
}

#[test]
fn a_grant_that_comes_too_late_is_not_counted_on() {
    let t0 = Instant::now();
    let mut m = LeaseMachine::new(timing(), t0);
    assert_eq!(m.request(t0), Some(Request::Acquire));
    assert_eq!(m.answer(Answer::Granted { epoch: 2 }, t0 + 9 * S), None);
    assert_eq!(m.role(), Role::Standby);
}

#[test]
fn two_machines_on_one_database_clock_never_overlap() {
    // A toy database: the lease's holder and expiry on the database's clock,
    // which runs like the instances' clocks here.
    struct Db {
        holder: Option<usize>,
        epoch: i64,
        expires: Instant,
    }
    let t0 = Instant::now();
    let timing = timing();
    let mut db = Db {
        holder: None,
        epoch: 0,
        expires: t0,
    };
    let mut machines = [LeaseMachine::new(timing, t0), LeaseMachine::new(timing, t0)];
    // Instance 0 is frozen from 10 s to 40 s: its requests and answers stop.
    let frozen = |i: usize, at: Instant| i == 0 && at >= t0 + 10 * S && at < t0 + 40 * S;
    let mut at = t0;
    let step = Duration::from_millis(100);
    while at < t0 + 60 * S {
        for (i, m) in machines.iter_mut().enumerate() {
            if frozen(i, at) {
                continue;
            }
            let _ = m.tick(at);
            if let Some(req) = m.request(at) {
                let answer = match req {
                    Request::Acquire if db.expires < at => {
                        db.holder = Some(i);
                        db.epoch += 1;
                        db.expires = at + timing.lease;
                        Answer::Granted { epoch: db.epoch }
                    }
                    Request::Renew { epoch } if db.holder == Some(i) && db.epoch == epoch => {
                        db.expires = at + timing.lease;
                        Answer::Granted { epoch }
                    }
                    _ => Answer::Refused,
                };
                let _ = m.answer(answer, at);
            }
        }
        // Whoever counts itself active at `at` (a frozen one included: it
        // would check as it wakes) is the database's holder.
        let writers: Vec<usize> = (0..2)
            .filter(|&i| matches!(machines[i].role(), Role::Active { until, .. } if at < until))
            .collect();
        assert!(writers.len() <= 1, "two writers at {:?}", at - t0);
        if let Some(&w) = writers.first() {
            assert_eq!(db.holder, Some(w));
        }
        at += step;
    }
    // Instance 1 took over within the takeover time of the freeze.
    assert!(matches!(machines[1].role(), Role::Active { .. }));
}
