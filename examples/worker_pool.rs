//! The HelixAgent worker-pool pattern (seed 002) on filch: tasks with ids, per-task
//! timeouts, completion callbacks, batch submit, metrics, and graceful shutdown with a
//! timeout.
//!
//! ```text
//! cargo run --release --example worker_pool [TASKS]     (default 2000)
//! ```
//!
//! The seed's pool is a buffered channel feeding N goroutines. Here the pool *is* the
//! scheduler: a task is a pool slot, not a channel message; a callback is called by the
//! worker that ran the task; the metrics are a few atomics. A per-task timeout is
//! `join_timeout`; a task that timed out before it started is cancelled (it never runs)
//! and booked as failed, as the seed books a context deadline; one already running is
//! waited for and reported late (a closure cannot be interrupted). Graceful shutdown
//! (`shutdown_timeout`) runs what is still queued before the workers exit.
//!
//! Checked: submitted = completed + failed; every callback ran exactly once; the failing,
//! panicking and timed-out tasks are the ones counted as failed; the queued task behind a
//! blocked worker times out and is cancelled; the scheduler's own statistics agree; a
//! batch left unjoined at shutdown still runs to completion.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use filch::{JoinHandle, Scheduler, TaskError};

/// What a task produced, as the seed's `TaskResult`.
#[derive(Debug)]
struct TaskResult {
    id: u64,
    result: Result<u64, String>,
    duration: Duration,
}

#[derive(Default)]
struct Metrics {
    submitted: AtomicU64,
    completed: AtomicU64,
    failed: AtomicU64,
    total_ns: AtomicU64,
    callbacks: AtomicU64,
}

impl Metrics {
    fn average(&self) -> Duration {
        let done = self.completed.load(Relaxed) + self.failed.load(Relaxed);
        Duration::from_nanos(self.total_ns.load(Relaxed).checked_div(done).unwrap_or(0))
    }
}

type Callback = Arc<dyn Fn(&TaskResult) + Send + Sync>;

struct WorkerPool {
    sched: Scheduler,
    metrics: Arc<Metrics>,
}

impl WorkerPool {
    fn new(workers: usize) -> Self {
        let sched =
            Scheduler::builder().workers(workers).thread_name("pool").build().expect("valid settings");
        WorkerPool { sched, metrics: Arc::default() }
    }

    /// Wraps a job: times it, records the outcome (a panic is a failure), calls back.
    fn task<F>(&self, id: u64, job: F, callback: Callback) -> impl FnOnce() -> TaskResult + Send + 'static
    where
        F: FnOnce() -> Result<u64, String> + Send + 'static,
    {
        self.metrics.submitted.fetch_add(1, Relaxed);
        let metrics = self.metrics.clone();
        move || {
            let start = Instant::now();
            let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(job))
                .unwrap_or_else(|_| Err(format!("task {id} panicked")));
            let r = TaskResult { id, result, duration: start.elapsed() };
            match r.result {
                Ok(_) => metrics.completed.fetch_add(1, Relaxed),
                Err(_) => metrics.failed.fetch_add(1, Relaxed),
            };
            metrics.total_ns.fetch_add(r.duration.as_nanos() as u64, Relaxed);
            callback(&r);
            metrics.callbacks.fetch_add(1, Relaxed);
            r
        }
    }

    /// Books a task that timed out and was cancelled before it started: failed, with
    /// its callback called by the submitter (the task itself never runs).
    fn record_timeout(&self, id: u64, waited: Duration, callback: &Callback) {
        let r = TaskResult { id, result: Err(format!("task {id} timed out")), duration: waited };
        self.metrics.failed.fetch_add(1, Relaxed);
        self.metrics.total_ns.fetch_add(r.duration.as_nanos() as u64, Relaxed);
        callback(&r);
        self.metrics.callbacks.fetch_add(1, Relaxed);
    }

    fn submit<F>(&self, id: u64, job: F, callback: Callback) -> JoinHandle<TaskResult>
    where
        F: FnOnce() -> Result<u64, String> + Send + 'static,
    {
        self.sched.spawn(self.task(id, job, callback))
    }

    /// Batch submit: one publish, at most one wake-up for the whole batch.
    fn submit_batch<F>(&self, jobs: Vec<(u64, F)>, callback: Callback) -> filch::TaskGroup<TaskResult>
    where
        F: FnOnce() -> Result<u64, String> + Send + 'static,
    {
        let tasks: Vec<_> = jobs.into_iter().map(|(id, job)| self.task(id, job, callback.clone())).collect();
        self.sched.spawn_batch(tasks)
    }
}

