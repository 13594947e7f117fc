//! Worker threads: their start (pinning, the start hook), their outermost loop and exit
//! (the stop hook, D2), a worker lost to a panic that escaped its loop, and the drains
//! that drop queued tasks when no worker will run them (a timed-out shutdown, a
//! scheduler whose workers were all lost). See `worker.rs`, "Lost workers".

use std::cell::Cell;
use std::ptr;

use crate::contain;
use crate::lockfree::deque::Steal;
use crate::lockfree::inject::Pop;
use crate::runtime::roles::Job;
use crate::runtime::shared::Shared;
use crate::runtime::stats::Row;
use crate::runtime::worker::{WorkerCtx, INJECTED_FAULT};
use crate::shim::atomic::Ordering::*;
use crate::shim::mutation::{self, Site};
use crate::shim::{spin_loop, Arc};
use crate::task::TaskRef;

#[cfg(not(loom))]
std::thread_local! {
    static DRAINING: Cell<*const Shared> = const { Cell::new(ptr::null()) };
}

#[cfg(loom)]
loom::thread_local! {
    static DRAINING: Cell<*const Shared> = Cell::new(ptr::null());
}

/// The outermost loop's `before_park`: raises an injected fault, if one is pending
/// (`Builder::inject_loop_panics`); otherwise lets the worker park.
fn maybe_inject_loop_panic(ctx: &WorkerCtx<'_>) -> bool {
    let pending = &ctx.shared().inject_loop_panics;
    // Relaxed: a test's fault counter; only its count matters.
    if pending.load(Relaxed) != 0 && pending.fetch_update(Relaxed, Relaxed, |n| n.checked_sub(1)).is_ok() {
        std::panic::panic_any(INJECTED_FAULT);
    }
    true
}

/// After a panic escaped this worker's run loop: reports it, counts the loss, and
/// hands every queued task to the others (module docs, "Lost workers").
#[cold]
fn lose(ctx: &WorkerCtx<'_>, payload: contain::Payload) {
    // Leave the searcher count as a live worker would: a searcher that vanished would
    // keep spawners from waking anybody.
    ctx.stop_searching();
    Row::bump_owned(&ctx.row().lost, 1);
    let msg = contain::message(&*payload).unwrap_or("<non-string payload>");
    contain::report(format_args!(
        "filch: worker {} lost: a panic escaped its run loop ({msg}); its queued tasks go to the other workers",
        ctx.index()
    ));
    ctx.shared().report_panic(payload);
    ctx.hand_off_queued();
    let last = ctx.shared().count_lost_worker();
    if last && (mutation::keep(Site::LostWorkerWaitsClosed) || !ctx.shared().is_shutting_down()) {
        // Nobody is left to run anything: refuse new tasks and drop the queued ones, so
        // that no joiner waits forever. Also when the scheduler is already shutting down:
        // a live worker leaves only once `is_closed` holds, and that is what keeps the
        // teardown (D4) away from a spawn still holding its L1 entry. The last lost worker
        // must wait for it too, and then drop what those spawns queued (`close` is
        // idempotent).
        close_orphaned(ctx.shared());
    }
}

/// Shuts the scheduler down from the inside, when no worker is left to run its tasks:
/// refuses new tasks (L4) and drops every queued one unrun (joiners get `ShutDown`).
pub(crate) fn close_orphaned(shared: &Shared) {
    shared.close();
    // Spawns that entered before L4 push after it: wait for them to leave (L3), so the
    // last drain sees everything that was accepted. Drain while waiting too: no spawn
    // runs user code under its entry (a batch collects its iterator first), but if one
    // ever waited there for a job that only these queues hold, the drain runs that job
    // and the spawner moves on, instead of both sides waiting for ever.
    let mut dropped = 0;
    while !shared.is_closed() {
        dropped += drain_abandoning(shared);
        crate::lockfree::park::yield_now();
    }
    dropped += drain_abandoning(shared);
    if dropped != 0 {
        contain::report(format_args!(
            "filch: every worker of a scheduler was lost; {dropped} queued task(s) dropped unrun"
        ));
    }
}

