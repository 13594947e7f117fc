//! [`JoinSet`]: a set of tasks whose results are taken in the order the tasks finish.
//!
//! # How a completion reaches the set
//!
//! Every entry of the set sits in a *slot* (an index into the set's slab) with its own
//! *notice waker*, a `Waker` whose wake pushes the slot's index on the set's ready queue
//! and wakes whoever waits on the set. A handle is registered with that waker the way an
//! `.await` registers a task (T4, `runtime/join_handle.rs`), so the task's completion
//! itself delivers the notice: the set never polls the handles it holds.
//!
//! - **R1 (insert)**: the handle goes into a free slot and is polled once with the slot's
//!   waker. `Pending`: the waker is registered, and T4 will wake it when the task
//!   finishes. `Ready` (it had finished): the result is kept in the slot and the index
//!   pushed.
//! - **R2 (notice)**: a wake of a notice waker locks the ready queue, pushes its index,
//!   takes the set's waiter, unlocks, then wakes the waiter.
//! - **R3 (take)**: the owner moves the whole ready queue into its own list under one
//!   lock, and goes through it: a slot holding a result, or a finished handle (whose
//!   `join` then returns at once), yields it and becomes free; a slot whose task has not
//!   finished (the notice was stale, or a poll ran out of cooperative budget) is polled
//!   again with its waker, which registers it again; an empty slot's notice is dropped.
//! - **R4 (wait)**: with nothing to take, the owner locks the queue, and only if it is
//!   still empty stores its waiter there (a parker's waker when blocking, the task's
//!   waker when awaiting), then sleeps. R2 pushes and takes the waiter under the same
//!   lock, so either R2 comes first and R4 finds the index, or R2 finds the waiter.
//!
//! Exactly once: a result leaves the set only in R3, by moving it (or the handle) out of
//! its slot, so a second notice for the same slot finds it empty or holding a newer
//! entry, which it only polls. Nothing is lost: an entry whose task has not finished
//! either has its waker registered (R1, R3) or a notice queued (a poll that ran out of
//! budget wakes the waker at once).
//!
//! # Costs
//!
//! A slot's notice waker is allocated once, when the slab grows, and reused by every
//! later entry of that slot: a set that is drained as it is filled allocates nothing per
//! task after warming up. Per task: one registration CAS on its state word (R1), one lock
//! and one wake by the completing worker (R2), and a share of one lock per batch of
//! results for the owner (R3).

use std::collections::VecDeque;
use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll, RawWaker, RawWakerVTable, Waker};

use crate::lockfree::park::Parker;
use crate::primitives::waitlist::wait_until;
use crate::runtime::async_task::poll_proceed;
use crate::runtime::join_handle::JoinHandle;
use crate::shim::atomic::{AtomicUsize, Ordering::Relaxed};
use crate::shim::mutation::{self, Site};
use crate::shim::{Arc, Mutex, MutexGuard};
use crate::structured::group::TaskGroup;
use crate::task::TaskError;

/// A set of tasks whose results are taken as the tasks finish, in completion order —
/// tokio's `JoinSet`, Go's pattern of a result channel fed by goroutines.
///
/// Fill it with [`spawn`](Self::spawn)/[`spawn_async`](Self::spawn_async) (on the current
/// worker's scheduler, else the global default one, as [`crate::spawn`]), or with any
/// [`JoinHandle`]: [`insert`](Self::insert), `collect()`, `extend`, or
/// `JoinSet::from(task_group)`. Take results with [`join_next`](Self::join_next)
/// (blocking: on a worker thread it runs other tasks while it waits) or
/// [`join_next_async`](Self::join_next_async) (`.await` in async code). A task that
/// panicked, was cancelled or was refused yields its [`TaskError`]; nothing unwinds out of
/// the set.
///
/// Dropping the set *detaches* its tasks, as dropping a [`JoinHandle`] does: they still
/// run, and their results are dropped. Call [`abort_all`](Self::abort_all) first to stop
/// the ones that have not started.
///
/// Costs: see [`JoinSet::new`].
///
/// ```
/// use std::sync::mpsc::channel;
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let (release_slow, gate) = channel::<()>();
/// let mut set = filch::JoinSet::new();
/// set.insert(sched.spawn(move || { gate.recv().unwrap(); "slow" }));
/// set.insert(sched.spawn(|| "fast"));
/// assert_eq!(set.join_next().unwrap().unwrap(), "fast"); // the slow one waits for us
/// release_slow.send(()).unwrap();
/// assert_eq!(set.join_next().unwrap().unwrap(), "slow");
/// assert!(set.join_next().is_none()); // empty
/// ```
pub struct JoinSet<T> {
    slots: Vec<Slot<T>>,
    /// Indices of free slots.
    free: Vec<usize>,
    /// Entries not yet taken.
    len: usize,
    /// Notices moved out of the shared queue by R3, not processed yet.
    local: VecDeque<usize>,
    ready: Arc<Ready>,
}

