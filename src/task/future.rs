//! Async tasks: a future in a task's stage, and the steps that poll, wake and abort it.
//!
//! An async task is a task (same header, state word, pool slot or heap layout, T2–T5)
//! whose stage holds a future instead of a closure, and whose state has `ASYNC` set. It
//! may be queued and polled many times. Its state word adds two bits (table in
//! `task/mod.rs`): `NOTIFIED`, "queued, or to be re-queued when the current poll ends",
//! and `ABORT`, "drop the future at the next suspension point".
//!
//! # Queue references
//!
//! Every queue entry of an async task holds one reference, exactly as for a closure. A
//! task has at most one queue entry: only the transition *idle → `NOTIFIED`* (A4, A5, A6,
//! spawn) creates one, and `NOTIFIED` stays set until a poll's claim (A1) clears it. A
//! wake while the task runs only sets `NOTIFIED`; the poller then moves its own queue
//! reference back to a queue when the poll ends (A3). So the task is never polled on two
//! threads, and a wake is never lost: it either finds the task idle and queues it, or
//! finds it queued or running with `NOTIFIED` set or about to be re-queued.
//!
//! # Steps
//!
//! - **A1 claim** (the popper, holding the queue's reference): one CAS from "neither
//!   `RUNNING` nor `COMPLETE`" sets `RUNNING` and clears `NOTIFIED` (Acquire: pairs with
//!   the Release of the wake, A3 or spawn that queued it, so what the waker wrote before
//!   waking is visible to the poll). A task found `RUNNING` or `COMPLETE` (a shutdown
//!   sweep took it, A7) is skipped: the popper drops its reference. With `ABORT` set, or
//!   when the scheduler is shutting down, the claimant drops the future instead of
//!   polling it (T2 with `CANCELLED`).
//! - **A2 poll**: the claimant polls the future with the task's own waker. `Ready` (or a
//!   panic) drops the future, writes the output and completes (T2–T5 as for closures).
//! - **A3 end of a pending poll**: one CAS clears `RUNNING` (Release: the poll's writes
//!   to the future happen before the next claim's Acquire, through the release sequence
//!   on this word). If `NOTIFIED` was set meanwhile the queue reference goes back to a
//!   queue; otherwise it is dropped in the same CAS (AcqRel, T5). If `ABORT` was set
//!   meanwhile the claimant keeps `RUNNING` and drops the future (A1's abort), after an
//!   Acquire fence (pairs with the Release of the A6 or A7 that set `ABORT`: a sweep's
//!   shutdown is then visible, and the join reports `ShutDown`, not `Cancelled`).
//! - **A4 `wake_by_ref`** (the waker keeps its reference): if `COMPLETE` or `NOTIFIED`,
//!   nothing. If `RUNNING`, set `NOTIFIED` (A3 re-queues). If idle, set `NOTIFIED` and add
//!   a reference for the queue entry, and queue it. One CAS, Release (partner: A1).
//! - **A5 `wake`** (consumes the waker's reference): as A4, but an idle task's queue entry
//!   takes over the waker's reference (no count change); otherwise the reference is
//!   dropped (T5).
//! - **A6 abort**: sets `ABORT` unless `COMPLETE`; an idle task is also made `NOTIFIED`
//!   and queued, as by A4, so that a worker claims it and drops the future (A1).
//! - **A7 shutdown sweep**: once the scheduler shuts down, a sweep visits every live async
//!   task. It takes a reference with a CAS that adds one only while the count is not zero
//!   (Acquire: pairs with the Release of the slot's initial state, so the vtable and stage
//!   it then reads are the task's), then one CAS (AcqRel): a `RUNNING` task gets `ABORT`
//!   (its A3 sees it, and through the Release also the shutdown that preceded the
//!   sweep); a task neither `RUNNING` nor `COMPLETE` (idle, or queued) is claimed with
//!   `RUNNING` + `ABORT` and its future dropped by the sweep; a queue entry that still
//!   holds it is skipped by A1 later. Every CAS on one word is totally ordered, so each
//!   task is dropped exactly once: by a sweep, by an A1/A3 abort, or by completing.

