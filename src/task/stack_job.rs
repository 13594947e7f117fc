//! Stack jobs and latches: work that lives on its creator's stack, not in the pool.
//!
//! [`crate::join`]'s second closure, and the whole body of a `join`, `scope` or
//! `parallel_for` called from outside the scheduler, become a [`StackJob`]: a task
//! [`Header`] (so the deques and the injection queue carry it like any task; its `home` is
//! `Home::Stack`) followed by the closure, a slot for its result, and a [`Latch`]. No pool
//! slot, no allocation, no reference count: the creator keeps the job alive by not
//! returning until it has either popped the job back from its own deque (and runs it
//! inline) or seen the latch set by whoever executed it.
//!
//! # The latch
//!
//! | value | name | meaning |
//! |-------|------|---------|
//! | 0 | `PENDING` | not executed; the waiter is not about to park |
//! | 1 | `SLEEPY` | not executed; the waiter may park and must be unparked |
//! | 2 | `SET` | executed: the result is written; the waiter may return and free the job |
//!
//! - **J1 (execute)**: whoever takes the job from a queue takes the closure, runs it under
//!   `catch_unwind`, and writes the result.
//! - **J2 (set)**: it clones the waiter's parker handle, *then* swaps the latch to `SET`
//!   (Release: publishes the result to J4), then unparks the clone if the swap saw `SLEEPY`.
//!   After the swap it touches nothing of the job: the waiter may already be gone, and
//!   with it the job's memory (the mutant `LatchParkerBeforeSet` reads the parker after the
//!   swap; the loom model `latch_*` catches the use of freed memory).
//! - **J3 (prepare to park)**: before parking, the waiter CASes `PENDING → SLEEPY`; a CAS
//!   that finds `SET` means: do not park. Swap and CAS are RMWs of one word, so either J2
//!   sees `SLEEPY` (and unparks: the parker keeps the token if the waiter has not parked
//!   yet) or J3 sees `SET` (and does not park). No wake-up is lost.
//! - **J4 (done)**: the waiter's Acquire load sees `SET`; the result is readable.
//!
//! The waiter's parker is its worker's (alive as long as the scheduler, which outlives
//! every queue entry) or, off the scheduler, the thread's own; the clone in J2 keeps
//! either alive until the unpark is done. A worker parker can get a spurious token this
//! way (the waiter saw `SET` before J2's unpark); the worker loop re-checks after every
//! park, so that costs at most one extra loop turn.

use std::any::Any;
use std::marker::PhantomData;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};

