//! Worker roles and spare threads: a task that blocks does not take a worker with it.
//!
//! A scheduler has `n` *roles*, one per worker index. A role is what a worker needs to
//! run tasks: its deque's owner side, its pool magazine, its statistics row, its timer
//! shard and its place in the sleep protocol (`sleep.rs`). Exactly one thread *holds* a
//! role at a time, and only the holder touches the role's private parts. At start the
//! worker threads hold one role each.
//!
//! A sync task that must block (a channel operation, `block_in_place`, a `JoinHandle`
//! wait with nothing to help with, a helping wait past `MAX_NESTED_WAITS`) first *lends*
//! its role: a spare thread takes it and goes on running the role's deque, so the pool
//! keeps `n` threads running tasks. When the wait ends, the blocked thread needs a role
//! again (the frames below it on its stack, a `join` or the worker loop, use one) and
//! *claims* one: a vacant role at once, else it queues and parks until a holder hands it
//! one. Spare threads give their role to a claimant at their next task boundary (and
//! then go idle), any holder does so when it is about to park with nothing to run; a
//! spare that stays idle for the keep-alive time retires. `spawn_blocking` jobs run on
//! idle spares too, holding no role.
//!
//! All of it is guarded by one mutex, the *board*: it is the slow path of a blocking
//! wait, which costs a futex wake and a thread switch anyway. The hot path pays one
//! Relaxed load per task at the outermost loop (are claimants waiting?).
//!
//! # Steps (cited in the code)
//!
//! - **B1 lend**: a holder about to block (running a task, so not searching and not in
//!   the sleepers bitmap) locks the board. The role goes to the oldest claimant, else to
//!   an idle spare (its job set to "hold role r"), else to a new spare thread (below the
//!   spare limit; it takes a teardown share first, D1). In each case the role's wake
//!   target (`holder`, below) is set to the new holder's parker before the unlock, and
//!   the new holder is unparked after it. With no spare to be had the role is not lent:
//!   the thread blocks holding it, having moved its queued tasks to the injection queue
//!   first (`worker.rs`, "Nested waits").
//! - **B2 claim**: the thread whose wait ended locks the board: it takes a vacant role,
//!   or enqueues a claim (on its stack), adds one to `claimants` (under the lock), and
//!   then, after a `fence(SeqCst)`, wakes one sleeping holder (K2), so that a holder that
//!   went to sleep sees the claim (the holder's K3 re-check reads `claimants` after its
//!   own fence: a store-buffering pair like K1/K3). It parks until a giver grants it a
//!   role (Release store of the role's index, Acquire load).
//! - **B3 give**: a holder at a boundary that sees `claimants != 0` (Relaxed: a hint; the
//!   board decides) gives up searching (K4), locks the board, takes the oldest claim, sets
//!   the wake target, grants, unlocks and unparks the claimant. A spare does this between
//!   the tasks of its outermost loop and when idle; a worker thread only when idle (its
//!   outermost loop then claims a role again, B2; inside a helping wait it blocks on the
//!   wait's own condition and claims after it, as after B1).
//! - **B4 vacate**: a holder leaving its outermost loop (shutdown) gives its role to a
//!   claimant if there is one (B3), else marks it vacant. A vacant role has no holder and
//!   no wake target; its sleeper bit is clear, so K2 never picks it.
//! - **B5 spare**: a spare thread waits (parked, up to the keep-alive) for a job: hold a
//!   role (then it runs the worker loop on it until it gives it away, B3/B4), or run a
//!   `spawn_blocking` task (holding no role), or exit (shutdown). Between jobs it takes
//!   queued blocking tasks first.
//!
//! # Why no role is held twice, and none is lost
//!
//! A role changes holder only under the board's lock, and only by its current holder
//! (B1, B3, B4) or, when vacant, by a claimant (B2); the grant is the only way a thread
//! learns it holds a role, and it is read with Acquire after the giver's Release, so the
//! new holder's accesses to the role's deque, magazine and row come after the old
//! holder's. A role is always held, being handed over, or vacant; a vacant role is taken
//! by the next claimant. A claimant waits only while every role is held: by the count
//! (every lend to a new spare makes one more spare holder, every claim served by a spare
//! makes one fewer) a claim outstanding means some spare holds a role, which it gives up
//! at its next task boundary or when idle. (Loom models `roles_*`.)
//!
//! # Wake targets
//!
//! The sleep protocol and the timers wake "worker `i`" by unparking the *current holder*
//! of role `i`: `WorkerSlot::holder` points to that thread's parker (all parkers are owned
//! by `Shared`, so the pointer never dangles). A wake that loads the old holder's parker
//! just before a hand-over is harmless: a role changes holder only while its holder is
//! awake (running a task, or at a boundary), never while it sleeps with its bit set, so
//! the wake was meant for a worker that is already up; the old holder takes it as a
//! spurious wake-up.

use std::collections::VecDeque;
use std::time::Duration;

