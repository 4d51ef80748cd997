//! `is_redis_connected`: one PING, bounded in time.

use std::time::Duration;

use super::connection::{RedisInstance, with_deadline};
use super::error::{Error, Result};

/// The longest a health check waits, whatever the configured timeouts: a health probe
/// must answer quickly even when the server is gone.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

fn limit(redis: &RedisInstance) -> Duration {
    let config = redis.config();
    HEALTH_CHECK_TIMEOUT.min(config.redis_socket_connect_timeout() + config.redis_socket_timeout())
}

/// Sends one PING over the sync pool: `(true, None)` when the server answers, else
/// `(false, Some(error))`. Bounded: at most the connect timeout to reach the server,
/// then at most [`HEALTH_CHECK_TIMEOUT`] for the reply, even when the server is paused.
///
/// ```no_run
/// use dtrsfw::redis::{is_redis_connected, RedisConfig, RedisInstance};
///
/// let redis = RedisInstance::new(RedisConfig::new().set_redis_host("localhost"))?;
/// let (healthy, error) = is_redis_connected(&redis);
/// if !healthy {
///     eprintln!("redis is down: {}", error.unwrap());
/// }
/// # Ok::<(), dtrsfw::redis::Error>(())
/// ```
pub fn is_redis_connected(redis: &RedisInstance) -> (bool, Option<Error>) {
    // A dedicated short-timeout connection, not the pool: a pooled connection carries the
    // full socket timeout, and a probe must not queue behind busy pool users.
    let result = redis.get_blocking_connection(Duration::ZERO).and_then(|mut conn| {
        let t = limit(redis);
        conn.set_read_timeout(Some(t))
            .and_then(|()| redis::cmd("PING").query::<String>(&mut conn))
            .map_err(|e| Error::redis("PING", e))
    });
    into_pair(result)
}

/// The async twin of [`is_redis_connected`], over the shared multiplexed connection.
///
/// ```no_run
/// # async fn f(redis: dtrsfw::redis::RedisInstance) {
/// let (healthy, _error) = dtrsfw::redis::is_redis_connected_async(&redis).await;
/// # }
/// ```
pub async fn is_redis_connected_async(redis: &RedisInstance) -> (bool, Option<Error>) {
    let result = with_deadline(limit(redis), "PING", async {
        let mut client = redis.get_async_redis_client().await?;
        redis::cmd("PING")
            .query_async::<String>(&mut client)
            .await
            .map_err(|e| Error::redis("PING", e))
    })
    .await;
    into_pair(result)
}

fn into_pair(result: Result<String>) -> (bool, Option<Error>) {
    match result {
        Ok(_) => (true, None),
        Err(e) => (false, Some(e)),
    }
}
