//! Parking a thread: the last stage of filch's spin → `sched_yield` → park idling.
//!
//! A [`Parker`] holds at most one *token*. [`Parker::unpark`] makes the token available
//! (tokens do not accumulate: two unparks before a park leave one token) and wakes the
//! parked thread if there is one. [`Parker::park`] blocks until a token is available and
//! consumes it; [`Parker::park_timeout`] gives up after a duration. One thread at a time
//! parks on a given `Parker` (its owner); any thread may unpark it.
//!
//! The design is the futex parker of Rust's `std` (`sys/sync/thread_parking/futex.rs`):
//! a three-valued state word, and a system call only when a thread really goes to sleep
//! or really has to be woken. filch's deviations: `park` and `park_timeout` hide spurious
//! futex returns from the caller (std's may return spuriously), the state word sits alone
//! on its cache line, and the blocking half is a small [`Wait`] trait whose two
//! implementations share the state machine below, so the loom build model-checks the same
//! protocol as production:
//!
//! - `Futex` (Linux, not loom): `FUTEX_WAIT_PRIVATE` / `FUTEX_WAKE_PRIVATE` on the state
//!   word itself, through `libc::syscall(SYS_futex, ..)`.
//! - `CondvarFutex` (other systems, and every loom build): a futex emulated with a
//!   `Mutex<()>` and a `Condvar` from [`crate::shim`] — loom's under `cfg(loom)`.
//!
//! # The state word
//!
//! | value | name | meaning |
//! |-------|------|---------|
//! | `0` | `EMPTY` | no token; the owner is not parked |
//! | `1` | `NOTIFIED` | a token is available |
//! | `u32::MAX` (`EMPTY - 1`) | `PARKED` | no token; the owner is parked or about to sleep in `wait` |
//!
//! `PARKED` is `EMPTY - 1` so that P1's single `fetch_sub(1)` both consumes a token
//! (`NOTIFIED → EMPTY`) and announces a sleeper (`EMPTY → PARKED`).
//!
//! # Protocol
//!
//! - **P1 (announce or consume)**: `park` does `fetch_sub(1)`. From `NOTIFIED` it consumed
//!   the token and returns at once — no system call. From `EMPTY` the state is now
//!   `PARKED`: go to P2.
//! - **P2 (sleep)**: `wait(state, PARKED)`: the kernel (or the emulation's mutex) re-reads
//!   the word and sleeps only if it is still `PARKED`, atomically with respect to U2.
//! - **P3 (woken)**: after any return from `wait` (a wake-up, a signal, a stale wake, a
//!   timeout), CAS `NOTIFIED → EMPTY`. Success consumes the token and returns; failure was a
//!   spurious return: back to P2. The caller never sees a spurious return.
//! - **T1 (give up)**: `park_timeout` past its deadline swaps the state to `EMPTY`; if it
//!   was `NOTIFIED` a token arrived after all and was consumed (returns `true`).
//! - **U1 (notify)**: `unpark` swaps the state to `NOTIFIED`. If it was `EMPTY` or
//!   `NOTIFIED` nobody sleeps: done, no system call.
//! - **U2 (wake)**: if U1 saw `PARKED`, wake the sleeper (`FUTEX_WAKE`, one waiter).
//!
//! No wake-up is lost: U1 happens before or after P1 in the state word's modification
//! order. Before: P1 reads `NOTIFIED` and returns. After: U1 reads `PARKED` and U2 wakes a
//! sleeper that P2 either has not started (its re-read of the word sees `NOTIFIED` and it
//! does not sleep) or has (the wake reaches it).
//!
//! # Orderings
//!
//! | step | access | ordering | partner |
//! |------|--------|----------|---------|
//! | U1 | `unpark`: swap to `NOTIFIED` | Release | P1 / P3 / T1: the unparker's writes before `unpark` happen before the parker's return. A swap, never "load, then store if needed": an unpark that finds a token already there must still publish *its* writes, and as an RMW it joins the release sequence of the earlier unpark |
//! | P1 | `park`: `fetch_sub(1)` | Acquire | U1, when it consumes a token. Announcing `PARKED` publishes nothing, so no Release |
//! | P3 | `park`: CAS `NOTIFIED → EMPTY` after `wait` | Acquire (failure: Relaxed) | U1. A failed CAS consumed nothing and reads nothing else |
//! | T1 | `park_timeout`: swap to `EMPTY` | Acquire | U1, when it finds `NOTIFIED` |
//! | W1 | `CondvarFutex`: load of the word under the mutex | Relaxed | the mutex: U2 takes it after U1, so a W1 that locks after U2 sees U1's store (coherence through happens-before) |
//!
//! A thread's writes before `unpark` are visible to the parked thread after `park` returns
//! (U1 → P1/P3/T1); that is the only ordering a caller gets. Every ordering above that loom
//! can observe is written through [`crate::shim::mutation`] (`Site::ParkAcquire`,
//! `Site::UnparkRelease`, and `Site::ParkKeepToken` for U1 leaving a token when nobody is
//! parked yet); `loom-tests/park.rs` shows each one's mutant fail a model.
//!
//! # Costs (design notes §4; 2 vCPU KVM guest)
//!
//! | path | cost |
//! |------|------|
//! | `unpark` with nobody parked | one swap: ~2 ns, ~28 ns if the line is on the other core |
//! | `park` with a token waiting | one `fetch_sub`: ~2–28 ns |
//! | `unpark` of a sleeper (U2) | `FUTEX_WAKE`: ~240 ns plus the wake-up it starts |
//! | park → unpark → running again | futex wait→wake round trip: **45–52 µs** (the vCPU halts and the hypervisor wakes it) |
//!
//! So a worker parks only after spinning and yielding found nothing: a park that is undone
//! 1 µs later costs fifty times what it saved. [`yield_now`] (`sched_yield`, ~0.5 µs) is
//! the stage before.
//!
//! # Under loom
//!
//! loom has no time, and its `Condvar::wait_timeout` blocks like `wait`. So under
//! `cfg(loom)` `park_timeout` treats its timeout as already expired once P1 has announced
//! `PARKED`: it does not block, and T1 runs at once. A model therefore sees `park_timeout`
//! as a non-blocking "consume a token if one is there", which still exercises T1 and an
//! unpark that finds `PARKED` and wakes nobody. `park` blocks for real (loom reports a
//! deadlock if no unpark ever comes).

