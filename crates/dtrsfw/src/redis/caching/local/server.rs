//! The local tier's state per server: the epochs, the stores of the functions using the
//! tier, the prefixes tracking subscribes to, and the tracker thread.

use std::sync::{Arc, Mutex, Weak};

use super::coherence::{Epochs, Ticket};
use super::form::Kept;
use super::store::{LocalStore, LocalTier};
use super::tracker;
use crate::redis::caching::lock::lock;
use crate::redis::connection::RedisInstance;

/// What the tracker subscribes to; `generation` changes with the set.
#[derive(Debug, Default)]
pub(super) struct Subscription {
    pub(super) generation: u64,
    namespaces: Vec<String>,
    started: bool,
}

impl Subscription {
    /// The BCAST prefixes: the namespaces without those another one covers (Redis
    /// refuses overlapping prefixes); empty when some namespace is `""` (every key).
    pub(super) fn prefixes(&self) -> Vec<String> {
        let mut sorted = self.namespaces.clone();
        sorted.sort();
        let mut cover: Vec<String> = Vec::new();
        for ns in sorted {
            if !cover.iter().any(|p| ns.starts_with(p.as_str())) {
                cover.push(ns);
            }
        }
        if cover.iter().any(String::is_empty) {
            return Vec::new();
        }
        cover
    }
}

/// The local tier's state for one server.
#[derive(Debug, Default)]
pub(crate) struct Tracking {
    pub(super) epochs: Epochs,
    stores: Mutex<Vec<Weak<LocalStore>>>,
    pub(super) subscription: Mutex<Subscription>,
    /// Wakes the tracker when the prefixes change.
    pub(super) changed: tokio::sync::Notify,
}

impl Tracking {
    /// A store for a function of `namespace` on `redis`'s server (or cluster),
    /// registered for invalidations.
    pub(crate) fn register(
        self: &Arc<Self>,
        redis: &RedisInstance,
        namespace: &str,
        tier: LocalTier,
    ) -> Arc<LocalStore> {
        let store = Arc::new(LocalStore::new(namespace, tier));
        lock(&self.stores).push(Arc::downgrade(&store));
        let mut subscription = lock(&self.subscription);
        if !subscription.namespaces.iter().any(|n| n == namespace) {
            subscription.namespaces.push(namespace.to_owned());
            subscription.generation += 1;
            // Fills of the new namespace must wait for a subscription covering it: down
            // until the tracker subscribed again.
            self.flush(false);
            if subscription.started {
                self.changed.notify_one();
            }
        }
        if !subscription.started {
            subscription.started = true;
            tracker::spawn(self.clone(), redis.clone());
        }
        store
    }

    /// Whether hits may be served now.
    pub(crate) fn is_up(&self) -> bool {
        self.epochs.is_up()
    }

    pub(crate) fn ticket(&self) -> Option<Ticket> {
        self.epochs.ticket()
    }

    /// Inserts a value read after `ticket` was taken, unless an invalidation of `key` or
    /// a flush came since (checked before and after inserting).
    pub(crate) fn fill(&self, store: &LocalStore, ticket: Ticket, key: &str, value: Kept, bytes: usize, pttl_ms: i64) {
        if !self.epochs.admits(ticket, key) {
            return;
        }
        store.insert(key, value, bytes, pttl_ms);
        if !self.epochs.admits(ticket, key) {
            store.remove(key);
        }
    }

    /// `key` changed in Redis: drop it from every store of its namespace.
    pub(crate) fn invalidate(&self, key: &str) {
        self.epochs.invalidated(key);
        self.each_store(|store| {
            if store.covers(key) {
                store.invalidate(key);
            }
        });
    }

    /// Drops every local entry; `up` tells whether tracking stays on.
    pub(crate) fn flush(&self, up: bool) {
        self.epochs.flushed(up);
        self.each_store(|store| store.flush());
    }

    fn each_store(&self, mut f: impl FnMut(&LocalStore)) {
        let mut stores = lock(&self.stores);
        stores.retain(|weak| match weak.upgrade() {
            Some(store) => {
                f(&store);
                true
            }
            None => false,
        });
    }

    /// `(entries, bytes, invalidations, flushes)` summed over the live stores.
    pub(crate) fn sizes(&self) -> (u64, u64, u64, u64) {
        let mut total = (0, 0, 0, 0);
        self.each_store(|store| {
            let (e, b, i, f) = store.sizes();
            total = (total.0 + e, total.1 + b, total.2 + i, total.3 + f);
        });
        total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prefixes(namespaces: &[&str]) -> Vec<String> {
        Subscription {
            namespaces: namespaces.iter().map(|s| (*s).to_owned()).collect(),
            ..Subscription::default()
        }
        .prefixes()
    }

    #[test]
    fn prefixes_are_the_minimal_cover() {
        assert_eq!(prefixes(&["cars:new", "cars", "users"]), ["cars", "users"]);
        assert_eq!(prefixes(&["b", "a"]), ["a", "b"]);
        assert!(
            prefixes(&["cars", ""]).is_empty(),
            "an empty namespace tracks every key"
        );
    }
}
