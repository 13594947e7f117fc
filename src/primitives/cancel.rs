//! [`CancelToken`]: cooperative cancellation, with child tokens.
//!
//! A token is an `Arc` to a node holding one flag and its parent node. `cancel` sets the
//! node's flag (Release); `is_cancelled` walks from the node to the root loading each flag
//! (Acquire), so cancelling a token cancels every descendant at once, without a list of
//! children and without locking. Cancelling is one-way and idempotent.
//!
//! Dropping a token drops the ancestors it alone kept alive iteratively, so a chain of any
//! depth drops without recursion.
//!
//! Release/Acquire make whatever the canceller wrote before `cancel` visible to a task
//! that sees the token cancelled (e.g. the reason it stored somewhere).

use std::fmt;

use crate::shim::atomic::{AtomicBool, Ordering::*};
use crate::shim::Arc;

struct Node {
    cancelled: AtomicBool,
    parent: Option<Arc<Node>>,
}

/// A cancellation flag shared by cheap clones, with child tokens.
///
/// Pass it to [`Scheduler::scope_with`](crate::Scheduler::scope_with),
/// [`Scheduler::parallel_for_with`](crate::Scheduler::parallel_for_with) or check it in
/// your own tasks; a cancelled construct starts no new task and reports what it skipped.
///
/// ```
/// let parent = filch::CancelToken::new();
/// let child = parent.child();
/// let clone = child.clone();
/// assert!(!clone.is_cancelled());
/// parent.cancel();
/// assert!(child.is_cancelled() && clone.is_cancelled());
/// ```
#[derive(Clone)]
pub struct CancelToken(Arc<Node>);

impl CancelToken {
    /// A new, uncancelled root token.
    ///
    /// ```
    /// let token = filch::CancelToken::new();
    /// assert!(!token.is_cancelled());
    /// token.cancel();
    /// assert!(token.is_cancelled() && !filch::CancelToken::new().is_cancelled());
    /// ```
    pub fn new() -> Self {
        CancelToken(Arc::new(Node { cancelled: AtomicBool::new(false), parent: None }))
    }

    /// A token that is cancelled when `self` (or any ancestor) is, or when it is cancelled
    /// itself; cancelling it leaves `self` alone.
    ///
    /// ```
    /// let parent = filch::CancelToken::new();
    /// let child = parent.child();
    /// child.cancel();
    /// assert!(child.is_cancelled() && !parent.is_cancelled());
    /// ```
    pub fn child(&self) -> CancelToken {
        CancelToken(Arc::new(Node { cancelled: AtomicBool::new(false), parent: Some(self.0.clone()) }))
    }

    /// Cancels this token and all its descendants. Idempotent.
    ///
    /// ```
    /// let t = filch::CancelToken::new();
    /// t.cancel();
    /// t.cancel();
    /// assert!(t.is_cancelled());
    /// ```
    pub fn cancel(&self) {
        // Release: pairs with the Acquire loads in `is_cancelled`: the canceller's earlier
        // writes are visible to whoever sees the flag.
        self.0.cancelled.store(true, Release);
    }

    /// Whether this token or one of its ancestors was cancelled.
    ///
    /// ```
    /// let t = filch::CancelToken::new();
    /// assert!(!t.is_cancelled());
    /// ```
    #[inline]
    pub fn is_cancelled(&self) -> bool {
        let mut node = &self.0;
        loop {
            // Acquire: pairs with the Release store in `cancel`.
            if node.cancelled.load(Acquire) {
                return true;
            }
            match &node.parent {
                Some(p) => node = p,
                None => return false,
            }
        }
    }
}

impl Drop for Node {
    /// Unlinks the chain of ancestors this node was the last owner of one at a time: a
    /// recursive drop of a deep chain (a million nested children) would overflow the stack.
    fn drop(&mut self) {
        let mut next = self.parent.take();
        while let Some(parent) = next {
            match Arc::try_unwrap(parent) {
                // We held the last reference: take its parent before it drops (with
                // `parent: None`, so its own drop does not recurse).
                Ok(mut node) => next = node.parent.take(),
                // Someone else still holds it: dropping our reference ends the walk. If
                // theirs goes meanwhile, their drop continues the walk from there.
                Err(_) => break,
            }
        }
    }
}

impl Default for CancelToken {
    fn default() -> Self {
        CancelToken::new()
    }
}

impl fmt::Debug for CancelToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CancelToken").field("cancelled", &self.is_cancelled()).finish()
    }
}

/// A construct was cancelled and skipped work: how much.
///
/// Returned by [`Scheduler::scope_with`](crate::Scheduler::scope_with) (tasks not run) and
/// [`Scheduler::parallel_for_with`](crate::Scheduler::parallel_for_with) (indices not
/// visited).
///
/// ```
/// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
/// let token = filch::CancelToken::new();
/// token.cancel();
/// let err: filch::Cancelled = sched.parallel_for_with(&token, 0..10, |_| ()).unwrap_err();
/// assert_eq!(err.skipped(), 10);
/// assert_eq!(err.to_string(), "cancelled: 10 item(s) skipped");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cancelled {
    skipped: usize,
}

impl Cancelled {
    pub(crate) fn new(skipped: usize) -> Self {
        Cancelled { skipped }
    }

    /// How many tasks (for a scope) or indices (for a parallel loop) never ran.
    ///
    /// ```
    /// let sched = filch::Scheduler::builder().workers(2).build().unwrap();
    /// let token = filch::CancelToken::new();
    /// token.cancel();
    /// let r = sched.scope_with(&token, |s| (0..3).for_each(|_| s.spawn(|_| unreachable!())));
    /// assert_eq!(r.unwrap_err().skipped(), 3);
    /// ```
    pub fn skipped(&self) -> usize {
        self.skipped
    }
}

impl fmt::Display for Cancelled {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cancelled: {} item(s) skipped", self.skipped)
    }
}

impl std::error::Error for Cancelled {}
