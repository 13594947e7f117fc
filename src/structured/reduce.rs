//! `parallel_reduce` and `parallel_map`: folds and maps over an index range or a slice,
//! on the splitting engine of `parallel.rs` ([`fold_blocks`]).
//!
//! # Reduce
//!
//! Each leaf starts from `identity()` and folds its blocks element by element
//! (`acc = combine(acc, map(x))`, a loop the compiler can vectorize when the closures
//! inline); the leaves' results are combined in index order on the way back up the
//! `join` tree. No allocation.
//!
//! # Map into a `Vec`
//!
//! The output `Vec` is allocated once, with its final length as capacity, and each leaf
//! writes its elements in place. A leaf's accumulator is a [`Written`] guard: the run of
//! initialized elements it owns (start and length). Combining two guards of adjacent
//! runs forgets both and returns one for the union; the guard of the whole range, when
//! the call ends, is forgotten and the `Vec`'s length set. If `f` panics, every guard
//! alive at that moment (the panicking leaf's, dropped as it unwinds; the other halves',
//! dropped by `join` before it re-raises) drops exactly the elements it covers, so
//! nothing is leaked or dropped twice, and the `Vec`, still of length 0, frees only its
//! buffer.

use std::marker::PhantomData;
use std::ops::Range;

use crate::runtime::shared::Shared;
use crate::structured::parallel::fold_blocks;

mod sealed {
    pub trait Sealed {}
}

/// What [`Scheduler::parallel_reduce`](crate::Scheduler::parallel_reduce) and
/// [`Scheduler::parallel_map`](crate::Scheduler::parallel_map) walk: an index range
/// (`Range<usize>`, items `usize`) or a slice (`&[T]`, `&Vec<T>`, `&[T; N]`, items `&T`).
/// Sealed: filch implements it for these types only.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let v = vec![1u64, 2, 3];
/// let from_range = sched.parallel_map(0..3, |i| i * 10);
/// let from_slice = sched.parallel_map(&v, |x| x * 10);
/// assert_eq!((from_range, from_slice), (vec![0, 10, 20], vec![10, 20, 30]));
/// ```
pub trait ParallelSource: Sync + sealed::Sealed {
    /// What the closures are given: an index, or a reference to an element.
    type Item;

    /// The number of items.
    #[doc(hidden)]
    fn source_len(&self) -> usize;

    /// Folds the items at positions `r` (`0 <= r.start <= r.end <= source_len()`) into
    /// `acc`, in order.
    #[doc(hidden)]
    fn fold_items<A>(&self, r: Range<usize>, acc: A, f: impl FnMut(A, Self::Item) -> A) -> A;
}

impl sealed::Sealed for Range<usize> {}

impl ParallelSource for Range<usize> {
    type Item = usize;

    #[inline]
    fn source_len(&self) -> usize {
        self.len()
    }

    #[inline]
    fn fold_items<A>(&self, r: Range<usize>, acc: A, f: impl FnMut(A, usize) -> A) -> A {
        (self.start + r.start..self.start + r.end).fold(acc, f)
    }
}

impl<T: Sync> sealed::Sealed for &[T] {}

impl<'a, T: Sync> ParallelSource for &'a [T] {
    type Item = &'a T;

    #[inline]
    fn source_len(&self) -> usize {
        self.len()
    }

    #[inline]
    fn fold_items<A>(&self, r: Range<usize>, acc: A, f: impl FnMut(A, &'a T) -> A) -> A {
        let s: &'a [T] = self;
        s[r].iter().fold(acc, f)
    }
}

impl<T: Sync> sealed::Sealed for &Vec<T> {}

impl<'a, T: Sync> ParallelSource for &'a Vec<T> {
    type Item = &'a T;

    #[inline]
    fn source_len(&self) -> usize {
        self.len()
    }

    #[inline]
    fn fold_items<A>(&self, r: Range<usize>, acc: A, f: impl FnMut(A, &'a T) -> A) -> A {
        let v: &'a Vec<T> = self;
        let s: &'a [T] = v.as_slice();
        s[r].iter().fold(acc, f)
    }
}

impl<T: Sync, const N: usize> sealed::Sealed for &[T; N] {}

impl<'a, T: Sync, const N: usize> ParallelSource for &'a [T; N] {
    type Item = &'a T;

