//! [`JoinHandle`]: waiting for a task, taking its result, cancelling it.

use std::fmt;
use std::marker::PhantomData;
use std::time::{Duration, Instant};

use crate::lockfree::park::Parker;
use crate::runtime::shared::Shared;
use crate::runtime::stats::Row;
use crate::runtime::worker;
use crate::task::{TaskError, TaskRef};

/// An owned permission to join a task: wait for it and take its result.
///
/// Dropping a `JoinHandle` detaches the task: it still runs, and its result is dropped
/// (a panic then goes to the scheduler's panic handler if the task had not finished yet).
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let h: filch::JoinHandle<u32> = sched.spawn(|| 7);
/// assert_eq!(h.join().unwrap(), 7);
/// let (tx, rx) = std::sync::mpsc::channel();
/// drop(sched.spawn(move || tx.send("ran anyway").unwrap())); // detached, still runs
/// assert_eq!(rx.recv().unwrap(), "ran anyway");
/// ```
pub struct JoinHandle<T> {
    /// `None`: the spawn was refused at shutdown, or an `await` took the output.
    task: Option<TaskRef>,
    /// An `await` registered its task's waker as the joiner (T4), not withdrawn yet.
    registered: bool,
    /// An `await` took the output: polling again is a bug.
    taken: bool,
    _output: PhantomData<fn() -> T>,
}

// SAFETY: the handle only moves the task's output (`T: Send`) to the joining thread; all
// shared task state is accessed through the atomic T1–T5 protocols.
unsafe impl<T: Send> Send for JoinHandle<T> {}
// SAFETY: `&JoinHandle` allows `is_finished` (an atomic load) and `cancel` (T1's CAS decides
// between concurrent callers); neither touches `T`.
unsafe impl<T: Send> Sync for JoinHandle<T> {}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle").field("finished", &self.is_finished()).finish()
    }
}

impl<T> JoinHandle<T> {
    pub(crate) fn new(task: TaskRef) -> Self {
        JoinHandle { task: Some(task), registered: false, taken: false, _output: PhantomData }
    }

    pub(crate) fn refused() -> Self {
        JoinHandle { task: None, registered: false, taken: false, _output: PhantomData }
    }

