//! Configuring a scheduler: [`Builder`], [`BuildError`].

use std::fmt;
use std::sync::Arc as StdArc;
use std::time::Duration;

use crate::api::scheduler::Scheduler;
use crate::lockfree::deque::Owner;
use crate::lockfree::pool::Pool;
use crate::runtime::config::{Config, Idle, PanicHandler, ThreadHook};
use crate::runtime::roles::Role;
use crate::runtime::shared::{Shared, WorkerSlot};
use crate::runtime::thread;
use crate::task::TaskRef;

/// The most workers one scheduler may have (the sleepers set is a fixed bitmap).
///
/// ```
/// let err = filch::Scheduler::builder().workers(filch::MAX_WORKERS + 1).build().unwrap_err();
/// assert!(err.to_string().contains("workers"));
/// ```
pub const MAX_WORKERS: usize = 256;

/// The smallest per-worker deque capacity the scheduler accepts (a smaller one would
/// spill to the injection queue on almost every spawn).
///
/// ```
/// use filch::{Scheduler, MIN_DEQUE_CAPACITY};
/// let sched = Scheduler::builder().workers(1).deque_capacity(MIN_DEQUE_CAPACITY).build();
/// assert_eq!(sched.unwrap().spawn(|| 1).join().unwrap(), 1);
/// assert!(Scheduler::builder().deque_capacity(MIN_DEQUE_CAPACITY / 2).build().is_err());
/// ```
pub const MIN_DEQUE_CAPACITY: usize = 16;

/// The smallest pool the scheduler accepts.
///
/// ```
/// use filch::{Scheduler, MIN_POOL_CAPACITY};
/// let sched = Scheduler::builder().workers(1).pool_capacity(MIN_POOL_CAPACITY).build();
/// assert_eq!(sched.unwrap().spawn(|| 1).join().unwrap(), 1);
/// assert!(Scheduler::builder().pool_capacity(MIN_POOL_CAPACITY / 2).build().is_err());
/// ```
pub const MIN_POOL_CAPACITY: usize = 64;

/// A setting that [`Builder::build`] refused; the message names the setting.
///
/// ```
/// let err = filch::Scheduler::builder().pool_capacity(100).build().unwrap_err();
/// match err {
///     filch::BuildError::Invalid { setting, .. } => assert_eq!(setting, "pool_capacity"),
///     other => panic!("unexpected error: {other}"),
/// }
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum BuildError {
    /// An invalid value for the named setting.
    Invalid {
        /// The `Builder` method, e.g. `"workers"`.
        setting: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The OS refused to start a worker thread.
    Spawn(std::io::Error),
    /// The [`Builder::on_thread_start`] hook panicked on a worker (the first one that did,
    /// if several); the workers already started were shut down.
    StartHook {
        /// The worker's index.
        worker: usize,
        /// The panic's message (`"<non-string payload>"` if it was not a string).
        message: String,
    },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BuildError::Invalid { setting, reason } => write!(f, "invalid `{setting}` setting: {reason}"),
            BuildError::Spawn(e) => write!(f, "could not start a worker thread: {e}"),
            BuildError::StartHook { worker, message } => {
                write!(f, "the on_thread_start hook panicked on worker {worker}: {message}")
            }
        }
    }
}

impl std::error::Error for BuildError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            BuildError::Spawn(e) => Some(e),
            BuildError::Invalid { .. } | BuildError::StartHook { .. } => None,
        }
    }
}

/// Builds a [`Scheduler`]. Every setting has a default; `build` validates them all.
///
/// ```
/// use filch::{Idle, Scheduler};
/// let sched = Scheduler::builder()
///     .workers(2)
///     .pin(false)
///     .idle(Idle::Park { spins: 32, yields: 8 })
///     .thread_name("demo")
///     .build()
///     .unwrap();
/// assert_eq!(sched.num_workers(), 2);
/// assert!(Scheduler::builder().workers(0).build().unwrap_err().to_string().contains("workers"));
/// ```
#[must_use]
pub struct Builder {
    pub(crate) workers: Option<usize>,
    pub(crate) pin: bool,
    pub(crate) idle: Idle,
    pub(crate) pool_capacity: usize,
    pub(crate) deque_capacity: usize,
    pub(crate) thread_name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) on_thread_start: Option<ThreadHook>,
    pub(crate) on_thread_stop: Option<ThreadHook>,
    pub(crate) panic_handler: Option<PanicHandler>,
    pub(crate) inject_loop_panics: usize,
    pub(crate) max_spare_threads: usize,
    pub(crate) keep_alive: Duration,
}

