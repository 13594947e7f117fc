//! [`Semaphore`]: a counting semaphore whose waiters help instead of blocking a worker.
//!
//! # The state word
//!
//! | bits | meaning |
//! |------|---------|
//! | 63 | `WAITERS`: the wait list may be non-empty |
//! | 0..63 | available permits |
//!
//! # Protocol
//!
//! - **M1 (acquire)**: a CAS takes one permit if there is one (Acquire: pairs with M2's
//!   Release, so the previous holder's writes are visible to the next).
//! - **M2 (release)**: a CAS adds the permits back, keeping `WAITERS` (Release).
//! - **M3 (wake)**: if M2's previous state had `WAITERS`, the releaser locks the list,
//!   takes up to one parker per released permit and unparks them; if that empties the
//!   list it clears `WAITERS` (under the lock, so no registration can slip in between).
//! - **M4 (register)**: a waiter about to park locks the list, puts its parker on it and
//!   sets `WAITERS` by a CAS that requires zero permits (else: no park, try M1 again).
//!   Holding the lock across both, as in `wait_group.rs`: an M2 after our CAS sees the bit
//!   and its M3 finds us; an M2 before it makes our CAS see a permit.
//! - **M5 (give up)**: a waiter that times out tries M1 once more before giving up: a
//!   releaser may have picked it (M3) just before the deadline, and the wake-up must not
//!   be lost: either it takes the permit, or somebody else already has.
//! - **M6 (leave)**: every waiter that registered, whether it got a permit or timed out,
//!   takes its parker off the list under the lock on the way out (clearing `WAITERS` if
//!   the list is then empty). A waiter can take a permit while still listed: a worker's
//!   parker is also unparked by the scheduler, a thread's by a stale token, and it then
//!   barges in ahead of the waiter M3 picked. Left on the list, its entry would absorb the
//!   next M3's unpark while a real waiter sleeps beside a free permit. If instead a
//!   releaser already took our parker (a wake-up was spent on us), permits are free and
//!   others wait, we pass the wake-up on to one of them, for the same reason.
//!
//! Woken waiters compete with newcomers for the permit (no FIFO fairness); a waiter that
//! loses registers again.

use std::fmt;
use std::time::{Duration, Instant};

use crate::lockfree::park::Parker;
use crate::primitives::waitlist::{wait_until, WaitList};
use crate::shim::atomic::{AtomicU64, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::Arc;

const WAITERS: u64 = 1 << 63;
const PERMITS: u64 = WAITERS - 1;

/// A counting semaphore. Waiting on a worker thread runs other tasks meanwhile; elsewhere
/// it parks. Permits are RAII guards that give the permit back when dropped.
///
/// # Waiting on a worker, and the one way to deadlock it
///
/// A task that waits for a permit on a worker runs other queued tasks on top of its own
/// frame (at most [`MAX_NESTED_WAITS`](crate::MAX_NESTED_WAITS) waits deep; a deeper wait
/// blocks the worker while the others run the queue). A task run that way cannot finish
/// before it returns to the frame below it. So **do not wait while holding a permit** —
/// for a `JoinHandle`, a `join`, a `WaitGroup` or another `acquire` — when the tasks it
/// may run could want the same permit: the holder is stuck under a task that waits for
/// it (with one permit, for ever). Go does not have this hazard (goroutines have their
/// own stacks); rayon has it with locks held across `join`. Two safe patterns: take the
/// permit on the spawning side and move it into the task
/// ([`acquire_owned`](Self::acquire_owned), as `examples/pipeline.rs` does), or release
/// it before waiting.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let sem = std::sync::Arc::new(filch::Semaphore::new(2));
/// let handles: Vec<_> = (0..8)
///     .map(|i| {
///         let sem = sem.clone();
///         sched.spawn(move || {
///             let _permit = sem.acquire(); // at most two tasks in here at once
///             i * 2
///         })
///     })
///     .collect();
/// let sum: i32 = handles.into_iter().map(|h| h.join().unwrap()).sum();
/// assert_eq!(sum, 56);
/// assert_eq!(sem.available_permits(), 2);
/// ```
pub struct Semaphore {
    state: AtomicU64,
    list: WaitList,
}

/// A held permit of a [`Semaphore`], released on drop.
///
/// ```
/// let sem = filch::Semaphore::new(1);
/// {
///     let _permit = sem.acquire();
///     assert_eq!(sem.available_permits(), 0);
/// }
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "the permit is released as soon as it is dropped"]
pub struct Permit<'a> {
    sem: &'a Semaphore,
}

/// A held permit of an `Arc<Semaphore>`, to move into a task; released on drop.
///
/// ```
/// let sem = std::sync::Arc::new(filch::Semaphore::new(1));
/// let permit = sem.acquire_owned();
/// std::thread::spawn(move || drop(permit)).join().unwrap();
/// assert_eq!(sem.available_permits(), 1);
/// ```
#[must_use = "the permit is released as soon as it is dropped"]
pub struct OwnedPermit {
    sem: std::sync::Arc<Semaphore>,
}

