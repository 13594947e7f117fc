//! A fixed, pre-allocated slot pool with lock-free, ABA-safe allocation and per-thread
//! caches.
//!
//! The scheduler keeps every task (header plus inline closure/result storage) in one
//! slot of a [`Pool`]. A [`Pool`] of capacity `n` allocates its `n` slots once, at
//! construction, and never touches the heap again. Slots are named by [`SlotId`]s
//! (`u32` indices), so a task reference fits a deque word ([`Word`] is implemented).
//!
//! # Structure
//!
//! - `values`: the dense slot storage, `UnsafeCell<MaybeUninit<T>>` per slot.
//! - `links`: parallel per-slot metadata, so that `values` stays dense: `next` (the next
//!   slot in the same chain), and for the first slot of a batch on the free stack
//!   `batch_len` and `next_batch`.
//! - `head`: the global free list, a Treiber stack (R. K. Treiber, "Systems Programming:
//!   Coping with Parallelism", IBM RJ 5118, 1986) whose elements are *batches*: chains of
//!   up to [`BATCH`] free slots linked by `next`. The head word packs a tag with the first
//!   slot of the top batch (table below); the tag defeats ABA.
//! - [`Cache`]: a per-thread magazine pair (Bonwick & Adams, "Magazines and Vmem",
//!   USENIX ATC 2001; Go's per-P free lists work the same way): two chains, `current`
//!   and `spare`, of at most [`BATCH`] slots each. A cached alloc or free touches only
//!   the cache and the slot's own link, no shared cache line; the cache exchanges whole
//!   batches with the global stack (one CAS per [`BATCH`] operations at most).
//!
//! # Head word
//!
//! | bits   | field | meaning |
//! |--------|-------|---------|
//! | 0..32  | index | first slot of the top batch; `NIL` (`u32::MAX`) when the stack is empty |
//! | 32..64 | tag   | number of successful CASes on `head`, modulo 2^32 |
//!
//! **ABA.** A popper reads the head `(tag, x)` and `x.next_batch = y`, then CASes the head
//! from `(tag, x)` to `(tag + 1, y)`. Without the tag, between the read and the CAS
//! another thread could pop `x`, pop or reuse `y`, and push `x` back: the CAS would
//! succeed and install `y`, which is no longer free (a slot handed out twice, or a batch
//! lost). With the tag, `x` leaving the stack takes a successful CAS, so the head no
//! longer equals `(tag, x)` and the stale CAS fails. (Bumping on pops alone would
//! suffice; every successful CAS bumps, which keeps the rule simple.)
//!
//! The tag also carries the ordering argument of H3 (below): a successful pop CAS reads
//! the very store its Acquire load H1 read, so it needs no Acquire of its own. Without
//! the tag even a *benign* ABA (the same batch, with the same `next_batch`, pushed back
//! by another thread) lets a Relaxed CAS succeed against a push it never synchronized
//! with; the loom models catch the `PoolNoTag` mutant that way as well as by lost slots.
//!
//! **Tag wrap.** The argument fails only if the head returns to the *same* 64-bit value:
//! the popper must stay suspended between its load and its CAS while exactly a multiple
//! of 2^32 successful CASes hit this pool's head, ending with the same slot on top. At
//! ~2 ns per uncontended CAS that is at least 8.6 s of uninterrupted pool traffic with
//! the popper descheduled across it, landing on one value out of 2^32 — the standard
//! argument for 32-bit-tagged Treiber stacks, accepted here.
//!
//! # Orderings
//!
//! Named accesses, referred to by the comments in the code:
//!
//! | step | access | ordering | partner |
//! |------|--------|----------|---------|
//! | H1 | pop_batch: load `head` | Acquire | R3 (and, since every write to `head` is a CAS, the release sequence of every earlier R3): the popped batch's links and its slots' last contents are visible |
//! | H2 | pop_batch: load `next_batch` of the top slot | Relaxed | may be stale only if that slot left the stack after H1; then H3 fails on the tag |
//! | H3 | pop_batch: CAS `head` to `(tag + 1, next_batch)` | Relaxed success; Acquire failure | success: the fresh tag means H3 read the very store H1 synchronized with, nothing more to acquire; failure: the value read is reused as the next H1 |
//! | R1 | push_batch: store `batch_len`, `next_batch`; chain `next` links | Relaxed | published by R3 |
//! | R2 | push_batch: load `head` | Relaxed | the value is only copied into `next_batch`; a stale one makes R3 fail |
//! | R3 | push_batch: CAS `head` to `(tag + 1, batch)` | Release success; Relaxed failure | H1: the pusher's writes to the links and to the slots' contents happen before the next owner's |
//! | C1 | cache: `next` of a slot in one of its chains | Relaxed | the chain belongs to one cache, used by one thread at a time; R3/H1 carry it between threads through the global stack, and a [`SharedCache`]'s X3/X1 carry its chains from borrower to borrower |
//!
//! H1 cannot be moved onto H3 (an Acquire CAS after a Relaxed load): H2 reads through the
//! value H1 returned, so H1 itself must synchronize with the push that wrote H2's link.
//! H1 and H3's failure ordering, R3, and the tag are written through
//! [`crate::shim::mutation`] (`Site::PoolHeadAcquire`, `Site::PoolPushRelease`,
//! `Site::PoolNoTag`); `loom-tests/pool.rs` weakens each in turn and shows a model fail.
//!
//! # Guarantees
//!
//! - **A live slot is never handed out twice.** Every slot is always in exactly one place:
//!   in one batch on the global stack, in one chain of one [`Cache`], in a chain local to
//!   one call in progress, or live (held by whoever allocated it). Allocation moves a slot
//!   from one of the first three to live; only [`Cache::free`] / [`Pool::free`] move it
//!   back, and their contracts make that happen once per allocation.
//! - **Exhaustion.** [`Cache::try_alloc`] returns `None` when this cache's chains are
//!   empty *and* it found the global stack empty; [`Pool::try_alloc`] when it found the
//!   global stack empty. Neither means every slot is live: each other live [`Cache`] may
//!   hold up to `2 * BATCH` free slots, and each [`Pool::try_alloc`] in progress on
//!   another thread holds up to `BATCH - 1` for the moment between its pop and its
//!   push-back. So with `c` other caches and `u` concurrent uncached allocators, `None`
//!   means at least `capacity - 2 * BATCH * c - (BATCH - 1) * u` slots are live. Dropping
//!   (or [`Cache::flush`]ing) a cache returns its slots to the global stack. A
//!   [`SharedCache`] counts as one more cache; its [`SharedCache::try_alloc`] also returns
//!   `None` when another thread has it borrowed (then it went to the global stack
//!   uncached and found it empty) while the shared cache itself holds free slots.
//! - **Lock-free.** A CAS on `head` fails only because another one succeeded.
//! - **No heap after construction.** [`Pool::with_capacity`] is the only allocation.
//! - **`T` is never dropped by the pool.** Slots hold `MaybeUninit<T>`: whoever writes a
//!   value into a slot drops (or moves out) what it wrote before freeing the slot. The
//!   pool never reads slot contents.
//!
//! # Slot size
//!
//! The scheduler uses a `Pool<TaskSlot>` with [`SLOT_BYTES`]-byte slots: a task header
//! plus inline storage for the closure and, later, its result. A closure or result that
//! does not fit inline, or needs alignment above 16, goes to a heap-allocated task of the
//! same layout instead, as does a spawn that finds the pool exhausted; the scheduler
//! counts both as `heap_fallbacks`.