/// A little CPU work, failing for every 50th id.
fn job(id: u64) -> impl FnOnce() -> Result<u64, String> + Send + 'static {
    move || {
        let mut x = id;
        for _ in 0..2_000 {
            x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
        }
        if id % 50 == 49 {
            Err(format!("task {id}: simulated failure"))
        } else {
            Ok(x)
        }
    }
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).filter(|&n| n >= 100).unwrap_or(2000);
    // One task panics on purpose; report it in one line instead of a backtrace.
    std::panic::set_hook(Box::new(|info| eprintln!("worker_pool: a task panicked (on purpose): {info}")));
    let pool = WorkerPool::new(2);
    let seen = Arc::new(AtomicU64::new(0));
    let cb: Callback = {
        let seen = seen.clone();
        Arc::new(move |_r: &TaskResult| {
            seen.fetch_add(1, Relaxed);
        })
    };

    // 1. One by one, with ids; then collect every result in order.
    let handles: Vec<_> = (0..n / 2).map(|id| pool.submit(id, job(id), cb.clone())).collect();
    // One task panics; the pool keeps going and reports it as failed.
    let panicking = pool.submit(n, || -> Result<u64, String> { panic!("boom") }, cb.clone());
    // 2. A batch.
    let batch = pool.submit_batch((n / 2..n).map(|id| (id, job(id))).collect(), cb.clone());
    let mut failed_ids = Vec::new();
    for r in handles.into_iter().map(|h| h.join().expect("wrapped tasks do not panic")) {
        if r.result.is_err() {
            failed_ids.push(r.id);
        }
    }
    for r in batch.join_all() {
        let r = r.expect("wrapped tasks do not panic");
        if r.result.is_err() {
            failed_ids.push(r.id);
        }
    }
    assert!(panicking.join().unwrap().result.is_err());
    let expected_failures: Vec<u64> = (0..n).filter(|id| id % 50 == 49).collect();
    failed_ids.sort_unstable();
    assert_eq!(failed_ids, expected_failures, "exactly the failing jobs failed");

    // 3. Per-task timeout: hold both workers, queue a task behind them, time it out.
    let gate = Arc::new(Barrier::new(3));
    let blockers: Vec<_> = (0..2)
        .map(|i| {
            let gate = gate.clone();
            pool.sched.spawn(move || {
                gate.wait(); // both workers are inside
                gate.wait(); // released after the timeout below
                i
            })
        })
        .collect();
    gate.wait();
    let timeout = Duration::from_millis(20);
    let slow = pool.submit(n + 1, job(1), cb.clone());
    let outcome = match slow.join_timeout(timeout) {
        Ok(_) => unreachable!("both workers are held: the task cannot have run"),
        Err(handle) => {
            // Timed out before starting: cancel it, so it never runs, and book it.
            assert!(handle.cancel(), "a task that has not started can be cancelled");
            pool.record_timeout(n + 1, timeout, &cb);
            handle.join()
        }
    };
    assert!(matches!(outcome, Err(TaskError::Cancelled)));
    gate.wait();
    for b in blockers {
        b.join().unwrap();
    }

    // 4. Metrics so far, and the scheduler's own view of the same tasks.
    let m = pool.metrics.clone();
    let (submitted, completed, failed) =
        (m.submitted.load(Relaxed), m.completed.load(Relaxed), m.failed.load(Relaxed));
    assert_eq!(submitted, n + 2, "the jobs, the panicking task, the timed-out one");
    assert_eq!(completed + failed, submitted, "every submitted task is accounted for");
    assert_eq!(failed, expected_failures.len() as u64 + 2, "the failing jobs, the panic, the timeout");
    assert_eq!(seen.load(Relaxed), submitted, "one callback per task");
    assert_eq!(m.callbacks.load(Relaxed), submitted);
    let stats = pool.sched.stats();
    println!("{stats}");
    assert_eq!(stats.total.cancelled, 1);
    assert_eq!(stats.total.spawned, n + 2 + 2, "tasks, the panicking one, the cancelled one, two blockers");

    // 5. Graceful shutdown with a timeout: a last batch is submitted and never joined;
    // shutdown runs it before the workers exit (joining them publishes their writes).
    let tail = 100;
    drop(pool.submit_batch((0..tail).map(|i| (n + 2 + i, job(i))).collect(), cb.clone()));
    pool.sched.shutdown_timeout(Duration::from_secs(10)).expect("the queued batch finishes in time");
    let (submitted, completed, failed) =
        (m.submitted.load(Relaxed), m.completed.load(Relaxed), m.failed.load(Relaxed));
    assert_eq!(submitted, n + 2 + tail);
    assert_eq!(completed + failed, submitted, "shutdown drained the queued batch");
    assert_eq!(seen.load(Relaxed), submitted, "one callback per task");
    println!(
        "worker_pool: submitted {submitted}, completed {completed}, failed {failed}, average {:?}",
        m.average()
    );
}
