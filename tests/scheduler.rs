//! The scheduler's public behaviour: spawn/join, panics, cancellation, limits, shutdown,
//! hooks and statistics. No sleeps as synchronization: tests wait on barriers, channels
//! and joins.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::time::Duration;

use filch::{Idle, Scheduler, SpawnErrorKind, TaskError};

fn sched(workers: usize) -> Scheduler {
    Scheduler::builder().workers(workers).pin(false).build().unwrap()
}

#[test]
fn spawn_and_join_values() {
    let s = sched(2);
    let hs: Vec<_> = (0..1000u64).map(|i| s.spawn(move || i * 2)).collect();
    let sum: u64 = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 999 * 1000);
}

#[test]
fn builder_rejects_bad_settings_with_named_errors() {
    let cases: Vec<(filch::Builder, &str)> = vec![
        (Scheduler::builder().workers(0), "workers"),
        (Scheduler::builder().workers(filch::MAX_WORKERS + 1), "workers"),
        (Scheduler::builder().pool_capacity(1000), "pool_capacity"),
        (Scheduler::builder().pool_capacity(8), "pool_capacity"),
        (Scheduler::builder().deque_capacity(100), "deque_capacity"),
        (Scheduler::builder().deque_capacity(4), "deque_capacity"),
        (Scheduler::builder().stack_size(100), "stack_size"),
        (Scheduler::builder().thread_name("a\0b"), "thread_name"),
    ];
    for (b, setting) in cases {
        let e = b.build().unwrap_err();
        assert!(e.to_string().contains(setting), "{e} should name {setting}");
    }
}

#[test]
fn a_panicking_task_reports_to_its_joiner_and_the_worker_survives() {
    let s = sched(1);
    let h = s.spawn(|| -> u32 { panic!("kaboom") });
    let e = h.join().unwrap_err();
    assert!(e.is_panic());
    assert_eq!(e.panic_message(), Some("kaboom"));
    assert_eq!(s.spawn(|| 7).join().unwrap(), 7, "the only worker still runs tasks");
    let st = s.stats();
    assert_eq!(st.total.panicked, 1);
    assert_eq!(st.total.completed, 2);
}

#[test]
fn a_detached_panic_goes_to_the_panic_handler() {
    let (tx, rx) = mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    let s = Scheduler::builder()
        .workers(1)
        .pin(false)
        .panic_handler(move |p| {
            let msg = p.downcast_ref::<&str>().map(|s| s.to_string()).unwrap_or_default();
            tx.lock().unwrap().send(msg).unwrap();
        })
        .build()
        .unwrap();
    drop(s.spawn(|| panic!("detached")));
    assert_eq!(rx.recv().unwrap(), "detached");
}

#[test]
fn cancel_before_start_never_runs_and_joins_cancelled() {
    let s = sched(1);
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let busy = s.spawn(move || g.wait());
    let ran = Arc::new(AtomicUsize::new(0));
    let dropped = Arc::new(AtomicUsize::new(0));
    struct Probe(Arc<AtomicUsize>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let (r, p) = (ran.clone(), Probe(dropped.clone()));
    // The only worker is busy until the barrier, so this task cannot have started.
    let queued = s.spawn(move || {
        let _p = p;
        r.fetch_add(1, Ordering::SeqCst);
    });
    assert!(queued.cancel());
    assert!(!queued.cancel(), "a second cancel loses");
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "the closure's captures are dropped at cancel");
    assert!(queued.is_finished());
    gate.wait();
    busy.join().unwrap();
    assert!(matches!(queued.join(), Err(TaskError::Cancelled)));
    s.shutdown_timeout(Duration::from_secs(30)).unwrap();
    assert_eq!(ran.load(Ordering::SeqCst), 0);
    assert_eq!(dropped.load(Ordering::SeqCst), 1);
}

#[test]
fn cancel_after_finish_loses() {
    let s = sched(1);
    let h = s.spawn(|| 5);
    while !h.is_finished() {
        std::thread::yield_now();
    }
    assert!(!h.cancel());
    assert_eq!(h.join().unwrap(), 5);
}