use std::cell::Cell;
use std::fmt;
use std::marker::PhantomData;
use std::mem::MaybeUninit;
use std::ptr::NonNull;

use crate::lockfree::deque::Word;
use crate::shim::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::{CachePadded, UnsafeCell};

/// Capacity of [`Pool::new`]: 8192 slots (4 under loom, so models reach exhaustion).
///
/// ```
/// use filch::pool::{Pool, DEFAULT_CAPACITY};
/// assert!(DEFAULT_CAPACITY.is_power_of_two());
/// assert_eq!(Pool::<u64>::new().capacity(), DEFAULT_CAPACITY);
/// ```
pub const DEFAULT_CAPACITY: usize = if cfg!(loom) { 4 } else { 8192 };

/// The largest capacity [`Pool::with_capacity`] accepts: 2^24 slots (3 GiB of
/// [`SLOT_BYTES`]-byte slots). Every index then stays far below the `u32::MAX` that
/// marks "no slot".
///
/// ```
/// use filch::pool::{CapacityError, Pool, MAX_CAPACITY};
/// assert!(MAX_CAPACITY < u32::MAX as usize);
/// let too_big = MAX_CAPACITY * 2;
/// assert_eq!(Pool::<u64>::with_capacity(too_big).unwrap_err(), CapacityError::Invalid(too_big));
/// ```
pub const MAX_CAPACITY: usize = 1 << 24;

/// Slots per batch on the global stack, and the most slots in one [`Cache`] chain: 32
/// (2 under loom). A cache exchanges slots with the global stack a batch at a time.
///
/// ```
/// use filch::pool::{Pool, BATCH};
/// let pool = Pool::<u64>::with_capacity(2 * BATCH).unwrap();
/// let mut cache = pool.cache();
/// assert!(cache.try_alloc().is_some());
/// // The cache took one whole batch; the other one is still on the global stack.
/// assert_eq!(cache.cached(), BATCH - 1);
/// assert_eq!(std::iter::from_fn(|| pool.try_alloc()).count(), BATCH);
/// ```
pub const BATCH: usize = if cfg!(loom) { 2 } else { 32 };

/// The size of the scheduler's task slot: a header plus inline storage for a closure and
/// its result. Closures or results that do not fit (or need alignment above 16) go to a
/// heap task of the same layout, counted as `heap_fallbacks` (see the module docs).
///
/// ```
/// use filch::pool::SLOT_BYTES;
/// // A task slot holds the task header plus `TASK_INLINE_BYTES` of inline storage.
/// assert!(filch::TASK_INLINE_BYTES < SLOT_BYTES);
/// let pool = filch::pool::Pool::<[u8; SLOT_BYTES]>::with_capacity(16).unwrap();
/// assert_eq!(pool.capacity(), 16);
/// ```
pub const SLOT_BYTES: usize = 192;

/// "No slot": the empty stack's head index, the end of a `next_batch` list.
const NIL: u32 = u32::MAX;

const _: () = assert!(MAX_CAPACITY < NIL as usize);
const _: () = assert!(BATCH >= 1 && BATCH <= MAX_CAPACITY);

/// The name of one slot of a [`Pool`]: an index below its capacity.
///
/// A `SlotId` grants nothing by itself: the right to touch a slot comes from holding its
/// live allocation (see [`Pool::slot_ptr`]), and freeing is `unsafe`. So ids may be
/// stored as their raw `u32` ([`SlotId::raw`]) and rebuilt ([`SlotId::from_raw`]) freely.
///
/// ```
/// use filch::pool::{Pool, SlotId};
/// let pool = Pool::<u64>::with_capacity(8).unwrap();
/// let id = pool.try_alloc().unwrap();
/// assert!(id.index() < pool.capacity());
/// assert_eq!(SlotId::from_raw(id.raw()), id); // round-trips through its `u32`
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SlotId(u32);

impl SlotId {
    /// The slot's index, in `0..capacity`.
    ///
    /// ```
    /// let pool = filch::pool::Pool::<u64>::with_capacity(4).unwrap();
    /// let ids = std::iter::from_fn(|| pool.try_alloc());
    /// let mut indices: Vec<usize> = ids.map(|id| id.index()).collect();
    /// indices.sort();
    /// assert_eq!(indices, [0, 1, 2, 3]);
    /// ```
    #[inline(always)]
    pub const fn index(self) -> usize {
        self.0 as usize
    }

    /// The slot's index as stored, for packing into a task header or a queue word.
    ///
    /// ```
    /// let pool = filch::pool::Pool::<u64>::with_capacity(8).unwrap();
    /// let id = pool.try_alloc().unwrap();
    /// assert_eq!(id.raw() as usize, id.index());
    /// ```
    #[inline(always)]
    pub const fn raw(self) -> u32 {
        self.0
    }

    /// The id whose [`SlotId::raw`] is `raw`.
    ///
    /// ```
    /// use filch::pool::{Pool, SlotId};
    /// let pool = Pool::<u64>::with_capacity(8).unwrap();
    /// let id = pool.try_alloc().unwrap();
    /// let stored: u32 = id.raw(); // e.g. packed into a task header
    /// assert_eq!(SlotId::from_raw(stored), id);
    /// ```
    #[inline(always)]
    pub const fn from_raw(raw: u32) -> SlotId {
        SlotId(raw)
    }
}

impl Word for SlotId {
    #[inline(always)]
    fn into_word(self) -> usize {
        self.0 as usize
    }
    #[inline(always)]
    unsafe fn from_word(word: usize) -> Self {
        // `word` came from `into_word`, so the cast is exact.
        SlotId(word as u32)
    }
}

/// The capacity given to [`Pool::with_capacity`] is unusable.
///
/// ```
/// use filch::pool::{CapacityError, Pool, MAX_CAPACITY};
/// let err = Pool::<u64>::with_capacity(0).unwrap_err();
/// assert_eq!(err, CapacityError::Invalid(0));
/// assert!(err.to_string().contains("invalid"));
/// // Slots too big for the address space: an error, not an abort.
/// let err = Pool::<[u8; 1 << 40]>::with_capacity(MAX_CAPACITY).unwrap_err();
/// assert_eq!(err, CapacityError::OutOfMemory(MAX_CAPACITY));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CapacityError {
    /// Not a power of two, zero, or above [`MAX_CAPACITY`]; carries the value given.
    Invalid(usize),
    /// The slots could not be allocated (or their size overflows `isize`); carries the
    /// capacity asked for.
    OutOfMemory(usize),
}

impl fmt::Display for CapacityError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            CapacityError::Invalid(n) => {
                write!(f, "pool capacity {n} is invalid: it must be a power of two from 1 to {MAX_CAPACITY}")
            }
            CapacityError::OutOfMemory(n) => {
                write!(f, "pool capacity {n} is invalid: its slots could not be allocated")
            }
        }
    }
}