    /// Whether the task has finished: returned, panicked, was cancelled or abandoned (or
    /// was refused at spawn). A `true` means `join` will not wait.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let h = sched.spawn(move || rx.recv().unwrap());
    /// assert!(!h.is_finished()); // blocked until we send
    /// tx.send(()).unwrap();
    /// while !h.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// h.join().unwrap(); // returns at once
    /// ```
    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(TaskRef::is_complete)
    }

    /// Waits for the task and returns its result.
    ///
    /// Off the workers it parks the thread (no spinning) until the task completes. On a
    /// worker it never runs an unrelated task on top of the waiting one (which could
    /// wait for this very task): it runs the task itself if nobody has started it, else
    /// helps with the task's own subtasks (those queued on the worker running it), else
    /// blocks, handing its worker to a spare thread meanwhile so the pool keeps running
    /// (`Builder::max_spare_threads`).
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let h = sched.spawn(|| "done");
    /// assert_eq!(h.join().unwrap(), "done");
    /// let h = sched.spawn(|| -> u8 { panic!("boom") });
    /// assert_eq!(h.join().unwrap_err().panic_message(), Some("boom"));
    /// ```
    pub fn join(self) -> Result<T, TaskError> {
        match self.join_deadline(None) {
            Ok(out) => out,
            Err(_) => unreachable!("a join without a deadline cannot time out"),
        }
    }

    /// Like [`JoinHandle::join`], but gives the handle back if the task has not finished
    /// within `timeout`.
    ///
    /// ```
    /// use std::time::Duration;
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel::<()>();
    /// let h = sched.spawn(move || rx.recv().map(|()| 5).unwrap());
    /// // The task waits for the channel, so this times out and hands the handle back.
    /// let h = h.join_timeout(Duration::from_millis(1)).unwrap_err();
    /// tx.send(()).unwrap();
    /// assert_eq!(h.join_timeout(Duration::from_secs(60)).unwrap().unwrap(), 5);
    /// ```
    pub fn join_timeout(self, timeout: Duration) -> Result<Result<T, TaskError>, JoinHandle<T>> {
        self.join_deadline(Instant::now().checked_add(timeout))
    }

    fn join_deadline(mut self, deadline: Option<Instant>) -> Result<Result<T, TaskError>, JoinHandle<T>> {
        self.withdraw();
        let Some(task) = self.task.take() else {
            return Ok(Err(TaskError::ShutDown));
        };
        if !wait(&task, deadline) {
            self.task = Some(task);
            return Err(self);
        }
        // SAFETY: `wait` saw COMPLETE with Acquire; this handle still has JOIN_INTEREST (it
        // is only given up here or in Drop); `T` is the task's output type.
        let (out, dead) = unsafe { task.take_output_and_release::<T>() };
        if let Some(dead) = dead {
            Shared::free_task(dead);
        }
        Ok(out)
    }

    /// Cancels the task if it has not started: it will never run, its closure is dropped
    /// now, and `join` returns [`TaskError::Cancelled`]. Returns whether the cancel won; a
    /// task already running or finished is not affected.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
    /// let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
    /// let g = gate.clone();
    /// let busy = sched.spawn(move || { g.wait(); }); // occupies the only worker
    /// let queued = sched.spawn(|| unreachable!("cancelled before it ran"));
    /// let cancelled = queued.cancel();
    /// gate.wait();
    /// busy.join().unwrap();
    /// if cancelled {
    ///     assert!(matches!(queued.join(), Err(filch::TaskError::Cancelled)));
    /// }
    /// ```
    pub fn cancel(&self) -> bool {
        let Some(task) = &self.task else { return false };
        if task.is_async() {
            return self.abort();
        }
        if task.claim().is_err() {
            return false;
        }
        // SAFETY: we hold RUNNING from the claim.
        unsafe { task.abandon_claimed(TaskError::Cancelled) };
        // SAFETY: this handle holds a reference to the task, so the task is not freed yet,
        // and the orphan protocol keeps a task's scheduler state alive until every task it
        // created (pool or heap) is freed (`runtime/shared.rs`, "Task memory"), however the
        // scheduler's own drop races this call.
        let shared = unsafe { &*task.header().owner.cast::<Shared>() };
        worker::with_current(|ctx| match ctx.filter(|c| c.is_of(shared)) {
            Some(c) => Row::bump_owned(&c.row().cancelled, 1),
            None => Row::bump_shared(&shared.external.cancelled, 1),
        });
        // SAFETY: claimed and output written. We still hold JOIN_INTEREST, so nothing is
        // handed back to report.
        let payload = unsafe { task.complete(true) };
        debug_assert!(payload.is_none());
        true
    }
}

impl<T> JoinHandle<T> {
    /// Stops an async task at its next suspension point: its future is dropped there
    /// (exactly once, on a worker) instead of being polled again, and `join` (or `.await`)
    /// returns [`TaskError::Cancelled`] — unless the task finished first, which `join`
    /// then reports as usual. Returns whether the task had not finished yet. For a closure
    /// task this is [`JoinHandle::cancel`]: a closure cannot stop half way.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let h = sched.spawn_async(std::future::pending::<()>()); // waits forever
    /// assert!(h.abort());
    /// assert!(matches!(h.join(), Err(filch::TaskError::Cancelled)));
    /// ```
    pub fn abort(&self) -> bool {
        let Some(task) = &self.task else { return false };
        if !task.is_async() {
            return self.cancel();
        }
        let (pending, queue) = task.abort_step();
        if let Some(q) = queue {
            crate::runtime::async_task::schedule(q);
        }
        pending
    }

