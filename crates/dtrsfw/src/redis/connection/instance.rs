//! `RedisInstance`: a validated configuration with its lazily created connections, the
//! entry point of every client (sync pool, shared async client, dedicated connections
//! for blocking reads).

use std::fmt;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use super::aio::{AsyncBlockingConnection, AsyncRedisClient};
use super::capabilities::{self, CapabilityCache, ConnectionEpoch, ServerCapabilities};
use super::cluster::NodeAddr;
use super::connector::Connector;
use super::extensions::Extensions;
use super::pool::SyncPool;
use super::pooled::PooledConnection;
use super::shared_slot::SharedSlot;
use super::sync::SyncConnection;
use super::url::build_url;
use crate::redis::config::{RedisConfig, redact_url};
use crate::redis::error::Result;

struct Inner {
    config: RedisConfig,
    url: String,
    connector: Connector,
    sync_pool: RwLock<Option<Arc<SyncPool>>>,
    /// The shared async client, or the one connect opening it.
    shared: SharedSlot,
    /// Per-instance state of higher layers (the cache's view of this server), type-erased
    /// so that this module does not depend on them.
    extensions: Extensions,
    /// Moves when the shared connection may reach another server (see `capabilities`).
    epoch: ConnectionEpoch,
    capabilities: CapabilityCache,
}

/// A validated Redis configuration with its lazily created connections. Cheap to
/// clone; clones share the pools.
///
/// ```no_run
/// use dtrsfw::redis::{RedisConfig, RedisInstance};
///
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let redis = RedisInstance::new(RedisConfig::new().set_redis_host("localhost"))?;
/// let mut conn = redis.get_redis()?; // back to the pool when `conn` drops
/// redis::cmd("SET").arg("key").arg("value").exec(&mut conn)?;
/// # Ok(()) }
/// ```
#[derive(Clone)]
pub struct RedisInstance {
    inner: Arc<Inner>,
}

impl fmt::Debug for RedisInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisInstance")
            .field("url", &redact_url(&self.inner.url))
            .field("config", &self.inner.config)
            .finish()
    }
}

/// Shows the URL with credentials masked.
impl fmt::Display for RedisInstance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&redact_url(&self.inner.url))
    }
}

impl RedisInstance {
    /// Validates `config` and prepares (without connecting) the connections.
    ///
    /// # Errors
    ///
    /// A configuration error naming the field when there is no host and no URL, the port
    /// is 0 or above 65535, the db is not a non-negative number, the URL cannot be
    /// parsed, TLS is requested with a `redis://` URL, or the CA file cannot be read.
    ///
    /// ```
    /// use dtrsfw::redis::{RedisConfig, RedisInstance};
    ///
    /// let redis = RedisInstance::new(
    ///     RedisConfig::new().set_redis_host("cache").set_redis_username("app").set_redis_password("p@ss"),
    /// )?;
    /// assert_eq!(redis.redis_url(), "redis://app:p%40ss@cache:6379/0");
    /// assert_eq!(redis.to_string(), "redis://***@cache:6379/0");
    /// # Ok::<(), dtrsfw::redis::Error>(())
    /// ```
    pub fn new(config: RedisConfig) -> Result<Self> {
        let url = build_url(&config)?;
        let connector = Connector::new(&config, &url)?;
        Ok(RedisInstance {
            inner: Arc::new(Inner {
                config,
                url,
                connector,
                sync_pool: RwLock::new(None),
                shared: SharedSlot::default(),
                extensions: Extensions::default(),
                epoch: ConnectionEpoch::default(),
                capabilities: CapabilityCache::default(),
            }),
        })
    }

    /// This instance's state of type `T` kept by a higher layer, created by `init` on
    /// first use (see `connection/extensions.rs`).
    pub(crate) fn extension<T: std::any::Any + Send + Sync>(&self, init: impl FnOnce() -> Arc<T>) -> Arc<T> {
        self.inner.extensions.get_or_insert_with(init)
    }

    /// The connection URL, credentials included (percent-encoded). Treat it as a secret;
    /// `Display` of the instance masks them.
    #[must_use]
    pub fn redis_url(&self) -> &str {
        &self.inner.url
    }

