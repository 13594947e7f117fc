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
//! # Which tool when
//!
//! | you want | use | what it costs |
//! |---|---|---|
//! | run a closure and read its result later | [`spawn`] / [`Scheduler::spawn`] → [`JoinHandle`] | a pool slot, no allocation while the closure and result fit [`TASK_INLINE_BYTES`]; about 290 instructions for spawn + join on a worker |
//! | fire and forget (Go's `go`) | [`spawn_detached`] | the cheapest spawn (about 140 instructions with its run); a panic goes to the panic handler |
//! | split work in two and wait for both (fork-join) | [`join`] | no pool slot: the second half lives on the caller's stack; stolen only when a worker is idle |
//! | tasks that borrow from the stack | [`scope`] / [`Scheduler::scope`] | one pool slot per task; returns when all have finished |
//! | enter a scheduler with borrowing code and get its value | [`Scheduler::install`] | one hop onto a worker |
//! | a loop over a range or slice | [`parallel_for`], [`parallel_reduce`], [`parallel_map`], [`Scheduler::for_each_chunk_mut`] | splits adaptively: only while other workers are idle |
//! | sort a slice | [`parallel_sort_unstable`] | a parallel merge of sorted halves, in place plus one buffer |
//! | many tasks at once, results in order | [`spawn_many`], [`spawn_batch`] → [`TaskGroup`] | one publish and at most one wake-up for the batch |
//! | results as tasks finish | [`JoinSet`] | one handle per task, a completion queue |
//! | wait for N things, limit concurrency, cancel | [`WaitGroup`], [`Semaphore`], [`CancelToken`] | a waiter on a worker runs other tasks while it waits |
//! | a task that waits (timers, channels, other tasks) and costs nothing meanwhile | [`spawn_async`] with [`time`], [`chan`] | a pool slot while the future fits [`TASK_INLINE_BYTES`], else one allocation; a wake is a state-word update and a deque push |
//! | Go's channels and `select` | [`chan`] | one short lock per operation, as Go's; waiting allocates nothing; a sync task that blocks hands its worker to a spare thread |
//! | blocking I/O or a blocking library call | [`spawn_blocking`], or [`block_in_place`] inside a task | a spare thread (started once, kept while busy) |
//! | async code from `main` | [`block_on`] | polls on the calling thread and parks between wakes |
//!
//! What not to do inside a task:
//! - **Block a worker without telling filch**: `std::thread::sleep`, `std::sync::mpsc`,
//!   a blocking socket. The worker's queue stalls while it waits. Use async and
//!   [`time::sleep`], [`chan`], or wrap the call in [`block_in_place`] (or run it with
//!   [`spawn_blocking`]), which hands the worker's queue to a spare thread meanwhile.
//! - **Hold a lock across a helping wait** (`join`, `scope`, `WaitGroup::wait`,
//!   `Semaphore::acquire` on a worker): the worker runs other tasks while it waits, and
//!   one of them may want the same lock. Release it first.
//! - **Spin on a flag another task sets**: that task may be queued behind you on the
//!   same worker. Wait with a [`WaitGroup`], a channel or a handle instead.
//! - **Misuse a primitive**: a [`WaitGroup`] counter going negative or a zero chunk
//!   length is a bug in the caller and panics, as in std and Go; conditions a caller can
//!   act on (a full pool, a shut-down scheduler, a timeout) are `Result`s.
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

// The module tree is the layer diagram of docs/DESIGN.md: each layer imports only from
// the layers below it (`make lint` checks it), the public facade at the top.
mod api; // 6: Builder, Scheduler, Handle
pub mod chan; // 6: channels and select
mod contain; // 0: fault containment
pub mod future; // 4: yield_now and the cooperative budget
mod lockfree; // 1: deque, pool, injection queue, parker, spin lock
mod primitives; // 4: CancelToken, WaitGroup, Semaphore, the wait list
mod runtime; // 3: shared state, spawn paths, workers, sleep, stats, JoinHandle
mod shim; // 0: the atomics shim (std or loom), mutation switches
mod structured; // 5: join, scope, parallel_for, batches
pub(crate) mod task; // 2: task header and state word, stack jobs
pub mod time; // 6: sleep, timeout, interval

