//! The runtime's shared state: what the workers, the `Scheduler`, every `Handle` and
//! (through the orphan protocol) outstanding `JoinHandle`s share, with the protocols that
//! guard its lifetime. The spawn paths are in `spawn.rs`, the worker loop in `worker.rs`,
//! worker threads' start and exit in `thread.rs`, the task state machine in `task/`.
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
//! # Handle units (what a `Handle` holds)
//!
//! A `Handle` does not hold an `Arc` of its own: cloning one into every task would put an
//! RMW on the `Arc`'s count, one line shared by the whole process, on every spawn. It
//! holds one *unit* of `handle_units` instead, and the units together hold one strong
//! count of the `Arc` while any is out. A worker keeps a private credit of units for its
//! own scheduler (`WorkerCtx`), so a handle cloned or dropped on one of its workers costs a
//! plain add to that credit, and the shared word moves once per [`HANDLE_UNIT_BATCH`].
//!
//! - **HU1** (take `n` units, from a live reference: the caller's `Arc`, or a unit it
//!   holds): add `n` (Relaxed, as `Arc::clone`: the caller's reference keeps the state
//!   alive). The adder that finds zero adds the units' strong count.
//! - **HU2** (give `n` back): subtract `n` (Release: this holder's uses of the state
//!   happen before the last give-back). The one that brings the word to zero issues an
//!   Acquire fence (pairs with every earlier give-back's Release) and drops the units'
//!   strong count (the `Arc`'s own Release/Acquire passes everything on to whoever frees).
//!
//! Zero is reached only by the holder of the last unit, after its HU1 added the count, so
//! every drop of the strong count follows the add it undoes; a zero-to-one add racing a
//! one-to-zero drop is sound because the adder holds its own reference. A worker gives its
//! credit back when its context ends, after it stopped being the thread's current worker
//! (so no later handle drop adds to a credit nobody returns). Loom model
//! `sched_handle_units`, mutants `HandleUnitsHoldArc` and `HandleCreditReturned`.
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

use std::time::Instant;

