//! Tasks: the header, its state word, and the type-erased operations on it.
//!
//! A task is a [`Header`] followed by a *stage*: a union that first holds the closure
//! and, once the task has run (or been cancelled or abandoned), its output
//! `Result<T, TaskError>`. Tasks whose stage fits [`INLINE`] bytes (alignment ≤ 16) live
//! in one 192-byte slot of the scheduler's [`crate::lockfree::pool::Pool`]; the rest, and every task
//! spawned while the pool is exhausted, live in a heap allocation of the same layout
//! (`HeapTask`). The header's vtable hides `F` and `T` from the scheduler.
//!
//! # The state word
//!
//! | bits | name | set by | meaning |
//! |------|------|--------|---------|
//! | 0 | `RUNNING` | the runner or a canceller, by CAS from "neither RUNNING nor COMPLETE" | that thread owns the closure |
//! | 1 | `COMPLETE` | whoever holds `RUNNING`, clearing `RUNNING` in the same RMW | the output is written; the closure is gone |
//! | 2 | `JOIN_INTEREST` | spawn; cleared by the `JoinHandle` when it takes the output or drops | someone may still read the output |
//! | 3 | `JOIN_WAITER` | the joiner, after writing `waiter`, only while not `COMPLETE` | `waiter` holds the joiner's parker |
//! | 4 | `CANCELLED` | a canceller or an abandoning shutdown, with `COMPLETE` | the closure never ran |
//! | 5 | `NOTIFIED` | async tasks only: a wake (A4/A5), spawn, or abort; cleared by the poll's claim (A1) | the task is queued, or will be re-queued when its poll ends |
//! | 6 | `ABORT` | async tasks only: `JoinHandle::abort` or a shutdown sweep (A6/A7) | drop the future at its next suspension point |
//! | 7 | `ASYNC` | spawn; never changes | the stage holds a future, polled by A1–A3 (`future.rs`) |
//! | 8.. | refcount | spawn (2: the queue's and the handle's); each holder drops its own | the task's memory is freed when it reaches 0 |
//!
//! # Protocols (steps cited in the code)
//!
//! - **T1 claim**: `RUNNING` is set by one CAS from a state with neither `RUNNING` nor
//!   `COMPLETE`. The winner alone touches the closure (runs it, or drops it unrun).
//! - **T2 complete**: the claimant writes the output, then one RMW sets `COMPLETE` and
//!   clears `RUNNING` (AcqRel). Release publishes the output to whoever sees `COMPLETE`
//!   with Acquire; Acquire makes the `waiter` visible when `JOIN_WAITER` was set.
//! - **T3 output ownership**: after T2, the output belongs to the `JoinHandle` if the RMW's
//!   previous state had `JOIN_INTEREST`, otherwise to the completer, which drops it at once
//!   (a detached task's panic is reported then). The handle gives up `JOIN_INTEREST` with
//!   one RMW; if that RMW sees `COMPLETE`, the handle owns the output and drops it.
//! - **T4 waiter**: the joiner writes `waiter` (a `Waker`: a parked thread's, or an async
//!   task's) only while `JOIN_WAITER` is clear and not
//!   `COMPLETE`, then sets `JOIN_WAITER` by CAS (Release) conditional on not `COMPLETE`. The
//!   completer, seeing `JOIN_WAITER` in T2's previous state, takes `waiter` and wakes it.
//!   A joiner that gives up clears `JOIN_WAITER` by CAS conditional on not `COMPLETE`; if
//!   that fails the completer owns `waiter`.
//! - **T5 refs**: every holder of a reference drops it with one AcqRel decrement; the one
//!   that sees the count reach zero frees the memory (Acquire: every other holder's
//!   accesses happen before the free). An async task's last reference may go while its
//!   future is still pending (nothing can wake or join it any more): the releaser drops
//!   the future first ([`TaskRef::release`]).
//!
//! Async tasks (`ASYNC`) share this word, the stage layout and T2–T5; `future.rs` has their
//! poll, wake and abort steps (A1–A7).

mod error;
pub(crate) mod future;
pub(crate) mod stack_job;

pub use error::{PanicPayload, TaskError};

use std::any::Any;
use std::fmt;
use std::mem::{align_of, size_of, ManuallyDrop, MaybeUninit};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{self, NonNull};
use std::task::Waker;

use crate::shim::atomic::{AtomicPtr, AtomicU32, AtomicUsize, Ordering, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::UnsafeCell;

pub(crate) const RUNNING: usize = 1 << 0;
pub(crate) const COMPLETE: usize = 1 << 1;
pub(crate) const JOIN_INTEREST: usize = 1 << 2;
pub(crate) const JOIN_WAITER: usize = 1 << 3;
pub(crate) const CANCELLED: usize = 1 << 4;
pub(crate) const NOTIFIED: usize = 1 << 5;
pub(crate) const ABORT: usize = 1 << 6;
pub(crate) const ASYNC: usize = 1 << 7;
const FLAGS: usize = (1 << 8) - 1;
pub(crate) const REF_ONE: usize = FLAGS + 1;

/// A snapshot of a task's state word.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) struct State(pub(crate) usize);

impl State {
    pub(crate) fn is_running(self) -> bool {
        self.0 & RUNNING != 0
    }
    pub(crate) fn is_complete(self) -> bool {
        self.0 & COMPLETE != 0
    }
    pub(crate) fn is_claimed(self) -> bool {
        self.0 & (RUNNING | COMPLETE) != 0
    }
    pub(crate) fn has_join_interest(self) -> bool {
        self.0 & JOIN_INTEREST != 0
    }
    pub(crate) fn has_join_waiter(self) -> bool {
        self.0 & JOIN_WAITER != 0
    }
    pub(crate) fn is_cancelled(self) -> bool {
        self.0 & CANCELLED != 0
    }
    pub(crate) fn is_notified(self) -> bool {
        self.0 & NOTIFIED != 0
    }
    pub(crate) fn is_aborted(self) -> bool {
        self.0 & ABORT != 0
    }
    pub(crate) fn is_async(self) -> bool {
        self.0 & ASYNC != 0
    }
    pub(crate) fn refs(self) -> usize {
        self.0 / REF_ONE
    }
}

impl fmt::Debug for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("State")
            .field("running", &self.is_running())
            .field("complete", &self.is_complete())
            .field("join_interest", &self.has_join_interest())
            .field("join_waiter", &self.has_join_waiter())
            .field("cancelled", &self.is_cancelled())
            .field("notified", &self.is_notified())
            .field("aborted", &self.is_aborted())
            .field("async", &self.is_async())
            .field("refs", &self.refs())
            .finish()
    }
}

