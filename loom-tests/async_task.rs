//! Loom models of async tasks (`src/task/future.rs`, A1–A7, and the task waker in
//! `src/runtime/async_task.rs`) in the real `Scheduler`, and of the timers' park protocol
//! (`src/runtime/timer.rs`, TM1–TM3, and a cancel).
//!
//! The scheduler is built as in `sched.rs`: one unpinned worker that parks straight away
//! when idle, the smallest pool and deque. Each model's future is written by hand so that
//! the model controls where it suspends: it stores `cx.waker().clone()` in the model's
//! [`World`] and returns `Pending`; the model's thread takes the stored waker and wakes it.
//! That thread and the worker are the only two threads of every scheduler model: what
//! races the worker's poll is the model thread's wake, abort, handle drop or
//! `drop(Scheduler)` (a third thread multiplies the run time by about ten). The model
//! thread never spins: where it must wait for a poll it parks, and the poll unparks it.
//! Every model asserts exactly-once:
//!
//! - the future is dropped exactly once (on completion, by an abort, or by the shutdown
//!   sweep), counted by its `Drop`;
//! - its output is produced at most once and dropped exactly as often as it was produced
//!   (by the joiner, or by the completer when the handle is gone), counted by the
//!   output's `Drop`; a join reports the output or the matching `TaskError`;
//! - nothing is lost: a wake that does not lead to another poll leaves the joiner parked
//!   for ever, which loom reports as a deadlock; and every loom object (the future and the
//!   output hold an `Arc<World>`, the scheduler's shared state is one) is freed by the end
//!   of the model, which loom checks as a leak;
//! - nothing went wrong inside the worker: the scheduler's panic handler records every
//!   panic that reaches it (a runtime assertion on the worker, a loom failure there, which
//!   the worker's containment would otherwise only report) and the model fails on it.
//!
//! Each model ends by dropping the `Scheduler` and then the `World`, whose stored waker
//! (if any) is then a stale one: its drop frees the task after its scheduler is gone (the
//! orphan protocol, `runtime/shared.rs`).
//!
//! Every scheduler model runs the whole scheduler, whose shutdown alone is hundreds of
//! loom operations (each shutdown sweep loads the state word of all 64 pool slots), so
//! these models raise loom's branch limit and are capped at one preemption (at two, the
//! cheapest takes half a minute and `poll_vs_wake` over four). Because the model's thread
//! blocks where it must wait (for the first poll, in a join), one preemption of the worker
//! reaches each race a model is about, and every mutant below is caught at that bound.
//! The times are in `docs/VERIFICATION.md`.
//!
//! The `mutant_*` tests at the bottom weaken one site each and run the model that catches
//! it, in a child process (`crate::task::in_child`).

use std::cell::RefCell;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use filch::loom_async_api::Timers;
use filch::sync::Parker;
use filch::{Idle, JoinHandle, Scheduler, TaskError};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use loom::sync::{Arc, Mutex};
use loom::thread;

use crate::task::mutant_test;

/// What the futures return (inside an [`Output`]).
const VALUE: usize = 42;

/// Loom's branch limit for these models (its default, 1,000, is less than one execution:
/// a spawn, a poll or two and a shutdown with its sweeps).
const MAX_BRANCHES: usize = 20_000;

/// `crate::task::model_capped` with [`MAX_BRANCHES`]: `LOOM_MAX_PREEMPTIONS`, else
/// `default_bound`, never above `max`.
fn model_async<F: Fn() + Sync + Send + 'static>(default_bound: usize, max: usize, f: F) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.unwrap_or(default_bound).min(max));
    b.max_branches = MAX_BRANCHES;
    b.check(f);
}

std::thread_local! {
    /// Panics that reached the scheduler's panic handler in this execution. Loom runs a
    /// model's threads on one OS thread, so this is per model execution.
    static HANDLED: RefCell<Vec<String>> = const { RefCell::new(Vec::new()) };
}

