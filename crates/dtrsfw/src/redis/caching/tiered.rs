//! The local tier's part of a cached call: serve a hit from the store, fill the store
//! from a value read from Redis (with its TTL, read in the same round trip, under the
//! epoch rule of `local/`).

use std::sync::Arc;

use super::commands::get_cmd;
use super::edge::CallIo;
use super::function::CachedFunction;
use super::local::{LocalForm, LocalStore, Ticket};
use super::server::ServerState;
use super::stats::Event;
use crate::redis::connection::RedisInstance;
use crate::redis::error::Result;

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

    /// A local hit, while tracking is up and the entry's fill is still admitted (see
    /// `Tracking::hit`). A value kept in another form or type (or JSON that does not
    /// decode as `T`) is left to the Redis path.
    pub(super) fn local_hit<T, K: LocalForm<T>>(
        &self,
        server: &ServerState,
        store: &LocalStore,
        key: &str,
    ) -> Option<T> {
        let value = K::serve(&server.tracking.hit(store, key)?)?;
        self.record(server, Event::LocalHit);
        Some(value)
    }

    /// The leader's read: `GET`, pipelined with `PTTL` (one round trip) when a fill may
    /// follow (`ticket`), whose remaining TTL becomes the local entry's lifetime.
    pub(super) async fn read<I: CallIo>(
        &self,
        redis: &RedisInstance,
        server: &ServerState,
        key: &str,
        ticket: Option<Ticket>,
    ) -> Result<(Option<Vec<u8>>, Option<i64>)> {
        let timeout = self.inner.timeout;
        if ticket.is_none() {
            let raw = I::query(redis, server, timeout, &get_cmd(key)).await?;
            return Ok((raw, None));
        }
        let mut pipe = redis::pipe();
        pipe.add_command(get_cmd(key)).cmd("PTTL").arg(key);
        let (raw, pttl) = I::query::<(Option<Vec<u8>>, i64)>(redis, server, timeout, &pipe).await?;
        Ok((raw, Some(pttl)))
    }

    /// Keeps a value read from Redis under the fill's ticket locally, in the form `K`.
    pub(super) fn fill_local<T, K: LocalForm<T>>(&self, fill: &Fill<'_>, value: &T, json: &Arc<[u8]>) {
        let kept = K::keep(value, json);
        fill.server
            .tracking
            .fill(fill.store, fill.ticket, fill.key, kept, json.len(), fill.pttl_ms);
    }
}

/// Where a fill goes: the server, the store, the ticket taken before the `GET`, the key
/// and its TTL.
pub(super) struct Fill<'a> {
    pub(super) server: &'a ServerState,
    pub(super) store: &'a LocalStore,
    pub(super) ticket: Ticket,
    pub(super) key: &'a str,
    /// The key's `PTTL`, read in the same round trip as its value.
    pub(super) pttl_ms: i64,
}