use crate::contain::{self, Payload};

/// Type-erased operations of one `(F, T)` pair and layout.
pub(crate) struct Vtable {
    /// Runs the closure (consuming it) under `catch_unwind` and writes the output; returns
    /// whether it panicked. Caller holds `RUNNING` (T1).
    run: unsafe fn(NonNull<Header>) -> bool,
    /// `run`, then `drop_output`, in one call, for an output that nobody will read: only
    /// for output types with no drop glue (so whether the drop comes before or after the
    /// worker's bookkeeping is unobservable); `None` for the others. Returns the panic
    /// payload. Caller holds the closure (T1, or F1's sole reference).
    run_unread: Option<unsafe fn(NonNull<Header>) -> Option<Payload>>,
    /// `run_unread` for the output types with drop glue: runs the closure, calls
    /// `counted(panicked)` (the worker's bookkeeping), and only then drops the output, so
    /// whatever the output's destructor signals (a scope's S3) comes after the count.
    /// Returns the panic payload. `None` for the types without drop glue (they take
    /// `run_unread`). Caller holds the closure (F1's sole reference).
    run_unread_counted: Option<RunCountedFn>,
    /// Drops the closure unrun and writes `Err(error)`. Caller holds `RUNNING` (T1).
    abandon: unsafe fn(NonNull<Header>, TaskError),
    /// Moves the output to `dst`, a `*mut Result<T, TaskError>`. Caller owns the output (T3).
    take_output: unsafe fn(NonNull<Header>, *mut ()),
    /// Drops the output in place; hands back a panic payload instead of dropping it.
    drop_output: unsafe fn(NonNull<Header>) -> Option<Box<dyn Any + Send>>,
    /// Frees a heap task's memory (pool tasks go back to the pool instead).
    dealloc_heap: unsafe fn(NonNull<Header>),
    /// Async tasks: polls the future once; on `Ready` (or a panic) drops the future and
    /// writes the output, returning `Some(panicked)`. Caller holds `RUNNING` (A1). `None`
    /// for closures.
    poll: Option<PollFn>,
}

/// A vtable's `run_unread_counted` entry (see [`Vtable`]).
type RunCountedFn = unsafe fn(NonNull<Header>, &dyn Fn(bool)) -> Option<Payload>;

/// A vtable's `poll` entry (see [`Vtable`]).
type PollFn = unsafe fn(NonNull<Header>, &mut std::task::Context<'_>) -> Option<bool>;

impl Vtable {
    /// The vtable of a stack job: `run` executes it; the other entries are never called
    /// for a stack job (nothing joins, cancels, abandons or frees one) and abort if they
    /// are.
    pub(crate) const fn stack(run: unsafe fn(NonNull<Header>) -> bool) -> Vtable {
        Vtable {
            run,
            run_unread: None,
            run_unread_counted: None,
            abandon: |_, _| not_a_task(),
            take_output: |_, _| not_a_task(),
            drop_output: |_| not_a_task(),
            dealloc_heap: |_| not_a_task(),
            poll: None,
        }
    }
}

/// The vtable of a prepared pool slot that holds no task yet: never called.
static UNUSED_SLOT: Vtable = Vtable::stack(|_| not_a_task());

/// A stack job reached a task-only operation: scheduler state is inconsistent; stop.
#[cold]
#[inline(never)]
fn not_a_task() -> ! {
    crate::contain::fatal("a task operation was applied to a stack job");
}

/// Where a task's memory came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Home {
    /// Slot `index` of the owning scheduler's pool.
    Pool(u32),
    /// A `Box<HeapTask<F, T>>`.
    Heap,
    /// A job on its creator's stack (`stack_job.rs`): not counted, never freed; its
    /// vtable's `run` executes it and sets its latch. Only `run` of its vtable is used.
    Stack,
}

/// The part of a task the scheduler sees. `repr(C, align(16))` so its size is a multiple
/// of 16 and the stage follows at the same offset in pool slots and heap tasks.
#[repr(C, align(16))]
pub(crate) struct Header {
    /// The state word (table above).
    pub(crate) state: AtomicUsize,
    /// Link for the injection queue; used only while the task is in it.
    pub(crate) next: AtomicPtr<Header>,
    vtable: &'static Vtable,
    /// The owning scheduler, type-erased (`crate::runtime::shared::Shared`); outlives the task.
    pub(crate) owner: *const (),
    /// The joiner's waker (a parked thread's or an async task's). Written by the joiner
    /// only before it sets `JOIN_WAITER`, or after clearing it; taken by the completer only
    /// after seeing `JOIN_WAITER` (T4).
    waiter: UnsafeCell<Option<Waker>>,
    pub(crate) home: Home,
    /// The worker role that last started running the task (`NO_RUNNER` before): where a
    /// waiting `JoinHandle` looks for the task's own subtasks (`join_handle.rs`, the
    /// helping rule). A hint: written by each runner before its claim, read without
    /// ordering; a stale value only sends the joiner to another deque.
    pub(crate) runner: AtomicU32,
}

/// `Header::runner` of a task that no worker started yet.
pub(crate) const NO_RUNNER: u32 = u32::MAX;

impl Header {
    /// The header of a stack job (`stack_job.rs`): `state` is its latch, starting at 0.
    pub(crate) fn for_stack_job(vtable: &'static Vtable, owner: *const ()) -> Header {
        Header {
            state: AtomicUsize::new(0),
            next: AtomicPtr::new(ptr::null_mut()),
            vtable,
            owner,
            waiter: UnsafeCell::new(None),
            home: Home::Stack,
            runner: AtomicU32::new(NO_RUNNER),
        }
    }
}

