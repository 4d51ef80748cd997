//! The async API: the shared client ([`AsyncRedisClient`]) and the dedicated connection
//! for blocking reads ([`AsyncBlockingConnection`]). Both are one server or a cluster;
//! that choice, and the delegation to redis-rs it implies, is written once in
//! [`AsyncConn`], which both wrap.

use std::fmt;

use redis::aio::{ConnectionLike, ConnectionManager, MultiplexedConnection};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, RedisFuture, Value};

use super::capabilities::ConnectionEpoch;
use super::retry::{command_name, is_retryable_failure, may_retry};
use super::sentinel::SentinelShared;

/// An async connection to one server (`S`: the shared client's `ConnectionManager`, or a
/// dedicated `MultiplexedConnection`) or to a cluster. Cheap to clone: clones share the
/// connection.
#[derive(Clone)]
pub(super) enum AsyncConn<S> {
    Single(S),
    Cluster(ClusterConnection),
    /// The shared connection under Sentinel (follows the primary; see `sentinel.rs`).
    Sentinel(SentinelShared),
}

impl<S: ConnectionLike + Send> AsyncConn<S> {
    fn as_dyn(&mut self) -> &mut (dyn ConnectionLike + Send) {
        match self {
            AsyncConn::Single(conn) => conn,
            AsyncConn::Cluster(conn) => conn,
            AsyncConn::Sentinel(conn) => conn,
        }
    }

    pub(super) fn is_cluster(&self) -> bool {
        matches!(self, AsyncConn::Cluster(_))
    }
}

impl<S: ConnectionLike + Send> ConnectionLike for AsyncConn<S> {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.as_dyn().req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.as_dyn().req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        match self {
            AsyncConn::Single(conn) => conn.get_db(),
            AsyncConn::Cluster(conn) => conn.get_db(),
            AsyncConn::Sentinel(conn) => conn.get_db(),
        }
    }
}

/// The async client: a handle on the instance's shared multiplexed connection. Cheap to
/// clone; implements [`redis::aio::ConnectionLike`], so `redis::AsyncCommands` work on it.
/// Safe commands are retried once after a timeout or a lost connection when
/// `retry_on_timeout` is on (see [`RedisConfig::set_redis_retry_on_timeout`]).
///
/// On a cluster it wraps redis-rs's async cluster connection: commands go to the node
/// owning their key, redirections and failovers are followed by redis-rs.
///
/// [`RedisConfig::set_redis_retry_on_timeout`]: crate::redis::RedisConfig::set_redis_retry_on_timeout
#[derive(Clone)]
pub struct AsyncRedisClient {
    pub(super) conn: AsyncConn<ConnectionManager>,
    retry_on_timeout: bool,
    /// Moved on a lost connection or timeout: the server may be another one now.
    epoch: ConnectionEpoch,
}

impl fmt::Debug for AsyncRedisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncRedisClient")
            .field("cluster", &self.is_cluster())
            .field("retry_on_timeout", &self.retry_on_timeout)
            .finish_non_exhaustive()
    }
}

impl AsyncRedisClient {
    /// The client over the shared connection `conn`.
    pub(super) fn new(conn: AsyncConn<ConnectionManager>, retry_on_timeout: bool, epoch: ConnectionEpoch) -> Self {
        AsyncRedisClient {
            conn,
            retry_on_timeout,
            epoch,
        }
    }

    /// Passes `result` through, moving the epoch when it is a lost connection or timeout.
    fn watch<T>(&self, result: redis::RedisResult<T>) -> redis::RedisResult<T> {
        if let Err(e) = &result
            && is_retryable_failure(e)
        {
            self.epoch.bump();
        }
        result
    }

    /// Whether this client talks to a cluster.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        self.conn.is_cluster()
    }
}

impl AsyncConn<ConnectionManager> {
    /// Sends one command. On one server, through the `ConnectionManager`'s own async
    /// method rather than its `ConnectionLike` impl, which boxes a future per call.
    async fn send_command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        match self {
            AsyncConn::Single(conn) => conn.send_packed_command(cmd).await,
            other => other.req_packed_command(cmd).await,
        }
    }
}

impl AsyncRedisClient {
    /// Sends `cmd` and reads its raw reply (a server error is an `Err`), retried once
    /// as [`ConnectionLike::req_packed_command`] says. The hot paths of the crate (a
    /// send) await this directly: no boxed future per command, where the trait needs
    /// one.
    pub(crate) async fn send_command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        let first = self.conn.send_command(cmd).await;
        match self.watch(first) {
            Err(e) if is_retryable_failure(&e) && may_retry(self.retry_on_timeout, command_name(cmd)) => {
                tracing::warn!(error = %e, "retrying a command that is safe to repeat");
                let second = self.conn.send_command(cmd).await;
                self.watch(second)
            }
            other => other,
        }
    }
}

impl ConnectionLike for AsyncRedisClient {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        Box::pin(self.send_command(cmd))
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        // A pipeline mixes commands; it is not retried as a whole.
        Box::pin(async move {
            let result = self.conn.req_packed_commands(pipeline, offset, count).await;
            self.watch(result)
        })
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}

/// A dedicated async connection for blocking reads, from
/// [`RedisInstance::get_async_blocking_connection`]: a multiplexed connection to one
/// server, or a cluster connection of its own. Implements
/// [`redis::aio::ConnectionLike`]; cheap to clone (clones share the connection).
///
/// [`RedisInstance::get_async_blocking_connection`]: super::RedisInstance::get_async_blocking_connection
#[derive(Clone)]
pub struct AsyncBlockingConnection {
    conn: AsyncConn<MultiplexedConnection>,
}

impl fmt::Debug for AsyncBlockingConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AsyncBlockingConnection")
            .field("cluster", &self.conn.is_cluster())
            .finish_non_exhaustive()
    }
}

impl AsyncBlockingConnection {
    /// The dedicated connection `conn`.
    pub(super) fn new(conn: AsyncConn<MultiplexedConnection>) -> Self {
        AsyncBlockingConnection { conn }
    }
}

/// Plain delegation: a blocking read is never retried (`XREADGROUP` is not safe to repeat).
impl ConnectionLike for AsyncBlockingConnection {
    fn req_packed_command<'a>(&'a mut self, cmd: &'a Cmd) -> RedisFuture<'a, Value> {
        self.conn.req_packed_command(cmd)
    }

    fn req_packed_commands<'a>(
        &'a mut self,
        pipeline: &'a Pipeline,
        offset: usize,
        count: usize,
    ) -> RedisFuture<'a, Vec<Value>> {
        self.conn.req_packed_commands(pipeline, offset, count)
    }

    fn get_db(&self) -> i64 {
        self.conn.get_db()
    }
}