struct Slot<T> {
    entry: Entry<T>,
    /// The slot's notice waker (allocated with the slot, reused by its entries).
    waker: Waker,
}

enum Entry<T> {
    Free,
    Running(JoinHandle<T>),
    Done(Result<T, TaskError>),
}

/// The ready queue, shared by the set and its notice wakers.
struct Ready {
    queue: Mutex<Queue>,
    /// `queue.ids.len()`, kept under the lock, read without it as a hint (R4 decides
    /// under the lock).
    queued: AtomicUsize,
}

struct Queue {
    ids: VecDeque<usize>,
    /// Whoever waits for a notice (R4); taken by the next R2.
    waiter: Option<Waker>,
}

impl Ready {
    /// Locks the queue. Nothing panics while holding it but a failed allocation; the queue
    /// is consistent at every point, so a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// R2.
    fn notify(&self, index: usize) {
        let waiter = {
            let mut q = self.lock();
            q.ids.push_back(index);
            // Relaxed: a hint (`Ready::queued`); readers that act on it take the lock.
            self.queued.store(q.ids.len(), Relaxed);
            q.waiter.take()
        };
        if let Some(w) = waiter {
            w.wake();
        }
    }

    fn has_notice(&self) -> bool {
        // Relaxed: a hint; a waiter re-checks under the lock before it sleeps (R4), and a
        // push it missed was made under a lock it has taken since, so it sees it then.
        self.queued.load(Relaxed) != 0
    }
}

/// What a notice waker points to: the queue, and the slot it notifies.
struct Notice {
    ready: Arc<Ready>,
    index: usize,
}

static NOTICE_WAKER: RawWakerVTable =
    RawWakerVTable::new(notice_clone, notice_wake, notice_wake_by_ref, notice_drop);

fn notice_waker(ready: &Arc<Ready>, index: usize) -> Waker {
    let notice = Arc::new(Notice { ready: ready.clone(), index });
    let raw = RawWaker::new(Arc::into_raw(notice).cast(), &NOTICE_WAKER);
    // SAFETY: the vtable's contract holds for a pointer from `Arc::into_raw` of a `Notice`.
    unsafe { Waker::from_raw(raw) }
}

unsafe fn notice_clone(p: *const ()) -> RawWaker {
    // SAFETY: `p` came from `Arc::into_raw` of a live `Arc<Notice>` (the waker cloned).
    unsafe { Arc::increment_strong_count(p.cast::<Notice>()) };
    RawWaker::new(p, &NOTICE_WAKER)
}

unsafe fn notice_wake(p: *const ()) {
    // SAFETY: as in `notice_clone`; this consumes the waker's count.
    let notice = unsafe { Arc::from_raw(p.cast::<Notice>()) };
    notice.ready.notify(notice.index);
}

unsafe fn notice_wake_by_ref(p: *const ()) {
    // SAFETY: as in `notice_clone`.
    let notice = unsafe { &*p.cast::<Notice>() };
    notice.ready.notify(notice.index);
}

unsafe fn notice_drop(p: *const ()) {
    // SAFETY: as in `notice_clone`; gives the waker's count back.
    drop(unsafe { Arc::from_raw(p.cast::<Notice>()) });
}

