//! Who searches, who sleeps, and who wakes whom — without lost wakeups.
//!
//! A worker is in one of three roles: *running* a task, *searching* for one (spinning or
//! yielding between search rounds), or *sleeping* (parked on its futex). `searching` counts
//! searchers; `sleepers` is a bitmap of workers that announced they are going to park.
//!
//! # Protocol
//!
//! - **K1 (publish)**: a spawner makes its task visible (deque push or injection), then
//!   `fence(SeqCst)`, then loads `searching` (Acquire). If it is non-zero, a searcher will
//!   find the task (K3/K4 guarantee it); the spawner is done. If it is zero, K2.
//! - **K2 (wake one)**: clear one set bit of `sleepers` by CAS; the winner adds one to
//!   `searching` *on behalf of* the woken worker and unparks it. No bit set: nobody sleeps;
//!   every worker is running or about to re-check (K3), which will see the task.
//! - **K3 (go to sleep)**: a worker sets its `sleepers` bit, then (if it was searching)
//!   decrements `searching` with Release, then `fence(SeqCst)`, then re-checks every queue
//!   and the shutdown flag. If anything is there it cancels: it clears its own bit (if a
//!   waker already cleared it, the waker also counted it as searching and left a park token,
//!   which only makes one later park return at once) and searches again. Otherwise it parks.
//! - **K4 (hand off)**: a searcher that stops searching (found work, or its join completed)
//!   decrements `searching`; if it was the last searcher it does `fence(SeqCst)` and, if any
//!   queue still holds work, performs K2 so that the work it leaves behind has a searcher.
//! - **K5 (wake up)**: a parked worker that wakes and finds its own bit still set (woken by a
//!   join completing or by shutdown, not by K2) clears it and counts itself as searching.
//!
//! # Why no task is left queued while every worker sleeps
//!
//! K1 and K3/K4 are the two sides of a store-buffering pattern: the spawner writes the queue
//! then reads `searching`; the worker writes `searching` then reads the queue, each with a
//! `fence(SeqCst)` between. The fences forbid both reads missing both writes. So either the
//! worker's re-check sees the task (it does not park), or the spawner sees the decremented
//! `searching` — and since the decrement is a Release that follows the `sleepers` bit in
//! program order, the spawner's Acquire load makes the bit visible to its K2, which wakes
//! the worker. A searcher that ends its search without the task is covered the same way by
//! K4. `docs/DESIGN.md` has the case analysis; the loom model `sleep_*` checks it.

