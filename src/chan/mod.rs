//! Channels: multi-producer, multi-consumer queues between tasks and threads, with Go's
//! closing rules and a [`select`] over several operations.
//!
//! - [`bounded(n)`](bounded) buffers up to `n` values; [`bounded(0)`](bounded) (also
//!   [`rendezvous()`]) buffers none, as Go's unbuffered channel: a send completes only when
//!   a receiver takes the value. [`unbounded()`] never makes a sender wait.
//! - [`Sender`] and [`Receiver`] are `Clone + Send + Sync` (for `T: Send`); clone them to
//!   get more producers or consumers. Each value is received by exactly one receiver.
//! - Every operation comes in four forms: `try_` (never waits), blocking (`send_blocking`,
//!   `recv_blocking`, from any thread), with a time limit (`send_timeout`, `recv_deadline`,
//!   …), and async (`send(v).await`, `recv().await`; combine with [`crate::time::timeout`]
//!   for a time limit).
//!
//! # Closing
//!
//! A channel closes when [`Sender::close`] (or [`Receiver::close`]) is called, when every
//! sender is dropped, or when every receiver is dropped. After that, sends fail and give
//! their value back inside the error ([`SendError`], [`TrySendError::Closed`], …), senders
//! waiting get their values back the same way, and receivers first drain what is buffered
//! and then get [`RecvError`] (or `TryRecvError::Closed`). When the last receiver goes, the
//! values still buffered are dropped with it: nobody can receive them any more. No value
//! is ever delivered twice, and none is lost: each is received once, returned to its
//! sender, or dropped as just described.
//!
//! # A tour
//!
//! ```
//! use filch::chan;
//! let sched = filch::Scheduler::builder().workers(2).build().unwrap();
//! let (tx, rx) = chan::bounded::<u64>(16);
//! // Producers: async tasks.
//! for p in 0..4u64 {
//!     let tx = tx.clone();
//!     sched.spawn_async(async move {
//!         for i in 0..100 {
//!             tx.send(p * 1000 + i).await.unwrap();
//!         }
//!     });
//! }
//! drop(tx); // the channel closes when the producers' clones are gone
//! // A consumer: this thread, blocking, until the channel is closed and drained.
//! let mut n = 0;
//! for _v in &rx {
//!     n += 1;
//! }
//! assert_eq!(n, 400);
//! ```
//!
//! A rendezvous channel hands each value over directly; `select` waits on several
//! operations and runs exactly one:
//!
//! ```
//! use std::time::Duration;
//! use filch::chan;
//! let (tx, rx) = chan::rendezvous::<&str>();
//! let (quit_tx, quit_rx) = chan::bounded::<()>(1);
//! let t = std::thread::spawn(move || {
//!     tx.send_blocking("ping").unwrap(); // returns once the receiver has it
//!     quit_tx.send_blocking(()).unwrap();
//! });
//! let mut got = Vec::new();
//! loop {
//!     let done = chan::select()
//!         // Once the thread is gone, `rx` is closed: a ready case too (`Err`), which
//!         // `select` may pick instead of `quit_rx`.
//!         .recv(&rx, |m| m.map(|m| got.push(m)).is_err())
//!         .recv(&quit_rx, |_| true)
//!         .timeout(Duration::from_secs(60), || true)
//!         .wait();
//!     if done { break; }
//! }
//! t.join().unwrap();
//! assert_eq!(got, ["ping"]);
//! ```
//!
//! # Waiting, and where a woken task runs
//!
//! The async forms suspend the task; a sender that finds a receiver waiting hands it the
//! value directly and wakes it, and on a filch worker the woken task is queued on *that*
//! worker's deque, so a ping-pong between two tasks stays on one core. Each async
//! operation spends one unit of the task's cooperative budget ([`crate::future::BUDGET`]),
//! so a task that always finds its channel ready still yields now and then.
//!
//! The blocking forms park the calling thread. Called from a closure task on a worker,
//! the worker's queue of tasks goes to a spare thread meanwhile (see
//! [`Builder::max_spare_threads`](crate::Builder::max_spare_threads)), so a blocked task
//! never stalls the pool: Go-style programs of sync tasks blocking on channels run on any
//! number of workers. A hand-off costs a thread switch each way (microseconds); async
//! tasks waiting on a channel cost nothing while they wait, so they are the faster
//! choice for fine-grained message passing.
//!
//! # Costs
//!
//! One lock per channel (as Go's `hchan`), held for a few dozen instructions. It is a spin
//! lock: a thread that finds it held spins, then yields its core, and never sleeps in the
//! kernel. The only user code it runs under the lock is the `clone` (and, rarely, the
//! drop) of a waker that is not filch's own: such a waker must not use the same channel,
//! or it spins for ever. A panic in another task's waker (its `clone`, `wake` or `drop`)
//! never reaches the send, receive or close that completes its wait: it is reported on
//! stderr, and that waiter is not woken, though it has its value (or its closed result)
//! when its owner polls it again: a future on an executor that polls only when woken then
//! waits for ever, holding that value, with the stderr line as the only trace.
//!
//! No allocation per operation, per wait or per `select` (a waiting operation's queue
//! entry lives inside its future, or on the blocked thread's stack). A buffered channel's
//! buffer is allocated when the channel is made (up to 4096 slots; more grow on demand).

