//! Figures and their printed form: a small table, or JSON.

use std::fmt::Write as _;
use std::time::Duration;

/// One measured figure.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Figure {
    /// What was measured.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Its unit (`ms`, `/s`, `MiB`…).
    pub unit: String,
    /// The target, as text (`≤ 1 ms`), if there is one.
    pub target: Option<String>,
    /// Whether the target is met.
    pub met: Option<bool>,
}

impl Figure {
    /// A figure without a target.
    pub fn new(name: impl Into<String>, value: f64, unit: &str) -> Self {
        Self {
            name: name.into(),
            value,
            unit: unit.to_owned(),
            target: None,
            met: None,
        }
    }
    /// The figure must be at most `limit`.
    pub fn at_most(mut self, limit: f64) -> Self {
        self.target = Some(format!("<= {} {}", trim(limit), self.unit));
        self.met = Some(self.value <= limit);
        self
    }
    /// The figure must be at least `limit`.
    pub fn at_least(mut self, limit: f64) -> Self {
        self.target = Some(format!(">= {} {}", trim(limit), self.unit));
        self.met = Some(self.value >= limit);
        self
    }
}

fn trim(v: f64) -> String {
    if (v.fract() == 0.0 && v.abs() < 1e15) || v.abs() >= 100.0 {
        format!("{v:.0}")
    } else if v.abs() >= 1.0 {
        format!("{v:.2}")
    } else {
        format!("{v:.3}")
    }
}

/// What one subcommand measured.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Report {
    /// The subcommand (`latency`, `throughput`…).
    pub benchmark: String,
    /// The set-up in a few words (sizes, rates, peers).
    pub setup: String,
    /// The figures.
    pub figures: Vec<Figure>,
    /// NOTIFYs the notifier sent that were not answered 200, or that the
    /// service did not take in (`None` where no NOTIFY is sent).
    pub lost_notifies: Option<u64>,
    /// Anything worth knowing to read the figures.
    pub notes: Vec<String>,
}

impl Report {
    /// An empty report.
    pub fn new(benchmark: &str, setup: impl Into<String>) -> Self {
        Self {
            benchmark: benchmark.to_owned(),
            setup: setup.into(),
            figures: Vec::new(),
            lost_notifies: None,
            notes: Vec::new(),
        }
    }
    /// Adds a figure.
    pub fn push(&mut self, figure: Figure) {
        self.figures.push(figure);
    }
    /// Adds a note.
    pub fn note(&mut self, text: impl Into<String>) {
        self.notes.push(text.into());
    }
    /// The table as printed.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "== {} ({})", self.benchmark, self.setup);
        let width = self
            .figures
            .iter()
            .map(|f| f.name.chars().count())
            .max()
            .unwrap_or(0)
            .max(12);
        for f in &self.figures {
            let verdict = match (f.met, &f.target) {
                (Some(true), Some(t)) => format!("  target {t}: met"),
                (Some(false), Some(t)) => format!("  target {t}: NOT met"),
                _ => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<width$}  {:>12} {}{verdict}",
                f.name,
                trim(f.value),
                f.unit
            );
        }
        if let Some(lost) = self.lost_notifies {
            let _ = writeln!(out, "  {:<width$}  {:>12}", "lost NOTIFYs", lost);
        }
        for n in &self.notes {
            let _ = writeln!(out, "  note: {n}");
        }
        out
    }
}

/// p50, p99 and max of latency samples, in milliseconds (`None` without samples).
pub fn percentiles_ms(samples: &[Duration]) -> Option<(f64, f64, f64)> {
    if samples.is_empty() {
        return None;
    }
    let mut v: Vec<Duration> = samples.to_vec();
    v.sort_unstable();
    let at = |q: f64| {
        let i = ((v.len() as f64 * q).ceil() as usize).clamp(1, v.len()) - 1;
        v.get(i).copied().unwrap_or_default().as_secs_f64() * 1e3
    };
    let max = v.last().copied().unwrap_or_default().as_secs_f64() * 1e3;
    Some((at(0.50), at(0.99), max))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_of_a_hundred_samples() {
        let samples: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
        assert_eq!(percentiles_ms(&samples), Some((50.0, 99.0, 100.0)));
        assert_eq!(percentiles_ms(&[]), None);
    }

    #[test]
    fn table_shows_targets_and_losses() {
        let mut r = Report::new("latency", "10 extensions");
        r.push(Figure::new("p99", 0.5, "ms").at_most(1.0));
        r.push(Figure::new("rate", 900.0, "/s").at_least(1000.0));
        r.lost_notifies = Some(0);
        let t = r.table();
        assert!(t.contains("target <= 1 ms: met"), "{t}");
        assert!(t.contains("target >= 1000 /s: NOT met"), "{t}");
        assert!(t.contains("lost NOTIFYs"), "{t}");
    }
}
