//! The spawn paths, top to bottom: the public spawns, the one path they share
//! (`spawn_raw`: local or external), and task creation (`new_task`: pool slot or heap).
//!
//! # Spawn paths
//!
//! - **Local** (on a worker of this scheduler): allocate a slot from the worker's pool
//!   cache (when it and the global stack are empty, flush the shared cache below and try
//!   once more), write the task, push it on the worker's own deque (LIFO), then K1
//!   (`sleep.rs`). A full deque first moves half of its tasks, oldest first, to the
//!   injection queue with one `push_chain` (counted in `spills`).
//! - **External** (any other thread): take an *entry* on the lifecycle word (L1), allocate
//!   from the pool cache the threads outside the workers share (`pool::SharedCache`; the
//!   global stack while another thread is using it), push onto the injection queue, give
//!   the entry back, then K1.
//! - A task that does not fit a pool slot, or any spawn while the pool is exhausted, gets a
//!   heap task of the same layout (`heap_fallbacks`). `try_spawn` never does: it hands the
//!   closure back. A plain spawn from outside that finds the pool empty, past the first
//!   few thousand of one overflow, first yields a few times for the workers to free a
//!   slot (`alloc_slot_waiting`): a thread spawning faster than the workers run its tasks
//!   would otherwise allocate nearly every task once the pool runs out, and the workers
//!   would pay a remote `free` for each (on two workers, 1 M tiny tasks from outside went
//!   47–96 % to the heap).
//!
use std::fmt;
use std::future::Future;

use crate::lockfree::pool::SlotId;
use crate::runtime::join_handle::JoinHandle;
use crate::runtime::shared::Shared;
use crate::runtime::stats::Row;
use crate::runtime::worker::{self, WorkerCtx};
use crate::shim::atomic::Ordering::Relaxed;
use crate::shim::Arc;
use crate::task::{fits_inline, TaskRef, TaskSlot};

/// How many times a spawn from outside that finds the pool empty yields for a free slot
/// before it falls back to the heap (`Shared::alloc_slot_waiting`).
pub(crate) const EXT_WAIT_ROUNDS: u32 = 4;

/// How many spawns from outside of one overflow go to the heap before the first wait.
pub(crate) const EXT_WAIT_AFTER: u32 = 4096;

/// After a wait found no slot, how many spawns from outside that find the pool empty go
/// to the heap without waiting.
pub(crate) const EXT_WAIT_SKIPS: u32 = 1024;

/// A spawn from outside that finds the pool empty starts a new overflow when more than
/// this many spawns from outside got a pool slot since the last one that found it empty.
pub(crate) const EXT_OVERFLOW_GAP: u64 = 1024;

