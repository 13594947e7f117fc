//! `filch::deque` against a `VecDeque` model, and a concurrent exactly-once property.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};

use filch::deque::{Owner, Steal, STEAL_BATCH_LIMIT};
use proptest::prelude::*;

#[derive(Debug, Clone)]
enum Op {
    Push(u32),
    Pop,
    PopXchg,
    Steal,
    StealBatch,
    /// Pop from the thief-side deque that `StealBatch` fills.
    PopDest,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => any::<u32>().prop_map(Op::Push),
        2 => Just(Op::Pop),
        1 => Just(Op::PopXchg),
        2 => Just(Op::Steal),
        1 => Just(Op::StealBatch),
        1 => Just(Op::PopDest),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    /// Single-threaded, every operation's result equals the model's, including the full
    /// (refused push) and empty cases and `steal_batch`'s sizing rule.
    #[test]
    fn matches_vecdeque_model(
        cap_log in 0u32..5,
        dest_cap_log in 0u32..4,
        ops in prop::collection::vec(op(), 0..300),
    ) {
        let cap = 1usize << cap_log;
        let dest_cap = 1usize << dest_cap_log;
        let owner = Owner::<u32>::with_capacity(cap).unwrap();
        let stealer = owner.stealer();
        let dest = Owner::<u32>::with_capacity(dest_cap).unwrap();
        let mut model: VecDeque<u32> = VecDeque::new();
        let mut dest_model: VecDeque<u32> = VecDeque::new();
        for op in ops {
            match op {
                Op::Push(v) => {
                    let expect = if model.len() == cap { Err(v) } else { model.push_back(v); Ok(()) };
                    prop_assert_eq!(owner.push(v), expect);
                }
                Op::Pop => prop_assert_eq!(owner.pop(), model.pop_back()),
                Op::PopXchg => prop_assert_eq!(owner.pop_xchg(), model.pop_back()),
                Op::Steal => {
                    let expect = match model.pop_front() { Some(v) => Steal::Success(v), None => Steal::Empty };
                    prop_assert_eq!(stealer.steal(), expect);
                }
                Op::StealBatch => {
                    let room = dest_cap - dest_model.len();
                    let want = model.len().div_ceil(2).min(STEAL_BATCH_LIMIT).min(room + 1);
                    let expect = match model.pop_front() {
                        None => Steal::Empty,
                        Some(first) => {
                            for _ in 1..want {
                                dest_model.push_back(model.pop_front().unwrap());
                            }
                            Steal::Success(first)
                        }
                    };
                    prop_assert_eq!(stealer.steal_batch(&dest), expect);
                }
                Op::PopDest => prop_assert_eq!(dest.pop(), dest_model.pop_back()),
            }
            prop_assert_eq!(owner.len(), model.len());
            prop_assert_eq!(dest.len(), dest_model.len());
        }
    }

    /// Items left in the deque when the last handle drops are dropped exactly once.
    #[test]
    fn drop_releases_each_remaining_item_once(pushes in 0usize..20, pops in 0usize..20, steals in 0usize..20) {
        let token = Arc::new(());
        {
            let owner = Owner::<Box<Arc<()>>>::with_capacity(16).unwrap();
            let stealer = owner.stealer();
            for _ in 0..pushes { let _ = owner.push(Box::new(token.clone())); }
            for _ in 0..pops { drop(owner.pop()); }
            for _ in 0..steals { drop(stealer.steal()); }
            drop(owner);
            prop_assert!(Arc::strong_count(&token) >= 1);
        }
        prop_assert_eq!(Arc::strong_count(&token), 1);
    }
}

#[derive(Debug, Clone)]
enum OwnerOp {
    Push,
    Pop,
}

#[derive(Debug, Clone)]
enum ThiefOp {
    Steal,
    StealBatch,
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    /// One owner and several thieves run random scripts at once; afterwards the multiset
    /// of ids taken (by pops, steals, batches and the final drain) equals the multiset
    /// pushed.
    #[test]
    fn concurrent_scripts_take_each_item_exactly_once(
        cap_log in 1u32..6,
        owner_script in prop::collection::vec(prop_oneof![3 => Just(OwnerOp::Push), 2 => Just(OwnerOp::Pop)], 1..2000),
        thief_scripts in prop::collection::vec(
            prop::collection::vec(prop_oneof![Just(ThiefOp::Steal), Just(ThiefOp::StealBatch)], 1..1000), 1..4),
    ) {
        let owner = Owner::<usize>::with_capacity(1 << cap_log).unwrap();
        let start = Arc::new(Barrier::new(thief_scripts.len() + 1));
        let retries = Arc::new(AtomicUsize::new(0));
        let thieves: Vec<_> = thief_scripts
            .into_iter()
            .map(|script| {
                let s = owner.stealer();
                let start = start.clone();
                let retries = retries.clone();
                std::thread::spawn(move || {
                    let mine = Owner::<usize>::with_capacity(8).unwrap();
                    let mut got = Vec::new();
                    start.wait();
                    for op in script {
                        let r = match op { ThiefOp::Steal => s.steal(), ThiefOp::StealBatch => s.steal_batch(&mine) };
                        match r {
                            Steal::Success(v) => got.push(v),
                            Steal::Retry => { retries.fetch_add(1, Ordering::Relaxed); }
                            Steal::Empty => {}
                        }
                        while let Some(v) = mine.pop() { got.push(v); }
                    }
                    got
                })
            })
            .collect();
        let mut pushed = Vec::new();
        let mut taken = Vec::new();
        let mut next = 0usize;
        start.wait();
        for op in owner_script {
            match op {
                OwnerOp::Push => {
                    if owner.push(next).is_ok() { pushed.push(next); }
                    next += 1;
                }
                OwnerOp::Pop => taken.extend(owner.pop()),
            }
        }
        for t in thieves { taken.extend(t.join().unwrap()); }
        while let Some(v) = owner.pop() { taken.push(v); }
        taken.sort_unstable();
        prop_assert_eq!(taken, pushed);
    }
}
