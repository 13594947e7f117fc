//! Loom models of stack jobs and their latch (`src/stack_job.rs`, J1–J4): the job behind
//! `join`'s second half and behind every construct injected from outside the scheduler.
//!
//! The creator waits on the latch (the plain-thread path: J3, then park) while another
//! thread executes the job (J1, J2). Each model asserts exactly-once (the closure ran
//! once, the creator got its result) and liveness (a lost wake-up is loom's deadlock).
//! After the wait the creator *reuses* the latch's memory (`scribble`: a write to the
//! cell holding the parker handle), standing for its frame being popped: any access the
//! executor makes after J2's swap then races with it, which loom reports.

use filch::loom_api::StackJob;
use filch::sync::mutation::{self, Site};
use filch::sync::Parker;
use loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use loom::sync::Arc;
use loom::thread;

use crate::model;

/// The creator waits (may park); another thread executes the job.
fn latch_executor_vs_waiter() {
    model(3, || {
        let parker = Arc::new(Parker::new());
        let runs = Arc::new(AtomicUsize::new(0));
        let r = runs.clone();
        let job = StackJob::new(
            move || {
                r.fetch_add(1, Relaxed);
                42usize
            },
            &parker,
        );
        // SAFETY: executed once below; the job outlives it (we wait on the latch).
        let entry = unsafe { job.entry() };
        // SAFETY: as above.
        let th = thread::spawn(move || unsafe { entry.execute() });
        job.wait(&parker);
        assert_eq!(job.take_result(), 42);
        assert_eq!(runs.load(Relaxed), 1);
        th.join().unwrap();
    });
}

/// A panicking job: the result carries the panic to the creator, which still returns.
fn latch_panicking_job() {
    model(3, || {
        let parker = Arc::new(Parker::new());
        let job = StackJob::new(|| -> u8 { std::panic::panic_any(7u32) }, &parker);
        // SAFETY: as in `latch_executor_vs_waiter`.
        let entry = unsafe { job.entry() };
        // SAFETY: as above.
        let th = thread::spawn(move || unsafe { entry.execute() });
        job.wait(&parker);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || job.take_result()));
        assert_eq!(r.unwrap_err().downcast_ref::<u32>(), Some(&7));
        th.join().unwrap();
    });
}

#[test]
fn latch_executor_vs_waiter_model() {
    latch_executor_vs_waiter();
}

#[test]
fn latch_panicking_job_model() {
    latch_panicking_job();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_latch_set_release_caught_by_executor_vs_waiter() {
    mutation::set(Site::LatchSetRelease);
    latch_executor_vs_waiter();
}

/// loom reports the race as the creator's write landing while the executor is still
/// inside its read of the cell (`with`), i.e. the executor touches freed memory.
#[test]
#[should_panic(expected = "currently reading from cell")]
fn mutant_latch_parker_after_set_caught_by_executor_vs_waiter() {
    mutation::set(Site::LatchParkerBeforeSet);
    latch_executor_vs_waiter();
}
