//! `parallel_sort_unstable(_by)`: a parallel quicksort over `join`, with the standard
//! library's `sort_unstable_by` at the leaves.
//!
//! # The splitting
//!
//! The whole sort runs on a worker (`install`). A call on a slice longer than the
//! *grain* picks a pivot (median of three, or of three medians of three above 64
//! elements, sampled at ¼, ½ and ¾), partitions the slice around it on this thread, and
//! sorts the two sides with `join`; the side pushed by `join` is what an idle worker
//! steals. A slice no longer than the grain is sorted by `slice::sort_unstable_by`. The
//! grain is `len / (8 × workers)` of the top-level slice, and at least [`MIN_GRAIN`]
//! elements: about eight leaves per worker, enough to even out uneven splits, while
//! most of the sorting (every partition below the grain) happens inside the standard
//! library's sort, which is faster per element than a partition step here. One worker:
//! no split at all.
//!
//! The top-level partition is sequential (one pass over the slice), and so is each
//! level's on its own subslice: that is the part of the sort that does not scale, as in
//! any parallel quicksort.
//!
//! # Partition
//!
//! A branchless Lomuto pass: each element is compared with the pivot and swapped with
//! the first element not yet known to be smaller, and the boundary moves by the result
//! of the comparison. Only swaps move elements, so a panicking comparison leaves the
//! slice a permutation of its input (nothing lost, nothing duplicated), in any state of
//! the sort.
//!
//! Equal keys: as in pdqsort, a subslice whose pivot equals the pivot just left of it
//! (every element of the subslice is `>=` that one) is partitioned into `== pivot` and
//! `> pivot` instead, and the equal run is done. A split that leaves less than an eighth
//! on one side counts as bad; after `log2(len)` bad splits a subslice goes to the
//! standard library's sort whole, which bounds the work by O(n log n) on any input.
//!
//! # Panics
//!
//! A panicking comparison propagates through `join` after the other side has finished,
//! so the caller sees the panic after every part of the sort has stopped.

use std::cmp::Ordering;

use crate::runtime::shared::Shared;
use crate::structured::fork;

/// The smallest leaf: below this, a split costs more than it can save.
pub(crate) const MIN_GRAIN: usize = 1 << 13;

/// Leaves per worker the grain aims for (module docs).
const LEAVES_PER_WORKER: usize = 8;

/// `parallel_sort_unstable_by` on `shared` from any thread (module docs).
pub(crate) fn sort_unstable_by<T, F>(shared: &Shared, v: &mut [T], compare: &F)
where
    T: Send,
    F: Fn(&T, &T) -> Ordering + Sync,
{
    let workers = shared.workers.len();
    let grain = (v.len() / (workers * LEAVES_PER_WORKER)).max(MIN_GRAIN);
    if workers == 1 || v.len() <= grain {
        v.sort_unstable_by(compare);
        return;
    }
    let bad_splits = usize::BITS - v.len().leading_zeros();
    fork::install(shared, move || quicksort(shared, v, compare, None, bad_splits, grain));
}

/// Sorts `v`, every element of which is `>=` `pred` when there is one (module docs).
fn quicksort<'a, T, F>(
    shared: &Shared,
    mut v: &'a mut [T],
    compare: &F,
    pred: Option<&'a mut T>,
    mut bad_splits: u32,
    grain: usize,
) where
    T: Send,
    F: Fn(&T, &T) -> Ordering + Sync,
{
    let is_less = |a: &T, b: &T| compare(a, b) == Ordering::Less;
    loop {
        if v.len() <= grain || bad_splits == 0 {
            v.sort_unstable_by(compare);
            return;
        }
        let p = choose_pivot(v, &is_less);
        v.swap(0, p);
        if let Some(pred) = pred.as_deref() {
            if !is_less(pred, &v[0]) {
                // The pivot equals `pred`, the least possible value here: take out the run
                // of elements equal to it (they are in place) and go on with the rest.
                let (pivot, rest) = v.split_first_mut().expect("longer than the grain");
                let equal = partition(rest, |x| !is_less(pivot, x));
                v = &mut v[equal + 1..];
                continue;
            }
        }
        let (pivot, rest) = v.split_first_mut().expect("longer than the grain");
        let mid = partition(rest, |x| is_less(x, pivot));
        // `v[1..=mid]` < pivot: put the pivot between the sides.
        v.swap(0, mid);
        let len = v.len();
        let (left, right) = v.split_at_mut(mid);
        let (pivot, right) = right.split_first_mut().expect("the pivot is there");
        if left.len().min(right.len()) < len / 8 {
            bad_splits -= 1;
        }
        fork::join(
            shared,
            move || quicksort(shared, left, compare, pred, bad_splits, grain),
            move || quicksort(shared, right, compare, Some(pivot), bad_splits, grain),
        );
        return;
    }
}

/// Moves the elements for which `goes_left` holds to the front (module docs,
/// "Partition"); returns how many there are.
#[inline]
fn partition<T>(v: &mut [T], mut goes_left: impl FnMut(&T) -> bool) -> usize {
    let mut left = 0;
    for i in 0..v.len() {
        let l = goes_left(&v[i]);
        // Unconditional: when `l` is false this swaps two elements of the right side
        // (or one with itself), which keeps it a right side.
        v.swap(i, left);
        left += usize::from(l);
    }
    left
}

/// The index of a pivot candidate: the median of three samples, or of three medians of
/// three (Tukey's ninther) on longer slices. `v.len() >= 8`.
fn choose_pivot<T>(v: &[T], is_less: &impl Fn(&T, &T) -> bool) -> usize {
    let len = v.len();
    let (a, b, c) = (len / 4, len / 2, len / 4 * 3);
    if len >= 64 {
        let m = |i: usize| median3(v, i - 1, i, i + 1, is_less);
        median3(v, m(a), m(b), m(c), is_less)
    } else {
        median3(v, a, b, c, is_less)
    }
}

/// The index of the median of `v[a]`, `v[b]`, `v[c]`.
fn median3<T>(v: &[T], a: usize, b: usize, c: usize, is_less: &impl Fn(&T, &T) -> bool) -> usize {
    let ab = is_less(&v[a], &v[b]);
    let bc = is_less(&v[b], &v[c]);
    let ac = is_less(&v[a], &v[c]);
    if ab == bc {
        b
    } else if ab == ac {
        c
    } else {
        a
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn partition_and_pivot_helpers() {
        let mut v = vec![5, 1, 4, 1, 5, 9, 2, 6];
        let n = partition(&mut v, |&x| x < 4);
        assert_eq!(n, 3);
        assert!(v[..n].iter().all(|&x| x < 4) && v[n..].iter().all(|&x| x >= 4));
        let mut sorted = v.clone();
        sorted.sort();
        assert_eq!(sorted, [1, 1, 2, 4, 5, 5, 6, 9]);
        let lt = |a: &i32, b: &i32| a < b;
        for (t, m) in
            [([1, 2, 3], 2), ([3, 2, 1], 2), ([2, 3, 1], 2), ([2, 1, 3], 2), ([1, 3, 2], 2), ([3, 1, 2], 2)]
        {
            assert_eq!(t[median3(&t, 0, 1, 2, &lt)], m);
        }
    }
}
