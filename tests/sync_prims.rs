//! WaitGroup and Semaphore: waiting from workers and plain threads, reuse, many waiters,
//! misuse errors, and the concurrency limit — all checked by counting, never by time.

use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::Arc;

use filch::{Scheduler, Semaphore, WaitGroup};

fn sched(workers: usize) -> Scheduler {
    Scheduler::builder().workers(workers).build().unwrap()
}

#[test]
fn wait_group_from_outside_and_inside_with_reuse() {
    let s = sched(2);
    let wg = WaitGroup::new();
    let hits = Arc::new(AtomicUsize::new(0));
    for round in 1..=3 {
        for _ in 0..1000 {
            wg.add(1);
            let (wg, hits) = (wg.clone(), hits.clone());
            s.spawn(move || {
                hits.fetch_add(1, Relaxed);
                wg.done();
            });
        }
        wg.wait();
        assert_eq!(hits.load(Relaxed), round * 1000);
    }
    // A task waits on a group whose members are other tasks (the waiter helps).
    let one = sched(1);
    let inner_hits = Arc::new(AtomicUsize::new(0));
    let ih = inner_hits.clone();
    one.spawn(move || {
        let wg = WaitGroup::new();
        for _ in 0..100 {
            wg.add(1);
            let (wg, ih) = (wg.clone(), ih.clone());
            filch::spawn(move || {
                ih.fetch_add(1, Relaxed);
                wg.done();
            });
        }
        wg.wait(); // on the only worker: must run the tasks itself
    })
    .join()
    .unwrap();
    assert_eq!(inner_hits.load(Relaxed), 100);
}

#[test]
fn wait_group_many_waiters_all_wake() {
    for _ in 0..50 {
        let wg = WaitGroup::new();
        wg.add(1);
        let woke = Arc::new(AtomicUsize::new(0));
        let waiters: Vec<_> = (0..4)
            .map(|_| {
                let (wg, woke) = (wg.clone(), woke.clone());
                std::thread::spawn(move || {
                    wg.wait();
                    woke.fetch_add(1, Relaxed);
                })
            })
            .collect();
        wg.done();
        for w in waiters {
            w.join().unwrap();
        }
        assert_eq!(woke.load(Relaxed), 4);
    }
}

/// The panic message of `f`, which must panic.
fn panic_message(f: impl FnOnce()) -> String {
    let p = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)).unwrap_err();
    p.downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| p.downcast_ref::<String>().cloned()).unwrap()
}

/// Misuse is a contract violation: it panics with a message naming the call, and leaves the
/// counter as it was.
#[test]
fn wait_group_misuse_panics_and_changes_nothing() {
    let wg = WaitGroup::new();
    assert_eq!(
        panic_message(|| wg.done()),
        "WaitGroup::done: negative counter (more done() calls than add())"
    );
    assert_eq!(wg.count(), 0);
    wg.add(2);
    assert_eq!(panic_message(|| wg.add(u64::MAX)), "WaitGroup::add: the counter would exceed 2^63 - 1");
    assert_eq!(wg.count(), 2);
    assert!(!wg.wait_timeout(std::time::Duration::from_millis(1)));
    wg.done();
    wg.done();
    assert!(wg.wait_timeout(std::time::Duration::ZERO));
}

/// The semaphore's limit is a contract too: past `MAX_PERMITS`, `new` and `add_permits`
/// panic and change nothing.
#[test]
fn semaphore_past_its_limit_panics_and_changes_nothing() {
    assert_eq!(
        panic_message(|| drop(Semaphore::new(u64::MAX))),
        "Semaphore::new: more than Semaphore::MAX_PERMITS permits"
    );
    let sem = Semaphore::new(Semaphore::MAX_PERMITS - 1);
    assert_eq!(
        panic_message(|| sem.add_permits(2)),
        "Semaphore::add_permits: more than Semaphore::MAX_PERMITS permits"
    );
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS - 1);
    sem.add_permits(1);
    assert_eq!(sem.available_permits(), Semaphore::MAX_PERMITS);
}

/// Tracks how many holders are inside at once.
struct Gauge {
    now: AtomicUsize,
    max: AtomicUsize,
}

impl Gauge {
    fn enter(&self) {
        let n = self.now.fetch_add(1, SeqCst) + 1;
        self.max.fetch_max(n, SeqCst);
    }
    fn leave(&self) {
        self.now.fetch_sub(1, SeqCst);
    }
}

#[test]
fn semaphore_limits_concurrency_on_workers_and_threads() {
    for (workers, limit) in [(1, 1), (2, 1), (4, 2), (4, 3)] {
        let s = sched(workers);
        let sem = Arc::new(Semaphore::new(limit));
        let gauge = Arc::new(Gauge { now: AtomicUsize::new(0), max: AtomicUsize::new(0) });
        let group = s.spawn_many(2000, {
            let (sem, gauge) = (sem.clone(), gauge.clone());
            move |i| {
                let _p = sem.acquire();
                gauge.enter();
                let mut x = i as u64;
                for _ in 0..200 {
                    x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                }
                gauge.leave();
                x
            }
        });
        // Plain threads compete too (they park).
        let threads: Vec<_> = (0..2)
            .map(|_| {
                let (sem, gauge) = (sem.clone(), gauge.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        let _p = sem.acquire_owned();
                        gauge.enter();
                        gauge.leave();
                    }
                })
            })
            .collect();
        assert!(group.join_all().into_iter().all(|r| r.is_ok()));
        for t in threads {
            t.join().unwrap();
        }
        assert!(gauge.max.load(SeqCst) <= limit as usize, "max {} > limit {limit}", gauge.max.load(SeqCst));
        assert_eq!(sem.available_permits(), limit);
    }
}

