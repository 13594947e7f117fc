//! Async tasks and timers: spawning, awaiting, waking from anywhere, aborting, the
//! cooperative budget, shutdown of pending futures, stale wakers, and timers that never
//! fire early. Every count below is exact: a future dropped twice or never, a wake lost,
//! or a timer that fires early fails a test.
#![cfg(not(loom))]

use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use filch::time::{interval, sleep, sleep_until, timeout, MissedTickBehavior};
use filch::{Scheduler, SpawnErrorKind, TaskError};

fn sched(workers: usize) -> Scheduler {
    Scheduler::builder().workers(workers).pin(false).build().unwrap()
}

/// Counts its drops; `Pending` until `gate` is opened, then `Ready(value)`.
struct Gated {
    gate: Arc<Gate>,
    drops: Arc<AtomicUsize>,
    value: u64,
}

#[derive(Default)]
struct Gate {
    open: AtomicBool,
    waker: Mutex<Option<Waker>>,
}

impl Gate {
    fn open(&self) {
        self.open.store(true, SeqCst);
        if let Some(w) = self.waker.lock().unwrap().take() {
            w.wake();
        }
    }
}

impl Future for Gated {
    type Output = u64;
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<u64> {
        if self.gate.open.load(SeqCst) {
            return Poll::Ready(self.value);
        }
        *self.gate.waker.lock().unwrap() = Some(cx.waker().clone());
        if self.gate.open.load(SeqCst) {
            return Poll::Ready(self.value);
        }
        Poll::Pending
    }
}

impl Drop for Gated {
    fn drop(&mut self) {
        self.drops.fetch_add(1, SeqCst);
    }
}

fn gated(value: u64) -> (Gated, Arc<Gate>, Arc<AtomicUsize>) {
    let gate = Arc::new(Gate::default());
    let drops = Arc::new(AtomicUsize::new(0));
    (Gated { gate: gate.clone(), drops: drops.clone(), value }, gate, drops)
}

#[test]
fn spawn_forms_and_await() {
    let s = sched(2);
    assert_eq!(s.spawn_async(async { 1 }).join().unwrap(), 1);
    assert_eq!(s.handle().spawn_async(async { 2 }).join().unwrap(), 2);
    assert_eq!(s.try_spawn_async(async { 3 }).unwrap().join().unwrap(), 3);
    let (tx, rx) = std::sync::mpsc::channel();
    s.spawn_async_detached(async move { tx.send(4).unwrap() }).unwrap();
    assert_eq!(rx.recv().unwrap(), 4);
    // Closure and future handles awaited from a future, from a free function on a worker.
    let h = s.spawn_async(async {
        let a = filch::spawn(|| 10);
        let b = filch::spawn_async(async { 20 });
        let c = filch::try_spawn_async(async { 30 }).unwrap();
        a.await.unwrap() + b.await.unwrap() + c.await.unwrap()
    });
    assert_eq!(h.join().unwrap(), 60);
    // A future that does not fit a slot is handed back by `try_`, and runs on the heap.
    let big = [7u8; filch::TASK_INLINE_BYTES];
    let err = s.try_spawn_async(async move { big[0] }).unwrap_err();
    assert_eq!(err.kind(), SpawnErrorKind::TooLarge);
    let before = s.stats().total.heap_fallbacks;
    assert_eq!(s.spawn_async(err.into_inner()).join().unwrap(), 7);
    assert_eq!(s.stats().total.heap_fallbacks, before + 1);
}

#[test]
fn block_on_outside_and_on_a_worker() {
    let s = sched(2);
    // Outside: parks between wakes; spawns inside go to `s`.
    let v = s.block_on(async {
        let (f, gate, _) = gated(5);
        let opener = std::thread::spawn(move || gate.open());
        let r = filch::spawn_async(f).await.unwrap();
        opener.join().unwrap();
        r + filch::current().map_or(0, |_| 100)
    });
    assert_eq!(v, 5);
    // On a worker: helps while it waits.
    let h = s.spawn(|| filch::block_on(async { filch::spawn_async(async { 9 }).await.unwrap() }));
    assert_eq!(h.join().unwrap(), 9);
    // A non-Send future is fine for block_on.
    let rc = std::rc::Rc::new(3);
    assert_eq!(filch::block_on(async move { *rc }), 3);
}

