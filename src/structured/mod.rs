//! Layer 5, structured concurrency: `join` on stack jobs, `scope`, `parallel_for`, batch
//! spawns.

pub(crate) mod fork;
pub(crate) mod group;
pub(crate) mod parallel;
pub(crate) mod scope;
