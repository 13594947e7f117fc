//! `scope`: tasks that may borrow from the enclosing stack.
//!
//! # Protocol
//!
//! - **S1 (count)**: `pending` starts at 1, the body's own count. Each `Scope::spawn`
//!   counts the new task *before* it can run (Relaxed: the RMWs on `pending` are totally
//!   ordered, and the add precedes the push in program order, so no decrement can
//!   overtake it). On a worker, a running scope task (and the body) holds a *frame* in the
//!   worker context: the scope's address and a credit of counts it reserved in advance.
//!   A spawn into the frame's scope takes one unit of credit for the child instead of an
//!   RMW, reserving [`CREDIT_CHUNK`] more by one `fetch_add` when the credit is spent;
//!   a spawn into any other scope, or off the workers, adds one as before. The credit is
//!   part of `pending` from its reservation on, so `pending` never undercounts: it is the
//!   body's count, plus one per task not yet through S3, plus every frame's credit.
//! - **S2 (task)**: a scope task is a detached pool task (no handle, so it runs on the F1
//!   path) owning a [`ScopeTask`]: the closure plus an S3 guard ([`ScopeDone`]). Dropped
//!   unrun (cancelled, a timed-out shutdown), it drops the closure *first* and then the
//!   guard. Run, the closure is consumed by the call and the guard is the task's output,
//!   which the worker drops after counting the task in `Stats::completed` (the F1
//!   counted path, `TaskRef::run_unread_counted`). Either way
//!   nothing the closure borrows is touched after S3.
//! - **S3 (done)**: one AcqRel decrement of the task's own count plus the credit its
//!   frame did not hand out (frames end with their task, restoring the frame below, so no
//!   credit outlives it). Release: the task's effects (its writes through borrows) happen
//!   before the scope returns; Acquire (by the last decrementer): every earlier
//!   decrementer's effects do too. The last one sets the latch (`stack_job.rs`, J2), whose
//!   Release passes all of it to the waiting body (J4).
//!
//! Credit is fungible within a scope: a task run on top of a waiting task of the same
//! scope starts its own frame and restores the one below when it ends; a `join` half run
//! here without a frame of its own spends the frame it finds, which counts for the same
//! scope. Either way each unit pays for exactly one child, and whatever is left returns in
//! its owner's S3. With one-level fan-outs of up to `CREDIT_CHUNK` children (skynet's 10),
//! a task costs one RMW (its S3) instead of two.
//! - **S4 (wait)**: after the body returns (or panics) it does its own S3 and waits on
//!   the latch, running other tasks on a worker, parking elsewhere. Only then does
//!   `scope` return or re-raise, so every borrow outlives every task that uses it.
//!
//! # The lifetime argument
//!
//! A task spawned on `Scope<'scope>` must be `'scope`: it may borrow only what outlives the
//! `scope` call (the caller chose `'scope` and it is fixed for the call: `Scope` is
//! invariant in it). S4 makes the call outlast every task, so the borrows are valid for
//! the tasks' whole life even though the pool slots holding them are `'static` memory.
//! Borrowing a value created inside the body, or a non-`Send` capture, does not compile
//! (see `tests/compile-fail/`).
//!
//! # Panics and cancellation
//!
//! A panicking task is caught; the first payload is kept and re-raised by `scope` after
//! every task finished (the body's own panic wins over a task's). With a [`CancelToken`],
//! a cancelled scope starts no new task: `spawn` drops the closure, a queued task whose
//! turn comes is dropped unrun, and both are counted; [`Scope::skipped`] and
//! `scope_with` report them.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::ptr::NonNull;

