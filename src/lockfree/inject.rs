//! The injection queue: tasks spawned from outside the workers, and a full local deque's
//! overflow.
//!
//! An [`Injector`] is an intrusive, unbounded, allocation-free FIFO of nodes that live
//! elsewhere (task headers in the pool): each node carries its own link, reached through
//! the [`Linked`] trait. Any number of threads push; any number of threads may try to
//! consume, one at a time, and a consumer that finds another one at work returns
//! [`Pop::Busy`] at once: it never waits.
//!
//! The algorithm is the lock-less list of the Linux kernel (`include/linux/llist.h`):
//! producers push onto a Treiber stack (Treiber, "Systems Programming: Coping with
//! Parallelism", IBM RJ 5118, 1986) with one CAS; the consumer takes the *whole* stack with
//! one swap (`llist_del_all`) and reverses it (`llist_reverse_order`) into FIFO order.
//! filch's deviations:
//!
//! - **Many consumers, one at a time.** A try-claim flag serializes consumers; the claim
//!   holder owns a `pending` list (the last stack it took, reversed) and keeps what it did
//!   not hand out there for the next holder. Everything in `pending` is older than
//!   everything on the stack, so the order is FIFO overall (per producer, and across
//!   producers in the order their pushes hit the stack).
//! - **Chains.** [`Injector::push_chain`] publishes a whole chain with one successful CAS
//!   (a worker moves half of its full deque this way). The chain comes linked oldest
//!   first; the stack links newest first, so `push_chain` first reverses the chain in
//!   place — O(length) writes to nodes that are still the caller's alone.
//! - **An emptiness check for the sleep protocol** ([`Injector::is_empty`]) that cannot
//!   miss a node in transit between the stack and `pending` (the `REFILLING` mark, C3).
//!
//! # Protocol
//!
//! - **I1 (push)**: store the expected head into the node's link; CAS the head from it to
//!   the node, with Release; on failure retry with the head the CAS returned. The first
//!   attempt expects an empty stack instead of loading the head first (see *Checking with
//!   loom*).
//!   `push_chain` is I1 with the (reversed) chain's newest node as the new head and its
//!   oldest node's link pointing at the old head.
//! - **C1 (claim)**: peek at the flag (Relaxed) and give up with `Busy` if it is set; else
//!   CAS it `false → true` with Acquire (failure: `Busy`). The claim is the right to
//!   read and write `pending`.
//! - **C2 (take)**: hand out nodes from the head of `pending`, reading each node's link
//!   *before* handing the node to `f` (which may reuse it).
//! - **C3 (refill)**: only when `pending` is empty and more nodes are wanted: (C3a) store
//!   `REFILLING` into `pending_len`, (C3b) swap the stack to null with AcqRel, and reverse
//!   what it returned into `pending` (nothing: the queue is empty). No Relaxed peek at the
//!   stack first: callers check [`Injector::is_empty`] before popping anyway, and the peek
//!   would hide races from loom (see *Checking with loom*).
//! - **C4 (release)**: store `pending` and its length, then clear the flag with Release.
//!   C4 runs from a drop guard, so a panicking `f` still releases the claim with `pending`
//!   intact (the node being handed out when `f` panicked counts as handed out).
//! - **E1/E2 (`is_empty`)**: load the stack head (Acquire); if non-null, not empty. Else
//!   load `pending_len` (Relaxed): empty iff it is 0.
//!
//! # Why there is no ABA
//!
//! Consumers never pop single nodes off the stack: the only write a consumer makes to
//! `stack` is C3b's unconditional swap to null. A producer's CAS compares the head with the
//! value it linked its node to; if the head went A → (swapped away) → A again in between,
//! the CAS succeeds and the node links to A, which *is* the current head — the same outcome
//! as if nothing had happened in between. The classic Treiber ABA needs a pop that reads
//! `A.next` and then CASes `A → A.next`; nobody does that here.
//!
//! # Who touches what
//!
//! | field | written by | read by | right granted by |
//! |-------|-----------|---------|------------------|
//! | `stack` | producers (I1 CAS), the claim holder (C3b swap) | producers, the claim holder, `is_empty` | atomic |
//! | `claimed` | a consumer (C1 CAS), its holder (C4) | consumers | atomic |
//! | `pending` (`UnsafeCell`) | the claim holder only | the claim holder only | the claim: C1's Acquire and C4's Release hand it from holder to holder |
//! | `pending_len` | the claim holder (C3a, C4) | the claim holder, `is_empty` (racily) | atomic |
//! | a node's link | its pusher (before I1's CAS), the claim holder (reversal, C3b) | producers never; the claim holder | ownership of the node: the caller's until I1, the injector's until handed out |
//!
//! # Orderings
//!
//! | step | access | ordering | partner |
//! |------|--------|----------|---------|
//! | I1 | push: store the node's link | Relaxed | published by I1's CAS |
//! | I1 | push / push_chain: CAS head | Release (failure: Relaxed) | C3b: the node (its payload and link) is visible to the consumer. Later pushes' CASes are RMWs, so they extend this release sequence. A failure's value is only linked and compared, never dereferenced |
//! | C1 | claim: peek | Relaxed | only avoids an RMW on a held flag |
//! | C1 | claim: CAS `false → true` | Acquire (failure: Relaxed) | C4 of the previous holder: its `pending`, `pending_len` and link writes happen before ours |
//! | C2 | take: load a node's link | Relaxed | written by the holder that reversed it into `pending` (us, or a predecessor through C1) |
//! | C3a | store `REFILLING` | Relaxed | published by C3b's Release half |
//! | C3b | swap the stack to null | AcqRel | Acquire: I1's CAS (the nodes). Release: E1 — an `is_empty` that reads this null sees C3a's mark or a later `pending_len` |
//! | C3b | reversal: load/store links | Relaxed | loads: published by I1 (through C3b's Acquire); stores: the nodes are the holder's |
//! | C4 | store `pending`, `pending_len` | (cell), Relaxed | published to the next holder by C4's Release; `is_empty` reads `pending_len` racily (see below) |
//! | C4 | clear the flag | Release | C1 of the next holder |
//! | E1 | `is_empty`: load the stack head | Acquire | C3b's Release half |
//! | E2 | `is_empty`: load `pending_len` | Relaxed | ordered after E1 by E1's Acquire |
//!
//! # Checking with loom
//!
//! Every non-Relaxed ordering above, and the `REFILLING` mark, is written through
//! [`crate::shim::mutation`] (`Site::Inject*`); `loom-tests/inject.rs` weakens each one
//! and shows a model fail.
//!
//! Two details of the code exist partly for loom. loom's DPOR remembers only the *last*
//! access to each atomic, so when one thread only loads a word (a consumer finding the
//! stack empty) and another loads it and then CASes it, the CAS is compared with its own
//! thread's load and the interleaving "CAS first" is never explored. Hence I1 starts with
//! a CAS that guesses an empty stack (no load), and C3 swaps without a Relaxed peek. Both
//! are also cheaper or free in production: a push onto an empty queue is one CAS, a push
//! onto a busy one moves the cache line once (failed CAS, then a CAS on the now-owned line)
//! instead of twice (load, then CAS), and a refill only runs after `is_empty` said "not
//! empty". C1's Relaxed peek at the flag is kept: its only load-only outcome is `Busy`,
//! which loom reaches through a failed claim CAS with the same effect (none).
//!
//! # Guarantees
//!
//! - **Nothing lost** ([`Injector::pop_batch`] returning [`Pop::Empty`]): every node whose
//!   push happened before the call has been handed out. Sketch: C1 synchronizes with every
//!   earlier holder's C4, so `pending` is up to date, and it is empty. C3b, an RMW, reads
//!   the latest value of `stack`, which follows the node's push; if it is null, some
//!   earlier swap (by an earlier holder: only holders swap) took the node into a `pending`
//!   that has since been emptied by handing out.
//! - **`is_empty`**: if a node's push is ordered before the call — it happens before it,
//!   or, as in the sleep protocol, the pusher's `fence(SeqCst)` precedes the caller's
//!   `fence(SeqCst)` in their total order — then `is_empty` returns `false` unless a
//!   completed `pop_batch` has handed that node out. Sketch: E1 reads the push or a later
//!   value of `stack`. Non-null: `false`. Null: written by a swap C3b (of holder *j*) at or
//!   after the one that took the node into `pending`; E1's Acquire synchronizes with it, so
//!   E2 reads holder *j*'s `REFILLING` (→ `false`) or a later `pending_len`. Every later
//!   value is a `REFILLING` mark or a holder's count at C4, and a count of 0 means that
//!   holder's `pending` was empty, i.e. the node was handed out. `false` is not precise: it
//!   may also mean a refill is in progress or a count is stale, so a caller that acts on
//!   "not empty" simply tries to pop.
//! - **Dropping an `Injector` does nothing to the nodes** still in it: they live
//!   elsewhere, and the scheduler drains the queue before dropping it.

