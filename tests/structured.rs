//! Structured concurrency: join, scope, parallel_for, for_each_chunk(_mut), spawn_many,
//! spawn_batch, TaskGroup and CancelToken. Every test checks exactly-once by counting;
//! none waits on time.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{Arc, Barrier};

use filch::{CancelToken, Scheduler, TaskError};

#[path = "../benches/common/workloads.rs"]
mod workloads;
use workloads::{fib_filch, skynet_scope_filch};

fn sched(workers: usize) -> Scheduler {
    Scheduler::builder().workers(workers).build().unwrap()
}

#[test]
fn join_computes_fib_from_outside_and_inside() {
    for workers in [1, 2, 4] {
        let s = sched(workers);
        assert_eq!(s.join(|| fib_filch(20), || fib_filch(15)), (6765, 610));
        assert_eq!(s.spawn(|| fib_filch(22)).join().unwrap(), 17711);
    }
}

#[test]
fn join_borrows_from_the_stack() {
    let s = sched(2);
    let mut v: Vec<u64> = (0..10_000).collect();
    let (l, r) = v.split_at_mut(5_000);
    s.join(|| l.iter_mut().for_each(|x| *x += 1), || r.iter_mut().for_each(|x| *x *= 2));
    assert_eq!(v[0], 1);
    assert_eq!(v[9_999], 19_998);
}

#[test]
fn join_runs_b_after_a_panics_and_reraises_a() {
    let s = sched(2);
    let b_ran = AtomicBool::new(false);
    let r = catch_unwind(AssertUnwindSafe(|| {
        s.join(|| panic!("a failed"), || b_ran.store(true, SeqCst));
    }));
    let p = r.unwrap_err();
    assert_eq!(p.downcast_ref::<&str>(), Some(&"a failed"));
    assert!(b_ran.load(SeqCst), "b must finish before the panic propagates");
    // The same on a worker, nested.
    let b_ran = Arc::new(AtomicBool::new(false));
    let b2 = b_ran.clone();
    let h = s.spawn(move || {
        filch::join(|| -> u8 { panic!("inner") }, move || b2.store(true, SeqCst));
    });
    assert_eq!(h.join().unwrap_err().panic_message(), Some("inner"));
    assert!(b_ran.load(SeqCst));
}

#[test]
fn join_reraises_b_panic() {
    let s = sched(2);
    let r = catch_unwind(AssertUnwindSafe(|| s.join(|| 1, || -> u8 { panic!("b failed") })));
    assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"b failed"));
    // The scheduler is still healthy.
    assert_eq!(s.join(|| fib_filch(10), || 2), (55, 2));
}

#[test]
fn join_on_a_shut_down_scheduler_runs_inline() {
    let s = sched(2);
    let h = s.handle();
    s.shutdown_timeout(std::time::Duration::from_secs(10)).unwrap();
    assert_eq!(h.join(|| 1, || 2), (1, 2));
    let n = AtomicUsize::new(0);
    h.scope(|sc| {
        for _ in 0..10 {
            sc.spawn(|_| {
                n.fetch_add(1, Relaxed);
            });
        }
    });
    assert_eq!(n.into_inner(), 10);
    let hits = AtomicUsize::new(0);
    h.parallel_for(0..100, |_| {
        hits.fetch_add(1, Relaxed);
    });
    assert_eq!(hits.into_inner(), 100);
    let g = h.spawn_many(3, |i| i);
    assert!(g.join_all().into_iter().all(|r| matches!(r, Err(TaskError::ShutDown))));
}

/// A join from a worker of another scheduler waits helping its own scheduler.
#[test]
fn join_across_schedulers() {
    let a = sched(2);
    let b = Arc::new(sched(2));
    let b2 = b.clone();
    let h = a.spawn(move || b2.join(|| fib_filch(15), || fib_filch(16)));
    assert_eq!(h.join().unwrap(), (610, 987));
}

#[test]
fn scope_skynet_counts_every_leaf_once() {
    for workers in [1, 2, 3] {
        let s = sched(workers);
        let out = AtomicU64::new(0);
        s.scope(|sc| skynet_scope_filch(sc, &out, 0, 100_000));
        assert_eq!(out.into_inner(), 4_999_950_000);
        // Each task is counted before its S3, so the count is complete once scope returns.
        assert_eq!(s.stats().total.completed, 111_110, "{workers} workers");
    }
}