    /// The connection URL (the Python name of [`redis_url`](Self::redis_url)).
    #[must_use]
    pub fn get_redis_url(&self) -> &str {
        self.redis_url()
    }

    /// How this instance opens connections (its target: one server, cluster, Sentinels).
    pub(super) fn connector(&self) -> &Connector {
        &self.inner.connector
    }

    /// The database the connections select (always 0 on a cluster).
    pub(super) fn db(&self) -> i64 {
        self.inner.connector.db
    }

    /// The configuration this instance was built from.
    #[must_use]
    pub fn config(&self) -> &RedisConfig {
        &self.inner.config
    }

    fn sync_pool(&self) -> Arc<SyncPool> {
        if let Some(pool) = self.inner.sync_pool.read().unwrap_or_else(|e| e.into_inner()).as_ref() {
            return pool.clone();
        }
        let mut slot = self.inner.sync_pool.write().unwrap_or_else(|e| e.into_inner());
        slot.get_or_insert_with(|| {
            let config = &self.inner.config;
            Arc::new(SyncPool::new(
                self.inner.connector.clone(),
                config.redis_max_connections(),
                config.redis_socket_connect_timeout(),
                config.redis_health_check_interval(),
            ))
        })
        .clone()
    }

    /// Borrows a connection from the sync pool; it goes back when the guard drops. Waits
    /// at most the connect timeout when every connection is lent out. Commands run on the
    /// guard itself ([`PooledConnection`] implements [`redis::ConnectionLike`]) retry a
    /// command that is safe to repeat once, on a fresh connection, after a timeout or a lost
    /// connection, as the other clients do. The guard dereferences to a [`SyncConnection`]:
    /// a one-server connection, or on a cluster a redis-rs cluster connection that routes
    /// each command by its key.
    ///
    /// # Errors
    ///
    /// A timeout error when the pool stays exhausted for the connect timeout; the
    /// connect's error (connection, timeout, authentication, ...) when a new connection
    /// is needed and cannot be opened.
    ///
    /// ```no_run
    /// # let redis = dtrsfw::redis::RedisInstance::new(dtrsfw::redis::RedisConfig::new().set_redis_host("localhost"))?;
    /// use redis::Commands;
    /// let mut conn = redis.get_redis()?;
    /// let _: () = conn.set("key", "value")?;
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn get_redis(&self) -> Result<PooledConnection> {
        let pool = self.sync_pool();
        let conn = pool.take()?;
        Ok(PooledConnection::new(conn, pool))
    }

    /// Drops the sync pool: idle connections close now, lent ones when returned. The next
    /// borrow creates a fresh pool.
    pub fn reset_sync_pool(&self) {
        self.inner.epoch.bump();
        if let Some(pool) = self.inner.sync_pool.write().unwrap_or_else(|e| e.into_inner()).take() {
            pool.clear();
        }
    }

    /// The shared async client, connecting on first use. It multiplexes every task's
    /// commands over one connection and reconnects by itself after a server restart.
    ///
    /// Opening it takes at most the connect timeout
    /// ([`RedisConfig::set_redis_socket_connect_timeout`]); tasks that ask while it is
    /// being opened wait for that same connect and get its result (none waits out
    /// another's failure). A failed connect is not remembered: the next call tries again.
    ///
    /// # Errors
    ///
    /// The connect's error (connection, timeout, authentication, ...) when the shared
    /// connection is not open yet and cannot be opened.
    ///
    /// ```no_run
    /// # async fn f(redis: dtrsfw::redis::RedisInstance) -> Result<(), Box<dyn std::error::Error>> {
    /// use redis::AsyncCommands;
    /// let mut client = redis.get_async_redis_client().await?;
    /// let _: () = client.set("key", "value").await?;
    /// # Ok(()) }
    /// ```
    pub async fn get_async_redis_client(&self) -> Result<AsyncRedisClient> {
        self.inner
            .shared
            .get_or_connect(|| {
                // Cloned only when a connect starts, not on every call.
                let connector = self.inner.connector.clone();
                let epoch = self.inner.epoch.clone();
                async move {
                    let conn = connector.connect_shared().await?;
                    // A new connection may reach another server than the last one.
                    epoch.bump();
                    Ok(AsyncRedisClient::new(conn, connector.retry_on_timeout, epoch))
                }
            })
            .await
    }