use std::fmt;
use std::ptr::{self, NonNull};

use crate::shim::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::{CachePadded, UnsafeCell};

/// A node that can be queued in an [`Injector`]: it holds the queue's link.
///
/// # Safety
///
/// [`Linked::next`] must return the same field of `self` every time. While the node is in
/// an injector (from `push` until a `pop_batch` hands it out), nothing but that injector
/// may write the field.
pub unsafe trait Linked: Sized {
    /// The node's link field.
    fn next(&self) -> &AtomicPtr<Self>;
}

/// The result of [`Injector::pop_batch`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use]
pub enum Pop {
    /// This many nodes were handed out (at least one, unless `max` was 0).
    Taken(usize),
    /// Nothing was queued: every node whose push happened before the call was handed out.
    Empty,
    /// Another consumer held the claim; the queue may hold nodes. Nothing was waited for.
    Busy,
}

/// `pending_len` while a holder moves a swapped-out stack into `pending` (C3a).
const REFILLING: usize = usize::MAX;

/// The consumer side: everything the claim holder touches, on one cache line.
struct Consumer<N> {
    /// The try-claim flag (C1, C4).
    claimed: AtomicBool,
    /// Head of the FIFO list of nodes taken off the stack and not yet handed out (oldest
    /// first, linked through `next`). Read and written only by the claim holder.
    pending: UnsafeCell<*mut N>,
    /// Length of `pending`, or `REFILLING`. Written only by the claim holder; read racily by
    /// `is_empty`.
    pending_len: AtomicUsize,
}

