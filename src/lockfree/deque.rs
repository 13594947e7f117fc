//! A bounded Chase–Lev work-stealing deque.
//!
//! One [`Owner`] pushes and pops at the *bottom* (LIFO); any number of [`Stealer`]s take
//! from the *top* (FIFO). The algorithm is Chase & Lev, "Dynamic Circular Work-Stealing
//! Deque" (SPAA 2005), with the C11 orderings of Lê, Pop, Cohen & Zappa Nardelli,
//! "Correct and Efficient Work-Stealing for Weak Memory Models" (PPoPP 2013).
//!
//! # Where filch deviates from the paper
//!
//! - **Fixed capacity, no resize.** The buffer is a power of two chosen at construction
//!   ([`DEFAULT_CAPACITY`] by default) and never reallocated, so there is no buffer
//!   pointer to publish or reclaim. [`Owner::push`] on a full deque hands the item back
//!   (`Err(item)`): it never overwrites and never blocks.
//! - **Atomic slots.** A thief reads its slot *before* its CAS on `top` decides whether it
//!   won; after wrap-around the owner may be writing that slot at the same time. The
//!   slots are `AtomicUsize`, so that race is a benign atomic race, not undefined
//!   behaviour. Items travel as one machine word through the [`Word`] trait; a losing
//!   thief discards the word without ever turning it back into a `T`.
//! - **Wrapping indices.** `top` and `bottom` are `usize`s that wrap; the length is
//!   `bottom.wrapping_sub(top)` read as an `isize`, so a transiently negative length (an
//!   owner's pop racing an empty deque) is seen as "empty", never as a huge length.
//! - **`bottom` is always stored with Release.** The paper (C11) stores it Relaxed in
//!   `take`, relying on same-thread stores extending a release sequence; Rust follows
//!   C++20, where they do not. A thief that reads a value written by `pop` must still
//!   synchronize with the pushes below it. Release stores cost nothing on x86-64.
//! - **A cached `top` in the owner.** `push` consults the owner's last Acquire-read
//!   `top` and reloads the shared word only when the deque looks full, so an uncontended
//!   push touches no line a thief writes. `top` only grows, so a stale cache can only make
//!   the deque look *fuller* than it is; every value cached was read with Acquire, which
//!   is what the overwrite of a slot below it needs (see *Orderings*).
//! - **The pop barrier, measured.** `pop` needs its `bottom` store ordered before its `top`
//!   load. Two sound forms exist: the paper's `fence(SeqCst)` (`mfence` on x86-64), and a
//!   SeqCst store of `bottom` (`xchg`, a locked instruction) followed by a SeqCst load of
//!   `top`, which C++20's rules for mixing SeqCst accesses with SeqCst fences make
//!   equivalent (argument in `docs/DESIGN.md`). On an Intel Xeon (KVM guest; `docs/BENCHMARKS.md`)
//!   the fence form is the faster one: the `xchg` lands on the line the preceding push
//!   just wrote and drains more than `mfence` does (`docs/BENCHMARKS.md`). So `pop` uses
//!   the fence on every target, which is also the form loom checks (loom models SeqCst
//!   *accesses* as AcqRel, so it could not check the other). The `xchg` form stays as the
//!   hidden `Owner::pop_xchg` so the benchmark keeps measuring both.
//! - **Batches.** [`Stealer::steal_batch`] claims items one at a time: against an owner
//!   that pops from the same end without a CAS, claiming a range `[t, t+k)` with one CAS
//!   could race the owner's pop of an item inside it.
//!
//! # Orderings
//!
//! Named accesses, referred to by the comments in the code:
//!
//! | step | access | ordering | partner |
//! |------|--------|----------|---------|
//! | P1 | push: load `top` (only when the cache says full) | Acquire | S4 / B4 (thief CAS, Release): the winning thief's read of the slot happens before the owner overwrites it |
//! | P2 | push: store slot | Relaxed | published by P3 |
//! | P3 | push: store `bottom` | Release | S3 / B2 (thief's Acquire load of `bottom`) |
//! | O1 | pop: store `bottom - 1` | Release | S3; also the store half of the O2 / S2 store-buffering pair |
//! | O2 | pop: `fence(SeqCst)` | SeqCst | S2: either the thief sees the decremented `bottom` or the owner sees the thief's `top` |
//! | O3 | pop: load `top` | Acquire | S4 / B4: makes the cached value valid for P1's purpose |
//! | O4 | pop: CAS `top` on the last item | Relaxed | the RMW alone decides the owner-vs-thief race for the last item |
//! | O5 | pop: restore `bottom` | Release | S3 (see the C++20 note above) |
//! | S1 | steal: load `top` | Relaxed | a stale `top` only makes the CAS fail (`Retry`) |
//! | S2 | steal: `fence(SeqCst)` | SeqCst | O2 |
//! | S3 | steal: load `bottom` | Acquire | P3 / O1 / O5: the slot below `bottom` is visible |
//! | S4 | steal: CAS `top` | Release success, Relaxed failure | P1 / O3: the slot read before the CAS happens before the owner's reuse of the slot. No Acquire needed: the item's visibility comes from S3 |
//! | B1–B4 | steal_batch: per extra item, `fence(SeqCst)`, load `bottom` Acquire, read slot, CAS `top` | as S2–S4 | as S2–S4; the "top load" is the thief's own previous CAS |
//!
//! Every ordering above that loom can observe is written through
//! [`crate::shim::mutation`], so `loom-tests/` weakens it and watches a model fail
//! (`docs/VERIFICATION.md` lists which model catches which). P1, O3 and the Release of
//! S4/B4 are the exception: they forbid a *load-buffering* outcome (the thief's early slot
//! read seeing the owner's later overwrite), which loom does not model, so no loom model
//! can fail without them. Their argument is written out in `docs/DESIGN.md`.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;

