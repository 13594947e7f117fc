//! [`select`]: wait on several sends and receives (and a timer), and run exactly one.
//!
//! # Algorithm (docs/DESIGN.md, "Channels", X1–X4)
//!
//! - **X1 poll**: visit the channel cases in a uniformly random order (and the timer, if
//!   its deadline has passed), each under its own channel's lock, and perform the first
//!   that can complete now (S1–S3 / R1–R3). None ready and a `default` case: run it.
//! - **X2 register**: arm the one token (Q1) and queue an entry on every channel, each
//!   under its lock. A case found ready at that point (something changed since X1) aborts:
//!   cancel the token (Q4), unlist what was listed, back to X1. If the cancel fails, a
//!   completer fired a case already: X3.
//! - **X3 fired**: some completer's Q2 claimed the token for case `i` (exactly one can: it
//!   is one CAS from `WAITING`), performing it. Unlist every other entry, each under its
//!   channel's lock, and take case `i`'s result from its entry.
//! - **X4 timer** (or drop): cancel the token (Q4); if that wins, unlist every entry and
//!   run the timer case (or nothing); if it loses, X3.
//!
//! Unlike Go, the channels are never locked together: a case's readiness is checked and
//! its entry queued under that one channel's lock, and the token's CAS alone decides which
//! case takes effect. A `select` never completes against its own entries (a send and a
//! receive on the same channel in one `select` do not meet).

use std::fmt;
use std::future::{Future, IntoFuture};
use std::marker::PhantomData;
use std::pin::Pin;
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use self::internal::{Case, Cases};
use crate::chan::block::{block_until, thread_waker};
use crate::chan::channel::{wake, Chan};
use crate::chan::error::{RecvError, SendError, TryRecvError, TrySendError};
use crate::chan::waiter::{Entry, Token};
use crate::chan::{Receiver, Sender};
use crate::runtime::async_task::poll_proceed;
use crate::time::Sleep;

/// At most this many cases in one [`Select`] (adding one more panics).
///
/// ```
/// assert_eq!(filch::chan::MAX_CASES, 64);
/// ```
pub const MAX_CASES: usize = 64;

/// Starts a [`Select`] whose cases all produce an `R`.
///
/// ```
/// use filch::chan;
/// let (tx1, rx1) = chan::bounded::<u32>(1);
/// let (_tx2, rx2) = chan::bounded::<&str>(1);
/// tx1.try_send(7).unwrap();
/// let got = chan::select()
///     .recv(&rx1, |r| format!("number {}", r.unwrap()))
///     .recv(&rx2, |r| format!("text {}", r.unwrap()))
///     .wait();
/// assert_eq!(got, "number 7");
/// ```
pub fn select<R>() -> Select<R, ()> {
    Select { cases: (), timer: None, default: None, _out: PhantomData }
}

/// A set of channel operations of which exactly one will take effect: built with
/// [`recv`](Self::recv), [`send`](Self::send), [`timeout`](Self::timeout) /
/// [`deadline`](Self::deadline) and [`default`](Self::default), then run with
/// [`wait`](Self::wait) (blocking the thread) or `.await`.
///
/// - It waits until at least one case can proceed; when several can, it picks one
///   **uniformly at random** (as Go does), so no case starves another.
/// - Exactly one case takes effect, and its closure runs with its result; the others take
///   no effect. The value of a send case that is not chosen is dropped with the `Select`.
/// - A `default` case makes it non-blocking: it runs when no other case is ready at once.
/// - A timer case runs when its deadline passes first. In async code it uses
///   [`crate::time`]'s timers (a filch scheduler: the current one, else the global one).
/// - A receive case is ready when a value is there or the channel is closed (its closure
///   then gets `Err(RecvError)`); a send case, when there is room or a receiver, or when the
///   channel is closed (its closure gets the value back in the error).
///
/// Cost: no allocation; each case locks its channel once to check it and, if the select
/// has to wait, once more to queue its entry and once to take it off.
///
/// ```
/// use std::time::Duration;
/// use filch::chan;
/// let (tx, rx) = chan::bounded::<u8>(0);
/// // Nobody receives: the send case cannot proceed, the timer fires.
/// let r = chan::select()
///     .send(&tx, 1, |_| "sent")
///     .timeout(Duration::from_millis(5), || "timed out")
///     .wait();
/// assert_eq!(r, "timed out");
/// // Non-blocking with a default case.
/// let r = chan::select().recv(&rx, |_| "received").default(|| "nothing").wait();
/// assert_eq!(r, "nothing");
/// ```
#[must_use = "a select does nothing until it is waited on or awaited"]
pub struct Select<R, L> {
    cases: L,
    timer: Option<(usize, Instant)>,
    default: Option<usize>,
    _out: PhantomData<fn() -> R>,
}

