//! Timers for async tasks: [`sleep`], [`sleep_until`], [`timeout`], [`interval`].
//!
//! There is no timer thread. Each worker owns a timer wheel (1 ms ticks, six levels of 64
//! slots); a sleep registers on the wheel of the worker that polls it first (from a thread
//! outside the scheduler: on the wheels in turn) in O(1), and its drop takes it out again
//! in O(1). Workers fire due timers between tasks (every 61st task) and whenever they
//! idle, and a parked worker's sleep ends at its wheel's next deadline, so an idle
//! scheduler with pending timers costs no CPU between them. A fired timer wakes its task
//! on the worker that fired it.
//!
//! A timer never fires early: it fires once its deadline has passed, typically within a
//! millisecond after (`docs/BENCHMARKS.md` has the measured lateness). Polled on a thread
//! outside any filch scheduler, a timer uses the current `Scheduler::block_on`'s
//! scheduler, else the global default one.
//!
//! ```
//! use std::time::Duration;
//! use filch::time::{sleep, timeout};
//! let sched = filch::Scheduler::builder().workers(2).build().unwrap();
//! let r = sched.block_on(async {
//!     sleep(Duration::from_millis(2)).await;
//!     timeout(Duration::from_millis(5), std::future::pending::<()>()).await
//! });
//! assert!(r.is_err()); // the pending future timed out
//! ```

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use crate::runtime::async_task::{current_shared, poll_proceed};
use crate::runtime::shared::Shared;
use crate::runtime::timer::TimerKey;
use crate::shim::Arc;

/// Waits until `duration` has passed.
///
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// filch::block_on(filch::time::sleep(Duration::from_millis(3)));
/// assert!(start.elapsed() >= Duration::from_millis(3));
/// ```
pub fn sleep(duration: Duration) -> Sleep {
    let now = Instant::now();
    // A deadline too far to represent waits "forever" (about 30 years).
    let deadline = now.checked_add(duration).unwrap_or_else(|| far_future(now));
    sleep_until(deadline)
}

/// Waits until `deadline`. A deadline in the past completes at the first poll.
///
/// ```
/// use std::time::{Duration, Instant};
/// let deadline = Instant::now() + Duration::from_millis(2);
/// filch::block_on(filch::time::sleep_until(deadline));
/// assert!(Instant::now() >= deadline);
/// ```
pub fn sleep_until(deadline: Instant) -> Sleep {
    Sleep { deadline, state: State::Idle }
}

fn far_future(now: Instant) -> Instant {
    now + Duration::from_secs(86_400 * 365 * 30)
}

/// The future of [`sleep`] and [`sleep_until`]. `Unpin`; dropping it cancels the timer.
#[must_use = "futures do nothing unless awaited"]
pub struct Sleep {
    deadline: Instant,
    state: State,
}

enum State {
    /// Not registered (never polled, or reset).
    Idle,
    /// On a wheel of `shared`.
    Registered(Arc<Shared>, TimerKey),
    /// The deadline has passed.
    Done,
}

impl Sleep {
    /// The instant this sleep ends at.
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let at = Instant::now() + Duration::from_secs(1);
    /// assert_eq!(filch::time::sleep_until(at).deadline(), at);
    /// ```
    pub fn deadline(&self) -> Instant {
        self.deadline
    }

