//! One send or one receive that may wait: the futures [`SendFuture`] and [`RecvFuture`],
//! which the blocking forms drive too (pinned on the caller's stack, with the thread's
//! waker, through `block.rs`).
//!
//! A future is `Idle` until its first poll, which does the whole operation under one
//! lock acquisition if it can (S1–S3, R1–R3) and otherwise arms its token and queues its
//! entry (Q1) in the same critical section. It is then `Waiting` until its token fires
//! (Q3), and `Done` after. Its drop while `Waiting` is the cancel (Q4) and, for a receive
//! that was handed a value meanwhile, the give-back (Q5).

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::Instant;

use crate::chan::block::{block_until, thread_waker};
use crate::chan::channel::{wake, Chan};
use crate::chan::error::{
    RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError,
};
use crate::chan::waiter::{Entry, Token};
use crate::runtime::async_task::poll_proceed;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    Idle,
    Waiting,
    Done,
}

/// The future of [`Receiver::recv`](super::Receiver::recv): the next value, or
/// `Err(RecvError)` once the channel is closed and drained.
///
/// **Cancel safety**: dropping it loses nothing. If a sender had already handed it a
/// value (a sender gives a value straight to a waiting receiver), the drop passes that
/// value on to another waiting receiver, or else puts it back at the front of the
/// channel, where the next receive takes it first. Such a value may make the channel hold
/// one more value than its capacity for a while.
#[must_use = "futures do nothing unless awaited"]
pub struct RecvFuture<'a, T> {
    chan: &'a Chan<T>,
    phase: Phase,
    token: Token,
    entry: Entry<T>,
}

/// The future of [`Sender::send`](super::Sender::send): `Ok(())` once the value is in the
/// channel (buffered, or taken by a receiver), `Err` with the value if the channel is
/// closed.
///
/// **Cancel safety**: dropping it before it completes drops the value, exactly once,
/// unless a receiver already took it (then the send has happened, and the drop changes
/// nothing). [`SendFuture::cancel`] gives the value back instead.
#[must_use = "futures do nothing unless awaited"]
pub struct SendFuture<'a, T> {
    chan: &'a Chan<T>,
    phase: Phase,
    token: Token,
    /// Holds the value until the send completes.
    entry: Entry<T>,
}

// SAFETY: the future's `T` moves between threads only through the channel, under its lock
// (or by the Q2/Q3 hand-over); the raw pointers inside the entry and the queue refer to
// the future itself and are only used under the rules of `waiter.rs`.
unsafe impl<T: Send> Send for RecvFuture<'_, T> {}
// SAFETY: as above.
unsafe impl<T: Send> Send for SendFuture<'_, T> {}

impl<'a, T> RecvFuture<'a, T> {
    pub(crate) fn new(chan: &'a Chan<T>) -> Self {
        RecvFuture { chan, phase: Phase::Idle, token: Token::new(), entry: Entry::new(None) }
    }

    /// One poll with `waker` (no cooperative budget: the blocking path uses it too).
    fn poll_with(self: Pin<&mut Self>, waker: &Waker) -> Poll<Result<T, RecvError>> {
        // SAFETY: nothing is moved out of the pinned future: its token and entry stay
        // where they are while the entry is queued.
        let this = unsafe { self.get_unchecked_mut() };
        match this.phase {
            Phase::Idle => {
                let mut inner = this.chan.lock();
                let (r, w) = this.chan.try_recv_locked(&mut inner, std::ptr::null());
                match r {
                    Ok(v) => {
                        drop(inner);
                        this.phase = Phase::Done;
                        wake(w);
                        Poll::Ready(Ok(v))
                    }
                    Err(TryRecvError::Closed) => {
                        this.phase = Phase::Done;
                        Poll::Ready(Err(RecvError))
                    }
                    Err(TryRecvError::Empty) => {
                        // Q1: arm, bind and queue in the critical section that found it empty.
                        let replaced = this.token.arm(waker);
                        this.entry.bind(&this.token, 0);
                        inner.push_receiver(&this.entry);
                        this.phase = Phase::Waiting;
                        drop(inner);
                        drop(replaced);
                        Poll::Pending
                    }
                }
            }
            Phase::Waiting => {
                if this.token.fired().is_none() {
                    if this.token.will_wake(waker) {
                        return Poll::Pending;
                    }
                    // Polled by another task: swap the waker under the lock (completers
                    // read it only under the lock), unless the token fired meanwhile.
                    let inner = this.chan.lock();
                    if this.token.fired().is_none() {
                        let replaced = this.token.set_waker(waker);
                        drop(inner);
                        drop(replaced);
                        return Poll::Pending;
                    }
                }
                this.phase = Phase::Done;
                // Q3: a value, or nothing when the channel closed.
                Poll::Ready(this.entry.take().ok_or(RecvError))
            }
            Phase::Done => panic!("a channel future polled after it completed"),
        }
    }

