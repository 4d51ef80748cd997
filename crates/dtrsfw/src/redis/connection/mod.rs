//! `RedisInstance`: validated configuration, the sync pool and the async multiplexed
//! client.
//!
//! One `RedisInstance` is meant to live for the whole process and be cloned freely (it
//! is an `Arc`). Nothing connects until first use. The sync side is a bounded pool of
//! blocking connections; the async side is one multiplexed connection shared by every
//! task, which redis-rs's `ConnectionManager` re-establishes after the server restarts.
//!
//! # Connections
//!
//! - Every operation is bounded: connect timeout and response timeout from the config
//!   (defaults 5 s). A blocking read uses its own connection
//!   ([`get_blocking_connection`](RedisInstance::get_blocking_connection),
//!   [`get_async_blocking_connection`](RedisInstance::get_async_blocking_connection))
//!   whose timeout adds the block time. The bounds hold from a cold start too: opening
//!   the shared async connection takes at most the connect timeout, and tasks that need
//!   it while it is being opened share that one connect (none waits out another's
//!   failure); a failed connect is not remembered, the next call tries again.
//! - The async client is one multiplexed connection (redis-rs `ConnectionManager`) that
//!   reconnects by itself after a server restart. The sync pool drops a connection that
//!   broke and opens a new one; a connection idle longer than the health-check interval
//!   is PINGed before reuse.
//! - `retry_on_timeout` (default on) retries once, on a fresh connection, only commands
//!   that are safe to repeat, on every client: the [`get_redis`](RedisInstance::get_redis)
//!   guard, the [`get_redis_client`](RedisInstance::get_redis_client) handle and the async
//!   client (the guard's `connection_mut()` lends the bare connection, without retry).
//!   The commands: reads (`GET`, `MGET`, `EXISTS`, `TTL`, `SCAN`, `XRANGE`,
//!   `XINFO`, `XPENDING`, `XLEN`, …) and idempotent writes (`SET`, `SETEX`, `DEL`,
//!   `UNLINK`, `EXPIRE`, `XACK`, `XTRIM`, `XDEL`). Never `XADD`, `INCR`, `XREADGROUP`,
//!   scripts or pipelines.
//! - TCP keepalive is on by default (first probe after 15 s idle, as the Python package).
//! - URLs: [`get_redis_url`](RedisInstance::get_redis_url) percent-encodes credentials
//!   (as the Python package does; we also encode `/`, and a password-only URL is
//!   `redis://:pw@host`, where the Python package writes `redis://pw@host`, which
//!   redis-py reads as a user name). `Display` and `Debug` mask them.
//!
//! # Redis Cluster
//!
//! A cluster (Redis Cluster or a Valkey cluster) is configured by URL alone; nothing else
//! in the code changes:
//!
//! ```no_run
//! use dtrsfw::redis::{RedisConfig, RedisInstance};
//!
//! // Seed nodes, comma-separated; one live seed is enough (the rest are discovered).
//! // `rediss+cluster://` for TLS; credentials as usual (`redis+cluster://user:pass@h1:7000,h2:7001`).
//! let redis = RedisInstance::new(
//!     RedisConfig::new().set_redis_url("redis+cluster://10.0.0.1:7000,10.0.0.2:7001,10.0.0.3:7002"),
//! )?;
//! assert!(redis.is_cluster());
//! # Ok::<(), dtrsfw::redis::Error>(())
//! ```
//!
//! [`RedisConfig::from_env()`](crate::redis::RedisConfig::from_env) takes it from `REDIS_URL`, and
//! `dtredis --url` accepts it too. A database other than 0 is rejected (a cluster has
//! only db 0).
//!
//! - **Connections.** Built on redis-rs's cluster support (features `cluster` and
//!   `cluster-async`); we do no routing of our own. The same handles are backed by
//!   redis-rs's cluster clients: `get_async_redis_client()` by one
//!   `redis::cluster_async::ClusterConnection` (multiplexed per node), `get_redis()` /
//!   `get_redis_client()` by a pool of `redis::cluster::ClusterConnection`s, and
//!   `get_async_blocking_connection()` gives a cluster connection of its own. redis-rs
//!   sends each command to the primary owning its key's slot, follows `MOVED`/`ASK`
//!   redirections and refreshes its slot map after a failover. `get_redis()`
//!   dereferences to [`SyncConnection`] (one server or a cluster, implementing
//!   `redis::ConnectionLike`), and `get_blocking_connection()` /
//!   `get_async_blocking_connection()` return [`SyncConnection`] /
//!   [`AsyncBlockingConnection`]: code that uses them through `redis::Commands` or
//!   `cmd(..).query(..)` is unchanged.
//! - **Health.** [`is_redis_connected`](crate::redis::is_redis_connected) PINGs every
//!   primary and requires `CLUSTER INFO` to say `cluster_state:ok`.
//! - **Caching, sender, consumer.** See the "On a Redis Cluster" sections of
//!   [`caching`](crate::redis::caching), [`sender`](crate::redis::sender) and
//!   [`streamer`](crate::redis::streamer).
//! - **Tests** (`crates/dtrsfw/tests/cluster.rs`) run on a private 3 primaries +
//!   3 replicas cluster per test (on Redis 7.0 and Valkey 8.1): cache, sender and
//!   consumer with channels on three different primaries, and a failover: the primary
//!   owning a busy channel is killed with `SIGKILL` while two producers and a consumer
//!   run; a replica takes over, consumption resumes within the failover time plus 2 s,
//!   and every send that returned an ID is processed.
//! - **Benchmark.** `dtredis bench --url redis+cluster://h1:p1,h2:p2,...` runs every
//!   benchmark on the cluster (figures: `docs/performance.md` in the repository).
//! - Redis replicates asynchronously: a write the old primary acknowledged in the last
//!   instant before dying can in principle be missing on the replica that takes over.
//!   Our tests see no loss on a local cluster; a service that needs the guarantee sets
//!   [`SenderOptions::set_wait_for_replicas`](crate::redis::sender::SenderOptions::set_wait_for_replicas)
//!   (see [Durability](crate::redis::sender#durability)). `tests/cluster_failover.rs`
//!   kills the channel's primary (3 primaries × 2 replicas) under load with and without
//!   it, and checks that the `WAIT`s ran on the channel's primary;
//!   `scripts/failover-soak.sh cluster 10` repeats it (figures in `RELIABILITY.md`).
//!
//! # Redis Sentinel
//!
//! A primary with replicas watched by Sentinels (self-hosted, Kubernetes charts) is
//! configured by URL alone, as a cluster is:
//!
//! ```no_run
//! use dtrsfw::redis::{RedisConfig, RedisInstance};
//!
//! // Sentinels (host[:port], 26379 by default), the service (master) name, the db.
//! let redis = RedisInstance::new(
//!     RedisConfig::new().set_redis_url("redis+sentinel://app:secret@10.0.0.1:26379,10.0.0.2:26379/mymaster/0"),
//! )?;
//! assert_eq!(redis.to_string(), "redis+sentinel://***@10.0.0.1:26379,10.0.0.2:26379/mymaster/0");
//! # Ok::<(), dtrsfw::redis::Error>(())
//! ```
//!
//! - **URL.** `redis+sentinel://[user:pass@]host1:26379,host2:26379/<service>[/db]`
//!   `[?sentinel_username=u&sentinel_password=p]`;
//!   `rediss+sentinel://` for TLS to the Sentinels and the data nodes (with
//!   `redis_ssl_ca_certs` for a private CA). [`RedisConfig::from_env()`](crate::redis::RedisConfig::from_env)
//!   reads it from `REDIS_URL`, `dtredis --url` accepts it. A URL without a service, with
//!   a bad sentinel address or database, or with another query parameter is an
//!   [`ErrorKind::Configuration`](crate::redis::ErrorKind::Configuration) naming
//!   `redis_url`; `Display`, `Debug` and every message mask the credentials.
//! - **Credentials.** Two sets, each for one side. The URL's `user:pass@` authenticate to
//!   the data nodes (primary and replicas: their `requirepass` or ACL user). The query's
//!   `sentinel_password` (and `sentinel_username` for an ACL user) authenticate to the
//!   Sentinels (`requirepass` in `sentinel.conf`); without them the Sentinels are asked
//!   without credentials. Percent-encode `@ : / ? # & %` in every credential (as
//!   Python's `quote(safe="")` does). The query is masked whole wherever the URL is shown
//!   (`redis+sentinel://***@h1:26379/mymaster?***`).
//! - **Connections.** Built on redis-rs's Sentinel support (feature `sentinel`:
//!   `SENTINEL get-master-addr-by-name`, then `ROLE` on the answer); no discovery of our
//!   own. Every connection is opened on the primary the Sentinels name at that moment:
//!   the sync pool, the dedicated connections for blocking reads, and the shared async
//!   connection, which (unlike redis-rs's `ConnectionManager`, which would reconnect to
//!   the old address) is dropped after a broken link, a timeout or `READONLY` and opened
//!   again through the Sentinels by the next command.
//! - **During a failover.** Commands to the old primary fail with a connection error or
//!   `READONLY` (transient: the sender retries them with its backoff; the cache fails
//!   open, running the function; the consumer reconnects and, as after any reconnect,
//!   reclaims what was pending). Once the Sentinels name the new primary (about
//!   `down-after-milliseconds` plus an election, 1–3 s in our tests), everything resumes.
//!   A planned `SENTINEL FAILOVER` demotes the old primary after the replica has caught
//!   up: nothing acknowledged is lost. A crash of the primary can lose the sends it
//!   acknowledged last (asynchronous replication), unless they were sent with
//!   [`set_wait_for_replicas`](crate::redis::sender::SenderOptions::set_wait_for_replicas)
//!   (see [Durability](crate::redis::sender#durability)).
//! - **Health.** [`is_redis_connected`](crate::redis::is_redis_connected) PINGs the
//!   primary the Sentinels name (redis-rs checks its `ROLE` when connecting), then asks
//!   the first Sentinel of the URL that answers (`SENTINEL get-master-addr-by-name`)
//!   whether that node is the primary: a demoted primary still answers PING. Unhealthy
//!   when the Sentinel names another node (the error names both; the async check also
//!   drops the shared connection, so the next command reaches the new primary), names
//!   none, or when no Sentinel answers (the instance could not follow a failover).
//! - **Tests** (`crates/dtrsfw/tests/sentinel.rs`) run on a private primary, 2 replicas
//!   and 3 Sentinels per test (`dtrsfw_server::SentinelSet`, `down-after-milliseconds`
//!   1000, `failover-timeout` 3000): every API, and failovers under two producers and a
//!   consumer: `kill -9` of the primary with and without `wait_for_replicas(1)`, and
//!   `SENTINEL FAILOVER`.

