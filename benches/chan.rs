//! `filch::chan` beside tokio's mpsc, crossbeam-channel and flume, same run, 2 workers for
//! filch and tokio. The six workloads of `make compare`'s channel rows, at smaller sizes
//! (the `make compare` size in brackets); their code, shared with `make compare`, is in
//! `benches/common/chan_workloads.rs`:
//!
//! - `pingpong`: 10 000 round trips over two rendezvous channels [1 M]. filch as async
//!   tasks, as sync (closure) tasks blocking on the channels (each wait hands the worker
//!   to a spare thread) and as plain threads; tokio as tasks with mpsc of capacity 1 (it
//!   has no rendezvous form); crossbeam and flume as threads; flume's async API on filch's
//!   tasks.
//! - `pipeline`: 100 000 values through source → +1 → +1 → sink, capacity 128 [1 M].
//! - `fanin`: 1000 producers × 100 values into one channel of 128 [1000 × 1000]; filch,
//!   tokio and flume-async: 1000 tasks; crossbeam and flume: 1000 threads.
//! - `select`: two producers send 50 000 values each into their own channel (capacity
//!   128); one consumer selects over both [1 M in all]. flume: its blocking `Selector`.
//! - `skynet`: Go's shape, a rendezvous channel per node (tokio: capacity 1), 1000 leaves
//!   (1111 nodes) for every system — crossbeam and flume run a thread per node — and
//!   100 000 leaves for the task-based ones [1 M].
//! - `pool`: 10 000 jobs [100 000] through a job channel to 16 workers and back through a
//!   result channel, each job under its own time limit; every 1000th job hangs and times
//!   out after 1 ms. Tasks: `filch::time::timeout` / `tokio::time::timeout` around the job
//!   (tokio's 16 workers share the mpsc receiver behind a `tokio::sync::Mutex`); threads:
//!   the job answers on a channel of its own, which the worker waits on with
//!   `recv_timeout`.
//!
//! Every iteration checks its result (the sums of `chan_workloads::*_expected`). Run with
//! `cargo bench --bench chan`; one group: `cargo bench --bench chan -- pingpong`.
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};

#[path = "common/chan_workloads.rs"]
mod chan_workloads;
use chan_workloads::*;

const WORKERS: usize = 2;

fn filch_sched() -> filch::Scheduler {
    filch::Scheduler::builder().workers(WORKERS).build().unwrap()
}

/// tokio's multi-threaded runtime; the timer driver only where a workload needs it.
fn tokio_rt(timers: bool) -> tokio::runtime::Runtime {
    let mut b = tokio::runtime::Builder::new_multi_thread();
    b.worker_threads(WORKERS);
    if timers {
        b.enable_time();
    }
    b.build().unwrap()
}

fn group<'a>(
    c: &'a mut Criterion,
    name: &str,
) -> criterion::BenchmarkGroup<'a, criterion::measurement::WallTime> {
    let mut g = c.benchmark_group(name);
    g.sample_size(10).warm_up_time(Duration::from_millis(300)).measurement_time(Duration::from_secs(2));
    g
}

/// Benchmarks `run` under `name`, checking every result against `want`.
fn bench(
    g: &mut criterion::BenchmarkGroup<'_, criterion::measurement::WallTime>,
    name: &str,
    size: u64,
    want: u64,
    run: impl Fn() -> u64,
) {
    g.bench_function(BenchmarkId::new(name, size), |b| b.iter(|| assert_eq!(run(), want, "{name}")));
}

fn pingpong(c: &mut Criterion) {
    let f = filch_sched();
    let t = tokio_rt(false);
    let n = 10_000;
    let want = pingpong_expected(n);
    let mut g = group(c, "pingpong");
    g.throughput(Throughput::Elements(n));
    bench(&mut g, "filch_tasks", n, want, || pingpong_filch(&f, n));
    bench(&mut g, "filch_sync_tasks", n, want, || pingpong_filch_sync(&f, n));
    bench(&mut g, "filch_threads", n, want, || pingpong_filch_threads(n));
    bench(&mut g, "tokio_tasks", n, want, || pingpong_tokio(&t, n));
    bench(&mut g, "crossbeam_threads", n, want, || pingpong_crossbeam(n));
    bench(&mut g, "flume_threads", n, want, || pingpong_flume(n));
    bench(&mut g, "flume_async_filch_tasks", n, want, || pingpong_flume_async(&f, n));
    g.finish();
}

