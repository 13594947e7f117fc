//! Blocking that keeps the pool running: a task that blocks hands its worker role to a
//! spare thread (`block_in_place`, and through it every blocking wait), `spawn_blocking`
//! runs on spare threads, and a `JoinHandle` wait never runs an unrelated task on top of
//! the waiting one. Each scenario below hangs on a scheduler without these (the
//! dependency it sets up cannot be resolved by the blocked worker), on one worker and on
//! two; every count is exact.
#![cfg(not(loom))]

use std::sync::atomic::{AtomicUsize, Ordering::*};
use std::sync::mpsc::{channel, sync_channel};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use filch::{Scheduler, TaskError};

fn sched(workers: usize) -> Scheduler {
    Scheduler::builder().workers(workers).pin(false).build().unwrap()
}

/// Waits (without a timed assertion on speed) until `cond` holds; fails the test only if
/// it never does within a minute, which means a lost hand-off, not a slow machine.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let give_up = Instant::now() + Duration::from_secs(60);
    while !cond() {
        assert!(Instant::now() < give_up, "{what}: never happened");
        std::thread::yield_now();
    }
}

/// A receiver that blocks in `block_in_place` and a sender queued behind it on the same
/// worker: the sender runs only because the receiver's worker went to a spare thread.
#[test]
fn a_blocked_task_hands_its_worker_to_a_spare() {
    for workers in [1, 2] {
        let s = sched(workers);
        // Occupy every worker with a blocking receiver first, then queue the senders.
        let receivers: Vec<_> = (0..workers)
            .map(|_| {
                let (tx, rx) = channel::<u32>();
                (tx, s.spawn(move || filch::block_in_place(|| rx.recv().unwrap())))
            })
            .collect();
        let senders: Vec<_> = receivers
            .iter()
            .enumerate()
            .map(|(i, (tx, _))| {
                let tx = tx.clone();
                s.spawn(move || tx.send(i as u32 + 10).unwrap())
            })
            .collect();
        for h in senders {
            h.join().unwrap();
        }
        let got: Vec<u32> = receivers.into_iter().map(|(_, h)| h.join().unwrap()).collect();
        assert_eq!(got, (0..workers as u32).map(|i| i + 10).collect::<Vec<_>>());
        let stats = s.stats();
        assert!(stats.lends >= 1, "at least one worker handed its role over: {stats:?}");
        eventually("every blocked thread took a role back", || s.stats().blocked == 0);
    }
}

/// The pipeline of the usual complaint: producer → 4 stage workers → consumer, each
/// stage blocking on bounded queues, on one and two workers (five blocking tasks).
#[test]
fn a_blocking_pipeline_completes_on_few_workers() {
    const N: u64 = 2000;
    for workers in [1, 2] {
        let s = sched(workers);
        let (jobs_tx, jobs_rx) = sync_channel::<u64>(4);
        let jobs_rx = Arc::new(std::sync::Mutex::new(jobs_rx));
        let (out_tx, out_rx) = sync_channel::<u64>(4);
        let producer = s.spawn(move || {
            for i in 0..N {
                filch::block_in_place(|| jobs_tx.send(i).unwrap());
            }
        });
        let stages: Vec<_> = (0..4)
            .map(|_| {
                let (jobs_rx, out_tx) = (jobs_rx.clone(), out_tx.clone());
                s.spawn(move || loop {
                    let job = filch::block_in_place(|| jobs_rx.lock().unwrap().recv());
                    match job {
                        Ok(v) => filch::block_in_place(|| out_tx.send(v * 2).unwrap()),
                        Err(_) => return,
                    }
                })
            })
            .collect();
        drop(out_tx);
        let consumer = s.spawn(move || {
            let mut seen = vec![false; N as usize];
            while let Ok(v) = filch::block_in_place(|| out_rx.recv()) {
                let i = (v / 2) as usize;
                assert!(!seen[i], "job {i} delivered twice");
                seen[i] = true;
            }
            seen.iter().all(|&b| b)
        });
        producer.join().unwrap();
        for h in stages {
            h.join().unwrap();
        }
        assert!(consumer.join().unwrap(), "every job arrived ({workers} workers)");
    }
}

/// The burying case: a task spawns V (to join) and then U, which blocks until the task
/// sends after its join. A join that ran U on top of itself would never return.
#[test]
fn a_join_never_runs_an_unrelated_task_on_top_of_the_waiter() {
    for workers in [1, 2] {
        let s = sched(workers);
        for round in 0..200u64 {
            let outer = s.spawn(move || {
                let (tx, rx) = channel::<u64>();
                let v = filch::spawn(move || round * 3);
                let u = filch::spawn(move || filch::block_in_place(|| rx.recv().unwrap()) + 1);
                let got = v.join().unwrap();
                tx.send(got).unwrap();
                u.join().unwrap()
            });
            assert_eq!(outer.join().unwrap(), round * 3 + 1);
        }
    }
}