pub use lockfree::{deque, pool};

/// The atomics shim's public face: the mutation switches the loom suite sets, and (hidden)
/// the internal structures it models directly. Not part of filch's API otherwise.
pub mod sync {
    #[doc(hidden)]
    pub use crate::lockfree::inject::{Injector, Linked, Pop};
    #[doc(hidden)]
    pub use crate::lockfree::next_slot::{NextSlot, Seen};
    #[doc(hidden)]
    pub use crate::lockfree::park::Parker;
    #[doc(hidden)]
    pub use crate::lockfree::spin::{SpinGuard, SpinLock};
    pub use crate::shim::mutation;
}

pub use api::builder::{
    BuildError, Builder, DEFAULT_MAX_SPARE_THREADS, MAX_WORKERS, MIN_DEQUE_CAPACITY, MIN_POOL_CAPACITY,
};
pub use api::scheduler::{Handle, Scheduler, ShutdownTimeout};
pub use primitives::cancel::{CancelToken, Cancelled};
pub use primitives::semaphore::{OwnedPermit, Permit, Semaphore};
pub use primitives::wait_group::WaitGroup;
pub use runtime::config::Idle;
pub use runtime::join_handle::JoinHandle;
pub use runtime::spawn::{SpawnError, SpawnErrorKind};
pub use runtime::stats::{Stats, WorkerStats};
pub use runtime::worker::MAX_NESTED_WAITS;
pub use structured::group::TaskGroup;
pub use structured::join_set::{JoinNext, JoinSet};
pub use structured::reduce::ParallelSource;
pub use structured::scope::Scope;
pub use structured::scoped_handle::ScopedJoinHandle;
pub use task::{PanicPayload, TaskError, INLINE as TASK_INLINE_BYTES};

use runtime::{thread, worker};
use structured::{fork, group, parallel, reduce, scope, sort};

/// The async task and timer internals wrapped for the loom suite, as [`loom_api`] does for
/// the rest. Built only under `--cfg loom`; not part of filch's API.
#[cfg(loom)]
#[doc(hidden)]
pub mod loom_async_api;

/// Crate-private internals wrapped for the loom suite in `loom-tests/` (a separate crate):
/// the task state machine (`task/mod.rs`) and the sleep protocol (`runtime/sleep.rs`). Built only under
/// `--cfg loom`; not part of filch's API. Each method forwards to the one it names.
#[cfg(loom)]
#[doc(hidden)]
#[allow(missing_docs)]
pub mod loom_api {
    use std::any::Any;
    use std::ptr::NonNull;

    use crate::runtime::join_handle::JoinHandle;
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
        let (queued, handle) = TaskRef::new_on_heap::<F, T>(f, std::ptr::null(), false);
        let addr = TaskAddr(NonNull::from(queued.header()));
        let Some(handle) = handle else { unreachable!("not detached: the handle is returned") };
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

    /// A stack job (`stack_job.rs`) in a box, standing for its creator's frame.
    pub struct StackJob<F: FnOnce() -> R + Send, R: Send>(Box<crate::task::stack_job::StackJob<F, R>>);

    /// A stack job's queue entry, to execute on another thread.
    pub struct StackEntry(usize);

    // SAFETY: stands for a `TaskRef` in a queue, which is `Send`.
    unsafe impl Send for StackEntry {}

    impl<F: FnOnce() -> R + Send, R: Send> StackJob<F, R> {
        pub fn new(f: F, parker: &crate::shim::Arc<crate::lockfree::park::Parker>) -> Self {
            StackJob(Box::new(crate::task::stack_job::StackJob::new(f, std::ptr::null(), parker)))
        }

        /// # Safety
        /// Once; the job outlives the execution (the caller waits on the latch).
        pub unsafe fn entry(&self) -> StackEntry {
            // SAFETY: forwarded from the caller.
            StackEntry(unsafe { self.0.as_task_ref() }.into_raw().as_ptr() as usize)
        }

        /// J3/J4 on a plain thread parking on `parker` (the one given to `new`).
        pub fn wait(&self, parker: &crate::lockfree::park::Parker) {
            self.0.latch().wait_parked(parker);
        }

