//! The scheduler: shared state, spawning, shutdown, and the public [`Scheduler`] and
//! [`Handle`] types. The worker loop lives in `worker.rs`, the sleep protocol in
//! `sleep.rs`, the task state machine in `task.rs`.
//!
//! # Spawn paths
//!
//! - **Local** (on a worker of this scheduler): allocate a slot from the worker's pool
//!   cache, write the task, push it on the worker's own deque (LIFO), then K1
//!   (`sleep.rs`). A full deque first moves half of its tasks, oldest first, to the
//!   injection queue with one `push_chain` (counted in `spills`).
//! - **External** (any other thread): take an *entry* on the lifecycle word (L1), allocate
//!   from the shared pool, push onto the injection queue, give the entry back, then K1.
//! - A task that does not fit a pool slot, or any spawn while the pool is exhausted, gets a
//!   heap task of the same layout (`heap_fallbacks`). `try_spawn` never does: it hands the
//!   closure back.
//!
//! # Lifecycle word (shutdown racing spawn)
//!
//! | bits | meaning |
//! |------|---------|
//! | 63 | `SHUTDOWN`: no new task is accepted |
//! | 0..63 | external spawns in flight between L1 and L3 |
//!
//! - **L1**: an external spawner adds one (AcqRel RMW). If the previous value had
//!   `SHUTDOWN`, it subtracts it again and refuses the task.
//! - **L2**: it publishes the task on the injection queue.
//! - **L3**: it subtracts one (Release: L2's push happens before whoever sees the count
//!   drop to zero).
//! - **L4**: shutdown sets `SHUTDOWN` (AcqRel RMW). Workers exit only after seeing the word
//!   equal to exactly `SHUTDOWN` (no spawn in flight; Acquire, pairing with L3) *and*
//!   finding no task anywhere. Every accepted external spawn is therefore either seen by a
//!   worker's last search or refused. A local spawn checks `SHUTDOWN` with a Relaxed load;
//!   one that raced past it lands in the spawning worker's own deque, and a worker empties
//!   its own deque before it can exit.
//! - **L5**: the external spawner whose give-back (L3, or a refusal's) leaves the word at
//!   exactly `SHUTDOWN` wakes every sleeper, as L4 does: a worker that went to sleep after
//!   L4's wake-up because that spawn was still in flight would otherwise sleep forever.
//!
//! - **L6**: a *local* spawn (a running task forking, on a worker of this scheduler) is
//!   accepted during a graceful shutdown: work in flight runs to completion, including
//!   what it spawns. Only a timed-out shutdown (`abandon`) refuses it; one that raced past
//!   that Relaxed check lands in its own worker's deque, which the worker empties
//!   (abandoning) before it exits.
//!
//! # Task memory and the orphan protocol
//!
//! A task (pool slot or heap) is freed by whoever drops its last reference: usually a
//! worker, sometimes a `JoinHandle` on another thread. `JoinHandle`s may outlive their
//! `Scheduler`, and holding an `Arc` per handle would put a contended RMW on every spawn.
//! Instead workers count the tasks they create (`spawned`) and free in their own stats
//! rows (single writer, no RMW: pool frees derived from the magazine's flow at exit, heap
//! frees counted), and other threads count their frees in `ext_frees` (their creations are
//! the external row's `spawned`). Once no task can be created any more (D4 below) the last
//! party computes how many tasks are still to be freed outside the workers, `target`,
//! stores it, and sets `ORPHAN` in `ext_frees` (AcqRel). If `ext_frees` already equals
//! `target`, its reference goes as usual; otherwise it leaves one `Arc` reference to the
//! free that brings `ext_frees` to `target` (each free sees a distinct count, so exactly
//! one does). So the shared state outlives every task, and a handle's `cancel` may write to
//! it after claiming the task, whatever the scheduler's drop does meanwhile (the loom model
//! `sched_cancel_vs_drop_heap`, mutant `OrphanCountsHeap`).
//!
//! # Teardown (who settles)
//!
//! - **D1**: the teardown count `running` starts at `workers + 1`: one share per worker
//!   and one for the `Scheduler`.
//! - **D2**: a worker gives up its share as the very last thing it does (AcqRel RMW);
//!   leaving only the `Scheduler`'s share, it unparks the waiting drop.
//! - **D3**: the `Scheduler` gives up its share after joining its workers (graceful drop,
//!   or a shutdown that finished in time), or at once, detaching the threads, when a
//!   shutdown timed out or when it is dropped inside one of its own tasks.
//! - **D4**: whoever gives up the last share (the AcqRel chain orders every other party's
//!   stores before it) settles task memory as above. So a timed-out shutdown, or a drop
//!   from inside a task, frees everything once the last worker leaves; nothing waits for
//!   that worker, and nothing leaks.

