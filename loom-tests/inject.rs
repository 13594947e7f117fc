//! Loom models of `filch::inject` (the `Injector`, re-exported hidden as
//! `filch::sync::Injector`).
//!
//! Nodes live in an arena owned by the model. Ids are `producer * 10 + sequence`, so a
//! node's producer is `id / 10`. Every model asserts:
//!
//! - **exactly once**: the ids handed out by every consumer, plus what is drained after all
//!   threads joined, are exactly the ids pushed;
//! - **per-producer FIFO**: each consumer receives each producer's ids in increasing order,
//!   and everything drained at the end is newer than everything a consumer received;
//! - **publication**: the producer writes the node's payload (a `loom::cell::UnsafeCell`)
//!   before pushing it and the consumer reads it when handed the node, so a missing
//!   Release/Acquire between them is a `Causality violation`. The injector's own `pending`
//!   list is a loom `UnsafeCell` too, so a claim handed on without ordering is caught the
//!   same way.
//!
//! The `sleep_*` models are the no-lost-wakeup core of the scheduler's sleep protocol (K1 /
//! K3 in `src/sleep.rs`): a producer pushes, `fence(SeqCst)`, reads a "sleeping" flag; a
//! would-be sleeper sets the flag, `fence(SeqCst)`, calls `is_empty`. They assert that the
//! producer missing the flag and the sleeper seeing "empty" never happen together while a
//! pushed node is still queued.

use std::ptr::{self, NonNull};

use filch::sync::mutation::{self, Site};
use filch::sync::{Injector, Linked, Pop};
use loom::cell::UnsafeCell;
use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, Ordering::Relaxed, Ordering::SeqCst};
use loom::sync::Arc;
use loom::thread;

use crate::model;

/// A payload value distinct from any id, so that a stale read would also fail the value check.
const PAYLOAD: usize = 1000;

struct Node {
    next: AtomicPtr<Node>,
    id: usize,
    payload: UnsafeCell<usize>,
}

// SAFETY: `next` always returns the `next` field, and the models write it only while the
// node is outside the injector (while linking a chain before `push_chain`).
unsafe impl Linked for Node {
    fn next(&self) -> &AtomicPtr<Node> {
        &self.next
    }
}

/// The injector and the arena of its nodes.
struct World {
    q: Injector<Node>,
    nodes: Vec<Node>,
}

impl World {
    fn new(ids: &[usize]) -> Arc<World> {
        let nodes = ids
            .iter()
            .map(|&id| Node { next: AtomicPtr::new(ptr::null_mut()), id, payload: UnsafeCell::new(0) })
            .collect();
        Arc::new(World { q: Injector::new(), nodes })
    }

    fn node(&self, id: usize) -> &Node {
        self.nodes.iter().find(|n| n.id == id).expect("unknown id")
    }

    /// Writes the node's payload; the push must publish it.
    fn prepare(&self, id: usize) -> NonNull<Node> {
        let n = self.node(id);
        // SAFETY: test code: the producer owns the node until it pushes it.
        n.payload.with_mut(|p| unsafe { *p = id + PAYLOAD });
        NonNull::from(n)
    }

    fn push(&self, id: usize) {
        let n = self.prepare(id);
        // SAFETY: each id is pushed once; the arena outlives every use of the queue.
        unsafe { self.q.push(n) };
    }

    /// Pushes `ids` (oldest first) as one chain.
    fn push_chain(&self, ids: &[usize]) {
        let ptrs: Vec<NonNull<Node>> = ids.iter().map(|&id| self.prepare(id)).collect();
        for w in ptrs.windows(2) {
            // SAFETY: test code: the nodes are still the producer's.
            unsafe { w[0].as_ref() }.next.store(w[1].as_ptr(), Relaxed);
        }
        // SAFETY: a chain of nodes pushed once each, linked first to last.
        unsafe { self.q.push_chain(ptrs[0], ptrs[ptrs.len() - 1]) };
    }

    /// `pop_batch` that checks each node's payload and records its id.
    fn pop_batch(&self, max: usize, into: &mut Vec<usize>) -> Pop {
        self.q.pop_batch(max, |p| {
            // SAFETY: test code: the node is in the arena; the queue just handed it to us.
            let n = unsafe { p.as_ref() };
            // SAFETY: test code: reading the payload the producer wrote before pushing.
            let v = n.payload.with(|p| unsafe { *p });
            assert_eq!(v, n.id + PAYLOAD, "node {} handed out with a stale payload", n.id);
            into.push(n.id);
        })
    }