/// Default of [`Builder::max_spare_threads`].
pub const DEFAULT_MAX_SPARE_THREADS: usize = 512;

impl fmt::Debug for Builder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Builder")
            .field("workers", &self.workers)
            .field("pin", &self.pin)
            .field("idle", &self.idle)
            .field("pool_capacity", &self.pool_capacity)
            .field("deque_capacity", &self.deque_capacity)
            .field("thread_name", &self.thread_name)
            .field("stack_size", &self.stack_size)
            .field("max_spare_threads", &self.max_spare_threads)
            .field("thread_keep_alive", &self.keep_alive)
            .finish_non_exhaustive()
    }
}

impl Default for Builder {
    fn default() -> Self {
        Builder {
            workers: None,
            pin: true,
            idle: Idle::default(),
            pool_capacity: crate::lockfree::pool::DEFAULT_CAPACITY,
            deque_capacity: crate::lockfree::deque::DEFAULT_CAPACITY,
            thread_name: "filch".to_string(),
            stack_size: None,
            on_thread_start: None,
            on_thread_stop: None,
            panic_handler: None,
            inject_loop_panics: 0,
            max_spare_threads: DEFAULT_MAX_SPARE_THREADS,
            keep_alive: Duration::from_secs(10),
        }
    }
}

impl Builder {
    /// The default builder (same as [`Scheduler::builder`]).
    ///
    /// ```
    /// let sched = filch::Builder::new().workers(2).build().unwrap();
    /// assert_eq!(sched.num_workers(), 2);
    /// ```
    pub fn new() -> Builder {
        Builder::default()
    }

    /// Number of worker threads. Default: `std::thread::available_parallelism()`, which
    /// honours cgroup CPU quotas and the affinity mask. 1 to [`MAX_WORKERS`].
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(3).build().unwrap();
    /// assert_eq!(sched.num_workers(), 3);
    /// assert!(filch::Scheduler::builder().workers(0).build().is_err());
    /// ```
    pub fn workers(mut self, n: usize) -> Self {
        self.workers = Some(n);
        self
    }

    /// Pin each worker to its own core (default `true`), chosen among the CPUs of the
    /// process's affinity mask (as read when the first scheduler is built): the ones with
    /// the fewest workers of this process's schedulers pinned to them, so that two
    /// schedulers do not share a core while another is free. An exiting worker frees its
    /// core. When pinning fails, or there are fewer allowed cores than workers, the
    /// workers run unpinned and the reason is printed once on stderr.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).pin(false).build().unwrap();
    /// assert_eq!(sched.spawn(|| 1 + 1).join().unwrap(), 2);
    /// ```
    pub fn pin(mut self, pin: bool) -> Self {
        self.pin = pin;
        self
    }

    /// What idle workers do; default [`Idle::park`].
    ///
    /// ```
    /// use filch::{Idle, Scheduler};
    /// let idle = Idle::Park { spins: 4, yields: 4 };
    /// let sched = Scheduler::builder().workers(2).idle(idle).build().unwrap();
    /// assert_eq!(sched.spawn(|| 3 * 3).join().unwrap(), 9);
    /// ```
    pub fn idle(mut self, idle: Idle) -> Self {
        self.idle = idle;
        self
    }

    /// Task pool slots, a power of two from [`MIN_POOL_CAPACITY`] to
    /// [`crate::lockfree::pool::MAX_CAPACITY`]. Default 8192. Spawns beyond it use heap tasks.
    /// A thread outside the workers that keeps spawning into a full pool (past the first
    /// 4096 heap tasks of one overflow, with no more than 1024 spawns from outside getting
    /// a slot in between) first yields its core up to four times for the workers to free a
    /// slot, so that it spawns at their pace into recycled slots instead of allocating
    /// every task; after a wait that found none, the next 1024 such spawns go to the heap
    /// without waiting. Batches, async spawns and `spawn_blocking` tasks for spare threads
    /// never wait.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).pool_capacity(64).build().unwrap();
    /// // More tasks than slots: the rest become heap tasks.
    /// let group = sched.spawn_many(200, |i| i);
    /// assert_eq!(group.join_all().into_iter().map(Result::unwrap).sum::<usize>(), 19_900);
    /// assert!(filch::Scheduler::builder().pool_capacity(100).build().is_err());
    /// ```
    pub fn pool_capacity(mut self, n: usize) -> Self {
        self.pool_capacity = n;
        self
    }

