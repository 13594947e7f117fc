//! The wake slot: one task a worker runs next, which other workers may take only once it
//! has sat there for a while (Go's `runnext`, with a grace period before a thief may take
//! it).
//!
//! A task woken by a running task on a worker goes here rather than onto the worker's
//! deque. The worker takes it before its deque, so two tasks that wake each other (a
//! ping-pong over a channel) keep running on one core, back to back, instead of being
//! stolen by an idle worker the moment they are queued and paying a cache-line transfer
//! per message. A worker whose current task keeps running (it woke a task and did not
//! return) must not hold the woken task hostage: a searching worker that sees the same
//! occupant in the slot, with no take by the owner in between, for longer than its grace
//! period steals it. The grace is the thief's business (`worker.rs`); this module only
//! gives it the observation ([`NextSlot::peek`]) and the conditional steal.
//!
//! # Protocol
//!
//! One owner (the holder of the worker role the slot belongs to) puts and takes; any
//! number of thieves steal. Only the owner ever writes a non-null value, and thieves only
//! ever replace the value they read by null.
//!
//! - **N1 (put, owner)**: add one to `puts` (a Relaxed store: the owner is its only
//!   writer). Load the slot (Relaxed). Null: store the new task with Release. Not null:
//!   swap in the new task with Release; the swap returns the previous occupant (displaced:
//!   the owner queues it elsewhere), or null if a thief took it meanwhile. The plain store
//!   is sound because only the owner makes the slot non-null: a slot the owner sees empty
//!   stays empty until the owner's own next write.
//! - **N2 (take, owner)**: load (Relaxed); null: nothing. Else swap in null (Relaxed).
//! - **N3 (peek, thief)**: load the slot, then `puts` (both Relaxed): an observation.
//! - **N4 (steal, thief)**: if `puts` still holds the observed count, CAS the slot from
//!   the observed task to null with Acquire.
//!
//! Exactly once: every task put is removed by exactly one successful RMW (N1's swap
//! returning it, N2's swap, or N4's CAS) in the slot's modification order; the plain
//! store of N1 only ever replaces null. Publication: the task's contents, written by the
//! owner before N1, reach a thief through N1's Release and N4's Acquire; N1's swap and
//! N2's swap return only values the owner itself stored, so they need no Acquire.
//!
//! `puts` only guards against stealing a task that was taken and put back in the meantime
//! (the same pointer again, as a ping-pong's two tasks are): every put is a new occupancy,
//! with its own grace. A stale count makes a thief wait or steal early, never take a task
//! twice.

use std::ptr::{self, NonNull};

use crate::shim::atomic::{AtomicPtr, AtomicUsize, Ordering::*};
use crate::shim::mutation::{self, Site};

/// A worker's wake slot (module docs).
pub struct NextSlot<T> {
    slot: AtomicPtr<T>,
    /// N1's count of the owner's puts (module docs).
    puts: AtomicUsize,
}

/// What a thief saw in a slot (N3): its occupant and the owner's put count.
#[derive(Debug)]
pub struct Seen<T> {
    /// The occupant.
    pub task: NonNull<T>,
    /// The owner's put count at the time.
    pub puts: usize,
}

// Not derived: those would require `T: Clone` / `T: PartialEq`; a `Seen` is two words.
impl<T> Clone for Seen<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Seen<T> {}
impl<T> PartialEq for Seen<T> {
    fn eq(&self, other: &Self) -> bool {
        self.task == other.task && self.puts == other.puts
    }
}
impl<T> Eq for Seen<T> {}

impl<T> Default for NextSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> NextSlot<T> {
    /// An empty slot.
    pub fn new() -> NextSlot<T> {
        NextSlot { slot: AtomicPtr::new(ptr::null_mut()), puts: AtomicUsize::new(0) }
    }

