//! What a `Handle` holds: a counted reference to a scheduler's shared state that costs no
//! shared RMW when cloned or dropped on one of that scheduler's workers (`shared.rs`,
//! "Handle units").

use std::mem::ManuallyDrop;
use std::ptr::NonNull;

use crate::runtime::shared::Shared;
use crate::runtime::worker;
use crate::shim::Arc;

/// One handle unit of a scheduler's shared state, and the state's address.
pub(crate) struct SharedRef {
    ptr: NonNull<Shared>,
}

// SAFETY: a `SharedRef` is a counted reference to a `Shared`, which every thread of the
// scheduler already shares through `Arc<Shared>` (so `Shared: Send + Sync`); its count is
// the atomic handle-unit word or the credit of the thread it is cloned or dropped on.
unsafe impl Send for SharedRef {}
// SAFETY: as for `Send`: `&SharedRef` only reads the address and reaches `&Shared`.
unsafe impl Sync for SharedRef {}

impl SharedRef {
    /// A unit of `arc`'s state: from the current worker's credit if it is one of this
    /// scheduler's, else HU1 on the shared word.
    pub(crate) fn new(arc: &Arc<Shared>) -> SharedRef {
        worker::with_current(|ctx| match ctx.filter(|c| c.is_of(arc)) {
            Some(c) => c.take_handle_unit(),
            None => Shared::take_handle_units(arc, 1),
        });
        // `Arc::as_ptr`, not a reference: `with_arc` and HU2 rebuild the `Arc` from this
        // pointer, so it must carry the provenance of the whole allocation.
        let ptr = NonNull::new(Arc::as_ptr(arc).cast_mut()).expect("an `Arc`'s pointer is not null");
        SharedRef { ptr }
    }

    /// The shared state.
    #[inline]
    pub(crate) fn get(&self) -> &Shared {
        // SAFETY: our unit keeps the state alive (its units hold a strong count).
        unsafe { self.ptr.as_ref() }
    }

    /// Runs `f` with the state as the `Arc` that owns it, borrowed (no count moves).
    pub(crate) fn with_arc<R>(&self, f: impl FnOnce(&Arc<Shared>) -> R) -> R {
        // SAFETY: `ptr` is the pointer of the `Arc` the state lives in (`new` took it from
        // one), and our unit keeps that `Arc`'s count above zero; `ManuallyDrop` keeps
        // this borrowed copy from dropping a count it does not own.
        let arc = ManuallyDrop::new(unsafe { Arc::from_raw(self.ptr.as_ptr().cast_const()) });
        f(&arc)
    }
}

impl Clone for SharedRef {
    #[inline]
    fn clone(&self) -> SharedRef {
        worker::with_current(|ctx| match ctx.filter(|c| c.is_of(self.get())) {
            Some(c) => c.take_handle_unit(),
            None => self.with_arc(|arc| Shared::take_handle_units(arc, 1)),
        });
        SharedRef { ptr: self.ptr }
    }
}

impl Drop for SharedRef {
    #[inline]
    fn drop(&mut self) {
        worker::with_current(|ctx| match ctx.filter(|c| c.is_of(self.get())) {
            Some(c) => c.give_handle_unit(),
            // SAFETY: we hold one unit and give it up; `self` is not used after this.
            None => unsafe { Shared::give_handle_units(self.ptr.as_ptr(), 1) },
        })
    }
}
