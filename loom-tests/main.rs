//! Loom model checks of filch's lock-free structures.
//!
//! Built only with `--cfg loom` (`make loom`, or the bounded run inside `make test`);
//! in an ordinary build this test target is empty. Every model asserts exactly-once
//! (nothing lost, nothing taken twice), and every ordering the code routes through
//! `filch::sync::mutation` has a `#[should_panic]` test here showing that weakening it
//! makes some model fail. `docs/VERIFICATION.md` tabulates models, bounds and catches.
#![cfg(loom)]

mod async_task;
mod chan;
mod deque;
mod inject;
mod next_slot;
mod park;
mod pool;
mod results;
mod roles;
mod sched;
mod sleep;
mod spin;
mod stack_job;
mod sync_prims;
mod task;

/// Runs `f` under loom with the preemption bound given by `LOOM_MAX_PREEMPTIONS`, or
/// `default_bound` when unset, so `make test` stays quick and `make loom` goes deeper.
pub fn model<F: Fn() + Sync + Send + 'static>(default_bound: usize, f: F) {
    let mut b = loom::model::Builder::new();
    if b.preemption_bound.is_none() {
        b.preemption_bound = Some(default_bound);
    }
    b.check(f);
}
