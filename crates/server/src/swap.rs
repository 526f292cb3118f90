//! [`Swap`]: a value the running node replaces when its configuration is
//! reloaded, while every request in flight keeps the one it took. A read
//! clones what is inside (an `Arc` or another cheap handle) under a read
//! lock held only for that clone; a reload writes once. Its own file so the
//! pipeline, the reload and the tests share it without depending on each
//! other. (A plain `RwLock<Arc<_>>`: one uncontended read lock per request
//! step is far below the cost of a RADIUS request, so no lock-free crate.)

use std::sync::{PoisonError, RwLock};

/// A value replaced as a whole; readers get a clone of the current one.
#[derive(Debug, Default)]
pub struct Swap<T: Clone>(RwLock<T>);

impl<T: Clone> Swap<T> {
    /// Holds `value`.
    pub fn new(value: T) -> Swap<T> {
        Swap(RwLock::new(value))
    }

    /// The current value.
    pub fn get(&self) -> T {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Replaces the value; returns the one it replaced.
    pub fn set(&self, value: T) -> T {
        let mut slot = self.0.write().unwrap_or_else(PoisonError::into_inner);
        std::mem::replace(&mut *slot, value)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::Swap;

    #[test]
    fn a_reader_keeps_what_it_took_across_a_set() {
        let s = Swap::new(Arc::new(1));
        let taken = s.get();
        let old = s.set(Arc::new(2));
        assert_eq!((*taken, *old, *s.get()), (1, 1, 2));
    }
}