impl std::error::Error for CapacityError {}

/// A snapshot of the head word (see the table in the module docs).
#[derive(Clone, Copy, PartialEq, Eq)]
struct Head(u64);

impl Head {
    const INDEX_MASK: u64 = NIL as u64;
    const TAG_SHIFT: u32 = Self::INDEX_MASK.count_ones();

    #[inline(always)]
    fn new(tag: u32, index: u32) -> Head {
        Head(((tag as u64) << Self::TAG_SHIFT) | index as u64)
    }

    #[inline(always)]
    fn index(self) -> u32 {
        (self.0 & Self::INDEX_MASK) as u32
    }

    #[inline(always)]
    fn tag(self) -> u32 {
        (self.0 >> Self::TAG_SHIFT) as u32
    }

    #[inline(always)]
    fn is_empty(self) -> bool {
        self.index() == NIL
    }

    /// The head after a successful CAS that makes `index` the top: the tag is bumped
    /// (unless the `PoolNoTag` mutant drops the bump).
    #[inline(always)]
    fn successor(self, index: u32) -> Head {
        let tag = if mutation::keep(Site::PoolNoTag) { self.tag().wrapping_add(1) } else { self.tag() };
        Head::new(tag, index)
    }
}

impl fmt::Debug for Head {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Head").field("tag", &self.tag()).field("index", &self.index()).finish()
    }
}

/// Per-slot metadata, kept apart from the values so that they stay dense.
///
/// Each field is written only by whoever holds the slot as free (a cache, a call in
/// progress) and published by R3. Only `next_batch` is ever read by a thread that does
/// not hold the slot (H2, a popper racing for the top batch), which is why the fields are
/// atomics; the others are atomics for uniformity (Relaxed costs a plain access).
#[derive(Debug)]
struct Link {
    /// The next slot of the same chain; meaningful for the first `len - 1` slots.
    next: AtomicU32,
    /// For the first slot of a batch on the global stack: the first slot of the batch
    /// below it, or `NIL`.
    next_batch: AtomicU32,
    /// For the first slot of a batch on the global stack: the batch's length, 1..=BATCH.
    batch_len: AtomicU32,
}

/// A chain of free slots linked through `Link::next`, held by one owner.
#[derive(Clone, Copy, Debug)]
struct Chain {
    head: u32,
    len: u32,
}

impl Chain {
    const EMPTY: Chain = Chain { head: NIL, len: 0 };

    #[inline(always)]
    fn is_empty(self) -> bool {
        self.len == 0
    }

    #[inline(always)]
    fn is_full(self) -> bool {
        self.len as usize == BATCH
    }
}

/// A fixed pool of `capacity` slots of `MaybeUninit<T>`, allocated once.
///
/// Allocate through a per-thread [`Cache`] ([`Pool::cache`]) or, on threads without one,
/// with [`Pool::try_alloc`] / [`Pool::free`]. See the module docs for the algorithm and
/// its guarantees.
///
/// ```
/// use std::mem::MaybeUninit;
/// use filch::pool::Pool;
///
/// let pool = Pool::<u64>::with_capacity(64).unwrap();
/// let mut cache = pool.cache();
/// let id = cache.try_alloc().unwrap();
/// let slot = pool.slot_ptr(id);
/// // SAFETY: `id` is live and ours; nobody else touches its slot until we free it.
/// unsafe { slot.as_ptr().write(MaybeUninit::new(7)) };
/// // SAFETY: written just above.
/// assert_eq!(unsafe { slot.as_ref().assume_init() }, 7);
/// // SAFETY: `id` came from this pool, is live, and is freed once; `u64` needs no drop.
/// unsafe { cache.free(id) };
/// ```
pub struct Pool<T> {
    /// The free stack's head word (see the table in the module docs).
    head: CachePadded<AtomicU64>,
    /// Slot storage. Written and read only by the holder of the slot's live allocation,
    /// through [`Pool::slot_ptr`] / [`Pool::with_slot_mut`]; the right passes from one
    /// holder to the next through free (R3) and alloc (H1), or within one thread.
    values: Box<[UnsafeCell<MaybeUninit<T>>]>,
    /// Per-slot links, parallel to `values`.
    links: Box<[Link]>,
    /// Under loom, every slot's address, taken once at construction for
    /// [`Pool::slot_addr`] (loom counts taking a pointer from a slot's cell as an access).
    #[cfg(loom)]
    addrs: Box<[NonNull<MaybeUninit<T>>]>,
}

// SAFETY: the pool owns no `T` it would drop, but slots carry `T`s written on one thread
// and taken on another after the slot moves between threads, so `T: Send` is required;
// every shared access to the pool's own state is atomic.
unsafe impl<T: Send> Send for Pool<T> {}
// SAFETY: `&Pool` allows atomic operations on `head` and `links`, and hands out raw
// pointers to slots whose use is restricted (by the unsafe contracts of dereferencing
// them and of `free`) to the one holder of a live allocation; moving that right between
// threads moves a `T` between threads, hence `T: Send`. No `&T` is ever shared.
unsafe impl<T: Send> Sync for Pool<T> {}

impl<T> fmt::Debug for Pool<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool").field("capacity", &self.capacity()).finish()
    }
}

impl<T> Default for Pool<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Pool<T> {
    /// A pool of [`DEFAULT_CAPACITY`] slots.
    ///
    /// Aborts via [`std::alloc::handle_alloc_error`] if the slots cannot be allocated,
    /// as `std`'s collections do; use [`Pool::with_capacity`] to get an error instead.
    ///
    /// ```
    /// let pool = filch::pool::Pool::<[u8; 128]>::new();
    /// assert_eq!(pool.capacity(), filch::pool::DEFAULT_CAPACITY);
    /// ```
    pub fn new() -> Self {
        match Self::with_capacity(DEFAULT_CAPACITY) {
            Ok(pool) => pool,
            Err(e) => match std::alloc::Layout::array::<MaybeUninit<T>>(DEFAULT_CAPACITY) {
                Ok(layout) => std::alloc::handle_alloc_error(layout),
                Err(_) => panic!("{e}"),
            },
        }
    }

