//! [`ScopedJoinHandle`]: a scoped task that hands back a value
//! ([`Scope::spawn_with_handle`]).
//!
//! The task is an ordinary scope task (`scope.rs`, S1–S4) whose closure runs the body and
//! delivers its result to a *result cell*, shared with the handle through an `Arc`.
//!
//! # The result cell
//!
//! | `state` | meaning |
//! |---|---|
//! | `RUNNING` | no result yet, nobody waiting |
//! | `WAITING` | a joiner put its parker in `waiter` and may be parked |
//! | `DONE` | the result is in `value` |
//! | `DETACHED` | the handle was dropped unjoined |
//!
//! - **H1 (finish)**: the task writes its result (or, dropped unrun, its guard writes
//!   `Cancelled`) into `value`, then swaps `state` to `DONE`. AcqRel: Release publishes
//!   `value` to H2/H3's Acquire; Acquire makes a joiner's `waiter` (written before its
//!   Release CAS to `WAITING`) readable. Saw `WAITING`: takes the parker and unparks it.
//!   Saw `DETACHED`: takes the result back (a panic goes to the scope, which re-raises
//!   it, as for a task spawned without a handle; a value is dropped, contained).
//! - **H2 (join)**: an Acquire load that sees `DONE` makes `value` readable: take it.
//!   Otherwise wait (a worker runs other tasks meanwhile); before parking, write the
//!   parker to `waiter` and CAS `RUNNING` → `WAITING` (Release; a failure means `DONE`:
//!   do not park). A joiner registers once: later calls see `WAITING` and park.
//! - **H3 (drop unjoined)**: swap `state` to `DETACHED` (AcqRel, partner H1's swap). Saw
//!   `DONE`: the handle takes the result and treats it as H1 does.
//!
//! A handle borrows the `&Scope` it was spawned from, so it cannot outlive the body or
//! task that created it: when H3 or H1 hands a panic to the scope, the scope is alive
//! (its S4 has not happened), and the result cell is freed by whichever side drops its
//! `Arc` last, before the scope returns.
//!
//! Who touches which cell: `value` is written only by the finisher before its swap and
//! read after a swap or Acquire load that saw the other side's; `waiter` is written only
//! by the joiner while `state` is `RUNNING`, and read only by the finisher after it saw
//! `WAITING`.

