//! Helpers for the tests that run the `sip-blf-sync` binary against real
//! peers: a one-shot HTTP GET, a process's output as a channel of lines, and
//! waiting on a line or a condition with a deadline.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead as _, BufReader, Read as _, Write as _};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// `GET path` on `addr` (HTTP/1.0): the status code and the body.
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
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

/// The `host:port` of the status URL (`http://host:port/status`) printed in `line`.
pub fn status_addr(line: &str) -> String {
    let url = line.split("http://").nth(1).unwrap();
    url.trim_end_matches("/status").to_string()
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

/// Reads lines (keeping them in `seen`) until one contains `needle`; 30 s
/// without it is a failure.
pub fn wait_for(rx: &mpsc::Receiver<String>, seen: &mut Vec<String>, needle: &str) -> String {
    loop {
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .unwrap_or_else(|_| panic!("no line with {needle:?} within 30 s; seen: {seen:#?}"));
        seen.push(line.clone());
        if line.contains(needle) {
            return line;
        }
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
