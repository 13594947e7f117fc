//! The worker thread: its context, the run loop, searching, stealing and idling.
//!
//! # Finding the next task
//!
//! 0. Right after an async task re-queued itself (it woke itself during its poll), the
//!    *oldest* task of the own deque: the self-waking task goes to the back of the line
//!    (`async_task.rs`, "Where a wake goes"). Outside joins only, as step 1.
//! 1. Every [`FAIR_INTERVAL`]th task, first the due timers of this worker (`timer.rs`),
//!    then the injection queue, then the *oldest* task of
//!    the worker's own deque (taken from its top, as a thief would). This bounds how long a
//!    task can wait behind a stream of newer local tasks: the task at the top of a deque
//!    runs within `FAIR_INTERVAL` tasks of that worker, so the task `p` places from the
//!    top within about `p · FAIR_INTERVAL` (Go checks its global queue every 61 ticks for
//!    the same reason; tokio caps its LIFO slot).
//! 2. The newest task of its own deque (LIFO: hot in cache).
//! 3. *Search*: a batch from the injection queue (up to [`INJECT_BATCH`], into the own
//!    deque), then one steal round: every other worker once, starting at a random victim
//!    and walking with a random stride coprime with the worker count (a random permutation
//!    per round, as Go does), each by `steal_batch` into the own deque.
//!
//! # Idling
//!
//! With nothing found, a worker becomes a *searcher* if fewer than half the workers are
//! searching (`sleep.rs`), and repeats the search with spin hints between rounds (growing
//! exponentially to 64 hints), then with `sched_yield` between rounds, then goes to sleep
//! by the K3 protocol and parks on its futex, until its timer wheel's next deadline if it
//! has one (TM2, `timer.rs`; before that it fires every due timer, its own and other
//! workers'). During a shutdown it first sweeps the async tasks nothing will poll again
//! (`async_task.rs`, "Shutdown"). `Idle::Spin` and `Idle::Yield` never park.
//!
//! A worker that waits for a `JoinHandle` runs this same loop with "the task is complete"
//! as its exit condition, so it helps instead of blocking; the completing thread unparks
//! it. While it waits it skips step 1: the fairness step exists for the outermost loop,
//! and inside a join it would start unrelated queued tasks (typically other roots from
//! the injection queue) on top of the waiting task's stack, every 61 tasks, nesting
//! without bound (a stress test overflowed a 2 MiB worker stack with 600 queued roots).
//! Steps 2–3 still run, injector included, so a join whose task was spilled to the
//! injection queue is never stuck; tasks found there can still nest, as in rayon.
//!
//! # Nested waits
//!
//! A helping wait (a join, `WaitGroup::wait`, `Semaphore::acquire`) runs other tasks on
//! top of the waiting task's frame, and those may wait in turn. Without a bound, a queue
//! of tasks that all wait for one thing (20 000 tasks acquiring a one-permit semaphore)
//! nests one frame per task and overflows the worker's stack. So a worker helps in at
//! most [`MAX_NESTED_WAITS`] waits at once. A wait beyond that *blocks*: it first moves
//! every task of the worker's own deque to the injection queue in one chain, with a K1
//! so that some worker looks (the frames below may be joining those tasks, and nothing
//! may wait for a thread that runs nothing), then parks on the worker's parker until
//! its waker unparks it. It stays out of the sleep protocol: to the other workers it is
//! busy running a task, so no spawn's wake-up is spent on it. At most `workers − 1`
//! workers block this way at once (a counter in `Shared`, taken by an RMW before
//! blocking): the last keeps helping however deep it nests, so work that a blocked wait
//! depends on — a task queued behind the waiters that will release them — always has a
//! thread to run it. With one worker no wait ever blocks.
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
//! was the last worker left on a scheduler nobody closed, it closes the scheduler (L4),
//! waits for external spawns in flight, and drops every queued task unrun, so that no
//! joiner waits forever; spawns are refused from then on.
//!
//! Helping cannot make every wait safe: a task run on top of a waiting frame cannot
//! finish before it, so a task that needs something the frame below holds (a permit, a
//! lock) deadlocks this thread. `Semaphore`'s docs say how to avoid it.

