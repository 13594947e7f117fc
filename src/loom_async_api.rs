//! The timer shards (`runtime/timer.rs`, TM1–TM3) wrapped for the loom suite in
//! `loom-tests/` (a separate crate), as [`crate::loom_api`] wraps the task state machine.
//!
//! The async task steps (A1–A7, `task/future.rs`) need no wrapper: the loom models drive
//! them through the public API (`Scheduler::spawn_async`, `JoinHandle::abort`, task
//! wakers). The timers are crate-private, so [`Timers`] and [`TimerKey`] forward to
//! `crate::runtime::timer`'s, one method each. The parker the models pair them with is
//! the public `filch::sync::Parker`.
//!
//! Built only under `--cfg loom`; not part of filch's API.

use std::task::Waker;
use std::time::Instant;

/// `crate::runtime::timer::Timers`: one shard of timers per worker.
pub struct Timers(crate::runtime::timer::Timers);

/// A registered timer's key (`crate::runtime::timer::TimerKey`).
#[derive(Clone, Copy, Debug)]
pub struct TimerKey(crate::runtime::timer::TimerKey);

impl Timers {
    /// Shards for `workers` workers (at least one).
    pub fn new(workers: usize) -> Timers {
        Timers(crate::runtime::timer::Timers::new(workers))
    }

    /// TM1: registers `waker` on `shard` for `deadline`. The `bool` says whether the
    /// caller must unpark the shard's worker (it parked past `deadline`, or with no timer).
    pub fn insert(&self, shard: usize, deadline: Instant, waker: Waker) -> (TimerKey, bool) {
        let (key, unpark) = self.0.insert(shard, deadline, waker);
        (TimerKey(key), unpark)
    }

    /// TM2: arms `shard` for its worker's park; returns the earliest deadline (`None`: the
    /// worker parks with no timeout).
    pub fn arm(&self, shard: usize) -> Option<Instant> {
        self.0.arm(shard)
    }

    /// TM3: the worker's park returned.
    pub fn disarm(&self, shard: usize) {
        self.0.disarm(shard)
    }

    /// Cancels a registered timer (a sleep's drop).
    pub fn cancel(&self, key: TimerKey) {
        self.0.cancel(key.0)
    }
}
