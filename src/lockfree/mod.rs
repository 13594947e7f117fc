//! Layer 1, the verified lock-free structures: the work-stealing deque, the task pool, the
//! injection queue, the wake slot and the parker, and the spin lock the channels use. They
//! import only the shim (layer 0) and each other.

pub mod deque;
pub(crate) mod inject;
pub(crate) mod next_slot;
pub(crate) mod park;
pub mod pool;
pub(crate) mod spin;
