//! Loom models of `filch::deque`.
//!
//! Items are distinct `usize` ids. Each model gathers every id any thread took and
//! asserts that the multiset taken (plus what is left in the deques at the end) equals
//! the multiset pushed: nothing lost, nothing taken twice. Capacities are 2–4, so the
//! full path, the refusal, and index wrap-around are all reached. The per-slot
//! happens-before witness inside the deque (see `filch::sync`) additionally makes loom
//! report any consumer that is not ordered with the producer of its slot.

use filch::deque::{Owner, Steal, Stealer};
use filch::sync::mutation::{self, Site};
use loom::thread;

use crate::model;

/// Takes one item with `steal`, retrying on `Retry` (bounded: loom explores the rest).
fn steal_once(s: &Stealer<usize>) -> Option<usize> {
    for _ in 0..3 {
        match s.steal() {
            Steal::Success(v) => return Some(v),
            Steal::Empty => return None,
            Steal::Retry => thread::yield_now(),
        }
    }
    None
}

/// Takes one item with `steal_batch` into `mine`, retrying on `Retry` (bounded, as
/// `steal_once`).
fn steal_batch_once(s: &Stealer<usize>, mine: &Owner<usize>) -> Option<usize> {
    for _ in 0..3 {
        match s.steal_batch(mine) {
            Steal::Success(v) => return Some(v),
            Steal::Empty => return None,
            Steal::Retry => thread::yield_now(),
        }
    }
    None
}

fn assert_exactly_once(mut taken: Vec<usize>, pushed: impl IntoIterator<Item = usize>) {
    let mut pushed: Vec<usize> = pushed.into_iter().collect();
    taken.sort_unstable();
    pushed.sort_unstable();
    assert_eq!(taken, pushed, "taken (left) differs from pushed (right): an item was lost or duplicated");
}

fn drain(o: &Owner<usize>, into: &mut Vec<usize>) {
    while let Some(v) = o.pop() {
        into.push(v);
    }
}

/// The last-item race: one item, one thief, one pop.
fn last_item_race() {
    model(3, || {
        let o = Owner::<usize>::with_capacity(2).unwrap();
        o.push(1).unwrap();
        let s = o.stealer();
        let th = thread::spawn(move || steal_once(&s));
        let mut taken: Vec<usize> = o.pop().into_iter().collect();
        taken.extend(th.join().unwrap());
        drain(&o, &mut taken);
        assert_exactly_once(taken, [1]);
    });
}

/// Owner pushes and pops while one thief steals twice: the store-buffering window of
/// pop (O2) against steal (S2) with `top` already moved by an earlier steal.
fn push_pop_one_thief() {
    model(3, || {
        owner_pop_push_pop_vs(|s| {
            let mut got = Vec::new();
            got.extend(steal_once(&s));
            got.extend(steal_once(&s));
            got
        })
    });
}

/// The owner side of `push_pop_one_thief` and `steal_batch_first_vs_pop`: pushes 1 and 2,
/// starts `thief` on a stealer, pops, pushes 3, pops, and checks that the owner and the
/// thief together took every item exactly once.
fn owner_pop_push_pop_vs(thief: impl FnOnce(Stealer<usize>) -> Vec<usize> + Send + 'static) {
    let o = Owner::<usize>::with_capacity(4).unwrap();
    o.push(1).unwrap();
    o.push(2).unwrap();
    let s = o.stealer();
    let th = thread::spawn(move || thief(s));
    let mut taken: Vec<usize> = o.pop().into_iter().collect();
    o.push(3).unwrap();
    taken.extend(o.pop());
    taken.extend(th.join().unwrap());
    drain(&o, &mut taken);
    assert_exactly_once(taken, [1, 2, 3]);
}

