//! Loom models of `filch::pool`.
//!
//! Under loom the pool has `DEFAULT_CAPACITY = 4` slots in batches of `BATCH = 2`, so two
//! batches start on the global stack and the models reach exhaustion, refill from the
//! global stack, a full chain becoming the spare and being swapped back in, batches
//! returned by cache drop, and the uncached pop/push-back. (Pushing a full spare to the
//! global stack needs more than `2 * BATCH` frees into one cache; it is the same
//! `push_batch` as a drop, and the proptests cover its bookkeeping.) Every model asserts
//! exactly-once:
//!
//! - a per-slot `live` flag: `assert!(!live[i].swap(true))` on every allocation and
//!   `assert!(live[i].swap(false))` before every free, so a slot handed out while live
//!   fails at once. The flags are Relaxed RMWs: they see every earlier flag write (RMWs
//!   read the latest value) but add no happens-before edge that could hide a missing
//!   ordering in the pool;
//! - a marker written into the slot's storage through the loom-tracked
//!   `Pool::with_slot_mut` by each successive owner, so loom's causality checker reports
//!   any two owners of one slot that are not ordered by happens-before (the slot's
//!   contents must travel with it from free to the next alloc);
//! - at the end, after joining every thread, all `capacity` slots are allocatable again:
//!   nothing was lost.
//!
//! The `mutant_*` tests at the bottom weaken one ordering (or drop the ABA tag) each and
//! run the model that catches it.

use std::mem::MaybeUninit;

use filch::pool::{Cache, Pool, SharedCache, SlotId};
use filch::sync::mutation::{self, Site};
use loom::sync::atomic::{AtomicBool, Ordering::Relaxed};
use loom::sync::{mpsc, Arc};
use loom::thread;

use crate::model;

/// Runs `f` under loom with no preemption bound: every interleaving (up to loom's
/// partial-order reduction). Used for the two-thread models, which are small enough;
/// `LOOM_MAX_PREEMPTIONS` is ignored for them because any bound would only weaken them.
fn exhaustive<F: Fn() + Sync + Send + 'static>(f: F) {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = None;
    b.check(f);
}

/// A thread's cache that is *not* flushed when the thread unwinds from a failed check.
///
/// A failing model may leave the pool corrupt (that is what the mutant tests provoke),
/// and loom's own state is mid-panic: flushing then could panic again inside `Drop`,
/// which aborts the whole test binary instead of failing one test. Dropped normally, it
/// flushes like any cache.
struct TestCache<'p>(Option<Cache<'p, usize>>);

impl<'p> std::ops::Deref for TestCache<'p> {
    type Target = Cache<'p, usize>;
    fn deref(&self) -> &Self::Target {
        self.0.as_ref().expect("present until drop")
    }
}

impl std::ops::DerefMut for TestCache<'_> {
    fn deref_mut(&mut self) -> &mut Self::Target {
        self.0.as_mut().expect("present until drop")
    }
}

impl Drop for TestCache<'_> {
    fn drop(&mut self) {
        if std::thread::panicking() {
            std::mem::forget(self.0.take());
        }
    }
}

/// What a model checks besides its own asserts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Checks {
    /// Live flags, the final "nothing lost" drain, and slot markers checked by loom's
    /// causality checker.
    Full,
    /// Live flags and the final drain only: shows that the exactly-once assertions by
    /// themselves catch a mutant, not just loom's data-race detector.
    ValuesOnly,
}

/// A pool plus the per-slot live flags the assertions use.
struct Harness {
    pool: Pool<usize>,
    live: Vec<AtomicBool>,
    checks: Checks,
}

impl Harness {
    fn new(checks: Checks) -> Arc<Harness> {
        let pool = Pool::<usize>::new();
        let live = (0..pool.capacity()).map(|_| AtomicBool::new(false)).collect();
        Arc::new(Harness { pool, live, checks })
    }