#[test]
fn join_timeout_gives_the_handle_back() {
    let s = sched(1);
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let h = s.spawn(move || {
        g.wait();
        11
    });
    let h = h.join_timeout(Duration::from_millis(1)).unwrap_err();
    gate.wait();
    assert_eq!(h.join().unwrap(), 11);
}

#[test]
fn try_spawn_hands_the_closure_back_when_full_or_too_large() {
    let s = Scheduler::builder().workers(1).pin(false).pool_capacity(64).build().unwrap();
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let busy = s.try_spawn(move || g.wait()).unwrap();
    let mut held = Vec::new();
    let refused = loop {
        match s.try_spawn(|| 1u8) {
            Ok(h) => held.push(h),
            Err(e) => break e,
        }
        assert!(held.len() < 64, "a 64-slot pool cannot hold more than 64 tasks");
    };
    assert_eq!(refused.kind(), SpawnErrorKind::PoolFull);
    assert_eq!((refused.into_inner())(), 1, "the closure comes back unrun");
    let big = [0u8; 4096];
    let e = s.try_spawn(move || big.len()).unwrap_err();
    assert_eq!(e.kind(), SpawnErrorKind::TooLarge);
    // `spawn` never fails: it falls back to the heap.
    let fallback = s.spawn(|| 2u8);
    gate.wait();
    busy.join().unwrap();
    assert_eq!(fallback.join().unwrap(), 2);
    assert!(held.into_iter().all(|h| h.join().unwrap() == 1));
    assert!(s.stats().total.heap_fallbacks >= 1);
}

/// Spawning from outside into a full pool while the only worker is held by a task that
/// waits for the spawner: the spawns past the first 4096 heap tasks wait a little for a
/// free slot, find none, and still fall back to the heap, so the loop ends (an unbounded
/// wait would hang here) and every task runs once.
#[test]
fn spawning_from_outside_into_a_full_pool_with_the_workers_held_still_returns() {
    let s = Scheduler::builder().workers(1).pin(false).pool_capacity(64).build().unwrap();
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let busy = s.spawn(move || g.wait());
    let ran = Arc::new(AtomicUsize::new(0));
    const N: usize = 10_000;
    for _ in 0..N {
        let ran = ran.clone();
        s.spawn_detached(move || {
            ran.fetch_add(1, Ordering::Relaxed);
        })
        .unwrap();
    }
    gate.wait();
    busy.join().unwrap();
    s.shutdown_timeout(Duration::from_secs(60)).unwrap();
    assert_eq!(ran.load(Ordering::Relaxed), N);
}

#[test]
fn slots_freed_outside_the_workers_stay_within_a_workers_reach() {
    // A 128-slot pool: the threads outside the workers share one cache of up to 64 free
    // slots. A worker that finds its own cache and the global stack empty must still reach
    // those (it flushes that cache) before it reports the pool full.
    let s = Scheduler::builder().workers(1).pin(false).pool_capacity(128).build().unwrap();
    for round in 0..3 {
        // Tasks spawned, finished and freed from this thread: a handle dropped after its
        // task finished holds the last reference, so the slot is freed here, into the
        // shared cache.
        let handles: Vec<_> = (0..32).map(|i| s.try_spawn(move || i).unwrap()).collect();
        for h in &handles {
            while !h.is_finished() {
                std::thread::yield_now();
            }
        }
        drop(handles);
        // Now, on the worker, as many tasks at once as the pool holds, each kept alive by
        // its handle until all are spawned.
        let handle = s.handle();
        let reached = s
            .spawn(move || {
                let mut held = Vec::new();
                while let Ok(h) = handle.try_spawn(|| ()) {
                    held.push(h);
                    if held.len() == 128 {
                        break;
                    }
                }
                held
            })
            .join()
            .unwrap();
        // One slot is the spawning task's own.
        assert_eq!(reached.len(), 127, "round {round}: free slots out of a worker's reach");
        // Every one of them finished before the next round's spawns from here.
        for h in reached {
            h.join().unwrap();
        }
    }
}