use crate::shim::atomic::{AtomicUsize, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::{asym, Arc, CachePadded, Witness};

/// Capacity of [`Owner::new`]: 4096 slots (4 under loom, so models reach the full and
/// wrap-around paths).
///
/// ```
/// use filch::deque::{Owner, DEFAULT_CAPACITY};
/// assert!(DEFAULT_CAPACITY.is_power_of_two());
/// assert_eq!(Owner::<usize>::new().capacity(), DEFAULT_CAPACITY);
/// ```
pub const DEFAULT_CAPACITY: usize = if cfg!(loom) { 4 } else { 4096 };

/// The largest capacity [`Owner::with_capacity`] accepts: 2^30 slots (8 GiB of slots on a
/// 64-bit target). Keeps every length representable as a positive `isize`.
///
/// ```
/// use filch::deque::{CapacityError, Owner, MAX_CAPACITY};
/// let too_big = MAX_CAPACITY * 2;
/// let err = Owner::<usize>::with_capacity(too_big).unwrap_err();
/// assert_eq!(err, CapacityError::Invalid(too_big));
/// ```
pub const MAX_CAPACITY: usize = 1 << 30;

/// Number of per-index happens-before witnesses in a loom build: more than any model's
/// indices reach.
#[cfg(loom)]
const WITNESSES: usize = 64;

/// At most this many items move in one [`Stealer::steal_batch`].
///
/// ```
/// use filch::deque::{Owner, STEAL_BATCH_LIMIT};
/// let victim = Owner::<usize>::with_capacity(256).unwrap();
/// for i in 0..200 { victim.push(i).unwrap(); }
/// let mine = Owner::<usize>::with_capacity(256).unwrap();
/// assert_eq!(victim.stealer().steal_batch(&mine).success(), Some(0));
/// assert_eq!(mine.len() + 1, STEAL_BATCH_LIMIT); // the limit, not half of 200
/// ```
pub const STEAL_BATCH_LIMIT: usize = if cfg!(loom) { 2 } else { 32 };

/// A value that can travel through a deque slot as one machine word.
///
/// The deque calls [`Word::into_word`] once per push and [`Word::from_word`] exactly once
/// per word that it hands out or drops; a word read speculatively by a thief that then
/// loses its race is discarded without conversion.
///
/// # Example
///
/// ```
/// use filch::deque::Word;
/// struct TaskId(u32);
/// impl Word for TaskId {
///     fn into_word(self) -> usize { self.0 as usize }
///     unsafe fn from_word(word: usize) -> Self { TaskId(word as u32) }
/// }
/// ```
pub trait Word: Sized {
    /// Turns the value into a word, giving up ownership of it.
    ///
    /// ```
    /// use filch::deque::Word;
    /// let word = 7u32.into_word();
    /// assert_eq!(word, 7);
    /// // SAFETY: `word` came from `into_word` and is converted back once, here.
    /// assert_eq!(unsafe { u32::from_word(word) }, 7);
    /// ```
    fn into_word(self) -> usize;

    /// Turns a word back into the value.
    ///
    /// # Safety
    ///
    /// `word` was returned by `into_word` and is converted back at most once.
    ///
    /// ```
    /// use filch::deque::Word;
    /// let word = Box::new(String::from("task")).into_word();
    /// // SAFETY: `word` came from `into_word` and is converted back once, here.
    /// let back = unsafe { Box::<String>::from_word(word) };
    /// assert_eq!(*back, "task");
    /// ```
    unsafe fn from_word(word: usize) -> Self;
}

impl Word for usize {
    #[inline(always)]
    fn into_word(self) -> usize {
        self
    }
    #[inline(always)]
    unsafe fn from_word(word: usize) -> Self {
        word
    }
}

impl Word for u32 {
    #[inline(always)]
    fn into_word(self) -> usize {
        self as usize
    }
    #[inline(always)]
    unsafe fn from_word(word: usize) -> Self {
        word as u32
    }
}

impl<T> Word for Box<T> {
    #[inline(always)]
    fn into_word(self) -> usize {
        Box::into_raw(self) as usize
    }
    #[inline(always)]
    unsafe fn from_word(word: usize) -> Self {
        // SAFETY: the caller promises `word` came from `into_word`, i.e. from
        // `Box::into_raw`, and is converted back once, so ownership is restored once.
        unsafe { Box::from_raw(word as *mut T) }
    }
}

impl<T> Word for std::sync::Arc<T> {
    #[inline(always)]
    fn into_word(self) -> usize {
        std::sync::Arc::into_raw(self) as usize
    }
    #[inline(always)]
    unsafe fn from_word(word: usize) -> Self {
        // SAFETY: `word` came from `Arc::into_raw` and is converted back once, so the
        // strong count it carried is taken back exactly once.
        unsafe { std::sync::Arc::from_raw(word as *const T) }
    }
}

/// The capacity given to [`Owner::with_capacity`] is unusable.
///
/// ```
/// use filch::deque::{CapacityError, Owner};
/// let err = Owner::<usize>::with_capacity(0).unwrap_err();
/// assert_eq!(err, CapacityError::Invalid(0));
/// assert!(err.to_string().contains("power of two"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapacityError {
    /// Not a power of two, zero, or above the maximum; carries the value given.
    Invalid(usize),
    /// The slot buffer could not be allocated.
    OutOfMemory(usize),
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CapacityError::Invalid(n) => {
                write!(f, "deque capacity {n} is invalid: it must be a power of two from 1 to {MAX_CAPACITY}")
            }
            CapacityError::OutOfMemory(n) => {
                write!(f, "deque capacity {n}: could not allocate the slot buffer")
            }
        }
    }
}

impl std::error::Error for CapacityError {}