/// Same, with the awaited task in the middle of the waiter's deque (neither newest nor
/// oldest) and a blocking sibling on each side.
#[test]
fn a_join_of_a_task_deep_in_the_deque_runs_it_in_place() {
    for workers in [1, 2] {
        let s = sched(workers);
        let out = s.spawn(|| {
            let (tx, rx) = channel::<u32>();
            let (tx2, rx2) = channel::<u32>();
            let before = filch::spawn(move || filch::block_in_place(|| rx.recv().unwrap()));
            let target = filch::spawn(|| 40);
            let after = filch::spawn(move || filch::block_in_place(|| rx2.recv().unwrap()));
            let v = target.join().unwrap();
            tx.send(1).unwrap();
            tx2.send(1).unwrap();
            v + before.join().unwrap() + after.join().unwrap()
        });
        assert_eq!(out.join().unwrap(), 42);
    }
}

/// Many more blocked tasks than workers: each holds a thread while the others run.
#[test]
fn more_blocked_tasks_than_workers() {
    const TASKS: usize = 64;
    let s = Scheduler::builder().workers(2).pin(false).max_spare_threads(TASKS + 2).build().unwrap();
    let gate = Arc::new(Barrier::new(TASKS + 1));
    let ran = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..TASKS)
        .map(|_| {
            let (gate, ran) = (gate.clone(), ran.clone());
            s.spawn(move || {
                filch::block_in_place(|| gate.wait());
                ran.fetch_add(1, Relaxed);
            })
        })
        .collect();
    // Every task is blocked at the barrier at once: only possible if their workers were
    // handed on each time.
    gate.wait();
    for h in hs {
        h.join().unwrap();
    }
    assert_eq!(ran.load(Relaxed), TASKS);
    let stats = s.stats();
    assert!(stats.spares_started >= 1, "{stats:?}");
    assert_eq!(stats.total.spawned, TASKS as u64);
    assert_eq!(stats.total.completed, TASKS as u64);
}

/// With no spare threads allowed, `block_in_place` just runs its closure on the worker.
#[test]
fn without_spares_block_in_place_runs_on_the_worker() {
    let s = Scheduler::builder().workers(2).pin(false).max_spare_threads(0).build().unwrap();
    let h = s.spawn(|| filch::block_in_place(|| filch::current().is_some()));
    assert!(h.join().unwrap(), "not lent: still a worker inside the closure");
    let h = s.spawn(|| filch::block_in_place(|| 5));
    assert_eq!(h.join().unwrap(), 5);
    assert_eq!(s.stats().lends, 0);
}

/// With no spare threads allowed, `spawn_blocking` tasks run on the workers while the
/// scheduler runs (before, they queued for a spare that never came, and the join waited
/// until the scheduler's drop).
#[test]
fn without_spares_spawn_blocking_runs_on_the_workers() {
    let s = Scheduler::builder().workers(1).pin(false).max_spare_threads(0).build().unwrap();
    let h = s.spawn_blocking(|| std::thread::current().name().unwrap_or("").to_string());
    let name = h.join().unwrap();
    assert!(!name.contains("spare"), "ran on {name}");
    let p = s.spawn_blocking(|| -> u8 { panic!("blocking boom") });
    assert_eq!(p.join().unwrap_err().panic_message(), Some("blocking boom"));
    let stats = s.stats();
    assert_eq!((stats.spares_started, stats.total.spawned, stats.total.completed), (0, 2, 2), "{stats:?}");
}

/// Inside `block_in_place` the thread is not a worker: spawns inject, and a panic comes
/// out after the role is back.
#[test]
fn block_in_place_runs_outside_the_workers_and_propagates_panics() {
    let s = sched(1);
    let h = s.spawn(|| {
        let inside =
            filch::block_in_place(|| (filch::current().is_some(), filch::spawn(|| 3).join().unwrap()));
        (inside, filch::current().is_some())
    });
    assert_eq!(h.join().unwrap(), ((false, 3), true));
    let h = s.spawn(|| {
        let r = std::panic::catch_unwind(|| filch::block_in_place(|| panic!("inside")));
        (r.is_err(), filch::current().is_some())
    });
    assert_eq!(h.join().unwrap(), (true, true), "the role is back after the panic");
    assert_eq!(filch::block_in_place(|| 9), 9, "off the workers: just runs");
}

