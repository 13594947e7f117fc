//! The channel proper: one lock (a spin lock, `lockfree/spin.rs`), a buffer, and the
//! queues of waiting senders and receivers (Go's `hchan`). Every step of docs/DESIGN.md's
//! "Channels" section that changes the channel happens here, under the lock; the waiting
//! side (token and entries) is in `waiter.rs`.
//!
//! Invariants under the lock:
//! - receivers wait only while the buffer is empty and no sender waits; senders wait only
//!   while the buffer is full (at or above the capacity; a rendezvous channel's capacity
//!   is 0) and no receiver waits. Stale entries (cancelled, or of a `select` whose other
//!   case fired) may sit on either queue until a completer or their owner takes them off.
//! - once `closed`, both queues are empty and stay empty.
//! - the buffer may hold more than the capacity only by values that cancelled receives gave
//!   back (Q5): a rendezvous channel buffers such a value, and receivers take it first.
//!
//! Values are dropped and wakers woken after unlocking. The user code under the lock is
//! a waker's `clone`: the registering owner's own (a panic there unwinds into its own
//! poll with the state unchanged), and a foreign (non-filch) waiter's, which a completer
//! takes before its claim (after a successful claim the owner may free the token), with
//! that clone's drop when the claim loses to a cancel; the completer's calls are
//! contained (`waiter.rs`, module docs).

use std::collections::VecDeque;
use std::task::Waker;

use crate::chan::error::{TryRecvError, TrySendError};
use crate::chan::waiter::{Entry, Queue, Token};
use crate::shim::mutation::{self, Site};

/// The channel's lock: the spin lock (`lockfree/spin.rs`, CL1–CL2). Under loom, loom's
/// `Mutex`: with two threads waiting, loom explores their yields to each other without
/// end, so the channel models take the lock as given and `spin_lock_excludes` checks it.
#[cfg(not(loom))]
type ChanLock<T> = crate::lockfree::spin::SpinLock<T>;
#[cfg(not(loom))]
type ChanGuard<'a, T> = crate::lockfree::spin::SpinGuard<'a, T>;

#[cfg(loom)]
struct ChanLock<T>(crate::shim::Mutex<T>);
#[cfg(loom)]
type ChanGuard<'a, T> = crate::shim::MutexGuard<'a, T>;

#[cfg(loom)]
impl<T> ChanLock<T> {
    fn new(value: T) -> Self {
        ChanLock(crate::shim::Mutex::new(value))
    }

    fn lock(&self) -> ChanGuard<'_, T> {
        // A panic under the lock (a registering owner's own waker clone) leaves the state
        // consistent (`Chan::lock`): a poisoned lock is taken over, as the spin lock does.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One channel, shared by its senders and receivers.
pub(crate) struct Chan<T> {
    inner: ChanLock<Inner<T>>,
    /// The capacity: 0 for a rendezvous channel, `usize::MAX` for an unbounded one.
    pub(crate) cap: usize,
}

/// The state under the lock.
pub(crate) struct Inner<T> {
    buf: VecDeque<T>,
    /// Set by `close`, by the last sender's drop and by the last receiver's drop.
    closed: bool,
    senders: usize,
    receivers: usize,
    pub(crate) recvq: Queue<T>,
    pub(crate) sendq: Queue<T>,
}

/// Wakers to wake once the lock is released.
pub(crate) type Wake = Option<Waker>;

impl<T> Chan<T> {
    pub(crate) fn new(cap: usize) -> Chan<T> {
        // A bounded buffer is allocated up front (as Go does), up to a limit; beyond it,
        // and for an unbounded channel, it grows as needed.
        let prealloc = if cap == usize::MAX { 0 } else { cap.min(4096) };
        Chan {
            inner: ChanLock::new(Inner {
                buf: VecDeque::with_capacity(prealloc),
                closed: false,
                senders: 1,
                receivers: 1,
                recvq: Queue::new(),
                sendq: Queue::new(),
            }),
            cap,
        }
    }

    /// Locks the channel (`lockfree/spin.rs`, CL1). What runs under it cannot panic, except
    /// the clone of a registering owner's own waker, which unwinds into that owner's poll
    /// with the state unchanged (a completer's clones of other wakers are contained,
    /// `waiter.rs`; an allocation failure aborts); the guard's drop unlocks while
    /// unwinding, so a panic there leaves the lock free.
    #[inline]
    pub(crate) fn lock(&self) -> ChanGuard<'_, Inner<T>> {
        self.inner.lock()
    }

    /// S1–S3 (send) without waiting: hand to a waiting receiver, else buffer, else refuse.
    /// `own`: the token of a `select` registering on this channel (its own entries are
    /// skipped), or null.
    pub(crate) fn try_send_locked(
        &self,
        inner: &mut Inner<T>,
        value: T,
        own: *const Token,
    ) -> Result<Wake, TrySendError<T>> {
        // S1: closed, or no receiver left.
        if inner.closed {
            return Err(TrySendError::Closed(value));
        }
        // S2: a waiting receiver takes the value directly (one wake per message).
        let value = match inner.recvq.hand_value(value, own) {
            Ok(waker) => return Ok(waker),
            Err(v) => v,
        };
        // S3: room in the buffer.
        if inner.buf.len() < self.cap {
            inner.buf.push_back(value);
            return Ok(None);
        }
        Err(TrySendError::Full(value))
    }

