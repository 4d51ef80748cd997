//! Working on the cache directly: store and read values, delete entries, read counters.
//! Each operation is written once against the edge traits; its sync and async functions
//! only pick the connection.

use serde::Serialize;
use serde::de::DeserializeOwned;

use super::args::{CacheArgs, cache_key};
use super::codec::decode_value;
use super::commands::{get_cmd, namespace_pattern, scan_cmd, set_cmd, unlink_cmd};
use super::edge::{AsyncIo, CallIo, Conn, NodeConn, SyncIo, run_sync};
use super::function::CachedFunction;
use super::server::ServerState;
use super::stats::CacheStats;
use crate::redis::connection::RedisInstance;
use crate::redis::error::{Error, Result};

/// Stores `value` under `key` (zlib-compressed JSON, expiring after `expire` seconds if
/// given) and returns it: the Python `cache_data`. Never fails: a Redis problem is
/// logged as a warning.
///
/// ```no_run
/// # fn f(redis: dtrsfw::redis::RedisInstance) {
/// let user = dtrsfw::redis::caching::cache_data(&redis, serde_json::json!({"id": 123}), "user:123", Some(3600));
/// assert_eq!(user["id"], 123); // the value, handed back
/// # }
/// ```
pub fn cache_data<T: Serialize>(redis: &RedisInstance, value: T, key: &str, expire: Option<u64>) -> T {
    run_sync(store::<SyncIo, T>(redis, value, key, expire))
}

/// The async twin of [`cache_data`].
pub async fn cache_data_async<T: Serialize>(redis: &RedisInstance, value: T, key: &str, expire: Option<u64>) -> T {
    store::<AsyncIo, T>(redis, value, key, expire).await
}

/// `cache_data`: a write with the cache's timeout, circuit and counters.
async fn store<I: CallIo, T: Serialize>(redis: &RedisInstance, value: T, key: &str, expire: Option<u64>) -> T {
    let cache = CachedFunction::for_data(key);
    let server = ServerState::of(redis);
    if let Some((_, compressed)) = cache.encode(&server, &value)
        && cache.allowed(&server)
    {
        let set = set_cmd(key, &compressed, expire);
        let written = I::query::<()>(redis, &server, cache.inner.timeout, &set).await;
        cache.settle(&server, "write", written);
        // Read-your-writes in this process, before the server's push arrives.
        server.tracking.invalidate(key);
    }
    value
}

/// Reads a cached value written by [`cache_data`], a cached function, or the Python
/// package: `None` when absent. Errors (server, corrupt value) are reported.
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)); a serialization error when the stored value
/// is not zlib-compressed JSON of type `T`.
pub fn get_cached<T: DeserializeOwned>(redis: &RedisInstance, key: &str) -> Result<Option<T>> {
    run_sync(read(&mut redis.get_redis_client(), key))
}

/// The async twin of [`get_cached`].
///
/// # Errors
///
/// As [`get_cached`].
pub async fn get_cached_async<T: DeserializeOwned>(redis: &RedisInstance, key: &str) -> Result<Option<T>> {
    read(&mut redis.get_async_redis_client().await?, key).await
}

async fn read<T: DeserializeOwned>(conn: &mut impl Conn, key: &str) -> Result<Option<T>> {
    let raw: Option<Vec<u8>> = conn.run(&get_cmd(key)).await.map_err(|e| Error::redis("GET", e))?;
    raw.map(|raw| decode_value(&raw).map(|(v, _)| v)).transpose()
}

/// Counters of every cached function (and `cache_data`) using `redis`'s server, in this
/// process.
#[must_use]
pub fn cache_stats(redis: &RedisInstance) -> CacheStats {
    let server = ServerState::of(redis);
    server.counters.snapshot().with_local(server.tracking.sizes())
}

/// Deletes the entry of the call with `args` in `namespace`; `true` if there was one.
/// Pass the arguments that are part of the key (not the skipped ones).
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)).
pub fn invalidate(redis: &RedisInstance, namespace: &str, args: &CacheArgs) -> Result<bool> {
    unlink_key(redis, &cache_key(namespace, args))
}

