//! The dashboard in a real browser under load: a board of N extensions
//! changing R times a second (round-robin, idle → ringing → busy → idle)
//! served on loopback, the page open in headless Chromium (`testbed`). The
//! page's frames are counted with `requestAnimationFrame` from inside the
//! page; the figures are its frame rate, its longest frame, and whether it
//! kept up (the tile of the last change shows that change at the end).

use std::time::{Duration, Instant, SystemTime};

use line_board::{app, Access, Board, BoardConfig, LineState, LineUpdate, Listing};
use testbed::{Browser, ChromeDriver};

use crate::figures::{Figure, Report};
use crate::BenchError;

/// Counts frames from inside the page (run through WebDriver, which the
/// page's Content-Security-Policy does not govern).
const COUNT_FRAMES: &str = "window.__frames = []; \
    const tick = (t) => { window.__frames.push(t); requestAnimationFrame(tick); }; \
    requestAnimationFrame(tick);";

fn peer(e: impl std::fmt::Display) -> BenchError {
    BenchError::Peer(e.to_string())
}

fn number(extension: usize) -> String {
    (10_000 + extension).to_string()
}

/// Runs the page against `extensions` lines changing `rate` times a second
/// for `seconds`.
pub fn dashboard(
    rt: &tokio::runtime::Runtime,
    extensions: usize,
    rate: usize,
    seconds: u64,
) -> Result<Report, BenchError> {
    let driver = ChromeDriver::start().map_err(peer)?;
    rt.block_on(async {
        let listings = (0..extensions).map(|i| Listing {
            extension: number(i),
            name: Some(format!("Person {i}")),
            email: Some(format!("person{i}@contoso.com")),
            group: Some(format!("Group {}", i % 20)),
        });
        let board = Board::new(listings, BoardConfig::default());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        let router = app(board.clone(), Access::open());
        let server = tokio::spawn(async move { axum::serve(listener, router).await });

        let browser = Browser::connect(&driver).await.map_err(peer)?;
        browser
            .goto(&format!("http://{addr}/"))
            .await
            .map_err(peer)?;
        browser
            .wait_for("[data-extension]", Duration::from_secs(60), |_| true)
            .await
            .map_err(peer)?;
        browser
            .client()
            .execute(COUNT_FRAMES, Vec::new())
            .await
            .map_err(peer)?;

        // The changes, in steps of 10 ms, until `seconds` have passed.
        let states = [LineState::Ringing, LineState::Busy, LineState::Idle];
        let per_step = (rate / 100).max(1);
        let mut step = tokio::time::interval(Duration::from_millis(10));
        step.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let start = Instant::now();
        let mut next = 0usize;
        while start.elapsed() < Duration::from_secs(seconds) {
            step.tick().await;
            let at = SystemTime::now();
            for _ in 0..per_step {
                let (i, round) = (next % extensions, next / extensions);
                let state = states[round % states.len()];
                board.record(&number(i), LineUpdate::new(state), at);
                next += 1;
            }
        }
        let took = start.elapsed();
        let frames = browser
            .client()
            .execute("return window.__frames;", Vec::new())
            .await
            .map_err(peer)?;
        let frames: Vec<f64> = frames
            .as_array()
            .map(|a| a.iter().filter_map(serde_json::Value::as_f64).collect())
            .unwrap_or_default();
        // Kept up: the first tile (on screen: the first group, the lowest
        // number) comes to show the board's state once the load stops.
        let first = board.extension(&number(0)).map(|e| e.line_state);
        let kept_up = match first {
            Some(state) => {
                let selector = format!(
                    "[data-extension=\"{}\"][data-state=\"{}\"]",
                    number(0),
                    state.as_str()
                );
                let shown = browser
                    .wait_for(&selector, Duration::from_secs(10), |_| true)
                    .await;
                if shown.is_ok() {
                    1.0
                } else {
                    0.0
                }
            }
            None => 0.0,
        };
        let _ = browser.close().await;
        server.abort();

        let mut report = Report::new(
            "dashboard",
            format!(
                "headless Chromium on the page, {extensions} extensions, {rate} changes/s, {seconds} s"
            ),
        );
        let span = match (frames.first(), frames.last()) {
            (Some(a), Some(b)) if b > a => (b - a) / 1000.0,
            _ => 0.0,
        };
        let fps = if span > 0.0 {
            (frames.len() - 1) as f64 / span
        } else {
            0.0
        };
        let longest = frames
            .windows(2)
            .map(|w| w[1] - w[0])
            .fold(0.0_f64, f64::max);
        report.push(Figure::new("frames per second", fps, "/s").at_least(30.0));
        report.push(Figure::new("longest frame", longest, "ms"));
        report.push(Figure::new(
            "changes per second offered",
            next as f64 / took.as_secs_f64(),
            "/s",
        ));
        report.push(Figure::new(
            "page shows the last change (1 = yes)",
            kept_up,
            "",
        ));
        report.note(
            "frames counted by requestAnimationFrame in the page; Chromium headless, software rendering",
        );
        Ok(report)
    })
}