    /// Whether the deadline has passed (as seen by the last poll).
    pub fn is_elapsed(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Moves the deadline; the sleep is pending again until it passes. Takes effect at the
    /// next poll (await the sleep, or poll it, after a reset).
    ///
    /// ```
    /// use std::time::{Duration, Instant};
    /// let mut s = filch::time::sleep(Duration::from_secs(3600));
    /// let soon = Instant::now() + Duration::from_millis(1);
    /// s.reset(soon);
    /// filch::block_on(&mut s);
    /// assert!(Instant::now() >= soon);
    /// ```
    pub fn reset(&mut self, deadline: Instant) {
        self.cancel();
        self.deadline = deadline;
        self.state = State::Idle;
    }

    fn cancel(&mut self) {
        if let State::Registered(shared, key) = std::mem::replace(&mut self.state, State::Idle) {
            shared.timers.cancel(key);
        }
    }

    fn finish(&mut self) -> Poll<()> {
        self.cancel();
        self.state = State::Done;
        Poll::Ready(())
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if let State::Done = this.state {
            return Poll::Ready(());
        }
        if poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        if Instant::now() >= this.deadline {
            return this.finish();
        }
        match &this.state {
            State::Registered(shared, key) => {
                if shared.timers.pending(*key, cx.waker()) {
                    Poll::Pending
                } else {
                    // Fired: its deadline had passed when it fired.
                    this.finish()
                }
            }
            _ => {
                let shared =
                    current_shared().unwrap_or_else(|| crate::api::scheduler::global().shared_arc().clone());
                assert!(
                    !(shared.is_closed() && shared.workers_running() == 0),
                    "filch::time: a timer was polled on a scheduler that has shut down"
                );
                let key = shared.timer_insert(this.deadline, cx.waker().clone());
                this.state = State::Registered(shared, key);
                Poll::Pending
            }
        }
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        self.cancel();
    }
}

impl fmt::Debug for Sleep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Sleep")
            .field("deadline", &self.deadline)
            .field("elapsed", &self.is_elapsed())
            .finish()
    }
}

/// Runs `fut` for at most `duration`: `Ok` with its output if it finishes first, else
/// `Err(Elapsed)`, and `fut` is dropped with the `Timeout`. The future is polled before the
/// clock is checked, so one that is ready when the time is up still wins.
///
/// ```
/// use std::time::Duration;
/// use filch::time::{sleep, timeout};
/// let fast = filch::block_on(timeout(Duration::from_secs(60), async { 1 }));
/// assert_eq!(fast, Ok(1));
/// let slow = filch::block_on(timeout(Duration::from_millis(1), sleep(Duration::from_secs(60))));
/// assert!(slow.is_err());
/// ```
pub fn timeout<F: Future>(duration: Duration, fut: F) -> Timeout<F> {
    Timeout { fut, sleep: sleep(duration) }
}

/// [`timeout`] with a deadline.
///
/// ```
/// use std::time::{Duration, Instant};
/// let at = Instant::now() + Duration::from_millis(1);
/// let r = filch::block_on(filch::time::timeout_at(at, std::future::pending::<()>()));
/// assert_eq!(r, Err(filch::time::Elapsed::new()));
/// ```
pub fn timeout_at<F: Future>(deadline: Instant, fut: F) -> Timeout<F> {
    Timeout { fut, sleep: sleep_until(deadline) }
}

/// The future of [`timeout`].
#[must_use = "futures do nothing unless awaited"]
#[derive(Debug)]
pub struct Timeout<F> {
    fut: F,
    sleep: Sleep,
}

impl<F> Timeout<F> {
    /// The wrapped future, and the time left to it, dropped.
    pub fn into_inner(self) -> F {
        self.fut
    }
}

impl<F: Future> Future for Timeout<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        // SAFETY: structural pinning of `fut`: it is never moved out of a pinned
        // `Timeout` (only `into_inner`, which takes `self` by value, i.e. unpinned), and
        // `Timeout` has no `Drop` of its own. `sleep` is `Unpin`.
        let this = unsafe { self.get_unchecked_mut() };
        // SAFETY: as above.
        let fut = unsafe { Pin::new_unchecked(&mut this.fut) };
        if let Poll::Ready(v) = fut.poll(cx) {
            return Poll::Ready(Ok(v));
        }
        match Pin::new(&mut this.sleep).poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed(()))),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The error of a [`timeout`] whose time ran out.
///
/// ```
/// let e = filch::time::Elapsed::new();
/// assert_eq!(e.to_string(), "deadline has elapsed");
/// let _: Box<dyn std::error::Error + Send + Sync> = Box::new(e);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Elapsed(());

impl Elapsed {
    /// The error value (for tests and matching).
    pub fn new() -> Elapsed {
        Elapsed(())
    }
}

impl Default for Elapsed {
    fn default() -> Self {
        Elapsed::new()
    }
}

impl fmt::Display for Elapsed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("deadline has elapsed")
    }
}

impl std::error::Error for Elapsed {}

