//! Taking results: `JoinSet` (completion order, exactly once), `TaskGroup` from handles,
//! scoped handles with a value, and the data-parallel forms that return values
//! (`parallel_reduce`, `parallel_map`, `parallel_sort_unstable`). Every completion-order
//! test orders the tasks with channels, never with sleeps.
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use std::sync::{Arc, Barrier};

use filch::{JoinSet, Scheduler, TaskError, TaskGroup};

fn sched(workers: usize) -> Scheduler {
    Scheduler::builder().workers(workers).build().unwrap()
}

/// A deterministic pseudo-random sequence (splitmix64).
fn rng(seed: u64) -> impl FnMut() -> u64 {
    let mut s = seed;
    move || {
        s = s.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = s;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
}

// ---- JoinSet ----

/// Async tasks, each waiting on its own gate, released in a shuffled order: the set yields
/// each task right after its gate opens, so in exactly the release order. (Async tasks wait
/// without holding a worker, so every task can be waiting at once on two workers.)
#[test]
fn join_set_yields_in_completion_order() {
    let s = sched(2);
    for round in 0..20u64 {
        let n = 12;
        let mut set = JoinSet::new();
        let mut gates = Vec::new();
        for i in 0..n {
            let (tx, rx) = async_channel::bounded::<()>(1);
            gates.push(tx);
            set.insert(s.spawn_async(async move {
                rx.recv().await.unwrap();
                i
            }));
        }
        let mut order: Vec<usize> = (0..n).collect();
        let mut r = rng(round);
        for k in (1..n).rev() {
            order.swap(k, (r() % (k as u64 + 1)) as usize);
        }
        for &i in &order {
            gates[i].send_blocking(()).unwrap();
            assert_eq!(set.join_next().unwrap().unwrap(), i, "round {round}: the released task comes next");
        }
        assert!(set.join_next().is_none() && set.is_empty());
    }
}

/// The same with closure tasks and `join_next_async` from an async task on a worker: the
/// set's waker is the task's, woken by each completion.
#[test]
fn join_set_async_take_in_completion_order() {
    let s = sched(2);
    let (release, gate) = std::sync::mpsc::channel::<()>();
    let order = s.block_on(async move {
        let mut set = JoinSet::new();
        set.insert(filch::spawn(move || {
            gate.recv().unwrap();
            "slow"
        }));
        set.insert(filch::spawn(|| "fast"));
        let first = set.join_next_async().await.unwrap().unwrap();
        release.send(()).unwrap();
        let second = set.join_next_async().await.unwrap().unwrap();
        assert!(set.join_next_async().await.is_none());
        (first, second)
    });
    assert_eq!(order, ("fast", "slow"));
}

/// Exactly once, under load: many tasks of every kind (closures, futures, panicking ones,
/// handles that finished before they were inserted), on one and two workers, taken from
/// outside, from a worker (which must run the tasks itself when it is the only one), and
/// through `join_next_async`; the set is refilled while it drains, so slots are reused.
/// Every id comes out once, and a panic comes out as its `TaskError`.
#[test]
fn join_set_yields_every_result_exactly_once() {
    type Take<'a> = &'a mut dyn FnMut(&mut JoinSet<usize>) -> Option<Result<usize, TaskError>>;
    fn run(set: &mut JoinSet<usize>, n: usize, take: Take<'_>) {
        let mut seen = vec![0u8; n];
        let mut panics = 0;
        let mut next = 0;
        let mut taken = 0;
        while taken < n {
            // Keep up to 64 in flight: the slots are reused as results come out.
            while next < n && set.len() < 64 {
                let i = next;
                next += 1;
                let h = match i % 4 {
                    0 => filch::spawn(move || i),
                    1 => filch::spawn_async(async move {
                        filch::future::yield_now().await;
                        i
                    }),
                    2 => filch::spawn(move || if i % 8 == 2 { panic!("task {i}") } else { i }),
                    _ => {
                        let h = filch::spawn(move || i);
                        while !h.is_finished() {
                            filch::yield_now();
                        }
                        h
                    }
                };
                set.insert(h);
            }
            match take(set).expect("results remain") {
                Ok(i) => seen[i] += 1,
                Err(e) => {
                    let m = e.panic_message().unwrap().to_string();
                    let i: usize = m.strip_prefix("task ").unwrap().parse().unwrap();
                    seen[i] += 1;
                    panics += 1;
                }
            }
            taken += 1;
        }
        assert!(take(set).is_none());
        assert!(seen.iter().all(|&c| c == 1), "every result exactly once");
        assert_eq!(panics, n.div_ceil(8));
    }
    let n = 3000;
    // From outside, blocking (the free functions spawn on the global scheduler).
    run(&mut JoinSet::new(), n, &mut |s| s.join_next());
    for workers in [1, 2] {
        let s = sched(workers);
        // From a worker, blocking (`install` runs it on one).
        let mut set = JoinSet::new();
        s.install(|| run(&mut set, n, &mut |s| s.join_next()));
        // Awaited inside an async task.
        s.block_on(async {
            let mut set = JoinSet::new();
            let mut pending = Vec::new();
            for i in 0..n {
                pending.push(filch::spawn_async(async move { i }));
            }
            set.extend(pending);
            let mut seen = vec![0u8; n];
            while let Some(r) = set.join_next_async().await {
                seen[r.unwrap()] += 1;
            }
            assert!(seen.iter().all(|&c| c == 1));
        });
    }
}

/// `try_join_next` never waits; `abort_all` stops what has not started; `detach_all` and
/// dropping the set let the tasks run to the end; a refused spawn yields `ShutDown`.
#[test]
fn join_set_abort_detach_and_refused() {
    let s = sched(1);
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let (started_tx, started) = std::sync::mpsc::channel();
    let mut set = JoinSet::new();
    set.insert(s.spawn(move || {
        started_tx.send(()).unwrap();
        g.wait();
        0
    }));
    started.recv().unwrap(); // the only worker is held
    for i in 1..=3 {
        set.insert(s.spawn(move || i));
    }
    assert!(set.try_join_next().is_none(), "nothing finished: the worker is held");
    set.abort_all();
    gate.wait();
    let mut ok = 0;
    let mut cancelled = 0;
    while let Some(r) = set.join_next() {
        match r {
            Ok(_) => ok += 1,
            Err(TaskError::Cancelled) => cancelled += 1,
            Err(e) => panic!("unexpected {e:?}"),
        }
    }
    assert_eq!((ok, cancelled), (1, 3), "the running task finished, the queued ones were cancelled");

    let ran = Arc::new(AtomicUsize::new(0));
    let wg = filch::WaitGroup::new();
    let mut set = JoinSet::new();
    for _ in 0..10 {
        let (ran, wg) = (ran.clone(), wg.clone());
        wg.add(1);
        set.insert(s.spawn(move || {
            ran.fetch_add(1, Relaxed);
            wg.done();
        }));
    }
    set.detach_all();
    assert!(set.is_empty() && set.join_next().is_none());
    for _ in 0..10 {
        let (ran, wg) = (ran.clone(), wg.clone());
        wg.add(1);
        set.spawn(move || {
            ran.fetch_add(1, Relaxed);
            wg.done();
        });
    }
    drop(set);
    wg.wait();
    assert_eq!(ran.load(Relaxed), 20, "detached tasks still run");

    let handle = s.handle();
    drop(s);
    let mut set = JoinSet::new();
    set.insert(handle.spawn(|| 1));
    assert!(matches!(set.join_next(), Some(Err(TaskError::ShutDown))));
}

/// Handles from anywhere make a `TaskGroup` (in order) or a `JoinSet` (as they finish).
#[test]
fn groups_and_sets_from_existing_handles() {
    let a = sched(1);
    let b = sched(2);
    let group: TaskGroup<u32> =
        (0..4).map(|i| if i % 2 == 0 { a.spawn(move || i) } else { b.spawn(move || i) }).collect();
    assert_eq!(group.join_all().into_iter().map(Result::unwrap).collect::<Vec<_>>(), [0, 1, 2, 3]);
    let group = TaskGroup::from(vec![a.spawn_async(async { 5 }), b.spawn(|| 6)]);
    let set = JoinSet::from(group);
    let mut got: Vec<u32> = set.join_all().into_iter().map(Result::unwrap).collect();
    got.sort();
    assert_eq!(got, [5, 6]);
}

// ---- Scoped handles ----

/// Counts drops, to check that every value is dropped exactly once.
#[derive(Debug)]
struct Tracked(Arc<AtomicUsize>, u64);

impl Drop for Tracked {
    fn drop(&mut self) {
        self.0.fetch_add(1, Relaxed);
    }
}

#[test]
fn scoped_handles_return_values_from_outside_and_from_workers() {
    for workers in [1, 2] {
        let s = sched(workers);
        let data: Vec<u64> = (0..10_000).collect();
        // From the calling thread.
        let total = s.scope(|sc| {
            let hs: Vec<_> =
                data.chunks(1000).map(|c| sc.spawn_with_handle(move |_| c.iter().sum::<u64>())).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        });
        assert_eq!(total, 49_995_000);
        // Nested, joined inside tasks on a worker (with one worker, the join runs them).
        fn tree(sc: &filch::Scope<'_>, lo: u64, hi: u64) -> u64 {
            if hi - lo <= 64 {
                return (lo..hi).sum();
            }
            let mid = (lo + hi) / 2;
            let left = sc.spawn_with_handle(move |sc| tree(sc, lo, mid));
            let right = tree(sc, mid, hi);
            left.join().unwrap() + right
        }
        let total = s.install(|| filch::scope(|sc| tree(sc, 0, 100_000)));
        assert_eq!(total, 4_999_950_000);
    }
}

/// Panics: a joined one comes back as an error and `scope` returns normally; one whose
/// handle was dropped (before or after the task finished) is re-raised by `scope`. Values
/// of dropped handles are dropped exactly once. A cancelled scope's handle joins to
/// `Cancelled`.
#[test]
fn scoped_handle_panics_drops_and_cancellation() {
    let s = sched(2);
    let r = s.scope(|sc| sc.spawn_with_handle(|_| -> u8 { panic!("joined") }).join());
    assert_eq!(r.unwrap_err().panic_message(), Some("joined"));

    // Dropped before the task finished: the task hands its panic to the scope.
    let gate = Barrier::new(2);
    let p = catch_unwind(AssertUnwindSafe(|| {
        s.scope(|sc| {
            let h = sc.spawn_with_handle(|_| -> u8 {
                gate.wait();
                panic!("dropped early")
            });
            drop(h);
            gate.wait();
        })
    }))
    .unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"dropped early"));

    // Dropped after it finished: the handle hands the panic to the scope.
    let p = catch_unwind(AssertUnwindSafe(|| {
        s.scope(|sc| {
            let h = sc.spawn_with_handle(|_| -> u8 { panic!("dropped late") });
            while !h.is_finished() {
                std::thread::yield_now();
            }
            drop(h);
        })
    }))
    .unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"dropped late"));

    let drops = Arc::new(AtomicUsize::new(0));
    let n = 2000;
    let joined = s.scope(|sc| {
        let mut sum = 0;
        for i in 0..n {
            let d = drops.clone();
            let h = sc.spawn_with_handle(move |_| Tracked(d, i));
            if i % 2 == 0 {
                sum += h.join().unwrap().1;
            } // odd: dropped unjoined, finished or not
        }
        sum
    });
    assert_eq!(joined, (0..n).filter(|i| i % 2 == 0).sum::<u64>());
    assert_eq!(drops.load(Relaxed), n as usize, "every value dropped exactly once");

    // A task spawned into a cancelled scope is dropped unrun: its handle says so.
    let token = filch::CancelToken::new();
    token.cancel();
    let mut joined = None;
    let r = s.scope_with(&token, |sc| joined = Some(sc.spawn_with_handle(|_| 1).join()));
    assert!(matches!(joined, Some(Err(TaskError::Cancelled))));
    assert_eq!(r.unwrap_err().skipped(), 1);
}