/// The result of a steal.
///
/// ```
/// use filch::deque::{Owner, Steal};
/// let owner = Owner::<usize>::with_capacity(4).unwrap();
/// let thief = owner.stealer();
/// assert_eq!(thief.steal(), Steal::Empty);
/// owner.push(7).unwrap();
/// assert_eq!(thief.steal(), Steal::Success(7));
/// ```
#[derive(Debug, PartialEq, Eq)]
#[must_use]
pub enum Steal<T> {
    /// The deque was empty.
    Empty,
    /// Lost a race with another thief or the owner; the deque may still hold items.
    Retry,
    /// Took an item.
    Success(T),
}

impl<T> Steal<T> {
    /// The stolen item, if any.
    ///
    /// ```
    /// use filch::deque::Steal;
    /// assert_eq!(Steal::Success(3).success(), Some(3));
    /// assert_eq!(Steal::<u32>::Retry.success(), None);
    /// assert_eq!(Steal::<u32>::Empty.success(), None);
    /// ```
    pub fn success(self) -> Option<T> {
        match self {
            Steal::Success(t) => Some(t),
            _ => None,
        }
    }

    /// Whether the deque was seen empty.
    ///
    /// ```
    /// use filch::deque::{Owner, Steal};
    /// let owner = Owner::<usize>::with_capacity(4).unwrap();
    /// assert!(owner.stealer().steal().is_empty());
    /// assert!(!Steal::<usize>::Retry.is_empty()); // a lost race says nothing about emptiness
    /// ```
    pub fn is_empty(&self) -> bool {
        matches!(self, Steal::Empty)
    }

    /// Whether the steal lost a race and should be retried.
    ///
    /// ```
    /// let owner = filch::deque::Owner::<usize>::with_capacity(4).unwrap();
    /// owner.push(5).unwrap();
    /// let thief = owner.stealer();
    /// let got = loop {
    ///     let s = thief.steal();
    ///     if !s.is_retry() { break s; }
    /// };
    /// assert_eq!(got.success(), Some(5));
    /// ```
    pub fn is_retry(&self) -> bool {
        matches!(self, Steal::Retry)
    }
}

/// Length of `[top, bottom)` as a signed value; negative while an owner's pop races an
/// empty deque.
#[inline(always)]
fn len_between(top: usize, bottom: usize) -> isize {
    bottom.wrapping_sub(top) as isize
}

struct Inner<T: Word> {
    /// Index of the oldest item. Written only by CAS (thieves, and the owner's pop of the
    /// last item), so its modification order is a chain of RMWs.
    top: CachePadded<AtomicUsize>,
    /// One past the newest item. Written only by the owner, always with Release.
    bottom: CachePadded<AtomicUsize>,
    /// `capacity` slots; index `i` lives in `slots[i & mask]`.
    slots: Box<[AtomicUsize]>,
    /// Per-index happens-before witnesses; loom builds only.
    #[cfg(loom)]
    witnesses: Box<[Witness]>,
    mask: usize,
    _items: PhantomData<T>,
}

impl<T: Word> Inner<T> {
    #[inline(always)]
    fn slot(&self, index: usize) -> &AtomicUsize {
        debug_assert_eq!(self.slots.len(), self.mask + 1);
        // SAFETY: `slots.len() == mask + 1` (set once in `with_capacity`, never changed), so
        // `index & mask < slots.len()`. The checked form left a compare and a panic branch
        // on the pop path that the compiler could not remove.
        unsafe { self.slots.get_unchecked(index & self.mask) }
    }

    /// The witness of one *index* (not slot): produced once per push of that index and
    /// consumed by whoever takes it, so loom checks producer → consumer ordering only.
    /// Models stay below [`WITNESSES`] indices; outside loom this is one ZST.
    #[cfg(loom)]
    fn witness(&self, index: usize) -> &Witness {
        &self.witnesses[index % WITNESSES]
    }

    #[cfg(not(loom))]
    #[inline(always)]
    fn witness(&self, _index: usize) -> &Witness {
        &Witness::NONE
    }
}

impl<T: Word> Drop for Inner<T> {
    fn drop(&mut self) {
        // `&mut self`: every handle is gone, nothing races. Relaxed loads suffice because
        // the last handle's drop synchronized with this one through the Arc.
        let top = self.top.load(Relaxed);
        let bottom = self.bottom.load(Relaxed);
        let mut i = top;
        while len_between(i, bottom) > 0 {
            let word = self.slot(i).load(Relaxed);
            // SAFETY: `[top, bottom)` holds exactly the words pushed and not taken; each
            // is converted back once, here.
            drop(unsafe { T::from_word(word) });
            i = i.wrapping_add(1);
        }
    }
}

/// The owner's end of a deque: push and pop (LIFO).
///
/// `Send` but neither `Sync` nor `Clone`: exactly one thread at a time owns the bottom
/// of the deque.
///
/// ```
/// use filch::deque::Owner;
/// let owner = Owner::<usize>::with_capacity(8).unwrap();
/// for i in 0..3 { owner.push(i).unwrap(); }
/// // `Send`: the owner can move to another thread, which pops newest first.
/// let t = std::thread::spawn(move || std::iter::from_fn(|| owner.pop()).collect::<Vec<_>>());
/// assert_eq!(t.join().unwrap(), [2, 1, 0]);
/// ```
pub struct Owner<T: Word> {
    inner: Arc<Inner<T>>,
    /// The last value of `top` this owner read with Acquire (or wrote by its own CAS).
    /// Never ahead of the real `top`. The `Cell` also makes `Owner` `!Sync`.
    top_cache: Cell<usize>,
    /// Sole-owner mode ([`Owner::set_asymmetric`]): `pop`'s O2 is `asym::light` and every
    /// thief on another thread uses [`Stealer::steal_heavy`].
    asymmetric: bool,
}

