//! The public facade: [`Scheduler`] (spawn, shutdown) and [`Handle`]. Everything they do
//! is delegated to the runtime (`crate::runtime`) and the structured tools; starting one
//! is `Builder::build`'s (`builder.rs`).

use std::fmt;
use std::time::{Duration, Instant};

use crate::contain;
use crate::runtime::join_handle::JoinHandle;
use crate::runtime::shared::Shared;
use crate::runtime::shared_ref::SharedRef;
use crate::runtime::spawn::SpawnError;
use crate::runtime::stats::Stats;
use crate::runtime::{thread, worker};
use crate::shim::atomic::Ordering::Relaxed;
use crate::shim::Arc;

/// `shutdown_timeout` ran out of time.
///
/// ```
/// use std::sync::mpsc::channel;
/// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
/// let (started_tx, started) = channel();
/// let (release, release_rx) = channel::<()>();
/// let h = sched.spawn(move || { started_tx.send(()).unwrap(); release_rx.recv().unwrap() });
/// started.recv().unwrap(); // the only worker is inside the task, waiting for `release`
/// let err = sched.shutdown_timeout(std::time::Duration::from_millis(1)).unwrap_err();
/// assert_eq!((err.still_running, err.abandoned), (1, 0));
/// release.send(()).unwrap();
/// h.join().unwrap(); // the detached worker finishes the task
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownTimeout {
    /// Worker threads that had not exited when the time ran out: at least those still
    /// inside a task, plus any idle one that was woken for the shutdown but had not yet
    /// left. They exit when their task returns, and their threads are detached.
    pub still_running: usize,
    /// Queued tasks dropped unrun by the caller (their joiners get `ShutDown`); workers may
    /// drop more as they come back.
    pub abandoned: usize,
}

impl fmt::Display for ShutdownTimeout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "shutdown timed out: {} worker(s) still running a task, {} queued task(s) dropped",
            self.still_running, self.abandoned
        )
    }
}

impl std::error::Error for ShutdownTimeout {}

/// A work-stealing scheduler: one worker thread per core, each with its own deque.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let h = sched.spawn(|| 6 * 7);
/// assert_eq!(h.join().unwrap(), 42);
/// ```
///
/// Dropping it shuts it down gracefully: no new task is accepted from outside, queued
/// tasks still run (and so do the tasks they spawn), and every worker thread is joined
/// before `drop` returns.
///
/// Dropped inside one of its own tasks, it cannot wait for its workers (one of them is
/// running the drop): it closes the scheduler the same way and returns at once; the
/// workers finish the queued work and exit, and the last one frees the scheduler's memory.
pub struct Scheduler {
    shared: Arc<Shared>,
    threads: Vec<crate::shim::thread::JoinHandle<()>>,
    /// Set by a successful `shutdown_timeout`, so `Drop` has nothing left to do.
    done: bool,
}

/// A cheap, clonable way to spawn onto a scheduler from anywhere.
///
/// Cloning or dropping a handle on one of its scheduler's workers touches no shared memory
/// (each worker keeps a private count of handle references), so recursive code may clone
/// one into every task it spawns. Anywhere else a clone or drop is one atomic add or
/// subtract, as for an `Arc`. A handle keeps the scheduler's memory (not its threads)
/// alive.
///
/// Spawning through a `Handle` whose scheduler was dropped is refused (`ShutDown`).
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let handle = sched.handle();
/// let h = handle.clone().spawn(|| 40 + 2);
/// assert_eq!(h.join().unwrap(), 42);
/// drop(sched);
/// assert!(matches!(handle.spawn(|| 1).join(), Err(filch::TaskError::ShutDown)));
/// ```
#[derive(Clone)]
pub struct Handle {
    shared: SharedRef,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler").field("workers", &self.shared.workers.len()).finish_non_exhaustive()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("workers", &self.shared().workers.len()).finish_non_exhaustive()
    }
}

