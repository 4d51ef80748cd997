//! The sync API: a connection to one server or a cluster ([`SyncConnection`]), the guard
//! of a pooled one ([`PooledConnection`]) and the handle that borrows one per command
//! ([`RedisClient`]). The guard and the handle retry safe commands as decided in
//! `retry.rs`.

use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use redis::{Cmd, Value};

use super::instance::RedisInstance;
use super::pool::SyncPool;
use super::retry::{command_name, is_retryable_failure, may_retry, packed_command_name, to_redis_error};
use crate::redis::error::{Error, Result};

/// A sync connection: to one server (a [`redis::Connection`]) or to a cluster (a
/// [`redis::cluster::ClusterConnection`], which routes each command by its key).
/// Implements [`redis::ConnectionLike`], so every `redis::Commands` method and
/// `redis::cmd(..).query(&mut conn)` work on it alike.
pub struct SyncConnection {
    pub(super) inner: SyncInner,
}

pub(super) enum SyncInner {
    Single(redis::Connection),
    // Boxed: a cluster connection (a connection per node plus the slot map) is much
    // larger than a one-server connection.
    Cluster(Box<redis::cluster::ClusterConnection>),
}

impl fmt::Debug for SyncConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SyncConnection")
            .field("cluster", &self.is_cluster())
            .finish_non_exhaustive()
    }
}

impl SyncConnection {
    /// Whether this is a cluster connection.
    #[must_use]
    pub fn is_cluster(&self) -> bool {
        matches!(self.inner, SyncInner::Cluster(_))
    }

    /// The one-server connection, or `None` on a cluster: for the rare API that needs a
    /// [`redis::Connection`] itself.
    pub fn as_single_mut(&mut self) -> Option<&mut redis::Connection> {
        match &mut self.inner {
            SyncInner::Single(conn) => Some(conn),
            SyncInner::Cluster(_) => None,
        }
    }

    /// Sets the read timeout (of every node's socket, on a cluster); `None` waits forever.
    ///
    /// # Errors
    ///
    /// The socket's error (a zero duration is refused).
    pub fn set_read_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        match &self.inner {
            SyncInner::Single(conn) => conn.set_read_timeout(timeout),
            SyncInner::Cluster(conn) => conn.set_read_timeout(timeout),
        }
        .map_err(|e| Error::redis("setting the read timeout", e))
    }

    /// Sets the write timeout (of every node's socket, on a cluster); `None` waits forever.
    ///
    /// # Errors
    ///
    /// The socket's error (a zero duration is refused).
    pub fn set_write_timeout(&self, timeout: Option<Duration>) -> Result<()> {
        match &self.inner {
            SyncInner::Single(conn) => conn.set_write_timeout(timeout),
            SyncInner::Cluster(conn) => conn.set_write_timeout(timeout),
        }
        .map_err(|e| Error::redis("setting the write timeout", e))
    }
}

impl redis::ConnectionLike for SyncConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<Value> {
        match &mut self.inner {
            SyncInner::Single(conn) => conn.req_packed_command(cmd),
            SyncInner::Cluster(conn) => conn.req_packed_command(cmd),
        }
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> redis::RedisResult<Vec<Value>> {
        match &mut self.inner {
            SyncInner::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            SyncInner::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        }
    }

    fn req_command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        match &mut self.inner {
            SyncInner::Single(conn) => conn.req_command(cmd),
            // The cluster connection routes a `Cmd` by its key (and fans out keyless
            // commands such as PING to every primary); keep that path.
            SyncInner::Cluster(conn) => conn.req_command(cmd),
        }
    }

    fn get_db(&self) -> i64 {
        match &self.inner {
            SyncInner::Single(conn) => conn.get_db(),
            SyncInner::Cluster(conn) => conn.get_db(),
        }
    }

    fn check_connection(&mut self) -> bool {
        match &mut self.inner {
            SyncInner::Single(conn) => conn.check_connection(),
            SyncInner::Cluster(conn) => redis::ConnectionLike::check_connection(conn),
        }
    }

    fn is_open(&self) -> bool {
        match &self.inner {
            SyncInner::Single(conn) => conn.is_open(),
            SyncInner::Cluster(conn) => conn.is_open(),
        }
    }
}

/// A connection borrowed from the sync pool; returned to it on `Drop` (discarded
/// instead if it broke). Implements [`redis::ConnectionLike`], so `redis::Commands`
/// methods and `cmd.query(&mut conn)` work on it directly; then, like every client of
/// the instance, a command that is safe to repeat is retried once, on a fresh connection,
/// after a timeout or a lost connection (see [`RedisConfig::set_redis_retry_on_timeout`](crate::redis::RedisConfig::set_redis_retry_on_timeout)).
///
/// It also dereferences to the [`SyncConnection`] (one server or a cluster) for its
/// `&self` methods; [`connection_mut`](Self::connection_mut) lends it by `&mut`, without
/// that retry. (It implements `Deref` but not `DerefMut`: redis-rs would otherwise see
/// the connection, not the guard, and bypass the retry.)
pub struct PooledConnection {
    conn: Option<SyncConnection>,
    pool: Arc<SyncPool>,
}

