//! The worker thread: its context, the run loop, searching, stealing, idling and waiting.
//!
//! # Finding the next task
//!
//! 0. Right after an async task re-queued itself (it woke itself during its poll), the
//!    *oldest* task of the own deque: the self-waking task goes to the back of the line
//!    (`async_task.rs`, "Where a wake goes"). Outside joins only, as step 1. It counts
//!    toward step 1's interval, and on step 1's turn step 1 comes first: a deque of tasks
//!    that keep waking themselves (`yield_now` loops) would otherwise keep the worker from
//!    the injection queue and its timers for ever.
//! 1. Every [`FAIR_INTERVAL`]th task, first the due timers of this worker (`timer.rs`),
//!    then the injection queue, then — if it has sat at the top for [`FAIR_AGE`] such
//!    turns — the *oldest* task of the worker's own deque (taken from its top, as a thief
//!    would). This bounds how long a task can wait behind a stream of newer local tasks:
//!    the task at the top of a deque runs within about `FAIR_AGE · FAIR_INTERVAL` tasks of
//!    that worker (Go checks its global queue every 61 ticks for the same reason; tokio
//!    caps its LIFO slot). The age keeps recursive spawning depth-first: taking the oldest
//!    task at every turn started a root's early children long before their turn.
//! 2. The task in its own wake slot (`next_slot.rs`: a task a wake on this worker made
//!    runnable), then the newest task of its own deque (LIFO: hot in cache).
//! 3. *Search*: a batch from the injection queue (up to [`INJECT_BATCH`], into the own
//!    deque), then one steal round: every other worker once, starting at a random victim
//!    and walking with a random stride coprime with the worker count (a random permutation
//!    per round, as Go does), each by `steal_batch` into the own deque. Last, the task in
//!    another worker's wake slot, once this worker has watched it sit there for
//!    [`NEXT_GRACE`] with no put into that slot meanwhile (N3/N4): a woken task
//!    stays with the worker that woke it while that worker keeps up, and is not held
//!    hostage when it does not.
//!
//! # Idling
//!
//! With nothing found, a worker becomes a *searcher* if fewer than half the workers are
//! searching (`sleep.rs`), and repeats the search with spin hints between rounds (growing
//! exponentially to 64 hints), then with `sched_yield` between rounds, then goes to sleep
//! by the K3 protocol and parks on its futex: until its timer wheel's next deadline if it
//! has one (TM2, `timer.rs`; before that it fires every due timer, its own and other
//! workers'), and only for a while if another worker's wake slot holds a task (step 3
//! comes back for it): until the grace of the task it is watching there ends, else for
//! [`NEXT_RECHECK`], doubled at each such park up to [`NEXT_RECHECK_MAX`]. During a
//! shutdown it first sweeps the async tasks nothing will poll again (`async_task.rs`,
//! "Shutdown"). `Idle::Spin` and `Idle::Yield` never park.
//!
//! # Waiting, and what a waiting worker may run (the helping rule)
//!
//! A task that waits on a worker must not leave the pool a worker short, and must not
//! run, on top of its own frame, a task that could wait for it (that task could never
//! finish before the frame below it returns: the waiter would be buried). The rule, by
//! kind of wait:
//!
//! - **Fork-join waits** (`join`, `scope`, `parallel_for`, `block_on` on a worker, and
//!   `WaitGroup::wait` / `Semaphore::acquire`) *help*: the worker runs this same loop with
//!   "done" as its exit condition, as rayon's do; the completing thread unparks it. While
//!   it waits it skips step 1: the fairness step exists for the outermost loop, and inside
//!   a wait it would start unrelated queued tasks (typically other roots from the
//!   injection queue) on top of the waiting task's stack every 61 tasks, nesting without
//!   bound (a stress test overflowed a 2 MiB worker stack with 600 queued roots). Steps
//!   2–3 still run, injector included, so a join whose task was spilled to the injection
//!   queue is never stuck; tasks found there can still nest, as in rayon. So, as in
//!   rayon, the halves of a fork must not wait for something the caller does after the
//!   join, and a task that waits for a permit must not hold one the tasks it may run need.
//! - **`JoinHandle::join`** (`wait_task`) never runs an unrelated task: it runs the
//!   awaited task itself if it is still queued on this worker (newest or oldest) or not
//!   started anywhere (claimed in place, T1); else it takes tasks only from the deque of
//!   the worker role running it — the task's own subtasks, *leapfrogging* as in Wool and
//!   Lace; with none there it spins briefly, then blocks with its role lent (below).
//! - **Blocking waits** (channel operations, `block_in_place`, a helping wait nested past
//!   [`MAX_NESTED_WAITS`]) run nothing: the thread lends its *role* to a spare thread
//!   (`roles.rs`, B1), parks on its own parker until its wait is over, and claims a role
//!   back (B2), so the pool keeps all its workers running.
//! - A worker that would park idle inside a helping wait while another thread waits to
//!   claim a role gives its role to that thread first (B3) and parks on its wait alone.
//!
//! # Nested waits
//!
//! A helping wait runs other tasks on top of the waiting task's frame, and those may
//! wait in turn. Without a bound, a queue of tasks that all wait for one thing (20 000
//! tasks acquiring a one-permit semaphore) nests one frame per task and overflows the
//! worker's stack. So a worker helps in at most [`MAX_NESTED_WAITS`] waits at once. A
//! wait beyond that *blocks*, with its role lent to a spare thread. With no spare to be
//! had (`Builder::max_spare_threads` reached) it first moves every task of its own deque
//! to the injection queue in one chain, with a K1 so that some worker looks (the frames
//! below may be joining those tasks, and nothing may wait for a thread that runs
//! nothing), then parks. It stays out of the sleep protocol: to the other workers it is
//! busy running a task, so no spawn's wake-up is spent on it. At most `workers − 1`
//! workers block this way at once (a counter in `Shared`, taken by an RMW before
//! blocking): the last keeps helping however deep it nests, so work that a blocked wait
//! depends on always has a thread to run it.
//!
//! # Lost workers
//!
//! Every task a worker runs is contained (`contain.rs`), so nothing user code does can
//! unwind out of the run loop; a `join` frame that a panic would unwind with its second
//! half still queued aborts instead. Should a panic escape the outermost loop all the
//! same (a runtime bug, or the fault `Builder::inject_loop_panics` raises for the
//! containment tests), the worker is *lost*, not silently dead: it leaves the searcher
//! count as a live worker would, counts itself in `Stats` (`lost`), hands the payload to
//! the panic handler, moves every task of its own deque to the injection queue for the
//! others (K1), and leaves through the normal exit (D2), so `drop` still returns. If it
//! was the last worker left, it closes the scheduler (L4; idempotent if the scheduler
//! was already shutting down), waits for external spawns in flight (L3), and drops every
//! queued task unrun, so that no joiner waits forever (draining while it waits, so that
//! a spawner waiting on a queued job is released); spawns are refused from then on.
//! The wait matters also during a shutdown: a live worker leaves only once `is_closed`
//! holds, and that is what keeps the teardown (D4) away from a spawn that still holds its
//! L1 entry; a last lost worker that left at once would let D4 settle before that spawn
//! queued its task (loom model `sched_lost_worker_vs_spawn`, mutant
//! `LostWorkerWaitsClosed`).
//!
//! Helping cannot make every wait safe: a task run on top of a waiting frame cannot
//! finish before it, so a task that needs something the frame below holds (a permit, a
//! lock) deadlocks this thread. `Semaphore`'s docs say how to avoid it; `JoinHandle`
//! waits and blocking waits do not help, so they cannot be buried this way.

