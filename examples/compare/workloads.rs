//! The workloads, one function per (system, workload). Each returns the value its run
//! computed, which the runner checks against the expected one; timing is done by the
//! caller around the call.

use std::future::Future;
use std::pin::pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Condvar, Mutex};
use std::task::Poll;
use std::time::{Duration, Instant};

use futures::channel::oneshot;
use rayon::prelude::*;

/// The channel workloads, shared with `benches/chan.rs`.
#[path = "../../benches/common/chan_workloads.rs"]
pub mod chan;
#[path = "../../benches/common/workloads.rs"]
mod shared;
pub use shared::work;
use shared::{
    fib_filch, fib_rayon, skynet_async_filch, skynet_async_tokio, skynet_join_filch, skynet_scope_rayon,
};

/// How long each task of the `sleep` row sleeps.
pub const SLEEP: Duration = Duration::from_millis(1);
/// How many times each task of the `yield-many` row yields.
pub const YIELDS_PER_TASK: u64 = 1000;
/// How many sleeps are pending during the `idle-timers` window.
pub const IDLE_TIMERS: u64 = 100_000;
/// How long each of those sleeps is: far longer than any window.
pub const IDLE_TIMER_SLEEP: Duration = Duration::from_secs(10);
/// The pause between registering those sleeps and opening the measured window.
pub const IDLE_TIMERS_SETTLE: Duration = Duration::from_millis(50);
/// How many values each producer of the `chan-fanin` row sends (`n` is the producers).
pub const FANIN_PER: u64 = 1000;
/// How many times the `small-tree` row computes fib(n) by `join`, each time entering the
/// pool from outside: trees too small to amortize waking a worker.
pub const SMALL_TREE_REPEATS: u64 = 200;

/// A countdown latch for the peers that have no wait group of their own.
pub struct Latch {
    left: AtomicUsize,
    done: Mutex<bool>,
    cv: Condvar,
}

impl Latch {
    pub fn new(n: usize) -> Arc<Latch> {
        Arc::new(Latch { left: AtomicUsize::new(n), done: Mutex::new(n == 0), cv: Condvar::new() })
    }
    pub fn count_down(&self) {
        if self.left.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
            *self.done.lock().unwrap() = true;
            self.cv.notify_all();
        }
    }
    pub fn wait(&self) {
        let mut d = self.done.lock().unwrap();
        while !*d {
            d = self.cv.wait(d).unwrap();
        }
    }
}