    fn cache(&self) -> TestCache<'_> {
        TestCache(Some(self.pool.cache()))
    }

    /// Claims the live flag of a freshly allocated slot and writes `marker` into it.
    fn took(&self, id: SlotId, marker: usize) -> SlotId {
        // Relaxed: see the module docs (the flags must not synchronize).
        assert!(!self.live[id.index()].swap(true, Relaxed), "{id:?} handed out while live");
        self.touch(id, marker);
        id
    }

    /// The owner's last access to the slot, then its live flag is released.
    fn freeing(&self, id: SlotId, marker: usize) {
        self.touch(id, marker);
        // Relaxed: as in `took`.
        assert!(self.live[id.index()].swap(false, Relaxed), "{id:?} freed while not live");
    }

    fn touch(&self, id: SlotId, marker: usize) {
        if self.checks == Checks::ValuesOnly {
            return;
        }
        self.pool.with_slot_mut(id, |p| {
            // SAFETY: the test holds `id`'s live allocation (its flag says so); loom
            // checks this write against every other owner's.
            unsafe { p.write(MaybeUninit::new(marker)) }
        });
    }

    fn alloc(&self, cache: &mut Cache<'_, usize>, marker: usize) -> Option<SlotId> {
        cache.try_alloc().map(|id| self.took(id, marker))
    }

    fn free(&self, cache: &mut Cache<'_, usize>, id: SlotId, marker: usize) {
        self.freeing(id, marker);
        // SAFETY: `id` came from this pool and is live (checked just above); freed once.
        unsafe { cache.free(id) };
    }

    fn alloc_uncached(&self, marker: usize) -> Option<SlotId> {
        self.pool.try_alloc().map(|id| self.took(id, marker))
    }

    fn free_uncached(&self, id: SlotId, marker: usize) {
        self.freeing(id, marker);
        // SAFETY: as in `free`.
        unsafe { self.pool.free(id) };
    }

    /// After every thread is joined (and has freed what it held): every slot can be
    /// allocated, exactly once each.
    fn assert_nothing_lost(&self) {
        let cap = self.pool.capacity();
        let mut got = 0;
        for _ in 0..=cap {
            match self.alloc_uncached(usize::MAX) {
                Some(_) => got += 1,
                None => break,
            }
        }
        assert_eq!(got, cap, "slots were lost");
    }
}

/// (a) Two threads, each with its own cache. One takes and returns a slot and drops its
/// cache (its batch goes back to the global stack). The other allocates three slots, so
/// its third allocation refills from the global stack — possibly the batch the first
/// thread just returned — or finds the pool exhausted; it then frees them (its current
/// chain fills and becomes the spare), allocates three again (the third swaps the spare
/// in), and frees them.
fn two_caches(checks: Checks) {
    exhaustive(move || {
        let h = Harness::new(checks);
        let h1 = h.clone();
        let t1 = thread::spawn(move || {
            let mut cache = h1.cache();
            if let Some(id) = h1.alloc(&mut cache, 1) {
                h1.free(&mut cache, id, 1);
            }
        });
        let h2 = h.clone();
        let t2 = thread::spawn(move || {
            let mut cache = h2.cache();
            for round in 0..2 {
                let held: Vec<SlotId> = (0..3).filter_map(|_| h2.alloc(&mut cache, 2)).collect();
                assert!(held.len() >= 2, "round {round}: a cache came up short with a batch never taken");
                for id in held {
                    h2.free(&mut cache, id, 2);
                }
            }
        });
        t1.join().unwrap();
        t2.join().unwrap();
        h.assert_nothing_lost();
    });
}

/// (b) Cross-thread free: one thread allocates two slots through its cache and hands
/// them over a channel to a second, which frees them into *its* cache and drops it (the
/// slots return to the global stack as one batch). A third thread allocates uncached
/// meanwhile, possibly the very slots the second thread just returned.
fn cross_thread_free(checks: Checks) {
    model(3, move || {
        let h = Harness::new(checks);
        let (tx, rx) = mpsc::channel::<Option<SlotId>>();
        let h1 = h.clone();
        let producer = thread::spawn(move || {
            let mut cache = h1.cache();
            for _ in 0..2 {
                tx.send(h1.alloc(&mut cache, 1)).unwrap();
            }
        });
        let h2 = h.clone();
        let freer = thread::spawn(move || {
            let mut cache = h2.cache();
            for _ in 0..2 {
                if let Some(id) = rx.recv().unwrap() {
                    h2.free(&mut cache, id, 2);
                }
            }
        });
        let h3 = h.clone();
        let taker = thread::spawn(move || {
            let held: Vec<SlotId> = (0..3).filter_map(|_| h3.alloc_uncached(3)).collect();
            for id in held {
                h3.free_uncached(id, 3);
            }
        });
        producer.join().unwrap();
        freer.join().unwrap();
        taker.join().unwrap();
        h.assert_nothing_lost();
    });
}