#[test]
fn semaphore_try_timeout_and_add() {
    let sem = Semaphore::new(1);
    let p = sem.try_acquire().unwrap();
    assert!(sem.try_acquire().is_none());
    assert!(sem.acquire_timeout(std::time::Duration::from_millis(1)).is_none());
    drop(p);
    assert!(sem.acquire_timeout(std::time::Duration::from_millis(1)).is_some());
    sem.add_permits(Semaphore::MAX_PERMITS - 1); // up to the limit; past it panics
    assert_eq!(sem.available_permits(), (1 << 63) - 1);
}

/// A released permit wakes a parked acquirer (no lost wake-up), many times over.
#[test]
fn semaphore_hand_off_between_threads() {
    let sem = Arc::new(Semaphore::new(0));
    let got = Arc::new(AtomicUsize::new(0));
    let takers: Vec<_> = (0..3)
        .map(|_| {
            let (sem, got) = (sem.clone(), got.clone());
            std::thread::spawn(move || {
                for _ in 0..1000 {
                    std::mem::forget(sem.acquire());
                    got.fetch_add(1, Relaxed);
                }
            })
        })
        .collect();
    for _ in 0..3000 {
        sem.add_permits(1);
    }
    for t in takers {
        t.join().unwrap();
    }
    assert_eq!(got.load(Relaxed), 3000);
    assert_eq!(sem.available_permits(), 0);
}

/// M6: waiters that are woken for other reasons — workers by the scheduler's own
/// wake-ups, plain threads by the stale tokens a `join` can leave on their parker — take
/// permits while still listed; they must leave the list, or the tail of the run strands a
/// waiter beside a free permit (the test would hang).
#[test]
fn semaphore_waiters_woken_for_other_reasons() {
    for _ in 0..20 {
        let s = sched(2);
        let sem = Arc::new(Semaphore::new(1));
        let gauge = Arc::new(Gauge { now: AtomicUsize::new(0), max: AtomicUsize::new(0) });
        let group = s.spawn_many(300, {
            let (sem, gauge) = (sem.clone(), gauge.clone());
            move |i| {
                let _p = sem.acquire();
                gauge.enter();
                // Spawning wakes idle workers, some of them parked in `acquire`.
                filch::spawn(move || std::hint::black_box(i));
                gauge.leave();
            }
        });
        let threads: Vec<_> = (0..3)
            .map(|_| {
                let (sem, gauge, handle) = (sem.clone(), gauge.clone(), s.handle());
                std::thread::spawn(move || {
                    for i in 0..100 {
                        // A join whose task finishes as we look may leave a token behind.
                        handle.spawn(move || std::hint::black_box(i)).join().unwrap();
                        let _p = sem.acquire();
                        gauge.enter();
                        gauge.leave();
                    }
                })
            })
            .collect();
        assert!(group.join_all().into_iter().all(|r| r.is_ok()));
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(gauge.max.load(SeqCst), 1);
        assert_eq!(sem.available_permits(), 1);
    }
}

/// Many tasks queued on one worker all wait for a one-permit semaphore while another
/// task holds it: each wait helps by running the next queued task, which waits in turn.
/// Before `MAX_NESTED_WAITS` this nested one frame per task and overflowed the worker's
/// stack (a 256 KiB stack here, so that unbounded nesting fails fast); now a worker
/// blocks past the bound, and every task runs once with at most one holder at a time.
#[test]
fn semaphore_queued_waiters_do_not_nest_without_bound() {
    const TASKS: usize = 20_000;
    let s = Scheduler::builder().workers(2).stack_size(256 * 1024).build().unwrap();
    let sem = Semaphore::new(1);
    let holders = AtomicUsize::new(0);
    let ran = AtomicUsize::new(0);
    s.scope(|sc| {
        for _ in 0..TASKS {
            sc.spawn(|_| {
                let _p = sem.acquire();
                assert_eq!(holders.fetch_add(1, Relaxed), 0, "two permit holders");
                // Hold the permit across some work, so that other tasks queue behind it.
                let mut x = 0u64;
                for i in 0..200u64 {
                    x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(i));
                }
                std::hint::black_box(x);
                holders.fetch_sub(1, Relaxed);
                ran.fetch_add(1, Relaxed);
            });
        }
    });
    assert_eq!(ran.load(Relaxed), TASKS);
    assert_eq!(sem.available_permits(), 1);
    let st = s.stats();
    assert_eq!(st.total.completed, TASKS as u64);
    // Informational: how often a worker blocked instead of nesting (timing-dependent).
    println!("blocked waits: {}", st.total.blocked_waits);
}

/// Waiters queued ahead of the task that releases them: every worker's helping wait nests
/// past `MAX_NESTED_WAITS`, but one worker must keep helping (never all of them block),
/// or the releasing task would sit in a queue that nobody runs.
#[test]
fn nested_waits_leave_one_worker_helping() {
    const WAITERS: usize = 200;
    let s = sched(2);
    let wg = WaitGroup::new();
    wg.add(1);
    let woke = Arc::new(AtomicUsize::new(0));
    let mut handles: Vec<_> = (0..WAITERS)
        .map(|_| {
            let (wg, woke) = (wg.clone(), woke.clone());
            s.spawn(move || {
                wg.wait();
                woke.fetch_add(1, Relaxed);
            })
        })
        .collect();
    let releaser = wg.clone();
    handles.push(s.spawn(move || releaser.done()));
    for h in handles {
        h.join().unwrap();
    }
    assert_eq!(woke.load(Relaxed), WAITERS);
}