use crate::shim::atomic::{AtomicU64, AtomicUsize, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::CachePadded;

/// The searchers count and the sleepers bitmap of one scheduler.
pub(crate) struct Sleep {
    searching: CachePadded<AtomicUsize>,
    sleepers: Box<[AtomicU64]>,
    workers: usize,
}

impl Sleep {
    pub(crate) fn new(workers: usize) -> Sleep {
        let words = workers.div_ceil(64);
        Sleep {
            searching: CachePadded(AtomicUsize::new(0)),
            sleepers: (0..words).map(|_| AtomicU64::new(0)).collect(),
            workers,
        }
    }

    /// How many workers may search at once: half of them, at least one (Go and tokio cap
    /// spinning threads the same way so that idle workers do not all fight over the same
    /// few queues).
    fn max_searching(&self) -> usize {
        self.workers.div_ceil(2)
    }

    /// A running worker that ran dry asks to become a searcher. `false`: enough are
    /// searching already; go straight to K3 (without a decrement).
    pub(crate) fn try_start_searching(&self) -> bool {
        // Relaxed: the cap is a heuristic; over- or undershooting by one is harmless.
        if self.searching.load(Relaxed) >= self.max_searching() {
            return false;
        }
        // Relaxed: counting only; the orderings of the protocol are carried by K1/K3/K4's
        // fences and K3's Release decrement.
        self.searching.fetch_add(1, Relaxed);
        true
    }

    /// A worker that never parks (`Idle::Spin`/`Idle::Yield`) counts as searching while
    /// idle, regardless of the cap.
    pub(crate) fn force_searching(&self) {
        // Relaxed: counting; see try_start_searching.
        self.searching.fetch_add(1, Relaxed);
    }

    /// Whether some worker is idle: searching, or asleep (a hint for splitting work; any
    /// staleness only makes a split come one block early or late).
    #[inline]
    pub(crate) fn any_idle(&self) -> bool {
        // Relaxed: a heuristic read; nothing is published or consumed through it.
        self.searching.load(Relaxed) != 0 || self.sleepers.iter().any(|w| w.load(Relaxed) != 0)
    }

    /// K1 for work whose progress does not depend on a wake-up — a `join` half, which
    /// its creator runs itself if nobody steals it: the full K1 (with its fence) only
    /// when a plain look says nobody searches and somebody sleeps. A stale look can miss
    /// a worker that is just going to sleep; that costs parallelism, never the task.
    #[inline]
    pub(crate) fn notify_hint(&self) -> Option<usize> {
        // Relaxed: a hint (doc comment); the full K1 below carries the protocol's orderings.
        if self.searching.load(Relaxed) != 0 || self.sleepers.iter().all(|w| w.load(Relaxed) == 0) {
            return None;
        }
        self.notify()
    }

    /// K1: called after a task was made visible. Returns the worker to unpark, if any.
    #[inline]
    pub(crate) fn notify(&self) -> Option<usize> {
        // K1, SeqCst fence: pairs with the fence in K3/K4 (store-buffering on queue vs
        // `searching`).
        mutation::fence(Site::SleepNotifyFence, SeqCst);
        // K1, Acquire: pairs with K3's Release decrement, so a worker whose decrement we see
        // has its `sleepers` bit visible to `wake_one` below.
        if self.searching.load(Acquire) != 0 {
            return None;
        }
        self.wake_one()
    }

    /// K2: claims one sleeper, counts it as searching, and returns its index.
    pub(crate) fn wake_one(&self) -> Option<usize> {
        for (w, word) in self.sleepers.iter().enumerate() {
            // Relaxed: a guess; the CAS below decides.
            let mut bits = word.load(Relaxed);
            while bits != 0 {
                let bit = bits.trailing_zeros() as usize;
                // K2, AcqRel: Acquire pairs with the Release of K3's set (the bit was set
                // before the sleeper's re-check); Release orders our increment below for
                // the woken worker, whose K5 reads its bit.
                match word.compare_exchange_weak(bits, bits & !(1 << bit), AcqRel, Relaxed) {
                    Ok(_) => {
                        // Relaxed: counting; see try_start_searching.
                        self.searching.fetch_add(1, Relaxed);
                        return Some(w * 64 + bit);
                    }
                    Err(actual) => bits = actual,
                }
            }
        }
        None
    }

    /// K3, first half: announces that worker `i` is going to sleep. `was_searching` says
    /// whether it held a searcher count to give up. Then the caller re-checks every queue
    /// and calls `cancel_sleep` or parks.
    pub(crate) fn prepare_sleep(&self, i: usize, was_searching: bool) {
        let (word, bit) = (&self.sleepers[i / 64], 1u64 << (i % 64));
        // K3, Release: pairs with K2's Acquire CAS (the waker sees the bit before it wakes).
        word.fetch_or(bit, Release);
        if was_searching {
            // K3, Release: pairs with K1's Acquire load of `searching`: a spawner that sees
            // this decrement also sees the bit set above.
            self.searching.fetch_sub(1, mutation::ord(Site::SleepSearchingRelease, Release));
        }
        // K3, SeqCst fence: pairs with K1's fence. After it, the caller's re-check of the
        // queues sees every task whose spawner did not see this decrement.
        mutation::fence(Site::SleepPrepareFence, SeqCst);
    }

    /// K3 cancelled or K5: worker `i` takes its own bit back and becomes a searcher.
    /// If a waker (K2) cleared the bit first, it already counted this worker.
    pub(crate) fn cancel_sleep(&self, i: usize) {
        let (word, bit) = (&self.sleepers[i / 64], 1u64 << (i % 64));
        // AcqRel: the RMW decides between us and a waker racing for the same bit; the
        // loser must not count the worker twice.
        if word.fetch_and(!bit, AcqRel) & bit != 0 {
            // Relaxed: counting; see try_start_searching.
            self.searching.fetch_add(1, Relaxed);
        }
    }

    /// K4: a searcher stops searching. Returns `true` if it was the last one; the caller
    /// must then re-check the queues and, if any holds work, call `wake_one`.
    pub(crate) fn stop_searching(&self) -> bool {
        // K4, Release: like K3's decrement, pairs with K1's Acquire load. It is the store
        // half of the store-buffering pair with K1; the fence below orders it before the
        // caller's re-check.
        let last = self.searching.fetch_sub(1, Release) == 1;
        if last {
            // K4, SeqCst fence: pairs with K1's fence.
            mutation::fence(Site::SleepHandoffFence, SeqCst);
        }
        last
    }

    /// Clears every sleeper bit and returns the workers to unpark (shutdown).
    pub(crate) fn wake_all(&self) -> impl Iterator<Item = usize> + '_ {
        self.sleepers.iter().enumerate().flat_map(|(w, word)| {
            // AcqRel: as K2; the woken workers are counted as searching.
            let bits = word.swap(0, AcqRel);
            // Relaxed: counting.
            self.searching.fetch_add(bits.count_ones() as usize, Relaxed);
            (0..64).filter(move |b| bits & (1 << b) != 0).map(move |b| w * 64 + b)
        })
    }

    /// Searchers right now (tests).
    #[cfg(all(test, not(loom)))]
    pub(crate) fn searching(&self) -> usize {
        // Relaxed: a snapshot.
        self.searching.load(Relaxed)
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn notify_wakes_a_sleeper_only_when_nobody_searches() {
        let s = Sleep::new(3);
        s.prepare_sleep(1, false);
        assert!(s.try_start_searching());
        assert_eq!(s.notify(), None, "a searcher will find the task");
        assert!(s.stop_searching());
        assert_eq!(s.notify(), Some(1));
        assert_eq!(s.searching(), 1, "the woken worker is counted as searching");
        assert_eq!(s.notify(), None);
    }

    #[test]
    fn cancel_sleep_counts_once() {
        let s = Sleep::new(2);
        s.prepare_sleep(0, false);
        assert_eq!(s.wake_one(), Some(0));
        s.cancel_sleep(0);
        assert_eq!(s.searching(), 1, "the waker counted it; cancel must not count again");
        s.prepare_sleep(0, true);
        s.cancel_sleep(0);
        assert_eq!(s.searching(), 1);
    }

    #[test]
    fn search_cap_is_half_the_workers() {
        let s = Sleep::new(4);
        assert!(s.try_start_searching());
        assert!(s.try_start_searching());
        assert!(!s.try_start_searching());
        let s = Sleep::new(65);
        s.prepare_sleep(64, false);
        assert_eq!(s.wake_all().collect::<Vec<_>>(), vec![64]);
    }
}
