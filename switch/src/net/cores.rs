//! Thread per core: terminal connections are spread over single-threaded runtimes, one per
//! core, and each connection lives its whole life on the one it was given.
//!
//! Why: on a work-stealing runtime every request that arrives wakes whichever worker is
//! parked so it can steal, and every answer the journal releases may land on the other
//! worker; on two cores that was one to two context switches per purchase (BENCHMARKS.md,
//! eleventh session). A connection that stays on one thread is read, authorized and answered
//! there; the only wake-up from outside is the journal's, once per durable batch, not once
//! per purchase. Accepting stays on the main runtime: a connection is accepted once and lives
//! for hours, so handing it over costs nothing that matters.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

use tokio::runtime::Handle;
use tokio::sync::oneshot;

/// Most connection threads a switch starts, whatever the machine says it has.
pub const CORES_MAX: usize = 64;

/// The connection threads and their runtimes. Dropping it stops them (their connections'
/// tasks are dropped): wait for the connections to end first.
#[derive(Debug)]
pub struct Cores {
    /// Each thread's runtime, to spawn connections on.
    handles: Vec<Handle>,
    /// The thread the next connection goes to.
    next: AtomicUsize,
    /// Ends each thread's `block_on`; dropped on drop.
    stops: Vec<oneshot::Sender<()>>,
    /// Joined on drop.
    threads: Vec<JoinHandle<()>>,
}

impl Cores {
    /// Starts `count` threads (at least one, at most [`CORES_MAX`]), each running a
    /// single-threaded runtime with I/O and timers.
    pub fn start(count: usize) -> std::io::Result<Cores> {
        let count = count.clamp(1, CORES_MAX);
        let mut cores = Cores {
            handles: Vec::with_capacity(count),
            next: AtomicUsize::new(0),
            stops: Vec::with_capacity(count),
            threads: Vec::with_capacity(count),
        };
        for index in 0..count {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let (stop, stopped) = oneshot::channel::<()>();
            cores.handles.push(runtime.handle().clone());
            cores.stops.push(stop);
            cores.threads.push(
                std::thread::Builder::new()
                    .name(format!("ssn-core-{index}"))
                    .spawn(move || {
                        runtime.block_on(async {
                            let _ = stopped.await;
                        })
                    })?,
            );
        }
        Ok(cores)
    }

    /// Threads running connections.
    pub fn count(&self) -> usize {
        self.handles.len()
    }

    /// Runs `task` on the next thread in turn.
    pub fn spawn<F>(&self, task: F)
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let index = self.next.fetch_add(1, Ordering::Relaxed) % self.handles.len();
        self.handles[index].spawn(task);
    }
}

impl Drop for Cores {
    fn drop(&mut self) {
        self.stops.clear();
        for thread in self.threads.drain(..) {
            // A thread that panicked has nothing left to stop.
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tasks_go_round_the_threads_and_each_stays_on_its_own() {
        let cores = Cores::start(3).unwrap();
        let (sender, receiver) = std::sync::mpsc::channel();
        for task in 0..6 {
            let sender = sender.clone();
            cores.spawn(async move {
                let before = std::thread::current().name().map(str::to_owned);
                tokio::task::yield_now().await;
                let after = std::thread::current().name().map(str::to_owned);
                sender.send((task, before, after)).unwrap();
            });
        }
        let mut seen: Vec<_> = (0..6).map(|_| receiver.recv().unwrap()).collect();
        seen.sort();
        for (task, before, after) in seen {
            assert_eq!(before, after, "task {task} moved between threads");
            assert_eq!(before.as_deref(), Some(&*format!("ssn-core-{}", task % 3)));
        }
        drop(cores);
    }

    #[test]
    fn a_count_out_of_range_is_clamped() {
        assert_eq!(Cores::start(0).unwrap().count(), 1);
    }
}
