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
//! - `reduce_10m`: the sum (wrapping) of `f(x)` over 10 M `u64`, `f` the same xorshift
//!   round: filch `parallel_reduce` over the slice and over the index range, vs rayon
//!   `par_iter().map(f).reduce(..)` and `(0..N).into_par_iter().map(f).reduce(..)`. Bar:
//!   within 1.1× of rayon.
//! - `map_10m`: `f(x)` of 10 M `u64` collected into a new `Vec`: filch `parallel_map` vs
//!   rayon `par_iter().map(f).collect::<Vec<_>>()` (both allocate the output once per
//!   iteration, and both pay its page faults). Bar: within 1.1× of rayon.
//! - `sort_10m`: 10 M random `u64`: filch `parallel_sort_unstable` vs rayon
//!   `par_sort_unstable`, with the standard library's sequential `sort_unstable` for
//!   scale; each iteration sorts a fresh copy (the copy is not timed). Bar: within 1.1×
//!   of rayon.
//!
//! Every iteration checks its result (a wrong answer panics the bench).
use std::hint::black_box;
use std::sync::atomic::AtomicU64;

use criterion::{criterion_group, criterion_main, Criterion};
use rayon::prelude::*;

#[path = "common/workloads.rs"]
mod workloads;
use workloads::*;

const WORKERS: usize = 2;

fn filch_sched() -> filch::Scheduler {
    filch::Scheduler::builder().workers(WORKERS).build().unwrap()
}

fn rayon_pool() -> rayon::ThreadPool {
    rayon::ThreadPoolBuilder::new().num_threads(WORKERS).build().unwrap()
}

fn fib30(c: &mut Criterion) {
    let f = filch_sched();
    let r = rayon_pool();
    let mut g = c.benchmark_group("fib30_join");
    g.sample_size(20);
    g.bench_function("filch", |b| {
        b.iter(|| assert_eq!(f.spawn(|| fib_filch(black_box(30))).join().unwrap(), 832_040))
    });
    g.bench_function("filch_install", |b| {
        b.iter(|| assert_eq!(f.install(|| fib_filch(black_box(30))), 832_040))
    });
    g.bench_function("filch_scheduler_join", |b| {
        b.iter(|| assert_eq!(f.install(|| fib_filch_sched(&f, black_box(30))), 832_040))
    });
    g.bench_function("rayon", |b| b.iter(|| assert_eq!(r.install(|| fib_rayon(black_box(30))), 832_040)));
    g.finish();
}

fn skynet(c: &mut Criterion) {
    let f = filch_sched();
    let r = rayon_pool();
    let mut g = c.benchmark_group("skynet_1m");
    g.sample_size(20);
    g.bench_function("filch_scope", |b| {
        b.iter(|| {
            let out = AtomicU64::new(0);
            f.scope(|s| skynet_scope_filch(s, &out, 0, 1_000_000));
            assert_eq!(out.into_inner(), SKYNET_SUM);
        })
    });
    g.bench_function("filch_spawn_join", |b| {
        b.iter(|| assert_eq!(f.spawn(|| skynet_join_filch(0, 1_000_000)).join().unwrap(), SKYNET_SUM))
    });
    g.bench_function("filch_spawn_join_cloned_handle", |b| {
        b.iter(|| {
            let h = f.handle();
            assert_eq!(f.spawn(move || skynet_join_filch_handle(h, 0, 1_000_000)).join().unwrap(), SKYNET_SUM)
        })
    });
    g.bench_function("rayon_scope", |b| {
        b.iter(|| {
            let out = AtomicU64::new(0);
            r.scope(|s| skynet_scope_rayon(s, &out, 0, 1_000_000));
            assert_eq!(out.into_inner(), SKYNET_SUM);
        })
    });
    g.finish();
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
            f.for_each_chunk_mut(&mut data, 1, |i, c| c[0] = work(i as u64));
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

fn reduce(c: &mut Criterion) {
    let f = filch_sched();
    let r = rayon_pool();
    let v: Vec<u64> = (0..N as u64).collect();
    let expected: u64 = v.iter().map(|&x| work(x)).fold(0, u64::wrapping_add);
    let mut g = c.benchmark_group("reduce_10m");
    g.sample_size(20);
    g.bench_function("filch_slice", |b| {
        b.iter(|| {
            let sum = f.parallel_reduce(black_box(&v), || 0, |&x| work(x), u64::wrapping_add);
            assert_eq!(sum, expected);
        })
    });
    g.bench_function("rayon_slice", |b| {
        b.iter(|| {
            let sum =
                r.install(|| black_box(&v).par_iter().map(|&x| work(x)).reduce(|| 0, u64::wrapping_add));
            assert_eq!(sum, expected);
        })
    });
    g.bench_function("filch_range", |b| {
        b.iter(|| {
            let sum = f.parallel_reduce(0..black_box(N), || 0, |i| work(i as u64), u64::wrapping_add);
            assert_eq!(sum, expected);
        })
    });
    g.bench_function("rayon_range", |b| {
        b.iter(|| {
            let sum = r.install(|| {
                (0..black_box(N)).into_par_iter().map(|i| work(i as u64)).reduce(|| 0, u64::wrapping_add)
            });
            assert_eq!(sum, expected);
        })
    });
    g.finish();
}

fn map(c: &mut Criterion) {
    let f = filch_sched();
    let r = rayon_pool();
    let v: Vec<u64> = (0..N as u64).collect();
    let check = |out: Vec<u64>| {
        assert_eq!(out.len(), N);
        assert_eq!(out[N / 3], work((N / 3) as u64));
    };
    let mut g = c.benchmark_group("map_10m");
    g.sample_size(20);
    g.bench_function("filch", |b| b.iter(|| check(f.parallel_map(black_box(&v), |&x| work(x)))));
    g.bench_function("rayon", |b| {
        b.iter(|| check(r.install(|| black_box(&v).par_iter().map(|&x| work(x)).collect::<Vec<u64>>())))
    });
    g.finish();
}

fn sort(c: &mut Criterion) {
    use criterion::BatchSize::LargeInput;
    let f = filch_sched();
    let r = rayon_pool();
    let input: Vec<u64> = (0..N as u64).map(|i| work(i).wrapping_mul(0x2545_F491_4F6C_DD1D)).collect();
    let mut expected = input.clone();
    expected.sort_unstable();
    let mut g = c.benchmark_group("sort_10m");
    g.sample_size(10);
    g.bench_function("filch", |b| {
        b.iter_batched(
            || input.clone(),
            |mut v| {
                f.parallel_sort_unstable(&mut v);
                v
            },
            LargeInput,
        )
    });
    let mut v = input.clone();
    f.parallel_sort_unstable(&mut v);
    assert!(v == expected);
    g.bench_function("rayon", |b| {
        b.iter_batched(
            || input.clone(),
            |mut v| {
                r.install(|| v.par_sort_unstable());
                v
            },
            LargeInput,
        )
    });
    g.bench_function("std_sequential", |b| {
        b.iter_batched(
            || input.clone(),
            |mut v| {
                v.sort_unstable();
                v
            },
            LargeInput,
        )
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

criterion_group!(benches, fib30, skynet, parallel_for, reduce, map, sort);
criterion_main!(benches);
