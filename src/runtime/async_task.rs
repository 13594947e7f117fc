//! Async tasks in the runtime: the task waker, where a wake goes, a worker's poll turn,
//! the cooperative budget, `block_on`, and the shutdown sweep. The state steps they use
//! (A1–A7) are in `task/future.rs`.
//!
//! # The waker
//!
//! A task's `Waker` is the task's header pointer with a static vtable: clone adds a
//! reference (A6's clone), drop releases one (T5), `wake_by_ref` is A4, `wake` is A5. No
//! allocation, ever. A waker keeps its task's memory alive, and the orphan protocol
//! (`shared.rs`) keeps the scheduler's memory alive while any task is: so a waker may
//! outlive its scheduler. Once the scheduler has shut down every async task is complete
//! (the sweep below), so a stale wake does nothing and a stale drop only frees.
//!
//! # Where a wake goes
//!
//! A wake that makes a task runnable queues it (`schedule`): on a worker of the task's own
//! scheduler, into that worker's wake slot (`next_slot.rs`; the task it displaces goes onto
//! the deque): the woken task runs next, hot in cache, and other workers take it only once
//! it has waited there for a grace period (`worker.rs`, step 3). Then K1; from anywhere else, onto the injection queue through the external spawn path (L1–L3,
//! then K1). A task woken *while it runs* (a `yield_now`, or a wake racing its poll) is
//! queued again by its poller when the poll ends (A3), and the worker then takes its next
//! task from the *oldest* end of its deque: a task that keeps waking itself goes to the
//! back of the line instead of starving the tasks queued behind it. Two tasks that wake
//! each other run back to back through the slot; the fairness step (every `FAIR_INTERVAL`th task, `worker.rs`)
//! bounds how long they delay the rest of the deque and the injection queue.
//!
//! # The cooperative budget
//!
//! Each poll of a task gets [`BUDGET`] operations on filch's own resources (awaiting a
//! `JoinHandle`, a timer). When it is spent, the next such operation returns `Pending` and
//! wakes the task at once, so a task that keeps finding its resources ready still yields
//! to the others. Outside a filch task poll the budget is unlimited.
//!
//! # Shutdown
//!
//! Once a scheduler starts shutting down, async tasks are not polled any more: a popped
//! task's future is dropped (A1), a poll that returns `Pending` drops it (A3), and wakes no
//! longer queue anything. What is left — futures waiting for a wake that may never come —
//! is found by the *sweep* (A7), which visits every pool slot and every heap async task:
//! right after the scheduler closes, before any worker parks or exits while shutting
//! down, and once more when the last party leaves (D4). Each future is dropped exactly
//! once, by whoever wins its state word; its handle's join reports `ShutDown`.

use std::cell::{Cell, RefCell};
use std::future::Future;
use std::mem::ManuallyDrop;
use std::pin::pin;
use std::ptr::NonNull;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};
use std::time::Instant;

use crate::lockfree::park::Parker;
use crate::runtime::shared::Shared;
use crate::runtime::stats::Row;
use crate::runtime::timer::TimerKey;
use crate::runtime::worker::{self, WorkerCtx};
use crate::shim::atomic::{fence, AtomicBool, Ordering::*};
use crate::shim::Arc;
use crate::task::future::{AfterPoll, Claim};
use crate::task::{Header, TaskError, TaskRef};

/// Operations on filch's resources per task poll before they return `Pending` (module
/// docs, "The cooperative budget").
pub const BUDGET: u32 = 128;

const UNLIMITED: u32 = u32::MAX;

#[cfg(not(loom))]
std::thread_local! {
    static LEFT: Cell<u32> = const { Cell::new(UNLIMITED) };
    /// The scheduler whose `block_on` this thread is in, off its workers.
    static ENTERED: Cell<*const Shared> = const { Cell::new(std::ptr::null()) };
}

#[cfg(loom)]
loom::thread_local! {
    static LEFT: Cell<u32> = Cell::new(UNLIMITED);
    static ENTERED: Cell<*const Shared> = Cell::new(std::ptr::null());
}

/// Spends one unit of the current task poll's budget; when none is left, wakes the task
/// and returns `Pending` (module docs).
#[inline]
pub(crate) fn poll_proceed(cx: &mut Context<'_>) -> Poll<()> {
    LEFT.with(|left| match left.get() {
        UNLIMITED => Poll::Ready(()),
        0 => {
            cx.waker().wake_by_ref();
            Poll::Pending
        }
        n => {
            left.set(n - 1);
            Poll::Ready(())
        }
    })
}