impl<T> JoinSet<T> {
    /// An empty set. Allocates the shared ready queue (one small block); each slot the
    /// set grows to later allocates its notice waker once, reused by every task that
    /// occupies the slot after. Per task: one registration CAS, one lock and wake by the
    /// worker that completes it, and a share of one lock per batch of results taken.
    ///
    /// ```
    /// let set: filch::JoinSet<u32> = filch::JoinSet::new();
    /// assert!(set.is_empty());
    /// ```
    pub fn new() -> Self {
        JoinSet {
            slots: Vec::new(),
            free: Vec::new(),
            len: 0,
            local: VecDeque::new(),
            ready: Arc::new(Ready {
                queue: Mutex::new(Queue { ids: VecDeque::new(), waiter: None }),
                queued: AtomicUsize::new(0),
            }),
        }
    }

    /// Adds a task by its handle, from any scheduler (R1). Its result comes out of
    /// [`join_next`](Self::join_next) once it finishes; a handle that has finished already
    /// yields at the next call.
    ///
    /// ```
    /// let a = filch::Scheduler::builder().workers(1).build().unwrap();
    /// let b = filch::Scheduler::builder().workers(1).build().unwrap();
    /// let mut set = filch::JoinSet::new();
    /// set.insert(a.spawn(|| 1));
    /// set.insert(b.spawn_async(async { 2 }));
    /// let mut got: Vec<i32> = set.join_all().into_iter().map(Result::unwrap).collect();
    /// got.sort();
    /// assert_eq!(got, [1, 2]);
    /// ```
    pub fn insert(&mut self, handle: JoinHandle<T>) {
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                let i = self.slots.len();
                self.slots.push(Slot { entry: Entry::Free, waker: notice_waker(&self.ready, i) });
                i
            }
        };
        self.len += 1;
        let slot = &mut self.slots[index];
        slot.entry = Entry::Running(handle);
        if let Some(r) = slot.poll() {
            slot.entry = Entry::Done(r);
            self.ready.notify(index);
        }
    }

    /// The number of tasks whose results have not been taken.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let mut set: filch::JoinSet<()> = sched.spawn_many(3, |_| ()).into();
    /// assert_eq!(set.len(), 3);
    /// set.join_next();
    /// assert_eq!(set.len(), 2);
    /// ```
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether every result has been taken (or nothing was added).
    ///
    /// ```
    /// let mut set = filch::JoinSet::new();
    /// assert!(set.is_empty());
    /// set.insert(filch::spawn(|| 1));
    /// assert!(!set.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Waits for the next task to finish and returns its result; `None` once the set is
    /// empty. Results come in the order the tasks finished. On a worker thread it runs
    /// other tasks while it waits (as [`JoinHandle::join`]); elsewhere it parks the
    /// thread. Inside an async task, await [`join_next_async`](Self::join_next_async)
    /// instead.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let mut set = filch::JoinSet::new();
    /// for i in 0..4u64 {
    ///     set.insert(sched.spawn(move || i * i));
    /// }
    /// let mut sum = 0;
    /// while let Some(r) = set.join_next() {
    ///     sum += r.unwrap();
    /// }
    /// assert_eq!(sum, 14);
    /// ```
    pub fn join_next(&mut self) -> Option<Result<T, TaskError>> {
        loop {
            if self.len == 0 {
                return None;
            }
            if let Some(r) = self.take_ready() {
                return Some(r);
            }
            // R4, blocking. (`take_ready` returned `None`: it went through the whole
            // local list, so only the shared queue can hold a notice now.)
            let ready = &*self.ready;
            wait_until(
                &|| ready.has_notice(),
                None,
                &|parker| {
                    let mut q = ready.lock();
                    if !q.ids.is_empty() && mutation::keep(Site::JoinSetWaitRechecks) {
                        return false;
                    }
                    q.waiter = Some(Parker::waker(parker));
                    true
                },
                &|_| ready.lock().waiter = None,
            );
        }
    }

    /// Returns a finished task's result if one is ready now, without waiting; `None` if
    /// none is (or the set is empty).
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let mut set = filch::JoinSet::new();
    /// assert!(set.try_join_next().is_none());
    /// set.insert(sched.spawn(|| 5));
    /// let r = loop {
    ///     if let Some(r) = set.try_join_next() {
    ///         break r;
    ///     }
    ///     std::thread::yield_now();
    /// };
    /// assert_eq!(r.unwrap(), 5);
    /// ```
    pub fn try_join_next(&mut self) -> Option<Result<T, TaskError>> {
        if self.len == 0 {
            return None;
        }
        self.take_ready()
    }

    /// The async form of [`join_next`](Self::join_next): resolves to the next finished
    /// task's result, or `None` once the set is empty. It waits without blocking the
    /// thread, and spends the cooperative budget as a `JoinHandle` does.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let total = sched.block_on(async {
    ///     let mut set = filch::JoinSet::new();
    ///     for i in 1..=3u32 {
    ///         set.spawn_async(async move { i * 10 });
    ///     }
    ///     let mut total = 0;
    ///     while let Some(r) = set.join_next_async().await {
    ///         total += r.unwrap();
    ///     }
    ///     total
    /// });
    /// assert_eq!(total, 60);
    /// ```
    pub fn join_next_async(&mut self) -> JoinNext<'_, T> {
        JoinNext { set: self }
    }

    /// Polls for the next result: `Ready(Some(_))` with a finished task's result,
    /// `Ready(None)` when the set is empty, `Pending` after registering `cx`'s waker (it
    /// is woken when a task finishes). For hand-written futures; async code awaits
    /// [`join_next_async`](Self::join_next_async).
    ///
    /// ```
    /// use std::task::{Context, Poll, Waker};
    /// let mut set: filch::JoinSet<u8> = filch::JoinSet::new();
    /// let mut cx = Context::from_waker(Waker::noop());
    /// assert!(matches!(set.poll_join_next(&mut cx), Poll::Ready(None)));
    /// ```
    pub fn poll_join_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Result<T, TaskError>>> {
        if self.len == 0 {
            return Poll::Ready(None);
        }
        if poll_proceed(cx).is_pending() {
            return Poll::Pending;
        }
        if let Some(r) = self.take_ready() {
            return Poll::Ready(Some(r));
        }
        // R4, async.
        let mut q = self.ready.lock();
        if q.ids.is_empty() && self.local.is_empty() {
            match &q.waiter {
                Some(w) if w.will_wake(cx.waker()) => {}
                _ => q.waiter = Some(cx.waker().clone()),
            }
        } else {
            // Notices left for next time (polls that ran out of budget): yield.
            drop(q);
            cx.waker().wake_by_ref();
        }
        Poll::Pending
    }

    /// Waits for every task and returns the results in completion order.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let set: filch::JoinSet<usize> = (0..5).map(|i| sched.spawn(move || i)).collect();
    /// let mut all: Vec<usize> = set.join_all().into_iter().map(Result::unwrap).collect();
    /// all.sort();
    /// assert_eq!(all, [0, 1, 2, 3, 4]);
    /// ```
    pub fn join_all(mut self) -> Vec<Result<T, TaskError>> {
        let mut out = Vec::with_capacity(self.len);
        while let Some(r) = self.join_next() {
            out.push(r);
        }
        out
    }

    /// Stops every task that has not finished, as [`JoinHandle::abort`] does: a closure
    /// task that has not started never runs, an async task is dropped at its next
    /// suspension point. Their results come out of the set as
    /// [`TaskError::Cancelled`] (a task that finished first yields its result as usual).
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let mut set = filch::JoinSet::new();
    /// set.insert(sched.spawn_async(std::future::pending::<()>())); // never finishes
    /// set.abort_all();
    /// assert!(matches!(set.join_next(), Some(Err(filch::TaskError::Cancelled))));
    /// ```
    pub fn abort_all(&self) {
        for s in &self.slots {
            if let Entry::Running(h) = &s.entry {
                h.abort();
            }
        }
    }

    /// Detaches every task (they still run; their results are dropped) and empties the
    /// set, as dropping it does, keeping its slots for reuse.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let (tx, rx) = std::sync::mpsc::channel();
    /// let mut set = filch::JoinSet::new();
    /// set.insert(sched.spawn(move || tx.send("still ran").unwrap()));
    /// set.detach_all();
    /// assert!(set.is_empty());
    /// assert_eq!(rx.recv().unwrap(), "still ran");
    /// ```
    pub fn detach_all(&mut self) {
        for (i, s) in self.slots.iter_mut().enumerate() {
            if !matches!(s.entry, Entry::Free) {
                s.entry = Entry::Free;
                self.free.push(i);
            }
        }
        self.len = 0;
        self.local.clear();
    }

    /// R3: the next result among the notices queued so far, if any.
    fn take_ready(&mut self) -> Option<Result<T, TaskError>> {
        if self.local.is_empty() {
            if !self.ready.has_notice() {
                return None;
            }
            let mut q = self.ready.lock();
            std::mem::swap(&mut q.ids, &mut self.local);
            // Relaxed: the hint, under the lock (`Ready::queued`).
            self.ready.queued.store(0, Relaxed);
        }
        // Only the notices present now: a poll out of budget pushes its index again, and
        // that one waits for the next call.
        for _ in 0..self.local.len() {
            let i = self.local.pop_front()?;
            let slot = &mut self.slots[i];
            let r = match std::mem::replace(&mut slot.entry, Entry::Free) {
                Entry::Free => continue,
                Entry::Done(r) => r,
                Entry::Running(h) if h.is_finished() => h.join(),
                running => {
                    slot.entry = running;
                    match slot.poll() {
                        Some(r) => r,
                        None => continue,
                    }
                }
            };
            self.free.push(i);
            self.len -= 1;
            return Some(r);
        }
        None
    }
}