    /// Per-worker deque capacity, a power of two from [`MIN_DEQUE_CAPACITY`] to
    /// [`crate::lockfree::deque::MAX_CAPACITY`]. Default 4096. A full deque spills half to the
    /// injection queue.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).deque_capacity(16).build().unwrap();
    /// // A task spawns more tasks than its deque holds: the excess spills to the injector.
    /// let outer = sched.spawn(|| {
    ///     let inner: Vec<_> = (0..100u32).map(|i| filch::spawn(move || i)).collect();
    ///     inner.into_iter().map(|h| h.join().unwrap()).sum::<u32>()
    /// });
    /// assert_eq!(outer.join().unwrap(), 4950);
    /// assert!(filch::Scheduler::builder().deque_capacity(1000).build().is_err());
    /// ```
    pub fn deque_capacity(mut self, n: usize) -> Self {
        self.deque_capacity = n;
        self
    }

    /// Worker threads are named `"{prefix}-{index}"`. Default prefix `"filch"`.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).thread_name("demo").build().unwrap();
    /// let name = sched.spawn(|| std::thread::current().name().map(String::from)).join().unwrap();
    /// assert!(name.unwrap().starts_with("demo-"));
    /// ```
    pub fn thread_name(mut self, prefix: impl Into<String>) -> Self {
        self.thread_name = prefix.into();
        self
    }

    /// Stack size of worker threads in bytes (default: std's, 2 MiB). At least 16 KiB.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).stack_size(4 << 20).build().unwrap();
    /// let big_frame = sched.spawn(|| [1u8; 1 << 20].iter().map(|&b| b as usize).sum::<usize>());
    /// assert_eq!(big_frame.join().unwrap(), 1 << 20); // a 1 MiB local array fits
    /// assert!(filch::Scheduler::builder().stack_size(1024).build().is_err());
    /// ```
    pub fn stack_size(mut self, bytes: usize) -> Self {
        self.stack_size = Some(bytes);
        self
    }

    /// Spare threads at most (default [`DEFAULT_MAX_SPARE_THREADS`], 0 allowed). A sync
    /// task that blocks on a worker — a channel operation, [`block_in_place`](crate::block_in_place),
    /// a [`JoinHandle::join`](crate::JoinHandle::join) with nothing to help with — hands the
    /// worker's role to a spare thread while it waits, so the pool keeps running all its
    /// workers; [`spawn_blocking`](crate::Scheduler::spawn_blocking) tasks run on spare
    /// threads too. Once this many spares are busy, a blocking task blocks its worker (the
    /// others keep running) and blocking tasks queue for the next free spare. With 0 no
    /// thread is ever started beyond the workers: every blocking wait blocks its worker,
    /// and `spawn_blocking` tasks run on the workers as ordinary tasks.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(1).max_spare_threads(4).build().unwrap();
    /// let (tx, rx) = filch::chan::rendezvous::<u32>();
    /// // On one worker: the receiver blocks, a spare thread takes over the worker's queue
    /// // meanwhile, and the sender runs.
    /// let recv = sched.spawn(move || rx.recv_blocking().unwrap());
    /// let send = sched.spawn(move || tx.send_blocking(7).unwrap());
    /// send.join().unwrap();
    /// assert_eq!(recv.join().unwrap(), 7);
    /// ```
    pub fn max_spare_threads(mut self, n: usize) -> Self {
        self.max_spare_threads = n;
        self
    }

    /// How long an idle spare thread waits for work before it exits (default 10 s).
    ///
    /// ```
    /// use std::time::Duration;
    /// let sched = filch::Scheduler::builder().thread_keep_alive(Duration::from_millis(50)).build().unwrap();
    /// assert_eq!(sched.spawn_blocking(|| 2 + 2).join().unwrap(), 4);
    /// ```
    pub fn thread_keep_alive(mut self, d: Duration) -> Self {
        self.keep_alive = d;
        self
    }

    /// Called on each worker thread, with its index, before it runs any task.
    /// [`build`](Builder::build) waits until it has run on every worker; if it panics,
    /// `build` fails with [`BuildError::StartHook`].
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let started = Arc::new(Mutex::new(Vec::new()));
    /// let log = started.clone();
    /// let sched = filch::Scheduler::builder()
    ///     .workers(2)
    ///     .on_thread_start(move |i| log.lock().unwrap().push(i))
    ///     .build()
    ///     .unwrap();
    /// drop(sched); // joins the workers
    /// started.lock().unwrap().sort();
    /// assert_eq!(*started.lock().unwrap(), [0, 1]);
    /// ```
    pub fn on_thread_start(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_thread_start = Some(StdArc::new(f));
        self
    }