/// Push/pop against two thieves, including the last-item race three ways.
fn push_pop_two_thieves() {
    model(2, || {
        let o = Owner::<usize>::with_capacity(4).unwrap();
        o.push(1).unwrap();
        o.push(2).unwrap();
        let thieves: Vec<_> = (0..2)
            .map(|_| {
                let s = o.stealer();
                thread::spawn(move || steal_once(&s))
            })
            .collect();
        let mut taken: Vec<usize> = o.pop().into_iter().collect();
        taken.extend(o.pop());
        for th in thieves {
            taken.extend(th.join().unwrap());
        }
        drain(&o, &mut taken);
        assert_exactly_once(taken, [1, 2]);
    });
}

/// Two thieves race for the same items while the owner only watches.
fn steal_vs_steal() {
    model(3, || {
        let o = Owner::<usize>::with_capacity(2).unwrap();
        o.push(1).unwrap();
        o.push(2).unwrap();
        let thieves: Vec<_> = (0..2)
            .map(|_| {
                let s = o.stealer();
                thread::spawn(move || {
                    let mut got = Vec::new();
                    got.extend(steal_once(&s));
                    got.extend(steal_once(&s));
                    got
                })
            })
            .collect();
        let mut taken = Vec::new();
        for th in thieves {
            taken.extend(th.join().unwrap());
        }
        drain(&o, &mut taken);
        assert_exactly_once(taken, [1, 2]);
    });
}

/// Capacity 2, indices wrapping past the buffer several times while a thief steals: the
/// owner refills slots a thief may just have read (P1's Acquire, the witnesses).
fn wrap_around() {
    model(3, || {
        let o = Owner::<usize>::with_capacity(2).unwrap();
        o.push(1).unwrap();
        o.push(2).unwrap();
        let s = o.stealer();
        let th = thread::spawn(move || {
            let mut got = Vec::new();
            got.extend(steal_once(&s));
            got.extend(steal_once(&s));
            got
        });
        let mut pushed = vec![1, 2];
        let mut taken = Vec::new();
        for id in 3..6 {
            match o.push(id) {
                Ok(()) => pushed.push(id),
                // Full: make room the owner's way and try once more.
                Err(id) => {
                    taken.extend(o.pop());
                    if o.push(id).is_ok() {
                        pushed.push(id);
                    }
                }
            }
        }
        taken.extend(th.join().unwrap());
        drain(&o, &mut taken);
        assert_exactly_once(taken, pushed);
    });
}

/// `steal_batch` into the thief's own deque racing the owner's pops and a re-push: the
/// batch's second claim can reach an index the owner popped and pushed again after the
/// thief's first `bottom` load, so its own per-item Acquire (B2) is what publishes it.
fn steal_batch_vs_pop() {
    model(2, || {
        let o = Owner::<usize>::with_capacity(4).unwrap();
        for id in 1..=3 {
            o.push(id).unwrap();
        }
        let s = o.stealer();
        let th = thread::spawn(move || {
            let mine = Owner::<usize>::with_capacity(4).unwrap();
            let mut got = Vec::new();
            if let Steal::Success(v) = s.steal_batch(&mine) {
                got.push(v);
            }
            drain(&mine, &mut got);
            got
        });
        let mut taken = Vec::new();
        taken.extend(o.pop());
        taken.extend(o.pop());
        o.push(4).unwrap();
        taken.extend(th.join().unwrap());
        drain(&o, &mut taken);
        assert_exactly_once(taken, 1..=4);
    });
}

/// `steal_batch`'s *first* claim (its own S1–S4) against the owner: `push_pop_one_thief`
/// with both steals done by `steal_batch` into the thief's own deque. Never more than two
/// items, so each batch claims exactly one (half, rounded up) and B1–B4 never run. The
/// second batch starts from the `top` the first one moved: the O2 / S2 store-buffering
/// window, where without the batch's S2 the owner pops index 1 without a CAS while the
/// batch claims it too. The owner then re-pushes index 1, so a batch whose `bottom` load
/// (S3) is not Acquire may take the new item without synchronizing with its push.
fn steal_batch_first_vs_pop() {
    model(3, || {
        owner_pop_push_pop_vs(|s| {
            let mine = Owner::<usize>::with_capacity(4).unwrap();
            let mut got = Vec::new();
            got.extend(steal_batch_once(&s, &mine));
            got.extend(steal_batch_once(&s, &mine));
            drain(&mine, &mut got);
            got
        })
    });
}

