//! Process-wide cache state per Redis server: the circuit breaker, the in-flight calls
//! (single-flight), the counters and the cache's own short-timeout sync connections.
//!
//! The state is kept in a registry keyed by the server URL rather than in each cache
//! handle: health is a property of the server, so once one cached function finds the
//! server gone, every other function using it skips Redis too instead of each paying its
//! own timeouts; and the macro's per-function handles, the function API and `cache_data`
//! all see one picture. Clones of a `RedisInstance` (and separate instances with the same
//! URL) share it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

use super::circuit::Circuit;
use super::flight::Flights;
use super::local::Tracking;
use super::lock::lock;
use super::stats::Counters;
use super::sync_conns::SyncConnections;
use crate::redis::config::redact_url;
use crate::redis::connection::RedisInstance;

/// Everything the cache keeps for one server.
#[derive(Default)]
pub(crate) struct ServerState {
    pub(crate) circuit: Circuit,
    pub(crate) counters: Counters,
    pub(crate) flights: Flights,
    pub(crate) sync_conns: SyncConnections,
    /// The local tier's invalidations (idle until a function with a local tier runs).
    pub(crate) tracking: Arc<Tracking>,
    /// The server's URL as it may be shown (the circuit metric's label).
    pub(crate) shown_url: String,
}

impl std::fmt::Debug for ServerState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerState")
            .field("circuit", &self.circuit)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl ServerState {
    /// The state of `redis`'s server, created on first use.
    pub(crate) fn of(redis: &RedisInstance) -> Arc<ServerState> {
        // Instances of one URL share one state (through the registry); each instance
        // remembers its entry in its extension slot, so only its first cached call takes
        // the registry lock.
        static REGISTRY: OnceLock<Mutex<HashMap<String, Arc<ServerState>>>> = OnceLock::new();
        redis.extension(|| {
            let registry = REGISTRY.get_or_init(Default::default);
            let url = redis.redis_url();
            let new = || {
                let shown_url = redact_url(url);
                Arc::new(ServerState {
                    shown_url,
                    ..ServerState::default()
                })
            };
            lock(registry).entry(url.to_owned()).or_insert_with(new).clone()
        })
    }
}