impl<R, L: Cases<R>> Select<R, L> {
    fn push<C>(self, case: C) -> Select<R, (L, C)> {
        assert!(L::LEN < MAX_CASES, "a select has at most {MAX_CASES} cases");
        Select { cases: (self.cases, case), timer: self.timer, default: self.default, _out: PhantomData }
    }

    /// Adds a receive on `rx`; `f` gets the value, or `Err(RecvError)` if the channel is
    /// closed and drained.
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded(1);
    /// tx.try_send(3).unwrap();
    /// assert_eq!(filch::chan::select().recv(&rx, |r| r.unwrap() * 2).wait(), 6);
    /// ```
    pub fn recv<'a, T, F>(self, rx: &'a Receiver<T>, f: F) -> Select<R, (L, RecvCase<'a, T, F>)>
    where
        F: FnOnce(Result<T, RecvError>) -> R,
    {
        self.push(RecvCase { chan: &rx.chan, f, entry: Entry::new(None), listed: false, result: None })
    }

    /// Adds a send of `value` on `tx`; `f` gets `Ok(())`, or the value back in
    /// `Err(SendError)` if the channel is closed. If another case is chosen, `value` is
    /// dropped with the `Select`.
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded(1);
    /// filch::chan::select().send(&tx, 'x', |r| r.unwrap()).wait();
    /// assert_eq!(rx.try_recv(), Ok('x'));
    /// ```
    pub fn send<'a, T, F>(self, tx: &'a Sender<T>, value: T, f: F) -> Select<R, (L, SendCase<'a, T, F>)>
    where
        F: FnOnce(Result<(), SendError<T>>) -> R,
    {
        self.push(SendCase { chan: &tx.chan, f, entry: Entry::new(Some(value)), listed: false, result: None })
    }

    /// Adds a timer case that runs `f` if no other case proceeds within `timeout` (from
    /// now). At most one timer case per select.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (_tx, rx) = filch::chan::bounded::<u8>(1);
    /// let r = filch::chan::select().recv(&rx, |_| 1).timeout(Duration::from_millis(1), || 2).wait();
    /// assert_eq!(r, 2);
    /// ```
    pub fn timeout<F: FnOnce() -> R>(self, timeout: Duration, f: F) -> Select<R, (L, TimerCase<F>)> {
        let now = Instant::now();
        // A deadline too far to represent: about thirty years.
        let at = now.checked_add(timeout).unwrap_or_else(|| now + Duration::from_secs(86_400 * 365 * 30));
        self.deadline(at, f)
    }

    /// Adds a timer case that runs `f` if no other case proceeds before `deadline`. At most
    /// one timer case per select.
    ///
    /// ```
    /// use std::time::Instant;
    /// let (_tx, rx) = filch::chan::bounded::<u8>(1);
    /// let r = filch::chan::select().recv(&rx, |_| 1).deadline(Instant::now(), || 2).wait();
    /// assert_eq!(r, 2);
    /// ```
    pub fn deadline<F: FnOnce() -> R>(mut self, deadline: Instant, f: F) -> Select<R, (L, TimerCase<F>)> {
        assert!(self.timer.is_none(), "a select has at most one timer case");
        self.timer = Some((L::LEN, deadline));
        self.push(TimerCase { f })
    }

    /// Adds a default case: if no other case can proceed at once, `f` runs and the select
    /// does not wait. At most one per select.
    ///
    /// ```
    /// let (tx, _rx) = filch::chan::bounded::<u8>(0);
    /// let sent = filch::chan::select().send(&tx, 1, |_| true).default(|| false).wait();
    /// assert!(!sent); // no receiver was waiting
    /// ```
    pub fn default<F: FnOnce() -> R>(mut self, f: F) -> Select<R, (L, DefaultCase<F>)> {
        assert!(self.default.is_none(), "a select has at most one default case");
        self.default = Some(L::LEN);
        self.push(DefaultCase { f })
    }

    /// Runs the select on this thread, blocking it until a case proceeds (or the timer
    /// fires), and returns that case's result. From a closure task on a worker, the
    /// worker's queue goes to a spare thread while it blocks (see the module docs of
    /// [`crate::chan`]); in async code use `.await` instead.
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded::<u8>(0);
    /// let t = std::thread::spawn(move || tx.send_blocking(4).unwrap());
    /// assert_eq!(filch::chan::select().recv(&rx, |r| r.unwrap()).wait(), 4);
    /// t.join().unwrap();
    /// ```
    pub fn wait(self) -> R {
        let deadline = self.timer.map(|(_, d)| d);
        let mut fut = std::pin::pin!(self.into_future());
        let waker = thread_waker();
        loop {
            if let Poll::Ready(i) = fut.as_mut().poll_with(&waker) {
                return fut.finish(i);
            }
            let token = &fut.token;
            if !block_until(&|| token.is_over(), deadline) {
                let i = fut.as_mut().expire();
                return fut.finish(i);
            }
        }
    }
}