#[test]
fn wakes_from_outside_threads_complete_each_task_once() {
    let s = sched(2);
    let n = 2000;
    let mut gates = Vec::new();
    let mut handles = Vec::new();
    let drops = Arc::new(AtomicUsize::new(0));
    for i in 0..n {
        let gate = Arc::new(Gate::default());
        gates.push(gate.clone());
        handles.push(s.spawn_async(Gated { gate, drops: drops.clone(), value: i }));
    }
    let gates = Arc::new(gates);
    let openers: Vec<_> = (0..3)
        .map(|k| {
            let gates = gates.clone();
            std::thread::spawn(move || {
                for g in gates.iter().skip(k).step_by(3) {
                    g.open();
                }
            })
        })
        .collect();
    for o in openers {
        o.join().unwrap();
    }
    let sum: u64 = handles.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, n * (n - 1) / 2);
    assert_eq!(drops.load(SeqCst), n as usize);
}

#[test]
fn abort_drops_the_future_once_at_its_next_suspension() {
    let s = sched(2);
    let (f, gate, drops) = gated(1);
    let h = s.spawn_async(f);
    assert!(h.abort());
    assert!(matches!(h.join(), Err(TaskError::Cancelled)));
    assert_eq!(drops.load(SeqCst), 1);
    gate.open(); // a wake after the abort does nothing
                 // A finished task is not aborted.
    let h = s.spawn_async(async { 3 });
    while !h.is_finished() {
        std::thread::yield_now();
    }
    assert!(!h.abort());
    assert_eq!(h.join().unwrap(), 3);
    // A running task stops at its next `await`.
    let polls = Arc::new(AtomicUsize::new(0));
    let started = Arc::new(AtomicBool::new(false));
    let (p, st) = (polls.clone(), started.clone());
    let h = s.spawn_async(async move {
        loop {
            st.store(true, SeqCst);
            p.fetch_add(1, SeqCst);
            filch::future::yield_now().await;
        }
    });
    while !started.load(SeqCst) {
        std::thread::yield_now();
    }
    assert!(h.abort());
    assert!(matches!(h.join(), Err(TaskError::Cancelled)));
    let after = polls.load(SeqCst);
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(polls.load(SeqCst), after, "polled after the abort completed");
}

#[test]
fn dropping_the_handle_and_every_waker_drops_the_future() {
    let s = sched(1);
    let (f, gate, drops) = gated(1);
    let h = s.spawn_async(f);
    // Let it register its waker, then take the only waker away and drop the handle.
    while gate.waker.lock().unwrap().is_none() {
        std::thread::yield_now();
    }
    drop(h);
    assert_eq!(drops.load(SeqCst), 0);
    drop(gate.waker.lock().unwrap().take());
    assert_eq!(drops.load(SeqCst), 1, "the last reference drops the pending future");
}

#[test]
fn panics_in_poll_and_in_drop_are_contained() {
    let s = sched(2);
    let h = s.spawn_async(async { panic!("boom") });
    assert_eq!(h.join().unwrap_err().panic_message(), Some("boom"));
    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("drop boom");
        }
    }
    let h = s.spawn_async(async {
        let _g = PanicsOnDrop;
        5
    });
    assert_eq!(h.join().unwrap_err().panic_message(), Some("drop boom"));
    // The scheduler still works.
    assert_eq!(s.spawn_async(async { 1 }).join().unwrap(), 1);
}