/// Drops every queued task unrun as `ShutDown` (stack jobs are executed instead) from a
/// thread that is not a worker: a timed-out shutdown, or a scheduler whose workers were
/// all lost. Returns how many tasks this call abandoned.
///
/// While it runs, the free functions (`filch::spawn`, `filch::join`, …) called by the
/// stack jobs it executes refer to `shared` (which refuses new tasks), not to the global
/// scheduler.
pub(crate) fn drain_abandoning(shared: &Shared) -> usize {
    let prev = DRAINING.with(|d| d.replace(shared));
    let mut abandoned = 0;
    while let Some(t) = take_any(shared) {
        abandoned += abandon_task(shared, None, t) as usize;
    }
    DRAINING.with(|d| d.set(prev));
    abandoned
}

/// The scheduler whose queues this thread is draining (`drain_abandoning`), if any.
pub(crate) fn with_draining<R>(f: impl FnOnce(Option<&Shared>) -> R) -> R {
    let p = DRAINING.with(Cell::get);
    // SAFETY: non-null only inside `drain_abandoning`, whose caller borrows the `Shared`
    // for the whole drain; the reference does not escape `f`.
    f(unsafe { p.as_ref() })
}

/// Takes any queued task, from any thread (a timed-out shutdown's caller).
pub(crate) fn take_any(shared: &Shared) -> Option<TaskRef> {
    loop {
        let mut got = None;
        match shared.injector.pop_batch(1, |p| got = Some(p)) {
            // SAFETY: nodes in the injector are task references given up by `into_raw`.
            Pop::Taken(_) => return got.map(|p| unsafe { TaskRef::from_raw(p) }),
            Pop::Empty => break,
            // A worker is taking a batch; it will run or abandon what it takes, but wait
            // for it so the drain does not stop early on a non-empty queue.
            Pop::Busy => spin_loop(),
        }
    }
    for w in shared.workers.iter() {
        if let Some(p) = w.next.steal_now() {
            // SAFETY: the wake slot holds task references given up by `into_raw`.
            return Some(unsafe { TaskRef::from_raw(p) });
        }
        loop {
            // A sole-owner deque pops without a fence; its foreign thieves pay for both.
            let stolen = if shared.sole_owner { w.stealer.steal_heavy() } else { w.stealer.steal() };
            match stolen {
                Steal::Success(t) => return Some(t),
                Steal::Retry => continue,
                Steal::Empty => break,
            }
        }
    }
    None
}

/// Drops a queued task unrun as `ShutDown`; returns whether this call abandoned it.
pub(crate) fn abandon_task(shared: &Shared, row: Option<&Row>, t: TaskRef) -> bool {
    if t.is_stack_job() {
        // A stack job belongs to a computation whose creator is running and waits for it
        // (`join`, or an injected `scope`/`join` body): it is executed, never dropped.
        // SAFETY: taken from a queue, which hands each entry out once.
        unsafe { t.execute_stack_job() };
        return false;
    }
    let ran = t.run(true, |_| match row {
        Some(r) => Row::bump_owned(&r.abandoned, 1),
        None => Row::bump_shared(&shared.external.abandoned, 1),
    });
    if let Some(p) = ran.payload {
        shared.report_panic(p);
    }
    if let Some(dead) = ran.dead {
        Shared::free_task(dead);
    }
    ran.claimed
}

/// The cores to pin workers to, or `None` (unpinned), with the reason printed once.
pub(crate) fn pin_plan(pin: bool, n: usize) -> Option<Vec<core_affinity::CoreId>> {
    if !pin || cfg!(loom) {
        return None;
    }
    match allowed_cores() {
        Some(ids) if ids.len() >= n => Some(take_cores(ids, n)),
        Some(ids) => {
            warn_once(&format!("{n} workers but only {} usable cores; running unpinned", ids.len()));
            None
        }
        None => {
            warn_once("could not read this process's CPU affinity mask; running unpinned");
            None
        }
    }
}

/// The CPUs in the process's affinity mask (a container's cpuset, `taskset`), read once:
/// the mask of a thread that is itself pinned (a worker building a scheduler) would say
/// one CPU.
fn allowed_cores() -> Option<&'static [core_affinity::CoreId]> {
    static IDS: std::sync::OnceLock<Option<Vec<core_affinity::CoreId>>> = std::sync::OnceLock::new();
    IDS.get_or_init(core_affinity::get_core_ids).as_deref()
}