    /// A pool of `capacity` slots: a power of two from 1 to [`MAX_CAPACITY`].
    ///
    /// This is the only heap allocation the pool ever makes. All slots start free, in
    /// batches of [`BATCH`] on the global stack, lowest indices on top.
    ///
    /// ```
    /// use filch::pool::{CapacityError, Pool};
    /// assert_eq!(Pool::<u64>::with_capacity(256).unwrap().capacity(), 256);
    /// assert_eq!(Pool::<u64>::with_capacity(100).unwrap_err(), CapacityError::Invalid(100));
    /// ```
    pub fn with_capacity(capacity: usize) -> Result<Self, CapacityError> {
        if !capacity.is_power_of_two() || capacity > MAX_CAPACITY {
            return Err(CapacityError::Invalid(capacity));
        }
        let oom = |_| CapacityError::OutOfMemory(capacity);
        let mut values = Vec::new();
        values.try_reserve_exact(capacity).map_err(oom)?;
        values.extend((0..capacity).map(|_| UnsafeCell::new(MaybeUninit::uninit())));
        let mut links = Vec::new();
        links.try_reserve_exact(capacity).map_err(oom)?;
        // Slot `i` is in the batch starting at `i - i % BATCH`; batches are stacked in
        // index order. `capacity <= MAX_CAPACITY < NIL`, so the casts are exact.
        links.extend((0..capacity).map(|i| {
            let start = i - i % BATCH;
            let end = (start + BATCH).min(capacity);
            let is_first = i == start;
            Link {
                next: AtomicU32::new(if i + 1 < end { (i + 1) as u32 } else { NIL }),
                next_batch: AtomicU32::new(if is_first && end < capacity { end as u32 } else { NIL }),
                batch_len: AtomicU32::new(if is_first { (end - start) as u32 } else { 0 }),
            }
        }));
        // Under loom: each slot's address, taken on the constructing thread before the pool
        // is shared (so ordered before every later access).
        #[cfg(loom)]
        let addrs = values
            .iter()
            // SAFETY: `p` points into the live `values` allocation, so it is not null.
            .map(|v| v.with_mut(|p| unsafe { NonNull::new_unchecked(p) }))
            .collect();
        Ok(Pool {
            head: CachePadded(AtomicU64::new(Head::new(0, 0).0)),
            values: values.into_boxed_slice(),
            links: links.into_boxed_slice(),
            #[cfg(loom)]
            addrs,
        })
    }

    /// The number of slots.
    ///
    /// ```
    /// let pool = filch::pool::Pool::<u64>::with_capacity(32).unwrap();
    /// assert_eq!(pool.capacity(), 32);
    /// assert_eq!(std::iter::from_fn(|| pool.try_alloc()).count(), 32);
    /// ```
    #[inline]
    pub fn capacity(&self) -> usize {
        self.values.len()
    }

