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
//!   Our tests see no loss on a local cluster, but a service that needs a stronger
//!   guarantee should add `WAIT` (not done by the sender).

// Layering. This module sits above `config` and `error` and below every user of Redis
// (caching, sender, streamer, health, inspect); it imports none of them (per-instance
// state of those layers lives in the type-erased `extensions` slot). Inside, arrows run
// one way, from the entry point down: `instance` → `pooled` (the sync guard), `pool`,
// `shared_slot` → `connector` (redis-rs clients, TLS, TCP settings) → `sync`, `aio`
// (the connections), `url`; `retry` (the one retry decision) and `deadline` are leaves.
// `client` (the per-command sync handle) and `cluster` (per-node commands) add methods
// on top, so that the instance never names them.
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
mod retry;
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
pub use self::sync::SyncConnection;
