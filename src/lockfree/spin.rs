//! The channels' lock: a spin lock whose waiters spin, then yield their core, and never
//! sleep in the kernel.
//!
//! A channel's critical sections are short: a few queue and buffer operations, no
//! allocation beyond the buffer's growth, and no user code but wakers' clones (a
//! completer's contained, the registering owner's own not: it unwinds into that owner's
//! poll; `chan/waiter.rs`). A sleeping lock (`std::sync::Mutex`) puts a waiter to sleep
//! in a futex after a brief spin, and then the holder's unlock pays a `futex_wake`
//! syscall and the waiter a kernel wake-up, several microseconds, on a lock held for well
//! under one. Under contention (two workers on one
//! channel, a fan-in, a pipeline) that was most of a message's cost. Here a waiter spins
//! with an exponential back-off (319 spin hints over ten rounds), then calls `sched_yield`
//! between checks, so that a holder preempted on the waiter's own core gets it back; the
//! unlock is a plain store.
//!
//! # Protocol
//!
//! - **CL1 (lock)**: CAS `locked` from `false` to `true` with Acquire (failure Relaxed).
//!   On failure: spin (then yield), and CAS again once a Relaxed load sees `false`.
//! - **CL2 (unlock)**: store `false` with Release.
//!
//! CL2's Release pairs with the next holder's CL1 Acquire, so everything one holder did
//! under the lock happens before everything the next one does. Under loom every
//! dereference of a guard is an access to a loom cell, so a missing edge shows as a data
//! race (model `spin_lock_excludes`, mutants `ChanLockAcquire` and `ChanLockRelease`). The
//! channel models run on loom's `Mutex` instead (`chan/channel.rs` says why).
//!
//! No poisoning: a guard's drop unlocks even while unwinding. No fairness and no bound
//! on a wait: a waiter whose holder is descheduled yields until the holder runs again.

use std::marker::PhantomData;
use std::ops::{Deref, DerefMut};

use crate::shim::atomic::{AtomicBool, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::UnsafeCell;

/// Spin rounds before a waiter starts yielding; round `r` spins `2^min(r, 6)` hints.
const SPIN_ROUNDS: u32 = 10;

/// A spin lock around a `T` (module docs).
pub struct SpinLock<T> {
    locked: AtomicBool,
    value: UnsafeCell<T>,
}

// SAFETY: the value is reached only through a `SpinGuard`, and CL1/CL2 give one holder at
// a time, each ordered after the previous one; so the lock shares a `T: Send` the way a
// `Mutex<T>` does.
unsafe impl<T: Send> Sync for SpinLock<T> {}
// SAFETY: as above; owning the lock owns the `T`.
unsafe impl<T: Send> Send for SpinLock<T> {}

/// The lock, held; unlocks (CL2) when dropped.
pub struct SpinGuard<'a, T> {
    lock: &'a SpinLock<T>,
    /// Not `Send`, as `MutexGuard`: a guard is given back on the thread that took it.
    _not_send: PhantomData<*const ()>,
}

impl<T> SpinLock<T> {
    /// An unlocked lock around `value`.
    pub fn new(value: T) -> SpinLock<T> {
        SpinLock { locked: AtomicBool::new(false), value: UnsafeCell::new(value) }
    }

    /// CL1: takes the lock, spinning and then yielding while another thread holds it.
    #[inline]
    pub fn lock(&self) -> SpinGuard<'_, T> {
        // CL1, Acquire: pairs with CL2's Release of the previous holder.
        let acquire = mutation::ord(Site::ChanLockAcquire, Acquire);
        if self.locked.compare_exchange_weak(false, true, acquire, Relaxed).is_err() {
            self.lock_contended(acquire);
        }
        SpinGuard { lock: self, _not_send: PhantomData }
    }

    #[cold]
    fn lock_contended(&self, acquire: crate::shim::atomic::Ordering) {
        let mut round = 0;
        loop {
            if round < SPIN_ROUNDS {
                // Under loom a spin hint is a yield, a branch of the model: one per round.
                let spins = if cfg!(loom) { 1 } else { 1u32 << round.min(6) };
                for _ in 0..spins {
                    crate::shim::spin_loop();
                }
                round += 1;
            } else {
                crate::lockfree::park::yield_now();
            }
            // Relaxed: only a hint that the CAS may succeed (it spares the line a write
            // while the lock is held); the CAS acquires. Not under loom, whose Relaxed
            // loads may keep returning an old `true`, which a spin loop turns into
            // unbounded branching; the CAS reads the latest value.
            #[cfg(not(loom))]
            if self.locked.load(Relaxed) {
                continue;
            }
            if self.locked.compare_exchange_weak(false, true, acquire, Relaxed).is_ok() {
                return;
            }
        }
    }
}

impl<T> Deref for SpinGuard<'_, T> {
    type Target = T;

    #[inline]
    fn deref(&self) -> &T {
        // SAFETY: this guard holds the lock (CL1), so no other thread reaches the value
        // until CL2; the reference cannot outlive the guard.
        unsafe { &*self.lock.value.with(|p| p) }
    }
}

impl<T> DerefMut for SpinGuard<'_, T> {
    #[inline]
    fn deref_mut(&mut self) -> &mut T {
        // SAFETY: as in `deref`; `&mut self` makes the reference unique.
        unsafe { &mut *self.lock.value.with_mut(|p| p) }
    }
}

impl<T> Drop for SpinGuard<'_, T> {
    #[inline]
    fn drop(&mut self) {
        // CL2, Release: pairs with the next holder's CL1 Acquire.
        self.lock.locked.store(false, mutation::ord(Site::ChanLockRelease, Release));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::SpinLock;
    use std::sync::Arc;

    /// Four threads add to a plain count under the lock; with more threads than cores,
    /// holders are preempted and waiters reach the yield path: every increment
    /// is kept (a lost update would show as a smaller total).
    #[test]
    fn increments_under_the_lock_are_never_lost() {
        const THREADS: usize = 4;
        const EACH: usize = 50_000;
        let lock = Arc::new(SpinLock::new(0usize));
        let threads: Vec<_> = (0..THREADS)
            .map(|_| {
                let lock = lock.clone();
                std::thread::spawn(move || {
                    for _ in 0..EACH {
                        // A read and a separate write: two holders at once would lose one.
                        let mut held = lock.lock();
                        let v = *held;
                        std::hint::black_box(&v);
                        *held = v + 1;
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(*lock.lock(), THREADS * EACH);
    }
}
