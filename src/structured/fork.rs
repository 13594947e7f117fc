//! `join`: rayon-style fork-join on a stack job, and `in_pool`: running a blocking
//! construct's body on a worker when it is called from outside the scheduler.
//!
//! # `join(a, b)` on a worker
//!
//! 1. `b` becomes a [`StackJob`] in `join`'s own frame (no pool slot, no allocation) and
//!    is pushed on the worker's deque. Then a *hint* of K1 (`Sleep::notify_hint`): the
//!    fenced K1 runs only when a plain look finds a sleeper and no searcher. `b` does not
//!    need a wake-up to make progress — step 3 runs it here if nobody stole it — so a
//!    stale look costs parallelism at worst, and the common case (every worker busy, or
//!    one already searching) pays no fence. Hence, as in rayon, `a` must not wait for
//!    something only `b` does: `b` may run after `a`, on the same thread.
//! 2. `a` runs inline, under `catch_unwind`.
//! 3. The worker pops its deque until `b` comes back: tasks above `b` (pushed by `a` and
//!    not yet run) are run on the way. If `b` comes back, nobody else can reach it: it
//!    runs inline, with no latch and no atomic RMW beyond the deque's own.
//! 4. If the deque runs dry first, `b` was stolen (or spilled to the injection queue): the
//!    worker waits on `b`'s latch running other tasks (`run_until`, as a `JoinHandle` join
//!    does), and parks only when there is nothing to run (J3 in `stack_job.rs`).
//! 5. A panic in `a` is held until `b` has finished (b borrows this frame, so `join`
//!    cannot unwind past it earlier), then re-raised; `b`'s own panic is re-raised if `a`
//!    did not panic.
//!
//! # Outside the scheduler
//!
//! `in_pool` wraps the whole construct (here `join(a, b)`) in a stack job, queues it on
//! the injection queue (L1–L3, K1), and waits on its latch: a plain thread parks; a worker
//! of another scheduler keeps running its own scheduler's tasks. On a shut-down scheduler
//! the construct runs on the calling thread instead (sequentially for `join`), so nothing
//! is lost and nothing blocks forever.

use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};

use crate::contain::{self, AbortOnUnwind};
use crate::runtime::shared::Shared;
use crate::runtime::worker::with_parker;
use crate::runtime::worker::{self, WorkerCtx};
use crate::task::stack_job::StackJob;

/// `join` on the scheduler `shared`, from any thread. Shaped as `filch::join`: on a
/// worker of `shared`, straight to [`join_on_worker`]; everything else out of line, so
/// that a recursive `Scheduler::join` frame is no larger than a `filch::join` one.
#[inline]
pub(crate) fn join<A, B, RA, RB>(shared: &Shared, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let mut ab = Some((a, b));
    let local = worker::with_current(|ctx| {
        ctx.filter(|c| c.is_of(shared)).map(|c| {
            let (a, b) = ab.take().expect("taken once");
            join_on_worker(c, a, b)
        })
    });
    match local {
        Some(r) => r,
        None => join_elsewhere(shared, ab.take().expect("taken once")),
    }
}

/// [`join`] from a thread that is not a worker of `shared`.
#[inline(never)]
fn join_elsewhere<A, B, RA, RB>(shared: &Shared, (a, b): (A, B)) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    in_pool(shared, move |ctx| match ctx {
        Some(c) => join_on_worker(c, a, b),
        None => join_sequential(a, b),
    })
}

/// `Scheduler::install`: `op` on a worker of `shared`: here if this thread is one, else
/// through `in_pool`.
pub(crate) fn install<OP, R>(shared: &Shared, op: OP) -> R
where
    OP: FnOnce() -> R + Send,
    R: Send,
{
    if worker::with_current(|ctx| ctx.is_some_and(|c| c.is_of(shared))) {
        return op();
    }
    in_pool(shared, move |_| op())
}

