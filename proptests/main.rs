//! Property tests: filch's structures against sequential models, and concurrent
//! exactly-once properties. Ordinary builds only (under `--cfg loom` the loom suite
//! covers the same code).
#![cfg(not(loom))]

mod chan;
mod data_parallel;
mod deque;
mod pool;