fn pipeline(c: &mut Criterion) {
    let f = filch_sched();
    let t = tokio_rt(false);
    let n = 100_000;
    let want = pipeline_expected(n);
    let mut g = group(c, "pipeline");
    g.throughput(Throughput::Elements(n));
    bench(&mut g, "filch_tasks", n, want, || pipeline_filch(&f, n, CAP));
    bench(&mut g, "tokio_tasks", n, want, || pipeline_tokio(&t, n, CAP));
    bench(&mut g, "crossbeam_threads", n, want, || pipeline_crossbeam(n, CAP));
    bench(&mut g, "flume_threads", n, want, || pipeline_flume(n, CAP));
    bench(&mut g, "flume_async_filch_tasks", n, want, || pipeline_flume_async(&f, n, CAP));
    g.finish();
}

fn fanin(c: &mut Criterion) {
    let f = filch_sched();
    let t = tokio_rt(false);
    let (producers, per) = (1000, 100);
    let want = fanin_expected(producers, per);
    let mut g = group(c, "fanin");
    g.throughput(Throughput::Elements(producers * per));
    bench(&mut g, "filch_tasks", producers, want, || fanin_filch(&f, producers, per, CAP));
    bench(&mut g, "tokio_tasks", producers, want, || fanin_tokio(&t, producers, per, CAP));
    bench(&mut g, "crossbeam_threads", producers, want, || fanin_crossbeam(producers, per, CAP));
    bench(&mut g, "flume_threads", producers, want, || fanin_flume(producers, per, CAP));
    bench(&mut g, "flume_async_filch_tasks", producers, want, || fanin_flume_async(&f, producers, per, CAP));
    g.finish();
}

fn select(c: &mut Criterion) {
    let f = filch_sched();
    let t = tokio_rt(false);
    let n = 100_000;
    let want = select_expected(n);
    let mut g = group(c, "select");
    g.throughput(Throughput::Elements(n));
    bench(&mut g, "filch_tasks", n, want, || select_filch(&f, n, CAP));
    bench(&mut g, "tokio_tasks", n, want, || select_tokio(&t, n, CAP));
    bench(&mut g, "crossbeam_threads", n, want, || select_crossbeam(n, CAP));
    bench(&mut g, "flume_threads", n, want, || select_flume(n, CAP));
    g.finish();
}

fn skynet(c: &mut Criterion) {
    let f = filch_sched();
    let t = tokio_rt(false);
    let mut g = group(c, "skynet");
    // Every system at 1000 leaves (crossbeam and flume: 1111 threads, a thread per node).
    let n = 1000;
    let want = skynet_expected(n);
    bench(&mut g, "filch_tasks", n, want, || skynet_filch(&f, n));
    bench(&mut g, "tokio_tasks", n, want, || skynet_tokio(&t, n));
    bench(&mut g, "crossbeam_threads", n, want, || skynet_crossbeam(n));
    bench(&mut g, "flume_threads", n, want, || skynet_flume(n));
    bench(&mut g, "flume_async_filch_tasks", n, want, || skynet_flume_async(&f, n));
    // The task-based systems at 100 000 leaves (111 111 tasks).
    let n = 100_000;
    let want = skynet_expected(n);
    bench(&mut g, "filch_tasks", n, want, || skynet_filch(&f, n));
    bench(&mut g, "tokio_tasks", n, want, || skynet_tokio(&t, n));
    bench(&mut g, "flume_async_filch_tasks", n, want, || skynet_flume_async(&f, n));
    g.finish();
}

fn pool(c: &mut Criterion) {
    let f = filch_sched();
    let t = tokio_rt(true);
    let n = 10_000;
    let want = pool_expected(n);
    let mut g = group(c, "pool");
    g.throughput(Throughput::Elements(n));
    bench(&mut g, "filch_tasks", n, want, || pool_filch(&f, n, POOL_WORKERS, CAP));
    bench(&mut g, "tokio_tasks", n, want, || pool_tokio(&t, n, POOL_WORKERS, CAP));
    bench(&mut g, "crossbeam_threads", n, want, || pool_crossbeam(n, POOL_WORKERS, CAP));
    bench(&mut g, "flume_threads", n, want, || pool_flume(n, POOL_WORKERS, CAP));
    bench(&mut g, "flume_async_filch_tasks", n, want, || pool_flume_async(&f, n, POOL_WORKERS, CAP));
    g.finish();
}

criterion_group!(benches, pingpong, pipeline, fanin, select, skynet, pool);
criterion_main!(benches);
