//! Layer 3, the runtime: the shared state and its lifetime protocols (`shared`), the spawn
//! paths (`spawn`), the worker context and loop (`worker`), worker threads' start, exit and
//! loss (`thread`), the sleep protocol (`sleep`), statistics, configuration, and
//! `JoinHandle`, and what a `Handle` holds (`shared_ref`). Inside the layer the imports run
//! config, stats, sleep → shared → worker → spawn, thread, join_handle, shared_ref.

pub(crate) mod async_task;
pub(crate) mod config;
pub(crate) mod handoff;
pub(crate) mod join_handle;
pub(crate) mod roles;
pub(crate) mod shared;
pub(crate) mod shared_ref;
pub(crate) mod sleep;
pub(crate) mod spawn;
pub(crate) mod stats;
pub(crate) mod thread;
pub(crate) mod timer;
pub(crate) mod wheel;
pub(crate) mod worker;