/// An intrusive, unbounded, allocation-free multi-producer queue of [`Linked`] nodes,
/// consumed by one claim holder at a time (module docs).
///
/// `pub` (in a crate-private module) only so that `filch::sync` can re-export it, hidden,
/// for the loom suite in `loom-tests/`, a separate crate; it is not filch's API.
pub struct Injector<N: Linked> {
    /// Top of the Treiber stack (newest node, linked towards older ones), or null.
    stack: CachePadded<AtomicPtr<N>>,
    consumer: CachePadded<Consumer<N>>,
}

// SAFETY: the injector holds pointers to nodes whose ownership it has taken over (`push`'s
// contract); moving it to another thread moves the right to hand them out there, which
// needs `N: Send`. It owns nothing else that is tied to a thread.
unsafe impl<N: Linked + Send> Send for Injector<N> {}
// SAFETY: through `&Injector`, producers only CAS `stack` and write links of nodes they
// still own; `pending` is touched only by the claim holder, whose claim is handed on with
// Acquire/Release (C1/C4); `is_empty` only loads atomics. Nodes pushed on one thread are
// handed out on another: `N: Send`.
unsafe impl<N: Linked + Send> Sync for Injector<N> {}

impl<N: Linked> Default for Injector<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<N: Linked> Injector<N> {
    /// An empty injector.
    pub fn new() -> Self {
        Injector {
            stack: CachePadded(AtomicPtr::new(ptr::null_mut())),
            consumer: CachePadded(Consumer {
                claimed: AtomicBool::new(false),
                pending: UnsafeCell::new(ptr::null_mut()),
                pending_len: AtomicUsize::new(0),
            }),
        }
    }

