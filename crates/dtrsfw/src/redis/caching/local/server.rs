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

    pub(crate) fn ticket(&self) -> Option<Ticket> {
        self.epochs.ticket()
    }

    /// The kept value of `key`, if its fill's ticket is still admitted: tracking is up
    /// and neither the key's invalidation nor a flush came after that fill took it.
    ///
    /// Checked on every hit because removal alone cannot be: a fill that passed its
    /// check just before an invalidation may insert *after* the tracker removed the key
    /// (its insert lands late when its thread is preempted). Its entry stays in the map
    /// until the fill checks again and removes it, but from the moment of the
    /// invalidation no hit serves it.
    pub(crate) fn hit(&self, store: &LocalStore, key: &str) -> Option<Kept> {
        let (kept, ticket) = store.get(key)?;
        self.epochs.admits(ticket, key).then_some(kept)
    }

    /// Inserts a value read after `ticket` was taken, unless an invalidation of `key` or
    /// a flush came since. Checked again after inserting, to remove an entry that no hit
    /// would serve any more (see [`hit`](Self::hit)) rather than keep it until evicted.
    pub(crate) fn fill(&self, store: &LocalStore, ticket: Ticket, key: &str, value: Kept, bytes: usize, pttl_ms: i64) {
        if !self.epochs.admits(ticket, key) {
            return;
        }
        store.insert(key, ticket, value, bytes, pttl_ms);
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

    /// A fill that checked its ticket just before an invalidation, then inserted after
    /// the tracker removed the key (a preempted thread): its entry is in the map, and no
    /// hit serves it. Other keys' entries are served; a later fill of the key is.
    #[test]
    fn an_entry_filled_before_its_keys_invalidation_is_never_served() {
        let tracking = Tracking::default();
        tracking.epochs.set_up();
        let store = LocalStore::new("ns", LocalTier::new());
        let value = |v: u64| -> Kept { Arc::new(v) };
        let stale = tracking.ticket().expect("up");
        store.insert("ns:other", stale, value(7), 1, -1);
        tracking.invalidate("ns:a");
        store.insert("ns:a", stale, value(1), 1, -1);
        assert!(store.get("ns:a").is_some(), "the late insert is in the map");
        assert!(tracking.hit(&store, "ns:a").is_none(), "and is not served");
        let served = tracking.hit(&store, "ns:other").expect("another key is served");
        assert_eq!(served.downcast_ref::<u64>(), Some(&7));
        tracking.fill(&store, tracking.ticket().expect("up"), "ns:a", value(2), 1, -1);
        let served = tracking
            .hit(&store, "ns:a")
            .expect("a fill after the invalidation is served");
        assert_eq!(served.downcast_ref::<u64>(), Some(&2));
    }

    /// After a loss of tracking and a new session, entries from before are not served.
    #[test]
    fn entries_from_before_a_loss_of_tracking_are_not_served_after_it() {
        let tracking = Tracking::default();
        tracking.epochs.set_up();
        let store = LocalStore::new("ns", LocalTier::new());
        let before = tracking.ticket().expect("up");
        tracking.flush(false);
        assert!(tracking.ticket().is_none(), "no fills while down");
        tracking.epochs.set_up();
        // Inserted late, past the flush, by a fill from before the loss.
        store.insert("ns:a", before, Arc::new(1_u64), 1, -1);
        assert!(tracking.hit(&store, "ns:a").is_none());
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