/// Runs one task poll with a fresh budget, restoring the enclosing one after (a
/// `block_on` inside a poll nests).
#[inline]
fn with_budget<R>(f: impl FnOnce() -> R) -> R {
    let prev = LEFT.with(|l| l.replace(BUDGET));
    let r = f();
    LEFT.with(|l| l.set(prev));
    r
}

/// The scheduler this thread entered with `Scheduler::block_on`, if any (off its workers).
pub(crate) fn with_entered<R>(f: impl FnOnce(Option<&Shared>) -> R) -> R {
    let p = ENTERED.with(Cell::get);
    // SAFETY: non-null only inside `block_on_in`, whose caller keeps the `Shared` alive for
    // the whole call, or on a spare thread, which holds an `Arc` of it for its whole life
    // (`thread::spare_main`); the reference does not escape `f`.
    f(unsafe { p.as_ref() })
}

/// The scheduler of the current worker, else the one this thread's `block_on` entered.
pub(crate) fn current_shared() -> Option<Arc<Shared>> {
    worker::with_current(|c| c.map(|c| c.shared_arc().clone())).or_else(|| {
        let p = ENTERED.with(Cell::get);
        (!p.is_null()).then(|| {
            // SAFETY: an entered `Shared` is the contents of the `Arc` its `Scheduler`
            // holds (or, for a `Handle`, that the handle's unit keeps a strong count of:
            // `shared.rs`, "Handle units") for the whole `block_on`, or a spare thread for
            // its life (so `p` is that `Arc`'s pointer and the count is not zero); we add a
            // count for the `Arc` we build from it.
            unsafe {
                Arc::increment_strong_count(p);
                Arc::from_raw(p)
            }
        })
    })
}

/// Whether `w` is one of the runtime's own wakers (an async task's, or a blocked thread's
/// parker): its clone, wake and drop run no user code and never panic, so a channel
/// completer calls them without containment (`chan/waiter.rs`).
#[inline]
pub(crate) fn is_own_waker(w: &Waker) -> bool {
    std::ptr::eq(w.vtable(), &TASK_WAKER) || crate::lockfree::park::is_parker_waker(w)
}

static TASK_WAKER: RawWakerVTable =
    RawWakerVTable::new(waker_clone, waker_wake, waker_wake_by_ref, waker_drop);

fn header(p: *const ()) -> NonNull<Header> {
    match NonNull::new(p.cast_mut().cast()) {
        Some(h) => h,
        None => crate::contain::fatal("a task waker with a null task"),
    }
}

unsafe fn waker_clone(p: *const ()) -> RawWaker {
    // SAFETY: a task waker's data is a header pointer with a reference held by the waker
    // being cloned; we borrow it (no release) to add one.
    let t = unsafe { TaskRef::from_raw(header(p)) };
    let new = t.clone_ref();
    let _ = t.into_raw();
    RawWaker::new(new.into_raw().as_ptr().cast_const().cast(), &TASK_WAKER)
}

unsafe fn waker_wake(p: *const ()) {
    // SAFETY: the waker's own reference, consumed by this call (A5).
    let t = unsafe { TaskRef::from_raw(header(p)) };
    match t.wake_step() {
        Ok(t) => schedule(t),
        Err(Some(dead)) => Shared::free_task(dead),
        Err(None) => {}
    }
}

unsafe fn waker_wake_by_ref(p: *const ()) {
    // SAFETY: the waker's reference, borrowed: given back with `into_raw` below (A4).
    let t = unsafe { TaskRef::from_raw(header(p)) };
    let queued = t.wake_by_ref_step();
    let _ = t.into_raw();
    if let Some(q) = queued {
        schedule(q);
    }
}

unsafe fn waker_drop(p: *const ()) {
    // SAFETY: the waker's own reference, released here (T5).
    let t = unsafe { TaskRef::from_raw(header(p)) };
    if let Some(dead) = t.release() {
        Shared::free_task(dead);
    }
}

