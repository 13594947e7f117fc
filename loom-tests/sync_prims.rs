//! Loom models of `WaitGroup` (W1–W4) and `Semaphore` (M1–M6) on the plain-thread path
//! (park on the thread's parker), which shares its protocol with the worker path (help
//! through `run_until`, then park on the worker's parker). Each model checks liveness (a
//! lost wake-up is loom's deadlock) and publication: the thread that finishes writes a
//! loom cell that the waiter reads after its wait returns.

use filch::{Semaphore, WaitGroup};
use loom::cell::UnsafeCell;
use loom::sync::Arc;
use loom::thread;

use crate::task::{model_capped, mutant_test};

struct Cell(UnsafeCell<usize>);

// SAFETY: test code; loom checks every access for ordering.
unsafe impl Sync for Cell {}
// SAFETY: as above.
unsafe impl Send for Cell {}

impl Cell {
    fn write(&self, v: usize) {
        // SAFETY: one writer; loom checks the reader is ordered after it.
        self.0.with_mut(|p| unsafe { *p = v });
    }
    fn read(&self) -> usize {
        // SAFETY: as above.
        self.0.with(|p| unsafe { *p })
    }
}

/// Two doers each write a cell and call `done`; the waiter returns only after both, and
/// sees both writes (W2's Release chain, W4's Acquire); it never sleeps forever (W3/W4).
fn wait_group_done_vs_wait() {
    model_capped(2, 3, || {
        let wg = WaitGroup::new();
        wg.add(2);
        let cells = Arc::new([Cell(UnsafeCell::new(0)), Cell(UnsafeCell::new(0))]);
        let doers: Vec<_> = (0..2)
            .map(|i| {
                let (wg, cells) = (wg.clone(), cells.clone());
                thread::spawn(move || {
                    cells[i].write(i + 1);
                    wg.done();
                })
            })
            .collect();
        wg.wait();
        assert_eq!((cells[0].read(), cells[1].read()), (1, 2));
        assert_eq!(wg.count(), 0);
        for d in doers {
            d.join().unwrap();
        }
    });
}

