//! The one door to atomics, fences, cells, threads and spin hints.
//!
//! Every lock-free structure in filch imports its synchronization primitives from
//! here and nowhere else (`make lint` enforces it). Under `--cfg loom` the items are
//! loom's model-checked doubles; otherwise they are `std`'s. The shim is what lets
//! the same source be both the production code and the loom model.
//!
//! Besides re-exports it holds:
//! - `CachePadded`: 128-byte alignment for hot shared words (the adjacent-line
//!   prefetcher on x86-64 pulls lines in pairs).
//! - `UnsafeCell`: loom's closure-based API, mirrored for `std` so that one spelling
//!   works in both builds.
//! - `Witness`: a zero-sized marker outside loom; under loom a cell whose accesses are
//!   checked for happens-before. It lets a model see orderings that protect a *value*
//!   read speculatively from an atomic slot (loom does not model load buffering, so
//!   checking values alone cannot catch a missing Acquire on that path).
//! - [`mutation`]: under loom, a per-test switch that weakens one named ordering, so
//!   the test suite can show that each ordering is actually needed.

#[cfg(not(loom))]
pub(crate) use std::{sync::Arc, thread};

#[cfg(loom)]
pub(crate) use loom::{sync::Arc, thread};

/// A blocking mutex and condition variable: for the parker's fallback backend
/// (`park::CondvarFutex`, used off Linux and under loom), the wait lists of
/// `WaitGroup`/`Semaphore` (`waitlist.rs`, slow path only) and other cold state, and,
/// under loom only, the channels' lock (`chan/channel.rs`); the channels' own hot lock is
/// `lockfree::spin`.
#[cfg(not(loom))]
#[allow(unused_imports)] // on Linux only the unit tests of `park` use `Condvar`
pub(crate) use std::sync::{Condvar, Mutex, MutexGuard};

#[cfg(loom)]
pub(crate) use loom::sync::{Condvar, Mutex, MutexGuard};

/// Atomic types, `Ordering` and `fence`.
pub(crate) mod atomic {
    #[cfg(loom)]
    pub(crate) use loom::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
    #[cfg(not(loom))]
    pub(crate) use std::sync::atomic::{
        fence, AtomicBool, AtomicPtr, AtomicU32, AtomicU64, AtomicUsize, Ordering,
    };
}

/// Asymmetric barriers: a pair of fences where one side is free and the other pays for
/// both. [`asym::light`] is only a compiler fence; [`asym::heavy`] makes every running
/// thread of the process execute a full barrier (Linux `membarrier`,
/// `MEMBARRIER_CMD_PRIVATE_EXPEDITED`) before it returns. So a `light` on thread A and a
/// `heavy` on thread B order like two `fence(SeqCst)`: either B's accesses after `heavy`
/// see A's before `light`, or A's after `light` see B's before `heavy`. Worth it only
/// where the light side is hot and the heavy side rare (`deque`, one-worker schedulers).
///
/// Under loom both are `fence(SeqCst)` (loom has no membarrier): models check the
/// protocol with symmetric fences, and the substitution rests on the kernel's contract
/// (docs/DESIGN.md §1, "Sole-owner deques").
pub(crate) mod asym {
    /// Whether [`heavy`] works in this process: registers for private expedited
    /// membarrier once (Linux ≥ 4.14); `false` elsewhere. Callers use the light/heavy
    /// pair only when this returned `true`.
    #[cfg(all(target_os = "linux", not(loom)))]
    pub(crate) fn available() -> bool {
        static OK: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
        *OK.get_or_init(|| {
            // SAFETY: a plain syscall with integer arguments and no pointers.
            unsafe { libc::syscall(libc::SYS_membarrier, REGISTER_PRIVATE_EXPEDITED, 0, 0) == 0 }
        })
    }

    #[cfg(all(not(target_os = "linux"), not(loom)))]
    pub(crate) fn available() -> bool {
        false
    }