/// A thief's end of a deque: steal from the top (FIFO). `Clone + Send + Sync`.
///
/// ```
/// use filch::deque::{Owner, Steal};
/// let owner = Owner::<usize>::with_capacity(64).unwrap();
/// for i in 0..64 { owner.push(i).unwrap(); }
/// let thief = owner.stealer();
/// let steal_all = || std::iter::from_fn(|| loop {
///     match thief.steal() { Steal::Retry => continue, s => return s.success() }
/// }).collect::<Vec<_>>();
/// let mut taken = std::thread::scope(|s| {
///     let other = s.spawn(steal_all);
///     [steal_all(), other.join().unwrap()].concat()
/// });
/// taken.sort();
/// assert_eq!(taken, (0..64).collect::<Vec<_>>()); // each item taken exactly once
/// ```
pub struct Stealer<T: Word> {
    inner: Arc<Inner<T>>,
}

// SAFETY: an `Owner` moves whole to another thread; the items it hands out are `T: Send`.
unsafe impl<T: Word + Send> Send for Owner<T> {}
// SAFETY: thieves on several threads take items out of the shared deque concurrently,
// which moves `T`s across threads (`T: Send`); every shared access is atomic.
unsafe impl<T: Word + Send> Send for Stealer<T> {}
// SAFETY: as for `Send`: `&Stealer` only permits atomic operations on the shared state.
unsafe impl<T: Word + Send> Sync for Stealer<T> {}

impl<T: Word> Clone for Stealer<T> {
    fn clone(&self) -> Self {
        Stealer { inner: self.inner.clone() }
    }
}

impl<T: Word> fmt::Debug for Owner<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Owner").field("len", &self.len()).field("capacity", &self.capacity()).finish()
    }
}

impl<T: Word> fmt::Debug for Stealer<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Stealer").field("capacity", &(self.inner.mask + 1)).finish()
    }
}

impl<T: Word> Default for Owner<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Word> Owner<T> {
    /// A deque of [`DEFAULT_CAPACITY`] slots.
    ///
    /// ```
    /// let owner = filch::deque::Owner::<usize>::new();
    /// assert_eq!(owner.capacity(), filch::deque::DEFAULT_CAPACITY);
    /// ```
    pub fn new() -> Self {
        match Self::with_capacity(DEFAULT_CAPACITY) {
            Ok(owner) => owner,
            // The default is a valid power of two; only allocation can fail, and std's
            // own collections abort in that case too.
            Err(_) => std::alloc::handle_alloc_error(std::alloc::Layout::new::<[usize; DEFAULT_CAPACITY]>()),
        }
    }

    /// A deque of `capacity` slots: a power of two from 1 to [`MAX_CAPACITY`].
    ///
    /// This is the only allocation the deque ever makes.
    ///
    /// ```
    /// use filch::deque::{Owner, CapacityError};
    /// assert!(Owner::<usize>::with_capacity(64).is_ok());
    /// assert_eq!(Owner::<usize>::with_capacity(100).unwrap_err(), CapacityError::Invalid(100));
    /// ```
    pub fn with_capacity(capacity: usize) -> Result<Self, CapacityError> {
        if !capacity.is_power_of_two() || capacity > MAX_CAPACITY {
            return Err(CapacityError::Invalid(capacity));
        }
        let mut slots = Vec::new();
        slots.try_reserve_exact(capacity).map_err(|_| CapacityError::OutOfMemory(capacity))?;
        slots.extend((0..capacity).map(|_| AtomicUsize::new(0)));
        let inner = Inner {
            top: CachePadded(AtomicUsize::new(0)),
            bottom: CachePadded(AtomicUsize::new(0)),
            slots: slots.into_boxed_slice(),
            #[cfg(loom)]
            witnesses: (0..WITNESSES).map(|_| Witness::default()).collect(),
            mask: capacity - 1,
            _items: PhantomData,
        };
        Ok(Owner { inner: Arc::new(inner), top_cache: Cell::new(0), asymmetric: false })
    }

    /// Sole-owner mode: `pop` drops its `fence(SeqCst)` (O2) for a compiler fence, and
    /// thieves on other threads must steal with [`Stealer::steal_heavy`], whose
    /// membarrier stands in for both fences. For a deque that other threads rob only
    /// rarely (a one-worker scheduler's, robbed by nothing but a timed-out shutdown).
    /// `false` (and no change) when membarrier is unavailable.
    ///
    /// # Safety
    /// From this call on, every steal from a thread other than the owner's is
    /// [`Stealer::steal_heavy`] (the owner's own thread may use any steal), and no thief
    /// uses `steal_batch`.
    pub(crate) unsafe fn set_asymmetric(&mut self) -> bool {
        self.asymmetric = asym::available();
        self.asymmetric
    }
}

impl<T: Word> Owner<T> {
    /// A new thief handle for this deque.
    ///
    /// ```
    /// let owner = filch::deque::Owner::<usize>::with_capacity(4).unwrap();
    /// owner.push(1).unwrap();
    /// let thief = owner.stealer();
    /// assert_eq!(thief.steal().success(), Some(1));
    /// assert!(owner.is_empty());
    /// ```
    pub fn stealer(&self) -> Stealer<T> {
        Stealer { inner: self.inner.clone() }
    }

    /// The number of slots.
    ///
    /// ```
    /// let owner = filch::deque::Owner::<usize>::with_capacity(16).unwrap();
    /// assert_eq!(owner.capacity(), 16);
    /// for i in 0..16 { owner.push(i).unwrap(); }
    /// assert_eq!(owner.push(16), Err(16)); // full at `capacity` items
    /// ```
    pub fn capacity(&self) -> usize {
        self.inner.mask + 1
    }