    /// The blocking path past its deadline: cancel (Q4), unless the token fired first.
    fn expire(self: Pin<&mut Self>) -> Result<T, RecvTimeoutError> {
        // SAFETY: as in `poll_with`.
        let this = unsafe { self.get_unchecked_mut() };
        debug_assert_eq!(this.phase, Phase::Waiting);
        this.phase = Phase::Done;
        match this.token.cancel() {
            Ok(()) => {
                this.chan.lock().recvq.remove(this.entry.as_ptr());
                Err(RecvTimeoutError::Timeout)
            }
            // Fired just before the deadline: the value counts as received.
            Err(_) => this.entry.take().ok_or(RecvTimeoutError::Closed),
        }
    }

    /// Blocks the thread until the receive completes or `deadline` passes.
    pub(crate) fn block(self, deadline: Option<Instant>) -> Result<T, RecvTimeoutError> {
        let mut fut = std::pin::pin!(self);
        let waker = thread_waker();
        loop {
            if let Poll::Ready(r) = fut.as_mut().poll_with(&waker) {
                return r.map_err(RecvTimeoutError::from);
            }
            let token = &fut.token;
            if !block_until(&|| token.is_over(), deadline) {
                return fut.as_mut().expire();
            }
        }
    }
}

impl<T> Future for RecvFuture<'_, T> {
    type Output = Result<T, RecvError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        self.poll_with(cx.waker())
    }
}

impl<T> Drop for RecvFuture<'_, T> {
    fn drop(&mut self) {
        if self.phase != Phase::Waiting {
            return;
        }
        match self.token.cancel() {
            // Q4: nobody can fire it any more; unlist the entry.
            Ok(()) => {
                self.chan.lock().recvq.remove(self.entry.as_ptr());
            }
            // Q5: fired before the cancel. A handed value goes back to the channel.
            Err(_) => {
                if let Some(v) = self.entry.take() {
                    wake(self.chan.give_back(v));
                }
            }
        }
    }
}

impl<'a, T> SendFuture<'a, T> {
    pub(crate) fn new(chan: &'a Chan<T>, value: T) -> Self {
        SendFuture { chan, phase: Phase::Idle, token: Token::new(), entry: Entry::new(Some(value)) }
    }

    /// One poll with `waker` (no cooperative budget: the blocking path uses it too).
    fn poll_with(self: Pin<&mut Self>, waker: &Waker) -> Poll<Result<(), SendError<T>>> {
        // SAFETY: nothing is moved out of the pinned future (as in `RecvFuture`).
        let this = unsafe { self.get_unchecked_mut() };
        match this.phase {
            Phase::Idle => {
                let value = this.entry.take().expect("an idle send holds its value");
                let mut inner = this.chan.lock();
                match this.chan.try_send_locked(&mut inner, value, std::ptr::null()) {
                    Ok(w) => {
                        drop(inner);
                        this.phase = Phase::Done;
                        wake(w);
                        Poll::Ready(Ok(()))
                    }
                    Err(TrySendError::Closed(v)) => {
                        this.phase = Phase::Done;
                        Poll::Ready(Err(SendError(v)))
                    }
                    Err(TrySendError::Full(v)) => {
                        // Q1: the value waits in the entry until a receiver takes it.
                        this.entry.put(v);
                        let replaced = this.token.arm(waker);
                        this.entry.bind(&this.token, 0);
                        inner.push_sender(&this.entry);
                        this.phase = Phase::Waiting;
                        drop(inner);
                        drop(replaced);
                        Poll::Pending
                    }
                }
            }
            Phase::Waiting => {
                if this.token.fired().is_none() {
                    if this.token.will_wake(waker) {
                        return Poll::Pending;
                    }
                    let inner = this.chan.lock();
                    if this.token.fired().is_none() {
                        let replaced = this.token.set_waker(waker);
                        drop(inner);
                        drop(replaced);
                        return Poll::Pending;
                    }
                }
                this.phase = Phase::Done;
                // Q3: taken (sent), or still ours because the channel closed.
                match this.entry.take() {
                    None => Poll::Ready(Ok(())),
                    Some(v) => Poll::Ready(Err(SendError(v))),
                }
            }
            Phase::Done => panic!("a channel future polled after it completed"),
        }
    }

