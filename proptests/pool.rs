//! `filch::pool` against a sequential reference model, and a concurrent exactly-once
//! property.
//!
//! The reference model is the documented algorithm written with `Vec`s: the global stack
//! is a `Vec` of batches, each cache two `Vec` chains (`current`, `spare`). Single
//! threaded, the pool must return exactly the ids the model predicts. On top of that
//! equality every step also checks the documented properties directly, so a failure
//! says which promise broke:
//! - an id is never handed out while live;
//! - `None` only when the allocating cache holds nothing *and* the global stack is empty,
//!   i.e. when `capacity - live - (slots parked in all caches) == 0` (uncached: when
//!   `capacity - live - parked == 0`); each cache parks at most `2 * BATCH`;
//! - after every cache is dropped and every live slot freed, all `capacity` slots can be
//!   allocated again, each once.

use std::collections::BTreeSet;
use std::mem::MaybeUninit;
use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::mpsc;

use filch::pool::{Cache, Pool, SlotId, BATCH};
use proptest::prelude::*;

/// A chain of free slots, as the pool keeps it: the last element is the chain's head
/// (the next one handed out).
type Chain = Vec<u32>;

/// The reference model: the algorithm of `src/pool.rs` on `Vec`s.
struct Model {
    capacity: usize,
    /// Batches; the last one is the top of the stack.
    global: Vec<Chain>,
    /// Per cache slot: `(current, spare)`, or `None` when that cache does not exist.
    caches: Vec<Option<(Chain, Chain)>>,
    live: BTreeSet<u32>,
}

impl Model {
    fn new(capacity: usize, caches: usize) -> Model {
        // Batch `k` holds slots `[k * BATCH, (k + 1) * BATCH)`, lowest index first out;
        // batch 0 is on top.
        let global = (0..capacity)
            .step_by(BATCH)
            .rev()
            .map(|start| (start..(start + BATCH).min(capacity)).rev().map(|i| i as u32).collect())
            .collect();
        Model { capacity, global, caches: vec![None; caches], live: BTreeSet::new() }
    }

    fn parked(&self) -> usize {
        self.caches.iter().flatten().map(|(c, s)| c.len() + s.len()).sum()
    }

    fn on_global(&self) -> usize {
        self.global.iter().map(Vec::len).sum()
    }

    fn push_batch(&mut self, chain: Chain) {
        assert!(!chain.is_empty() && chain.len() <= BATCH);
        self.global.push(chain);
    }

    fn alloc_uncached(&mut self) -> Option<u32> {
        let mut batch = self.global.pop()?;
        let id = batch.pop().unwrap();
        if !batch.is_empty() {
            self.push_batch(batch);
        }
        self.live.insert(id);
        Some(id)
    }

    fn free_uncached(&mut self, id: u32) {
        assert!(self.live.remove(&id));
        self.push_batch(vec![id]);
    }

    fn alloc_cached(&mut self, cache: usize) -> Option<u32> {
        let (mut current, mut spare) = self.caches[cache].take().unwrap();
        if current.is_empty() {
            if !spare.is_empty() {
                std::mem::swap(&mut current, &mut spare);
            } else if let Some(batch) = self.global.pop() {
                current = batch;
            }
        }
        let id = current.pop();
        self.caches[cache] = Some((current, spare));
        if let Some(id) = id {
            self.live.insert(id);
        }
        id
    }

    fn free_cached(&mut self, cache: usize, id: u32) {
        assert!(self.live.remove(&id));
        let (mut current, mut spare) = self.caches[cache].take().unwrap();
        if current.len() == BATCH {
            if !spare.is_empty() {
                self.push_batch(spare);
            }
            spare = std::mem::take(&mut current);
        }
        current.push(id);
        self.caches[cache] = Some((current, spare));
    }

