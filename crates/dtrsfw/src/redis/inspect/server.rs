//! What the server says about itself (`INFO server|memory|clients`).

use crate::redis::connection::RedisInstance;
use crate::redis::error::{Error, Result};

/// A few figures from `INFO`.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ServerInfo {
    /// `redis` or `valkey`.
    pub server: String,
    /// Its version.
    pub version: String,
    /// Memory in use, bytes.
    pub used_memory: u64,
    /// The same, human-readable (e.g. `1.02M`).
    pub used_memory_human: String,
    /// Clients connected.
    pub connected_clients: u64,
    /// Seconds since it started.
    pub uptime_seconds: u64,
}

/// Name, version, memory and clients of the server (one node's, on a cluster).
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)).
pub async fn server_info(redis: &RedisInstance) -> Result<ServerInfo> {
    let mut client = redis.get_async_redis_client().await?;
    let mut text = String::new();
    for section in ["server", "memory", "clients"] {
        let part: String = redis::cmd("INFO")
            .arg(section)
            .query_async(&mut client)
            .await
            .map_err(|e| Error::redis("INFO", e))?;
        text.push_str(&part);
    }
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(':').map(|v| v.trim().to_owned()))
    };
    let number = |name: &str| field(name).and_then(|v| v.parse().ok()).unwrap_or(0);
    let (server, version) = match field("valkey_version") {
        Some(v) => ("valkey", v),
        None => ("redis", field("redis_version").unwrap_or_default()),
    };
    Ok(ServerInfo {
        server: server.to_owned(),
        version,
        used_memory: number("used_memory"),
        used_memory_human: field("used_memory_human").unwrap_or_default(),
        connected_clients: number("connected_clients"),
        uptime_seconds: number("uptime_in_seconds"),
    })
}