mod block;
mod channel;
mod error;
mod ops;
mod select;
mod waiter;

use std::fmt;
use std::future::Future;
use std::time::{Duration, Instant};

pub use error::{RecvError, RecvTimeoutError, SendError, SendTimeoutError, TryRecvError, TrySendError};
pub use ops::{RecvFuture, SendFuture};
pub use select::{select, DefaultCase, RecvCase, Select, SelectFuture, SendCase, TimerCase, MAX_CASES};

use crate::shim::Arc;
use channel::{wake, Chan};

/// A channel buffering up to `cap` values; `bounded(0)` is a rendezvous channel (no
/// buffer: a send completes only when a receiver takes the value), as Go's
/// `make(chan T)` and crossbeam's `bounded(0)`.
///
/// ```
/// let (tx, rx) = filch::chan::bounded(2);
/// tx.try_send(1).unwrap();
/// tx.try_send(2).unwrap();
/// assert!(tx.try_send(3).unwrap_err().is_full());
/// assert_eq!(rx.try_recv(), Ok(1));
/// ```
pub fn bounded<T>(cap: usize) -> (Sender<T>, Receiver<T>) {
    let cap = cap.min(usize::MAX - 1);
    pair(Chan::new(cap))
}

/// A rendezvous channel: [`bounded(0)`](bounded).
///
/// ```
/// let (tx, rx) = filch::chan::rendezvous::<u8>();
/// assert!(tx.try_send(1).unwrap_err().is_full()); // nobody is receiving
/// let t = std::thread::spawn(move || rx.recv_blocking().unwrap());
/// tx.send_blocking(7).unwrap(); // completes when the receiver has taken it
/// assert_eq!(t.join().unwrap(), 7);
/// ```
pub fn rendezvous<T>() -> (Sender<T>, Receiver<T>) {
    bounded(0)
}

/// A channel without a bound: sends never wait (they fail only once it is closed).
///
/// ```
/// let (tx, rx) = filch::chan::unbounded();
/// for i in 0..1000 {
///     tx.try_send(i).unwrap();
/// }
/// assert_eq!(rx.len(), 1000);
/// ```
pub fn unbounded<T>() -> (Sender<T>, Receiver<T>) {
    pair(Chan::new(usize::MAX))
}