    fn drop_cache(&mut self, cache: usize) {
        if let Some((current, spare)) = self.caches[cache].take() {
            for chain in [current, spare] {
                if !chain.is_empty() {
                    self.push_batch(chain);
                }
            }
        }
    }
}

/// A generated operation; a burst of `n` runs as `n` single steps, each checked.
#[derive(Debug, Clone, Copy)]
enum Op {
    /// Allocate `n` times through cache `c % CACHES`, creating it first if need be.
    AllocCached { c: usize, n: usize },
    /// Free `n` live ids (chosen from `pick`) through cache `c % CACHES`.
    FreeCached { c: usize, n: usize, pick: usize },
    /// Allocate `n` times without a cache.
    AllocUncached { n: usize },
    /// Free `n` live ids (chosen from `pick`) without a cache.
    FreeUncached { n: usize, pick: usize },
    /// Drop cache `c % CACHES` (its slots go back to the global stack).
    DropCache { c: usize },
}

/// One step of an [`Op`].
#[derive(Debug, Clone, Copy)]
enum Single {
    AllocCached(usize),
    FreeCached(usize, usize),
    AllocUncached,
    FreeUncached(usize),
    DropCache(usize),
}

impl Op {
    /// The single steps of this operation; `pick + i` chooses the `i`th id to free.
    fn singles(self) -> impl Iterator<Item = Single> {
        let n = match self {
            Op::AllocCached { n, .. }
            | Op::FreeCached { n, .. }
            | Op::AllocUncached { n }
            | Op::FreeUncached { n, .. } => n,
            Op::DropCache { .. } => 1,
        };
        (0..n).map(move |i| match self {
            Op::AllocCached { c, .. } => Single::AllocCached(c % CACHES),
            Op::FreeCached { c, pick, .. } => Single::FreeCached(c % CACHES, pick.wrapping_add(i)),
            Op::AllocUncached { .. } => Single::AllocUncached,
            Op::FreeUncached { pick, .. } => Single::FreeUncached(pick.wrapping_add(i)),
            Op::DropCache { c } => Single::DropCache(c % CACHES),
        })
    }
}

const CACHES: usize = 3;

/// Mostly single steps, sometimes bursts longer than two batches, so that caches fill
/// both chains and spill, and the pool runs dry and refills.
fn burst() -> impl Strategy<Value = usize> {
    prop_oneof![3 => Just(1usize), 1 => 1..=3 * BATCH]
}

/// Cache 0 is picked half the time, so that one cache sees long histories.
fn cache_index() -> impl Strategy<Value = usize> {
    prop_oneof![Just(0usize), 0..CACHES]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (cache_index(), burst()).prop_map(|(c, n)| Op::AllocCached { c, n }),
        5 => (cache_index(), burst(), any::<usize>()).prop_map(|(c, n, pick)| Op::FreeCached { c, n, pick }),
        2 => burst().prop_map(|n| Op::AllocUncached { n }),
        2 => (burst(), any::<usize>()).prop_map(|(n, pick)| Op::FreeUncached { n, pick }),
        1 => cache_index().prop_map(|c| Op::DropCache { c }),
    ]
}

/// The pool under test, its caches, the live ids, and the model, side by side.
struct Run<'p> {
    pool: &'p Pool<u64>,
    caches: Vec<Option<Cache<'p, u64>>>,
    model: Model,
    /// Live ids; each slot holds its own index as a stamp while live.
    live: Vec<SlotId>,
}

impl<'p> Run<'p> {
    fn new(pool: &'p Pool<u64>) -> Run<'p> {
        let caches = (0..CACHES).map(|_| None).collect();
        Run { pool, caches, model: Model::new(pool.capacity(), CACHES), live: Vec::new() }
    }

    fn cache(&mut self, c: usize) -> &mut Cache<'p, u64> {
        if self.model.caches[c].is_none() {
            self.model.caches[c] = Some((Vec::new(), Vec::new()));
        }
        let pool = self.pool;
        self.caches[c].get_or_insert_with(|| pool.cache())
    }