/// One worker, as in `sched.rs` (a second makes every execution too long for loom); its
/// panic handler records what reaches it (see [`fail_on_handled_panics`]).
fn build() -> Scheduler {
    Scheduler::builder()
        .workers(1)
        .pin(false)
        .idle(Idle::Park { spins: 0, yields: 0 })
        .pool_capacity(filch::MIN_POOL_CAPACITY)
        .deque_capacity(filch::MIN_DEQUE_CAPACITY)
        .panic_handler(|p| {
            let msg = p
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| p.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic".to_string());
            HANDLED.with(|h| h.borrow_mut().push(msg));
        })
        .build()
        .expect("valid settings")
}

/// Fails the model if a panic reached the scheduler's panic handler (none of the models'
/// futures panics, so any is a failure inside the runtime).
fn fail_on_handled_panics() {
    let handled = HANDLED.with(|h| std::mem::take(&mut *h.borrow_mut()));
    if let Some(first) = handled.first() {
        panic!("a panic reached the scheduler's panic handler: {first}");
    }
}

// ---------------------------------------------------------------------------------------
// What the model's threads share.

/// Shared by the model's threads, the future and its output.
struct World {
    /// Set by the waking thread before it takes the waker; the future is `Ready` once it
    /// sees it.
    flag: AtomicBool,
    /// The waker the last poll stored (a clone of the task's own).
    waker: Mutex<Option<Waker>>,
    /// The model's own thread, which a poll unparks after storing its waker (`take_waker`).
    main: thread::Thread,
    /// Written by the waking thread before it wakes; read by the poll that wake causes
    /// (`ReadAfterWake`, `QueuedWake`).
    data: Data,
    /// Set (Relaxed: it orders nothing) by the model's thread after its wake, in
    /// `wake_publishes`; the closure that holds the worker waits for it.
    woken: AtomicBool,
    future_drops: AtomicUsize,
    outputs: AtomicUsize,
    output_drops: AtomicUsize,
}

impl World {
    /// Called on the model's own thread.
    fn new() -> Arc<World> {
        Arc::new(World {
            flag: AtomicBool::new(false),
            waker: Mutex::new(None),
            main: thread::current(),
            data: Data(UnsafeCell::new(0)),
            woken: AtomicBool::new(false),
            future_drops: AtomicUsize::new(0),
            outputs: AtomicUsize::new(0),
            output_drops: AtomicUsize::new(0),
        })
    }

    fn count(c: &AtomicUsize) -> usize {
        // Relaxed: read after the scheduler was dropped (its worker joined) and every
        // other model thread was joined.
        c.load(Relaxed)
    }

    /// A poll: stores the task's waker where the waking thread finds it.
    fn store_waker(&self, cx: &Context<'_>) {
        let old = self.waker.lock().unwrap().replace(cx.waker().clone());
        drop(old);
    }

    /// The waking side: sets the flag, then takes the waker a poll stored, if any. A poll
    /// that stores its waker after this take sees the flag (the mutex orders them).
    fn set_flag_and_take(&self) -> Option<Waker> {
        // Release: pairs with the poll's Acquire load after it stored its waker.
        self.flag.store(true, Release);
        self.waker.lock().unwrap().take()
    }

    /// Sets the flag and wakes the waker a poll stored, if any, by value (A5).
    fn wake(&self) {
        if let Some(w) = self.set_flag_and_take() {
            w.wake();
        }
    }

    /// The model's thread: parks until a poll stored its waker (the poll unparks it), and
    /// takes it.
    fn take_waker(&self) -> Waker {
        loop {
            if let Some(w) = self.waker.lock().unwrap().take() {
                return w;
            }
            thread::park();
        }
    }

    /// The end-of-model checks: the future dropped once, each output produced dropped once,
    /// nothing reached the panic handler.
    fn check_exactly_once(&self) {
        fail_on_handled_panics();
        assert_eq!(World::count(&self.future_drops), 1, "the future must be dropped exactly once");
        let (made, dropped) = (World::count(&self.outputs), World::count(&self.output_drops));
        assert!(made <= 1, "the future produced {made} outputs");
        assert_eq!(dropped, made, "the output must be dropped exactly once (made {made}, dropped {dropped})");
    }
}

