//! Batch spawning (`spawn_many`, `spawn_batch`) and [`TaskGroup`].
//!
//! A batch is built as one chain of tasks linked through their headers' `next` fields and
//! published with a single `Injector::push_chain` (one Release CAS), followed by one K1
//! (`sleep.rs`: at most one wake-up). Workers take it from the injection queue in batches
//! of up to `INJECT_BATCH` into their deques, and each worker that finds work while
//! others sleep hands off by K4, so a large batch spreads without a wake-up per task.
//! From outside the scheduler the whole batch takes one lifecycle entry (L1…L3), and a
//! `spawn_batch` iterator is collected before it: no user code runs while the entry is
//! held, since a scheduler's teardown waits for every entry (an iterator that drops the
//! scheduler, or calls `install` from outside on one whose workers were all lost, would
//! wait for its own thread). `spawn_many`'s own iterator runs no user code and is not
//! collected.
//!
//! If the iterator of `spawn_batch` panics part-way, the tasks it yielded are still
//! published and run detached (on a worker a guard does it on unwind; from outside the
//! panic is caught, the closures collected so far are spawned, and the panic goes on);
//! nothing is leaked and the lifecycle entry is given back.

use std::fmt;
use std::panic::{self, AssertUnwindSafe};
use std::ptr::{self, NonNull};

use crate::runtime::join_handle::JoinHandle;
use crate::runtime::shared::Shared;
use crate::runtime::stats::Row;
use crate::runtime::worker::{self, WorkerCtx};
use crate::shim::mutation::{self, Site};
use crate::task::{Header, TaskError, TaskRef};

/// The handles of a batch of tasks, in spawn order; also built from any handles
/// (`collect()`, `TaskGroup::from(vec)`). For results in the order the tasks finish, turn
/// it into a [`JoinSet`](crate::JoinSet) (`JoinSet::from(group)`).
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let group = sched.spawn_many(4, |i| i * 10);
/// assert_eq!(group.len(), 4);
/// let out: Vec<usize> = group.join_all().into_iter().map(Result::unwrap).collect();
/// assert_eq!(out, vec![0, 10, 20, 30]);
/// ```
pub struct TaskGroup<T> {
    handles: Vec<JoinHandle<T>>,
}

impl<T> TaskGroup<T> {
    /// Waits for every task; results in spawn order. On a worker thread it runs other
    /// tasks while it waits.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let group = sched.spawn_many(3, |i| if i == 1 { panic!("one") } else { i * 10 });
    /// let results = group.join_all();
    /// assert_eq!(results[0].as_ref().ok(), Some(&0));
    /// assert_eq!(results[1].as_ref().unwrap_err().panic_message(), Some("one"));
    /// assert_eq!(results[2].as_ref().ok(), Some(&20));
    /// ```
    pub fn join_all(self) -> Vec<Result<T, TaskError>> {
        self.handles.into_iter().map(JoinHandle::join).collect()
    }

    /// Cancels every task that has not started; returns how many will never run (their
    /// results are [`TaskError::Cancelled`]).
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
    /// let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
    /// let g = gate.clone();
    /// let busy = sched.spawn(move || { g.wait(); }); // holds the only worker
    /// let group = sched.spawn_many(3, |i| i);
    /// let cancelled = group.cancel();
    /// gate.wait();
    /// busy.join().unwrap();
    /// let results = group.join_all();
    /// let errors = results.iter().filter(|r| r.is_err()).count();
    /// assert_eq!(errors, cancelled);
    /// ```
    pub fn cancel(&self) -> usize {
        self.handles.iter().filter(|h| h.cancel()).count()
    }

    /// The number of tasks in the group.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let group = sched.spawn_many(5, |i| i);
    /// assert_eq!(group.len(), 5);
    /// assert_eq!(group.join_all().len(), 5);
    /// ```
    pub fn len(&self) -> usize {
        self.handles.len()
    }

    /// Whether the group has no tasks.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// assert!(sched.spawn_batch(std::iter::empty::<fn() -> u8>()).is_empty());
    /// assert!(!sched.spawn_many(1, |i| i).is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.handles.is_empty()
    }

    /// Whether every task has finished.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let gate = std::sync::Arc::new(std::sync::Barrier::new(2));
    /// let g = gate.clone();
    /// let group = sched.spawn_many(1, move |_| { g.wait(); });
    /// assert!(!group.is_finished()); // its task waits at the gate
    /// gate.wait();
    /// while !group.is_finished() {
    ///     std::thread::yield_now();
    /// }
    /// assert!(group.join_all()[0].is_ok());
    /// ```
    pub fn is_finished(&self) -> bool {
        self.handles.iter().all(JoinHandle::is_finished)
    }

    /// The individual handles, in spawn order.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let handles = sched.spawn_many(3, |i| i * 2).into_handles();
    /// let out: Vec<usize> = handles.into_iter().rev().map(|h| h.join().unwrap()).collect();
    /// assert_eq!(out, [4, 2, 0]);
    /// ```
    pub fn into_handles(self) -> Vec<JoinHandle<T>> {
        self.handles
    }
}

/// A group of existing handles (from any spawns, any schedulers), kept in iteration order.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let group: filch::TaskGroup<u32> = (1..=3).map(|i| sched.spawn(move || i * 2)).collect();
/// let out: Vec<u32> = group.join_all().into_iter().map(Result::unwrap).collect();
/// assert_eq!(out, [2, 4, 6]);
/// ```
impl<T> FromIterator<JoinHandle<T>> for TaskGroup<T> {
    fn from_iter<I: IntoIterator<Item = JoinHandle<T>>>(iter: I) -> Self {
        TaskGroup { handles: iter.into_iter().collect() }
    }
}