    /// Cancels a waiting send (Q4) and returns the value, unless it was sent (then
    /// `Ok(None)`) or the channel closed (then the value comes back as an error).
    fn withdraw(&mut self) -> Result<Option<T>, SendError<T>> {
        match self.phase {
            Phase::Idle => {
                self.phase = Phase::Done;
                Ok(self.entry.take())
            }
            Phase::Done => Ok(None),
            Phase::Waiting => {
                self.phase = Phase::Done;
                match self.token.cancel() {
                    Ok(()) => {
                        self.chan.lock().sendq.remove(self.entry.as_ptr());
                        Ok(self.entry.take())
                    }
                    Err(_) => match self.entry.take() {
                        None => Ok(None),
                        Some(v) => Err(SendError(v)),
                    },
                }
            }
        }
    }

    /// Gives up the send and returns the value, unless a receiver already took it (then
    /// `None`: the send has happened). After this the future is finished (polling it
    /// again panics).
    ///
    /// ```
    /// use std::future::Future;
    /// use std::pin::pin;
    /// use std::task::{Context, Poll, Waker};
    /// let (tx, _rx) = filch::chan::bounded::<String>(0); // nobody receives
    /// let mut send = pin!(tx.send("hello".to_string()));
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(send.as_mut().poll(&mut cx).is_pending()); // waiting for a receiver
    /// assert_eq!(send.as_mut().cancel().as_deref(), Some("hello"));
    /// ```
    pub fn cancel(self: Pin<&mut Self>) -> Option<T> {
        // SAFETY: nothing is moved out of the pinned future; the entry is unlisted
        // before its value is taken.
        let this = unsafe { self.get_unchecked_mut() };
        match this.withdraw() {
            Ok(v) => v,
            Err(SendError(v)) => Some(v),
        }
    }

    /// The blocking path past its deadline.
    fn expire(self: Pin<&mut Self>) -> Result<(), SendTimeoutError<T>> {
        // SAFETY: as in `poll_with`.
        let this = unsafe { self.get_unchecked_mut() };
        debug_assert_eq!(this.phase, Phase::Waiting);
        this.phase = Phase::Done;
        match this.token.cancel() {
            Ok(()) => {
                this.chan.lock().sendq.remove(this.entry.as_ptr());
                Err(SendTimeoutError::Timeout(this.entry.take().expect("a cancelled send keeps its value")))
            }
            Err(_) => match this.entry.take() {
                None => Ok(()),
                Some(v) => Err(SendTimeoutError::Closed(v)),
            },
        }
    }

    /// Blocks the thread until the send completes or `deadline` passes.
    pub(crate) fn block(self, deadline: Option<Instant>) -> Result<(), SendTimeoutError<T>> {
        let mut fut = std::pin::pin!(self);
        let waker = thread_waker();
        loop {
            if let Poll::Ready(r) = fut.as_mut().poll_with(&waker) {
                return r.map_err(SendTimeoutError::from);
            }
            let token = &fut.token;
            if !block_until(&|| token.is_over(), deadline) {
                return fut.as_mut().expire();
            }
        }
    }
}

impl<T> Future for SendFuture<'_, T> {
    type Output = Result<(), SendError<T>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        self.poll_with(cx.waker())
    }
}

impl<T> Drop for SendFuture<'_, T> {
    fn drop(&mut self) {
        // Q4; the value, if still ours, is dropped with the entry (after the unlock).
        let _ = self.withdraw();
    }
}

impl<T> fmt::Debug for RecvFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RecvFuture").field("phase", &self.phase).finish_non_exhaustive()
    }
}

impl<T> fmt::Debug for SendFuture<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SendFuture").field("phase", &self.phase).finish_non_exhaustive()
    }
}