pub fn splitmix64(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// UTS-style binomial tree, the same as `benches/go/main.go`: the root has `root`
/// children; any other node has `UTS_M` children when its hash falls under `UTS_Q` (per
/// million), else none (q·m = 0.99).
const UTS_M: u64 = 4;
const UTS_Q: u64 = 247_500;
pub const UTS_SEED: u64 = 42;

pub fn uts_child(h: u64, i: u64) -> u64 {
    splitmix64(h ^ (i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

pub fn uts_children(h: u64, root: Option<u64>) -> u64 {
    match root {
        Some(r) => r,
        None if h % 1_000_000 < UTS_Q => UTS_M,
        None => 0,
    }
}

/// The tree's size, counted sequentially (the expected value).
pub fn uts_sequential(root: u64) -> u64 {
    let mut stack = vec![(splitmix64(UTS_SEED), true)];
    let mut count = 0;
    while let Some((h, is_root)) = stack.pop() {
        count += 1;
        for i in 0..uts_children(h, is_root.then_some(root)) {
            stack.push((uts_child(h, i), false));
        }
    }
    count
}

pub fn checksum(data: &[u64]) -> u64 {
    data.iter().fold(0u64, |a, &b| a.wrapping_add(b))
}

pub fn fib_sequential(n: u64) -> u64 {
    let (mut a, mut b) = (0u64, 1u64);
    for _ in 0..n {
        (a, b) = (b, a + b);
    }
    a
}

/// CPU time this process's threads have used, in ns: `CLOCK_PROCESS_CPUTIME_ID`, the
/// scheduler's exact run-time accounting. Not `getrusage`, whose user and system times are
/// sampled at timer ticks and only scaled to the exact total: on this machine a thread
/// that ran 20 µs in a second could be charged most of a tick, and the idle rows of one
/// system moved between 60 µs and 1.2 ms from run to run.
pub fn cpu_nanos() -> u64 {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: `ts` is a valid, writable `timespec`; the call fills it and touches nothing else.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_PROCESS_CPUTIME_ID, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_PROCESS_CPUTIME_ID) failed");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// A system under test: builds its runtime once, then runs workloads on it.
pub trait System {
    fn spawn_outside(&self, n: usize) -> u64;
    fn spawn_inside(&self, n: usize) -> u64;
    fn skynet(&self, n: u64) -> Option<u64>;
    fn fib(&self, n: u64) -> Option<u64>;
    fn uts(&self, root: u64) -> Option<u64>;
    fn parfor(&self, data: &mut [u64]) -> Option<u64>;
    /// fib(n) by `join`, [`SMALL_TREE_REPEATS`] times from outside; the sum of the results.
    fn small_tree(&self, n: u64) -> Option<u64>;
    /// Runs `f` as one task and waits for it (wake-latency probe).
    fn run_one(&self, f: Box<dyn FnOnce() + Send>);
    // The async rows (`None` where the system has no async tasks). Each is written the same
    // way for filch and tokio: the same shape, and the same [`Tally`] to count and wait.
    /// Skynet with async tasks: each node spawns its 10 children and awaits their handles.
    fn skynet_async(&self, n: u64) -> Option<u64>;
    /// `n` async tasks spawned from outside, each counting itself; returns how many ran.
    fn spawn_many(&self, n: usize) -> Option<u64>;
    /// One task spawns `n` tasks; each spawns a partner, sends it a ping over a oneshot
    /// channel and awaits the pong on another. Returns how many pairs finished.
    fn ping_pong(&self, n: usize) -> Option<u64>;
    /// `n` tasks spawned from outside, each yielding [`YIELDS_PER_TASK`] times; returns the
    /// yields made.
    fn yield_many(&self, n: usize) -> Option<u64>;
    /// A chain of tasks, each spawning the next from inside, `n` spawns deep; returns the
    /// spawns counted along the chain.
    fn chained_spawn(&self, n: usize) -> Option<u64>;
    /// One task spawns `n` tasks that each sleep [`SLEEP`]; returns how many woke.
    fn sleep_many(&self, n: usize) -> Option<u64>;
    /// Spawns `n` tasks that each sleep `dur`, and returns once every one of them has its
    /// timer registered (it has been polled once), with the count of those that have.
    fn pending_sleeps(&self, n: usize, dur: Duration) -> Option<u64>;
    // The channel rows (`None` without channels), each the same workload as
    // `benches/chan.rs` (see `chan`), returning its checked sum.
    /// `n` round trips over two rendezvous channels.
    fn chan_pingpong(&self, n: u64) -> Option<u64>;
    /// `n` values through a 3-stage pipeline of capacity [`chan::CAP`].
    fn chan_pipeline(&self, n: u64) -> Option<u64>;
    /// `n` producers × [`FANIN_PER`] values into one consumer.
    fn chan_fanin(&self, n: u64) -> Option<u64>;
    /// `n` values from two producers, received by `select` over their two channels.
    fn chan_select(&self, n: u64) -> Option<u64>;
    /// Skynet over `n` leaves with a channel per node.
    fn chan_skynet(&self, n: u64) -> Option<u64>;
    /// `n` jobs through a pool of [`chan::POOL_WORKERS`] with per-job timeouts.
    fn chan_pool(&self, n: u64) -> Option<u64>;
}

/// Polls `sleep` once (which registers its timer), calls `registered`, then awaits it.
async fn registered_sleep<S: Future<Output = ()>>(sleep: S, registered: impl FnOnce()) {
    let mut sleep = pin!(sleep);
    std::future::poll_fn(|cx| {
        let _ = sleep.as_mut().poll(cx);
        Poll::Ready(())
    })
    .await;
    registered();
    sleep.await;
}

/// What the async rows count and wait with, the same for filch and tokio: a countdown of
/// `Latch` and a sum of what the tasks report (the checked result). Leaked (see [`leak`]).
type Tally = (Arc<Latch>, AtomicU64);

fn tally(n: usize) -> &'static Tally {
    leak((Latch::new(n), AtomicU64::new(0)))
}

/// Adds `k` to the sum and counts one task down.
fn report(st: &Tally, k: u64) {
    st.1.fetch_add(k, Relaxed);
    st.0.count_down();
}

/// Waits for the countdown and returns the sum.
fn settle(st: &Tally) -> u64 {
    st.0.wait();
    st.1.load(Relaxed)
}

// ---------------------------------------------------------------------------- filch

pub struct Filch(pub filch::Scheduler);

fn uts_filch<'a>(s: &filch::Scope<'a>, count: &'a AtomicU64, h: u64, root: Option<u64>) {
    count.fetch_add(1, Relaxed);
    for i in 0..uts_children(h, root) {
        let c = uts_child(h, i);
        s.spawn(move |s| uts_filch(s, count, c, None));
    }
}

/// State shared by the tasks of one spawn-N run, leaked so the tasks capture a plain
/// `&'static` (as Go's closures capture pointers) instead of cloning `Arc`s: the harness
/// should not add two contended reference-count RMWs per task. One small box per run, in
/// a short-lived child process.
fn leak<T>(v: T) -> &'static T {
    Box::leak(Box::new(v))
}

impl System for Filch {
    fn spawn_outside(&self, n: usize) -> u64 {
        let st = leak((filch::WaitGroup::new(), AtomicU64::new(0)));
        st.0.add(n as u64);
        for _ in 0..n {
            // Fire and forget, as Go's `go` and `rayon::spawn`: no handle to build or detach.
            self.0
                .spawn_detached(move || {
                    st.1.fetch_add(1, Relaxed);
                    st.0.done();
                })
                .unwrap();
        }
        st.0.wait();
        st.1.load(Relaxed)
    }
    fn spawn_inside(&self, n: usize) -> u64 {
        let st = leak((filch::WaitGroup::new(), AtomicU64::new(0)));
        st.0.add(n as u64);
        drop(self.0.spawn(move || {
            for _ in 0..n {
                filch::spawn_detached(move || {
                    st.1.fetch_add(1, Relaxed);
                    st.0.done();
                })
                .unwrap();
            }
        }));
        st.0.wait();
        st.1.load(Relaxed)
    }
    fn skynet(&self, n: u64) -> Option<u64> {
        Some(self.0.spawn(move || skynet_join_filch(0, n)).join().unwrap())
    }
    fn fib(&self, n: u64) -> Option<u64> {
        Some(self.0.spawn(move || fib_filch(n)).join().unwrap())
    }
    fn uts(&self, root: u64) -> Option<u64> {
        let count = AtomicU64::new(0);
        // On a worker, as rayon's `ThreadPool::scope` runs its body (`install` + `scope`):
        // `Scheduler::scope` runs the body on the calling thread, so the root's 10 000
        // spawns would all be spawns from outside.
        self.0.install(|| filch::scope(|s| uts_filch(s, &count, splitmix64(UTS_SEED), Some(root))));
        Some(count.into_inner())
    }
    fn small_tree(&self, n: u64) -> Option<u64> {
        Some((0..SMALL_TREE_REPEATS).map(|_| self.0.install(|| fib_filch(n))).sum())
    }
    fn parfor(&self, data: &mut [u64]) -> Option<u64> {
        self.0.for_each_chunk_mut(data, 1, |i, c| c[0] = work(i as u64));
        Some(checksum(data))
    }
    fn run_one(&self, f: Box<dyn FnOnce() + Send>) {
        self.0.spawn(f).join().unwrap();
    }
    fn skynet_async(&self, n: u64) -> Option<u64> {
        Some(self.0.spawn_async(skynet_async_filch(0, n)).join().unwrap())
    }
    fn spawn_many(&self, n: usize) -> Option<u64> {
        let st = tally(n);
        for _ in 0..n {
            self.0.spawn_async_detached(async move { report(st, 1) }).unwrap();
        }
        Some(settle(st))
    }
    fn ping_pong(&self, n: usize) -> Option<u64> {
        let st = tally(n);
        self.0
            .spawn_async_detached(async move {
                for _ in 0..n {
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
                        report(st, 1);
                    })
                    .unwrap();
                }
            })
            .unwrap();
        Some(settle(st))
    }
    fn yield_many(&self, n: usize) -> Option<u64> {
        let st = tally(n);
        for _ in 0..n {
            self.0
                .spawn_async_detached(async move {
                    let mut yields = 0;
                    for _ in 0..YIELDS_PER_TASK {
                        filch::future::yield_now().await;
                        yields += 1;
                    }
                    report(st, yields);
                })
                .unwrap();
        }
        Some(settle(st))
    }
    fn chained_spawn(&self, n: usize) -> Option<u64> {
        fn link(st: &'static Tally, left: usize) {
            if left == 0 {
                report(st, 0);
            } else {
                st.1.fetch_add(1, Relaxed);
                filch::spawn_async_detached(async move { link(st, left - 1) }).unwrap();
            }
        }
        let st = tally(1);
        self.0.spawn_async_detached(async move { link(st, n) }).unwrap();
        Some(settle(st))
    }
    fn sleep_many(&self, n: usize) -> Option<u64> {
        let st = tally(n);
        self.0
            .spawn_async_detached(async move {
                for _ in 0..n {
                    filch::spawn_async_detached(async move {
                        filch::time::sleep(SLEEP).await;
                        report(st, 1);
                    })
                    .unwrap();
                }
            })
            .unwrap();
        Some(settle(st))
    }
    fn pending_sleeps(&self, n: usize, dur: Duration) -> Option<u64> {
        let st = tally(n);
        for _ in 0..n {
            self.0.spawn_async_detached(registered_sleep(filch::time::sleep(dur), || report(st, 1))).unwrap();
        }
        Some(settle(st))
    }
    fn chan_pingpong(&self, n: u64) -> Option<u64> {
        Some(chan::pingpong_filch(&self.0, n))
    }
    fn chan_pipeline(&self, n: u64) -> Option<u64> {
        Some(chan::pipeline_filch(&self.0, n, chan::CAP))
    }
    fn chan_fanin(&self, n: u64) -> Option<u64> {
        Some(chan::fanin_filch(&self.0, n, FANIN_PER, chan::CAP))
    }
    fn chan_select(&self, n: u64) -> Option<u64> {
        Some(chan::select_filch(&self.0, n, chan::CAP))
    }
    fn chan_skynet(&self, n: u64) -> Option<u64> {
        Some(chan::skynet_filch(&self.0, n))
    }
    fn chan_pool(&self, n: u64) -> Option<u64> {
        Some(chan::pool_filch(&self.0, n, chan::POOL_WORKERS, chan::CAP))
    }
}

