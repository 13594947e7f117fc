//! [`WaitGroup`]: Go's `sync.WaitGroup` — wait until a counter drops to zero.
//!
//! # The state word
//!
//! | bits | meaning |
//! |------|---------|
//! | 63 | `WAITERS`: some waiter may be parked on the list |
//! | 0..63 | the count |
//!
//! # Protocol
//!
//! - **W1 (add)**: a CAS adds `n` to the count (Relaxed: counting only; the `done`s that
//!   bring it back to zero carry the orderings). An overflow panics, count unchanged.
//! - **W2 (done)**: a CAS subtracts one, and clears `WAITERS` in the same RMW when the
//!   count reaches zero. AcqRel: Release publishes this doer's writes to a waiter's W4
//!   Acquire; Acquire continues the chain of earlier doers. A `done` at zero panics, count
//!   unchanged (Go's "negative WaitGroup counter").
//! - **W3 (wake)**: the `done` that cleared `WAITERS` locks the list, takes every parker
//!   and unparks each.
//! - **W4 (wait)**: a waiter returns once its Acquire load sees the count at zero. Before
//!   parking it locks the list, puts its parker on it, and sets `WAITERS` by a CAS that
//!   requires a non-zero count (else: no park). The lock is held across both, so a W2
//!   that clears the bit after our set finds our parker when it takes the lock in W3;
//!   a W2 before our set makes our CAS see zero. No wake-up is lost.
//! - **W5 (leave)**: a waiter that registered takes its parker off the list on the way
//!   out, whether it saw zero or timed out (a waiter can see zero before W3 takes it; W3
//!   wakes the whole list, so a stale entry would cost only a spurious unpark, but the
//!   list then never holds waiters of finished waits).
//!
//! Every waiter of a round wakes (W3 takes the whole list). Reuse after zero works as in
//! Go: `add` again, and later waiters wait for the new round.

use std::fmt;
use std::time::{Duration, Instant};

