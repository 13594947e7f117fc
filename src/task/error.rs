//! [`TaskError`]: why a task produced no value (it panicked, was cancelled, or its
//! scheduler shut down first).

use std::any::Any;
use std::fmt;

/// Why a task produced no value.
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// match sched.spawn(|| -> u32 { panic!("oops") }).join() {
///     Err(filch::TaskError::Panicked(p)) => assert_eq!(*p.downcast::<&str>().unwrap(), "oops"),
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
#[non_exhaustive]
pub enum TaskError {
    /// The task panicked; the payload is what it panicked with.
    Panicked(Box<dyn Any + Send + 'static>),
    /// [`crate::JoinHandle::cancel`] won: the task never ran.
    Cancelled,
    /// The scheduler shut down before the task ran (or refused it at spawn).
    ShutDown,
}

impl TaskError {
    /// Whether this is [`TaskError::Panicked`].
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// assert!(sched.spawn(|| -> u8 { panic!("boom") }).join().unwrap_err().is_panic());
    /// let handle = sched.handle();
    /// drop(sched);
    /// assert!(!handle.spawn(|| 1).join().unwrap_err().is_panic()); // `ShutDown`
    /// ```
    pub fn is_panic(&self) -> bool {
        matches!(self, TaskError::Panicked(_))
    }

    /// The panic payload's message when it is a `&str` or `String`.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let err = sched.spawn(|| -> u8 { panic!("bad value {}", 42) }).join().unwrap_err();
    /// assert_eq!(err.panic_message(), Some("bad value 42"));
    /// let err = sched.spawn(|| -> u8 { std::panic::panic_any(7u8) }).join().unwrap_err();
    /// assert_eq!(err.panic_message(), None); // not a string payload
    /// ```
    pub fn panic_message(&self) -> Option<&str> {
        match self {
            TaskError::Panicked(p) => {
                p.downcast_ref::<&str>().copied().or_else(|| p.downcast_ref::<String>().map(String::as_str))
            }
            _ => None,
        }
    }

    /// The panic payload, to re-raise with `std::panic::resume_unwind`.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let err = sched.spawn(|| -> u8 { std::panic::panic_any(7u8) }).join().unwrap_err();
    /// let payload = err.into_panic().unwrap();
    /// assert_eq!(*payload.downcast::<u8>().unwrap(), 7);
    /// ```
    pub fn into_panic(self) -> Option<Box<dyn Any + Send + 'static>> {
        match self {
            TaskError::Panicked(p) => Some(p),
            _ => None,
        }
    }
}

impl fmt::Debug for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(_) => match self.panic_message() {
                Some(m) => write!(f, "Panicked({m:?})"),
                None => f.write_str("Panicked(..)"),
            },
            TaskError::Cancelled => f.write_str("Cancelled"),
            TaskError::ShutDown => f.write_str("ShutDown"),
        }
    }
}

impl fmt::Display for TaskError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TaskError::Panicked(_) => match self.panic_message() {
                Some(m) => write!(f, "task panicked: {m}"),
                None => f.write_str("task panicked"),
            },
            TaskError::Cancelled => f.write_str("task was cancelled before it ran"),
            TaskError::ShutDown => f.write_str("scheduler shut down before the task ran"),
        }
    }
}

impl std::error::Error for TaskError {}
