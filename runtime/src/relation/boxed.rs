//! [`RelBox<T>`]: the heap cell a loaded [`Rel`](super::Rel) keeps its value in, and
//! [`RelTarget`], what a relation may hold.
//!
//! Both exist so that long chains of models linked both ways (`E0 ↔ E1 ↔ … ↔ E99`) compile
//! without raising `#![recursion_limit]`. With a plain `Box<T>` the compiler looks through the
//! box into `T` to decide whether a model is `Send`/`Sync` and what its destructor may touch
//! (drop check), and `T`'s relation fields lead to further models: the proof grew by several
//! levels per model and overflowed the default limit of 128 at about twenty models (`E0275
//! overflow evaluating Rel<E18>: Send`, then `E0320` in drop check). `RelBox` stops both at the
//! related model:
//! - it can only be built from a value that is `Send + Sync` ([`RelBox::new`] asks for it,
//!   where the value's concrete type is known), so its own `Send`/`Sync` impls need no bound
//!   on `T` and the auto-trait proof of a model stops at its relation fields — the related
//!   model is proved `Send + Sync` field by field, once, where `Model`'s supertraits are
//!   checked (this also keeps a relation to a non-model at one error, on the field);
//! - it holds the box in a `ManuallyDrop` and frees it in its own `Drop`, so drop check sees a
//!   destructor that needs `T` alive (always true: models are `'static`) and does not walk `T`;
//! - that `Drop` frees the box through a function pointer taken in [`RelBox::new`], so the
//!   drop glue of a model does not name the drop glue of the models it relates to, and
//!   monomorphization (itself limited to 128 nested `drop_in_place`s, give or take) does not
//!   walk the whole chain from any model either.

use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};

use crate::model::Model;

/// What a [`Rel`](super::Rel) holds: a model (`Rel<User>`), an `Option` of one
/// (`Rel<Option<Profile>>`) or a `Vec` of them (`Rel<Vec<Post>>`). A `Rel<T>` is `Send` and
/// `Sync` (every `RelBox` is, its value having been `Send + Sync`). Implemented for every [`Model`]; there is nothing to
/// implement by hand.
pub trait RelTarget: Send + Sync + 'static {}

impl<M: Model> RelTarget for M {}
impl<M: Model> RelTarget for Option<M> {}
impl<M: Model> RelTarget for Vec<M> {}

/// The value of a loaded relation, on the heap (so models may refer to each other). It
/// dereferences to the value: `if let Rel::Loaded(author) = &post.author { author.name }`.
/// Build a loaded relation with [`Rel::loaded`](super::Rel::loaded).
pub struct RelBox<T> {
    value: ManuallyDrop<Box<T>>,
    /// Frees `value`: [`free::<T>`], called through a pointer (see the module docs).
    free: unsafe fn(&mut ManuallyDrop<Box<T>>),
}

/// Drops the box and its value.
///
/// # Safety
/// `value` is not used again.
unsafe fn free<T>(value: &mut ManuallyDrop<Box<T>>) {
    // SAFETY: the caller does not use `value` again.
    unsafe { ManuallyDrop::drop(value) }
}

impl<T: Send + Sync> RelBox<T> {
    /// Moves `value` to the heap. The value must be `Send + Sync`: that is what makes every
    /// `RelBox` `Send` and `Sync` (see the impls below).
    pub fn new(value: T) -> Self {
        RelBox { value: ManuallyDrop::new(Box::new(value)), free: free::<T> }
    }
}

impl<T> RelBox<T> {
    /// The value, moved out of the box.
    pub fn into_inner(self) -> T {
        let mut this = ManuallyDrop::new(self);
        // SAFETY: `this` is never used again and, being `ManuallyDrop`, never dropped, so the
        // box is taken exactly once and freed by the caller's `T` going out of scope.
        *unsafe { ManuallyDrop::take(&mut this.value) }
    }
}

impl<T> Drop for RelBox<T> {
    fn drop(&mut self) {
        // SAFETY: `drop` runs once, and nothing reads the box after it (`into_inner` skips
        // this destructor).
        unsafe { (self.free)(&mut self.value) }
    }
}

// SAFETY: a `RelBox<T>` owns a `Box<T>` and a function pointer. Every `RelBox<T>` that exists
// was made by `RelBox::new`, which requires `T: Send + Sync`, or by `Clone` from such a one
// (same `T`); the fields are private, so no other construction exists. A `Box<T>` with
// `T: Send + Sync` is `Send` and `Sync`, and so is the function pointer.
unsafe impl<T> Send for RelBox<T> {}
// SAFETY: as for `Send` above.
unsafe impl<T> Sync for RelBox<T> {}

impl<T> Deref for RelBox<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.value
    }
}

impl<T> DerefMut for RelBox<T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.value
    }
}

impl<T: Clone> Clone for RelBox<T> {
    fn clone(&self) -> Self {
        // `self` was built by `new` (so `T: Send + Sync` held); the copy has the same `T`.
        RelBox { value: ManuallyDrop::new(Box::new(T::clone(self))), free: free::<T> }
    }
}

impl<T: PartialEq> PartialEq for RelBox<T> {
    fn eq(&self, other: &Self) -> bool {
        **self == **other
    }
}

impl<T: Eq> Eq for RelBox<T> {}

/// Formats as the value itself, as a `Box` does.
impl<T: fmt::Debug> fmt::Debug for RelBox<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        T::fmt(self, f)
    }
}

#[cfg(test)]
mod tests {
    use super::RelBox;
    use std::sync::Arc;

    #[test]
    fn the_value_is_dropped_once_and_never_after_into_inner() {
        let counter = Arc::new(());
        let boxed = RelBox::new(Arc::clone(&counter));
        let copy = boxed.clone();
        assert_eq!(Arc::strong_count(&counter), 3);
        drop(boxed);
        assert_eq!(Arc::strong_count(&counter), 2);
        let inner = copy.into_inner();
        assert_eq!(Arc::strong_count(&counter), 2, "into_inner moves the value out without dropping it");
        drop(inner);
        assert_eq!(Arc::strong_count(&counter), 1);
    }

    #[test]
    fn it_reads_and_writes_through_deref() {
        let mut boxed = RelBox::new(vec![1, 2]);
        boxed.push(3);
        assert_eq!(*boxed, vec![1, 2, 3]);
        assert_eq!(boxed, RelBox::new(vec![1, 2, 3]));
        assert_eq!(format!("{boxed:?}"), "[1, 2, 3]");
    }
}
