//! Warnings that a peer can cause at will (a forged NOTIFY costs one
//! datagram) are rate-limited: the first few of a spell are logged as they
//! come, the rest are counted and summed up in one line per interval.
//!
//! Sans-IO: time is passed in, and the owner wakes at
//! [`LogLimiter::next_deadline`] to take the summary with
//! [`LogLimiter::poll`], so a flood that stops is still reported.

use std::fmt;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use sip_ua::NotifyRejection;

/// One summary line at most per this interval.
pub const WARNING_INTERVAL: Duration = Duration::from_secs(10);

/// Warnings logged in full at the start of a spell.
pub const WARNING_BURST: u32 = 1;

/// Decides which of a stream of warnings are logged.
///
/// A spell starts with a warning after a quiet interval: its first `burst`
/// warnings are logged, the others counted. At the end of each interval a
/// count of those held back is due ([`poll`](Self::poll)); a spell goes on
/// as long as an interval holds back any, so a steady flood gives one
/// summary per interval and nothing else.
///
/// ```
/// use std::time::{Duration, Instant};
/// use sip_blf_sync::observe::LogLimiter;
///
/// let t0 = Instant::now();
/// let mut limiter = LogLimiter::new(Duration::from_secs(10), 1);
/// assert!(limiter.offer(t0));
/// assert!(!limiter.offer(t0 + Duration::from_millis(1)));
/// assert_eq!(limiter.next_deadline(), Some(t0 + Duration::from_secs(10)));
/// assert_eq!(limiter.poll(t0 + Duration::from_secs(10)), Some(1));
/// ```
#[derive(Debug, Clone)]
pub struct LogLimiter {
    interval: Duration,
    burst: u32,
    /// The interval running, if a spell is on: its end.
    until: Option<Instant>,
    /// Logged in the running interval.
    logged: u32,
    /// Held back in the running interval.
    held: u64,
}

impl LogLimiter {
    /// At most `burst` warnings logged at the start of a spell, then one
    /// summary per `interval`.
    pub fn new(interval: Duration, burst: u32) -> Self {
        Self {
            interval,
            burst,
            until: None,
            logged: 0,
            held: 0,
        }
    }

    /// A warning at `now`: `true` to log it, `false` when it is counted for
    /// the next summary.
    pub fn offer(&mut self, now: Instant) -> bool {
        // A summary due but not taken yet is taken first, so that none is lost.
        if self.until.is_some_and(|end| now >= end) && self.held == 0 {
            self.until = None;
        }
        if self.until.is_none() {
            self.until = Some(now + self.interval);
            self.logged = 0;
            self.held = 0;
        }
        if self.logged < self.burst {
            self.logged += 1;
            true
        } else {
            self.held += 1;
            false
        }
    }

    /// When [`poll`](Self::poll) has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.until
    }

    /// At or after the interval's end: the number of warnings held back in
    /// it, if any (log a summary). A spell that held some back goes on for
    /// another interval, during which every warning is held back; one that
    /// held none back ends.
    pub fn poll(&mut self, now: Instant) -> Option<u64> {
        let end = self.until?;
        if now < end {
            return None;
        }
        let held = std::mem::take(&mut self.held);
        if held == 0 {
            self.until = None;
            return None;
        }
        self.until = Some(now + self.interval);
        self.logged = self.burst;
        Some(held)
    }
}

/// The warnings for rejected NOTIFYs (481), rate-limited: the first of a
/// spell in full, then per [`WARNING_INTERVAL`] a [`RejectedSummary`] such as
/// "1,999 more NOTIFYs rejected (481) in the last 10 s (1,999 unknown
/// dialog); the most recent from 192.0.2.7:5060: NOTIFY for unknown Call-ID …".
#[derive(Debug, Clone)]
pub struct RejectedNotifies {
    limiter: LogLimiter,
    /// Held back since the last summary, by kind (in [`NotifyRejection::ALL`] order).
    by_kind: [u64; NotifyRejection::ALL.len()],
    latest: Option<(SocketAddr, String)>,
}