macro_rules! spawn_methods {
    () => {
        /// Spawns `f`. Never blocks and never fails: a full pool or an oversize task uses a
        /// heap task (counted in `heap_fallbacks`); on a shut-down scheduler the task is
        /// dropped unrun and its handle joins to [`TaskError::ShutDown`](crate::TaskError::ShutDown).
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let h = sched.spawn(|| "hello".len());
        /// assert_eq!(h.join().unwrap(), 5);
        /// let big = [1u8; 4096]; // too large for a pool slot: runs as a heap task
        /// assert_eq!(sched.spawn(move || big.len()).join().unwrap(), 4096);
        /// ```
        pub fn spawn<F, T>(&self, f: F) -> JoinHandle<T>
        where
            F: FnOnce() -> T + Send + 'static,
            T: Send + 'static,
        {
            match self.shared().spawn_inner(f, true) {
                Ok(h) => h,
                Err(e) => {
                    drop(e.into_inner());
                    JoinHandle::refused()
                }
            }
        }

        /// Spawns `f` into a pool slot, or hands `f` back: when the pool is full, the task
        /// is too large for a slot, or the scheduler is shut down. Never allocates.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let h = sched.try_spawn(|| 6 * 7).unwrap(); // an empty pool has room
        /// assert_eq!(h.join().unwrap(), 42);
        /// ```
        pub fn try_spawn<F, T>(&self, f: F) -> Result<JoinHandle<T>, SpawnError<F>>
        where
            F: FnOnce() -> T + Send + 'static,
            T: Send + 'static,
        {
            self.shared().spawn_inner(f, false)
        }

        /// Spawns `f` with no [`JoinHandle`](crate::JoinHandle): fire and forget, as Go's
        /// `go` statement and `rayon::spawn`. It is the cheapest spawn, since there is no
        /// handle to build, and no handle to detach when it is dropped (one atomic RMW
        /// fewer per task than `drop(spawn(f))`). A full pool or an oversize task uses a heap
        /// task (counted in `heap_fallbacks`); a panic goes to the panic handler. On a shut-down
        /// scheduler `f` is handed back unrun in the error, never lost.
        ///
        /// ```
        /// use std::sync::atomic::{AtomicUsize, Ordering};
        /// use std::sync::Arc;
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let n = Arc::new(AtomicUsize::new(0));
        /// for _ in 0..100 {
        ///     let n = n.clone();
        ///     sched.spawn_detached(move || { n.fetch_add(1, Ordering::Relaxed); }).unwrap();
        /// }
        /// drop(sched); // shutdown drains the queue: every task has run
        /// assert_eq!(n.load(Ordering::Relaxed), 100);
        /// ```
        pub fn spawn_detached<F>(&self, f: F) -> Result<(), SpawnError<F>>
        where
            F: FnOnce() + Send + 'static,
        {
            self.shared().spawn_detached(f)
        }

        /// Spawns a future as an async task: it runs on this scheduler's workers, costs
        /// nothing while it waits (it returns `Pending` and is polled again when woken),
        /// and its output is read through the same [`JoinHandle`](crate::JoinHandle) as a
        /// closure's (`join()` from sync code, `.await` from async code). A future that fits
        /// [`TASK_INLINE_BYTES`](crate::TASK_INLINE_BYTES) with its output lives in a pool
        /// slot; a larger one, or a spawn while the pool is full, uses a heap task (counted
        /// in `heap_fallbacks`). On a shut-down scheduler the future is dropped unpolled and
        /// the handle joins to [`TaskError::ShutDown`](crate::TaskError::ShutDown).
        ///
        /// Do not block a worker inside a future (a blocking `join`, a lock held across an
        /// `.await`, `std::thread::sleep`): await instead — [`crate::time::sleep`], a
        /// `JoinHandle`, an async channel.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let h = sched.spawn_async(async {
        ///     filch::time::sleep(std::time::Duration::from_millis(1)).await;
        ///     6 * 7
        /// });
        /// assert_eq!(h.join().unwrap(), 42);
        /// ```
        pub fn spawn_async<F>(&self, fut: F) -> JoinHandle<F::Output>
        where
            F: std::future::Future + Send + 'static,
            F::Output: Send + 'static,
        {
            match self.shared().spawn_async_inner(fut, true, false) {
                Ok(h) => crate::runtime::spawn::joinable(h),
                Err(e) => {
                    drop(e.into_inner());
                    JoinHandle::refused()
                }
            }
        }

        /// [`spawn_async`](Self::spawn_async) into a pool slot, or hands the future back:
        /// when the pool is full, the future is too large for a slot, or the scheduler is
        /// shut down. Never allocates.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let h = sched.try_spawn_async(async { 1 + 1 }).unwrap();
        /// assert_eq!(h.join().unwrap(), 2);
        /// let big = [0u8; filch::TASK_INLINE_BYTES];
        /// let err = sched.try_spawn_async(async move { big.len() }).unwrap_err();
        /// assert_eq!(err.kind(), filch::SpawnErrorKind::TooLarge);
        /// ```
        pub fn try_spawn_async<F>(&self, fut: F) -> Result<JoinHandle<F::Output>, SpawnError<F>>
        where
            F: std::future::Future + Send + 'static,
            F::Output: Send + 'static,
        {
            self.shared().spawn_async_inner(fut, false, false).map(crate::runtime::spawn::joinable)
        }

        /// [`spawn_async`](Self::spawn_async) with no handle: fire and forget. A panic goes
        /// to the panic handler. On a shut-down scheduler the future is handed back.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let (tx, rx) = std::sync::mpsc::channel();
        /// sched.spawn_async_detached(async move { tx.send(7).unwrap() }).unwrap();
        /// assert_eq!(rx.recv().unwrap(), 7);
        /// ```
        pub fn spawn_async_detached<F>(&self, fut: F) -> Result<(), SpawnError<F>>
        where
            F: std::future::Future<Output = ()> + Send + 'static,
        {
            self.shared().spawn_async_inner(fut, true, true).map(|_| ())
        }

        /// Runs `fut` to completion and returns its output. From a thread outside this
        /// scheduler the future is polled on that thread, which parks between wakes; inside
        /// it, the free functions (`filch::spawn_async`, `filch::spawn`, …) and timers use
        /// this scheduler. On one of its workers, the worker runs other tasks while the
        /// future waits, as a `join` does. The future need not be `Send`.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let v = sched.block_on(async {
        ///     let h = filch::spawn_async(async { 40 }); // onto `sched`
        ///     h.await.unwrap() + 2
        /// });
        /// assert_eq!(v, 42);
        /// ```
        pub fn block_on<F: std::future::Future>(&self, fut: F) -> F::Output {
            crate::runtime::async_task::block_on_in(Some(self.shared()), fut)
        }

        /// Runs `f` on a spare thread, outside the workers: for blocking I/O or long
        /// blocking calls that would otherwise hold a worker. Spare threads are started
        /// on demand, at most [`Builder::max_spare_threads`](crate::Builder::max_spare_threads)
        /// (shared with the workers' hand-offs; beyond it, blocking tasks queue for the next
        /// free spare), and exit after [`thread_keep_alive`](crate::Builder::thread_keep_alive)
        /// idle. Inside `f`, `filch::spawn` and friends use this scheduler. A panic is
        /// caught and returned by the handle's `join`. On a shut-down scheduler `f` is
        /// dropped unrun and the handle joins to [`TaskError::ShutDown`](crate::TaskError::ShutDown);
        /// a graceful shutdown runs the blocking tasks already queued. With
        /// `max_spare_threads(0)` there is no spare thread: `f` runs on a worker like
        /// [`spawn`](Self::spawn), and holds that worker while it blocks.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let h = sched.spawn_blocking(|| std::fs::metadata(".").is_ok());
        /// assert!(h.join().unwrap());
        /// ```
        pub fn spawn_blocking<F, T>(&self, f: F) -> JoinHandle<T>
        where
            F: FnOnce() -> T + Send + 'static,
            T: Send + 'static,
        {
            self.with_arc(|s| Shared::spawn_blocking_inner(s, f))
        }

        /// Runs `op` on a worker of this scheduler and returns its result (rayon's
        /// `install`): the way to enter the scheduler with code that borrows from the
        /// caller's stack and uses `filch::join`, `filch::scope` or `filch::spawn` inside.
        /// From outside, `op` is queued as one job (no allocation) and this thread waits
        /// for it; a worker of another scheduler keeps running its own tasks meanwhile. On
        /// a worker of this scheduler, `op` runs right here. A panic in `op` is re-raised
        /// here. On a shut-down scheduler `op` runs on the calling thread.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let words = vec!["a", "bb", "ccc"];
        /// let (total, on_worker) = sched.install(|| {
        ///     let (l, r) = filch::join(|| words[0].len(), || words[1].len() + words[2].len());
        ///     (l + r, filch::current().is_some())
        /// });
        /// assert_eq!((total, on_worker), (6, true));
        /// ```
        pub fn install<OP, R>(&self, op: OP) -> R
        where
            OP: FnOnce() -> R + Send,
            R: Send,
        {
            crate::structured::fork::install(self.shared(), op)
        }

        /// Runs `a` and `b`, potentially in parallel, and returns both results (rayon-style
        /// fork-join). On a worker, `b` is pushed on the worker's deque as a job on this
        /// stack frame (no pool slot, no allocation) and `a` runs at once; `b` then runs
        /// here too unless an idle worker stole it meanwhile. Called from outside the
        /// scheduler, the whole `join` runs on a worker while this thread waits.
        ///
        /// If either closure panics, the panic is re-raised here after both have finished
        /// (`a`'s if both panic). On a shut-down scheduler both run on the calling thread.
        ///
        /// Stack: each level of a recursive `join` keeps about 190 bytes of `join`'s frame
        /// on the worker's stack (plus the caller's own frames), so a default 2 MiB worker
        /// stack holds about 10,000 nested joins; deeper recursion needs
        /// [`Builder::stack_size`](crate::Builder::stack_size).
        ///
        /// ```
        /// fn fib(n: u64) -> u64 {
        ///     if n < 2 { return n; }
        ///     let (a, b) = filch::join(|| fib(n - 1), || fib(n - 2));
        ///     a + b
        /// }
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// assert_eq!(sched.join(|| fib(20), || fib(10)), (6765, 55));
        /// ```
        pub fn join<A, B, RA, RB>(&self, a: A, b: B) -> (RA, RB)
        where
            A: FnOnce() -> RA + Send,
            B: FnOnce() -> RB + Send,
            RA: Send,
            RB: Send,
        {
            crate::structured::fork::join(self.shared(), a, b)
        }

        /// Runs `op` with a [`Scope`](crate::Scope) whose tasks may borrow from the
        /// enclosing stack, and returns once every task spawned in it (transitively) has
        /// finished. `op` runs on the calling thread; while it waits for the tasks, a
        /// worker thread runs other tasks and any other thread parks.
        ///
        /// Called from outside the scheduler, each `spawn` in `op` is a spawn from
        /// outside (the injection queue and the pool cache that threads outside the workers
        /// share, several atomic operations each); the tasks' own spawns are local. For an `op` that itself spawns many
        /// tasks, `self.install(|| filch::scope(..))` runs it on a worker, where its
        /// spawns are local too (that is what rayon's `ThreadPool::scope` does; `install`
        /// needs `op` to be `Send`).
        ///
        /// A panic in `op` or in a task is re-raised after all tasks finished (`op`'s
        /// first, else the first task's).
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let data = vec![1u64, 2, 3, 4];
        /// let mut sums = [0u64; 2];
        /// let (lo, hi) = sums.split_at_mut(1);
        /// sched.scope(|s| {
        ///     s.spawn(|_| lo[0] = data[..2].iter().sum());
        ///     s.spawn(|_| hi[0] = data[2..].iter().sum());
        /// });
        /// assert_eq!(sums, [3, 7]);
        /// ```
        pub fn scope<'scope, OP, R>(&self, op: OP) -> R
        where
            OP: FnOnce(&crate::Scope<'scope>) -> R,
        {
            crate::structured::scope::scope(self.shared(), None, op).0
        }

        /// [`scope`](Self::scope) under a [`CancelToken`](crate::CancelToken): once the token
        /// is cancelled, `spawn` drops new tasks and queued tasks are dropped unrun. Returns
        /// `Err` with the number of tasks skipped if any was.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let token = filch::CancelToken::new();
        /// let r = sched.scope_with(&token, |s| {
        ///     s.spawn(|_| ());
        ///     token.cancel();
        ///     s.spawn(|_| unreachable!("spawned after the cancel"));
        /// });
        /// assert!(r.unwrap_err().skipped() >= 1);
        /// ```
        pub fn scope_with<'scope, OP, R>(
            &self,
            token: &'scope crate::CancelToken,
            op: OP,
        ) -> Result<R, crate::Cancelled>
        where
            OP: FnOnce(&crate::Scope<'scope>) -> R,
        {
            crate::structured::scope::scope_with(self.shared(), token, op)
        }

        /// Calls `f(i)` for every `i` in `range`, in parallel, with adaptive splitting: a
        /// range is split only while other workers are idle (`docs/DESIGN.md`), so tiny and
        /// huge ranges are both cheap. Returns when every index was visited; a panic in `f`
        /// is re-raised after the other parts stopped.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let sum = std::sync::Mutex::new(0u64);
        /// sched.parallel_for(0..1000, |i| *sum.lock().unwrap() += i as u64);
        /// assert_eq!(sum.into_inner().unwrap(), 499_500);
        /// ```
        pub fn parallel_for<F>(&self, range: std::ops::Range<usize>, f: F)
        where
            F: Fn(usize) + Sync + Send,
        {
            crate::structured::parallel::parallel_for(self.shared(), range, None, &f);
        }

        /// [`parallel_for`](Self::parallel_for) under a [`CancelToken`](crate::CancelToken):
        /// once cancelled, no new block starts. `Err` reports how many indices were
        /// skipped.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let token = filch::CancelToken::new();
        /// token.cancel();
        /// let r = sched.parallel_for_with(&token, 0..100, |_| unreachable!());
        /// assert_eq!(r.unwrap_err().skipped(), 100);
        /// ```
        pub fn parallel_for_with<F>(
            &self,
            token: &crate::CancelToken,
            range: std::ops::Range<usize>,
            f: F,
        ) -> Result<(), crate::Cancelled>
        where
            F: Fn(usize) + Sync + Send,
        {
            crate::structured::parallel::outcome(crate::structured::parallel::parallel_for(
                self.shared(),
                range,
                Some(token),
                &f,
            ))
        }

        /// Calls `f(chunk_index, chunk)` for every `chunk_len`-element chunk of `slice` (the
        /// last may be shorter), in parallel, splitting like
        /// [`parallel_for`](Self::parallel_for).
        ///
        /// # Panics
        /// If `chunk_len` is zero (as `slice::chunks` does), and with `f`'s panic.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let data: Vec<u64> = (1..=10).collect();
        /// let sum = std::sync::Mutex::new(0u64);
        /// sched.for_each_chunk(&data, 3, |_, c| *sum.lock().unwrap() += c.iter().sum::<u64>());
        /// assert_eq!(sum.into_inner().unwrap(), 55);
        /// ```
        #[track_caller]
        pub fn for_each_chunk<T, F>(&self, slice: &[T], chunk_len: usize, f: F)
        where
            T: Sync,
            F: Fn(usize, &[T]) + Sync + Send,
        {
            let n = crate::structured::parallel::chunk_count(slice.len(), chunk_len, "for_each_chunk");
            crate::structured::parallel::for_blocks(self.shared(), 0..n, None, &|r: std::ops::Range<
                usize,
            >| {
                let block = &slice[r.start * chunk_len..r.end.saturating_mul(chunk_len).min(slice.len())];
                if chunk_len == 1 {
                    // As in `for_each_chunk_mut`: a plain walk for one-element chunks.
                    for (k, x) in block.iter().enumerate() {
                        f(r.start + k, std::slice::from_ref(x));
                    }
                } else {
                    for (k, c) in block.chunks(chunk_len).enumerate() {
                        f(r.start + k, c);
                    }
                }
            });
        }

        /// Calls `f(chunk_index, chunk)` for every `chunk_len`-element chunk of `slice`,
        /// mutably, in parallel (the swarm pattern: update every agent).
        ///
        /// # Panics
        /// If `chunk_len` is zero (as `slice::chunks_mut` does), and with `f`'s panic.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let mut agents = vec![1u32; 1000];
        /// sched.for_each_chunk_mut(&mut agents, 64, |_, c| c.iter_mut().for_each(|a| *a *= 3));
        /// assert!(agents.iter().all(|&a| a == 3));
        /// ```
        #[track_caller]
        pub fn for_each_chunk_mut<T, F>(&self, slice: &mut [T], chunk_len: usize, f: F)
        where
            T: Send,
            F: Fn(usize, &mut [T]) + Sync + Send,
        {
            let len = slice.len();
            let n = crate::structured::parallel::chunk_count(len, chunk_len, "for_each_chunk_mut");
            let base = crate::structured::parallel::SendPtr(slice.as_mut_ptr());
            crate::structured::parallel::for_blocks(self.shared(), 0..n, None, &|r: std::ops::Range<
                usize,
            >| {
                let start = r.start;
                // SAFETY: `slice` is borrowed mutably for this call; `for_blocks` hands out
                // disjoint blocks of `0..n`, each once, so the chunks never alias.
                let block = unsafe { base.chunks(r, chunk_len, len) };
                if chunk_len == 1 {
                    // One element per call: a plain walk the compiler can unroll and
                    // vectorize once `f` is inlined (`chunks_mut(1)` hides the length).
                    for (k, x) in block.iter_mut().enumerate() {
                        f(start + k, std::slice::from_mut(x));
                    }
                } else {
                    for (k, c) in block.chunks_mut(chunk_len).enumerate() {
                        f(start + k, c);
                    }
                }
            });
        }

        /// Folds `source` (an index range or a slice, see
        /// [`ParallelSource`](crate::ParallelSource)) in parallel: each part starts from
        /// `identity()` and folds its items with `combine(acc, map(item))`, and the parts'
        /// results are combined in index order. Splits like
        /// [`parallel_for`](Self::parallel_for); allocates nothing. `identity()` must be
        /// neutral for `combine`, and `combine` associative: how the items are grouped
        /// depends on how the work was split, which depends on timing (so a
        /// floating-point sum may differ in its last bits from run to run). A panic in a
        /// closure is re-raised here after the other parts stopped.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let squares = sched.parallel_reduce(0..1000, || 0u64, |i| (i * i) as u64, |a, b| a + b);
        /// assert_eq!(squares, 332_833_500);
        /// let words = ["work", "stealing", "scheduler"];
        /// let longest = sched.parallel_reduce(&words, || 0, |w| w.len(), usize::max);
        /// assert_eq!(longest, 9);
        /// ```
        pub fn parallel_reduce<S, T, ID, M, C>(&self, source: S, identity: ID, map: M, combine: C) -> T
        where
            S: crate::ParallelSource,
            T: Send,
            ID: Fn() -> T + Sync + Send,
            M: Fn(S::Item) -> T + Sync + Send,
            C: Fn(T, T) -> T + Sync + Send,
        {
            crate::structured::reduce::reduce(self.shared(), source, &identity, &map, &combine)
        }

        /// `f` applied to every item of `source` (an index range or a slice, see
        /// [`ParallelSource`](crate::ParallelSource)), in parallel, collected in order into
        /// a `Vec`. Splits like [`parallel_for`](Self::parallel_for); allocates the output
        /// once, at its final length, and each part writes its elements in place. If `f`
        /// panics, the elements already made are dropped and the panic is re-raised here
        /// after the other parts stopped.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let names = ["ada", "grace", "barbara"];
        /// assert_eq!(sched.parallel_map(&names, |n| n.len()), [3, 5, 7]);
        /// let evens: Vec<usize> = sched.parallel_map(0..5, |i| 2 * i);
        /// assert_eq!(evens, [0, 2, 4, 6, 8]);
        /// ```
        pub fn parallel_map<S, T, F>(&self, source: S, f: F) -> Vec<T>
        where
            S: crate::ParallelSource,
            T: Send,
            F: Fn(S::Item) -> T + Sync + Send,
        {
            crate::structured::reduce::map(self.shared(), source, &f)
        }

        /// Sorts `v` in parallel, without preserving the order of equal elements (as
        /// `slice::sort_unstable`): a quicksort whose two sides of each partition run
        /// through [`join`](Self::join), down to pieces of about an eighth of
        /// `len / workers` (at least 8192 elements), which the standard library's
        /// `sort_unstable` sorts (`docs/DESIGN.md`). In place, no allocation; O(n log n) on any input. The first
        /// partition (one pass over `v`) is sequential. If a comparison panics, `v` is left
        /// a permutation of its elements and the panic is re-raised here.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let mut v: Vec<u32> = (0..100_000u32).map(|i| i.wrapping_mul(2_654_435_761) % 1000).collect();
        /// sched.parallel_sort_unstable(&mut v);
        /// assert!(v.windows(2).all(|w| w[0] <= w[1]));
        /// ```
        pub fn parallel_sort_unstable<T: Ord + Send>(&self, v: &mut [T]) {
            crate::structured::sort::sort_unstable_by(self.shared(), v, &T::cmp);
        }

        /// [`parallel_sort_unstable`](Self::parallel_sort_unstable) with a comparison
        /// function, as `slice::sort_unstable_by`. It must be a total order; if it is
        /// not, the resulting order is unspecified (it may panic, as the standard
        /// library's sort may).
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let mut v = vec![3.5f64, -1.0, 2.25, 0.0];
        /// sched.parallel_sort_unstable_by(&mut v, |a, b| b.total_cmp(a)); // descending
        /// assert_eq!(v, [3.5, 2.25, 0.0, -1.0]);
        /// ```
        pub fn parallel_sort_unstable_by<T, F>(&self, v: &mut [T], compare: F)
        where
            T: Send,
            F: Fn(&T, &T) -> std::cmp::Ordering + Sync + Send,
        {
            crate::structured::sort::sort_unstable_by(self.shared(), v, &compare);
        }

        /// Spawns `n` tasks, task `i` running `f(i)`, as one batch: one publish on the
        /// injection queue and at most one wake-up for the whole batch. `f` is shared by
        /// the tasks (one `Arc` for the batch); each task lives in a pool slot.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let squares = sched.spawn_many(5, |i| i * i).join_all();
        /// assert_eq!(squares.into_iter().map(Result::unwrap).collect::<Vec<_>>(), [0, 1, 4, 9, 16]);
        /// ```
        pub fn spawn_many<F, T>(&self, n: usize, f: F) -> crate::TaskGroup<T>
        where
            F: Fn(usize) -> T + Send + Sync + 'static,
            T: Send + 'static,
        {
            let f = std::sync::Arc::new(f);
            crate::structured::group::spawn_group(
                self.shared(),
                (0..n).map(move |i| {
                    let f = f.clone();
                    move || f(i)
                }),
                false,
            )
        }

        /// Spawns every closure of `tasks` as one batch (see
        /// [`spawn_many`](Self::spawn_many)); handles in iteration order.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let words = ["a", "bb", "ccc"];
        /// let group = sched.spawn_batch(words.map(|w| move || w.len()));
        /// let lens: Vec<usize> = group.join_all().into_iter().map(Result::unwrap).collect();
        /// assert_eq!(lens, [1, 2, 3]);
        /// ```
        pub fn spawn_batch<I, F, T>(&self, tasks: I) -> crate::TaskGroup<T>
        where
            I: IntoIterator<Item = F>,
            F: FnOnce() -> T + Send + 'static,
            T: Send + 'static,
        {
            crate::structured::group::spawn_group(self.shared(), tasks, true)
        }

        /// The number of worker threads.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(3).build().unwrap();
        /// assert_eq!(sched.num_workers(), 3);
        /// assert_eq!(sched.handle().num_workers(), 3);
        /// ```
        pub fn num_workers(&self) -> usize {
            self.shared().workers.len()
        }

        /// A snapshot of the counters; see [`Stats`].
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// sched.spawn_many(4, |i| i).join_all();
        /// let stats = sched.stats();
        /// assert_eq!(stats.total.spawned, 4);
        /// assert_eq!(stats.workers.len(), 2);
        /// ```
        pub fn stats(&self) -> Stats {
            let s = self.shared();
            let mut stats = Stats::collect(s.workers.iter().map(|w| &*w.stats), &s.external);
            stats.set_blocking(s.blocking_stats());
            stats
        }
    };
}

impl Handle {
    fn shared(&self) -> &Shared {
        self.shared.get()
    }

    /// Runs `f` with the scheduler's state as its `Arc`, borrowed.
    fn with_arc<R>(&self, f: impl FnOnce(&Arc<Shared>) -> R) -> R {
        self.shared.with_arc(f)
    }

    pub(crate) fn from_shared(shared: &Arc<Shared>) -> Handle {
        Handle { shared: SharedRef::new(shared) }
    }

    spawn_methods!();
}

impl Scheduler {
    fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn shared_state(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn shared_arc(&self) -> &Arc<Shared> {
        &self.shared
    }

    /// Runs `f` with the scheduler's state as its `Arc`, borrowed.
    fn with_arc<R>(&self, f: impl FnOnce(&Arc<Shared>) -> R) -> R {
        f(&self.shared)
    }

    spawn_methods!();

    /// A handle for spawning from other threads.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let handle = sched.handle();
    /// let t = std::thread::spawn(move || handle.spawn(|| 5).join().unwrap());
    /// assert_eq!(t.join().unwrap(), 5);
    /// ```
    pub fn handle(&self) -> Handle {
        Handle::from_shared(&self.shared)
    }

    /// A scheduler for `shared` whose `n` worker threads are about to be started
    /// (`Builder::build`).
    pub(crate) fn starting(shared: Arc<Shared>, n: usize) -> Scheduler {
        Scheduler { shared, threads: Vec::with_capacity(n), done: false }
    }

    /// Records a started worker thread, joined at shutdown.
    pub(crate) fn add_thread(&mut self, t: crate::shim::thread::JoinHandle<()>) {
        self.threads.push(t);
    }

    /// L4 (`Shared::close`), then the first shutdown sweep: async tasks are not polled
    /// after this, and the futures waiting for a wake are dropped now (`async_task.rs`,
    /// "Shutdown"), even while the workers are still busy with closures.
    fn close(&self) {
        self.shared.close();
        self.shared.sweep_async(None);
    }

    /// Waits until every worker has left or `deadline` passed; `true` if all left.
    fn wait_workers(&self, deadline: Option<Instant>) -> bool {
        self.shared.wait_workers(deadline)
    }

    /// Shuts down gracefully within `timeout`: no new task is accepted from outside, queued
    /// tasks run (and so do the tasks they spawn), and every worker thread is joined before
    /// `Ok(())` returns.
    ///
    /// When the time runs out, tasks that never started are dropped unrun (each capture's
    /// destructor runs exactly once) and their joiners get [`TaskError::ShutDown`](crate::TaskError::ShutDown); workers
    /// still inside a task cannot be interrupted, so their threads are detached and exit
    /// when that task returns, the last of them freeing the scheduler's memory. That case
    /// returns `Err(ShutdownTimeout)`. A `join` half or an injected body found in the
    /// queues is run rather than dropped (its caller is waiting for it); inside it,
    /// `filch::spawn` and friends refer to this scheduler, which refuses them.
    ///
    /// Called from inside one of its own tasks it cannot succeed (that task's worker is
    /// busy running the caller): it returns the error when the time is up.
    ///
    /// ```
    /// use std::time::Duration;
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// assert_eq!(sched.spawn(|| 1 + 1).join().unwrap(), 2);
    /// assert_eq!(sched.shutdown_timeout(Duration::from_secs(60)), Ok(()));
    /// ```
    pub fn shutdown_timeout(mut self, timeout: Duration) -> Result<(), ShutdownTimeout> {
        let deadline = Instant::now().checked_add(timeout);
        self.close();
        if self.wait_workers(deadline) {
            self.finish();
            return Ok(());
        }
        let s = self.shared.clone();
        // Relaxed: workers read it at each task; the unparks below deliver it promptly
        // enough, and the abandoning itself is decided per task by T1's claim.
        s.abandon.store(true, Relaxed);
        s.unpark_everyone();
        let mut abandoned = 0;
        for t in s.take_blocking() {
            abandoned += thread::abandon_task(&s, None, t) as usize;
        }
        abandoned += thread::drain_abandoning(&s);
        let still_running = s.workers_running();
        if still_running == 0 {
            self.finish();
        } else {
            // Detach: the threads keep their own `Arc<Shared>`, and the last to leave
            // settles the task memory (D3).
            self.give_up_share();
        }
        Err(ShutdownTimeout { still_running, abandoned })
    }

    /// D3: detaches the worker threads and gives up the scheduler's share of the teardown
    /// count; if every worker has already left, settles the task memory here.
    fn give_up_share(&mut self) {
        self.threads.clear();
        self.done = true;
        Shared::leave(&self.shared);
    }

    /// Joins the threads (all have left or are about to), drops what lost workers left
    /// queued, and settles task memory (D3 with every worker gone).
    fn finish(&mut self) {
        let spares = self.shared.board.take_threads();
        for t in self.threads.drain(..).chain(spares) {
            if t.join().is_err() {
                contain::report(format_args!("filch: a worker thread panicked outside a task"));
            }
        }
        // Only a scheduler that lost workers can have tasks left here: a thread that
        // leaves normally runs the queued blocking tasks first (B5).
        if self.shared.lost_workers() != 0 {
            let mut dropped = 0;
            for t in self.shared.take_blocking() {
                dropped += thread::abandon_task(&self.shared, None, t) as usize;
            }
            dropped += thread::drain_abandoning(&self.shared);
            if dropped != 0 {
                contain::report(format_args!(
                    "filch: {dropped} task(s) left queued by lost workers were dropped unrun"
                ));
            }
        }
        self.give_up_share();
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.close();
        if worker::with_current(|c| c.is_some_and(|c| c.is_of(&self.shared)))
            || thread::is_thread_of(&self.shared)
        {
            // Dropped inside one of its own tasks: waiting for the workers would wait for
            // this very thread. The scheduler is closed; the workers finish what is queued
            // and leave, and the last one settles the memory (D3).
            self.give_up_share();
            return;
        }
        self.wait_workers(None);
        self.finish();
    }
}

/// The global default scheduler of the free functions, built on first use with
/// [`Builder`](crate::Builder)'s defaults and never shut down.
pub(crate) fn global() -> &'static Scheduler {
    static GLOBAL: std::sync::OnceLock<Scheduler> = std::sync::OnceLock::new();
    GLOBAL.get_or_init(Scheduler::new)
}

#[allow(dead_code)]
fn _assert_handle_types() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Handle>();
    is_send_sync::<Scheduler>();
}
