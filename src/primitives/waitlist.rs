//! The slow path shared by [`crate::WaitGroup`] and [`crate::Semaphore`]: a list of parked
//! waiters, and waiting that helps on a worker thread and parks elsewhere.
//!
//! A primitive keeps a `WAITERS` bit in its own state word. The list is a `Mutex<Vec<Arc<
//! Parker>>>` touched only by a thread about to sleep and by a waker that saw `WAITERS`;
//! the fast paths (`add`/`done`/`acquire`/`release` with nobody waiting) are one atomic RMW
//! and never take the lock. Each primitive's module docs give its numbered protocol.
//!
//! Wakers unpark through the `Arc` clones held by the list, never through memory on a
//! waiter's stack, so a waiter may return the moment it sees its condition. A worker's
//! parker may get a spurious token that way; the worker loop re-checks after every park.

use std::time::Instant;

use crate::lockfree::park::Parker;
use crate::runtime::worker;
use crate::runtime::worker::with_parker;
use crate::shim::{Arc, Mutex, MutexGuard};

/// Parked waiters of one primitive.
pub(crate) struct WaitList {
    waiters: Mutex<Vec<Arc<Parker>>>,
}

impl WaitList {
    pub(crate) fn new() -> Self {
        WaitList { waiters: Mutex::new(Vec::new()) }
    }

    /// Locks the list. A poisoned lock (a panic while held, which only a failed allocation
    /// in `push` could cause) is taken over: the list itself is always consistent.
    pub(crate) fn lock(&self) -> MutexGuard<'_, Vec<Arc<Parker>>> {
        self.waiters.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Puts `parker` on the list unless it is there already (a worker woken for another
    /// reason registers again before its next park).
    pub(crate) fn push_unique(list: &mut Vec<Arc<Parker>>, parker: &Arc<Parker>) {
        if !list.iter().any(|p| Arc::ptr_eq(p, parker)) {
            list.push(parker.clone());
        }
    }

    /// Removes `parker` from the list; `false` if a waker already took it out.
    pub(crate) fn remove(list: &mut Vec<Arc<Parker>>, parker: &Arc<Parker>) -> bool {
        match list.iter().position(|p| Arc::ptr_eq(p, parker)) {
            Some(i) => {
                list.swap_remove(i);
                true
            }
            None => false,
        }
    }
}

/// Waits until `done()` or `deadline`; returns whether `done()` held. `register(parker)`
/// is called before each sleep: it puts `parker` on the list and sets `WAITERS`, or
/// returns `false` (having taken `parker` off again) when `done()` already holds (then no
/// sleep). `unregister(parker)` is called once on the way out, success or timeout, if the
/// last `register` put `parker` on the list: a waiter woken by something else (a worker's
/// parker is unparked by the scheduler too) can succeed while still listed, and a stale
/// entry left there would absorb a later waker's unpark meant for a real waiter.
///
/// On a worker thread the wait runs other tasks (`run_until`, as a join does); elsewhere
/// it parks the thread.
pub(crate) fn wait_until(
    done: &dyn Fn() -> bool,
    deadline: Option<Instant>,
    register: &dyn Fn(&Arc<Parker>) -> bool,
    unregister: &dyn Fn(&Arc<Parker>),
) -> bool {
    if done() {
        return true;
    }
    worker::with_current(|ctx| {
        with_parker(ctx, |parker| {
            let registered = std::cell::Cell::new(false);
            let before_park = || {
                let ok = register(parker);
                // `false`: `register` took `parker` off the list again.
                registered.set(ok);
                ok
            };
            let ok = match ctx {
                Some(c) => c.in_join(|| c.run_until(done, deadline, &before_park)),
                None => loop {
                    if done() {
                        break true;
                    }
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        break false;
                    }
                    if before_park() {
                        parker.park_until(deadline)
                    }
                },
            };
            // A timed-out waiter tries once more: a waker may have picked it just before
            // the deadline (the semaphore's M5).
            let ok = ok || done();
            if registered.get() {
                unregister(parker);
            }
            ok
        })
    })
}
