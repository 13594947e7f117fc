//! Fault containment: user mistakes (panicking bodies, drops, hooks and handlers, a closed
//! stderr, racing cancels and drops, drops from the wrong place) never crash, corrupt or
//! hang the scheduler. One test per case of docs/DESIGN.md §9; VERIFICATION says how each
//! failed before its fix.
//!
//! Cases that could kill the process (a segfault, an abort) or that need a closed stderr
//! run as child processes of the test binary: the test re-runs itself with
//! `FILCH_FAULTS_CHILD` naming the case, and the child does the work. No sleeps as
//! synchronization: waits are on channels and joins; where a property can only be
//! observed as "eventually" (memory freed by the last worker to leave), the test polls it
//! with a liveness bound far above any legitimate delay.
#![cfg(not(loom))]

use std::io::{BufRead, Write};
use std::panic::panic_any;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use filch::{BuildError, CancelToken, Scheduler, SpawnErrorKind, TaskError};

const CHILD_ENV: &str = "FILCH_FAULTS_CHILD";

fn builder(workers: usize) -> filch::Builder {
    Scheduler::builder().workers(workers).pin(false)
}

/// Whether this process is the child run for `case`.
fn is_child(case: &str) -> bool {
    std::env::var(CHILD_ENV).is_ok_and(|v| v == case)
}

/// Runs test `case` of this binary as a child process and returns its exit status and
/// stdout. With `close_stderr`, the child's stderr is a pipe whose reader is closed before
/// the child starts its work (it waits for a line on stdin).
fn run_child(case: &str, close_stderr: bool) -> (std::process::ExitStatus, String) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([case, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(if close_stderr { Stdio::piped() } else { Stdio::inherit() })
        .spawn()
        .unwrap();
    if close_stderr {
        drop(child.stderr.take());
    }
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    let out = child.wait_with_output().unwrap();
    (out.status, String::from_utf8_lossy(&out.stdout).into_owned())
}

/// In the child: waits for the parent's go-ahead (sent once stderr is closed).
fn child_wait_for_go() {
    let mut line = String::new();
    std::io::stdin().lock().read_line(&mut line).unwrap();
}

fn assert_child_ok(case: &str, close_stderr: bool) {
    let (status, stdout) = run_child(case, close_stderr);
    assert!(status.success() && stdout.contains("CHILD-OK"), "child {case} failed: {status}\n{stdout}");
}

/// Waits until `cond` holds: a liveness check, bounded so that a property that never
/// comes true fails instead of hanging.
fn eventually(what: &str, cond: impl Fn() -> bool) {
    let bound = std::env::var("FILCH_FAULTS_LIVENESS_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(120);
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < Duration::from_secs(bound), "never happened: {what}");
        std::thread::yield_now();
    }
}

/// A value whose drop panics.
struct Bomb;
impl Drop for Bomb {
    fn drop(&mut self) {
        panic!("bomb dropped");
    }
}

/// A flag that a scheduler's panic handler keeps alive: the scheduler's shared state holds
/// the handler, so the `Weak` dies exactly when that state is freed.
fn state_observer(b: filch::Builder) -> (filch::Builder, Weak<()>) {
    let alive = Arc::new(());
    let weak = Arc::downgrade(&alive);
    (b.panic_handler(move |_| drop(alive.clone())), weak)
}

// Case 1: the default panic report writes to a closed pipe.
#[test]
fn detached_panic_report_to_a_closed_stderr_is_contained() {
    if is_child("detached_panic_report_to_a_closed_stderr_is_contained") {
        child_wait_for_go();
        let s = builder(1).build().unwrap();
        // The detached task runs on top of the `join` frame while `b` is still queued.
        let (a, b) = s.join(
            || {
                filch::spawn_detached(|| panic!("detached")).unwrap();
                1
            },
            || 2,
        );
        assert_eq!((a, b), (1, 2));
        for _ in 0..100 {
            s.spawn_detached(|| panic!("more")).unwrap();
        }
        assert_eq!(s.spawn(|| 3).join().unwrap(), 3);
        drop(s);
        println!("CHILD-OK");
        return;
    }
    assert_child_ok("detached_panic_report_to_a_closed_stderr_is_contained", true);
}