    /// Called on each worker thread, with its index, after its last task, before it exits.
    ///
    /// A panic in the hook is contained: it goes to the [panic
    /// handler](Builder::panic_handler), is counted in [`WorkerStats::hook_panics`](crate::WorkerStats::hook_panics),
    /// and the worker exits as usual.
    ///
    /// ```
    /// use std::sync::{Arc, Mutex};
    /// let stopped = Arc::new(Mutex::new(Vec::new()));
    /// let log = stopped.clone();
    /// let sched = filch::Scheduler::builder()
    ///     .workers(2)
    ///     .on_thread_stop(move |i| log.lock().unwrap().push(i))
    ///     .build()
    ///     .unwrap();
    /// drop(sched); // every worker has stopped once `drop` returns
    /// stopped.lock().unwrap().sort();
    /// assert_eq!(*stopped.lock().unwrap(), [0, 1]);
    /// ```
    pub fn on_thread_stop(mut self, f: impl Fn(usize) + Send + Sync + 'static) -> Self {
        self.on_thread_stop = Some(StdArc::new(f));
        self
    }

    /// Receives the panic payload of every task that panicked with no `JoinHandle` left to
    /// receive it. Default: one line on stderr. Runs on the worker; if the handler itself
    /// panics, that panic is caught and printed.
    ///
    /// ```
    /// use std::sync::{mpsc, Arc, Mutex};
    /// let caught = Arc::new(Mutex::new(Vec::new()));
    /// let log = caught.clone();
    /// let sched = filch::Scheduler::builder()
    ///     .workers(2)
    ///     .panic_handler(move |p| log.lock().unwrap().push(*p.downcast::<&str>().unwrap()))
    ///     .build()
    ///     .unwrap();
    /// let (go, wait) = mpsc::channel::<()>();
    /// drop(sched.spawn(move || -> () { wait.recv().unwrap(); panic!("unjoined") })); // detached
    /// go.send(()).unwrap(); // the task panics after its handle is gone
    /// drop(sched); // runs the task to the end
    /// assert_eq!(*caught.lock().unwrap(), ["unjoined"]);
    /// ```
    pub fn panic_handler(
        mut self,
        f: impl Fn(Box<dyn std::any::Any + Send>) + Send + Sync + 'static,
    ) -> Self {
        self.panic_handler = Some(StdArc::new(f));
        self
    }

    /// Fault injection for tests of the runtime's containment: the first `n` times a
    /// worker is about to park in its outermost loop, it panics there instead, as a bug in
    /// the runtime would. Not for production use.
    #[doc(hidden)]
    pub fn inject_loop_panics(mut self, n: usize) -> Self {
        self.inject_loop_panics = n;
        self
    }

    /// Validates every setting and starts the workers.
    ///
    /// With an [`on_thread_start`](Builder::on_thread_start) hook, returns once the hook has
    /// run on every worker, and fails with [`BuildError::StartHook`] if it panicked on one.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// assert_eq!(sched.num_workers(), 2);
    /// let err = filch::Scheduler::builder().stack_size(1).build().unwrap_err();
    /// assert!(err.to_string().contains("stack_size"));
    /// ```
    pub fn build(self) -> Result<Scheduler, BuildError> {
        self.validate()?;
        self.start()
    }

    pub(crate) fn resolved_workers(&self) -> usize {
        self.workers.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
    }