    /// A new, empty per-thread cache for this pool.
    ///
    /// ```
    /// let pool = filch::pool::Pool::<u64>::with_capacity(64).unwrap();
    /// // One cache per thread; between them they hand out every slot.
    /// let drain = || {
    ///     let mut cache = pool.cache();
    ///     std::iter::from_fn(|| cache.try_alloc()).count()
    /// };
    /// let total = std::thread::scope(|s| {
    ///     let other = s.spawn(drain);
    ///     drain() + other.join().unwrap()
    /// });
    /// assert_eq!(total, 64);
    /// ```
    pub fn cache(&self) -> Cache<'_, T> {
        Cache {
            pool: self,
            links: self.links.as_ptr(),
            current: Chain::EMPTY,
            spare: Chain::EMPTY,
            got: 0,
            given: 0,
            _not_sync: PhantomData,
        }
    }

    /// A pointer to the storage of slot `id`, valid for as long as the pool lives.
    ///
    /// Obtaining it is safe; using it is not. Only the holder of `id`'s live allocation
    /// (the caller that got `id` from `try_alloc`, or whoever it handed `id` to with
    /// synchronization) may read or write through it, and only until it frees `id`.
    /// Under loom, obtaining the pointer counts as one write access to the slot; the
    /// closure form [`Pool::with_slot_mut`] lets a model track every access.
    ///
    /// # Panics
    ///
    /// If `id` is not below [`Pool::capacity`] (it came from another pool).
    ///
    /// # Example
    ///
    /// ```
    /// use std::mem::MaybeUninit;
    /// let pool = filch::pool::Pool::<String>::with_capacity(8).unwrap();
    /// let id = pool.try_alloc().unwrap();
    /// let slot = pool.slot_ptr(id);
    /// // SAFETY: `id` is live and ours alone until we free it below.
    /// unsafe { slot.as_ptr().write(MaybeUninit::new(String::from("task"))) };
    /// // SAFETY: written just above; moving the value out leaves nothing to drop.
    /// let s = unsafe { slot.as_ptr().read().assume_init() };
    /// assert_eq!(s, "task");
    /// // SAFETY: from this pool, live, freed once; no access to the slot follows.
    /// unsafe { pool.free(id) };
    /// ```
    #[inline]
    pub fn slot_ptr(&self, id: SlotId) -> NonNull<MaybeUninit<T>> {
        assert!(
            id.index() < self.capacity(),
            "slot id {} out of range for a pool of {}",
            id.0,
            self.capacity()
        );
        // SAFETY: checked just above.
        unsafe { self.slot_ptr_unchecked(id) }
    }

    /// [`Pool::slot_ptr`] without the range check, for ids this pool handed out.
    ///
    /// # Safety
    /// `id` came from an allocation of this pool (so it is below its capacity).
    #[inline(always)]
    pub(crate) unsafe fn slot_ptr_unchecked(&self, id: SlotId) -> NonNull<MaybeUninit<T>> {
        debug_assert!(id.index() < self.capacity());
        // SAFETY: in range (caller); the element lives as long as the pool.
        let ptr = unsafe { self.values.get_unchecked(id.index()) }.with_mut(|p| p);
        // SAFETY: `p` points into the live `values` allocation (it comes from a
        // reference to one of its elements), so it is not null.
        unsafe { NonNull::new_unchecked(ptr) }
    }

    /// The address of slot `id`, for a caller that does not hold the slot and touches only
    /// atomics inside it (the async shutdown sweep reads each slot's task state word).
    /// The same address as [`Pool::slot_ptr_unchecked`]; under loom that one is a write
    /// access by the slot's holder, which a visit of a slot someone else holds is not, so
    /// this one is no access at all.
    ///
    /// # Safety
    /// `id` is below the capacity.
    #[cfg(not(loom))]
    #[inline(always)]
    pub(crate) unsafe fn slot_addr(&self, id: SlotId) -> NonNull<MaybeUninit<T>> {
        // SAFETY: in range (caller); outside loom this is address arithmetic only.
        unsafe { self.slot_ptr_unchecked(id) }
    }

    /// [`Pool::slot_addr`] under loom: from the table taken at construction.
    ///
    /// # Safety
    /// `id` is below the capacity.
    #[cfg(loom)]
    pub(crate) unsafe fn slot_addr(&self, id: SlotId) -> NonNull<MaybeUninit<T>> {
        // SAFETY: in range (caller).
        unsafe { *self.addrs.get_unchecked(id.index()) }
    }

    /// Runs `f` with a pointer to the storage of slot `id`.
    ///
    /// The same rules as [`Pool::slot_ptr`] govern the pointer, which must not escape `f`;
    /// under loom the access is checked for data races for the duration of `f`.
    ///
    /// # Panics
    ///
    /// If `id` is not below [`Pool::capacity`].
    ///
    /// # Example
    ///
    /// ```
    /// use std::mem::MaybeUninit;
    /// let pool = filch::pool::Pool::<u64>::with_capacity(8).unwrap();
    /// let id = pool.try_alloc().unwrap();
    /// // SAFETY: `id` is live and ours until freed; the pointer does not leave the closure.
    /// pool.with_slot_mut(id, |p| unsafe { p.write(MaybeUninit::new(41)) });
    /// // SAFETY: as above, and the slot was initialized just before.
    /// let v = pool.with_slot_mut(id, |p| unsafe { p.read().assume_init() });
    /// assert_eq!(v, 41);
    /// // SAFETY: from this pool, live, freed once; no access to the slot follows.
    /// unsafe { pool.free(id) };
    /// ```
    #[inline]
    pub fn with_slot_mut<R>(&self, id: SlotId, f: impl FnOnce(*mut MaybeUninit<T>) -> R) -> R {
        self.values[id.index()].with_mut(f)
    }

    /// Allocates a slot without a cache: pops one batch, keeps its first slot and pushes
    /// the rest back. `None` when the global stack is empty (see *Exhaustion* in the
    /// module docs). Two CASes; threads that allocate often should use a [`Cache`].
    ///
    /// ```
    /// let pool = filch::pool::Pool::<u64>::with_capacity(1).unwrap();
    /// let id = pool.try_alloc().unwrap();
    /// assert_eq!(pool.try_alloc(), None);
    /// // SAFETY: `id` came from this pool, is live, and is freed once.
    /// unsafe { pool.free(id) };
    /// assert!(pool.try_alloc().is_some());
    /// ```
    pub fn try_alloc(&self) -> Option<SlotId> {
        let mut batch = self.pop_batch()?;
        let id = self.chain_pop(&mut batch);
        if !batch.is_empty() {
            self.push_batch(batch);
        }
        Some(id)
    }

    /// Returns slot `id` to the global stack, as a batch of one.
    ///
    /// # Safety
    ///
    /// `id` came from an allocation of *this* pool ([`Pool::try_alloc`] or any of its
    /// caches' [`Cache::try_alloc`]), is live, and is freed exactly once. Every access the
    /// caller (or anyone it handed `id` to) made to the slot happens before this call,
    /// and none follows it. The pool does not drop the slot's contents.
    ///
    /// # Example
    ///
    /// ```
    /// let pool = filch::pool::Pool::<u64>::with_capacity(1).unwrap();
    /// let id = pool.try_alloc().unwrap();
    /// assert_eq!(pool.try_alloc(), None);
    /// // SAFETY: `id` came from this pool, is live, and is freed exactly once; its slot was
    /// // never accessed.
    /// unsafe { pool.free(id) };
    /// assert_eq!(pool.try_alloc(), Some(id));
    /// ```
    pub unsafe fn free(&self, id: SlotId) {
        self.push_batch(Chain { head: id.0, len: 1 });
    }

    /// The link of slot `index`, which is below the capacity: every index on a chain or
    /// the free stack is one this pool handed out, and `free`'s contract says the same of
    /// the ids given back.
    #[inline(always)]
    fn link(&self, index: u32) -> &Link {
        debug_assert!((index as usize) < self.links.len());
        // SAFETY: in range (above).
        unsafe { self.links.get_unchecked(index as usize) }
    }

    /// Takes the first slot off `chain`, which must not be empty.
    #[inline(always)]
    fn chain_pop(&self, chain: &mut Chain) -> SlotId {
        debug_assert!(!chain.is_empty());
        let id = chain.head;
        // C1, Relaxed: the chain is ours; its links were published to us by R3/H1.
        chain.head = self.link(id).next.load(Relaxed);
        chain.len -= 1;
        SlotId(id)
    }

    /// The one CAS loop on `head`: `f` maps the current head to the index to install,
    /// or `None` to give up. Loads (and CAS failures) use `load`, a successful CAS uses
    /// `success`. Returns the head the successful CAS replaced.
    #[inline(always)]
    fn update_head(
        &self,
        load: Ordering,
        success: Ordering,
        mut f: impl FnMut(Head) -> Option<u32>,
    ) -> Option<Head> {
        let mut cur = Head(self.head.load(load));
        loop {
            let index = f(cur)?;
            match self.head.compare_exchange(cur.0, cur.successor(index).0, success, load) {
                Ok(_) => return Some(cur),
                Err(actual) => cur = Head(actual),
            }
        }
    }

    /// Pops the top batch off the global stack; `None` if the stack is empty.
    fn pop_batch(&self) -> Option<Chain> {
        // H1, Acquire (load and CAS failure): pairs with R3, the Release CAS that pushed
        // the batch we find on top (directly, or through the release sequence of later
        // CASes on `head`): its links and its slots' contents are visible to us.
        let load = mutation::ord(Site::PoolHeadAcquire, Acquire);
        // H3, Relaxed on success: the tag makes the CAS read the very store H1 read.
        let top = self.update_head(load, Relaxed, |cur| {
            if cur.is_empty() {
                return None;
            }
            // H2, Relaxed: stale only if `cur`'s top left the stack after H1, and then
            // the tag makes H3 fail.
            Some(self.link(cur.index()).next_batch.load(Relaxed))
        })?;
        let head = top.index();
        // Relaxed: the batch is ours since H3; R3 published the value, H1 acquired it.
        let len = self.link(head).batch_len.load(Relaxed);
        debug_assert!(len >= 1 && len as usize <= BATCH, "corrupt batch length {len}");
        Some(Chain { head, len })
    }

    /// Pushes the non-empty `chain` onto the global stack as one batch.
    fn push_batch(&self, chain: Chain) {
        debug_assert!(!chain.is_empty() && chain.len as usize <= BATCH);
        let link = self.link(chain.head);
        // R1, Relaxed: published by R3 below.
        link.batch_len.store(chain.len, Relaxed);
        // R2, Relaxed: the head value is only copied into `next_batch`. R3, Release:
        // publishes R1, the chain's `next` links and the slots' contents; pairs with H1.
        let release = mutation::ord(Site::PoolPushRelease, Release);
        self.update_head(Relaxed, release, |cur| {
            // R1, Relaxed: published by R3. No popper reads this link's `next_batch`
            // while we hold the slot: it is not on the stack.
            link.next_batch.store(cur.index(), Relaxed);
            Some(chain.head)
        });
    }
}

/// A per-thread cache of free slots of one [`Pool`] (two magazines of up to [`BATCH`]).
///
/// `Send` but not `Sync`: one thread at a time uses it. Dropping it (or calling
/// [`Cache::flush`]) returns its free slots to the pool's global stack. A slot allocated
/// through one cache may be freed through another cache or [`Pool::free`]; it finds its
/// way back to allocators in batches.
///
/// ```
/// let pool = filch::pool::Pool::<u64>::with_capacity(64).unwrap();
/// let mut a = pool.cache();
/// let ids: Vec<_> = std::iter::from_fn(|| a.try_alloc()).collect();
/// assert_eq!(ids.len(), 64);
/// let mut b = pool.cache();
/// for id in ids {
///     // SAFETY: each id came from this pool, is live, and is freed once.
///     unsafe { b.free(id) };
/// }
/// drop(b); // returns the freed slots to the global stack
/// assert!(a.try_alloc().is_some());
/// ```
pub struct Cache<'p, T> {
    pool: &'p Pool<T>,
    /// `pool.links`, one load closer: the magazine's hot paths touch nothing else.
    links: *const Link,
    /// Allocations come from here first; frees go here.
    current: Chain,
    /// Empty, or a chain that `current` replaces when it runs dry.
    spare: Chain,
    /// Slots taken from the global stack, and given back to it, over this cache's life
    /// (counted per batch, off the hot paths): with the allocations its owner made, they
    /// give the number of frees it took in, which the scheduler needs and would otherwise
    /// count on every free (`Cache::transferred`).
    got: u64,
    given: u64,
    /// Makes `Cache` `!Sync` (`Cell<()>` is `Send + !Sync`).
    _not_sync: PhantomData<Cell<()>>,
}