// ---------------------------------------------------------------------------- rayon

pub struct Rayon(pub rayon::ThreadPool);

fn uts_rayon<'a>(s: &rayon::Scope<'a>, count: &'a AtomicU64, h: u64, root: Option<u64>) {
    count.fetch_add(1, Relaxed);
    for i in 0..uts_children(h, root) {
        let c = uts_child(h, i);
        s.spawn(move |s| uts_rayon(s, count, c, None));
    }
}

impl System for Rayon {
    fn spawn_outside(&self, n: usize) -> u64 {
        let st: &'static (Arc<Latch>, AtomicU64) = leak((Latch::new(n), AtomicU64::new(0)));
        for _ in 0..n {
            self.0.spawn(move || {
                st.1.fetch_add(1, Relaxed);
                st.0.count_down();
            });
        }
        st.0.wait();
        st.1.load(Relaxed)
    }
    fn spawn_inside(&self, n: usize) -> u64 {
        let st: &'static (Arc<Latch>, AtomicU64) = leak((Latch::new(n), AtomicU64::new(0)));
        self.0.spawn(move || {
            for _ in 0..n {
                rayon::spawn(move || {
                    st.1.fetch_add(1, Relaxed);
                    st.0.count_down();
                });
            }
        });
        st.0.wait();
        st.1.load(Relaxed)
    }
    fn skynet(&self, n: u64) -> Option<u64> {
        let out = AtomicU64::new(0);
        self.0.scope(|s| skynet_scope_rayon(s, &out, 0, n));
        Some(out.into_inner())
    }
    fn fib(&self, n: u64) -> Option<u64> {
        Some(self.0.install(|| fib_rayon(n)))
    }
    fn uts(&self, root: u64) -> Option<u64> {
        let count = AtomicU64::new(0);
        self.0.scope(|s| uts_rayon(s, &count, splitmix64(UTS_SEED), Some(root)));
        Some(count.into_inner())
    }
    fn small_tree(&self, n: u64) -> Option<u64> {
        Some((0..SMALL_TREE_REPEATS).map(|_| self.0.install(|| fib_rayon(n))).sum())
    }
    fn parfor(&self, data: &mut [u64]) -> Option<u64> {
        self.0.install(|| data.par_iter_mut().enumerate().for_each(|(i, x)| *x = work(i as u64)));
        Some(checksum(data))
    }
    fn run_one(&self, f: Box<dyn FnOnce() + Send>) {
        let latch = Latch::new(1);
        let l = latch.clone();
        self.0.spawn(move || {
            f();
            l.count_down();
        });
        latch.wait();
    }
    fn skynet_async(&self, _n: u64) -> Option<u64> {
        None
    }
    fn spawn_many(&self, _n: usize) -> Option<u64> {
        None
    }
    fn ping_pong(&self, _n: usize) -> Option<u64> {
        None
    }
    fn yield_many(&self, _n: usize) -> Option<u64> {
        None
    }
    fn chained_spawn(&self, _n: usize) -> Option<u64> {
        None
    }
    fn sleep_many(&self, _n: usize) -> Option<u64> {
        None
    }
    fn pending_sleeps(&self, _n: usize, _dur: Duration) -> Option<u64> {
        None
    }
    fn chan_pingpong(&self, _n: u64) -> Option<u64> {
        None
    }
    fn chan_pipeline(&self, _n: u64) -> Option<u64> {
        None
    }
    fn chan_fanin(&self, _n: u64) -> Option<u64> {
        None
    }
    fn chan_select(&self, _n: u64) -> Option<u64> {
        None
    }
    fn chan_skynet(&self, _n: u64) -> Option<u64> {
        None
    }
    fn chan_pool(&self, _n: u64) -> Option<u64> {
        None
    }
}