/// Bytes of inline stage storage in a pool slot (closure, then output).
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let small = [1u8; 16];
/// assert_eq!(sched.try_spawn(move || small.len()).unwrap().join().unwrap(), 16);
/// let big = [1u8; filch::TASK_INLINE_BYTES + 1]; // does not fit a pool slot
/// assert!(sched.try_spawn(move || big.len()).is_err());
/// ```
pub const INLINE: usize = SLOT_SIZE - size_of::<Header>();

/// Size of one pool slot: header plus inline storage (the pool's documented slot size).
pub(crate) const SLOT_SIZE: usize = crate::lockfree::pool::SLOT_BYTES;

/// One pool slot: a header followed by inline storage for the stage.
#[repr(C, align(16))]
pub(crate) struct TaskSlot {
    _header: MaybeUninit<Header>,
    _stage: MaybeUninit<[u8; INLINE]>,
}

const _: () = assert!(size_of::<Header>() % 16 == 0);
const _: () = assert!(size_of::<TaskSlot>() == SLOT_SIZE);
#[cfg(not(loom))]
const _: () = assert!(size_of::<Header>() <= 64, "keep the header small: it eats inline storage");

/// The closure, then the output.
#[repr(C)]
union Stage<F, T> {
    closure: ManuallyDrop<F>,
    output: ManuallyDrop<Result<T, TaskError>>,
}

#[repr(C)]
struct HeapTask<F, T> {
    header: Header,
    stage: Stage<F, T>,
}

/// Whether an `(F, T)` task fits a pool slot.
pub(crate) const fn fits_inline<F, T>() -> bool {
    size_of::<Stage<F, T>>() <= INLINE && align_of::<Stage<F, T>>() <= 16
}

/// Offset of the stage after the header: the same in a `TaskSlot` (stage alignment ≤ 16
/// divides the header size) and in a `repr(C)` `HeapTask<F, T>`.
const fn stage_offset<F, T>() -> usize {
    let a = align_of::<Stage<F, T>>();
    size_of::<Header>().div_ceil(a) * a
}

/// # Safety
/// `h` points to a live task of this `(F, T)`.
unsafe fn stage<F, T>(h: NonNull<Header>) -> *mut Stage<F, T> {
    // SAFETY: the stage lies `stage_offset` bytes after the header in both layouts, inside
    // the same allocation (caller: `h` is a live `(F, T)` task).
    unsafe { h.as_ptr().cast::<u8>().add(stage_offset::<F, T>()).cast() }
}

struct VtableOf<F, T>(std::marker::PhantomData<(F, T)>);

impl<F: FnOnce() -> T, T> VtableOf<F, T> {
    const VTABLE: Vtable = Vtable {
        run: run::<F, T>,
        run_unread: if std::mem::needs_drop::<T>() { None } else { Some(run_unread::<F, T>) },
        run_unread_counted: if std::mem::needs_drop::<T>() { Some(run_unread_counted::<F, T>) } else { None },
        abandon: abandon::<F, T>,
        take_output: take_output::<F, T>,
        drop_output: drop_output::<F, T>,
        dealloc_heap: dealloc_heap::<F, T>,
        poll: None,
    };
}

unsafe fn run<F: FnOnce() -> T, T>(h: NonNull<Header>) -> bool {
    // SAFETY: the caller holds RUNNING (T1), so the closure is there and is ours.
    let s = unsafe { &mut *stage::<F, T>(h) };
    // SAFETY: the union holds the closure until this read; it is moved out exactly once.
    let f = unsafe { ManuallyDrop::take(&mut s.closure) };
    let out = catch_unwind(AssertUnwindSafe(f)).map_err(|p| TaskError::Panicked(PanicPayload::new(p)));
    let panicked = out.is_err();
    s.output = ManuallyDrop::new(out);
    panicked
}

/// `run` for an unread output without drop glue: the output is discarded where it is made.
unsafe fn run_unread<F: FnOnce() -> T, T>(h: NonNull<Header>) -> Option<Payload> {
    debug_assert!(!std::mem::needs_drop::<T>());
    // SAFETY: the caller holds the closure; the union holds it until this read, which
    // moves it out exactly once.
    let f = unsafe { ManuallyDrop::take(&mut (*stage::<F, T>(h)).closure) };
    // The output has no drop glue: forgetting it is dropping it.
    catch_unwind(AssertUnwindSafe(f)).map(std::mem::forget).err()
}

/// `run_unread` for an output with drop glue: the output is dropped after `counted`.
unsafe fn run_unread_counted<F: FnOnce() -> T, T>(
    h: NonNull<Header>,
    counted: &dyn Fn(bool),
) -> Option<Payload> {
    // SAFETY: the caller holds the closure; the union holds it until this read, which
    // moves it out exactly once.
    let f = unsafe { ManuallyDrop::take(&mut (*stage::<F, T>(h)).closure) };
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(out) => {
            counted(false);
            // A panicking destructor of the output must not unwind into the scheduler.
            if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(out))) {
                contain::drop_payload(p);
            }
            None
        }
        Err(p) => {
            counted(true);
            Some(p)
        }
    }
}

unsafe fn abandon<F, T>(h: NonNull<Header>, error: TaskError) {
    // SAFETY: the caller holds RUNNING (T1): the closure is there and is ours.
    let s = unsafe { &mut *stage::<F, T>(h) };
    // SAFETY: the closure is dropped exactly once, here; a panicking destructor is caught
    // below so the task still completes.
    let f = unsafe { ManuallyDrop::take(&mut s.closure) };
    let dropped = catch_unwind(AssertUnwindSafe(move || drop(f)));
    s.output = ManuallyDrop::new(Err(match dropped {
        Ok(()) => error,
        Err(payload) => TaskError::Panicked(PanicPayload::new(payload)),
    }));
}

unsafe fn take_output<F, T>(h: NonNull<Header>, dst: *mut ()) {
    // SAFETY: the caller owns the output (T3) and `dst` is a `*mut Result<T, TaskError>`.
    unsafe {
        let s = &mut *stage::<F, T>(h);
        ptr::write(dst.cast::<Result<T, TaskError>>(), ManuallyDrop::take(&mut s.output));
    }
}

