//! The Sloth goroutine-module pattern (seed 003) on filch: spawn, spawn_many, two named
//! pools with their own statistics, await-all on handles, a wait group, and a timeout.
//!
//! ```text
//! cargo run --release --example goroutines [N]     (default 1000)
//! ```
//!
//! The seed's named pools (`pool_create("mypool")`) become two `Scheduler`s with their
//! own thread names and counters; `async`/`await_all` become `spawn` and joining the
//! handles; `goroutine.timeout` becomes `join_timeout`. Checked: every result, the wait
//! group's count, the timeout firing for a task that cannot finish in time and not for
//! one that can, and each pool's statistics counting exactly its own tasks.
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::{Arc, Barrier};
use std::time::Duration;

use filch::{Scheduler, WaitGroup};

fn pool(name: &str) -> Scheduler {
    Scheduler::builder().workers(2).thread_name(name).build().expect("valid settings")
}

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).filter(|&n| n >= 10).unwrap_or(1000);
    let io = pool("io");
    let cpu = pool("cpu");

    // goroutine.spawn: fire and forget, counted by a wait group.
    let wg = WaitGroup::new();
    let hits = Arc::new(AtomicU64::new(0));
    for _ in 0..n {
        wg.add(1);
        let (wg, hits) = (wg.clone(), hits.clone());
        drop(io.spawn(move || {
            hits.fetch_add(1, Relaxed);
            wg.done();
        }));
    }
    wg.wait();
    assert_eq!(hits.load(Relaxed), n);

    // goroutine.spawn_many(n, function(id)): one batch, results in id order.
    let squares = cpu.spawn_many(n as usize, |id| (id as u64) * (id as u64)).join_all();
    let sum: u64 = squares.into_iter().map(|r| r.expect("no task panics")).sum();
    assert_eq!(sum, (n - 1) * n * (2 * n - 1) / 6);

    // goroutine.async + await_all: handles across both pools, awaited together.
    let handles: Vec<_> =
        (0..n).map(|i| if i % 2 == 0 { io.spawn(move || i + 1) } else { cpu.spawn(move || i + 1) }).collect();
    let total: u64 = handles.into_iter().map(|h| h.join().expect("no task panics")).sum();
    assert_eq!(total, n * (n + 1) / 2);

    // goroutine.timeout: a task held at a barrier cannot finish in 10 ms; then it can.
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let held = cpu.spawn(move || {
        g.wait();
        "finished"
    });
    let held = match held.join_timeout(Duration::from_millis(10)) {
        Ok(_) => unreachable!("the task waits at the barrier until after this timeout"),
        Err(handle) => handle, // timed out; the task keeps running, the handle comes back
    };
    gate.wait();
    assert_eq!(held.join_timeout(Duration::from_secs(30)).ok().and_then(Result::ok), Some("finished"));

    // A wait group waited on *inside* a task: the worker runs the group's tasks meanwhile.
    let nested = io.spawn(move || {
        let wg = WaitGroup::new();
        let sum = Arc::new(AtomicU64::new(0));
        for i in 0..100 {
            wg.add(1);
            let (wg, sum) = (wg.clone(), sum.clone());
            drop(filch::spawn(move || {
                sum.fetch_add(i, Relaxed);
                wg.done();
            }));
        }
        wg.wait();
        sum.load(Relaxed)
    });
    assert_eq!(nested.join().unwrap(), 4950);

    // goroutine.pool_stats: each pool counted exactly its own tasks.
    let (io_stats, cpu_stats) = (io.stats(), cpu.stats());
    println!("pool \"io\":\n{io_stats}\npool \"cpu\":\n{cpu_stats}");
    // io: n fire-and-forget, the even half of the awaited ones, the nested task and its 100.
    assert_eq!(io_stats.total.spawned, n + n.div_ceil(2) + 1 + 100);
    assert_eq!(cpu_stats.total.spawned, n + n / 2 + 1);
    assert_eq!(io_stats.total.completed, io_stats.total.spawned);
    assert_eq!(cpu_stats.total.completed, cpu_stats.total.spawned);
    println!("goroutines: {n} spawned, {n} in a batch, {n} awaited across two pools, timeout and wait group checked");
}