use std::future::Future;
use std::marker::PhantomData;
use std::mem::ManuallyDrop;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::pin::Pin;
use std::ptr::NonNull;
use std::task::{Context, Poll};

use super::{
    abandon, dealloc_heap, drop_output, not_a_task, stage, take_output, HeapTask, Home, PanicPayload, State,
    TaskError, TaskRef, TaskSlot, Vtable, ABORT, ASYNC, JOIN_INTEREST, NOTIFIED, REF_ONE, RUNNING,
};
use crate::contain;
use crate::shim::atomic::Ordering::*;
use crate::shim::mutation::{self, Site};

/// Initial state of an async task with a handle: queued (`NOTIFIED`), two references.
const INITIAL_ASYNC: usize = ASYNC | NOTIFIED | JOIN_INTEREST | (2 * REF_ONE);
/// Initial state of a detached async task: queued, the queue's reference only.
const INITIAL_ASYNC_DETACHED: usize = ASYNC | NOTIFIED | REF_ONE;

struct FutureVtableOf<Fut, T>(PhantomData<(Fut, T)>);

impl<Fut: Future<Output = T>, T> FutureVtableOf<Fut, T> {
    const VTABLE: Vtable = Vtable {
        run: |_| not_a_task(),
        run_unread: None,
        run_unread_counted: None,
        abandon: abandon::<Fut, T>,
        take_output: take_output::<Fut, T>,
        drop_output: drop_output::<Fut, T>,
        dealloc_heap: dealloc_heap::<Fut, T>,
        poll: Some(poll::<Fut, T>),
    };
}

/// A2: polls the future once. On `Ready` or a panic, drops the future in place, writes
/// the output and returns `Some(panicked)`; `None` while pending.
unsafe fn poll<Fut: Future<Output = T>, T>(h: NonNull<Header>, cx: &mut Context<'_>) -> Option<bool> {
    // SAFETY: the caller holds RUNNING (A1): the future is there and is ours.
    let s = unsafe { &mut *stage::<Fut, T>(h) };
    // SAFETY: the future lives in the task's memory, which never moves while the task is
    // alive, and it is dropped in place below (or by `abandon`), never moved out.
    let fut = unsafe { Pin::new_unchecked(&mut *s.closure) };
    let out = match catch_unwind(AssertUnwindSafe(|| fut.poll(cx))) {
        Ok(Poll::Pending) => return None,
        Ok(Poll::Ready(v)) => Ok(v),
        Err(p) => Err(TaskError::Panicked(PanicPayload::new(p))),
    };
    // SAFETY: finished (or panicked): the future is dropped here, exactly once; a panic in
    // its destructor leaves it dropped as far as we are concerned.
    let dropped = catch_unwind(AssertUnwindSafe(|| unsafe { ManuallyDrop::drop(&mut s.closure) }));
    let out = match (out, dropped) {
        (out, Ok(())) => out,
        (Ok(v), Err(p)) => {
            if let Err(q) = contain::call(move || drop(v)) {
                contain::drop_payload(q);
            }
            Err(TaskError::Panicked(PanicPayload::new(p)))
        }
        (Err(e), Err(p)) => {
            contain::drop_payload(p);
            Err(e)
        }
    };
    let panicked = out.is_err();
    s.output = ManuallyDrop::new(out);
    Some(panicked)
}

use super::Header;

/// Drops the pending future of an async task whose last reference is gone (T5).
///
/// # Safety
/// No reference to the task is left, and it is not `COMPLETE`.
pub(crate) unsafe fn drop_pending(h: NonNull<Header>) {
    // SAFETY: the task is ours alone (caller); not COMPLETE, so the stage holds the future.
    unsafe {
        let vt = h.as_ref().vtable;
        (vt.abandon)(h, TaskError::ShutDown);
        if let Some(p) = (vt.drop_output)(h) {
            contain::drop_payload(p);
        }
    }
}

