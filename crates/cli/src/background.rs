//! A tokio runtime on a thread of the lowest CPU priority, for sinks off
//! the call path (the database): their work yields the CPU to the SIP source
//! and the presence sink whenever those want it, so table writes never delay
//! a NOTIFY or a Graph call. Under sustained overload such a sink falls
//! behind and catches up afterwards (its lane keeps the latest view per
//! person, so nothing grows).

use std::future::Future;
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// How much lower than the service the background thread runs (Linux nice
/// steps: at +10 it gets about a tenth of a contended core).
pub const NICE: i32 = 10;

/// Puts the calling thread (and the threads it starts, such as SQLite's
/// worker) in Linux's idle scheduling class: it runs whenever the service's
/// own threads leave the CPU free and is preempted the moment they want it.
/// A nice value alone was not enough: a nice thread keeps the CPU for the
/// rest of its slice, which showed as milliseconds in the NOTIFY → Graph
/// tail. Where the class cannot be set, [`NICE`] steps lower, else normal.
fn lower_priority(label: &str) {
    use thread_priority::unix::{
        set_thread_priority_and_policy, thread_native_id, NormalThreadSchedulePolicy,
        ThreadSchedulePolicy,
    };
    let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
    let set = set_thread_priority_and_policy(
        thread_native_id(),
        thread_priority::ThreadPriority::Min,
        idle,
    );
    if set.is_ok() {
        return;
    }
    // Per thread on Linux: a thread id as the "process" of setpriority.
    let tid = rustix::thread::gettid();
    let current = rustix::process::getpriority_process(Some(tid)).unwrap_or(0);
    if let Err(e) = rustix::process::setpriority_process(Some(tid), current + NICE) {
        tracing::info!("the {label} sink runs at normal priority: {e}");
    }
}

/// The background runtime; stopped when dropped.
#[derive(Debug)]
pub struct Background {
    handle: Handle,
    stop: Option<oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Background {
    /// Starts the runtime on a thread named `name`, [`NICE`] steps below
    /// the service (where the system refuses, it runs at the service's
    /// priority and says so in the log).
    pub fn start(name: &str) -> std::io::Result<Background> {
        let (ready, handle) = std::sync::mpsc::channel();
        let (stop, stopping) = oneshot::channel::<()>();
        let label = name.to_owned();
        let thread = std::thread::Builder::new()
            .name(format!("{name}-sink"))
            .spawn(move || {
                lower_priority(&label);
                let runtime = match tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
                {
                    Ok(rt) => rt,
                    Err(e) => {
                        let _ = ready.send(Err(e));
                        return;
                    }
                };
                let _ = ready.send(Ok(runtime.handle().clone()));
                runtime.block_on(async {
                    let _ = stopping.await;
                });
            })?;
        let handle = handle
            .recv()
            .map_err(|_| std::io::Error::other("the background runtime did not start"))??;
        Ok(Background {
            handle,
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    /// The runtime, to spawn on.
    pub fn handle(&self) -> &Handle {
        &self.handle
    }

    /// Runs `future` on the background runtime and waits for its output.
    pub async fn run<T: Send + 'static>(
        &self,
        future: impl Future<Output = T> + Send + 'static,
    ) -> Result<T, tokio::task::JoinError> {
        self.handle.spawn(future).await
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // Joining from inside an async context would block a worker;
            // the thread ends by itself once its runtime returns.
            drop(thread);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn work_runs_on_the_background_thread_in_the_idle_class() {
        let bg = Background::start("test").unwrap();
        use thread_priority::unix::{
            thread_schedule_policy, NormalThreadSchedulePolicy, ThreadSchedulePolicy,
        };
        let (name, policy, started) = bg
            .run(async {
                // A thread it starts (SQLite's worker) inherits the class.
                let child = std::thread::spawn(|| thread_schedule_policy().unwrap());
                (
                    std::thread::current().name().map(str::to_owned),
                    thread_schedule_policy().unwrap(),
                    child.join().unwrap(),
                )
            })
            .await
            .unwrap();
        let idle = ThreadSchedulePolicy::Normal(NormalThreadSchedulePolicy::Idle);
        assert_eq!(name.as_deref(), Some("test-sink"));
        assert_eq!(policy, idle);
        assert_eq!(started, idle);
        assert_ne!(
            thread_schedule_policy().unwrap(),
            idle,
            "the caller is left alone"
        );
    }
}
