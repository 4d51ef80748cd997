//! The local tier's part of a cached call: serve a hit from the store, fill the store
//! from a value read from Redis (with its TTL, under the epoch rule of `local/`).

use std::sync::Arc;

use super::edge::CallIo;
use super::function::CachedFunction;
use super::local::{LocalForm, LocalStore};
use super::server::ServerState;
use super::stats::Event;
use crate::redis::connection::RedisInstance;

impl CachedFunction {
    /// This function's store on `redis`'s server, when it has a local tier there.
    pub(super) fn local_store<'a>(
        &'a self,
        redis: &RedisInstance,
        server: &ServerState,
    ) -> Option<&'a Arc<LocalStore>> {
        let slot = self.inner.local.as_ref()?;
        slot.store(redis, &server.tracking, &self.inner.namespace)
    }

    /// A local hit, while tracking is up. A value kept in another form or type (or JSON
    /// that does not decode as `T`) is left to the Redis path.
    pub(super) fn local_hit<T, K: LocalForm<T>>(&self, server: &ServerState, store: &LocalStore, key: &str) -> Option<T> {
        if !server.tracking.is_up() {
            return None;
        }
        let value = K::serve(&store.get(key)?)?;
        self.record(server, Event::LocalHit);
        Some(value)
    }

    /// Keeps a value read from Redis under `ticket` locally (in the form `K`), for the
    /// key's remaining TTL (`PTTL`, one more command). A failed `PTTL` only skips the fill.
    pub(super) async fn fill_local<I: CallIo, T, K: LocalForm<T>>(
        &self,
        redis: &RedisInstance,
        fill: Fill<'_>,
        value: &T,
        json: &Arc<[u8]>,
    ) {
        let Fill { server, store, ticket, key } = fill;
        let mut pttl = redis::cmd("PTTL");
        pttl.arg(key);
        match I::query::<i64>(redis, server, self.inner.timeout, &pttl).await {
            Ok(ms) => server.tracking.fill(store, ticket, key, K::keep(value, json), json.len(), ms),
            Err(e) => tracing::debug!(error = %e, "redis cache: PTTL failed, value not kept locally"),
        }
    }
}

/// Where a fill goes: the server, the store, the ticket taken before the `GET`, the key.
pub(super) struct Fill<'a> {
    pub(super) server: &'a ServerState,
    pub(super) store: &'a LocalStore,
    pub(super) ticket: super::local::Ticket,
    pub(super) key: &'a str,
}