// Layering. This module sits above `config` and `error` and below every user of Redis
// (caching, sender, streamer, health, inspect); it imports none of them (per-instance
// state of those layers lives in the type-erased `extensions` slot). Inside, arrows run
// one way, from the entry point down: `instance` → `pooled` (the sync guard), `pool`,
// `shared_slot` → `connector` (redis-rs clients, TLS, TCP settings) → `sync`, `aio`
// (the connections), `sentinel` (the Sentinel target and its shared connection), `url`; `retry` (the one retry decision) and `deadline` are leaves.
// `client` (the per-command sync handle), `cluster` (per-node commands) and `push` (RESP3
// push connections, per node on a cluster) add methods on top, so that the instance never
// names them.
//
// Naming. Internally "sync" names the synchronous API (`SyncConnection`, `SyncPool`,
// `connect_sync`), and "blocking read" a Redis `BLOCK` command (`XREADGROUP ... BLOCK`,
// `BLPOP`), whose connection is "dedicated": opened for it, outside the pool and the
// shared client (`connect_dedicated_sync`, `connect_dedicated_async`). "Blocking" alone
// appears only in public names kept for parity (`get_blocking_connection`,
// `get_async_blocking_connection`, `AsyncBlockingConnection`: all about blocking reads).

mod aio;
mod capabilities;
mod client;
mod cluster;
mod connector;
mod deadline;
mod extensions;
mod instance;
mod pool;
mod pooled;
mod push;
mod request;
mod retry;
mod sentinel;
mod sentinel_auth;
mod sentinel_health;
mod shared_slot;
mod sync;
mod url;

pub use self::aio::{AsyncBlockingConnection, AsyncRedisClient};
pub use self::capabilities::ServerCapabilities;
pub use self::client::RedisClient;
pub(crate) use self::cluster::NodeAddr;
pub(crate) use self::deadline::with_deadline;
pub use self::instance::RedisInstance;
pub use self::pooled::PooledConnection;
pub(crate) use self::push::serving_nodes_seen_by;
pub(crate) use self::request::Request;
pub use self::sync::SyncConnection;