use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::time::Instant;

use crate::contain::{self, Payload};
use crate::lockfree::deque::Steal;
use crate::lockfree::inject::Pop;
use crate::lockfree::next_slot::Seen;
use crate::lockfree::park::{yield_now, Parker};
use crate::lockfree::pool::SlotId;
use crate::runtime::config::Idle;
use crate::runtime::roles::{Lent, Role};
use crate::runtime::shared::{Shared, HANDLE_UNIT_BATCH};
use crate::runtime::stats::Row;
use crate::shim::atomic::Ordering::*;
use crate::shim::mutation::{self, Site};
use crate::shim::{spin_loop, Arc};
use crate::task::stack_job::Latch;
use crate::task::{Dead, Header, Home, TaskRef};

/// Every this many tasks a worker looks at the injection queue and its own oldest task
/// first (Go uses 61 too: prime, so it does not beat with other periodic behaviour).
pub(crate) const FAIR_INTERVAL: u32 = 61;

/// The own deque's oldest task is taken by the fairness step only once it has sat at the
/// top through this many fairness turns: a task there still runs within about
/// `FAIR_AGE · FAIR_INTERVAL` tasks of its worker, and recursive spawning is not turned
/// breadth-first (taking a root's early child every 61 tasks made async skynet keep most
/// of its million tasks alive at once, overflowing the pool onto the heap).
pub(crate) const FAIR_AGE: u32 = 8;

/// Most tasks moved from the injection queue into a worker's deque at once.
pub(crate) const INJECT_BATCH: usize = 32;

/// How long a task must sit in another worker's wake slot, with no put into that slot
/// meanwhile, before a searching worker steals it (step 3). Go waits 3 µs before it takes
/// a running P's `runnext`.
pub(crate) const NEXT_GRACE: std::time::Duration = std::time::Duration::from_micros(4);

/// How long a worker going to sleep first parks while another worker's wake slot holds a
/// task it is not already watching, before it looks again (docs/DESIGN.md §7, "The wake
/// slot").
pub(crate) const NEXT_RECHECK: std::time::Duration = std::time::Duration::from_micros(20);

/// The longest such park: a worker that keeps finding a slot occupied by a task its owner
/// then takes (a long ping-pong) backs off to this.
pub(crate) const NEXT_RECHECK_MAX: std::time::Duration = std::time::Duration::from_millis(1);

/// How many helping waits a worker nests on its stack before a further wait blocks
/// instead (module docs, "Nested waits").
///
/// ```
/// fn depth(n: u32) -> u32 {
///     if n == 0 { 0 } else { filch::spawn(move || depth(n - 1)).join().unwrap() + 1 }
/// }
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let n = 2 * filch::MAX_NESTED_WAITS; // deeper than a worker nests: the waits past it block
/// assert_eq!(sched.spawn(move || depth(n)).join().unwrap(), n);
/// ```
pub const MAX_NESTED_WAITS: u32 = 32;

/// The message of a fault raised by `Builder::inject_loop_panics`.
pub(crate) const INJECTED_FAULT: &str = "filch: injected run-loop fault";

/// A worker thread's own state: the per-thread half of a worker (its stack's join and
/// scope bookkeeping, its parker, its search state) and the role it holds (`roles.rs`: the
/// deque, the pool magazine, the statistics row). Lives on the thread's stack; reachable
/// through the `CURRENT` thread-local while the thread holds a role.
pub(crate) struct WorkerCtx<'a> {
    /// The scheduler's state, one load away (not two, as through the `Arc`).
    shared: &'a Shared,
    /// The same, as the `Arc` that owns it (for `filch::current`'s handle).
    shared_arc: &'a Arc<Shared>,
    /// The role this thread holds. Changes only at B1–B3 (`roles.rs`), while the thread
    /// is between tasks or blocked, never under a frame that is using it.
    role: Cell<&'a Role>,
    /// `shared.workers[role].stats`, resolved with the role (the hot paths bump it per task).
    row: Cell<&'a Row>,
    /// This thread's parker: a worker thread's `WorkerSlot::parker`, a spare's slot parker.
    /// Every wait of this thread parks here; the sleep protocol reaches it through the
    /// role's wake target (`roles.rs`, "Wake targets").
    parker: &'a Arc<Parker>,
    /// A spare thread (`roles.rs`, B5): hands its role on between tasks, to a claimant or
    /// an idle worker thread.
    spare: bool,
    /// Set when this thread, idle in its outermost loop, saw a claimant: the loop ends and
    /// the role goes to the claimant (B3).
    give: Cell<bool>,
    /// Numbers coprime with the worker count, for random steal orders.
    strides: Vec<usize>,
    rng: Cell<u64>,
    tick: Cell<u32>,
    searching: Cell<bool>,
    /// How many joins this worker is waiting in, nested on its stack.
    joins: Cell<u32>,
    /// Set when an async task woken during its own poll was queued again: the next task
    /// comes from the oldest end of the own deque (`async_task.rs`, "Where a wake goes").
    take_oldest: Cell<bool>,
    /// The own deque's top position at the last fairness turn, and for how many turns in a
    /// row it has not moved (`FAIR_AGE`).
    top_age: Cell<(usize, u32)>,
    /// The scope frame of the scope task (or scope body) running on top of this stack:
    /// its scope's address and the counts it has reserved and not yet handed to a child
    /// (`scope.rs`, S1).
    scope_frame: Cell<(*const (), usize)>,
    /// Handle units of this scheduler held for handles cloned and dropped on this thread
    /// (`shared.rs`, "Handle units"); given back when the context ends.
    handle_credit: Cell<usize>,
    /// The wake slot this thread is watching as a thief, what it saw there and since when
    /// (step 3's grace, [`NEXT_GRACE`]).
    watching: Cell<Option<(usize, Seen<Header>, Instant)>>,
    /// How long this worker's next K3 park lasts while another worker's wake slot holds a
    /// task: [`NEXT_RECHECK`], doubled per such park up to [`NEXT_RECHECK_MAX`], back to
    /// the start once this worker finds work.
    recheck: Cell<std::time::Duration>,
}

#[cfg(not(loom))]
std::thread_local! {
    static CURRENT: Cell<*const WorkerCtx<'static>> = const { Cell::new(ptr::null()) };
}

#[cfg(loom)]
loom::thread_local! {
    static CURRENT: Cell<*const WorkerCtx<'static>> = Cell::new(ptr::null());
}