/// The task's waker for its own poll, borrowing the poller's reference: not dropped.
fn borrowed_waker(t: &TaskRef) -> ManuallyDrop<Waker> {
    let raw = RawWaker::new(t.header() as *const Header as *const (), &TASK_WAKER);
    // SAFETY: the vtable's contract holds for a header pointer with a live reference; the
    // `ManuallyDrop` keeps this borrowed copy from releasing the poller's reference.
    ManuallyDrop::new(unsafe { Waker::from_raw(raw) })
}

/// Drops a reference a queue will not take after all.
fn release(t: TaskRef, ctx: Option<&WorkerCtx<'_>>) {
    if let Some(dead) = t.release() {
        Shared::free_task_on(dead, ctx);
    }
}

/// Queues a task a wake made runnable (module docs, "Where a wake goes"). `t` is the
/// queue entry's reference.
pub(crate) fn schedule(t: TaskRef) {
    // SAFETY: `t` holds a reference to the task, and the orphan protocol keeps the task's
    // scheduler state alive until every task it created is freed (`shared.rs`).
    let shared = unsafe { &*t.header().owner.cast::<Shared>() };
    worker::with_current(|ctx| {
        let ctx = ctx.filter(|c| c.is_of(shared));
        if shared.is_shutting_down() {
            // Not polled any more: the sweep drops the future (module docs, "Shutdown").
            return release(t, ctx);
        }
        match ctx {
            Some(c) => {
                c.push_woken(t);
                if shared.workers.len() > 1 {
                    shared.notify();
                }
            }
            None => {
                if let Err(t) = shared.inject_task(t) {
                    release(t, None);
                }
            }
        }
    });
}

impl Shared {
    /// Queues an async task from outside its workers (L1–L3, then K1). `Err` gives it
    /// back when the scheduler is shut down.
    pub(crate) fn inject_task(&self, t: TaskRef) -> Result<(), TaskRef> {
        if !self.enter_external() {
            return Err(t);
        }
        // L2. SAFETY: `t` is a live task reference that we give to the queue.
        unsafe { self.injector.push(t.into_raw()) };
        Row::bump_shared(&self.external.injected, 1);
        self.leave_external();
        self.notify();
        Ok(())
    }

    /// A7 (module docs, "Shutdown"): drops the future of every async task that is not
    /// complete and not being polled, and marks those being polled so that their poll's
    /// end drops them. `ctx`: the current worker of this scheduler, if the caller is one
    /// still counting its own frees (`None` for the settle at D4). Returns how many
    /// futures this call dropped.
    pub(crate) fn sweep_async(&self, ctx: Option<&WorkerCtx<'_>>) -> usize {
        if !self.async_used() {
            return 0;
        }
        // Acquire fence: our caller saw the shutdown (L4), perhaps with a Relaxed load;
        // pairs with L4's Release, so that the shutdown happens before each claim below,
        // whose Release passes it on to a poller that finds `ABORT` (A7, A3).
        fence(Acquire);
        let mut dropped = 0;
        for i in 0..self.pool.capacity() as u32 {
            // SAFETY: `i` is below the capacity. (The slot is not ours: `slot_addr`, which
            // takes no access to it, and only its state word is touched before a reference.)
            let slot = unsafe { self.pool.slot_addr(crate::lockfree::pool::SlotId::from_raw(i)) };
            // SAFETY: every slot's header was written by `Shared::new` (`prepare_slot`) and
            // the pool's memory lives as long as `self`.
            if let Some(t) = unsafe { TaskRef::sweep_ref(slot.cast::<Header>()) } {
                dropped += self.sweep_one(t, ctx) as usize;
            }
        }
        for t in self.heap_async_refs() {
            dropped += self.sweep_one(t, ctx) as usize;
        }
        dropped
    }

    fn sweep_one(&self, t: TaskRef, ctx: Option<&WorkerCtx<'_>>) -> bool {
        let claimed = t.sweep_claim();
        if claimed {
            // SAFETY: the sweep's claim gave us RUNNING (A7).
            unsafe { t.abandon_claimed(TaskError::ShutDown) };
            match ctx {
                Some(c) => Row::bump_owned(&c.row().abandoned, 1),
                None => Row::bump_shared(&self.external.abandoned, 1),
            }
            // SAFETY: claimed, output written.
            if let Some(p) = unsafe { t.complete(true) } {
                self.report_panic(p);
            }
        }
        release(t, ctx);
        claimed
    }
}