fn pair<T>(chan: Chan<T>) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(chan);
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The sending half of a channel. Clone it for more producers; the channel closes when
/// the last clone is dropped (or on [`close`](Self::close)).
///
/// ```
/// let (tx, rx) = filch::chan::unbounded();
/// let tx2 = tx.clone();
/// tx.try_send(1).unwrap();
/// tx2.try_send(2).unwrap();
/// drop((tx, tx2));
/// assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2]);
/// ```
pub struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half of a channel. Clone it for more consumers (each value goes to one
/// of them); iterate it to receive until the channel is closed and drained.
///
/// ```
/// let (tx, rx) = filch::chan::bounded(4);
/// std::thread::spawn(move || {
///     for i in 0..10 {
///         tx.send_blocking(i).unwrap();
///     }
/// });
/// assert_eq!(rx.into_iter().sum::<i32>(), 45);
/// ```
pub struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

impl<T> Sender<T> {
    /// Sends `value` if that can be done without waiting: to a waiting receiver, or into
    /// the buffer. Fails with [`TrySendError::Full`] otherwise (on a rendezvous channel:
    /// whenever no receiver waits), or with [`TrySendError::Closed`].
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded(1);
    /// assert_eq!(tx.try_send('a'), Ok(()));
    /// assert!(tx.try_send('b').unwrap_err().is_full());
    /// drop(rx);
    /// assert!(tx.try_send('c').unwrap_err().is_closed());
    /// ```
    pub fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        let w = {
            let mut inner = self.chan.lock();
            self.chan.try_send_locked(&mut inner, value, std::ptr::null())?
        };
        wake(w);
        Ok(())
    }

    /// Sends `value`, waiting (asynchronously) for room or, on a rendezvous channel, for
    /// a receiver to take it. `Err` gives the value back if the channel is closed.
    ///
    /// Dropping the future before it completes drops the value (exactly once) unless a
    /// receiver already took it; [`SendFuture::cancel`] returns it instead.
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded(1);
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let h = sched.spawn_async(async move {
    ///     for i in 0..3 {
    ///         tx.send(i).await.unwrap(); // waits while the buffer is full
    ///     }
    /// });
    /// assert_eq!(rx.iter().collect::<Vec<_>>(), [0, 1, 2]);
    /// h.join().unwrap();
    /// ```
    pub fn send(&self, value: T) -> SendFuture<'_, T> {
        SendFuture::new(&self.chan, value)
    }

    /// Sends `value`, blocking the thread until there is room or (rendezvous) a receiver
    /// takes it. Meant for plain threads (see the module docs on blocking in a task).
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded(0);
    /// let t = std::thread::spawn(move || rx.recv_blocking());
    /// tx.send_blocking("hi").unwrap();
    /// assert_eq!(t.join().unwrap(), Ok("hi"));
    /// ```
    pub fn send_blocking(&self, value: T) -> Result<(), SendError<T>> {
        match SendFuture::new(&self.chan, value).block(None) {
            Ok(()) => Ok(()),
            Err(e) => Err(SendError(e.into_inner())),
        }
    }

    /// [`send_blocking`](Self::send_blocking), giving up after `timeout`; the value comes
    /// back inside the error.
    ///
    /// ```
    /// use std::time::Duration;
    /// let (tx, _rx) = filch::chan::bounded(1);
    /// tx.send_timeout(1, Duration::from_millis(1)).unwrap(); // room in the buffer
    /// let err = tx.send_timeout(2, Duration::from_millis(1)).unwrap_err();
    /// assert!(err.is_timeout());
    /// assert_eq!(err.into_inner(), 2);
    /// ```
    pub fn send_timeout(&self, value: T, timeout: Duration) -> Result<(), SendTimeoutError<T>> {
        SendFuture::new(&self.chan, value).block(Instant::now().checked_add(timeout))
    }

    /// [`send_blocking`](Self::send_blocking), giving up at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (tx, _rx) = filch::chan::bounded::<u8>(0);
    /// let at = Instant::now() + Duration::from_millis(1);
    /// assert!(tx.send_deadline(5, at).unwrap_err().is_timeout());
    /// ```
    pub fn send_deadline(&self, value: T, deadline: Instant) -> Result<(), SendTimeoutError<T>> {
        SendFuture::new(&self.chan, value).block(Some(deadline))
    }

    /// Closes the channel: further sends fail, waiting senders get their values back,
    /// receivers drain what is buffered and then see it closed. Returns whether this call
    /// closed it (`false` if it was closed already).
    ///
    /// ```
    /// let (tx, rx) = filch::chan::unbounded();
    /// tx.try_send(1).unwrap();
    /// assert!(tx.close());
    /// assert!(tx.try_send(2).is_err());
    /// assert_eq!(rx.recv_blocking(), Ok(1));
    /// assert!(rx.recv_blocking().is_err());
    /// ```
    pub fn close(&self) -> bool {
        self.chan.close()
    }

    /// Whether the channel is closed.
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded::<u8>(1);
    /// assert!(!tx.is_closed());
    /// drop(rx);
    /// assert!(tx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Values buffered now (a snapshot).
    ///
    /// ```
    /// let (tx, _rx) = filch::chan::bounded(3);
    /// tx.try_send(1).unwrap();
    /// assert_eq!(tx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether nothing is buffered now (a snapshot).
    ///
    /// ```
    /// let (tx, _rx) = filch::chan::bounded::<u8>(3);
    /// assert!(tx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's capacity: `Some(0)` for a rendezvous channel, `None` for an unbounded
    /// one.
    ///
    /// ```
    /// assert_eq!(filch::chan::bounded::<u8>(5).0.capacity(), Some(5));
    /// assert_eq!(filch::chan::unbounded::<u8>().0.capacity(), None);
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        capacity(&self.chan)
    }

    /// How many senders and receivers the channel has now (a snapshot).
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded::<u8>(1);
    /// let _rx2 = rx.clone();
    /// assert_eq!(tx.counts(), (1, 2));
    /// ```
    pub fn counts(&self) -> (usize, usize) {
        self.chan.counts()
    }

    /// Whether `self` and `other` send on the same channel.
    ///
    /// ```
    /// let (tx, _rx) = filch::chan::bounded::<u8>(1);
    /// assert!(tx.same_channel(&tx.clone()));
    /// assert!(!tx.same_channel(&filch::chan::bounded::<u8>(1).0));
    /// ```
    pub fn same_channel(&self, other: &Sender<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

impl<T> Receiver<T> {
    /// Receives a value if one is there without waiting: buffered, or offered by a
    /// waiting sender. [`TryRecvError::Closed`] once the channel is closed and drained.
    ///
    /// ```
    /// use filch::chan::TryRecvError;
    /// let (tx, rx) = filch::chan::bounded(1);
    /// assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
    /// tx.try_send(9).unwrap();
    /// assert_eq!(rx.try_recv(), Ok(9));
    /// ```
    pub fn try_recv(&self) -> Result<T, TryRecvError> {
        let (r, w) = {
            let mut inner = self.chan.lock();
            self.chan.try_recv_locked(&mut inner, std::ptr::null())
        };
        wake(w);
        r
    }

    /// Receives the next value, waiting (asynchronously) for one; `Err(RecvError)` once
    /// the channel is closed and drained.
    ///
    /// Cancel-safe: dropping the future never loses a value (see [`RecvFuture`]).
    ///
    /// ```
    /// let (tx, rx) = filch::chan::unbounded();
    /// let h = filch::spawn_async(async move { rx.recv().await });
    /// tx.try_send(5).unwrap();
    /// assert_eq!(h.join().unwrap(), Ok(5));
    /// ```
    pub fn recv(&self) -> RecvFuture<'_, T> {
        RecvFuture::new(&self.chan)
    }

    /// Receives the next value, blocking the thread until one comes; `Err(RecvError)` once
    /// the channel is closed and drained. Meant for plain threads.
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded(1);
    /// std::thread::spawn(move || tx.send_blocking(3).unwrap());
    /// assert_eq!(rx.recv_blocking(), Ok(3));
    /// assert!(rx.recv_blocking().is_err()); // the sender is gone
    /// ```
    pub fn recv_blocking(&self) -> Result<T, RecvError> {
        RecvFuture::new(&self.chan).block(None).map_err(|_| RecvError)
    }

    /// [`recv_blocking`](Self::recv_blocking), giving up after `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// use filch::chan::RecvTimeoutError;
    /// let (tx, rx) = filch::chan::bounded::<u8>(1);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvTimeoutError::Timeout));
    /// drop(tx);
    /// assert_eq!(rx.recv_timeout(Duration::from_millis(1)), Err(RecvTimeoutError::Closed));
    /// ```
    pub fn recv_timeout(&self, timeout: Duration) -> Result<T, RecvTimeoutError> {
        RecvFuture::new(&self.chan).block(Instant::now().checked_add(timeout))
    }

    /// [`recv_blocking`](Self::recv_blocking), giving up at `deadline`.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let (_tx, rx) = filch::chan::bounded::<u8>(1);
    /// let at = Instant::now() + Duration::from_millis(1);
    /// assert!(rx.recv_deadline(at).is_err());
    /// ```
    pub fn recv_deadline(&self, deadline: Instant) -> Result<T, RecvTimeoutError> {
        RecvFuture::new(&self.chan).block(Some(deadline))
    }

    /// The next value, or `None` once the channel is closed and drained: the async
    /// counterpart of iterating.
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded(2);
    /// let h = filch::spawn_async(async move {
    ///     let mut sum = 0;
    ///     while let Some(v) = rx.next().await {
    ///         sum += v;
    ///     }
    ///     sum
    /// });
    /// for i in 1..=4 {
    ///     tx.send_blocking(i).unwrap();
    /// }
    /// drop(tx);
    /// assert_eq!(h.join().unwrap(), 10);
    /// ```
    pub fn next(&self) -> impl Future<Output = Option<T>> + '_ {
        let recv = self.recv();
        async move { recv.await.ok() }
    }

    /// A blocking iterator over the values, ending when the channel is closed and drained.
    ///
    /// ```
    /// let (tx, rx) = filch::chan::unbounded();
    /// tx.try_send(1).unwrap();
    /// tx.try_send(2).unwrap();
    /// drop(tx);
    /// assert_eq!(rx.iter().collect::<Vec<_>>(), [1, 2]);
    /// ```
    pub fn iter(&self) -> Iter<'_, T> {
        Iter { rx: self }
    }

    /// An iterator over the values there now, never waiting.
    ///
    /// ```
    /// let (tx, rx) = filch::chan::unbounded();
    /// tx.try_send(1).unwrap();
    /// tx.try_send(2).unwrap();
    /// assert_eq!(rx.try_iter().collect::<Vec<_>>(), [1, 2]); // the sender is still there
    /// ```
    pub fn try_iter(&self) -> TryIter<'_, T> {
        TryIter { rx: self }
    }

    /// Closes the channel, as [`Sender::close`] does: senders fail from now on, and this
    /// and the other receivers drain what is buffered. Returns whether this call closed it.
    ///
    /// ```
    /// let (tx, rx) = filch::chan::unbounded();
    /// tx.try_send(1).unwrap();
    /// rx.close();
    /// assert!(tx.try_send(2).is_err());
    /// assert_eq!(rx.try_recv(), Ok(1));
    /// ```
    pub fn close(&self) -> bool {
        self.chan.close()
    }

    /// Whether the channel is closed (values may still be buffered).
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded::<u8>(1);
    /// drop(tx);
    /// assert!(rx.is_closed());
    /// ```
    pub fn is_closed(&self) -> bool {
        self.chan.is_closed()
    }

    /// Values buffered now (a snapshot).
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded(3);
    /// tx.try_send(1).unwrap();
    /// assert_eq!(rx.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        self.chan.len()
    }

    /// Whether nothing is buffered now (a snapshot).
    ///
    /// ```
    /// let (_tx, rx) = filch::chan::bounded::<u8>(3);
    /// assert!(rx.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer's capacity: `Some(0)` for a rendezvous channel, `None` for an unbounded
    /// one.
    ///
    /// ```
    /// assert_eq!(filch::chan::bounded::<u8>(0).1.capacity(), Some(0));
    /// ```
    pub fn capacity(&self) -> Option<usize> {
        capacity(&self.chan)
    }

    /// How many senders and receivers the channel has now (a snapshot).
    ///
    /// ```
    /// let (tx, rx) = filch::chan::bounded::<u8>(1);
    /// drop(tx);
    /// assert_eq!(rx.counts(), (0, 1));
    /// ```
    pub fn counts(&self) -> (usize, usize) {
        self.chan.counts()
    }

    /// Whether `self` and `other` receive from the same channel.
    ///
    /// ```
    /// let (_tx, rx) = filch::chan::bounded::<u8>(1);
    /// assert!(rx.same_channel(&rx.clone()));
    /// ```
    pub fn same_channel(&self, other: &Receiver<T>) -> bool {
        Arc::ptr_eq(&self.chan, &other.chan)
    }
}