/// (b') Cross-thread free and return, two threads, every interleaving: the main thread
/// allocates two slots through its cache and hands them over a channel to a second
/// thread, which frees them into its own cache and drops it; the main thread meanwhile
/// allocates three more, so its third allocation either finds the pool empty or gets a
/// slot back from the batch the other thread returned.
fn cross_thread_return(checks: Checks) {
    exhaustive(move || {
        let h = Harness::new(checks);
        let (tx, rx) = mpsc::channel::<Option<SlotId>>();
        let h2 = h.clone();
        let freer = thread::spawn(move || {
            let mut cache = h2.cache();
            for _ in 0..2 {
                if let Some(id) = rx.recv().unwrap() {
                    h2.free(&mut cache, id, 2);
                }
            }
        });
        let mut cache = h.cache();
        for _ in 0..2 {
            tx.send(h.alloc(&mut cache, 1)).unwrap();
        }
        let held: Vec<SlotId> = (0..3).filter_map(|_| h.alloc(&mut cache, 1)).collect();
        for id in held {
            h.free(&mut cache, id, 1);
        }
        drop(cache);
        freer.join().unwrap();
        h.assert_nothing_lost();
    });
}

/// (c) The uncached path from `threads` threads, each allocating and freeing one slot.
///
/// With two threads this holds the ABA interleaving: thread A reads the head `(tag, 0)`
/// and slot 0's `next_batch` (slot 2) and is preempted; thread B pops batch {0, 1},
/// keeps slot 0 and pushes {1} back, then frees slot 0, so slot 0 is on top again with
/// `next_batch = 1`. A's CAS must fail on the tag; without the tag it succeeds, installs
/// slot 2 and loses batch {1} (the final drain comes up short), and A's alloc is not
/// ordered after B's free (loom's causality checker fires on the slot marker).
fn uncached(threads: usize, bound: Option<usize>, checks: Checks) {
    let f = move || {
        let h = Harness::new(checks);
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                let h = h.clone();
                thread::spawn(move || {
                    if let Some(id) = h.alloc_uncached(t) {
                        h.free_uncached(id, t);
                    }
                })
            })
            .collect();
        for w in workers {
            w.join().unwrap();
        }
        h.assert_nothing_lost();
    };
    match bound {
        Some(bound) => model(bound, f),
        None => exhaustive(f),
    }
}

fn uncached_aba(checks: Checks) {
    uncached(2, None, checks);
}

/// A [`SharedCache`] of the harness's pool, borrowed by several threads.
struct SharedHarness {
    /// Dropped explicitly in `Drop`, before the harness whose pool it takes from.
    shared: std::mem::ManuallyDrop<SharedCache<'static, usize>>,
    h: Arc<Harness>,
}

impl SharedHarness {
    fn new(checks: Checks) -> SharedHarness {
        let h = Harness::new(checks);
        // SAFETY: the cache takes from `h`'s pool, which the `Arc` keeps in place and alive
        // for as long as `shared` (dropped first, in `Drop`).
        let cache: Cache<'static, usize> = unsafe { std::mem::transmute(h.pool.cache()) };
        // Built as the scheduler builds its own: empty, then the cache installed.
        let shared = SharedCache::empty();
        assert!(shared.install(cache).is_ok(), "an empty shared cache takes a cache");
        SharedHarness { shared: std::mem::ManuallyDrop::new(shared), h }
    }

    fn alloc(&self, marker: usize) -> Option<SlotId> {
        self.shared.try_alloc(&self.h.pool).map(|id| self.h.took(id, marker))
    }

    fn free(&self, id: SlotId, marker: usize) {
        self.h.freeing(id, marker);
        // SAFETY: `id` came from this pool and is live (checked just above); freed once.
        unsafe { self.shared.free(&self.h.pool, id) };
    }
}