unsafe fn drop_output<F, T>(h: NonNull<Header>) -> Option<Box<dyn Any + Send>> {
    // SAFETY: the caller owns the output (T3); it is moved out exactly once.
    let out = unsafe { ManuallyDrop::take(&mut (*stage::<F, T>(h)).output) };
    match out {
        Err(TaskError::Panicked(p)) => Some(p.into_inner()),
        other => {
            // A panicking destructor of the output must not unwind into the scheduler.
            if let Err(p) = catch_unwind(AssertUnwindSafe(move || drop(other))) {
                contain::drop_payload(p);
            }
            None
        }
    }
}

unsafe fn dealloc_heap<F, T>(h: NonNull<Header>) {
    // SAFETY: the caller dropped the last reference of a `Home::Heap` task, which was
    // created by `Box::new(HeapTask<F, T>)`; the stage holds nothing live any more.
    drop(unsafe { Box::from_raw(h.as_ptr().cast::<HeapTask<F, T>>()) });
}

/// A reference to a task, counted in its state word.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct TaskRef(NonNull<Header>);

// SAFETY: a task's closure and output are `Send` (spawn requires it), and every access to
// the header from several threads goes through atomics or the T1–T5 protocols.
unsafe impl Send for TaskRef {}

impl crate::lockfree::deque::Word for TaskRef {
    #[inline(always)]
    fn into_word(self) -> usize {
        self.0.as_ptr() as usize
    }
    #[inline(always)]
    unsafe fn from_word(word: usize) -> Self {
        // SAFETY: the word came from `into_word` of a non-null header pointer.
        TaskRef(unsafe { NonNull::new_unchecked(word as *mut Header) })
    }
}

/// Initial state: not claimed, a handle alive, two references (queue + handle).
const INITIAL: usize = JOIN_INTEREST | (2 * REF_ONE);

/// Writes a reused pool slot's initial state, after its vtable and stage. An atomic store,
/// not a plain write: a shutdown sweep (`future.rs`, A7) may read the state of any slot at
/// any time.
///
/// # Safety
/// `h` is a pool slot we own (just allocated), its vtable and stage written.
#[inline(always)]
unsafe fn publish_state(h: NonNull<Header>, state: usize) {
    // Release: pairs with the sweep's Acquire CAS (A7), which reads the vtable and stage
    // only after taking a reference through that CAS. (Queue pushes publish the task to
    // its runner on their own.)
    // SAFETY: the slot's header was initialized by `prepare_slot`; the state is atomic.
    unsafe { h.as_ref() }.state.store(state, Release);
}

/// Initial state of a task spawned without a handle (scope tasks): only the queue's
/// reference, so the worker runs it on the F1 path with no RMW at all.
const INITIAL_DETACHED: usize = REF_ONE;

