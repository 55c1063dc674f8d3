//! What the terminal shows: a table redrawn in place on a terminal, one plain
//! line per change otherwise. Both read the service's own status (line state)
//! and the Graph emulator (the Teams presence a colleague would see).

use std::io::Write as _;
use std::time::{Duration, Instant};

use graph_emulator::GraphEmulator;

use crate::observe::Telemetry;

/// One watched person as the demo saw them.
#[derive(Debug, Clone)]
pub struct Row {
    /// Extension.
    pub extension: String,
    /// First name.
    pub name: String,
    /// UPN.
    pub email: String,
    /// Object id in the emulated tenant.
    pub object_id: String,
    /// Line state now (`None` before the first NOTIFY).
    pub line: Option<String>,
    /// Teams presence now, `Availability/Activity`.
    pub teams: Option<String>,
    /// When either last changed, from the start.
    pub changed: Duration,
    /// Every line state seen, in order, without repeats.
    pub line_seq: Vec<String>,
    /// Every Teams presence seen, in order, without repeats.
    pub teams_seq: Vec<String>,
}

/// Most table rows drawn on a terminal; the rest is on `/status`.
const MAX_ROWS: usize = 30;

/// The live view.
pub struct Display {
    rows: Vec<Row>,
    start: Instant,
    tty: bool,
    drawn: usize,
    last_draw: Option<Instant>,
}

impl Display {
    /// A view of `rows`; `tty` redraws a table in place.
    pub fn new(rows: Vec<Row>, tty: bool) -> Self {
        Self {
            rows,
            start: Instant::now(),
            tty,
            drawn: 0,
            last_draw: None,
        }
    }

    /// The rows as seen so far.
    pub fn rows(&self) -> &[Row] {
        &self.rows
    }

    /// Starts the clock of the "last change" column.
    pub fn restart_clock(&mut self) {
        self.start = Instant::now();
    }

    /// Reads the line states and presences; prints what changed.
    pub fn update(&mut self, telemetry: &Telemetry, emu: &GraphEmulator) {
        let status = telemetry.status_json();
        let lines: std::collections::HashMap<&str, &str> = status["extensions"]
            .as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| Some((e["extension"].as_str()?, e["line_state"].as_str()?)))
                    .collect()
            })
            .unwrap_or_default();
        let now = self.start.elapsed();
        let mut changed_any = false;
        let mut out = String::new();
        for row in &mut self.rows {
            let line = lines.get(row.extension.as_str()).map(|s| s.to_string());
            let teams = emu
                .presence_of(&row.object_id)
                .map(|p| format!("{}/{}", p.availability, p.activity));
            if line == row.line && teams == row.teams {
                continue;
            }
            changed_any = true;
            row.changed = now;
            if let Some(l) = &line {
                if row.line_seq.last() != Some(l) {
                    row.line_seq.push(l.clone());
                }
            }
            if let Some(t) = &teams {
                if row.teams_seq.last() != Some(t) {
                    row.teams_seq.push(t.clone());
                }
            }
            row.line = line;
            row.teams = teams;
            if !self.tty {
                out.push_str(&format!(
                    "{:>7.2}s  {:<6} {:<9} line {:<8} Teams {}\n",
                    now.as_secs_f64(),
                    row.extension,
                    row.name,
                    row.line.as_deref().unwrap_or("-"),
                    row.teams.as_deref().unwrap_or("-"),
                ));
            }
        }
        if self.tty {
            // Redraw on change, and twice a second for the "ago" column.
            let stale = self
                .last_draw
                .is_none_or(|t| t.elapsed() >= Duration::from_millis(500));
            if changed_any || stale {
                self.draw();
            }
        } else if !out.is_empty() {
            let mut stdout = std::io::stdout().lock();
            let _ = stdout.write_all(out.as_bytes());
            let _ = stdout.flush();
        }
    }

    /// Draws the table (in place over the previous one).
    pub fn draw(&mut self) {
        if !self.tty {
            return;
        }
        let now = self.start.elapsed();
        let mut out = String::new();
        if self.drawn > 0 {
            // Back to the first line of the previous table.
            out.push_str(&format!("\x1b[{}F", self.drawn));
        }
        let mut lines = vec![format!(
            "\x1b[1m{:<7} {:<10} {:<22} {:<9} {:<28} {:>10}\x1b[0m",
            "ext", "user", "e-mail", "line", "Teams presence", "changed"
        )];
        for row in self.rows.iter().take(MAX_ROWS) {
            let line = row.line.as_deref().unwrap_or("-");
            let colour = match line {
                "ringing" => "\x1b[33m",
                "busy" => "\x1b[31m",
                "hold" => "\x1b[35m",
                "idle" => "\x1b[32m",
                _ => "",
            };
            lines.push(format!(
                "{:<7} {:<10} {:<22} {colour}{:<9}\x1b[0m {:<28} {:>9.1}s",
                row.extension,
                row.name,
                row.email,
                line,
                row.teams.as_deref().unwrap_or("-"),
                now.saturating_sub(row.changed).as_secs_f64(),
            ));
        }
        if self.rows.len() > MAX_ROWS {
            lines.push(format!(
                "… and {} more extensions (see /status)",
                self.rows.len() - MAX_ROWS
            ));
        }
        for l in &lines {
            out.push_str("\x1b[2K");
            out.push_str(l);
            out.push('\n');
        }
        self.drawn = lines.len();
        self.last_draw = Some(Instant::now());
        let mut stdout = std::io::stdout().lock();
        let _ = stdout.write_all(out.as_bytes());
        let _ = stdout.flush();
    }

    /// Prints a message above the table (or as a plain line).
    pub fn say(&mut self, message: &str) {
        let mut stdout = std::io::stdout().lock();
        if self.tty && self.drawn > 0 {
            let _ = write!(stdout, "\x1b[{}F\x1b[J", self.drawn);
            self.drawn = 0;
        }
        let _ = writeln!(stdout, "{message}");
        let _ = stdout.flush();
        drop(stdout);
        if self.tty && self.last_draw.is_some() {
            self.draw();
        }
    }
}