    #[inline]
    fn source_len(&self) -> usize {
        N
    }

    #[inline]
    fn fold_items<A>(&self, r: Range<usize>, acc: A, f: impl FnMut(A, &'a T) -> A) -> A {
        let s: &'a [T] = *self;
        s[r].iter().fold(acc, f)
    }
}

/// `parallel_reduce` on `shared` from any thread (module docs).
pub(crate) fn reduce<S, T, ID, M, C>(shared: &Shared, src: S, identity: &ID, map: &M, combine: &C) -> T
where
    S: ParallelSource,
    T: Send,
    ID: Fn() -> T + Sync,
    M: Fn(S::Item) -> T + Sync,
    C: Fn(T, T) -> T + Sync,
{
    let n = src.source_len();
    let src = &src;
    fold_blocks(
        shared,
        0..n,
        None,
        &|_| identity(),
        &|acc, r| src.fold_items(r, acc, |a, x| combine(a, map(x))),
        combine,
    )
    .0
}

/// `parallel_map` on `shared` from any thread (module docs).
pub(crate) fn map<S, T, F>(shared: &Shared, src: S, f: &F) -> Vec<T>
where
    S: ParallelSource,
    T: Send,
    F: Fn(S::Item) -> T + Sync,
{
    let n = src.source_len();
    let src = &src;
    let mut out: Vec<T> = Vec::with_capacity(n);
    let base = Base(out.as_mut_ptr());
    let base = &base;
    let (all, _) = fold_blocks(
        shared,
        0..n,
        None,
        &|start| Written { base: base.0, start, len: 0, _owns: PhantomData },
        &|w, r| {
            debug_assert_eq!(w.start + w.len, r.start, "a leaf folds its blocks in order");
            src.fold_items(r, w, |mut w, x| {
                let v = f(x);
                // SAFETY: position `w.start + w.len` is inside the leaf's range (so below
                // `n`, the capacity) and written by no other leaf; the guard counts it at
                // once, so an unwind from a later `f` drops it.
                unsafe { w.base.add(w.start + w.len).write(v) };
                w.len += 1;
                w
            })
        },
        &Written::join,
    );
    assert!(all.start == 0 && all.len == n, "parallel_map: every element is written once");
    std::mem::forget(all);
    // SAFETY: the guard of `0..n` proves every element below `n <= capacity` initialized,
    // and it was forgotten, so the `Vec` is their only owner.
    unsafe { out.set_len(n) };
    out
}

/// The output buffer's address, shared by the leaves.
struct Base<T>(*mut T);

// SAFETY: only used to derive `Written` guards, each writing a disjoint run of `T: Send`.
unsafe impl<T: Send> Sync for Base<T> {}

/// A run of initialized elements of the output buffer, owned by one accumulator
/// (module docs): `base[start..start + len]`.
struct Written<'a, T> {
    base: *mut T,
    start: usize,
    len: usize,
    /// Owns `T`s (for drop check) and lives no longer than the buffer's borrow.
    _owns: PhantomData<(T, &'a mut [T])>,
}

// SAFETY: the guard owns its `T`s (moved to another thread with it, dropped there at
// worst), and no other guard covers them.
unsafe impl<T: Send> Send for Written<'_, T> {}

impl<T> Written<'_, T> {
    /// The union of two adjacent runs, `self` first.
    fn join(self, right: Self) -> Self {
        assert_eq!(self.start + self.len, right.start, "parallel_map: runs combine in index order");
        let joined =
            Written { base: self.base, start: self.start, len: self.len + right.len, _owns: PhantomData };
        std::mem::forget(self);
        std::mem::forget(right);
        joined
    }
}

impl<T> Drop for Written<'_, T> {
    fn drop(&mut self) {
        // An unwind is in progress (module docs): drop what this run owns.
        // SAFETY: the run's elements are initialized and owned by this guard alone.
        unsafe {
            std::ptr::drop_in_place(std::ptr::slice_from_raw_parts_mut(self.base.add(self.start), self.len))
        };
    }
}