use std::fmt;
use std::time::{Duration, Instant};

use crate::builder::{Builder, Idle, PanicHandler, ThreadHook};
use crate::contain::{self, Payload};
use crate::deque::{Owner, Stealer};
use crate::inject::Injector;
use crate::join::JoinHandle;
use crate::park::Parker;
use crate::pool::{Pool, SlotId};
use crate::sleep::Sleep;
use crate::stats::{Row, Stats};
use crate::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use crate::sync::mutation::{self, Site};
use crate::sync::{Arc, CachePadded};
use crate::task::{fits_inline, Dead, Header, Home, TaskRef, TaskSlot};
use crate::worker::{self, WorkerCtx};

const SHUTDOWN: usize = 1 << (usize::BITS - 1);
const ORPHAN: u64 = 1 << 63;

/// One worker's shared face: what other threads need to reach it.
pub(crate) struct WorkerSlot {
    pub(crate) stealer: Stealer<TaskRef>,
    pub(crate) parker: Arc<Parker>,
    pub(crate) stats: CachePadded<Row>,
}

pub(crate) struct Config {
    pub(crate) idle: Idle,
    pub(crate) on_thread_start: Option<ThreadHook>,
    pub(crate) on_thread_stop: Option<ThreadHook>,
    pub(crate) panic_handler: Option<PanicHandler>,
}

/// State shared by the workers, the `Scheduler`, every `Handle`, and (through the orphan
/// protocol) outstanding `JoinHandle`s.
pub(crate) struct Shared {
    pub(crate) workers: Box<[WorkerSlot]>,
    pub(crate) injector: Injector<Header>,
    pub(crate) pool: Pool<TaskSlot>,
    pub(crate) sleep: Sleep,
    pub(crate) external: CachePadded<Row>,
    lifecycle: CachePadded<AtomicUsize>,
    /// Set when a shutdown's timeout expired: queued tasks are dropped unrun.
    pub(crate) abandon: AtomicBool,
    /// Workers blocked in a wait past `MAX_NESTED_WAITS` (`worker.rs`, "Nested waits");
    /// kept below the worker count, so one worker always helps.
    pub(crate) blocked_waiters: AtomicUsize,
    /// The teardown count (module docs, "Teardown"): workers that have not exited yet,
    /// plus one for the `Scheduler` until it gives its share up.
    running: AtomicUsize,
    shutdown_parker: Arc<Parker>,
    /// Workers whose run loop a panic ended (`worker.rs`, "Lost workers").
    lost_workers: AtomicUsize,
    /// Workers whose start hook has not finished yet; the builder waits for zero.
    starting: AtomicUsize,
    /// The first start-hook failure: the worker's index and the panic's message.
    start_failure: crate::sync::Mutex<Option<(usize, String)>>,
    /// Test-only fault injection: this many panics are raised in worker run loops
    /// (`Builder::inject_loop_panics`).
    pub(crate) inject_loop_panics: AtomicUsize,
    ext_frees: AtomicU64,
    orphan_target: AtomicU64,
    /// One worker, whose deque is in sole-owner mode (`deque::Owner::set_asymmetric`):
    /// foreign steals from it must use `steal_heavy`.
    pub(crate) sole_owner: bool,
    pub(crate) config: Config,
}

impl Shared {
    pub(crate) fn as_owner(&self) -> *const () {
        (self as *const Shared).cast()
    }

    /// L4 exit condition, first half: shut down and no external spawn in flight.
    pub(crate) fn is_closed(&self) -> bool {
        // Acquire: pairs with L3's Release, so every accepted external spawn's push is
        // visible to the search that follows.
        self.lifecycle.load(mutation::ord(Site::LifecycleClosedAcquire, Acquire)) == SHUTDOWN
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        // Relaxed: an early look; correctness comes from L4 (module docs).
        self.lifecycle.load(Relaxed) & SHUTDOWN != 0
    }

