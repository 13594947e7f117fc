//! filch's async tasks and timers beside tokio's multi-threaded runtime, measured in the
//! same run with the same worker count. The set follows the shapes of tokio's own
//! `benches/rt_multi_threaded.rs`, plus timers, async skynet and a one-worker yield:
//!
//! - `spawn_many`: the bench thread spawns 10 000 tasks; each counts down a shared
//!   counter, and the bench thread waits for zero. filch `spawn_async_detached` (and, as
//!   `filch_handle_dropped`, `spawn_async` with the handle dropped), tokio
//!   `Runtime::spawn` with the handle dropped (tokio has no handle-less spawn).
//! - `ping_pong`: one task spawns 1000 tasks; each creates two oneshot channels
//!   (`futures::channel::oneshot`, the same for both), spawns a partner that waits on the
//!   first and answers on the second, sends, and waits for the answer.
//! - `yield_many`: the bench thread spawns 200 tasks, each yielding 1000 times
//!   (`filch::future::yield_now`, `tokio::task::yield_now`).
//! - `chained_spawn`: a chain of 1000 tasks, each spawning the next from inside; the last
//!   signals the bench thread.
//! - `timers`: one task spawns 100 000 tasks that each sleep 1 ms
//!   (`filch::time::sleep`, `tokio::time::sleep`); the time until the last has woken.
//! - `skynet_async`: 1 M leaves, 10-way fan-out (1 111 111 tasks): each node spawns its 10
//!   children as async tasks and awaits their handles; the sum must be 499999500000.
//! - `yield_one_worker`: ONE worker, one task yielding 10 000 times; criterion's
//!   throughput line gives the cost of one yield and repoll.
//!
//! Waiting is done by a countdown that the tasks decrement and the bench thread blocks
//! on, identical for both systems. Run with
//! `cargo bench --bench async_rt -- --warm-up-time 1 --measurement-time 3`; the
//! command-line times override the defaults set in `criterion_group!` below.
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Condvar, Mutex};
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion, SamplingMode, Throughput};
use futures::channel::oneshot;

#[path = "common/workloads.rs"]
mod workloads;
use workloads::{skynet_async_filch, skynet_async_tokio, SKYNET_SUM};

const WORKERS: usize = 2;

fn filch_sched(workers: usize) -> filch::Scheduler {
    filch::Scheduler::builder().workers(workers).build().unwrap()
}

/// tokio's multi-threaded runtime. Only the `timers` group turns on its timer driver
/// (`enable_time`); without a driver to poll, tokio's idle workers park on a condition
/// variable, its cheapest configuration for the other groups. `make compare` does the same.
fn tokio_rt(workers: usize, timers: bool) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(workers);
    if timers {
        b.enable_time();
    }
    b.build().unwrap()
}

/// Counts tasks down to zero; `wait` blocks the bench thread until then. One per
/// benchmark, re-armed each iteration and shared as `&'static`, so a task captures a
/// plain reference (no reference count to bump per task).
struct Countdown {
    left: AtomicUsize,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Countdown {
    fn leaked() -> &'static Countdown {
        Box::leak(Box::new(Countdown {
            left: AtomicUsize::new(0),
            done: Mutex::new(true),
            cv: Condvar::new(),
        }))
    }

    /// Expects `n` count-downs. Called before the tasks are spawned, and the spawn
    /// publishes it to them.
    fn arm(&self, n: usize) {
        *self.done.lock().unwrap() = false;
        // Relaxed: the spawns that follow hand it to the tasks (happens-before).
        self.left.store(n, Ordering::Relaxed);
    }