// Case 2: panic payloads whose `Drop` panics, on every path that drops one.
#[test]
fn payloads_whose_drop_panics_are_contained() {
    if is_child("payloads_whose_drop_panics_are_contained") {
        child_wait_for_go();
        // Default report, on top of a `join` frame.
        let s = builder(1).build().unwrap();
        let (a, b) = s.join(
            || {
                filch::spawn_detached(|| panic_any(Bomb)).unwrap();
                1
            },
            || 2,
        );
        assert_eq!((a, b), (1, 2));
        // A handle dropped after its task panicked with a bomb: dropped on this thread.
        let h = s.spawn(|| -> u8 { panic_any(Bomb) });
        while !h.is_finished() {
            std::thread::yield_now();
        }
        drop(h);
        // `join` whose both halves panic: `b`'s payload is dropped, `a`'s re-raised.
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            s.join(|| -> u8 { panic!("a wins") }, || -> u8 { panic_any(Bomb) })
        }));
        assert_eq!(*r.unwrap_err().downcast::<&str>().unwrap(), "a wins");
        drop(s);
        // A panic handler that itself panics with a bomb. (Its tasks panic with strings: a
        // handler that unwinds while it still owns a bomb would abort the process in any
        // runtime, a panic during a panic.)
        let s = builder(2).panic_handler(|_| panic_any(Bomb)).build().unwrap();
        for _ in 0..10 {
            s.spawn_detached(|| panic!("plain")).unwrap();
        }
        assert_eq!(s.spawn(|| 4).join().unwrap(), 4);
        drop(s);
        println!("CHILD-OK");
        return;
    }
    assert_child_ok("payloads_whose_drop_panics_are_contained", false);
}

/// A closure capture that reports its drop, then waits for `proceed`.
struct SlowDrop {
    dropping: mpsc::Sender<()>,
    proceed: Mutex<mpsc::Receiver<()>>,
    _big: [u8; 512],
}
impl Drop for SlowDrop {
    fn drop(&mut self) {
        self.dropping.send(()).unwrap();
        self.proceed.lock().unwrap().recv().unwrap();
    }
}

// Case 3: `cancel` on a heap task racing `drop(Scheduler)`.
#[test]
fn cancel_of_a_heap_task_racing_the_scheduler_drop_is_sound() {
    let (b, state) = state_observer(builder(1));
    let s = b.build().unwrap();
    let (release, blocked) = mpsc::channel::<()>();
    let blocker = s.spawn(move || blocked.recv().unwrap());
    let (dropping_tx, dropping) = mpsc::channel();
    let (proceed, proceed_rx) = mpsc::channel();
    let capture = SlowDrop { dropping: dropping_tx, proceed: Mutex::new(proceed_rx), _big: [7; 512] };
    // Over the inline size: a heap task, queued behind the blocker.
    let h = s.spawn(move || {
        let c = capture; // the whole capture, not just a copy of its array
        c._big.len()
    });
    let canceller = std::thread::spawn(move || {
        let won = h.cancel(); // claims, then drops the closure: SlowDrop waits in there
        (won, h.join())
    });
    dropping.recv().unwrap(); // `cancel` holds the task and is inside the closure's drop
    release.send(()).unwrap();
    blocker.join().unwrap();
    drop(s); // the worker pops the claimed task, gives its reference up, and leaves
    assert!(state.upgrade().is_some(), "the shared state was freed while a handle's cancel was using it");
    proceed.send(()).unwrap();
    let (won, joined) = canceller.join().unwrap();
    assert!(won);
    assert!(matches!(joined, Err(TaskError::Cancelled)));
    // The handle's free was the last task free: the state goes with it.
    assert!(state.upgrade().is_none(), "the shared state outlived every task");
}