    /// The number of items, as of a moment during the call (thieves may take more at
    /// any time).
    ///
    /// ```
    /// let owner = filch::deque::Owner::<usize>::with_capacity(8).unwrap();
    /// owner.push(1).unwrap();
    /// owner.push(2).unwrap();
    /// assert_eq!(owner.len(), 2);
    /// assert_eq!(owner.stealer().steal().success(), Some(1));
    /// assert_eq!(owner.len(), 1);
    /// ```
    pub fn len(&self) -> usize {
        // Relaxed: a snapshot for reporting and for `steal_batch`'s room check, where a
        // stale (smaller) `top` only understates the free space.
        let t = self.inner.top.load(Relaxed);
        let b = self.inner.bottom.load(Relaxed);
        len_between(t, b).max(0) as usize
    }

    /// Whether the deque held no items at a moment during the call.
    ///
    /// ```
    /// let owner = filch::deque::Owner::<usize>::with_capacity(8).unwrap();
    /// assert!(owner.is_empty());
    /// owner.push(1).unwrap();
    /// assert!(!owner.is_empty());
    /// assert_eq!(owner.pop(), Some(1));
    /// assert!(owner.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl<T: Word> Owner<T> {
    /// Pushes `item` at the bottom, or hands it back when the deque is full.
    ///
    /// Never overwrites an item, never blocks, never allocates.
    ///
    /// ```
    /// let owner = filch::deque::Owner::<usize>::with_capacity(2).unwrap();
    /// assert_eq!(owner.push(1), Ok(()));
    /// assert_eq!(owner.push(2), Ok(()));
    /// assert_eq!(owner.push(3), Err(3));
    /// assert_eq!(owner.pop(), Some(2));
    /// ```
    #[inline]
    pub fn push(&self, item: T) -> Result<(), T> {
        let inner = &*self.inner;
        // Relaxed: only this owner writes `bottom`.
        let b = inner.bottom.load(Relaxed);
        let cap = self.capacity() as isize;
        if len_between(self.top_cache.get(), b) >= cap {
            // P1, Acquire: pairs with the Release half of a thief's CAS on `top` (S4/B4):
            // the thief's read of the slot we are about to overwrite happens before our
            // write, so it cannot see the new item.
            let t = inner.top.load(Acquire);
            self.top_cache.set(t);
            if len_between(t, b) >= cap {
                return Err(item);
            }
        }
        inner.witness(b).produce();
        // P2, Relaxed: published by the Release store of `bottom` just below.
        inner.slot(b).store(item.into_word(), Relaxed);
        // P3, Release: publishes the slot store; pairs with the thief's Acquire load of
        // `bottom` (S3/B2).
        inner.bottom.store(b.wrapping_add(1), mutation::ord(Site::PushBottomRelease, Release));
        Ok(())
    }

    /// The word of the newest item, without taking it: the owner's look at its own
    /// bottom slot. A thief may take that item meanwhile (then `pop` says so); nothing
    /// else can change the slot, since only the owner writes slots.
    #[inline]
    pub(crate) fn peek_newest_word(&self) -> Option<usize> {
        let inner = &*self.inner;
        // Relaxed: only this owner writes `bottom` and the slots.
        let b = inner.bottom.load(Relaxed);
        if len_between(self.top_cache.get(), b) <= 0 {
            return None;
        }
        // Relaxed: our own earlier store; the word is only compared, never dereferenced.
        Some(inner.slot(b.wrapping_sub(1)).load(Relaxed))
    }

    /// The position of the oldest item (`top`): it moves on whenever an item is taken
    /// from the top (by a thief, or by the owner's own steal). A snapshot.
    #[inline]
    pub(crate) fn top_position(&self) -> usize {
        // Relaxed: a snapshot, compared with an earlier one; nothing is read through it.
        self.inner.top.load(Relaxed)
    }

    /// The word of the oldest item, without taking it: a look at the top slot. Thieves
    /// may take that item meanwhile (a later `steal` then returns another one, or none).
    #[inline]
    pub(crate) fn peek_oldest_word(&self) -> Option<usize> {
        let inner = &*self.inner;
        // Relaxed: a look; the steal that follows decides.
        let t = inner.top.load(Relaxed);
        // Relaxed: only this owner writes `bottom`.
        let b = inner.bottom.load(Relaxed);
        if len_between(t, b) <= 0 {
            return None;
        }
        // Relaxed: the word is only compared, never dereferenced; only this owner writes
        // slots, and it is not pushing now.
        Some(inner.slot(t).load(Relaxed))
    }

    /// Pops the newest item (LIFO), or `None` when the deque is empty.
    ///
    /// ```
    /// let owner = filch::deque::Owner::<usize>::with_capacity(8).unwrap();
    /// owner.push(1).unwrap();
    /// owner.push(2).unwrap();
    /// assert_eq!(owner.pop(), Some(2)); // newest first
    /// assert_eq!(owner.pop(), Some(1));
    /// assert_eq!(owner.pop(), None);
    /// ```
    #[inline]
    pub fn pop(&self) -> Option<T> {
        let inner = &*self.inner;
        // Relaxed: only this owner writes `bottom`.
        let b = inner.bottom.load(Relaxed);
        // The cache never runs ahead of `top`, so "empty by the cache" is empty for real;
        // this skips the barrier on an idle worker's hot "anything left?" check.
        if len_between(self.top_cache.get(), b) <= 0 {
            return None;
        }
        let b = b.wrapping_sub(1);
        // O1, Release: pairs with S3; a thief reading this value of `bottom` must still see
        // the slots below it.
        inner.bottom.store(b, Release);
        // O2, SeqCst fence: pairs with the thief's fence S2 (or B1). Either the thief sees
        // `bottom = b` or the load below sees the thief's CAS on `top`; never neither. In
        // sole-owner mode the pair is `asym::light` here and `asym::heavy` in
        // `steal_heavy`, which orders like two SeqCst fences.
        if self.asymmetric {
            asym::light(Site::PopFence);
        } else {
            mutation::fence(Site::PopFence, SeqCst);
        }
        // O3, Acquire: pairs with S4/B4 (thief CAS, Release), so every slot below `t` was
        // read by its thief before `push` may overwrite it; `push` trusts the cache.
        let t = inner.top.load(Acquire);
        self.take(b, t)
    }

