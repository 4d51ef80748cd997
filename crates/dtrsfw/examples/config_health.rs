//! Configuration and health: builds a `RedisInstance` from `REDIS_URL`, checks the server
//! answers (sync and async), and writes and reads one key over a pooled connection.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p dtrsfw --example config_health
//! ```
//!
//! Exits 0 when the server is healthy, 1 (with the error) when it is not.

// An example talks to its reader on standard output.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use dtrsfw::redis::{RedisConfig, RedisInstance, is_redis_connected, is_redis_connected_async};
use redis::Commands;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    // The setters mirror the Python `RedisConfig`; nothing connects yet.
    // (`RedisConfig::from_env()` reads `REDIS_URL` or `REDIS_HOST`, `REDIS_PORT`, ... itself.)
    let config = RedisConfig::new()
        .set_redis_url(url)
        .set_redis_socket_connect_timeout(Duration::from_secs(2))
        .set_redis_socket_timeout(Duration::from_secs(2))
        .set_redis_max_connections(4);
    // Validates the whole configuration and names the bad field if any.
    let redis = RedisInstance::new(config)?;
    // `Display` masks any credentials in the URL.
    println!("server: {redis}");

    let (healthy, error) = is_redis_connected(&redis);
    if let Some(error) = error {
        println!("unhealthy: {error}");
        std::process::exit(1);
    }
    let (healthy_async, _) = is_redis_connected_async(&redis).await;
    println!("healthy: {healthy} (async check: {healthy_async})");

    // A pooled connection, returned to the pool when dropped; redis-rs commands work on it.
    let mut conn = redis.get_redis()?;
    let () = conn.set_ex("examples:config_health", "hello", 60)?;
    let value: String = conn.get("examples:config_health")?;
    println!("wrote and read back: {value}");
    Ok(())
}