// ---- reduce, map, sort ----

const LENGTHS: [usize; 9] = [0, 1, 2, 3, 7, 1000, 4097, 100_003, 1_000_001];

#[test]
fn reduce_matches_sequential_for_every_length() {
    for workers in [1, 2, 3] {
        let s = sched(workers);
        for n in LENGTHS {
            let v: Vec<u64> = (0..n as u64).map(|i| i.wrapping_mul(0x9E37_79B9) % 1000).collect();
            let seq: u64 = v.iter().map(|x| x * x).sum();
            assert_eq!(s.parallel_reduce(&v, || 0, |x| x * x, |a, b| a + b), seq, "n = {n}");
            assert_eq!(s.install(|| filch::parallel_reduce(&v, || 0, |x| x * x, |a, b| a + b)), seq);
            let range_sum = s.parallel_reduce(3..3 + n, || 0u64, |i| i as u64, |a, b| a + b);
            assert_eq!(range_sum, (3..3 + n as u64).sum::<u64>());
            // Order is kept: concatenation is associative but not commutative.
            let concat = s.parallel_reduce(
                0..n.min(5000),
                Vec::new,
                |i| vec![i],
                |mut a, b| {
                    a.extend(b);
                    a
                },
            );
            assert_eq!(concat, (0..n.min(5000)).collect::<Vec<_>>());
        }
    }
}