impl fmt::Debug for PooledConnection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PooledConnection").field("pool", &self.pool).finish()
    }
}

impl std::ops::Deref for PooledConnection {
    type Target = SyncConnection;
    fn deref(&self) -> &SyncConnection {
        self.conn.as_ref().expect("connection present until drop")
    }
}

impl PooledConnection {
    /// The guard of `conn`, taken from `pool`, to which it goes back on drop.
    pub(super) fn new(conn: SyncConnection, pool: Arc<SyncPool>) -> Self {
        PooledConnection { conn: Some(conn), pool }
    }

    /// The connection itself, for what needs a [`SyncConnection`] by `&mut` (such as
    /// [`SyncConnection::as_single_mut`]). Commands sent through it are not retried.
    pub fn connection_mut(&mut self) -> &mut SyncConnection {
        self.conn.as_mut().expect("connection present until drop")
    }

    /// Runs `f`; when it fails in a way that may mean no answer came and `retry` holds,
    /// replaces the connection with a fresh one and runs `f` once more. The failed
    /// connection is closed, never reused: after a timeout its late reply could still
    /// arrive and be taken for the next command's.
    fn run<T>(
        &mut self,
        retry: bool,
        mut f: impl FnMut(&mut SyncConnection) -> redis::RedisResult<T>,
    ) -> redis::RedisResult<T> {
        match f(self.connection_mut()) {
            Err(e) if retry && is_retryable_failure(&e) => {
                tracing::warn!(error = %e, "retrying a command that is safe to repeat, on a fresh connection");
                let fresh = self.pool.connect_replacement().map_err(|e| to_redis_error(&e))?;
                // The old one is dropped here: its place in the pool's count is the fresh one's.
                self.conn = Some(fresh);
                f(self.connection_mut())
            }
            other => other,
        }
    }
}

impl Drop for PooledConnection {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take() {
            self.pool.give_back(conn);
        }
    }
}

impl redis::ConnectionLike for PooledConnection {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<Value> {
        let retry = may_retry(self.pool.retry_on_timeout(), packed_command_name(cmd));
        self.run(retry, |conn| conn.req_packed_command(cmd))
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> redis::RedisResult<Vec<Value>> {
        // A pipeline mixes commands; it is not retried as a whole.
        self.run(false, |conn| conn.req_packed_commands(cmd, offset, count))
    }

    fn req_command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        // Through the `Cmd` (not its packed bytes) so that a cluster connection can route
        // it; a one-server connection packs it as before.
        let retry = may_retry(self.pool.retry_on_timeout(), command_name(cmd));
        self.run(retry, |conn| conn.req_command(cmd))
    }

    fn get_db(&self) -> i64 {
        (**self).get_db()
    }

    fn check_connection(&mut self) -> bool {
        self.connection_mut().check_connection()
    }

    fn is_open(&self) -> bool {
        (**self).is_open()
    }
}

/// The sync client handle: each command borrows a pooled connection. See
/// [`RedisInstance::get_redis_client`].
#[derive(Clone)]
pub struct RedisClient {
    instance: RedisInstance,
    db: i64,
}

impl fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClient").field("instance", &self.instance).finish()
    }
}

impl RedisClient {
    /// The handle of `instance`, whose connections select database `db`.
    pub(super) fn new(instance: RedisInstance, db: i64) -> Self {
        RedisClient { instance, db }
    }

    fn borrow(&self) -> redis::RedisResult<PooledConnection> {
        self.instance.get_redis().map_err(|e| to_redis_error(&e))
    }
}

/// Each command borrows a pooled connection, whose retry of safe commands it shares.
impl redis::ConnectionLike for RedisClient {
    fn req_packed_command(&mut self, cmd: &[u8]) -> redis::RedisResult<Value> {
        self.borrow()?.req_packed_command(cmd)
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> redis::RedisResult<Vec<Value>> {
        self.borrow()?.req_packed_commands(cmd, offset, count)
    }

    fn req_command(&mut self, cmd: &Cmd) -> redis::RedisResult<Value> {
        self.borrow()?.req_command(cmd)
    }

    fn get_db(&self) -> i64 {
        self.db
    }

    fn check_connection(&mut self) -> bool {
        self.borrow().is_ok_and(|mut conn| conn.check_connection())
    }

    fn is_open(&self) -> bool {
        true
    }
}
