//! Metric handles resolved once per label value and then kept.
//!
//! Resolving a handle builds its label strings and looks its key up in the recorder's
//! registry: allocations and a hash-map search on every send or cached call (the same holds
//! for a span name formatted per message, which `trace.rs` keeps here too). The labels of
//! those metrics come from small fixed sets (the channels a service sends to, the
//! namespaces it caches under), so each value's handles are resolved on its first use and
//! kept for the life of the process: afterwards a send or a cached call costs one
//! uncontended read lock, a hash of the label value and atomic adds. Like every handle of
//! this module they belong to the recorder installed at that first use, so the recorder
//! is installed before the first message (see the module docs).

use std::collections::HashMap;
use std::sync::{LazyLock, RwLock};

/// Handles of type `T` by label value, for the whole process.
pub(super) struct ByLabel<T: 'static>(LazyLock<RwLock<HashMap<Box<str>, &'static T>>>);

impl<T: Send + Sync + 'static> ByLabel<T> {
    pub(super) const fn new() -> Self {
        ByLabel(LazyLock::new(|| RwLock::new(HashMap::new())))
    }

    /// The handles of `label`, made by `make` on its first use. They are never freed: the
    /// set of label values is bounded by the configuration (channels must be registered,
    /// namespaces are declared), so at most one small allocation per value is kept.
    pub(super) fn get(&self, label: &str, make: impl FnOnce() -> T) -> &'static T {
        if let Some(handles) = self.0.read().unwrap_or_else(|e| e.into_inner()).get(label) {
            return handles;
        }
        let mut map = self.0.write().unwrap_or_else(|e| e.into_inner());
        map.entry(label.into()).or_insert_with(|| Box::leak(Box::new(make())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    #[test]
    fn each_label_value_is_made_once() {
        static BY_LABEL: ByLabel<usize> = ByLabel::new();
        static MADE: AtomicUsize = AtomicUsize::new(0);
        fn make(n: usize) -> impl FnOnce() -> usize {
            move || {
                MADE.fetch_add(1, Ordering::Relaxed);
                n
            }
        }
        assert_eq!(*BY_LABEL.get("a", make(1)), 1);
        assert_eq!(*BY_LABEL.get("b", make(2)), 2);
        assert_eq!(*BY_LABEL.get("a", make(3)), 1, "kept from the first use");
        assert_eq!(MADE.load(Ordering::Relaxed), 2);
    }
}