impl WorkerCtx<'_> {
    /// A worker's turn with a popped async task: A1, then A2 and A3, or the drop of an
    /// aborted or shut-down task's future.
    #[inline(never)]
    pub(crate) fn run_async(&self, t: TaskRef) {
        let shared = self.shared();
        match t.claim_poll(shared.is_shutting_down()) {
            Claim::Skip => release(t, Some(self)),
            Claim::Drop => self.drop_future(t),
            Claim::Poll => {
                let waker = borrowed_waker(&t);
                let mut cx = Context::from_waker(&waker);
                // SAFETY: A1 gave us RUNNING; the task is async.
                let done = with_budget(|| unsafe { t.poll_claimed(&mut cx) });
                let row = self.row();
                match done {
                    Some(panicked) => {
                        Row::bump_owned(&row.completed, 1);
                        if panicked {
                            Row::bump_owned(&row.panicked, 1);
                        }
                        // SAFETY: RUNNING is ours and the output is written (A2).
                        if let Some(p) = unsafe { t.complete(false) } {
                            shared.report_panic(p);
                        }
                        release(t, Some(self));
                    }
                    // SAFETY: RUNNING is ours from A1; `t` is the popped queue reference.
                    None => match unsafe { t.after_pending(shared.is_shutting_down()) } {
                        AfterPoll::Requeue(t) => {
                            self.push_local(t);
                            self.take_oldest_next();
                            if shared.workers.len() > 1 {
                                shared.notify();
                            }
                        }
                        AfterPoll::Drop(t) => self.drop_future(t),
                        AfterPoll::Idle(Some(dead)) => Shared::free_task_on(dead, Some(self)),
                        AfterPoll::Idle(None) => {}
                    },
                }
            }
        }
    }

    /// Drops the future of a task whose `RUNNING` we hold (abort, or shutdown), completes
    /// it as cancelled and drops our reference.
    #[cold]
    fn drop_future(&self, t: TaskRef) {
        let shared = self.shared();
        let stopping = shared.is_shutting_down();
        let error = if stopping { TaskError::ShutDown } else { TaskError::Cancelled };
        // SAFETY: RUNNING is ours (A1 or A3 said `Drop`).
        unsafe { t.abandon_claimed(error) };
        let row = self.row();
        Row::bump_owned(if stopping { &row.abandoned } else { &row.cancelled }, 1);
        // SAFETY: claimed, output written.
        if let Some(p) = unsafe { t.complete(true) } {
            shared.report_panic(p);
        }
        release(t, Some(self));
    }
}

/// What a `block_on` waits on: a flag the waker sets, and the parker it unparks.
struct Signal {
    woken: AtomicBool,
    parker: Arc<Parker>,
}

static SIGNAL_WAKER: RawWakerVTable =
    RawWakerVTable::new(signal_clone, signal_wake, signal_wake_by_ref, signal_drop);

unsafe fn signal_clone(p: *const ()) -> RawWaker {
    // SAFETY: `p` came from `Arc::into_raw` of a live `Arc<Signal>` (the waker being cloned).
    unsafe { Arc::increment_strong_count(p.cast::<Signal>()) };
    RawWaker::new(p, &SIGNAL_WAKER)
}

unsafe fn signal_wake(p: *const ()) {
    // SAFETY: as in `signal_clone`; this consumes the waker's count.
    unsafe { signal_wake_by_ref(p) };
    // SAFETY: as above.
    unsafe { signal_drop(p) };
}

unsafe fn signal_wake_by_ref(p: *const ()) {
    // SAFETY: as in `signal_clone`.
    let s = unsafe { &*p.cast::<Signal>() };
    // Release: the waker's writes happen before the blocked thread's Acquire swap.
    s.woken.store(true, Release);
    s.parker.unpark();
}

unsafe fn signal_drop(p: *const ()) {
    // SAFETY: as in `signal_clone`; gives the waker's count back.
    drop(unsafe { Arc::from_raw(p.cast::<Signal>()) });
}