    /// `pop` with O1–O3 as an `xchg` store of `bottom` and a SeqCst load of `top`, the
    /// other sound x86-64 form; kept only for the benchmark that compares the two.
    #[cfg(all(target_arch = "x86_64", not(loom)))]
    #[doc(hidden)]
    #[inline]
    pub fn pop_xchg(&self) -> Option<T> {
        let inner = &*self.inner;
        // Relaxed: only this owner writes `bottom`.
        let b = inner.bottom.load(Relaxed);
        if len_between(self.top_cache.get(), b) <= 0 {
            return None;
        }
        let b = b.wrapping_sub(1);
        // O1+O2 as one SeqCst store (`xchg`): with the SeqCst load below it forbids the
        // store-buffering outcome against the thief's fence S2 (docs/DESIGN.md); being
        // SeqCst it is also O1's Release.
        inner.bottom.store(b, SeqCst);
        // O3 as a SeqCst load: the other half of the pair above; includes O3's Acquire.
        let t = inner.top.load(SeqCst);
        self.take(b, t)
    }

    /// The end of `pop`, after `bottom` was lowered to `b` and `top` read as `t`.
    #[inline(always)]
    fn take(&self, b: usize, t: usize) -> Option<T> {
        let inner = &*self.inner;
        self.top_cache.set(t);
        let len = len_between(t, b);
        if len < 0 {
            // Empty: restore. O5, Release: pairs with S3 (see the C++20 note in the module
            // docs).
            inner.bottom.store(b.wrapping_add(1), Release);
            return None;
        }
        // Relaxed: our own earlier store.
        let word = inner.slot(b).load(Relaxed);
        if len > 0 {
            inner.witness(b).consume();
            // SAFETY: index `b` is ours: thieves only take indices below `bottom = b`
            // (fence argument O2/S2), so this word is handed out once, here.
            return Some(unsafe { T::from_word(word) });
        }
        // The last item: race the thieves for it. O4, Relaxed: the RMW alone decides who
        // wins; the value `t` was already Acquire-read above.
        let won = inner.top.compare_exchange(t, t.wrapping_add(1), Relaxed, Relaxed).is_ok();
        // O5, Release: restore `bottom` to `b + 1 = t + 1`; pairs with S3.
        inner.bottom.store(b.wrapping_add(1), Release);
        if won {
            self.top_cache.set(t.wrapping_add(1));
            inner.witness(b).consume();
            // SAFETY: our CAS moved `top` past `b`, so no thief can win this index.
            Some(unsafe { T::from_word(word) })
        } else {
            None
        }
    }

    /// A deliberately broken pop, kept only so that `loom-tests/` can show the model
    /// catching it: it ignores the result of the last-item CAS and never restores
    /// `bottom`. **Unsound**: a task can be returned twice.
    ///
    /// # Safety
    ///
    /// None can be given; call it only inside a loom model that expects to fail.
    #[cfg(loom)]
    #[doc(hidden)]
    pub unsafe fn wyn_pop(&self) -> Option<T> {
        let inner = &*self.inner;
        let b = inner.bottom.load(Relaxed).wrapping_sub(1);
        // As O1 (Release, partner S3), so the model isolates the seed's two real bugs.
        inner.bottom.store(b, Release);
        // The seed's fence; partner: S2.
        crate::shim::atomic::fence(SeqCst);
        let t = inner.top.load(Acquire); // as S4's partner, like O3
        if len_between(t, b) >= 0 {
            let word = inner.slot(b).load(Relaxed);
            if t == b {
                // The seed's CAS, result ignored; Relaxed like O4.
                let _ = inner.top.compare_exchange(t, t.wrapping_add(1), Relaxed, Relaxed);
            }
            inner.witness(b).consume();
            // SAFETY: none — this is the bug under test; loom reports the duplicate.
            return Some(unsafe { T::from_word(word) });
        }
        None
    }
}

impl<T: Word> Stealer<T> {
    /// Steals the oldest item (FIFO).
    ///
    /// [`Steal::Retry`] means another thief or the owner won a race: the deque may not be
    /// empty, and a scheduler must not go to sleep on it.
    ///
    /// ```
    /// use filch::deque::{Owner, Steal};
    /// let owner = Owner::<usize>::with_capacity(8).unwrap();
    /// owner.push(1).unwrap();
    /// owner.push(2).unwrap();
    /// let thief = owner.stealer();
    /// assert_eq!(thief.steal(), Steal::Success(1)); // oldest first
    /// assert_eq!(owner.pop(), Some(2));
    /// assert_eq!(thief.steal(), Steal::Empty);
    /// ```
    #[inline]
    pub fn steal(&self) -> Steal<T> {
        // S2, SeqCst fence: pairs with the owner's O2 (store-buffering on bottom/top).
        self.steal_with(|| mutation::fence(Site::StealFence, SeqCst))
    }

    /// [`Stealer::steal`] from a deque in sole-owner mode ([`Owner::set_asymmetric`]): S2
    /// is `asym::heavy`, the partner of the owner's `asym::light` O2. Costs a membarrier
    /// system call (microseconds).
    pub(crate) fn steal_heavy(&self) -> Steal<T> {
        self.steal_with(|| asym::heavy(Site::StealFence))
    }