use std::fmt;
use std::time::Duration;
#[cfg(not(loom))]
use std::time::Instant;

use crate::shim::atomic::{AtomicU32, Ordering::*};
use crate::shim::mutation::{self, Site};
use crate::shim::{Arc, CachePadded};

/// No token; the owner is not parked.
const EMPTY: u32 = 0;
/// A token is available.
const NOTIFIED: u32 = 1;
/// No token; the owner is parked, or about to sleep in `wait`. `EMPTY - 1` (see P1).
const PARKED: u32 = EMPTY.wrapping_sub(1);

/// The blocking half of a parker: a futex, or something that behaves like one.
pub(crate) trait Wait: Default {
    /// Sleeps while `*word == expected`, until [`Wait::wake`], `timeout`, or a spurious
    /// return. The comparison and the going to sleep are atomic with respect to `wake`.
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>);

    /// Wakes one thread sleeping in [`Wait::wait`] on `word`, if there is one.
    fn wake(&self, word: &AtomicU32);
}

/// The Linux futex: the kernel keys its wait queue by the state word's address.
#[cfg(all(target_os = "linux", not(loom)))]
#[derive(Debug, Default)]
pub(crate) struct Futex;

#[cfg(all(target_os = "linux", not(loom)))]
impl Wait for Futex {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        let ts = timeout.map(|d| libc::timespec {
            tv_sec: libc::time_t::try_from(d.as_secs()).unwrap_or(libc::time_t::MAX),
            // Below 10^9: fits every target's `c_long`.
            tv_nsec: d.subsec_nanos() as libc::c_long,
        });
        let ts_ptr = ts.as_ref().map_or(std::ptr::null(), |t| t as *const libc::timespec);
        // FUTEX_WAIT reads the aligned `u32` behind `word`, which the borrow keeps alive for
        // the call, and the `timespec` behind `ts_ptr` (null, or `ts`, alive until the end of
        // this function). Every early return (EAGAIN: the word changed; EINTR; ETIMEDOUT) is
        // handled by the caller's re-check of the word (P3), so the result is not needed.
        // SAFETY: both pointers are valid for the call, as above; no other memory effects.
        unsafe {
            libc::syscall(
                libc::SYS_futex,
                word.as_ptr(),
                libc::FUTEX_WAIT | libc::FUTEX_PRIVATE_FLAG,
                expected,
                ts_ptr,
            )
        };
    }

    fn wake(&self, word: &AtomicU32) {
        // SAFETY: FUTEX_WAKE uses the address only as the key of the kernel's wait queue;
        // it reads and writes no user memory.
        unsafe {
            libc::syscall(libc::SYS_futex, word.as_ptr(), libc::FUTEX_WAKE | libc::FUTEX_PRIVATE_FLAG, 1)
        };
    }
}

