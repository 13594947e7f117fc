//! Loom models of `filch::park` (the `Parker`, re-exported hidden as `filch::sync::Parker`).
//!
//! Under loom the parker runs its production state machine over loom's `Mutex` +
//! `Condvar` instead of a futex (`src/park.rs`, "Under loom"). `park` blocks for real, so
//! a lost wake-up shows as loom's `deadlock` panic; `park_timeout` never blocks (loom has
//! no time): it consumes a token if one is there.
//!
//! Each model checks liveness (the parked thread always gets out) and, where a payload is
//! involved, publication: the unparker writes a `loom::cell::UnsafeCell` before `unpark`
//! and the parker reads it after the `park` that consumed the token, so a missing
//! Release/Acquire pair is a `Causality violation`. The `mutant_*` tests at the bottom
//! weaken one site each and run the model that catches it.

use std::time::Duration;

use filch::sync::mutation::{self, Site};
use filch::sync::Parker;
use loom::cell::UnsafeCell;
use loom::sync::atomic::{AtomicBool, Ordering::Relaxed};
use loom::sync::Arc;
use loom::thread;

use crate::model;

struct Shared {
    parker: Parker,
    flags: [AtomicBool; 2],
    payload: UnsafeCell<usize>,
}

impl Shared {
    fn new() -> Arc<Shared> {
        Arc::new(Shared {
            parker: Parker::new(),
            flags: [AtomicBool::new(false), AtomicBool::new(false)],
            payload: UnsafeCell::new(0),
        })
    }

    fn write_payload(&self, v: usize) {
        // SAFETY: test code: the only writer; loom checks every read is ordered after it.
        self.payload.with_mut(|p| unsafe { *p = v });
    }

    fn read_payload(&self) -> usize {
        // SAFETY: test code; see `write_payload`.
        self.payload.with(|p| unsafe { *p })
    }
}

/// One thread sets a flag, then unparks; the owner loops `while !flag { park() }`. The
/// flag is Relaxed on both sides: only the token (U1's Release, P1/P3's Acquire) makes
/// the store visible after a park, so the loop must end (no deadlock) for that reason.
fn flag_then_unpark() {
    model(3, || {
        let s = Shared::new();
        let th = {
            let s = s.clone();
            thread::spawn(move || {
                s.flags[0].store(true, Relaxed);
                s.parker.unpark();
            })
        };
        while !s.flags[0].load(Relaxed) {
            s.parker.park();
        }
        th.join().unwrap();
    });
}

/// The unparker writes a payload, then unparks; the owner parks once, then reads it: the
/// one token can only come from that unpark, so `park` returning orders the read.
fn unpark_publishes() {
    model(3, || {
        let s = Shared::new();
        let th = {
            let s = s.clone();
            thread::spawn(move || {
                s.write_payload(42);
                s.parker.unpark();
            })
        };
        s.parker.park();
        assert_eq!(s.read_payload(), 42);
        th.join().unwrap();
    });
}

/// Two unparkers race one parker that needs to see both flags. Afterwards at most one
/// token is left: tokens do not accumulate.
fn two_unparks_one_park() {
    model(3, || {
        let s = Shared::new();
        let ths: Vec<_> = (0..2)
            .map(|i| {
                let s = s.clone();
                thread::spawn(move || {
                    s.flags[i].store(true, Relaxed);
                    s.parker.unpark();
                })
            })
            .collect();
        while !(s.flags[0].load(Relaxed) && s.flags[1].load(Relaxed)) {
            s.parker.park();
        }
        for th in ths {
            th.join().unwrap();
        }
        let _ = s.parker.park_timeout(Duration::ZERO);
        assert!(!s.parker.park_timeout(Duration::ZERO), "tokens must not accumulate");
    });
}

