//! Data parallelism: `parallel_for` and `for_each_chunk(_mut)`, with adaptive splitting,
//! and the engine under them and under `parallel_reduce`/`parallel_map` (`reduce.rs`):
//! [`fold_blocks`], which folds blocks into one accumulator per leaf and combines the
//! leaves' accumulators in index order on the way back up the `join` tree.
//!
//! # The splitting rule
//!
//! A call starts as one *leaf* on one worker. A leaf walks its range in blocks and, before
//! each block, splits the rest of its range in two with [`join`](crate::fork) when both
//! hold:
//!
//! - some worker is idle (searching, or asleep: `Sleep::any_idle`), and
//! - the leaf's own deque is empty: if it still holds work, the idle workers can take
//!   that, and splitting more would only add jobs.
//!
//! The half pushed by `join` is what an idle worker steals; the other half continues here
//! as a new leaf. So splitting follows hunger: a range never splits on one worker, splits
//! once per idle worker as they arrive (each wake-up takes one half), and re-splits when
//! a worker that finished its part goes looking for more. One call serves a 10-element
//! range (no split, no allocation, one block) and a 10M-element range alike.
//!
//! The block length adapts to the work: it doubles while a block takes under
//! [`BLOCK_FAST`] and halves above [`BLOCK_SLOW`], so the idle check (two relaxed loads)
//! and the clock read cost a fraction of a percent, yet a hungry worker waits at most
//! about one block. Halves inherit their parent's block length.
//!
//! # Cancellation
//!
//! With a token, each block first checks it; once cancelled, a leaf adds the rest of its
//! range to the skip count and stops. Indices already visited stay visited.
//!
//! # Panics
//!
//! A panic in `f` unwinds the leaf; `join` holds it until the other half has finished and
//! re-raises it, so the panic reaches the caller after every running part has stopped.
//! Accumulators are owned values on the way: a leaf's is dropped when it unwinds, and the
//! other half's result is dropped by `join` before it re-raises, so an accumulator that
//! owns something (`reduce.rs`'s written-elements guard) is released exactly once.

use std::ops::Range;
use std::time::{Duration, Instant};

use crate::primitives::cancel::{CancelToken, Cancelled};
use crate::runtime::shared::Shared;
use crate::runtime::worker::{self, WorkerCtx};
use crate::shim::atomic::{AtomicUsize, Ordering::Relaxed};
use crate::structured::fork::{in_pool, join_on_worker};

/// A block faster than this doubles the next block's length.
pub(crate) const BLOCK_FAST: Duration = Duration::from_micros(5);
/// A block slower than this halves the next block's length.
pub(crate) const BLOCK_SLOW: Duration = Duration::from_micros(50);
/// The longest block, in indices.
const BLOCK_MAX: usize = 1 << 20;

/// The state shared by every leaf of one call. `fold` takes a block: a sub-range of the
/// call's range (so the chunked forms slice once per block, and a per-index loop is the
/// caller's own, where the compiler can vectorize it), and the leaf's accumulator.
struct Job<'a, I, F, C> {
    /// A leaf's starting accumulator, given the first index the leaf will fold.
    init: &'a I,
    fold: &'a F,
    combine: &'a C,
    token: Option<&'a CancelToken>,
    skipped: AtomicUsize,
}

/// `parallel_for` on `shared` from any thread; returns how many indices were skipped.
pub(crate) fn parallel_for<F>(
    shared: &Shared,
    range: Range<usize>,
    token: Option<&CancelToken>,
    f: &F,
) -> usize
where
    F: Fn(usize) + Sync,
{
    for_blocks(shared, range, token, &|r: Range<usize>| r.for_each(f))
}

/// Calls `f` on disjoint blocks covering `range` (minus what a cancel skips); returns how
/// many indices were skipped.
pub(crate) fn for_blocks<F>(shared: &Shared, range: Range<usize>, token: Option<&CancelToken>, f: &F) -> usize
where
    F: Fn(Range<usize>) + Sync,
{
    fold_blocks(shared, range, token, &|_| (), &|(), r| f(r), &|(), ()| ()).1
}

/// The engine: folds disjoint blocks covering `range` (minus what a cancel skips) into
/// accumulators, one per leaf, each started by `init(first index)`, and combines them in
/// index order (`combine(left, right)`, the left one covering lower indices). Returns
/// the result and how many indices were skipped.
///
/// The grouping of `combine` calls depends on how the range was split, which depends on
/// timing; only their order is fixed.
pub(crate) fn fold_blocks<A, I, F, C>(
    shared: &Shared,
    range: Range<usize>,
    token: Option<&CancelToken>,
    init: &I,
    fold: &F,
    combine: &C,
) -> (A, usize)
where
    A: Send,
    I: Fn(usize) -> A + Sync,
    F: Fn(A, Range<usize>) -> A + Sync,
    C: Fn(A, A) -> A + Sync,
{
    if range.is_empty() {
        return (init(range.start), 0);
    }
    let job = Job { init, fold, combine, token, skipped: AtomicUsize::new(0) };
    let job = &job;
    let acc = worker::with_current(|ctx| match ctx.filter(|c| c.is_of(shared)) {
        Some(c) => leaf(c, range, 1, job),
        None => in_pool(shared, move |ctx| match ctx {
            Some(c) => leaf(c, range, 1, job),
            None => sequential(range, job),
        }),
    });
    // Relaxed: every leaf finished before `join`/`in_pool` returned (their latches order
    // the leaves' increments before this load).
    (acc, job.skipped.load(Relaxed))
}

