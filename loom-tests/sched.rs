//! Loom models of the whole `Scheduler` with one worker.
//!
//! The real scheduler, built with the smallest settings the builder accepts
//! (`pool_capacity(64)`, `deque_capacity(16)`), one unpinned worker and
//! `Idle::Park { spins: 0, yields: 0 }` (a worker with nothing to do goes straight to the
//! K3 sleep protocol), runs on loom's threads; its parkers are loom's `Mutex` + `Condvar`.
//! Every model asserts exactly-once: each closure either ran once or was refused or
//! cancelled, and is dropped exactly once; each `JoinHandle` joins to the matching result;
//! and the model ends, so nothing is left queued with the worker asleep (loom reports a
//! deadlock otherwise) and the `Scheduler`'s drop returns.
//!
//! `shutdown_vs_spawn` found a lost wake-up at shutdown: a worker that went to sleep after
//! `close` had woken every sleeper, because a spawn that was about to be refused still
//! showed in the lifecycle word, slept forever and `drop` hung. The fix is L5 in
//! `src/scheduler.rs`; the mutant `LifecycleLastLeaverWakes` removes it again.
//!
//! Run times grow 10–40× per preemption here, so each model has a cap on the preemption
//! bound (`crate::task::model_capped`) that `LOOM_MAX_PREEMPTIONS` cannot raise; the times
//! are in each model's docs.

use filch::{Idle, Scheduler, TaskError};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

use crate::task::{model_capped, mutant_test};

/// One worker: a second makes every execution too long for loom (a worker whose search
/// finds the injection queue claimed by the other worker retries without a spin hint, so
/// under a spent preemption bound it loops until loom's branch limit).
fn build() -> Scheduler {
    builder().build().expect("valid settings")
}

/// The settings of [`build`], for a model that adds its own.
fn builder() -> filch::Builder {
    Scheduler::builder()
        .workers(1)
        .pin(false)
        .idle(Idle::Park { spins: 0, yields: 0 })
        .pool_capacity(filch::MIN_POOL_CAPACITY)
        .deque_capacity(filch::MIN_DEQUE_CAPACITY)
}

/// How often the closures ran and were dropped.
#[derive(Default)]
struct Counts {
    ran: AtomicUsize,
    dropped: AtomicUsize,
}

impl Counts {
    fn get(c: &AtomicUsize) -> usize {
        // Relaxed: read after the threads that count were joined.
        c.load(Relaxed)
    }
}

/// Captured by a task's closure: counts the closure's drop (after it ran, or unrun).
struct DropCount(Arc<Counts>);

impl Drop for DropCount {
    fn drop(&mut self) {
        // Relaxed: a count, read after every counting thread was joined.
        self.0.dropped.fetch_add(1, Relaxed);
    }
}

/// A task returning `value` that counts its run and its closure's drop.
fn task(counts: &Arc<Counts>, value: usize) -> impl FnOnce() -> usize + Send + 'static {
    let guard = DropCount(counts.clone());
    move || {
        let guard = guard;
        // Relaxed: a count, read after every counting thread was joined.
        guard.0.ran.fetch_add(1, Relaxed);
        value
    }
}

/// (a) External injection: the model's thread (not a worker) spawns `n` tasks through the
/// injection queue (L1–L3, then K1) while the worker may be going to sleep (K3), joins
/// them, then drops the scheduler. A spawn racing the last worker going to sleep must
/// still run.
fn external_injection(n: usize) {
    let counts = Arc::new(Counts::default());
    let sched = build();
    let handles: Vec<_> = (0..n).map(|i| sched.spawn(task(&counts, i))).collect();
    for (i, h) in handles.into_iter().enumerate() {
        assert_eq!(h.join().expect("the task ran"), i, "join received the task's value");
    }
    drop(sched);
    assert_eq!(Counts::get(&counts.ran), n, "each task ran exactly once");
    assert_eq!(Counts::get(&counts.dropped), n, "each closure was dropped exactly once");
}

/// One task: 1 s at two preemptions, 11 s at three (the cap).
fn injection_one() {
    model_capped(2, 3, || external_injection(1));
}

/// Two tasks (the worker takes a batch; the second join may find it done or wait): 1.5 s at
/// one preemption (the cap), 39 s at two.
fn injection_two() {
    model_capped(1, 1, || external_injection(2));
}

