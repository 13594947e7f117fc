//! Fault containment: user code never unwinds through the runtime.
//!
//! User code runs in more places than task bodies: closure drops (cancel, shutdown),
//! output and panic-payload drops (a payload's own `Drop` may panic), thread hooks and
//! the panic handler. Each of those calls is made through [`call`] or [`drop_payload`],
//! which catch an unwind and turn it into a value or a report. The runtime's own reports
//! go through [`report`], which ignores a failed write: `eprintln!` panics when stderr is
//! a closed pipe (`prog 2>&1 | head`), and a panic inside the worker loop is exactly what
//! this module exists to prevent.
//!
//! A few regions must not unwind at all, because a frame in them owns memory that a
//! queue still points at (a `join` whose second half is queued, a stack job waiting for
//! its latch). They hold an [`AbortOnUnwind`] guard: if anything unwinds through such a
//! region despite the rules above (a runtime bug), the process aborts with a message
//! instead of running the queued half on a dead frame. docs/DESIGN.md §9 lists every
//! place where user code runs and how it is contained.

use std::any::Any;
use std::fmt;
use std::io::Write;
use std::panic::{catch_unwind, AssertUnwindSafe};

/// A panic payload, as `catch_unwind` returns it.
pub(crate) type Payload = Box<dyn Any + Send>;

/// Writes one line to stderr; a failed write (closed pipe, full disk) is ignored.
pub(crate) fn report(args: fmt::Arguments<'_>) {
    // `write_fmt` on a locked handle returns the error instead of panicking as
    // `eprintln!` does; nothing useful can be done with it here.
    let mut err = std::io::stderr().lock();
    let _ = err.write_fmt(args);
    let _ = err.write_all(b"\n");
}

/// Drops a panic payload (or any value whose destructor is user code) without letting a
/// panic in its destructor escape. The payload of that panic is dropped the same way,
/// once; should its destructor panic as well, the third payload is leaked rather than
/// dropped (a chain of panicking destructors has no end to wait for).
pub(crate) fn drop_payload<P>(payload: P) {
    if let Err(second) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        report(format_args!("filch: a panic payload's destructor panicked"));
        if let Err(third) = catch_unwind(AssertUnwindSafe(move || drop(second))) {
            std::mem::forget(third);
            report(format_args!(
                "filch: ... and so did the destructor of its panic's payload, which was leaked"
            ));
        }
    }
}

/// Runs user code `f`, returning its panic payload instead of unwinding.
pub(crate) fn call<R>(f: impl FnOnce() -> R) -> Result<R, Payload> {
    catch_unwind(AssertUnwindSafe(f))
}

/// The message of a `&str` or `String` payload.
pub(crate) fn message(payload: &(dyn Any + Send)) -> Option<&str> {
    payload.downcast_ref::<&str>().copied().or_else(|| payload.downcast_ref::<String>().map(String::as_str))
}

/// Aborts the process if dropped while armed: guards a region that must not unwind.
/// [`AbortOnUnwind::disarm`] ends the region on the normal path.
pub(crate) struct AbortOnUnwind {
    what: &'static str,
}

impl AbortOnUnwind {
    /// Arms the guard; `what` names the region for the abort message.
    #[inline(always)]
    pub(crate) fn new(what: &'static str) -> AbortOnUnwind {
        AbortOnUnwind { what }
    }

    /// Ends the region: the guard is forgotten, so it costs nothing on the normal path.
    #[inline(always)]
    pub(crate) fn disarm(self) {
        std::mem::forget(self);
    }
}

impl Drop for AbortOnUnwind {
    #[cold]
    #[inline(never)]
    fn drop(&mut self) {
        report(format_args!(
            "filch: fatal: a panic unwound through {}, where the runtime's state would be left corrupt; aborting",
            self.what
        ));
        std::process::abort();
    }
}

/// Aborts with `msg`: an internal invariant was broken and going on would be unsound.
#[cold]
#[inline(never)]
pub(crate) fn fatal(msg: &str) -> ! {
    report(format_args!("filch: internal error: {msg}; aborting"));
    std::process::abort();
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    struct PanicsOnDrop;
    impl Drop for PanicsOnDrop {
        fn drop(&mut self) {
            panic!("payload drop");
        }
    }

    #[test]
    fn a_payload_whose_drop_panics_is_contained() {
        let payload: Payload = Box::new(PanicsOnDrop);
        drop_payload(payload);
    }

    #[test]
    fn call_returns_the_payload() {
        let r = call(|| -> u8 { panic!("inside") });
        assert_eq!(message(&*r.unwrap_err()), Some("inside"));
        assert_eq!(call(|| 3).unwrap(), 3);
    }
}
