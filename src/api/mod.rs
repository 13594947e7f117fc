//! Layer 6, the public facade: `Builder` and `Scheduler`/`Handle`. The free functions
//! (`filch::spawn`, `filch::join`, …) are in the crate root.

pub(crate) mod builder;
pub(crate) mod scheduler;