/// A futex emulated with a mutex and a condition variable (both from [`crate::shim`], so
/// loom's doubles under `cfg(loom)`). On Linux outside loom it is compiled only for the
/// unit tests, which run the parker's state machine on both backends.
#[cfg(any(not(target_os = "linux"), loom, test))]
#[derive(Debug, Default)]
pub(crate) struct CondvarFutex {
    lock: crate::shim::Mutex<()>,
    cvar: crate::shim::Condvar,
}

#[cfg(any(not(target_os = "linux"), loom, test))]
impl Wait for CondvarFutex {
    fn wait(&self, word: &AtomicU32, expected: u32, timeout: Option<Duration>) {
        // The mutex guards `()`: a poisoned lock carries no broken invariant.
        let guard = self.lock.lock().unwrap_or_else(|e| e.into_inner());
        // W1, Relaxed: the mutex orders this load after U1 whenever `wake` locked first;
        // otherwise we are waiting (lock released) before `wake` can notify.
        if word.load(Relaxed) != expected {
            return;
        }
        match timeout {
            None => drop(self.cvar.wait(guard)),
            Some(d) => drop(self.cvar.wait_timeout(guard, d)),
        }
    }

    fn wake(&self, _word: &AtomicU32) {
        // Lock and unlock before notifying: a waiter between its W1 load and its wait holds
        // the lock, so we cannot notify into that gap.
        drop(self.lock.lock().unwrap_or_else(|e| e.into_inner()));
        self.cvar.notify_one();
    }
}

/// The backend [`Parker`] uses in this build.
#[cfg(all(target_os = "linux", not(loom)))]
type Backend = Futex;
#[cfg(not(all(target_os = "linux", not(loom))))]
type Backend = CondvarFutex;

/// The state machine of the module docs over any [`Wait`] backend.
#[derive(Default)]
struct RawParker<W: Wait> {
    /// The state word (table in the module docs), alone on its cache line: an unparker's
    /// swap should not invalidate anything else of the owner's.
    state: CachePadded<AtomicU32>,
    waiter: W,
}

impl<W: Wait> RawParker<W> {
    /// P1. Returns `true` if it consumed a token (the caller returns at once).
    #[inline]
    fn announce(&self) -> bool {
        // P1, Acquire: pairs with U1's Release swap when this consumes the token.
        match self.state.fetch_sub(1, mutation::ord(Site::ParkAcquire, Acquire)) {
            NOTIFIED => true,
            EMPTY => false,
            _ => self.second_parker(),
        }
    }

    /// P1 found `PARKED`: another thread is parked on this parker, which breaks the one-owner
    /// contract. Undo the decrement and stop loudly rather than hang.
    #[cold]
    #[inline(never)]
    fn second_parker(&self) -> ! {
        // Relaxed: the contract is broken; this only repairs the count for the other parker.
        self.state.fetch_add(1, Relaxed);
        panic!("filch::park: two threads parked on one Parker at once");
    }

    /// P3. Whether a token was there to consume after `wait` returned.
    #[inline]
    fn consume_after_wait(&self) -> bool {
        // P3, Acquire: pairs with U1's Release swap. Failure Relaxed: nothing was consumed.
        self.state
            .compare_exchange(NOTIFIED, EMPTY, mutation::ord(Site::ParkAcquire, Acquire), Relaxed)
            .is_ok()
    }

    fn park(&self) {
        if self.announce() {
            return;
        }
        loop {
            // P2.
            self.waiter.wait(&self.state, PARKED, None);
            if self.consume_after_wait() {
                return;
            }
        }
    }

    fn park_timeout(&self, timeout: Duration) -> bool {
        if self.announce() {
            return true;
        }
        #[cfg(not(loom))]
        {
            // `None`: the deadline is beyond `Instant`'s range; wait without one.
            let deadline = Instant::now().checked_add(timeout);
            loop {
                let left = match deadline {
                    Some(d) => match d.checked_duration_since(Instant::now()) {
                        Some(left) if !left.is_zero() => Some(left),
                        _ => break,
                    },
                    None => None,
                };
                // P2, with the time left.
                self.waiter.wait(&self.state, PARKED, left);
                if self.consume_after_wait() {
                    return true;
                }
            }
        }
        // Under loom the timeout counts as expired at once (module docs, "Under loom").
        #[cfg(loom)]
        let _ = timeout;
        // T1, Acquire: pairs with U1's Release swap when a token arrived after all.
        self.state.swap(EMPTY, mutation::ord(Site::ParkAcquire, Acquire)) == NOTIFIED
    }