    /// N1: puts `task` in the slot; returns the task it displaced, which the owner must
    /// queue elsewhere.
    ///
    /// # Safety
    /// Only the slot's owner may call it (one thread at a time, hand-overs ordered by
    /// happens-before).
    #[inline]
    pub unsafe fn put(&self, task: NonNull<T>) -> Option<NonNull<T>> {
        // Relaxed: the owner is the only writer; thieves use it only as a hint (module docs).
        self.puts.store(self.puts.load(Relaxed).wrapping_add(1), Relaxed);
        // N1, Relaxed: only the owner writes non-null, so its own last write (or a thief's
        // null) is all this can see; a thief's later CAS only empties it further.
        if self.slot.load(Relaxed).is_null() {
            // N1, Release: publishes the task's contents to a thief's N4 Acquire CAS.
            self.slot.store(task.as_ptr(), mutation::ord(Site::NextPutRelease, Release));
            return None;
        }
        // N1, Release: as above. The value returned was stored by the owner (or is a
        // thief's null): no Acquire needed.
        NonNull::new(self.slot.swap(task.as_ptr(), mutation::ord(Site::NextPutRelease, Release)))
    }

    /// N2: takes the slot's task, if a thief has not.
    ///
    /// # Safety
    /// As [`NextSlot::put`]: the owner only.
    #[inline]
    pub unsafe fn take(&self) -> Option<NonNull<T>> {
        // Relaxed: as in `put`: a null seen by the owner stays null.
        if self.slot.load(Relaxed).is_null() {
            return None;
        }
        let got = if mutation::keep(Site::NextTakeSwap) {
            // N2, Relaxed: the task was stored by the owner itself; the RMW's place in the
            // slot's modification order is what keeps a thief from taking it too.
            self.slot.swap(ptr::null_mut(), Relaxed)
        } else {
            // Mutant: a plain load and store, which a thief's CAS can slip between.
            let p = self.slot.load(Relaxed);
            self.slot.store(ptr::null_mut(), Relaxed);
            p
        };
        NonNull::new(got)
    }

    /// N3: the slot's occupant and the owner's put count, or `None` when it is empty.
    #[inline]
    pub fn peek(&self) -> Option<Seen<T>> {
        // Relaxed, both: an observation only; N4's CAS decides, and its Acquire publishes
        // the task.
        let task = NonNull::new(self.slot.load(Relaxed))?;
        Some(Seen { task, puts: self.puts.load(Relaxed) })
    }

    /// Whether the slot holds a task (Relaxed: a hint).
    #[inline]
    pub fn is_occupied(&self) -> bool {
        !self.slot.load(Relaxed).is_null()
    }

    /// N4: takes the observed task if the owner has put nothing since the observation and
    /// the task is still there.
    pub fn steal(&self, seen: Seen<T>) -> Option<NonNull<T>> {
        // Relaxed: the hint of the module docs.
        if self.puts.load(Relaxed) != seen.puts {
            return None;
        }
        // N4's Acquire (the CAS below, or the mutant's load): pairs with N1's Release.
        let acquire = mutation::ord(Site::NextStealAcquire, Acquire);
        if !mutation::keep(Site::NextStealCas) {
            // Mutant: a load and a store instead of the CAS.
            if self.slot.load(acquire) != seen.task.as_ptr() {
                return None;
            }
            self.slot.store(ptr::null_mut(), Relaxed);
            return Some(seen.task);
        }
        // N4, Acquire: pairs with N1's Release store or swap of this task. Failure
        // Relaxed: nothing is read.
        self.slot
            .compare_exchange(seen.task.as_ptr(), ptr::null_mut(), acquire, Relaxed)
            .ok()
            .and(Some(seen.task))
    }

    /// N3 + N4 without a grace: takes whatever task is there (a drain that owns the
    /// scheduler's shutdown, or any thread once the owner is gone).
    pub fn steal_now(&self) -> Option<NonNull<T>> {
        loop {
            let seen = self.peek()?;
            // The count may move under us; only the CAS matters here.
            if let Some(t) = self.steal(Seen { puts: self.puts.load(Relaxed), ..seen }) {
                return Some(t);
            }
        }
    }
}

// SAFETY: the slot holds pointers to tasks handed between threads under the protocol
// above (each removed exactly once, published by N1/N4); it owns nothing itself.
unsafe impl<T> Send for NextSlot<T> {}
// SAFETY: as above.
unsafe impl<T> Sync for NextSlot<T> {}
