//! The Go worker-pool pattern on filch: a job channel, N worker tasks ranging over it, a
//! result channel, a deadline per job, and graceful shutdown by closing the job channel.
//!
//! ```text
//! cargo run --release --example worker_pool [JOBS] [WORKERS]     (default 2000, 8)
//! ```
//!
//! What each form of the Go program becomes:
//!
//! | Go | here |
//! |---|---|
//! | `jobs := make(chan Job, 64)`, `results := make(chan Result, 64)` | `chan::bounded(64)`, twice |
//! | `select { case jobs <- j: case <-time.After(d): ErrQueueFull }` | `jobs.send_timeout(j, d)` |
//! | `go worker(jobs, results)`, N times | `sched.spawn_async(worker(…))`, N times |
//! | `for job := range jobs` | `while let Some(job) = jobs.next().await` |
//! | `ctx, cancel := context.WithTimeout(ctx, job.Timeout)` | `time::timeout(job.timeout, run).await` |
//! | the job returns `ctx.Err()` when its deadline passes | `Err(Elapsed)`, and the job is aborted |
//! | `defer func() { recover() }()` in the worker | the job runs as its own task; a panic comes back as `TaskError::Panicked` |
//! | `results <- r` | `results.send(r).await` |
//! | `close(jobs)` | `jobs.close()`: each worker drains the queue, then leaves its loop |
//! | `wg.Wait(); close(results)` | the result channel closes when the last worker drops its sender |
//! | `for r := range results` | a collector task: `while let Some(r) = results.next().await` |
//!
//! Workers are async tasks: one waiting on an empty queue costs nothing, so there can be
//! more of them than threads, as goroutines. A job that misses its deadline is reported as
//! timed out and its task is aborted where it waits, which is what a Go job does when it
//! watches `ctx.Done()`; the worker waits until the job is gone before taking the next.
//!
//! Checked: a submit to a full queue with no worker yet gives up at its deadline and is
//! not counted; every submitted job's result arrives exactly once; submitted = completed +
//! failed + timed out; each job has the outcome its kind calls for (the right value, its
//! error, its panic, its deadline, and then stopped); the workers together took every job once.
use std::time::{Duration, Instant};

use filch::chan::{self, Receiver, Sender};
use filch::time::timeout;
use filch::{Scheduler, TaskError};

/// The job queue's buffer, as Go's `make(chan Job, 64)`.
const QUEUE: usize = 64;
/// The deadline of an ordinary job: generous, it never binds.
const DEADLINE: Duration = Duration::from_secs(10);
/// The deadline of a job that waits for a reply that never comes.
const SHORT_DEADLINE: Duration = Duration::from_millis(5);

/// What a job does, decided by its id.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Kind {
    /// A little CPU work, with a short await in between for some of them.
    Compute,
    /// Returns an error.
    Fail,
    /// Panics.
    Panic,
    /// Waits for a reply that never comes; only its deadline ends it.
    Stuck,
}

fn kind(id: u64) -> Kind {
    match id {
        _ if id % 100 == 13 => Kind::Stuck,
        _ if id % 50 == 49 => Kind::Fail,
        _ if id % 500 == 250 => Kind::Panic,
        _ => Kind::Compute,
    }
}

struct Job {
    id: u64,
    timeout: Duration,
}

impl Job {
    fn new(id: u64) -> Job {
        let timeout = if kind(id) == Kind::Stuck { SHORT_DEADLINE } else { DEADLINE };
        Job { id, timeout }
    }
}

fn compute(id: u64) -> u64 {
    let mut x = id;
    for _ in 0..2_000 {
        x = std::hint::black_box(x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1));
    }
    x
}

/// The job's body: Go's `Execute(ctx) (result, error)`.
async fn execute(id: u64) -> Result<u64, String> {
    match kind(id) {
        Kind::Compute => {
            if id % 10 == 0 {
                // Some jobs wait on something (a timer here) half way.
                filch::time::sleep(Duration::from_micros(200)).await;
            }
            Ok(compute(id))
        }
        Kind::Fail => Err(format!("job {id}: simulated failure")),
        Kind::Panic => panic!("job {id}: simulated panic"),
        Kind::Stuck => {
            // A request whose reply never comes: we hold the sender, nobody sends.
            let (_reply_tx, reply_rx) = chan::rendezvous::<u64>();
            reply_rx.recv().await.map_err(|_| unreachable!("the sender is alive and silent"))
        }
    }
}

#[derive(Debug, PartialEq)]
enum Outcome {
    Completed(u64),
    Failed(String),
    TimedOut,
}

/// Go's `TaskResult`.
struct JobResult {
    id: u64,
    outcome: Outcome,
    duration: Duration,
}