/// What A1 decided.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Claim {
    /// `RUNNING` is ours: poll the future.
    Poll,
    /// `RUNNING` is ours, and the future must be dropped unpolled (abort or shutdown).
    Drop,
    /// Complete, or claimed by a sweep: drop the queue's reference.
    Skip,
}

/// What A3 decided.
pub(crate) enum AfterPoll {
    /// Woken during the poll: queue this reference again.
    Requeue(TaskRef),
    /// Aborted during the poll: `RUNNING` is still ours; drop the future, then complete.
    Drop(TaskRef),
    /// Idle; the queue reference is gone (and with it the task, if it was the last).
    Idle(Option<super::Dead>),
}

impl TaskRef {
    /// Builds an async task in a prepared pool slot (see [`TaskRef::new_in_slot`]).
    ///
    /// # Safety
    /// As [`TaskRef::new_in_slot`], with `fits_inline::<Fut, T>()`.
    #[inline(always)]
    pub(crate) unsafe fn new_async_in_slot<Fut, T>(
        slot: NonNull<TaskSlot>,
        fut: Fut,
        detached: bool,
    ) -> (TaskRef, Option<TaskRef>)
    where
        Fut: Future<Output = T> + Send,
        T: Send,
    {
        let state = if detached { INITIAL_ASYNC_DETACHED } else { INITIAL_ASYNC };
        // SAFETY: forwarded from the caller.
        unsafe { Self::fill_slot::<Fut, T>(slot, fut, &FutureVtableOf::<Fut, T>::VTABLE, state) };
        let h = slot.cast::<Header>();
        (TaskRef(h), (!detached).then_some(TaskRef(h)))
    }

    /// Builds an async task on the heap.
    pub(crate) fn new_async_on_heap<Fut, T>(
        fut: Fut,
        owner: *const (),
        detached: bool,
    ) -> (TaskRef, Option<TaskRef>)
    where
        Fut: Future<Output = T> + Send,
        T: Send,
    {
        let mem: Box<std::mem::MaybeUninit<HeapTask<Fut, T>>> = Box::new_uninit();
        let mem = NonNull::from(Box::leak(mem)).cast::<Header>();
        let state = if detached { INITIAL_ASYNC_DETACHED } else { INITIAL_ASYNC };
        let vtable = &FutureVtableOf::<Fut, T>::VTABLE;
        // SAFETY: fresh, exclusive memory of the `HeapTask<Fut, T>` layout.
        unsafe { Self::init_with::<Fut, T>(mem, fut, owner, Home::Heap, vtable, state) };
        (TaskRef(mem), (!detached).then_some(TaskRef(mem)))
    }

    /// Whether this is an async task (`ASYNC` never changes once the task is published).
    #[inline]
    pub(crate) fn is_async(&self) -> bool {
        // Relaxed: the bit was published with the task (queue Release/Acquire, or the
        // handle's transfer), and never changes.
        self.state(Relaxed).is_async()
    }

    /// A1: claims a popped async task. `stopping`: the scheduler is shutting down.
    pub(crate) fn claim_poll(&self, stopping: bool) -> Claim {
        let state = &self.header().state;
        // Relaxed: a starting guess for the CAS.
        let mut cur = state.load(Relaxed);
        loop {
            let s = State(cur);
            if s.is_claimed() {
                return Claim::Skip;
            }
            // A1, Acquire: pairs with the Release of the step that queued the task (spawn,
            // A3, A4, A5, A6), so what the waker wrote before waking is visible to the poll.
            let acquire = mutation::ord(Site::AsyncClaimAcquire, Acquire);
            match state.compare_exchange_weak(cur, (cur | RUNNING) & !NOTIFIED, acquire, Relaxed) {
                Ok(_) => return if s.is_aborted() || stopping { Claim::Drop } else { Claim::Poll },
                Err(actual) => cur = actual,
            }
        }
    }

    /// A2: polls the claimed future; `Some(panicked)` when it finished (output written).
    ///
    /// # Safety
    /// The caller holds `RUNNING` from [`Self::claim_poll`] (or A3's `Drop` arm never
    /// reaches here), and the task is async.
    #[inline]
    pub(crate) unsafe fn poll_claimed(&self, cx: &mut Context<'_>) -> Option<bool> {
        match self.header().vtable.poll {
            // SAFETY: forwarded from the caller.
            Some(poll) => unsafe { poll(self.0, cx) },
            None => not_a_task(),
        }
    }

