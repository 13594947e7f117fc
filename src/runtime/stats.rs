//! Scheduler statistics: cheap per-worker counters, summed on read.
//!
//! Each worker owns one cache-padded row and is its only writer, so a count is a Relaxed
//! load and a Relaxed store (no RMW, no shared line). Threads that are not workers of the
//! scheduler (external spawners, joiners, cancellers) share one extra row and update it
//! with Relaxed `fetch_add`. Readers sum the rows with Relaxed loads: each counter is
//! exact on its own, and a snapshot taken while tasks run is a moment per counter, not one
//! moment for all.

use std::fmt;

use crate::shim::atomic::{AtomicU64, Ordering::Relaxed};

/// The counters of one row; see [`Stats`] for their meaning.
#[derive(Debug, Default)]
pub(crate) struct Row {
    pub(crate) spawned: AtomicU64,
    pub(crate) completed: AtomicU64,
    pub(crate) panicked: AtomicU64,
    pub(crate) cancelled: AtomicU64,
    pub(crate) abandoned: AtomicU64,
    pub(crate) stolen: AtomicU64,
    pub(crate) steal_attempts: AtomicU64,
    pub(crate) parks: AtomicU64,
    pub(crate) injected: AtomicU64,
    pub(crate) spills: AtomicU64,
    pub(crate) heap_fallbacks: AtomicU64,
    pub(crate) blocked_waits: AtomicU64,
    pub(crate) hook_panics: AtomicU64,
    pub(crate) lost: AtomicU64,
    /// Heap tasks a worker freed (for the orphan protocol, beside `slot_frees`); not
    /// reported.
    pub(crate) heap_frees: AtomicU64,
    /// Pool slots given back through this row (for the orphan protocol in `scheduler`;
    /// slots taken are `spawned - heap_fallbacks`); not reported. A worker's is written
    /// once, at its exit (`WorkerCtx::settle_slot_frees`), not per free.
    pub(crate) slot_frees: AtomicU64,
}

impl Row {
    /// Adds `n` to a counter this thread alone writes (a worker's own row).
    #[inline(always)]
    pub(crate) fn bump_owned(c: &AtomicU64, n: u64) {
        // Relaxed: a statistic with a single writer; readers want no ordering from it.
        c.store(c.load(Relaxed).wrapping_add(n), Relaxed);
    }

    /// Adds `n` to a counter several threads write (the external row).
    #[inline(always)]
    pub(crate) fn bump_shared(c: &AtomicU64, n: u64) {
        // Relaxed: a statistic; the RMW keeps concurrent increments from being lost.
        c.fetch_add(n, Relaxed);
    }

    fn snapshot(&self) -> WorkerStats {
        // Relaxed: statistics, read without ordering.
        let l = |c: &AtomicU64| c.load(Relaxed);
        WorkerStats {
            spawned: l(&self.spawned),
            completed: l(&self.completed),
            panicked: l(&self.panicked),
            cancelled: l(&self.cancelled),
            abandoned: l(&self.abandoned),
            stolen: l(&self.stolen),
            steal_attempts: l(&self.steal_attempts),
            parks: l(&self.parks),
            injected: l(&self.injected),
            spills: l(&self.spills),
            heap_fallbacks: l(&self.heap_fallbacks),
            blocked_waits: l(&self.blocked_waits),
            hook_panics: l(&self.hook_panics),
            lost: l(&self.lost),
        }
    }
}

/// One worker's counters (or the external row's), as read by [`crate::Scheduler::stats`].
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// sched.spawn(|| ()).join().unwrap();
/// let stats = sched.stats();
/// let external: filch::WorkerStats = stats.external; // this thread is not a worker
/// assert_eq!((external.spawned, external.injected), (1, 1));
/// assert_eq!(stats.workers.len(), 2);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct WorkerStats {
    /// Tasks spawned from this thread (accepted; a spawn refused at shutdown is not counted).
    pub spawned: u64,
    /// Tasks that ran to the end here, returning or panicking. Counted right after the
    /// task's closure returns and before its handle (or its `scope`) sees it complete;
    /// what the closure signals itself — a `WaitGroup::done`, a channel send — may be
    /// observed a moment before this count includes it.
    pub completed: u64,
    /// Of `completed`, those that panicked.
    pub panicked: u64,
    /// Tasks whose `cancel()` won, counted on the cancelling thread.
    pub cancelled: u64,
    /// Tasks dropped unrun by a shutdown whose timeout expired.
    pub abandoned: u64,
    /// Tasks this worker took from other workers' deques.
    pub stolen: u64,
    /// Steal calls this worker made on other workers' deques.
    pub steal_attempts: u64,
    /// Times this worker parked (futex wait).
    pub parks: u64,
    /// Tasks this thread pushed onto the injection queue (spawns from outside a worker,
    /// and a full deque's spills).
    pub injected: u64,
    /// Times this worker moved tasks of its own deque to the injection queue as one
    /// batch: half of a full deque, or all of it before a blocked wait.
    pub spills: u64,
    /// Spawns that used a heap task because the pool was exhausted or the task too large.
    pub heap_fallbacks: u64,
    /// Waits (join, `WaitGroup`, `Semaphore`) this worker blocked in without running other
    /// tasks, because [`crate::MAX_NESTED_WAITS`] helping waits were already on its stack.
    pub blocked_waits: u64,
    /// Panics of the [`on_thread_stop`](crate::Builder::on_thread_stop) hook on this worker
    /// (each also went to the panic handler).
    pub hook_panics: u64,
    /// 1 if this worker was lost: a panic escaped its run loop (a runtime bug; the panic
    /// went to the panic handler and the worker's queued tasks to the other workers).
    pub lost: u64,
}

