//! Helpers for async tasks: yielding, and the cooperative budget.
//!
//! An async task runs until it returns `Pending`; nothing preempts it. A future that
//! computes for long, or keeps finding its resources ready, should let the others run
//! now and then with [`yield_now`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

pub use crate::runtime::async_task::BUDGET;

/// Lets the other tasks run: the first poll wakes the task and returns `Pending`, the next
/// returns `Ready`. On a filch worker the task goes to the back of its worker's queue, so
/// every task queued there runs before it is polled again.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
/// let h = sched.spawn_async(async {
///     let other = filch::spawn_async(async { 1 });
///     filch::future::yield_now().await; // `other` runs meanwhile
///     other.is_finished()
/// });
/// assert!(h.join().unwrap());
/// ```
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future of [`yield_now`].
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