    /// A3: a poll returned `Pending`. `stopping`: the scheduler is shutting down (the
    /// future is dropped instead of waiting).
    ///
    /// # Safety
    /// The caller holds `RUNNING` from [`Self::claim_poll`]; `self` is the queue's
    /// reference it popped.
    pub(crate) unsafe fn after_pending(self, stopping: bool) -> AfterPoll {
        let h = self.header();
        // Relaxed: a starting guess for the CAS.
        let mut cur = h.state.load(Relaxed);
        loop {
            let s = State(cur);
            debug_assert!(s.is_running() && !s.is_complete());
            if s.is_aborted() || stopping {
                // A3's abort, Acquire fence: `cur` was read Relaxed; an `ABORT` in it pairs
                // this with the Release of the CAS that set it (A6, or A7's sweep, whose
                // shutdown then happens before our drop, which reports `ShutDown`).
                mutation::fence(Site::AsyncAbortSeenAcquire, Acquire);
                return AfterPoll::Drop(self);
            }
            let (new, ord) = if s.is_notified() && mutation::keep(Site::AsyncRequeueNotified) {
                // A3, Release: the poll's writes happen before the next claim (A1).
                (cur & !RUNNING, Release)
            } else {
                // A3 + T5, AcqRel: Release as above and for the free; Acquire when ours is
                // the last reference (every other holder's accesses before our free).
                ((cur & !RUNNING) - REF_ONE, AcqRel)
            };
            let requeue = s.is_notified() && mutation::keep(Site::AsyncRequeueNotified);
            match h.state.compare_exchange_weak(cur, new, ord, Relaxed) {
                Ok(_) if requeue => return AfterPoll::Requeue(self),
                Ok(_) => {
                    let dead = (s.refs() == 1).then(|| super::Dead::last(self.0, State(new | RUNNING)));
                    return AfterPoll::Idle(dead);
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// A4: wakes the task through a waker that keeps its reference. `Some`: a new
    /// reference (already counted) that the caller must queue.
    pub(crate) fn wake_by_ref_step(&self) -> Option<TaskRef> {
        let h = self.header();
        // Relaxed: a starting guess for the CAS.
        let mut cur = h.state.load(Relaxed);
        loop {
            let s = State(cur);
            if s.is_complete() || s.is_notified() {
                return None;
            }
            if s.is_running() && !mutation::keep(Site::AsyncWakeRunningNotifies) {
                return None;
            }
            let new = if s.is_running() { cur | NOTIFIED } else { (cur | NOTIFIED) + REF_ONE };
            // A4, Release: pairs with A1 (directly, or through A3's CAS in the release
            // sequence): the waker's writes happen before the next poll.
            match h.state.compare_exchange_weak(cur, new, Release, Relaxed) {
                Ok(_) => return (!s.is_running()).then_some(TaskRef(self.0)),
                Err(actual) => cur = actual,
            }
        }
    }

    /// A5: wakes the task through a waker that gives up its reference. `Ok`: queue this
    /// reference; `Err`: the reference is gone (with the task, if it was the last).
    pub(crate) fn wake_step(self) -> Result<TaskRef, Option<super::Dead>> {
        let h = self.header();
        // Relaxed: a starting guess for the CAS.
        let mut cur = h.state.load(Relaxed);
        loop {
            let s = State(cur);
            if s.is_complete() || s.is_notified() {
                return Err(self.release());
            }
            if s.is_running() {
                // A5 on a running task: NOTIFIED and our reference gone in one RMW. The
                // poller holds a reference, so ours is not the last. AcqRel: Release as in
                // A4, and for T5.
                match h.state.compare_exchange_weak(cur, (cur | NOTIFIED) - REF_ONE, AcqRel, Relaxed) {
                    Ok(_) => return Err(None),
                    Err(actual) => cur = actual,
                }
                continue;
            }
            // A5 on an idle task: our reference becomes the queue entry's. Release as A4.
            match h.state.compare_exchange_weak(cur, cur | NOTIFIED, Release, Relaxed) {
                Ok(_) => return Ok(self),
                Err(actual) => cur = actual,
            }
        }
    }

    /// A6: asks the task to stop at its next suspension point. Returns whether it was not
    /// complete yet, and a new queue reference to queue when it was idle.
    pub(crate) fn abort_step(&self) -> (bool, Option<TaskRef>) {
        let h = self.header();
        // Relaxed: a starting guess for the CAS.
        let mut cur = h.state.load(Relaxed);
        loop {
            let s = State(cur);
            if s.is_complete() {
                return (false, None);
            }
            let idle = !s.is_running() && !s.is_notified() && mutation::keep(Site::AsyncAbortQueuesIdle);
            let new = if idle { (cur | ABORT | NOTIFIED) + REF_ONE } else { cur | ABORT };
            // A6, Release: as A4 (the claimant that sees ABORT drops the future).
            match h.state.compare_exchange_weak(cur, new, Release, Relaxed) {
                Ok(_) => return (true, idle.then_some(TaskRef(self.0))),
                Err(actual) => cur = actual,
            }
        }
    }

    /// A waker's clone: one more reference.
    #[inline]
    pub(crate) fn clone_ref(&self) -> TaskRef {
        // Relaxed: as `Arc::clone`: the new reference is made from one we hold, so the
        // count cannot be zero, and passing it to another thread synchronizes by itself.
        self.header().state.fetch_add(REF_ONE, Relaxed);
        TaskRef(self.0)
    }

    /// A7: takes a reference to the live, unfinished async task at `h`, if it is one.
    ///
    /// # Safety
    /// `h` is a task header whose state word is initialized and stays allocated for the
    /// call (a prepared pool slot, or a heap task kept alive by the caller's lock).
    pub(crate) unsafe fn sweep_ref(h: NonNull<Header>) -> Option<TaskRef> {
        // SAFETY: the caller keeps the header's memory allocated and initialized. Only the
        // state word is borrowed: a spawn may be writing the slot's other fields meanwhile.
        let state = unsafe { &*std::ptr::addr_of!((*h.as_ptr()).state) };
        // Relaxed: a starting guess for the CAS.
        let mut cur = state.load(Relaxed);
        loop {
            let s = State(cur);
            if !s.is_async() || s.is_complete() || s.refs() == 0 {
                return None;
            }
            // A7, Acquire: pairs with `publish_state`'s Release (and the RMWs after it):
            // the vtable and stage we use next are this task's.
            match state.compare_exchange_weak(cur, cur + REF_ONE, Acquire, Relaxed) {
                Ok(_) => return Some(TaskRef(h)),
                Err(actual) => cur = actual,
            }
        }
    }

    /// A7: the sweep's claim. `true`: `RUNNING` is ours, drop the future and complete;
    /// `false`: complete already, or running (now with `ABORT`, which its A3 sees).
    pub(crate) fn sweep_claim(&self) -> bool {
        let h = self.header();
        // Relaxed: a starting guess for the CAS.
        let mut cur = h.state.load(Relaxed);
        loop {
            let s = State(cur);
            if s.is_complete() || (s.is_running() && s.is_aborted()) {
                return false;
            }
            let running = s.is_running() && mutation::keep(Site::AsyncSweepSkipsRunning);
            let new = if running { cur | ABORT } else { cur | RUNNING | ABORT };
            // A7, AcqRel. Acquire: on a claim, what the last poll wrote into the future is
            // visible to the drop (pairs with A3's Release). Release: on a running task, the
            // `ABORT` carries the shutdown this sweep follows (`sweep_async`) to the poller,
            // whose drop then reports `ShutDown`, not `Cancelled` (pairs with A3's Acquire
            // fence).
            match h.state.compare_exchange_weak(cur, new, AcqRel, Relaxed) {
                Ok(_) => return !running,
                Err(actual) => cur = actual,
            }
        }
    }
}