#[test]
fn spawn_blocking_runs_on_spare_threads() {
    let s = sched(1);
    let hs: Vec<_> = (0..8u32)
        .map(|i| s.spawn_blocking(move || (i, std::thread::current().name().unwrap_or("").to_string())))
        .collect();
    for (i, h) in hs.into_iter().enumerate() {
        let (v, name) = h.join().unwrap();
        assert_eq!(v, i as u32);
        assert!(name.contains("spare"), "ran on {name}");
    }
    let p = s.spawn_blocking(|| -> u8 { panic!("blocking boom") });
    assert_eq!(p.join().unwrap_err().panic_message(), Some("blocking boom"));
    // Free functions inside refer to the same scheduler.
    let before = s.stats().total.spawned;
    let inner = s.spawn_blocking(|| filch::spawn(|| 7).join().unwrap());
    assert_eq!(inner.join().unwrap(), 7);
    assert_eq!(s.stats().total.spawned, before + 2);
}

/// More blocking tasks than spare threads: they queue and all run, each exactly once.
#[test]
fn spawn_blocking_queues_past_the_spare_limit() {
    let s = Scheduler::builder().workers(1).pin(false).max_spare_threads(2).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let hs: Vec<_> = (0..100)
        .map(|i| {
            let ran = ran.clone();
            s.spawn_blocking(move || {
                ran.fetch_add(1, Relaxed);
                i
            })
        })
        .collect();
    let sum: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
    assert_eq!(sum, 4950);
    assert_eq!(ran.load(Relaxed), 100);
    assert!(s.stats().spares_started <= 2);
}

#[test]
fn spare_threads_retire_after_the_keep_alive() {
    let s = Scheduler::builder()
        .workers(1)
        .pin(false)
        .thread_keep_alive(Duration::from_millis(5))
        .build()
        .unwrap();
    assert_eq!(s.spawn_blocking(|| 1).join().unwrap(), 1);
    eventually("the idle spare retired", || s.stats().spares_retired == 1);
    // A new blocking task starts a new spare.
    assert_eq!(s.spawn_blocking(|| 2).join().unwrap(), 2);
    assert_eq!(s.stats().spares_started, 2);
}

/// A graceful shutdown runs the blocking tasks already queued; a shut-down scheduler
/// refuses new ones.
#[test]
fn shutdown_and_blocking_tasks() {
    let s = Scheduler::builder().workers(1).pin(false).max_spare_threads(1).build().unwrap();
    let ran = Arc::new(AtomicUsize::new(0));
    let (go_tx, go_rx) = channel::<()>();
    let first = s.spawn_blocking(move || go_rx.recv().unwrap());
    let queued: Vec<_> = (0..10)
        .map(|_| {
            let ran = ran.clone();
            s.spawn_blocking(move || {
                ran.fetch_add(1, Relaxed);
            })
        })
        .collect();
    let h = s.handle();
    go_tx.send(()).unwrap();
    drop(s);
    first.join().unwrap();
    for q in queued {
        q.join().unwrap();
    }
    assert_eq!(ran.load(Relaxed), 10, "queued blocking tasks ran before the drop returned");
    assert!(matches!(h.spawn_blocking(|| ()).join(), Err(TaskError::ShutDown)));
}

/// Dropping a scheduler from its own spare thread, or inside `block_in_place` on one of
/// its workers, must not wait for that very thread.
#[test]
fn dropping_a_scheduler_from_its_own_blocking_code_returns() {
    let s = sched(1);
    let (tx, rx) = channel::<Scheduler>();
    let dropper = s.spawn_blocking(move || drop(rx.recv().unwrap()));
    tx.send(s).unwrap();
    dropper.join().unwrap();

    let s = sched(1);
    let (tx, rx) = channel::<Scheduler>();
    let dropper = s.spawn(move || filch::block_in_place(|| drop(rx.recv().unwrap())));
    tx.send(s).unwrap();
    dropper.join().unwrap();
}

/// A join that waits for a task running on the other worker helps with that task's own
/// subtasks: a recursive spawn+join tree completes with both workers busy, and the
/// result is exact.
#[test]
fn joins_help_with_the_awaited_tasks_subtasks() {
    fn tree(depth: u32) -> u64 {
        if depth == 0 {
            return 1;
        }
        let l = filch::spawn(move || tree(depth - 1));
        let r = tree(depth - 1);
        l.join().unwrap() + r
    }
    for workers in [1, 2, 3] {
        let s = sched(workers);
        assert_eq!(s.spawn(|| tree(14)).join().unwrap(), 1 << 14);
    }
}