impl<R, L: Cases<R>> IntoFuture for Select<R, L> {
    type Output = R;
    type IntoFuture = SelectFuture<R, L>;

    /// The select as a future: `.await` it in async code.
    fn into_future(self) -> SelectFuture<R, L> {
        SelectFuture {
            cases: Some(self.cases),
            token: Token::new(),
            phase: Phase::Start,
            timer: self.timer,
            default: self.default,
            sleep: None,
            _out: PhantomData,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Phase {
    /// X1 next.
    Start,
    /// Entries listed (X2 done); waiting for X3 or X4.
    Waiting,
    Done,
}

/// The future of an awaited [`Select`]. Dropping it while it waits takes back every
/// entry; if a receive case had already been handed a value, that value goes back to its
/// channel (as a dropped [`RecvFuture`](super::RecvFuture)'s does), and a send case that
/// already happened stays done.
///
/// ```
/// let (tx, rx) = filch::chan::bounded::<u8>(1);
/// let h = filch::spawn_async(async move {
///     filch::chan::select().recv(&rx, |r| r.unwrap()).await
/// });
/// tx.send_blocking(9).unwrap();
/// assert_eq!(h.join().unwrap(), 9);
/// ```
#[must_use = "futures do nothing unless awaited"]
pub struct SelectFuture<R, L: Cases<R>> {
    /// Taken when the chosen case's closure runs.
    cases: Option<L>,
    token: Token,
    phase: Phase,
    timer: Option<(usize, Instant)>,
    default: Option<usize>,
    /// The async timer, made at the first wait.
    sleep: Option<Sleep>,
    _out: PhantomData<fn() -> R>,
}

// SAFETY: the entries' and token's raw pointers refer into the future itself and are used
// only under the rules of `waiter.rs`; the cases are `Send` when their values and
// closures are (checked by the `L: Send` bound).
unsafe impl<R, L: Cases<R> + Send> Send for SelectFuture<R, L> {}

impl<R, L: Cases<R>> SelectFuture<R, L> {
    fn cases(&mut self) -> &mut L {
        self.cases.as_mut().expect("a finished select")
    }

    /// Whether case `i` is a channel case.
    fn is_chan(&self, i: usize) -> bool {
        self.timer.is_none_or(|(t, _)| t != i) && self.default != Some(i)
    }

    /// X1: a random order over the channel cases (and the timer when due); the first that
    /// completes, else the default case.
    fn attempt(&mut self) -> Option<usize> {
        let mut order = [0u8; MAX_CASES];
        let mut n = 0;
        let due = self.timer.filter(|&(_, d)| Instant::now() >= d).map(|(i, _)| i);
        for i in 0..L::LEN {
            if self.is_chan(i) || due == Some(i) {
                order[n] = i as u8;
                n += 1;
            }
        }
        shuffle(&mut order[..n]);
        for &i in &order[..n] {
            let i = i as usize;
            if due == Some(i) || self.cases().get(i).try_now() {
                return Some(i);
            }
        }
        self.default
    }

    /// X2. `Ok(true)`: listed everywhere; `Ok(false)`: a case was ready, retry X1;
    /// `Err(i)`: case `i` fired meanwhile (its result is taken).
    fn register(&mut self, waker: &Waker) -> Result<bool, usize> {
        // Nothing is listed yet: no lock is held, the replaced waker may go now.
        drop(self.token.arm(waker));
        for i in 0..L::LEN {
            if !self.is_chan(i) {
                continue;
            }
            let token: *const Token = &self.token;
            // SAFETY: the token is pinned inside this future (or the blocked stack frame)
            // and outlives every entry listed with it.
            if !self.cases().get(i).register(unsafe { &*token }, i) {
                return match self.token.cancel() {
                    Ok(()) => {
                        self.unlist(None);
                        Ok(false)
                    }
                    Err(j) => Err(self.fired(j)),
                };
            }
        }
        Ok(true)
    }

    /// Takes every listed entry but `except`'s off its queue.
    fn unlist(&mut self, except: Option<usize>) {
        for i in (0..L::LEN).filter(|&i| Some(i) != except) {
            self.cases().get(i).unregister();
        }
    }

    /// X3 for case `i`.
    fn fired(&mut self, i: usize) -> usize {
        self.unlist(Some(i));
        self.cases().get(i).take_fired();
        i
    }

    /// X1–X3 with `waker` (no cooperative budget; the blocking path uses it too).
    fn poll_with(self: Pin<&mut Self>, waker: &Waker) -> Poll<usize> {
        // SAFETY: nothing is moved out of the pinned future while entries are listed (the
        // cases are taken out only in `finish`, after every entry is unlisted).
        let this = unsafe { self.get_unchecked_mut() };
        loop {
            match this.phase {
                Phase::Start => {
                    if let Some(i) = this.attempt() {
                        this.phase = Phase::Done;
                        return Poll::Ready(i);
                    }
                    match this.register(waker) {
                        Ok(true) => {
                            this.phase = Phase::Waiting;
                            return Poll::Pending;
                        }
                        Ok(false) => continue,
                        Err(i) => {
                            this.phase = Phase::Done;
                            return Poll::Ready(i);
                        }
                    }
                }
                Phase::Waiting => {
                    if let Some(i) = this.token.fired() {
                        this.phase = Phase::Done;
                        return Poll::Ready(this.fired(i));
                    }
                    if this.token.will_wake(waker) {
                        return Poll::Pending;
                    }
                    // Polled by another task: start over with its waker (entries on several
                    // channels cannot swap the waker under one lock).
                    match this.token.cancel() {
                        Ok(()) => {
                            this.unlist(None);
                            this.phase = Phase::Start;
                        }
                        Err(i) => {
                            this.phase = Phase::Done;
                            return Poll::Ready(this.fired(i));
                        }
                    }
                }
                Phase::Done => panic!("a select polled after it completed"),
            }
        }
    }

    /// X4: the timer is due. Returns the timer case, or the case that fired first.
    fn expire(self: Pin<&mut Self>) -> usize {
        // SAFETY: as in `poll_with`.
        let this = unsafe { self.get_unchecked_mut() };
        debug_assert_eq!(this.phase, Phase::Waiting);
        this.phase = Phase::Done;
        match this.token.cancel() {
            Ok(()) => {
                this.unlist(None);
                this.timer.expect("only a select with a timer expires").0
            }
            Err(i) => this.fired(i),
        }
    }

    /// Runs case `i`'s closure. Every entry is unlisted by now.
    fn finish(self: Pin<&mut Self>, i: usize) -> R {
        // SAFETY: the cases are moved out only now, with no entry listed (phase `Done`).
        let this = unsafe { self.get_unchecked_mut() };
        debug_assert_eq!(this.phase, Phase::Done);
        this.cases.take().expect("a select finishes once").finish(i)
    }
}

impl<R, L: Cases<R>> Future for SelectFuture<R, L> {
    type Output = R;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<R> {
        if poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        if let Poll::Ready(i) = self.as_mut().poll_with(cx.waker()) {
            return Poll::Ready(self.finish(i));
        }
        let Some((_, deadline)) = self.timer else { return Poll::Pending };
        // SAFETY: `sleep` is not structurally pinned (`Sleep` is `Unpin`).
        let sleep = unsafe { &mut self.as_mut().get_unchecked_mut().sleep };
        let sleep = sleep.get_or_insert_with(|| crate::time::sleep_until(deadline));
        if Pin::new(sleep).poll(cx).is_ready() {
            let i = self.as_mut().expire();
            return Poll::Ready(self.finish(i));
        }
        Poll::Pending
    }
}

impl<R, L: Cases<R>> Drop for SelectFuture<R, L> {
    fn drop(&mut self) {
        if self.phase != Phase::Waiting {
            return;
        }
        let Some(cases) = self.cases.as_mut() else { return };
        let fired = self.token.cancel().err();
        cases.drop_listed(fired);
    }
}

impl<R, L: Cases<R>> fmt::Debug for SelectFuture<R, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SelectFuture").field("phase", &self.phase).finish_non_exhaustive()
    }
}

impl<R, L> fmt::Debug for Select<R, L> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Select").finish_non_exhaustive()
    }
}

