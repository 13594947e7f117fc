//! After construction, deque and pool operations allocate nothing on the heap.
//!
//! A counting global allocator counts allocations made by the thread under test only
//! (a thread-local switch), so the test harness's own threads cannot disturb the count.
#![cfg(not(loom))]

use filch::deque::{Owner, Steal};
use filch::pool::Pool;

#[path = "support/counting_alloc.rs"]
mod counting_alloc;
use counting_alloc::{allocations_in, Counting};

#[global_allocator]
static GLOBAL: Counting = Counting;

#[test]
fn the_counter_sees_an_allocation() {
    // Guards the test itself: a counter that cannot count would pass everything below.
    assert_eq!(allocations_in(|| drop(std::hint::black_box(Box::new(1u64)))), 1);
}

#[test]
fn deque_operations_allocate_nothing() {
    let owner = Owner::<usize>::with_capacity(64).unwrap();
    let stealer = owner.stealer();
    let dest = Owner::<usize>::with_capacity(64).unwrap();
    let n = allocations_in(|| {
        for round in 0..1000 {
            for i in 0..64 {
                let _ = owner.push(round * 64 + i);
            }
            assert_eq!(owner.push(0), Err(0), "full deque refuses");
            assert!(matches!(stealer.steal(), Steal::Success(_)));
            assert!(matches!(stealer.steal_batch(&dest), Steal::Success(_)));
            while dest.pop().is_some() {}
            while owner.pop().is_some() {}
            assert!(stealer.steal().is_empty());
            let _ = stealer.clone();
        }
    });
    assert_eq!(n, 0, "deque push/pop/steal/steal_batch allocated {n} times");
}

#[test]
fn pool_operations_allocate_nothing() {
    let pool = Pool::<[u8; 128]>::with_capacity(1024).unwrap();
    let n = allocations_in(|| {
        let mut cache = pool.cache();
        let mut other = pool.cache();
        let mut held = [None; 256];
        for round in 0..200 {
            for slot in held.iter_mut() {
                *slot = cache.try_alloc();
                assert!(slot.is_some());
            }
            for (i, slot) in held.iter_mut().enumerate() {
                let id = slot.take().unwrap();
                // SAFETY: `id` was allocated above from this pool and is freed once; half
                // go back through another cache (cross-thread style), half through the
                // uncached path every other round.
                unsafe {
                    if i % 2 == 0 {
                        cache.free(id)
                    } else if round % 2 == 0 {
                        other.free(id)
                    } else {
                        pool.free(id)
                    }
                }
            }
            let id = pool.try_alloc().unwrap();
            // SAFETY: allocated just above from this pool, freed once.
            unsafe { pool.free(id) };
        }
        drop(cache);
        drop(other);
    });
    assert_eq!(n, 0, "pool alloc/free allocated {n} times");
}
