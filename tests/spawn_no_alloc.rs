//! Steady-state spawns from inside workers allocate nothing: a task whose closure and
//! result fit a pool slot ([`filch::TASK_INLINE_BYTES`]) is written into a slot from the
//! worker's pool cache, pushed on its deque, run, and joined without touching the heap.
//!
//! A counting global allocator counts the allocations of one thread only (a thread-local
//! switch, as in `tests/no_alloc.rs`). The measured code runs on a worker thread, so the
//! switch is turned on inside a task. Two guards show the test can fail: the counter sees
//! a `Box` made inside a task, and a closure one byte too large for a slot does allocate
//! (the documented heap fallback).
#![cfg(not(loom))]

use std::future::Future;
use std::hint::black_box;

use filch::{JoinHandle, Scheduler, TASK_INLINE_BYTES};

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{allocations_in, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Runs `f` as a task on a fresh scheduler of `workers` workers and returns its result.
///
/// No spare threads: a join that waits long enough for a task running on the other worker
/// lends its role to a spare thread (DESIGN §19), and starting that thread allocates. That
/// is a cost of blocking, counted in `Stats::spares_started`, not of spawning; without
/// spares the wait helps instead, which is what this file measures.
fn on_worker<R: Send + 'static>(workers: usize, f: impl FnOnce() -> R + Send + 'static) -> R {
    let sched = Scheduler::builder().workers(workers).pin(false).max_spare_threads(0).build().unwrap();
    sched.spawn(f).join().unwrap()
}

/// Tasks spawned, then joined, per round: enough to cycle the worker's pool cache (two
/// batches of 32 slots) through the shared pool.
const BATCH: usize = 100;
const WARM_UP_ROUNDS: usize = 40;
/// 100,000 measured spawns.
const ROUNDS: usize = 1000;

/// One round: spawns `BATCH` small tasks from the current worker, then joins them all.
/// `held` has room for `BATCH` handles, so it never grows.
fn round(held: &mut Vec<JoinHandle<u64>>, base: u64) -> u64 {
    for i in 0..BATCH as u64 {
        let x = base + i;
        held.push(filch::spawn(move || black_box(x).wrapping_mul(3)));
    }
    held.drain(..).map(|h| h.join().unwrap()).sum()
}

/// Warms up, then counts the allocations of `ROUNDS` rounds on this worker thread.
/// Returns the count and whether every task returned what it should.
fn measure_rounds() -> (usize, bool) {
    let mut held = Vec::with_capacity(BATCH);
    for r in 0..WARM_UP_ROUNDS {
        round(&mut held, (r * BATCH) as u64);
    }
    let mut sum = 0u64;
    let n = allocations_in(|| {
        for r in 0..ROUNDS {
            sum = sum.wrapping_add(round(&mut held, (r * BATCH) as u64));
        }
    });
    let tasks = (ROUNDS * BATCH) as u64;
    (n, sum == 3 * (tasks * (tasks - 1) / 2))
}

#[test]
fn the_counter_sees_an_allocation_on_a_worker() {
    // Guards the test itself: a counter that cannot count on a worker would pass
    // everything below.
    let n = on_worker(1, || allocations_in(|| drop(black_box(Box::new(1u64)))));
    assert_eq!(n, 1);
}

#[test]
fn steady_state_spawns_from_a_worker_allocate_nothing() {
    let (n, sums_ok) = on_worker(1, measure_rounds);
    assert!(sums_ok, "every task ran and returned its value");
    assert_eq!(n, 0, "{} spawn+join pairs on a worker allocated {n} times", ROUNDS * BATCH);
}

#[test]
fn steady_state_spawns_allocate_nothing_while_another_worker_steals() {
    // With a second worker, tasks are stolen, run and freed on the other thread (into its
    // own pool cache); the spawning worker must keep finding slots without the heap. Only
    // the spawning worker's allocations are counted.
    let (n, sums_ok) = on_worker(2, measure_rounds);
    assert!(sums_ok, "every task ran and returned its value");
    assert_eq!(n, 0, "{} spawn+join pairs on a worker allocated {n} times", ROUNDS * BATCH);
}