    #[inline(always)]
    fn steal_with(&self, s2: impl FnOnce()) -> Steal<T> {
        let inner = &*self.inner;
        // S1, Relaxed: a stale `top` can only make the CAS below fail.
        let t = inner.top.load(Relaxed);
        s2();
        // S3, Acquire: pairs with the Release stores of `bottom` (P3, O1, O5): the slot
        // below it is visible.
        let b = inner.bottom.load(mutation::ord(Site::StealBottomAcquire, Acquire));
        if len_between(t, b) <= 0 {
            return Steal::Empty;
        }
        // Relaxed, and possibly being overwritten by the owner after wrap-around: then our
        // CAS fails and the word is discarded unconverted.
        let word = inner.slot(t).load(Relaxed);
        // S4, Release: pairs with the owner's Acquire loads of `top` (P1, O3), so our slot
        // read happens before the owner reuses the slot (loom-blind: load buffering).
        if inner.top.compare_exchange(t, t.wrapping_add(1), Release, Relaxed).is_err() {
            return Steal::Retry;
        }
        inner.witness(t).consume();
        // SAFETY: our CAS moved `top` from `t` to `t + 1`: we alone own index `t`.
        Steal::Success(unsafe { T::from_word(word) })
    }

    /// Steals up to half of the items (at most [`STEAL_BATCH_LIMIT`], and no more than
    /// `dest` has room for plus one), moves all but the first into `dest`, and returns the
    /// first.
    ///
    /// Items are claimed one CAS at a time (see the module docs); the batch stops early,
    /// keeping what it already has, when a later claim loses a race.
    ///
    /// ```
    /// use filch::deque::{Owner, Steal};
    /// let victim = Owner::<usize>::with_capacity(16).unwrap();
    /// for i in 0..8 { victim.push(i).unwrap(); }
    /// let mine = Owner::<usize>::with_capacity(16).unwrap();
    /// assert_eq!(victim.stealer().steal_batch(&mine), Steal::Success(0));
    /// assert_eq!(mine.len(), 3); // 4 taken (half of 8), one returned
    /// ```
    pub fn steal_batch(&self, dest: &Owner<T>) -> Steal<T> {
        let inner = &*self.inner;
        // S1..S3 exactly as in `steal`, with mutation sites of their own.
        let t = inner.top.load(Relaxed);
        // S2, SeqCst fence: pairs with the owner's O2 (store-buffering on bottom/top).
        mutation::fence(Site::BatchFirstFence, SeqCst);
        // S3, Acquire: pairs with the Release stores of `bottom` (P3, O1, O5).
        let b = inner.bottom.load(mutation::ord(Site::BatchFirstBottomAcquire, Acquire));
        let len = len_between(t, b);
        if len <= 0 {
            return Steal::Empty;
        }
        let room = dest.capacity() - dest.len();
        let want = (len as usize).div_ceil(2).min(STEAL_BATCH_LIMIT).min(room + 1);
        let word = inner.slot(t).load(Relaxed);
        // S4: as in `steal`.
        if inner.top.compare_exchange(t, t.wrapping_add(1), Release, Relaxed).is_err() {
            return Steal::Retry;
        }
        inner.witness(t).consume();
        // SAFETY: our CAS claimed index `t`.
        let first = unsafe { T::from_word(word) };
        let mut t = t.wrapping_add(1);
        for _ in 1..want {
            // B1, SeqCst fence: pairs with O2. Our own CAS is the "top load" before it.
            mutation::fence(Site::BatchFence, SeqCst);
            // B2, Acquire: pairs with P3/O1/O5.
            let b = inner.bottom.load(mutation::ord(Site::BatchBottomAcquire, Acquire));
            if len_between(t, b) <= 0 {
                break;
            }
            let word = inner.slot(t).load(Relaxed);
            // B4: as S4.
            if inner.top.compare_exchange(t, t.wrapping_add(1), Release, Relaxed).is_err() {
                break;
            }
            inner.witness(t).consume();
            // SAFETY: our CAS claimed index `t`.
            let item = unsafe { T::from_word(word) };
            // `want <= room + 1` and only thieves (who shrink it) touch `dest` besides us.
            if let Err(item) = dest.push(item) {
                unreachable_push_failure(item);
            }
            t = t.wrapping_add(1);
        }
        Steal::Success(first)
    }

    /// Whether the deque looked empty at a moment during the call.
    ///
    /// ```
    /// let owner = filch::deque::Owner::<usize>::with_capacity(8).unwrap();
    /// let thief = owner.stealer();
    /// assert!(thief.is_empty());
    /// owner.push(1).unwrap();
    /// assert!(!thief.is_empty());
    /// ```
    pub fn is_empty(&self) -> bool {
        // Relaxed: a snapshot; callers that act on "empty" re-check with `steal`.
        let t = self.inner.top.load(Relaxed);
        let b = self.inner.bottom.load(Relaxed);
        len_between(t, b) <= 0
    }
}