    /// Checks an allocation's result against the model's and the documented promises.
    /// `reachable`: free slots this allocator could reach before the call.
    fn allocated(
        &mut self,
        got: Option<SlotId>,
        expect: Option<u32>,
        reachable: usize,
    ) -> Result<(), TestCaseError> {
        prop_assert_eq!(got.map(SlotId::raw), expect, "differs from the reference model");
        match got {
            Some(id) => {
                prop_assert!(!self.live.contains(&id), "{:?} handed out while live", id);
                // SAFETY: `id` was just allocated; this test is its only holder.
                unsafe { self.pool.slot_ptr(id).as_ptr().write(MaybeUninit::new(id.raw() as u64)) };
                self.live.push(id);
            }
            None => prop_assert_eq!(reachable, 0, "None while free slots were reachable"),
        }
        Ok(())
    }

    /// Takes the live id chosen by `pick` out of `live`, checking its stamp.
    fn take_live(&mut self, pick: usize) -> Result<Option<SlotId>, TestCaseError> {
        if self.live.is_empty() {
            return Ok(None);
        }
        let id = self.live.swap_remove(pick % self.live.len());
        // SAFETY: `id` is live and held by this test, which stamped it when allocating.
        let stamp = unsafe { self.pool.slot_ptr(id).as_ref().assume_init() };
        prop_assert_eq!(stamp, id.raw() as u64, "a live slot's contents changed");
        Ok(Some(id))
    }

    fn step(&mut self, s: Single) -> Result<(), TestCaseError> {
        match s {
            Single::AllocCached(c) => {
                let on_global = self.model.on_global();
                let cache = self.cache(c);
                let reachable = cache.cached() + on_global;
                let got = cache.try_alloc();
                let expect = self.model.alloc_cached(c);
                self.allocated(got, expect, reachable)?;
            }
            Single::FreeCached(c, pick) => {
                if let Some(id) = self.take_live(pick)? {
                    // SAFETY: `id` came from this pool, was live (just taken out of
                    // `live`), and is freed once.
                    unsafe { self.cache(c).free(id) };
                    self.model.free_cached(c, id.raw());
                }
            }
            Single::AllocUncached => {
                let reachable = self.model.on_global();
                let got = self.pool.try_alloc();
                let expect = self.model.alloc_uncached();
                self.allocated(got, expect, reachable)?;
            }
            Single::FreeUncached(pick) => {
                if let Some(id) = self.take_live(pick)? {
                    // SAFETY: as above.
                    unsafe { self.pool.free(id) };
                    self.model.free_uncached(id.raw());
                }
            }
            Single::DropCache(c) => {
                self.caches[c] = None;
                self.model.drop_cache(c);
            }
        }
        self.check_counts()
    }

    /// Conservation and the per-cache bound, against the pool's own counts.
    fn check_counts(&self) -> Result<(), TestCaseError> {
        for (c, cache) in self.caches.iter().enumerate() {
            let held = cache.as_ref().map_or(0, Cache::cached);
            prop_assert!(held <= 2 * BATCH, "a cache parks {} slots", held);
            let modeled = self.model.caches[c].as_ref().map_or(0, |(cur, sp)| cur.len() + sp.len());
            prop_assert_eq!(held, modeled);
        }
        prop_assert_eq!(self.model.live.len(), self.live.len());
        prop_assert_eq!(self.model.on_global() + self.model.parked() + self.live.len(), self.model.capacity);
        Ok(())
    }

    /// Drops every cache, frees every live slot, and checks that all slots come back.
    fn finish(mut self) -> Result<(), TestCaseError> {
        self.caches.clear();
        for id in std::mem::take(&mut self.live) {
            // SAFETY: each remaining live id is freed once.
            unsafe { self.pool.free(id) };
        }
        assert_all_allocatable(self.pool)
    }
}