/// A value written by one model thread and read by another without a lock: a loom cell,
/// so a read not ordered after the write by happens-before is a causality violation.
struct Data(UnsafeCell<usize>);

// SAFETY: test code; loom checks every access for ordering.
unsafe impl Sync for Data {}

impl Data {
    fn write(&self, v: usize) {
        // SAFETY: one writer; loom checks the reader is ordered after it.
        self.0.with_mut(|p| unsafe { *p = v });
    }

    fn read(&self) -> usize {
        // SAFETY: as in `write`.
        self.0.with(|p| unsafe { *p })
    }
}

/// The future's result: its drop is counted.
struct Output {
    value: usize,
    world: Arc<World>,
}

impl Drop for Output {
    fn drop(&mut self) {
        // Relaxed: a count, read after every thread was joined.
        self.world.output_drops.fetch_add(1, Relaxed);
    }
}

/// `Pending` until `World::flag` is set; stores its waker on every pending poll (the
/// usual "register, then check" order, so a flag set after the check finds the waker).
struct WaitFlag {
    world: Arc<World>,
}

impl WaitFlag {
    fn new(world: &Arc<World>) -> WaitFlag {
        WaitFlag { world: world.clone() }
    }
}

impl Future for WaitFlag {
    type Output = Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
        let w = &self.world;
        w.store_waker(cx);
        // Acquire: pairs with `set_flag_and_take`'s Release.
        if !w.flag.load(Acquire) {
            return Poll::Pending;
        }
        // Relaxed: a count, read after every thread was joined.
        w.outputs.fetch_add(1, Relaxed);
        Poll::Ready(Output { value: VALUE, world: w.clone() })
    }
}

impl Drop for WaitFlag {
    fn drop(&mut self) {
        // Relaxed: a count, read after every thread was joined.
        self.world.future_drops.fetch_add(1, Relaxed);
    }
}

/// Stores its waker, unparks the model's thread and stays `Pending` for ever: only an
/// abort or the shutdown ends it.
struct Forever {
    world: Arc<World>,
}

impl Future for Forever {
    type Output = Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
        self.world.store_waker(cx);
        self.world.main.unpark();
        Poll::Pending
    }
}

impl Drop for Forever {
    fn drop(&mut self) {
        // Relaxed: a count, read after every thread was joined.
        self.world.future_drops.fetch_add(1, Relaxed);
    }
}

/// A join of a `WaitFlag` task that must have completed.
fn join_output(h: JoinHandle<Output>) {
    match h.join() {
        Ok(out) => assert_eq!(out.value, VALUE, "join received the future's value"),
        Err(TaskError::Panicked(p)) => std::panic::resume_unwind(p.into_inner()),
        Err(e) => panic!("the task did not complete: {e:?}"),
    }
}

// ---------------------------------------------------------------------------------------
// Models.

/// The wake models' thread: waits for the first poll (`take_waker`), writes
/// `World::data`, and wakes the task by value (A5) or by reference (A4, then the waker's
/// drop, T5).
fn wake_after_first_poll(world: &World, by_ref: bool) {
    let w = world.take_waker();
    world.data.write(VALUE);
    if by_ref {
        w.wake_by_ref();
        drop(w);
    } else {
        w.wake();
    }
}

/// (a) A wake by value (A5) racing the end of the first poll, and what the wake publishes.
/// The first poll stores its waker, unparks the model's thread and returns `Pending`; the
/// model's thread takes the waker, writes `World::data` (a loom cell: a read not ordered
/// after the write is a causality violation) and wakes it, finding the task running (→
/// `NOTIFIED`; the poll's end re-queues it on the worker's own deque, A3) or idle (→
/// queued through the injection queue). The second poll, which only the wake causes,
/// reads `data` into the output. When the wake found the task running, nothing but the
/// state word carries the write: the wake's Release CAS, A3's CAS in its release
/// sequence, and the next claim's Acquire (A1). The joiner gets the output once; the
/// future is dropped once.
fn poll_vs_wake() {
    model_async(1, 1, || {
        let world = World::new();
        let sched = build();
        let h = sched.spawn_async(ReadAfterWake { world: world.clone(), polls: 0 });
        wake_after_first_poll(&world, false);
        join_output(h);
        drop(sched);
        world.check_exactly_once();
    });
}

