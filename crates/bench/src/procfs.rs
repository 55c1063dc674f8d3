//! Reading a process's memory from `/proc/<pid>/status`, a thread's CPU
//! and run-queue time from `/proc/thread-self/schedstat`, and the time the
//! hypervisor took from this virtual machine's CPUs from `/proc/stat`.

use std::time::Duration;

/// Resident set size now and at its peak, in KiB (`VmRSS`, `VmHWM`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Memory {
    /// `VmRSS`.
    pub rss_kib: u64,
    /// `VmHWM` (peak RSS).
    pub hwm_kib: u64,
}

/// The memory of process `pid` (`None` if it is gone or the fields are missing).
pub fn memory(pid: u32) -> Option<Memory> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    parse_status(&text)
}

/// `VmRSS` and `VmHWM` from the text of `/proc/<pid>/status`.
pub fn parse_status(text: &str) -> Option<Memory> {
    let field = |name: &str| -> Option<u64> {
        let line = text.lines().find(|l| l.starts_with(name))?;
        line.split_whitespace().nth(1)?.parse().ok()
    };
    Some(Memory {
        rss_kib: field("VmRSS:")?,
        hwm_kib: field("VmHWM:")?,
    })
}

/// A thread's time as the scheduler counts it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ThreadTimes {
    /// Time on a CPU (user and system).
    pub on_cpu: Duration,
    /// Time runnable but waiting for a CPU (another thread had it).
    pub waiting: Duration,
}

impl ThreadTimes {
    /// The time from `earlier` to `self`.
    pub fn since(self, earlier: ThreadTimes) -> ThreadTimes {
        ThreadTimes {
            on_cpu: self.on_cpu.saturating_sub(earlier.on_cpu),
            waiting: self.waiting.saturating_sub(earlier.waiting),
        }
    }
}

/// The calling thread's times so far (`None` without schedstat).
pub fn thread_times() -> Option<ThreadTimes> {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").ok()?;
    parse_schedstat(&text)
}

/// A `schedstat` line: nanoseconds on a CPU, nanoseconds waiting for one.
pub fn parse_schedstat(text: &str) -> Option<ThreadTimes> {
    let mut fields = text.split_whitespace().map(str::parse::<u64>);
    let on_cpu = fields.next()?.ok()?;
    let waiting = fields.next()?.ok()?;
    Some(ThreadTimes {
        on_cpu: Duration::from_nanos(on_cpu),
        waiting: Duration::from_nanos(waiting),
    })
}

/// CPU time the hypervisor gave to others while this machine's CPUs wanted
/// it ("steal", summed over the CPUs), so far (`None` where not counted).
/// A latency tail measured while it grows says more of the host than of
/// the service.
pub fn stolen() -> Option<Duration> {
    parse_steal(&std::fs::read_to_string("/proc/stat").ok()?)
}

/// The steal of `/proc/stat`'s `cpu` line, in USER_HZ ticks (1/100 s on
/// Linux, whatever the kernel's own tick).
pub fn parse_steal(text: &str) -> Option<Duration> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let ticks: u64 = line.split_whitespace().nth(8)?.parse().ok()?;
    Some(Duration::from_millis(ticks.saturating_mul(10)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_rss_and_peak() {
        let text = "Name:\tx\nVmHWM:\t   20480 kB\nVmRSS:\t   10240 kB\n";
        assert_eq!(
            parse_status(text),
            Some(Memory {
                rss_kib: 10240,
                hwm_kib: 20480
            })
        );
        assert_eq!(parse_status("Name: x\n"), None);
        assert!(memory(std::process::id()).is_some_and(|m| m.rss_kib > 0));
    }

    #[test]
    fn reads_a_thread_s_cpu_time() {
        assert_eq!(
            parse_schedstat("1837309 104818 3\n"),
            Some(ThreadTimes {
                on_cpu: Duration::from_nanos(1_837_309),
                waiting: Duration::from_nanos(104_818),
            })
        );
        assert_eq!(parse_schedstat(""), None);
    }

    #[test]
    fn reads_the_time_stolen_by_the_hypervisor() {
        let text = "cpu  1195206 1744598 425718 1542680 17383 0 10509 38653 0 0\ncpu0 1 2 3 4 5 6 7 8 0 0\n";
        assert_eq!(parse_steal(text), Some(Duration::from_millis(386_530)));
        assert_eq!(parse_steal("cpu0 1 2 3\n"), None);
    }
}
