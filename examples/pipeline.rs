//! The Go course's automation workflow (seed 000) on filch: a semaphore-limited set of
//! tasks, fanned out and fanned back in.
//!
//! ```text
//! cargo run --release --example pipeline [ITEMS] [MAX_CONCURRENCY]   (default 500, 3)
//! ```
//!
//! The seed acquires a slot of a buffered channel before each goroutine and waits for all
//! with a `sync.WaitGroup`. Here: fan-out is a `scope` that spawns one task per item (the
//! scope's end is the wait group), each task holds a `filch::Semaphore` permit while it
//! works (on a worker, waiting for a permit runs other tasks instead of blocking), and
//! results fan in through a channel to a collector. Each item passes three stages
//! (parse → transform → checksum).
//!
//! Checked: the number of tasks inside the limited section never exceeds the limit
//! (counted with atomics); every item's result arrives exactly once and the total matches
//! a sequential run.
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;

use filch::{Scheduler, Semaphore};

fn parse(item: u64) -> u64 {
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

fn checksum(x: u64) -> u64 {
    x.count_ones() as u64 + (x >> 60)
}

fn process(item: u64) -> u64 {
    checksum(transform(parse(item)))
}

fn main() {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>().ok());
    let items = args.next().flatten().filter(|&n| n >= 1).unwrap_or(500);
    let limit = args.next().flatten().filter(|&n| n >= 1).unwrap_or(3);
    let sched = Scheduler::builder().thread_name("pipeline").build().expect("valid settings");
    let sem = Semaphore::new(limit);
    let (inside, peak) = (AtomicUsize::new(0), AtomicUsize::new(0));
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
    // Fan-out: one task per item, at most `limit` inside the limited section at once.
    sched.scope(|s| {
        for item in 0..items {
            let (sem, inside, peak, tx) = (&sem, &inside, &peak, tx.clone());
            s.spawn(move |_| {
                let _permit = sem.acquire();
                let now = inside.fetch_add(1, SeqCst) + 1;
                peak.fetch_max(now, SeqCst);
                let r = process(item);
                inside.fetch_sub(1, SeqCst);
                tx.send((item, r)).expect("the collector outlives the scope");
            });
        }
    });
    drop(tx);
    let total = collector.join().expect("collector checks passed");
    let elapsed = started.elapsed();

    let expected: u64 = (0..items).map(process).sum();
    assert_eq!(total, expected, "fan-in total matches a sequential run");
    let peak = peak.load(SeqCst);
    assert!(peak as u64 <= limit, "{peak} tasks inside a section limited to {limit}");
    assert_eq!(sem.available_permits(), limit, "every permit was given back");
    println!("pipeline: {items} items, max concurrency {limit} (peak {peak}), total {total}, {elapsed:?}");
}