/// (b) As (a) with `wake_by_ref` (A4): on a running task it only sets `NOTIFIED`, on an
/// idle one it adds the queue's reference; the model's thread then drops its waker (T5)
/// while the worker may be completing and releasing the task.
fn wake_by_ref() {
    model_async(1, 1, || {
        let world = World::new();
        let sched = build();
        let h = sched.spawn_async(ReadAfterWake { world: world.clone(), polls: 0 });
        wake_after_first_poll(&world, true);
        join_output(h);
        drop(sched);
        world.check_exactly_once();
    });
}

/// `poll_vs_wake`'s and `wake_by_ref`'s future: the first poll stores its waker, unparks
/// the model's thread and returns `Pending`; the second (only a wake causes one) reads
/// `World::data` and returns it. No flag of its own: only the task's wake orders the
/// read after the model thread's write.
struct ReadAfterWake {
    world: Arc<World>,
    polls: usize,
}

impl Future for ReadAfterWake {
    type Output = Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
        self.polls += 1;
        let w = self.world.clone();
        if self.polls == 1 {
            w.store_waker(cx);
            w.main.unpark();
            return Poll::Pending;
        }
        let value = w.data.read();
        // Relaxed: a count, read after every thread was joined.
        w.outputs.fetch_add(1, Relaxed);
        Poll::Ready(Output { value, world: w })
    }
}

impl Drop for ReadAfterWake {
    fn drop(&mut self) {
        // Relaxed: a count, read after every thread was joined.
        self.world.future_drops.fetch_add(1, Relaxed);
    }
}

/// (c) `abort` (A6) racing the first poll, then a wake (A5) racing the abort's effect: the
/// abort finds the task queued (`ABORT` only; A1 drops the future), running (A3 drops it)
/// or idle (A6 queues it); the wake, with the flag set, finds whatever waker a poll
/// stored. The join reports `Cancelled` exactly when the abort won (and then no output
/// was made); either way the future is dropped once.
fn abort_vs_poll() {
    model_async(1, 1, || {
        let world = World::new();
        let sched = build();
        let h = sched.spawn_async(WaitFlag::new(&world));
        let aborted = h.abort();
        world.wake();
        match h.join() {
            Ok(out) => assert_eq!(out.value, VALUE, "join received the future's value"),
            Err(e) => {
                assert!(matches!(e, TaskError::Cancelled), "unexpected {e:?}");
                assert!(aborted, "only a won abort cancels");
                assert_eq!(World::count(&world.outputs), 0, "a cancelled future produced no output");
            }
        }
        drop(sched);
        world.check_exactly_once();
    });
}

/// (c') `abort` of a task that nothing will wake, racing its first poll: the task is
/// queued (A6 sets `ABORT`, A1 drops the future), running (A3 drops it) or idle after a
/// pending poll (A6 queues it and the worker's A1 drops the future). The join reports
/// `Cancelled`; a lost abort would leave the joiner parked for ever.
fn abort_idle() {
    model_async(1, 1, || {
        let world = World::new();
        let sched = build();
        let h = sched.spawn_async(WaitFlag::new(&world));
        assert!(h.abort(), "a pending task's abort wins");
        assert!(matches!(h.join(), Err(TaskError::Cancelled)), "an aborted task joins to Cancelled");
        drop(sched);
        world.check_exactly_once();
        assert_eq!(World::count(&world.outputs), 0, "a cancelled future produced no output");
    });
}