// SAFETY: `links` only caches `pool.links`, which `&Pool<T>` may reach from any thread
// (`Pool<T>: Sync` for `T: Send`); without it `Cache` would be `Send` under that same bound.
unsafe impl<T: Send> Send for Cache<'_, T> {}

impl<T> fmt::Debug for Cache<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Cache").field("cached", &self.cached()).finish()
    }
}

impl<'p, T> Cache<'p, T> {
    /// The pool this cache belongs to.
    ///
    /// ```
    /// let pool = filch::pool::Pool::<u64>::with_capacity(8).unwrap();
    /// let cache = pool.cache();
    /// assert!(std::ptr::eq(cache.pool(), &pool));
    /// assert_eq!(cache.pool().capacity(), 8);
    /// ```
    #[inline]
    pub fn pool(&self) -> &'p Pool<T> {
        self.pool
    }

    /// The number of free slots held by this cache (at most `2 * BATCH`).
    ///
    /// ```
    /// use filch::pool::{Pool, BATCH};
    /// let pool = Pool::<u64>::with_capacity(4 * BATCH).unwrap();
    /// let mut cache = pool.cache();
    /// assert_eq!(cache.cached(), 0);
    /// let id = cache.try_alloc().unwrap(); // takes one batch from the global stack
    /// assert_eq!(cache.cached(), BATCH - 1);
    /// // SAFETY: `id` came from this pool, is live, and is freed once; its slot was never
    /// // accessed.
    /// unsafe { cache.free(id) };
    /// assert_eq!(cache.cached(), BATCH);
    /// ```
    #[inline]
    pub fn cached(&self) -> usize {
        (self.current.len + self.spare.len) as usize
    }

    /// Allocates a slot: from this cache, else one batch from the global stack. `None`
    /// when both are empty (see *Exhaustion* in the module docs).
    ///
    /// ```
    /// let pool = filch::pool::Pool::<u64>::with_capacity(2).unwrap();
    /// let mut cache = pool.cache();
    /// let a = cache.try_alloc().unwrap();
    /// let b = cache.try_alloc().unwrap();
    /// assert_ne!(a, b);
    /// assert_eq!(cache.try_alloc(), None); // exhausted
    /// // SAFETY: `a` came from this pool, is live, and is freed once; its slot was never
    /// // accessed.
    /// unsafe { cache.free(a) };
    /// assert_eq!(cache.try_alloc(), Some(a));
    /// ```
    #[inline]
    pub fn try_alloc(&mut self) -> Option<SlotId> {
        if self.current.is_empty() && !self.refill() {
            return None;
        }
        let id = self.current.head;
        debug_assert!((id as usize) < self.pool.capacity());
        // SAFETY: a chain holds indices of this pool's slots, below its capacity; `links`
        // points to the pool's `links`, alive as long as the pool.
        let link = unsafe { &*self.links.add(id as usize) };
        // C1, Relaxed: as in `Pool::chain_pop`; a link written by an earlier user of this
        // cache on another thread came with the chain (H1, or a shared cache's X1).
        self.current.head = link.next.load(Relaxed);
        self.current.len -= 1;
        Some(SlotId(id))
    }

    /// `current` is empty: swap in `spare`, or else pop a batch. Whether `current` now
    /// holds a slot.
    #[cold]
    fn refill(&mut self) -> bool {
        if !self.spare.is_empty() {
            std::mem::swap(&mut self.current, &mut self.spare);
            return true;
        }
        match self.pool.pop_batch() {
            Some(batch) => {
                self.got += u64::from(batch.len);
                self.current = batch;
                true
            }
            None => false,
        }
    }

    /// Frees slot `id` into this cache; when the cache is full, one batch goes to the
    /// global stack.
    ///
    /// # Safety
    ///
    /// `id` came from an allocation of *this cache's pool* (through any cache, or
    /// [`Pool::try_alloc`]), is live, and is freed exactly once. Every access the caller
    /// (or anyone it handed `id` to) made to the slot happens before this call, and none
    /// follows it. The pool does not drop the slot's contents.
    ///
    /// # Example
    ///
    /// ```
    /// let pool = filch::pool::Pool::<u64>::with_capacity(8).unwrap();
    /// let id = pool.try_alloc().unwrap(); // allocated without a cache...
    /// let mut cache = pool.cache();
    /// // SAFETY: `id` came from this pool, is live, and is freed once; its slot was never
    /// // accessed.
    /// unsafe { cache.free(id) }; // ...and freed into one
    /// assert_eq!(cache.cached(), 1);
    /// assert_eq!(cache.try_alloc(), Some(id));
    /// ```
    #[inline]
    pub unsafe fn free(&mut self, id: SlotId) {
        if self.current.is_full() {
            self.spill();
        }
        debug_assert!(id.index() < self.pool.capacity());
        // SAFETY: `id` came from this pool (our contract), so it is below its capacity;
        // `links` points to the pool's `links`, alive as long as the pool.
        let link = unsafe { &*self.links.add(id.index()) };
        // C1, Relaxed: the slot is ours and not on any shared list; R3 publishes this (or,
        // in a shared cache, its X3).
        link.next.store(self.current.head, Relaxed);
        self.current.head = id.0;
        self.current.len += 1;
    }

    /// `current` is full: it becomes the spare, and a non-empty spare goes to the global
    /// stack first.
    #[cold]
    fn spill(&mut self) {
        if !self.spare.is_empty() {
            self.given += u64::from(self.spare.len);
            self.pool.push_batch(self.spare);
        }
        self.spare = std::mem::replace(&mut self.current, Chain::EMPTY);
    }

    /// Returns every slot this cache holds to the global stack.
    ///
    /// ```
    /// let pool = filch::pool::Pool::<u64>::with_capacity(4).unwrap();
    /// let mut cache = pool.cache();
    /// assert!(cache.try_alloc().is_some()); // the cache took the whole batch of 4
    /// assert_eq!(pool.try_alloc(), None); // it holds the other 3
    /// cache.flush();
    /// assert_eq!(cache.cached(), 0);
    /// assert_eq!(std::iter::from_fn(|| pool.try_alloc()).count(), 3);
    /// ```
    pub fn flush(&mut self) {
        for chain in [&mut self.current, &mut self.spare] {
            if !chain.is_empty() {
                self.given += u64::from(chain.len);
                self.pool.push_batch(*chain);
                *chain = Chain::EMPTY;
            }
        }
    }

    /// Slots this cache has taken from the global stack and given back to it, as
    /// `(got, given)`. Since slots are conserved, `frees − allocs = cached() + given − got`
    /// for the allocations and frees made through this cache.
    pub(crate) fn transferred(&self) -> (u64, u64) {
        (self.got, self.given)
    }
}

impl<T> Drop for Cache<'_, T> {
    fn drop(&mut self) {
        self.flush();
    }
}