/// (b) Shutdown racing spawn: another thread spawns through a `Handle` and joins while the
/// model's thread drops the `Scheduler` (L4). The task either ran exactly once or was
/// refused (its handle joins to `ShutDown`); its closure is dropped exactly once.
///
/// 0.9 s at two preemptions, 26 s at three (the cap).
fn shutdown_vs_spawn() {
    model_capped(2, 3, || spawn_while_dropping(build()));
}

/// The body of (b) and (b'): another thread spawns a task returning 7 through a `Handle`
/// of `sched` and joins it while this one drops `sched`. The task ran exactly once, or it
/// was refused or dropped unrun (its handle joins to `ShutDown`); its closure was dropped
/// exactly once.
fn spawn_while_dropping(sched: Scheduler) {
    let counts = Arc::new(Counts::default());
    let spawner = {
        let (handle, counts) = (sched.handle(), counts.clone());
        thread::spawn(move || handle.spawn(task(&counts, 7)).join())
    };
    drop(sched);
    let joined = spawner.join().unwrap();
    let ran = Counts::get(&counts.ran);
    match joined {
        Ok(v) => assert_eq!((v, ran), (7, 1), "an accepted task runs exactly once"),
        Err(e) => {
            assert!(matches!(e, TaskError::ShutDown), "unexpected {e:?}");
            assert_eq!(ran, 0, "a refused or dropped task never runs");
        }
    }
    assert_eq!(Counts::get(&counts.dropped), 1, "the closure was dropped exactly once");
}

/// (b') Shutdown racing spawn while the only worker is lost: as (b), but the worker's
/// run loop panics the first time it would park (`Builder::inject_loop_panics`), so it is
/// lost, before or after the drop's close (L4). The last worker lost must close the
/// scheduler and wait for every external spawn to leave (L3) also when the scheduler is
/// already shutting down; otherwise the drop settles (D4) while the spawn still holds its
/// entry, and its task is queued after the last drain: never run, never dropped, and its
/// join waits forever. 16 s at two preemptions (the cap: three ran past 120 s).
fn lost_worker_vs_spawn() {
    model_capped(2, 2, || {
        let sched = builder()
            .inject_loop_panics(1)
            // The loss is reported to the handler; the model only checks what follows.
            .panic_handler(|_| {})
            .build()
            .expect("valid settings");
        spawn_while_dropping(sched);
    });
}

/// (b'') A batch spawned from outside whose iterator drops the scheduler part-way: it
/// yields one task, then drops the `Scheduler` (the model keeps a `Handle`) and yields a
/// second. The iterator must run before the batch takes its L1 entry: the drop waits for
/// the worker, and the worker leaves only once no entry is held, so an iterator run under
/// the entry waits for its own thread. Checks: the drop inside the iterator returns, both
/// tasks join to `ShutDown` unrun (the scheduler was closed before the batch entered), and
/// each closure was dropped once. Timing in VERIFICATION.
fn batch_iterator_drops_scheduler() {
    model_capped(2, 2, || {
        let sched = build();
        let handle = sched.handle();
        let counts = Arc::new(Counts::default());
        let mut sched = Some(sched);
        let mut first = Some(task(&counts, 1));
        let mut second = Some(task(&counts, 2));
        let tasks = std::iter::from_fn(move || {
            if let Some(t) = first.take() {
                return Some(t);
            }
            drop(sched.take());
            second.take()
        });
        for joined in handle.spawn_batch(tasks).join_all() {
            assert!(matches!(joined, Err(TaskError::ShutDown)), "unexpected {joined:?}");
        }
        assert_eq!(Counts::get(&counts.ran), 0, "a refused task never runs");
        assert_eq!(Counts::get(&counts.dropped), 2, "each closure was dropped exactly once");
    });
}

/// The exactly-once check after a `cancel` of a task that returns 3 (`task(&counts, 3)`):
/// a won cancel joins to `Cancelled` and never ran, a lost one ran once and joins to 3;
/// either way the closure was dropped exactly once.
fn assert_cancelled_or_ran_once(counts: &Counts, cancelled: bool, joined: Result<usize, TaskError>) {
    let ran = Counts::get(&counts.ran);
    if cancelled {
        assert!(matches!(joined, Err(TaskError::Cancelled)), "a won cancel joins to Cancelled");
        assert_eq!(ran, 0, "a cancelled task never runs");
    } else {
        assert_eq!((joined.expect("ran"), ran), (3, 1), "an uncancelled task runs exactly once");
    }
    assert_eq!(Counts::get(&counts.dropped), 1, "the closure was dropped exactly once");
}