/// `park_timeout` (non-blocking under loom) against an unpark: if it reports a token the
/// payload is visible (T1's Acquire); if not, the token is still there once the unparker is
/// done (T1 never swallows a token it does not report, and an unpark that comes before any
/// park leaves one).
fn park_timeout_vs_unpark() {
    model(3, || {
        let s = Shared::new();
        let th = {
            let s = s.clone();
            thread::spawn(move || {
                s.write_payload(7);
                s.parker.unpark();
            })
        };
        let got = s.parker.park_timeout(Duration::from_secs(1));
        if got {
            assert_eq!(s.read_payload(), 7);
        }
        th.join().unwrap();
        if !got {
            // The unpark is done: its token must be here now.
            assert!(s.parker.park_timeout(Duration::ZERO), "the unpark's token was lost");
        }
        assert!(!s.parker.park_timeout(Duration::ZERO), "exactly one token was made");
    });
}

#[test]
fn park_flag_then_unpark() {
    flag_then_unpark();
}

#[test]
fn park_unpark_publishes() {
    unpark_publishes();
}

#[test]
fn park_two_unparks_one_park() {
    two_unparks_one_park();
}

#[test]
fn park_timeout_races_unpark() {
    park_timeout_vs_unpark();
}

// Mutation evidence: each test weakens one site and runs the model that catches it; it
// passes only if the model fails. Liveness failures (a lost wake-up) are loom deadlocks,
// which abort the process, so those run in a child process (`expect_deadlock`).

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_park_acquire_caught_by_unpark_publishes() {
    mutation::set(Site::ParkAcquire);
    unpark_publishes();
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_park_acquire_caught_by_park_timeout_vs_unpark() {
    mutation::set(Site::ParkAcquire);
    park_timeout_vs_unpark();
}

#[test]
fn mutant_park_acquire_caught_by_flag_then_unpark() {
    expect_deadlock("park::mutant_park_acquire_caught_by_flag_then_unpark", || {
        mutation::set(Site::ParkAcquire);
        flag_then_unpark();
    });
}

#[test]
#[should_panic(expected = "Causality violation")]
fn mutant_unpark_release_caught_by_unpark_publishes() {
    mutation::set(Site::UnparkRelease);
    unpark_publishes();
}

#[test]
fn mutant_unpark_release_caught_by_two_unparks_one_park() {
    expect_deadlock("park::mutant_unpark_release_caught_by_two_unparks_one_park", || {
        mutation::set(Site::UnparkRelease);
        two_unparks_one_park();
    });
}

#[test]
fn mutant_park_keep_token_caught_by_flag_then_unpark() {
    expect_deadlock("park::mutant_park_keep_token_caught_by_flag_then_unpark", || {
        mutation::set(Site::ParkKeepToken);
        flag_then_unpark();
    });
}

#[test]
#[should_panic(expected = "the unpark's token was lost")]
fn mutant_park_keep_token_caught_by_park_timeout_vs_unpark() {
    mutation::set(Site::ParkKeepToken);
    park_timeout_vs_unpark();
}

/// Set in the environment of the child process `expect_deadlock` starts.
const CHILD_ENV: &str = "FILCH_LOOM_EXPECT_DEADLOCK_CHILD";

/// Runs `model` in a child process (this test binary, filtered to the test `name`) and
/// asserts that loom reported a deadlock there.
///
/// A `#[should_panic]` test cannot do this in-process: loom panics on a deadlock while the
/// blocked threads still hold loom objects (a `MutexGuard` inside `Condvar::wait`), and
/// dropping those during the unwind panics again, which aborts the process. The child's
/// abort is the expected outcome; the parent checks its exit status and loom's message.
fn expect_deadlock(name: &str, model: impl FnOnce()) {
    if std::env::var_os(CHILD_ENV).is_some() {
        model();
        return;
    }
    let out = std::process::Command::new(std::env::current_exe().expect("the test binary's path"))
        .args(["--exact", name, "--test-threads=1", "--nocapture"])
        .env(CHILD_ENV, "1")
        .env("RUST_BACKTRACE", "0")
        .output()
        .expect("start the child test process");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the mutant was not caught: the model passed\n{stderr}");
    assert!(
        stderr.contains("deadlock; threads"),
        "the model failed, but not with loom's deadlock:\n{stderr}"
    );
}