    /// After every thread joined: takes whatever is left.
    fn drain(&self) -> Vec<usize> {
        let mut left = Vec::new();
        loop {
            match self.pop_batch(usize::MAX, &mut left) {
                Pop::Taken(_) => {}
                Pop::Empty => return left,
                Pop::Busy => panic!("the claim is held after every consumer returned"),
            }
        }
    }
}

/// Exactly once, and per-producer FIFO (see the module docs).
fn check(consumers: &[Vec<usize>], drained: &[usize], pushed: &[usize]) {
    let mut all: Vec<usize> = consumers.iter().flatten().chain(drained).copied().collect();
    all.sort_unstable();
    let mut want = pushed.to_vec();
    want.sort_unstable();
    assert_eq!(all, want, "taken (left) differs from pushed (right): an item was lost or duplicated");
    for list in consumers.iter().map(Vec::as_slice).chain([drained]) {
        for p in 0..10 {
            let mine: Vec<usize> = list.iter().copied().filter(|id| id / 10 == p).collect();
            assert!(mine.windows(2).all(|w| w[0] < w[1]), "per-producer FIFO order broken: {list:?}");
        }
    }
    for &d in drained {
        let newest_taken = consumers.iter().flatten().filter(|&&t| t / 10 == d / 10).max();
        if let Some(&t) = newest_taken {
            assert!(t < d, "per-producer FIFO order broken: drained {d} after {t} was taken");
        }
    }
}

/// Two producers (one pushes two nodes, the other a chain of two) against one consumer
/// taking batches of two.
fn two_producers_one_consumer() {
    model(3, || {
        let ids = [10, 11, 20, 21];
        let w = World::new(&ids);
        let p1 = {
            let w = w.clone();
            thread::spawn(move || {
                w.push(10);
                w.push(11);
            })
        };
        let p2 = {
            let w = w.clone();
            thread::spawn(move || w.push_chain(&[20, 21]))
        };
        let mut got = Vec::new();
        for _ in 0..2 {
            match w.pop_batch(2, &mut got) {
                Pop::Taken(_) | Pop::Empty => {}
                Pop::Busy => panic!("Busy with a single consumer"),
            }
        }
        p1.join().unwrap();
        p2.join().unwrap();
        check(&[got], &w.drain(), &ids);
    });
}

/// One producer (a push and a chain) against two consumers taking one node at a time.
fn one_producer_two_consumers() {
    model(3, || {
        let ids = [10, 11, 12];
        let w = World::new(&ids);
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let w = w.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    for _ in 0..2 {
                        let _ = w.pop_batch(1, &mut got);
                    }
                    got
                })
            })
            .collect();
        w.push(10);
        w.push_chain(&[11, 12]);
        let got: Vec<Vec<usize>> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        check(&got, &w.drain(), &ids);
    });
}

/// Two producers and two consumers at once: the full MPMC mix.
fn two_producers_two_consumers() {
    model(3, || {
        let ids = [10, 20, 21];
        let w = World::new(&ids);
        let p1 = {
            let w = w.clone();
            thread::spawn(move || w.push(10))
        };
        let p2 = {
            let w = w.clone();
            thread::spawn(move || w.push_chain(&[20, 21]))
        };
        let c = {
            let w = w.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                let _ = w.pop_batch(1, &mut got);
                got
            })
        };
        let mut mine = Vec::new();
        let _ = w.pop_batch(2, &mut mine);
        p1.join().unwrap();
        p2.join().unwrap();
        let theirs = c.join().unwrap();
        check(&[mine, theirs], &w.drain(), &ids);
    });
}

/// Three nodes queued up front; two consumers take one each. Whoever goes second takes from
/// the `pending` list the first one left behind: the claim must hand it over (C1/C4).
fn claim_handoff() {
    model(3, || {
        let ids = [10, 11, 12];
        let w = World::new(&ids);
        w.push_chain(&ids);
        let consumers: Vec<_> = (0..2)
            .map(|_| {
                let w = w.clone();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    let _ = w.pop_batch(1, &mut got);
                    got
                })
            })
            .collect();
        let got: Vec<Vec<usize>> = consumers.into_iter().map(|c| c.join().unwrap()).collect();
        check(&got, &w.drain(), &ids);
    });
}