/// How many workers are pinned to each allowed CPU, process-wide (by position in
/// `allowed_cores`). A scheduler's workers take the least-used CPUs, lowest first, so the
/// workers of several schedulers in one process spread over the free CPUs instead of all
/// starting at CPU 0; a worker gives its CPU back when it exits (`unpin`).
static PINNED: std::sync::Mutex<Vec<usize>> = std::sync::Mutex::new(Vec::new());

/// Chooses `n` distinct CPUs of `ids` (n ≤ ids.len()) with the fewest pinned workers.
fn take_cores(ids: &[core_affinity::CoreId], n: usize) -> Vec<core_affinity::CoreId> {
    let mut counts = PINNED.lock().unwrap_or_else(|e| e.into_inner());
    counts.resize(ids.len(), 0);
    let mut order: Vec<usize> = (0..ids.len()).collect();
    order.sort_by_key(|&i| (counts[i], i));
    order.truncate(n);
    for &i in &order {
        counts[i] += 1;
    }
    order.into_iter().map(|i| ids[i]).collect()
}

/// Gives back a CPU taken by `pin_plan` (a worker exiting, or one that never started).
pub(crate) fn unpin(core: core_affinity::CoreId) {
    let Some(ids) = allowed_cores() else { return };
    let Some(i) = ids.iter().position(|&c| c == core) else { return };
    let mut counts = PINNED.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(c) = counts.get_mut(i) {
        *c = c.saturating_sub(1);
    }
}

fn warn_once(msg: &str) {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| crate::contain::report(format_args!("filch: pinning disabled: {msg}")));
}

/// Starts worker `index`'s thread.
pub(crate) fn spawn_thread(
    shared: Arc<Shared>,
    index: usize,
    core: Option<core_affinity::CoreId>,
    name: &str,
    stack_size: Option<usize>,
) -> std::io::Result<crate::shim::thread::JoinHandle<()>> {
    let mut b = crate::shim::thread::Builder::new().name(format!("{name}-{index}"));
    if let Some(s) = stack_size {
        b = b.stack_size(s);
    }
    b.spawn(move || worker_main(shared, index, core))
}

fn worker_main(shared: Arc<Shared>, index: usize, core: Option<core_affinity::CoreId>) {
    if let Some(c) = core {
        if !core_affinity::set_for_current(c) {
            warn_once(&format!("could not pin worker {index} to core {}", c.id));
        }
    }
    let mut started = true;
    if let Some(h) = &shared.config.on_thread_start {
        let failure = contain::call(|| h(index)).err();
        started = failure.is_none();
        shared.start_done(index, failure);
    }
    THREAD_OF.with(|s| s.set(&*shared));
    if started {
        thread_loop(&shared, index, Some(Job::Hold(index)));
        if let Some(h) = &shared.config.on_thread_stop {
            if let Err(p) = contain::call(|| h(index)) {
                Row::bump_owned(&shared.workers[index].stats.hook_panics, 1);
                shared.report_panic(p);
            }
        }
    } else {
        // Nobody ever held this role: a claimant may take it.
        shared.vacate_role(index);
    }
    if let Some(c) = core {
        unpin(c);
    }
    THREAD_OF.with(|s| s.set(ptr::null()));
    Shared::leave(&shared);
}

/// A thread's jobs (B5, `roles.rs`): hold a role, run blocking tasks, or wait idle, until
/// the scheduler shuts down (or, for a spare, until it retires, or a lost worker).
/// `slot`: the thread's slot on the board; `first`: its first job.
fn thread_loop(shared: &Arc<Shared>, slot: usize, first: Option<Job>) {
    // Free functions in a blocking task refer to this scheduler.
    let _entered = crate::runtime::async_task::Entered::new(shared);
    let spare = slot >= shared.workers.len();
    let mut job = first;
    loop {
        let next = match job.take() {
            Some(j) => j,
            None => match shared.next_job(slot) {
                Some(j) => j,
                None => return,
            },
        };
        match next {
            Job::Exit => return,
            Job::Hold(r) => {
                if hold_role(shared, r, shared.slot_parker(slot), spare) {
                    return;
                }
            }
            Job::Run(t) => run_blocking(shared, t),
        }
    }
}

#[cfg(not(loom))]
std::thread_local! {
    static THREAD_OF: Cell<*const Shared> = const { Cell::new(ptr::null()) };
}

#[cfg(loom)]
loom::thread_local! {
    static THREAD_OF: Cell<*const Shared> = Cell::new(ptr::null());
}