use std::cell::Cell;
use std::ptr::{self, NonNull};
use std::time::Instant;

use crate::contain;
use crate::lockfree::deque::{Owner, Steal, Stealer};
use crate::lockfree::inject::Pop;
use crate::lockfree::park::{yield_now, Parker};
use crate::lockfree::pool::{Cache, SlotId};
use crate::runtime::config::Idle;
use crate::runtime::shared::Shared;
use crate::runtime::stats::Row;
use crate::shim::atomic::Ordering::*;
use crate::shim::mutation::{self, Site};
use crate::shim::{spin_loop, Arc, UnsafeCell};
use crate::task::stack_job::Latch;
use crate::task::{Dead, Header, Home, TaskRef, TaskSlot};

/// Every this many tasks a worker looks at the injection queue and its own oldest task
/// first (Go uses 61 too: prime, so it does not beat with other periodic behaviour).
pub(crate) const FAIR_INTERVAL: u32 = 61;

/// Most tasks moved from the injection queue into a worker's deque at once.
pub(crate) const INJECT_BATCH: usize = 32;

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

/// A worker thread's own state. Lives on the worker's stack; reachable through the
/// `CURRENT` thread-local while the worker runs.
pub(crate) struct WorkerCtx<'a> {
    /// The scheduler's state, one load away (not two, as through the `Arc`).
    shared: &'a Shared,
    /// The same, as the `Arc` that owns it (for `filch::current`'s handle).
    shared_arc: &'a Arc<Shared>,
    index: usize,
    /// `shared.workers[index].stats`, resolved once (the hot paths bump it per task).
    row: &'a Row,
    deque: Owner<TaskRef>,
    /// A thief's handle on our own deque: takes the oldest task (fairness) and spills.
    own: Stealer<TaskRef>,
    /// This worker's pool magazine. Touched only by `alloc_slot` and `free_slot`, on this
    /// thread, and neither calls out to anything that could re-enter them: a plain cell,
    /// with no borrow flag to check on every spawn.
    cache: UnsafeCell<Cache<'a, TaskSlot>>,
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
    /// The scope frame of the scope task (or scope body) running on top of this stack:
    /// its scope's address and the counts it has reserved and not yet handed to a child
    /// (`scope.rs`, S1).
    scope_frame: Cell<(*const (), usize)>,
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
    /// Worker `index`'s context, on its own thread (`thread::worker_main`).
    pub(crate) fn new(shared: &'a Arc<Shared>, index: usize, deque: Owner<TaskRef>) -> WorkerCtx<'a> {
        WorkerCtx {
            shared,
            shared_arc: shared,
            index,
            row: &shared.workers[index].stats,
            own: deque.stealer(),
            deque,
            cache: UnsafeCell::new(shared.pool.cache()),
            strides: coprimes(shared.workers.len()),
            rng: Cell::new(0x9E37_79B9_7F4A_7C15 ^ ((index as u64 + 1) << 17)),
            tick: Cell::new(FAIR_INTERVAL),
            searching: Cell::new(false),
            joins: Cell::new(0),
            take_oldest: Cell::new(false),
            scope_frame: Cell::new((ptr::null(), 0)),
        }
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

    /// This worker's index.
    pub(crate) fn index(&self) -> usize {
        self.index
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
        self.row
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

    pub(crate) fn parker(&self) -> &'a Arc<Parker> {
        &self.shared.workers[self.index].parker
    }

    pub(crate) fn alloc_slot(&self) -> Option<SlotId> {
        // SAFETY: see `cache`: the only access in progress on this thread.
        self.cache.with_mut(|c| unsafe { (*c).try_alloc() })
    }

    /// At exit, after the last task: gives the magazine back to the pool and records in
    /// `slot_frees` how many slots this worker freed, for the orphan protocol. Nothing
    /// counts them one by one: the magazine conserves slots, so frees = allocations (its
    /// row's pool spawns) + slots given to the pool − slots taken from it, once it is empty.
    pub(crate) fn settle_slot_frees(&self) {
        // SAFETY: see `cache`: the only access in progress on this thread.
        let (got, given) = self.cache.with_mut(|c| unsafe {
            (*c).flush();
            (*c).transferred()
        });
        let row = self.row();
        // Relaxed: this thread's own counters; the final accounting reads them after
        // joining this thread.
        let allocs = row.spawned.load(Relaxed) - row.heap_fallbacks.load(Relaxed);
        row.slot_frees.store(allocs + given - got, Relaxed);
    }

    pub(crate) fn free_slot(&self, id: SlotId) {
        // SAFETY: the caller (`Shared::free_task`) frees a slot of this worker's pool whose
        // last task reference is gone, exactly once; nothing else is accessing the cache
        // meanwhile (see `cache`).
        self.cache.with_mut(|c| unsafe { (*c).free(id) })
    }

    /// Pops the newest task of the own deque.
    #[inline]
    pub(crate) fn pop_local(&self) -> Option<TaskRef> {
        self.deque.pop()
    }

    /// Whether the own deque is empty (thieves may be taking from it meanwhile).
    #[inline]
    pub(crate) fn local_is_empty(&self) -> bool {
        self.deque.is_empty()
    }

    /// Pushes a task on the own deque; a full deque first spills half to the injector.
    #[inline]
    pub(crate) fn push_local(&self, t: TaskRef) {
        if let Err(t) = self.deque.push(t) {
            self.spill();
            if let Err(t) = self.deque.push(t) {
                // Only this thread pushes, and the spill made room; thieves only take.
                unreachable_full(t);
            }
        }
    }

    /// Moves the older half of the full own deque to the injection queue as one chain.
    #[cold]
    fn spill(&self) {
        self.spill_n(self.deque.capacity() / 2);
    }

    /// Moves up to `want` of the oldest own tasks to the injection queue as one chain;
    /// returns how many moved.
    #[cold]
    fn spill_n(&self, want: usize) -> u64 {
        let (mut first, mut last): (*mut Header, *mut Header) = (ptr::null_mut(), ptr::null_mut());
        let mut moved = 0u64;
        while moved < want as u64 {
            match self.own.steal() {
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

    /// Before this worker blocks in a wait without helping: every task of its own deque
    /// goes to the injection queue, and K1 makes sure somebody looks, so nothing queued
    /// here waits for this thread.
    #[cold]
    pub(crate) fn hand_off_queued(&self) {
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

    /// The own deque's oldest task, as a thief takes it.
    fn pop_oldest(&self) -> Option<TaskRef> {
        loop {
            match self.own.steal() {
                Steal::Success(t) => return Some(t),
                Steal::Retry => continue,
                Steal::Empty => return None,
            }
        }
    }

    /// Steps 1–3 of the module docs, without idling.
    #[inline(always)]
    pub(crate) fn find_task(&self) -> Option<TaskRef> {
        if self.take_oldest.replace(false) && self.joins.get() == 0 {
            if let Some(t) = self.pop_oldest() {
                return Some(t);
            }
        }
        // Counts down to the next fairness turn: cheaper than a modulo per task.
        let tick = self.tick.get() - 1;
        self.tick.set(tick);
        if tick == 0 {
            self.tick.set(FAIR_INTERVAL);
        }
        if tick == 0 {
            // Timers fire inside joins too: a woken task only lands on this deque.
            self.fire_timers();
        }
        if tick == 0 && self.joins.get() == 0 {
            if let Some(t) = self.pop_injector() {
                return Some(t);
            }
            if let Some(t) = self.pop_oldest() {
                return Some(t);
            }
        }
        if let Some(t) = self.deque.pop() {
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
        let room = self.deque.capacity() - self.deque.len();
        let mut first = None;
        let r = self.shared.injector.pop_batch(room.min(INJECT_BATCH) + 1, |p| {
            // SAFETY: every node in the injector is a task reference given up by
            // `into_raw` (external spawn or spill); the queue hands each out once.
            let t = unsafe { TaskRef::from_raw(p) };
            if first.is_none() {
                first = Some(t);
            } else if let Err(t) = self.deque.push(t) {
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
            if victim != self.index {
                Row::bump_owned(&row.steal_attempts, 1);
                let before = self.deque.len();
                loop {
                    match self.shared.workers[victim].stealer.steal_batch(&self.deque) {
                        Steal::Success(t) => {
                            let moved = self.deque.len().saturating_sub(before) as u64;
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
        if self.shared.sleep.stop_searching() && self.shared.has_visible_work() {
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
                    if let Some(p) = payload {
                        Row::bump_owned(&row.panicked, 1);
                        self.shared.report_panic(p);
                    }
                    // Every task a worker runs belongs to its own scheduler, so a pool
                    // task goes straight back to this worker's magazine.
                    debug_assert!(ptr::eq(dead.owner(), self.shared.as_owner()));
                    match dead.home() {
                        Home::Pool(index) => {
                            self.free_slot(SlotId::from_raw(index));
                        }
                        _ => Shared::free_task_on(dead, Some(self)),
                    }
                }
                Err(t) => self.run_task_general(t),
            }
        } else {
            self.run_task_general(t);
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
        let row = self.row();
        // Relaxed: set once by a timed-out shutdown; a task that starts just before it is
        // seen simply runs, which the shutdown contract allows.
        let abandon = self.shared.abandon.load(Relaxed);
        // Counted before the task completes, so a joiner sees its own task counted.
        let ran = t.run(abandon, |panicked| {
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
        if self.joins.get() > MAX_NESTED_WAITS && self.shared.try_block_waiter() {
            let r = self.wait_blocked(done, deadline, before_park);
            self.shared.unblock_waiter();
            return r;
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

    /// `run_until` past [`MAX_NESTED_WAITS`]: hands the own deque to the others and
    /// parks until `done()` (module docs, "Nested waits"). The worker stays out of the
    /// sleep protocol (it is busy with a task), so no spawn's wake-up is spent on it.
    #[cold]
    fn wait_blocked(
        &self,
        done: &dyn Fn() -> bool,
        deadline: Option<Instant>,
        before_park: &dyn Fn() -> bool,
    ) -> bool {
        Row::bump_owned(&self.row().blocked_waits, 1);
        // Once: only this thread pushes on its deque, and it runs nothing until it returns.
        self.hand_off_queued();
        loop {
            if done() {
                return true;
            }
            if deadline.is_some_and(|d| Instant::now() >= d) {
                return false;
            }
            if before_park() {
                self.parker().park_until(deadline)
            }
        }
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
        let deadline = self.timer_deadline(deadline);
        // K3.
        let was_searching = self.searching.replace(false);
        sleep.prepare_sleep(self.index, was_searching);
        if self.shared.has_visible_work() || give_up() || self.shared.is_closed() {
            sleep.cancel_sleep(self.index);
            self.searching.set(true);
            return None;
        }
        Row::bump_owned(&self.row().parks, 1);
        self.parker().park_until(deadline);
        self.disarm_timers();
        // K5 (or woken by K2, which already counted us).
        sleep.cancel_sleep(self.index);
        self.searching.set(true);
        self.fire_timers();
        None
    }
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
                // SAFETY: the last reference is gone: nobody else uses the slot, freed once.
                unsafe { shared.pool.free(SlotId::from_raw(index)) };
                shared.count_external_free();
            }
            Home::Stack => contain::fatal("a stack job was freed as a task"),
        }
    }
}