/// A task woken on a worker goes into that worker's wake slot. When the waking task then
/// keeps running — here it spins until the woken task has run, which only another worker
/// can do — another worker must take the woken task from the slot by itself. Idle
/// workers park at once (no spinning), the hardest case: the other workers are asleep, or
/// about to be, when the wake happens and have to come back for the task (docs/DESIGN.md
/// §7, "The wake slot"). With `workers` above 2, the waker first spawns `workers - 2`
/// tasks that spin as well: the worker that its spawn woke steals one and stops searching,
/// and its K4 must pass the slot on to a worker still asleep. A task held in the slot
/// would hang; the watchdog turns that into a failure.
fn woken_task_is_not_held(workers: usize) {
    let (done_tx, done_rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let s = Scheduler::builder()
            .workers(workers)
            .pin(false)
            .idle(filch::Idle::Park { spins: 0, yields: 0 })
            .build()
            .unwrap();
        for i in 0..100 {
            let (fut, gate, drops) = gated(i);
            let ran = Arc::new(AtomicBool::new(false));
            let woken = {
                let ran = ran.clone();
                s.spawn_async(async move {
                    let v = fut.await;
                    ran.store(true, SeqCst);
                    v
                })
            };
            let waker = s.spawn(move || {
                // The woken task must be waiting, so that the wake below queues it.
                while gate.waker.lock().unwrap().is_none() {
                    std::hint::spin_loop();
                }
                let spinners: Vec<_> = (2..workers)
                    .map(|_| {
                        let ran = ran.clone();
                        filch::spawn(move || {
                            while !ran.load(SeqCst) {
                                std::hint::spin_loop();
                            }
                        })
                    })
                    .collect();
                gate.open();
                while !ran.load(SeqCst) {
                    std::hint::spin_loop();
                }
                spinners
            });
            for spinner in waker.join().unwrap() {
                spinner.join().unwrap();
            }
            assert_eq!(woken.join().unwrap(), i);
            assert_eq!(drops.load(SeqCst), 1);
        }
        done_tx.send(()).unwrap();
    });
    // A watchdog, not a timing: only a task held in a slot for good takes this long.
    done_rx
        .recv_timeout(Duration::from_secs(120))
        .expect("a woken task stayed in the wake slot of a worker that kept running");
}

#[test]
fn a_woken_task_is_not_held_behind_a_waker_that_keeps_running() {
    woken_task_is_not_held(2);
}

#[test]
fn a_woken_task_is_not_held_while_the_searcher_runs_something_else() {
    woken_task_is_not_held(3);
}

/// `JoinHandle::join` on a worker runs the awaited async task itself when it is queued
/// there (in the wake slot, or newest on the deque); a poll that suspends the task again
/// must leave the join waiting, not return as if it had timed out. Here the joiner's
/// wake puts the task in its own slot, the joiner then joins it at once, and the task
/// suspends on a second gate that an outside thread opens.
#[test]
fn join_on_a_worker_waits_for_an_async_task_that_suspends_again() {
    for workers in [1, 2] {
        let s = sched(workers);
        for i in 0..50 {
            let (first, gate1, drops1) = gated(0);
            let (second, gate2, drops2) = gated(i);
            let task = s.spawn_async(async move { first.await + second.await });
            let joiner = s.spawn(move || {
                while gate1.waker.lock().unwrap().is_none() {
                    std::hint::spin_loop();
                }
                let opener = std::thread::spawn(move || {
                    while gate2.waker.lock().unwrap().is_none() {
                        std::thread::yield_now();
                    }
                    gate2.open();
                });
                gate1.open();
                let v = task.join().unwrap();
                opener.join().unwrap();
                v
            });
            assert_eq!(joiner.join().unwrap(), i);
            assert_eq!((drops1.load(SeqCst), drops2.load(SeqCst)), (1, 1));
        }
    }
}