#[test]
fn spawn_after_shutdown_is_refused_without_losing_the_closure() {
    let s = sched(2);
    let h = s.handle();
    drop(s);
    let e = h.try_spawn(|| 3).unwrap_err();
    assert_eq!(e.kind(), SpawnErrorKind::ShutDown);
    assert_eq!((e.into_inner())(), 3);
    let dropped = Arc::new(AtomicUsize::new(0));
    let d = dropped.clone();
    struct Probe(Arc<AtomicUsize>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let p = Probe(d);
    let jh = h.spawn(move || drop(p));
    assert!(matches!(jh.join(), Err(TaskError::ShutDown)));
    assert_eq!(dropped.load(Ordering::SeqCst), 1, "a refused closure is dropped exactly once");
}

#[test]
fn drop_runs_queued_work_and_joins_threads() {
    let counter = Arc::new(AtomicUsize::new(0));
    let stopped = Arc::new(AtomicUsize::new(0));
    let st = stopped.clone();
    let s = Scheduler::builder().workers(2).pin(false).on_thread_stop(move |_| {
        st.fetch_add(1, Ordering::SeqCst);
    });
    let s = s.build().unwrap();
    for _ in 0..10_000 {
        let c = counter.clone();
        drop(s.spawn(move || {
            c.fetch_add(1, Ordering::Relaxed);
        }));
    }
    drop(s);
    assert_eq!(counter.load(Ordering::SeqCst), 10_000);
    assert_eq!(stopped.load(Ordering::SeqCst), 2, "both workers exited before drop returned");
}

#[test]
fn shutdown_timeout_abandons_queued_tasks_exactly_once() {
    let s = sched(1);
    let gate = Arc::new(Barrier::new(2));
    let g = gate.clone();
    let (started_tx, started_rx) = mpsc::channel();
    let busy = s.spawn(move || {
        started_tx.send(()).unwrap();
        g.wait();
    });
    // The worker must be inside `busy` before the timeout, or shutdown could abandon it.
    started_rx.recv().unwrap();
    let drops = Arc::new(AtomicUsize::new(0));
    struct Probe(Arc<AtomicUsize>);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }
    let queued: Vec<_> = (0..100)
        .map(|_| {
            let p = Probe(drops.clone());
            s.spawn(move || drop(p))
        })
        .collect();
    // The only worker is blocked on the barrier: the timeout must expire.
    let err = s.shutdown_timeout(Duration::from_millis(1)).unwrap_err();
    assert_eq!(err.still_running, 1);
    gate.wait();
    drop(busy);
    for h in queued {
        // Either it ran before the timeout was noticed or it was dropped unrun.
        match h.join() {
            Ok(()) | Err(TaskError::ShutDown) => {}
            Err(e) => panic!("unexpected {e}"),
        }
    }
    assert_eq!(drops.load(Ordering::SeqCst), 100, "every capture dropped exactly once");
}

#[test]
fn hooks_names_and_worker_count() {
    let started = Arc::new(Mutex::new(Vec::new()));
    let st = started.clone();
    let s = Scheduler::builder()
        .workers(3)
        .pin(false)
        .thread_name("hooked")
        .stack_size(256 * 1024)
        .idle(Idle::Park { spins: 1, yields: 1 })
        .on_thread_start(move |i| st.lock().unwrap().push(i))
        .build()
        .unwrap();
    assert_eq!(s.num_workers(), 3);
    let names: Vec<String> = (0..30)
        .map(|_| s.spawn(|| std::thread::current().name().unwrap().to_string()))
        .map(|h| h.join().unwrap())
        .collect();
    assert!(names.iter().all(|n| n.starts_with("hooked-")));
    drop(s);
    let mut started = started.lock().unwrap().clone();
    started.sort();
    assert_eq!(started, vec![0, 1, 2]);
}

#[test]
fn nested_spawn_and_join_on_workers_does_not_deadlock() {
    fn fib(n: u64) -> u64 {
        if n < 2 {
            return n;
        }
        let a = filch::spawn(move || fib(n - 1));
        let b = fib(n - 2);
        a.join().unwrap() + b
    }
    let s = sched(2);
    assert_eq!(s.spawn(|| fib(20)).join().unwrap(), 6765);
    // A single worker must help rather than block.
    let one = sched(1);
    assert_eq!(one.spawn(|| fib(15)).join().unwrap(), 610);
}