// ---------------------------------------------------------------------------- tokio

pub struct Tokio(pub tokio::runtime::Runtime);

fn uts_tokio(count: Arc<AtomicU64>, latch: Arc<Latch>, pending: Arc<AtomicUsize>, h: u64, root: Option<u64>) {
    count.fetch_add(1, Relaxed);
    let k = uts_children(h, root);
    pending.fetch_add(k as usize, Relaxed);
    for i in 0..k {
        let c = uts_child(h, i);
        let (count, latch, pending) = (count.clone(), latch.clone(), pending.clone());
        tokio::spawn(async move { uts_tokio(count, latch, pending, c, None) });
    }
    if pending.fetch_sub(1, std::sync::atomic::Ordering::AcqRel) == 1 {
        latch.count_down();
    }
}

impl System for Tokio {
    fn spawn_outside(&self, n: usize) -> u64 {
        let ran = leak(AtomicU64::new(0));
        let handles: Vec<_> = (0..n)
            .map(|_| {
                self.0.spawn(async move {
                    ran.fetch_add(1, Relaxed);
                })
            })
            .collect();
        self.0.block_on(async {
            for h in handles {
                h.await.unwrap();
            }
        });
        ran.load(Relaxed)
    }
    fn spawn_inside(&self, n: usize) -> u64 {
        let ran = leak(AtomicU64::new(0));
        let outer = self.0.spawn(async move {
            let handles: Vec<_> = (0..n)
                .map(|_| {
                    tokio::spawn(async move {
                        ran.fetch_add(1, Relaxed);
                    })
                })
                .collect();
            for h in handles {
                h.await.unwrap();
            }
        });
        self.0.block_on(outer).unwrap();
        ran.load(Relaxed)
    }
    fn skynet(&self, n: u64) -> Option<u64> {
        Some(self.0.block_on(self.0.spawn(skynet_async_tokio(0, n))).unwrap())
    }
    fn fib(&self, _n: u64) -> Option<u64> {
        None
    }
    fn uts(&self, root: u64) -> Option<u64> {
        let count = Arc::new(AtomicU64::new(0));
        let latch = Latch::new(1);
        let pending = Arc::new(AtomicUsize::new(1));
        let (c, l, p) = (count.clone(), latch.clone(), pending.clone());
        self.0.spawn(async move { uts_tokio(c, l, p, splitmix64(UTS_SEED), Some(root)) });
        latch.wait();
        Some(count.load(Relaxed))
    }
    fn small_tree(&self, _n: u64) -> Option<u64> {
        None // no fork-join `join` in tokio
    }
    fn parfor(&self, _data: &mut [u64]) -> Option<u64> {
        None
    }
    fn run_one(&self, f: Box<dyn FnOnce() + Send>) {
        let h = self.0.spawn(async move { f() });
        self.0.block_on(h).unwrap();
    }
    fn skynet_async(&self, n: u64) -> Option<u64> {
        self.skynet(n)
    }
    fn spawn_many(&self, n: usize) -> Option<u64> {
        let st = tally(n);
        for _ in 0..n {
            // tokio has no handle-less spawn: the handle is dropped at once.
            drop(self.0.spawn(async move { report(st, 1) }));
        }
        Some(settle(st))
    }
    fn ping_pong(&self, n: usize) -> Option<u64> {
        let st = tally(n);
        drop(self.0.spawn(async move {
            for _ in 0..n {
                drop(tokio::spawn(async move {
                    let (ping_tx, ping_rx) = oneshot::channel::<()>();
                    let (pong_tx, pong_rx) = oneshot::channel::<()>();
                    drop(tokio::spawn(async move {
                        ping_rx.await.unwrap();
                        pong_tx.send(()).unwrap();
                    }));
                    ping_tx.send(()).unwrap();
                    pong_rx.await.unwrap();
                    report(st, 1);
                }));
            }
        }));
        Some(settle(st))
    }
    fn yield_many(&self, n: usize) -> Option<u64> {
        let st = tally(n);
        for _ in 0..n {
            drop(self.0.spawn(async move {
                let mut yields = 0;
                for _ in 0..YIELDS_PER_TASK {
                    tokio::task::yield_now().await;
                    yields += 1;
                }
                report(st, yields);
            }));
        }
        Some(settle(st))
    }
    fn chained_spawn(&self, n: usize) -> Option<u64> {
        fn link(st: &'static Tally, left: usize) {
            if left == 0 {
                report(st, 0);
            } else {
                st.1.fetch_add(1, Relaxed);
                drop(tokio::spawn(async move { link(st, left - 1) }));
            }
        }
        let st = tally(1);
        drop(self.0.spawn(async move { link(st, n) }));
        Some(settle(st))
    }
    fn sleep_many(&self, n: usize) -> Option<u64> {
        let st = tally(n);
        drop(self.0.spawn(async move {
            for _ in 0..n {
                drop(tokio::spawn(async move {
                    tokio::time::sleep(SLEEP).await;
                    report(st, 1);
                }));
            }
        }));
        Some(settle(st))
    }
    fn pending_sleeps(&self, n: usize, dur: Duration) -> Option<u64> {
        let st = tally(n);
        for _ in 0..n {
            // tokio's `sleep` must be created inside the runtime: in the task, not here.
            drop(
                self.0
                    .spawn(async move { registered_sleep(tokio::time::sleep(dur), || report(st, 1)).await }),
            );
        }
        Some(settle(st))
    }
    fn chan_pingpong(&self, n: u64) -> Option<u64> {
        Some(chan::pingpong_tokio(&self.0, n))
    }
    fn chan_pipeline(&self, n: u64) -> Option<u64> {
        Some(chan::pipeline_tokio(&self.0, n, chan::CAP))
    }
    fn chan_fanin(&self, n: u64) -> Option<u64> {
        Some(chan::fanin_tokio(&self.0, n, FANIN_PER, chan::CAP))
    }
    fn chan_select(&self, n: u64) -> Option<u64> {
        Some(chan::select_tokio(&self.0, n, chan::CAP))
    }
    fn chan_skynet(&self, n: u64) -> Option<u64> {
        Some(chan::skynet_tokio(&self.0, n))
    }
    fn chan_pool(&self, n: u64) -> Option<u64> {
        Some(chan::pool_tokio(&self.0, n, chan::POOL_WORKERS, chan::CAP))
    }
}

