//! Stress tests of async tasks and timers, bounded by counts and never by sleeps: a
//! million futures woken from outside threads and from tasks on the workers; a hundred
//! thousand sleeps of random lengths; aborts and shutdown while futures are pending.
//!
//! Every future has an id with its own counters (completions, drops), so each test asserts
//! exactly-once for every single future, and that every `JoinHandle` resolves to the result
//! that matches what happened to its future. Each test also checks that the scheduler's
//! shared state is freed once the scheduler and every handle are gone: it is freed exactly
//! when every task, pool slot or heap, has been freed (the orphan protocol,
//! `runtime/shared.rs`), and it is observed through a guard that its panic handler owns.
//! Which futures are woken by whom, sleep how long, or get aborted is a fixed function of
//! the id (a splitmix64 hash), so only the interleaving varies between runs.
#![cfg(not(loom))]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::thread;
use std::time::{Duration, Instant};

use filch::time::sleep;
use filch::{JoinHandle, Scheduler, TaskError};

// ---------------------------------------------------------------------------------------
// Shared helpers

/// splitmix64's finalizer: a fixed, well-mixed hash of an id.
fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// A fixed pseudo-random number for `id`, below `n`; `salt` keeps decisions independent.
fn pick(n: u64, salt: u64, id: usize) -> u64 {
    mix(mix(salt) ^ id as u64) % n
}

/// `n` in a release build, under AddressSanitizer too (`make sanitize`: the whole file
/// takes about 4 s there); a twentieth in a debug build.
fn scaled(n: usize) -> usize {
    if cfg!(debug_assertions) {
        n / 20
    } else {
        n
    }
}

/// Per-id counters, one byte each.
fn counters(n: usize) -> Arc<[AtomicU8]> {
    (0..n).map(|_| AtomicU8::new(0)).collect()
}

/// Asserts every counter is `want`, naming the first id that is not.
fn assert_all(what: &str, counts: &[AtomicU8], want: u8) {
    if let Some((id, c)) = counts.iter().enumerate().find(|(_, c)| c.load(SeqCst) != want) {
        panic!("{what}: id {id} counted {} (want {want})", c.load(SeqCst));
    }
}

/// Set when dropped. The scheduler's panic handler owns one: it is dropped with the
/// scheduler's shared state, which is freed once the last task is.
struct FreedFlag(Arc<AtomicBool>);

impl Drop for FreedFlag {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// A scheduler with `workers` workers and a `pool`-slot pool (more futures in flight than
/// slots: the rest are heap tasks), and the flag its shared state's drop sets.
fn sched(workers: usize, pool: usize) -> (Scheduler, Arc<AtomicBool>) {
    let freed = Arc::new(AtomicBool::new(false));
    let guard = FreedFlag(freed.clone());
    let s = Scheduler::builder()
        .workers(workers)
        .pin(false)
        .pool_capacity(pool)
        .panic_handler(move |p| {
            // No future here panics; a task's panic would also fail its join.
            let _owned = &guard;
            drop(p);
        })
        .build()
        .unwrap();
    (s, freed)
}

// ---------------------------------------------------------------------------------------
// Gates: a hand-written future whose waker another thread or task takes and wakes.

/// One future's gate: `open` once its opener opened it; `waker` is what the future's last
/// pending poll registered; `registered` is set once the first one did.
#[derive(Default)]
struct Gate {
    open: AtomicBool,
    registered: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    /// Opens the gate and wakes the registered waker, if any (by value). Returns whether
    /// it woke one.
    fn open(&self) -> bool {
        self.open.store(true, SeqCst);
        let w = self.waker.lock().unwrap().take();
        w.map(Waker::wake).is_some()
    }

    fn is_registered(&self) -> bool {
        self.registered.load(SeqCst)
    }
}

/// What every gated future shares: the gates and the per-id counters.
struct Gates {
    gates: Box<[Gate]>,
    /// How often each future returned `Ready`.
    completions: Arc<[AtomicU8]>,
    /// How often each future was dropped.
    drops: Arc<[AtomicU8]>,
}

impl Gates {
    fn new(n: usize) -> Arc<Gates> {
        Arc::new(Gates {
            gates: (0..n).map(|_| Gate::default()).collect(),
            completions: counters(n),
            drops: counters(n),
        })
    }
}

/// `Pending` until its gate is open, then `Ready(id)`. Registers its waker before checking
/// the gate (under the gate's lock), so an opening can never fall between the two.
struct Gated {
    id: usize,
    gates: Arc<Gates>,
}

impl Future for Gated {
    type Output = usize;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        let g = &self.gates.gates[self.id];
        if !g.open.load(SeqCst) {
            {
                let mut slot = g.waker.lock().unwrap();
                if !slot.as_ref().is_some_and(|w| w.will_wake(cx.waker())) {
                    *slot = Some(cx.waker().clone());
                }
            }
            g.registered.store(true, SeqCst);
            if !g.open.load(SeqCst) {
                return Poll::Pending;
            }
        }
        self.gates.completions[self.id].fetch_add(1, SeqCst);
        Poll::Ready(self.id)
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        self.gates.drops[self.id].fetch_add(1, SeqCst);
    }
}