/// Runs `fut` to completion on this thread (`filch::block_on`, `Scheduler::block_on`).
/// `enter`: the scheduler whose free functions and timers the future uses when this
/// thread is not one of its workers.
pub(crate) fn block_on_in<F: Future>(enter: Option<&Shared>, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    worker::with_current(|ctx| {
        let parker = match ctx {
            Some(c) => c.parker().clone(),
            None => worker::with_thread_parker(Arc::clone),
        };
        let signal = Arc::new(Signal { woken: AtomicBool::new(false), parker });
        let raw = RawWaker::new(Arc::into_raw(signal.clone()).cast(), &SIGNAL_WAKER);
        // SAFETY: the vtable's contract holds for a pointer from `Arc::into_raw`.
        let waker = unsafe { Waker::from_raw(raw) };
        let mut cx = Context::from_waker(&waker);
        let _entered = ctx.is_none().then_some(enter).flatten().map(Entered::new);
        loop {
            if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                return v;
            }
            // Acquire: pairs with the waker's Release store.
            if signal.woken.swap(false, Acquire) {
                continue;
            }
            match ctx {
                Some(c) => {
                    // Acquire: pairs with the waker's Release store.
                    let woken = || signal.woken.load(Acquire);
                    c.in_join(|| c.run_until(&woken, None, &|| true));
                }
                None => {
                    // Acquire: pairs with the waker's Release store.
                    while !signal.woken.load(Acquire) {
                        signal.parker.park();
                    }
                }
            }
            // Relaxed: the wait above saw `true` with Acquire; this only re-arms the flag
            // before the next poll, which any later wake sets again.
            signal.woken.store(false, Relaxed);
        }
    })
}

/// Makes a scheduler this thread's entered one (`with_entered`) until dropped, even if the
/// future panics.
pub(crate) struct Entered(*const Shared);

impl Entered {
    pub(crate) fn new(s: &Shared) -> Entered {
        Entered(ENTERED.with(|e| e.replace(s)))
    }
}

impl Drop for Entered {
    fn drop(&mut self) {
        ENTERED.with(|e| e.set(self.0));
    }
}

impl Shared {
    /// Registers a sleep (TM1, `timer.rs`) on the current worker's shard, or off the
    /// workers on the next shard in turn; unparks the shard's worker when it sleeps past
    /// the new deadline.
    pub(crate) fn timer_insert(&self, deadline: Instant, waker: Waker) -> TimerKey {
        let shard = worker::with_current(|c| match c.filter(|c| c.is_of(self)) {
            Some(c) => c.index(),
            None => self.timers.any_shard(),
        });
        let (key, unpark) = self.timers.insert(shard, deadline, waker);
        if unpark {
            self.unpark_role(shard);
        }
        key
    }
}

#[cfg(not(loom))]
std::thread_local! {
    /// Fired wakers, woken after the wheel's lock is released (kept to reuse its buffer).
    static FIRED: RefCell<Vec<Waker>> = const { RefCell::new(Vec::new()) };
}

#[cfg(loom)]
loom::thread_local! {
    static FIRED: RefCell<Vec<Waker>> = RefCell::new(Vec::new());
}

impl WorkerCtx<'_> {
    /// Fires this worker's due timers (the fairness step, and after a park).
    #[inline]
    pub(crate) fn fire_timers(&self) {
        if self.shared().timers.has_any(self.index()) {
            self.fire(false);
        }
    }

    /// Fires due timers: this worker's own, and with `others`, the due shards of other
    /// workers whose locks are free. Each waker is woken here, so a filch task it wakes
    /// is queued on this worker (its wake slot, or its deque).
    fn fire(&self, others: bool) {
        let timers = &self.shared().timers;
        let now = Instant::now();
        let mut buf = FIRED.with(|b| std::mem::take(&mut *b.borrow_mut()));
        timers.expire(self.index(), now, true, &mut buf);
        if others {
            for i in (0..timers.len()).filter(|&i| i != self.index()) {
                timers.expire(i, now, false, &mut buf);
            }
        }
        for w in buf.drain(..) {
            // A filch waker never unwinds; a foreign one is user code.
            if let Err(p) = crate::contain::call(move || w.wake()) {
                self.shared().report_panic(p);
            }
        }
        FIRED.with(|b| *b.borrow_mut() = buf);
    }

    /// TM2 before parking: fires what is due (any shard), arms this worker's shard, and
    /// returns `deadline` bounded by the next timer.
    pub(crate) fn timer_deadline(&self, deadline: Option<Instant>) -> Option<Instant> {
        self.fire(true);
        let next = self.shared().timers.arm(self.index());
        match (deadline, next) {
            (Some(d), Some(n)) => Some(d.min(n)),
            (d, n) => d.or(n),
        }
    }

    /// TM3 after the park.
    pub(crate) fn disarm_timers(&self) {
        self.shared().timers.disarm(self.index());
    }
}