#[test]
fn current_and_free_spawn() {
    assert!(filch::current().is_none());
    let s = sched(2);
    let inside = s.spawn(|| filch::current().map(|h| h.num_workers())).join().unwrap();
    assert_eq!(inside, Some(2));
    assert_eq!(filch::spawn(|| 40 + 2).join().unwrap(), 42, "global default scheduler");
    assert!(!filch::yield_now(), "not a worker");
}

#[test]
fn stats_add_up_and_display() {
    let s = sched(2);
    let hs: Vec<_> = (0..500)
        .map(|i| {
            s.spawn(move || {
                if i % 50 == 0 {
                    panic!("p")
                }
            })
        })
        .collect();
    let panics = hs.into_iter().filter(|_| true).map(|h| h.join()).filter(|r| r.is_err()).count();
    assert_eq!(panics, 10);
    let st = s.stats();
    assert_eq!(st.total.spawned, 500);
    assert_eq!(st.total.completed, 500);
    assert_eq!(st.total.panicked, 10);
    assert_eq!(st.live, 0);
    assert_eq!(st.workers.len(), 2);
    let text = st.to_string();
    assert!(text.contains("spawned") && text.contains("worker 1") && text.contains("live tasks: 0"));
}

#[test]
fn idle_modes_all_run_work() {
    for idle in [Idle::Spin, Idle::Yield, Idle::park()] {
        let s = Scheduler::builder().workers(2).pin(false).idle(idle).build().unwrap();
        let hs: Vec<_> = (0..2000u64).map(|i| s.spawn(move || i)).collect();
        assert_eq!(hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>(), 1999 * 1000);
    }
}

#[test]
fn handles_may_outlive_their_scheduler() {
    let s = sched(2);
    let hs: Vec<_> = (0..100u32).map(|i| s.spawn(move || i)).collect();
    drop(s);
    // The pool outlives the scheduler until the last handle frees its slot.
    assert_eq!(hs.into_iter().map(|h| h.join().unwrap()).sum::<u32>(), 4950);
}

#[test]
fn a_full_deque_spills_to_the_injector_and_nothing_is_lost() {
    let s = Scheduler::builder().workers(2).pin(false).deque_capacity(16).build().unwrap();
    let total = s
        .spawn(|| {
            let hs: Vec<_> = (0..1000u64).map(|i| filch::spawn(move || i)).collect();
            hs.into_iter().map(|h| h.join().unwrap()).sum::<u64>()
        })
        .join()
        .unwrap();
    assert_eq!(total, 999 * 500);
    assert!(s.stats().total.spills > 0);
}

/// `spawn_detached` from outside and from inside a task, on one and on two workers (one
/// worker puts its deque in sole-owner mode): every task runs exactly once, the counters
/// add up, and tasks too large for a slot or beyond the pool's capacity fall back to the
/// heap rather than failing.
#[test]
fn spawn_detached_runs_each_task_once() {
    for workers in [1, 2] {
        let s = Scheduler::builder().workers(workers).pin(false).pool_capacity(256).build().unwrap();
        const OUTSIDE: usize = 500;
        const INSIDE: usize = 2000; // more than the pool holds: some go to the heap
        let runs: Arc<Vec<AtomicUsize>> =
            Arc::new((0..OUTSIDE + INSIDE + 1).map(|_| AtomicUsize::new(0)).collect());
        for i in 0..OUTSIDE {
            let r = runs.clone();
            s.spawn_detached(move || {
                r[i].fetch_add(1, Ordering::Relaxed);
            })
            .unwrap();
        }
        let r = runs.clone();
        s.spawn(move || {
            for i in OUTSIDE..OUTSIDE + INSIDE {
                let r = r.clone();
                filch::spawn_detached(move || {
                    r[i].fetch_add(1, Ordering::Relaxed);
                })
                .unwrap();
            }
            let big = [7u8; filch::TASK_INLINE_BYTES + 1];
            let r = r.clone();
            filch::spawn_detached(move || {
                r[OUTSIDE + INSIDE].fetch_add(big.len() - filch::TASK_INLINE_BYTES, Ordering::Relaxed);
            })
            .unwrap();
        })
        .join()
        .unwrap();
        let stats = s.stats();
        drop(s); // graceful: drains every queued task
        let bad: Vec<_> = runs.iter().enumerate().filter(|(_, c)| c.load(Ordering::Relaxed) != 1).collect();
        assert!(bad.is_empty(), "{workers} workers: tasks run other than once: {bad:?}");
        assert!(stats.total.heap_fallbacks >= 1, "{workers} workers: the oversize task used the heap");
        assert_eq!(stats.total.spawned, (OUTSIDE + INSIDE + 2) as u64, "{workers} workers");
    }
}

