//! What the runtime is configured with: the idle policy and the user's hooks, as the
//! [`Builder`](crate::Builder) hands them over.

use std::sync::Arc as StdArc;

/// A thread hook (`on_thread_start`, `on_thread_stop`), called with the worker's index.
pub(crate) type ThreadHook = StdArc<dyn Fn(usize) + Send + Sync>;
/// The handler of panics nobody joins.
pub(crate) type PanicHandler = StdArc<dyn Fn(Box<dyn std::any::Any + Send>) + Send + Sync>;

/// What an idle worker does when it finds no work.
///
/// ```
/// use filch::{Idle, Scheduler};
/// assert_eq!(Idle::default(), Idle::park());
/// let eager = Idle::Park { spins: 0, yields: 0 }; // park as soon as there is no work
/// let sched = Scheduler::builder().workers(2).idle(eager).build().unwrap();
/// assert_eq!(sched.spawn(|| "parked idle").join().unwrap(), "parked idle");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Idle {
    /// Spin forever (lowest wake latency, burns a core per idle worker).
    Spin,
    /// `sched_yield` forever: every idle worker keeps its core at 100% while idle. Provided
    /// for comparison with schedulers that idle this way.
    Yield,
    /// Spin `spins` rounds, then `sched_yield` `yields` rounds, then park on a futex until
    /// woken. The default, with the values of [`Idle::park`].
    Park {
        /// Search rounds with a spin hint between them.
        spins: u32,
        /// Search rounds with a `sched_yield` between them.
        yields: u32,
    },
}

impl Idle {
    /// `Idle::Park` with the default escalation: 16 spin rounds (1, 2, 4, … 64 spin hints
    /// between searches, about 1,000 in all), then 16 yield rounds, then park: tens of
    /// microseconds of searching on a typical x86-64 core. Longer pure spinning (where
    /// `pause` is slow, 64 rounds took about 0.25 ms) keeps an idle worker on its core past
    /// the end of a burst without a single scheduling point.
    ///
    /// ```
    /// use filch::Idle;
    /// const IDLE: Idle = Idle::park();
    /// assert_eq!(IDLE, Idle::Park { spins: 16, yields: 16 });
    /// ```
    pub const fn park() -> Idle {
        Idle::Park { spins: 16, yields: 16 }
    }
}

impl Default for Idle {
    fn default() -> Self {
        Idle::park()
    }
}

/// What the runtime was built with; immutable after `Builder::build`.
pub(crate) struct Config {
    pub(crate) idle: Idle,
    /// Spare threads at most (`roles.rs`): threads that take the role of a blocked worker
    /// or run `spawn_blocking` tasks.
    pub(crate) max_spares: usize,
    /// How long an idle spare thread waits for a job before it exits.
    pub(crate) keep_alive: std::time::Duration,
    /// Threads' name prefix and stack size (workers and spares).
    pub(crate) thread_name: String,
    pub(crate) stack_size: Option<usize>,
    pub(crate) on_thread_start: Option<ThreadHook>,
    pub(crate) on_thread_stop: Option<ThreadHook>,
    pub(crate) panic_handler: Option<PanicHandler>,
}