use crate::contain::{self, Payload};
use crate::lockfree::deque::Stealer;
use crate::lockfree::inject::Injector;
use crate::lockfree::next_slot::NextSlot;
use crate::lockfree::park::Parker;
use crate::lockfree::pool::{Pool, SharedCache, SlotId};
use crate::runtime::config::Config;
use crate::runtime::roles::{Board, Role};
use crate::runtime::sleep::Sleep;
use crate::runtime::stats::Row;
use crate::runtime::timer::Timers;
use crate::shim::atomic::{fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::{Arc, CachePadded};
use crate::task::{Header, TaskRef, TaskSlot};

const SHUTDOWN: usize = 1 << (usize::BITS - 1);

/// Shards of the heap async registry (`Shared::heap_async`): spawns and frees of heap
/// async tasks on different workers rarely meet on one lock.
const HEAP_ASYNC_SHARDS: usize = 16;

/// One shard of the heap async registry: task addresses, hashed by a multiply (SipHash,
/// the default, cost more than the rest of the registration).
type HeapAsyncSet = std::collections::HashSet<usize, std::hash::BuildHasherDefault<AddrHasher>>;

/// A hasher for task addresses: one multiply by a 64-bit odd constant (Fibonacci hashing),
/// whose high bits the table uses.
#[derive(Default)]
struct AddrHasher(u64);

impl std::hash::Hasher for AddrHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0.rotate_left(8) ^ u64::from(b)).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        }
    }
    fn write_usize(&mut self, n: usize) {
        self.0 = (n as u64 >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}
const ORPHAN: u64 = 1 << 63;

/// Handle units a worker takes from the shared word at a time (module docs, "Handle
/// units"); its credit is given back down to this when it grows past twice as many.
pub(crate) const HANDLE_UNIT_BATCH: usize = 256;

/// One worker's shared face: what other threads need to reach it.
pub(crate) struct WorkerSlot {
    pub(crate) stealer: Stealer<TaskRef>,
    /// The role's wake slot (`next_slot.rs`): its holder puts and takes, searching workers
    /// steal from it after a grace period (`worker.rs`, step 3). Unused in sole-owner mode
    /// (one worker, `deque.rs`).
    pub(crate) next: CachePadded<NextSlot<Header>>,
    pub(crate) stats: CachePadded<Row>,
    /// The role's private parts, used by its holder only (`roles.rs`).
    pub(crate) role: Role,
    /// The wake target: the parker of the thread holding this role, null while it is
    /// vacant (`roles.rs`, "Wake targets"). Points to a parker owned by this `Shared`.
    holder: AtomicPtr<Parker>,
}

impl WorkerSlot {
    pub(crate) fn new(role: Role) -> WorkerSlot {
        WorkerSlot {
            stealer: role.own.clone(),
            next: CachePadded(NextSlot::new()),
            stats: CachePadded(Row::default()),
            role,
            holder: AtomicPtr::new(std::ptr::null_mut()),
        }
    }
}

/// State shared by the workers, the `Scheduler`, every `Handle`, and (through the orphan
/// protocol) outstanding `JoinHandle`s.
pub(crate) struct Shared {
    pub(crate) workers: Box<[WorkerSlot]>,
    pub(crate) injector: Injector<Header>,
    /// The pool cache of every thread that is not a worker (external spawns, frees off the
    /// workers), borrowed one at a time. Declared before `pool`, so dropped before it.
    pub(crate) ext_cache: SharedCache<'static, TaskSlot>,
    /// Spawns from outside that found the pool empty in the current overflow, and how many
    /// spawns from outside had got a pool slot when the last one did (`spawn.rs`,
    /// `alloc_slot_waiting`).
    pub(crate) ext_overflow: AtomicU32,
    pub(crate) ext_overflow_mark: AtomicU64,
    pub(crate) pool: Pool<TaskSlot>,
    pub(crate) sleep: Sleep,
    /// The timer wheels, one per worker (`timer.rs`).
    pub(crate) timers: Timers,
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
    start_failure: crate::shim::Mutex<Option<(usize, String)>>,
    /// Test-only fault injection: this many panics are raised in worker run loops
    /// (`Builder::inject_loop_panics`).
    pub(crate) inject_loop_panics: AtomicUsize,
    ext_frees: AtomicU64,
    orphan_target: AtomicU64,
    /// Handle units out (module docs, "Handle units"): held by `Handle`s and by workers'
    /// credits; while not zero, they hold one strong count of the `Arc`.
    handle_units: CachePadded<AtomicUsize>,
    /// Set by the first async spawn; until then a shutdown sweep has nothing to visit.
    async_used: AtomicBool,
    /// Heap async tasks alive (their header addresses), for the shutdown sweep: pool
    /// tasks are found by visiting the slots. An entry leaves before its memory is freed.
    heap_async: Box<[CachePadded<crate::shim::Mutex<HeapAsyncSet>>]>,
    /// One worker, whose deque is in sole-owner mode (`deque::Owner::set_asymmetric`):
    /// foreign steals from it must use `steal_heavy`.
    pub(crate) sole_owner: bool,
    /// Roles' holders, claimants and spare threads (`roles.rs`).
    pub(crate) board: Board,
    pub(crate) config: Config,
}

impl Shared {
    /// The state of a scheduler about to start its workers (D1: a teardown share per
    /// worker, one for the `Scheduler`), with every pool slot prepared.
    pub(crate) fn new(
        workers: Box<[WorkerSlot]>,
        pool: Pool<TaskSlot>,
        sole_owner: bool,
        config: Config,
        inject_loop_panics: usize,
    ) -> Arc<Shared> {
        let n = workers.len();
        let shared = Arc::new(Shared {
            workers,
            injector: Injector::new(),
            ext_cache: SharedCache::empty(),
            ext_overflow: AtomicU32::new(0),
            ext_overflow_mark: AtomicU64::new(0),
            pool,
            sleep: Sleep::new(n),
            timers: Timers::new(n),
            external: CachePadded(Row::default()),
            lifecycle: CachePadded(AtomicUsize::new(0)),
            abandon: AtomicBool::new(false),
            blocked_waiters: AtomicUsize::new(0),
            running: AtomicUsize::new(n + 1),
            shutdown_parker: Arc::new(Parker::new()),
            lost_workers: AtomicUsize::new(0),
            starting: AtomicUsize::new(if config.on_thread_start.is_some() { n } else { 0 }),
            start_failure: crate::shim::Mutex::new(None),
            inject_loop_panics: AtomicUsize::new(inject_loop_panics),
            ext_frees: AtomicU64::new(0),
            handle_units: CachePadded(AtomicUsize::new(0)),
            orphan_target: AtomicU64::new(u64::MAX),
            async_used: AtomicBool::new(false),
            heap_async: (0..HEAP_ASYNC_SHARDS)
                .map(|_| CachePadded(crate::shim::Mutex::new(HeapAsyncSet::default())))
                .collect(),
            sole_owner,
            board: Board::new(n, config.max_spares, config.keep_alive),
            config,
        });
        // SAFETY: the cache takes from this `Shared`'s pool, which no longer moves (it is
        // inside the `Arc`) and outlives the cache (fields drop in order: `ext_cache`
        // before `pool`); `SharedCache` never hands its cache out, so the `'static` cannot
        // escape this `Shared`.
        let ext: crate::lockfree::pool::Cache<'static, TaskSlot> =
            unsafe { std::mem::transmute(shared.pool.cache()) };
        if shared.ext_cache.install(ext).is_err() {
            unreachable!("a new shared cache is empty and nobody else can reach it yet");
        }
        for (i, w) in shared.workers.iter().enumerate() {
            // SAFETY: the cache takes from this `Shared`'s pool, which outlives it (fields
            // drop in order: `workers` before `pool`), and no thread holds the role yet.
            unsafe { w.role.init_cache(shared.pool.cache()) };
            shared.set_holder(i, Arc::as_ptr(shared.slot_parker(i)));
        }
        for i in 0..shared.pool.capacity() as u32 {
            let id = SlotId::from_raw(i);
            // SAFETY: `i` is below the capacity; no worker exists yet, so every slot is free
            // and this thread alone touches the pool.
            unsafe { TaskRef::prepare_slot(shared.pool.slot_ptr_unchecked(id).cast(), i, shared.as_owner()) };
        }
        shared
    }

    /// Workers that failed to start: their teardown shares (and start-hook counts) are
    /// given up for them.
    pub(crate) fn count_out_unstarted(&self, missing: usize) {
        // Relaxed: nobody waits on `running` before shutdown begins.
        self.running.fetch_sub(missing, Relaxed);
        if self.config.on_thread_start.is_some() {
            // Relaxed: as above; the builder does not wait for these.
            self.starting.fetch_sub(missing, Relaxed);
        }
    }

    /// With a start hook: waits until it has run on every worker; the first failure.
    pub(crate) fn wait_started(&self) -> Option<(usize, String)> {
        // Acquire: pairs with the Release decrement in `start_done`.
        while self.starting.load(Acquire) != 0 {
            self.shutdown_parker.park();
        }
        self.start_failure.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// Waits until every worker has left (only the scheduler's share of the teardown count
    /// is left) or `deadline` passed; `true` if all left.
    pub(crate) fn wait_workers(&self, deadline: Option<Instant>) -> bool {
        loop {
            // Acquire: pairs with D2, the AcqRel decrement of each leaving worker.
            if self.running.load(Acquire) == 1 {
                return true;
            }
            match deadline {
                None => self.shutdown_parker.park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        return false;
                    }
                    self.shutdown_parker.park_timeout(d - now);
                }
            }
        }
    }

    /// Workers that have not left yet.
    pub(crate) fn workers_running(&self) -> usize {
        // Acquire: as in `wait_workers`; the count includes the scheduler's own share.
        self.running.load(Acquire) - 1
    }

    /// Workers lost so far (`thread.rs`).
    pub(crate) fn lost_workers(&self) -> usize {
        // Relaxed: read after the workers' exits (D2) were acquired by `wait_workers`.
        self.lost_workers.load(Relaxed)
    }

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

    /// Whether any queue visibly holds a task (K3/K4 re-check, exit check). The wake slots
    /// are not queues here: K3 checks them apart (the own slot as work, another's with a
    /// timed park), K4 and the exit check add [`Shared::any_slot_occupied`].
    pub(crate) fn has_visible_work(&self) -> bool {
        !self.injector.is_empty() || self.workers.iter().any(|w| !w.stealer.is_empty())
    }

    /// Whether any worker's wake slot holds a task (the exit check: a worker leaves a
    /// shut-down scheduler only once every slot is empty, as every deque). Relaxed hints.
    pub(crate) fn any_slot_occupied(&self) -> bool {
        self.slot_occupied_except(usize::MAX)
    }

    /// Whether the wake slot of any worker but `except` holds a task (Relaxed hints).
    pub(crate) fn slot_occupied_except(&self, except: usize) -> bool {
        !self.sole_owner && self.workers.iter().enumerate().any(|(i, w)| i != except && w.next.is_occupied())
    }

    /// K1 + K2: after a task became visible, wakes a sleeper if nobody is searching.
    #[inline]
    pub(crate) fn notify(&self) {
        if let Some(i) = self.sleep.notify() {
            self.unpark_role(i);
        }
    }

    /// Unparks the thread holding role `i` (its wake target; nobody while it is vacant).
    pub(crate) fn unpark_role(&self, i: usize) {
        // Relaxed: the target was stored before its holder could go to sleep, and a waker
        // reaches a sleeper only through an Acquire of the sleeper's own later Release (the
        // K2 CAS on its bit, the shard lock of TM1): `roles.rs`, "Wake targets".
        let p = self.workers[i].holder.load(Relaxed);
        if !p.is_null() {
            // SAFETY: wake targets point to parkers owned by this `Shared`.
            unsafe { &*p }.unpark();
        }
    }

    /// Sets role `i`'s wake target (`roles.rs`: under the board's lock, or before the
    /// workers start).
    pub(crate) fn set_holder(&self, i: usize, p: *const Parker) {
        // Relaxed: see `unpark_role`.
        self.workers[i].holder.store(p.cast_mut(), Relaxed);
    }

    /// Unparks every thread that may be parked on this scheduler's behalf: role holders
    /// and spare threads (a timed-out shutdown).
    pub(crate) fn unpark_everyone(&self) {
        for p in self.board.parkers.iter().filter_map(std::sync::OnceLock::get) {
            p.unpark();
        }
    }

    /// D1 for a spare thread about to start: its teardown share. Called by a thread that
    /// holds a share itself, or (`spawn_blocking` from outside) an L1 entry, which keeps
    /// every role holder from passing its exit check; either way the count is not zero.
    pub(crate) fn add_share(&self) {
        // Relaxed: the caller's own share (or entry) keeps the count above zero; D2's
        // AcqRel RMWs order the leaving.
        self.running.fetch_add(1, Relaxed);
    }

    /// [`Sleep::notify_hint`]: K1 for a `join` half (wakes only when a plain look finds
    /// sleepers and no searcher).
    #[inline]
    pub(crate) fn notify_hint(&self) {
        if let Some(i) = self.sleep.notify_hint() {
            self.unpark_role(i);
        }
    }

    pub(crate) fn wake_one(&self) {
        if let Some(i) = self.sleep.wake_one() {
            self.unpark_role(i);
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
            self.unpark_role(i);
        }
    }

    /// L4: refuses new external tasks, wakes every sleeper so that workers see it.
    pub(crate) fn close(&self) {
        // L4, AcqRel: Release makes SHUTDOWN visible to L1's Acquire; Acquire pairs with
        // L3 of spawns that completed before.
        self.lifecycle.fetch_or(SHUTDOWN, AcqRel);
        self.wake_all();
        // Idle threads see it and exit (`roles.rs`, B5).
        self.wake_idle_threads();
        // Workers may also be spinning or yielding; they check `is_closed` each round.
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

    /// D4: settles task memory once every worker has left and the `Scheduler` has given up
    /// its share, so that no task can be created any more (module docs, "Task memory").
    /// Called by whichever party left last.
    fn settle(this: &Arc<Shared>) {
        // No worker polls any more: drop what async tasks are left, then the wakers the
        // timer wheels still hold. Their frees count as external ones (`None`).
        this.sweep_async(None);
        drop(this.timers.drain());
        for w in this.workers.iter() {
            // SAFETY: every thread has left (D4): nobody holds a role.
            unsafe { w.role.settle_slot_frees(&w.stats) };
        }
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

    /// HU1 (module docs, "Handle units"): takes `n` units, the caller holding `this`.
    pub(crate) fn take_handle_units(this: &Arc<Shared>, n: usize) {
        // Relaxed: the caller's `Arc` keeps the state alive across this add, as in
        // `Arc::clone`; the strong count added below has its own orderings.
        if this.handle_units.fetch_add(n, Relaxed) == 0 && mutation::keep(Site::HandleUnitsHoldArc) {
            // SAFETY: `this` is a live `Arc`, so its pointer is one `Arc::into_raw` would
            // give and its count is not zero; HU2's zero drops this count again.
            unsafe { Arc::increment_strong_count(Arc::as_ptr(this)) };
        }
    }

    /// HU2 (module docs, "Handle units"): gives back `n` units.
    ///
    /// # Safety
    ///
    /// `this` is the pointer of the `Arc` a live `Shared` is in (`Arc::as_ptr`, so that it
    /// can rebuild that `Arc`), and the caller holds at least `n` units (from HU1), which
    /// it gives up: it must not use them, or the state through them, afterwards.
    pub(crate) unsafe fn give_handle_units(this: *const Shared, n: usize) {
        // SAFETY: the caller's units keep the state alive until the subtraction.
        let units = unsafe { &(*this).handle_units };
        // Release: our uses of the state happen before the give-back that reaches zero;
        // pairs with the Acquire fence below on that thread.
        if units.fetch_sub(n, Release) == n {
            fence(Acquire);
            // SAFETY: the word was not zero, so HU1 added the units' strong count; we gave
            // the last units, so nobody else drops it. `this` came from that `Arc`.
            unsafe { Arc::decrement_strong_count(this) };
        }
    }

    /// The orphan protocol's free side (module docs).
    pub(crate) fn count_external_free(&self) {
        // AcqRel: Acquire pairs with the drop's AcqRel `fetch_or(ORPHAN)` so that
        // `orphan_target` (stored before it) is visible; Release orders our pool free
        // (into the shared cache, given back by X3) before whoever frees the whole state,
        // whose drop flushes that cache.
        let prev = self.ext_frees.fetch_add(1, AcqRel);
        if prev & ORPHAN != 0 && (prev & !ORPHAN) + 1 == self.orphan_target.load(Relaxed) {
            // SAFETY: the dropped scheduler left exactly one `Arc` reference to be released
            // by the free that brings the count to `target`; this is that free.
            unsafe { Arc::decrement_strong_count(self as *const Shared) };
        }
    }

    /// Records that an async task was spawned (the sweep visits the pool from now on).
    #[inline]
    pub(crate) fn note_async(&self) {
        // Relaxed: read by sweeps that synchronize with the spawn through the task itself
        // (the worker that ran or idled it), or at D4, after the AcqRel teardown chain.
        if !self.async_used.load(Relaxed) {
            self.async_used.store(true, Relaxed);
        }
    }

    pub(crate) fn async_used(&self) -> bool {
        // Relaxed: see `note_async`.
        self.async_used.load(Relaxed)
    }

    /// The shard of the heap async registry that holds the task at `h`.
    fn heap_async_shard(&self, h: usize) -> crate::shim::MutexGuard<'_, HeapAsyncSet> {
        // Heap tasks are at least 16-byte aligned: the bits above pick the shard.
        let shard = (h >> 4) % HEAP_ASYNC_SHARDS;
        self.heap_async[shard].lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a new heap async task for the sweep.
    pub(crate) fn add_heap_async(&self, h: std::ptr::NonNull<Header>) {
        let a = h.as_ptr() as usize;
        self.heap_async_shard(a).insert(a);
    }

    /// Unregisters a heap async task about to be freed.
    pub(crate) fn remove_heap_async(&self, h: *const Header) {
        let a = h as usize;
        self.heap_async_shard(a).remove(&a);
    }

    /// References to every live, unfinished heap async task (A7's first CAS on each,
    /// under the lock that keeps their memory from being freed meanwhile).
    pub(crate) fn heap_async_refs(&self) -> Vec<TaskRef> {
        let mut refs = Vec::new();
        for shard in self.heap_async.iter() {
            let set = shard.lock().unwrap_or_else(|e| e.into_inner());
            refs.extend(set.iter().filter_map(|&p| {
                let h = std::ptr::NonNull::new(p as *mut Header)?;
                // SAFETY: a registered heap task is unregistered (under its shard's lock)
                // before it is freed, so its header is alive while we hold the lock.
                unsafe { TaskRef::sweep_ref(h) }
            }));
        }
        refs
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

// SAFETY: every field of `Shared` is an atomic, a lock-free structure with its own
// `Send + Sync`, or configuration that is immutable after construction; the raw task
// pointers inside the queues are owned by the queues.
unsafe impl Send for Shared {}
// SAFETY: as above.
unsafe impl Sync for Shared {}
