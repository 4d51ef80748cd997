//! A type-erased slot in which higher layers keep per-instance state.
//!
//! The cache keeps its view of the server (circuit, in-flight calls, counters) with each
//! `RedisInstance`, but the connection layer must not know the cache: the cache imports
//! connection, never the reverse. So the instance carries a small map keyed by `TypeId`
//! and each layer stores its own type in it.
//!
//! Why a slot in the instance rather than a map in the cache keyed by instance: such a
//! map needs a key that outlives nothing (an `Arc` address can be reused after the
//! instance drops, so it would need weak references and pruning) and a global lock on
//! every cached call, which is what keeping the state with the instance avoids. Here the
//! state lives and dies with the instance, and a lookup takes only this instance's
//! read lock (a write lock once per type, on first use).

use std::any::{Any, TypeId};
use std::sync::{Arc, RwLock};

type Slot = Arc<dyn Any + Send + Sync>;

/// Per-instance state of higher layers, one value per type.
#[derive(Default)]
pub(crate) struct Extensions {
    /// A handful of types at most: a scan of a short list beats hashing the `TypeId`,
    /// and this runs on every cached call.
    slots: RwLock<Vec<(TypeId, Slot)>>,
}

impl Extensions {
    pub(crate) fn get_or_insert_with<T: Any + Send + Sync>(&self, init: impl FnOnce() -> Arc<T>) -> Arc<T> {
        if let Some(found) = self.get::<T>() {
            return found;
        }
        let fresh: Slot = init();
        let mut slots = self.slots.write().unwrap_or_else(|e| e.into_inner());
        let stored = match slots.iter().find(|(id, _)| *id == TypeId::of::<T>()) {
            // Another thread inserted it meanwhile: one value per type.
            Some((_, slot)) => slot.clone(),
            None => {
                slots.push((TypeId::of::<T>(), fresh.clone()));
                fresh
            }
        };
        downcast(stored)
    }

    fn get<T: Any + Send + Sync>(&self) -> Option<Arc<T>> {
        let slots = self.slots.read().unwrap_or_else(|e| e.into_inner());
        slots
            .iter()
            .find(|(id, _)| *id == TypeId::of::<T>())
            .map(|(_, slot)| downcast(slot.clone()))
    }
}

fn downcast<T: Any + Send + Sync>(slot: Slot) -> Arc<T> {
    slot.downcast::<T>()
        .unwrap_or_else(|_| unreachable!("an extension slot holds the type it is keyed by"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_value_per_type_created_once() {
        let ext = Extensions::default();
        let a = ext.get_or_insert_with(|| Arc::new(1_u32));
        let b = ext.get_or_insert_with::<u32>(|| unreachable!("already present"));
        assert!(Arc::ptr_eq(&a, &b));
        let s = ext.get_or_insert_with(|| Arc::new(String::from("x")));
        assert_eq!((*a, s.as_str()), (1, "x"));
    }
}