// ---------------------------------------------------------------------------------------
// A million futures, woken from three outside threads and from tasks on the workers.

/// Who opens gate `id`: 0–2, that outside thread; 3, an opener task on a worker.
fn opener_of(id: usize) -> u64 {
    pick(4, 1, id)
}

/// Whether gate `id`'s opener waits for the future to register its waker before opening
/// (a real wake), or opens at once (racing its first poll). One in eight races.
fn opens_at_once(id: usize) -> bool {
    pick(8, 2, id) == 0
}

/// A million gated futures on two workers, spawned round by round (20,000 in flight, far
/// more than the 4,096-slot pool holds: most are heap tasks) from the test thread. Three
/// outside threads open the gates assigned to them; the rest are opened by one opener
/// task per round, an async task on a worker that yields between its openings, so its
/// wakes come from a worker and land on that worker's deque. Each opener waits for the
/// future to register first (a real wake: the future may be running, or idle), except one
/// in eight, which opens at once (racing the first poll). Every future completes exactly
/// once and is dropped exactly once; every handle joins to its own id; the stats balance
/// (`live == 0`, `completed == spawned`); and once the scheduler is dropped its shared
/// state is freed, so every task's memory was.
#[test]
fn million_futures_woken_from_threads_and_workers_exactly_once() {
    let total = scaled(1_000_000);
    const ROUND: usize = 20_000;
    let (s, freed) = sched(2, 4096);
    let gates = Gates::new(total);
    let wakes = Arc::new(AtomicU64::new(0));

    let openers: Vec<_> = (0..3u64)
        .map(|k| {
            let (gates, wakes) = (gates.clone(), wakes.clone());
            thread::spawn(move || {
                for id in (0..total).filter(|&id| opener_of(id) == k) {
                    let g = &gates.gates[id];
                    if !opens_at_once(id) {
                        // Spawned round by round: the wait ends once the test thread
                        // reached this id's round.
                        while !g.is_registered() {
                            thread::yield_now();
                        }
                    }
                    if g.open() {
                        wakes.fetch_add(1, Relaxed);
                    }
                }
            })
        })
        .collect();

    let mut opener_tasks = 0u64;
    for start in (0..total).step_by(ROUND) {
        let ids = start..(start + ROUND).min(total);
        let handles: Vec<JoinHandle<usize>> =
            ids.clone().map(|id| s.spawn_async(Gated { id, gates: gates.clone() })).collect();
        let (g, w) = (gates.clone(), wakes.clone());
        let opener = s.spawn_async(async move {
            for id in ids.filter(|&id| opener_of(id) == 3) {
                if !opens_at_once(id) {
                    while !g.gates[id].is_registered() {
                        filch::future::yield_now().await;
                    }
                }
                if g.gates[id].open() {
                    w.fetch_add(1, Relaxed);
                }
            }
        });
        opener_tasks += 1;
        for (k, h) in handles.into_iter().enumerate() {
            assert_eq!(h.join().unwrap(), start + k, "a handle joined to another future's output");
        }
        opener.join().unwrap();
    }
    for o in openers {
        o.join().unwrap();
    }

    assert_all("completions", &gates.completions, 1);
    assert_all("future drops", &gates.drops, 1);
    let st = s.stats();
    let spawned = total as u64 + opener_tasks;
    assert_eq!(st.total.spawned, spawned, "{st}");
    assert_eq!(st.total.completed, spawned, "{st}");
    assert_eq!((st.total.cancelled, st.total.abandoned, st.total.panicked), (0, 0, 0), "{st}");
    assert_eq!(st.live, 0, "{st}");
    // Nothing to assert about how many openings found a waker (that depends on timing),
    // but a run where none did would not have tested wakes at all.
    assert!(wakes.load(Relaxed) > 0, "no opening woke a registered future");
    drop(s);
    drop(gates);
    assert!(freed.load(SeqCst), "the scheduler's state outlived its tasks: a task was never freed");
}

// ---------------------------------------------------------------------------------------
// A hundred thousand sleeps.