/// Shuffles `order` uniformly (Fisher–Yates) with a per-thread xorshift generator. Under
/// loom the order stays as it is, so that models are deterministic.
fn shuffle(order: &mut [u8]) {
    #[cfg(not(loom))]
    {
        use std::cell::Cell;
        std::thread_local! {
            static STATE: Cell<u64> = const { Cell::new(0) };
        }
        if order.len() < 2 {
            return;
        }
        STATE.with(|s| {
            let mut x = s.get();
            if x == 0 {
                // Seeded once per thread from the clock and the thread's stack address.
                let t =
                    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
                x = (t.as_nanos() as u64) ^ (s as *const Cell<u64> as u64).rotate_left(32) | 1;
            }
            for i in (1..order.len()).rev() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // The widening multiply maps `x` onto 0..=i without a division.
                let j = ((x as u128 * (i as u128 + 1)) >> 64) as usize;
                order.swap(i, j);
            }
            s.set(x);
        });
    }
    #[cfg(loom)]
    let _ = order;
}

/// A receive case of a [`Select`], added by [`Select::recv`]; only ever named by the
/// builder's type.
pub struct RecvCase<'a, T, F> {
    chan: &'a Chan<T>,
    f: F,
    entry: Entry<T>,
    listed: bool,
    result: Option<Result<T, RecvError>>,
}