/// The same, for a task that suspends again and again with its own wake (`yield_now`):
/// each time it is queued on the joiner's worker again, and the join runs it again there.
/// On one worker nothing else can run it, so before the join did so each such join lent
/// its worker role to a spare thread to get it run: counted, that is `Stats::lends`.
#[test]
fn join_on_a_worker_reruns_an_async_task_that_keeps_yielding() {
    let s = sched(1);
    let total = s
        .spawn(|| {
            (0..200u64)
                .map(|i| {
                    let t = filch::spawn_async(async move {
                        for _ in 0..4 {
                            filch::future::yield_now().await;
                        }
                        i
                    });
                    t.join().unwrap()
                })
                .sum::<u64>()
        })
        .join()
        .unwrap();
    assert_eq!(total, (0..200).sum());
    assert_eq!(s.stats().lends, 0, "a join lent its worker to get a yielding task run");
}

#[test]
fn yield_now_lets_the_rest_of_the_queue_run() {
    let s = sched(1);
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    let spinner = s.spawn_async(async move {
        let mut yields = 0u64;
        while !f.load(SeqCst) {
            filch::future::yield_now().await;
            yields += 1;
        }
        yields
    });
    let setter = s.spawn(move || flag.store(true, SeqCst));
    setter.join().unwrap();
    assert!(spinner.join().unwrap() >= 1);
}

#[test]
fn the_budget_makes_a_task_with_ready_resources_yield() {
    let s = sched(1);
    let h = s.spawn_async(async {
        // 1000 tasks that are complete before we await them: every await is ready.
        let hs: Vec<_> = (0..1000u64).map(|i| filch::spawn(move || i)).collect();
        while !hs.iter().all(|h| h.is_finished()) {
            filch::future::yield_now().await; // they run while we are at the back
        }
        let progress = Arc::new(AtomicUsize::new(0));
        let p = progress.clone();
        // Queued behind us on the only worker: it runs only if we yield.
        let observer = filch::spawn(move || p.load(SeqCst));
        let mut sum = 0;
        for (k, h) in hs.into_iter().enumerate() {
            sum += h.await.unwrap();
            progress.store(k + 1, SeqCst);
        }
        (sum, observer.await.unwrap())
    });
    let (sum, seen) = h.join().unwrap();
    assert_eq!(sum, 999 * 1000 / 2);
    assert!(seen < 1000, "the observer ran only after the whole loop: no budget ({seen})");
    assert!(seen >= filch::future::BUDGET as usize - 1, "yielded before the budget was spent ({seen})");
}

#[test]
fn shutdown_drops_pending_futures_exactly_once() {
    for timed in [false, true] {
        let s = sched(2);
        let mut handles = Vec::new();
        let mut drop_counts = Vec::new();
        // Never opened, and kept (with the wakers they hold) until the end: only the
        // scheduler can end these futures.
        let mut gates = Vec::new();
        for i in 0..200 {
            let (f, gate, drops) = gated(i);
            gates.push(gate);
            handles.push(s.spawn_async(f));
            drop_counts.push(drops);
        }
        // One that yields forever, one that sleeps forever.
        let y = s.spawn_async(async {
            loop {
                filch::future::yield_now().await;
            }
        });
        let z = s.spawn_async(sleep(Duration::from_secs(3600)));
        std::thread::sleep(Duration::from_millis(5));
        if timed {
            s.shutdown_timeout(Duration::from_secs(60)).unwrap();
        } else {
            drop(s);
        }
        for h in handles {
            assert!(matches!(h.join(), Err(TaskError::ShutDown)));
        }
        assert!(matches!(y.join(), Err(TaskError::ShutDown)));
        assert!(matches!(z.join(), Err(TaskError::ShutDown)));
        for d in drop_counts {
            assert_eq!(d.load(SeqCst), 1);
        }
        drop(gates); // stale wakers: their drops free the tasks (and then the scheduler)
    }
}