use crate::lockfree::deque::{Owner, Stealer};
use crate::lockfree::park::Parker;
use crate::lockfree::pool::Cache;
use crate::runtime::stats::Row;
use crate::shim::atomic::{AtomicUsize, Ordering::*};
use crate::shim::{Arc, Mutex, MutexGuard, UnsafeCell, Witness};
use crate::task::{TaskRef, TaskSlot};

/// A worker role's private parts: touched only by the thread that holds the role.
pub(crate) struct Role {
    pub(crate) index: usize,
    /// The deque's owner side.
    pub(crate) deque: Owner<TaskRef>,
    /// A thief's handle on the same deque: the holder takes the oldest task (fairness) and
    /// spills with it.
    pub(crate) own: Stealer<TaskRef>,
    /// The role's pool magazine. `None` until `Shared::new` fills it; `'static` stands for
    /// "as long as the `Shared` that holds this role" (see `init_cache`).
    cache: UnsafeCell<Option<Cache<'static, TaskSlot>>>,
    /// Under loom, a cell every holder writes when it takes the role and when it hands it
    /// on (`touch`): two holders whose use is not ordered by happens-before make the model
    /// fail (module docs, "no role is held twice").
    holders: Witness,
}

// SAFETY: `deque` and `cache` are used only by the role's holder (module docs: one holder
// at a time, hand-overs ordered by the board's lock and the grant's Release/Acquire); the
// stealer is `Sync` on its own.
unsafe impl Sync for Role {}
// SAFETY: as above; the parts are `Send`.
unsafe impl Send for Role {}

impl Role {
    pub(crate) fn new(index: usize, deque: Owner<TaskRef>) -> Role {
        Role { index, own: deque.stealer(), deque, cache: UnsafeCell::new(None), holders: Witness::default() }
    }

    /// A thread starts or stops holding the role (nothing outside loom).
    #[inline(always)]
    pub(crate) fn touch(&self) {
        self.holders.produce();
    }

    /// Gives the role its pool magazine.
    ///
    /// # Safety
    /// `cache` takes from the pool of the `Shared` that holds this role, and nobody holds
    /// the role yet. The `Shared` drops its `workers` (and so this cache) before its pool.
    pub(crate) unsafe fn init_cache(&self, cache: Cache<'_, TaskSlot>) {
        // SAFETY: the lifetime is extended to that of the `Shared` (caller), which owns
        // both the pool and this role and never moves (it lives in an `Arc`).
        let cache: Cache<'static, TaskSlot> = unsafe { std::mem::transmute(cache) };
        // SAFETY: nobody holds the role yet, so nothing else touches the cell.
        self.cache.with_mut(|c| unsafe { *c = Some(cache) });
    }