/// 100,000 sleeps of 0–20 ms (a fixed pseudo-random length per id, some zero) on two
/// workers: 90,000 in async tasks, which register on their worker's timer wheel, and
/// 10,000 awaited together inside `Scheduler::block_on` on two outside threads, which
/// register on the wheels in turn and are fired by the workers. Each sleep's await returns
/// exactly once, and never before the sleep's deadline (checked with `Instant::now()` after
/// the await: a correctness check, not a timing one). Afterwards the scheduler's state is
/// freed (no timer entry kept a task alive).
#[test]
fn hundred_thousand_sleeps_fire_once_and_never_early() {
    let total = scaled(100_000);
    let outside = total / 10;
    let (s, freed) = sched(2, 4096);
    let done = counters(total);
    let early = Arc::new(AtomicUsize::new(0));
    let length = |id: usize| Duration::from_micros(pick(20_001, 3, id));

    // One sleep: awaits it, counts its completion, checks the deadline.
    let one = {
        let (done, early) = (done.clone(), early.clone());
        move |id: usize| {
            let (done, early) = (done.clone(), early.clone());
            async move {
                let sleep = sleep(length(id));
                let deadline = sleep.deadline();
                sleep.await;
                if Instant::now() < deadline {
                    early.fetch_add(1, SeqCst);
                }
                done[id].fetch_add(1, SeqCst);
            }
        }
    };

    let blockers: Vec<_> = (0..2)
        .map(|k| {
            let (h, one) = (s.handle(), one.clone());
            thread::spawn(move || {
                let sleeps: Vec<_> = (0..outside).filter(|id| id % 2 == k).map(&one).collect();
                h.block_on(futures::future::join_all(sleeps));
            })
        })
        .collect();
    let handles: Vec<_> = (outside..total).map(|id| s.spawn_async(one(id))).collect();
    for h in handles {
        h.join().unwrap();
    }
    for b in blockers {
        b.join().unwrap();
    }

    assert_eq!(early.load(SeqCst), 0, "a sleep ended before its deadline");
    assert_all("sleep completions", &done, 1);
    assert_eq!(s.stats().live, 0);
    drop(s);
    assert!(freed.load(SeqCst), "the scheduler's state outlived its tasks: a task was never freed");
}

// ---------------------------------------------------------------------------------------
// Aborts and shutdown with futures pending.

/// What a future of the abort/shutdown test does.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Waits on its gate, which an outside thread may open during the shutdown.
    Gated,
    /// Sleeps 0–2 ms (usually done before the shutdown) or an hour (never done).
    Sleeping,
    /// Loops on `yield_now` for ever: always queued or running.
    Yielding,
}

fn kind_of(id: usize) -> Kind {
    match pick(3, 4, id) {
        0 => Kind::Gated,
        1 => Kind::Sleeping,
        _ => Kind::Yielding,
    }
}

/// Counts its drop and, once its inner future returns, its completion.
struct Tracked {
    id: usize,
    inner: Pin<Box<dyn Future<Output = ()> + Send>>,
    completions: Arc<[AtomicU8]>,
    drops: Arc<[AtomicU8]>,
}