// Case 4a: a panicking start hook is a build error, not a dead worker.
#[test]
fn panicking_start_hook_is_a_build_error() {
    for workers in [1, 3] {
        let stopped = Arc::new(AtomicUsize::new(0));
        let st = stopped.clone();
        let err = builder(workers)
            .on_thread_start(|i| {
                if i == 0 {
                    panic!("no start for worker {i}")
                }
            })
            .on_thread_stop(move |_| {
                st.fetch_add(1, SeqCst);
            })
            .build()
            .unwrap_err();
        match &err {
            BuildError::StartHook { worker, message } => {
                assert_eq!((*worker, message.as_str()), (0, "no start for worker 0"));
            }
            other => panic!("unexpected: {other}"),
        }
        assert!(err.to_string().contains("on_thread_start"));
        // The workers that did start were shut down (their stop hooks ran) before `build`
        // returned; the failed one never started, so it does not stop.
        assert_eq!(stopped.load(SeqCst), workers - 1);
    }
}

// Case 4b: a panicking stop hook is reported and counted; `drop` returns.
#[test]
fn panicking_stop_hook_is_reported_and_drop_returns() {
    let reports = Arc::new(Mutex::new(Vec::new()));
    let r = reports.clone();
    let s = builder(2)
        .on_thread_stop(|i| panic!("stop hook {i}"))
        .panic_handler(move |p| {
            r.lock().unwrap().push(p.downcast_ref::<String>().cloned().unwrap_or_default())
        })
        .build()
        .unwrap();
    let handle = s.handle();
    assert_eq!(s.spawn(|| 5).join().unwrap(), 5);
    drop(s);
    let mut got = reports.lock().unwrap().clone();
    got.sort();
    assert_eq!(got, ["stop hook 0", "stop hook 1"]);
    assert_eq!(handle.stats().total.hook_panics, 2);
}

// Case 4c: a worker lost to a panic in its loop hands its work to the others.
#[test]
fn a_lost_worker_is_reported_and_the_others_carry_on() {
    let (tx, lost) = mpsc::channel::<String>();
    let tx = Mutex::new(tx);
    let s = builder(2)
        .inject_loop_panics(1)
        .panic_handler(move |p| {
            let msg = p.downcast_ref::<&str>().copied().unwrap_or("").to_owned();
            tx.lock().unwrap().send(msg).unwrap();
        })
        .build()
        .unwrap();
    assert!(lost.recv().unwrap().contains("injected"));
    let sum: u64 = s.spawn_many(1000, |i| i as u64).join_all().into_iter().map(Result::unwrap).sum();
    assert_eq!(sum, 999 * 1000 / 2);
    assert_eq!(s.stats().total.lost, 1);
    drop(s);
}

// Case 4d: when every worker is lost, the scheduler shuts itself down: nothing hangs.
#[test]
fn losing_every_worker_closes_the_scheduler() {
    let (tx, lost) = mpsc::channel::<()>();
    let tx = Mutex::new(tx);
    let s = builder(1)
        .inject_loop_panics(1)
        .panic_handler(move |_| tx.lock().unwrap().send(()).unwrap())
        .build()
        .unwrap();
    lost.recv().unwrap();
    // The loss is reported before the scheduler closes; a spawn in between is either
    // refused or dropped by the close, so its join returns `ShutDown` either way.
    let h = s.spawn(|| 1);
    assert!(matches!(h.join(), Err(TaskError::ShutDown)));
    eventually("the scheduler refuses spawns", || {
        s.try_spawn(|| ()).is_err_and(|e| e.kind() == SpawnErrorKind::ShutDown)
    });
    assert_eq!(s.stats().total.lost, 1);
    drop(s);
}

// Case 5: dropping a scheduler inside one of its own tasks.
#[test]
fn drop_inside_an_own_task_closes_and_returns() {
    for workers in [1, 2] {
        let (b, state) = state_observer(builder(workers));
        let s = b.build().unwrap();
        let handle = s.handle();
        let (tx, rx) = mpsc::channel();
        let ran = Arc::new(AtomicUsize::new(0));
        let r = ran.clone();
        let h = handle.spawn(move || {
            // Queued behind us; still runs: a drop is a graceful shutdown.
            let r2 = r.clone();
            filch::spawn_detached(move || {
                r2.fetch_add(1, SeqCst);
            })
            .unwrap();
            drop(s); // closes the scheduler and returns
            tx.send(()).unwrap();
            r.fetch_add(1, SeqCst);
            6
        });
        rx.recv().unwrap();
        assert_eq!(h.join().unwrap(), 6);
        assert!(matches!(handle.try_spawn(|| ()).map_err(|e| e.kind()), Err(SpawnErrorKind::ShutDown)));
        drop(handle);
        // The last worker to leave frees the state.
        eventually("the last worker freed the shared state", || state.upgrade().is_none());
        assert_eq!(ran.load(SeqCst), 2);
    }
}

