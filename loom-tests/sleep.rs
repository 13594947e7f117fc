//! Loom models of the wake protocol (`src/sleep.rs`, K1–K5) on the real `Sleep` and
//! `Parker`, with a stand-in queue: a count of queued tasks.
//!
//! Each worker runs the loop of `worker.rs` with `Idle::Park { spins: 0, yields: 0 }`:
//! take a task (and end a search by K4), or become a searcher if the cap allows, announce
//! sleep (K3), re-check the queue, then cancel or park, and after waking count as a
//! searcher again (K5). The spawner (the model's thread) pushes each task, then runs K1
//! (`notify`) and unparks the worker it returns. In `two_workers` it then waits (parked)
//! until every task was taken and only then shuts the workers down, so the shutdown never
//! rescues a task that nobody was woken for; in the other models no worker can be asleep
//! once every task was taken, and the workers simply stop then.
//!
//! What is asserted: every task is taken exactly once (the count of takes equals the count
//! of pushes, and the queue is empty at the end) and — the point of the protocol — it is
//! taken at all: a lost wake-up leaves a task queued with every worker parked and the
//! spawner waiting, which loom reports as a deadlock. Those mutants are shown with
//! `in_child` (`task.rs`), because a loom deadlock with threads parked inside a `Condvar`
//! aborts the test process.
//!
//! # The mutant no model can catch: `SleepSearchingRelease`
//!
//! K3's Release decrement of `searching` is implied by the two SC fences, so weakening it
//! to Relaxed changes no outcome (checked: `one_worker` up to 5 preemptions, `handoff` up
//! to 3, and the real scheduler's `sched_external_injection`, all pass with the mutant).
//! A waker that reads the decrement runs `F1; R(searching); R(bits)` (K1's fence, or K4's,
//! comes before its loads); the sleeper runs `W(bit); W(searching); F3; R(queue)`. If F3
//! precedes F1 in the SC order, `W(bit)` is sequenced before F3 and `R(bits)` after F1, so
//! `R(bits)` sees the bit (the fence rule of C++20 [atomics.order]); if F1 precedes F3, the
//! sleeper's re-check sees the task published before F1 and it does not sleep. The Release
//! adds nothing either way; it is kept as documentation of the pairing, not tested.

use filch::loom_api::Sleep;
use filch::sync::Parker;
use loom::sync::atomic::{AtomicBool, AtomicUsize, Ordering::*};
use loom::sync::Arc;
use loom::thread;

use crate::model;
use crate::task::{model_capped, mutant_test};

/// The scheduler's parts that the protocol touches.
struct Sys {
    sleep: Sleep,
    /// One per worker (`WorkerSlot::parker`).
    parkers: Vec<Parker>,
    /// The stand-in queue: how many tasks are queued.
    queued: AtomicUsize,
    /// Tasks taken so far, and how many will be pushed.
    taken: AtomicUsize,
    tasks: usize,
    /// The spawner parks here until every task was taken.
    spawner: Parker,
    /// For `handoff`: the first task taken waits on this until the second is taken.
    blocker: Parker,
    closed: AtomicBool,
    needs_shutdown: bool,
}

impl Sys {
    fn new(workers: usize, tasks: usize, handoff: bool) -> Arc<Sys> {
        let needs_shutdown = workers > 1 && !handoff;
        Arc::new(Sys {
            sleep: Sleep::new(workers),
            parkers: (0..workers).map(|_| Parker::new()).collect(),
            queued: AtomicUsize::new(0),
            taken: AtomicUsize::new(0),
            tasks,
            spawner: Parker::new(),
            blocker: Parker::new(),
            closed: AtomicBool::new(false),
            needs_shutdown,
        })
    }

    /// Publishes a task (Release, like a queue push), then K1 (+ K2 through `notify`).
    fn spawn(&self) {
        self.queued.fetch_add(1, Release);
        if let Some(w) = self.sleep.notify() {
            self.parkers[w].unpark();
        }
    }

    /// Takes one task if any is queued (Acquire, like a queue pop). Returns its number in
    /// the order of takes.
    fn try_take(&self) -> Option<usize> {
        // Relaxed: a starting guess for the CAS.
        let mut n = self.queued.load(Relaxed);
        while n > 0 {
            match self.queued.compare_exchange(n, n - 1, Acquire, Relaxed) {
                // Relaxed: a count; the spawner reads it after a token from the last taker.
                Ok(_) => return Some(self.taken.fetch_add(1, Relaxed)),
                Err(actual) => n = actual,
            }
        }
        None
    }

    /// The re-check of K3/K4 (`Shared::has_visible_work`).
    fn has_work(&self) -> bool {
        // Acquire: like a queue's emptiness check.
        self.queued.load(Acquire) != 0
    }

    /// The workers' exit condition (`is_closed() && !has_visible_work()`). Where no
    /// worker can be asleep once every task was taken (one worker; or `handoff`, where each
    /// worker holds a task when the last one is taken), "every task taken" replaces the
    /// shutdown, which keeps the model small.
    fn done(&self) -> bool {
        if !self.needs_shutdown {
            // Relaxed: a worker's own take, or the blocked taker's unpark, orders it.
            return self.taken.load(Relaxed) == self.tasks;
        }
        // Acquire: pairs with the shutdown's store (the unpark orders it too).
        self.closed.load(Acquire) && !self.has_work()
    }