/// Steps 1–5 of the module docs.
#[inline]
pub(crate) fn join_on_worker<A, B, RA, RB>(ctx: &WorkerCtx<'_>, a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA + Send,
    B: FnOnce() -> RB + Send,
    RA: Send,
    RB: Send,
{
    let job_b = StackJob::new(b, ctx.shared().as_owner(), ctx.parker());
    // From the push until `b` is popped back or its latch is set, a queue points into this
    // frame: nothing may unwind out of it (`contain.rs`). `a` runs under `catch_unwind` and
    // the worker loop contains every task it runs, so only a runtime bug could trip this.
    let queued = AbortOnUnwind::new("a `join` frame whose second half was still queued");
    // Step 1. SAFETY: `job_b` stays in this frame, which is not left (by return or unwind:
    // `queued` aborts) before the job is popped back (step 3) or its latch is set (steps
    // 4–5); it is queued once.
    ctx.push_local(unsafe { job_b.as_task_ref() });
    ctx.shared().notify_hint();
    // Step 2.
    let ra = match catch_unwind(AssertUnwindSafe(a)) {
        Ok(v) => v,
        Err(payload) => a_panicked(ctx, &job_b, queued, payload),
    };
    // Step 3.
    if pop_back(ctx, &job_b) {
        queued.disarm();
        return (ra, job_b.run_inline());
    }
    // Step 4.
    (ra, wait_stolen(ctx, &job_b, queued))
}

/// Step 4 out of line: `b` was stolen; wait for its latch. Kept out of `join`'s frame,
/// which every level of a recursive `join` keeps on the stack (docs/DESIGN.md §11, stack
/// use).
#[inline(never)]
fn wait_stolen<F: FnOnce() -> R + Send, R: Send>(
    ctx: &WorkerCtx<'_>,
    job_b: &StackJob<F, R>,
    queued: AbortOnUnwind,
) -> R {
    worker::wait_latch(job_b.latch(), Some(ctx), ctx.parker());
    queued.disarm();
    job_b.take_result()
}

/// Step 5 out of line: `a` panicked; `b` finishes first (it borrows this frame), its own
/// panic gives way to `a`'s, and `a`'s is raised again.
#[cold]
#[inline(never)]
fn a_panicked<F: FnOnce() -> R + Send, R: Send>(
    ctx: &WorkerCtx<'_>,
    job_b: &StackJob<F, R>,
    queued: AbortOnUnwind,
    payload: contain::Payload,
) -> ! {
    if pop_back(ctx, job_b) {
        queued.disarm();
        if let Err(p) = catch_unwind(AssertUnwindSafe(|| job_b.run_inline())) {
            contain::drop_payload(p);
        }
    } else {
        worker::wait_latch(job_b.latch(), Some(ctx), ctx.parker());
        queued.disarm();
        if let Err(p) = job_b.take_result_caught() {
            contain::drop_payload(p);
        }
    }
    resume_unwind(payload)
}

/// Pops the own deque, running what is above `job`, until `job` comes back (`true`) or
/// the deque is empty (`false`: it was stolen or spilled).
#[inline]
fn pop_back<F: FnOnce() -> R + Send, R: Send>(ctx: &WorkerCtx<'_>, job: &StackJob<F, R>) -> bool {
    while let Some(t) = ctx.pop_local() {
        if job.is(&t) {
            // Our own job, back in our hands: it is not a counted reference.
            let _ = t.into_raw();
            return true;
        }
        ctx.run_task_outlined(t);
    }
    false
}

/// Both closures on the calling thread; `a`'s panic waits for `b` as in step 5.
fn join_sequential<A, B, RA, RB>(a: A, b: B) -> (RA, RB)
where
    A: FnOnce() -> RA,
    B: FnOnce() -> RB,
{
    let ra = catch_unwind(AssertUnwindSafe(a));
    let rb = catch_unwind(AssertUnwindSafe(b));
    match (ra, rb) {
        (Ok(ra), Ok(rb)) => (ra, rb),
        (Err(p), rb) => {
            // `a`'s panic wins; `b`'s payload (if any) is dropped contained.
            if let Err(q) = rb {
                contain::drop_payload(q);
            }
            resume_unwind(p)
        }
        (Ok(_), Err(p)) => resume_unwind(p),
    }
}

/// The scheduler, carried into a stack job as an address (module docs of `scope.rs`
/// and here: the job runs while its creator waits, so the scheduler is alive).
#[derive(Clone, Copy)]
pub(crate) struct SharedPtr(pub(crate) *const Shared);

// SAFETY: `Shared` is `Sync`; the pointer is only dereferenced while the scheduler is
// alive (its user is blocked in a call that borrows it).
unsafe impl Send for SharedPtr {}

/// Runs `f` on a worker of `shared` and returns its result (module docs): `f` gets that
/// worker's context, or `None` when the scheduler is shut down (`f` then runs here) or
/// when a timed-out shutdown's caller executed the job.
pub(crate) fn in_pool<F, R>(shared: &Shared, f: F) -> R
where
    F: FnOnce(Option<&WorkerCtx<'_>>) -> R + Send,
    R: Send,
{
    let sp = SharedPtr(shared);
    let body = move || {
        let sp = sp;
        // SAFETY: the caller of `in_pool` borrows the scheduler until the job is done.
        let shared = unsafe { &*sp.0 };
        worker::with_current(|ctx| f(ctx.filter(|c| c.is_of(shared))))
    };
    worker::with_current(|ctx| {
        with_parker(ctx, |parker| {
            let job = StackJob::new(body, shared.as_owner(), parker);
            // SAFETY: `job` stays in this frame until its latch is set (waited for below) or
            // it is handed back unqueued.
            match shared.inject_stack_job(unsafe { job.as_task_ref() }) {
                Ok(()) => {
                    // The injection queue points into this frame until the latch is set.
                    let queued = AbortOnUnwind::new("a frame waiting for its injected stack job");
                    worker::wait_latch(job.latch(), ctx, parker);
                    queued.disarm();
                    job.take_result()
                }
                Err(t) => {
                    // Shut down: never queued; run it here.
                    let _ = t.into_raw();
                    job.run_inline()
                }
            }
        })
    })
}
