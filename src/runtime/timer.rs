//! Timers: one timer wheel per worker, fired by the workers themselves (no timer thread).
//!
//! Each worker owns a *shard*: a hierarchical wheel (`wheel.rs`) of wakers under a mutex,
//! with two words beside it. A sleep registers on the shard of the worker it runs on (from
//! any other thread: on the shards in turn); its drop cancels the entry in O(1).
//!
//! - `due`: the earliest pending deadline, in nanoseconds since the scheduler's origin
//!   (`u64::MAX`: none), so a worker checks "anything due?" with one load and no lock.
//! - `armed`: the deadline its worker parks until (`u64::MAX`: parked with no timer),
//!   or 0 while the worker is not parked.
//!
//! The owner fires its shard at every fairness step (`worker.rs`, every `FAIR_INTERVAL`th
//! task) and whenever it idles; an idle worker also fires the other shards that are due
//! (a worker stuck in a long task does not hold up the sleeps registered on it). A fired
//! entry's waker is woken on the firing worker, so the woken task is queued on that
//! worker (its wake slot, or its deque). An entry fires only once its deadline has passed (`Instant` comparison,
//! never the tick alone): a sleep never ends early.
//!
//! # Parking with timers (the park may not miss an earlier deadline)
//!
//! - **TM1 insert**: under the shard's lock, insert the entry, lower `due`, and read
//!   `armed`; after unlocking, if the new deadline is earlier than `armed`, unpark the
//!   shard's worker.
//! - **TM2 arm**: a worker about to park takes its shard's lock, stores `armed` = the
//!   wheel's next deadline (`u64::MAX` when empty), unlocks, and parks until then.
//! - **TM3 disarm**: after the park returns, it stores `armed = 0`.
//!
//! The lock orders TM1 and TM2: an insert after TM2 sees `armed` and unparks (the parker
//! keeps the token if the worker has not parked yet); an insert before TM2 is part of the
//! next deadline TM2 computes. A stale `armed` read after TM3 only costs a spurious unpark.
//! A cancel (a sleep's drop) only removes its entry: it neither wakes the worker nor
//! changes `armed` or `due`, so a park armed for a cancelled deadline ends then and finds
//! nothing due (a spurious wake-up, never a missed one). TM1 therefore compares the new
//! deadline with `armed` alone: an earlier pending timer does not make the unpark
//! unnecessary, since it may be cancelled before the park ends. (Loom models
//! `timer_insert_vs_park` and `timer_cancel_vs_park`; mutants `TimerArmReadEarly` and
//! `TimerUnparkDespitePending`.)

use std::task::Waker;
use std::time::Instant;

use crate::runtime::wheel::{Key, Wheel};
use crate::shim::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::{CachePadded, Mutex};

const NONE: u64 = u64::MAX;

/// One worker's timers.
pub(crate) struct Shard {
    wheel: Mutex<Wheel<Waker>>,
    due: AtomicU64,
    armed: AtomicU64,
}

/// The scheduler's timers: a shard per worker.
pub(crate) struct Timers {
    shards: Box<[CachePadded<Shard>]>,
    origin: Instant,
    /// Round-robin shard choice for sleeps registered off the workers.
    next: AtomicUsize,
}

/// A registered sleep: its shard and wheel key.
#[derive(Clone, Copy, Debug)]
pub(crate) struct TimerKey {
    shard: usize,
    key: Key,
}

impl Timers {
    /// Shards for `workers` workers.
    pub(crate) fn new(workers: usize) -> Timers {
        let origin = Instant::now();
        let shards = (0..workers.max(1))
            .map(|_| {
                CachePadded(Shard {
                    wheel: Mutex::new(Wheel::new(origin)),
                    due: AtomicU64::new(NONE),
                    armed: AtomicU64::new(0),
                })
            })
            .collect();
        Timers { shards, origin, next: AtomicUsize::new(0) }
    }

    fn nanos(&self, t: Instant) -> u64 {
        u64::try_from(t.saturating_duration_since(self.origin).as_nanos()).unwrap_or(NONE - 1)
    }

    fn lock(&self, shard: usize) -> crate::shim::MutexGuard<'_, Wheel<Waker>> {
        self.shards[shard].wheel.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Stores a shard's `due` from its wheel (caller holds the lock).
    fn update_due(&self, shard: usize, wheel: &Wheel<Waker>) {
        let due = wheel.next_deadline().map_or(NONE, |d| self.nanos(d));
        // Relaxed: a hint for the lock-free "anything due?" check; the lock orders the
        // entries themselves.
        self.shards[shard].due.store(due, Relaxed);
    }
}

impl Timers {
    /// The shard a sleep registers on when its thread is not one of the workers.
    pub(crate) fn any_shard(&self) -> usize {
        // Relaxed: only spreads registrations; any shard is correct.
        self.next.fetch_add(1, Relaxed) % self.shards.len()
    }