impl Shared {
    /// Spawns on this scheduler from any thread.
    pub(crate) fn spawn_inner<F, T>(&self, f: F, allow_heap: bool) -> Result<JoinHandle<T>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        // SAFETY: `F: 'static`: nothing it borrows can go away.
        unsafe { self.spawn_raw::<F, T>(f, allow_heap, false) }.map(joinable)
    }

    /// A detached spawn: no `JoinHandle`, so neither a handle to build nor one to detach.
    /// Falls back to the heap when the pool is full; hands `f` back only when the
    /// scheduler is shut down.
    pub(crate) fn spawn_detached<F>(&self, f: F) -> Result<(), SpawnError<F>>
    where
        F: FnOnce() + Send + 'static,
    {
        // SAFETY: `F: 'static`: nothing it borrows can go away.
        unsafe { self.spawn_raw::<F, ()>(f, true, true) }.map(|_| ())
    }

    /// A spawn from `ctx`, a worker of this scheduler, for a caller that already looked
    /// the context up (the free functions `filch::spawn` and `filch::spawn_detached`): one
    /// thread-local lookup per spawn, not two. Falls back to the heap; the handle's
    /// reference unless `detached`.
    #[inline]
    pub(crate) fn spawn_from<F, T>(
        &self,
        ctx: &WorkerCtx<'_>,
        f: F,
        detached: bool,
    ) -> Result<Option<TaskRef>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        debug_assert!(ctx.is_of(self));
        // `F: 'static`: nothing the task borrows can go away.
        self.spawn_local(ctx, f, true, detached)
    }

    /// A detached spawn without the `'static` bound (scope tasks). Falls back to the heap
    /// when the pool is full; hands `f` back only when the scheduler is shut down. The
    /// output, unread, is dropped after the task is counted in `Stats::completed`.
    ///
    /// # Safety
    /// Whatever `f` and its output borrow outlives the task: the caller waits until `f`
    /// has run or been dropped, and its output (if any) dropped.
    pub(crate) unsafe fn spawn_detached_unchecked<F, T>(&self, f: F) -> Result<(), F>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        // SAFETY: forwarded from the caller.
        match unsafe { self.spawn_raw::<F, T>(f, true, true) } {
            Ok(_) => Ok(()),
            Err(e) => Err(e.closure),
        }
    }

    /// The one spawn path: local (on a worker of this scheduler) or external.
    ///
    /// # Safety
    /// Whatever `f` borrows outlives the task (trivially so for `F: 'static`).
    #[inline]
    unsafe fn spawn_raw<F, T>(
        &self,
        f: F,
        allow_heap: bool,
        detached: bool,
    ) -> Result<Option<TaskRef>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        worker::with_current(|ctx| match ctx.filter(|c| c.is_of(self)) {
            Some(ctx) => self.spawn_local(ctx, f, allow_heap, detached),
            None => self.spawn_external(f, allow_heap, detached),
        })
    }

    #[inline(always)]
    fn spawn_local<F, T>(
        &self,
        ctx: &WorkerCtx<'_>,
        f: F,
        allow_heap: bool,
        detached: bool,
    ) -> Result<Option<TaskRef>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        // A running task may fork during a graceful shutdown: its children run to
        // completion (L6). Only a timed-out shutdown refuses them.
        if self.is_abandoning() {
            return Err(SpawnError { kind: SpawnErrorKind::ShutDown, closure: f });
        }
        let (queued, handle) = self
            .new_task(f, Some(ctx), allow_heap, detached, false)
            .map_err(|(f, kind)| SpawnError { kind, closure: f })?;
        Row::bump_owned(&ctx.row().spawned, 1);
        ctx.push_local(queued);
        // K1, unless this worker is the only one: then nobody else could run the task, the
        // one worker is this running thread, and it reaches its own deque before it sleeps
        // (K3 re-checks it), so there is nobody to wake and no fence to pay.
        if self.workers.len() > 1 {
            self.notify();
        }
        Ok(handle)
    }

    fn spawn_external<F, T>(
        &self,
        f: F,
        allow_heap: bool,
        detached: bool,
    ) -> Result<Option<TaskRef>, SpawnError<F>>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        if !self.enter_external() {
            return Err(SpawnError { kind: SpawnErrorKind::ShutDown, closure: f });
        }
        let task = self.new_task(f, None, allow_heap, detached, true);
        let result = match task {
            Ok((queued, handle)) => {
                // `injected` of the external row is derived from `spawned` (stats.rs).
                Row::bump_shared(&self.external.spawned, 1);
                // L2. SAFETY: `queued` is a live task reference that we give to the queue;
                // the worker that pops it rebuilds it with `from_raw`.
                unsafe { self.injector.push(queued.into_raw()) };
                Ok(handle)
            }
            Err((f, kind)) => Err(SpawnError { kind, closure: f }),
        };
        self.leave_external();
        if result.is_ok() {
            self.notify();
        }
        result
    }

    /// `spawn_blocking`: a task for a spare thread (`roles.rs`, B5), which runs it holding
    /// no worker role; with no spare slots at all (`max_spare_threads(0)`), an ordinary
    /// task for the workers. Counted as an external spawn. On a shut-down scheduler the
    /// task is dropped unrun and its handle joins to `ShutDown`.
    pub(crate) fn spawn_blocking_inner<F, T>(this: &Arc<Shared>, f: F) -> JoinHandle<T>
    where
        F: FnOnce() -> T + Send + 'static,
        T: Send + 'static,
    {
        if !this.board.has_spare_slots() {
            // `max_spare_threads(0)`: no thread but the workers will ever run it, so it is
            // an ordinary task (holding its worker while it runs), refused as `spawn` is.
            return this.spawn_inner(f, true).unwrap_or_else(|refused| {
                drop(refused);
                JoinHandle::refused()
            });
        }
        // L1, as for any spawn from outside: a worker does not pass its exit check while
        // the entry is held, so the scheduler's drop cannot settle task memory (D4) before
        // the count below; without it the task could be left out of the orphan count and
        // freed into a freed state.
        if !this.enter_external() {
            drop(f);
            return JoinHandle::refused();
        }
        let Ok((queued, handle)) = this.new_task(f, None, true, false, false) else {
            unreachable!("a heap task is always possible")
        };
        Row::bump_shared(&this.external.spawned, 1);
        let queued = Shared::queue_blocking(this, queued);
        this.leave_external();
        if let Err(t) = queued {
            // Shut down meanwhile, or no thread could be started: dropped unrun.
            crate::runtime::thread::abandon_task(this, None, t);
        }
        joinable(handle)
    }

    /// Queues a stack job from outside the scheduler (L1–L3, then K1). `Err` gives it back
    /// when the scheduler is shut down.
    pub(crate) fn inject_stack_job(&self, job: TaskRef) -> Result<(), TaskRef> {
        debug_assert!(job.is_stack_job());
        if !self.enter_external() {
            return Err(job);
        }
        // L2. SAFETY: the stack job stays alive until its latch is set (its creator waits).
        unsafe { self.injector.push(job.into_raw()) };
        Row::bump_shared(&self.external.injected, 1);
        self.leave_external();
        self.notify();
        Ok(())
    }

    /// Allocates and writes a task; `allow_heap` false makes a full pool (or an oversize
    /// task) hand the closure back. `ctx` is the current worker of this scheduler, if any.
    /// `wait_for_slot`: a plain spawn from outside, which may wait a little for a full pool
    /// (`alloc_slot_waiting`); not a batch, whose own unpublished tasks hold the slots,
    /// nor `spawn_blocking`, which may come from a worker. Returns the queue's reference
    /// and, unless `detached`, the handle's.
    ///
    /// No `'static` bound: the public spawns require it; `scope` instead guarantees that
    /// its tasks finish (or are dropped) before the borrowed data goes away.
    #[inline]
    pub(crate) fn new_task<F, T>(
        &self,
        f: F,
        ctx: Option<&WorkerCtx<'_>>,
        allow_heap: bool,
        detached: bool,
        wait_for_slot: bool,
    ) -> Result<(TaskRef, Option<TaskRef>), (F, SpawnErrorKind)>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let row = ctx.map(|c| c.row());
        if fits_inline::<F, T>() {
            debug_assert!(!wait_for_slot || ctx.is_none(), "only spawns from outside wait");
            // A plain spawn from outside first waits a little for a full pool
            // (`alloc_slot_waiting`).
            let id = self.alloc_slot_for(ctx).or_else(|| {
                if wait_for_slot && allow_heap {
                    self.alloc_slot_waiting()
                } else {
                    None
                }
            });
            if let Some(id) = id {
                // Counted as `spawned - heap_fallbacks` by the caller's row.
                // SAFETY: `id` was just allocated from this pool.
                let slot = unsafe { self.pool.slot_ptr_unchecked(id) }.cast::<TaskSlot>();
                // SAFETY: the slot was just allocated to us, `start` prepared it, and
                // `fits_inline` holds.
                return Ok(unsafe { TaskRef::new_in_slot::<F, T>(slot, f, detached) });
            }
            if !allow_heap {
                return Err((f, SpawnErrorKind::PoolFull));
            }
        } else if !allow_heap {
            return Err((f, SpawnErrorKind::TooLarge));
        }
        match row {
            Some(r) => Row::bump_owned(&r.heap_fallbacks, 1),
            None => Row::bump_shared(&self.external.heap_fallbacks, 1),
        }
        Ok(TaskRef::new_on_heap::<F, T>(f, self.as_owner(), detached))
    }
}