/// The same pipeline in Go's shape on filch's own channels, as sync tasks that block in
/// `send_blocking` and in the receivers' iterators: five blocking tasks on one worker
/// and on two.
#[test]
fn a_go_pipeline_of_sync_tasks_over_channels() {
    const N: u64 = 2000;
    for workers in [1, 2] {
        let s = sched(workers);
        let (jobs_tx, jobs_rx) = filch::chan::bounded::<u64>(4);
        let (out_tx, out_rx) = filch::chan::bounded::<u64>(4);
        let producer = s.spawn(move || {
            for i in 0..N {
                jobs_tx.send_blocking(i).unwrap();
            }
        });
        let stages: Vec<_> = (0..4)
            .map(|_| {
                let (jobs_rx, out_tx) = (jobs_rx.clone(), out_tx.clone());
                s.spawn(move || {
                    for j in &jobs_rx {
                        out_tx.send_blocking(j * 2).unwrap();
                    }
                })
            })
            .collect();
        drop((jobs_rx, out_tx));
        let consumer = s.spawn(move || {
            let mut seen = vec![false; N as usize];
            for v in &out_rx {
                let i = (v / 2) as usize;
                assert!(!seen[i], "job {i} delivered twice");
                seen[i] = true;
            }
            seen.iter().all(|&b| b)
        });
        producer.join().unwrap();
        for h in stages {
            h.join().unwrap();
        }
        assert!(consumer.join().unwrap(), "every job arrived ({workers} workers)");
    }
}

/// Two sync tasks playing ping-pong over rendezvous channels on one worker: each send
/// completes only when the other task, queued behind it, receives.
#[test]
fn rendezvous_ping_pong_between_sync_tasks_on_one_worker() {
    let s = sched(1);
    let (ping_tx, ping_rx) = filch::chan::rendezvous::<u32>();
    let (pong_tx, pong_rx) = filch::chan::rendezvous::<u32>();
    let a = s.spawn(move || {
        let mut sum = 0;
        for i in 0..200 {
            ping_tx.send_blocking(i).unwrap();
            sum += pong_rx.recv_blocking().unwrap();
        }
        sum
    });
    let b = s.spawn(move || {
        for v in &ping_rx {
            pong_tx.send_blocking(v + 1).unwrap();
        }
    });
    assert_eq!(a.join().unwrap(), (1..=200).sum::<u32>());
    b.join().unwrap();
}

/// The burying case with a channel: the consumer U, spawned before the awaited V, blocks
/// in `recv_blocking` until the joiner sends after its join.
#[test]
fn a_join_is_not_buried_under_a_task_blocked_on_a_channel() {
    for workers in [1, 2] {
        let s = sched(workers);
        for round in 0..100u64 {
            let outer = s.spawn(move || {
                let (tx, rx) = filch::chan::bounded::<u64>(1);
                let u = filch::spawn(move || rx.recv_blocking().unwrap() + 1);
                let v = filch::spawn(move || round * 3);
                let got = v.join().unwrap();
                tx.send_blocking(got).unwrap();
                u.join().unwrap()
            });
            assert_eq!(outer.join().unwrap(), round * 3 + 1);
        }
    }
}

/// Tasks that block (lending their role to a spare) while tiny tasks keep every role busy:
/// a blocked task's thread comes back on whatever role it can claim, and every count must
/// land in the row of the role its thread holds then (a row has one writer). `Stats` must
/// add up exactly: a count written into a row another thread was bumping meanwhile is
/// lost. (A row taken before the body lost counts in about one round in three; twenty
/// rounds.)
#[test]
fn counts_add_up_when_blocked_tasks_come_back_on_other_roles() {
    for _ in 0..20 {
        blocked_tasks_round();
    }
}

fn blocked_tasks_round() {
    const BLOCKERS: usize = 400;
    const TINY: usize = 20;
    let s = Scheduler::builder().workers(2).pin(false).max_spare_threads(4).build().unwrap();
    let hs: Vec<_> = (0..BLOCKERS)
        .map(|i| {
            s.spawn(move || {
                let tiny: Vec<_> = (0..TINY).map(|j| filch::spawn(move || i * TINY + j)).collect();
                filch::block_in_place(|| {
                    for _ in 0..200 {
                        std::hint::spin_loop();
                    }
                });
                tiny.into_iter().map(|h| h.join().unwrap()).sum::<usize>()
            })
        })
        .collect();
    let total: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
    let n = BLOCKERS * TINY;
    assert_eq!(total, n * (n - 1) / 2);
    drop(s.spawn(|| ()).join());
    let stats = s.stats();
    let spawned = (BLOCKERS * (TINY + 1) + 1) as u64;
    assert_eq!(stats.total.spawned, spawned, "{stats}");
    assert_eq!(stats.total.completed, spawned, "{stats}");
}