#[cfg(not(loom))]
std::thread_local! {
    /// The parker a thread outside any scheduler blocks on while joining.
    static EXTERNAL_PARKER: Arc<Parker> = Arc::new(Parker::new());
}

#[cfg(loom)]
loom::thread_local! {
    static EXTERNAL_PARKER: Arc<Parker> = Arc::new(Parker::new());
}

/// Runs `f` with the parker of the current thread: its worker's (`ctx`) or, off the
/// workers, the thread's own.
pub(crate) fn with_parker<R>(ctx: Option<&WorkerCtx<'_>>, f: impl FnOnce(&Arc<Parker>) -> R) -> R {
    match ctx {
        Some(c) => f(c.parker()),
        None => with_thread_parker(f),
    }
}

/// Runs `f` with this thread's own parker (for threads outside any scheduler). The parker
/// lives as long as the thread.
pub(crate) fn with_thread_parker<R>(f: impl FnOnce(&Arc<Parker>) -> R) -> R {
    EXTERNAL_PARKER.with(f)
}

/// Waits until `latch` is set (J3/J4 in `task/stack_job.rs`). `ctx`: the current thread's
/// worker context, whose parker the latch was created with; it runs other tasks while it
/// waits. `None`: `parker` is the thread's own, and it parks.
pub(crate) fn wait_latch(latch: &Latch, ctx: Option<&WorkerCtx<'_>>, parker: &Parker) {
    if latch.probe() {
        return;
    }
    match ctx {
        Some(c) => {
            c.in_join(|| c.run_until(&|| latch.probe(), None, &|| latch.prepare_park()));
        }
        None => latch.wait_parked(parker),
    }
}

/// Blocks the calling thread until `ready()` holds (re-checked after every wake-up;
/// spurious wake-ups happen) or `deadline` passes; returns whether `ready()` held. The
/// wake-up comes through [`thread_waker`], taken on this thread before the call. On a
/// worker the thread's role goes to a spare thread meanwhile (B1–B2, `roles.rs`), so the
/// pool keeps all its workers running; past the spare limit the worker blocks, having
/// moved its queued tasks to the injection queue.
pub(crate) fn block_until(ready: &dyn Fn() -> bool, deadline: Option<Instant>) -> bool {
    if ready() {
        return true;
    }
    with_current(|ctx| match ctx {
        Some(c) => match c.lent(|| c.park_until_done(ready, deadline, &|| true)) {
            Some(r) => r,
            None => {
                Row::bump_owned(&c.row().blocked_waits, 1);
                c.hand_off_queued();
                c.park_until_done(ready, deadline, &|| true)
            }
        },
        None => with_thread_parker(|p| loop {
            if ready() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return ready();
            }
            p.park_until(deadline);
        }),
    })
}

/// The waker that ends a [`block_until`] on this thread: it unparks the thread's own
/// parker (a worker's or a spare's while it holds a role, the thread-local one otherwise).
pub(crate) fn thread_waker() -> std::task::Waker {
    with_current(|ctx| match ctx {
        Some(c) => Parker::waker(c.parker()),
        None => with_thread_parker(Parker::waker),
    })
}

/// `block_in_place`: runs `f` on this thread with its worker role lent to a spare thread
/// meanwhile (B1–B2), so that `f` may block without taking a worker from the pool. Off
/// the workers (or with no spare to be had) it just runs `f`.
pub(crate) fn block_in_place<R>(f: impl FnOnce() -> R) -> R {
    let mut f = Some(f);
    let lent = with_current(|ctx| ctx.and_then(|c| c.lent(|| (f.take().expect("unused"))())));
    match lent {
        Some(r) => r,
        None => (f.take().expect("not run when not lent"))(),
    }
}

impl Drop for WorkerCtx<'_> {
    /// Gives the handle-unit credit back (`shared.rs`, "Handle units"). Every path out of
    /// `thread::hold_role` has called `leave` first, so no handle dropped later on this
    /// thread can add to the credit.
    fn drop(&mut self) {
        let c = self.handle_credit.replace(0);
        if c > 0 && mutation::keep(Site::HandleCreditReturned) {
            // SAFETY: the credit held `c` units of this scheduler, and nothing uses them
            // after this; the state lives in the thread's own `Arc`, whose pointer this is.
            unsafe { Shared::give_handle_units(Arc::as_ptr(self.shared_arc), c) };
        }
    }
}