/// Scope frames (S1's credit): a body running on a worker, tasks that spawn more children
/// than one credit reservation covers, a nested scope inside a task (its own frame, the
/// outer one restored after), and a task that panics after spawning (its unspent credit
/// still goes back). Every task runs once and the scope returns only after all of them.
#[test]
fn scope_frames_nest_spend_and_return_credit() {
    for workers in [1, 2, 3] {
        let s = sched(workers);
        let h = s.spawn(|| {
            let n = AtomicUsize::new(0);
            let n = &n;
            let r = catch_unwind(AssertUnwindSafe(|| {
                filch::scope(|sc| {
                    for i in 0..40 {
                        sc.spawn(move |sc| {
                            for _ in 0..40 {
                                sc.spawn(move |_| {
                                    n.fetch_add(1, Relaxed);
                                });
                            }
                            filch::scope(|inner| {
                                for _ in 0..20 {
                                    inner.spawn(move |_| {
                                        n.fetch_add(1, Relaxed);
                                    });
                                }
                            });
                            n.fetch_add(1, Relaxed);
                            if i == 7 {
                                panic!("seven");
                            }
                        });
                    }
                })
            }));
            (r.unwrap_err().downcast_ref::<&str>() == Some(&"seven"), n.load(Relaxed))
        });
        assert_eq!(h.join().unwrap(), (true, 40 + 40 * 40 + 40 * 20), "{workers} workers");
    }
}

#[test]
fn scope_more_tasks_than_pool_slots() {
    let s = Scheduler::builder().workers(2).pool_capacity(64).build().unwrap();
    let n = AtomicUsize::new(0);
    s.scope(|sc| {
        for _ in 0..10_000 {
            sc.spawn(|_| {
                n.fetch_add(1, Relaxed);
            });
        }
    });
    assert_eq!(n.into_inner(), 10_000);
    assert!(s.stats().total.heap_fallbacks > 0);
}

#[test]
fn scope_reraises_a_task_panic_after_the_others_finish() {
    let s = sched(2);
    let done = AtomicUsize::new(0);
    let r = catch_unwind(AssertUnwindSafe(|| {
        s.scope(|sc| {
            for i in 0..100 {
                let done = &done;
                sc.spawn(move |_| {
                    if i == 50 {
                        panic!("task 50");
                    }
                    done.fetch_add(1, Relaxed);
                });
            }
        })
    }));
    assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"task 50"));
    assert_eq!(done.into_inner(), 99);
}

#[test]
fn scope_body_panic_waits_for_tasks() {
    let s = sched(2);
    let done = AtomicUsize::new(0);
    let r = catch_unwind(AssertUnwindSafe(|| {
        s.scope(|sc| {
            for _ in 0..100 {
                sc.spawn(|_| {
                    done.fetch_add(1, Relaxed);
                });
            }
            panic!("body");
        })
    }));
    assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"body"));
    assert_eq!(done.into_inner(), 100);
}

#[test]
fn cancelled_scope_skips_and_reports() {
    let s = sched(2);
    let token = CancelToken::new();
    let ran = AtomicUsize::new(0);
    let (started, gate) = (Barrier::new(2), Barrier::new(2));
    let r = s.scope_with(&token, |sc| {
        // One task holds a worker until the cancel is in; the rest queue up behind.
        sc.spawn(|_| {
            started.wait();
            gate.wait();
        });
        started.wait();
        for _ in 0..1000 {
            sc.spawn(|_| {
                ran.fetch_add(1, Relaxed);
            });
        }
        token.cancel();
        gate.wait();
        for _ in 0..10 {
            sc.spawn(|_| unreachable!("spawned after cancel"));
        }
    });
    let skipped = r.unwrap_err().skipped();
    assert!(skipped >= 10);
    assert_eq!(ran.into_inner() + skipped, 1010);
}

#[test]
fn child_token_cancels_with_parent() {
    let parent = CancelToken::new();
    let child = parent.child();
    let grandchild = child.child();
    child.cancel();
    assert!(grandchild.is_cancelled() && !parent.is_cancelled());
    let other = parent.child();
    parent.cancel();
    assert!(other.is_cancelled());
}

