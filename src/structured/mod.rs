//! Layer 5, structured concurrency: `join` on stack jobs, `scope` and scoped handles,
//! `parallel_for`, reduce/map/sort, batch spawns and result sets.

pub(crate) mod fork;
pub(crate) mod group;
pub(crate) mod join_set;
pub(crate) mod parallel;
pub(crate) mod reduce;
pub(crate) mod scope;
pub(crate) mod scoped_handle;
pub(crate) mod sort;