impl Drop for SharedHarness {
    fn drop(&mut self) {
        // As `TestCache`: no flush into a pool a failed check may have left corrupt.
        if !std::thread::panicking() {
            // SAFETY: dropped once, here; `h` (and its pool) is still alive.
            unsafe { std::mem::ManuallyDrop::drop(&mut self.shared) };
        }
    }
}

/// (d) The shared cache: two threads each allocate a slot through it and free the slot
/// back through it, every interleaving. A borrower finds the cache as the previous one
/// left it (a chain refilled from the global stack, a slot freed into it) or, finding it
/// borrowed, goes to the global stack uncached. Afterwards the cache is flushed and every
/// slot must be allocatable again.
fn shared_cache(checks: Checks) {
    exhaustive(move || {
        let sh = Arc::new(SharedHarness::new(checks));
        let threads: Vec<_> = (1..=2)
            .map(|marker| {
                let sh = sh.clone();
                thread::spawn(move || {
                    // Never exhausted here: one batch of two for each thread (a borrower
                    // takes one, the other thread finds the other), so a `None` is a bug.
                    let id = sh.alloc(marker).expect("a free slot is always within reach here");
                    sh.free(id, marker);
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        sh.shared.flush();
        sh.h.assert_nothing_lost();
    });
}

#[test]
fn pool_two_caches() {
    two_caches(Checks::Full);
}

#[test]
fn pool_cross_thread_free() {
    cross_thread_free(Checks::Full);
}

#[test]
fn pool_cross_thread_return() {
    cross_thread_return(Checks::Full);
}

#[test]
fn pool_uncached_aba() {
    uncached_aba(Checks::Full);
}

#[test]
fn pool_uncached_three_threads() {
    uncached(3, Some(2), Checks::Full);
}

// Mutation evidence: each test weakens one ordering (or drops the ABA tag) and runs a
// model that catches it; the test passes only if the model fails. Each mutant is shown
// twice: with the full checks, and with the value checks alone (live flags and the final
// drain, no slot markers), so the exactly-once assertions are known to bite by
// themselves.

#[test]
#[should_panic]
fn mutant_pool_no_tag_caught_by_uncached_aba() {
    mutation::set(Site::PoolNoTag);
    uncached_aba(Checks::Full);
}

#[test]
#[should_panic(expected = "slots were lost")]
fn mutant_pool_no_tag_caught_by_uncached_aba_values_only() {
    mutation::set(Site::PoolNoTag);
    uncached_aba(Checks::ValuesOnly);
}

#[test]
#[should_panic]
fn mutant_pool_head_acquire_caught_by_two_caches() {
    mutation::set(Site::PoolHeadAcquire);
    two_caches(Checks::Full);
}

#[test]
#[should_panic(expected = "handed out while live")]
fn mutant_pool_head_acquire_caught_by_two_caches_values_only() {
    mutation::set(Site::PoolHeadAcquire);
    two_caches(Checks::ValuesOnly);
}

#[test]
#[should_panic]
fn mutant_pool_push_release_caught_by_cross_thread_free() {
    mutation::set(Site::PoolPushRelease);
    cross_thread_free(Checks::Full);
}

#[test]
#[should_panic(expected = "handed out while live")]
fn mutant_pool_push_release_caught_by_two_caches_values_only() {
    mutation::set(Site::PoolPushRelease);
    two_caches(Checks::ValuesOnly);
}

#[test]
#[should_panic]
fn mutant_pool_head_acquire_caught_by_cross_thread_return() {
    mutation::set(Site::PoolHeadAcquire);
    cross_thread_return(Checks::Full);
}

#[test]
#[should_panic]
fn mutant_pool_push_release_caught_by_cross_thread_return() {
    mutation::set(Site::PoolPushRelease);
    cross_thread_return(Checks::Full);
}

#[test]
fn pool_shared_cache() {
    shared_cache(Checks::Full);
}

// Both caught by loom's race check on the shared cache's `UnsafeCell`, not by an assert.
#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_shared_cache_borrow_acquire_caught_by_shared_cache() {
    mutation::set(Site::SharedCacheBorrowAcquire);
    shared_cache(Checks::Full);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_shared_cache_give_back_release_caught_by_shared_cache() {
    mutation::set(Site::SharedCacheGiveBackRelease);
    shared_cache(Checks::Full);
}