/// (c) The real `JoinHandle::cancel` racing the worker for a queued task (T1 decides).
/// 0.8 s at two preemptions, 9 s at three (the cap).
fn cancel_vs_worker() {
    model_capped(2, 3, || {
        let counts = Arc::new(Counts::default());
        let sched = build();
        let h = sched.spawn(task(&counts, 3));
        let cancelled = h.cancel();
        let joined = h.join();
        drop(sched);
        assert_cancelled_or_ran_once(&counts, cancelled, joined);
    });
}

/// Captured by the panic handler of `cancel_vs_drop_heap`'s scheduler, so it is dropped
/// exactly when the scheduler's shared state is freed.
struct FreedFlag(Arc<AtomicBool>);

impl Drop for FreedFlag {
    fn drop(&mut self) {
        // SeqCst: the model's check below must be able to see the free in any interleaving
        // loom picks after it; the flag orders nothing else.
        self.0.store(true, SeqCst);
    }
}

/// A scheduler whose shared state's free is observed: its panic handler owns a
/// [`FreedFlag`], dropped with the state; the flag reads `true` once the state is freed.
fn build_watched() -> (Scheduler, Arc<AtomicBool>) {
    let freed = Arc::new(AtomicBool::new(false));
    let flag = FreedFlag(freed.clone());
    let sched = builder()
        .panic_handler(move |_| {
            let _ = &flag;
        })
        .build()
        .expect("valid settings");
    (sched, freed)
}

/// (c') `JoinHandle::cancel` on a *heap* task (its closure is over the inline size)
/// racing `drop(Scheduler)`. The canceller claims the task and drops its closure while the
/// worker pops it, fails its claim, gives its reference up and exits, and the drop
/// finishes; then `cancel` counts itself in the shared state's stats. The shared state must
/// outlive every task a handle still holds (orphan protocol), heap tasks included: the
/// model checks that it is not freed while the canceller still holds its handle, and that
/// the closure ran or was dropped exactly once. 0.3 s at two preemptions (the cap).
fn cancel_vs_drop_heap() {
    model_capped(2, 2, || {
        let counts = Arc::new(Counts::default());
        let (sched, freed) = build_watched();
        let inner = task(&counts, 3);
        let pad = [7u8; filch::TASK_INLINE_BYTES];
        let h = sched.spawn(move || inner() + pad[0] as usize - 7);
        let canceller = {
            let freed = freed.clone();
            thread::spawn(move || {
                let cancelled = h.cancel();
                assert!(!freed.load(SeqCst), "the shared state was freed while a handle held its task");
                (cancelled, h.join())
            })
        };
        drop(sched);
        let (cancelled, joined) = canceller.join().unwrap();
        assert_cancelled_or_ran_once(&counts, cancelled, joined);
        assert!(freed.load(SeqCst), "the last handle's free released the shared state");
    });
}

/// (c'') Handle units (`shared.rs`, "Handle units"): a task on the worker clones a handle
/// (HU1 for a batch, into the worker's credit) and drops it (into the credit); a thread
/// drops another clone (HU2 on the shared word) while the scheduler is dropped, and the
/// worker gives its credit back as it exits. The handle the main thread keeps must still
/// reach the shared state after all of that, and its drop, the last unit's, must free it.
/// 3 s at one preemption (the cap: two take 70 s, too long for every CI run).
fn handle_units() {
    model_capped(1, 1, || {
        let (sched, freed) = build_watched();
        let h = sched.handle();
        let for_task = h.clone();
        let t = sched.spawn(move || {
            let again = for_task.clone();
            drop(for_task);
            again.num_workers()
        });
        let other = h.clone();
        let dropper = thread::spawn(move || drop(other));
        assert_eq!(t.join().unwrap(), 1);
        drop(sched);
        dropper.join().unwrap();
        assert!(!freed.load(SeqCst), "the shared state was freed while a handle still held it");
        assert_eq!(h.num_workers(), 1);
        drop(h);
        assert!(freed.load(SeqCst), "the last handle's drop did not free the shared state");
    });
}

