//! `is_redis_connected`: one PING, bounded in time.
//!
//! On a cluster the PING goes to every primary (redis-rs fans it out), and the node's
//! `CLUSTER INFO` must report `cluster_state:ok`: a cluster with an uncovered slot
//! is reported unhealthy even if every reachable node answers.
//!
//! Under Sentinel the PING goes to the primary the Sentinels name, and a Sentinel must
//! still name that node (`SENTINEL get-master-addr-by-name`): a demoted primary answers
//! PING too.

use std::time::Duration;

use super::connection::{RedisInstance, with_deadline};
use super::error::{Error, ErrorKind, Result};

/// The longest a health check waits, whatever the configured timeouts: a health probe
/// must answer quickly even when the server is gone.
pub const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(2);

fn limit(redis: &RedisInstance) -> Duration {
    let config = redis.config();
    HEALTH_CHECK_TIMEOUT.min(config.redis_socket_connect_timeout() + config.redis_socket_timeout())
}

/// Sends one PING over the sync pool: `(true, None)` when the server answers, else
/// `(false, Some(error))`. On a cluster, every primary must answer and the cluster
/// state must be `ok`; under Sentinel, the first Sentinel that answers must name the
/// PINGed node as the primary. Bounded: at most the connect timeout to reach the server,
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
#[must_use]
pub fn is_redis_connected(redis: &RedisInstance) -> (bool, Option<Error>) {
    if let Some(result) = redis.sentinel_health(limit(redis)) {
        return into_pair(result.map(|()| String::new()));
    }
    // A dedicated short-timeout connection, not the pool: a pooled connection carries the
    // full socket timeout, and a probe must not queue behind busy pool users.
    let result = redis.get_blocking_connection(Duration::ZERO).and_then(|mut conn| {
        let t = limit(redis);
        conn.set_read_timeout(Some(t))?;
        let pong = redis::cmd("PING")
            .query::<String>(&mut conn)
            .map_err(|e| Error::redis("PING", e))?;
        if conn.is_cluster() {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query(&mut conn)
                .map_err(|e| Error::redis("CLUSTER INFO", e))?;
            check_cluster_state(&info)?;
        }
        Ok(pong)
    });
    into_pair(result)
}

/// The async twin of [`is_redis_connected`], over the shared multiplexed connection
/// (on a cluster: every primary answers, and the cluster state is `ok`; under Sentinel:
/// a Sentinel names the node it reaches, else it is dropped and the next command asks
/// the Sentinels again).
///
/// ```no_run
/// # async fn f(redis: dtrsfw::redis::RedisInstance) {
/// let (healthy, error) = dtrsfw::redis::is_redis_connected_async(&redis).await;
/// if !healthy {
///     eprintln!("redis is down: {error:?}");
/// }
/// # }
/// ```
pub async fn is_redis_connected_async(redis: &RedisInstance) -> (bool, Option<Error>) {
    if let Some(result) = redis.sentinel_health_async(limit(redis)).await {
        return into_pair(result.map(|()| String::new()));
    }
    let result = with_deadline(limit(redis), "PING", async {
        let mut client = redis.get_async_redis_client().await?;
        let pong = redis::cmd("PING")
            .query_async::<String>(&mut client)
            .await
            .map_err(|e| Error::redis("PING", e))?;
        if client.is_cluster() {
            let info: String = redis::cmd("CLUSTER")
                .arg("INFO")
                .query_async(&mut client)
                .await
                .map_err(|e| Error::redis("CLUSTER INFO", e))?;
            check_cluster_state(&info)?;
        }
        Ok(pong)
    })
    .await;
    into_pair(result)
}

/// `Ok` when `CLUSTER INFO` says `cluster_state:ok`; else an error quoting the state.
fn check_cluster_state(info: &str) -> Result<()> {
    let state = info
        .lines()
        .find_map(|line| line.trim().strip_prefix("cluster_state:"))
        .unwrap_or("unknown");
    if state == "ok" {
        Ok(())
    } else {
        Err(Error::new(
            ErrorKind::Connection,
            format!("cluster_state is {state:?}, not \"ok\" (a slot is not served)"),
        ))
    }
}

fn into_pair(result: Result<String>) -> (bool, Option<Error>) {
    match result {
        Ok(_) => (true, None),
        Err(e) => (false, Some(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_state_is_read_from_cluster_info() {
        assert!(
            check_cluster_state("cluster_enabled:1\r\ncluster_state:ok\r\ncluster_slots_assigned:16384\r\n").is_ok()
        );
        let err = check_cluster_state("cluster_state:fail\r\n").unwrap_err();
        assert!(err.to_string().contains("fail"), "{err}");
        assert!(check_cluster_state("").is_err());
    }
}