    #[cfg(loom)]
    pub(crate) fn available() -> bool {
        true
    }

    #[cfg(all(target_os = "linux", not(loom)))]
    const PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    #[cfg(all(target_os = "linux", not(loom)))]
    const REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    /// The hot side: keeps the compiler from moving accesses across it; the CPU may
    /// still reorder, which [`heavy`] on the other side undoes.
    #[inline(always)]
    pub(crate) fn light(site: super::mutation::Site) {
        #[cfg(not(loom))]
        {
            let _ = site;
            // Keeps program order for the CPU to see; its partner is `heavy` on the other
            // thread, which makes this thread pass a full barrier.
            std::sync::atomic::compiler_fence(std::sync::atomic::Ordering::SeqCst);
        }
        // Under loom: a SeqCst fence, whose partner is `heavy`'s (also a SeqCst fence).
        #[cfg(loom)]
        super::mutation::fence(site, std::sync::atomic::Ordering::SeqCst);
    }

    /// The rare side: a full barrier on every running thread of the process. Only after
    /// [`available`] returned `true`.
    pub(crate) fn heavy(site: super::mutation::Site) {
        #[cfg(all(target_os = "linux", not(loom)))]
        {
            let _ = site;
            debug_assert!(available());
            // SAFETY: a plain syscall with integer arguments and no pointers.
            let r = unsafe { libc::syscall(libc::SYS_membarrier, PRIVATE_EXPEDITED, 0, 0) };
            if r != 0 {
                // Registered (checked by the caller), so the kernel cannot refuse; if it
                // ever did, going on would race with a fence-less light side.
                crate::contain::fatal("membarrier failed after registration");
            }
        }
        #[cfg(all(not(target_os = "linux"), not(loom)))]
        {
            let _ = site;
            unreachable!("asym::heavy without asym::available");
        }
        // Under loom: a SeqCst fence, whose partner is `light`'s (also a SeqCst fence).
        #[cfg(loom)]
        super::mutation::fence(site, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A hint inside a spin loop. Under loom it yields to the model's scheduler, without
/// which a spin loop would never terminate in a model.
#[inline(always)]
pub(crate) fn spin_loop() {
    #[cfg(loom)]
    loom::thread::yield_now();
    #[cfg(not(loom))]
    std::hint::spin_loop();
}

/// Pads and aligns a value to 128 bytes so that two hot words never share a cache line
/// (nor an adjacent-line prefetch pair).
#[derive(Debug, Default)]
#[repr(align(128))]
pub(crate) struct CachePadded<T>(pub(crate) T);

const _: () = assert!(std::mem::align_of::<CachePadded<u8>>() == 128);
const _: () = assert!(std::mem::size_of::<CachePadded<u64>>() == 128);

impl<T> std::ops::Deref for CachePadded<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

/// `UnsafeCell` with loom's access API (`with`, `with_mut`), so the same code compiles
/// in both builds and loom can check every access for data races.
#[cfg(not(loom))]
#[derive(Debug, Default)]
#[repr(transparent)]
pub(crate) struct UnsafeCell<T: ?Sized>(std::cell::UnsafeCell<T>);

#[cfg(not(loom))]
#[allow(dead_code)] // not every method is used by every build of the crate
impl<T> UnsafeCell<T> {
    #[inline(always)]
    pub(crate) const fn new(value: T) -> Self {
        Self(std::cell::UnsafeCell::new(value))
    }

    /// Runs `f` with a shared raw pointer to the contents.
    #[inline(always)]
    pub(crate) fn with<R>(&self, f: impl FnOnce(*const T) -> R) -> R {
        f(self.0.get())
    }

    /// Runs `f` with a unique raw pointer to the contents.
    #[inline(always)]
    pub(crate) fn with_mut<R>(&self, f: impl FnOnce(*mut T) -> R) -> R {
        f(self.0.get())
    }
}

#[cfg(loom)]
pub(crate) use loom::cell::UnsafeCell;

/// A happens-before witness for a value carried through an atomic slot.
///
/// Outside loom it is zero-sized and its methods compile to nothing. Under loom it is a
/// `loom::cell::UnsafeCell<()>`: the producer calls [`Witness::produce`] when it writes
/// the slot and the one consumer that wins the slot calls [`Witness::consume`]; loom
/// fails the model if the two are not ordered by happens-before in *both* directions
/// across reuse (consume → next produce, produce → consume).
#[derive(Debug, Default)]
pub(crate) struct Witness {
    #[cfg(loom)]
    cell: loom::cell::UnsafeCell<()>,
}

impl Witness {
    /// The zero-sized witness every index shares outside loom.
    #[cfg(not(loom))]
    pub(crate) const NONE: Witness = Witness {};

    #[inline(always)]
    pub(crate) fn produce(&self) {
        #[cfg(loom)]
        self.cell.with_mut(|_| ());
    }

    #[inline(always)]
    pub(crate) fn consume(&self) {
        #[cfg(loom)]
        self.cell.with(|_| ());
    }
}

/// Deliberate weakening of one ordering at a time, for mutation testing under loom.
///
/// Each non-Relaxed ordering whose necessity the loom suite demonstrates is written as
/// `mutation::ord(Site::X, Acquire)` or `mutation::fence(Site::X, SeqCst)`. Outside loom
/// these are `#[inline(always)]` identities. Under loom, a test may call
/// `mutation::set` before `loom::model`; the named site is then weakened (SeqCst →
/// AcqRel, Acquire/Release/AcqRel → Relaxed, fences → AcqRel or removed) for the rest of
/// the calling thread. Loom runs a model's threads on the calling OS thread, so a
/// thread-local switch is exactly per test.
pub mod mutation {
    use super::atomic::Ordering;

    /// A named ordering (or check) in filch's lock-free code that a mutant may weaken.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    #[non_exhaustive]
    pub enum Site {
        /// No mutation.
        None,
        /// `deque::Owner::push`: the Release store of `bottom` that publishes the slot.
        PushBottomRelease,
        /// `deque::Owner::pop`: the `fence(SeqCst)` between the `bottom` store and the `top` load.
        PopFence,
        /// `deque::Stealer::steal`: the `fence(SeqCst)` between the `top` and `bottom` loads.
        StealFence,
        /// `deque::Stealer::steal`: the Acquire load of `bottom`.
        StealBottomAcquire,
        /// `deque::Stealer::steal_batch`: the per-item `fence(SeqCst)` after the first item.
        BatchFence,
        /// `deque::Stealer::steal_batch`: the per-item Acquire load of `bottom`.
        BatchBottomAcquire,
        /// `deque::Stealer::steal_batch`: the `fence(SeqCst)` between the `top` and `bottom`
        /// loads of the first item (S2).
        BatchFirstFence,
        /// `deque::Stealer::steal_batch`: the Acquire load of `bottom` for the first item (S3).
        BatchFirstBottomAcquire,
        /// `sleep::Sleep::notify` (K1): the `fence(SeqCst)` after publishing a task.
        SleepNotifyFence,
        /// `sleep::Sleep::prepare_sleep` (K3): the Release decrement of `searching`.
        SleepSearchingRelease,
        /// `sleep::Sleep::prepare_sleep` (K3): the `fence(SeqCst)` before the re-check.
        SleepPrepareFence,
        /// `sleep::Sleep::stop_searching` (K4): the `fence(SeqCst)` before the re-check.
        SleepHandoffFence,
        /// `park`: the Acquire of P1 / P3 / T1, where a park consumes the token.
        ParkAcquire,
        /// `park`: the Release swap of U1 (`unpark`) that publishes the unparker's writes.
        UnparkRelease,
        /// `park`: U1 leaves a token even when nobody is parked yet (the mutant forgets it).
        ParkKeepToken,
        /// `inject::Injector::push`: the Release CAS of I1.
        InjectPushRelease,
        /// `inject::Injector::push_chain`: the Release CAS of I1 for a chain.
        InjectChainRelease,
        /// `inject`: the Acquire CAS that claims the consumer flag (C1).
        InjectClaimAcquire,
        /// `inject`: the Release store that gives the claim back (C4).
        InjectClaimRelease,
        /// `inject`: the Acquire half of the refill's AcqRel swap of the stack (C3b).
        InjectSwapAcquire,
        /// `inject`: the Release half of the refill's AcqRel swap of the stack (C3b).
        InjectSwapRelease,
        /// `inject`: the `REFILLING` mark stored before the refill's swap (C3a).
        InjectRefillMark,
        /// `inject::Injector::is_empty`: the Acquire load of the stack head (E1).
        InjectEmptyAcquire,
        /// `pool`: the free-list head's ABA tag is not bumped.
        PoolNoTag,
        /// `pool`: the Acquire load of the free-list head.
        PoolHeadAcquire,
        /// `pool`: the Release CAS that pushes a batch onto the free list.
        PoolPushRelease,
        /// `pool::SharedCache`: the Acquire CAS that borrows the cache (X1).
        SharedCacheBorrowAcquire,
        /// `pool::SharedCache`: the Release store that gives the cache back (X3).
        SharedCacheGiveBackRelease,
        /// `task::TaskRef::complete` (T2): the Release half of the AcqRel RMW that sets `COMPLETE`.
        TaskCompleteRelease,
        /// `task::TaskRef::complete` (T2): the Acquire half of the AcqRel RMW that sets `COMPLETE`.
        TaskCompleteAcquire,
        /// `task::TaskRef::complete` (T3): the completer drops the output only when no handle
        /// has `JOIN_INTEREST` (the mutant drops it regardless).
        TaskOwnOutputCheck,
        /// `task::TaskRef::register_waiter` (T4): the Release CAS that sets `JOIN_WAITER`.
        TaskWaiterRelease,
        /// `task::TaskRef::drop_join_interest` (T3): the AcqRel RMW that clears `JOIN_INTEREST`.
        TaskDropInterestAcqRel,
        /// `task::TaskRef::release` (T5): the AcqRel decrement of the refcount.
        TaskReleaseAcqRel,
        /// `scheduler` (L3): the Release decrement that ends an external spawn.
        LifecycleLeaveRelease,
        /// `scheduler::Shared::is_closed` (L4): the Acquire load of the lifecycle word.
        LifecycleClosedAcquire,
        /// `scheduler` (L5): the spawner that leaves the word at exactly `SHUTDOWN` wakes
        /// every sleeper (the mutant does not).
        LifecycleLastLeaverWakes,
        /// `runtime::thread` (lost workers): the last worker lost closes the scheduler and
        /// waits for every external spawn to leave (L3) before it leaves, also when the
        /// scheduler was already shutting down (the mutant skips both then, as before the
        /// fix: the teardown, D4, may run while a spawn still holds its entry).
        LostWorkerWaitsClosed,
        /// `structured::group` (`spawn_group` from outside): the iterator is collected
        /// before the L1 entry (the mutant runs it under the entry: a scheduler dropped
        /// inside it waits for its own thread).
        BatchCollectsFirst,
        /// `stack_job::Latch::set` (J2): the Release swap to `SET` that publishes the result.
        LatchSetRelease,
        /// `stack_job::Latch::set` (J2): the parker is cloned before the swap (the mutant
        /// reads it after, when the waiter may already have returned).
        LatchParkerBeforeSet,
        /// `scope::Scope::done` (S3): the AcqRel decrement of the pending count.
        ScopeDoneAcqRel,
        /// `scope::Scope::count_one` (S1): a frame whose credit is spent reserves more
        /// before handing a unit to the child (the mutant hands out credit it never added).
        ScopeCreditReserve,
        /// `wait_group` (W2): the AcqRel CAS of `done`.
        WaitGroupDoneAcqRel,
        /// `wait_group` (W4): the waiter sets `WAITERS` before parking (the mutant skips it).
        WaitGroupSetWaiters,
        /// `semaphore` (M2): the Release CAS that gives a permit back.
        SemaphoreReleaseRelease,
        /// `semaphore` (M4): registration re-checks the permits (the mutant parks anyway).
        SemaphoreRegisterCheck,
        /// `semaphore` (M6): a waiter takes its parker off the list on the way out (the
        /// mutant leaves a stale entry).
        SemaphoreLeaveUnlists,
        /// `semaphore` (M6): a leaving waiter whose parker a releaser already took passes
        /// the wake-up on (the mutant drops it).
        SemaphoreLeavePassesOn,
        /// `scheduler` (orphan protocol): heap tasks count in the task balance like pool
        /// tasks, so a handle to one keeps the shared state alive (the mutant leaves them
        /// out, as the protocol once did).
        OrphanCountsHeap,
        /// `runtime::shared` (HU1): the handle units hold a strong count of the shared
        /// state's `Arc` while any is out (the mutant never adds it: the last unit's
        /// give-back drops a count it does not own).
        HandleUnitsHoldArc,
        /// `runtime::worker` (`WorkerCtx`'s drop): a worker gives its handle-unit credit
        /// back when its context ends (the mutant keeps it: the state is never freed).
        HandleCreditReturned,
        /// `runtime::roles` (B3): the grant of a role is a Release store, so the new
        /// holder's accesses to the role come after the old holder's.
        RoleGrantRelease,
        /// `runtime::roles` (B2): the claimant's fence between queueing its claim and
        /// looking for sleeping holders (pairs with K3's fence).
        RoleClaimFence,
        /// `task::future` (A4): a wake of a running task sets `NOTIFIED` (the mutant
        /// forgets it, so the wake is lost).
        AsyncWakeRunningNotifies,
        /// `task::future` (A3): a poll that ends with `NOTIFIED` set queues the task again
        /// (the mutant lets it go idle).
        AsyncRequeueNotified,
        /// `task::future` (A1): the claim's Acquire (pairs with the wake's Release).
        AsyncClaimAcquire,
        /// `task::future` (A7): the sweep leaves a running task to its poller (the mutant
        /// claims it anyway: its future is dropped while being polled).
        AsyncSweepSkipsRunning,
        /// `task::future` (A3): the Acquire fence after a pending poll finds `ABORT` (pairs
        /// with the Release of the sweep, A7, that set it during a shutdown).
        AsyncAbortSeenAcquire,
        /// `task::future` (A6): aborting an idle task queues it (the mutant only sets
        /// `ABORT`, so nobody drops the future).
        AsyncAbortQueuesIdle,
        /// `runtime::timer` (TM1): the inserter reads the parked worker's deadline under the
        /// wheel's lock, after inserting (the mutant reads it before, outside the lock).
        TimerArmReadEarly,
        /// `lockfree::spin` (CL1): the Acquire of the CAS that takes the channel's lock.
        ChanLockAcquire,
        /// `lockfree::spin` (CL2): the Release store that gives the channel's lock back.
        ChanLockRelease,
        /// `chan` (Q2): the Release half of the completer's CAS that fires a waiting
        /// operation's token, publishing its slot write or take.
        ChanFireRelease,
        /// `chan` (Q3/Q4): the owner's Acquire load (or failed cancel CAS) that sees its
        /// token fired before it reads its slot.
        ChanFiredAcquire,
        /// `chan` (Q2): a completer claims a token by CAS from `WAITING` (the mutant stores
        /// its case unconditionally, so a cancelled wait or a second `select` case fires).
        ChanClaimCas,
        /// `chan` (Q5): a cancelled receive that was handed a value passes it to another
        /// waiting receiver (the mutant buffers it, leaving that receiver asleep).
        ChanGiveBackPassesOn,
        /// `chan` (Q5): a cancelled receive that was handed a value puts it back (the
        /// mutant drops it).
        ChanGiveBackKeeps,
        /// `chan` (Q6): closing fires every waiting sender and receiver (the mutant leaves
        /// them waiting).
        ChanCloseFiresWaiters,
        /// `runtime::timer` (TM1): the inserter unparks a worker parked past the new deadline
        /// even when an earlier timer is pending on the shard (the mutant counts on that
        /// timer to end the park, though a cancel may take it away first).
        TimerUnparkDespitePending,
        /// `structured::join_set` (R4): the owner stores its waiter only if the ready queue is
        /// still empty under the lock (the mutant stores it and sleeps regardless).
        JoinSetWaitRechecks,
        /// `structured::scoped_handle` (H1): the AcqRel swap to `DONE` that publishes the
        /// result to the joiner.
        ScopedHandleFinishAcqRel,
        /// `next_slot::NextSlot::put` (N1): the Release store or swap that publishes the task.
        NextPutRelease,
        /// `next_slot::NextSlot::take` (N2): the owner's swap (the mutant loads and stores).
        NextTakeSwap,
        /// `next_slot::NextSlot::steal` (N4): the Acquire of the thief's CAS.
        NextStealAcquire,
        /// `next_slot::NextSlot::steal` (N4): the thief's CAS (the mutant loads and stores).
        NextStealCas,
    }

    #[cfg(loom)]
    std::thread_local! {
        static ACTIVE: std::cell::Cell<Site> = const { std::cell::Cell::new(Site::None) };
    }

    /// Activates `site`'s mutant for the calling thread (and the loom models it runs).
    #[cfg(loom)]
    pub fn set(site: Site) {
        ACTIVE.with(|a| a.set(site));
    }

    #[cfg(loom)]
    #[inline]
    pub(crate) fn active(site: Site) -> bool {
        site != Site::None && ACTIVE.with(|a| a.get()) == site
    }

    /// `ordering`, or its weakened form when `site`'s mutant is active.
    #[inline(always)]
    pub(crate) fn ord(site: Site, ordering: Ordering) -> Ordering {
        #[cfg(loom)]
        if active(site) {
            // The weakening table of the module docs; no partner: this is the mutant.
            return match ordering {
                Ordering::SeqCst => Ordering::AcqRel,
                _ => Ordering::Relaxed,
            };
        }
        let _ = site;
        ordering
    }

    /// A fence of `ordering` at `site`; when the mutant is active a SeqCst fence becomes
    /// AcqRel and any other fence disappears.
    #[inline(always)]
    pub(crate) fn fence(site: Site, ordering: Ordering) {
        #[cfg(loom)]
        if active(site) {
            // The mutant: a SeqCst fence becomes AcqRel, any other fence disappears.
            if ordering == Ordering::SeqCst {
                super::atomic::fence(Ordering::AcqRel);
            }
            return;
        }
        let _ = site;
        // The site's own fence; the call site names its partner.
        super::atomic::fence(ordering);
    }

    /// An RMW's AcqRel whose two halves are separate mutation sites: each half is dropped
    /// while its site's mutant is active. The caller's comment names both partners.
    #[inline(always)]
    pub(crate) fn acq_rel(acquire: Site, release: Site) -> Ordering {
        match (keep(acquire), keep(release)) {
            // Both halves kept: the production ordering.
            (true, true) => Ordering::AcqRel,
            // Release half removed by its mutant.
            (true, false) => Ordering::Acquire,
            // Acquire half removed by its mutant.
            (false, true) => Ordering::Release,
            (false, false) => Ordering::Relaxed,
        }
    }

    /// Whether a correctness check at `site` stays in (it is dropped when the mutant is active).
    #[inline(always)]
    pub(crate) fn keep(site: Site) -> bool {
        #[cfg(loom)]
        if active(site) {
            return false;
        }
        let _ = site;
        true
    }
}
