//! [`PooledConnection`]: the guard of a connection borrowed from the sync pool, which
//! retries safe commands once on a fresh connection (the decision is `retry.rs`'s).

use std::fmt;
use std::sync::Arc;

use redis::{Cmd, Value};

use super::pool::SyncPool;
use super::retry::{command_name, is_retryable_failure, may_retry, packed_command_name, to_redis_error};
use super::sync::SyncConnection;

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