// Case 6: a deep chain of child tokens drops without recursion.
#[test]
fn a_deep_cancel_token_chain_drops_iteratively() {
    // 256 KiB of stack: a recursive drop of a million nodes would need far more.
    std::thread::Builder::new()
        .stack_size(256 << 10)
        .spawn(|| {
            let root = CancelToken::new();
            let mut leaf = root.child();
            for _ in 0..1_000_000 {
                leaf = leaf.child();
            }
            assert!(!leaf.is_cancelled());
            root.cancel();
            assert!(leaf.is_cancelled());
            drop(root);
            drop(leaf);
            // A chain whose middle is still shared stops the walk there.
            let root = CancelToken::new();
            let mid = root.child().child();
            let mut leaf = mid.child();
            for _ in 0..100_000 {
                leaf = leaf.child();
            }
            drop(leaf);
            mid.cancel();
            assert!(mid.is_cancelled() && !root.is_cancelled());
        })
        .unwrap()
        .join()
        .unwrap();
}

// Case 7: a timed-out shutdown frees its state once its last worker leaves.
#[test]
fn a_timed_out_shutdown_frees_its_state_when_the_last_worker_leaves() {
    for workers in [1, 2] {
        let (b, state) = state_observer(builder(workers));
        let s = b.build().unwrap();
        let (started_tx, started) = mpsc::channel();
        let (release, release_rx) = mpsc::channel::<()>();
        let h = s.spawn(move || {
            started_tx.send(()).unwrap();
            release_rx.recv().unwrap();
            9
        });
        started.recv().unwrap();
        let queued: Vec<_> = (0..10).map(|i| s.spawn(move || i)).collect();
        let err = s.shutdown_timeout(Duration::from_millis(1)).unwrap_err();
        // The blocked worker, and perhaps the other one, woken for the shutdown but not yet
        // gone when the count was taken.
        assert!((1..=workers).contains(&err.still_running), "{err}");
        release.send(()).unwrap();
        assert_eq!(h.join().unwrap(), 9);
        for q in queued {
            // Either abandoned by the shutdown or run by a worker before it saw the timeout.
            assert!(matches!(q.join(), Ok(_) | Err(TaskError::ShutDown)));
        }
        eventually("the last worker freed the shared state", || state.upgrade().is_none());
    }
}

/// Spawns a chain of `depth` tasks, each spawning the next from inside; counts each.
fn chain(count: Arc<AtomicUsize>, depth: usize) {
    count.fetch_add(1, SeqCst);
    if depth > 1 {
        filch::spawn_detached(move || chain(count, depth - 1)).unwrap();
    }
}