    /// After every task was taken: stop the workers as `Scheduler::close` does. No SC fence
    /// is needed: a worker whose K3 bit-set comes after `wake_all`'s swap in the bitmap's
    /// modification order reads that Release swap, and K3's `fence(SeqCst)` after it acts
    /// as an Acquire fence, so the worker's re-check sees `closed`.
    fn shut_down(&self) {
        // Release: the workers' Acquire load in `done` (the unparks order it too).
        self.closed.store(true, Release);
        for w in self.sleep.wake_all() {
            self.parkers[w].unpark();
        }
    }

    /// The spawner: push every task with K1, wait until all were taken, shut down.
    fn spawner_main(&self) {
        for _ in 0..self.tasks {
            self.spawn();
        }
        if !self.needs_shutdown {
            return;
        }
        // Relaxed: the last taker's unpark orders its count before the park returns.
        while self.taken.load(Relaxed) < self.tasks {
            self.spawner.park();
        }
        self.shut_down();
    }

    /// Runs task number `k` (in the order of takes). With `handoff`, task 0 blocks until
    /// task 1 was taken by someone else: a task that waits on another worker.
    fn run(&self, k: usize, handoff: bool) {
        if handoff && k == 0 {
            // Relaxed: the taker of task 1 unparks `blocker` after its count.
            while self.taken.load(Relaxed) < 2 {
                self.blocker.park();
            }
        }
        if handoff && k == 1 {
            self.blocker.unpark();
        }
        if k + 1 == self.tasks && self.needs_shutdown {
            self.spawner.unpark();
        }
    }

    /// `WorkerCtx::stop_searching`: K4.
    fn stop_searching(&self, searching: &mut bool) {
        if std::mem::replace(searching, false) && self.sleep.stop_searching() && self.has_work() {
            if let Some(w) = self.sleep.wake_one() {
                self.parkers[w].unpark();
            }
        }
    }

    /// `worker_main` → `run_until(exit)` → `find_task` / `idle`, with `Idle::Park` and no
    /// search rounds.
    fn worker_main(&self, i: usize, handoff: bool) {
        let mut searching = false;
        loop {
            if self.done() {
                self.stop_searching(&mut searching);
                return;
            }
            if let Some(k) = self.try_take() {
                self.stop_searching(&mut searching);
                self.run(k, handoff);
                continue;
            }
            // idle(): become a searcher if the cap allows (no search rounds follow).
            if !searching && self.sleep.try_start_searching() {
                searching = true;
            }
            // K3.
            let was_searching = std::mem::replace(&mut searching, false);
            self.sleep.prepare_sleep(i, was_searching);
            if self.has_work() || self.done() {
                self.sleep.cancel_sleep(i);
                searching = true;
                continue;
            }
            self.parkers[i].park();
            // K5 (or woken by K2, which already counted us).
            self.sleep.cancel_sleep(i);
            searching = true;
        }
    }
}

/// Runs `workers` workers on their own threads and the spawner on the model's thread.
fn run_model(workers: usize, tasks: usize, handoff: bool) {
    let sys = Sys::new(workers, tasks, handoff);
    let threads: Vec<_> = (0..workers)
        .map(|i| {
            let sys = sys.clone();
            thread::spawn(move || sys.worker_main(i, handoff))
        })
        .collect();
    sys.spawner_main();
    for t in threads {
        t.join().unwrap();
    }
    // Relaxed: every thread was joined.
    assert_eq!(sys.taken.load(Relaxed), tasks, "every task is taken exactly once");
    assert_eq!(sys.queued.load(Relaxed), 0, "nothing is left queued");
}

/// One worker, one spawner, two tasks: the spawn racing the only worker going to sleep
/// (K1 against K3), and again after it woke (K5) and went back to sleep. 0.04 s at three
/// preemptions, 0.9 s at five.
fn one_worker() {
    model(3, || run_model(1, 2, false));
}

/// Two workers, one spawner, two tasks, then the shutdown: K2 picks one of two sleepers, a
/// woken worker counts as a searcher so the second spawn may rely on it, and the shutdown's
/// `wake_all` races workers going to sleep (one of them may never get a task). Capped at
/// one preemption: 0.8 s there, 38 s at two.
fn two_workers() {
    model_capped(1, 1, || run_model(2, 2, false));
}

/// Two workers, two tasks, the first of which waits until the second was taken: the
/// second spawn sees a searcher (often the worker K2 woke for the first task) and wakes
/// nobody; that searcher then takes the first task and blocks in it, so unless its K4
/// re-check sees the second task and wakes the other worker, nobody ever takes it.
/// 1.7 s at two preemptions, 37 s at three (the cap).
fn handoff() {
    model_capped(2, 3, || run_model(2, 2, true));
}

#[test]
fn sleep_one_worker() {
    one_worker();
}

#[test]
fn sleep_two_workers() {
    two_workers();
}

#[test]
fn sleep_handoff() {
    handoff();
}

// Mutation evidence: each test weakens one site and runs the model that catches it (in a
// child process, see `crate::task::in_child`); it passes only if the model fails.

mutant_test!(
    /// K1 without its SC fence: the spawner misses the worker's decrement while the
    /// worker's re-check misses the task.
    mutant_sleep_notify_fence_caught_by_one_worker,
    SleepNotifyFence,
    one_worker,
    "deadlock; threads"
);

mutant_test!(
    /// K3 without its SC fence: the other side of the same store-buffering pair.
    mutant_sleep_prepare_fence_caught_by_one_worker,
    SleepPrepareFence,
    one_worker,
    "deadlock; threads"
);

mutant_test!(
    /// K4 without its SC fence: the last searcher leaves without seeing the task that a
    /// spawner left to it.
    mutant_sleep_handoff_fence_caught_by_handoff,
    SleepHandoffFence,
    handoff,
    "deadlock; threads"
);