/// A send case of a [`Select`], added by [`Select::send`]; only ever named by the
/// builder's type.
pub struct SendCase<'a, T, F> {
    chan: &'a Chan<T>,
    f: F,
    /// Holds the value until it is sent.
    entry: Entry<T>,
    listed: bool,
    result: Option<Result<(), SendError<T>>>,
}

/// The timer case of a [`Select`], added by [`Select::timeout`] or [`Select::deadline`].
pub struct TimerCase<F> {
    f: F,
}

/// The default case of a [`Select`], added by [`Select::default`].
pub struct DefaultCase<F> {
    f: F,
}

impl<T, F> Case for RecvCase<'_, T, F> {
    fn try_now(&mut self) -> bool {
        let (r, w) = {
            let mut inner = self.chan.lock();
            self.chan.try_recv_locked(&mut inner, std::ptr::null())
        };
        self.result = match r {
            Ok(v) => Some(Ok(v)),
            Err(TryRecvError::Closed) => Some(Err(RecvError)),
            Err(TryRecvError::Empty) => return false,
        };
        wake(w);
        true
    }

    fn register(&mut self, token: &Token, case: usize) -> bool {
        let mut inner = self.chan.lock();
        if self.chan.recv_ready(&inner, token) {
            return false;
        }
        self.entry.bind(token, case);
        inner.push_receiver(&self.entry);
        self.listed = true;
        true
    }

    fn unregister(&mut self) {
        if std::mem::take(&mut self.listed) {
            self.chan.lock().recvq.remove(self.entry.as_ptr());
        }
    }

    fn take_fired(&mut self) {
        self.listed = false;
        self.result = Some(self.entry.take().ok_or(RecvError));
    }

    fn drop_fired(&mut self) {
        // Q5, as a dropped receive future does.
        self.listed = false;
        if let Some(v) = self.entry.take() {
            wake(self.chan.give_back(v));
        }
    }
}

impl<T, F> Case for SendCase<'_, T, F> {
    fn try_now(&mut self) -> bool {
        let value = self.entry.take().expect("an unsent send case holds its value");
        let r = {
            let mut inner = self.chan.lock();
            self.chan.try_send_locked(&mut inner, value, std::ptr::null())
        };
        self.result = match r {
            Ok(w) => {
                wake(w);
                Some(Ok(()))
            }
            Err(TrySendError::Closed(v)) => Some(Err(SendError(v))),
            Err(TrySendError::Full(v)) => {
                self.entry.put(v);
                return false;
            }
        };
        true
    }

    fn register(&mut self, token: &Token, case: usize) -> bool {
        let mut inner = self.chan.lock();
        if self.chan.send_ready(&inner, token) {
            return false;
        }
        self.entry.bind(token, case);
        inner.push_sender(&self.entry);
        self.listed = true;
        true
    }

    fn unregister(&mut self) {
        if std::mem::take(&mut self.listed) {
            self.chan.lock().sendq.remove(self.entry.as_ptr());
        }
    }

    fn take_fired(&mut self) {
        self.listed = false;
        self.result = Some(match self.entry.take() {
            None => Ok(()),
            Some(v) => Err(SendError(v)),
        });
    }

    fn drop_fired(&mut self) {
        // Sent, or closed with the value still here (dropped with the case).
        self.listed = false;
    }
}