impl Future for Tracked {
    type Output = usize;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<usize> {
        match self.inner.as_mut().poll(cx) {
            Poll::Ready(()) => {
                self.completions[self.id].fetch_add(1, SeqCst);
                Poll::Ready(self.id)
            }
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.drops[self.id].fetch_add(1, SeqCst);
    }
}

/// Rounds of 3,000 pending futures on two workers (a 1,024-slot pool: most are heap
/// tasks): gated ones, sleeping ones (a few ms, or an hour) and ones that yield for ever.
/// A fixed fifth of them is aborted from the test thread; half of those are joined before
/// the shutdown (a future that cannot finish joins to `Cancelled`). Then, while an outside
/// thread opens half of the gates and aborts another fifth, the scheduler is dropped (odd
/// rounds) or shut down with a timeout (even rounds; the workers never sit in a closure,
/// so it returns `Ok`). Per future: dropped exactly once; completed at most once; its join
/// is `Ok(id)` exactly when it completed, `Cancelled` only if an abort of it returned
/// `true`, and otherwise `ShutDown`; a future that never finishes never joins `Ok`. Then
/// the scheduler's state is freed.
#[test]
fn aborts_and_shutdown_drop_each_pending_future_once() {
    let rounds = if cfg!(debug_assertions) { 4 } else { 20 };
    let n = 3000;
    for round in 0..rounds {
        let (s, freed) = sched(2, 1024);
        let gates = Gates::new(n);
        let (completions, drops) = (counters(n), counters(n));
        let aborted: Arc<[AtomicBool]> = (0..n).map(|_| AtomicBool::new(false)).collect();
        let salt = 10 + round as u64;

        let mut handles: Vec<Option<JoinHandle<usize>>> = (0..n)
            .map(|id| {
                let inner: Pin<Box<dyn Future<Output = ()> + Send>> = match kind_of(id) {
                    Kind::Gated => {
                        let g = Gated { id, gates: gates.clone() };
                        Box::pin(async move {
                            g.await;
                        })
                    }
                    Kind::Sleeping => Box::pin(sleep(sleep_length(salt, id))),
                    Kind::Yielding => Box::pin(async {
                        loop {
                            filch::future::yield_now().await;
                        }
                    }),
                };
                let t = Tracked { id, inner, completions: completions.clone(), drops: drops.clone() };
                Some(s.spawn_async(t))
            })
            .collect();

        // A fifth aborted now; half of those joined at once, before the shutdown: nothing
        // opens a gate yet, so unless a short sleep finished first, they are `Cancelled`.
        for id in (0..n).filter(|&id| pick(5, salt + 2, id) == 0) {
            let won = handles[id].as_ref().unwrap().abort();
            aborted[id].store(won, SeqCst);
            if pick(2, salt + 3, id) == 0 {
                let r = handles[id].take().unwrap().join();
                if won && !finishes(kind_of(id), salt, id, &gates) {
                    assert!(
                        matches!(r, Err(TaskError::Cancelled)),
                        "aborted future {id} joined {:?}",
                        r.err()
                    );
                }
                check_join(id, r, &completions, &aborted, salt, &gates);
            }
        }

        // During the shutdown: half the gates opened, another fifth aborted.
        let handles = Arc::new(handles);
        let racer = {
            let (handles, gates, aborted) = (handles.clone(), gates.clone(), aborted.clone());
            thread::spawn(move || {
                for id in 0..n {
                    if kind_of(id) == Kind::Gated && pick(2, salt + 4, id) == 0 {
                        gates.gates[id].open();
                    }
                    if pick(5, salt + 5, id) == 1 {
                        if let Some(h) = &handles[id] {
                            if h.abort() {
                                aborted[id].store(true, SeqCst);
                            }
                        }
                    }
                }
            })
        };
        if round % 2 == 0 {
            s.shutdown_timeout(Duration::from_secs(60)).expect("no worker is inside a closure");
        } else {
            drop(s);
        }
        racer.join().unwrap();
        let handles = Arc::try_unwrap(handles).unwrap_or_else(|_| panic!("the racer is done"));
        for (id, h) in handles.into_iter().enumerate() {
            if let Some(h) = h {
                check_join(id, h.join(), &completions, &aborted, salt, &gates);
            }
        }
        assert_all("future drops", &drops, 1);
        drop(gates);
        assert!(freed.load(SeqCst), "round {round}: the scheduler's state outlived its tasks");
    }
}

/// A sleeping future's length: half of them 0–2 ms, the rest an hour.
fn sleep_length(salt: u64, id: usize) -> Duration {
    if pick(2, salt, id) == 0 {
        Duration::from_millis(pick(3, salt + 1, id))
    } else {
        Duration::from_secs(3600)
    }
}

/// Whether future `id` can finish at all: a gate someone opened, or a short sleep.
fn finishes(kind: Kind, salt: u64, id: usize, gates: &Gates) -> bool {
    match kind {
        Kind::Gated => gates.gates[id].open.load(SeqCst),
        Kind::Sleeping => sleep_length(salt, id) < Duration::from_secs(1),
        Kind::Yielding => false,
    }
}

/// The join of future `id` matches what happened to it: `Ok(id)` exactly when it
/// completed (which it can only if it can finish), `Cancelled` only after an abort of it
/// returned `true`, `ShutDown` only if it did not complete.
fn check_join(
    id: usize,
    r: Result<usize, TaskError>,
    completions: &[AtomicU8],
    aborted: &[AtomicBool],
    salt: u64,
    gates: &Gates,
) {
    let done = completions[id].load(SeqCst);
    match r {
        Ok(v) => {
            assert_eq!(v, id, "a handle joined to another future's output");
            assert_eq!(done, 1, "future {id} joined Ok without completing");
            assert!(finishes(kind_of(id), salt, id, gates), "future {id} cannot finish, yet joined Ok");
        }
        Err(TaskError::Cancelled) => {
            assert!(aborted[id].load(SeqCst), "future {id} joined Cancelled but no abort of it won");
            assert_eq!(done, 0, "future {id} completed, yet joined Cancelled");
        }
        Err(TaskError::ShutDown) => assert_eq!(done, 0, "future {id} completed, yet joined ShutDown"),
        Err(e) => panic!("future {id}: unexpected {e:?}"),
    }
}