#[test]
fn parallel_for_visits_each_index_once() {
    for workers in [1, 2, 4] {
        let s = sched(workers);
        for n in [0usize, 1, 7, 1000, 1 << 20] {
            let hits: Vec<AtomicU64> = (0..n).map(|_| AtomicU64::new(0)).collect();
            s.parallel_for(0..n, |i| {
                hits[i].fetch_add(1, Relaxed);
            });
            assert!(hits.iter().all(|h| h.load(Relaxed) == 1), "n = {n}");
        }
        // Inside a task, nested.
        let total = Arc::new(AtomicU64::new(0));
        let t = total.clone();
        s.spawn(move || {
            filch::parallel_for(0..100, |_| {
                filch::parallel_for(0..100, |j| {
                    t.fetch_add(j as u64, Relaxed);
                });
            });
        })
        .join()
        .unwrap();
        assert_eq!(total.load(Relaxed), 100 * 4950);
    }
}

#[test]
fn parallel_for_reraises_panic() {
    let s = sched(2);
    let r = catch_unwind(AssertUnwindSafe(|| {
        s.parallel_for(0..100_000, |i| {
            if i == 77_777 {
                panic!("index");
            }
        })
    }));
    assert_eq!(r.unwrap_err().downcast_ref::<&str>(), Some(&"index"));
    assert_eq!(s.join(|| 1, || 2), (1, 2));
}

#[test]
fn parallel_for_with_cancel_reports_skips_exactly() {
    let s = sched(2);
    let token = CancelToken::new();
    let visited = AtomicUsize::new(0);
    let r = s.parallel_for_with(&token, 0..1_000_000, |i| {
        if i == 1000 {
            token.cancel();
        }
        visited.fetch_add(1, Relaxed);
    });
    let skipped = r.unwrap_err().skipped();
    assert_eq!(visited.into_inner() + skipped, 1_000_000);
    let uncancelled = CancelToken::new();
    assert_eq!(s.parallel_for_with(&uncancelled, 0..10, |_| ()), Ok(()));
}

#[test]
fn for_each_chunk_covers_the_slice() {
    let s = sched(2);
    let data: Vec<u64> = (0..100_003).collect();
    let sum = AtomicU64::new(0);
    let chunks = AtomicUsize::new(0);
    s.for_each_chunk(&data, 1000, |i, c| {
        assert_eq!(c[0], i as u64 * 1000);
        sum.fetch_add(c.iter().sum::<u64>(), Relaxed);
        chunks.fetch_add(1, Relaxed);
    });
    assert_eq!(sum.into_inner(), 100_002 * 100_003 / 2);
    assert_eq!(chunks.into_inner(), 101);
    s.for_each_chunk(&data[..0], 5, |_, _| unreachable!());
    let zero =
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| s.for_each_chunk(&data, 0, |_, _| ())))
            .unwrap_err();
    assert_eq!(zero.downcast_ref::<String>().unwrap(), "for_each_chunk: chunk_len must be at least 1");
}

#[test]
fn for_each_chunk_mut_updates_every_element_once() {
    let s = sched(2);
    let mut agents = vec![0u32; 100_001];
    for step in 1..=5u32 {
        s.for_each_chunk_mut(&mut agents, 333, |_, c| c.iter_mut().for_each(|a| *a += 1));
        assert!(agents.iter().all(|&a| a == step));
    }
    let mut empty: [u8; 0] = [];
    let zero = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        s.for_each_chunk_mut(&mut empty, 0, |_, _| ());
    }))
    .unwrap_err();
    assert_eq!(zero.downcast_ref::<String>().unwrap(), "for_each_chunk_mut: chunk_len must be at least 1");
}

/// One-element chunks take their own walk: each index comes with its own element, once.
#[test]
fn one_element_chunks_pair_each_index_with_its_element() {
    let s = sched(2);
    let mut data: Vec<u64> = (0..200_001).collect();
    s.for_each_chunk_mut(&mut data, 1, |i, c| {
        assert_eq!(c.len(), 1);
        assert_eq!(c[0], i as u64);
        c[0] = c[0] * 2 + 1;
    });
    assert!(data.iter().enumerate().all(|(i, &x)| x == i as u64 * 2 + 1));
    let seen = AtomicU64::new(0);
    s.for_each_chunk(&data, 1, |i, c| {
        assert_eq!(c, [i as u64 * 2 + 1]);
        seen.fetch_add(1, Relaxed);
    });
    assert_eq!(seen.into_inner(), 200_001);
}

#[test]
fn spawn_many_results_in_order_from_outside_and_inside() {
    let s = sched(2);
    let out = s.spawn_many(10_000, |i| i * 2).join_all();
    assert!(out.into_iter().enumerate().all(|(i, r)| r.unwrap() == i * 2));
    let inner =
        s.spawn(|| filch::spawn_many(1000, |i| i).join_all().into_iter().map(Result::unwrap).sum::<usize>());
    assert_eq!(inner.join().unwrap(), 499_500);
    let stats = s.stats();
    assert_eq!(stats.total.spawned, 11_001);
}