impl<F> Case for TimerCase<F> {}

impl<F> Case for DefaultCase<F> {}

impl<R, T, F: FnOnce(Result<T, RecvError>) -> R> internal::Finish<R> for RecvCase<'_, T, F> {
    fn finish(self) -> R {
        (self.f)(self.result.expect("the chosen case has a result"))
    }
}

impl<R, T, F: FnOnce(Result<(), SendError<T>>) -> R> internal::Finish<R> for SendCase<'_, T, F> {
    fn finish(self) -> R {
        (self.f)(self.result.expect("the chosen case has a result"))
    }
}

impl<R, F: FnOnce() -> R> internal::Finish<R> for TimerCase<F> {
    fn finish(self) -> R {
        (self.f)()
    }
}

impl<R, F: FnOnce() -> R> internal::Finish<R> for DefaultCase<F> {
    fn finish(self) -> R {
        (self.f)()
    }
}

// SAFETY: the entry's raw pointers refer to the select's own token and are used under the
// rules of `waiter.rs`; the value and closure move with the case.
unsafe impl<T: Send, F: Send> Send for RecvCase<'_, T, F> {}
// SAFETY: as above.
unsafe impl<T: Send, F: Send> Send for SendCase<'_, T, F> {}

impl<T, F> fmt::Debug for RecvCase<'_, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RecvCase")
    }
}

impl<T, F> fmt::Debug for SendCase<'_, T, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SendCase")
    }
}

impl<F> fmt::Debug for TimerCase<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TimerCase")
    }
}

impl<F> fmt::Debug for DefaultCase<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DefaultCase")
    }
}

/// The traits behind the builder's type-level list of cases: public (they appear in the
/// builder's bounds) but not nameable outside the crate.
mod internal {
    use crate::chan::waiter::Token;

    /// One case, type-erased. The timer and default cases keep the defaults (the
    /// `SelectFuture` knows their indices).
    pub trait Case {
        /// X1: performs the operation if it can complete now.
        fn try_now(&mut self) -> bool {
            false
        }
        /// X2: queues the entry for `token`'s case `case`, unless the operation could
        /// proceed now (`false`, nothing queued). The token outlives the listing.
        fn register(&mut self, _token: &Token, _case: usize) -> bool {
            true
        }
        /// Takes the entry off its queue if it is listed.
        fn unregister(&mut self) {}
        /// X3: the token fired for this case; take the result from the entry.
        fn take_fired(&mut self) {}
        /// The select is dropped after the token fired for this case (Q5 for a receive).
        fn drop_fired(&mut self) {}
    }

    /// Runs the chosen case's closure.
    pub trait Finish<R> {
        fn finish(self) -> R;
    }

    /// A type-level list of cases: `()` or `(rest, last)`.
    pub trait Cases<R> {
        const LEN: usize;
        /// Case `i` (in the order they were added).
        fn get(&mut self, i: usize) -> &mut dyn Case;
        /// Runs case `i`'s closure, dropping the others.
        fn finish(self, i: usize) -> R;
        /// Drop of a waiting select: unlists every entry, and `fired`'s case gives its
        /// result back (Q5).
        fn drop_listed(&mut self, fired: Option<usize>);
    }

    impl<R> Cases<R> for () {
        const LEN: usize = 0;
        fn get(&mut self, _: usize) -> &mut dyn Case {
            unreachable!("no such case")
        }
        fn finish(self, _: usize) -> R {
            unreachable!("no such case")
        }
        fn drop_listed(&mut self, _: Option<usize>) {}
    }

    impl<R, L: Cases<R>, C: Case + Finish<R>> Cases<R> for (L, C) {
        const LEN: usize = L::LEN + 1;
        fn get(&mut self, i: usize) -> &mut dyn Case {
            if i == L::LEN {
                &mut self.1
            } else {
                self.0.get(i)
            }
        }
        fn finish(self, i: usize) -> R {
            if i == L::LEN {
                self.1.finish()
            } else {
                self.0.finish(i)
            }
        }
        fn drop_listed(&mut self, fired: Option<usize>) {
            if fired == Some(L::LEN) {
                self.1.drop_fired();
            } else {
                self.1.unregister();
            }
            self.0.drop_listed(fired);
        }
    }
}
