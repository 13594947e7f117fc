//! Loom models of the task state machine (`src/task.rs`, T1–T5) and `JoinHandle`.
//!
//! Each model builds one heap task with no scheduler (`filch::loom_api::heap_task`) and
//! drives it the way a worker does (`worker.rs`, `run_task`: T1 claim, run, T2 complete,
//! T5 release) on one thread while another thread joins it, drops its handle, or cancels
//! it. Every model asserts exactly-once:
//!
//! - the closure runs at most once and is dropped exactly once (run or abandoned), and
//!   exactly one of "ran" and "cancelled" happens;
//! - the output is received exactly once by `join` (with the right value, or the right
//!   `TaskError`) or, with no joiner, dropped exactly once;
//! - the task's memory is freed exactly once. The test binary's allocator watches the one
//!   address (it counts deallocations of it and keeps the block, so the address cannot be
//!   reused and a double free is counted, not corrupting).
//!
//! Happens-before is checked with loom cells: the task body writes `World::data`; the
//! joiner reads it through the output, or whoever drops the output writes it again; so a
//! missing Release/Acquire between the completer and the output's consumer is a
//! `Causality violation`. The task's memory is represented the same way: every holder
//! reads `World::memory` before its T5 release and the thread that frees the task writes
//! it, so a free not ordered after another holder's accesses is caught too (loom cannot see
//! a free of plain memory by itself).
//!
//! The output's destructor runs inside the task's `catch_unwind` (a panicking destructor
//! must not unwind into the scheduler), which would swallow loom's panic; it records the
//! failure instead (`recorded`) and the model re-raises it at the end.
//!
//! The `mutant_*` tests at the bottom weaken one site each and run the model that catches
//! it. The helpers they share with `sleep.rs` and `sched.rs` live here: `in_child` and
//! `mutant_test!` (a failing loom model may abort the process, so mutants run in a child
//! process), and `model_capped`.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::{Cell, RefCell};
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::process::Command;
use std::time::Duration;

use filch::loom_api::{heap_task, QueuedTask, TaskAddr};
use filch::{JoinHandle, TaskError};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicUsize, Ordering::Relaxed};
use loom::sync::Arc;
use loom::thread;

/// What the task body returns (inside its `Output`).
const VALUE: usize = 42;

// ---------------------------------------------------------------------------------------
// The watched free.

/// The system allocator, except that a deallocation of the one address a model watches is
/// counted and kept (see the module docs). Inert for every other address and thread.
struct WatchingAllocator;

#[global_allocator]
static ALLOCATOR: WatchingAllocator = WatchingAllocator;

std::thread_local! {
    /// The watched address (0: none). Loom runs a model's threads on one OS thread, so
    /// thread-locals are per test and shared by the model's threads.
    static WATCHED: Cell<usize> = const { Cell::new(0) };
    /// How often the watched address was deallocated, and its layout.
    static FREES: Cell<usize> = const { Cell::new(0) };
    static FREED_LAYOUT: Cell<Option<Layout>> = const { Cell::new(None) };
    /// Set by the deallocation; taken by the model thread whose call freed the task.
    static JUST_FREED: Cell<bool> = const { Cell::new(false) };
}

