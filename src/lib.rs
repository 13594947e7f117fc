//! filch: a lock-free, work-stealing task scheduler.
//!
//! The verified core, usable on its own:
//! - [`deque`]: a bounded Chase–Lev work-stealing deque (owner push/pop, thief
//!   steal/steal_batch) on explicit atomics and fences.
//! - [`pool`]: a fixed, pre-allocated slot pool with lock-free, ABA-safe allocation and
//!   per-thread caches; no heap allocation after construction.
//!
//! Every concurrent structure is model-checked with loom (`make loom`) and tested
//! against sequential models with proptest; see `docs/VERIFICATION.md`.
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_docs)]

pub mod deque;
pub mod pool;
#[doc(hidden)]
pub mod sync;