    /// Whether a timed-out shutdown is dropping queued tasks (local spawns are refused).
    #[inline(always)]
    pub(crate) fn is_abandoning(&self) -> bool {
        // Relaxed: a local spawn that races past the store lands in its own worker's
        // deque, which that worker empties (abandoning) before it exits (L6).
        self.abandon.load(Relaxed)
    }

    /// Whether any queue visibly holds a task (K3/K4 re-check, exit check).
    pub(crate) fn has_visible_work(&self) -> bool {
        !self.injector.is_empty() || self.workers.iter().any(|w| !w.stealer.is_empty())
    }

    /// K1 + K2: after a task became visible, wakes a sleeper if nobody is searching.
    #[inline]
    pub(crate) fn notify(&self) {
        if let Some(i) = self.sleep.notify() {
            self.workers[i].parker.unpark();
        }
    }

    /// [`Sleep::notify_hint`]: K1 for a `join` half (wakes only when a plain look finds
    /// sleepers and no searcher).
    #[inline]
    pub(crate) fn notify_hint(&self) {
        if let Some(i) = self.sleep.notify_hint() {
            self.workers[i].parker.unpark();
        }
    }

    pub(crate) fn wake_one(&self) {
        if let Some(i) = self.sleep.wake_one() {
            self.workers[i].parker.unpark();
        }
    }

    /// Takes one of the `workers − 1` places for a blocked wait (`worker.rs`, "Nested
    /// waits"); `false` when the others are all taken (then the caller keeps helping).
    pub(crate) fn try_block_waiter(&self) -> bool {
        // Relaxed: only the count matters; the RMW's total order keeps at most
        // `workers − 1` places taken, and the wait itself synchronizes through its parker.
        let before = self.blocked_waiters.fetch_add(1, Relaxed);
        if before + 1 < self.workers.len() {
            return true;
        }
        self.unblock_waiter();
        false
    }

    /// Gives back a place taken by [`try_block_waiter`](Self::try_block_waiter).
    pub(crate) fn unblock_waiter(&self) {
        // Relaxed: as in `try_block_waiter`.
        self.blocked_waiters.fetch_sub(1, Relaxed);
    }

    /// Reports the panic of a task nobody joins.
    ///
    /// Never panics: the handler runs contained, the default report ignores a failed write
    /// (stderr may be a closed pipe), and the payload is dropped contained (its `Drop` is
    /// user code).
    #[cold]
    #[inline(never)]
    pub(crate) fn report_panic(&self, payload: Payload) {
        match &self.config.panic_handler {
            Some(h) => {
                if let Err(p) = contain::call(|| h(payload)) {
                    let msg = contain::message(&*p).unwrap_or("<non-string payload>");
                    contain::report(format_args!("filch: the panic handler itself panicked: {msg}"));
                    contain::drop_payload(p);
                }
            }
            None => {
                let msg = contain::message(&*payload).unwrap_or("<non-string payload>");
                contain::report(format_args!("filch: a detached task panicked: {msg}"));
                contain::drop_payload(payload);
            }
        }
    }