/// (d) The `JoinHandle` dropped (T3 + T5) while the task may be completing (A2, T2), then
/// the scheduler dropped: the model's thread sets the flag and wakes whatever waker a poll
/// stored, drops the handle and drops the scheduler, all racing the worker's polls. The
/// output, if the future got to produce it before the shutdown, is dropped exactly once,
/// by whichever of the completer and the handle comes second; the future is dropped once
/// (completed, or by the shutdown); the task is freed (loom's leak check).
fn handle_drop_vs_complete() {
    model_async(1, 1, || {
        let world = World::new();
        let sched = build();
        let h = sched.spawn_async(WaitFlag::new(&world));
        world.wake();
        drop(h);
        drop(sched);
        world.check_exactly_once();
    });
}

/// (e) A task that never completes, its scheduler dropped while the worker may still be
/// in its first poll, and a stale waker. The first poll stores its waker and unparks the
/// model's thread, which takes the waker and drops the scheduler: the drop closes it, and
/// the shutdown (A3 with `stopping`, or a sweep, A7) drops the pending future exactly
/// once — a sweep that finds the task running leaves it to its poller — and the join
/// reports `ShutDown`. Then the model's thread uses the waker after its scheduler is gone:
/// a `wake_by_ref` (A4), a clone, a `wake` (A5) and the clone's drop, which frees the
/// task (the orphan protocol kept the scheduler's memory for it).
fn stale_waker_after_drop() {
    model_async(1, 1, || {
        let world = World::new();
        let sched = build();
        let h = sched.spawn_async(Forever { world: world.clone() });
        let w = world.take_waker();
        drop(sched);
        let joined = h.join();
        assert!(
            matches!(joined, Err(TaskError::ShutDown)),
            "a future dropped by shutdown joins to ShutDown: {:?}",
            joined.err()
        );
        w.wake_by_ref();
        let w2 = w.clone();
        w.wake();
        drop(w2);
        world.check_exactly_once();
    });
}

/// (f) A wake that finds the task already queued publishes what the waker wrote: A5 on a
/// `NOTIFIED` task drops the waker's reference with a Release RMW on the state word, and
/// the claim that follows (A1) reads it with Acquire; no queue operation comes between
/// them to carry the write otherwise. The first poll spawns a closure onto the worker's
/// deque, wakes itself (`wake_by_ref` on a running task: `NOTIFIED`, and A3 re-queues it
/// behind the closure), stores its waker, unparks the model's thread and returns
/// `Pending`. The worker then takes the older entry, the closure, which holds it until
/// the model's thread has woken the task: it waits for `World::woken`, a Relaxed flag
/// that orders nothing. The model's thread takes the waker, writes `World::data` (a loom
/// cell), wakes the task, finding it queued, and sets `woken`. The second poll reads
/// `data` into the output.
///
/// (In `poll_vs_wake` a wake that finds the task running is carried the same way, by A3's
/// CAS in the wake's release sequence and the next claim; but there a loom SeqCst fence
/// between the two — the worker's deque pop, `asym::light` under loom — also orders the
/// write, so only this model shows that A1 needs its Acquire.)
fn wake_publishes() {
    model_async(1, 1, || {
        let world = World::new();
        let sched = build();
        let h = sched.spawn_async(QueuedWake { world: world.clone(), polls: 0 });
        let w = world.take_waker();
        world.data.write(VALUE);
        w.wake();
        // Relaxed: lets the closure on the worker go on; it must order nothing.
        world.woken.store(true, Relaxed);
        join_output(h);
        drop(sched);
        world.check_exactly_once();
    });
}

/// `wake_publishes`' future (see there); the second poll reads `World::data`.
struct QueuedWake {
    world: Arc<World>,
    polls: usize,
}

impl Future for QueuedWake {
    type Output = Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Output> {
        self.polls += 1;
        let w = self.world.clone();
        if self.polls == 1 {
            let held = w.clone();
            // Detached: runs on this worker before the re-queued task (the older entry).
            drop(filch::spawn(move || {
                // Relaxed: waits for the wake without synchronizing with it.
                while !held.woken.load(Relaxed) {
                    thread::yield_now();
                }
            }));
            cx.waker().wake_by_ref();
            w.store_waker(cx);
            w.main.unpark();
            return Poll::Pending;
        }
        let value = w.data.read();
        // Relaxed: a count, read after every thread was joined.
        w.outputs.fetch_add(1, Relaxed);
        Poll::Ready(Output { value, world: w })
    }
}

