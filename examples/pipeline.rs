//! The Go course's automation workflow (seed 000) on filch: a semaphore-limited set of
//! tasks, fanned out and fanned back in.
//!
//! ```text
//! cargo run --release --example pipeline [ITEMS] [MAX_CONCURRENCY]   (default 500, 3)
//! ```
//!
//! The seed takes a slot of a buffered channel *before* it starts each goroutine, releases
//! it when the goroutine ends, and waits for all with a `sync.WaitGroup`. Here: fan-out is
//! a `scope` whose body takes a `filch::Semaphore` permit and then spawns one task per
//! item, moving the permit into it (the permit is released when the task ends); the
//! scope's end is the wait group; results fan in through a channel to a collector. Each
//! item passes the seed's stages (validate → transform → enrich → store), here small
//! computations.
//!
//! Taking the permit on the spawning side bounds the tasks in flight, queued ones
//! included, so the limit binds even with fewer workers than permits. The body runs on
//! the calling thread (not a worker), so waiting for a permit parks it.
//!
//! Checked: the permits held and the tasks running never exceed the limit (counted with
//! atomics); every item's result arrives exactly once; the total matches a sequential run.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::mpsc;

use filch::{Scheduler, Semaphore};

fn validate(item: u64) -> u64 {
    item.wrapping_mul(2_654_435_761) % 1_000_003
}

fn transform(x: u64) -> u64 {
    let mut x = x;
    for _ in 0..3_000 {
        x = std::hint::black_box(
            x.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407),
        );
    }
    x
}

fn enrich(x: u64) -> u64 {
    x ^ (x >> 29)
}

fn store(x: u64) -> u64 {
    x.count_ones() as u64 + (x >> 60)
}

fn process(item: u64) -> u64 {
    store(enrich(transform(validate(item))))
}

/// A counter that remembers its highest value.
#[derive(Default)]
struct Gauge {
    now: AtomicU64,
    peak: AtomicU64,
}

impl Gauge {
    // Relaxed: the RMWs on `now` are totally ordered (its modification order), so each
    // sees the exact count at its turn; nothing else is published through the gauge.
    fn enter(&self) {
        let now = self.now.fetch_add(1, Relaxed) + 1;
        self.peak.fetch_max(now, Relaxed);
    }

    fn leave(&self) {
        self.now.fetch_sub(1, Relaxed);
    }

    fn peak(&self) -> u64 {
        self.peak.load(Relaxed)
    }
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().ok());
    let items = args.next().flatten().filter(|&n| n >= 1).unwrap_or(500);
    let limit = args.next().flatten().filter(|&n| n >= 1).unwrap_or(3);
    let sched = Scheduler::builder().thread_name("pipeline").build().expect("valid settings");
    let sem = Semaphore::new(limit);
    // `held`: permits taken and not yet given back; `running`: tasks inside `process`.
    let (held, running) = (Gauge::default(), Gauge::default());
    let (tx, rx) = mpsc::channel::<(u64, u64)>();

    let started = std::time::Instant::now();
    // Fan-in: a collector thread receives every result.
    let collector = std::thread::spawn(move || {
        let mut seen = vec![false; items as usize];
        let mut total = 0u64;
        for (item, r) in rx {
            assert!(!std::mem::replace(&mut seen[item as usize], true), "item {item} arrived twice");
            total += r;
        }
        assert!(seen.iter().all(|&s| s), "an item never arrived");
        total
    });
    // Fan-out: a permit first (waits while `limit` tasks are in flight), then the task.
    sched.scope(|s| {
        for item in 0..items {
            let permit = sem.acquire();
            held.enter();
            let (held, running, tx) = (&held, &running, tx.clone());
            s.spawn(move |_| {
                running.enter();
                let r = process(item);
                running.leave();
                tx.send((item, r)).expect("the collector outlives the scope");
                held.leave();
                drop(permit); // the seed's deferred `<-semaphore`
            });
        }
    });
    drop(tx);
    let total = collector.join().expect("collector checks passed");
    let elapsed = started.elapsed();

    let expected: u64 = (0..items).map(process).sum();
    assert_eq!(total, expected, "fan-in total matches a sequential run");
    let (peak_held, peak_running) = (held.peak(), running.peak());
    assert!(peak_held <= limit, "{peak_held} permits held at once, limit {limit}");
    assert!(peak_running <= limit, "{peak_running} tasks running at once, limit {limit}");
    assert_eq!(sem.available_permits(), limit, "every permit was given back");
    println!(
        "pipeline: {items} items, limit {limit} (peak {peak_held} in flight, {peak_running} running), \
         total {total}, {elapsed:?}"
    );
}