use crate::lockfree::park::Parker;
use crate::primitives::waitlist::{wait_until, WaitList};
use crate::shim::atomic::{AtomicU64, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::Arc;

const WAITERS: u64 = 1 << 63;
const COUNT: u64 = WAITERS - 1;

struct Inner {
    state: AtomicU64,
    list: WaitList,
}

/// Waits for a set of tasks to finish, like Go's `sync.WaitGroup`: [`add`](Self::add)
/// before starting work, [`done`](Self::done) when each piece finishes,
/// [`wait`](Self::wait) until the count is zero. Clones share one counter.
///
/// `wait` on a worker thread runs other tasks meanwhile; elsewhere it parks the thread.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let wg = filch::WaitGroup::new();
/// let hits = std::sync::Arc::new(std::sync::Mutex::new(0));
/// for _ in 0..10 {
///     wg.add(1);
///     let (wg, hits) = (wg.clone(), hits.clone());
///     sched.spawn(move || {
///         *hits.lock().unwrap() += 1;
///         wg.done();
///     });
/// }
/// wg.wait();
/// assert_eq!(*hits.lock().unwrap(), 10);
/// ```
#[derive(Clone)]
pub struct WaitGroup(Arc<Inner>);

impl WaitGroup {
    /// A wait group with count zero.
    ///
    /// ```
    /// let wg = filch::WaitGroup::new();
    /// assert_eq!(wg.count(), 0);
    /// wg.wait(); // returns at once
    /// ```
    pub fn new() -> Self {
        WaitGroup(Arc::new(Inner { state: AtomicU64::new(0), list: WaitList::new() }))
    }

    /// W1: adds `n` to the count.
    ///
    /// # Panics
    /// If the count would exceed `2^63 - 1` (a contract violation; the count is left
    /// unchanged).
    ///
    /// ```
    /// let wg = filch::WaitGroup::new();
    /// wg.add(3);
    /// assert_eq!(wg.count(), 3);
    /// let overflow = std::panic::catch_unwind(|| wg.add(u64::MAX));
    /// assert!(overflow.is_err());
    /// assert_eq!(wg.count(), 3);
    /// ```
    #[track_caller]
    pub fn add(&self, n: u64) {
        let state = &self.0.state;
        // Relaxed: a starting guess for the CAS.
        let mut cur = state.load(Relaxed);
        loop {
            let Some(count) = (cur & COUNT).checked_add(n).filter(|&c| c <= COUNT) else {
                panic!("WaitGroup::add: the counter would exceed 2^63 - 1");
            };
            // W1, Relaxed: counting only (module docs).
            match state.compare_exchange_weak(cur, (cur & WAITERS) | count, Relaxed, Relaxed) {
                Ok(_) => return,
                Err(actual) => cur = actual,
            }
        }
    }

    /// W2 (+ W3): one piece of work is finished.
    ///
    /// # Panics
    /// If the count is already zero: more `done`s than `add`s is a contract violation
    /// (Go panics the same way); the count is left unchanged.
    ///
    /// ```
    /// let wg = filch::WaitGroup::new();
    /// wg.add(1);
    /// wg.done();
    /// let extra = std::panic::catch_unwind(|| wg.done());
    /// assert!(extra.is_err());
    /// assert_eq!(wg.count(), 0);
    /// ```
    #[track_caller]
    pub fn done(&self) {
        let state = &self.0.state;
        // Relaxed: a starting guess for the CAS.
        let mut cur = state.load(Relaxed);
        loop {
            let count = cur & COUNT;
            if count == 0 {
                panic!("WaitGroup::done: negative counter (more done() calls than add())");
            }
            let next = if count == 1 { 0 } else { cur - 1 };
            // W2, AcqRel: Release pairs with W4's Acquire load (our writes before `done`
            // are visible to a returning waiter); Acquire continues earlier doers' chain.
            let ord = mutation::ord(Site::WaitGroupDoneAcqRel, AcqRel);
            match state.compare_exchange_weak(cur, next, ord, Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if cur & COUNT == 1 && cur & WAITERS != 0 {
            // W3.
            let parkers = std::mem::take(&mut *self.0.list.lock());
            for p in parkers {
                p.unpark();
            }
        }
    }

    /// The current count (a snapshot).
    ///
    /// ```
    /// let wg = filch::WaitGroup::new();
    /// wg.add(2);
    /// wg.done();
    /// assert_eq!(wg.count(), 1);
    /// ```
    pub fn count(&self) -> u64 {
        // Relaxed: a snapshot for display; `wait` uses its own Acquire.
        self.0.state.load(Relaxed) & COUNT
    }

    fn is_zero(&self) -> bool {
        // W4, Acquire: pairs with W2's Release; a zero makes every doer's writes visible.
        self.0.state.load(Acquire) & COUNT == 0
    }

    /// W4's registration: list, then `WAITERS` while the count is non-zero.
    fn register(&self, parker: &Arc<Parker>) -> bool {
        let mut list = self.0.list.lock();
        WaitList::push_unique(&mut list, parker);
        let state = &self.0.state;
        // Relaxed: a starting guess for the CAS.
        let mut cur = state.load(Relaxed);
        loop {
            if cur & COUNT == 0 {
                WaitList::remove(&mut list, parker);
                return false;
            }
            if cur & WAITERS != 0 || !mutation::keep(Site::WaitGroupSetWaiters) {
                return true;
            }
            // W4, Relaxed: the bit publishes nothing; the list lock orders our push before
            // W3's take (module docs).
            match state.compare_exchange_weak(cur, cur | WAITERS, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    fn unregister(&self, parker: &Arc<Parker>) {
        WaitList::remove(&mut self.0.list.lock(), parker);
    }

    /// Waits until the count is zero (W4). On a worker thread it runs other tasks
    /// meanwhile; elsewhere it parks.
    ///
    /// ```
    /// let wg = filch::WaitGroup::new();
    /// wg.add(1);
    /// let wg2 = wg.clone();
    /// let t = std::thread::spawn(move || wg2.done());
    /// wg.wait();
    /// t.join().unwrap();
    /// ```
    pub fn wait(&self) {
        wait_until(&|| self.is_zero(), None, &|p| self.register(p), &|p| self.unregister(p));
    }

    /// Like [`wait`](Self::wait), giving up after `timeout`; returns whether the count
    /// reached zero.
    ///
    /// ```
    /// let wg = filch::WaitGroup::new();
    /// wg.add(1);
    /// assert!(!wg.wait_timeout(std::time::Duration::from_millis(1)));
    /// wg.done();
    /// assert!(wg.wait_timeout(std::time::Duration::from_millis(1)));
    /// ```
    pub fn wait_timeout(&self, timeout: Duration) -> bool {
        let deadline = Instant::now().checked_add(timeout);
        wait_until(&|| self.is_zero(), deadline, &|p| self.register(p), &|p| self.unregister(p))
    }
}

impl Default for WaitGroup {
    fn default() -> Self {
        WaitGroup::new()
    }
}

impl fmt::Debug for WaitGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WaitGroup").field("count", &self.count()).finish()
    }
}