impl Semaphore {
    /// The most permits a semaphore holds: `2^63 - 1`.
    ///
    /// ```
    /// assert_eq!(filch::Semaphore::MAX_PERMITS, (1 << 63) - 1);
    /// ```
    pub const MAX_PERMITS: u64 = PERMITS;

    /// A semaphore with `permits` permits.
    ///
    /// # Panics
    /// If `permits` exceeds [`MAX_PERMITS`](Self::MAX_PERMITS) (a contract violation).
    ///
    /// ```
    /// let sem = filch::Semaphore::new(3);
    /// assert_eq!(sem.available_permits(), 3);
    /// assert!(std::panic::catch_unwind(|| filch::Semaphore::new(u64::MAX)).is_err());
    /// ```
    #[track_caller]
    pub fn new(permits: u64) -> Self {
        assert!(permits <= PERMITS, "Semaphore::new: more than Semaphore::MAX_PERMITS permits");
        Semaphore { state: AtomicU64::new(permits), list: WaitList::new() }
    }

    /// Permits available now (a snapshot).
    ///
    /// ```
    /// let sem = filch::Semaphore::new(2);
    /// let _p = sem.acquire();
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn available_permits(&self) -> u64 {
        // Relaxed: a snapshot for display.
        self.state.load(Relaxed) & PERMITS
    }

