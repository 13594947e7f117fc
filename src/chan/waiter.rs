//! Waiting operations: the claim [`Token`] one blocked operation (or one `select`) owns,
//! and the [`Entry`] it puts on a channel's queue of waiting senders or receivers.
//!
//! Both live *inside* the waiting operation: in the pinned future of an async `send` /
//! `recv` / `select`, or on the stack frame of a blocking one. A queue holds raw pointers
//! to entries; nothing is allocated per wait. The owner takes every entry of its off the
//! queues (under the channel's lock) before the memory goes away: in the normal path, in
//! the future's `Drop`, and on the blocking path through the same `Drop` if anything
//! unwinds.
//!
//! # The token
//!
//! | value | name | meaning |
//! |-------|------|---------|
//! | `usize::MAX` | `WAITING` | the operation waits; any completer may claim it |
//! | `usize::MAX - 1` | `CANCELLED` | the owner gave up (timeout, drop, re-registration): nobody may claim it |
//! | `i` below those | fired | case `i` took effect (a plain send or receive has one case, `0`) |
//!
//! Only the Q2 CAS (a completer) and the Q4 CAS (the owner) move the word away from
//! `WAITING`, so exactly one of them wins: that is what makes exactly one case of a
//! `select` take effect, and what makes a cancel and a completion exclusive. The owner
//! puts the word back to `WAITING` (Q1) only while none of its entries is on a queue.
//!
//! # Who may touch what
//!
//! - `Token::waker`: written by the owner while none of its entries is queued (Q1); read
//!   (cloned) by a completer that holds the lock of a channel on whose queue an entry of
//!   this token sits (the owner's enqueue under that lock happened before). Dropped by the
//!   owner.
//! - `Entry::slot`: the owner's while the entry is not queued. While it is queued, only a
//!   completer holding the channel's lock touches it (Q2: put a value in, or take one out,
//!   and undo that if its claim fails). After the token fired for this entry's case, the
//!   owner's again: the Q2 CAS is Release and the owner's load Acquire (Q3). After a
//!   successful cancel (Q4) the owner locks the channel to unlist the entry before it reads
//!   the slot, so every completer's undo is ordered before.
//! - `Entry::token`, `Entry::case`: written by the owner before enqueueing (under the lock),
//!   read by completers under the lock.
//!
//! After its successful Q2 CAS a completer never touches the entry or the token again: the
//! owner may return (and free them) the moment it sees the token fired. The completer
//! cloned the waker before the CAS and wakes the clone after unlocking.
//!
//! A foreign waker's `clone`, `wake` and `drop` are user code. Each runs contained: a
//! panic is reported and the operation goes on as if that waker had woken nothing (the
//! waiter is fired all the same and completes when its owner polls it again, or gives a
//! handed value back when dropped, Q5). So nothing unwinds under a channel's lock, and a
//! send, receive or close never panics because of another task's waker.

use std::marker::PhantomPinned;
use std::ptr::NonNull;
use std::task::Waker;