        /// After `wait`: the result, then the memory is reused (`Latch::scribble`).
        pub fn take_result(self) -> R {
            self.0.latch().scribble();
            let job = *self.0;
            job.take_result()
        }
    }

    impl StackEntry {
        /// J1 + J2 on this thread.
        ///
        /// # Safety
        /// The job is alive and this entry is executed once.
        pub unsafe fn execute(self) {
            // SAFETY: `self.0` came from `as_task_ref` of a live stack job (caller).
            let t = unsafe { TaskRef::from_raw(NonNull::new_unchecked(self.0 as *mut Header)) };
            // SAFETY: executed once (caller).
            unsafe { t.execute_stack_job() };
        }
    }

    /// The searchers count and sleepers bitmap (`sleep.rs`, K1–K5).
    pub struct Sleep(crate::runtime::sleep::Sleep);

    impl Sleep {
        pub fn new(workers: usize) -> Sleep {
            Sleep(crate::runtime::sleep::Sleep::new(workers))
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
    // On a worker: spawn through its context directly (no `Handle`, no `Arc` clone, no
    // second thread-local lookup).
    let mut f = Some(f);
    let local =
        worker::with_current(|ctx| ctx.map(|c| c.shared().spawn_from::<F, T>(c, f.take().unwrap(), false)));
    match local {
        Some(Ok(h)) => runtime::spawn::joinable(h),
        Some(Err(e)) => {
            drop(e.into_inner());
            JoinHandle::refused()
        }
        None => outside(|s| match s.spawn_inner(f.take().unwrap(), true) {
            Ok(h) => h,
            Err(e) => {
                drop(e.into_inner());
                JoinHandle::refused()
            }
        }),
    }
}

/// [`Scheduler::spawn_detached`] on the current worker's scheduler, or outside any worker
/// on the global default one: spawns `f` with no handle (fire and forget).
///
/// ```
/// let (tx, rx) = std::sync::mpsc::channel();
/// filch::spawn_detached(move || tx.send(7).unwrap()).unwrap();
/// assert_eq!(rx.recv().unwrap(), 7);
/// ```
pub fn spawn_detached<F>(f: F) -> Result<(), SpawnError<F>>
where
    F: FnOnce() + Send + 'static,
{
    let mut f = Some(f);
    // On a worker: straight to the local path with the context in hand (one thread-local
    // lookup, not two).
    let local =
        worker::with_current(|ctx| ctx.map(|c| c.shared().spawn_from::<F, ()>(c, f.take().unwrap(), true)));
    match local {
        Some(r) => r.map(|_| ()),
        None => outside(|s| s.spawn_detached(f.take().unwrap())),
    }
}

/// [`Scheduler::spawn_async`] on the current worker's scheduler (or the one a
/// [`Scheduler::block_on`] on this thread entered), else on the global default one.
///
/// ```
/// let h = filch::spawn_async(async { 2 + 2 });
/// assert_eq!(h.join().unwrap(), 4);
/// ```
pub fn spawn_async<F>(fut: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let mut fut = Some(fut);
    let local = worker::with_current(|ctx| {
        ctx.map(|c| c.shared().spawn_async_from(c, fut.take().unwrap(), true, false))
    });
    let r = match local {
        Some(r) => r,
        None => outside(|s| s.spawn_async_inner(fut.take().unwrap(), true, false)),
    };
    match r {
        Ok(h) => runtime::spawn::joinable(h),
        Err(e) => {
            drop(e.into_inner());
            JoinHandle::refused()
        }
    }
}

/// [`Scheduler::try_spawn_async`] on the scheduler [`spawn_async`] would use.
///
/// ```
/// let h = filch::try_spawn_async(async { 5 }).unwrap();
/// assert_eq!(h.join().unwrap(), 5);
/// ```
pub fn try_spawn_async<F>(fut: F) -> Result<JoinHandle<F::Output>, SpawnError<F>>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    with_scheduler(|s| s.spawn_async_inner(fut, false, false)).map(runtime::spawn::joinable)
}

/// [`Scheduler::spawn_async_detached`] on the scheduler [`spawn_async`] would use.
///
/// ```
/// let (tx, rx) = std::sync::mpsc::channel();
/// filch::spawn_async_detached(async move { tx.send(3).unwrap() }).unwrap();
/// assert_eq!(rx.recv().unwrap(), 3);
/// ```
pub fn spawn_async_detached<F>(fut: F) -> Result<(), SpawnError<F>>
where
    F: std::future::Future<Output = ()> + Send + 'static,
{
    with_scheduler(|s| s.spawn_async_inner(fut, true, true)).map(|_| ())
}

/// Runs `fut` to completion on this thread and returns its output: off the workers it
/// parks between wakes; on a worker it runs other tasks meanwhile, as `join` does. Timers
/// and spawns inside use the current worker's scheduler, else the global default one (use
/// [`Scheduler::block_on`] to pick one).
///
/// ```
/// let v = filch::block_on(async {
///     filch::time::sleep(std::time::Duration::from_millis(1)).await;
///     filch::spawn_async(async { 7 }).await.unwrap()
/// });
/// assert_eq!(v, 7);
/// ```
pub fn block_on<F: std::future::Future>(fut: F) -> F::Output {
    runtime::async_task::block_on_in(None, fut)
}

/// [`Scheduler::spawn_blocking`] on the current worker's scheduler (or the one whose
/// blocking task or `block_on` this thread runs), else on the global default one.
///
/// ```
/// let h = filch::spawn_blocking(|| std::thread::current().name().map(String::from));
/// assert!(h.join().unwrap().unwrap().contains("spare"));
/// ```
pub fn spawn_blocking<F, T>(f: F) -> JoinHandle<T>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    match runtime::async_task::current_shared() {
        Some(s) => runtime::shared::Shared::spawn_blocking_inner(&s, f),
        None => api::scheduler::global().spawn_blocking(f),
    }
}