/// A value written by a task through a borrow and read by the thread that waited for it:
/// a `loom::cell::UnsafeCell`, so a missing happens-before edge is a causality violation.
struct Slot(loom::cell::UnsafeCell<usize>);

// SAFETY: test code; every access is checked by loom for ordering.
unsafe impl Sync for Slot {}

impl Slot {
    fn write(&self, v: usize) {
        // SAFETY: one writer per slot; loom checks the reader is ordered after it.
        self.0.with_mut(|p| unsafe { *p = v });
    }
    fn read(&self) -> usize {
        // SAFETY: as above.
        self.0.with(|p| unsafe { *p })
    }
}

/// (d) `scope` from a plain thread: two tasks write borrowed slots; `scope` returns only
/// after both ran (S1–S4), and their writes are visible (S3's AcqRel chain, then J2/J4).
/// The tasks go through the injection queue; the only worker may be asleep (K1/K3).
fn external_scope() {
    model_capped(1, 2, || {
        let sched = build();
        let slots = [Slot(loom::cell::UnsafeCell::new(0)), Slot(loom::cell::UnsafeCell::new(0))];
        sched.scope(|s| {
            for (i, slot) in slots.iter().enumerate() {
                s.spawn(move |_| slot.write(i + 1));
            }
        });
        assert_eq!(
            (slots[0].read(), slots[1].read()),
            (1, 2),
            "each scope task ran once, before scope returned"
        );
        drop(sched);
    });
}

/// (d') `scope` whose task spawns a child on the worker: the child is paid for from the
/// task's frame credit (S1: one `fetch_add` of `CREDIT_CHUNK`, one unit handed out), and
/// the task's S3 gives back its own count plus the unspent rest. `scope` returns exactly
/// when both ran, with both writes visible.
fn scope_credit() {
    model_capped(1, 2, || {
        let sched = build();
        let slots = [Slot(loom::cell::UnsafeCell::new(0)), Slot(loom::cell::UnsafeCell::new(0))];
        let slots = &slots;
        sched.scope(|s| {
            s.spawn(move |s| {
                s.spawn(move |_| slots[1].write(2));
                slots[0].write(1);
            });
        });
        assert_eq!(
            (slots[0].read(), slots[1].read()),
            (1, 2),
            "the task and its child ran once, before scope returned"
        );
        drop(sched);
    });
}

/// (e) `join` from a plain thread: the whole join is one injected stack job (`in_pool`);
/// on the worker `b` is pushed as a second stack job and popped back. Both results come
/// back exactly once.
fn external_join() {
    model_capped(2, 2, || {
        let sched = build();
        let counts = Arc::new(Counts::default());
        let (a, b) = sched.join(task(&counts, 1), task(&counts, 2));
        assert_eq!((a, b), (1, 2));
        drop(sched);
        assert_eq!(Counts::get(&counts.ran), 2, "each half ran exactly once");
        assert_eq!(Counts::get(&counts.dropped), 2, "each closure was dropped exactly once");
    });
}

#[test]
fn sched_external_scope() {
    external_scope();
}

#[test]
fn sched_scope_credit() {
    scope_credit();
}

#[test]
fn sched_external_join() {
    external_join();
}

#[test]
fn sched_external_injection() {
    injection_one();
}

#[test]
fn sched_external_injection_two_tasks() {
    injection_two();
}

#[test]
fn sched_shutdown_vs_spawn() {
    shutdown_vs_spawn();
}

#[test]
fn sched_lost_worker_vs_spawn() {
    lost_worker_vs_spawn();
}

#[test]
fn sched_batch_iterator_drops_scheduler() {
    batch_iterator_drops_scheduler();
}

#[test]
fn sched_cancel_vs_worker() {
    cancel_vs_worker();
}

#[test]
fn sched_cancel_vs_drop_heap() {
    cancel_vs_drop_heap();
}

#[test]
fn sched_handle_units() {
    handle_units();
}

mutant_test!(
    /// The handle units without their strong count of the `Arc`: the scheduler's drop and
    /// the worker's exit free the shared state while the main thread's handle holds it.
    mutant_handle_units_hold_arc_caught_by_handle_units,
    HandleUnitsHoldArc,
    handle_units,
    "the shared state was freed while a handle still held it"
);