    /// Runs `f` on the role's magazine.
    ///
    /// # Safety
    /// The caller holds the role, and `f` does not reach this method again.
    #[inline(always)]
    pub(crate) unsafe fn with_cache<R>(&self, f: impl FnOnce(&mut Cache<'static, TaskSlot>) -> R) -> R {
        self.cache.with_mut(|c| {
            // SAFETY: the holder is the only thread touching the cell (caller), and `f`
            // does not re-enter.
            let c = unsafe { &mut *c };
            debug_assert!(c.is_some(), "a worker role without its pool magazine");
            // SAFETY: `Shared::new` ran `init_cache` before any thread held the role.
            f(unsafe { c.as_mut().unwrap_unchecked() })
        })
    }

    /// D4: gives the magazine back to the pool and records in `row.slot_frees` how many
    /// slots the role's holders freed: the magazine conserves slots, so frees =
    /// allocations (the row's pool spawns) + slots given to the pool − slots taken from it.
    ///
    /// # Safety
    /// Every thread has left (D4): nobody holds the role any more.
    pub(crate) unsafe fn settle_slot_frees(&self, row: &Row) {
        // SAFETY: nobody holds the role (caller).
        let (got, given) = unsafe {
            self.with_cache(|c| {
                c.flush();
                c.transferred()
            })
        };
        // Relaxed: the teardown chain (D2/D4's AcqRel) ordered every holder's writes first.
        let allocs = row.spawned.load(Relaxed) - row.heap_fallbacks.load(Relaxed);
        row.slot_frees.store(allocs + given - got, Relaxed);
    }
}

/// A thread waiting for a role (B2), on its own stack; the board keeps its address while
/// it is queued.
pub(crate) struct Claim {
    /// The claimant's parker.
    pub(crate) parker: *const Parker,
    /// The granted role's index, or `NONE`.
    pub(crate) granted: AtomicUsize,
}

/// `Claim::granted` before a grant.
pub(crate) const NONE: usize = usize::MAX;

/// What an idle thread is asked to do (B5).
pub(crate) enum Job {
    /// Hold role `r`: run the worker loop on it.
    Hold(usize),
    /// Run a `spawn_blocking` task, holding no role.
    Run(TaskRef),
    /// The scheduler shut down: exit.
    Exit,
}

/// The board's state (module docs), under its lock. Threads are named by *slot*: slot
/// `i < workers` is worker thread `i`, slot `workers + k` spare thread `k`.
pub(crate) struct BoardState {
    /// Roles nobody holds (B4).
    pub(crate) vacant: Vec<usize>,
    /// Threads waiting for a role, oldest first.
    pub(crate) claims: VecDeque<*const Claim>,
    /// Slots whose thread holds no role and waits for a job.
    pub(crate) idle: Vec<usize>,
    /// Spare slots with no thread.
    pub(crate) free: Vec<usize>,
    /// Each slot's next job.
    pub(crate) jobs: Vec<Option<Job>>,
    /// `spawn_blocking` tasks waiting for an idle thread.
    pub(crate) blocking: VecDeque<TaskRef>,
    /// Spare threads started and not yet joined.
    pub(crate) threads: Vec<crate::shim::thread::JoinHandle<()>>,
}

/// The board: roles' holders, claimants, idle and spare threads (module docs).
pub(crate) struct Board {
    state: Mutex<BoardState>,
    /// Claims queued (written under the lock; read as a hint at holders' boundaries).
    pub(crate) claimants: AtomicUsize,
    /// Worker threads (not spares) idle in the board: a spare holding a role hands it to
    /// one of them at its next task boundary, so that roles go back to the pinned threads
    /// (written under the lock; read as a hint).
    pub(crate) idle_workers: AtomicUsize,
    /// Threads blocked with their role lent (for `Stats::blocked`).
    pub(crate) lent: AtomicUsize,
    /// Lends so far (B1 that found a taker).
    pub(crate) lends: AtomicUsize,
    pub(crate) spares_started: AtomicUsize,
    pub(crate) spares_retired: AtomicUsize,
    /// Each slot's parker (worker threads, then spare slots), owned here for as long as
    /// the `Shared` lives: wake targets point into it. Made on a slot's first use (a
    /// scheduler allowed hundreds of spares usually starts few), and never replaced.
    pub(crate) parkers: Box<[std::sync::OnceLock<Arc<Parker>>]>,
    /// The number of worker threads (the first slots).
    pub(crate) workers: usize,
    pub(crate) keep_alive: Duration,
}

// SAFETY: the claim pointers in the queue are touched only under the lock, and each
// points to a `Claim` whose owner waits until the claim leaves the queue (B2/B3).
unsafe impl Send for Board {}
// SAFETY: as above.
unsafe impl Sync for Board {}

/// What a blocking thread got from B1.
pub(crate) enum Lent {
    /// The role went to another thread.
    Yes,
    /// No spare thread could be had: keep the role.
    No,
}

impl Board {
    pub(crate) fn new(workers: usize, max_spares: usize, keep_alive: Duration) -> Board {
        let slots = workers + max_spares;
        Board {
            state: Mutex::new(BoardState {
                vacant: Vec::new(),
                claims: VecDeque::new(),
                idle: Vec::new(),
                free: (workers..slots).rev().collect(),
                jobs: (0..slots).map(|_| None).collect(),
                blocking: VecDeque::new(),
                threads: Vec::new(),
            }),
            claimants: AtomicUsize::new(0),
            idle_workers: AtomicUsize::new(0),
            lent: AtomicUsize::new(0),
            lends: AtomicUsize::new(0),
            spares_started: AtomicUsize::new(0),
            spares_retired: AtomicUsize::new(0),
            parkers: (0..slots).map(|_| std::sync::OnceLock::new()).collect(),
            workers,
            keep_alive,
        }
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, BoardState> {
        // A panic under the lock is a runtime bug that `contain` reports; the state stays
        // consistent between statements, so a poisoned lock is taken over.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether a claim is queued (a hint, module docs B3).
    #[inline(always)]
    pub(crate) fn claimants_waiting(&self) -> bool {
        // Relaxed: a hint; the board's lock decides. The K3 re-check's fence and B2's
        // fence make a sleeping holder see it (module docs, B2).
        self.claimants.load(Relaxed) != 0
    }

    /// Whether a spare holding a role should hand it on at its next task boundary: to a
    /// claimant, or to an idle worker thread (a hint, as `claimants_waiting`).
    #[inline]
    pub(crate) fn spare_should_give(&self) -> bool {
        // Relaxed: hints, as in `claimants_waiting`.
        self.claimants.load(Relaxed) != 0 || self.idle_workers.load(Relaxed) != 0
    }

    /// Whether any spare thread may ever be started (`max_spare_threads` above 0).
    #[inline]
    pub(crate) fn has_spare_slots(&self) -> bool {
        self.parkers.len() > self.workers
    }

    /// Spare threads to join at shutdown.
    pub(crate) fn take_threads(&self) -> Vec<crate::shim::thread::JoinHandle<()>> {
        std::mem::take(&mut self.lock().threads)
    }
}