/// A detached task's panic is reported and counted, and the worker keeps going.
#[test]
fn spawn_detached_panics_go_to_the_handler() {
    let (tx, rx) = mpsc::channel();
    let tx = Mutex::new(tx);
    let s = Scheduler::builder()
        .workers(1)
        .pin(false)
        .panic_handler(move |p| {
            let msg = p.downcast_ref::<&str>().copied().unwrap_or("?").to_string();
            tx.lock().unwrap().send(msg).unwrap();
        })
        .build()
        .unwrap();
    s.spawn_detached(|| panic!("detached boom")).unwrap();
    assert_eq!(rx.recv().unwrap(), "detached boom");
    assert_eq!(s.spawn(|| 5).join().unwrap(), 5, "the worker survived the panic");
    let stats = s.stats();
    assert_eq!(stats.total.panicked, 1);
}

/// On a shut-down scheduler `spawn_detached` hands the closure back, never runs it, and
/// drops nothing behind the caller's back; from inside a task the same holds.
#[test]
fn spawn_detached_after_shutdown_gives_the_closure_back() {
    let s = sched(1);
    let h = s.handle();
    s.shutdown_timeout(Duration::from_secs(60)).unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let r = ran.clone();
    let err = h.spawn_detached(move || {
        r.fetch_add(1, Ordering::SeqCst);
    });
    let err = err.unwrap_err();
    assert_eq!(err.kind(), SpawnErrorKind::ShutDown);
    (err.into_inner())(); // the closure came back whole, and still works
    assert_eq!(ran.load(Ordering::SeqCst), 1);
}

/// The one-worker deque pops without a fence; its only foreign thief is a timed-out
/// shutdown's drain (`steal_heavy`). Here the drain runs while the worker is still inside a
/// task, popping (and, once it sees the abandon flag, dropping) the children that task
/// queued on its own deque: every child either runs once or is dropped unrun once, and
/// its captures are dropped exactly once.
#[test]
fn one_worker_timed_out_shutdown_races_its_pops_exactly_once() {
    struct Probe(Arc<Vec<AtomicUsize>>, usize);
    impl Drop for Probe {
        fn drop(&mut self) {
            self.0[self.1].fetch_add(1, Ordering::SeqCst);
        }
    }
    const CHILDREN: usize = 300;
    for round in 0..30 {
        // A small pool: each round leaks its shared state on purpose (the worker is still
        // running when the timeout expires; see `shutdown_timeout`).
        let s = Scheduler::builder().workers(1).pin(false).pool_capacity(512).build().unwrap();
        let runs: Arc<Vec<AtomicUsize>> = Arc::new((0..CHILDREN).map(|_| AtomicUsize::new(0)).collect());
        let drops: Arc<Vec<AtomicUsize>> = Arc::new((0..CHILDREN).map(|_| AtomicUsize::new(0)).collect());
        let (queued_tx, queued_rx) = mpsc::channel();
        let (r, d) = (runs.clone(), drops.clone());
        let driver = s.spawn(move || {
            for i in 0..CHILDREN {
                let (r, p) = (r.clone(), Probe(d.clone(), i));
                drop(filch::spawn(move || {
                    // A little work, so the worker is still popping when the drain starts.
                    for _ in 0..2000 {
                        std::hint::spin_loop();
                    }
                    r[i].fetch_add(1, Ordering::SeqCst);
                    drop(p);
                }));
            }
            queued_tx.send(()).unwrap();
            // Pop (run, or once the abandon flag shows, drop) while the drain steals.
            while filch::yield_now() {}
        });
        queued_rx.recv().unwrap();
        let err = s.shutdown_timeout(Duration::ZERO).unwrap_err();
        assert!(err.still_running <= 1, "round {round}");
        // The drain is over; the driver returns once its deque is empty, so after this join
        // every child has been run or dropped by one side or the other.
        driver.join().unwrap();
        for i in 0..CHILDREN {
            let (ran, dropped) = (runs[i].load(Ordering::SeqCst), drops[i].load(Ordering::SeqCst));
            assert!(
                ran <= 1 && dropped == 1,
                "round {round}, child {i}: ran {ran} times, dropped {dropped} times"
            );
        }
    }
}