    #[inline]
    fn unpark(&self) {
        // U1, Release: publishes the caller's writes before this call; pairs with the
        // Acquire of P1 / P3 / T1 in whichever park consumes the token.
        let release = mutation::ord(Site::UnparkRelease, Release);
        let old = if mutation::keep(Site::ParkKeepToken) {
            self.state.swap(NOTIFIED, release)
        } else {
            // Mutant: leave a token only for a thread already parked; an unpark that comes
            // before the park is forgotten.
            match self.state.compare_exchange(PARKED, NOTIFIED, release, Relaxed) {
                Ok(old) | Err(old) => old,
            }
        };
        if old == PARKED {
            self.wake();
        }
    }

    /// U2: the owner sleeps, or is about to (P2 re-reads the word first).
    #[cold]
    #[inline(never)]
    fn wake(&self) {
        self.waiter.wake(&self.state);
    }
}

/// A one-token parker: the scheduler parks an idle worker (or a blocked joiner) on it.
///
/// One thread at a time may park on a `Parker` (a second concurrent `park` panics); any
/// number may unpark it. `Send + Sync`; share it through an `Arc`.
///
/// `pub` (in a crate-private module) only so that `filch::sync` can re-export it, hidden,
/// for the loom suite in `loom-tests/`, a separate crate; it is not filch's API.
#[derive(Default)]
pub struct Parker {
    inner: RawParker<Backend>,
}

impl Parker {
    /// A parker with no token.
    pub fn new() -> Self {
        Self::default()
    }

    /// Blocks until a token is available, then consumes it. Returns at once, without a
    /// system call, if the token is already there. Never returns spuriously.
    pub fn park(&self) {
        self.inner.park();
    }

    /// Like [`Parker::park`], but gives up once `timeout` has passed. Returns whether it
    /// consumed a token. Under loom it never blocks (module docs).
    pub fn park_timeout(&self, timeout: Duration) -> bool {
        self.inner.park_timeout(timeout)
    }

    /// [`Parker::park`] without a deadline, else [`Parker::park_timeout`] until it.
    pub(crate) fn park_until(&self, deadline: Option<std::time::Instant>) {
        match deadline {
            None => self.park(),
            Some(d) => {
                self.park_timeout(d.saturating_duration_since(std::time::Instant::now()));
            }
        }
    }

    /// Makes the token available (at most one is kept) and wakes the parked thread, if any.
    /// Without a parked thread it is one atomic swap and no system call.
    ///
    /// Everything the caller wrote before `unpark` is visible to the parker after the
    /// `park` that consumes this token returns.
    #[inline]
    pub fn unpark(&self) {
        self.inner.unpark();
    }
}

impl Parker {
    /// A `Waker` that unparks `this`: cloning and dropping it move the `Arc`'s count, and
    /// nothing is allocated.
    pub(crate) fn waker(this: &Arc<Parker>) -> std::task::Waker {
        let raw = std::task::RawWaker::new(Arc::into_raw(this.clone()).cast(), &PARKER_WAKER);
        // SAFETY: the vtable's contract holds for a pointer from `Arc::into_raw`.
        unsafe { std::task::Waker::from_raw(raw) }
    }
}

/// Whether `w` is a parker's waker (`Parker::waker`): its clone, wake and drop run no user
/// code and never panic.
#[inline]
pub(crate) fn is_parker_waker(w: &std::task::Waker) -> bool {
    std::ptr::eq(w.vtable(), &PARKER_WAKER)
}

static PARKER_WAKER: std::task::RawWakerVTable =
    std::task::RawWakerVTable::new(parker_clone, parker_wake, parker_wake_by_ref, parker_drop);

unsafe fn parker_clone(p: *const ()) -> std::task::RawWaker {
    // SAFETY: `p` came from `Arc::into_raw` of a live `Arc<Parker>` (the waker cloned).
    unsafe { Arc::increment_strong_count(p.cast::<Parker>()) };
    std::task::RawWaker::new(p, &PARKER_WAKER)
}

unsafe fn parker_wake(p: *const ()) {
    // SAFETY: as in `parker_clone`; this consumes the waker's count.
    unsafe { Arc::from_raw(p.cast::<Parker>()) }.unpark();
}

unsafe fn parker_wake_by_ref(p: *const ()) {
    // SAFETY: as in `parker_clone`.
    unsafe { &*p.cast::<Parker>() }.unpark();
}

unsafe fn parker_drop(p: *const ()) {
    // SAFETY: as in `parker_clone`; gives the waker's count back.
    drop(unsafe { Arc::from_raw(p.cast::<Parker>()) });
}