// Case 8a: a graceful shutdown runs what running tasks fork, to the end.
#[test]
fn graceful_shutdown_runs_nested_spawns_to_completion() {
    for workers in [1, 2] {
        let panics = Arc::new(AtomicUsize::new(0));
        let p = panics.clone();
        let s = builder(workers)
            .panic_handler(move |_| {
                p.fetch_add(1, SeqCst);
            })
            .build()
            .unwrap();
        let handle = s.handle();
        let count = Arc::new(AtomicUsize::new(0));
        let joined = Arc::new(AtomicUsize::new(0));
        let (go_tx, go) = mpsc::channel::<()>();
        let (c, j) = (count.clone(), joined.clone());
        s.spawn_detached(move || {
            go.recv().unwrap();
            chain(c.clone(), 500);
            // Handles, `join`, `scope` and panicking children, all forked during the drop.
            let hs: Vec<_> = (0..50).map(|i| filch::spawn(move || i)).collect();
            let sum: usize = hs.into_iter().map(|h| h.join().unwrap()).sum();
            let (a, b) = filch::join(|| 1, || 2);
            filch::scope(|sc| {
                for _ in 0..10 {
                    sc.spawn(|_| {
                        j.fetch_add(1, SeqCst);
                    });
                }
            });
            for _ in 0..5 {
                filch::spawn_detached(|| panic!("nested panic")).unwrap();
            }
            j.fetch_add(sum + a + b, SeqCst);
        })
        .unwrap();
        let dropper = std::thread::spawn(move || drop(s));
        // Once the drop has closed the scheduler to outside spawns, let the root fork.
        eventually("the drop closed the scheduler", || handle.spawn_detached(|| ()).is_err());
        go_tx.send(()).unwrap();
        dropper.join().unwrap();
        assert_eq!(count.load(SeqCst), 500);
        assert_eq!(joined.load(SeqCst), 10 + (0..50).sum::<usize>() + 3);
        assert_eq!(panics.load(SeqCst), 5);
    }
}

// Case 8b: a `join` half drained by a timed-out shutdown spawns on that scheduler (which
// refuses), not on the global default.
#[test]
fn drained_join_halves_spawn_on_their_own_scheduler() {
    let s = builder(1).build().unwrap();
    let handle = s.handle();
    let (started_tx, started) = mpsc::channel();
    let (release, release_rx) = mpsc::channel::<()>();
    let blocker = s.spawn(move || {
        started_tx.send(()).unwrap();
        release_rx.recv().unwrap();
    });
    started.recv().unwrap();
    let injected_before = handle.stats().external.injected;
    let h2 = handle.clone();
    // `join` from outside: the whole construct is queued as one stack job, behind the
    // blocker, and this thread waits for it.
    let joiner = std::thread::spawn(move || {
        h2.join(
            || {
                let spawned = filch::spawn(|| 1).join();
                let detached = filch::spawn_detached(|| ()).map_err(|e| e.kind());
                let (x, y) = filch::join(|| 2, || 3);
                (spawned, detached, x + y, filch::current().is_none())
            },
            || 4,
        )
    });
    eventually("the join was queued", || handle.stats().external.injected > injected_before);
    let err = s.shutdown_timeout(Duration::from_millis(1)).unwrap_err();
    assert_eq!(err.still_running, 1);
    let ((spawned, detached, sum, off_worker), four) = joiner.join().unwrap();
    assert!(matches!(spawned, Err(TaskError::ShutDown)), "{spawned:?}");
    assert_eq!(detached, Err(SpawnErrorKind::ShutDown));
    assert_eq!((sum, off_worker, four), (5, true, 4));
    release.send(()).unwrap();
    blocker.join().unwrap();
}

// ---------------------------------------------------------------------------------------
// Fault-injection stress: random panics in bodies, closure/output/payload drops and hooks,
// cancels and handle drops racing the work and the shutdown, exactly-once accounting.

/// Counts one event per id: a closure's capture dropped, a body run, an output dropped.
struct Ledger {
    captures_dropped: Vec<AtomicUsize>,
    bodies_run: Vec<AtomicUsize>,
    outputs_dropped: Vec<AtomicUsize>,
}

impl Ledger {
    fn new(n: usize) -> Arc<Ledger> {
        let v = || (0..n).map(|_| AtomicUsize::new(0)).collect();
        Arc::new(Ledger { captures_dropped: v(), bodies_run: v(), outputs_dropped: v() })
    }
}

/// A task's capture: counts its drop; may panic in it; may be large (a heap task).
struct Capture {
    ledger: Arc<Ledger>,
    id: usize,
    panic_on_drop: bool,
    _pad: Option<Box<[u8; 1024]>>,
}
impl Drop for Capture {
    fn drop(&mut self) {
        self.ledger.captures_dropped[self.id].fetch_add(1, SeqCst);
        if self.panic_on_drop {
            panic!("capture drop {}", self.id);
        }
    }
}

