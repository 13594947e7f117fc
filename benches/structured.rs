//! Structured concurrency beside rayon (and tokio for skynet), same run, same worker count.
//!
//! - `fib30_join`: fib(30) by recursive `join` down to n < 2 (1.6 M joins); filch `join`
//!   vs `rayon::join`. Bar: no slower than rayon.
//! - `skynet_1m`: 1 M leaves, 10-way fan-out, sum 499999500000; filch `scope`, and filch
//!   spawn + `JoinHandle::join` (a task per node returning its subtree's sum), vs
//!   `rayon::scope`. Bar: at most 0.8× rayon.
//! - `parallel_for_10m`: `out[i] = f(i)` for 10 M elements, `f` an xorshift round; filch
//!   `for_each_chunk_mut` with one-element chunks (so each index is one call through
//!   `parallel_for`'s splitting) vs rayon `par_iter_mut().enumerate().for_each`. Bar:
//!   within 1.1× of rayon. Also `parallel_for(0..10M)` itself against rayon's
//!   `(0..10M).into_par_iter().for_each`, each index computing the same round into
//!   `black_box`.
//!
//! Every iteration checks its result (a wrong answer panics the bench).
use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

use criterion::{criterion_group, criterion_main, Criterion};
use rayon::prelude::*;

const WORKERS: usize = 2;

fn filch_sched() -> filch::Scheduler {
    filch::Scheduler::builder().workers(WORKERS).build().unwrap()
}

fn rayon_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(WORKERS).build().unwrap()
}

fn fib_filch(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = filch::join(|| fib_filch(n - 1), || fib_filch(n - 2));
    a + b
}

fn fib_rayon(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1), || fib_rayon(n - 2));
    a + b
}

fn fib30(c: &mut Criterion) {
    let f = filch_sched();
    let r = rayon_pool();
    let mut g = c.benchmark_group("fib30_join");
    g.sample_size(20);
    g.bench_function("filch", |b| {
        b.iter(|| assert_eq!(f.spawn(|| fib_filch(black_box(30))).join().unwrap(), 832_040))
    });
    g.bench_function("rayon", |b| b.iter(|| assert_eq!(r.install(|| fib_rayon(black_box(30))), 832_040)));
    g.finish();
}

fn skynet_filch<'a>(s: &filch::Scope<'a>, out: &'a AtomicU64, num: u64, size: u64) {
    if size == 1 {
        out.fetch_add(num, Relaxed);
        return;
    }
    let sub = size / 10;
    for i in 0..10 {
        s.spawn(move |s| skynet_filch(s, out, num + i * sub, sub));
    }
}

/// The same tree with a task per node returning its subtree's sum through its
/// `JoinHandle` (the issue allows `scope` or spawn + join): no counter shared by the whole
/// tree, and a waiting node runs its own children.
fn skynet_filch_join(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let sub = size / 10;
    let children: [filch::JoinHandle<u64>; 10] =
        std::array::from_fn(|i| filch::spawn(move || skynet_filch_join(num + i as u64 * sub, sub)));
    children.into_iter().map(|h| h.join().unwrap()).sum()
}

fn skynet_rayon<'a>(s: &rayon::Scope<'a>, out: &'a AtomicU64, num: u64, size: u64) {
    if size == 1 {
        out.fetch_add(num, Relaxed);
        return;
    }
    let sub = size / 10;
    for i in 0..10 {
        s.spawn(move |s| skynet_rayon(s, out, num + i * sub, sub));
    }
}

const SKYNET_SUM: u64 = 499_999_500_000;

fn skynet(c: &mut Criterion) {
    let f = filch_sched();
    let r = rayon_pool();
    let mut g = c.benchmark_group("skynet_1m");
    g.sample_size(20);
    g.bench_function("filch_scope", |b| {
        b.iter(|| {
            let out = AtomicU64::new(0);
            f.scope(|s| skynet_filch(s, &out, 0, 1_000_000));
            assert_eq!(out.into_inner(), SKYNET_SUM);
        })
    });
    g.bench_function("filch_spawn_join", |b| {
        b.iter(|| assert_eq!(f.spawn(|| skynet_filch_join(0, 1_000_000)).join().unwrap(), SKYNET_SUM))
    });
    g.bench_function("rayon_scope", |b| {
        b.iter(|| {
            let out = AtomicU64::new(0);
            r.scope(|s| skynet_rayon(s, &out, 0, 1_000_000));
            assert_eq!(out.into_inner(), SKYNET_SUM);
        })
    });
    g.finish();
}

#[inline]
fn work(x: u64) -> u64 {
    let mut x = x ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

const N: usize = 10_000_000;

fn parallel_for(c: &mut Criterion) {
    let f = filch_sched();
    let r = rayon_pool();
    let expected: u64 = (0..N as u64).map(work).fold(0, u64::wrapping_add);
    let mut data: Vec<u64> = vec![0; N];
    let mut g = c.benchmark_group("parallel_for_10m");
    g.sample_size(20);
    g.bench_function("filch", |b| {
        b.iter(|| {
            f.for_each_chunk_mut(&mut data, 1, |i, c| c[0] = work(i as u64)).unwrap();
            black_box(&data);
        })
    });
    check(&mut data, expected);
    g.bench_function("rayon", |b| {
        b.iter(|| {
            r.install(|| data.par_iter_mut().enumerate().for_each(|(i, x)| *x = work(i as u64)));
            black_box(&data);
        })
    });
    check(&mut data, expected);
    // The index form itself: `parallel_for(0..N, f)` against rayon's `into_par_iter` on a
    // range, `f` the same round with its result kept alive by `black_box` (no memory
    // traffic: only scheduling and splitting are compared).
    g.bench_function("filch_parallel_for_range", |b| {
        b.iter(|| {
            f.parallel_for(0..N, |i| {
                black_box(work(i as u64));
            })
        })
    });
    g.bench_function("rayon_range", |b| {
        b.iter(|| {
            r.install(|| {
                (0..N).into_par_iter().for_each(|i| {
                    black_box(work(i as u64));
                })
            })
        })
    });
    g.finish();
}

/// The last iteration's output is right (if the benchmark ran: a filter may skip it).
fn check(data: &mut [u64], expected: u64) {
    if data.iter().any(|&x| x != 0) {
        assert_eq!(data.iter().copied().fold(0, u64::wrapping_add), expected);
    }
    data.fill(0);
}

criterion_group!(benches, fib30, skynet, parallel_for);
criterion_main!(benches);
