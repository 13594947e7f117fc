//! filch's scheduler beside rayon and tokio, measured in the same run, same worker count.
//!
//! - `spawn_external/N`: the main thread spawns N empty tasks, then waits for all (the
//!   seed's headline table). filch both with `JoinHandle`s joined in order and with
//!   `spawn_detached` and a countdown latch; rayon `spawn` with the same latch; tokio `spawn` with its
//!   `JoinHandle`s awaited.
//! - `spawn_internal/N`: one task spawns N empty tasks and waits for all.
//! - `local_spawn_join`: on ONE worker, a task spawns an empty task and joins it, in a
//!   loop; the time per iteration is the local spawn + run + join cost.
//! - `local_spawn_run`: on ONE worker, a task spawns batches of 1000 empty tasks and runs
//!   each batch through `yield_now`; the time per element is one local spawn + run.
//!
//! Idle CPU and wake-up latency are one-shot measurements, not criterion loops: see
//! `examples/idle.rs` (`make bench` runs it too).
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

const WORKERS: usize = 2;

/// Counts down to zero; `wait` blocks until then.
struct Latch {
    left: AtomicUsize,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Latch {
    fn new(n: usize) -> Arc<Latch> {
        Arc::new(Latch { left: AtomicUsize::new(n), done: Mutex::new(n == 0), cv: Condvar::new() })
    }
    fn count_down(&self) {
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

fn filch_sched() -> filch::Scheduler {
    filch::Scheduler::builder().workers(WORKERS).build().unwrap()
}

fn rayon_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(WORKERS).build().unwrap()
}

fn tokio_rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(WORKERS).build().unwrap()
}

fn spawn_external(c: &mut Criterion) {
    let f = filch_sched();
    let r = rayon_pool();
    let t = tokio_rt();
    let mut g = c.benchmark_group("spawn_external");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    for n in [10_000usize, 100_000, 1_000_000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("filch_join", n), &n, |b, &n| {
            b.iter(|| {
                let hs: Vec<_> = (0..n).map(|_| f.spawn(|| ())).collect();
                for h in hs {
                    h.join().unwrap();
                }
            })
        });
        g.bench_with_input(BenchmarkId::new("filch_detached", n), &n, |b, &n| {
            b.iter(|| {
                let l = Latch::new(n);
                for _ in 0..n {
                    let l = l.clone();
                    f.spawn_detached(move || l.count_down()).unwrap();
                }
                l.wait();
            })
        });
        g.bench_with_input(BenchmarkId::new("rayon", n), &n, |b, &n| {
            b.iter(|| {
                let l = Latch::new(n);
                for _ in 0..n {
                    let l = l.clone();
                    r.spawn(move || l.count_down());
                }
                l.wait();
            })
        });
        g.bench_with_input(BenchmarkId::new("tokio", n), &n, |b, &n| {
            b.iter(|| {
                let hs: Vec<_> = (0..n).map(|_| t.spawn(async {})).collect();
                t.block_on(async {
                    for h in hs {
                        h.await.unwrap();
                    }
                })
            })
        });
    }
    g.finish();
}

fn spawn_internal(c: &mut Criterion) {
    let f = filch_sched();
    let r = rayon_pool();
    let t = tokio_rt();
    let mut g = c.benchmark_group("spawn_internal");
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    for n in [10_000usize, 100_000] {
        g.throughput(Throughput::Elements(n as u64));
        g.bench_with_input(BenchmarkId::new("filch_join", n), &n, |b, &n| {
            b.iter(|| {
                f.spawn(move || {
                    let hs: Vec<_> = (0..n).map(|_| filch::spawn(|| ())).collect();
                    for h in hs {
                        h.join().unwrap();
                    }
                })
                .join()
                .unwrap()
            })
        });
        g.bench_with_input(BenchmarkId::new("rayon", n), &n, |b, &n| {
            b.iter(|| {
                let l = Latch::new(n);
                let l2 = l.clone();
                r.spawn(move || {
                    for _ in 0..n {
                        let l = l2.clone();
                        rayon::spawn(move || l.count_down());
                    }
                });
                l.wait();
            })
        });
        g.bench_with_input(BenchmarkId::new("tokio", n), &n, |b, &n| {
            b.iter(|| {
                t.block_on(async move {
                    tokio::spawn(async move {
                        let hs: Vec<_> = (0..n).map(|_| tokio::spawn(async {})).collect();
                        for h in hs {
                            h.await.unwrap();
                        }
                    })
                    .await
                    .unwrap()
                })
            })
        });
    }
    g.finish();
}

