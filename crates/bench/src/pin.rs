//! Pinning threads and processes to one core, for the "one core" figures.

/// Pins the calling thread to `cpu`; `false` when the system refuses (e.g. the
/// core is outside the allowed set), in which case the thread stays unpinned.
pub fn pin_current_thread(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    set.set(cpu);
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

/// Pins the calling thread to every core but `cpu` (when there are others).
pub fn pin_current_thread_off(cpu: usize) -> bool {
    let mut set = rustix::thread::CpuSet::new();
    let others: Vec<usize> = (0..cores()).filter(|&c| c != cpu).collect();
    if others.is_empty() {
        return false;
    }
    for c in others {
        set.set(c);
    }
    rustix::thread::sched_setaffinity(None, &set).is_ok()
}

/// Puts the calling thread (and the processes it starts) in Linux's idle
/// scheduling class: it runs only when nothing else wants the core. `false`
/// when the system refuses.
pub fn idle_class_for_current_thread() -> bool {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle),
    )
    .is_ok()
}

/// How many cores this process may run on.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}