    /// The async twin of [`get_redis`](Self::get_redis): a handle on the shared
    /// multiplexed connection. Dropping it is all the cleanup there is.
    ///
    /// # Errors
    ///
    /// As [`get_async_redis_client`](Self::get_async_redis_client).
    pub async fn get_async_redis(&self) -> Result<AsyncRedisClient> {
        self.get_async_redis_client().await
    }

    /// Forgets the shared async connection; it closes once no handle uses it, and the next
    /// call connects anew (a connect under way is forgotten too).
    pub async fn reset_async_pool(&self) {
        self.inner.shared.reset();
        self.inner.epoch.bump();
    }

    /// What the server can do (product, version, Redis 8.2's acknowledged-aware stream
    /// commands), detected on the shared connection by `INFO server` and `COMMAND INFO
    /// XACKDEL`. Cached: detected again only after the shared connection was lost, timed
    /// out, reset or reopened (see [`ServerCapabilities`] and the module `capabilities`).
    ///
    /// # Errors
    ///
    /// The connection's or the server's error when the detection cannot run.
    ///
    /// ```no_run
    /// # async fn f(redis: dtrsfw::redis::RedisInstance) -> dtrsfw::redis::Result<()> {
    /// let caps = redis.server_capabilities().await?;
    /// println!("{} {}, XACKDEL: {}", caps.product(), caps.version(), caps.ack_aware_streams());
    /// # Ok(()) }
    /// ```
    pub async fn server_capabilities(&self) -> Result<ServerCapabilities> {
        let mut client = self.get_async_redis_client().await?;
        let epoch = self.inner.epoch.current();
        if let Some(caps) = self.inner.capabilities.get(epoch) {
            return Ok(caps);
        }
        let (info, command) = capabilities::detection_commands();
        let info = info.query_async::<redis::Value>(&mut client).await;
        let command = command.query_async(&mut client).await;
        let caps = capabilities::interpret(info, command)?;
        self.inner.capabilities.store(epoch, &caps);
        Ok(caps)
    }

    /// Tells the instance that a connection of its own (a dedicated one, for blocking
    /// reads) was lost: the server may be another one now, so the capabilities are
    /// detected again on next use.
    pub(crate) fn note_connection_lost(&self) {
        self.inner.epoch.bump();
    }

    /// The sync twin of [`server_capabilities`](Self::server_capabilities): the same
    /// cache, detected on a connection of the sync pool when it is stale.
    ///
    /// # Errors
    ///
    /// The connection's or the server's error when the detection cannot run.
    pub fn server_capabilities_blocking(&self) -> Result<ServerCapabilities> {
        let epoch = self.inner.epoch.current();
        if let Some(caps) = self.inner.capabilities.get(epoch) {
            return Ok(caps);
        }
        let mut conn = self.get_redis()?;
        let (info, command) = capabilities::detection_commands();
        let info = info.query::<redis::Value>(&mut conn);
        let command = command.query(&mut conn);
        let caps = capabilities::interpret(info, command)?;
        self.inner.capabilities.store(epoch, &caps);
        Ok(caps)
    }

