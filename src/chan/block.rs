//! The one way a channel operation blocks a thread.
//!
//! Every blocking form (`send_blocking`, `recv_timeout`, a `select`'s `wait`, the
//! receiver's iterator) registers [`thread_waker`] in its waiter entry and then calls
//! [`block_until`] with "my token fired" as the condition. Off the workers that parks the
//! thread. On a worker (a closure task blocking on a channel) the worker's role — its
//! queue of tasks — goes to a spare thread while this thread waits, and comes back after
//! (`runtime/roles.rs`), so a blocked task does not take a worker from the pool.

use std::task::Waker;
use std::time::Instant;

/// Blocks the calling thread until `ready()` holds (re-checked after every wake-up;
/// spurious wake-ups happen) or `deadline` passes; returns whether `ready()` held.
pub(crate) fn block_until(ready: &dyn Fn() -> bool, deadline: Option<Instant>) -> bool {
    crate::runtime::worker::block_until(ready, deadline)
}

/// The waker that ends a `block_until` on this thread (its wake unparks the thread).
pub(crate) fn thread_waker() -> Waker {
    crate::runtime::worker::thread_waker()
}
