//! How the process shares the machine: the CPU priority of the threads that do background work: moving the working set to history,
//! taking snapshots, and (in the switch) the admin API. They run at a higher nice value than
//! the threads that answer terminals and journal their purchases, so on a busy machine the
//! kernel gives a purchase's work the CPU first. What they do under the projection's lock is
//! short (bounded rounds), so a lower priority never holds the journal up for long.

/// The nice value of the ledger's background threads (the mover, the snapshot thread) and the
/// admin API's: the kernel gives a nice-0 thread about ten times their share of a busy core.
pub const BACKGROUND_NICE: i32 = 10;

/// Gives the calling thread the nice value `nice` (Linux: a thread's own; the process's other
/// threads keep theirs). A refusal (a container without the right) is logged and the thread
/// runs on at its priority.
pub fn lower_this_thread(nice: i32) {
    let thread = rustix::thread::gettid();
    if let Err(error) = rustix::process::setpriority_process(Some(thread), nice) {
        tracing::warn!(%error, nice, "this background thread keeps its CPU priority");
    }
}

/// Turns transparent huge pages off for this process (Linux `PR_SET_THP_DISABLE`; call first
/// thing in `main`). The allocator asks for huge pages on its regions, and the kernel's
/// khugepaged then keeps collapsing partly used regions into 2 MiB pages: resident memory
/// crept up by ~20 MB a minute under load with nothing in the program growing (half of it
/// `AnonHugePages`). A refusal is logged and the process runs on as it is.
pub fn without_huge_pages() {
    if let Err(error) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::warn!(%error, "transparent huge pages stay on: resident memory may creep up");
    }
}