/// Runs `f`, which may block, on this thread without taking a worker from the pool: on a
/// worker, the worker's role (its queue of tasks) goes to a spare thread while `f` runs,
/// and this thread takes a role back afterwards (waiting for one if every role is busy).
/// Elsewhere it just runs `f`. Inside `f`, this thread is not a worker: `filch::spawn`
/// injects from outside, `filch::join` waits as from outside. A panic in `f` propagates.
/// Costs a hand-off to another thread (a few microseconds to tens of microseconds): for
/// waits that are long compared to that. See [`Builder::max_spare_threads`].
///
/// ```
/// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
/// let (tx, rx) = std::sync::mpsc::channel::<u32>();
/// // One worker: without `block_in_place` the receiver would hold it and the sender
/// // could never run.
/// let recv = sched.spawn(move || filch::block_in_place(|| rx.recv().unwrap()));
/// let send = sched.spawn(move || tx.send(5).unwrap());
/// send.join().unwrap();
/// assert_eq!(recv.join().unwrap(), 5);
/// ```
pub fn block_in_place<R>(f: impl FnOnce() -> R) -> R {
    worker::block_in_place(f)
}

/// Runs `f` with the scheduler of the current worker, or the global default one.
fn with_scheduler<R>(f: impl FnOnce(&runtime::shared::Shared) -> R) -> R {
    let mut f = Some(f);
    let local = worker::with_current(|ctx| ctx.map(|c| (f.take().unwrap())(c.shared())));
    match local {
        Some(r) => r,
        None => outside(f.take().unwrap()),
    }
}

/// [`Scheduler::join`] on the current worker's scheduler, or on the global default one.
///
/// ```
/// fn sum(v: &[u64]) -> u64 {
///     if v.len() <= 1024 { return v.iter().sum(); }
///     let (l, r) = v.split_at(v.len() / 2);
///     let (a, b) = filch::join(|| sum(l), || sum(r));
///     a + b
/// }
/// let v: Vec<u64> = (0..100_000).collect();
/// assert_eq!(sum(&v), 4_999_950_000);
/// ```
pub fn join<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    // On a worker: straight to the stack-job path (no `Handle`, no second lookup).
    let mut ab = Some((a, b));
    let local = worker::with_current(|ctx| {
        ctx.map(|c| {
            let (a, b) = ab.take().unwrap();
            fork::join_on_worker(c, a, b)
        })
    });
    match local {
        Some(r) => r,
        None => {
            let (a, b) = ab.take().unwrap();
            outside(|s| fork::join(s, a, b))
        }
    }
}