#[test]
fn spawn_batch_with_panics_and_cancel() {
    let s = sched(1);
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let busy = s.spawn(move || {
        g.wait();
    });
    let group = s.spawn_batch((0..100).map(|i| {
        move || {
            if i % 10 == 0 {
                panic!("p{i}");
            }
            i
        }
    }));
    let cancelled = group.cancel();
    gate.wait();
    busy.join().unwrap();
    let results = group.join_all();
    let (mut ok, mut panicked, mut cancels) = (0, 0, 0);
    for (i, r) in results.into_iter().enumerate() {
        match r {
            Ok(v) => {
                assert_eq!(v, i);
                ok += 1
            }
            Err(TaskError::Panicked(_)) => panicked += 1,
            Err(TaskError::Cancelled) => cancels += 1,
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(cancels, cancelled);
    assert_eq!(ok + panicked + cancels, 100);
}

#[test]
fn spawn_batch_iterator_panic_publishes_what_was_built() {
    let s = sched(2);
    let ran = Arc::new(AtomicUsize::new(0));
    let r2 = ran.clone();
    let r = catch_unwind(AssertUnwindSafe(|| {
        s.spawn_batch((0..10).map(move |i| {
            if i == 5 {
                panic!("iterator");
            }
            let r = r2.clone();
            move || {
                r.fetch_add(1, Relaxed);
            }
        }))
    }));
    assert!(r.is_err());
    // Graceful shutdown runs everything queued; the five built tasks ran exactly once.
    s.shutdown_timeout(std::time::Duration::from_secs(30)).unwrap();
    assert_eq!(ran.load(Relaxed), 5);
}

/// A batch from outside whose iterator drops the scheduler part-way: the iterator runs
/// before the batch enters the scheduler, so the drop returns (it waited for its own
/// thread before) and both tasks are refused, each closure dropped once.
#[test]
fn spawn_batch_iterator_that_drops_its_scheduler_returns() {
    let s = sched(2);
    let h = s.handle();
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Counted(Arc<AtomicUsize>);
    impl Drop for Counted {
        fn drop(&mut self) {
            self.0.fetch_add(1, Relaxed);
        }
    }
    let mut s = Some(s);
    let d = dropped.clone();
    let group = h.spawn_batch((0..2).map(move |i| {
        if i == 1 {
            drop(s.take());
        }
        let c = Counted(d.clone());
        move || {
            let _c = c;
            i
        }
    }));
    for r in group.join_all() {
        assert!(matches!(r, Err(TaskError::ShutDown)), "{r:?}");
    }
    assert_eq!(dropped.load(Relaxed), 2);
}

/// A scope whose scheduler shuts down with a timeout mid-way: every task either ran once
/// or was dropped unrun and counted as skipped, and the scope still returns.
#[test]
fn scope_survives_timed_out_shutdown() {
    for _ in 0..20 {
        let s = Scheduler::builder().workers(2).build().unwrap();
        let h = s.handle();
        let ran = Arc::new(AtomicUsize::new(0));
        let r2 = ran.clone();
        let started = Arc::new(Barrier::new(2));
        let st = started.clone();
        let body = std::thread::spawn(move || {
            let token = CancelToken::new();
            h.scope_with(&token, |sc| {
                for i in 0..2000u64 {
                    let ran = &r2;
                    sc.spawn(move |_| {
                        let mut x = i;
                        for _ in 0..2000 {
                            x = std::hint::black_box(x.wrapping_mul(6364136223846793005).wrapping_add(1));
                        }
                        ran.fetch_add(1, Relaxed);
                    });
                    if i == 100 {
                        st.wait();
                    }
                }
            })
        });
        started.wait();
        let _ = s.shutdown_timeout(std::time::Duration::from_micros(100));
        let skipped = match body.join().unwrap() {
            Ok(()) => 0,
            Err(c) => c.skipped(),
        };
        assert_eq!(ran.load(Relaxed) + skipped, 2000);
    }
}

/// The new mechanisms together, on 3 workers with small stacks: a scope whose tasks pay
/// for their children from frame credit, where every child takes a two-permit semaphore
/// (so helping waits nest and some block past `MAX_NESTED_WAITS`), and every tenth child
/// first joins a grandchild through its handle. Every task runs once, never more than two
/// hold a permit, and the scope returns after all of them.
#[test]
fn scope_credit_with_nested_and_blocked_waits() {
    let s = Scheduler::builder().workers(3).stack_size(512 * 1024).build().unwrap();
    let sem = filch::Semaphore::new(2);
    let (ran, holders, max_holders) = (AtomicUsize::new(0), AtomicUsize::new(0), AtomicUsize::new(0));
    let (sem, ran, holders, max_holders) = (&sem, &ran, &holders, &max_holders);
    s.scope(|sc| {
        for i in 0..200usize {
            sc.spawn(move |sc| {
                for j in 0..50usize {
                    sc.spawn(move |_| {
                        // Joined before taking the permit: waiting while holding one is
                        // the hazard `Semaphore`'s docs warn about.
                        if (i + j) % 10 == 0 {
                            assert_eq!(filch::spawn(move || i * j).join().unwrap(), i * j);
                        }
                        let _p = sem.acquire();
                        let now = holders.fetch_add(1, Relaxed) + 1;
                        max_holders.fetch_max(now, Relaxed);
                        // Hold it across some work, so that other children queue up.
                        let mut x = (i * j) as u64;
                        for k in 0..500u64 {
                            x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(k));
                        }
                        std::hint::black_box(x);
                        holders.fetch_sub(1, Relaxed);
                        ran.fetch_add(1, Relaxed);
                    });
                }
                ran.fetch_add(1, Relaxed);
            });
        }
    });
    assert_eq!(ran.load(Relaxed), 200 + 200 * 50);
    assert!(max_holders.load(Relaxed) <= 2);
    assert_eq!(sem.available_permits(), 2);
    // Informational: how often a wait blocked past the bound (timing-dependent).
    println!("blocked waits: {}", s.stats().total.blocked_waits);
}

/// `install` runs borrowing code on a worker and returns its value, from outside, from a
/// worker of the same scheduler (in place) and of another one; re-raises a panic; runs
/// inline on a shut-down scheduler.
#[test]
fn install_returns_the_value_of_code_run_on_a_worker() {
    let s = sched(2);
    let data: Vec<u64> = (1..=100).collect();
    let (sum, on_worker) = s.install(|| {
        let (a, b) = filch::join(|| data[..50].iter().sum::<u64>(), || data[50..].iter().sum::<u64>());
        (a + b, filch::current().is_some())
    });
    assert_eq!((sum, on_worker), (5050, true));
    // From a worker of the same scheduler: in place, on the same thread.
    let same = s.spawn(|| {
        let me = std::thread::current().id();
        filch::current().unwrap().install(move || std::thread::current().id() == me)
    });
    assert!(same.join().unwrap());
    // From a worker of another scheduler.
    let other = Arc::new(sched(1));
    let o2 = other.clone();
    assert_eq!(s.spawn(move || o2.install(|| fib_filch(20))).join().unwrap(), 6765);
    // A panic comes back to the caller.
    let r = catch_unwind(AssertUnwindSafe(|| s.install(|| -> u8 { panic!("in install") })));
    assert_eq!(*r.unwrap_err().downcast::<&str>().unwrap(), "in install");
    // Shut down: runs here.
    let handle = s.handle();
    drop(s);
    let here = std::thread::current().id();
    assert_eq!(handle.install(|| std::thread::current().id()), here);
}

/// `join` nested 10,000 deep fits a default (2 MiB) worker stack: the part of `join`'s
/// frame that every level keeps is small (DESIGN §11, "Stack use"), about 190 bytes.
#[test]
fn join_nests_ten_thousand_deep_on_a_default_stack() {
    fn deep(n: u32) -> u32 {
        if n == 0 {
            return 0;
        }
        let (a, b) = filch::join(|| deep(n - 1), || 1u32);
        a + b
    }
    // The claim is about release builds with the default stack. A debug build's frames are
    // several times larger, and AddressSanitizer's (`make sanitize` sets FILCH_TEST_ASAN)
    // carry redzones and fake frames: those runs get 64 MiB to check the rest.
    let big = cfg!(debug_assertions) || std::env::var_os("FILCH_TEST_ASAN").is_some();
    for workers in [1, 2] {
        let mut b = filch::Scheduler::builder().workers(workers);
        if big {
            b = b.stack_size(64 << 20);
        }
        let s = b.build().unwrap();
        assert_eq!(s.install(|| deep(10_000)), 10_000);
    }
}