/// One worker goroutine: range over the jobs, run each under its deadline, report.
/// Returns how many jobs it took.
async fn worker(jobs: Receiver<Job>, results: Sender<JobResult>) -> u64 {
    let mut taken = 0;
    while let Some(job) = jobs.next().await {
        taken += 1;
        let started = Instant::now();
        // The job runs as its own task, so that its panic stays its own (Go's `recover`).
        let mut run = filch::spawn_async(execute(job.id));
        let outcome = match timeout(job.timeout, &mut run).await {
            Ok(Ok(Ok(value))) => Outcome::Completed(value),
            Ok(Ok(Err(error))) => Outcome::Failed(error),
            Ok(Err(TaskError::Panicked(p))) => {
                Outcome::Failed(format!("panicked: {}", p.message().unwrap_or("?")))
            }
            Ok(Err(other)) => Outcome::Failed(other.to_string()),
            Err(_elapsed) => {
                // Go's `cancel()`: the job stops where it waits and is dropped there;
                // awaiting its handle then waits until it is gone.
                run.abort();
                let stopped = run.await;
                assert!(matches!(stopped, Err(TaskError::Cancelled)), "job {}: not stopped", job.id);
                Outcome::TimedOut
            }
        };
        let r = JobResult { id: job.id, outcome, duration: started.elapsed() };
        results.send(r).await.unwrap_or_else(|_| unreachable!("the collector outlives the workers"));
    }
    taken
}

#[derive(Default)]
struct Tally {
    completed: u64,
    failed: u64,
    timed_out: u64,
    total: Duration,
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().ok());
    let n = args.next().flatten().filter(|&n| n >= 1_000).unwrap_or(2_000);
    let workers = args.next().flatten().filter(|&w| w >= 1).unwrap_or(8);
    // The jobs that panic on purpose print one line each; any other panic, as usual.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| match info.payload().downcast_ref::<String>() {
        Some(message) if message.contains("simulated panic") => {
            eprintln!("worker_pool: {message} (on purpose)")
        }
        _ => default_hook(info),
    }));
    let sched = Scheduler::builder().thread_name("pool").build().expect("valid settings");
    let (jobs_tx, jobs_rx) = chan::bounded::<Job>(QUEUE);
    let (results_tx, results_rx) = chan::bounded::<JobResult>(QUEUE);

    // Submit before the workers start: the queue takes QUEUE jobs, then a submit with a
    // deadline gives up (Go's `ErrQueueFull`) and the job is not counted.
    let mut submitted = 0u64;
    for id in 0..QUEUE as u64 {
        jobs_tx.try_send(Job::new(id)).unwrap_or_else(|_| unreachable!("room for {QUEUE} jobs"));
        submitted += 1;
    }
    let refused = jobs_tx.send_timeout(Job::new(u64::MAX), Duration::from_millis(5));
    assert!(refused.is_err_and(|e| e.is_timeout()), "nobody takes from a full queue yet");

    // Start the workers and the collector.
    let handles: Vec<_> =
        (0..workers).map(|_| sched.spawn_async(worker(jobs_rx.clone(), results_tx.clone()))).collect();
    drop((jobs_rx, results_tx)); // the workers hold the only clones now
    let collector = sched.spawn_async(async move {
        let mut outcomes: Vec<Option<Outcome>> = (0..n).map(|_| None).collect();
        let mut tally = Tally::default();
        while let Some(r) = results_rx.next().await {
            match r.outcome {
                Outcome::Completed(_) => tally.completed += 1,
                Outcome::Failed(_) => tally.failed += 1,
                Outcome::TimedOut => tally.timed_out += 1,
            }
            tally.total += r.duration;
            let slot = &mut outcomes[r.id as usize];
            assert!(slot.replace(r.outcome).is_none(), "job {}: a second result", r.id);
        }
        (outcomes, tally)
    });

    // The rest of the jobs, waiting for room as needed (Go's blocking `jobs <- job`).
    for id in QUEUE as u64..n {
        jobs_tx.send_blocking(Job::new(id)).unwrap_or_else(|_| unreachable!("open until we close it"));
        submitted += 1;
    }
    // Graceful shutdown: close the queue; the workers finish what is in it and return;
    // the result channel closes behind the last one; the collector ends. Within a limit.
    jobs_tx.close();
    let (outcomes, tally) = match collector.join_timeout(Duration::from_secs(60)) {
        Ok(r) => r.expect("the collector's checks passed"),
        Err(_) => panic!("shutdown did not finish within 60 s"),
    };
    let taken: u64 = handles.into_iter().map(|h| h.join().expect("workers do not panic")).sum();

    assert_eq!(submitted, n);
    assert_eq!(taken, submitted, "the workers took every job once");
    assert_eq!(tally.completed + tally.failed + tally.timed_out, submitted, "every job is accounted for");
    for (id, outcome) in outcomes.into_iter().enumerate() {
        let id = id as u64;
        let outcome = outcome.unwrap_or_else(|| panic!("job {id}: no result"));
        match (kind(id), &outcome) {
            (Kind::Compute, Outcome::Completed(v)) => assert_eq!(*v, compute(id), "job {id}'s value"),
            (Kind::Fail, Outcome::Failed(e)) => assert!(e.contains("simulated failure"), "job {id}: {e}"),
            (Kind::Panic, Outcome::Failed(e)) => assert!(e.contains("simulated panic"), "job {id}: {e}"),
            (Kind::Stuck, Outcome::TimedOut) => {}
            (k, o) => panic!("job {id} ({k:?}) ended as {o:?}"),
        }
    }
    let stuck = (0..n).filter(|&id| kind(id) == Kind::Stuck).count() as u64;
    assert_eq!(tally.timed_out, stuck, "exactly the stuck jobs timed out");

    let average = tally.total / submitted as u32;
    println!(
        "worker_pool: {workers} workers, submitted {submitted} (1 refused on a full queue), completed {}, \
         failed {}, timed out {}, average {average:?}",
        tally.completed, tally.failed, tally.timed_out
    );
    println!("{}", sched.stats());
}