/// [`Scheduler::scope`] on the current worker's scheduler, or on the global default one.
///
/// ```
/// let mut halves = [0u64; 2];
/// let (lo, hi) = halves.split_at_mut(1);
/// filch::scope(|s| {
///     s.spawn(|_| lo[0] = (0..500).sum());
///     s.spawn(|_| hi[0] = (500..1000).sum());
/// });
/// assert_eq!(halves[0] + halves[1], 499_500);
/// ```
pub fn scope<'scope, OP, R>(op: OP) -> R
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    with_scheduler(|s| scope::scope(s, None, op).0)
}

/// [`Scheduler::parallel_for`] on the current worker's scheduler, or on the global one.
///
/// ```
/// let hits = std::sync::Mutex::new(0);
/// filch::parallel_for(0..10_000, |_| *hits.lock().unwrap() += 1);
/// assert_eq!(hits.into_inner().unwrap(), 10_000);
/// ```
pub fn parallel_for<F>(range: std::ops::Range<usize>, f: F)
where
    F: Fn(usize) + Sync + Send,
{
    with_scheduler(|s| parallel::parallel_for(s, range, None, &f));
}

/// [`Scheduler::parallel_reduce`] on the current worker's scheduler, or on the global one.
///
/// ```
/// let v: Vec<u64> = (1..=1000).collect();
/// assert_eq!(filch::parallel_reduce(&v, || 0, |&x| x * x, |a, b| a + b), 333_833_500);
/// ```
pub fn parallel_reduce<S, T, ID, M, C>(source: S, identity: ID, map: M, combine: C) -> T
where
    S: ParallelSource,
    T: Send,
    ID: Fn() -> T + Sync + Send,
    M: Fn(S::Item) -> T + Sync + Send,
    C: Fn(T, T) -> T + Sync + Send,
{
    with_scheduler(|s| reduce::reduce(s, source, &identity, &map, &combine))
}

/// [`Scheduler::parallel_map`] on the current worker's scheduler, or on the global one.
///
/// ```
/// assert_eq!(filch::parallel_map(0..4, |i| i * i), [0, 1, 4, 9]);
/// ```
pub fn parallel_map<S, T, F>(source: S, f: F) -> Vec<T>
where
    S: ParallelSource,
    T: Send,
    F: Fn(S::Item) -> T + Sync + Send,
{
    with_scheduler(|s| reduce::map(s, source, &f))
}

/// [`Scheduler::parallel_sort_unstable`] on the current worker's scheduler, or on the
/// global one.
///
/// ```
/// let mut v = vec![5, 3, 9, 1];
/// filch::parallel_sort_unstable(&mut v);
/// assert_eq!(v, [1, 3, 5, 9]);
/// ```
pub fn parallel_sort_unstable<T: Ord + Send>(v: &mut [T]) {
    with_scheduler(|s| sort::sort_unstable_by(s, v, &T::cmp));
}

/// [`Scheduler::parallel_sort_unstable_by`] on the current worker's scheduler, or on the
/// global one.
///
/// ```
/// let mut v = vec!["ccc", "a", "bb"];
/// filch::parallel_sort_unstable_by(&mut v, |a, b| a.len().cmp(&b.len()));
/// assert_eq!(v, ["a", "bb", "ccc"]);
/// ```
pub fn parallel_sort_unstable_by<T, F>(v: &mut [T], compare: F)
where
    T: Send,
    F: Fn(&T, &T) -> std::cmp::Ordering + Sync + Send,
{
    with_scheduler(|s| sort::sort_unstable_by(s, v, &compare));
}