/// One leaf: blocks, and splits when the rule says so (module docs).
fn leaf<A, I, F, C>(
    ctx: &WorkerCtx<'_>,
    mut range: Range<usize>,
    mut block: usize,
    job: &Job<'_, I, F, C>,
) -> A
where
    A: Send,
    I: Fn(usize) -> A + Sync,
    F: Fn(A, Range<usize>) -> A + Sync,
    C: Fn(A, A) -> A + Sync,
{
    let sleep = &ctx.shared().sleep;
    let mut acc = (job.init)(range.start);
    while !range.is_empty() {
        if job.token.is_some_and(CancelToken::is_cancelled) {
            // Relaxed: a count read after the call's end (see `fold_blocks`).
            job.skipped.fetch_add(range.len(), Relaxed);
            return acc;
        }
        let len = range.len();
        if len > block && sleep.any_idle() && ctx.local_is_empty() {
            let mid = range.start + len / 2;
            let (lo, hi) = (range.start..mid, mid..range.end);
            let (a, b) = join_on_worker(
                ctx,
                move || on_this_worker(lo, block, job),
                move || on_this_worker(hi, block, job),
            );
            // Index order: what this leaf folded, then the low half, then the high half.
            return (job.combine)(acc, (job.combine)(a, b));
        }
        let end = range.start + block.min(len);
        let t0 = Instant::now();
        acc = (job.fold)(acc, range.start..end);
        range.start = end;
        let took = t0.elapsed();
        if took < BLOCK_FAST {
            block = (block * 2).min(BLOCK_MAX);
        } else if took > BLOCK_SLOW {
            block = (block / 2).max(1);
        }
    }
    acc
}

/// A half, wherever `join` runs it: a worker of the same scheduler, or (a timed-out
/// shutdown's caller executing queued jobs) a plain thread.
fn on_this_worker<A, I, F, C>(range: Range<usize>, block: usize, job: &Job<'_, I, F, C>) -> A
where
    A: Send,
    I: Fn(usize) -> A + Sync,
    F: Fn(A, Range<usize>) -> A + Sync,
    C: Fn(A, A) -> A + Sync,
{
    worker::with_current(|ctx| match ctx {
        Some(c) => leaf(c, range, block, job),
        None => sequential(range, job),
    })
}

fn sequential<A, I, F, C>(range: Range<usize>, job: &Job<'_, I, F, C>) -> A
where
    I: Fn(usize) -> A,
    F: Fn(A, Range<usize>) -> A,
{
    let acc = (job.init)(range.start);
    if job.token.is_some_and(CancelToken::is_cancelled) {
        // Relaxed: as in `leaf`.
        job.skipped.fetch_add(range.len(), Relaxed);
        return acc;
    }
    (job.fold)(acc, range)
}

/// The number of chunks of `chunk_len` in `len` elements (the last may be shorter).
///
/// # Panics
/// If `chunk_len` is zero (a contract violation, as for `slice::chunks`), naming `what`.
#[track_caller]
pub(crate) fn chunk_count(len: usize, chunk_len: usize, what: &str) -> usize {
    assert!(chunk_len != 0, "{what}: chunk_len must be at least 1");
    len.div_ceil(chunk_len)
}

/// `for_each_chunk_mut`'s base pointer, shared by the leaves.
pub(crate) struct SendPtr<T>(pub(crate) *mut T);

// SAFETY: used only to rebuild disjoint `&mut [T]` chunks (`T: Send`), one per index.
unsafe impl<T: Send> Send for SendPtr<T> {}
// SAFETY: as above: each leaf derives a different chunk from the shared base.
unsafe impl<T: Send> Sync for SendPtr<T> {}

impl<T> SendPtr<T> {
    /// The elements of chunks `chunks` (of `chunk_len` each, the last possibly shorter)
    /// of a slice of `len` elements starting at `self`.
    ///
    /// # Safety
    /// `self` is the start of a live slice of `len` elements borrowed mutably for the
    /// call; the chunk ranges passed at the same time are disjoint.
    pub(crate) unsafe fn chunks<'a>(
        &self,
        chunks: Range<usize>,
        chunk_len: usize,
        len: usize,
    ) -> &'a mut [T] {
        let start = chunks.start * chunk_len;
        let end = chunks.end.saturating_mul(chunk_len).min(len);
        // SAFETY: `start <= end <= len` (chunks.start < chunks.end <= chunk_count);
        // disjoint per call (caller).
        unsafe { std::slice::from_raw_parts_mut(self.0.add(start), end - start) }
    }
}

/// The outcome of a cancellable loop: `Err` when it skipped any index.
pub(crate) fn outcome(skipped: usize) -> Result<(), Cancelled> {
    if skipped == 0 {
        Ok(())
    } else {
        Err(Cancelled::new(skipped))
    }
}
