//! Loom models of the wake slot (`src/lockfree/next_slot.rs`, N1–N4, re-exported hidden
//! as `filch::sync::NextSlot`).
//!
//! Tasks live in an arena owned by the model; each has an id and a payload (a loom
//! `UnsafeCell`) that its putter writes before N1 and whoever takes it reads, so a missing
//! Release/Acquire pair between a put and a steal is a `Causality violation`. Every model
//! asserts **exactly once**: the ids the owner took (N2) or got back displaced (N1), the
//! ids the thieves stole (N4) and what is left in the slot at the end are exactly the ids
//! put, each once.

use std::ptr::NonNull;

use filch::sync::mutation::{self, Site};
use filch::sync::{NextSlot, Seen};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use crate::model;

/// Added to an id to make its payload: a stale read would fail the value check too.
const PAYLOAD: usize = 1000;

struct Task {
    id: usize,
    payload: UnsafeCell<usize>,
}

struct World {
    slot: NextSlot<Task>,
    tasks: Vec<Task>,
}

impl World {
    fn new(ids: &[usize]) -> Arc<World> {
        let tasks = ids.iter().map(|&id| Task { id, payload: UnsafeCell::new(0) }).collect();
        Arc::new(World { slot: NextSlot::new(), tasks })
    }

    /// The owner writes the payload, then N1; returns the displaced task's id.
    fn put(&self, id: usize) -> Option<usize> {
        let t = self.tasks.iter().find(|t| t.id == id).expect("unknown id");
        // SAFETY: test code: the owner holds the task until it puts it.
        t.payload.with_mut(|p| unsafe { *p = id + PAYLOAD });
        // SAFETY: only the owner thread of the model puts and takes.
        unsafe { self.slot.put(NonNull::from(t)) }.map(|p| self.got(p))
    }

    /// N2 by the owner.
    fn take(&self) -> Option<usize> {
        // SAFETY: as in `put`.
        unsafe { self.slot.take() }.map(|p| self.got(p))
    }

    /// Reads a task that was handed out: its payload must be the one written before N1.
    fn got(&self, p: NonNull<Task>) -> usize {
        // SAFETY: the arena outlives the model's threads; the slot hands out arena tasks.
        let t = unsafe { p.as_ref() };
        // SAFETY: test code: the task is ours once handed out; loom checks the ordering.
        let v = t.payload.with(|p| unsafe { *p });
        assert_eq!(v, t.id + PAYLOAD, "a task handed out with a stale payload");
        t.id
    }

    /// A thief: two observations (N3) and a steal (N4) of the second, as the worker's
    /// grace does under loom.
    fn thief(&self) -> Option<usize> {
        let first: Seen<Task> = self.slot.peek()?;
        let again = self.slot.peek()?;
        if again != first {
            return None;
        }
        self.slot.steal(again).map(|p| self.got(p))
    }
}

fn check(mut got: Vec<usize>, put: &[usize]) {
    got.sort_unstable();
    let mut want = put.to_vec();
    want.sort_unstable();
    assert_eq!(got, want, "every task put is handed out exactly once");
}

/// The owner puts two tasks (the second displaces the first) and takes one, while a thief
/// steals: whatever the interleaving, each task comes out once.
fn put_take_steal(thieves: usize) {
    model(3, move || {
        let w = World::new(&[1, 2]);
        let handles: Vec<_> = (0..thieves)
            .map(|_| {
                let w = w.clone();
                thread::spawn(move || w.thief())
            })
            .collect();
        let mut got = Vec::new();
        got.extend(w.put(1));
        got.extend(w.put(2));
        got.extend(w.take());
        for h in handles {
            got.extend(h.join().unwrap());
        }
        got.extend(w.slot.steal_now().map(|p| w.got(p)));
        check(got, &[1, 2]);
    });
}

/// The same task put again after the owner took it (the ping-pong shape), with a thief
/// watching: the put count keeps the thief's old observation from matching, and the
/// CAS keeps the task from being taken twice either way.
fn put_again() {
    model(3, || {
        let w = World::new(&[1]);
        let thief = {
            let w = w.clone();
            thread::spawn(move || w.thief())
        };
        let mut got = Vec::new();
        got.extend(w.put(1));
        let first = w.take();
        let again = first.is_some();
        got.extend(first);
        if again {
            got.extend(w.put(1));
        }
        got.extend(thief.join().unwrap());
        got.extend(w.slot.steal_now().map(|p| w.got(p)));
        let want: &[usize] = if again { &[1, 1] } else { &[1] };
        check(got, want);
    });
}

#[test]
fn next_slot_put_take_steal() {
    put_take_steal(1);
}

#[test]
fn next_slot_two_thieves() {
    put_take_steal(2);
}

#[test]
fn next_slot_put_again() {
    put_again();
}

// Mutation evidence: each test weakens one site and runs the model that catches it.

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_next_put_release_caught_by_put_take_steal() {
    mutation::set(Site::NextPutRelease);
    put_take_steal(1);
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_next_steal_acquire_caught_by_put_take_steal() {
    mutation::set(Site::NextStealAcquire);
    put_take_steal(1);
}

#[test]
#[should_panic(expected = "exactly once")]
fn mutant_next_steal_cas_caught_by_two_thieves() {
    mutation::set(Site::NextStealCas);
    put_take_steal(2);
}

#[test]
#[should_panic(expected = "exactly once")]
fn mutant_next_take_swap_caught_by_put_take_steal() {
    mutation::set(Site::NextTakeSwap);
    put_take_steal(1);
}
