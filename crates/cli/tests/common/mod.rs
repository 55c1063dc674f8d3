//! Helpers for the tests that run the `sip-blf-sync` binary against real
//! peers: a one-shot HTTP GET, a process's output as a channel of lines, and
//! waiting, with a deadline, on a line, on a set of lines in any order, or
//! on a condition.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod ami_peers;

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A finished process's stdout, then its stderr after a marker line: what
/// a test searches and prints when it fails.
pub fn output_text(out: &std::process::Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// `GET path` on `addr` (HTTP/1.0): the status code and the body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    // A hung server fails the test instead of hanging it.
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let code = text.split(' ').nth(1).unwrap().parse().unwrap();
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (code, body)
}

/// The `host:port` of the last URL (`http://host:port/…`) printed in `line`.
pub fn status_addr(line: &str) -> String {
    let url = line.rsplit("http://").next().unwrap();
    url.split('/').next().unwrap().to_string()
}

/// The lines of `r`, read by a thread, as they come.
pub fn lines_of(r: impl std::io::Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

/// Starts `cmd` with its standard error as a channel of lines (standard
/// output discarded): the service's log, to wait on.
pub fn spawn_logged(
    cmd: &mut std::process::Command,
) -> (std::process::Child, mpsc::Receiver<String>) {
    let mut child = cmd
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let log = lines_of(child.stderr.take().unwrap());
    (child, log)
}

/// How long a test waits for one expected event before it fails: generous,
/// because a loaded 2-core CI machine can be slow, and a passing run never
/// waits for it.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// Reads lines (keeping them in `seen`) until one contains `needle`;
/// [`PATIENCE`] without it is a failure.
pub fn wait_for(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str) -> String {
    wait_for_all(rx, seen, &[needle]).remove(0)
}

/// Reads lines (keeping them in `seen`) until each of `needles` is contained
/// in a line read by this call, in any order: independent events (two
/// extensions, two subscriptions) race. Returns the matching line of each
/// needle, in the order of `needles`.
pub fn wait_for_all(
    rx: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    needles: &[&str],
) -> Vec<String> {
    wait_for_all_matching(rx, seen, needles, |line, needle| line.contains(needle))
}

/// Reads items (keeping them in `seen`) until each of `wanted` matches its
/// own item read by this call, in any order; [`PATIENCE`] without progress is
/// a failure. Returns the matching item of each wanted one, in order.
pub fn wait_for_all_matching<T: Clone + std::fmt::Debug, W: std::fmt::Debug>(
    rx: &mpsc::Receiver<T>,
    seen: &mut Vec<T>,
    wanted: &[W],
    matches: impl Fn(&T, &W) -> bool,
) -> Vec<T> {
    let from = seen.len();
    let mut found: Vec<Option<usize>> = vec![None; wanted.len()];
    loop {
        // Each wanted item takes the first matching item not taken by another.
        for (i, w) in wanted.iter().enumerate() {
            if found[i].is_none() {
                found[i] = (from..seen.len())
                    .find(|&at| !found.contains(&Some(at)) && matches(&seen[at], w));
            }
        }
        if found.iter().all(Option::is_some) {
            return found
                .into_iter()
                .flatten()
                .map(|at| seen[at].clone())
                .collect();
        }
        let item = rx.recv_timeout(PATIENCE).unwrap_or_else(|_| {
            let missing: Vec<&W> = wanted
                .iter()
                .zip(&found)
                .filter(|(_, f)| f.is_none())
                .map(|(w, _)| w)
                .collect();
            panic!("still missing {missing:?} after {PATIENCE:?}; seen: {seen:#?}")
        });
        seen.push(item);
    }
}

/// Checks `done` every few milliseconds until it holds; not holding within
/// `timeout` is a failure described by `what` and `detail()`.
pub fn wait_until(
    what: &str,
    timeout: Duration,
    mut done: impl FnMut() -> bool,
    detail: impl FnOnce() -> String,
) {
    let deadline = Instant::now() + timeout;
    while !done() {
        if Instant::now() >= deadline {
            panic!("{what}: not within {timeout:?}; {}", detail());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}
