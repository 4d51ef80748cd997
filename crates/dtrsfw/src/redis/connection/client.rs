//! [`RedisClient`]: the sync client handle, which borrows a pooled connection for each
//! command (like a `redis.Redis` over a pool).
//!
//! [`RedisInstance::get_redis_client`] is defined here rather than with the instance, so
//! that the handle may name the instance without the instance naming the handle.

use std::fmt;

use redis::{Cmd, Value};

use super::instance::RedisInstance;
use super::pooled::PooledConnection;
use super::retry::to_redis_error;

impl RedisInstance {
    /// A sync client handle that borrows a pooled connection for each command (like a
    /// `redis.Redis` over a pool). Implements [`redis::ConnectionLike`], so every
    /// `redis::Commands` method works on it.
    ///
    /// ```no_run
    /// # let redis = dtrsfw::redis::RedisInstance::new(dtrsfw::redis::RedisConfig::new().set_redis_host("localhost"))?;
    /// use redis::Commands;
    /// let mut client = redis.get_redis_client();
    /// let value: Option<String> = client.get("key")?;
    /// println!("{value:?}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    #[must_use]
    pub fn get_redis_client(&self) -> RedisClient {
        RedisClient {
            instance: self.clone(),
            db: self.db(),
        }
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