// SAFETY: every call is forwarded to `System` with the caller's arguments, except the
// deallocation of the watched block, which is kept (leaked until `Watch::finish` hands it
// to `System` once) — keeping a block is always allowed.
unsafe impl GlobalAlloc for WatchingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: forwarded.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: forwarded; the watched block is a task, never reallocated.
        unsafe { System.realloc(ptr, layout, new_size) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // `try_with`: during thread teardown the thread-locals may be gone; nothing is
        // watched then.
        if WATCHED.try_with(|w| w.get() == ptr as usize && w.get() != 0).unwrap_or(false) {
            FREES.with(|f| f.set(f.get() + 1));
            FREED_LAYOUT.with(|l| l.set(Some(layout)));
            JUST_FREED.with(|j| j.set(true));
            return;
        }
        // SAFETY: forwarded.
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Watches one task's memory for the rest of a model execution.
struct Watch(usize);

impl Watch {
    fn new(addr: usize) -> Watch {
        WATCHED.with(|w| w.set(addr));
        FREES.with(|f| f.set(0));
        FREED_LAYOUT.with(|l| l.set(None));
        JUST_FREED.with(|j| j.set(false));
        Watch(addr)
    }

    /// Stops watching; asserts the task was freed exactly once and really frees it.
    fn finish(self) {
        WATCHED.with(|w| w.set(0));
        let frees = FREES.with(Cell::get);
        if let Some(layout) = FREED_LAYOUT.with(Cell::take) {
            // SAFETY: the block was allocated by `System` with this layout and kept by
            // `WatchingAllocator::dealloc`; it is handed back once, here.
            unsafe { System.dealloc(self.0 as *mut u8, layout) };
        }
        assert_eq!(frees, 1, "the task's memory must be freed exactly once");
    }
}

/// Whether the task was freed since the last call. Called by a model thread right after a
/// call that drops a task reference: no other model thread can run between that call's T5
/// decrement and the free that follows it (neither is a loom operation in between), and no
/// other thread can free the task while this one still holds a reference.
fn just_freed() -> bool {
    JUST_FREED.with(|j| j.replace(false))
}

// ---------------------------------------------------------------------------------------
// Model runners, and mutants whose failure aborts the process.

/// Runs `f` under loom with no preemption bound: every interleaving (up to loom's
/// partial-order reduction), whatever `LOOM_MAX_PREEMPTIONS` says. For the two-thread task
/// models, which take at most a few seconds so.
fn exhaustive<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = None;
    b.check(f);
}

/// Like `crate::model`, but never above `max` preemptions, whatever
/// `LOOM_MAX_PREEMPTIONS` asks: for models whose run time grows 10–40× per preemption (the
/// bounds and times are in each model's docs).
pub(crate) fn model_capped<F: Fn() + Sync + Send + 'static>(default_bound: usize, max: usize, f: F) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(b.preemption_bound.unwrap_or(default_bound).min(max));
    b.check(f);
}

/// Set in the environment of the child process that `in_child` starts.
const CHILD_ENV: &str = "FILCH_LOOM_MUTANT_CHILD";

/// Runs `model` in a child process (this test binary, filtered to the test `name`, a path
/// below the crate root such as `task::mutant_x`) and panics here, with the child's
/// stderr, if the model failed there (a panic or an abort); returns if it passed.
///
/// A failing model cannot always fail in-process: when loom panics (a causality violation,
/// a deadlock) while a model thread still holds loom objects — a parked thread's
/// `MutexGuard` inside `Condvar::wait`, the `JoinHandle`'s loom thread-local parker —
/// dropping them outside the model panics again and aborts the test binary. The child's
/// abort (or plain failure) is the expected outcome of a mutant; the `#[should_panic]`
/// test in the parent matches loom's message in the stderr carried by this panic.
pub(crate) fn in_child(name: &str, model: impl FnOnce()) {
    if std::env::var_os(CHILD_ENV).is_some() {
        // Exit 0 exactly when the model passed, before libtest judges the
        // `#[should_panic]` test (it would call a clean panic a success and a pass a
        // failure).
        let passed = catch_unwind(AssertUnwindSafe(model)).is_ok();
        std::process::exit(if passed { 0 } else { 101 });
    }
    let out = Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("start the child test process");
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        // filch's own reports ("filch: …", and the panic hook's header line of a panic
        // whose message is one, such as an injected fault) and blank lines repeat in every
        // execution and would push loom's message out; loom's messages come first among the rest, and the
        // tail is the abort's noise.
        let mut kept = String::new();
        let mut lines = stderr.lines().peekable();
        while let Some(line) = lines.next() {
            let next_is_filch = lines.peek().is_some_and(|l| l.starts_with("filch: "));
            let noise = line.trim().is_empty() || line.starts_with("filch: ");
            if noise || (line.starts_with("thread '") && next_is_filch) {
                continue;
            }
            kept.push_str(line);
            kept.push('\n');
        }
        let head: String = kept.chars().take(4000).collect();
        panic!("the model failed in a child process ({}):\n{head}", out.status);
    }
}