impl<T> Slot<T> {
    /// Polls a running entry's handle with the slot's waker (registering it); its result
    /// if it finished. The entry becomes `Free` when the result is taken.
    fn poll(&mut self) -> Option<Result<T, TaskError>> {
        let Entry::Running(h) = &mut self.entry else { return None };
        let mut cx = Context::from_waker(&self.waker);
        match Pin::new(h).poll(&mut cx) {
            Poll::Ready(r) => {
                self.entry = Entry::Free;
                Some(r)
            }
            Poll::Pending => None,
        }
    }
}

impl<T> Default for JoinSet<T> {
    fn default() -> Self {
        JoinSet::new()
    }
}

impl<T> Drop for JoinSet<T> {
    fn drop(&mut self) {
        // The handles detach as the slots drop. A parker's waker left from a blocking wait
        // would only cost a spurious unpark; drop it now all the same.
        self.ready.lock().waiter = None;
    }
}

impl<T> fmt::Debug for JoinSet<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinSet").field("len", &self.len).finish_non_exhaustive()
    }
}

/// `collect()` handles into a set.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let set: filch::JoinSet<u8> = (0..3).map(|i| sched.spawn(move || i)).collect();
/// assert_eq!(set.len(), 3);
/// ```
impl<T> FromIterator<JoinHandle<T>> for JoinSet<T> {
    fn from_iter<I: IntoIterator<Item = JoinHandle<T>>>(iter: I) -> Self {
        let mut set = JoinSet::new();
        set.extend(iter);
        set
    }
}