/// The orphan protocol counts slots exactly: the scheduler's shared state (observed through
/// the panic handler it owns) outlives `drop(scheduler)` while handles hold pool slots, and
/// goes with the very last of them. The slots travel between two workers' magazines and
/// the pool's global stack first (spawns inside tasks, steals, frees on workers and on this
/// thread, heap fallbacks past the 256 slots), so a miscount either way fails: too few and
/// the state goes early, too many and it never goes.
#[test]
fn the_last_handle_frees_the_scheduler_state_and_not_before() {
    struct Flag(Arc<std::sync::atomic::AtomicBool>);
    impl Drop for Flag {
        fn drop(&mut self) {
            self.0.store(true, Ordering::SeqCst);
        }
    }
    for round in 0..20 {
        let freed = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = Flag(freed.clone());
        let s = Scheduler::builder()
            .workers(2)
            .pin(false)
            .pool_capacity(256)
            .panic_handler(move |_| {
                let _owned = &flag;
            })
            .build()
            .unwrap();
        let mut kept = s
            .spawn(|| {
                let hs: Vec<_> = (0..2000u64).map(|i| filch::spawn(move || i)).collect();
                let mut keep = Vec::new();
                for (i, h) in hs.into_iter().enumerate() {
                    if i % 7 == 0 {
                        keep.push(h);
                    } else {
                        assert_eq!(h.join().unwrap(), i as u64); // freed on a worker
                    }
                }
                keep
            })
            .join()
            .unwrap();
        kept.extend((0..50u64).map(|i| s.spawn(move || i)));
        drop(s);
        let n = kept.len();
        for (i, h) in kept.into_iter().enumerate() {
            assert!(!freed.load(Ordering::SeqCst), "round {round}: state gone with {} handles left", n - i);
            h.join().unwrap(); // freed on this thread
        }
        assert!(freed.load(Ordering::SeqCst), "round {round}: the last handle did not free the state");
    }
}

/// Every public error is `std::error::Error + Send + Sync + 'static`, so `?` carries it
/// into `Box<dyn Error + Send + Sync>` (and the error types built on that bound).
#[test]
fn errors_work_with_question_mark_into_send_sync_boxes() {
    fn is_error<E: std::error::Error + Send + Sync + 'static>() {}
    is_error::<TaskError>();
    is_error::<filch::BuildError>();
    is_error::<filch::SpawnError<fn()>>();
    is_error::<filch::ShutdownTimeout>();
    is_error::<filch::Cancelled>();
    type BoxError = Box<dyn std::error::Error + Send + Sync>;
    fn joined(s: &Scheduler, fail: bool) -> Result<u32, BoxError> {
        let v = s.spawn(move || if fail { panic!("failed task") } else { 7 }).join()?;
        s.try_spawn(|| ())?.join()?;
        Ok(v)
    }
    let s = sched(1);
    assert_eq!(joined(&s, false).unwrap(), 7);
    let err = joined(&s, true).unwrap_err();
    let task_err = err.downcast::<TaskError>().unwrap();
    assert_eq!(task_err.panic_message(), Some("failed task"));
    // The error can be sent to and shared with another thread.
    let shared = Arc::new(*task_err);
    let s2 = shared.clone();
    let msg = std::thread::spawn(move || s2.to_string()).join().unwrap();
    assert_eq!(msg, "task panicked: failed task");
}

