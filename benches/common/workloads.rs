//! The workloads shared by the criterion benches (`benches/structured.rs`,
//! `benches/async_rt.rs`), the tests (`tests/structured.rs`) and the head-to-head harness
//! (`examples/compare/`): each written once for filch and once for its peer (rayon, or
//! tokio for the async ones), with the same semantics. Dev-only: included by `#[path]`
//! into each of those targets (not part of the library).
#![allow(dead_code)] // each target uses a subset

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// The sum of skynet's leaves for 1 M leaves: 0 + 1 + … + 999 999.
pub const SKYNET_SUM: u64 = 499_999_500_000;

/// fib(n) by recursive `filch::join` down to n < 2.
pub fn fib_filch(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = filch::join(|| fib_filch(n - 1), || fib_filch(n - 2));
    a + b
}

/// fib(n) by recursive `Scheduler::join` on a scheduler passed down by reference.
pub fn fib_filch_sched(s: &filch::Scheduler, n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = s.join(|| fib_filch_sched(s, n - 1), || fib_filch_sched(s, n - 2));
    a + b
}

/// fib(n) by recursive `rayon::join` down to n < 2.
pub fn fib_rayon(n: u64) -> u64 {
    if n < 2 {
        return n;
    }
    let (a, b) = rayon::join(|| fib_rayon(n - 1), || fib_rayon(n - 2));
    a + b
}

/// Skynet on a filch `scope`: a node of `size` leaves spawns 10 children; each leaf adds
/// its number to `out`.
pub fn skynet_scope_filch<'a>(s: &filch::Scope<'a>, out: &'a AtomicU64, num: u64, size: u64) {
    if size == 1 {
        out.fetch_add(num, Relaxed);
        return;
    }
    let sub = size / 10;
    for i in 0..10 {
        s.spawn(move |s| skynet_scope_filch(s, out, num + i * sub, sub));
    }
}

/// Skynet with a task per node returning its subtree's sum through its `JoinHandle` — the
/// shape of Go's (a channel per node) and tokio's (a `JoinHandle` per node): no counter
/// shared by the whole tree, and a waiting node runs its own children.
pub fn skynet_join_filch(num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let sub = size / 10;
    let children: [filch::JoinHandle<u64>; 10] =
        std::array::from_fn(|i| filch::spawn(move || skynet_join_filch(num + i as u64 * sub, sub)));
    children.into_iter().map(|h| h.join().unwrap()).sum()
}

/// [`skynet_join_filch`] written the way recursive code that is handed a scheduler is:
/// a `Handle` cloned into every task, each spawning through its own copy.
pub fn skynet_join_filch_handle(h: filch::Handle, num: u64, size: u64) -> u64 {
    if size == 1 {
        return num;
    }
    let sub = size / 10;
    let children: [filch::JoinHandle<u64>; 10] = std::array::from_fn(|i| {
        let hc = h.clone();
        h.spawn(move || skynet_join_filch_handle(hc, num + i as u64 * sub, sub))
    });
    children.into_iter().map(|c| c.join().unwrap()).sum()
}

/// Skynet on a `rayon::scope` (rayon has no join handles).
pub fn skynet_scope_rayon<'a>(s: &rayon::Scope<'a>, out: &'a AtomicU64, num: u64, size: u64) {
    if size == 1 {
        out.fetch_add(num, Relaxed);
        return;
    }
    let sub = size / 10;
    for i in 0..10 {
        s.spawn(move |s| skynet_scope_rayon(s, out, num + i * sub, sub));
    }
}

/// The parallel loop's per-element work: one xorshift round.
#[inline]
pub fn work(x: u64) -> u64 {
    let mut x = x ^ 0x9E37_79B9_7F4A_7C15;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    x
}

// ---------------------------------------------------------------- async workloads
// Shared by `benches/async_rt.rs` and `examples/compare/`: each written once for filch's
// async tasks and once for tokio's, with the same shape.

/// The future of one async skynet node (boxed: the recursion needs a nameable type).
pub type SkynetFuture = std::pin::Pin<Box<dyn std::future::Future<Output = u64> + Send>>;

/// Async skynet on filch: a node of `size` leaves spawns its 10 children as async tasks
/// and awaits their `JoinHandle`s; a leaf returns its number.
pub fn skynet_async_filch(num: u64, size: u64) -> SkynetFuture {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let sub = size / 10;
        let children: [filch::JoinHandle<u64>; 10] =
            std::array::from_fn(|i| filch::spawn_async(skynet_async_filch(num + i as u64 * sub, sub)));
        let mut sum = 0;
        for h in children {
            sum += h.await.unwrap();
        }
        sum
    })
}

/// [`skynet_async_filch`] on tokio: `tokio::spawn` and its `JoinHandle`s.
pub fn skynet_async_tokio(num: u64, size: u64) -> SkynetFuture {
    Box::pin(async move {
        if size == 1 {
            return num;
        }
        let sub = size / 10;
        let children: [tokio::task::JoinHandle<u64>; 10] =
            std::array::from_fn(|i| tokio::spawn(skynet_async_tokio(num + i as u64 * sub, sub)));
        let mut sum = 0;
        for h in children {
            sum += h.await.unwrap();
        }
        sum
    })
}
