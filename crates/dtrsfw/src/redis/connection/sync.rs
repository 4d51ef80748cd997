//! [`SyncConnection`]: one synchronous connection, to one server or to a cluster. The
//! pool, the guard and the handle of the sync API are built on it.

use std::fmt;
use std::time::Duration;

use redis::{Cmd, Value};

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