    /// M1.
    fn take(&self) -> bool {
        // Relaxed: a starting guess for the CAS.
        let mut cur = self.state.load(Relaxed);
        loop {
            if cur & PERMITS == 0 {
                return false;
            }
            // M1, Acquire: pairs with M2's Release.
            match self.state.compare_exchange_weak(cur, cur - 1, Acquire, Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// M2 + M3: gives `n` permits back (a permit's drop) or adds new ones
    /// (`add_permits`, `checked`). Past `MAX_PERMITS`, an addition panics and changes
    /// nothing; a permit given back is clamped instead (a drop must not panic, and only
    /// an earlier `add_permits` up to the limit while permits were out can get there).
    #[track_caller]
    fn give(&self, n: u64, checked: bool) {
        // Relaxed: a starting guess for the CAS.
        let mut cur = self.state.load(Relaxed);
        loop {
            let sum = (cur & PERMITS).saturating_add(n);
            if checked && sum > PERMITS {
                panic!("Semaphore::add_permits: more than Semaphore::MAX_PERMITS permits");
            }
            let permits = sum.min(PERMITS);
            // M2, Release: pairs with M1's Acquire (our writes while holding the permit
            // are visible to the next holder).
            let ord = mutation::ord(Site::SemaphoreReleaseRelease, Release);
            match self.state.compare_exchange_weak(cur, (cur & WAITERS) | permits, ord, Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        if cur & WAITERS == 0 {
            return;
        }
        // M3.
        let mut list = self.list.lock();
        let take = (n as usize).min(list.len());
        let woken: Vec<Arc<Parker>> = list.drain(..take).collect();
        if list.is_empty() {
            // M3, Relaxed: under the lock that M4 holds while setting the bit.
            self.state.fetch_and(!WAITERS, Relaxed);
        }
        drop(list);
        for p in woken {
            p.unpark();
        }
    }

    /// M4.
    fn register(&self, parker: &Arc<Parker>) -> bool {
        let mut list = self.list.lock();
        WaitList::push_unique(&mut list, parker);
        // Relaxed: a starting guess for the CAS.
        let mut cur = self.state.load(Relaxed);
        loop {
            if cur & PERMITS != 0 && mutation::keep(Site::SemaphoreRegisterCheck) {
                WaitList::remove(&mut list, parker);
                return false;
            }
            if cur & WAITERS != 0 {
                return true;
            }
            // M4, Relaxed: the bit publishes nothing; the list lock orders our push
            // before M3's take.
            match self.state.compare_exchange_weak(cur, cur | WAITERS, Relaxed, Relaxed) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// M6 (M5's retry of M1 is `wait_until`'s final check, before this).
    fn unregister(&self, parker: &Arc<Parker>) {
        if !mutation::keep(Site::SemaphoreLeaveUnlists) {
            // Mutant: leave a stale entry on the list.
            return;
        }
        let mut list = self.list.lock();
        let pass_on = if WaitList::remove(&mut list, parker) {
            None
        } else if !list.is_empty()
            && self.available_permits() != 0
            && mutation::keep(Site::SemaphoreLeavePassesOn)
        {
            // A releaser spent a wake-up on us: hand it to a waiter that is still listed.
            // The Relaxed snapshot suffices: a permit given back after it sees `WAITERS`
            // (the list is non-empty, so the bit is set) and wakes somebody itself.
            Some(list.swap_remove(0))
        } else {
            None
        };
        if list.is_empty() {
            // Relaxed: under the lock, as in M3.
            self.state.fetch_and(!WAITERS, Relaxed);
        }
        drop(list);
        if let Some(p) = pass_on {
            p.unpark();
        }
    }

    /// Loom only: unparks every listed waiter without taking it off the list, as the
    /// scheduler may unpark a worker's parker for other work (M6's spurious wake-up).
    #[cfg(loom)]
    #[doc(hidden)]
    pub fn loom_wake_listed(&self) {
        let listed: Vec<Arc<Parker>> = self.list.lock().clone();
        for p in listed {
            p.unpark();
        }
    }

    /// Waits for a permit until `deadline`; `true` when one was taken.
    fn acquire_until(&self, deadline: Option<Instant>) -> bool {
        let got = std::cell::Cell::new(false);
        let done = || {
            if !got.get() && self.take() {
                got.set(true);
            }
            got.get()
        };
        wait_until(&done, deadline, &|p| self.register(p), &|p| self.unregister(p))
    }

    /// Takes a permit, waiting (helping on a worker, parking elsewhere) until one is free.
    ///
    /// ```
    /// let sem = filch::Semaphore::new(1);
    /// let p = sem.acquire();
    /// assert_eq!(sem.available_permits(), 0);
    /// drop(p);
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn acquire(&self) -> Permit<'_> {
        let ok = self.acquire_until(None);
        debug_assert!(ok);
        Permit { sem: self }
    }

    /// Takes a permit if one is free now.
    ///
    /// ```
    /// let sem = filch::Semaphore::new(1);
    /// let p = sem.try_acquire().unwrap();
    /// assert!(sem.try_acquire().is_none());
    /// drop(p);
    /// ```
    pub fn try_acquire(&self) -> Option<Permit<'_>> {
        self.take().then(|| Permit { sem: self })
    }

    /// Like [`acquire`](Self::acquire), giving up after `timeout`.
    ///
    /// ```
    /// let sem = filch::Semaphore::new(0);
    /// assert!(sem.acquire_timeout(std::time::Duration::from_millis(1)).is_none());
    /// ```
    pub fn acquire_timeout(&self, timeout: Duration) -> Option<Permit<'_>> {
        self.acquire_until(Instant::now().checked_add(timeout)).then(|| Permit { sem: self })
    }

    /// [`acquire`](Self::acquire) for an `Arc<Semaphore>`: the permit owns a clone of the
    /// `Arc`, so it can move into a spawned task.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let sem = std::sync::Arc::new(filch::Semaphore::new(1));
    /// let permit = sem.acquire_owned();
    /// let h = sched.spawn(move || { let _held = permit; 7 });
    /// assert_eq!(h.join().unwrap(), 7);
    /// assert_eq!(sem.available_permits(), 1);
    /// ```
    pub fn acquire_owned(self: &std::sync::Arc<Self>) -> OwnedPermit {
        let ok = self.acquire_until(None);
        debug_assert!(ok);
        OwnedPermit { sem: self.clone() }
    }

    /// [`try_acquire`](Self::try_acquire) for an `Arc<Semaphore>`.
    ///
    /// ```
    /// let sem = std::sync::Arc::new(filch::Semaphore::new(1));
    /// let p = sem.try_acquire_owned().unwrap();
    /// assert!(sem.try_acquire_owned().is_none());
    /// drop(p);
    /// assert!(sem.try_acquire_owned().is_some());
    /// ```
    pub fn try_acquire_owned(self: &std::sync::Arc<Self>) -> Option<OwnedPermit> {
        self.take().then(|| OwnedPermit { sem: self.clone() })
    }

    /// Adds `n` new permits (waking waiters).
    ///
    /// # Panics
    /// If the available permits would exceed [`MAX_PERMITS`](Self::MAX_PERMITS) (a
    /// contract violation; nothing is added).
    ///
    /// ```
    /// let sem = filch::Semaphore::new(0);
    /// sem.add_permits(2);
    /// assert_eq!(sem.available_permits(), 2);
    /// assert!(std::panic::catch_unwind(|| sem.add_permits(filch::Semaphore::MAX_PERMITS)).is_err());
    /// assert_eq!(sem.available_permits(), 2);
    /// ```
    #[track_caller]
    pub fn add_permits(&self, n: u64) {
        self.give(n, true);
    }
}

impl Drop for Permit<'_> {
    fn drop(&mut self) {
        self.sem.give(1, false);
    }
}

impl Drop for OwnedPermit {
    fn drop(&mut self) {
        self.sem.give(1, false);
    }
}

impl fmt::Debug for Semaphore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Semaphore").field("available_permits", &self.available_permits()).finish()
    }
}

impl fmt::Debug for Permit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Permit")
    }
}

impl fmt::Debug for OwnedPermit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("OwnedPermit")
    }
}