/// With every cache dropped and every slot freed: all `capacity` slots can be
/// allocated, each exactly once.
fn assert_all_allocatable(pool: &Pool<u64>) -> Result<(), TestCaseError> {
    let cap = pool.capacity();
    let ids: Vec<SlotId> = std::iter::from_fn(|| pool.try_alloc()).take(cap + 1).collect();
    prop_assert_eq!(ids.len(), cap, "slots were lost or duplicated");
    let distinct: BTreeSet<SlotId> = ids.iter().copied().collect();
    prop_assert_eq!(distinct.len(), cap, "a slot was handed out twice");
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Single-threaded: every allocation returns what the reference model predicts, and
    /// the documented properties hold after every step.
    #[test]
    fn matches_reference_model(cap_log in 0u32..8, ops in prop::collection::vec(op(), 0..200)) {
        let pool = Pool::<u64>::with_capacity(1 << cap_log).unwrap();
        let mut run = Run::new(&pool);
        for s in ops.into_iter().flat_map(Op::singles) {
            run.step(s)?;
        }
        run.finish()?;
    }
}

/// One step of a thread's script in the concurrent property.
#[derive(Debug, Clone)]
enum Step {
    /// Allocate through this thread's cache (or uncached, for the uncached thread).
    Alloc,
    /// Free one of this thread's live slots, chosen by the number.
    Free(usize),
    /// Hand one of this thread's live slots to the next thread (which frees it).
    Send(usize),
    /// Free whatever the previous thread has handed over so far.
    FreeReceived,
    /// Return this thread's cached slots to the global stack.
    Flush,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        5 => Just(Step::Alloc),
        2 => any::<usize>().prop_map(Step::Free),
        2 => any::<usize>().prop_map(Step::Send),
        2 => Just(Step::FreeReceived),
        1 => Just(Step::Flush),
    ]
}

/// The shared per-slot live flags of the concurrent property. The swaps are Relaxed
/// RMWs: they see every earlier swap of the same flag, and add no ordering that could
/// hide a missing one in the pool.
struct Live(Vec<AtomicBool>);

impl Live {
    fn take(&self, id: SlotId) {
        assert!(!self.0[id.index()].swap(true, Relaxed), "{id:?} handed out while live");
    }

    fn release(&self, id: SlotId) {
        assert!(self.0[id.index()].swap(false, Relaxed), "{id:?} freed while not live");
    }
}

/// A slot owner's handle in the concurrent property: a cache, or none.
enum Alloc<'p> {
    Cached(Cache<'p, u64>),
    Uncached(&'p Pool<u64>),
}

impl Drop for Alloc<'_> {
    fn drop(&mut self) {
        // A failed check may have left the pool corrupt; flushing the cache then could
        // panic inside `Drop` and abort the test binary before proptest can report and
        // shrink. Unwinding leaks the cache's slots instead.
        if std::thread::panicking() {
            if let Alloc::Cached(c) = self {
                let pool = c.pool();
                std::mem::forget(std::mem::replace(self, Alloc::Uncached(pool)));
            }
        }
    }
}

impl Alloc<'_> {
    fn alloc(&mut self) -> Option<SlotId> {
        match self {
            Alloc::Cached(c) => c.try_alloc(),
            Alloc::Uncached(p) => p.try_alloc(),
        }
    }

    /// # Safety
    ///
    /// As `Cache::free`.
    unsafe fn free(&mut self, id: SlotId) {
        match self {
            // SAFETY: forwarded from the caller.
            Alloc::Cached(c) => unsafe { c.free(id) },
            // SAFETY: forwarded from the caller.
            Alloc::Uncached(p) => unsafe { p.free(id) },
        }
    }

    fn flush(&mut self) {
        if let Alloc::Cached(c) = self {
            c.flush();
        }
    }
}