/// A `#[should_panic]` test that runs `$model` with `$site`'s mutant in a child process
/// (`in_child`) and expects `$expected` in its failure.
macro_rules! mutant_test {
    ($(#[$doc:meta])* $name:ident, $site:ident, $model:path, $expected:literal) => {
        $(#[$doc])*
        #[test]
        #[should_panic(expected = $expected)]
        fn $name() {
            let module = module_path!().split_once("::").map_or("", |(_, m)| m);
            $crate::task::in_child(&format!("{module}::{}", stringify!($name)), || {
                filch::sync::mutation::set(filch::sync::mutation::Site::$site);
                $model();
            });
        }
    };
}
pub(crate) use mutant_test;

// ---------------------------------------------------------------------------------------
// Failures that a `catch_unwind` inside filch would swallow.

std::thread_local! {
    static SWALLOWED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Runs `f`, recording (instead of propagating) a panic, for code that filch runs under
/// `catch_unwind`.
fn recorded(f: impl FnOnce()) {
    if let Err(p) = catch_unwind(AssertUnwindSafe(f)) {
        let msg = p
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| p.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a non-string panic".to_string());
        SWALLOWED.with(|s| s.borrow_mut().get_or_insert(msg).len());
    }
}

/// Re-raises a recorded failure of this execution.
fn reraise_recorded() {
    if let Some(msg) = SWALLOWED.with(|s| s.borrow_mut().take()) {
        panic!("{msg}");
    }
}

// ---------------------------------------------------------------------------------------
// The task and what it touches.

/// Shared by the model's threads.
struct World {
    /// Written by the task body, read by the joiner, written by whoever drops the output.
    data: UnsafeCell<usize>,
    /// Read by each holder of a task reference before its T5 release; written by the thread
    /// that frees the task.
    memory: UnsafeCell<()>,
    ran: AtomicUsize,
    closure_drops: AtomicUsize,
    output_drops: AtomicUsize,
}

impl World {
    fn new() -> Arc<World> {
        Arc::new(World {
            data: UnsafeCell::new(0),
            memory: UnsafeCell::new(()),
            ran: AtomicUsize::new(0),
            closure_drops: AtomicUsize::new(0),
            output_drops: AtomicUsize::new(0),
        })
    }

    /// Before dropping a task reference.
    fn touch_memory(&self) {
        self.memory.with(|_| ());
    }

    /// After a call that dropped a task reference: the free, if this call did it.
    fn note_free(&self) {
        if just_freed() {
            self.memory.with_mut(|_| ());
        }
    }

    fn count(c: &AtomicUsize) -> usize {
        // Relaxed: read after every model thread was joined.
        c.load(Relaxed)
    }
}

/// A raw pointer to the model's `World`, which outlives every task (the model joins every
/// thread and drops every handle before it drops its `Arc<World>`). Raw, not an `Arc`, so
/// that a mutant that drops a value twice only miscounts instead of corrupting loom.
#[derive(Clone, Copy)]
struct WorldPtr(*const World);

// SAFETY: `World` is `Sync` (loom atomics and cells) and outlives the pointer's uses.
unsafe impl Send for WorldPtr {}

impl WorldPtr {
    fn get(&self) -> &World {
        // SAFETY: the `World` outlives every task (see the type's docs).
        unsafe { &*self.0 }
    }
}

/// Captured by the task's closure: counts the closure's drop (run or abandoned).
struct ClosureGuard(WorldPtr);

impl Drop for ClosureGuard {
    fn drop(&mut self) {
        // Relaxed: a count, read after every thread was joined.
        self.0.get().closure_drops.fetch_add(1, Relaxed);
    }
}

/// The task's output: its drop is counted and writes `data` (which the body wrote).
struct Output(WorldPtr);

impl Output {
    fn value(&self) -> usize {
        // SAFETY: test code; loom checks this read is ordered after the body's write.
        self.0.get().data.with(|d| unsafe { *d })
    }
}

impl Drop for Output {
    fn drop(&mut self) {
        let w = self.0.get();
        // Relaxed: a count, read after every thread was joined.
        if w.output_drops.fetch_add(1, Relaxed) == 0 {
            // SAFETY: test code; loom checks this write is ordered after the body's.
            recorded(|| w.data.with_mut(|d| unsafe { *d = 0 }));
        }
    }
}

/// A task whose body counts its run and writes `VALUE` into `data`. Returns the queue's
/// reference, the handle, the task's address, and a watch on its memory.
fn new_task(world: &Arc<World>) -> (QueuedTask, JoinHandle<Output>, TaskAddr, Watch) {
    let w = WorldPtr(&**world);
    let guard = ClosureGuard(w);
    let body = move || {
        let guard = guard;
        let world = guard.0.get();
        // Relaxed: a count, read after every thread was joined.
        world.ran.fetch_add(1, Relaxed);
        // SAFETY: test code; the body is the first to touch `data`.
        world.data.with_mut(|d| unsafe { *d = VALUE });
        Output(guard.0)
    };
    // SAFETY: no model calls the handle's `cancel` (the cancel model uses `TaskAddr`'s).
    let (queued, handle, addr) = unsafe { heap_task(body) };
    (queued, handle, addr, Watch::new(addr.addr()))
}

/// A worker's `run_task` (`worker.rs`): the real `TaskRef::run` — T1, run, T2–T5 with
/// the detached (F1) and fused (F2) fast paths.
fn run_task(world: &World, task: QueuedTask) {
    // Every holder's access before it gives up its reference (inside `run`).
    world.touch_memory();
    let (_claimed, panicked, payload, freed) = task.run(false);
    assert!(!panicked, "the body never panics by itself");
    if let Some(p) = payload {
        resume_unwind(p);
    }
    assert_eq!(freed, just_freed(), "run reports the free it did");
    if freed {
        world.memory.with_mut(|_| ());
    }
}

/// The result a joiner got, checked against what happened; the output is dropped here.
fn check_joined(world: &World, joined: Result<Output, TaskError>) {
    match joined {
        Ok(out) => assert_eq!(out.value(), VALUE, "join received the body's value"),
        Err(TaskError::Panicked(p)) => resume_unwind(p.into_inner()),
        Err(e) => {
            assert!(matches!(e, TaskError::Cancelled), "unexpected {e:?}");
            assert_eq!(World::count(&world.ran), 0, "a cancelled task never ran");
        }
    }
}

/// The end-of-execution checks shared by every model.
fn check_exactly_once(world: &World, watch: Watch, cancelled: bool) {
    reraise_recorded();
    let ran = World::count(&world.ran);
    assert_eq!(ran + cancelled as usize, 1, "exactly one of ran ({ran}) and cancelled ({cancelled})");
    assert_eq!(World::count(&world.closure_drops), 1, "the closure must be dropped exactly once");
    let drops = World::count(&world.output_drops);
    assert_eq!(drops, ran, "the output must be dropped exactly once (dropped {drops} times)");
    watch.finish();
}

// ---------------------------------------------------------------------------------------
// Models.

/// (a) A worker completes the task while another thread joins it (T2, T3, T4, T5): the
/// joiner registers its parker (or sees `COMPLETE` first), parks, and takes the output.
/// Exhaustive; 0.1 s.
fn join_vs_complete() {
    exhaustive(|| {
        let world = World::new();
        let (task, handle, _, watch) = new_task(&world);
        let worker = {
            let world = world.clone();
            thread::spawn(move || run_task(&world, task))
        };
        world.touch_memory();
        let joined = handle.join();
        world.note_free();
        check_joined(&world, joined);
        worker.join().unwrap();
        check_exactly_once(&world, watch, false);
    });
}

/// (b) A worker completes the task while another thread drops the handle (T3): the output
/// is dropped exactly once, by whichever of the two comes second. Exhaustive; 0.01 s.
fn drop_vs_complete() {
    exhaustive(|| {
        let world = World::new();
        let (task, handle, _, watch) = new_task(&world);
        let worker = {
            let world = world.clone();
            thread::spawn(move || run_task(&world, task))
        };
        world.touch_memory();
        drop(handle);
        world.note_free();
        worker.join().unwrap();
        check_exactly_once(&world, watch, false);
    });
}

/// (c) A worker runs the task while the handle's owner cancels it (T1 decides), then joins.
/// The cancel is `JoinHandle::cancel`'s own sequence (claim, abandon, complete) without its
/// statistics, which need a scheduler; `sched.rs` runs the real `cancel`. Exhaustive;
/// 0.02 s.
fn cancel_vs_complete() {
    exhaustive(|| {
        let world = World::new();
        let (task, handle, addr, watch) = new_task(&world);
        let worker = {
            let world = world.clone();
            thread::spawn(move || run_task(&world, task))
        };
        // SAFETY: we hold the handle; nobody else cancels.
        let cancelled = unsafe { addr.cancel() };
        world.touch_memory();
        let joined = handle.join();
        world.note_free();
        if cancelled {
            assert!(matches!(joined, Err(TaskError::Cancelled)), "a won cancel joins to Cancelled");
        }
        check_joined(&world, joined);
        worker.join().unwrap();
        check_exactly_once(&world, watch, cancelled);
    });
}

/// (d) `join_timeout` racing completion (T4's withdrawal): under loom the zero timeout
/// expires at once, so the joiner registers, then withdraws its waiter unless the task
/// completed first; on a timeout it joins again for real. Exhaustive; 3.4 s.
fn join_timeout_vs_complete() {
    exhaustive(|| {
        let world = World::new();
        let (task, handle, _, watch) = new_task(&world);
        let worker = {
            let world = world.clone();
            thread::spawn(move || run_task(&world, task))
        };
        world.touch_memory();
        let joined = match handle.join_timeout(Duration::ZERO) {
            Ok(joined) => joined,
            Err(handle) => handle.join(),
        };
        world.note_free();
        check_joined(&world, joined);
        worker.join().unwrap();
        check_exactly_once(&world, watch, false);
    });
}

#[test]
fn task_join_vs_complete() {
    join_vs_complete();
}

#[test]
fn task_drop_vs_complete() {
    drop_vs_complete();
}

#[test]
fn task_cancel_vs_complete() {
    cancel_vs_complete();
}

#[test]
fn task_join_timeout_vs_complete() {
    join_timeout_vs_complete();
}

// Mutation evidence: each test weakens one site and runs the model that catches it (in a
// child process, see `in_child`); it passes only if the model fails.

mutant_test!(
    /// T2 without Release: the joiner reads the output the body wrote, unordered.
    mutant_task_complete_release_caught_by_join_vs_complete,
    TaskCompleteRelease,
    join_vs_complete,
    "Causality violation"
);

mutant_test!(
    /// T2 without Release: the handle drops an output it may not see written.
    mutant_task_complete_release_caught_by_drop_vs_complete,
    TaskCompleteRelease,
    drop_vs_complete,
    "Causality violation"
);

mutant_test!(
    /// T2 without Acquire: the completer takes `waiter` unordered with the joiner's write.
    mutant_task_complete_acquire_caught_by_join_vs_complete,
    TaskCompleteAcquire,
    join_vs_complete,
    "Causality violation"
);

mutant_test!(
    /// T3: the completer drops the output although the handle still wants it.
    mutant_task_own_output_check_caught_by_join_vs_complete,
    TaskOwnOutputCheck,
    join_vs_complete,
    "join received the body's value"
);

mutant_test!(
    /// T3: the completer drops the output although the handle drops it too.
    mutant_task_own_output_check_caught_by_drop_vs_complete,
    TaskOwnOutputCheck,
    drop_vs_complete,
    "the output must be dropped exactly once"
);

mutant_test!(
    /// T4 without Release: `waiter` is not published to the completer.
    mutant_task_waiter_release_caught_by_join_vs_complete,
    TaskWaiterRelease,
    join_vs_complete,
    "Causality violation"
);

mutant_test!(
    /// T4 without Release, through `join_timeout`'s register/withdraw/register.
    mutant_task_waiter_release_caught_by_join_timeout_vs_complete,
    TaskWaiterRelease,
    join_timeout_vs_complete,
    "Causality violation"
);

mutant_test!(
    /// T3 without AcqRel: the handle drops an output it may not see written.
    mutant_task_drop_interest_caught_by_drop_vs_complete,
    TaskDropInterestAcqRel,
    drop_vs_complete,
    "Causality violation"
);

// T5's AcqRel is not caught by `join_vs_complete` since the worker's reference release was
// fused into T2's CAS (F2): the joiner, the only other releaser there, already synchronized
// with that CAS through `is_complete`'s Acquire, so its own release's Acquire is redundant
// in that model. `cancel_vs_complete` still needs it.

mutant_test!(
    /// T5 without AcqRel, with a cancel.
    mutant_task_release_caught_by_cancel_vs_complete,
    TaskReleaseAcqRel,
    cancel_vs_complete,
    "Causality violation"
);