impl fmt::Debug for Parker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Relaxed: a snapshot for humans.
        let state = match self.inner.state.load(Relaxed) {
            EMPTY => "empty",
            NOTIFIED => "notified",
            _ => "parked",
        };
        f.debug_struct("Parker").field("state", &state).finish()
    }
}

/// Gives the CPU to another runnable thread: `sched_yield` (~0.5 µs here) outside loom,
/// loom's `yield_now` (a scheduling point of the model) under it.
#[inline]
#[allow(dead_code)] // used by the runtime, not by every build of the crate
pub(crate) fn yield_now() {
    #[cfg(all(unix, not(loom)))]
    {
        // SAFETY: `sched_yield` takes no arguments and touches no memory of ours; its only
        // failure mode on Linux is none (it always returns 0).
        unsafe { libc::sched_yield() };
    }
    #[cfg(not(all(unix, not(loom))))]
    crate::shim::thread::yield_now();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;
    use std::sync::{Arc, Barrier};

    /// Spins (with yields) until the owner has announced `PARKED`, so that the next unpark
    /// exercises U2 and the backend's wake, not the token fast path.
    fn until_parked<W: Wait>(p: &RawParker<W>) {
        while p.state.load(Relaxed) != PARKED {
            std::thread::yield_now();
        }
    }

    fn token_before_park_returns_immediately<W: Wait>() {
        let p = RawParker::<W>::default();
        p.unpark();
        p.park();
        // Two unparks leave one token.
        p.unpark();
        p.unpark();
        assert!(p.park_timeout(Duration::from_secs(3600)));
        assert!(!p.park_timeout(Duration::from_millis(1)), "tokens must not accumulate");
        assert_eq!(p.state.load(Relaxed), EMPTY);
    }

    fn park_timeout_without_token_returns_false<W: Wait>() {
        let p = RawParker::<W>::default();
        assert!(!p.park_timeout(Duration::ZERO));
        assert!(!p.park_timeout(Duration::from_millis(5)));
        assert_eq!(p.state.load(Relaxed), EMPTY, "a timed-out park leaves the state empty");
        // A deadline beyond `Instant`'s range still returns once a token comes.
        p.unpark();
        assert!(p.park_timeout(Duration::MAX));
    }

    /// Ping-pong: the parked thread is woken by another thread's unpark, many times, with
    /// the unpark landing after the owner announced `PARKED` (U2 path).
    fn cross_thread_unpark_wakes<W: Wait + Send + Sync + 'static>() {
        const ROUNDS: usize = 200;
        let p = Arc::new(RawParker::<W>::default());
        let start = Arc::new(Barrier::new(2));
        let th = {
            let (p, start) = (p.clone(), start.clone());
            std::thread::spawn(move || {
                start.wait();
                for _ in 0..ROUNDS {
                    p.park();
                }
                assert!(p.park_timeout(Duration::from_secs(3600)), "woken from a timed park");
            })
        };
        start.wait();
        for _ in 0..ROUNDS {
            until_parked(&p);
            p.unpark();
        }
        until_parked(&p);
        p.unpark();
        th.join().unwrap();
        assert_eq!(p.state.load(Relaxed), EMPTY);
    }

    #[test]
    fn futex_token_before_park_returns_immediately() {
        token_before_park_returns_immediately::<Backend>();
    }

    #[test]
    fn condvar_token_before_park_returns_immediately() {
        token_before_park_returns_immediately::<CondvarFutex>();
    }

    #[test]
    fn futex_park_timeout_without_token_returns_false() {
        park_timeout_without_token_returns_false::<Backend>();
    }

    #[test]
    fn condvar_park_timeout_without_token_returns_false() {
        park_timeout_without_token_returns_false::<CondvarFutex>();
    }

    #[test]
    fn futex_cross_thread_unpark_wakes() {
        cross_thread_unpark_wakes::<Backend>();
    }

    #[test]
    fn condvar_cross_thread_unpark_wakes() {
        cross_thread_unpark_wakes::<CondvarFutex>();
    }

    #[test]
    fn parker_api_and_debug() {
        let p = Parker::new();
        assert_eq!(format!("{p:?}"), r#"Parker { state: "empty" }"#);
        p.unpark();
        assert_eq!(format!("{p:?}"), r#"Parker { state: "notified" }"#);
        p.park();
        assert!(!p.park_timeout(Duration::from_millis(1)));
        yield_now();
    }

    #[test]
    fn second_parker_panics() {
        let p = RawParker::<Backend>::default();
        p.state.store(PARKED, Relaxed); // as if another thread were parked
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| p.park()));
        assert!(r.is_err());
        assert_eq!(p.state.load(Relaxed), PARKED, "the other parker's state is restored");
    }
}