use crate::lockfree::park::Parker;
use crate::shim::atomic::{AtomicUsize, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::{Arc, UnsafeCell};
use crate::task::{Header, TaskRef, Vtable};

const PENDING: usize = 0;
const SLEEPY: usize = 1;
const SET: usize = 2;

/// A one-shot signal from an executor to one waiting thread (module docs, J2–J4).
pub(crate) struct Latch {
    state: AtomicUsize,
    /// The waiter's parker. Written at creation, read by the setter before J2's swap. A
    /// cell so that loom sees the read, and can see it race with the waiter's reuse of
    /// the memory when the mutant moves it after the swap.
    parker: UnsafeCell<*const Arc<Parker>>,
}

impl Latch {
    /// A latch whose waiter parks on `parker` (which must outlive the wait).
    pub(crate) fn new(parker: &Arc<Parker>) -> Latch {
        Latch { state: AtomicUsize::new(PENDING), parker: UnsafeCell::new(parker) }
    }

    /// J4: whether the latch is set.
    #[inline]
    pub(crate) fn probe(&self) -> bool {
        // J4, Acquire: pairs with J2's Release swap; a `true` makes the result readable.
        self.state.load(Acquire) == SET
    }

    /// J3: the waiter is about to park. `false`: the latch is set, do not park.
    pub(crate) fn prepare_park(&self) -> bool {
        // J3, Relaxed: nothing is published; the swap/CAS order on this one word decides
        // who sees whom (module docs), and the parker carries its own ordering.
        match self.state.compare_exchange(PENDING, SLEEPY, Relaxed, Relaxed) {
            Ok(_) => true,
            Err(s) => s == SLEEPY,
        }
    }

    /// J2: sets the latch and wakes the waiter.
    ///
    /// # Safety
    /// `this` points to a live latch that nobody has set yet; the caller does not touch
    /// whatever holds it after this call (the waiter may free it as soon as it is set).
    pub(crate) unsafe fn set(this: *const Latch) {
        let mutant = !mutation::keep(Site::LatchParkerBeforeSet);
        // SAFETY: the latch is live and unset (caller), so the waiter is still waiting and
        // its parker handle is alive.
        let parker = (!mutant).then(|| unsafe { (*this).parker.with(|p| (**p).clone()) });
        // J2, Release: publishes the result written before this call; pairs with J4.
        // SAFETY: as above; this is our last access in correct code.
        let prev = unsafe { (*this).state.swap(SET, mutation::ord(Site::LatchSetRelease, Release)) };
        if prev == SLEEPY {
            match parker {
                Some(p) => p.unpark(),
                // The mutant: reads the parker handle after the swap. A model sees the read
                // race with the waiter reusing the memory.
                // SAFETY: none — this is the deliberate bug the model must catch.
                None => unsafe { (*this).parker.with(|p| (**p).unpark()) },
            }
        }
    }

    /// The waiter reuses the latch's memory (loom models: stands for the stack frame
    /// being reused after the waiter returned).
    #[cfg(loom)]
    pub(crate) fn scribble(&self) {
        debug_assert!(self.probe());
        // SAFETY: set (J4): the setter touches the latch no more.
        self.parker.with_mut(|p| unsafe { *p = std::ptr::null() });
    }

    /// Waits until the latch is set, parking `parker` (the thread's own, which this latch
    /// was created with) between looks. A worker waits with `worker::wait_latch` instead,
    /// running other tasks meanwhile.
    pub(crate) fn wait_parked(&self, parker: &Parker) {
        while !self.probe() {
            if self.prepare_park() {
                parker.park();
            }
        }
    }
}

/// A job on its creator's stack: header first, so a pointer to it is a task pointer.
#[repr(C)]
pub(crate) struct StackJob<F, R> {
    header: Header,
    latch: Latch,
    /// The closure. Taken once: by the executor (J1), or by the creator after popping the
    /// job back from its own deque (then nobody else can reach it).
    func: UnsafeCell<Option<F>>,
    /// The result. Written by the executor before J2; read by the creator after J4.
    result: UnsafeCell<Option<std::thread::Result<R>>>,
    _marker: PhantomData<R>,
}

struct StackVtable<F, R>(PhantomData<(F, R)>);

impl<F: FnOnce() -> R + Send, R: Send> StackVtable<F, R> {
    const VTABLE: Vtable = Vtable::stack(execute::<F, R>);
}

impl<F: FnOnce() -> R + Send, R: Send> StackJob<F, R> {
    /// A job running `f`, waited for on `parker`, queued on the scheduler `owner`.
    pub(crate) fn new(f: F, owner: *const (), parker: &Arc<Parker>) -> Self {
        StackJob {
            header: Header::for_stack_job(&StackVtable::<F, R>::VTABLE, owner),
            latch: Latch::new(parker),
            func: UnsafeCell::new(Some(f)),
            result: UnsafeCell::new(None),
            _marker: PhantomData,
        }
    }

    /// The queue entry for this job.
    ///
    /// # Safety
    /// The job stays where it is, alive, until it is popped back by its creator or its
    /// latch is set; the entry is queued at most once.
    pub(crate) unsafe fn as_task_ref(&self) -> TaskRef {
        // SAFETY: a stack job's header is the start of a live, pinned (caller) job; a
        // `TaskRef` to it carries no count (`Home::Stack`).
        unsafe { TaskRef::from_raw(NonNull::from(&self.header)) }
    }

    /// Whether `t` is this job's queue entry.
    pub(crate) fn is(&self, t: &TaskRef) -> bool {
        ptr::eq(t.header(), &self.header)
    }

    pub(crate) fn latch(&self) -> &Latch {
        &self.latch
    }

    /// Runs the closure on the creator's thread, after the creator popped the job back:
    /// nobody else can reach it now. A panic unwinds to the caller.
    pub(crate) fn run_inline(&self) -> R {
        // SAFETY: popped back by its creator: no executor has it or will get it.
        let f = self.func.with_mut(|p| unsafe { (*p).take() });
        match f {
            Some(f) => f(),
            None => already_taken(),
        }
    }

    /// The result, once the latch is set (J4); a panic is re-raised here.
    pub(crate) fn take_result(&self) -> R {
        debug_assert!(self.latch.probe());
        // SAFETY: the latch is set (J4 saw it with Acquire): the executor wrote the result
        // and touches the job no more.
        let r = self.result.with_mut(|p| unsafe { (*p).take() });
        match r {
            Some(Ok(v)) => v,
            Some(Err(p)) => resume_unwind(p),
            None => already_taken(),
        }
    }

    /// Like [`StackJob::take_result`], but hands a panic back instead of raising it.
    pub(crate) fn take_result_caught(&self) -> Result<R, Box<dyn Any + Send>> {
        debug_assert!(self.latch.probe());
        // SAFETY: as in `take_result`.
        let r = self.result.with_mut(|p| unsafe { (*p).take() });
        r.unwrap_or_else(|| already_taken())
    }
}

/// J1 + J2: the vtable's `run` for a stack job.
///
/// # Safety
/// `h` is the header of a live `StackJob<F, R>` taken from a queue (once).
unsafe fn execute<F: FnOnce() -> R + Send, R: Send>(h: NonNull<Header>) -> bool {
    let job = h.as_ptr().cast::<StackJob<F, R>>().cast_const();
    // SAFETY: `repr(C)` with the header first: `h` is the job's address; the job is live
    // and only we (its one executor) touch `func` and `result` until J2.
    let f = unsafe { (*job).func.with_mut(|p| (*p).take()) };
    let Some(f) = f else { already_taken() };
    let out = catch_unwind(AssertUnwindSafe(f));
    let panicked = out.is_err();
    // SAFETY: as above; published by J2 below.
    unsafe { (*job).result.with_mut(|p| *p = Some(out)) };
    // SAFETY: live and unset (only we set it); we touch the job no more.
    unsafe { Latch::set(ptr::addr_of!((*job).latch)) };
    panicked
}

#[cold]
#[inline(never)]
fn already_taken() -> ! {
    crate::contain::fatal("a stack job ran twice");
}