    /// TM1: registers `waker` on `shard`, to be woken once `deadline` has passed. Returns
    /// the key and whether the caller must unpark the shard's worker (after this returns:
    /// the lock is released by then).
    pub(crate) fn insert(&self, shard: usize, deadline: Instant, waker: Waker) -> (TimerKey, bool) {
        let at = self.nanos(deadline);
        let s = &self.shards[shard];
        // Mutant: reads `armed` before the insert, outside the lock, where a TM2 can come
        // between the read and the insert and park without this deadline.
        // Relaxed: the mutant's read orders nothing (that is its bug).
        let early = (!mutation::keep(Site::TimerArmReadEarly)).then(|| s.armed.load(Relaxed));
        let mut wheel = self.lock(shard);
        let key = wheel.insert(deadline, waker);
        // Relaxed (all three): under the shard's lock, which orders them with TM2.
        let due = s.due.load(Relaxed);
        if at < due {
            s.due.store(at, Relaxed);
        }
        let armed = early.unwrap_or_else(|| s.armed.load(Relaxed));
        drop(wheel);
        // Mutant: no unpark while an earlier timer is pending (`due`, which a cancel does
        // not raise), as if that timer would end the park; a cancel may take it away.
        let unpark = at < armed && (mutation::keep(Site::TimerUnparkDespitePending) || at < due);
        (TimerKey { shard, key }, unpark)
    }

    /// Whether a registered sleep is still pending; if so, its waker is replaced by
    /// `waker` unless that would wake the same task.
    pub(crate) fn pending(&self, k: TimerKey, waker: &Waker) -> bool {
        let mut wheel = self.lock(k.shard);
        match wheel.value_mut(k.key) {
            Some(w) => {
                if !w.will_wake(waker) {
                    w.clone_from(waker);
                }
                true
            }
            None => false,
        }
    }

    /// Cancels a registered sleep (its drop). The waker is dropped after unlocking.
    pub(crate) fn cancel(&self, k: TimerKey) {
        let waker = self.lock(k.shard).remove(k.key);
        drop(waker);
    }

    /// Whether `shard` may have an entry due at `now` (the lock-free hint).
    pub(crate) fn maybe_due(&self, shard: usize, now: Instant) -> bool {
        // Relaxed: a hint (module docs); a stale value only delays to the next check.
        self.shards[shard].due.load(Relaxed) <= self.nanos(now)
    }

    /// Whether `shard` has any entry (the lock-free hint).
    pub(crate) fn has_any(&self, shard: usize) -> bool {
        // Relaxed: as in `maybe_due`.
        self.shards[shard].due.load(Relaxed) != NONE
    }

    /// Moves the wakers of `shard`'s entries due at `now` into `buf`; `block`: wait for the
    /// lock (the owner) or give up if it is taken (a helping worker). The caller wakes
    /// them after this returns, outside the lock.
    pub(crate) fn expire(&self, shard: usize, now: Instant, block: bool, buf: &mut Vec<Waker>) {
        if !self.maybe_due(shard, now) {
            return;
        }
        let guard = if block {
            Some(self.lock(shard))
        } else {
            match self.shards[shard].wheel.try_lock() {
                Ok(g) => Some(g),
                Err(std::sync::TryLockError::Poisoned(e)) => Some(e.into_inner()),
                Err(std::sync::TryLockError::WouldBlock) => None,
            }
        };
        if let Some(mut wheel) = guard {
            wheel.expire(now, |w| buf.push(w));
            self.update_due(shard, &wheel);
        }
    }

    /// TM2: arms `shard` for its worker's park; returns the wheel's next deadline.
    pub(crate) fn arm(&self, shard: usize) -> Option<Instant> {
        let wheel = self.lock(shard);
        let next = wheel.next_deadline();
        let armed = next.map_or(NONE, |d| self.nanos(d).max(1));
        // Relaxed: under the lock, which orders it with TM1's read.
        self.shards[shard].armed.store(armed, Relaxed);
        next
    }

    /// TM3 after the park.
    pub(crate) fn disarm(&self, shard: usize) {
        // Relaxed: a stale value read by TM1 only costs a spurious unpark (module docs).
        self.shards[shard].armed.store(0, Relaxed);
    }

    /// Teardown (D4): takes every waker the wheels still hold, for the caller to drop.
    pub(crate) fn drain(&self) -> Vec<Waker> {
        let mut all = Vec::new();
        for shard in 0..self.shards.len() {
            let mut wheel = self.lock(shard);
            wheel.drain(|w| all.push(w));
            self.update_due(shard, &wheel);
        }
        all
    }

    /// Shards (one per worker).
    pub(crate) fn len(&self) -> usize {
        self.shards.len()
    }
}