    /// Withdraws a waker an `await` registered, before a blocking join or the drop.
    fn withdraw(&mut self) {
        if std::mem::take(&mut self.registered) {
            if let Some(task) = &self.task {
                // SAFETY: we registered it and have not withdrawn it; a failed withdrawal
                // means the task completed and its completer took the waker (T4).
                unsafe { task.unregister_waiter() };
            }
        }
    }
}

/// Awaiting a `JoinHandle` waits for the task — closure or future — without blocking the
/// thread, and yields its result. Polling it again after it returned `Ready` panics.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let h = sched.spawn_async(async {
///     let a = filch::spawn(|| 20); // a closure task
///     let b = filch::spawn_async(async { 22 }); // an async task
///     a.await.unwrap() + b.await.unwrap()
/// });
/// assert_eq!(h.join().unwrap(), 42);
/// ```
impl<T> std::future::Future for JoinHandle<T> {
    type Output = Result<T, TaskError>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        use std::task::Poll;
        let this = self.get_mut();
        assert!(!this.taken, "a JoinHandle was polled after it returned its result");
        let Some(task) = &this.task else {
            this.taken = true;
            return Poll::Ready(Err(TaskError::ShutDown));
        };
        if crate::runtime::async_task::poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        let complete = task.is_complete()
            || if std::mem::take(&mut this.registered) {
                // SAFETY: registered by an earlier poll and not withdrawn; a failure means
                // the task completed (T4).
                !unsafe { task.unregister_waiter() }
                    // SAFETY: we own the handle and JOIN_WAITER is clear again.
                    || !unsafe { task.register_waiter(cx.waker()) }
            } else {
                // SAFETY: we own the handle and JOIN_WAITER is clear (never registered, or
                // withdrawn above).
                !unsafe { task.register_waiter(cx.waker()) }
            };
        if !complete {
            this.registered = true;
            return Poll::Pending;
        }
        let task = this.task.take().expect("checked above");
        this.taken = true;
        // SAFETY: COMPLETE seen with Acquire (by `is_complete` or the failed T4 step); we
        // still hold JOIN_INTEREST; `T` is the task's output type.
        let (out, dead) = unsafe { task.take_output_and_release::<T>() };
        if let Some(dead) = dead {
            Shared::free_task(dead);
        }
        Poll::Ready(out)
    }
}

/// Waits until `task` completes or `deadline` passes; `true` if complete.
fn wait(task: &TaskRef, deadline: Option<Instant>) -> bool {
    if task.is_complete() {
        return true;
    }
    let on_worker = worker::with_current(|ctx| {
        ctx.map(|c| {
            // Register the waiter lazily, right before the worker would park: a join whose
            // task this worker runs itself (the common fork-join case) never registers.
            let registered = std::cell::Cell::new(false);
            let before_park = || {
                if registered.get() {
                    return true;
                }
                // SAFETY: we own the handle and JOIN_WAITER is clear: it is set only here,
                // once, and withdrawn below before `wait` returns.
                let ok = unsafe { task.register_waiter(&Parker::waker(c.parker())) };
                registered.set(ok);
                ok
            };
            let done = c.in_join(|| c.wait_task(task, deadline, &before_park));
            // SAFETY: registered above; a failed unregister means the task completed.
            done || (registered.get() && !unsafe { task.unregister_waiter() })
        })
    });
    if let Some(done) = on_worker {
        return done;
    }
    worker::with_thread_parker(|parker| {
        // SAFETY: as above.
        if !unsafe { task.register_waiter(&Parker::waker(parker)) } {
            return true;
        }
        loop {
            if task.is_complete() {
                return true;
            }
            match deadline {
                None => parker.park(),
                Some(d) => {
                    let now = Instant::now();
                    if now >= d {
                        // SAFETY: registered above.
                        return !unsafe { task.unregister_waiter() };
                    }
                    parker.park_timeout(d - now);
                }
            }
        }
    })
}

impl<T> Drop for JoinHandle<T> {
    fn drop(&mut self) {
        self.withdraw();
        if let Some(task) = self.task.take() {
            if let Some(dead) = task.drop_handle() {
                Shared::free_task(dead);
            }
        }
    }
}