#[test]
fn the_largest_inline_closure_allocates_nothing() {
    let n = on_worker(1, || {
        let run = || {
            let big = [7u8; TASK_INLINE_BYTES];
            filch::spawn(move || black_box(&big).iter().map(|&b| usize::from(b)).sum::<usize>())
                .join()
                .unwrap()
        };
        for _ in 0..1000 {
            assert_eq!(run(), 7 * TASK_INLINE_BYTES);
        }
        allocations_in(|| {
            for _ in 0..10_000 {
                assert_eq!(run(), 7 * TASK_INLINE_BYTES);
            }
        })
    });
    assert_eq!(n, 0, "a closure of exactly TASK_INLINE_BYTES ({TASK_INLINE_BYTES}) allocated {n} times");
}

#[test]
fn a_closure_too_large_for_a_slot_allocates() {
    // The documented heap fallback, and proof that the tests above can fail: a closure
    // one byte larger than a slot's inline storage needs a heap task per spawn.
    const N: usize = 1000;
    let (n, fallbacks) = on_worker(1, || {
        let run = || {
            let big = [7u8; TASK_INLINE_BYTES + 1];
            filch::spawn(move || black_box(&big).iter().map(|&b| usize::from(b)).sum::<usize>())
                .join()
                .unwrap()
        };
        for _ in 0..100 {
            run();
        }
        let before = filch::current().unwrap().stats().total.heap_fallbacks;
        let n = allocations_in(|| {
            for _ in 0..N {
                assert_eq!(run(), 7 * (TASK_INLINE_BYTES + 1));
            }
        });
        (n, filch::current().unwrap().stats().total.heap_fallbacks - before)
    });
    assert!(n >= N, "{N} oversize spawns allocated only {n} times");
    assert_eq!(fallbacks, N as u64, "each oversize spawn is a heap fallback");
}

/// A future that is `Pending` once (after waking itself through a cloned waker), then
/// `Ready`: one spawn, two polls, a waker clone, a wake and a waker drop per task.
struct WakeOnce {
    woken: bool,
    x: u64,
}

impl std::future::Future for WakeOnce {
    type Output = u64;
    fn poll(mut self: std::pin::Pin<&mut Self>, cx: &mut std::task::Context<'_>) -> std::task::Poll<u64> {
        if self.woken {
            return std::task::Poll::Ready(self.x.wrapping_mul(3));
        }
        self.woken = true;
        // Clone, then wake by value (A5 on a running task) and drop: the paths a channel
        // that stores a waker takes.
        let w = black_box(cx.waker().clone());
        w.wake();
        std::task::Poll::Pending
    }
}

/// One async round: `BATCH` async tasks spawned from a task on the worker, each polled
/// twice and woken once, then every handle awaited.
async fn async_round(held: &mut Vec<JoinHandle<u64>>, base: u64) -> u64 {
    for i in 0..BATCH as u64 {
        held.push(filch::spawn_async(WakeOnce { woken: false, x: black_box(base + i) }));
    }
    let mut sum = 0u64;
    for h in held.drain(..) {
        sum = sum.wrapping_add(h.await.unwrap());
    }
    sum
}

#[test]
fn steady_state_async_spawns_polls_and_wakes_allocate_nothing() {
    let (n, sums_ok) = on_worker(1, || {
        filch::block_on(async {
            let mut held = Vec::with_capacity(BATCH);
            for r in 0..WARM_UP_ROUNDS {
                async_round(&mut held, (r * BATCH) as u64).await;
            }
            let mut sum = 0u64;
            let mut n = 0;
            for r in 0..ROUNDS {
                // Counted per round, so the `.await`s between rounds stay outside.
                let fut = async_round(&mut held, (r * BATCH) as u64);
                let mut fut = std::pin::pin!(fut);
                let waker = std::task::Waker::noop();
                let mut cx = std::task::Context::from_waker(waker);
                let mut out = None;
                n += allocations_in(|| {
                    while out.is_none() {
                        if let std::task::Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
                            out = Some(v);
                        } else {
                            filch::yield_now(); // runs the spawned tasks on this worker
                        }
                    }
                });
                sum = sum.wrapping_add(out.unwrap());
            }
            let tasks = (ROUNDS * BATCH) as u64;
            (n, sum == 3 * (tasks * (tasks - 1) / 2))
        })
    });
    assert!(sums_ok, "every async task ran and returned its value");
    assert_eq!(n, 0, "{} async spawn+poll+wake+await rounds allocated {n} times", ROUNDS * BATCH);
}