/// Adds every handle of an iterator, as [`JoinSet::insert`].
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let mut set = filch::JoinSet::new();
/// set.extend([sched.spawn(|| 1), sched.spawn(|| 2)]);
/// assert_eq!(set.join_all().into_iter().map(Result::unwrap).sum::<i32>(), 3);
/// ```
impl<T> Extend<JoinHandle<T>> for JoinSet<T> {
    fn extend<I: IntoIterator<Item = JoinHandle<T>>>(&mut self, iter: I) {
        for h in iter {
            self.insert(h);
        }
    }
}

/// A batch's handles as a set, to take the results as they come rather than in spawn
/// order.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let set = filch::JoinSet::from(sched.spawn_many(4, |i| i));
/// assert_eq!(set.join_all().into_iter().map(Result::unwrap).sum::<usize>(), 6);
/// ```
impl<T> From<TaskGroup<T>> for JoinSet<T> {
    fn from(group: TaskGroup<T>) -> Self {
        group.into_handles().into_iter().collect()
    }
}

/// The future of [`JoinSet::join_next_async`].
#[must_use = "futures do nothing unless awaited"]
pub struct JoinNext<'a, T> {
    set: &'a mut JoinSet<T>,
}

impl<T> Future for JoinNext<'_, T> {
    type Output = Option<Result<T, TaskError>>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().set.poll_join_next(cx)
    }
}

impl<T> fmt::Debug for JoinNext<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinNext").field("set", &self.set).finish()
    }
}