#[test]
fn map_matches_sequential_for_every_length() {
    for workers in [1, 2] {
        let s = sched(workers);
        for n in LENGTHS {
            let v: Vec<u32> = (0..n as u32).collect();
            let out = s.parallel_map(&v, |&x| u64::from(x) * 3);
            assert_eq!(out, v.iter().map(|&x| u64::from(x) * 3).collect::<Vec<_>>(), "n = {n}");
            let strings = s.parallel_map(0..n.min(20_000), |i| i.to_string());
            assert!(strings.iter().enumerate().all(|(i, t)| *t == i.to_string()));
            let zsts: Vec<()> = s.parallel_map(0..n, |_| ());
            assert_eq!(zsts.len(), n);
        }
    }
}

/// A panic in `f` propagates after the other parts stopped, and every element made so
/// far is dropped exactly once (none leaked, none twice).
#[test]
fn map_panic_drops_each_made_element_once() {
    let s = sched(2);
    for bad in [0usize, 1, 777, 99_999] {
        let made = AtomicUsize::new(0);
        let dropped = Arc::new(AtomicUsize::new(0));
        let r = catch_unwind(AssertUnwindSafe(|| {
            s.parallel_map(0..100_000, |i| {
                if i == bad {
                    panic!("bad element");
                }
                made.fetch_add(1, Relaxed);
                Tracked(dropped.clone(), i as u64)
            })
        }));
        assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"bad element"));
        assert_eq!(dropped.load(Relaxed), made.load(Relaxed), "bad = {bad}");
    }
    let r = catch_unwind(AssertUnwindSafe(|| {
        s.parallel_reduce(0..10_000, || 0, |i| if i == 5000 { panic!("r") } else { i }, |a, b| a + b)
    }));
    assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"r"));
}