    /// R1–R3 (receive) without waiting: from the buffer (refilling it from a waiting
    /// sender), else from a waiting sender directly, else closed or empty.
    pub(crate) fn try_recv_locked(
        &self,
        inner: &mut Inner<T>,
        own: *const Token,
    ) -> (Result<T, TryRecvError>, Wake) {
        // R1: the oldest buffered value; a waiting sender's value takes the freed place.
        if let Some(v) = inner.buf.pop_front() {
            let mut wake = None;
            if inner.buf.len() < self.cap {
                if let Some(c) = inner.sendq.take_value(own) {
                    inner.buf.push_back(c.value.expect("a waiting sender holds its value"));
                    wake = c.waker;
                }
            }
            return (Ok(v), wake);
        }
        // R2: a waiting sender hands over its value (rendezvous).
        if let Some(c) = inner.sendq.take_value(own) {
            return (Ok(c.value.expect("a waiting sender holds its value")), c.waker);
        }
        // R3.
        if inner.closed {
            (Err(TryRecvError::Closed), None)
        } else {
            (Err(TryRecvError::Empty), None)
        }
    }

    /// Whether a send would complete now (a `select`'s registration-time check).
    pub(crate) fn send_ready(&self, inner: &Inner<T>, own: *const Token) -> bool {
        inner.closed || inner.buf.len() < self.cap || inner.recvq.has_other(own)
    }

    /// Whether a receive would complete now (a `select`'s registration-time check).
    pub(crate) fn recv_ready(&self, inner: &Inner<T>, own: *const Token) -> bool {
        inner.closed || !inner.buf.is_empty() || inner.sendq.has_other(own)
    }

    /// Q5: a cancelled receive gives back a value it was handed: to another waiting
    /// receiver, else at the front of the buffer (it was the oldest value).
    pub(crate) fn give_back(&self, value: T) -> Wake {
        let mut inner = self.lock();
        let value = if mutation::keep(Site::ChanGiveBackPassesOn) {
            match inner.recvq.hand_value(value, std::ptr::null()) {
                Ok(waker) => return waker,
                Err(v) => v,
            }
        } else {
            // Mutant: buffers the value even when a receiver waits for one.
            value
        };
        if mutation::keep(Site::ChanGiveBackKeeps) {
            inner.buf.push_front(value);
        } else {
            // Mutant: the value is lost (dropped after unlocking).
            drop(inner);
            drop(value);
        }
        None
    }

    /// Q6: closes the channel: no more sends; waiting receivers get "closed" (the buffer
    /// is empty whenever one waits), waiting senders get their values back. Returns
    /// whether this call closed it, and the wakers to wake.
    pub(crate) fn close_locked(inner: &mut Inner<T>, wakers: &mut Vec<Waker>) -> bool {
        if inner.closed {
            return false;
        }
        inner.closed = true;
        if mutation::keep(Site::ChanCloseFiresWaiters) {
            inner.recvq.fire_all(wakers);
            inner.sendq.fire_all(wakers);
        }
        true
    }

    /// `close()`: Q6 and the wake-ups.
    pub(crate) fn close(&self) -> bool {
        let mut wakers = Vec::new();
        let closed = Self::close_locked(&mut self.lock(), &mut wakers);
        wake_all(wakers);
        closed
    }

    /// A sender handle more.
    pub(crate) fn add_sender(&self) {
        self.lock().senders += 1;
    }

    /// A receiver handle more.
    pub(crate) fn add_receiver(&self) {
        self.lock().receivers += 1;
    }

    /// A sender handle gone; the last one closes the channel (Q6).
    pub(crate) fn drop_sender(&self) {
        let mut wakers = Vec::new();
        {
            let mut inner = self.lock();
            inner.senders -= 1;
            if inner.senders == 0 {
                Self::close_locked(&mut inner, &mut wakers);
            }
        }
        wake_all(wakers);
    }

    /// A receiver handle gone; the last one closes the channel (Q6) and drops what is
    /// buffered, after unlocking: nobody can receive it any more.
    pub(crate) fn drop_receiver(&self) {
        let mut wakers = Vec::new();
        let buffered = {
            let mut inner = self.lock();
            inner.receivers -= 1;
            if inner.receivers != 0 {
                return;
            }
            Self::close_locked(&mut inner, &mut wakers);
            std::mem::take(&mut inner.buf)
        };
        wake_all(wakers);
        drop(buffered);
    }

    /// Values buffered now.
    pub(crate) fn len(&self) -> usize {
        self.lock().buf.len()
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    pub(crate) fn counts(&self) -> (usize, usize) {
        let inner = self.lock();
        (inner.senders, inner.receivers)
    }
}

impl<T> Inner<T> {
    /// Q1's enqueue of a receiver entry, armed and bound by the caller.
    pub(crate) fn push_receiver(&mut self, entry: &Entry<T>) {
        self.recvq.push(entry.as_ptr());
    }

    /// Q1's enqueue of a sender entry (its value in the slot), armed and bound.
    pub(crate) fn push_sender(&mut self, entry: &Entry<T>) {
        self.sendq.push(entry.as_ptr());
    }
}

/// Wakes every waker, even if one panics: a foreign waker's `wake` is user code, and a
/// panic in it is contained and reported (`waiter.rs`, module docs).
pub(crate) fn wake_all(wakers: Vec<Waker>) {
    for w in wakers {
        wake(Some(w));
    }
}

/// Wakes `wake`, if any (after the lock is released), containing a panic in a foreign
/// waker's `wake`.
#[inline]
pub(crate) fn wake(wake: Wake) {
    if let Some(w) = wake {
        if crate::runtime::async_task::is_own_waker(&w) {
            // The runtime's own wakers run no user code (`is_own_waker`).
            w.wake();
        } else {
            wake_foreign(w);
        }
    }
}

/// A foreign waker's wake, contained and reported (`wake`).
#[cold]
#[inline(never)]
fn wake_foreign(w: Waker) {
    if let Err(p) = crate::contain::call(move || w.wake()) {
        crate::chan::waiter::report_waker_panic("wake", &p);
        crate::contain::drop_payload(p);
    }
}