fn local_spawn_join(c: &mut Criterion) {
    let f = filch::Scheduler::builder().workers(1).build().unwrap();
    let r = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut g = c.benchmark_group("local_spawn_join");
    g.sample_size(20).measurement_time(Duration::from_secs(2));
    g.bench_function("filch", |b| {
        b.iter_custom(|iters| {
            f.spawn(move || {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(filch::spawn(move || black_box(i)).join().unwrap());
                }
                start.elapsed()
            })
            .join()
            .unwrap()
        })
    });
    // rayon has no spawn+join handle; its closest local fork-join is `join`.
    g.bench_function("rayon_join", |b| {
        b.iter_custom(|iters| {
            r.install(move || {
                let start = Instant::now();
                for i in 0..iters {
                    black_box(rayon::join(|| black_box(i), || ()));
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

/// Local spawn + run on ONE worker: a task spawns 1000 empty tasks, then runs them all
/// through `yield_now`, per iteration; the time per element is one spawn + one run.
/// `filch_detached` is `spawn_detached` (the counterpart of `rayon::spawn` and Go's `go`),
/// `filch_handle_dropped` is `spawn` with the handle dropped at once (one detach RMW more).
fn local_spawn_run(c: &mut Criterion) {
    const BATCH: u64 = 1000;
    let f = filch::Scheduler::builder().workers(1).pin(false).build().unwrap();
    let r = rayon::ThreadPoolBuilder::new().num_threads(1).build().unwrap();
    let mut g = c.benchmark_group("local_spawn_run");
    g.sample_size(30).measurement_time(Duration::from_secs(3)).throughput(Throughput::Elements(BATCH));
    /// `iters` batches of `BATCH` spawns (by `spawn`), each run through `yield_now`, timed
    /// inside the one worker.
    fn filch_batches<S: Fn(u64, u64) + Copy + Send + 'static>(
        f: &filch::Scheduler,
        iters: u64,
        spawn: S,
    ) -> Duration {
        f.spawn(move || {
            let start = Instant::now();
            for it in 0..iters {
                for i in 0..BATCH {
                    spawn(it, i);
                }
                while filch::yield_now() {}
            }
            start.elapsed()
        })
        .join()
        .unwrap()
    }
    g.bench_function("filch_detached", |b| {
        b.iter_custom(|iters| {
            filch_batches(&f, iters, |it, i| {
                let _ = filch::spawn_detached(move || {
                    black_box(it ^ i);
                });
            })
        })
    });
    g.bench_function("filch_handle_dropped", |b| {
        b.iter_custom(|iters| {
            filch_batches(&f, iters, |it, i| {
                drop(filch::spawn(move || {
                    black_box(it ^ i);
                }));
            })
        })
    });
    g.bench_function("rayon_spawn", |b| {
        b.iter_custom(|iters| {
            r.install(move || {
                let start = Instant::now();
                for it in 0..iters {
                    for i in 0..BATCH {
                        rayon::spawn(move || {
                            black_box(it ^ i);
                        });
                    }
                    while rayon::yield_local() == Some(rayon::Yield::Executed) {}
                }
                start.elapsed()
            })
        })
    });
    g.finish();
}

criterion_group!(benches, spawn_external, spawn_internal, local_spawn_join, local_spawn_run);
criterion_main!(benches);
