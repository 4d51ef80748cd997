//! The sync side's own short-timeout connections.
//!
//! Why the cache keeps these next to the instance's pool: a sync call cannot put a
//! deadline on a blocking socket read except through the socket's timeouts, and the
//! pool's connections carry the configuration's (seconds, or none) — a cache command
//! must give up after the cache timeout (250 ms by default). Borrowing from the pool and
//! changing its timeouts would not do either: connecting (a server that is gone, or
//! accepts and never answers) would be bounded by the configured connect timeout, a call
//! could wait for a free pool slot without bound, and a timed-out connection must be
//! thrown away (its reply stream is out of step), which the pool does not offer. The
//! async side needs none of this: it puts a `tokio` deadline on the shared multiplexed
//! client.

use std::sync::Mutex;
use std::time::Duration;

use super::lock::lock;
use crate::redis::connection::{RedisInstance, SyncConnection};
use crate::redis::error::{Error, Result};

/// How many idle sync connections the cache keeps per server.
const MAX_IDLE: usize = 16;

/// Idle sync connections with the cache's short timeouts, with the timeout they carry.
#[derive(Default)]
pub(crate) struct SyncConnections {
    idle: Mutex<Vec<(SyncConnection, Duration)>>,
}

impl SyncConnections {
    /// Runs `f` on an idle short-timeout sync connection (a new one if none), keeping the
    /// connection only when `f` succeeded: after an error its reply stream may be out of
    /// step.
    pub(crate) fn with_connection<T>(
        &self,
        redis: &RedisInstance,
        timeout: Duration,
        f: impl FnOnce(&mut SyncConnection) -> redis::RedisResult<T>,
    ) -> Result<T> {
        let idle = lock(&self.idle).pop();
        let mut conn = match idle {
            Some((conn, t)) if t == timeout => conn,
            Some((conn, _)) => set_timeouts(conn, timeout)?,
            // Connecting (handshake included) is bounded by the cache timeout too, so a
            // server that accepts but never answers costs no more than one that is gone.
            None => redis.get_connection_with_timeout(timeout)?,
        };
        let result = f(&mut conn).map_err(|e| Error::redis("redis cache", e))?;
        let mut idle = lock(&self.idle);
        if idle.len() < MAX_IDLE {
            idle.push((conn, timeout));
        }
        Ok(result)
    }
}

fn set_timeouts(conn: SyncConnection, timeout: Duration) -> Result<SyncConnection> {
    conn.set_read_timeout(Some(timeout))?;
    conn.set_write_timeout(Some(timeout))?;
    Ok(conn)
}