#[test]
fn a_closure_joining_a_pending_future_during_shutdown_returns() {
    let s = sched(2);
    let (f, gate, _) = gated(1); // never opened; kept until the end
    let pending = s.spawn_async(f);
    let joiner = s.spawn(move || pending.join());
    std::thread::sleep(Duration::from_millis(5));
    drop(s); // the closure runs to completion; the future it waits for is dropped
    assert!(matches!(joiner.join().unwrap(), Err(TaskError::ShutDown)));
    drop(gate);
}

#[test]
fn stale_wakers_outlive_the_scheduler() {
    let s = sched(2);
    let (f, gate, drops) = gated(1);
    let _h = s.spawn_async(f);
    while gate.waker.lock().unwrap().is_none() {
        std::thread::yield_now();
    }
    let w = gate.waker.lock().unwrap().clone().unwrap();
    drop(s);
    assert_eq!(drops.load(SeqCst), 1);
    w.wake_by_ref();
    let w2 = w.clone();
    w.wake();
    drop(w2);
    gate.open();
}

#[test]
fn sleeps_never_end_early() {
    let s = sched(2);
    let hs: Vec<_> = (0..2000u64)
        .map(|i| {
            let d = Duration::from_micros(100 + (i * 7919) % 20_000);
            s.spawn_async(async move {
                let start = Instant::now();
                sleep(d).await;
                start.elapsed() >= d
            })
        })
        .collect();
    assert!(hs.into_iter().all(|h| h.join().unwrap()));
    // sleep_until with a past deadline is ready at once.
    let past = Instant::now() - Duration::from_secs(1);
    let mut first = std::pin::pin!(sleep_until(past));
    let waker = std::task::Waker::noop();
    assert!(first.as_mut().poll(&mut Context::from_waker(waker)).is_ready());
}

#[test]
fn dropped_sleeps_are_cancelled() {
    let s = sched(1);
    // Each task polls a long sleep once, then drops it; nothing must fire or leak.
    let hs: Vec<_> = (0..1000)
        .map(|_| {
            s.spawn_async(async {
                let r = timeout(Duration::from_millis(1), sleep(Duration::from_secs(3600))).await;
                r.is_err()
            })
        })
        .collect();
    assert!(hs.into_iter().all(|h| h.join().unwrap()));
}

#[test]
fn timeout_and_interval() {
    let s = sched(2);
    s.block_on(async {
        assert_eq!(timeout(Duration::from_secs(60), async { 1 }).await, Ok(1));
        let start = Instant::now();
        let r = timeout(Duration::from_millis(3), std::future::pending::<()>()).await;
        assert!(r.is_err() && start.elapsed() >= Duration::from_millis(3));
        let mut i = interval(Duration::from_millis(2));
        let t0 = i.tick().await;
        let t1 = i.tick().await;
        let t2 = i.tick().await;
        assert_eq!(t1 - t0, Duration::from_millis(2));
        assert_eq!(t2 - t1, Duration::from_millis(2));
        assert!(Instant::now() >= t2);
    });
}

#[test]
fn interval_missed_ticks() {
    let period = Duration::from_millis(2);
    for (behavior, burst) in [
        (MissedTickBehavior::Burst, true),
        (MissedTickBehavior::Delay, false),
        (MissedTickBehavior::Skip, false),
    ] {
        filch::block_on(async {
            let mut i = interval(period);
            i.set_missed_tick_behavior(behavior);
            let t0 = i.tick().await;
            std::thread::sleep(period * 5); // miss about five ticks
            let late = i.tick().await;
            assert_eq!(late, t0 + period, "the first missed tick is the scheduled one");
            let next = i.tick().await;
            if burst {
                assert_eq!(next, t0 + period * 2, "burst catches up one tick at a time");
            } else {
                assert!(next >= t0 + period * 5, "{behavior:?} does not replay missed ticks");
            }
        });
    }
}

#[test]
#[should_panic(expected = "period must be non-zero")]
fn zero_interval_panics() {
    let _ = interval(Duration::ZERO);
}