fn sorted_copy(v: &[u64]) -> Vec<u64> {
    let mut w = v.to_vec();
    w.sort_unstable();
    w
}

#[test]
fn sort_matches_std_on_every_shape() {
    let mut r = rng(7);
    let mut shapes: Vec<(&str, Vec<u64>)> = Vec::new();
    for n in LENGTHS.into_iter().chain([2_000_000]) {
        shapes.push(("random", (0..n).map(|_| r()).collect()));
        shapes.push(("few distinct", (0..n).map(|_| r() % 4).collect()));
    }
    let n = 300_001;
    shapes.push(("sorted", (0..n).collect()));
    shapes.push(("reversed", (0..n).rev().collect()));
    shapes.push(("all equal", vec![42; n as usize]));
    shapes.push(("organ pipe", (0..n).map(|i| i.min(n - i)).collect()));
    shapes.push(("sawtooth", (0..n).map(|i| i % 1000).collect()));
    for workers in [1, 2, 4] {
        let s = sched(workers);
        for (name, v) in &shapes {
            let want = sorted_copy(v);
            let mut got = v.clone();
            s.parallel_sort_unstable(&mut got);
            assert!(got == want, "{name}, n = {}, {workers} workers", v.len());
            let mut got = v.clone();
            s.install(|| filch::parallel_sort_unstable_by(&mut got, |a, b| b.cmp(a)));
            assert!(got.iter().eq(want.iter().rev()), "{name} descending");
        }
    }
}

/// A comparison that panics part way: the panic reaches the caller, and the slice is still
/// a permutation of its elements (nothing lost, nothing duplicated).
#[test]
fn sort_panic_leaves_a_permutation() {
    let s = sched(2);
    let mut r = rng(3);
    let v: Vec<u64> = (0..500_000).map(|_| r()).collect();
    let want = sorted_copy(&v);
    for limit in [10usize, 1_000_000, 5_000_000] {
        let calls = AtomicUsize::new(0);
        let mut got = v.clone();
        let p = catch_unwind(AssertUnwindSafe(|| {
            s.parallel_sort_unstable_by(&mut got, |a, b| {
                if calls.fetch_add(1, Relaxed) == limit {
                    panic!("comparison {limit}");
                }
                a.cmp(b)
            })
        }));
        assert!(p.is_err());
        assert_eq!(sorted_copy(&got), want, "a permutation after a panic at {limit}");
    }
}