/// Runs one thread's script. Thread `me` sends to the next thread over `tx` and frees
/// what the previous one sends over `rx`. Every slot it holds carries its stamp
/// `me << 32 | sequence`, checked before the slot is freed or handed over, and checked
/// by the receiver (the channel orders the write before the read).
fn run_script(
    pool: &Pool<u64>,
    live: &Live,
    me: u64,
    cached: bool,
    script: &[Step],
    tx: mpsc::Sender<(SlotId, u64)>,
    rx: mpsc::Receiver<(SlotId, u64)>,
) {
    let mut a = if cached { Alloc::Cached(pool.cache()) } else { Alloc::Uncached(pool) };
    let mut held: Vec<(SlotId, u64)> = Vec::new();
    let mut seq = 0u64;
    let free_checked = |a: &mut Alloc<'_>, (id, stamp): (SlotId, u64)| {
        // SAFETY: `id` is live and held by this thread (allocated here, or received).
        let found = unsafe { pool.slot_ptr(id).as_ref().assume_init() };
        assert_eq!(found, stamp, "{id:?}'s contents changed under its owner");
        live.release(id);
        // SAFETY: `id` came from this pool, was live until the line above, and is freed
        // once, by its one holder.
        unsafe { a.free(id) };
    };
    for s in script {
        match *s {
            Step::Alloc => {
                if let Some(id) = a.alloc() {
                    live.take(id);
                    seq += 1;
                    let stamp = (me << 32) | seq;
                    // SAFETY: `id` was just allocated to this thread.
                    unsafe { pool.slot_ptr(id).as_ptr().write(MaybeUninit::new(stamp)) };
                    held.push((id, stamp));
                }
            }
            Step::Free(k) if !held.is_empty() => {
                let slot = held.swap_remove(k % held.len());
                free_checked(&mut a, slot);
            }
            Step::Send(k) if !held.is_empty() => {
                let slot = held.swap_remove(k % held.len());
                tx.send(slot).unwrap();
            }
            Step::FreeReceived => {
                while let Ok(slot) = rx.try_recv() {
                    free_checked(&mut a, slot);
                }
            }
            Step::Flush => a.flush(),
            Step::Free(_) | Step::Send(_) => {}
        }
    }
    // Done: hang up first (so the next thread's drain ends), then free what is held and
    // everything the previous thread sends until it hangs up too.
    drop(tx);
    for slot in held {
        free_checked(&mut a, slot);
    }
    for slot in rx {
        free_checked(&mut a, slot);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 128, ..ProptestConfig::default() })]

    /// Several threads run random alloc/free scripts at once, handing slots around a ring
    /// of channels so that slots are freed on other threads than the one that took them
    /// (thread 0 allocates and frees uncached). Shared live flags assert exactly-once;
    /// afterwards every slot is allocatable again.
    #[test]
    fn concurrent_scripts_hand_out_each_slot_once(
        cap_log in 0u32..8,
        scripts in prop::collection::vec(prop::collection::vec(step(), 0..600), 2..5),
    ) {
        let cap = 1usize << cap_log;
        let pool = Pool::<u64>::with_capacity(cap).unwrap();
        let live = Live((0..cap).map(|_| AtomicBool::new(false)).collect());
        let n = scripts.len();
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..n).map(|_| mpsc::channel()).unzip();
        let mut rxs: Vec<Option<_>> = rxs.into_iter().map(Some).collect();
        std::thread::scope(|s| {
            for (me, (script, tx)) in scripts.iter().zip(txs).enumerate() {
                // Thread `me` sends on channel `me` and receives on channel `me - 1`.
                let rx = rxs[(me + n - 1) % n].take().unwrap();
                let (pool, live) = (&pool, &live);
                s.spawn(move || run_script(pool, live, me as u64, me != 0, script, tx, rx));
            }
        });
        prop_assert!(live.0.iter().all(|f| !f.load(Relaxed)), "a slot was left live");
        assert_all_allocatable(&pool)?;
    }
}