/// Spawning into a [`JoinSet`] on the scheduler [`spawn`] uses (the current worker's, else
/// the global default one). For another scheduler, [`JoinSet::insert`] its handle:
/// `set.insert(sched.spawn(f))`.
impl<T: Send + 'static> JoinSet<T> {
    /// Spawns `f` as [`spawn`] does and adds it to the set.
    ///
    /// ```
    /// let mut set = filch::JoinSet::new();
    /// for i in 0..3 {
    ///     set.spawn(move || i + 1);
    /// }
    /// assert_eq!(set.join_all().into_iter().map(Result::unwrap).sum::<i32>(), 6);
    /// ```
    pub fn spawn<F>(&mut self, f: F)
    where
        F: FnOnce() -> T + Send + 'static,
    {
        self.insert(spawn(f));
    }

    /// Spawns `fut` as [`spawn_async`] does and adds it to the set.
    ///
    /// ```
    /// let mut set = filch::JoinSet::new();
    /// set.spawn_async(async { 7 });
    /// assert_eq!(set.join_next().unwrap().unwrap(), 7);
    /// ```
    pub fn spawn_async<F>(&mut self, fut: F)
    where
        F: std::future::Future<Output = T> + Send + 'static,
    {
        self.insert(spawn_async(fut));
    }
}

/// [`Scheduler::spawn_many`] on the current worker's scheduler, or on the global one.
///
/// ```
/// let group = filch::spawn_many(3, |i| i + 1);
/// assert_eq!(group.join_all().into_iter().map(Result::unwrap).sum::<usize>(), 6);
/// ```
pub fn spawn_many<F, T>(n: usize, f: F) -> TaskGroup<T>
where
    F: Fn(usize) -> T + Send + Sync + 'static,
    T: Send + 'static,
{
    let f = std::sync::Arc::new(f);
    with_scheduler(|s| {
        group::spawn_group(
            s,
            (0..n).map(move |i| {
                let f = f.clone();
                move || f(i)
            }),
            false,
        )
    })
}

/// [`Scheduler::spawn_batch`] on the current worker's scheduler, or on the global one.
///
/// ```
/// let group = filch::spawn_batch((0..4u32).map(|i| move || i * 2));
/// assert_eq!(group.join_all().into_iter().map(Result::unwrap).sum::<u32>(), 12);
/// ```
pub fn spawn_batch<I, F, T>(tasks: I) -> TaskGroup<T>
where
    I: IntoIterator<Item = F>,
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    with_scheduler(|s| group::spawn_group(s, tasks, true))
}

/// The scheduler a free function uses off the workers: the one whose queues this thread is
/// draining in a timed-out shutdown (so a drained `join` half that spawns is refused
/// there, not moved to another scheduler), else the global default. Cold and out of line:
/// the free functions' hot path is the worker's.
#[cold]
#[inline(never)]
fn outside<R>(f: impl FnOnce(&runtime::shared::Shared) -> R) -> R {
    let mut f = Some(f);
    if let Some(r) = thread::with_draining(|d| d.map(|s| (f.take().unwrap())(s))) {
        return r;
    }
    if let Some(r) = runtime::async_task::with_entered(|e| e.map(|s| (f.take().unwrap())(s))) {
        return r;
    }
    (f.take().unwrap())(api::scheduler::global().shared_state())
}

/// A handle to the scheduler whose worker is running this code, if any.
///
/// ```
/// assert!(filch::current().is_none()); // not a worker thread
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let h = sched.spawn(|| filch::current().map(|h| h.num_workers()));
/// assert_eq!(h.join().unwrap(), Some(2));
/// ```
pub fn current() -> Option<Handle> {
    worker::with_current(|ctx| ctx.map(|c| Handle::from_shared(c.shared_arc())))
}

/// Lets other work run. On a worker thread, runs one queued task (if any) before
/// returning `true`; elsewhere (or with nothing queued) yields the thread and returns
/// `false`. Tasks are closures, not coroutines, so a task cannot be suspended: this is how
/// a long task shares its worker.
///
/// ```
/// assert!(!filch::yield_now()); // not a worker thread: just yields it
/// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
/// let h = sched.spawn(|| {
///     let queued = filch::spawn(|| 7); // onto this worker's own deque
///     let ran = filch::yield_now(); // runs it here: no other worker can take it
///     (ran, queued.join().unwrap())
/// });
/// assert_eq!(h.join().unwrap(), (true, 7));
/// ```
pub fn yield_now() -> bool {
    let ran = worker::with_current(|ctx| ctx.and_then(|c| c.find_task().map(|t| c.run_task(t))));
    if ran.is_none() {
        lockfree::park::yield_now();
    }
    ran.is_some()
}

/// The README's examples, compiled and run as doc tests so they stay true.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;
