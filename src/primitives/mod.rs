//! Layer 4, synchronization primitives for tasks: `CancelToken`, `WaitGroup`, `Semaphore`,
//! and the wait list their slow paths share.

pub(crate) mod cancel;
pub(crate) mod semaphore;
pub(crate) mod wait_group;
pub(crate) mod waitlist;