/// The async twin of [`invalidate`].
///
/// # Errors
///
/// As [`invalidate`].
pub async fn invalidate_async(redis: &RedisInstance, namespace: &str, args: &CacheArgs) -> Result<bool> {
    unlink_key_async(redis, &cache_key(namespace, args)).await
}

pub(super) fn unlink_key(redis: &RedisInstance, key: &str) -> Result<bool> {
    let unlinked = run_sync(unlink(&mut redis.get_redis_client(), key));
    evict_local(redis, key);
    unlinked
}

pub(super) async fn unlink_key_async(redis: &RedisInstance, key: &str) -> Result<bool> {
    let unlinked = unlink(&mut redis.get_async_redis_client().await?, key).await;
    evict_local(redis, key);
    unlinked
}

/// Drops `key` from this process's local tier at once (the server's push follows), also
/// when the `UNLINK` failed: a local copy is never kept on doubt.
fn evict_local(redis: &RedisInstance, key: &str) {
    ServerState::of(redis).tracking.invalidate(key);
}

async fn unlink(conn: &mut impl Conn, key: &str) -> Result<bool> {
    let n: u64 = conn
        .run(&unlink_cmd(key))
        .await
        .map_err(|e| Error::redis("UNLINK", e))?;
    Ok(n > 0)
}

/// Deletes every entry of `namespace` (the keys `namespace:*` and the no-argument key
/// `namespace`) without blocking the server: SCAN in steps, UNLINK each step's keys.
/// Returns how many keys were deleted. Note that a namespace `a` also covers keys of a
/// namespace `a:b`, as their keys share the prefix.
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)), from connecting or from any SCAN or UNLINK
/// step; keys unlinked by earlier steps stay deleted.
pub fn invalidate_namespace(redis: &RedisInstance, namespace: &str) -> Result<u64> {
    let deleted = redis
        .get_redis()
        .and_then(|mut conn| run_sync(unlink_namespace(&mut conn, namespace)));
    ServerState::of(redis).tracking.flush(true);
    deleted
}

/// The async twin of [`invalidate_namespace`].
///
/// # Errors
///
/// As [`invalidate_namespace`].
pub async fn invalidate_namespace_async(redis: &RedisInstance, namespace: &str) -> Result<u64> {
    let deleted = match redis.get_async_redis_client().await {
        Ok(mut conn) => unlink_namespace(&mut conn, namespace).await,
        Err(e) => Err(e),
    };
    // The local tier is emptied (every namespace: simpler, and rare).
    ServerState::of(redis).tracking.flush(true);
    deleted
}

async fn unlink_namespace(conn: &mut impl NodeConn, namespace: &str) -> Result<u64> {
    let pattern = namespace_pattern(namespace);
    let mut deleted: u64 = conn
        .run(&unlink_cmd(namespace))
        .await
        .map_err(|e| Error::redis("UNLINK", e))?;
    // On a cluster each primary holds a share of the keys and has its own SCAN cursor:
    // scan every primary (redis-rs sends each SCAN to the node named). UNLINK of one
    // step's keys may span slots; redis-rs splits it per slot.
    let targets = conn.nodes().await.map_err(|e| Error::redis("CLUSTER SLOTS", e))?;
    for node in &targets {
        let mut cursor = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = conn
                .run_on(node.as_ref(), &scan_cmd(cursor, &pattern))
                .await
                .map_err(|e| Error::redis("SCAN", e))?;
            if !keys.is_empty() {
                let n: u64 = conn
                    .run(&unlink_cmd(&keys))
                    .await
                    .map_err(|e| Error::redis("UNLINK", e))?;
                deleted += n;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    tracing::debug!(
        namespace,
        deleted,
        nodes = targets.len(),
        "redis cache: namespace invalidated"
    );
    Ok(deleted)
}