/// Whether this thread is one of `shared`'s own (a worker thread or a spare, holding a
/// role or not): dropping a scheduler from one of its own threads must not wait for that
/// very thread.
pub(crate) fn is_thread_of(shared: &Shared) -> bool {
    THREAD_OF.with(|s| ptr::eq(s.get(), shared))
}

/// Starts a thread for spare slot `k` (B5, `roles.rs`); the caller took its teardown
/// share and set its first job.
pub(crate) fn spawn_spare(
    shared: Arc<Shared>,
    k: usize,
) -> std::io::Result<crate::shim::thread::JoinHandle<()>> {
    let mut b = crate::shim::thread::Builder::new().name(format!("{}-spare-{k}", shared.config.thread_name));
    if let Some(s) = shared.config.stack_size {
        b = b.stack_size(s);
    }
    b.spawn(move || spare_main(shared, k))
}

/// A spare thread (B5): its jobs until it retires or the scheduler shuts down. Its hooks
/// get the index `workers + k` for spare `k`.
fn spare_main(shared: Arc<Shared>, slot: usize) {
    THREAD_OF.with(|s| s.set(&*shared));
    if let Some(h) = &shared.config.on_thread_start {
        if let Err(p) = contain::call(|| h(slot)) {
            Row::bump_shared(&shared.external.hook_panics, 1);
            shared.report_panic(p);
        }
    }
    thread_loop(&shared, slot, None);
    if let Some(h) = &shared.config.on_thread_stop {
        if let Err(p) = contain::call(|| h(slot)) {
            Row::bump_shared(&shared.external.hook_panics, 1);
            shared.report_panic(p);
        }
    }
    THREAD_OF.with(|s| s.set(ptr::null()));
    Shared::leave(&shared);
}

/// B5's "hold role `r`": the worker loop on role `r`, until the role is handed on (B3:
/// a spare between tasks, any thread when idle with a claimant waiting) or the scheduler
/// shuts down (B4). Returns `true` if the thread was lost (a panic escaped the loop: see
/// `worker.rs`, "Lost workers"); it exits then.
fn hold_role(
    shared: &Arc<Shared>,
    r: usize,
    parker: &Arc<crate::lockfree::park::Parker>,
    spare: bool,
) -> bool {
    let ctx = WorkerCtx::new(shared, r, parker, spare);
    ctx.enter();
    let exit = || shared.is_closed() && !shared.has_visible_work() && !shared.any_slot_occupied();
    let done = || exit() || ctx.should_give();
    loop {
        // Every task the loop runs is contained, so a panic escaping it is a runtime bug
        // (or the injected fault of the containment tests): the thread is lost.
        if let Err(payload) = contain::call(|| ctx.run_until(&done, None, &|| maybe_inject_loop_panic(&ctx)))
        {
            // Not a worker any more: what `lose` drops or runs is freed and spawned as
            // from outside.
            ctx.leave();
            lose(&ctx, payload);
            shared.vacate_role(ctx.index());
            return true;
        }
        if exit() {
            // Leaving a shut-down scheduler: futures nothing will poll go now, with this
            // role's accounting (`async_task.rs`, "Shutdown").
            shared.sweep_async(Some(&ctx));
            ctx.leave();
            // B4: the role goes to a claimant, or becomes vacant.
            shared.vacate_role(ctx.index());
            return false;
        }
        // B3. `run_until` left the searcher count (K4) on its way out.
        if shared.give_role(ctx.index()) || (spare && shared.give_role_to_idle_worker(ctx.index())) {
            ctx.leave();
            return false;
        }
        ctx.gave_up_giving();
    }
}

/// B5's "run a blocking task": as a worker runs a task, with the statistics of a thread
/// outside the scheduler.
fn run_blocking(shared: &Shared, t: TaskRef) {
    let abandon = shared.is_abandoning();
    let ran = t.run(abandon, |panicked| {
        let row = &shared.external;
        if abandon {
            Row::bump_shared(&row.abandoned, 1);
        } else {
            Row::bump_shared(&row.completed, 1);
            if panicked {
                Row::bump_shared(&row.panicked, 1);
            }
        }
    });
    if let Some(p) = ran.payload {
        shared.report_panic(p);
    }
    if let Some(dead) = ran.dead {
        Shared::free_task(dead);
    }
}