    /// Allocates and writes a task; `allow_heap` false makes a full pool (or an oversize
    /// task) hand the closure back. `ctx` is the current worker of this scheduler, if any.
    /// Returns the queue's reference and, unless `detached`, the handle's.
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
    ) -> Result<(TaskRef, Option<TaskRef>), (F, SpawnErrorKind)>
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let row = ctx.map(|c| c.row());
        if fits_inline::<F, T>() {
            let id = match ctx {
                Some(c) => c.alloc_slot(),
                None => self.pool.try_alloc(),
            };
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
            .new_task(f, Some(ctx), allow_heap, detached)
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
        let task = self.new_task(f, None, allow_heap, detached);
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

    /// L1: takes an external spawner's entry; `false` (entry already given back): the
    /// scheduler is shut down, refuse.
    #[inline]
    pub(crate) fn enter_external(&self) -> bool {
        // L1, AcqRel: Acquire pairs with L4 (a set SHUTDOWN is seen); Release is not needed
        // here but the RMW must be ordered before L2's push, which the queue's own Release
        // provides.
        if self.lifecycle.fetch_add(1, AcqRel) & SHUTDOWN != 0 {
            // Relaxed: we never published anything; just give the entry back.
            let prev = self.lifecycle.fetch_sub(1, Relaxed);
            self.after_leave(prev);
            return false;
        }
        true
    }

    /// L3 (+ L5): gives an external spawner's entry back after its push (L2).
    #[inline]
    pub(crate) fn leave_external(&self) {
        // L3, Release: pairs with the Acquire in `is_closed`: our push happens before a
        // worker's exit check that sees the count at zero.
        let prev = self.lifecycle.fetch_sub(1, mutation::ord(Site::LifecycleLeaveRelease, Release));
        self.after_leave(prev);
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

    /// L5, after an external spawner gave its entry back (L3, or a refusal after L1) from
    /// the lifecycle word `prev`.
    ///
    /// FIX (found by the loom model `sched_shutdown_vs_spawn`): a worker may go to sleep
    /// *after* `close` woke every sleeper, because this spawn was still in flight (its exit
    /// check saw `SHUTDOWN + n`, not `SHUTDOWN`). Nothing else would wake it: a refused
    /// spawn notifies nobody, and an accepted one's K1 wakes at most one worker, which then
    /// exits alone. So the spawner that leaves the word at exactly `SHUTDOWN` wakes every
    /// sleeper, as `close` does. No fence is needed for that: a worker whose K3 bit-set comes
    /// after `wake_all`'s Release swap in the bitmap's modification order reads that swap,
    /// and K3's `fence(SeqCst)` then acquires it, so its re-check sees our give-back;
    /// otherwise the swap sees its bit and we unpark it.
    #[inline]
    fn after_leave(&self, prev: usize) {
        if prev == SHUTDOWN + 1 && mutation::keep(Site::LifecycleLastLeaverWakes) {
            self.wake_all();
        }
    }

    /// Clears every sleeper bit and unparks those workers (shutdown).
    #[cold]
    fn wake_all(&self) {
        for i in self.sleep.wake_all() {
            self.workers[i].parker.unpark();
        }
    }

    /// Frees the memory of a task whose last reference is gone.
    pub(crate) fn free_task(dead: Dead) {
        worker::with_current(|ctx| Shared::free_task_on(dead, ctx));
    }

    /// [`Shared::free_task`] for a caller that already knows its worker context (`None`
    /// outside any worker): the worker loop frees without a second thread-local lookup.
    #[inline]
    pub(crate) fn free_task_on(dead: Dead, ctx: Option<&WorkerCtx<'_>>) {
        // The hot case inline: a pool task freed on a worker of its own scheduler.
        if let (Home::Pool(index), Some(ctx)) = (dead.home(), ctx) {
            if std::ptr::eq(dead.owner(), ctx.shared().as_owner()) {
                ctx.free_slot(SlotId::from_raw(index));
                return;
            }
        }
        Self::free_task_elsewhere(dead, ctx);
    }

    /// [`Shared::free_task_on`] for a heap task, or from a thread that is not a worker of
    /// the task's scheduler. Every free is counted for the orphan protocol: in the
    /// worker's own row, or in `ext_frees`.
    #[cold]
    #[inline(never)]
    fn free_task_elsewhere(dead: Dead, ctx: Option<&WorkerCtx<'_>>) {
        let owner = dead.owner();
        match dead.home() {
            Home::Heap => {
                dead.free_heap();
                if owner.is_null() || !mutation::keep(Site::OrphanCountsHeap) {
                    // A bare task of the loom models (no scheduler), or the mutant, which
                    // leaves heap tasks out of the orphan count.
                    return;
                }
                match ctx {
                    Some(c) if std::ptr::eq(owner, c.shared().as_owner()) => {
                        Row::bump_owned(&c.row().heap_frees, 1);
                    }
                    _ => {
                        // SAFETY: a task's owner is the `Shared` that created it, kept
                        // alive by the scheduler or, after its teardown, by the orphan
                        // protocol until this very free has been counted.
                        unsafe { &*owner.cast::<Shared>() }.count_external_free();
                    }
                }
            }
            Home::Pool(index) => {
                // SAFETY: as above; the pool holding the slot is the owner's.
                let shared = unsafe { &*owner.cast::<Shared>() };
                // SAFETY: the last reference is gone: nobody else uses the slot, freed once.
                unsafe { shared.pool.free(SlotId::from_raw(index)) };
                shared.count_external_free();
            }
            Home::Stack => contain::fatal("a stack job was freed as a task"),
        }
    }

    /// D2: a worker is leaving (module docs, "Teardown"). The last party to leave settles
    /// the task memory; a worker that leaves the `Scheduler` alone wakes it.
    pub(crate) fn leave(this: &Arc<Shared>) {
        // D2, AcqRel: Release orders everything this worker did (its rows, its cache flush)
        // before the party that settles; Acquire, when we are that party, orders every
        // other party's leaving before our settle. Partners: this RMW in other workers, and
        // D3's in `Scheduler::give_up_share` / the Acquire load in `wait_workers`.
        match this.running.fetch_sub(1, AcqRel) {
            1 => Shared::settle(this),
            2 => this.shutdown_parker.unpark(),
            _ => {}
        }
    }

    /// Whether a worker leaving now is the last one that could run tasks on a scheduler
    /// nobody closed: every worker but it was lost. Called by a lost worker before it
    /// leaves (`worker.rs`, "Lost workers").
    pub(crate) fn count_lost_worker(&self) -> bool {
        // Relaxed: the RMW's total order gives exactly one worker the last count; the
        // caller's close (L4, AcqRel) orders what follows.
        self.lost_workers.fetch_add(1, Relaxed) + 1 == self.workers.len()
    }

    /// Shuts the scheduler down from the inside, when no worker is left to run its tasks:
    /// refuses new tasks (L4) and drops every queued one unrun (joiners get `ShutDown`).
    pub(crate) fn close_orphaned(&self) {
        self.close();
        // Spawns that entered before L4 push after it: wait for them to leave (L3), so the
        // drain below sees everything that was accepted.
        while !self.is_closed() {
            crate::park::yield_now();
        }
        let dropped = worker::drain_abandoning(self);
        if dropped != 0 {
            contain::report(format_args!(
                "filch: every worker of a scheduler was lost; {dropped} queued task(s) dropped unrun"
            ));
        }
    }

    /// L4: refuses new external tasks, wakes every sleeper so that workers see it.
    pub(crate) fn close(&self) {
        // L4, AcqRel: Release makes SHUTDOWN visible to L1's Acquire; Acquire pairs with
        // L3 of spawns that completed before.
        self.lifecycle.fetch_or(SHUTDOWN, AcqRel);
        self.wake_all();
        // Workers may also be spinning or yielding; they check `is_closed` each round.
    }

    /// D4: settles task memory once every worker has left and the `Scheduler` has given up
    /// its share, so that no task can be created any more (module docs, "Task memory").
    /// Called by whichever party left last.
    fn settle(this: &Arc<Shared>) {
        let target = this.task_balance();
        // Relaxed: published by the AcqRel RMW below.
        this.orphan_target.store(target, Relaxed);
        // AcqRel: Release publishes `orphan_target` to every later free's Acquire;
        // Acquire pairs with the frees counted before.
        let frees = this.ext_frees.fetch_or(ORPHAN, AcqRel);
        if frees != target {
            // Handles still hold `target - frees` tasks: the free that completes the count
            // releases this reference (count_external_free).
            std::mem::forget(this.clone());
        }
    }

    /// A start hook finished on a worker; `failure` is its panic, if it panicked.
    pub(crate) fn start_done(&self, index: usize, failure: Option<Payload>) {
        if let Some(p) = failure {
            let msg = contain::message(&*p).unwrap_or("<non-string payload>").to_owned();
            contain::drop_payload(p);
            let mut first = self.start_failure.lock().unwrap_or_else(|e| e.into_inner());
            first.get_or_insert((index, msg));
        }
        // Release: the failure written above happens before the builder's Acquire load
        // that sees the count reach zero (`Scheduler::start`).
        if self.starting.fetch_sub(1, Release) == 1 {
            self.shutdown_parker.unpark();
        }
    }

    /// The orphan protocol's free side (module docs).
    fn count_external_free(&self) {
        // AcqRel: Acquire pairs with the drop's AcqRel `fetch_or(ORPHAN)` so that
        // `orphan_target` (stored before it) is visible; Release orders our pool free
        // before whoever frees the whole state.
        let prev = self.ext_frees.fetch_add(1, AcqRel);
        if prev & ORPHAN != 0 && (prev & !ORPHAN) + 1 == self.orphan_target.load(Relaxed) {
            // SAFETY: the dropped scheduler left exactly one `Arc` reference to be released
            // by the free that brings the count to `target`; this is that free.
            unsafe { Arc::decrement_strong_count(self as *const Shared) };
        }
    }

    /// Tasks (pool and heap) created and not freed by a worker: the frees still to be
    /// counted in `ext_frees`, past and future.
    fn task_balance(&self) -> u64 {
        // Relaxed: called by the last party of the teardown (D4), whose AcqRel RMW on
        // `running` ordered every worker's stores before it, and no spawn can happen any
        // more.
        let allocs = |r: &Row| {
            let all = r.spawned.load(Relaxed);
            // The mutant leaves heap tasks out of the count, as the protocol once did: a
            // handle to a heap task could then outlive the state its cancel writes to.
            if mutation::keep(Site::OrphanCountsHeap) {
                all
            } else {
                all - r.heap_fallbacks.load(Relaxed)
            }
        };
        let (a, f) = self.workers.iter().fold((0u64, 0u64), |(a, f), w| {
            let frees = w.stats.slot_frees.load(Relaxed) + w.stats.heap_frees.load(Relaxed);
            (a + allocs(&w.stats), f + frees)
        });
        a + allocs(&self.external) - f
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
    /// Every pool slot is in use (`try_spawn` does not fall back to the heap).
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
            SpawnErrorKind::PoolFull => f.write_str("spawn refused: every task pool slot is in use"),
            SpawnErrorKind::TooLarge => f.write_str("spawn refused: the task does not fit a pool slot"),
        }
    }
}

