//! Child processes we own: spawn, observe, stop by pid (never by name).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use rustix::process::{kill_process, Pid, Signal};

use crate::Error;

/// How often a process is looked at while waiting for it to exit.
const POLL: Duration = Duration::from_millis(20);

/// Finds `program` in `PATH` and in the sbin directories (which a non-root
/// `PATH` often lacks). Errors with "`<program>` not found: run scripts/install-peers.sh".
pub(crate) fn find_program(program: &'static str) -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    let extra = ["/usr/local/sbin", "/usr/sbin", "/sbin", "/usr/bin", "/bin"];
    std::env::split_paths(&path)
        .chain(extra.iter().map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| is_executable(candidate))
        .ok_or(Error::Missing { program })
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path)
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Parent pid and start time (field 22 of `/proc/<pid>/stat`) of `pid`;
/// `None` when the process is gone (or a zombie waiting to be reaped).
fn stat(pid: u32) -> Option<(u32, u64)> {
    let text = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // the command name (field 2) is in parentheses and may contain spaces
    let rest = &text[text.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest starts at field 3 (state): ppid is field 4, starttime field 22
    if matches!(fields.first(), Some(&"Z") | Some(&"X")) {
        return None;
    }
    let ppid = fields.get(1)?.parse().ok()?;
    let start = fields.get(19)?.parse().ok()?;
    Some((ppid, start))
}

/// All descendants of `root` that are alive now, with their start times
/// (to tell them from a later process that reuses the pid).
fn descendants(root: u32) -> Vec<(u32, u64)> {
    let mut all = Vec::new();
    if let Ok(entries) = fs::read_dir("/proc") {
        for entry in entries.flatten() {
            if let Some(pid) = entry
                .file_name()
                .to_str()
                .and_then(|s| s.parse::<u32>().ok())
            {
                if let Some((ppid, start)) = stat(pid) {
                    all.push((pid, ppid, start));
                }
            }
        }
    }
    let mut found: Vec<(u32, u64)> = Vec::new();
    let mut frontier = vec![root];
    while let Some(parent) = frontier.pop() {
        for &(pid, ppid, start) in &all {
            if ppid == parent && !found.iter().any(|&(p, _)| p == pid) {
                found.push((pid, start));
                frontier.push(pid);
            }
        }
    }
    found
}

fn signal(pid: u32, sig: Signal) {
    if let Some(pid) = i32::try_from(pid).ok().and_then(Pid::from_raw) {
        // ESRCH (already gone) is fine
        let _ = kill_process(pid, sig);
    }
}

/// A child process this crate started; stopped (SIGTERM, then SIGKILL for it
/// and its own children) when dropped.
#[derive(Debug)]
pub(crate) struct Proc {
    child: Child,
    name: String,
    stopped: bool,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and stdout+stderr appended to `log`.
    pub(crate) fn spawn(mut cmd: Command, name: &str, log: &Path) -> Result<Proc, Error> {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(log)
            .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| Error::io(format!("opening {}", log.display()), e))?;
        cmd.stdin(Stdio::null()).stdout(out).stderr(err);
        let child = cmd
            .spawn()
            .map_err(|e| Error::io(format!("starting {name}"), e))?;
        Ok(Proc {
            child,
            name: name.to_owned(),
            stopped: false,
        })
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The exit status if it has exited.
    pub(crate) fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    /// Waits up to `timeout` for the process to exit on its own.
    pub(crate) fn wait_timeout(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.exited() {
                return Some(status);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(POLL);
        }
    }

    /// SIGTERM, wait up to `grace`, then SIGKILL; afterwards SIGKILL any of its
    /// children that outlived it. Only this pid and its own descendants.
    pub(crate) fn stop(&mut self, grace: Duration) {
        self.stop_with(Signal::TERM, grace);
    }

    /// As [`Proc::stop`], with `first` instead of SIGTERM (PostgreSQL takes
    /// SIGTERM as "wait for every client to leave", SIGINT as "shut down now").
    pub(crate) fn stop_with(&mut self, first: Signal, grace: Duration) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        if self.exited().is_some() {
            return;
        }
        let pid = self.pid();
        // children are recorded again while it shuts down: one forked late
        // (start-up not finished) must not be missed and left running
        let mut kids = descendants(pid);
        signal(pid, first);
        let deadline = Instant::now() + grace;
        while self.exited().is_none() {
            for kid in descendants(pid) {
                if !kids.contains(&kid) {
                    kids.push(kid);
                }
            }
            if Instant::now() >= deadline {
                eprintln!(
                    "testbed: {} (pid {pid}) ignored {first:?} for {grace:?}, sending SIGKILL",
                    self.name
                );
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(POLL);
        }
        for (kid, start) in kids {
            if stat(kid).map(|(_, s)| s) == Some(start) {
                signal(kid, Signal::KILL);
            }
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}

/// The last `n` lines of a text file (lossy UTF-8); empty if unreadable.
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let bytes = fs::read(path).unwrap_or_default();
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

/// A fresh temporary run directory `testbed-<what>-XXXX`; kept after the
/// test when `TESTBED_KEEP_RUN_DIRS=1` (for debugging), removed otherwise.
pub(crate) fn run_dir(what: &str) -> Result<tempfile::TempDir, Error> {
    let mut dir = tempfile::Builder::new()
        .prefix(&format!("testbed-{what}-"))
        .tempdir()
        .map_err(|e| Error::io(format!("creating the run directory of {what}"), e))?;
    if std::env::var_os("TESTBED_KEEP_RUN_DIRS").is_some_and(|v| v == "1") {
        eprintln!("testbed: keeping {}", dir.path().display());
        dir.disable_cleanup(true);
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_program_names_the_install_script() {
        let err = find_program("testbed-no-such-peer").unwrap_err();
        assert_eq!(
            err.to_string(),
            "testbed-no-such-peer not found: run scripts/install-peers.sh"
        );
    }

    #[test]
    fn tail_returns_the_last_lines() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("log");
        std::fs::write(&f, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&f, 2), "b\nc");
        assert_eq!(tail(&f, 10), "a\nb\nc");
        assert_eq!(tail(&dir.path().join("none"), 3), "");
    }

    #[test]
    fn stopping_a_child_ends_it_and_its_children() {
        let dir = tempfile::tempdir().unwrap();
        let mut cmd = Command::new("sh");
        // a child that ignores nothing and has a grandchild
        cmd.args(["-c", "sleep 30 & wait"]);
        let mut p = Proc::spawn(cmd, "sh", &dir.path().join("out")).unwrap();
        let pid = p.pid();
        let deadline = Instant::now() + Duration::from_secs(5);
        while descendants(pid).is_empty() {
            assert!(Instant::now() < deadline, "grandchild never started");
            std::thread::sleep(POLL);
        }
        let kids = descendants(pid);
        p.stop(Duration::from_secs(2));
        assert!(p.exited().is_some());
        for (kid, start) in kids {
            // SIGKILL is delivered asynchronously
            let deadline = Instant::now() + Duration::from_secs(5);
            while stat(kid).map(|(_, s)| s) == Some(start) {
                assert!(Instant::now() < deadline, "child {kid} left running");
                std::thread::sleep(POLL);
            }
        }
    }
}