impl TaskRef {
    /// Writes a new task into `mem` (a pool slot or a fresh heap task) and returns the
    /// queue's reference and the handle's reference.
    ///
    /// # Safety
    /// `mem` is writable, exclusively ours, and sized/aligned for the `(F, T)` layout of
    /// `home` (a `TaskSlot` with `fits_inline::<F, T>()`, or a `HeapTask<F, T>`).
    unsafe fn init<F, T>(
        mem: NonNull<Header>,
        f: F,
        owner: *const (),
        home: Home,
        detached: bool,
    ) -> (TaskRef, Option<TaskRef>)
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let state = if detached { INITIAL_DETACHED } else { INITIAL };
        // SAFETY: forwarded from the caller.
        unsafe { Self::init_with::<F, T>(mem, f, owner, home, &VtableOf::<F, T>::VTABLE, state) };
        (TaskRef(mem), (!detached).then_some(TaskRef(mem)))
    }

    /// `init` with the vtable and initial state given: closures and futures alike.
    ///
    /// # Safety
    /// As `init`; `vtable` is the `(F, T)` vtable of the stage's kind.
    unsafe fn init_with<F, T>(
        mem: NonNull<Header>,
        f: F,
        owner: *const (),
        home: Home,
        vtable: &'static Vtable,
        state: usize,
    ) {
        let header = Header {
            state: AtomicUsize::new(state),
            next: AtomicPtr::new(ptr::null_mut()),
            vtable,
            owner,
            waiter: UnsafeCell::new(None),
            home,
            runner: AtomicU32::new(NO_RUNNER),
        };
        // SAFETY: the caller gives us exclusive, suitably sized and aligned memory.
        unsafe {
            ptr::write(mem.as_ptr(), header);
            ptr::write(stage::<F, T>(mem), Stage { closure: ManuallyDrop::new(f) });
        }
    }

    /// Writes the parts of slot `index`'s header that stay the same for every task the
    /// slot will ever hold: `owner`, `home`, and `next` (which every queue writes before
    /// reading). Called once per slot, before the pool hands the slot out; a spawn then
    /// writes only what changes (`new_in_slot`), four stores fewer per task.
    ///
    /// # Safety
    /// `slot` is slot `index` of `owner`'s pool, not in use, and no other thread accesses it.
    pub(crate) unsafe fn prepare_slot(slot: NonNull<TaskSlot>, index: u32, owner: *const ()) {
        let header = Header {
            state: AtomicUsize::new(0),
            next: AtomicPtr::new(ptr::null_mut()),
            vtable: &UNUSED_SLOT,
            owner,
            waiter: UnsafeCell::new(None),
            home: Home::Pool(index),
            runner: AtomicU32::new(NO_RUNNER),
        };
        // SAFETY: the caller gives us the slot, exclusively; a TaskSlot starts with a Header.
        unsafe { ptr::write(slot.cast::<Header>().as_ptr(), header) };
    }

    /// Builds a task in pool slot memory `slot`, prepared by [`TaskRef::prepare_slot`].
    /// Returns the queue's reference and, unless `detached`, the handle's.
    ///
    /// # Safety
    /// `slot` is an allocated, unused `TaskSlot` of the owner's pool, prepared once by
    /// `prepare_slot`, and `fits_inline::<F, T>()`.
    #[inline(always)]
    pub(crate) unsafe fn new_in_slot<F, T>(
        slot: NonNull<TaskSlot>,
        f: F,
        detached: bool,
    ) -> (TaskRef, Option<TaskRef>)
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        debug_assert!(fits_inline::<F, T>());
        let state = if detached { INITIAL_DETACHED } else { INITIAL };
        // SAFETY: forwarded from the caller.
        unsafe { Self::fill_slot::<F, T>(slot, f, &VtableOf::<F, T>::VTABLE, state) };
        let h = slot.cast::<Header>();
        (TaskRef(h), (!detached).then_some(TaskRef(h)))
    }

    /// Writes a task's per-task fields into a prepared slot: vtable, stage, then state.
    ///
    /// # Safety
    /// As `new_in_slot`; `vtable` is the `(F, T)` vtable of the stage's kind.
    #[inline(always)]
    unsafe fn fill_slot<F, T>(slot: NonNull<TaskSlot>, f: F, vtable: &'static Vtable, state: usize) {
        let h = slot.cast::<Header>();
        let p = h.as_ptr();
        // We replace the per-task fields in place. `owner`, `home` and `next` keep their
        // prepared values (`next` is written by every queue before it is read); `waiter` is
        // `None` once a task is freed (T4: the completer takes a registered waiter, a joiner
        // that gives up clears it), so it is not written either.
        // SAFETY: the slot is ours (caller) and `prepare_slot` wrote its whole header once;
        // `write` drops nothing, and the vtable needs no drop.
        unsafe {
            ptr::addr_of_mut!((*p).vtable).write(vtable);
            // Relaxed: published with the task (the handle's transfer, the queue's push).
            (*p).runner.store(NO_RUNNER, Relaxed);
            debug_assert!(matches!((*p).home, Home::Pool(_)));
            debug_assert!((*p).waiter.with(|w| (*w).is_none()), "a freed task left its waiter behind");
            ptr::write(stage::<F, T>(h), Stage { closure: ManuallyDrop::new(f) });
            publish_state(h, state);
        }
    }

    /// Builds a task on the heap (see [`TaskRef::new_in_slot`] for `detached`).
    pub(crate) fn new_on_heap<F, T>(f: F, owner: *const (), detached: bool) -> (TaskRef, Option<TaskRef>)
    where
        F: FnOnce() -> T + Send,
        T: Send,
    {
        let mem: Box<MaybeUninit<HeapTask<F, T>>> = Box::new_uninit();
        let mem = NonNull::from(Box::leak(mem)).cast::<Header>();
        // SAFETY: fresh, exclusive memory of the `HeapTask<F, T>` layout.
        unsafe { Self::init::<F, T>(mem, f, owner, Home::Heap, detached) }
    }

    /// Whether this is a stack job rather than a counted task.
    #[inline]
    pub(crate) fn is_stack_job(&self) -> bool {
        self.header().home == Home::Stack
    }

    /// Executes a stack job (its vtable's `run`): runs its closure and sets its latch.
    ///
    /// # Safety
    /// `self` is a stack job (`is_stack_job`) taken from a queue, so this is the one
    /// execution it gets (a queue hands each item out once).
    pub(crate) unsafe fn execute_stack_job(self) {
        debug_assert!(self.is_stack_job());
        // SAFETY: forwarded from the caller; a stack job's `run` is `stack_job::execute`.
        unsafe { (self.header().vtable.run)(self.0) };
    }

    pub(crate) fn header(&self) -> &Header {
        // SAFETY: a `TaskRef` keeps its task's memory alive (T5).
        unsafe { self.0.as_ref() }
    }

    /// Rebuilds a reference from a pointer taken with [`TaskRef::into_raw`].
    ///
    /// # Safety
    /// `p` came from `into_raw` and is turned back once.
    pub(crate) unsafe fn from_raw(p: NonNull<Header>) -> TaskRef {
        TaskRef(p)
    }

    /// Gives up the `TaskRef` wrapper without dropping its reference.
    pub(crate) fn into_raw(self) -> NonNull<Header> {
        self.0
    }

    pub(crate) fn state(&self, order: crate::shim::atomic::Ordering) -> State {
        State(self.header().state.load(order))
    }

    /// T1: claims the closure. `Err` carries the state that refused the claim.
    pub(crate) fn claim(&self) -> Result<State, State> {
        let state = &self.header().state;
        // Relaxed: only a starting guess for the CAS below.
        let mut cur = state.load(Relaxed);
        loop {
            if State(cur).is_claimed() {
                return Err(State(cur));
            }
            // T1, Relaxed: the CAS only decides who owns the closure. Its bytes reached this
            // thread before the call: a runner got the task from a queue (Release push,
            // Acquire pop), a canceller holds the handle, which was sent to it through
            // whatever happens-before edge moved it.
            match state.compare_exchange_weak(cur, cur | RUNNING, Relaxed, Relaxed) {
                Ok(_) => return Ok(State(cur | RUNNING)),
                Err(actual) => cur = actual,
            }
        }
    }

    /// Records that worker role `index` is about to run the task (`Header::runner`).
    #[inline(always)]
    pub(crate) fn set_runner(&self, index: usize) {
        // Relaxed: a hint (see `Header::runner`).
        self.header().runner.store(index as u32, Relaxed);
    }

    /// The worker role that started the task, if one has (`Header::runner`).
    pub(crate) fn runner(&self) -> Option<usize> {
        // Relaxed: a hint (see `Header::runner`); reset when the task was created, which
        // happened before the caller got its handle, so it is this task's or `NO_RUNNER`.
        let r = self.header().runner.load(Relaxed);
        (r != NO_RUNNER).then_some(r as usize)
    }

    /// Runs the claimed closure; returns whether it panicked. Then call [`Self::complete`].
    ///
    /// # Safety
    /// The caller holds `RUNNING` from a successful [`Self::claim`].
    pub(crate) unsafe fn run_claimed(&self) -> bool {
        // SAFETY: forwarded: we hold RUNNING.
        unsafe { (self.header().vtable.run)(self.0) }
    }

    /// Drops the claimed closure unrun, recording `error` as the output. Then call
    /// [`Self::complete`] with `cancelled = true`.
    ///
    /// # Safety
    /// The caller holds `RUNNING` from a successful [`Self::claim`].
    pub(crate) unsafe fn abandon_claimed(&self, error: TaskError) {
        // SAFETY: forwarded: we hold RUNNING.
        unsafe { (self.header().vtable.abandon)(self.0, error) }
    }

    /// T2+T3+T4: publishes the output. Returns a detached task's panic payload, which the
    /// caller reports.
    ///
    /// # Safety
    /// The caller holds `RUNNING` and has written the output.
    pub(crate) unsafe fn complete(&self, cancelled: bool) -> Option<Box<dyn Any + Send>> {
        let h = self.header();
        let set = COMPLETE | if cancelled { CANCELLED } else { 0 };
        // T2, AcqRel: Release publishes the output to the joiner's Acquire of COMPLETE;
        // Acquire pairs with the joiner's Release CAS that set JOIN_WAITER (T4), making
        // `waiter` visible below.
        let prev = State(h.state.fetch_add(set - RUNNING, complete_ordering()));
        debug_assert!(prev.is_running() && !prev.is_complete());
        if prev.has_join_waiter() {
            // T4: JOIN_WAITER was set before COMPLETE: the waiter is ours to take.
            // SAFETY: the joiner no longer touches `waiter` once JOIN_WAITER is set and
            // COMPLETE is (T4); our Acquire above made its write visible.
            let waiter = h.waiter.with_mut(|w| unsafe { (*w).take() });
            if let Some(w) = waiter {
                // A filch waker never unwinds; a foreign one is user code.
                if let Err(p) = contain::call(move || w.wake()) {
                    contain::drop_payload(p);
                }
            }
        }
        if !prev.has_join_interest() || !mutation::keep(Site::TaskOwnOutputCheck) {
            // T3: nobody will read the output; it is ours to drop.
            // SAFETY: we own the output (T3).
            return unsafe { (h.vtable.drop_output)(self.0) };
        }
        None
    }

    /// Joiner side of T3: whether the output is ready (Acquire, pairing with T2).
    pub(crate) fn is_complete(&self) -> bool {
        // Acquire: pairs with T2's Release; a `true` makes the output readable.
        self.state(Acquire).is_complete()
    }

    /// The handle gives up its interest without taking the output (T3).
    pub(crate) fn drop_join_interest(&self) {
        let h = self.header();
        // T3, AcqRel: Acquire pairs with T2 so that, if COMPLETE is set, the output is
        // visible for dropping; Release orders our earlier accesses before the completer's
        // own drop if it completes later.
        let prev =
            State(h.state.fetch_and(!JOIN_INTEREST, mutation::ord(Site::TaskDropInterestAcqRel, AcqRel)));
        if prev.is_complete() && prev.has_join_interest() {
            // SAFETY: COMPLETE with our JOIN_INTEREST: the output is ours (T3). A panic
            // payload nobody joined is dropped here, as std's JoinHandle does.
            if let Some(p) = unsafe { (h.vtable.drop_output)(self.0) } {
                contain::drop_payload(p);
            }
        }
    }

    /// T4: registers `parker` to be unparked at completion. Returns `false` if the task
    /// completed first (nothing registered).
    ///
    /// # Safety
    /// Called by the handle's owner only, with `JOIN_WAITER` clear.
    pub(crate) unsafe fn register_waiter(&self, waker: &Waker) -> bool {
        let h = self.header();
        // Acquire: pairs with T2; when it reports COMPLETE we read the output next.
        let mut cur = h.state.load(Acquire);
        if State(cur).is_complete() {
            return false;
        }
        debug_assert!(!State(cur).has_join_waiter());
        // SAFETY: JOIN_WAITER is clear: the joiner owns `waiter` (T4).
        h.waiter.with_mut(|w| unsafe { *w = Some(waker.clone()) });
        loop {
            if State(cur).is_complete() {
                // SAFETY: JOIN_WAITER never got set: `waiter` is still ours.
                h.waiter.with_mut(|w| unsafe { *w = None });
                return false;
            }
            // T4, Release: publishes `waiter` to the completer's Acquire in T2. Acquire on
            // failure: a COMPLETE seen here lets us read the output.
            let release = mutation::ord(Site::TaskWaiterRelease, Release);
            match h.state.compare_exchange_weak(cur, cur | JOIN_WAITER, release, Acquire) {
                Ok(_) => return true,
                Err(actual) => cur = actual,
            }
        }
    }

    /// T4: withdraws a registered waiter. Returns `false` if the task completed first (the
    /// completer then owns and consumes `waiter`).
    ///
    /// # Safety
    /// Called by the handle's owner only, after a successful `register_waiter`.
    pub(crate) unsafe fn unregister_waiter(&self) -> bool {
        let h = self.header();
        // Relaxed: a starting guess for the CAS.
        let mut cur = h.state.load(Relaxed);
        loop {
            if State(cur).is_complete() {
                // Acquire: pairs with T2 so the output can be read next.
                h.state.load(Acquire);
                return false;
            }
            // T4, Acquire: we take `waiter` back; no Release needed, nothing to publish.
            match h.state.compare_exchange_weak(cur, cur & !JOIN_WAITER, Acquire, Relaxed) {
                Ok(_) => {
                    // SAFETY: JOIN_WAITER is clear again and not COMPLETE: ours (T4).
                    h.waiter.with_mut(|w| unsafe { *w = None });
                    return true;
                }
                Err(actual) => cur = actual,
            }
        }
    }

    /// T5: drops this reference. Returns the memory to free when it was the last one.
    #[must_use = "the last reference's memory must be freed"]
    pub(crate) fn release(self) -> Option<Dead> {
        let h = self.header();
        // T5, AcqRel: Release orders our accesses before the free; Acquire (on the last
        // decrement) orders every other holder's accesses before it.
        let prev = State(h.state.fetch_sub(REF_ONE, mutation::ord(Site::TaskReleaseAcqRel, AcqRel)));
        debug_assert!(prev.refs() >= 1);
        if prev.refs() == 1 {
            Some(Dead::last(self.0, prev))
        } else {
            None
        }
    }
}