    /// Pushes one node (I1). Lock-free: a CAS loop that retries only when another push or a
    /// consumer's swap changed the head.
    ///
    /// # Safety
    ///
    /// `node` points to a valid `N` that the caller owns and gives up: it is in no
    /// injector, nothing else writes its link from now on, and it stays valid (not moved,
    /// not freed) until a `pop_batch` hands it out.
    #[inline]
    pub unsafe fn push(&self, node: NonNull<N>) {
        // SAFETY: a one-node segment is a chain from `node` to itself; the caller's contract
        // is `publish`'s.
        unsafe { self.publish(node, node, Site::InjectPushRelease) }
    }

    /// Pushes the chain `first ..= last`, linked through [`Linked::next`] from the oldest
    /// (`first`) to the newest (`last`), with one successful CAS. The nodes come out in
    /// chain order, after everything pushed before and before everything pushed after.
    /// `last`'s link is ignored; every link in the chain is rewritten.
    ///
    /// # Safety
    ///
    /// Every node of the chain satisfies [`Injector::push`]'s contract, and following the
    /// links from `first` reaches `last` (a chain that ends in null first panics; a cycle
    /// that misses `last` never returns).
    pub unsafe fn push_chain(&self, first: NonNull<N>, last: NonNull<N>) {
        // Reverse first → … → last into last → … → first (stack order: newest first).
        // `first`'s link is set by `publish`.
        let mut older: *mut N = ptr::null_mut();
        let mut node = first;
        loop {
            // SAFETY: `node` is a node of the caller's chain: valid, and still the caller's.
            let link = unsafe { node.as_ref() }.next();
            // Relaxed: the caller's own link, written before the call on this thread or
            // handed to us with the node.
            let newer = if node == last { None } else { Some(link.load(Relaxed)) };
            // Relaxed: the chain is still private; I1's Release CAS publishes it.
            link.store(older, Relaxed);
            match newer {
                None => break,
                Some(p) => {
                    older = node.as_ptr();
                    node = NonNull::new(p).expect("filch::inject: push_chain's chain ends before `last`");
                }
            }
        }
        // SAFETY: `last → … → first` is now linked towards older nodes, all the caller's.
        unsafe { self.publish(last, first, Site::InjectChainRelease) }
    }

    /// I1: links `oldest` to the current head and makes `newest` the head.
    ///
    /// # Safety
    ///
    /// `newest → … → oldest` is a segment linked towards older nodes, every node of which
    /// meets [`Injector::push`]'s contract.
    #[inline]
    unsafe fn publish(&self, newest: NonNull<N>, oldest: NonNull<N>, site: Site) {
        // SAFETY: `oldest` is valid and the caller's (contract).
        let link = unsafe { oldest.as_ref() }.next();
        // I1: the first attempt expects an empty stack rather than loading the head: a failed
        // CAS returns the head anyway (module docs, "Checking with loom").
        let mut head = ptr::null_mut();
        loop {
            // I1, Relaxed: published by the Release CAS below.
            link.store(head, Relaxed);
            // I1, Release: publishes the segment (links, and whatever the caller wrote into
            // the nodes); pairs with the Acquire half of C3b's swap. Failure Relaxed: the
            // head it returns is only linked and compared, as above.
            match self.stack.compare_exchange_weak(
                head,
                newest.as_ptr(),
                // I1's Release, partner C3b (comment above).
                mutation::ord(site, Release),
                Relaxed,
            ) {
                Ok(_) => return,
                Err(current) => head = current,
            }
        }
    }