fn capacity<T>(chan: &Chan<T>) -> Option<usize> {
    (chan.cap != usize::MAX).then_some(chan.cap)
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.add_sender();
        Sender { chan: self.chan.clone() }
    }
}

impl<T> Clone for Receiver<T> {
    fn clone(&self) -> Self {
        self.chan.add_receiver();
        Receiver { chan: self.chan.clone() }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        self.chan.drop_sender();
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        self.chan.drop_receiver();
    }
}

impl<T> fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sender").field("len", &self.len()).field("capacity", &self.capacity()).finish()
    }
}

impl<T> fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Receiver").field("len", &self.len()).field("capacity", &self.capacity()).finish()
    }
}

/// The blocking iterator of [`Receiver::iter`].
#[derive(Debug)]
pub struct Iter<'a, T> {
    rx: &'a Receiver<T>,
}

/// The non-blocking iterator of [`Receiver::try_iter`].
#[derive(Debug)]
pub struct TryIter<'a, T> {
    rx: &'a Receiver<T>,
}

/// The owning blocking iterator of `Receiver`'s [`IntoIterator`] (`for v in rx`).
#[derive(Debug)]
pub struct IntoIter<T> {
    rx: Receiver<T>,
}

impl<T> Iterator for Iter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv_blocking().ok()
    }
}

impl<T> Iterator for TryIter<'_, T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.try_recv().ok()
    }
}

impl<T> Iterator for IntoIter<T> {
    type Item = T;
    fn next(&mut self) -> Option<T> {
        self.rx.recv_blocking().ok()
    }
}

impl<'a, T> IntoIterator for &'a Receiver<T> {
    type Item = T;
    type IntoIter = Iter<'a, T>;
    fn into_iter(self) -> Iter<'a, T> {
        self.iter()
    }
}

impl<T> IntoIterator for Receiver<T> {
    type Item = T;
    type IntoIter = IntoIter<T>;
    fn into_iter(self) -> IntoIter<T> {
        IntoIter { rx: self }
    }
}