impl Drop for QueuedWake {
    fn drop(&mut self) {
        // Relaxed: a count, read after every thread was joined.
        self.world.future_drops.fetch_add(1, Relaxed);
    }
}

/// (g) TM1 racing TM2 on one shard: a thread inserts a timer (any deadline: under loom
/// only the order matters) and unparks the owner if `insert` says so; the owner arms its
/// shard and, having seen no timer, parks with no timeout — it must be unparked. Having
/// seen the timer it would park until it with a timeout (which under loom does not block),
/// so it just disarms. (TM2 returns a bound on the earliest deadline: the start of its
/// wheel slot, at most the deadline rounded up to a tick.)
fn timer_insert_vs_park() {
    model_async(2, 3, || {
        let timers = Arc::new(Timers::new(1));
        let parker = Arc::new(Parker::new());
        let deadline = Instant::now() + Duration::from_secs(3600);
        let inserter = {
            let (timers, parker) = (timers.clone(), parker.clone());
            thread::spawn(move || {
                let (_key, unpark) = timers.insert(0, deadline, Waker::noop().clone());
                if unpark {
                    parker.unpark();
                }
            })
        };
        match timers.arm(0) {
            None => parker.park(),
            Some(next) => assert!(next <= deadline + Duration::from_millis(1), "TM2 saw the inserted timer"),
        }
        timers.disarm(0);
        inserter.join().unwrap();
    });
}

/// (h) A cancel racing the owner's park, and later timers that must still end it. One
/// thread inserts timer A, cancels it (a sleep's drop) and then inserts a later timer B; a
/// second thread inserts timer C (also later than A). Each unparks the owner whenever
/// `insert` says so, then counts itself done. The owner loops: arm (TM2); with no timer,
/// park with no timeout; with one, "park until it" (a timeout, which under loom does not
/// block: time passes, and the loop yields); disarm (TM3) — until an arm that began after
/// both threads were done (so B and C are in the wheel) returns a deadline. A cancel
/// neither wakes the owner nor changes `armed`: a park armed for A just ends at A's
/// deadline and finds A gone. What must not happen is an insert that leaves the owner
/// parked with no timeout while B or C is pending: loom reports that as a deadlock.
fn timer_cancel_vs_park() {
    model_async(2, 2, || {
        let timers = Arc::new(Timers::new(1));
        let parker = Arc::new(Parker::new());
        let done = Arc::new(AtomicUsize::new(0));
        let now = Instant::now();
        let (a, b, c) =
            (now + Duration::from_secs(1), now + Duration::from_secs(2), now + Duration::from_secs(3));
        let insert = |timers: &Timers, parker: &Parker, at| {
            let (key, unpark) = timers.insert(0, at, Waker::noop().clone());
            if unpark {
                parker.unpark();
            }
            key
        };
        let canceller = {
            let (timers, parker, done) = (timers.clone(), parker.clone(), done.clone());
            thread::spawn(move || {
                let key = insert(&timers, &parker, a);
                timers.cancel(key);
                insert(&timers, &parker, b);
                // Release: pairs with the owner's Acquire load (this thread's inserts are done).
                done.fetch_add(1, Release);
            })
        };
        let other = {
            let (timers, parker, done) = (timers.clone(), parker.clone(), done.clone());
            thread::spawn(move || {
                insert(&timers, &parker, c);
                // Release: as in the canceller.
                done.fetch_add(1, Release);
            })
        };
        loop {
            // Acquire: pairs with the threads' Release increments.
            let both_done = done.load(Acquire) == 2;
            match timers.arm(0) {
                None => {
                    assert!(!both_done, "TM2 must see B and C once both were inserted");
                    parker.park();
                }
                Some(_) if both_done => break,
                Some(_) => {
                    // A park until that deadline: it ends by itself.
                    let _ = parker.park_timeout(Duration::ZERO);
                    thread::yield_now();
                }
            }
            timers.disarm(0);
        }
        timers.disarm(0);
        canceller.join().unwrap();
        other.join().unwrap();
    });
}