    /// Whether this instance talks to a Redis Cluster (a `redis+cluster://` URL).
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.inner.connector.is_cluster()
    }

    /// A dedicated async connection for commands that block on the server
    /// (`XREADGROUP ... BLOCK`, `BLPOP`): its response timeout is the socket timeout plus
    /// `block`, so a long block neither times out early nor holds up the shared
    /// connection's other users. On a cluster it is a cluster connection of its own,
    /// which sends each command to the node owning its key (a single-key blocking read
    /// therefore blocks on that node only).
    ///
    /// # Errors
    ///
    /// The connect's error (connection, timeout, authentication, ...).
    pub async fn get_async_blocking_connection(&self, block: Duration) -> Result<AsyncBlockingConnection> {
        let conn = self.inner.connector.connect_dedicated_async(block).await?;
        Ok(AsyncBlockingConnection::new(conn))
    }

    /// A dedicated RESP3 connection whose server pushes go to `push` (the cache's
    /// invalidation connections): to the server (`node` `None`) or to `node` of a
    /// cluster (one of [`serving_nodes`](Self::serving_nodes)). `None` under Sentinel.
    pub(crate) async fn get_push_connection(
        &self,
        node: Option<&NodeAddr>,
        push: impl redis::aio::AsyncPushSender,
    ) -> Option<Result<redis::aio::MultiplexedConnection>> {
        self.inner.connector.connect_push_async(node, push).await
    }

    /// Where push connections go: `[None]` for one server, every node that serves slots
    /// (primaries and available replicas, `CLUSTER SLOTS`) for a cluster.
    pub(crate) async fn serving_nodes(&self) -> Result<Vec<Option<NodeAddr>>> {
        self.inner.connector.serving_nodes().await
    }

    /// A connection outside the pool whose connect (handshake included) and response
    /// timeouts are both `timeout`: the cache's short-timeout connections.
    pub(crate) fn get_connection_with_timeout(&self, timeout: Duration) -> Result<SyncConnection> {
        self.inner.connector.connect_sync_with_timeouts(timeout, timeout)
    }

    /// The sync twin of [`get_async_blocking_connection`](Self::get_async_blocking_connection):
    /// a connection outside the pool whose read timeout is the socket timeout plus `block`.
    ///
    /// # Errors
    ///
    /// The connect's error (connection, timeout, authentication, ...).
    pub fn get_blocking_connection(&self, block: Duration) -> Result<SyncConnection> {
        self.inner.connector.connect_dedicated_sync(block)
    }
}

/// What `RedisInstance::new` says of bad URLs as a whole (validation in `config`, parsing
/// in `url` and `connector`): it names the field and never quotes credentials.
#[cfg(test)]
mod tests {
    use super::*;

    /// Every configuration error of `url`, as shown (Display and Debug).
    fn config_error_text(url: &str) -> String {
        let err = RedisInstance::new(RedisConfig::new().set_redis_url(url)).expect_err(url);
        assert!(err.is_configuration(), "{err}");
        format!("{err} {err:?}")
    }

    #[test]
    fn malformed_urls_are_rejected_without_quoting_their_credentials() {
        let cases = [
            ("redis://admin:hun#ter2@127.0.0.1:6399/0", ["admin", "hun#ter2"]),
            ("redis+cluster://user:p#ss@h1:1,h2:2", ["user", "p#ss"]),
            ("redis+cluster://user:pa/ssw0rd@h1:1,h2:2/0", ["user", "ssw0rd"]),
            ("rediss://u:p/ss@host:1/0", ["u:p", "p/ss"]),
            ("rediss+cluster://usr:pw/s3cr3t@h1:1", ["usr", "s3cr3t"]),
            // Found by the connecting property test: a raw '#' ended the authority, so
            // redis-rs took "%40," (the user) for a host and quoted it when connecting.
            (
                "redis+cluster://%40,:#Kd5?+@127.0.0.1:1,127.0.0.1:2",
                ["%40,", "#Kd5?+"],
            ),
            // redis-rs quotes an unknown protocol value in its error detail.
            ("redis://h:1/0?protocol=secr3t-pw", ["secr3t-pw", "secr3t-pw"]),
        ];
        for (url, secrets) in cases {
            let text = config_error_text(url);
            for secret in secrets {
                assert!(!text.contains(secret), "{url}: {secret:?} leaked in {text}");
            }
            assert!(text.contains("redis_url"), "{text}");
        }
    }

    #[test]
    fn a_cluster_database_other_than_0_is_named_without_quoting_the_path() {
        let text = config_error_text("redis+cluster://h1:1,h2:2/3");
        assert!(text.contains("only database 0, not 3"), "{text}");
        let text = config_error_text("redis+cluster://h1:1/not-a-db-pw");
        assert!(
            text.contains("only database 0") && !text.contains("not-a-db-pw"),
            "{text}"
        );
    }
}