/// A group of existing handles, in the `Vec`'s order.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let handles = vec![sched.spawn(|| "a"), sched.spawn_async(async { "b" })];
/// let group = filch::TaskGroup::from(handles);
/// let out: Vec<&str> = group.join_all().into_iter().map(Result::unwrap).collect();
/// assert_eq!(out, ["a", "b"]);
/// ```
impl<T> From<Vec<JoinHandle<T>>> for TaskGroup<T> {
    fn from(handles: Vec<JoinHandle<T>>) -> Self {
        TaskGroup { handles }
    }
}

impl<T> fmt::Debug for TaskGroup<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TaskGroup").field("len", &self.len()).field("finished", &self.is_finished()).finish()
    }
}

/// A chain under construction; publishes itself when dropped (also on unwind).
struct Chain<'a, 'w> {
    shared: &'a Shared,
    /// The spawning worker's context (`None`: an external spawner, inside L1–L3); its row
    /// is looked up at the publish, since the caller's iterator may have blocked and this
    /// thread's role changed meanwhile.
    ctx: Option<&'a WorkerCtx<'w>>,
    first: *mut Header,
    last: *mut Header,
    n: u64,
}

impl Chain<'_, '_> {
    fn append(&mut self, t: TaskRef) {
        let p = t.into_raw().as_ptr();
        if self.last.is_null() {
            self.first = p;
        } else {
            // SAFETY: `last` is a task reference this chain owns and has not published; its
            // `next` is free while it is in no queue. Relaxed: published by `push_chain`'s
            // Release CAS.
            unsafe { (*self.last).next.store(p, crate::shim::atomic::Ordering::Relaxed) };
        }
        self.last = p;
        self.n += 1;
    }
}

impl Drop for Chain<'_, '_> {
    fn drop(&mut self) {
        if let (Some(f), Some(l)) = (NonNull::new(self.first), NonNull::new(self.last)) {
            // SAFETY: `f..=l` is a chain of task references we own, linked through `next`.
            unsafe { self.shared.injector.push_chain(f, l) };
            match self.ctx {
                None => Row::bump_shared(&self.shared.external.spawned, self.n),
                Some(c) => {
                    let row = c.row();
                    Row::bump_owned(&row.spawned, self.n);
                    Row::bump_owned(&row.injected, self.n);
                }
            }
        }
        if self.ctx.is_none() {
            self.shared.leave_external();
        }
        if self.n > 0 {
            self.shared.notify();
        }
    }
}

/// Spawns every closure of `iter` as one batch (module docs). `user_iter`: the iterator
/// may run user code (`spawn_batch`), so from outside it is collected before the L1
/// entry; `spawn_many`'s (a range mapped to closures sharing one `Arc`) runs none and is
/// built under the entry directly, without a second copy of the closures.
pub(crate) fn spawn_group<I, F, T>(shared: &Shared, iter: I, user_iter: bool) -> TaskGroup<T>
where
    I: IntoIterator<Item = F>,
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let iter = iter.into_iter();
    let mut handles = Vec::with_capacity(iter.size_hint().0);
    worker::with_current(|ctx| match ctx.filter(|c| c.is_of(shared)) {
        Some(c) if !shared.is_abandoning() => build(shared, Some(c), iter, &mut handles),
        Some(_) => refuse(iter, &mut handles),
        None if !user_iter || !mutation::keep(Site::BatchCollectsFirst) => {
            if shared.enter_external() {
                build(shared, None, iter, &mut handles);
            } else {
                refuse(iter, &mut handles);
            }
        }
        None => {
            // The user's iterator runs before the entry is taken: code that waits for the
            // scheduler's teardown or for a job only the workers run would otherwise wait
            // for an entry that its own thread holds (module docs).
            // A panic part-way is re-raised after what it yielded was spawned, as on a
            // worker (module docs).
            let mut items: Vec<F> = Vec::with_capacity(iter.size_hint().0);
            let panicked = panic::catch_unwind(AssertUnwindSafe(|| items.extend(iter))).err();
            handles.reserve(items.len());
            if shared.enter_external() {
                build(shared, None, items.into_iter(), &mut handles);
            } else {
                refuse(items.into_iter(), &mut handles);
            }
            if let Some(p) = panicked {
                panic::resume_unwind(p);
            }
        }
    });
    TaskGroup { handles }
}

/// Builds a task per closure into one chain; the chain's guard publishes it, also when
/// the iterator panics part-way, and gives back an L1 entry taken by the caller (`ctx`
/// `None`).
fn build<I, F, T>(shared: &Shared, ctx: Option<&WorkerCtx<'_>>, iter: I, handles: &mut Vec<JoinHandle<T>>)
where
    I: Iterator<Item = F>,
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let mut chain = Chain { shared, ctx, first: ptr::null_mut(), last: ptr::null_mut(), n: 0 };
    for f in iter {
        let Ok((queued, Some(handle))) = shared.new_task(f, ctx, true, false, false) else {
            unreachable!("a spawn with heap fallback and a handle always succeeds")
        };
        chain.append(queued);
        handles.push(JoinHandle::new(handle));
    }
    drop(chain);
}

/// A refused batch: every closure dropped unrun, every handle joins to `ShutDown`.
fn refuse<I, F, T>(iter: I, handles: &mut Vec<JoinHandle<T>>)
where
    I: Iterator<Item = F>,
{
    for f in iter {
        drop(f);
        handles.push(JoinHandle::refused());
    }
}