impl Default for RejectedNotifies {
    fn default() -> Self {
        Self::new(WARNING_INTERVAL, WARNING_BURST)
    }
}

/// The NOTIFYs rejected (481) and held back during one interval.
/// [`Display`](fmt::Display) gives the summary line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RejectedSummary {
    /// How many were held back.
    pub held: u64,
    /// Over how long.
    pub interval: Duration,
    /// How many of each kind (kinds with none left out), in
    /// [`NotifyRejection::ALL`] order.
    pub by_kind: Vec<(NotifyRejection, u64)>,
    /// The most recent: where from and why.
    pub latest: Option<(SocketAddr, String)>,
}

impl fmt::Display for RejectedSummary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let kinds: Vec<String> = self
            .by_kind
            .iter()
            .map(|(k, n)| format!("{} {}", thousands(*n), k.as_str().replace('_', " ")))
            .collect();
        write!(
            f,
            "{} more NOTIFY{} rejected (481) in the last {} s ({})",
            thousands(self.held),
            if self.held == 1 { "" } else { "s" },
            self.interval.as_secs(),
            kinds.join(", "),
        )?;
        if let Some((from, reason)) = &self.latest {
            write!(f, "; the most recent from {from}: {reason}")?;
        }
        Ok(())
    }
}

impl RejectedNotifies {
    /// With its own interval and burst (tests; otherwise [`Default`]).
    pub fn new(interval: Duration, burst: u32) -> Self {
        Self {
            limiter: LogLimiter::new(interval, burst),
            by_kind: [0; NotifyRejection::ALL.len()],
            latest: None,
        }
    }

    /// A NOTIFY was rejected: `true` when it is to be reported now, in
    /// full; otherwise it is held back for the next summary.
    pub fn rejected(
        &mut self,
        from: SocketAddr,
        kind: NotifyRejection,
        reason: &str,
        now: Instant,
    ) -> bool {
        if self.limiter.offer(now) {
            return true;
        }
        if let Some(i) = NotifyRejection::ALL.iter().position(|k| *k == kind) {
            self.by_kind[i] += 1;
        }
        self.latest = Some((from, reason.to_owned()));
        false
    }

    /// When [`poll`](Self::poll) is due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.limiter.next_deadline()
    }

    /// The summary due at `now`, if any.
    pub fn poll(&mut self, now: Instant) -> Option<RejectedSummary> {
        let held = self.limiter.poll(now)?;
        let by_kind = NotifyRejection::ALL
            .iter()
            .copied()
            .zip(std::mem::take(&mut self.by_kind))
            .filter(|(_, n)| *n > 0)
            .collect();
        Some(RejectedSummary {
            held,
            interval: self.limiter.interval,
            by_kind,
            latest: self.latest.take(),
        })
    }
}