    /// Hands up to `max` nodes to `f`, oldest first (C1–C4).
    ///
    /// Returns [`Pop::Taken`] with the count, [`Pop::Empty`] if nothing was queued (no node
    /// whose push happened before the call remains), or [`Pop::Busy`] at once if another
    /// consumer holds the claim. `max == 0` returns `Taken(0)` without claiming.
    ///
    /// `f` runs while this consumer holds the claim, so it should be short (the scheduler
    /// pushes into a deque). If it panics, the claim is released with the rest of the queue
    /// intact; the node it was given counts as handed out.
    pub fn pop_batch(&self, max: usize, mut f: impl FnMut(NonNull<N>)) -> Pop {
        if max == 0 {
            return Pop::Taken(0);
        }
        let Some(mut claim) = self.try_claim() else {
            return Pop::Busy;
        };
        let mut taken = 0;
        while taken < max {
            let Some(node) = claim.take() else { break };
            taken += 1;
            f(node);
        }
        // `claim` drops here: C4.
        if taken == 0 {
            Pop::Empty
        } else {
            Pop::Taken(taken)
        }
    }

    /// The oldest node, or `None` if the queue was empty *or another consumer held the
    /// claim*: `pop_batch(1, ..)` with the `Busy`/`Empty` distinction dropped.
    pub fn pop(&self) -> Option<NonNull<N>> {
        let mut got = None;
        let _ = self.pop_batch(1, |n| got = Some(n));
        got
    }

    /// Whether the queue looked empty (E1/E2), for the sleep protocol's re-check.
    ///
    /// `true` only if every node whose push is ordered before this call — by
    /// happens-before, or by a `fence(SeqCst)` after the push preceding a `fence(SeqCst)`
    /// before this call — has been handed out by a completed [`Injector::pop_batch`].
    /// `false` may be stale or conservative (a refill in progress): act on it by popping.
    /// Two loads, no writes.
    #[inline]
    pub fn is_empty(&self) -> bool {
        // E1, Acquire: pairs with the Release half of C3b: if this reads the null a holder's
        // swap left, that holder's C3a mark (or a later length) is visible to E2.
        if !self.stack.load(mutation::ord(Site::InjectEmptyAcquire, Acquire)).is_null() {
            return false;
        }
        // E2, Relaxed: ordered after E1 by E1's Acquire; any value it may read is argued in
        // the module docs (Guarantees).
        self.consumer.pending_len.load(Relaxed) == 0
    }

    /// C1: the claim, if nobody holds it.
    fn try_claim(&self) -> Option<Claim<'_, N>> {
        let c = &*self.consumer;
        // C1, Relaxed: a peek, so that a consumer facing a held claim leaves without an RMW.
        if c.claimed.load(Relaxed) {
            return None;
        }
        // C1, Acquire: pairs with C4's Release store of the previous holder: its `pending`,
        // `pending_len` and link writes happen before ours. Failure Relaxed: we touch nothing.
        if c.claimed
            .compare_exchange(false, true, mutation::ord(Site::InjectClaimAcquire, Acquire), Relaxed)
            .is_err()
        {
            return None;
        }
        // SAFETY: we hold the claim, the only right to access `pending` (C1 above).
        let head = c.pending.with(|p| unsafe { *p });
        // Relaxed: written only by claim holders; the last one's value is ours through C1.
        let len = c.pending_len.load(Relaxed);
        debug_assert_ne!(len, REFILLING, "a claim was released in the middle of a refill");
        Some(Claim { injector: self, head, len })
    }
}

impl<N: Linked> fmt::Debug for Injector<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Injector").field("is_empty", &self.is_empty()).finish()
    }
}

/// A held claim: the consumer's private copy of `pending` and its length, written back and
/// released on drop (C4) — including when `f` unwinds.
struct Claim<'a, N: Linked> {
    injector: &'a Injector<N>,
    head: *mut N,
    len: usize,
}

/// The ordering of C3b: AcqRel (partners: I1 for the Acquire half, E1 for the Release
/// half), each half removable by its mutant.
#[inline(always)]
fn swap_ordering() -> Ordering {
    // Partners in the doc comment above.
    mutation::acq_rel(Site::InjectSwapAcquire, Site::InjectSwapRelease)
}