use crate::primitives::cancel::{CancelToken, Cancelled};
use crate::runtime::shared::Shared;
use crate::runtime::worker::with_parker;
use crate::runtime::worker::{self, WorkerCtx};
use crate::shim::atomic::{AtomicPtr, AtomicUsize, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::CachePadded;
use crate::structured::fork::SharedPtr;
use crate::task::stack_job::Latch;

/// Counts a scope frame reserves at once when its credit is spent (S1).
pub(crate) const CREDIT_CHUNK: usize = 16;

/// A scope for spawning tasks that borrow from the enclosing stack; see
/// [`Scheduler::scope`](crate::Scheduler::scope).
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let count = std::sync::Mutex::new(0);
/// let c = &count;
/// sched.scope(|s: &filch::Scope<'_>| {
///     s.spawn(move |s| {
///         s.spawn(move |_| *c.lock().unwrap() += 1); // a task may spawn into its scope
///         *c.lock().unwrap() += 1;
///     });
/// });
/// assert_eq!(count.into_inner().unwrap(), 2);
/// ```
pub struct Scope<'scope> {
    shared: SharedPtr,
    /// On its own cache line: every task's end is an RMW on it, from every worker, and
    /// the fields every spawn reads (`shared`, `token`) would share its line otherwise.
    pending: CachePadded<AtomicUsize>,
    latch: Latch,
    /// The first panic payload of a task (a leaked `Box<Box<dyn Any>>`), or null.
    panic: AtomicPtr<Box<dyn Any + Send>>,
    token: Option<&'scope CancelToken>,
    skipped: AtomicUsize,
    /// Invariant in `'scope` (as rayon's and std's scopes are): the caller's choice of
    /// `'scope` cannot be shrunk to let a task borrow something shorter-lived.
    _invariant: PhantomData<&'scope mut &'scope ()>,
}

// SAFETY: every field shared between the body and the tasks is an atomic; `shared` is a
// `Sync` scheduler; the latch's parker handle is only read by the setter (J2); the token
// is `Sync`.
unsafe impl Sync for Scope<'_> {}
// SAFETY: as above; a `Scope` is only ever used by reference, but nothing in it is tied to
// the creating thread.
unsafe impl Send for Scope<'_> {}

impl fmt::Debug for Scope<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Scope")
            .field("cancelled", &self.is_cancelled())
            .field("skipped", &self.skipped())
            .finish_non_exhaustive()
    }
}