impl Shared {
    /// A pool slot for a new task: from the worker's cache on a worker, else from the
    /// shared cache of the threads outside the workers (`pool::SharedCache`).
    #[inline(always)]
    fn alloc_slot_for(&self, ctx: Option<&WorkerCtx<'_>>) -> Option<SlotId> {
        match ctx {
            Some(c) => c.alloc_slot().or_else(|| self.alloc_slot_after_flush(c)),
            None => self.ext_cache.try_alloc(&self.pool),
        }
    }

    /// A plain spawn from outside found the pool empty (module docs, "Spawn paths"). The
    /// first [`EXT_WAIT_AFTER`] such spawns of an *overflow* (a run of them with at most
    /// [`EXT_OVERFLOW_GAP`] spawns from outside that got a slot between one and the next;
    /// counted from the statistics, so no clock is read) go to the heap at once: a burst
    /// that overflows the pool by a few thousand tasks costs less there than waiting.
    /// After that, each yields up to [`EXT_WAIT_ROUNDS`] times for the workers to free a
    /// slot before the caller falls back to the heap: a thread that keeps outrunning the
    /// workers then spawns at their pace into recycled slots, instead of allocating every
    /// task while they pay a remote free for each. A wait that found no slot (the workers
    /// are busy with long or blocked tasks) sends the next [`EXT_WAIT_SKIPS`] such spawns
    /// to the heap at once, so such a program pays one wait per that many spawns
    /// (measured: 10–20 ns per spawn with both workers of two busy).
    #[cold]
    #[inline(never)]
    fn alloc_slot_waiting(&self) -> Option<SlotId> {
        if cfg!(loom) {
            // A heuristic, not a protocol: the models check the plain retry-free path.
            return None;
        }
        // Relaxed, and plain loads and stores rather than RMWs: heuristic counts, read and
        // written only here (the statistics: by every spawn from outside); a racing
        // spawner's lost update moves a wait by a spawn or two.
        let ext = &self.external;
        let slot_spawns = ext.spawned.load(Relaxed).wrapping_sub(ext.heap_fallbacks.load(Relaxed));
        let last = self.ext_overflow_mark.load(Relaxed);
        self.ext_overflow_mark.store(slot_spawns, Relaxed);
        let mut n = self.ext_overflow.load(Relaxed);
        if slot_spawns.wrapping_sub(last) > EXT_OVERFLOW_GAP {
            n = 0; // a new overflow: the pool served spawns from outside since the last
        }
        if n < EXT_WAIT_AFTER {
            self.ext_overflow.store(n + 1, Relaxed);
            return None;
        }
        for _ in 0..EXT_WAIT_ROUNDS {
            crate::lockfree::park::yield_now();
            if let Some(id) = self.ext_cache.try_alloc(&self.pool) {
                return Some(id);
            }
        }
        // Relaxed: as above.
        self.ext_overflow.store(EXT_WAIT_AFTER - EXT_WAIT_SKIPS, Relaxed);
        None
    }