/// Runs `f` with the current thread's worker context, if this thread is a worker. Not
/// `inline(always)`: forced into every recursive `join` frame it cost fib(30) 8 %.
#[inline]
pub(crate) fn with_current<R>(f: impl FnOnce(Option<&WorkerCtx<'_>>) -> R) -> R {
    let p = CURRENT.with(Cell::get);
    // SAFETY: `CURRENT` is non-null only between `worker_main` setting it and clearing it,
    // while the pointed-to context lives on that same thread's stack frame; the reference
    // does not escape `f`.
    f(unsafe { p.as_ref() })
}

impl<'a> WorkerCtx<'a> {
    /// The context of a thread holding role `role` (`thread::worker_main`, a spare's
    /// `hold_role`); `parker` is the thread's own.
    pub(crate) fn new(
        shared: &'a Arc<Shared>,
        role: usize,
        parker: &'a Arc<Parker>,
        spare: bool,
    ) -> WorkerCtx<'a> {
        shared.workers[role].role.touch();
        WorkerCtx {
            shared,
            shared_arc: shared,
            role: Cell::new(&shared.workers[role].role),
            row: Cell::new(&shared.workers[role].stats),
            parker,
            spare,
            give: Cell::new(false),
            strides: coprimes(shared.workers.len()),
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ ((role as u64 + 1) << 17) ^ ((spare as u64) << 40)),
            tick: Cell::new(FAIR_INTERVAL),
            searching: Cell::new(false),
            joins: Cell::new(0),
            take_oldest: Cell::new(false),
            top_age: Cell::new((usize::MAX, 0)),
            scope_frame: Cell::new((ptr::null(), 0)),
            handle_credit: Cell::new(0),
            watching: Cell::new(None),
            recheck: Cell::new(NEXT_RECHECK),
        }
    }

    /// A handle unit for a new `Handle` of this scheduler, from the credit (`shared.rs`,
    /// "Handle units"): a plain decrement, and HU1 for a batch when the credit is empty.
    #[inline]
    pub(crate) fn take_handle_unit(&self) {
        match self.handle_credit.get() {
            0 => {
                Shared::take_handle_units(self.shared_arc, HANDLE_UNIT_BATCH);
                self.handle_credit.set(HANDLE_UNIT_BATCH - 1);
            }
            c => self.handle_credit.set(c - 1),
        }
    }

    /// Takes back the unit of a dropped `Handle` of this scheduler into the credit; a
    /// credit past two batches gives one back (HU2, never the last units: the credit
    /// keeps a batch).
    #[inline]
    pub(crate) fn give_handle_unit(&self) {
        let c = self.handle_credit.get() + 1;
        if c > 2 * HANDLE_UNIT_BATCH {
            // SAFETY: the credit holds `c` units, and we give `HANDLE_UNIT_BATCH` of them.
            unsafe { Shared::give_handle_units(Arc::as_ptr(self.shared_arc), HANDLE_UNIT_BATCH) };
            self.handle_credit.set(c - HANDLE_UNIT_BATCH);
        } else {
            self.handle_credit.set(c);
        }
    }

    /// The role this thread holds.
    #[inline(always)]
    fn role(&self) -> &'a Role {
        self.role.get()
    }

    /// Whether the outermost loop should end to hand the role on (`thread::hold_role`).
    #[inline]
    pub(crate) fn should_give(&self) -> bool {
        if self.spare {
            self.shared.board.spare_should_give()
        } else {
            self.give.get() && self.shared.board.claimants_waiting()
        }
    }

    /// The hand-on did not happen (the claim was served by another holder).
    pub(crate) fn gave_up_giving(&self) {
        self.give.set(false);
    }

    /// Takes role `r` (B1–B3 handed it to this thread).
    fn set_role(&self, r: usize) {
        self.shared.workers[r].role.touch();
        self.role.set(&self.shared.workers[r].role);
        self.row.set(&self.shared.workers[r].stats);
    }

    /// Makes this context the current thread's (`with_current`) until [`Self::leave`].
    pub(crate) fn enter(&self) {
        let p: *const WorkerCtx<'_> = self;
        CURRENT.with(|c| c.set(p.cast()));
    }

    /// Ends [`Self::enter`]: the thread is no longer a worker.
    pub(crate) fn leave(&self) {
        CURRENT.with(|c| c.set(ptr::null()));
    }

    /// The index of the role this thread holds.
    pub(crate) fn index(&self) -> usize {
        self.role().index
    }

    pub(crate) fn is_of(&self, shared: &Shared) -> bool {
        ptr::eq(self.shared, shared)
    }

    pub(crate) fn shared(&self) -> &'a Shared {
        self.shared
    }

    pub(crate) fn shared_arc(&self) -> &'a Arc<Shared> {
        self.shared_arc
    }

    #[inline]
    pub(crate) fn row(&self) -> &'a Row {
        self.row.get()
    }

    /// Runs `f` as a join-wait: step 1 (fairness) is skipped inside it (module docs).
    pub(crate) fn in_join<R>(&self, f: impl FnOnce() -> R) -> R {
        self.joins.set(self.joins.get() + 1);
        let r = f();
        self.joins.set(self.joins.get() - 1);
        r
    }

    /// `scope.rs`'s frame cell (S1): read and written only by this thread.
    pub(crate) fn scope_frame(&self) -> &Cell<(*const (), usize)> {
        &self.scope_frame
    }

    /// This thread's parker (not the role's: see `parker`).
    pub(crate) fn parker(&self) -> &'a Arc<Parker> {
        self.parker
    }

    pub(crate) fn alloc_slot(&self) -> Option<SlotId> {
        // SAFETY: we hold the role, and `try_alloc` calls out to nothing that could re-enter.
        unsafe { self.role().with_cache(|c| c.try_alloc()) }
    }

    pub(crate) fn free_slot(&self, id: SlotId) {
        // SAFETY: the caller (`Shared::free_task`) frees a slot of this worker's pool whose
        // last task reference is gone, exactly once; we hold the role, and `free` calls
        // out to nothing that could re-enter.
        unsafe { self.role().with_cache(|c| c.free(id)) }
    }

    /// Pops the newest task of the own deque.
    #[inline]
    pub(crate) fn pop_local(&self) -> Option<TaskRef> {
        self.role().deque.pop()
    }

    /// Whether the own deque is empty (thieves may be taking from it meanwhile).
    #[inline]
    pub(crate) fn local_is_empty(&self) -> bool {
        self.role().deque.is_empty()
    }

    /// Pushes a task on the own deque; a full deque first spills half to the injector.
    #[inline]
    pub(crate) fn push_local(&self, t: TaskRef) {
        if let Err(t) = self.role().deque.push(t) {
            self.spill();
            if let Err(t) = self.role().deque.push(t) {
                // Only this thread pushes, and the spill made room; thieves only take.
                unreachable_full(t);
            }
        }
    }

    /// Queues a task that a wake made runnable in the own wake slot (N1); the task it
    /// displaces goes on the own deque. In sole-owner mode (one worker, `deque.rs`), straight
    /// onto the deque: there is nobody to keep it from.
    #[inline]
    pub(crate) fn push_woken(&self, t: TaskRef) {
        if self.shared.sole_owner {
            return self.push_local(t);
        }
        // SAFETY: this thread holds the role, so it is the slot's owner.
        if let Some(old) = unsafe { self.shared.workers[self.index()].next.put(t.into_raw()) } {
            // SAFETY: N1 handed back the reference that the slot held.
            self.push_local(unsafe { TaskRef::from_raw(old) });
        }
    }

    /// Takes the task in the own wake slot (N2), if a thief has not.
    #[inline(always)]
    fn take_next(&self) -> Option<TaskRef> {
        // SAFETY: this thread holds the role, so it is the slot's owner; the slot holds a
        // reference given up by `into_raw` in `push_woken`.
        unsafe { self.shared.workers[self.index()].next.take().map(|p| TaskRef::from_raw(p)) }
    }

    /// Moves the older half of the full own deque to the injection queue as one chain.
    #[cold]
    fn spill(&self) {
        self.spill_n(self.role().deque.capacity() / 2);
    }

    /// Moves up to `want` of the oldest own tasks to the injection queue as one chain;
    /// returns how many moved.
    #[cold]
    fn spill_n(&self, want: usize) -> u64 {
        let (mut first, mut last): (*mut Header, *mut Header) = (ptr::null_mut(), ptr::null_mut());
        let mut moved = 0u64;
        while moved < want as u64 {
            match self.role().own.steal() {
                Steal::Success(t) => {
                    let p = t.into_raw().as_ptr();
                    if last.is_null() {
                        first = p;
                    } else {
                        // SAFETY: `last` is a task we took out of the deque above and still
                        // own; its `next` link is free while it is in no queue. Relaxed: the
                        // chain is published by `push_chain`'s Release.
                        unsafe { (*last).next.store(p, Relaxed) };
                    }
                    last = p;
                    moved += 1;
                }
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
        if let (Some(f), Some(l)) = (NonNull::new(first), NonNull::new(last)) {
            // SAFETY: `f..=l` is a chain of task references we own, linked through `next`.
            unsafe { self.shared.injector.push_chain(f, l) };
            Row::bump_owned(&self.row().spills, 1);
            Row::bump_owned(&self.row().injected, moved);
        }
        moved
    }

    /// Before this worker blocks in a wait without helping: the task in its wake slot and
    /// every task of its own deque go to the injection queue, and K1 makes sure somebody
    /// looks, so nothing queued here waits for this thread.
    #[cold]
    pub(crate) fn hand_off_queued(&self) {
        if let Some(t) = self.take_next() {
            self.push_local(t);
        }
        if self.spill_n(usize::MAX) != 0 {
            self.shared.notify();
        }
    }

    fn next_rand(&self) -> u64 {
        // xorshift64*: cheap, and good enough to pick a victim.
        let mut x = self.rng.get();
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng.set(x);
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// After an async task re-queued itself: take the next task from the oldest end of the
    /// own deque (outside joins only, as the fairness step).
    #[inline]
    pub(crate) fn take_oldest_next(&self) {
        self.take_oldest.set(true);
    }

    /// At a fairness turn: whether the own deque's oldest task has sat at the top for
    /// [`FAIR_AGE`] turns (module docs, step 1).
    #[cold]
    fn oldest_is_stale(&self) -> bool {
        let top = self.role().deque.top_position();
        let (seen, turns) = self.top_age.get();
        let turns = if seen == top { turns + 1 } else { 0 };
        if turns >= FAIR_AGE {
            self.top_age.set((top, 0));
            return true;
        }
        self.top_age.set((top, turns));
        false
    }

    /// The own deque's oldest task, as a thief takes it.
    fn pop_oldest(&self) -> Option<TaskRef> {
        loop {
            match self.role().own.steal() {
                Steal::Success(t) => return Some(t),
                Steal::Retry => continue,
                Steal::Empty => return None,
            }
        }
    }

    /// Steps 1–3 of the module docs, without idling.
    #[inline(always)]
    pub(crate) fn find_task(&self) -> Option<TaskRef> {
        let oldest = self.take_oldest.replace(false) && self.joins.get() == 0;
        // Counts down to the next fairness turn: cheaper than a modulo per task. Step 0
        // counts too, and yields to step 1 on its turn (module docs).
        let tick = self.tick.get() - 1;
        self.tick.set(tick);
        if tick == 0 {
            self.tick.set(FAIR_INTERVAL);
        }
        if tick == 0 {
            // Timers fire inside joins too: a woken task only lands on this worker (its
            // wake slot or its deque).
            self.fire_timers();
        }
        if tick == 0 && self.joins.get() == 0 {
            if let Some(t) = self.pop_injector() {
                return Some(t);
            }
            if self.oldest_is_stale() {
                if let Some(t) = self.pop_oldest() {
                    return Some(t);
                }
            }
        }
        if oldest {
            if let Some(t) = self.pop_oldest() {
                return Some(t);
            }
        }
        if let Some(t) = self.take_next() {
            return Some(t);
        }
        if let Some(t) = self.role().deque.pop() {
            return Some(t);
        }
        self.search()
    }

    fn search(&self) -> Option<TaskRef> {
        if let Some(t) = self.pop_injector() {
            return Some(t);
        }
        self.steal_round()
    }

    /// Takes a batch from the injection queue into the own deque; returns the first task.
    fn pop_injector(&self) -> Option<TaskRef> {
        if self.shared.injector.is_empty() {
            return None;
        }
        let room = self.role().deque.capacity() - self.role().deque.len();
        let mut first = None;
        let r = self.shared.injector.pop_batch(room.min(INJECT_BATCH) + 1, |p| {
            // SAFETY: every node in the injector is a task reference given up by
            // `into_raw` (external spawn or spill); the queue hands each out once.
            let t = unsafe { TaskRef::from_raw(p) };
            if first.is_none() {
                first = Some(t);
            } else if let Err(t) = self.role().deque.push(t) {
                // `room` was measured before; only thieves (who make room) touch the deque.
                unreachable_full(t);
            }
        });
        debug_assert!(matches!(r, Pop::Taken(_) | Pop::Empty | Pop::Busy));
        first
    }

    /// One steal round over every other worker in a random order.
    fn steal_round(&self) -> Option<TaskRef> {
        let n = self.shared.workers.len();
        if n == 1 {
            return None;
        }
        let r = self.next_rand();
        let start = (r % n as u64) as usize;
        let stride = self.strides[((r >> 32) % self.strides.len() as u64) as usize];
        let row = self.row();
        let mut victim = start;
        for _ in 0..n {
            if victim != self.index() {
                Row::bump_owned(&row.steal_attempts, 1);
                let before = self.role().deque.len();
                loop {
                    match self.shared.workers[victim].stealer.steal_batch(&self.role().deque) {
                        Steal::Success(t) => {
                            let moved = self.role().deque.len().saturating_sub(before) as u64;
                            Row::bump_owned(&row.stolen, 1 + moved);
                            return Some(t);
                        }
                        Steal::Retry => spin_loop(),
                        Steal::Empty => break,
                    }
                }
            }
            victim = (victim + stride) % n;
        }
        self.steal_stale_next(start)
    }

    /// K3's timed park for a task in another worker's wake slot (module docs, "Idling"):
    /// `None` when no other slot holds one. Watching a task whose grace is still running:
    /// until that grace ends, so the steal comes right after it. Else the back-off:
    /// [`NEXT_RECHECK`], doubled per such park up to [`NEXT_RECHECK_MAX`] (reset once this
    /// worker finds work), so that a worker beside a long ping-pong, whose slot is
    /// occupied by a new task at every look, does not come back every 20 µs for it.
    fn slot_recheck(&self) -> Option<std::time::Duration> {
        if !self.other_slot_occupied() {
            return None;
        }
        if let Some((w, seen, since)) = self.watching.get() {
            if self.shared.workers[w].next.peek() == Some(seen) {
                return Some((since + NEXT_GRACE).saturating_duration_since(Instant::now()));
            }
        }
        let wait = self.recheck.get();
        self.recheck.set((wait * 2).min(NEXT_RECHECK_MAX));
        Some(wait)
    }

    /// Whether another worker's wake slot holds a task (K3's re-check; Relaxed hints).
    fn other_slot_occupied(&self) -> bool {
        self.shared.slot_occupied_except(self.index())
    }

    /// Step 3's last resort: the task in another worker's wake slot, once it has sat there
    /// for [`NEXT_GRACE`] with no put into the slot meanwhile (N3, N4). Watches
    /// one slot at a time: the one watched before if it still holds what it held, else the
    /// first occupied one from `start`.
    #[cold]
    fn steal_stale_next(&self, start: usize) -> Option<TaskRef> {
        let n = self.shared.workers.len();
        let mut first = None;
        for k in 0..n {
            let i = (start + k) % n;
            if i == self.index() {
                continue;
            }
            let Some(seen) = self.shared.workers[i].next.peek() else { continue };
            if let Some((w, s, since)) = self.watching.get() {
                if w == i && s == seen {
                    if !grace_over(since) {
                        return None;
                    }
                    self.watching.set(None);
                    let t = self.shared.workers[i].next.steal(seen)?;
                    Row::bump_owned(&self.row().stolen, 1);
                    // SAFETY: N4 gave us the reference the slot held.
                    return Some(unsafe { TaskRef::from_raw(t) });
                }
            }
            first = first.or(Some((i, seen)));
        }
        self.watching.set(first.map(|(i, seen)| (i, seen, Instant::now())));
        None
    }

    /// K4 when leaving the searching role (a plain flag test when not searching, as
    /// after every task found in the own deque).
    #[inline(always)]
    pub(crate) fn stop_searching(&self) {
        if self.searching.replace(false) {
            self.stop_searching_slow();
        }
    }

    #[inline(never)]
    fn stop_searching_slow(&self) {
        self.recheck.set(NEXT_RECHECK);
        // The other wake slots too: a waker's K1 that saw this searcher relied on it (or a
        // worker it wakes) to come back for a task left in a slot. (The own slot is this
        // worker's to run.)
        if self.shared.sleep.stop_searching()
            && (self.shared.has_visible_work() || self.other_slot_occupied())
        {
            self.shared.wake_one();
        }
    }

    /// Runs one task: T1 claim, run or abandon, T2 complete, T5 release, fused where the
    /// state allows (`TaskRef::run`). Inline for the commonest case, a detached task
    /// whose output has no drop glue (`TaskRef::run_unread`); the rest out of line.
    #[inline(always)]
    pub(crate) fn run_task(&self, t: TaskRef) {
        // Relaxed: as in `run_task_general`. (A stack job has no `run_unread` and takes the
        // general path.)
        if !self.shared.abandon.load(Relaxed) {
            match t.run_unread() {
                Ok((payload, dead)) => {
                    let row = self.row();
                    Row::bump_owned(&row.completed, 1);
                    if payload.is_some() {
                        Row::bump_owned(&row.panicked, 1);
                    }
                    self.finish_unread(payload, dead);
                }
                Err(t) => self.run_task_counted(t),
            }
        } else {
            self.run_task_general(t);
        }
    }

    /// The second fast path: a detached task whose output has drop glue (a scope task,
    /// whose output is its S3 guard), counted before its output is dropped
    /// (`TaskRef::run_unread_counted`); the rest to the general path.
    #[inline(never)]
    fn run_task_counted(&self, t: TaskRef) {
        // The row is looked up after the body, as in `run_task_general`.
        let counted = |panicked: bool| {
            let row = self.row();
            Row::bump_owned(&row.completed, 1);
            if panicked {
                Row::bump_owned(&row.panicked, 1);
            }
        };
        match t.run_unread_counted(&counted) {
            Ok((payload, dead)) => self.finish_unread(payload, dead),
            Err(t) => self.run_task_general(t),
        }
    }

    /// After a fast-path run: reports the panic payload, frees the task's memory.
    #[inline(always)]
    fn finish_unread(&self, payload: Option<Payload>, dead: Dead) {
        if let Some(p) = payload {
            self.shared.report_panic(p);
        }
        // Every task a worker runs belongs to its own scheduler, so a pool task goes
        // straight back to this worker's magazine.
        debug_assert!(ptr::eq(dead.owner(), self.shared.as_owner()));
        match dead.home() {
            Home::Pool(index) => {
                self.free_slot(SlotId::from_raw(index));
            }
            _ => Shared::free_task_on(dead, Some(self)),
        }
    }

    /// [`WorkerCtx::run_task`] behind a call, for call sites inside code that is itself
    /// inlined into user frames (`join`'s pop-back loop): the fast path inlined there
    /// would grow every recursive `join` frame (fib(30) by `join` ran 11 % slower).
    #[inline(never)]
    pub(crate) fn run_task_outlined(&self, t: TaskRef) {
        self.run_task(t);
    }

    #[inline(never)]
    fn run_task_general(&self, t: TaskRef) {
        if t.is_stack_job() {
            // SAFETY: taken from a queue, which hands each entry out once.
            unsafe { t.execute_stack_job() };
            return;
        }
        if t.is_async() {
            return self.run_async(t);
        }
        // Where a joiner finds the task's subtasks (the helping rule, `wait_task`).
        t.set_runner(self.index());
        // Relaxed: set once by a timed-out shutdown; a task that starts just before it is
        // seen simply runs, which the shutdown contract allows.
        let abandon = self.shared.abandon.load(Relaxed);
        // Counted before the task completes, so a joiner sees its own task counted. The row
        // is looked up after the body: a body that blocked (`block_in_place`, a channel
        // wait) lent this thread's role to a spare and may have come back with another,
        // and a row has one writer, its role's holder (a row taken before the body lost
        // counts to the spare's concurrent bumps).
        let ran = t.run(abandon, |panicked| {
            let row = self.row();
            if abandon {
                Row::bump_owned(&row.abandoned, 1);
            } else {
                Row::bump_owned(&row.completed, 1);
                if panicked {
                    Row::bump_owned(&row.panicked, 1);
                }
            }
        });
        // An unclaimed task was cancelled while queued; only our reference was left.
        if let Some(p) = ran.payload {
            self.shared.report_panic(p);
        }
        if let Some(dead) = ran.dead {
            Shared::free_task_on(dead, Some(self));
        }
    }

    /// Runs tasks until `done()` holds (checked between tasks) or `deadline` passes.
    /// Returns whether `done()` held. `before_park` runs before each park (a joiner
    /// registers its waiter there, so a join that never sleeps never registers); if it
    /// returns `false` the worker does not park and re-checks `done`.
    pub(crate) fn run_until(
        &self,
        done: &dyn Fn() -> bool,
        deadline: Option<Instant>,
        before_park: &dyn Fn() -> bool,
    ) -> bool {
        if self.joins.get() > MAX_NESTED_WAITS {
            if let Some(r) = self.wait_blocking(done, deadline, before_park) {
                return r;
            }
        }
        loop {
            if done() {
                self.stop_searching();
                return true;
            }
            if let Some(t) = self.find_task() {
                self.stop_searching();
                self.run_task(t);
                continue;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                self.stop_searching();
                return false;
            }
            if let Some(t) = self.idle(done, deadline, before_park) {
                self.stop_searching();
                self.run_task(t);
            }
        }
    }

    /// A wait that must not run other tasks on top of its frame: `run_until` past
    /// [`MAX_NESTED_WAITS`] (module docs, "Nested waits"). The role goes to a spare thread
    /// while this thread parks (B1–B2, `roles.rs`); with no spare to be had, the own deque
    /// goes to the injection queue and the thread parks holding its role, if fewer than
    /// `workers − 1` others do so already. `None`: neither was possible; keep helping.
    #[cold]
    fn wait_blocking(
        &self,
        done: &dyn Fn() -> bool,
        deadline: Option<Instant>,
        before_park: &dyn Fn() -> bool,
    ) -> Option<bool> {
        if let Some(r) = self.lent(|| self.park_until_done(done, deadline, before_park)) {
            return Some(r);
        }
        if !self.shared.try_block_waiter() {
            return None;
        }
        Row::bump_owned(&self.row().blocked_waits, 1);
        // Once: only this thread pushes on its deque, and it runs nothing until it returns.
        self.hand_off_queued();
        let r = self.park_until_done(done, deadline, before_park);
        self.shared.unblock_waiter();
        Some(r)
    }

    /// Parks this thread until `done()` (re-checked after every wake-up) or `deadline`;
    /// `before_park` as in [`Self::run_until`]. Runs no task.
    fn park_until_done(
        &self,
        done: &dyn Fn() -> bool,
        deadline: Option<Instant>,
        before_park: &dyn Fn() -> bool,
    ) -> bool {
        loop {
            if done() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return done();
            }
            if before_park() {
                self.parker().park_until(deadline)
            }
        }
    }

    /// B1 + B2 (`roles.rs`): lends this thread's role to another thread, runs `f` (which
    /// blocks this thread; it runs as on a thread outside the scheduler: `with_current`
    /// sees no worker), then claims a role back, waiting for one if none is vacant.
    /// `None`: nobody could take the role (no spare thread to be had); `f` did not run.
    /// A panic in `f` unwinds out of this call after the role is back.
    pub(crate) fn lent<R>(&self, f: impl FnOnce() -> R) -> Option<R> {
        // Running a task, so not searching; K4 if that ever changes.
        self.stop_searching();
        if let Lent::No = Shared::lend(self.shared_arc, self.index()) {
            return None;
        }
        self.leave();
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
        let role = self.shared.claim_role(self.parker, true);
        self.set_role(role);
        self.enter();
        match r {
            Ok(v) => Some(v),
            Err(p) => std::panic::resume_unwind(p),
        }
    }

    /// B3 when idle (`roles.rs`): a claimant waits for a role and this thread has nothing
    /// to run. In the outermost loop it only sets `give`: the loop ends, and its caller
    /// hands the role on (`thread::hold_role`). Inside a helping wait it gives the role
    /// now, parks until the wait is over (its waiter is registered on this thread's
    /// parker), and claims a role back (B2).
    #[cold]
    fn give_while_idle(
        &self,
        done: &dyn Fn() -> bool,
        deadline: Option<Instant>,
        before_park: &dyn Fn() -> bool,
    ) {
        if self.joins.get() == 0 {
            self.give.set(true);
            return;
        }
        self.stop_searching();
        if !self.shared.give_role(self.index()) {
            // Another holder served the claim first.
            return;
        }
        self.leave();
        self.park_until_done(done, deadline, before_park);
        let role = self.shared.claim_role(self.parker, false);
        self.set_role(role);
        self.enter();
    }

    /// Searches with spins, then yields, then parks (module docs). Returns a task if it
    /// found one; `None` when it should re-check `done` (woken, or `done` became true).
    fn idle(
        &self,
        done: &dyn Fn() -> bool,
        deadline: Option<Instant>,
        before_park: &dyn Fn() -> bool,
    ) -> Option<TaskRef> {
        let sleep = &self.shared.sleep;
        let give_up = || done() || deadline.is_some_and(|d| Instant::now() >= d);
        let (spins, yields, parks) = match self.shared.config.idle {
            Idle::Spin => (u32::MAX, 0, false),
            Idle::Yield => (0, u32::MAX, false),
            Idle::Park { spins, yields } => (spins, yields, true),
        };
        if !self.searching.get() {
            // Spin/Yield workers always count as searching (they never park, so spawners
            // need not wake anybody).
            if !parks {
                sleep.force_searching();
                self.searching.set(true);
            } else if sleep.try_start_searching() {
                self.searching.set(true);
            }
        }
        if self.searching.get() {
            let mut round = 0u32;
            while round < spins.saturating_add(yields) {
                if round < spins {
                    for _ in 0..(1u32 << round.min(6)) {
                        spin_loop();
                    }
                } else {
                    yield_now();
                }
                if let Some(t) = self.search() {
                    return Some(t);
                }
                if give_up() {
                    return None;
                }
                if self.shared.board.claimants_waiting() {
                    self.give_while_idle(done, deadline, before_park);
                    return None;
                }
                round = round.saturating_add(1);
            }
        }
        if !parks {
            return None;
        }
        if !before_park() {
            return None;
        }
        if self.shared.is_shutting_down() {
            // Before parking in a shutdown: drop the futures that nothing will poll
            // (`async_task.rs`, "Shutdown"); a joiner parked here may be waiting for one.
            if self.shared.sweep_async(Some(self)) != 0 {
                return None;
            }
        }
        if self.shared.board.claimants_waiting() {
            self.give_while_idle(done, deadline, before_park);
            return None;
        }
        let deadline = self.timer_deadline(deadline);
        // K3.
        let was_searching = self.searching.replace(false);
        sleep.prepare_sleep(self.index(), was_searching);
        // The re-check reads `claimants` too: B2's fence pairs with K3's (`roles.rs`).
        // The own wake slot too: a timer fired just above may have woken a task into it.
        if self.shared.has_visible_work()
            || self.shared.workers[self.index()].next.is_occupied()
            || give_up()
            || self.shared.is_closed()
            || self.shared.board.claimants_waiting()
        {
            sleep.cancel_sleep(self.index());
            self.searching.set(true);
            return None;
        }
        // A task in another worker's wake slot: park for a while only, and come back to
        // steal it if its owner has not taken it (step 3). Read after K3's fence: either
        // the waker's K1 sees this sleeper, or this sees the slot (docs/DESIGN.md §7).
        let deadline = match self.slot_recheck() {
            Some(wait) => {
                let recheck = Instant::now() + wait;
                Some(deadline.map_or(recheck, |d| d.min(recheck)))
            }
            None => deadline,
        };
        Row::bump_owned(&self.row().parks, 1);
        self.parker().park_until(deadline);
        self.disarm_timers();
        // K5 (or woken by K2, which already counted us).
        sleep.cancel_sleep(self.index());
        self.searching.set(true);
        self.fire_timers();
        None
    }

    /// Waits for `task`, whose `JoinHandle` this thread holds, by the helping rule (module
    /// docs, "Waiting for a task"): runs it here if it is this worker's newest task or
    /// nobody has started it; else runs only tasks taken from the deque of the worker
    /// running it (its own subtasks, leapfrogging) and, with none there, blocks with its
    /// role lent. `before_park` registers the waiter on this thread's parker. Returns
    /// whether the task completed (`false`: `deadline` passed).
    pub(crate) fn wait_task(
        &self,
        task: &TaskRef,
        deadline: Option<Instant>,
        before_park: &dyn Fn() -> bool,
    ) -> bool {
        let done = || task.is_complete();
        let word = task.header() as *const Header as usize;
        if self.run_if_queued_here(task, word) && done() {
            return true;
        }
        // Elsewhere (deeper in this deque, in another's, in the injection queue): claimed
        // here and run, its queue entry skipped when it comes up.
        if !task.is_async() && self.run_claimed_here(task) {
            return true;
        }
        // Nested too deep to run more tasks on this stack: straight to blocking.
        let deep = self.joins.get() > MAX_NESTED_WAITS;
        let (spins, yields) = match self.shared.config.idle {
            Idle::Park { spins, yields } => (spins, yields),
            Idle::Spin | Idle::Yield => (64, 64),
        };
        let mut round = 0u32;
        loop {
            if done() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return done();
            }
            // An async task that suspended again after running here may be queued here
            // again (its own wake, or one from this thread): run it once more.
            if task.is_async() && self.run_if_queued_here(task, word) {
                round = 0;
                continue;
            }
            if let Some(t) = if deep { None } else { self.leapfrog(task) } {
                self.run_task(t);
                round = 0;
                continue;
            }
            if round < spins {
                for _ in 0..(1u32 << round.min(6)) {
                    spin_loop();
                }
            } else if round < spins.saturating_add(yields) {
                yield_now();
            } else {
                return match self.lent(|| self.park_until_done(&done, deadline, before_park)) {
                    Some(r) => r,
                    // No spare thread to be had: help as other waits do, rather than
                    // leave the pool a worker short.
                    None => self.run_until(&done, deadline, before_park),
                };
            }
            round = round.saturating_add(1);
        }
    }

    /// Runs `task` (whose header address is `word`) here if it is queued on this worker: in
    /// the own wake slot, or newest or oldest on the own deque. Returns whether it ran (an
    /// async task's poll may have suspended it again).
    fn run_if_queued_here(&self, task: &TaskRef, word: usize) -> bool {
        // Woken and queued in the own wake slot: runs here, as the newest task would.
        if !self.shared.sole_owner
            && self.shared.workers[self.index()].next.peek().is_some_and(|s| s.task.as_ptr() as usize == word)
        {
            if let Some(t) = self.take_next() {
                if std::ptr::eq(t.header(), task.header()) {
                    self.run_task(t);
                    return true;
                }
                self.push_local(t);
            }
        }
        if self.role().deque.peek_newest_word() != Some(word) {
            self.drop_claimed_top(word);
        }
        // The common shapes: the task is the newest on this deque (fork-join), or the
        // oldest (tasks spawned in a row, joined in order). Taken from the deque, it runs
        // as usual and its memory is freed at once.
        if self.role().deque.peek_newest_word() == Some(word) {
            if let Some(t) = self.pop_local() {
                debug_assert!(std::ptr::eq(t.header(), task.header()));
                self.run_task(t);
                return true;
            }
        } else if self.role().deque.peek_oldest_word() == Some(word) {
            if let Some(t) = self.pop_oldest() {
                if std::ptr::eq(t.header(), task.header()) {
                    self.run_task(t);
                    return true;
                }
                // A thief took ours meanwhile; this one goes back, as the newest.
                self.push_local(t);
            }
        }
        false
    }

    /// Pops, from the top of the own deque, the entries of closure tasks already claimed
    /// and run in place (`run_claimed_here`, by this wait or another worker's), stopping
    /// at the first other entry or at `keep`. Without it, a task that joins its children
    /// in spawn order (the oldest first, so each is claimed in place, deeper in the
    /// deque) leaves their entries behind until the worker loop comes back to them:
    /// skynet's million leaves piled up to deque spills and an exhausted pool.
    fn drop_claimed_top(&self, keep: usize) {
        while let Some(w) = self.role().deque.peek_newest_word() {
            if w == keep {
                return;
            }
            let Some(t) = self.pop_local() else { return };
            // Relaxed: a claim is final, so a claimed state seen here stays claimed; a
            // stale unclaimed one only leaves the entry where it was.
            if t.is_stack_job() || t.is_async() || !t.state(Relaxed).is_claimed() {
                // Back on top, where it was: we just took it, and thieves only take.
                self.push_local(t);
                return;
            }
            // The claim fails: this only drops the queue's reference.
            self.run_task(t);
        }
    }

    /// Claims `task` (T1) and runs it on this thread; `false` if somebody started,
    /// cancelled or finished it first. Its queue entry, wherever it is, is skipped later
    /// (the claim fails there).
    fn run_claimed_here(&self, task: &TaskRef) -> bool {
        if task.claim().is_err() {
            return false;
        }
        task.set_runner(self.index());
        // SAFETY: we hold RUNNING from the claim.
        let panicked = unsafe { task.run_claimed() };
        let row = self.row();
        Row::bump_owned(&row.completed, 1);
        if panicked {
            Row::bump_owned(&row.panicked, 1);
        }
        // SAFETY: claimed and output written. The caller holds the handle (JOIN_INTEREST),
        // so the output is left for it and nothing is handed back.
        let payload = unsafe { task.complete(false) };
        debug_assert!(payload.is_none());
        true
    }

    /// Leapfrogging: a task of the deque of the worker role running `task` (oldest first,
    /// as a thief takes), if that is another role.
    fn leapfrog(&self, task: &TaskRef) -> Option<TaskRef> {
        let r = task.runner()?;
        if r == self.index() || r >= self.shared.workers.len() {
            return None;
        }
        let victim = &self.shared.workers[r].stealer;
        loop {
            let stolen = if self.shared.sole_owner { victim.steal_heavy() } else { victim.steal() };
            match stolen {
                Steal::Success(t) => {
                    Row::bump_owned(&self.row().stolen, 1);
                    return Some(t);
                }
                Steal::Retry => spin_loop(),
                Steal::Empty => return None,
            }
        }
    }
}

