//! `filch::pool` against the system allocator (`Box` of a 128-byte value), measured in
//! the same run.
//!
//! - `alloc_free_128B`: one allocation, a 128-byte value written into it, one free, on
//!   one thread: through a [`Cache`], through the uncached `Pool::try_alloc`/`free`
//!   (two CASes plus one), and `Box::new`/drop.
//! - `cross_thread_free`: a producer thread allocates and hands every slot through a
//!   filch deque to a consumer thread, which frees it (the slots travel back to the
//!   producer through the global stack in batches); time per slot. The same transfer of
//!   `Box`es, freed on the consumer, for comparison.
use std::hint::black_box;
use std::mem::MaybeUninit;
use std::time::{Duration, Instant};

use criterion::{criterion_group, criterion_main, Criterion};
use filch::deque::{Owner, Steal, Word};
use filch::pool::{Cache, Pool, SlotId, SLOT_BYTES};

type Payload = [u8; SLOT_BYTES];

fn alloc_free(c: &mut Criterion) {
    let mut g = c.benchmark_group("alloc_free_128B");
    let pool = Pool::<Payload>::new();
    let mut cache = pool.cache();
    g.bench_function("filch_cached", |b| {
        b.iter(|| {
            let id = cache.try_alloc().unwrap();
            // SAFETY: `id` was just allocated; we are its only holder.
            unsafe { pool.slot_ptr(id).as_ptr().write(MaybeUninit::new(black_box([7; SLOT_BYTES]))) };
            black_box(id);
            // SAFETY: from this pool, live, freed once; `[u8; N]` needs no drop.
            unsafe { cache.free(id) };
        })
    });
    drop(cache);
    g.bench_function("filch_uncached", |b| {
        b.iter(|| {
            let id = pool.try_alloc().unwrap();
            // SAFETY: as above.
            unsafe { pool.slot_ptr(id).as_ptr().write(MaybeUninit::new(black_box([7; SLOT_BYTES]))) };
            black_box(id);
            // SAFETY: as above.
            unsafe { pool.free(id) };
        })
    });
    g.bench_function("box", |b| b.iter(|| drop(black_box(Box::new(black_box([7u8; SLOT_BYTES]))))));
    g.finish();
}

/// Moves `n` items from a producer to a consumer thread through a filch deque: the
/// producer makes each with `make` (spinning while it returns `None`), the consumer
/// disposes of each with `dispose`. Returns the elapsed time.
fn transfer<W: Word + Send>(
    n: u64,
    mut make: impl FnMut() -> Option<W>,
    mut dispose: impl FnMut(W) + Send,
) -> Duration {
    let deque = Owner::<W>::new();
    let stealer = deque.stealer();
    let start = Instant::now();
    std::thread::scope(|s| {
        s.spawn(move || {
            let mut got = 0;
            while got < n {
                match stealer.steal() {
                    Steal::Success(w) => {
                        dispose(w);
                        got += 1;
                    }
                    _ => std::hint::spin_loop(),
                }
            }
        });
        let mut sent = 0;
        while sent < n {
            let Some(mut w) = make() else {
                std::hint::spin_loop();
                continue;
            };
            while let Err(back) = deque.push(w) {
                w = back;
                std::hint::spin_loop();
            }
            sent += 1;
        }
    });
    start.elapsed()
}

fn cross_thread_free(c: &mut Criterion) {
    let mut g = c.benchmark_group("cross_thread_free");
    let pool = Pool::<Payload>::new();
    g.bench_function("filch_cached", |b| {
        b.iter_custom(|n| {
            let (mut mine, mut theirs): (Cache<'_, Payload>, Cache<'_, Payload>) =
                (pool.cache(), pool.cache());
            transfer(
                n,
                || {
                    let id = mine.try_alloc()?;
                    // SAFETY: `id` was just allocated; we are its only holder until the push.
                    unsafe { pool.slot_ptr(id).as_ptr().write(MaybeUninit::new([7; SLOT_BYTES])) };
                    Some(id)
                },
                |id: SlotId| {
                    // SAFETY: the deque handed us `id` (its push/steal order the producer's
                    // write before this); from this pool, live, freed once.
                    unsafe { theirs.free(black_box(id)) };
                },
            )
        })
    });
    g.bench_function("box", |b| {
        b.iter_custom(|n| transfer(n, || Some(Box::new([7u8; SLOT_BYTES])), |bx| drop(black_box(bx))))
    });
    g.finish();
}

fn config() -> Criterion {
    Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
}

criterion_group! { name = benches; config = config(); targets = alloc_free, cross_thread_free }
criterion_main!(benches);