/// A task's output: counts its drop; may panic in it.
struct Output {
    ledger: Arc<Ledger>,
    id: usize,
    panic_on_drop: bool,
}
impl Drop for Output {
    fn drop(&mut self) {
        self.ledger.outputs_dropped[self.id].fetch_add(1, SeqCst);
        if self.panic_on_drop {
            panic!("output drop {}", self.id);
        }
    }
}

/// A panic payload whose drop panics.
struct PayloadBomb;
impl Drop for PayloadBomb {
    fn drop(&mut self) {
        panic!("payload drop");
    }
}

/// xorshift64*.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

#[derive(Clone, Copy)]
enum Body {
    Returns,
    Panics,
    PanicsWithBomb,
}

fn stress_round(seed: u64, tasks: usize) {
    let mut rng = Rng(seed | 1);
    let ledger = Ledger::new(tasks);
    let workers = 1 + rng.below(3) as usize;
    let hook_panics = rng.below(2) == 0;
    let b = builder(workers)
        .panic_handler(|p| {
            // Now and then the handler itself panics, with a payload that panics on drop.
            if p.downcast_ref::<String>().is_some_and(|m| m.len() % 2 == 1) {
                panic_any(PayloadBomb);
            }
        })
        .on_thread_stop(move |i| {
            if hook_panics {
                panic!("stop hook {i}");
            }
        });
    let s = b.build().unwrap();
    let mut handles = Vec::new();
    let mut expect_output = Vec::with_capacity(tasks);
    for id in 0..tasks {
        let body = match rng.below(4) {
            0 => Body::Panics,
            1 => Body::PanicsWithBomb,
            _ => Body::Returns,
        };
        // At most one panicking drop per task, and none while its body unwinds: a panic
        // during a panic aborts the process, in any runtime.
        let returns = matches!(body, Body::Returns);
        let drop_panics = returns && rng.below(8) == 0;
        let capture = Capture {
            ledger: ledger.clone(),
            id,
            panic_on_drop: drop_panics,
            _pad: (rng.below(4) == 0).then(|| Box::new([0; 1024])),
        };
        let big = rng.below(4) == 0;
        let output_panics = returns && !drop_panics && rng.below(8) == 0;
        let f = move || {
            let c = capture;
            c.ledger.bodies_run[c.id].fetch_add(1, SeqCst);
            let (ledger, id) = (c.ledger.clone(), c.id);
            // Dropped before the output exists (a panicking drop then makes the body panic).
            drop(c);
            match body {
                Body::Returns => Output { ledger, id, panic_on_drop: output_panics },
                Body::Panics => panic!("body {id}"),
                Body::PanicsWithBomb => panic_any(PayloadBomb),
            }
        };
        expect_output.push(returns && !drop_panics);
        match rng.below(4) {
            0 => {
                // Detached (the output, if any, is dropped by the worker).
                s.spawn_detached(move || drop(f())).unwrap();
            }
            _ if big => {
                let pad = [1u8; 300];
                handles.push((id, s.spawn(move || (f(), pad).0)));
            }
            _ => handles.push((id, s.spawn(f))),
        }
    }
    // Cancels, joins and drops of handles, from other threads, racing the workers and the
    // shutdown below.
    let mut groups: Vec<Vec<(usize, filch::JoinHandle<Output>)>> = vec![Vec::new(), Vec::new()];
    for (k, h) in handles.into_iter().enumerate() {
        groups[k % 2].push(h);
    }
    let threads: Vec<_> = groups
        .into_iter()
        .enumerate()
        .map(|(g, hs)| {
            let seed = seed.wrapping_add(g as u64 + 1);
            std::thread::spawn(move || {
                let mut rng = Rng(seed | 1);
                for (_id, h) in hs {
                    match rng.below(3) {
                        0 => {
                            h.cancel();
                            drop(h);
                        }
                        1 => {
                            // Dropping a joined output or error may panic (Output's or
                            // PayloadBomb's drop): the caller's own code, on its own thread.
                            // Those panics carry strings, safe to drop.
                            let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(h.join())));
                            drop(r);
                        }
                        _ => drop(h),
                    }
                }
            })
        })
        .collect();
    if rng.below(2) == 0 {
        drop(s);
    } else {
        let _ = s.shutdown_timeout(Duration::from_micros(rng.below(200)));
    }
    for t in threads {
        t.join().unwrap();
    }
    // Every task: its capture dropped exactly once, its body run at most once, and an
    // output it produced dropped exactly once. (A timed-out shutdown's detached workers
    // may still be finishing their last task: wait for the ledger to settle.)
    eventually("every capture dropped", || ledger.captures_dropped.iter().all(|c| c.load(SeqCst) >= 1));
    for (id, &expect) in expect_output.iter().enumerate() {
        let dropped = ledger.captures_dropped[id].load(SeqCst);
        let run = ledger.bodies_run[id].load(SeqCst);
        assert_eq!(dropped, 1, "task {id}: capture dropped {dropped} times");
        assert!(run <= 1, "task {id}: body ran {run} times");
        if run == 1 && expect {
            eventually("the output dropped", || ledger.outputs_dropped[id].load(SeqCst) >= 1);
        }
        let out = ledger.outputs_dropped[id].load(SeqCst);
        assert_eq!(out, usize::from(run == 1 && expect), "task {id}: output dropped {out} times");
    }
}

