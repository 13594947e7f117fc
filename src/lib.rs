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

/// Crate-private internals wrapped for the loom suite in `loom-tests/` (a separate crate):
/// the task state machine (`task.rs`) and the sleep protocol (`sleep.rs`). Built only under
/// `--cfg loom`; not part of filch's API. Each method forwards to the one it names.
#[cfg(loom)]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod loom_api {
    use std::any::Any;
    use std::ptr::NonNull;

    use crate::join::JoinHandle;
    use crate::task::{Header, TaskError, TaskRef};

    /// The queue's reference to a task: what a worker pops, claims, runs and releases.
    pub struct QueuedTask(TaskRef);

    /// A heap task running `f` that belongs to no scheduler. Returns the queue's reference,
    /// the handle, and the task's address (to watch its free, or to cancel it).
    ///
    /// # Safety
    /// The handle's `cancel` must not be called: it reads the owning scheduler, and there
    /// is none (use [`TaskAddr::cancel`]).
    pub unsafe fn heap_task<F, T>(f: F) -> (QueuedTask, JoinHandle<T>, TaskAddr)
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let (queued, handle) = TaskRef::new_on_heap::<F, T>(f, std::ptr::null());
        let addr = TaskAddr(NonNull::from(queued.header()));
        (QueuedTask(queued), JoinHandle::new(handle), addr)
    }

    /// A task's address: no reference of its own.
    #[derive(Clone, Copy, Debug)]
    pub struct TaskAddr(NonNull<Header>);

    impl TaskAddr {
        pub fn addr(self) -> usize {
            self.0.as_ptr() as usize
        }

        /// `JoinHandle::cancel` without its statistics (which need a scheduler): T1 claim,
        /// drop the closure unrun, T2 complete as cancelled. Returns whether it won.
        ///
        /// # Safety
        /// The caller holds the task's `JoinHandle` (which keeps the task alive and has
        /// `JOIN_INTEREST`) and calls no other `cancel` on it concurrently.
        pub unsafe fn cancel(self) -> bool {
            // SAFETY: the handle the caller holds keeps the memory alive; this view is
            // turned back into a pointer below without dropping a reference.
            let task = unsafe { TaskRef::from_raw(self.0) };
            let won = task.claim().is_ok();
            if won {
                // SAFETY: we hold RUNNING from the claim.
                unsafe { task.abandon_claimed(TaskError::Cancelled) };
                // SAFETY: claimed and output written; the handle still has JOIN_INTEREST, so
                // nothing is handed back.
                let payload = unsafe { task.complete(true) };
                debug_assert!(payload.is_none());
            }
            let _ = task.into_raw();
            won
        }
    }

    impl QueuedTask {
        /// A worker's whole turn (`TaskRef::run`: T1, run or abandon, T2–T5, with the F1/F2
        /// fast paths). Returns (claimed, panicked, detached panic payload, freed).
        pub fn run(self, abandon: bool) -> (bool, bool, Option<Box<dyn Any + Send>>, bool) {
            let panicked = std::cell::Cell::new(false);
            let ran = self.0.run(abandon, |p| panicked.set(p));
            let freed = match ran.dead {
                Some(dead) => {
                    dead.free_heap();
                    true
                }
                None => false,
            };
            (ran.claimed, panicked.get(), ran.payload, freed)
        }
    }

    /// The searchers count and sleepers bitmap (`sleep.rs`, K1–K5).
    pub struct Sleep(crate::sleep::Sleep);

    impl Sleep {
        pub fn new(workers: usize) -> Sleep {
            Sleep(crate::sleep::Sleep::new(workers))
        }
        pub fn try_start_searching(&self) -> bool {
            self.0.try_start_searching()
        }
        pub fn notify(&self) -> Option<usize> {
            self.0.notify()
        }
        pub fn wake_one(&self) -> Option<usize> {
            self.0.wake_one()
        }
        pub fn prepare_sleep(&self, worker: usize, was_searching: bool) {
            self.0.prepare_sleep(worker, was_searching)
        }
        pub fn cancel_sleep(&self, worker: usize) {
            self.0.cancel_sleep(worker)
        }
        pub fn stop_searching(&self) -> bool {
            self.0.stop_searching()
        }
        pub fn wake_all(&self) -> Vec<usize> {
            self.0.wake_all().collect()
        }
    }
}

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

/// The README's examples, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