/// A releaser writes a cell and gives a permit back while the acquirer may be going to
/// sleep: the acquirer gets the permit (M2/M3 vs M4) and sees the write (M2 → M1).
fn semaphore_release_vs_acquire() {
    model_capped(3, 3, || {
        let sem = std::sync::Arc::new(Semaphore::new(0));
        let cell = Arc::new(Cell(UnsafeCell::new(0)));
        let releaser = {
            let (sem, cell) = (sem.clone(), cell.clone());
            thread::spawn(move || {
                cell.write(7);
                sem.add_permits(1);
            })
        };
        let p = sem.acquire();
        assert_eq!(cell.read(), 7);
        assert_eq!(sem.available_permits(), 0, "one permit, held once");
        drop(p);
        releaser.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

/// Two acquirers, one permit handed back and forth: never two holders at once, nobody
/// left asleep.
fn semaphore_two_acquirers() {
    model_capped(2, 2, || {
        let sem = std::sync::Arc::new(Semaphore::new(1));
        let held = Arc::new(loom::sync::atomic::AtomicUsize::new(0));
        let other = {
            let (sem, held) = (sem.clone(), held.clone());
            thread::spawn(move || {
                let _p = sem.acquire();
                // Relaxed: a count guarded by the permit itself.
                assert_eq!(held.fetch_add(1, loom::sync::atomic::Ordering::Relaxed), 0);
                held.fetch_sub(1, loom::sync::atomic::Ordering::Relaxed);
            })
        };
        {
            let _p = sem.acquire();
            // Relaxed: as above.
            assert_eq!(held.fetch_add(1, loom::sync::atomic::Ordering::Relaxed), 0);
            held.fetch_sub(1, loom::sync::atomic::Ordering::Relaxed);
        }
        other.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

/// M6: B and A wait for a permit; C wakes both spuriously (as the scheduler wakes a
/// worker's parker) and then releases one permit, which M3 hands to one of them. The
/// other may barge in and take it while still listed; it must leave the list on the way
/// out, or its stale entry absorbs the unpark of its own release and the waiter M3 picked,
/// who re-registered after losing the race, sleeps beside a free permit.
fn semaphore_spurious_wake_barges() {
    model_capped(2, 2, || {
        let sem = std::sync::Arc::new(Semaphore::new(0));
        let b = {
            let sem = sem.clone();
            thread::spawn(move || drop(sem.acquire()))
        };
        let c = {
            let sem = sem.clone();
            thread::spawn(move || {
                sem.loom_wake_listed();
                sem.add_permits(1);
            })
        };
        drop(sem.acquire());
        b.join().unwrap();
        c.join().unwrap();
        assert_eq!(sem.available_permits(), 1);
    });
}

/// M6's hand-on: as above, but C releases twice and neither waiter gives its permit
/// back. If B barged in while listed and C's second release then picks B's entry, that
/// wake-up was spent on a waiter that no longer needs it; B must pass it to A on the way
/// out, or A sleeps forever beside a free permit.
///
/// The losing schedule needs three preemptions (C→B after the first release, B→A before
/// B leaves, and A's re-registration before C's second release), so this model runs at
/// bound 3 whatever `LOOM_MAX_PREEMPTIONS` says (under a second either way).
fn semaphore_spent_wake_passed_on() {
    let mut b = loom::model::Builder::new();
    b.preemption_bound = Some(3);
    b.check(|| {
        let sem = std::sync::Arc::new(Semaphore::new(0));
        let b = {
            let sem = sem.clone();
            thread::spawn(move || std::mem::forget(sem.acquire()))
        };
        let c = {
            let sem = sem.clone();
            thread::spawn(move || {
                sem.loom_wake_listed();
                sem.add_permits(1);
                sem.add_permits(1);
            })
        };
        std::mem::forget(sem.acquire());
        b.join().unwrap();
        c.join().unwrap();
        assert_eq!(sem.available_permits(), 0);
    });
}

#[test]
fn wait_group_done_vs_wait_model() {
    wait_group_done_vs_wait();
}

#[test]
fn semaphore_release_vs_acquire_model() {
    semaphore_release_vs_acquire();
}

#[test]
fn semaphore_two_acquirers_model() {
    semaphore_two_acquirers();
}

#[test]
fn semaphore_spurious_wake_barges_model() {
    semaphore_spurious_wake_barges();
}

#[test]
fn semaphore_spent_wake_passed_on_model() {
    semaphore_spent_wake_passed_on();
}

mutant_test!(
    /// W2 without AcqRel: the waiter returns without the doers' writes ordered before it.
    mutant_wait_group_done_acq_rel_caught_by_done_vs_wait,
    WaitGroupDoneAcqRel,
    wait_group_done_vs_wait,
    "Causality violation"
);

mutant_test!(
    /// M2 without Release: the acquirer holds the permit without the releaser's writes.
    mutant_semaphore_release_caught_by_release_vs_acquire,
    SemaphoreReleaseRelease,
    semaphore_release_vs_acquire,
    "Causality violation"
);

mutant_test!(
    /// W4 without setting `WAITERS`: the last `done` does not look at the list, and the
    /// parked waiter sleeps forever.
    mutant_wait_group_set_waiters_caught_by_done_vs_wait,
    WaitGroupSetWaiters,
    wait_group_done_vs_wait,
    "deadlock"
);

mutant_test!(
    /// M4 without re-checking the permits under the lock: a release that came just before
    /// saw no `WAITERS`, and the acquirer parks with a permit free.
    mutant_semaphore_register_check_caught_by_release_vs_acquire,
    SemaphoreRegisterCheck,
    semaphore_release_vs_acquire,
    "deadlock"
);

mutant_test!(
    /// M6 without leaving the list: a waiter that barged in while listed leaves a stale
    /// entry, its release unparks only itself, and the other waiter sleeps forever.
    mutant_semaphore_leave_unlists_caught_by_spurious_wake_barges,
    SemaphoreLeaveUnlists,
    semaphore_spurious_wake_barges,
    "deadlock"
);

mutant_test!(
    /// M6 without passing on a wake-up spent on a waiter that had already barged in: the
    /// other waiter sleeps beside a free permit while the first waits for it.
    mutant_semaphore_leave_passes_on_caught_by_spent_wake_passed_on,
    SemaphoreLeavePassesOn,
    semaphore_spent_wake_passed_on,
    "deadlock"
);
