//! The I/O edge of the sends: the one place where the sync and async APIs differ.
//!
//! The flows in `send.rs` are `async` code generic over [`SendIo`]. The async API awaits
//! them with [`AsyncIo`] (the instance's shared multiplexed client, a `tokio` sleep); the
//! sync API drives them with [`SyncIo`] (the sync connection pool, a thread sleep), whose
//! futures finish on their first poll, through `run_sync`.

use std::time::Duration;

use redis::FromRedisValue;

use crate::redis::connection::{RedisClient, RedisInstance, Request};
use crate::redis::error::{Error, Result};

/// How a send reaches Redis and waits between attempts.
pub(super) trait SendIo {
    /// Sends `request` and reads its reply. A failure of the command is an error in the
    /// words of `context` (a failure to connect says so itself).
    async fn query<T: FromRedisValue>(
        &mut self,
        request: &impl Request,
        context: &(dyn Fn() -> String + Sync),
    ) -> Result<T>;

    /// Waits `delay` before the next attempt.
    async fn sleep(&mut self, delay: Duration);
}

/// The sync API's edge: a handle on the instance's sync connection pool (taken once per
/// send), and the calling thread asleep.
pub(super) struct SyncIo(RedisClient);

impl SyncIo {
    pub(super) fn new(redis: &RedisInstance) -> Self {
        SyncIo(redis.get_redis_client())
    }
}

impl SendIo for SyncIo {
    async fn query<T: FromRedisValue>(
        &mut self,
        request: &impl Request,
        context: &(dyn Fn() -> String + Sync),
    ) -> Result<T> {
        request.query_sync(&mut self.0).map_err(|e| Error::redis(context(), e))
    }

    async fn sleep(&mut self, delay: Duration) {
        std::thread::sleep(delay);
    }
}

/// The async API's edge: the instance's shared multiplexed client (fetched per attempt,
/// so an attempt after a lost connection reconnects), and a `tokio` sleep.
pub(super) struct AsyncIo<'a>(&'a RedisInstance);

impl<'a> AsyncIo<'a> {
    pub(super) fn new(redis: &'a RedisInstance) -> Self {
        AsyncIo(redis)
    }
}

impl SendIo for AsyncIo<'_> {
    async fn query<T: FromRedisValue>(
        &mut self,
        request: &impl Request,
        context: &(dyn Fn() -> String + Sync),
    ) -> Result<T> {
        let mut client = self.0.get_async_redis_client().await?;
        request
            .query_async(&mut client)
            .await
            .map_err(|e| Error::redis(context(), e))
    }

    async fn sleep(&mut self, delay: Duration) {
        tokio::time::sleep(delay).await;
    }
}
