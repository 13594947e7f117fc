//! Loom models of worker roles and spare threads (`src/runtime/roles.rs`, B1–B5) in the
//! real `Scheduler`: one worker, at most one spare thread, the smallest pool and deque,
//! and a worker that parks as soon as it has nothing to do (as in `sched.rs`).
//!
//! A task blocks in `block_in_place` until another task, queued behind it on the same
//! worker, sets a flag. That task can run only if the blocked one handed its role to the
//! spare (B1); the blocked one can finish only if it gets the role back (B2/B3) once the
//! flag is set. Each model asserts exactly-once (both tasks ran once and joined to their
//! values), and ends: a role lost on the way, or a claimant nobody serves, leaves a thread
//! parked for ever (loom reports the deadlock). Two threads holding the role at once would
//! touch its pool magazine (a loom cell) unordered, which loom reports as a causality
//! violation.

use std::time::Duration;

use filch::{Idle, Scheduler};
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use loom::sync::Arc;
use loom::thread;

use crate::task::{model_capped, mutant_test};

fn build() -> Scheduler {
    Scheduler::builder()
        .workers(1)
        .pin(false)
        .idle(Idle::Park { spins: 0, yields: 0 })
        .pool_capacity(filch::MIN_POOL_CAPACITY)
        .deque_capacity(filch::MIN_DEQUE_CAPACITY)
        .max_spare_threads(1)
        // Under loom a timed park does not block: an idle spare would spin. It never
        // retires here.
        .thread_keep_alive(Duration::MAX)
        .build()
        .expect("valid settings")
}

/// (a) B1 then B2/B3: a task spawns the setter on its own deque, then blocks until the
/// flag is set. Its role goes to the spare, which runs the setter; the role comes back to
/// the blocked thread (from the spare between tasks, or when it goes idle), and both
/// tasks complete once.
fn lend_and_claim() {
    model_capped(1, 1, || {
        let sched = build();
        let flag = Arc::new(AtomicBool::new(false));
        let runs = Arc::new(AtomicUsize::new(0));
        let blocked = {
            let (flag, runs) = (flag.clone(), runs.clone());
            sched.spawn(move || {
                let setter = {
                    let (flag, runs) = (flag.clone(), runs.clone());
                    filch::spawn(move || {
                        // Release: pairs with the blocked task's Acquire.
                        flag.store(true, Release);
                        // Relaxed: a count, read after the joins.
                        runs.fetch_add(1, Relaxed);
                    })
                };
                filch::block_in_place(|| {
                    // Acquire: pairs with the setter's Release.
                    while !flag.load(Acquire) {
                        thread::yield_now();
                    }
                });
                // Relaxed: a count, read after the joins.
                runs.fetch_add(1, Relaxed);
                drop(setter);
                1usize
            })
        };
        assert_eq!(blocked.join().unwrap(), 1);
        drop(sched);
        // Relaxed: every thread was joined by the drop.
        assert_eq!(runs.load(Relaxed), 2, "each task ran exactly once");
    });
}

#[test]
fn roles_lend_and_claim() {
    lend_and_claim();
}

mutant_test!(
    /// B3's grant without Release: the claimant's first touch of the role's magazine is
    /// not ordered after the spare's last one.
    mutant_role_grant_release_caught_by_lend_and_claim,
    RoleGrantRelease,
    lend_and_claim,
    "Causality violation"
);

mutant_test!(
    /// B2 without its fence: the spare goes to sleep without seeing the claim, and the
    /// claimant's wake-up misses the spare's sleeper bit; both wait for ever.
    mutant_role_claim_fence_caught_by_lend_and_claim,
    RoleClaimFence,
    lend_and_claim,
    "deadlock"
);
