//! The I/O edge: the one place where the sync and async APIs differ.
//!
//! Every flow (a cached call, `cache_data`, the admin functions) is written once, as
//! `async` code generic over the traits here. The async API awaits it with the async
//! impls. The sync API drives the same code with the sync impls, whose futures do their
//! (blocking) work when first polled and are then ready, so `run_sync` (`sync_edge.rs`)
//! completes the whole flow in a single poll, on the calling thread. Decisions
//! therefore exist once; only these impls know which connections are used and how a
//! command is bounded in time.

use std::time::Duration;

use redis::{Cmd, FromRedisValue, RedisResult};

use super::flight::{Flight, Outcome};
use super::server::ServerState;
use crate::redis::connection::{
    AsyncRedisClient, NodeAddr, PooledConnection, RedisInstance, Request, SyncConnection, with_deadline,
};
use crate::redis::error::{Error, Result};
pub(super) use crate::redis::sync_edge::run_sync;

/// How a cached call reaches Redis and waits for a concurrent caller.
pub(super) trait CallIo {
    /// One cache request, bounded by `timeout` (connecting included).
    async fn query<R: FromRedisValue>(
        redis: &RedisInstance,
        server: &ServerState,
        timeout: Duration,
        cmd: &impl Request,
    ) -> Result<R>;

    /// Waits until the flight of a concurrent identical call ends.
    async fn wait(flight: &Flight) -> Outcome;
}

/// The sync API's edge: the cache's own short-timeout connections (see `sync_conns.rs`),
/// and a thread blocked on a condvar.
pub(super) struct SyncIo;

/// The async API's edge: the instance's shared multiplexed client under a `tokio`
/// deadline, and a task parked on a notify.
pub(super) struct AsyncIo;

impl CallIo for SyncIo {
    async fn query<R: FromRedisValue>(
        redis: &RedisInstance,
        server: &ServerState,
        timeout: Duration,
        cmd: &impl Request,
    ) -> Result<R> {
        server
            .sync_conns
            .with_connection(redis, timeout, |conn| cmd.query_sync(conn))
    }

    async fn wait(flight: &Flight) -> Outcome {
        flight.wait_sync()
    }
}

impl CallIo for AsyncIo {
    async fn query<R: FromRedisValue>(
        redis: &RedisInstance,
        _: &ServerState,
        timeout: Duration,
        cmd: &impl Request,
    ) -> Result<R> {
        with_deadline(timeout, "redis cache command", async {
            let mut client = redis.get_async_redis_client().await?;
            cmd.query_async(&mut client)
                .await
                .map_err(|e| Error::redis("redis cache", e))
        })
        .await
    }

    async fn wait(flight: &Flight) -> Outcome {
        flight.wait().await
    }
}

/// A connection the admin functions send commands on (with the instance's configured
/// timeouts, not the cache's: they report errors rather than skip Redis). Any sync
/// `redis::ConnectionLike` (ready when polled), or the async client.
pub(super) trait Conn {
    async fn run<R: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<R>;
}

impl<C: redis::ConnectionLike> Conn for C {
    async fn run<R: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<R> {
        cmd.query(self)
    }
}

impl Conn for AsyncRedisClient {
    async fn run<R: FromRedisValue>(&mut self, cmd: &Cmd) -> RedisResult<R> {
        cmd.query_async(self).await
    }
}

/// A connection that can also address each primary of a cluster (for `SCAN`).
pub(super) trait NodeConn: Conn {
    /// Where to run a per-node command: `[None]` for one server, every primary for a
    /// cluster.
    async fn nodes(&mut self) -> RedisResult<Vec<Option<NodeAddr>>>;

    /// Runs `cmd` on `node` (one of [`nodes`](Self::nodes)).
    async fn run_on<R: FromRedisValue>(&mut self, node: Option<&NodeAddr>, cmd: &Cmd) -> RedisResult<R>;
}

impl NodeConn for SyncConnection {
    async fn nodes(&mut self) -> RedisResult<Vec<Option<NodeAddr>>> {
        self.scan_targets()
    }

    async fn run_on<R: FromRedisValue>(&mut self, node: Option<&NodeAddr>, cmd: &Cmd) -> RedisResult<R> {
        self.query_on(node, cmd)
    }
}

/// The pooled guard: `run` goes through the guard (a safe command is retried once after a
/// lost connection), per-node commands through the bare connection it lends.
impl NodeConn for PooledConnection {
    async fn nodes(&mut self) -> RedisResult<Vec<Option<NodeAddr>>> {
        self.connection_mut().scan_targets()
    }

    async fn run_on<R: FromRedisValue>(&mut self, node: Option<&NodeAddr>, cmd: &Cmd) -> RedisResult<R> {
        self.connection_mut().query_on(node, cmd)
    }
}

impl NodeConn for AsyncRedisClient {
    async fn nodes(&mut self) -> RedisResult<Vec<Option<NodeAddr>>> {
        self.scan_targets().await
    }

    async fn run_on<R: FromRedisValue>(&mut self, node: Option<&NodeAddr>, cmd: &Cmd) -> RedisResult<R> {
        self.query_on(node, cmd).await
    }
}
