//! Loom model of the channels' spin lock (`src/lockfree/spin.rs`, CL1–CL2): mutual
//! exclusion and the ordering of one holder's writes before the next holder's reads.

use filch::sync::SpinLock;
use loom::sync::Arc;
use loom::thread;

use crate::task::mutant_test;

/// A thread and the main one each take the lock once and add one to the count it guards
/// (a read and a write through the guard, each an access to a loom cell); the count ends
/// at two. A lock that let two holders in at once, or did not order one holder after the
/// other, is a data race on the cell.
///
/// Two threads, not more: with two waiters loom explores their yields to each other
/// without end (a switch away from a yielding thread costs no preemption), so the model
/// would never finish. With one waiter every interleaving of CL1 and CL2 is covered, and
/// mutual exclusion among more threads rests on the same CAS.
fn spin_lock_excludes() {
    crate::model(3, || {
        let lock = Arc::new(SpinLock::new(0usize));
        let add = |lock: &SpinLock<usize>| {
            let mut held = lock.lock();
            let v = *held;
            *held = v + 1;
        };
        let other = {
            let lock = lock.clone();
            thread::spawn(move || add(&lock))
        };
        add(&lock);
        other.join().unwrap();
        assert_eq!(*lock.lock(), 2);
    });
}

#[test]
fn spin_lock_excludes_model() {
    spin_lock_excludes();
}

mutant_test!(
    /// CL1 without Acquire: the next holder's access to the count is unordered with the
    /// previous holder's.
    mutant_chan_lock_acquire_caught_by_spin_lock_excludes,
    ChanLockAcquire,
    spin_lock_excludes,
    "Causality violation"
);

mutant_test!(
    /// CL2 without Release: the same race, from the unlocking side.
    mutant_chan_lock_release_caught_by_spin_lock_excludes,
    ChanLockRelease,
    spin_lock_excludes,
    "Causality violation"
);
