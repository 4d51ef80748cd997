//! A function's handle on its local tier: the settings, and the store on the first
//! server the function is called with.

use std::sync::{Arc, OnceLock};

use super::server::Tracking;
use super::store::{LocalStore, LocalTier};
use crate::redis::connection::RedisInstance;

/// The local tier of one cached function.
#[derive(Debug)]
pub(crate) struct LocalSlot {
    tier: LocalTier,
    /// The server URL and the store there.
    store: OnceLock<(String, Arc<LocalStore>)>,
}

impl LocalSlot {
    pub(crate) fn new(tier: LocalTier) -> Self {
        LocalSlot {
            tier,
            store: OnceLock::new(),
        }
    }

    /// The store to use for a call on `redis`. A function serves locally on the first
    /// server it is called with; calls on another server go to Redis only (one store per
    /// function keeps the hit path free of a map lookup).
    pub(crate) fn store(
        &self,
        redis: &RedisInstance,
        tracking: &Arc<Tracking>,
        namespace: &str,
    ) -> Option<&Arc<LocalStore>> {
        let (url, store) = self.store.get_or_init(|| {
            (
                redis.redis_url().to_owned(),
                tracking.register(redis, namespace, self.tier),
            )
        });
        (url == redis.redis_url()).then_some(store)
    }

    /// The store, if the function was called already.
    pub(crate) fn current(&self) -> Option<&Arc<LocalStore>> {
        self.store.get().map(|(_, store)| store)
    }
}