/// A [`Cache`] that any thread may borrow, one at a time: for threads that allocate and
/// free now and then and own no cache (a scheduler's spawns and frees from outside its
/// workers). A borrow costs one RMW on the cache's own flag, a line that stays with a
/// thread that keeps borrowing it, instead of [`Pool::try_alloc`]'s two CASes on the
/// global head, which every cache exchanging a batch also moves. A thread that finds the
/// cache borrowed does not wait: it goes to the global stack, uncached.
///
/// # Protocol
///
/// - **X1 (borrow)**: peek at `busy` (Relaxed) and go uncached if it is set; else CAS it
///   `false → true` with Acquire (failure: uncached). The borrow is the right to use the
///   cache. A swap would do as well (an RMW reads the last value before its own write,
///   so a losing swap's `true` cannot land after the holder's X3), but loom 0.7 models an
///   RMW racing a plain store wrongly (tokio-rs/loom#254 and #389, fix not released) and
///   failed the model with a swap; a CAS whose failure writes nothing is modelled right.
/// - **X2 (use)**: allocate from or free into the cache, as its one user.
/// - **X3 (give back)**: store `false` with Release.
///
/// | step | access | ordering | partner |
/// |------|--------|----------|---------|
/// | X1 | peek at `busy` | Relaxed | only avoids an RMW on a borrowed cache |
/// | X1 | CAS `busy` `false → true` | Acquire (failure: Relaxed) | X3 of the previous borrower: its changes to the chains (and the slot links it wrote, C1) happen before ours |
/// | X3 | store `false` | Release | X1 of the next borrower |
///
/// Both orderings are written through [`crate::shim::mutation`]
/// (`Site::SharedCacheBorrowAcquire`, `Site::SharedCacheGiveBackRelease`);
/// `loom-tests/pool.rs` weakens each and shows a model fail.
///
/// The cached slots count against exhaustion as another [`Cache`]'s do (module docs):
/// up to `2 * BATCH` free slots that an allocation elsewhere does not see. Dropping the
/// `SharedCache` flushes them to the global stack.
///
/// ```
/// use filch::pool::{Pool, SharedCache};
/// let pool = Pool::<u64>::with_capacity(64).unwrap();
/// let shared = SharedCache::new(pool.cache());
/// let id = shared.try_alloc(&pool).unwrap();
/// // SAFETY: `id` came from this pool, is live, and is freed once; its slot was never
/// // accessed.
/// unsafe { shared.free(&pool, id) };
/// assert_eq!(shared.try_alloc(&pool), Some(id)); // the freed slot, from the cache
/// ```
pub struct SharedCache<'p, T> {
    busy: CachePadded<AtomicBool>,
    /// `None` until [`SharedCache::install`] (or made by [`SharedCache::new`]).
    cache: UnsafeCell<Option<Cache<'p, T>>>,
}

// SAFETY: the cache is used by one thread at a time, the borrower (X1 to X3); `Cache` is
// `Send` for `T: Send`, which is what moving its use between threads needs.
unsafe impl<T: Send> Sync for SharedCache<'_, T> {}

impl<T> fmt::Debug for SharedCache<'_, T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedCache").field("busy", &self.busy.load(Relaxed)).finish()
    }
}

impl<'p, T> SharedCache<'p, T> {
    /// Shares `cache`.
    pub fn new(cache: Cache<'p, T>) -> Self {
        SharedCache { busy: CachePadded(AtomicBool::new(false)), cache: UnsafeCell::new(Some(cache)) }
    }

    /// A shared cache with no cache in it yet: every call goes uncached until
    /// [`SharedCache::install`] (for a cache of a pool that lives next to it, and so can only
    /// be made once both are in place).
    ///
    /// ```
    /// use filch::pool::{Pool, SharedCache};
    /// let pool = Pool::<u64>::with_capacity(64).unwrap();
    /// let shared = SharedCache::empty();
    /// let id = shared.try_alloc(&pool).unwrap(); // uncached: there is no cache yet
    /// assert!(shared.install(pool.cache()).is_ok());
    /// assert!(shared.install(pool.cache()).is_err(), "one cache only");
    /// // SAFETY: `id` came from this pool, is live, and is freed once; its slot was never
    /// // accessed.
    /// unsafe { shared.free(&pool, id) };
    /// assert_eq!(shared.try_alloc(&pool), Some(id)); // now from the cache
    /// ```
    pub fn empty() -> Self {
        SharedCache { busy: CachePadded(AtomicBool::new(false)), cache: UnsafeCell::new(None) }
    }

