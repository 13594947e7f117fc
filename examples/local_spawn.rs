//! Local spawn cost on one worker, for instruction counts under callgrind:
//!
//! ```text
//! valgrind --tool=callgrind --callgrind-out-file=target/cg.out \
//!     target/release/examples/local_spawn 100000
//! ```
//!
//! A task on a one-worker scheduler spawns N empty tasks and joins each (`join` mode), or
//! spawns tasks in batches of 1000 that the worker then runs through `yield_now`: with
//! `spawn_detached` (`detached` mode) or with `spawn` and the handle dropped at once (`run`
//! mode). An optional third argument sets the worker count (default 1). With more, every
//! other worker is first held in a spinning task, so nobody steals and the measured task
//! pays what a local spawn pays on a busy multi-worker scheduler: K1's and `pop`'s fences
//! (a one-worker scheduler skips both). A fourth argument `idle` leaves the other workers
//! idle instead: they are woken for the spawned tasks and steal some of them, the case of
//! a loop of tiny spawns on a scheduler that has nothing else to do. With
//! `LOCAL_SPAWN_STATS` set, the scheduler's `Stats` go to stderr. Prints ns per task;
//! divide callgrind's instruction total difference between two N by the N difference
//! for instructions per task.
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

fn main() {
    let n: u64 = std::env::args().nth(1).and_then(|a| a.parse().ok()).unwrap_or(1_000_000);
    let mode = std::env::args().nth(2).unwrap_or_else(|| "run".into());
    let workers: usize = std::env::args().nth(3).and_then(|a| a.parse().ok()).unwrap_or(1);
    let s = filch::Scheduler::builder().workers(workers).pin(false).build().unwrap();
    // Hold every other worker in a task until the measurement is over.
    let done: &'static AtomicBool = Box::leak(Box::new(AtomicBool::new(false)));
    let (started_tx, started_rx) = std::sync::mpsc::channel();
    let idle_peers = std::env::args().nth(4).is_some_and(|a| a == "idle");
    let held = if idle_peers { 1 } else { workers };
    let blockers: Vec<_> = (1..held)
        .map(|_| {
            let started = started_tx.clone();
            s.spawn(move || {
                started.send(()).unwrap();
                while !done.load(Ordering::Acquire) {
                    std::hint::spin_loop();
                }
            })
        })
        .collect();
    for _ in 1..held {
        started_rx.recv().unwrap();
    }
    let per_task = s
        .spawn(move || {
            let start = Instant::now();
            if mode == "join" {
                for i in 0..n {
                    std::hint::black_box(filch::spawn(move || std::hint::black_box(i)).join().unwrap());
                }
            } else if mode == "detached" {
                // As `run`, with `spawn_detached`: no handle to build or detach.
                for batch in 0..n / 1000 {
                    for i in 0..1000 {
                        let _ = filch::spawn_detached(move || {
                            std::hint::black_box(batch * 1000 + i);
                        });
                    }
                    while filch::yield_now() {}
                }
            } else if mode == "scope" {
                // As `detached`, each batch a `scope` whose tasks the scope's wait runs.
                for batch in 0..n / 1000 {
                    filch::scope(|s| {
                        for i in 0..1000 {
                            s.spawn(move |_| {
                                std::hint::black_box(batch * 1000 + i);
                            });
                        }
                    });
                }
            } else {
                // Batches of 1000 stay inside the deque and the pool (no spill, no heap).
                for batch in 0..n / 1000 {
                    for i in 0..1000 {
                        drop(filch::spawn(move || {
                            std::hint::black_box(batch * 1000 + i);
                        }));
                    }
                    while filch::yield_now() {}
                }
            }
            start.elapsed().as_nanos() as f64 / n as f64
        })
        .join()
        .unwrap();
    done.store(true, Ordering::Release);
    for b in blockers {
        b.join().unwrap();
    }
    if std::env::var_os("LOCAL_SPAWN_STATS").is_some() {
        eprintln!("{}", s.stats());
    }
    println!("{per_task:.1} ns per task");
}