mutant_test!(
    /// A worker that keeps its handle-unit credit when it exits: the last handle's drop
    /// never brings the units to zero, and the shared state leaks.
    mutant_handle_credit_returned_caught_by_handle_units,
    HandleCreditReturned,
    handle_units,
    "the last handle's drop did not free the shared state"
);

mutant_test!(
    /// Heap tasks left out of the orphan protocol's balance, as before the fix: the
    /// scheduler's drop frees the shared state as soon as its worker exits, while a handle
    /// to a heap task still exists and its `cancel` is about to write the stats row.
    mutant_orphan_counts_heap_caught_by_cancel_vs_drop_heap,
    OrphanCountsHeap,
    cancel_vs_drop_heap,
    "the shared state was freed while a handle held its task"
);

// Mutation evidence: each test weakens one site and runs the model that catches it (in a
// child process, see `crate::task::in_child`); it passes only if the model fails.

mutant_test!(
    /// Without L5, a worker that went to sleep after `close`'s wake-up because a refused
    /// spawn was still in flight (it saw `SHUTDOWN + 1`) is never woken: `drop` hangs. This
    /// is the bug the model found; L5 is its fix.
    mutant_lifecycle_last_leaver_wakes_caught_by_shutdown_vs_spawn,
    LifecycleLastLeaverWakes,
    shutdown_vs_spawn,
    "deadlock; threads"
);

mutant_test!(
    /// The last lost worker of a scheduler that is already shutting down leaves without
    /// waiting for the spawn in flight, as before the fix: the drop settles (D4) first, the
    /// task is queued after the last drain, and its join waits forever.
    mutant_lost_worker_waits_closed_caught_by_lost_worker_vs_spawn,
    LostWorkerWaitsClosed,
    lost_worker_vs_spawn,
    "deadlock; threads"
);

mutant_test!(
    /// A batch from outside that runs its iterator while it holds its L1 entry, as before
    /// the fix: the scheduler's drop inside the iterator waits for the worker, which waits
    /// for the entry to be given back.
    mutant_batch_collects_first_caught_by_batch_iterator_drops_scheduler,
    BatchCollectsFirst,
    batch_iterator_drops_scheduler,
    "deadlock; threads"
);

mutant_test!(
    /// L3 without Release: the worker sees the spawn gone (`SHUTDOWN`) but not its task,
    /// exits, and the task is never run.
    mutant_lifecycle_leave_release_caught_by_shutdown_vs_spawn,
    LifecycleLeaveRelease,
    shutdown_vs_spawn,
    "deadlock; threads"
);

mutant_test!(
    /// L4's exit check without Acquire: the same lost task, from the worker's side.
    mutant_lifecycle_closed_acquire_caught_by_shutdown_vs_spawn,
    LifecycleClosedAcquire,
    shutdown_vs_spawn,
    "deadlock; threads"
);

mutant_test!(
    /// K1 without its SC fence, in the real scheduler: the injected task is left queued
    /// while the only worker sleeps.
    mutant_sleep_notify_fence_caught_by_external_injection,
    SleepNotifyFence,
    injection_one,
    "deadlock; threads"
);

mutant_test!(
    /// K3 without its SC fence, in the real scheduler.
    mutant_sleep_prepare_fence_caught_by_external_injection,
    SleepPrepareFence,
    injection_one,
    "deadlock; threads"
);

mutant_test!(
    /// J2 without Release, in the real scheduler: the scope's latch no longer carries the
    /// tasks' writes to the thread that waited, which reads them.
    mutant_latch_set_release_caught_by_external_scope,
    LatchSetRelease,
    external_scope,
    "Causality violation"
);

mutant_test!(
    /// S1 handing a child credit that was never reserved: `pending` undercounts, the
    /// task's S3 gives back more than was added, and the count never lands on zero.
    mutant_scope_credit_reserve_caught_by_scope_credit,
    ScopeCreditReserve,
    scope_credit,
    "deadlock"
);

mutant_test!(
    /// S3 without AcqRel: the first task's write is not carried by the last decrement, so
    /// the thread that waited reads it unordered.
    mutant_scope_done_acq_rel_caught_by_external_scope,
    ScopeDoneAcqRel,
    external_scope,
    "Causality violation"
);
