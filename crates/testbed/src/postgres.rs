//! A private PostgreSQL server: `initdb` in a temporary directory, then
//! `postgres` on 127.0.0.1 and a free port, never the system service.

use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use rustix::process::Signal;

use crate::ports::free_port;
use crate::process::{run_dir, tail, Proc};
use crate::{Error, Result};

const ERROR_TAIL: usize = 30;
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// The superuser of every test server (made by `initdb -U`).
pub const POSTGRES_USER: &str = "testbed";
/// Its password (SCRAM on loopback TCP; the server listens nowhere else).
pub const POSTGRES_PASSWORD: &str = "pgsecret";
/// The database that `initdb` creates and [`Postgres::url`] names.
pub const POSTGRES_DB: &str = "postgres";

/// A PostgreSQL server of our own on `127.0.0.1:<free port>`, with its data
/// directory in a temporary run directory; stopped by pid (SIGINT, a fast
/// shutdown, then SIGKILL) on `Drop`.
///
/// PostgreSQL refuses to run as root: as root, `initdb` and `postgres` run as
/// the `postgres` user that Debian's package creates (else `nobody`), and the
/// run directory is handed to that user.
#[derive(Debug)]
pub struct Postgres {
    addr: SocketAddr,
    bin: PathBuf,
    dir: tempfile::TempDir,
    owner: Option<(u32, u32)>,
    proc: Option<Proc>,
}