impl WorkerStats {
    fn add(&mut self, o: &WorkerStats) {
        self.spawned += o.spawned;
        self.completed += o.completed;
        self.panicked += o.panicked;
        self.cancelled += o.cancelled;
        self.abandoned += o.abandoned;
        self.stolen += o.stolen;
        self.steal_attempts += o.steal_attempts;
        self.parks += o.parks;
        self.injected += o.injected;
        self.spills += o.spills;
        self.heap_fallbacks += o.heap_fallbacks;
        self.blocked_waits += o.blocked_waits;
        self.hook_panics += o.hook_panics;
        self.lost += o.lost;
    }
}

/// A snapshot of a scheduler's counters: totals, `live`, and one row per worker plus one
/// for threads outside the scheduler.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// sched.spawn(|| 1 + 1).join().unwrap();
/// let stats = sched.stats();
/// assert_eq!(stats.total.spawned, 1);
/// println!("{stats}");
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Sum of all rows.
    pub total: WorkerStats,
    /// Tasks spawned and not yet finished, cancelled or abandoned:
    /// `spawned - completed - cancelled - abandoned`.
    pub live: u64,
    /// One row per worker, by index.
    pub workers: Vec<WorkerStats>,
    /// Threads that are not workers of this scheduler.
    pub external: WorkerStats,
    /// Threads blocked right now with their worker role handed to a spare thread (a
    /// channel operation, `block_in_place`, a `JoinHandle` wait: see
    /// [`Builder::max_spare_threads`](crate::Builder::max_spare_threads)).
    pub blocked: u64,
    /// Times a blocking worker handed its role to another thread, so far.
    pub lends: u64,
    /// Spare threads started so far (for hand-offs and `spawn_blocking`).
    pub spares_started: u64,
    /// Spare threads that exited after their keep-alive time without work, so far. Alive
    /// now: `spares_started - spares_retired` (until the scheduler shuts down).
    pub spares_retired: u64,
}

/// The blocking counters of one scheduler (`Stats::set_blocking`).
pub(crate) struct Blocking {
    pub(crate) blocked: u64,
    pub(crate) lends: u64,
    pub(crate) spares_started: u64,
    pub(crate) spares_retired: u64,
}

impl Stats {
    pub(crate) fn collect<'a>(workers: impl Iterator<Item = &'a Row>, external: &Row) -> Stats {
        let workers: Vec<WorkerStats> = workers.map(Row::snapshot).collect();
        let mut external = external.snapshot();
        // Every external spawn is an injection; not counted twice on the spawn path.
        external.injected += external.spawned;
        let mut total = WorkerStats::default();
        for w in workers.iter().chain(std::iter::once(&external)) {
            total.add(w);
        }
        let done = total.completed + total.cancelled + total.abandoned;
        Stats { live: total.spawned.saturating_sub(done), total, workers, external, ..Stats::default() }
    }

    pub(crate) fn set_blocking(&mut self, b: Blocking) {
        self.blocked = b.blocked;
        self.lends = b.lends;
        self.spares_started = b.spares_started;
        self.spares_retired = b.spares_retired;
    }
}

impl fmt::Display for Stats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const COLS: [&str; 14] = [
            "spawned",
            "completed",
            "panicked",
            "cancelled",
            "abandoned",
            "stolen",
            "steal_att",
            "parks",
            "injected",
            "spills",
            "heap",
            "blocked",
            "hook_pan",
            "lost",
        ];
        let row = |f: &mut fmt::Formatter<'_>, name: &str, s: &WorkerStats| {
            let v = [
                s.spawned,
                s.completed,
                s.panicked,
                s.cancelled,
                s.abandoned,
                s.stolen,
                s.steal_attempts,
                s.parks,
                s.injected,
                s.spills,
                s.heap_fallbacks,
                s.blocked_waits,
                s.hook_panics,
                s.lost,
            ];
            write!(f, "{name:<9}")?;
            for x in v {
                write!(f, " {x:>10}")?;
            }
            writeln!(f)
        };
        write!(f, "{:<9}", "")?;
        for c in COLS {
            write!(f, " {c:>10}")?;
        }
        writeln!(f)?;
        for (i, w) in self.workers.iter().enumerate() {
            row(f, &format!("worker {i}"), w)?;
        }
        row(f, "external", &self.external)?;
        row(f, "total", &self.total)?;
        writeln!(f, "live tasks: {}", self.live)?;
        writeln!(
            f,
            "blocked now: {}, hand-offs: {}, spare threads started: {}, retired: {}",
            self.blocked, self.lends, self.spares_started, self.spares_retired
        )
    }
}