/// A scope's address, carried by its tasks.
#[derive(Clone, Copy)]
struct ScopePtr(NonNull<Scope<'static>>);

// SAFETY: `Scope` is `Sync`; the pointer is dereferenced only before S3 (module docs).
unsafe impl Send for ScopePtr {}

/// What a scope task's pool slot holds: the closure, and the obligation to do S3.
/// Dropped unrun, it counts itself skipped, drops the closure and does S3; run, the run
/// takes both out (`into_parts`) and the S3 obligation passes to a [`ScopeDone`].
struct ScopeTask<B> {
    body: ManuallyDrop<B>,
    scope: ScopePtr,
}

/// S3 as a guard: gives back one count plus the frame's unspent credit when dropped.
struct ScopeDone {
    scope: ScopePtr,
    /// Credit the task's frame reserved and did not hand out.
    credit: usize,
}

impl Drop for ScopeDone {
    fn drop(&mut self) {
        // SAFETY: alive until this very S3 (S4); we touch nothing after it.
        unsafe { Scope::done(self.scope.0.as_ptr(), 1 + self.credit) };
    }
}

impl<B> ScopeTask<B> {
    /// The closure and the scope, with the S3 obligation now the caller's.
    fn into_parts(self) -> (B, ScopePtr) {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never dropped, so the closure is moved out exactly once.
        let body = unsafe { ManuallyDrop::take(&mut this.body) };
        (body, this.scope)
    }
}

impl<B> Drop for ScopeTask<B> {
    fn drop(&mut self) {
        // Dropped unrun (cancelled, or a timed-out shutdown): count it, drop the closure
        // (a panicking destructor is contained: the scope must still hear S3), then S3.
        // SAFETY: before S3 the scope is alive (S4).
        unsafe { self.scope.0.as_ref() }.skipped.fetch_add(1, Relaxed);
        // SAFETY: dropped here exactly once (`into_parts` forgets `self` instead).
        let body = unsafe { ManuallyDrop::take(&mut self.body) };
        let _ = catch_unwind(AssertUnwindSafe(move || drop(body)));
        drop(ScopeDone { scope: self.scope, credit: 0 });
    }
}

impl<'scope> Scope<'scope> {
    fn new(shared: &Shared, latch: Latch, token: Option<&'scope CancelToken>) -> Self {
        Scope {
            shared: SharedPtr(shared),
            pending: CachePadded(AtomicUsize::new(1)),
            latch,
            panic: AtomicPtr::new(std::ptr::null_mut()),
            token,
            skipped: AtomicUsize::new(0),
            _invariant: PhantomData,
        }
    }

    /// Spawns `body` into the scope. It may borrow anything that outlives the `scope`
    /// call; `scope` returns only after it has finished.
    ///
    /// Spawned from a worker of the scope's scheduler, the task goes to that worker's
    /// deque; from elsewhere, to the injection queue. It lives in a pool slot (a heap task
    /// if the pool is full). On a shut-down scheduler it runs inline, right here. In a
    /// cancelled scope it is dropped unrun and counted in [`Scope::skipped`].
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let mut left = vec![1, 2, 3];
    /// let mut right = vec![4, 5, 6];
    /// sched.scope(|s| {
    ///     s.spawn(|_| left.iter_mut().for_each(|x| *x *= 10));
    ///     s.spawn(|_| right.iter_mut().for_each(|x| *x += 1));
    /// });
    /// assert_eq!((left, right), (vec![10, 20, 30], vec![5, 6, 7]));
    /// ```
    pub fn spawn<B>(&self, body: B)
    where
        B: FnOnce(&Scope<'scope>) + Send + 'scope,
    {
        self.count_one();
        let this = ScopePtr(NonNull::from(self).cast::<Scope<'static>>());
        let task = ScopeTask { body: ManuallyDrop::new(body), scope: this };
        if self.is_cancelled() {
            drop(task); // counted as skipped, then S3
            return;
        }
        // The closure returns the S3 guard as the task's output: the worker drops an
        // unread output only after counting the task in `Stats::completed`, so a snapshot
        // taken after `scope` returns includes every task that ran.
        let run = move || -> Option<ScopeDone> {
            let task = task;
            // SAFETY: before this task's S3 the scope is alive (S4); `'scope` is the
            // lifetime the task was spawned with.
            let scope = unsafe { task.scope.0.cast::<Scope<'scope>>().as_ref() };
            if scope.is_cancelled() {
                drop(task); // skipped, S3
                return None;
            }
            let (body, this) = task.into_parts();
            let ((), credit) = worker::with_current(|ctx| {
                scope.in_frame(ctx, || {
                    if let Err(p) = catch_unwind(AssertUnwindSafe(|| body(scope))) {
                        scope.record_panic(p);
                    }
                })
            });
            Some(ScopeDone { scope: this, credit }) // S3 when the worker drops the output
        };
        // SAFETY: the closure borrows only `'scope` data, and the scope waits for its S3
        // (run or dropped) before `scope` returns (S4).
        let shared = unsafe { &*self.shared.0 };
        // SAFETY: as above.
        if let Err(run) = unsafe { shared.spawn_detached_unchecked(run) } {
            drop(run()); // shut down: run it here (and S3)
        }
    }

    fn addr(&self) -> *const () {
        (self as *const Self).cast()
    }

    /// S1: counts one more task, from the current frame's credit when it is this scope's.
    #[inline]
    fn count_one(&self) {
        let from_credit = worker::with_current(|ctx| {
            let Some(frame) = ctx.map(WorkerCtx::scope_frame) else {
                return false;
            };
            let (owner, credit) = frame.get();
            if owner != self.addr() {
                return false;
            }
            if credit == 0 {
                if mutation::keep(Site::ScopeCreditReserve) {
                    // S1, Relaxed: module docs.
                    self.pending.fetch_add(CREDIT_CHUNK, Relaxed);
                }
                frame.set((owner, CREDIT_CHUNK - 1));
            } else {
                frame.set((owner, credit - 1));
            }
            true
        });
        if !from_credit {
            // S1, Relaxed: module docs.
            self.pending.fetch_add(1, Relaxed);
        }
    }

    /// Runs `f` (which must not unwind) in a frame of this scope on the worker `ctx`, and
    /// returns its result with the credit the frame did not hand out; restores the frame
    /// below. Off the workers there is no frame (credit 0).
    fn in_frame<R>(&self, ctx: Option<&WorkerCtx<'_>>, f: impl FnOnce() -> R) -> (R, usize) {
        match ctx {
            Some(c) => {
                let below = c.scope_frame().replace((self.addr(), 0));
                let r = f();
                let (_, credit) = c.scope_frame().replace(below);
                (r, credit)
            }
            None => (f(), 0),
        }
    }

    /// Whether the scope's cancel token (if any) is cancelled.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let token = filch::CancelToken::new();
    /// let seen = sched.scope_with(&token, |s| {
    ///     assert!(!s.is_cancelled());
    ///     token.cancel();
    ///     s.is_cancelled()
    /// });
    /// assert_eq!(seen, Ok(true)); // `Ok`: no task was skipped
    /// ```
    pub fn is_cancelled(&self) -> bool {
        self.token.is_some_and(CancelToken::is_cancelled)
    }

    /// How many tasks of this scope were dropped unrun so far (cancelled scope, or a
    /// scheduler that shut down with a timeout).
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let token = filch::CancelToken::new();
    /// token.cancel();
    /// let r = sched.scope_with(&token, |s| {
    ///     s.spawn(|_| unreachable!("the scope is cancelled"));
    ///     s.skipped()
    /// });
    /// assert_eq!(r.unwrap_err().skipped(), 1);
    /// ```
    pub fn skipped(&self) -> usize {
        // Relaxed: a statistic; the final count is read after S4.
        self.skipped.load(Relaxed)
    }

    /// Keeps `payload` as the scope's panic if it is the first (re-raised after S4).
    pub(crate) fn record_panic(&self, payload: Box<dyn Any + Send>) {
        let boxed = Box::into_raw(Box::new(payload));
        // AcqRel: Release publishes the box to the Acquire swap in `take_panic`; a failed
        // CAS reads nothing.
        if self.panic.compare_exchange(std::ptr::null_mut(), boxed, AcqRel, Relaxed).is_err() {
            // SAFETY: `boxed` came from `Box::into_raw` above and was not published.
            drop(unsafe { Box::from_raw(boxed) });
        }
    }

    fn take_panic(&self) -> Option<Box<dyn Any + Send>> {
        // Acquire: pairs with the Release CAS in `record_panic`.
        let p = self.panic.swap(std::ptr::null_mut(), Acquire);
        // SAFETY: non-null means a box published by `record_panic`, taken once (swap).
        (!p.is_null()).then(|| *unsafe { Box::from_raw(p) })
    }

    /// S3: gives back `n` counts (one's own, plus unspent credit).
    ///
    /// # Safety
    /// `this` is a live scope and the `n` counts are ours; we touch nothing after this call.
    unsafe fn done(this: *const Scope<'_>, n: usize) {
        // S3, AcqRel: module docs (partners: the other decrements; the latch's J4).
        // SAFETY: live until the count reaches zero and the latch is set (caller).
        if unsafe { (*this).pending.fetch_sub(n, mutation::ord(Site::ScopeDoneAcqRel, AcqRel)) } == n {
            // SAFETY: the last count: the latch is unset and alive until set.
            unsafe { Latch::set(std::ptr::addr_of!((*this).latch)) };
        }
    }
}

/// `scope` on `shared` from the current thread: the body runs here, and S4 waits here
/// (helping this thread's own scheduler if it is a worker of any, parking otherwise).
/// Returns the body's value and how many tasks were skipped.
pub(crate) fn scope<'scope, OP, R>(shared: &Shared, token: Option<&'scope CancelToken>, op: OP) -> (R, usize)
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    worker::with_current(|ctx| {
        with_parker(ctx, |parker| {
            let scope = Scope::new(shared, Latch::new(parker), token);
            let (r, credit) = scope.in_frame(ctx, || catch_unwind(AssertUnwindSafe(|| op(&scope))));
            // S4: the body's own S3 (with its frame's unspent credit), then the wait.
            // SAFETY: the body's count and the credit are ours; `scope` lives on here.
            unsafe { Scope::done(&scope, 1 + credit) };
            crate::runtime::worker::wait_latch(&scope.latch, ctx, parker);
            let task_panic = scope.take_panic();
            let v = match r {
                Err(p) => resume_unwind(p),
                Ok(v) => v,
            };
            if let Some(p) = task_panic {
                resume_unwind(p);
            }
            (v, scope.skipped())
        })
    })
}

/// `scope_with`: `Err` when the token was cancelled and at least one task was skipped.
pub(crate) fn scope_with<'scope, OP, R>(
    shared: &Shared,
    token: &'scope CancelToken,
    op: OP,
) -> Result<R, Cancelled>
where
    OP: FnOnce(&Scope<'scope>) -> R,
{
    match scope(shared, Some(token), op) {
        (v, 0) => Ok(v),
        (_, skipped) => Err(Cancelled::new(skipped)),
    }
}