/// What [`TaskRef::run`] did.
pub(crate) struct Ran {
    /// This call owned the closure (ran or abandoned it); `false`: it was cancelled before.
    pub(crate) claimed: bool,
    /// A detached task's panic payload, for the panic handler.
    pub(crate) payload: Option<Box<dyn Any + Send>>,
    /// The task's memory, when this call dropped its last reference.
    pub(crate) dead: Option<Dead>,
}

impl TaskRef {
    /// A worker's whole turn with a task it popped: T1, run (or, with `abandon`, drop the
    /// closure unrun as `ShutDown`), T2–T4, T5 — with the fewest RMWs the state allows:
    ///
    /// - **F1 (detached)**: if the state is exactly one reference and no flags, the handle is
    ///   gone, so nobody can cancel, join, register a waiter or read the output, and ours is
    ///   the last reference: run, drop the output and free with no RMW at all.
    /// - **F2 (fused T2+T5)**: otherwise, after T1 and the run, one CAS sets `COMPLETE` and
    ///   drops our reference at once — but only if no waiter is registered (T4 needs the
    ///   memory alive while we unpark it) and either the handle keeps the output or ours is
    ///   the last reference (after the CAS we may touch the task only if it is ours alone).
    ///   Else T2, then the output drop, then T5, as separate steps.
    ///
    /// `ran(panicked)` is called after the closure ran (or was abandoned) and *before* the
    /// task completes, so whatever it records (the worker's statistics) happens before a
    /// joiner returns.
    pub(crate) fn run(self, abandon: bool, ran: impl FnOnce(bool)) -> Ran {
        let h = self.header();
        // F1, Acquire: pairs with the AcqRel RMW by which the handle gave up its interest and
        // its reference: its accesses happen before our run and our free.
        if h.state.load(Acquire) == REF_ONE {
            let panicked = if abandon {
                // SAFETY: sole reference and no handle: the closure is ours (F1).
                unsafe { self.abandon_claimed(TaskError::ShutDown) };
                false
            } else {
                // SAFETY: as above.
                unsafe { self.run_claimed() }
            };
            ran(panicked);
            // SAFETY: nobody else can read the output (F1).
            let payload = unsafe { (h.vtable.drop_output)(self.0) };
            return Ran { claimed: true, payload, dead: Some(Dead(self.0)) };
        }
        if self.claim().is_err() {
            return Ran { claimed: false, payload: None, dead: self.release() };
        }
        let panicked = if abandon {
            // SAFETY: we hold RUNNING from the claim.
            unsafe { self.abandon_claimed(TaskError::ShutDown) };
            false
        } else {
            // SAFETY: we hold RUNNING from the claim.
            unsafe { self.run_claimed() }
        };
        ran(panicked);
        // SAFETY: claimed, output written.
        let (payload, dead) = unsafe { self.complete_and_release(abandon) };
        Ran { claimed: true, payload, dead }
    }

