//! [`SyncConnection`]: one synchronous connection, to one server or to a cluster. The
//! pool, the guard and the handle of the sync API are built on it.

use std::sync::Arc;
use std::time::Duration;
use std::{fmt, io};

use redis::{Cmd, RedisError, RedisResult, Value};

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
    fn req_packed_command(&mut self, cmd: &[u8]) -> RedisResult<Value> {
        interrupted_as_timeout(match &mut self.inner {
            SyncInner::Single(conn) => conn.req_packed_command(cmd),
            SyncInner::Cluster(conn) => conn.req_packed_command(cmd),
        })
    }

    fn req_packed_commands(&mut self, cmd: &[u8], offset: usize, count: usize) -> RedisResult<Vec<Value>> {
        interrupted_as_timeout(match &mut self.inner {
            SyncInner::Single(conn) => conn.req_packed_commands(cmd, offset, count),
            SyncInner::Cluster(conn) => conn.req_packed_commands(cmd, offset, count),
        })
    }

    fn req_command(&mut self, cmd: &Cmd) -> RedisResult<Value> {
        interrupted_as_timeout(match &mut self.inner {
            SyncInner::Single(conn) => conn.req_command(cmd),
            // The cluster connection routes a `Cmd` by its key (and fans out keyless
            // commands such as PING to every primary); keep that path.
            SyncInner::Cluster(conn) => conn.req_command(cmd),
        })
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

/// Reports a read cut short by EINTR as the timeout it stands for.
///
/// Linux never restarts a socket read that has a timeout (`SO_RCVTIMEO`) after a signal
/// handler ran or the process was stopped and continued (Ctrl-Z, `docker pause`, a cgroup
/// freeze): the read fails with EINTR however long the wait had left (signal(7)).
/// redis-rs then does what it does after a timeout: the late reply is skipped when it
/// comes, so the connection stays in step. For the caller the outcome is a timeout's, no
/// reply in this wait and the command may still run, so that is how it is classified
/// (`is_timeout`), and how the retry decision sees it. (Writes need nothing: `write_all`
/// already resumes after EINTR.)
fn interrupted_as_timeout<T>(result: RedisResult<T>) -> RedisResult<T> {
    result.map_err(|err| {
        if is_interrupted(&err) {
            io::Error::new(
                io::ErrorKind::TimedOut,
                "the wait for the reply was cut short by a signal or a stop of the process (EINTR)",
            )
            .into()
        } else {
            err
        }
    })
}

/// Whether `err` is an EINTR from the socket. redis-rs keeps an I/O error as an
/// `Arc<dyn Error>`, which its `source()` lends (a unit test below notices if that changes).
fn is_interrupted(err: &RedisError) -> bool {
    std::error::Error::source(err)
        .and_then(|source| source.downcast_ref::<Arc<dyn std::error::Error + Send + Sync>>())
        .and_then(|inner| inner.downcast_ref::<io::Error>())
        .is_some_and(|io_err| io_err.kind() == io::ErrorKind::Interrupted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_eintr_reads_as_a_timeout_and_other_errors_pass_unchanged() {
        let eintr: RedisResult<()> = Err(io::Error::from(io::ErrorKind::Interrupted).into());
        let err = interrupted_as_timeout(eintr).unwrap_err();
        assert!(err.is_timeout(), "{err}");

        let reset: RedisResult<()> = Err(io::Error::from(io::ErrorKind::ConnectionReset).into());
        let err = interrupted_as_timeout(reset).unwrap_err();
        assert!(!err.is_timeout() && err.is_connection_dropped(), "{err}");
    }
}