    fn count_down(&self) {
        // AcqRel: the last decrement sees every earlier task's writes before it signals.
        if self.left.fetch_sub(1, Ordering::AcqRel) == 1 {
            *self.done.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }

    fn wait(&self) {
        let mut d = self.done.lock().unwrap();
        while !*d {
            d = self.cv.wait(d).unwrap();
        }
    }
}

fn spawn_many(c: &mut Criterion) {
    const TASKS: usize = 10_000;
    let f = filch_sched(WORKERS);
    let t = tokio_rt(WORKERS, false);
    let cd = Countdown::leaked();
    let mut g = c.benchmark_group("spawn_many");
    g.throughput(Throughput::Elements(TASKS as u64));
    g.bench_function("filch", |b| {
        b.iter(|| {
            cd.arm(TASKS);
            for _ in 0..TASKS {
                f.spawn_async_detached(async move { cd.count_down() }).unwrap();
            }
            cd.wait();
        })
    });
    // The same with a handle that is dropped at once: tokio's only way to fire and forget.
    g.bench_function("filch_handle_dropped", |b| {
        b.iter(|| {
            cd.arm(TASKS);
            for _ in 0..TASKS {
                drop(f.spawn_async(async move { cd.count_down() }));
            }
            cd.wait();
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            cd.arm(TASKS);
            for _ in 0..TASKS {
                drop(t.spawn(async move { cd.count_down() }));
            }
            cd.wait();
        })
    });
    g.finish();
}

fn ping_pong(c: &mut Criterion) {
    const PAIRS: usize = 1000;
    let f = filch_sched(WORKERS);
    let t = tokio_rt(WORKERS, false);
    let cd = Countdown::leaked();
    let mut g = c.benchmark_group("ping_pong");
    g.throughput(Throughput::Elements(PAIRS as u64));
    g.bench_function("filch", |b| {
        b.iter(|| {
            cd.arm(PAIRS);
            f.spawn_async_detached(async move {
                for _ in 0..PAIRS {
                    filch::spawn_async_detached(async move {
                        let (ping_tx, ping_rx) = oneshot::channel::<()>();
                        let (pong_tx, pong_rx) = oneshot::channel::<()>();
                        filch::spawn_async_detached(async move {
                            ping_rx.await.unwrap();
                            pong_tx.send(()).unwrap();
                        })
                        .unwrap();
                        ping_tx.send(()).unwrap();
                        pong_rx.await.unwrap();
                        cd.count_down();
                    })
                    .unwrap();
                }
            })
            .unwrap();
            cd.wait();
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            cd.arm(PAIRS);
            drop(t.spawn(async move {
                for _ in 0..PAIRS {
                    drop(tokio::spawn(async move {
                        let (ping_tx, ping_rx) = oneshot::channel::<()>();
                        let (pong_tx, pong_rx) = oneshot::channel::<()>();
                        drop(tokio::spawn(async move {
                            ping_rx.await.unwrap();
                            pong_tx.send(()).unwrap();
                        }));
                        ping_tx.send(()).unwrap();
                        pong_rx.await.unwrap();
                        cd.count_down();
                    }));
                }
            }));
            cd.wait();
        })
    });
    g.finish();
}

fn yield_many(c: &mut Criterion) {
    const TASKS: usize = 200;
    const YIELDS: usize = 1000;
    let f = filch_sched(WORKERS);
    let t = tokio_rt(WORKERS, false);
    let cd = Countdown::leaked();
    let mut g = c.benchmark_group("yield_many");
    g.throughput(Throughput::Elements((TASKS * YIELDS) as u64));
    g.bench_function("filch", |b| {
        b.iter(|| {
            cd.arm(TASKS);
            for _ in 0..TASKS {
                f.spawn_async_detached(async move {
                    for _ in 0..YIELDS {
                        filch::future::yield_now().await;
                    }
                    cd.count_down();
                })
                .unwrap();
            }
            cd.wait();
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            cd.arm(TASKS);
            for _ in 0..TASKS {
                drop(t.spawn(async move {
                    for _ in 0..YIELDS {
                        tokio::task::yield_now().await;
                    }
                    cd.count_down();
                }));
            }
            cd.wait();
        })
    });
    g.finish();
}

fn chained_spawn(c: &mut Criterion) {
    const DEPTH: usize = 1000;
    fn chain_filch(cd: &'static Countdown, left: usize) {
        if left == 0 {
            cd.count_down();
        } else {
            filch::spawn_async_detached(async move { chain_filch(cd, left - 1) }).unwrap();
        }
    }
    fn chain_tokio(cd: &'static Countdown, left: usize) {
        if left == 0 {
            cd.count_down();
        } else {
            drop(tokio::spawn(async move { chain_tokio(cd, left - 1) }));
        }
    }
    let f = filch_sched(WORKERS);
    let t = tokio_rt(WORKERS, false);
    let cd = Countdown::leaked();
    let mut g = c.benchmark_group("chained_spawn");
    g.throughput(Throughput::Elements(DEPTH as u64));
    g.bench_function("filch", |b| {
        b.iter(|| {
            cd.arm(1);
            f.spawn_async_detached(async move { chain_filch(cd, DEPTH) }).unwrap();
            cd.wait();
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            cd.arm(1);
            drop(t.spawn(async move { chain_tokio(cd, DEPTH) }));
            cd.wait();
        })
    });
    g.finish();
}

fn timers(c: &mut Criterion) {
    const TASKS: usize = 100_000;
    const SLEEP: Duration = Duration::from_millis(1);
    let f = filch_sched(WORKERS);
    let t = tokio_rt(WORKERS, true);
    let cd = Countdown::leaked();
    let mut g = c.benchmark_group("timers");
    g.sampling_mode(SamplingMode::Flat).throughput(Throughput::Elements(TASKS as u64));
    g.bench_function("filch", |b| {
        b.iter(|| {
            cd.arm(TASKS);
            f.spawn_async_detached(async move {
                for _ in 0..TASKS {
                    filch::spawn_async_detached(async move {
                        filch::time::sleep(SLEEP).await;
                        cd.count_down();
                    })
                    .unwrap();
                }
            })
            .unwrap();
            cd.wait();
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            cd.arm(TASKS);
            drop(t.spawn(async move {
                for _ in 0..TASKS {
                    drop(tokio::spawn(async move {
                        tokio::time::sleep(SLEEP).await;
                        cd.count_down();
                    }));
                }
            }));
            cd.wait();
        })
    });
    g.finish();
}

fn skynet_async(c: &mut Criterion) {
    const LEAVES: u64 = 1_000_000;
    let f = filch_sched(WORKERS);
    let t = tokio_rt(WORKERS, false);
    let mut g = c.benchmark_group("skynet_async");
    g.sampling_mode(SamplingMode::Flat);
    g.bench_function("filch", |b| {
        b.iter(|| {
            let sum = f.spawn_async(skynet_async_filch(0, LEAVES)).join().unwrap();
            assert_eq!(sum, SKYNET_SUM);
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            let sum = t.block_on(t.spawn(skynet_async_tokio(0, LEAVES))).unwrap();
            assert_eq!(sum, SKYNET_SUM);
        })
    });
    g.finish();
}

fn yield_one_worker(c: &mut Criterion) {
    const YIELDS: u64 = 10_000;
    let f = filch_sched(1);
    let t = tokio_rt(1, false);
    let mut g = c.benchmark_group("yield_one_worker");
    g.throughput(Throughput::Elements(YIELDS));
    g.bench_function("filch", |b| {
        b.iter(|| {
            f.spawn_async(async {
                for i in 0..YIELDS {
                    black_box(i);
                    filch::future::yield_now().await;
                }
            })
            .join()
            .unwrap()
        })
    });
    g.bench_function("tokio", |b| {
        b.iter(|| {
            t.block_on(t.spawn(async {
                for i in 0..YIELDS {
                    black_box(i);
                    tokio::task::yield_now().await;
                }
            }))
            .unwrap()
        })
    });
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(10)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = spawn_many, ping_pong, yield_many, chained_spawn, timers, skynet_async, yield_one_worker
}
criterion_main!(benches);