    /// The worker's cache and the global stack are empty: slots freed outside the workers
    /// may be waiting in the shared cache. Flushes it (unless another thread is using it)
    /// and tries once more.
    #[cold]
    #[inline(never)]
    fn alloc_slot_after_flush(&self, c: &WorkerCtx<'_>) -> Option<SlotId> {
        self.ext_cache.flush();
        c.alloc_slot()
    }
}

impl Shared {
    /// Spawns a future on this scheduler from any thread (module docs, "Spawn paths"). The
    /// handle's reference unless `detached`; `allow_heap` false makes a full pool or an
    /// oversize future hand the future back.
    pub(crate) fn spawn_async_inner<Fut>(
        &self,
        fut: Fut,
        allow_heap: bool,
        detached: bool,
    ) -> Result<Option<TaskRef>, SpawnError<Fut>>
    where
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        worker::with_current(|ctx| match ctx.filter(|c| c.is_of(self)) {
            Some(ctx) => self.spawn_async_from(ctx, fut, allow_heap, detached),
            None => {
                if !self.enter_external() {
                    return Err(SpawnError { kind: SpawnErrorKind::ShutDown, closure: fut });
                }
                let result = self.new_async_task(fut, None, allow_heap, detached).map(|(queued, handle)| {
                    Row::bump_shared(&self.external.spawned, 1);
                    // L2. SAFETY: a live task reference that we give to the queue.
                    unsafe { self.injector.push(queued.into_raw()) };
                    handle
                });
                self.leave_external();
                if result.is_ok() {
                    self.notify();
                }
                result
            }
        })
    }

    /// The local spawn of a future, from `ctx`, a worker of this scheduler. Refused once
    /// the scheduler is shutting down: futures are not polled any more then
    /// (`async_task.rs`, "Shutdown").
    #[inline]
    pub(crate) fn spawn_async_from<Fut>(
        &self,
        ctx: &WorkerCtx<'_>,
        fut: Fut,
        allow_heap: bool,
        detached: bool,
    ) -> Result<Option<TaskRef>, SpawnError<Fut>>
    where
        Fut: Future + Send + 'static,
        Fut::Output: Send + 'static,
    {
        debug_assert!(ctx.is_of(self));
        if self.is_shutting_down() {
            return Err(SpawnError { kind: SpawnErrorKind::ShutDown, closure: fut });
        }
        let (queued, handle) = self.new_async_task(fut, Some(ctx), allow_heap, detached)?;
        Row::bump_owned(&ctx.row().spawned, 1);
        ctx.push_local(queued);
        if self.workers.len() > 1 {
            self.notify();
        }
        Ok(handle)
    }

    /// Allocates and writes an async task (pool slot, or heap when allowed), as
    /// [`Shared::new_task`] does for closures. A heap async task is registered for the
    /// shutdown sweep before it is published.
    #[inline]
    fn new_async_task<Fut>(
        &self,
        fut: Fut,
        ctx: Option<&WorkerCtx<'_>>,
        allow_heap: bool,
        detached: bool,
    ) -> Result<(TaskRef, Option<TaskRef>), SpawnError<Fut>>
    where
        Fut: Future + Send,
        Fut::Output: Send,
    {
        self.note_async();
        if fits_inline::<Fut, Fut::Output>() {
            let id = self.alloc_slot_for(ctx);
            if let Some(id) = id {
                // SAFETY: `id` was just allocated from this pool.
                let slot = unsafe { self.pool.slot_ptr_unchecked(id) }.cast::<TaskSlot>();
                // SAFETY: the slot is ours, prepared by `Shared::new`, and the future fits.
                return Ok(unsafe { TaskRef::new_async_in_slot::<Fut, Fut::Output>(slot, fut, detached) });
            }
            if !allow_heap {
                return Err(SpawnError { kind: SpawnErrorKind::PoolFull, closure: fut });
            }
        } else if !allow_heap {
            return Err(SpawnError { kind: SpawnErrorKind::TooLarge, closure: fut });
        }
        match ctx {
            Some(c) => Row::bump_owned(&c.row().heap_fallbacks, 1),
            None => Row::bump_shared(&self.external.heap_fallbacks, 1),
        }
        let (queued, handle) = TaskRef::new_async_on_heap::<Fut, Fut::Output>(fut, self.as_owner(), detached);
        self.add_heap_async(std::ptr::NonNull::from(queued.header()));
        Ok((queued, handle))
    }
}