/// Idle cost: CPU ns burned during `window` right after a burst of spawns.
pub fn idle(sys: &dyn System, window: Duration) -> u64 {
    sys.spawn_outside(10_000);
    let t0 = cpu_nanos();
    std::thread::sleep(window);
    cpu_nanos() - t0
}

/// Idle cost with timers pending: `n` tasks each waiting on a sleep of
/// [`IDLE_TIMER_SLEEP`], every timer registered; CPU ns the process burns during `window`
/// (nothing is due in it). The window opens [`IDLE_TIMERS_SETTLE`] after the last timer is
/// registered, so it measures what pending timers cost rather than the end of the burst
/// that registered them (the `idle` row measures that). Returns (CPU ns, sleeps confirmed
/// pending), `None` without timers.
pub fn idle_timers(sys: &dyn System, n: usize, window: Duration) -> Option<(u64, u64)> {
    let pending = sys.pending_sleeps(n, IDLE_TIMER_SLEEP)?;
    std::thread::sleep(IDLE_TIMERS_SETTLE);
    let t0 = cpu_nanos();
    std::thread::sleep(window);
    Some((cpu_nanos() - t0, pending))
}

/// Wake latency: `trials` times, let every worker go idle, then run one task from
/// outside and time until it starts. Returns (p50, p99) in ns.
pub fn wake(sys: &dyn System, trials: usize) -> (u64, u64) {
    let mut samples = Vec::with_capacity(trials);
    for _ in 0..trials {
        sys.spawn_outside(1000);
        std::thread::sleep(Duration::from_millis(20));
        let started = Arc::new(Mutex::new(None));
        let s = started.clone();
        let t0 = Instant::now();
        sys.run_one(Box::new(move || *s.lock().unwrap() = Some(Instant::now())));
        let t1 = started.lock().unwrap().expect("the probe task ran");
        samples.push(t1.duration_since(t0).as_nanos() as u64);
    }
    samples.sort_unstable();
    (samples[samples.len() / 2], samples[samples.len() * 99 / 100])
}