/// A full deque: pushes are refused (handed back, never overwritten) until a thief or
/// the owner makes room.
fn full_deque() {
    model(3, || {
        let o = Owner::<usize>::with_capacity(2).unwrap();
        o.push(1).unwrap();
        o.push(2).unwrap();
        let s = o.stealer();
        let th = thread::spawn(move || steal_once(&s));
        let mut pushed = vec![1, 2];
        match o.push(3) {
            Ok(()) => pushed.push(3),
            Err(v) => assert_eq!(v, 3, "a refused push hands the item back"),
        }
        let mut taken = Vec::new();
        taken.extend(th.join().unwrap());
        drain(&o, &mut taken);
        assert_exactly_once(taken, pushed);
    });
}

#[test]
fn deque_last_item_race() {
    last_item_race();
}

#[test]
fn deque_push_pop_one_thief() {
    push_pop_one_thief();
}

#[test]
fn deque_push_pop_two_thieves() {
    push_pop_two_thieves();
}

#[test]
fn deque_steal_vs_steal() {
    steal_vs_steal();
}

#[test]
fn deque_wrap_around() {
    wrap_around();
}

#[test]
fn deque_steal_batch_vs_pop() {
    steal_batch_vs_pop();
}

#[test]
fn deque_steal_batch_first_vs_pop() {
    steal_batch_first_vs_pop();
}

#[test]
fn deque_full() {
    full_deque();
}

/// The seed's pop ignores its CAS result: the model must find the double take.
#[test]
#[should_panic(expected = "an item was lost or duplicated")]
fn wyn_pop_is_caught() {
    model(3, || {
        let o = Owner::<usize>::with_capacity(2).unwrap();
        o.push(1).unwrap();
        let s = o.stealer();
        let th = thread::spawn(move || steal_once(&s));
        // SAFETY: none; this model exists to watch loom catch the unsound pop.
        let mut taken: Vec<usize> = unsafe { o.wyn_pop() }.into_iter().collect();
        taken.extend(th.join().unwrap());
        assert_exactly_once(taken, [1]);
    });
}

// Mutation evidence: each test weakens one ordering and runs the model that catches it.
// The test passes only if the model fails.

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_pop_fence_caught_by_push_pop_one_thief() {
    mutation::set(Site::PopFence);
    push_pop_one_thief();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_steal_fence_caught_by_push_pop_one_thief() {
    mutation::set(Site::StealFence);
    push_pop_one_thief();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_batch_fence_caught_by_steal_batch_vs_pop() {
    mutation::set(Site::BatchFence);
    steal_batch_vs_pop();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_push_bottom_release_caught_by_push_pop_one_thief() {
    mutation::set(Site::PushBottomRelease);
    push_pop_one_thief();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_steal_bottom_acquire_caught_by_push_pop_one_thief() {
    mutation::set(Site::StealBottomAcquire);
    push_pop_one_thief();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_batch_bottom_acquire_caught_by_steal_batch_vs_pop() {
    mutation::set(Site::BatchBottomAcquire);
    steal_batch_vs_pop();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_batch_first_fence_caught_by_steal_batch_first_vs_pop() {
    mutation::set(Site::BatchFirstFence);
    steal_batch_first_vs_pop();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_batch_first_bottom_acquire_caught_by_steal_batch_first_vs_pop() {
    mutation::set(Site::BatchFirstBottomAcquire);
    steal_batch_first_vs_pop();
}