    /// F1 for an output nobody reads (no handle, no drop glue): if ours is the only
    /// reference, runs the closure, discards the output and returns the panic payload
    /// and the memory to free; else hands the task back for [`TaskRef::run`]. One
    /// Acquire load and one indirect call: the worker's hot path for a detached task.
    #[inline(always)]
    pub(crate) fn run_unread(self) -> Result<(Option<Payload>, Dead), TaskRef> {
        let h = self.header();
        // F1, Acquire: as in `run` (pairs with the handle's AcqRel give-up, if it had one).
        // Loaded before the vtable, so the vtable is read once, after it.
        let sole = h.state.load(Acquire) == REF_ONE;
        match h.vtable.run_unread {
            Some(run_unread) if sole => {
                // SAFETY: sole reference and no handle: the closure is ours (F1), and
                // nobody can read the output.
                let payload = unsafe { run_unread(self.0) };
                Ok((payload, Dead(self.0)))
            }
            _ => Err(self),
        }
    }

    /// [`TaskRef::run_unread`] for the output types with drop glue: `counted(panicked)`
    /// runs after the closure and before the output is dropped (see
    /// `Vtable::run_unread_counted`). Hands the task back when it is not the sole
    /// reference or its output has no drop glue.
    #[inline(always)]
    pub(crate) fn run_unread_counted(
        self,
        counted: &dyn Fn(bool),
    ) -> Result<(Option<Payload>, Dead), TaskRef> {
        let h = self.header();
        // F1, Acquire: as in `run_unread`.
        let sole = h.state.load(Acquire) == REF_ONE;
        match h.vtable.run_unread_counted {
            Some(run) if sole => {
                // SAFETY: sole reference and no handle: the closure is ours (F1), and
                // nobody can read the output.
                let payload = unsafe { run(self.0, counted) };
                Ok((payload, Dead(self.0)))
            }
            _ => Err(self),
        }
    }