/// Task panics on the workers are the point of these tests: the default hook's report (and
/// backtrace) for each would only slow the stress down. Panics elsewhere (a failed
/// assertion on a test thread) are still reported.
fn quiet_worker_panics() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !std::thread::current().name().is_some_and(|n| n.starts_with("filch-")) {
                default(info);
            }
        }));
    });
}

#[test]
fn fault_injection_stress_exactly_once() {
    quiet_worker_panics();
    let seed0 = std::env::var("FILCH_FAULTS_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_u64);
    for round in 0..150 {
        stress_round(seed0.wrapping_mul(31).wrapping_add(round), 200);
    }
}

// The same stress with stderr closed half way through: the runtime's reports start
// failing mid-run.
#[test]
fn fault_injection_stress_with_stderr_closed_half_way() {
    if is_child("fault_injection_stress_with_stderr_closed_half_way") {
        child_wait_for_go();
        quiet_worker_panics();
        for round in 0..10 {
            stress_round(0xC105ED + round, 200);
        }
        println!("CHILD-OK");
        return;
    }
    let case = "fault_injection_stress_with_stderr_closed_half_way";
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([case, "--exact", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, case)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(b"go\n").unwrap();
    // Read the first report line, then close the pipe: later reports hit EPIPE.
    let mut err = std::io::BufReader::new(child.stderr.take().unwrap());
    let mut first = String::new();
    err.read_line(&mut first).unwrap();
    drop(err);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success() && stdout.contains("CHILD-OK"), "child failed: {}\n{stdout}", out.status);
}

/// An output nobody reads (its handle dropped before the task ran, so the worker takes its
/// counted fast path) whose drop panics: the panic is contained, the task is counted once
/// and not as a panic, and the worker carries on.
#[test]
fn an_unread_output_whose_drop_panics_is_contained() {
    quiet_worker_panics();
    struct Loud(mpsc::Sender<()>);
    impl Drop for Loud {
        fn drop(&mut self) {
            self.0.send(()).unwrap();
            panic!("output drop");
        }
    }
    let s = builder(1).build().unwrap();
    let (started_tx, started_rx) = mpsc::channel::<()>();
    let (hold_tx, hold_rx) = mpsc::channel::<()>();
    // The one worker stays in `gate` until the handle below is gone.
    let gate = s.spawn(move || {
        started_tx.send(()).unwrap();
        hold_rx.recv().unwrap();
    });
    started_rx.recv().unwrap();
    let (dropped_tx, dropped_rx) = mpsc::channel::<()>();
    let h = s.spawn(move || Loud(dropped_tx));
    drop(h);
    hold_tx.send(()).unwrap();
    gate.join().unwrap();
    dropped_rx.recv().unwrap();
    assert_eq!(s.spawn(|| 5).join().unwrap(), 5);
    let st = s.stats().total;
    assert_eq!((st.completed, st.panicked), (3, 0));
}
