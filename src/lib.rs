//! filch: a lock-free, work-stealing task scheduler.
//!
//! An M:N scheduler running closures on one pinned worker thread per core. Each worker
//! owns a bounded Chase–Lev deque; tasks live in a fixed, pre-allocated pool, so a spawn
//! allocates nothing; idle workers spin, then `sched_yield`, then park on a futex, and a
//! protocol with no lost wakeups wakes them.
//!
//! ```
//! let sched = filch::Scheduler::builder().workers(2).build().unwrap();
//! let handles: Vec<_> = (0..10u64).map(|i| sched.spawn(move || i * i)).collect();
//! let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
//! assert_eq!(sum, 285);
//! ```
//!
//! The verified core is usable on its own:
//! - [`deque`]: a bounded Chase–Lev work-stealing deque (owner push/pop, thief
//!   steal/steal_batch) on explicit atomics and fences.
//! - [`pool`]: a fixed, pre-allocated slot pool with lock-free, ABA-safe allocation and
//!   per-thread caches; no heap allocation after construction.
//!
//! Every concurrent structure is model-checked with loom (`make loom`) and tested
//! against sequential models with proptest; see `docs/VERIFICATION.md`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

mod builder;
pub mod deque;
pub(crate) mod inject;
mod join;
pub(crate) mod park;
pub mod pool;
mod scheduler;
pub(crate) mod sleep;
mod stats;
#[doc(hidden)]
pub mod sync;
pub(crate) mod task;
mod worker;

pub use builder::{BuildError, Builder, Idle, MAX_WORKERS, MIN_DEQUE_CAPACITY, MIN_POOL_CAPACITY};
pub use join::JoinHandle;
pub use scheduler::{Handle, Scheduler, ShutdownTimeout, SpawnError, SpawnErrorKind};
pub use stats::{Stats, WorkerStats};
pub use task::{TaskError, INLINE as TASK_INLINE_BYTES};

/// Spawns `f` on the current worker's scheduler, or, outside any worker, on a global
/// default scheduler built lazily with [`Builder`]'s defaults (and never shut down).
///
/// ```
/// let h = filch::spawn(|| 2 + 2);
/// assert_eq!(h.join().unwrap(), 4);
/// ```
pub fn spawn<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    // On a worker: spawn through its context directly (no `Handle`, no `Arc` clone).
    let mut f = Some(f);
    let local = worker::with_current(|ctx| ctx.map(|c| c.shared().spawn_inner(f.take().unwrap(), true)));
    match local {
        Some(Ok(h)) => h,
        Some(Err(e)) => {
            drop(e.into_inner());
            JoinHandle::refused()
        }
        None => global().spawn(f.take().unwrap()),
    }
}

fn global() -> &'static Scheduler {
    static GLOBAL: std::sync::OnceLock<Scheduler> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(Scheduler::new)
}

/// A handle to the scheduler whose worker is running this code, if any.
pub fn current() -> Option<Handle> {
    worker::with_current(|ctx| ctx.map(|c| Handle::from_shared(c.shared().clone())))
}

/// Lets other work run. On a worker thread, runs one queued task (if any) before
/// returning `true`; elsewhere (or with nothing queued) yields the thread and returns
/// `false`. Tasks are closures, not coroutines, so a task cannot be suspended: this is how
/// a long task shares its worker.
pub fn yield_now() -> bool {
    let ran = worker::with_current(|ctx| ctx.and_then(|c| c.find_task().map(|t| c.run_task(t))));
    if ran.is_none() {
        park::yield_now();
    }
    ran.is_some()
}
