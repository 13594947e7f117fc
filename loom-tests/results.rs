//! Loom models of taking results: a `JoinSet` fed by a task's completion (R1–R4 in
//! `src/structured/join_set.rs`) and a scoped handle's result cell (H1–H3 in
//! `src/structured/scoped_handle.rs`), each on the real one-worker scheduler of
//! `sched.rs`. Both assert exactly-once (the one result comes out once, then nothing) and
//! liveness (a lost notice or wake-up is loom's deadlock).

use filch::{JoinSet, Scheduler};
use loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use loom::sync::Arc;

use crate::task::{model_capped, mutant_test};

fn build() -> Scheduler {
    Scheduler::builder()
        .workers(1)
        .pin(false)
        .idle(filch::Idle::Park { spins: 0, yields: 0 })
        .pool_capacity(filch::MIN_POOL_CAPACITY)
        .deque_capacity(filch::MIN_DEQUE_CAPACITY)
        .build()
        .expect("valid settings")
}

/// The model's thread (not a worker) inserts a task's handle (R1: registers the notice
/// waker, or finds the task done), then blocks in `join_next` (R3/R4) while the worker
/// runs the task, whose completion wakes the notice waker (R2). The result comes out
/// once, the set is then empty, and the task ran once. 3.5 s at one preemption (the cap),
/// 67 s at two on a busy two-core machine.
fn join_set_notice() {
    model_capped(1, 1, || {
        let sched = build();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let mut set = JoinSet::new();
        set.insert(sched.spawn(move || {
            // Relaxed: a count, read after the scheduler was dropped (its threads joined).
            r.fetch_add(1, Relaxed);
            7usize
        }));
        assert_eq!(set.join_next().expect("one result").expect("it ran"), 7);
        assert!(set.join_next().is_none(), "and only one");
        drop(sched);
        // Relaxed: as above.
        assert_eq!(ran.load(Relaxed), 1, "the task ran exactly once");
    });
}

/// `scope` from the model's thread: a task spawned with a handle hands its value back
/// through the result cell (H1) to the body's `join` (H2), which may find it done or
/// register and park. The value, a `String` written by the task, must be readable by the
/// joiner (loom checks the cell accesses for a happens-before edge). 4 s at two
/// preemptions (the cap).
fn scoped_handle_join() {
    model_capped(1, 2, || {
        let sched = build();
        let v = sched.scope(|s| {
            let h = s.spawn_with_handle(|_| String::from("value"));
            h.join().expect("the task ran")
        });
        assert_eq!(v, "value");
        drop(sched);
    });
}

#[test]
fn results_join_set_notice() {
    join_set_notice();
}

#[test]
fn results_scoped_handle_join() {
    scoped_handle_join();
}

mutant_test!(
    /// R4 without its re-check under the lock: a notice pushed between the owner's look
    /// and its registration found no waiter, and the owner sleeps beside it.
    mutant_join_set_wait_rechecks_caught_by_join_set_notice,
    JoinSetWaitRechecks,
    join_set_notice,
    "deadlock; threads"
);

mutant_test!(
    /// H1's swap without AcqRel: a joiner that sees `DONE` reads the result cell with no
    /// happens-before edge to the task's write.
    mutant_scoped_handle_finish_caught_by_scoped_handle_join,
    ScopedHandleFinishAcqRel,
    scoped_handle_join,
    "Causality violation"
);
