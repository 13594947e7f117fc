//! `filch::deque` against crossbeam-deque, measured in the same run.
//!
//! - `owner_push_pop`: one push and one pop on the owner's end (filch's `pop`, its
//!   `xchg`-barrier variant, crossbeam's LIFO worker).
//! - `steal_contended`: the owner keeps pushing while one thief steals every item;
//!   time per item moved across threads.
//! - `steal_batch_contended`: the same with `steal_batch` into the thief's own deque.
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use crossbeam_deque as cb;
use filch::deque::{Owner, Steal};

fn owner_push_pop(c: &mut Criterion) {
    let mut g = c.benchmark_group("owner_push_pop");
    let o = Owner::<usize>::new();
    g.bench_function("filch", |b| {
        b.iter(|| {
            o.push(black_box(1)).unwrap();
            black_box(o.pop())
        })
    });
    g.bench_function("filch_xchg", |b| {
        b.iter(|| {
            o.push(black_box(1)).unwrap();
            black_box(o.pop_xchg())
        })
    });
    let w = cb::Worker::<usize>::new_lifo();
    g.bench_function("crossbeam", |b| {
        b.iter(|| {
            w.push(black_box(1));
            black_box(w.pop())
        })
    });
    g.finish();
}

/// Moves `n` items from an owner thread to one thief; returns the elapsed time.
fn filch_transfer(n: u64, batch: bool) -> Duration {
    let o = Owner::<usize>::new();
    let s = o.stealer();
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let thief = std::thread::spawn(move || {
        let mine = Owner::<usize>::with_capacity(64).unwrap();
        let mut got = 0u64;
        while got < n {
            let r = if batch { s.steal_batch(&mine) } else { s.steal() };
            if let Steal::Success(v) = r {
                black_box(v);
                got += 1;
            }
            while let Some(v) = mine.pop() {
                black_box(v);
                got += 1;
            }
        }
        d2.store(true, Ordering::Release);
    });
    let start = Instant::now();
    let mut i = 0u64;
    while i < n {
        if o.push(i as usize).is_ok() {
            i += 1;
        } else {
            std::hint::spin_loop();
        }
    }
    while !done.load(Ordering::Acquire) {
        std::hint::spin_loop();
    }
    let t = start.elapsed();
    thief.join().unwrap();
    t
}

fn crossbeam_transfer(n: u64, batch: bool) -> Duration {
    let w = cb::Worker::<usize>::new_lifo();
    let s = w.stealer();
    let done = Arc::new(AtomicBool::new(false));
    let d2 = done.clone();
    let thief = std::thread::spawn(move || {
        let mine = cb::Worker::<usize>::new_lifo();
        let mut got = 0u64;
        while got < n {
            let r = if batch { s.steal_batch_and_pop(&mine) } else { s.steal() };
            if let cb::Steal::Success(v) = r {
                black_box(v);
                got += 1;
            }
            while let Some(v) = mine.pop() {
                black_box(v);
                got += 1;
            }
        }
        d2.store(true, Ordering::Release);
    });
    let start = Instant::now();
    // crossbeam's deque grows instead of refusing; keep its length bounded like filch's
    // so both move the same items under the same pressure.
    for i in 0..n {
        while w.len() >= 4096 {
            std::hint::spin_loop();
        }
        w.push(i as usize);
    }
    while !done.load(Ordering::Acquire) {
        std::hint::spin_loop();
    }
    let t = start.elapsed();
    thief.join().unwrap();
    t
}

fn steal(c: &mut Criterion) {
    for (name, batch) in [("steal_contended", false), ("steal_batch_contended", true)] {
        let mut g = c.benchmark_group(name);
        g.throughput(criterion::Throughput::Elements(1));
        g.bench_function("filch", |b| b.iter_custom(|n| filch_transfer(n, batch)));
        g.bench_function("crossbeam", |b| b.iter_custom(|n| crossbeam_transfer(n, batch)));
        g.finish();
    }
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = owner_push_pop, steal }
criterion_main!(benches);