use crate::shim::atomic::{AtomicUsize, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::UnsafeCell;

/// The token's value while the operation waits.
pub(crate) const WAITING: usize = usize::MAX;
/// The token's value once its owner gave up.
pub(crate) const CANCELLED: usize = usize::MAX - 1;

/// The claim word and waker of one waiting operation or `select` (module docs). `pub`
/// only because the `select` builder's sealed traits name it; not reachable from outside.
pub struct Token {
    state: AtomicUsize,
    waker: UnsafeCell<Option<Waker>>,
    /// Entries point at this token: it must not move while one of them is queued.
    _pinned: PhantomPinned,
}

impl Token {
    pub(crate) fn new() -> Token {
        Token { state: AtomicUsize::new(WAITING), waker: UnsafeCell::new(None), _pinned: PhantomPinned }
    }

    /// Q1: arms the token for a new wait with `waker`. Only while none of the owner's
    /// entries is queued (the caller's obligation, not checked). Returns the waker it
    /// replaced, for the caller to drop once it has unlocked (a waker's drop may be user
    /// code).
    #[must_use = "drop the replaced waker after unlocking"]
    pub(crate) fn arm(&self, waker: &Waker) -> Option<Waker> {
        // Relaxed: the enqueue under a channel's lock that follows publishes it to the
        // completers, who read it under that lock.
        self.state.store(WAITING, Relaxed);
        self.set_waker(waker)
    }

    /// Replaces the stored waker unless it would wake the same task, and returns the one
    /// it replaced. Only while no entry of this token is queued, or under the lock of the
    /// one channel where one is (the completers read it only under that lock).
    #[must_use = "drop the replaced waker after unlocking"]
    pub(crate) fn set_waker(&self, waker: &Waker) -> Option<Waker> {
        // SAFETY: the caller's obligation above: no completer reads the waker meanwhile.
        self.waker.with_mut(|w| unsafe {
            match &*w {
                Some(old) if old.will_wake(waker) => None,
                _ => (*w).replace(waker.clone()),
            }
        })
    }

    /// Whether the stored waker wakes the same task as `waker`. Owner only.
    pub(crate) fn will_wake(&self, waker: &Waker) -> bool {
        // SAFETY: a shared read by the owner; completers only read (clone) it too, and the
        // owner writes it only at the times `set_waker` names.
        self.waker.with(|w| unsafe { (*w).as_ref().is_some_and(|old| old.will_wake(waker)) })
    }

    /// Q3: the case that fired, if any. Owner only.
    #[inline]
    pub(crate) fn fired(&self) -> Option<usize> {
        // Q3, Acquire: pairs with the completer's Release CAS (Q2), so its slot write (or
        // take) happened before the owner's read of the slot.
        match self.state.load(mutation::ord(Site::ChanFiredAcquire, Acquire)) {
            WAITING | CANCELLED => None,
            case => Some(case),
        }
    }

    /// Whether the wait is over (fired, or cancelled by the owner): `block_until`'s test.
    #[inline]
    pub(crate) fn is_over(&self) -> bool {
        // Acquire: as in `fired`.
        self.state.load(mutation::ord(Site::ChanFiredAcquire, Acquire)) != WAITING
    }

    /// Q4: the owner gives up. `Ok` if it did (nobody can claim the token any more);
    /// `Err(case)` if a case fired first, whose slot the owner may now read.
    pub(crate) fn cancel(&self) -> Result<(), usize> {
        // Q4. Success Relaxed: the owner then locks every channel it is listed on, which
        // orders any completer's undo before its own accesses. Failure Acquire: pairs with
        // the completer's Release CAS (Q2), as in `fired`.
        match self.state.compare_exchange(
            WAITING,
            CANCELLED,
            Relaxed,
            mutation::ord(Site::ChanFiredAcquire, Acquire),
        ) {
            Ok(_) => Ok(()),
            Err(CANCELLED) => Ok(()),
            Err(case) => Err(case),
        }
    }

    /// Q2's claim, by a completer holding the lock of the channel where `case`'s entry was
    /// queued, after it acted on that entry's slot. `false`: the owner cancelled or
    /// another case fired; the completer undoes its action.
    fn claim(&self, case: usize) -> bool {
        if !mutation::keep(Site::ChanClaimCas) {
            // Mutant: claims without checking that nobody else did.
            self.state.store(case, mutation::ord(Site::ChanFireRelease, Release));
            return true;
        }
        // Q2, Release: publishes the slot action (and, for a rendezvous, everything the
        // sender did before) to the owner's Acquire (Q3/Q4). Failure Relaxed: nothing is
        // read; the completer undoes its own action.
        self.state
            .compare_exchange(WAITING, case, mutation::ord(Site::ChanFireRelease, Release), Relaxed)
            .is_ok()
    }

    /// A cheap pre-check for completers: `false` when the token can no longer be claimed.
    fn may_claim(&self) -> bool {
        // Relaxed: a hint; the CAS in `claim` decides.
        self.state.load(Relaxed) == WAITING
    }

    /// A clone of the stored waker, for a completer holding a lock under which an entry of
    /// this token is queued. A foreign waker's `clone` is user code: a panic in it is
    /// contained and reported, and gives `None` (the waiter is fired, but cannot be woken).
    #[inline]
    fn waker_clone(&self) -> Option<Waker> {
        self.waker.with(|w| {
            // SAFETY: the owner writes the waker only while no entry is queued, or under
            // the one channel's lock that this completer holds (`set_waker`).
            let w = unsafe { (*w).as_ref() }?;
            // The runtime's own wakers run no user code: cloned directly (the common case).
            if crate::runtime::async_task::is_own_waker(w) {
                Some(w.clone())
            } else {
                clone_foreign(w)
            }
        })
    }
}

/// A foreign waker's clone, contained (`Token::waker_clone`).
#[cold]
#[inline(never)]
fn clone_foreign(w: &Waker) -> Option<Waker> {
    match crate::contain::call(|| w.clone()) {
        Ok(w) => Some(w),
        Err(p) => {
            report_waker_panic("clone", &p);
            crate::contain::drop_payload(p);
            None
        }
    }
}

/// Reports a panic in a foreign waker's `clone`, `wake` or `drop` during a channel
/// operation, and what it meant for that waiter (never panics itself).
#[cold]
pub(crate) fn report_waker_panic(what: &str, payload: &crate::contain::Payload) {
    let msg = crate::contain::message(&**payload).unwrap_or("<non-string payload>");
    let outcome = match what {
        "drop" => "an unneeded clone of a waiter's waker was dropped; nothing else changed",
        _ => "that waiter is not woken: it completes when its owner polls it again",
    };
    crate::contain::report(format_args!(
        "filch: a waker's {what} panicked in a channel operation ({msg}); {outcome}"
    ));
}

/// Drops a waker clone that a lost claim does not need, containing a foreign waker's
/// `drop` (user code).
fn drop_waker(waker: Option<Waker>) {
    if let Some(w) = waker {
        if let Err(p) = crate::contain::call(move || drop(w)) {
            report_waker_panic("drop", &p);
            crate::contain::drop_payload(p);
        }
    }
}

/// One waiting operation's place on one channel's queue (module docs).
pub(crate) struct Entry<T> {
    token: *const Token,
    case: usize,
    /// A waiting sender's value, or the value handed to a waiting receiver.
    slot: UnsafeCell<Option<T>>,
    /// Queues point at this entry: it must not move while queued.
    _pinned: PhantomPinned,
}

impl<T> Entry<T> {
    /// An unlisted entry holding `value` (a sender's) or nothing (a receiver's).
    pub(crate) fn new(value: Option<T>) -> Entry<T> {
        Entry { token: std::ptr::null(), case: 0, slot: UnsafeCell::new(value), _pinned: PhantomPinned }
    }

    /// Points the entry at its token and case before it is queued. Owner only, while the
    /// entry is not queued.
    pub(crate) fn bind(&mut self, token: &Token, case: usize) {
        self.token = token;
        self.case = case;
    }

    /// Puts `value` in the slot. Owner only, while the entry is not queued.
    pub(crate) fn put(&self, value: T) {
        // SAFETY: the owner's while not queued (module docs).
        self.slot.with_mut(|s| unsafe { *s = Some(value) });
    }

    /// Takes the slot's contents. Owner only: while not queued, after its token fired for
    /// this entry (Q3), or after a successful cancel and the unlisting under the lock.
    pub(crate) fn take(&self) -> Option<T> {
        // SAFETY: the cases listed above (module docs).
        self.slot.with_mut(|s| unsafe { (*s).take() })
    }

    /// This entry's address, for a queue.
    pub(crate) fn as_ptr(&self) -> NonNull<Entry<T>> {
        NonNull::from(self)
    }
}

/// A queue of waiting senders or receivers of one channel, under the channel's lock.
pub(crate) struct Queue<T> {
    entries: std::collections::VecDeque<NonNull<Entry<T>>>,
}

/// What a completer found for a queued entry.
pub(crate) struct Claimed<T> {
    /// The value the entry held (a waiting sender's), for [`Queue::take_value`].
    pub(crate) value: Option<T>,
    /// The owner's waker, to wake once the lock is released.
    pub(crate) waker: Option<Waker>,
}

impl<T> Queue<T> {
    pub(crate) fn new() -> Queue<T> {
        Queue { entries: std::collections::VecDeque::new() }
    }

    /// Q1's enqueue. The entry stays valid and unmoved until [`Queue::remove`] (or a
    /// completer) takes it off.
    pub(crate) fn push(&mut self, entry: NonNull<Entry<T>>) {
        self.entries.push_back(entry);
    }

    /// Takes `entry` off the queue, if it is still on it.
    pub(crate) fn remove(&mut self, entry: NonNull<Entry<T>>) -> bool {
        match self.entries.iter().position(|e| *e == entry) {
            Some(i) => {
                self.entries.remove(i);
                true
            }
            None => false,
        }
    }

    /// Whether an entry that `own` does not own waits here and may still be claimed (a
    /// `select`'s registration-time check; a hint, the claim decides).
    pub(crate) fn has_other(&self, own: *const Token) -> bool {
        self.entries.iter().any(|e| {
            // SAFETY: a queued entry and its token stay valid while the lock is held.
            let entry = unsafe { e.as_ref() };
            // SAFETY: as above.
            entry.token != own && unsafe { &*entry.token }.may_claim()
        })
    }

    /// Q2 on a waiting receiver: hands `value` to the first claimable entry not owned by
    /// `own`, dropping stale entries from the queue. `Err(value)` when none took it.
    pub(crate) fn hand_value(&mut self, value: T, own: *const Token) -> Result<Option<Waker>, T> {
        let mut value = value;
        let mut i = 0;
        while let Some(&e) = self.entries.get(i) {
            // SAFETY: a queued entry and its token stay valid while the lock is held.
            let entry = unsafe { e.as_ref() };
            if entry.token == own {
                i += 1;
                continue;
            }
            // SAFETY: as above.
            let token = unsafe { &*entry.token };
            if !token.may_claim() {
                self.entries.remove(i);
                continue; // stale: its owner cancelled, or another case of its select fired
            }
            // A foreign waker's clone that panics is contained (`waker_clone`): the value
            // is handed all the same, and its owner takes it when polled again (or gives
            // it back when dropped, Q5).
            let waker = token.waker_clone();
            self.entries.remove(i);
            // SAFETY: a completer holding the lock of the queue the entry was on (module
            // docs); the owner reads the slot only after the claim, or after unlisting.
            entry.slot.with_mut(|s| unsafe { *s = Some(value) });
            if token.claim(entry.case) {
                return Ok(waker);
            }
            drop_waker(waker);
            // SAFETY: as above: our own write, undone under the same lock.
            value = entry.slot.with_mut(|s| unsafe { (*s).take() }).expect("the value just put there");
        }
        Err(value)
    }

    /// Q2 on a waiting sender: takes the value of the first claimable entry not owned by
    /// `own`, dropping stale entries from the queue.
    pub(crate) fn take_value(&mut self, own: *const Token) -> Option<Claimed<T>> {
        let mut i = 0;
        while let Some(&e) = self.entries.get(i) {
            // SAFETY: a queued entry and its token stay valid while the lock is held.
            let entry = unsafe { e.as_ref() };
            if entry.token == own {
                i += 1;
                continue;
            }
            // SAFETY: as above.
            let token = unsafe { &*entry.token };
            if !token.may_claim() {
                self.entries.remove(i);
                continue;
            }
            // Contained, as in `hand_value`.
            let waker = token.waker_clone();
            self.entries.remove(i);
            // SAFETY: a completer holding the queue's lock (module docs).
            let value = entry.slot.with_mut(|s| unsafe { (*s).take() });
            if token.claim(entry.case) {
                return Some(Claimed { value, waker });
            }
            drop_waker(waker);
            // SAFETY: as above: the undo of our own take, under the same lock.
            entry.slot.with_mut(|s| unsafe { *s = value });
        }
        None
    }

    /// Q6: fires every claimable entry with its slot as it is (a receiver's empty: the
    /// channel is closed; a sender's full: the value goes back to it), empties the queue,
    /// and pushes the wakers to wake onto `wakers`.
    pub(crate) fn fire_all(&mut self, wakers: &mut Vec<Waker>) {
        for e in self.entries.drain(..) {
            // SAFETY: a queued entry and its token stay valid while the lock is held.
            let entry = unsafe { e.as_ref() };
            // SAFETY: as above.
            let token = unsafe { &*entry.token };
            if !token.may_claim() {
                continue;
            }
            // Contained (`waker_clone`): a foreign waker whose clone panics does not leave
            // the waiters after it unfired. Its own owner is fired but cannot be woken.
            let waker = token.waker_clone();
            if token.claim(entry.case) {
                wakers.extend(waker);
            } else {
                drop_waker(waker);
            }
        }
    }
}

// SAFETY: the queue holds pointers to entries whose values are `T`s moved between
// threads under the channel's lock; sending the queue (inside the lock) sends nothing else.
unsafe impl<T: Send> Send for Queue<T> {}
