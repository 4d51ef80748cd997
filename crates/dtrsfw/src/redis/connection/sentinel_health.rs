//! Health under Sentinel: the node the instance PINGs must also be the one a Sentinel
//! names as primary (`SENTINEL get-master-addr-by-name <service>`). A PING alone is not
//! enough: after a failover the old primary, demoted to a replica, still answers it, and
//! the shared async connection may still reach it until a write fails with `READONLY`.
//!
//! The first Sentinel of the URL that answers decides (a Sentinel that is down or slow is
//! skipped); no Sentinel answering is unhealthy too: the instance could not follow a
//! failover. A mismatch also drops the shared connection, so the next command asks the
//! Sentinels again and reaches the new primary.

use std::time::Duration;

use redis::ConnectionAddr;

use super::aio::AsyncConn;
use super::deadline::with_deadline;
use super::instance::RedisInstance;
use super::sentinel::SentinelTarget;
use crate::redis::error::{Error, ErrorKind, Result};

/// A node's `host:port`, as Sentinels name it.
type HostPort = (String, u16);

impl RedisInstance {
    /// Under Sentinel: PINGs the primary the Sentinels name (a connection of its own, with
    /// `limit` as its timeouts) and asks a Sentinel that it is the primary. `None` for
    /// another kind of target.
    pub(crate) fn sentinel_health(&self, limit: Duration) -> Option<Result<()>> {
        let target = self.connector().sentinel()?;
        let check = || {
            let client = target.primary()?;
            let pong = client.get_connection_with_timeout(limit).and_then(|mut conn| {
                conn.set_read_timeout(Some(limit))?;
                conn.set_write_timeout(Some(limit))?;
                redis::cmd("PING").query::<String>(&mut conn)
            });
            pong.map_err(|e| Error::redis("PING", e))?;
            let named = named_primary(target, limit);
            confirm(client.get_connection_info().addr(), named, &target.service)
        };
        Some(check())
    }

    /// The async twin of [`sentinel_health`](Self::sentinel_health), over the shared
    /// connection (dropped when a Sentinel names another node), all within `limit`.
    pub(crate) async fn sentinel_health_async(&self, limit: Duration) -> Option<Result<()>> {
        let target = self.connector().sentinel()?.clone();
        let check = async {
            let client = self.get_async_redis_client().await?;
            let AsyncConn::Sentinel(shared) = &client.conn else {
                return Err(Error::new(ErrorKind::Connection, "not a sentinel connection"));
            };
            let (mut conn, addr) = shared.connection_and_addr().await?;
            let pong = redis::cmd("PING").query_async::<String>(&mut conn).await;
            if let Err(e) = pong {
                shared.forget(&addr).await;
                return Err(Error::redis("PING", e));
            }
            let named = named_primary_async(&target, limit).await;
            let verdict = confirm(&addr, named, &target.service);
            if verdict.is_err() {
                shared.forget(&addr).await;
            }
            verdict
        };
        Some(with_deadline(limit, "PING", check).await)
    }
}

/// The one decision: `Ok` when the Sentinel named `pinged`; else an error naming both
/// addresses (no credential: a node address carries none).
fn confirm(pinged: &ConnectionAddr, named: Result<Option<HostPort>>, service: &str) -> Result<()> {
    let pinged_at = host_port(pinged);
    match named? {
        Some(named) if Some(&named) == pinged_at.as_ref() => Ok(()),
        Some((host, port)) => Err(Error::new(
            ErrorKind::Connection,
            format!(
                "the node PINGed ({pinged}) is not the primary of {service:?}: a sentinel names {host}:{port} \
                 (a failover is under way or just happened)"
            ),
        )),
        None => Err(Error::new(
            ErrorKind::Connection,
            format!("a sentinel knows no primary for {service:?}"),
        )),
    }
}

fn host_port(addr: &ConnectionAddr) -> Option<HostPort> {
    match addr {
        ConnectionAddr::Tcp(host, port) | ConnectionAddr::TcpTls { host, port, .. } => Some((host.clone(), *port)),
        _ => None,
    }
}

fn get_master_addr(service: &str) -> redis::Cmd {
    let mut cmd = redis::cmd("SENTINEL");
    cmd.arg("get-master-addr-by-name").arg(service);
    cmd
}

/// What the first Sentinel that answers names as the primary (sync side).
fn named_primary(target: &SentinelTarget, limit: Duration) -> Result<Option<HostPort>> {
    let mut last = None;
    for sentinel in target.sentinels.iter() {
        let answer = sentinel.get_connection_with_timeout(limit).and_then(|mut conn| {
            conn.set_read_timeout(Some(limit))?;
            get_master_addr(&target.service).query::<Option<HostPort>>(&mut conn)
        });
        match answer {
            Ok(named) => return Ok(named),
            Err(e) => last = Some(e),
        }
    }
    Err(no_sentinel_answered(last))
}

/// What the first Sentinel that answers names as the primary (async side).
async fn named_primary_async(target: &SentinelTarget, limit: Duration) -> Result<Option<HostPort>> {
    let config = redis::AsyncConnectionConfig::new()
        .set_connection_timeout(Some(limit))
        .set_response_timeout(Some(limit));
    let mut last = None;
    for sentinel in target.sentinels.iter() {
        let answer = match sentinel.get_multiplexed_async_connection_with_config(&config).await {
            Ok(mut conn) => {
                get_master_addr(&target.service)
                    .query_async::<Option<HostPort>>(&mut conn)
                    .await
            }
            Err(e) => Err(e),
        };
        match answer {
            Ok(named) => return Ok(named),
            Err(e) => last = Some(e),
        }
    }
    Err(no_sentinel_answered(last))
}

fn no_sentinel_answered(last: Option<redis::RedisError>) -> Error {
    match last {
        Some(e) => Error::redis("SENTINEL get-master-addr-by-name (no sentinel answered)", e),
        None => Error::new(ErrorKind::Connection, "no sentinel to ask"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_pinged_node_must_be_the_one_the_sentinel_names() {
        let pinged = ConnectionAddr::Tcp("10.0.0.1".into(), 6379);
        assert!(confirm(&pinged, Ok(Some(("10.0.0.1".into(), 6379))), "m").is_ok());
        let other = confirm(&pinged, Ok(Some(("10.0.0.2".into(), 6379))), "m").unwrap_err();
        assert_eq!(other.kind(), ErrorKind::Connection);
        let text = other.to_string();
        assert!(
            text.contains("10.0.0.1:6379") && text.contains("10.0.0.2:6379") && text.contains("not the primary"),
            "{text}"
        );
        assert!(confirm(&pinged, Ok(Some(("10.0.0.1".into(), 6380))), "m").is_err());
        let unknown = confirm(&pinged, Ok(None), "orders").unwrap_err();
        assert!(unknown.to_string().contains("no primary for \"orders\""), "{unknown}");
        let down = confirm(&pinged, Err(no_sentinel_answered(None)), "m").unwrap_err();
        assert!(down.to_string().contains("no sentinel"), "{down}");
    }
}