/// The fairness step: on one worker, a task at the top of the deque runs even while the
/// task running keeps spawning newer ones and running the newest (`yield_now`). It waits
/// for at most `FAIR_AGE` (8) fairness turns of `FAIR_INTERVAL` (61) tasks, plus the turn
/// it is taken on; without the step it would never run (the loop's bound fails).
#[test]
fn the_oldest_local_task_runs_behind_a_stream_of_newer_ones() {
    use std::sync::atomic::{AtomicBool, Ordering::SeqCst};
    let s = Scheduler::builder().workers(1).pin(false).build().unwrap();
    let h = s.spawn(|| {
        let ran = std::sync::Arc::new(AtomicBool::new(false));
        let r = ran.clone();
        filch::spawn_detached(move || r.store(true, SeqCst)).unwrap();
        let mut tasks = 0u32;
        while !ran.load(SeqCst) {
            filch::spawn_detached(|| {}).unwrap();
            assert!(filch::yield_now(), "a task was queued");
            tasks += 1;
            assert!(tasks < 100_000, "the oldest task never ran");
        }
        tasks
    });
    let tasks = h.join().unwrap();
    assert!(tasks <= 10 * 61, "the oldest task waited {tasks} tasks");
}

/// Skynet joining its children in spawn order: the oldest child is deeper in the deque
/// than its siblings, so each is claimed and run in place, and the entries it leaves are
/// taken off the top by the next wait. On one worker (no thief to take them), 111,111
/// such entries piled up without that, until the deque spilled and the pool ran dry:
/// every task after that was a heap task.
#[test]
fn joining_children_in_spawn_order_leaves_no_entries_behind() {
    fn skynet(num: u64, size: u64) -> u64 {
        if size == 1 {
            return num;
        }
        let sub = size / 10;
        let children: [filch::JoinHandle<u64>; 10] =
            std::array::from_fn(|i| filch::spawn(move || skynet(num + i as u64 * sub, sub)));
        children.into_iter().map(|h| h.join().unwrap()).sum()
    }
    let s = Scheduler::builder().workers(1).pin(false).build().unwrap();
    assert_eq!(s.spawn(|| skynet(0, 100_000)).join().unwrap(), 100_000 * 99_999 / 2);
    let total = s.stats().total;
    assert_eq!((total.spills, total.heap_fallbacks), (0, 0), "entries piled up: {}", s.stats());
}

/// Spawns a tree of `depth` levels below `h`'s scheduler, fanning out by four, with a
/// clone of the handle moved into every task (and dropped there, on whichever worker ran
/// it); returns the number of tasks.
fn handle_tree(h: filch::Handle, depth: u32) -> u64 {
    if depth == 0 {
        return 1;
    }
    let kids: Vec<_> = (0..4)
        .map(|_| {
            let hc = h.clone();
            h.spawn(move || handle_tree(hc, depth - 1))
        })
        .collect();
    1 + kids.into_iter().map(|k| k.join().unwrap()).sum::<u64>()
}

/// Handles cloned and dropped by the thousand on the workers (their private counts) and
/// on plain threads (the shared count): the scheduler's memory, observed through a value
/// its panic handler owns, outlives the scheduler while a handle is left, and is freed by
/// that handle's drop. A worker that kept its count at exit would leak it; a count that
/// missed a reference would free it under the last handle.
#[test]
fn handles_keep_the_scheduler_memory_until_the_last_is_dropped() {
    let probe = Arc::new(());
    let owned = probe.clone();
    let s = Scheduler::builder()
        .workers(2)
        .pin(false)
        .panic_handler(move |_| {
            let _ = &owned;
        })
        .build()
        .unwrap();
    let h = s.handle();
    let trees: Vec<_> = (0..4)
        .map(|_| {
            let h = h.clone();
            std::thread::spawn(move || {
                let mut n = 0;
                for _ in 0..4 {
                    let root = h.clone();
                    n += h.spawn(move || handle_tree(root, 6)).join().unwrap();
                    let copies: Vec<_> = (0..100).map(|_| h.clone()).collect();
                    drop(copies);
                }
                n
            })
        })
        .collect();
    let total: u64 = trees.into_iter().map(|t| t.join().unwrap()).sum();
    assert_eq!(total, 16 * (4u64.pow(7) - 1) / 3);
    drop(s);
    assert_eq!(Arc::strong_count(&probe), 2, "freed while a handle is left");
    assert!(matches!(h.spawn(|| 1).join(), Err(TaskError::ShutDown)));
    drop(h);
    assert_eq!(Arc::strong_count(&probe), 1, "the last handle's drop did not free the scheduler");
}