/// What an [`Interval`] does when ticks were missed (its task was late to poll it).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum MissedTickBehavior {
    /// Fire the missed ticks at once, one per poll, until caught up; the schedule stays
    /// `start + k·period`.
    #[default]
    Burst,
    /// Fire once now, and the next tick one period after now: the schedule shifts.
    Delay,
    /// Fire once now, and the next tick at the next `start + k·period` after now: missed
    /// ticks are skipped.
    Skip,
}

/// Ticks every `period`, the first tick at once ([`interval_at`] picks the first).
/// Missed ticks are fired in a burst by default ([`MissedTickBehavior`]).
///
/// # Panics
/// If `period` is zero (a contract violation: the interval would never wait).
///
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now();
/// filch::block_on(async {
///     let mut ticks = filch::time::interval(Duration::from_millis(2));
///     for _ in 0..3 {
///         ticks.tick().await; // at 0, 2 and 4 ms
///     }
/// });
/// assert!(start.elapsed() >= Duration::from_millis(4));
/// ```
pub fn interval(period: Duration) -> Interval {
    interval_at(Instant::now(), period)
}

/// An [`interval`] whose first tick is at `start`.
///
/// # Panics
/// If `period` is zero.
///
/// ```
/// use std::time::{Duration, Instant};
/// let start = Instant::now() + Duration::from_millis(1);
/// let first = filch::block_on(async {
///     filch::time::interval_at(start, Duration::from_secs(1)).tick().await
/// });
/// assert_eq!(first, start);
/// ```
pub fn interval_at(start: Instant, period: Duration) -> Interval {
    assert!(!period.is_zero(), "filch::time::interval: the period must be non-zero");
    Interval { period, next: start, sleep: sleep_until(start), missed: MissedTickBehavior::default() }
}

/// A periodic timer ([`interval`]).
#[derive(Debug)]
pub struct Interval {
    period: Duration,
    /// The deadline of the next tick.
    next: Instant,
    sleep: Sleep,
    missed: MissedTickBehavior,
}

impl Interval {
    /// Waits for the next tick and returns its scheduled instant.
    pub async fn tick(&mut self) -> Instant {
        std::future::poll_fn(|cx| self.poll_tick(cx)).await
    }

    /// Polls for the next tick: `Ready` with its scheduled instant once it is due.
    pub fn poll_tick(&mut self, cx: &mut Context<'_>) -> Poll<Instant> {
        if Pin::new(&mut self.sleep).poll(cx).is_pending() {
            return Poll::Pending;
        }
        let tick = self.next;
        let now = Instant::now();
        let after = tick.checked_add(self.period).unwrap_or_else(|| far_future(now));
        self.next = if after > now {
            after
        } else {
            match self.missed {
                MissedTickBehavior::Burst => after,
                MissedTickBehavior::Delay => now.checked_add(self.period).unwrap_or_else(|| far_future(now)),
                MissedTickBehavior::Skip => {
                    let behind = now.duration_since(tick).as_nanos();
                    let periods = behind / self.period.as_nanos() + 1;
                    let ahead = u32::try_from(periods).ok().and_then(|k| self.period.checked_mul(k));
                    ahead.and_then(|d| tick.checked_add(d)).unwrap_or_else(|| far_future(now))
                }
            }
        };
        self.sleep.reset(self.next);
        Poll::Ready(tick)
    }

    /// The period.
    pub fn period(&self) -> Duration {
        self.period
    }

    /// What missed ticks do.
    pub fn missed_tick_behavior(&self) -> MissedTickBehavior {
        self.missed
    }

    /// Sets what missed ticks do.
    ///
    /// ```
    /// use filch::time::{interval, MissedTickBehavior};
    /// let mut i = interval(std::time::Duration::from_millis(10));
    /// i.set_missed_tick_behavior(MissedTickBehavior::Skip);
    /// assert_eq!(i.missed_tick_behavior(), MissedTickBehavior::Skip);
    /// ```
    pub fn set_missed_tick_behavior(&mut self, behavior: MissedTickBehavior) {
        self.missed = behavior;
    }

    /// Restarts the schedule: the next tick is one period from now.
    pub fn reset(&mut self) {
        let now = Instant::now();
        self.next = now.checked_add(self.period).unwrap_or_else(|| far_future(now));
        self.sleep.reset(self.next);
    }
}
