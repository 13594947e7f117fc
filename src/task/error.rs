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
    Panicked(PanicPayload),
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
            TaskError::Panicked(p) => p.message(),
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
            TaskError::Panicked(p) => Some(p.into_inner()),
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

/// What a task panicked with: the payload `catch_unwind` returned, kept so that a
/// `TaskError` is `Send + Sync + 'static` and so travels through `?` into
/// `Box<dyn Error + Send + Sync>` (and the error types built on it, such as anyhow's).
/// Take the payload out with [`into_inner`](Self::into_inner) (to re-raise it with
/// `std::panic::resume_unwind`) or [`downcast`](Self::downcast); read a string message
/// with [`message`](Self::message).
///
/// ```
/// fn run() -> Result<u8, Box<dyn std::error::Error + Send + Sync>> {
///     let sched = filch::Scheduler::builder().workers(1).build()?;
///     Ok(sched.spawn(|| -> u8 { panic!("no value") }).join()?)
/// }
/// let err = run().unwrap_err().downcast::<filch::TaskError>().unwrap();
/// match *err {
///     filch::TaskError::Panicked(p) => assert_eq!(*p.downcast::<&str>().unwrap(), "no value"),
///     other => panic!("unexpected: {other:?}"),
/// }
/// ```
pub struct PanicPayload(Box<dyn Any + Send + 'static>);

// SAFETY: a shared `&PanicPayload` gives access to nothing of the payload but its type
// (`is`) and a string message (`&str`, which is `Sync`): the payload itself is reached only
// by value (`into_inner`, `downcast`) or through `&mut self` (`downcast_mut`), which no two
// threads hold at once. So sharing the wrapper shares nothing that is not `Sync`.
unsafe impl Sync for PanicPayload {}

impl PanicPayload {
    pub(crate) fn new(payload: Box<dyn Any + Send + 'static>) -> PanicPayload {
        PanicPayload(payload)
    }

    /// The payload, as `catch_unwind` returned it.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
    /// let Err(filch::TaskError::Panicked(p)) = sched.spawn(|| -> u8 { std::panic::panic_any(7u16) }).join() else {
    ///     unreachable!()
    /// };
    /// let raw: Box<dyn std::any::Any + Send> = p.into_inner();
    /// assert_eq!(*raw.downcast::<u16>().unwrap(), 7);
    /// ```
    pub fn into_inner(self) -> Box<dyn Any + Send + 'static> {
        self.0
    }

    /// Whether the payload is a `T`.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
    /// let Err(filch::TaskError::Panicked(p)) = sched.spawn(|| -> u8 { panic!("text") }).join() else {
    ///     unreachable!()
    /// };
    /// assert!(p.is::<&str>() && !p.is::<String>());
    /// ```
    pub fn is<T: Any>(&self) -> bool {
        self.0.is::<T>()
    }

    /// The payload as a `T`, or the payload back.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
    /// let n = std::hint::black_box(3);
    /// let Err(filch::TaskError::Panicked(p)) = sched.spawn(move || -> u8 { panic!("n = {n}") }).join() else {
    ///     unreachable!()
    /// };
    /// let p = p.downcast::<&str>().unwrap_err(); // a message formatted at run time is a `String`
    /// assert_eq!(*p.downcast::<String>().unwrap(), "n = 3");
    /// ```
    pub fn downcast<T: Any>(self) -> Result<Box<T>, PanicPayload> {
        self.0.downcast::<T>().map_err(PanicPayload)
    }

    /// The payload as a `&mut T`, if it is one.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
    /// let Err(filch::TaskError::Panicked(mut p)) = sched.spawn(|| -> u8 { std::panic::panic_any(1u32) }).join() else {
    ///     unreachable!()
    /// };
    /// *p.downcast_mut::<u32>().unwrap() += 1;
    /// assert_eq!(*p.downcast::<u32>().unwrap(), 2);
    /// ```
    pub fn downcast_mut<T: Any>(&mut self) -> Option<&mut T> {
        self.0.downcast_mut::<T>()
    }

    /// The message, when the payload is a `&str` or a `String` (what `panic!` gives).
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(1).build().unwrap();
    /// let Err(filch::TaskError::Panicked(p)) = sched.spawn(|| -> u8 { panic!("boom") }).join() else {
    ///     unreachable!()
    /// };
    /// assert_eq!(p.message(), Some("boom"));
    /// ```
    pub fn message(&self) -> Option<&str> {
        crate::contain::message(&*self.0)
    }
}

impl fmt::Debug for PanicPayload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.message() {
            Some(m) => write!(f, "PanicPayload({m:?})"),
            None => f.write_str("PanicPayload(..)"),
        }
    }
}