impl<N: Linked> Claim<'_, N> {
    /// C2 (after C3 if `pending` ran out): the oldest node, removed from `pending`.
    #[inline]
    fn take(&mut self) -> Option<NonNull<N>> {
        if self.head.is_null() && !self.refill() {
            return None;
        }
        let node = NonNull::new(self.head)?;
        // SAFETY: nodes in `pending` are valid until handed out (`push`'s contract), and we
        // hold the claim that owns them.
        let link = unsafe { node.as_ref() }.next();
        // C2, Relaxed: written by the holder that reversed this node into `pending` (us, or a
        // predecessor whose writes C1 made visible). Read before `f` may reuse the node.
        self.head = link.load(Relaxed);
        self.len -= 1;
        Some(node)
    }

    /// C3: moves the whole stack into the (empty) `pending`, oldest first. Returns whether
    /// it got anything.
    fn refill(&mut self) -> bool {
        debug_assert!(self.head.is_null() && self.len == 0);
        let inj = self.injector;
        if mutation::keep(Site::InjectRefillMark) {
            // C3a, Relaxed: published by C3b's Release half, for `is_empty` (E2): the nodes
            // are about to be neither on the stack nor counted in `pending_len`.
            inj.consumer.pending_len.store(REFILLING, Relaxed);
        }
        // C3b, AcqRel. Acquire: pairs with I1's Release CAS (the nodes' links and contents).
        // Release: publishes C3a; pairs with E1's Acquire.
        let mut older = inj.stack.swap(ptr::null_mut(), swap_ordering());
        // Reverse newest → … → oldest into `pending`, oldest first.
        let mut fifo: *mut N = ptr::null_mut();
        let mut n = 0;
        while let Some(node) = NonNull::new(older) {
            // SAFETY: the swap made every node of the taken stack ours (the claim's); pushers
            // kept them valid (`push`'s contract).
            let link = unsafe { node.as_ref() }.next();
            // Relaxed: written by the node's pusher before its Release CAS (I1), which C3b's
            // Acquire synchronizes with (later pushes' CASes continue its release sequence).
            older = link.load(Relaxed);
            // Relaxed: the node is the claim holder's; C4 publishes it to the next holder.
            link.store(fifo, Relaxed);
            fifo = node.as_ptr();
            n += 1;
        }
        self.head = fifo;
        self.len = n;
        n > 0
    }
}