/// Whether a wake slot's occupant watched since `since` has waited out [`NEXT_GRACE`].
/// Under loom, at once (the second sighting): the grace is a heuristic, not part of N4.
#[inline]
fn grace_over(since: Instant) -> bool {
    cfg!(loom) || since.elapsed() >= NEXT_GRACE
}

/// A push that cannot fail did; the item cannot be dropped (it is a live task), so stop.
#[cold]
#[inline(never)]
fn unreachable_full(_t: TaskRef) -> ! {
    crate::contain::fatal("a deque push that had room failed");
}

fn coprimes(n: usize) -> Vec<usize> {
    fn gcd(a: usize, b: usize) -> usize {
        if b == 0 {
            a
        } else {
            gcd(b, a % b)
        }
    }
    (1..=n.max(1)).filter(|&k| gcd(k, n) == 1).collect()
}

impl Shared {
    /// Frees the memory of a task whose last reference is gone.
    pub(crate) fn free_task(dead: Dead) {
        with_current(|ctx| Shared::free_task_on(dead, ctx));
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
                if dead.is_async() && !owner.is_null() {
                    // SAFETY: as below: the owner outlives its tasks.
                    unsafe { &*owner.cast::<Shared>() }.remove_heap_async(dead.header_ptr());
                }
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
                // The free, the shared cache's give-back (X3) included, must come before the
                // count: the count may be the one that lets the whole state be freed.
                // SAFETY: the last reference is gone: nobody else uses the slot, freed once,
                // into the cache of this pool.
                unsafe { shared.ext_cache.free(&shared.pool, SlotId::from_raw(index)) };
                shared.count_external_free();
            }
            Home::Stack => contain::fatal("a stack job was freed as a task"),
        }
    }
}