    /// F2 (see [`TaskRef::run`]).
    ///
    /// # Safety
    /// The caller holds `RUNNING` and has written the output.
    #[inline(always)]
    unsafe fn complete_and_release(self, cancelled: bool) -> (Option<Box<dyn Any + Send>>, Option<Dead>) {
        let h = self.header();
        let set = COMPLETE | if cancelled { CANCELLED } else { 0 };
        // Relaxed: a starting guess for the CAS.
        let mut cur = h.state.load(Relaxed);
        loop {
            let s = State(cur);
            if s.has_join_waiter() || (!s.has_join_interest() && s.refs() > 1) {
                // SAFETY: forwarded from the caller.
                let payload = unsafe { self.complete(cancelled) };
                return (payload, self.release());
            }
            // F2 = T2 + T5 in one RMW. AcqRel: Release publishes the output (T2) and orders
            // our accesses before a later free (T5); Acquire, when ours is the last
            // reference, orders every other holder's accesses before our free.
            match h.state.compare_exchange_weak(
                cur,
                cur + set - RUNNING - REF_ONE,
                complete_ordering(),
                Relaxed,
            ) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        let prev = State(cur);
        if prev.has_join_interest() && mutation::keep(Site::TaskOwnOutputCheck) {
            // The handle owns the output (T3); our reference is gone: touch nothing more.
            return (None, None);
        }
        // Correct code gets here only as the last reference; the `TaskOwnOutputCheck`
        // mutant also arrives with the handle's reference still live.
        debug_assert!(prev.refs() == 1 || !mutation::keep(Site::TaskOwnOutputCheck));
        // SAFETY: no handle and no other reference: the output and the memory are ours.
        let payload = unsafe { (h.vtable.drop_output)(self.0) };
        (payload, (prev.refs() == 1).then_some(Dead(self.0)))
    }

    /// The `JoinHandle` is dropped: gives up `JOIN_INTEREST` and its reference in one RMW
    /// when it can (T3 + T5), else in two steps.
    pub(crate) fn drop_handle(self) -> Option<Dead> {
        let h = self.header();
        // Relaxed: a starting guess for the CAS.
        let mut cur = h.state.load(Relaxed);
        loop {
            let s = State(cur);
            if s.is_complete() && s.refs() > 1 {
                // We own the output and must drop it while our reference keeps the memory.
                self.drop_join_interest();
                return self.release();
            }
            // T3 + T5, AcqRel: Acquire pairs with T2 (a COMPLETE seen here makes the output
            // ours to drop) and, on the last reference, with every holder's release;
            // Release orders our accesses before the completer's drop or free.
            let ord = mutation::ord(Site::TaskDropInterestAcqRel, AcqRel);
            match h.state.compare_exchange_weak(cur, cur - JOIN_INTEREST - REF_ONE, ord, Relaxed) {
                Ok(_) => break,
                Err(actual) => cur = actual,
            }
        }
        let prev = State(cur);
        if prev.refs() > 1 {
            // Not complete (checked above): the completer will drop the output (T3).
            return None;
        }
        if !prev.is_complete() {
            // An async task nobody can wake any more: its pending future goes now (T5).
            return Some(Dead::last(self.0, prev));
        }
        if prev.is_complete() {
            // SAFETY: complete, our interest, last reference: output and memory are ours. A
            // payload nobody joined is dropped here, as std's JoinHandle does.
            if let Some(p) = unsafe { (h.vtable.drop_output)(self.0) } {
                contain::drop_payload(p);
            }
        }
        Some(Dead(self.0))
    }

    /// `join`'s end: moves the output out, then gives up `JOIN_INTEREST` and the
    /// handle's reference in one RMW.
    ///
    /// # Safety
    /// The task is complete (seen with Acquire), this handle still has `JOIN_INTEREST`,
    /// and `T` is the task's output type.
    pub(crate) unsafe fn take_output_and_release<T>(self) -> (Result<T, TaskError>, Option<Dead>) {
        let mut out = MaybeUninit::<Result<T, TaskError>>::uninit();
        // SAFETY: complete + JOIN_INTEREST held: the output is ours (T3); our reference
        // keeps the memory alive until the RMW below.
        unsafe { (self.header().vtable.take_output)(self.0, out.as_mut_ptr().cast()) };
        // T3 + T5, AcqRel as in `release` (partners: the other holder's release; the
        // interest bit only tells nobody else to drop the output, already moved out).
        let ord = mutation::ord(Site::TaskReleaseAcqRel, AcqRel);
        let prev = State(self.header().state.fetch_sub(JOIN_INTEREST + REF_ONE, ord));
        // SAFETY: `take_output` initialized it.
        let out = unsafe { out.assume_init() };
        (out, (prev.refs() == 1).then_some(Dead(self.0)))
    }
}

/// T2's ordering: AcqRel (partners: the joiner's Acquire of COMPLETE for the Release
/// half, T4's Release CAS for the Acquire half), each half removable by its mutant.
#[inline(always)]
fn complete_ordering() -> Ordering {
    // Partners in the doc comment above.
    mutation::acq_rel(Site::TaskCompleteAcquire, Site::TaskCompleteRelease)
}

/// A task whose last reference is gone: its memory must be freed exactly once.
#[must_use = "the task's memory must be freed"]
pub(crate) struct Dead(NonNull<Header>);

impl Dead {
    /// The memory of a task whose last reference was just dropped, from the state `prev`
    /// before that drop. An async task that never completed still holds its future, which
    /// nothing can poll, wake or join any more: it is dropped here (T5), contained. A
    /// panic from that drop has nobody to go to and is dropped too.
    #[inline]
    fn last(h: NonNull<Header>, prev: State) -> Dead {
        if prev.is_async() && !prev.is_complete() {
            // SAFETY: ours was the last reference, so nothing else touches the task; not
            // COMPLETE, so the stage holds the future.
            unsafe { future::drop_pending(h) };
        }
        Dead(h)
    }

    pub(crate) fn home(&self) -> Home {
        // SAFETY: memory stays valid until freed by `free_heap` or by the pool.
        unsafe { self.0.as_ref().home }
    }

    /// Whether the task was an async one.
    pub(crate) fn is_async(&self) -> bool {
        // SAFETY: as in `home`. Relaxed: the last reference's drop (T5, AcqRel) already
        // ordered every access before ours.
        State(unsafe { self.0.as_ref() }.state.load(Relaxed)).is_async()
    }

    pub(crate) fn header_ptr(&self) -> *const Header {
        self.0.as_ptr()
    }

    pub(crate) fn owner(&self) -> *const () {
        // SAFETY: as in `home`.
        unsafe { self.0.as_ref().owner }
    }

    /// Frees a heap task. Pool tasks go back to their pool by index instead.
    pub(crate) fn free_heap(self) {
        debug_assert_eq!(self.home(), Home::Heap);
        // SAFETY: last reference to a heap task; its vtable knows the layout.
        unsafe { (self.0.as_ref().vtable.dealloc_heap)(self.0) }
    }
}

// SAFETY: `next` always returns the same field, and the injector alone uses it while the
// task is in the queue (a task is in at most one queue at a time).
unsafe impl crate::lockfree::inject::Linked for Header {
    fn next(&self) -> &AtomicPtr<Header> {
        &self.next
    }
}