/// `1999` → `1,999`.
fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A rejection reported in full, as the test records it.
    const IN_FULL: &str = "in full";

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Every line logged for `events` (times after `t0`), polling at each
    /// deadline as an owner would, up to `end`.
    fn run(
        log: &mut RejectedNotifies,
        t0: Instant,
        events: &[Duration],
        end: Duration,
    ) -> Vec<(Duration, String)> {
        let from: SocketAddr = "192.0.2.7:5060".parse().unwrap();
        let mut lines = Vec::new();
        let mut events = events.iter().copied().peekable();
        loop {
            let next_event = events.peek().copied();
            let deadline = log.next_deadline().map(|d| d - t0);
            match (next_event, deadline) {
                (Some(e), d) if d.is_none_or(|d| e < d) => {
                    events.next();
                    if log.rejected(
                        from,
                        NotifyRejection::UnknownDialog,
                        "NOTIFY for unknown Call-ID x",
                        t0 + e,
                    ) {
                        lines.push((e, IN_FULL.to_owned()));
                    }
                }
                (_, Some(d)) if d <= end => {
                    if let Some(summary) = log.poll(t0 + d) {
                        lines.push((d, summary.to_string()));
                    }
                }
                _ => return lines,
            }
        }
    }

    #[test]
    fn a_flood_is_one_warning_then_one_summary_per_interval() {
        let t0 = Instant::now();
        let mut log = RejectedNotifies::default();
        // 2,000 forged NOTIFYs in half a second.
        let flood: Vec<Duration> = (0..2000).map(|i| Duration::from_micros(i * 250)).collect();
        let lines = run(&mut log, t0, &flood, Duration::from_secs(60));
        assert_eq!(lines.len(), 2, "{lines:#?}");
        assert_eq!(lines[0].0, Duration::ZERO);
        assert_eq!(lines[0].1, IN_FULL);
        assert_eq!(lines[1].0, Duration::from_secs(10));
        assert_eq!(
            lines[1].1,
            "1,999 more NOTIFYs rejected (481) in the last 10 s (1,999 unknown dialog); \
             the most recent from 192.0.2.7:5060: NOTIFY for unknown Call-ID x"
        );
        // Quiet again: the spell is over, nothing more is due.
        assert_eq!(log.next_deadline(), None);
    }

    #[test]
    fn a_steady_flood_gives_one_summary_per_interval_and_nothing_else() {
        let t0 = Instant::now();
        let mut log = RejectedNotifies::default();
        // One a millisecond for 35 s.
        let flood: Vec<Duration> = (0..35_000).map(ms).collect();
        let lines = run(&mut log, t0, &flood, Duration::from_secs(60));
        let at: Vec<u64> = lines.iter().map(|(t, _)| t.as_secs()).collect();
        assert_eq!(at, vec![0, 10, 20, 30, 40], "{lines:#?}");
        assert!(
            lines[1].1.starts_with("9,999 more NOTIFYs"),
            "{}",
            lines[1].1
        );
        assert!(
            lines[2].1.starts_with("10,000 more NOTIFYs"),
            "{}",
            lines[2].1
        );
        assert!(
            lines[4].1.starts_with("5,000 more NOTIFYs"),
            "{}",
            lines[4].1
        );
        // Every one is in a line: logged or summed up.
        let counted: u64 = lines[1..]
            .iter()
            .map(|(_, l)| {
                l.split(' ')
                    .next()
                    .unwrap()
                    .replace(',', "")
                    .parse::<u64>()
                    .unwrap()
            })
            .sum();
        assert_eq!(counted + 1, 35_000);
    }

    #[test]
    fn rare_rejections_are_each_logged_in_full() {
        let t0 = Instant::now();
        let mut log = RejectedNotifies::default();
        let lines = run(
            &mut log,
            t0,
            &[ms(0), ms(11_000), ms(30_000)],
            Duration::from_secs(60),
        );
        assert_eq!(lines.len(), 3, "{lines:#?}");
        assert!(lines.iter().all(|(_, l)| l == IN_FULL));
    }

    #[test]
    fn a_burst_logs_its_first_few_and_the_summary_names_each_kind() {
        let t0 = Instant::now();
        let mut log = RejectedNotifies::new(Duration::from_secs(10), 2);
        let from: SocketAddr = "192.0.2.7:5060".parse().unwrap();
        let kinds = [
            NotifyRejection::UnknownDialog,
            NotifyRejection::DialogMismatch,
            NotifyRejection::UnknownDialog,
            NotifyRejection::DialogMismatch,
            NotifyRejection::Malformed,
        ];
        let logged = kinds
            .iter()
            .enumerate()
            .filter(|(i, k)| log.rejected(from, **k, "why", t0 + ms(*i as u64)))
            .count();
        assert_eq!(logged, 2);
        assert_eq!(log.poll(t0 + ms(9_999)), None);
        assert_eq!(
            log.poll(t0 + Duration::from_secs(10)).unwrap().to_string(),
            "3 more NOTIFYs rejected (481) in the last 10 s \
             (1 unknown dialog, 1 dialog mismatch, 1 malformed); the most recent from 192.0.2.7:5060: why"
        );
    }

    #[test]
    fn thousands_separators() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