#[test]
fn async_task_poll_vs_wake() {
    poll_vs_wake();
}

#[test]
fn async_task_wake_by_ref() {
    wake_by_ref();
}

#[test]
fn async_task_abort_vs_poll() {
    abort_vs_poll();
}

#[test]
fn async_task_abort_idle() {
    abort_idle();
}

#[test]
fn async_task_handle_drop_vs_complete() {
    handle_drop_vs_complete();
}

#[test]
fn async_task_stale_waker_after_drop() {
    stale_waker_after_drop();
}

#[test]
fn async_task_wake_publishes() {
    wake_publishes();
}

#[test]
fn async_task_timer_insert_vs_park() {
    timer_insert_vs_park();
}

#[test]
fn async_task_timer_cancel_vs_park() {
    timer_cancel_vs_park();
}

// ---------------------------------------------------------------------------------------
// Mutants: each weakens one site and runs the model that catches it, in a child process.

mutant_test!(
    /// A4 forgets to set `NOTIFIED` on a running task: a `wake_by_ref` during the poll is
    /// lost, the task goes idle with nobody to wake it, and the joiner sleeps for ever.
    mutant_async_wake_running_notifies_caught_by_wake_by_ref,
    AsyncWakeRunningNotifies,
    wake_by_ref,
    "deadlock; threads"
);

mutant_test!(
    /// A3 lets a task go idle although a wake set `NOTIFIED` during its poll: the wake is
    /// lost and the joiner sleeps for ever.
    mutant_async_requeue_notified_caught_by_poll_vs_wake,
    AsyncRequeueNotified,
    poll_vs_wake,
    "deadlock; threads"
);

mutant_test!(
    /// A1 without Acquire: the poll after a wake that found the task queued reads what the
    /// waker wrote unordered (only the state word carries the write).
    mutant_async_claim_acquire_caught_by_wake_publishes,
    AsyncClaimAcquire,
    wake_publishes,
    "Causality violation"
);

mutant_test!(
    /// A7 claims a task that is being polled: the sweep drops the future under its poller,
    /// whose A3 then finds the task complete.
    mutant_async_sweep_skips_running_caught_by_stale_waker_after_drop,
    AsyncSweepSkipsRunning,
    stale_waker_after_drop,
    "a panic reached the scheduler's panic handler"
);

mutant_test!(
    /// A6 only sets `ABORT` on an idle task: nobody queues it, so nobody drops its future,
    /// and the joiner sleeps for ever.
    mutant_async_abort_queues_idle_caught_by_abort_idle,
    AsyncAbortQueuesIdle,
    abort_idle,
    "deadlock; threads"
);

mutant_test!(
    /// TM1 reads `armed` before inserting, outside the lock: a TM2 between the read and the
    /// insert parks with no timeout, and the insert, having read "not parked", does not
    /// unpark it.
    mutant_timer_arm_read_early_caught_by_timer_insert_vs_park,
    TimerArmReadEarly,
    timer_insert_vs_park,
    "deadlock; threads"
);

mutant_test!(
    /// TM1 skips the unpark while an earlier timer is pending: timer A is cancelled, the
    /// owner re-arms with nothing pending and parks with no timeout, and the inserts of B
    /// and C (later than A, whose deadline is still the shard's `due`) do not unpark it.
    mutant_timer_unpark_despite_pending_caught_by_timer_cancel_vs_park,
    TimerUnparkDespitePending,
    timer_cancel_vs_park,
    "deadlock; threads"
);

mutant_test!(
    /// A3 without its Acquire fence: the poller sees the `ABORT` a shutdown's sweep set
    /// but not the shutdown itself, and its join reports `Cancelled` (nobody aborted it).
    mutant_async_abort_seen_acquire_caught_by_stale_waker_after_drop,
    AsyncAbortSeenAcquire,
    stale_waker_after_drop,
    "joins to ShutDown: Some(Cancelled)"
);