impl Postgres {
    /// Runs `initdb` and starts the server, waiting until it accepts
    /// connections (`pg_isready`).
    pub fn start() -> Result<Postgres> {
        let bin = bin_dir()?;
        let dir = run_dir("postgres")?;
        let owner = server_owner()?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .map_err(|e| Error::io("handing the run directory to the postgres user", e))?;
        }
        let mut pg = Postgres {
            addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            bin,
            dir,
            owner,
            proc: None,
        };
        pg.initdb(owner)?;
        let mut attempt = 0;
        loop {
            attempt += 1;
            pg.addr.set_port(free_port(&[pg.addr.ip()], true)?);
            match pg.spawn() {
                Ok(proc) => {
                    pg.proc = Some(proc);
                    return Ok(pg);
                }
                Err(e) => {
                    let busy = pg.log_tail(ERROR_TAIL).contains("already in use");
                    if !(busy && attempt < 5) {
                        return Err(e);
                    }
                    let _ = std::fs::remove_file(pg.log_path());
                }
            }
        }
    }

    /// Starts the postmaster on `self.addr` and waits until it is ready.
    fn spawn(&self) -> Result<Proc> {
        let d = self.dir.path();
        let mut cmd = self.command("postgres", self.owner);
        cmd.arg("-D")
            .arg(d.join("data"))
            .arg("-p")
            .arg(self.addr.port().to_string())
            .arg("-k")
            .arg(d)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "logging_collector=off"]);
        let mut proc = Proc::spawn(cmd, "postgres", &self.log_path())?;
        match self.wait_ready(&mut proc) {
            Ok(()) => Ok(proc),
            Err(e) => {
                proc.stop_with(Signal::INT, Duration::from_secs(5));
                Err(e)
            }
        }
    }

    /// Starts the server again after [`Postgres::stop`] (or stops and starts
    /// it), on the same port with the same data: an outage and its end, for
    /// tests of what clients do meanwhile.
    pub fn restart(&mut self) -> Result<()> {
        self.stop();
        self.proc = Some(self.spawn()?);
        Ok(())
    }

    fn initdb(&self, owner: Option<(u32, u32)>) -> Result<()> {
        let d = self.dir.path();
        let pwfile = d.join("pwfile");
        std::fs::write(&pwfile, POSTGRES_PASSWORD)
            .map_err(|e| Error::io("writing the password file", e))?;
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(&pwfile, Some(uid), Some(gid))
                .map_err(|e| Error::io("handing the password file to the postgres user", e))?;
        }
        let mut cmd = self.command("initdb", owner);
        cmd.arg("-D")
            .arg(d.join("data"))
            .args(["-U", POSTGRES_USER, "--pwfile"])
            .arg(&pwfile)
            // password on TCP, so that a wrong one is refused as in production
            .args(["--auth-host=scram-sha-256", "--auth-local=trust"])
            .args(["--no-locale", "--encoding=UTF8", "--no-sync"]);
        let out = run(cmd, "initdb")?;
        let _ = std::fs::remove_file(&pwfile);
        if !out.status.success() {
            let log = d.join("initdb.log");
            let _ = std::fs::write(&log, [out.stdout, out.stderr].concat());
            return Err(Error::Failed {
                what: "initdb".into(),
                detail: format!("exited with {}", out.status),
                tail: tail(&log, ERROR_TAIL),
                log,
            });
        }
        Ok(())
    }

    /// A command for one of the server's programs, run as `owner` in the run
    /// directory, with no `PG*` variable of ours leaking in.
    fn command(&self, program: &str, owner: Option<(u32, u32)>) -> Command {
        use std::os::unix::process::CommandExt;
        let mut cmd = Command::new(self.bin.join(program));
        cmd.current_dir(self.dir.path())
            .env("HOME", self.dir.path())
            .env("LC_ALL", "C");
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("PG") {
                cmd.env_remove(key);
            }
        }
        if let Some((uid, gid)) = owner {
            // std drops the supplementary groups too when it changes the uid
            cmd.uid(uid).gid(gid);
        }
        cmd
    }

    fn wait_ready(&self, proc: &mut Proc) -> Result<()> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = proc.exited() {
                return Err(self.not_ready(format!("postgres exited during start-up ({status})")));
            }
            let mut probe = self.command("pg_isready", None);
            probe
                .args(["-h", "127.0.0.1", "-p"])
                .arg(self.addr.port().to_string())
                .args(["-t", "1", "-q"]);
            if run(probe, "pg_isready")?.status.success() {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(self.not_ready(format!(
                    "not accepting connections on {} within {START_TIMEOUT:?}",
                    self.addr
                )));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn not_ready(&self, detail: String) -> Error {
        Error::NotReady {
            what: format!("PostgreSQL on {}", self.addr),
            detail,
            log: self.log_path(),
            tail: self.log_tail(ERROR_TAIL),
        }
    }

    /// The connection URL of database [`POSTGRES_DB`]:
    /// `postgres://testbed:pgsecret@127.0.0.1:PORT/postgres`.
    pub fn url(&self) -> String {
        self.url_for(POSTGRES_DB)
    }

    /// The connection URL of database `db` on this server.
    pub fn url_for(&self, db: &str) -> String {
        format!(
            "postgres://{POSTGRES_USER}:{POSTGRES_PASSWORD}@{}/{db}",
            self.addr
        )
    }

    /// Creates database `db` (with `createdb`), for tests that want one each.
    pub fn create_database(&self, db: &str) -> Result<()> {
        self.client("createdb", &[db]).map(drop)
    }

    /// Runs `sql` with `psql` in database `db` and returns what it printed
    /// (unaligned, tuples only: one row a line, columns separated by `|`).
    pub fn psql(&self, db: &str, sql: &str) -> Result<String> {
        self.client(
            "psql",
            &[
                "-d",
                db,
                "-X",
                "-A",
                "-t",
                "-v",
                "ON_ERROR_STOP=1",
                "-c",
                sql,
            ],
        )
    }

    fn client(&self, program: &str, args: &[&str]) -> Result<String> {
        let mut cmd = self.command(program, None);
        cmd.args(["-h", "127.0.0.1", "-U", POSTGRES_USER, "-p"])
            .arg(self.addr.port().to_string())
            .args(args)
            .env("PGPASSWORD", POSTGRES_PASSWORD);
        let out = run(cmd, "a PostgreSQL client")?;
        if !out.status.success() {
            return Err(Error::Failed {
                what: format!("{program} {}", args.join(" ")),
                detail: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
                log: self.log_path(),
                tail: self.log_tail(ERROR_TAIL),
            });
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// The server's address (TCP, loopback only).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The pid of the postmaster, while it runs.
    pub fn pid(&self) -> Option<u32> {
        self.proc.as_ref().map(Proc::pid)
    }

    /// The server's log file.
    pub fn log_path(&self) -> PathBuf {
        self.dir.path().join("postgres.log")
    }

    /// The last `n` lines of the server's log.
    pub fn log_tail(&self, n: usize) -> String {
        tail(&self.log_path(), n)
    }

    /// The run directory (data directory `data/`, log, Unix socket).
    pub fn run_dir(&self) -> &Path {
        self.dir.path()
    }

    /// Stops the server (fast shutdown, then SIGKILL after 10 s). Idempotent.
    pub fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.stop_with(Signal::INT, Duration::from_secs(10));
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(mut cmd: Command, what: &str) -> Result<Output> {
    cmd.stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| Error::io(format!("running {what}"), e))
}

/// The newest `/usr/lib/postgresql/<version>/bin` that has both `initdb` and
/// `postgres` (Debian keeps them out of `PATH`); else a `PATH` that has them.
fn bin_dir() -> Result<PathBuf> {
    let has_both = |d: &Path| d.join("initdb").is_file() && d.join("postgres").is_file();
    let mut versions: Vec<(Vec<u32>, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let key = name
                .split('.')
                .map(|n| n.parse::<u32>().ok())
                .collect::<Option<Vec<u32>>>()?;
            Some((key, e.path().join("bin")))
        })
        .filter(|(_, bin)| has_both(bin))
        .collect();
    versions.sort();
    if let Some((_, bin)) = versions.pop() {
        return Ok(bin);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .find(|d| has_both(d))
        .ok_or(Error::Missing {
            program: "PostgreSQL (initdb, postgres)",
        })
}

/// Who the server runs as: `None` (ourselves) unless we are root, which
/// PostgreSQL refuses; then the `postgres` user, else `nobody`.
fn server_owner() -> Result<Option<(u32, u32)>> {
    if !rustix::process::geteuid().is_root() {
        return Ok(None);
    }
    let passwd =
        std::fs::read_to_string("/etc/passwd").map_err(|e| Error::io("reading /etc/passwd", e))?;
    ["postgres", "nobody"]
        .iter()
        .find_map(|user| passwd_entry(&passwd, user))
        .map(Some)
        .ok_or(Error::Missing {
            program: "an unprivileged user for PostgreSQL (postgres)",
        })
}

/// Uid and gid of `user` in the text of `/etc/passwd`.
fn passwd_entry(passwd: &str, user: &str) -> Option<(u32, u32)> {
    passwd.lines().find_map(|line| {
        let mut f = line.split(':');
        if f.next()? != user {
            return None;
        }
        let uid = f.nth(1)?.parse().ok()?;
        let gid = f.next()?.parse().ok()?;
        Some((uid, gid))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwd_entries_are_read_by_name() {
        let passwd = "root:x:0:0:root:/root:/bin/bash\n\
                      postgres:x:101:104:PostgreSQL administrator,,,:/var/lib/postgresql:/bin/bash\n";
        assert_eq!(passwd_entry(passwd, "postgres"), Some((101, 104)));
        assert_eq!(passwd_entry(passwd, "root"), Some((0, 0)));
        assert_eq!(passwd_entry(passwd, "post"), None);
        assert_eq!(passwd_entry("broken:x:abc:1", "broken"), None);
    }
}