/// `steal_batch` sized the batch to fit; a refusal means the room arithmetic is wrong.
/// Dropping the item would lose it, so stop loudly instead.
#[cold]
#[inline(never)]
fn unreachable_push_failure<T>(item: T) -> ! {
    std::mem::forget(item);
    panic!("filch::deque: steal_batch destination refused an item it had room for");
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn lifo_owner_fifo_thief() {
        let o = Owner::<usize>::with_capacity(8).unwrap();
        let s = o.stealer();
        for i in 0..5 {
            o.push(i).unwrap();
        }
        assert_eq!(s.steal(), Steal::Success(0));
        assert_eq!(o.pop(), Some(4));
        assert_eq!(o.pop_xchg(), Some(3));
        assert_eq!(s.steal(), Steal::Success(1));
        assert_eq!(o.pop(), Some(2));
        assert_eq!(o.pop(), None);
        assert_eq!(s.steal(), Steal::Empty);
        // Repeated pops on empty never walk `bottom` down: the next push is visible.
        assert_eq!(o.pop(), None);
        o.push(9).unwrap();
        assert_eq!(s.steal(), Steal::Success(9));
    }

    #[test]
    fn full_deque_refuses_and_wraps() {
        let o = Owner::<usize>::with_capacity(4).unwrap();
        let s = o.stealer();
        for round in 0..10 {
            for i in 0..4 {
                o.push(round * 10 + i).unwrap();
            }
            assert_eq!(o.push(99), Err(99));
            assert_eq!(s.steal(), Steal::Success(round * 10));
            o.push(round * 10 + 4).unwrap();
            let mut got: Vec<_> = std::iter::from_fn(|| o.pop()).collect();
            got.sort();
            assert_eq!(got, (1..5).map(|i| round * 10 + i).collect::<Vec<_>>());
        }
    }

    #[test]
    fn indices_wrap_around_usize() {
        let o = Owner::<usize>::with_capacity(2).unwrap();
        o.inner.top.store(usize::MAX - 1, Relaxed);
        o.inner.bottom.store(usize::MAX - 1, Relaxed);
        o.top_cache.set(usize::MAX - 1);
        let s = o.stealer();
        for i in 0..6 {
            o.push(i).unwrap();
            o.push(i + 100).unwrap();
            assert_eq!(o.push(0), Err(0));
            assert_eq!(s.steal(), Steal::Success(i));
            assert_eq!(o.pop(), Some(i + 100));
            assert_eq!(o.pop(), None);
        }
    }

    #[test]
    fn capacity_errors_are_errors() {
        for bad in [0, 3, 100, MAX_CAPACITY * 2] {
            let e = Owner::<usize>::with_capacity(bad).unwrap_err();
            assert_eq!(e, CapacityError::Invalid(bad));
            assert!(e.to_string().contains("power of two"));
        }
        assert_eq!(Owner::<usize>::with_capacity(1).unwrap().capacity(), 1);
    }

    #[test]
    fn drop_drops_remaining_items_once() {
        let counter = std::sync::Arc::new(());
        let o = Owner::<Box<std::sync::Arc<()>>>::with_capacity(8).unwrap();
        let s = o.stealer();
        for _ in 0..6 {
            o.push(Box::new(counter.clone())).unwrap();
        }
        drop(s.steal());
        drop(o.pop());
        assert_eq!(std::sync::Arc::strong_count(&counter), 5);
        drop(o);
        assert_eq!(std::sync::Arc::strong_count(&counter), 5, "a stealer keeps the deque alive");
        drop(s);
        assert_eq!(std::sync::Arc::strong_count(&counter), 1);
    }

    #[test]
    fn steal_batch_respects_limits_and_room() {
        let v = Owner::<usize>::with_capacity(128).unwrap();
        for i in 0..100 {
            v.push(i).unwrap();
        }
        let d = Owner::<usize>::with_capacity(128).unwrap();
        assert_eq!(v.stealer().steal_batch(&d), Steal::Success(0));
        assert_eq!(d.len(), STEAL_BATCH_LIMIT - 1);
        let tiny = Owner::<usize>::with_capacity(2).unwrap();
        tiny.push(1000).unwrap();
        assert_eq!(v.stealer().steal_batch(&tiny), Steal::Success(STEAL_BATCH_LIMIT));
        assert_eq!(tiny.len(), 2);
        assert_eq!(tiny.pop(), Some(STEAL_BATCH_LIMIT + 1));
        assert_eq!(v.len(), 100 - STEAL_BATCH_LIMIT - 2);
    }

    /// Sole-owner mode under its one kind of foreign thief. Per round the owner pushes two
    /// items, works for a random while, then pops until empty, racing a thread that steals
    /// with `steal_heavy` in a loop: a heavy steal reads `top`, waits out its membarrier
    /// (microseconds), then takes the item, so it collides with the owner's pops only when
    /// they land right after its barrier; the random pauses spread the pops over that window.
    /// Every item must be taken exactly once. Mutation evidence in docs/VERIFICATION.md.
    #[test]
    fn sole_owner_pops_race_heavy_steals_exactly_once() {
        use std::sync::atomic::{AtomicBool, AtomicU8, Ordering as O};
        #[cfg(target_os = "linux")]
        assert!(crate::shim::asym::available(), "membarrier is available on any Linux >= 4.14");
        let mut owner = Owner::<usize>::with_capacity(64).unwrap();
        // SAFETY: the only foreign thief below uses `steal_heavy`.
        if !unsafe { owner.set_asymmetric() } {
            return; // no membarrier on this OS: the mode is off and `pop` keeps its fence
        }
        let thief = owner.stealer();
        const ROUNDS: usize = 40_000;
        let seen: Vec<AtomicU8> = (0..2 * ROUNDS).map(|_| AtomicU8::new(0)).collect();
        let done = AtomicBool::new(false);
        let start = std::sync::Barrier::new(2);
        let stolen = std::thread::scope(|s| {
            let t = s.spawn(|| {
                let mut n = 0usize;
                start.wait();
                // Acquire: pairs with the owner's Release store of `done` (nothing else to see).
                while !done.load(O::Acquire) {
                    if let Steal::Success(i) = thief.steal_heavy() {
                        seen[i].fetch_add(1, O::Relaxed);
                        n += 1;
                    }
                }
                n
            });
            start.wait();
            let mut rng = 0x2545_F491_4F6C_DD1Du64;
            for r in 0..ROUNDS {
                owner.push(2 * r).unwrap();
                owner.push(2 * r + 1).unwrap();
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                for _ in 0..rng % 4096 {
                    std::hint::spin_loop();
                }
                while let Some(i) = owner.pop() {
                    seen[i].fetch_add(1, O::Relaxed);
                }
            }
            // Release: pairs with the thief's Acquire load above.
            done.store(true, O::Release);
            t.join().unwrap()
        });
        let bad: Vec<(usize, u8)> = seen
            .iter()
            .enumerate()
            .map(|(i, c)| (i, c.load(O::Relaxed)))
            .filter(|&(_, c)| c != 1)
            .take(10)
            .collect();
        assert!(bad.is_empty(), "items taken other than once (index, times): {bad:?}; {stolen} stolen");
        assert!(stolen > 0, "the thief never won a race: the test exercised nothing");
    }
}