/// The sleep handshake alone: producer `push; fence; load sleeping`, sleeper `store
/// sleeping; fence; is_empty`. With `fences = false` the model must fail (it can).
fn sleep_handshake(fences: bool) {
    model(3, move || {
        let w = World::new(&[10]);
        let sleeping = Arc::new(AtomicBool::new(false));
        let producer = {
            let (w, sleeping) = (w.clone(), sleeping.clone());
            thread::spawn(move || {
                w.push(10);
                if fences {
                    // K1's fence; partner: the sleeper's fence below.
                    fence(SeqCst);
                }
                // Relaxed: ordered by the fences (store-buffering pattern).
                sleeping.load(Relaxed)
            })
        };
        sleeping.store(true, Relaxed);
        if fences {
            // K3's fence; partner: the producer's fence above.
            fence(SeqCst);
        }
        let empty = w.q.is_empty();
        let saw_sleeping = producer.join().unwrap();
        assert!(
            saw_sleeping || !empty,
            "lost wakeup: the producer saw no sleeper and the sleeper saw no task"
        );
        check(&[], &w.drain(), &[10]);
    });
}

/// The handshake with a consumer racing it: the consumer may move both pushed nodes off
/// the stack and hand out only one while the sleeper looks. `is_empty` must not say
/// "empty" while the other one waits in `pending` (C3a's mark, C3b's Release, E1's
/// Acquire).
fn sleep_with_consumer() {
    model(3, || {
        let ids = [10, 11];
        let w = World::new(&ids);
        let sleeping = Arc::new(AtomicBool::new(false));
        let producer = {
            let (w, sleeping) = (w.clone(), sleeping.clone());
            thread::spawn(move || {
                w.push(10);
                w.push(11);
                // K1's fence; partner: the sleeper's fence below.
                fence(SeqCst);
                // Relaxed: ordered by the fences.
                sleeping.load(Relaxed)
            })
        };
        let consumer = {
            let w = w.clone();
            thread::spawn(move || {
                let mut got = Vec::new();
                let _ = w.pop_batch(1, &mut got);
                got
            })
        };
        sleeping.store(true, Relaxed);
        // K3's fence; partner: the producer's fence above.
        fence(SeqCst);
        let empty = w.q.is_empty();
        let saw_sleeping = producer.join().unwrap();
        let got = consumer.join().unwrap();
        let left = w.drain();
        assert!(
            saw_sleeping || !empty || left.is_empty(),
            "lost wakeup: {left:?} still queued, but the producer saw no sleeper and the sleeper saw 'empty'"
        );
        check(&[got], &left, &ids);
    });
}

#[test]
fn inject_two_producers_one_consumer() {
    two_producers_one_consumer();
}

#[test]
fn inject_two_producers_two_consumers() {
    two_producers_two_consumers();
}

#[test]
fn inject_one_producer_two_consumers() {
    one_producer_two_consumers();
}

#[test]
fn inject_claim_handoff() {
    claim_handoff();
}

#[test]
fn inject_sleep_handshake() {
    sleep_handshake(true);
}

#[test]
fn inject_sleep_with_consumer() {
    sleep_with_consumer();
}

/// The handshake model can fail: without the two fences it finds the lost wakeup.
#[test]
#[should_panic(expected = "lost wakeup")]
fn inject_sleep_handshake_without_fences_fails() {
    sleep_handshake(false);
}

// Mutation evidence: each test weakens one site and runs the model that catches it; it
// passes only if the model fails.

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_inject_push_release_caught_by_two_producers_one_consumer() {
    mutation::set(Site::InjectPushRelease);
    two_producers_one_consumer();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_inject_chain_release_caught_by_two_producers_one_consumer() {
    mutation::set(Site::InjectChainRelease);
    two_producers_one_consumer();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_inject_swap_acquire_caught_by_two_producers_one_consumer() {
    mutation::set(Site::InjectSwapAcquire);
    two_producers_one_consumer();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_inject_claim_acquire_caught_by_claim_handoff() {
    mutation::set(Site::InjectClaimAcquire);
    claim_handoff();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_inject_claim_release_caught_by_claim_handoff() {
    mutation::set(Site::InjectClaimRelease);
    claim_handoff();
}

#[test]
#[should_panic(expected = "lost wakeup")]
fn mutant_inject_swap_release_caught_by_sleep_with_consumer() {
    mutation::set(Site::InjectSwapRelease);
    sleep_with_consumer();
}

#[test]
#[should_panic(expected = "lost wakeup")]
fn mutant_inject_empty_acquire_caught_by_sleep_with_consumer() {
    mutation::set(Site::InjectEmptyAcquire);
    sleep_with_consumer();
}

#[test]
#[should_panic(expected = "lost wakeup")]
fn mutant_inject_refill_mark_caught_by_sleep_with_consumer() {
    mutation::set(Site::InjectRefillMark);
    sleep_with_consumer();
}