use std::any::Any;
use std::fmt;
use std::marker::PhantomData;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::lockfree::park::Parker;
use crate::primitives::waitlist::wait_until;
use crate::shim::atomic::{AtomicUsize, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::{Arc, UnsafeCell};
use crate::structured::scope::Scope;
use crate::task::{PanicPayload, TaskError};

const RUNNING: usize = 0;
const WAITING: usize = 1;
const DONE: usize = 2;
const DETACHED: usize = 3;

struct ResultCell<T> {
    state: AtomicUsize,
    value: UnsafeCell<Option<Result<T, TaskError>>>,
    waiter: UnsafeCell<Option<Arc<Parker>>>,
}

// SAFETY: the cells are accessed under the H1–H3 protocol (module docs): one side at a
// time, ordered by the state word; the value moves between threads, hence `T: Send`.
unsafe impl<T: Send> Sync for ResultCell<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for ResultCell<T> {}

/// The scope a handle or finisher reports a detached panic to.
#[derive(Clone, Copy)]
struct ScopeRef(*const Scope<'static>);

// SAFETY: `Scope` is `Sync`; the pointer is used only while the scope is alive (module
// docs: before its S4).
unsafe impl Send for ScopeRef {}

impl ScopeRef {
    /// Hands a result nobody will read to the scope: a panic is recorded (re-raised by
    /// `scope`), a value is dropped (a panicking drop is recorded the same way).
    ///
    /// # Safety
    /// The scope is alive (before its S4).
    unsafe fn dispose<T>(self, r: Result<T, TaskError>) {
        let payload: Option<Box<dyn Any + Send>> = match r {
            Err(TaskError::Panicked(p)) => Some(p.into_inner()),
            Err(_) => None,
            Ok(v) => catch_unwind(AssertUnwindSafe(move || drop(v))).err(),
        };
        if let Some(p) = payload {
            // SAFETY: alive (caller).
            unsafe { &*self.0 }.record_panic(p);
        }
    }
}

/// The task's side of the cell: H1, on the task's result or, when the task is dropped
/// unrun, on `Cancelled`.
struct Finisher<T> {
    cell: Option<Arc<ResultCell<T>>>,
    scope: ScopeRef,
}

impl<T> Finisher<T> {
    /// H1.
    fn finish(&mut self, r: Result<T, TaskError>) {
        let Some(cell) = self.cell.take() else { return };
        // SAFETY: before H1 only the finisher touches `value`.
        cell.value.with_mut(|v| unsafe { *v = Some(r) });
        // H1, AcqRel: Release publishes `value` to H2/H3; Acquire pairs with H2's Release
        // CAS, so `waiter` is readable when we see `WAITING`.
        match cell.state.swap(DONE, mutation::ord(Site::ScopedHandleFinishAcqRel, AcqRel)) {
            WAITING => {
                // SAFETY: the joiner wrote `waiter` before its CAS to `WAITING` and never
                // again; we are the only reader.
                let parker = cell.waiter.with_mut(|w| unsafe { (*w).take() });
                if let Some(p) = parker {
                    p.unpark();
                }
            }
            DETACHED => {
                // SAFETY: the handle is gone without reading `value`; it is ours again.
                let r = cell.value.with_mut(|v| unsafe { (*v).take() });
                if let Some(r) = r {
                    // SAFETY: the task (or its drop) runs before its S3, so before S4.
                    unsafe { self.scope.dispose(r) };
                }
            }
            _ => {}
        }
    }
}

impl<T> Drop for Finisher<T> {
    fn drop(&mut self) {
        // Dropped unrun (a cancelled scope, a timed-out shutdown): the joiner must not
        // wait forever.
        self.finish(Err(TaskError::Cancelled));
    }
}

/// An owned permission to join a scoped task and take its value; from
/// [`Scope::spawn_with_handle`]. It borrows the scope, so it lives no longer than the
/// body or task that spawned it.
///
/// Dropping it without [`join`](Self::join) detaches the task: it still runs before
/// `scope` returns, its value is dropped, and its panic (if it panics) is re-raised by
/// `scope`, as for a task spawned with [`Scope::spawn`].
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let words = ["scoped", "tasks", "return", "values"];
/// let total = sched.scope(|s| {
///     let handles: Vec<_> = words.iter().map(|w| s.spawn_with_handle(move |_| w.len())).collect();
///     handles.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
/// });
/// assert_eq!(total, 23);
/// ```
pub struct ScopedJoinHandle<'s, T> {
    /// `None` once joined.
    cell: Option<Arc<ResultCell<T>>>,
    scope: ScopeRef,
    _scope: PhantomData<&'s ()>,
}

// SAFETY: joining moves `T: Send` to the joining thread; everything else is the atomic
// H1–H3 protocol and a pointer to a `Sync` scope.
unsafe impl<T: Send> Send for ScopedJoinHandle<'_, T> {}
// SAFETY: `&ScopedJoinHandle` only reads the state word (`is_finished`).
unsafe impl<T: Send> Sync for ScopedJoinHandle<'_, T> {}

impl<'scope> Scope<'scope> {
    /// Spawns `body` into the scope, as [`Scope::spawn`], and returns a handle to its
    /// value. `join` waits for the task (running other tasks meanwhile on a worker) and
    /// returns what `body` returned, or [`TaskError::Panicked`] if it panicked (then
    /// `scope` does not re-raise that panic), or [`TaskError::Cancelled`] if the task was
    /// dropped unrun (a cancelled scope). Costs one allocation (the result cell) beyond
    /// what `Scope::spawn` costs.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let data: Vec<u64> = (1..=100).collect();
    /// let (lo, hi) = data.split_at(50);
    /// let sum = sched.scope(|s| {
    ///     let a = s.spawn_with_handle(|_| lo.iter().sum::<u64>());
    ///     let b = s.spawn_with_handle(|_| hi.iter().sum::<u64>());
    ///     a.join().unwrap() + b.join().unwrap()
    /// });
    /// assert_eq!(sum, 5050);
    /// ```
    pub fn spawn_with_handle<'s, B, T>(&'s self, body: B) -> ScopedJoinHandle<'s, T>
    where
        B: FnOnce(&Scope<'scope>) -> T + Send + 'scope,
        T: Send + 'scope,
    {
        let cell = Arc::new(ResultCell {
            state: AtomicUsize::new(RUNNING),
            value: UnsafeCell::new(None),
            waiter: UnsafeCell::new(None),
        });
        let scope = ScopeRef((self as *const Scope<'scope>).cast::<Scope<'static>>());
        let finisher = Finisher { cell: Some(cell.clone()), scope };
        self.spawn(move |s| {
            let mut finisher = finisher;
            let r = catch_unwind(AssertUnwindSafe(|| body(s)));
            finisher.finish(r.map_err(|p| TaskError::Panicked(PanicPayload::new(p))));
        });
        ScopedJoinHandle { cell: Some(cell), scope, _scope: PhantomData }
    }
}

impl<T> ScopedJoinHandle<'_, T> {
    /// Waits for the task and returns its value (H2). On a worker thread it runs other
    /// tasks while it waits; elsewhere it parks the thread.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// sched.scope(|s| {
    ///     let ok = s.spawn_with_handle(|_| 6 * 7);
    ///     let bad = s.spawn_with_handle(|_| -> u8 { panic!("no value") });
    ///     assert_eq!(ok.join().unwrap(), 42);
    ///     assert_eq!(bad.join().unwrap_err().panic_message(), Some("no value"));
    /// }); // the joined panic is not re-raised here
    /// ```
    pub fn join(mut self) -> Result<T, TaskError> {
        let cell = self.cell.take().expect("joined once: `join` takes the handle");
        let state = &cell.state;
        // H2, Acquire: pairs with H1's Release swap.
        let done = || state.load(Acquire) == DONE;
        let register = |parker: &Arc<Parker>| {
            // Relaxed: only this joiner moves the state off `RUNNING` besides H1, whose
            // `DONE` the CAS below (or `done`) observes with the orderings it needs.
            match state.load(Relaxed) {
                WAITING => true,
                DONE => false,
                _ => {
                    // SAFETY: `state` is `RUNNING`, so the finisher does not read `waiter`
                    // until it sees our CAS below; nobody else writes it.
                    cell.waiter.with_mut(|w| unsafe { *w = Some(parker.clone()) });
                    // H2, Release: publishes `waiter` to H1's Acquire swap.
                    state.compare_exchange(RUNNING, WAITING, Release, Relaxed).is_ok()
                }
            }
        };
        // H1 unparks at most once; a token it leaves after we saw `DONE` is harmless.
        let ok = wait_until(&done, None, &register, &|_| {});
        debug_assert!(ok, "a wait without a deadline ends only when done");
        // SAFETY: `DONE` seen with Acquire (in `done`): H1's write is visible, and nobody
        // touches `value` after H1 but the handle, which is us.
        let r = cell.value.with_mut(|v| unsafe { (*v).take() });
        r.expect("H1 writes the result before `DONE`")
    }

    /// Whether the task has finished (returned, panicked, or was dropped unrun): a `true`
    /// means [`join`](Self::join) will not wait.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// sched.scope(|s| {
    ///     let h = s.spawn_with_handle(|_| 1);
    ///     while !h.is_finished() {
    ///         std::thread::yield_now();
    ///     }
    ///     assert_eq!(h.join().unwrap(), 1);
    /// });
    /// ```
    pub fn is_finished(&self) -> bool {
        // Acquire: pairs with H1's Release swap (a `true` promises a `join` that reads the
        // value at once, which does its own Acquire load anyway).
        self.cell.as_ref().is_none_or(|c| c.state.load(Acquire) == DONE)
    }
}

impl<T> Drop for ScopedJoinHandle<'_, T> {
    fn drop(&mut self) {
        let Some(cell) = self.cell.take() else { return };
        // H3, AcqRel: Acquire pairs with H1's Release (the value is readable when we see
        // `DONE`); Release pairs with H1's Acquire, which then knows nobody reads `value`.
        if cell.state.swap(DETACHED, AcqRel) == DONE {
            // SAFETY: `DONE` seen by the swap's Acquire; the finisher no longer touches it.
            let r = cell.value.with_mut(|v| unsafe { (*v).take() });
            if let Some(r) = r {
                // SAFETY: the handle borrows the scope (module docs): it is alive.
                unsafe { self.scope.dispose(r) };
            }
        }
    }
}

impl<T> fmt::Debug for ScopedJoinHandle<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ScopedJoinHandle").field("finished", &self.is_finished()).finish()
    }
}