impl<F> std::error::Error for SpawnError<F> {}

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
    /// Workers still inside a task when the time ran out; they exit when it returns, and
    /// their threads are detached.
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
    threads: Vec<crate::sync::thread::JoinHandle<()>>,
    /// Set by a successful `shutdown_timeout`, so `Drop` has nothing left to do.
    done: bool,
}

/// A cheap, clonable way to spawn onto a scheduler from anywhere.
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
    shared: Arc<Shared>,
}

impl fmt::Debug for Scheduler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scheduler").field("workers", &self.shared.workers.len()).finish_non_exhaustive()
    }
}

impl fmt::Debug for Handle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").field("workers", &self.shared.workers.len()).finish_non_exhaustive()
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

        /// Runs `a` and `b`, potentially in parallel, and returns both results (rayon-style
        /// fork-join). On a worker, `b` is pushed on the worker's deque as a job on this
        /// stack frame (no pool slot, no allocation) and `a` runs at once; `b` then runs
        /// here too unless an idle worker stole it meanwhile. Called from outside the
        /// scheduler, the whole `join` runs on a worker while this thread waits.
        ///
        /// If either closure panics, the panic is re-raised here after both have finished
        /// (`a`'s if both panic). On a shut-down scheduler both run on the calling thread.
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
            crate::fork::join(self.shared(), a, b)
        }

        /// Runs `op` with a [`Scope`](crate::Scope) whose tasks may borrow from the
        /// enclosing stack, and returns once every task spawned in it (transitively) has
        /// finished. `op` runs on the calling thread; while it waits for the tasks, a
        /// worker thread runs other tasks and any other thread parks.
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
            crate::scope::scope(self.shared(), None, op).0
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
            crate::scope::scope_with(self.shared(), token, op)
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
            crate::parallel::parallel_for(self.shared(), range, None, &f);
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
            crate::parallel::outcome(crate::parallel::parallel_for(self.shared(), range, Some(token), &f))
        }

        /// Calls `f(chunk_index, chunk)` for every `chunk_len`-element chunk of `slice` (the
        /// last may be shorter), in parallel, splitting like
        /// [`parallel_for`](Self::parallel_for). `Err` if `chunk_len` is zero.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let data: Vec<u64> = (1..=10).collect();
        /// let sum = std::sync::Mutex::new(0u64);
        /// sched.for_each_chunk(&data, 3, |_, c| *sum.lock().unwrap() += c.iter().sum::<u64>()).unwrap();
        /// assert_eq!(sum.into_inner().unwrap(), 55);
        /// ```
        pub fn for_each_chunk<T, F>(
            &self,
            slice: &[T],
            chunk_len: usize,
            f: F,
        ) -> Result<(), crate::ZeroChunkLen>
        where
            T: Sync,
            F: Fn(usize, &[T]) + Sync + Send,
        {
            let n = crate::parallel::chunk_count(slice.len(), chunk_len)?;
            crate::parallel::for_blocks(self.shared(), 0..n, None, &|r: std::ops::Range<usize>| {
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
            Ok(())
        }

        /// Calls `f(chunk_index, chunk)` for every `chunk_len`-element chunk of `slice`,
        /// mutably, in parallel (the swarm pattern: update every agent). `Err` if
        /// `chunk_len` is zero.
        ///
        /// ```
        /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
        /// let mut agents = vec![1u32; 1000];
        /// sched.for_each_chunk_mut(&mut agents, 64, |_, c| c.iter_mut().for_each(|a| *a *= 3)).unwrap();
        /// assert!(agents.iter().all(|&a| a == 3));
        /// ```
        pub fn for_each_chunk_mut<T, F>(
            &self,
            slice: &mut [T],
            chunk_len: usize,
            f: F,
        ) -> Result<(), crate::ZeroChunkLen>
        where
            T: Send,
            F: Fn(usize, &mut [T]) + Sync + Send,
        {
            let len = slice.len();
            let n = crate::parallel::chunk_count(len, chunk_len)?;
            let base = crate::parallel::SendPtr(slice.as_mut_ptr());
            crate::parallel::for_blocks(self.shared(), 0..n, None, &|r: std::ops::Range<usize>| {
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
            Ok(())
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
            crate::group::spawn_group(
                self.shared(),
                (0..n).map(move |i| {
                    let f = f.clone();
                    move || f(i)
                }),
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
            crate::group::spawn_group(self.shared(), tasks)
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
            Stats::collect(s.workers.iter().map(|w| &*w.stats), &s.external)
        }
    };
}

impl Handle {
    fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn from_shared(shared: Arc<Shared>) -> Handle {
        Handle { shared }
    }

    spawn_methods!();
}

impl Scheduler {
    /// A builder with every default (see [`Builder`]).
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
    /// assert_eq!(sched.num_workers(), 1);
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A scheduler with the defaults of [`Builder`].
    ///
    /// # Panics
    ///
    /// If the operating system refuses to start the worker threads. Use
    /// `Scheduler::builder().build()` to get that as an error instead.
    ///
    /// ```
    /// let sched = filch::Scheduler::new();
    /// assert!(sched.num_workers() >= 1);
    /// assert_eq!(sched.spawn(|| 3).join().unwrap(), 3);
    /// ```
    pub fn new() -> Scheduler {
        match Builder::default().build() {
            Ok(s) => s,
            Err(e) => panic!("filch: could not start the default scheduler: {e}"),
        }
    }

    fn shared(&self) -> &Shared {
        &self.shared
    }

    pub(crate) fn shared_state(&self) -> &Shared {
        &self.shared
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
        Handle { shared: self.shared.clone() }
    }

    pub(crate) fn start(b: Builder) -> Result<Scheduler, crate::builder::BuildError> {
        let n = b.resolved_workers();
        let mut owners = Vec::with_capacity(n);
        let mut slots = Vec::with_capacity(n);
        let mut sole_owner = false;
        for _ in 0..n {
            let mut owner = Owner::<TaskRef>::with_capacity(b.deque_capacity).map_err(|e| {
                crate::builder::BuildError::Invalid { setting: "deque_capacity", reason: e.to_string() }
            })?;
            if n == 1 {
                // With one worker nobody steals from its deque but its own thread and a
                // timed-out shutdown's drain (`worker::take_any`), which uses `steal_heavy`
                // whenever `sole_owner` is set; `steal_round` never runs with one worker.
                // SAFETY: that is the contract of `set_asymmetric`.
                sole_owner = unsafe { owner.set_asymmetric() };
            }
            slots.push(WorkerSlot {
                stealer: owner.stealer(),
                parker: Arc::new(Parker::new()),
                stats: CachePadded(Row::default()),
            });
            owners.push(owner);
        }
        let pool = Pool::with_capacity(b.pool_capacity).map_err(|e| crate::builder::BuildError::Invalid {
            setting: "pool_capacity",
            reason: e.to_string(),
        })?;
        let shared = Arc::new(Shared {
            workers: slots.into_boxed_slice(),
            injector: Injector::new(),
            pool,
            sleep: Sleep::new(n),
            external: CachePadded(Row::default()),
            lifecycle: CachePadded(AtomicUsize::new(0)),
            abandon: AtomicBool::new(false),
            blocked_waiters: AtomicUsize::new(0),
            // D1: every worker, plus the scheduler's own share.
            running: AtomicUsize::new(n + 1),
            shutdown_parker: Arc::new(Parker::new()),
            lost_workers: AtomicUsize::new(0),
            starting: AtomicUsize::new(if b.on_thread_start.is_some() { n } else { 0 }),
            start_failure: crate::sync::Mutex::new(None),
            inject_loop_panics: AtomicUsize::new(b.inject_loop_panics),
            ext_frees: AtomicU64::new(0),
            orphan_target: AtomicU64::new(u64::MAX),
            sole_owner,
            config: Config {
                idle: b.idle,
                on_thread_start: b.on_thread_start.clone(),
                on_thread_stop: b.on_thread_stop.clone(),
                panic_handler: b.panic_handler.clone(),
            },
        });
        for i in 0..shared.pool.capacity() as u32 {
            let id = SlotId::from_raw(i);
            // SAFETY: `i` is below the capacity; no worker exists yet, so every slot is free
            // and this thread alone touches the pool.
            unsafe { TaskRef::prepare_slot(shared.pool.slot_ptr_unchecked(id).cast(), i, shared.as_owner()) };
        }
        let cores = worker::pin_plan(b.pin, n);
        let mut sched = Scheduler { shared: shared.clone(), threads: Vec::with_capacity(n), done: false };
        for (i, owner) in owners.into_iter().enumerate() {
            let core = cores.as_ref().map(|c| c[i]);
            match worker::spawn_thread(shared.clone(), i, owner, core, &b.thread_name, b.stack_size) {
                Ok(t) => sched.threads.push(t),
                Err(e) => {
                    // The workers already started exit through the normal shutdown; the
                    // ones never started are counted out first, from both counts.
                    let missing = n - i;
                    // Relaxed: nobody waits on `running` before shutdown begins below.
                    shared.running.fetch_sub(missing, Relaxed);
                    if shared.config.on_thread_start.is_some() {
                        // Relaxed: as above; the builder does not wait for these.
                        shared.starting.fetch_sub(missing, Relaxed);
                    }
                    drop(sched);
                    return Err(crate::builder::BuildError::Spawn(e));
                }
            }
        }
        // With a start hook, `build` returns once every hook has run, and fails if one
        // panicked (that worker never runs a task; the others are shut down).
        // Acquire: pairs with the Release decrement in `Shared::start_done`.
        while shared.starting.load(Acquire) != 0 {
            shared.shutdown_parker.park();
        }
        let failure = shared.start_failure.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some((worker, message)) = failure {
            drop(sched);
            return Err(crate::builder::BuildError::StartHook { worker, message });
        }
        Ok(sched)
    }

    /// L4 (`Shared::close`).
    fn close(&self) {
        self.shared.close();
    }

    /// Waits until every worker has left (only the scheduler's share of the teardown count
    /// is left) or `deadline` passed; `true` if all left.
    fn wait_workers(&self, deadline: Option<Instant>) -> bool {
        let s = &self.shared;
        loop {
            // Acquire: pairs with D2, the AcqRel decrement of each leaving worker.
            if s.running.load(Acquire) == 1 {
                return true;
            }
            match deadline {
                None => s.shutdown_parker.park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    s.shutdown_parker.park_timeout(d - now);
                }
            }
        }
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
        for w in s.workers.iter() {
            w.parker.unpark();
        }
        let abandoned = worker::drain_abandoning(&s);
        // Acquire: as in `wait_workers`; the count includes our own share.
        let still_running = s.running.load(Acquire) - 1;
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
        for t in self.threads.drain(..) {
            if t.join().is_err() {
                contain::report(format_args!("filch: a worker thread panicked outside a task"));
            }
        }
        // Only a scheduler that lost workers can have tasks left here.
        // Relaxed: the workers' exits (D2) were acquired by `wait_workers`.
        if self.shared.lost_workers.load(Relaxed) != 0 {
            let dropped = worker::drain_abandoning(&self.shared);
            if dropped != 0 {
                contain::report(format_args!(
                    "filch: {dropped} task(s) left queued by lost workers were dropped unrun"
                ));
            }
        }
        self.give_up_share();
    }
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler::new()
    }
}

impl Drop for Scheduler {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        self.close();
        if worker::with_current(|c| c.is_some_and(|c| c.is_of(&self.shared))) {
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

// SAFETY: every field of `Shared` is an atomic, a lock-free structure with its own
// `Send + Sync`, or configuration that is immutable after construction; the raw task
// pointers inside the queues are owned by the queues.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}

#[allow(dead_code)]
fn _assert_handle_types() {
    fn is_send_sync<T: Send + Sync>() {}
    is_send_sync::<Handle>();
    is_send_sync::<Scheduler>();
}