    fn validate(&self) -> Result<(), BuildError> {
        let invalid = |setting: &'static str, reason: String| Err(BuildError::Invalid { setting, reason });
        let n = self.resolved_workers();
        if n == 0 || n > MAX_WORKERS {
            return invalid("workers", format!("{n} is out of range: use 1 to {MAX_WORKERS}"));
        }
        let p = self.pool_capacity;
        if !p.is_power_of_two() || !(MIN_POOL_CAPACITY..=crate::lockfree::pool::MAX_CAPACITY).contains(&p) {
            return invalid(
                "pool_capacity",
                format!(
                    "{p} must be a power of two from {MIN_POOL_CAPACITY} to {}",
                    crate::lockfree::pool::MAX_CAPACITY
                ),
            );
        }
        let d = self.deque_capacity;
        if !d.is_power_of_two() || !(MIN_DEQUE_CAPACITY..=crate::lockfree::deque::MAX_CAPACITY).contains(&d) {
            return invalid(
                "deque_capacity",
                format!(
                    "{d} must be a power of two from {MIN_DEQUE_CAPACITY} to {}",
                    crate::lockfree::deque::MAX_CAPACITY
                ),
            );
        }
        if let Some(s) = self.stack_size {
            if s < 16 * 1024 {
                return invalid("stack_size", format!("{s} bytes is too small: use at least 16384"));
            }
        }
        if self.thread_name.contains('\0') {
            return invalid("thread_name", "contains a NUL byte".to_string());
        }
        Ok(())
    }
}

impl Builder {
    /// Starts the workers of a validated builder.
    fn start(self) -> Result<Scheduler, BuildError> {
        let b = self;
        let n = b.resolved_workers();
        let mut slots = Vec::with_capacity(n);
        let mut sole_owner = false;
        for _ in 0..n {
            let mut owner = Owner::<TaskRef>::with_capacity(b.deque_capacity)
                .map_err(|e| BuildError::Invalid { setting: "deque_capacity", reason: e.to_string() })?;
            if n == 1 {
                // With one worker nobody steals from its deque but its own thread and a
                // timed-out shutdown's drain (`worker::take_any`), which uses `steal_heavy`
                // whenever `sole_owner` is set; `steal_round` never runs with one worker.
                // SAFETY: that is the contract of `set_asymmetric`.
                sole_owner = unsafe { owner.set_asymmetric() };
            }
            slots.push(WorkerSlot::new(Role::new(slots.len(), owner)));
        }
        let pool = Pool::with_capacity(b.pool_capacity)
            .map_err(|e| BuildError::Invalid { setting: "pool_capacity", reason: e.to_string() })?;
        let config = Config {
            idle: b.idle,
            max_spares: b.max_spare_threads,
            keep_alive: b.keep_alive,
            thread_name: b.thread_name.clone(),
            stack_size: b.stack_size,
            on_thread_start: b.on_thread_start.clone(),
            on_thread_stop: b.on_thread_stop.clone(),
            panic_handler: b.panic_handler.clone(),
        };
        let shared = Shared::new(slots.into_boxed_slice(), pool, sole_owner, config, b.inject_loop_panics);
        let cores = thread::pin_plan(b.pin, n);
        let mut sched = Scheduler::starting(shared.clone(), n);
        for i in 0..n {
            let core = cores.as_ref().map(|c| c[i]);
            match thread::spawn_thread(shared.clone(), i, core, &b.thread_name, b.stack_size) {
                Ok(t) => sched.add_thread(t),
                Err(e) => {
                    // The workers already started exit through the normal shutdown; the
                    // ones never started are counted out first, from both counts.
                    let missing = n - i;
                    for c in cores.iter().flat_map(|c| &c[i..]) {
                        thread::unpin(*c);
                    }
                    shared.count_out_unstarted(missing);
                    drop(sched);
                    return Err(BuildError::Spawn(e));
                }
            }
        }
        // With a start hook, `build` returns once every hook has run, and fails if one
        // panicked (that worker never runs a task; the others are shut down).
        if let Some((worker, message)) = shared.wait_started() {
            drop(sched);
            return Err(BuildError::StartHook { worker, message });
        }
        Ok(sched)
    }
}

impl Scheduler {
    /// A builder with every default (see [`Builder`]).
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
    /// assert_eq!(sched.num_workers(), 1);
    /// ```
    pub fn builder() -> Builder {
        Builder::default()
    }

    /// A scheduler with the defaults of [`Builder`].
    ///
    /// # Panics
    ///
    /// If the operating system refuses to start the worker threads. Use
    /// `Scheduler::builder().build()` to get that as an error instead.
    ///
    /// ```
    /// let sched = filch::Scheduler::new();
    /// assert!(sched.num_workers() >= 1);
    /// assert_eq!(sched.spawn(|| 3).join().unwrap(), 3);
    /// ```
    pub fn new() -> Scheduler {
        match Builder::default().build() {
            Ok(s) => s,
            Err(e) => panic!("filch: could not start the default scheduler: {e}"),
        }
    }
}

impl Default for Scheduler {
    fn default() -> Self {
        Scheduler::new()
    }
}