    /// Puts `cache` in, unless there is one already or another thread is using it; `Err`
    /// gives it back.
    pub fn install(&self, cache: Cache<'p, T>) -> Result<(), Cache<'p, T>> {
        let mut cache = Some(cache);
        self.borrow(|c| {
            if c.is_none() {
                *c = cache.take();
            }
        });
        match cache {
            None => Ok(()),
            Some(c) => Err(c),
        }
    }

    /// Runs `f` on the cache if there is one and no other thread is using it (X1–X3);
    /// `None` otherwise.
    #[inline]
    fn borrow_cache<R>(&self, f: impl FnOnce(&mut Cache<'p, T>) -> R) -> Option<R> {
        self.borrow(|c| c.as_mut().map(f)).flatten()
    }

    /// Runs `f` on the cache's place if no other thread is using it (X1–X3); `None` if one is.
    #[inline]
    fn borrow<R>(&self, f: impl FnOnce(&mut Option<Cache<'p, T>>) -> R) -> Option<R> {
        // X1. The peek is Relaxed: it only saves an RMW on a borrowed cache. The CAS is
        // Acquire: it pairs with the previous borrower's X3 Release store, so the cache's
        // chains and the slot links that borrower wrote are visible to us. Its failure is
        // Relaxed: we then touch nothing of the cache.
        if self.busy.load(Relaxed)
            || self
                .busy
                .compare_exchange(
                    false,
                    true,
                    mutation::ord(Site::SharedCacheBorrowAcquire, Acquire),
                    Relaxed,
                )
                .is_err()
        {
            return None;
        }
        // X2. SAFETY: X1 made us the one user until X3; the previous user's X3 happened
        // before our X1.
        let r = self.cache.with_mut(|c| f(unsafe { &mut *c }));
        // X3, Release: pairs with the next borrower's X1 Acquire CAS. (`f` is one of this
        // type's own closures: a cache operation that can panic only by a debug assertion.
        // Were one to fire, the cache would stay borrowed for good and every later call
        // would go uncached, which is safe.)
        self.busy.store(false, mutation::ord(Site::SharedCacheGiveBackRelease, Release));
        Some(r)
    }

    /// Returns the cached slots to the global stack, unless another thread is using the
    /// cache (then nothing happens).
    ///
    /// ```
    /// use filch::pool::{Pool, SharedCache};
    /// let pool = Pool::<u64>::with_capacity(4).unwrap();
    /// let shared = SharedCache::new(pool.cache());
    /// assert!(shared.try_alloc(&pool).is_some()); // the cache took the whole batch of 4
    /// assert_eq!(pool.try_alloc(), None); // it holds the other 3
    /// shared.flush();
    /// assert_eq!(std::iter::from_fn(|| pool.try_alloc()).count(), 3);
    /// ```
    pub fn flush(&self) {
        self.borrow_cache(Cache::flush);
    }

    /// Allocates a slot of `pool`: from the cache, or from the global stack when another
    /// thread is using the cache. `None` when the pool is exhausted (module docs).
    ///
    /// `pool` must be the pool of the cache this was made from (checked in debug builds).
    #[inline]
    pub fn try_alloc(&self, pool: &Pool<T>) -> Option<SlotId> {
        match self.borrow_cache(|c| {
            debug_assert!(std::ptr::eq(c.pool(), pool));
            c.try_alloc()
        }) {
            Some(id) => id,
            None => pool.try_alloc(),
        }
    }

    /// Frees a slot of `pool`: into the cache, or to the global stack when another thread
    /// is using the cache.
    ///
    /// # Safety
    /// As [`Pool::free`]; `pool` is the pool of the cache this was made from.
    #[inline]
    pub unsafe fn free(&self, pool: &Pool<T>, id: SlotId) {
        if self
            .borrow_cache(|c| {
                debug_assert!(std::ptr::eq(c.pool(), pool));
                // SAFETY: forwarded from the caller; the cache takes from `pool`.
                unsafe { c.free(id) }
            })
            .is_none()
        {
            // SAFETY: forwarded from the caller; the closure that would have freed `id`
            // did not run (`borrow` returns `None` only then), so this is its one free.
            unsafe { pool.free(id) }
        }
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::collections::HashSet;

    fn drain_uncached<T>(pool: &Pool<T>) -> Vec<SlotId> {
        std::iter::from_fn(|| pool.try_alloc()).take(pool.capacity() + 1).collect()
    }

    fn assert_all_distinct(ids: &[SlotId], capacity: usize) {
        let set: HashSet<_> = ids.iter().copied().collect();
        assert_eq!(set.len(), ids.len(), "a slot was handed out twice");
        assert!(ids.iter().all(|id| id.index() < capacity));
    }

    #[test]
    fn head_word_packs_tag_and_index() {
        let h = Head::new(7, 42);
        assert_eq!((h.tag(), h.index()), (7, 42));
        assert!(Head::new(0, NIL).is_empty());
        let n = Head::new(u32::MAX, 3).successor(9);
        assert_eq!((n.tag(), n.index()), (0, 9), "the tag wraps");
    }

    #[test]
    fn exhaustion_returns_none() {
        for cap in [1, 2, 4, BATCH, 4 * BATCH, 1024] {
            let pool = Pool::<u64>::with_capacity(cap).unwrap();
            let ids = drain_uncached(&pool);
            assert_eq!(ids.len(), cap);
            assert_all_distinct(&ids, cap);
            assert_eq!(pool.try_alloc(), None);
            let mut cache = pool.cache();
            assert_eq!(cache.try_alloc(), None);
            for id in ids {
                // SAFETY: from this pool, live, freed once.
                unsafe { cache.free(id) };
            }
            let again: Vec<_> = std::iter::from_fn(|| cache.try_alloc()).take(cap + 1).collect();
            assert_eq!(again.len(), cap);
            assert_all_distinct(&again, cap);
        }
    }

    #[test]
    fn capacity_errors_are_errors() {
        for bad in [0, 3, 100, MAX_CAPACITY * 2] {
            let e = Pool::<u64>::with_capacity(bad).unwrap_err();
            assert_eq!(e, CapacityError::Invalid(bad));
            assert!(e.to_string().starts_with(&format!("pool capacity {bad} is invalid")));
        }
        // Slots too big for the address space: an error, not a panic or an abort.
        let e = Pool::<[u8; 1 << 40]>::with_capacity(MAX_CAPACITY).unwrap_err();
        assert_eq!(e, CapacityError::OutOfMemory(MAX_CAPACITY));
        assert!(e.to_string().contains("could not be allocated"));
        assert_eq!(Pool::<u64>::with_capacity(1).unwrap().capacity(), 1);
    }

    #[test]
    fn cross_thread_free_returns_slots() {
        let pool = Pool::<u64>::with_capacity(256).unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<SlotId>();
        std::thread::scope(|s| {
            s.spawn(|| {
                let mut cache = pool.cache();
                for round in 0..20u64 {
                    while let Some(id) = cache.try_alloc() {
                        // SAFETY: `id` is live and ours until we send it.
                        unsafe { pool.slot_ptr(id).as_ptr().write(MaybeUninit::new(round)) };
                        tx.send(id).unwrap();
                    }
                }
                drop(tx);
            });
            s.spawn(|| {
                let mut cache = pool.cache();
                for id in rx {
                    // SAFETY: received through the channel, which orders the sender's
                    // write before this read; the id is live and now ours.
                    let v = unsafe { pool.slot_ptr(id).as_ref().assume_init() };
                    assert!(v < 20);
                    // SAFETY: live, freed once, by its current holder.
                    unsafe { cache.free(id) };
                }
            });
        });
        let ids = drain_uncached(&pool);
        assert_eq!(ids.len(), 256, "every slot freed on the other thread came back");
        assert_all_distinct(&ids, 256);
    }

    #[test]
    fn cache_drop_returns_slots() {
        let pool = Pool::<u64>::with_capacity(4 * BATCH).unwrap();
        {
            let mut a = pool.cache();
            let mut b = pool.cache();
            let x = a.try_alloc().unwrap();
            let y = b.try_alloc().unwrap();
            // SAFETY: each from this pool, live, freed once (crosswise).
            unsafe {
                a.free(y);
                b.free(x);
            }
            assert_eq!(a.cached() + b.cached(), 2 * BATCH);
            // The caches hold two batches: the global stack has only the rest.
            assert_eq!(drain_uncached(&pool).len(), 2 * BATCH);
        }
        // `drain_uncached` leaked its slots on purpose; what the caches held came back.
        let rest = drain_uncached(&pool);
        assert_eq!(rest.len(), 2 * BATCH);
    }

    #[test]
    fn spill_keeps_at_most_two_batches() {
        let cap = 8 * BATCH;
        let pool = Pool::<u64>::with_capacity(cap).unwrap();
        let ids = drain_uncached(&pool);
        let mut cache = pool.cache();
        for (n, &id) in ids.iter().enumerate() {
            // SAFETY: from this pool, live, freed once.
            unsafe { cache.free(id) };
            assert!(cache.cached() <= 2 * BATCH);
            let expect = if n < 2 * BATCH { n + 1 } else { BATCH + 1 + (n - 2 * BATCH) % BATCH };
            assert_eq!(cache.cached(), expect);
        }
        drop(cache);
        let again = drain_uncached(&pool);
        assert_eq!(again.len(), cap);
        assert_all_distinct(&again, cap);
    }

    #[test]
    fn slot_word_round_trips() {
        let pool = Pool::<u8>::with_capacity(8).unwrap();
        let id = pool.try_alloc().unwrap();
        // SAFETY: the word came from `into_word` and is converted back once.
        assert_eq!(unsafe { SlotId::from_word(id.into_word()) }, id);
        assert_eq!(SlotId::from_raw(id.raw()), id);
    }
}