/// The `JoinHandle` of a spawn made with a handle (`detached == false`).
pub(crate) fn joinable<T>(handle: Option<TaskRef>) -> JoinHandle<T> {
    match handle {
        Some(h) => JoinHandle::new(h),
        None => unreachable!("a spawn that is not detached returns its handle"),
    }
}

/// Why a spawn was refused; the closure comes back in [`SpawnError::into_inner`].
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let big = [0u8; filch::TASK_INLINE_BYTES + 1];
/// let err = sched.try_spawn(move || big.len()).unwrap_err();
/// assert_eq!(err.kind(), filch::SpawnErrorKind::TooLarge);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum SpawnErrorKind {
    /// The scheduler is shut down (or shutting down).
    ShutDown,
    /// No free pool slot was within reach (`try_spawn` does not fall back to the heap).
    /// Usually every slot is in use; some free ones may be waiting where this spawn cannot
    /// reach them: up to 64 in each other worker's cache (each worker's, for a spawn from
    /// outside the workers), up to 64 in the cache the threads outside the workers share
    /// while another thread is using it, and up to 31 in another thread's allocation in
    /// progress.
    PoolFull,
    /// The closure and its result need more than [`crate::task::INLINE`] bytes or an
    /// alignment above 16, so they cannot live in a pool slot.
    TooLarge,
}

/// A refused spawn, carrying the closure back to the caller.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let handle = sched.handle();
/// drop(sched);
/// let err: filch::SpawnError<_> = handle.try_spawn(|| 1).unwrap_err();
/// assert_eq!(err.to_string(), "spawn refused: the scheduler is shut down");
/// ```
pub struct SpawnError<F> {
    kind: SpawnErrorKind,
    closure: F,
}

impl<F> SpawnError<F> {
    /// Why the spawn was refused.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let handle = sched.handle();
    /// drop(sched);
    /// let err = handle.try_spawn(|| ()).unwrap_err();
    /// assert_eq!(err.kind(), filch::SpawnErrorKind::ShutDown);
    /// ```
    pub fn kind(&self) -> SpawnErrorKind {
        self.kind
    }

    /// The closure, never run.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let big = [2u8; filch::TASK_INLINE_BYTES * 2];
    /// let err = sched.try_spawn(move || big.iter().map(|&b| b as u32).sum::<u32>()).unwrap_err();
    /// let f = err.into_inner(); // too large for a pool slot: run it here instead
    /// assert_eq!(f() as usize, filch::TASK_INLINE_BYTES * 4);
    /// ```
    pub fn into_inner(self) -> F {
        self.closure
    }
}

impl<F> fmt::Debug for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SpawnError").field("kind", &self.kind).finish_non_exhaustive()
    }
}

impl<F> fmt::Display for SpawnError<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            SpawnErrorKind::ShutDown => f.write_str("spawn refused: the scheduler is shut down"),
            SpawnErrorKind::PoolFull => f.write_str("spawn refused: no free task pool slot within reach"),
            SpawnErrorKind::TooLarge => f.write_str("spawn refused: the task does not fit a pool slot"),
        }
    }
}

impl<F> std::error::Error for SpawnError<F> {}