impl<N: Linked> Drop for Claim<'_, N> {
    /// C4.
    fn drop(&mut self) {
        let c = &*self.injector.consumer;
        let head = self.head;
        // SAFETY: we still hold the claim, the only right to access `pending`.
        c.pending.with_mut(|p| unsafe { *p = head });
        // C4, Relaxed: published to the next holder by the Release store below; `is_empty`
        // reads it racily (module docs, Guarantees).
        c.pending_len.store(self.len, Relaxed);
        // C4, Release: pairs with the next holder's Acquire CAS (C1), handing over `pending`.
        c.claimed.store(false, mutation::ord(Site::InjectClaimRelease, Release));
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use crate::shim::atomic::AtomicBool as StdAtomicBool;
    use std::sync::{Arc, Barrier};

    struct Node {
        next: AtomicPtr<Node>,
        id: usize,
    }

    // SAFETY: `next` always returns the `next` field; the tests write it only while a node is
    // outside the injector.
    unsafe impl Linked for Node {
        fn next(&self) -> &AtomicPtr<Node> {
            &self.next
        }
    }

    fn arena(n: usize) -> Vec<Node> {
        (0..n).map(|id| Node { next: AtomicPtr::new(ptr::null_mut()), id }).collect()
    }

    fn ptr_of(nodes: &[Node], i: usize) -> NonNull<Node> {
        NonNull::from(&nodes[i])
    }

    fn id(p: NonNull<Node>) -> usize {
        // SAFETY: every pointer in these tests points into a live arena.
        unsafe { p.as_ref() }.id
    }

    /// Links `ids` (oldest first) into a chain and returns its ends.
    fn chain(nodes: &[Node], ids: &[usize]) -> (NonNull<Node>, NonNull<Node>) {
        for w in ids.windows(2) {
            nodes[w[0]].next.store(ptr_of(nodes, w[1]).as_ptr(), Relaxed);
        }
        (ptr_of(nodes, ids[0]), ptr_of(nodes, *ids.last().unwrap()))
    }

    fn drain(q: &Injector<Node>) -> Vec<usize> {
        std::iter::from_fn(|| q.pop().map(id)).collect()
    }

    #[test]
    fn fifo_from_one_producer() {
        let nodes = arena(10);
        let q = Injector::new();
        assert!(q.is_empty());
        assert_eq!(q.pop_batch(4, |_| unreachable!()), Pop::Empty);
        for i in 0..5 {
            // SAFETY: each node is pushed once and outlives the queue's use of it.
            unsafe { q.push(ptr_of(&nodes, i)) };
        }
        assert!(!q.is_empty());
        assert_eq!(q.pop().map(id), Some(0));
        // 1..5 are in `pending` now; newer pushes go behind them.
        for i in 5..10 {
            // SAFETY: as above.
            unsafe { q.push(ptr_of(&nodes, i)) };
        }
        assert_eq!(drain(&q), (1..10).collect::<Vec<_>>());
        assert!(q.is_empty());
        assert_eq!(q.pop_batch(1, |_| unreachable!()), Pop::Empty);
    }

    #[test]
    fn push_chain_keeps_chain_order() {
        let nodes = arena(8);
        let q = Injector::new();
        // SAFETY: every node is pushed once, through exactly one of these calls.
        unsafe {
            q.push(ptr_of(&nodes, 0));
            let (f, l) = chain(&nodes, &[1, 2, 3, 4]);
            q.push_chain(f, l);
            q.push(ptr_of(&nodes, 5));
            let (f, l) = chain(&nodes, &[6]);
            q.push_chain(f, l);
            let (f, l) = chain(&nodes, &[7]);
            q.push_chain(f, l);
        }
        assert_eq!(drain(&q), (0..8).collect::<Vec<_>>());
    }

    #[test]
    fn pop_batch_respects_max() {
        let nodes = arena(10);
        let q = Injector::new();
        let (f, l) = chain(&nodes, &(0..10).collect::<Vec<_>>());
        // SAFETY: the chain's nodes are pushed once.
        unsafe { q.push_chain(f, l) };
        let mut got = Vec::new();
        assert_eq!(q.pop_batch(0, |_| unreachable!()), Pop::Taken(0));
        assert_eq!(q.pop_batch(3, |n| got.push(id(n))), Pop::Taken(3));
        assert_eq!(got, [0, 1, 2]);
        assert!(!q.is_empty(), "the rest waits in `pending`");
        assert_eq!(q.pop_batch(100, |n| got.push(id(n))), Pop::Taken(7));
        assert_eq!(got, (0..10).collect::<Vec<_>>());
        assert_eq!(q.pop_batch(100, |_| unreachable!()), Pop::Empty);
    }

    #[test]
    fn busy_while_the_claim_is_held() {
        let nodes = arena(2);
        let q = Injector::new();
        // SAFETY: pushed once each.
        unsafe {
            q.push(ptr_of(&nodes, 0));
            q.push(ptr_of(&nodes, 1));
        }
        let claim = q.try_claim().expect("nobody holds the claim");
        assert!(q.try_claim().is_none());
        assert_eq!(q.pop_batch(1, |_| unreachable!()), Pop::Busy);
        assert_eq!(q.pop(), None, "pop reports Busy as None");
        assert!(!q.is_empty());
        drop(claim);
        assert_eq!(drain(&q), [0, 1]);
    }

    #[test]
    fn panicking_consumer_releases_the_claim() {
        let nodes = arena(4);
        let q = Injector::new();
        let (f, l) = chain(&nodes, &[0, 1, 2, 3]);
        // SAFETY: pushed once.
        unsafe { q.push_chain(f, l) };
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _ = q.pop_batch(4, |n| assert_ne!(id(n), 1, "consumer fails on node 1"));
        }));
        assert!(r.is_err());
        // 0 and 1 were handed out; 2 and 3 stay, in order, and the claim is free.
        assert_eq!(drain(&q), [2, 3]);
        assert!(q.is_empty());
    }

    #[test]
    fn is_empty_sees_a_refill_in_progress() {
        let nodes = arena(1);
        let q = Injector::new();
        // SAFETY: pushed once.
        unsafe { q.push(ptr_of(&nodes, 0)) };
        let mut claim = q.try_claim().unwrap();
        // What C3a leaves while the swapped-out stack is in the holder's hands.
        q.consumer.pending_len.store(REFILLING, Relaxed);
        let top = q.stack.swap(ptr::null_mut(), AcqRel);
        assert!(!q.is_empty(), "a node in transit is not 'empty'");
        q.stack.store(top, Relaxed);
        q.consumer.pending_len.store(0, Relaxed);
        assert_eq!(claim.take().map(id), Some(0));
        drop(claim);
        assert!(q.is_empty());
    }

    /// 4 producers × 10k nodes (every third push a chain of 3), 2 consumers: every id
    /// arrives exactly once, and each consumer sees each producer's ids in order.
    #[test]
    fn concurrent_exactly_once_and_per_producer_fifo() {
        const PRODUCERS: usize = 4;
        const PER: usize = 10_000;
        const TOTAL: usize = PRODUCERS * PER;
        let nodes = Arc::new(arena(TOTAL)); // id = producer * PER + sequence
        let q = Arc::new(Injector::<Node>::new());
        let seen: Arc<Vec<StdAtomicBool>> = Arc::new((0..TOTAL).map(|_| StdAtomicBool::new(false)).collect());
        let received = Arc::new(crate::shim::atomic::AtomicUsize::new(0));
        let start = Arc::new(Barrier::new(PRODUCERS + 2));
        let producers: Vec<_> = (0..PRODUCERS)
            .map(|p| {
                let (nodes, q, start) = (nodes.clone(), q.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let mut i = p * PER;
                    let end = (p + 1) * PER;
                    while i < end {
                        if i % 3 == 0 && i + 3 <= end {
                            let (f, l) = chain(&nodes, &[i, i + 1, i + 2]);
                            // SAFETY: nodes i..i+3 are this producer's, pushed once; the arena
                            // outlives every consumer.
                            unsafe { q.push_chain(f, l) };
                            i += 3;
                        } else {
                            // SAFETY: as above.
                            unsafe { q.push(ptr_of(&nodes, i)) };
                            i += 1;
                        }
                    }
                })
            })
            .collect();
        let consumers: Vec<_> = (0..2)
            .map(|c| {
                let (q, seen, received, start) = (q.clone(), seen.clone(), received.clone(), start.clone());
                std::thread::spawn(move || {
                    start.wait();
                    let mut last = [None::<usize>; PRODUCERS];
                    let mut mine = 0usize;
                    while received.load(Relaxed) < TOTAL {
                        let r = q.pop_batch(1 + c * 7, |n| {
                            let i = id(n);
                            assert!(!seen[i].swap(true, Relaxed), "id {i} handed out twice");
                            let p = i / PER;
                            if let Some(l) = last[p] {
                                assert!(l < i, "producer {p}: {i} handed out after {l}");
                            }
                            last[p] = Some(i);
                            mine += 1;
                        });
                        match r {
                            Pop::Taken(k) => {
                                received.fetch_add(k, Relaxed);
                            }
                            Pop::Empty | Pop::Busy => std::thread::yield_now(),
                        }
                    }
                    mine
                })
            })
            .collect();
        for p in producers {
            p.join().unwrap();
        }
        let total: usize = consumers.into_iter().map(|c| c.join().unwrap()).sum();
        assert_eq!(total, TOTAL);
        assert!(seen.iter().all(|s| s.load(Relaxed)), "an id was lost");
        assert!(q.is_empty());
        assert_eq!(q.pop_batch(8, |_| unreachable!()), Pop::Empty);
    }
}
