//! Push connections: dedicated RESP3 connections whose server pushes (invalidations,
//! redis-rs's disconnection notice) go to a channel, for the cache's local tier. To the
//! one server, or to one node of a cluster, with the credentials and TLS settings the
//! cluster client uses; and which nodes of a cluster serve slots (all of them must be
//! subscribed for the tier to be coherent there).

use std::time::Duration;

use redis::Value;
use redis::aio::MultiplexedConnection;

use super::cluster::{NodeAddr, serving_nodes_from_slots};
use super::connector::Connector;
use crate::redis::error::{Error, ErrorKind, Result};

impl Connector {
    /// A dedicated RESP3 connection whose pushes go to `push`: to the one server
    /// (`node` `None`), or to `node` of a cluster. `None` when the target has no such
    /// connection: under Sentinel, a node given for one server, or none for a cluster.
    pub(super) async fn connect_push_async(
        &self,
        node: Option<&NodeAddr>,
        push: impl redis::aio::AsyncPushSender,
    ) -> Option<Result<MultiplexedConnection>> {
        let mut info = self.push_template(node)?.get_connection_info().clone();
        if let Some(node) = node {
            let addr = node.with_tls_of(info.addr());
            info = info.set_addr(addr);
        }
        let settings = info
            .redis_settings()
            .clone()
            .set_protocol(redis::ProtocolVersion::RESP3);
        // The address (TLS parameters included) is kept; only the protocol changes.
        let resp3 = match redis::Client::open(info.set_redis_settings(settings)) {
            Ok(client) => client,
            Err(e) => return Some(Err(Error::redis("connecting to redis (RESP3)", e))),
        };
        let (connect_timeout, response_timeout) = self.timeouts();
        let config = redis::AsyncConnectionConfig::new()
            .set_connection_timeout(Some(connect_timeout))
            .set_response_timeout(Some(response_timeout))
            .set_push_sender(push);
        Some(
            resp3
                .get_multiplexed_async_connection_with_config(&config)
                .await
                .map_err(|e| Error::redis("connecting to redis (RESP3)", e)),
        )
    }

    /// `[None]` (the server) for one server; on a cluster every node that serves slots
    /// (primaries and available replicas), from `CLUSTER SLOTS` read through a cluster
    /// connection of its own (not the shared client: the caller may run on a runtime of
    /// its own, which must not end up driving the shared client's connections).
    pub(super) async fn serving_nodes(&self) -> Result<Vec<Option<NodeAddr>>> {
        if !self.is_cluster() {
            return Ok(vec![None]);
        }
        let mut conn = self.connect_dedicated_async(Duration::ZERO).await?;
        Ok(serving_nodes_seen_by(&mut conn).await?.into_iter().map(Some).collect())
    }
}

/// The nodes serving slots in the view of the node (or cluster) behind `conn`: its
/// `CLUSTER SLOTS`.
///
/// # Errors
///
/// The command's error, or [`ErrorKind::Response`] when a node has no known address.
pub(crate) async fn serving_nodes_seen_by(conn: &mut impl redis::aio::ConnectionLike) -> Result<Vec<NodeAddr>> {
    let reply: Value = redis::cmd("CLUSTER")
        .arg("SLOTS")
        .query_async(conn)
        .await
        .map_err(|e| Error::redis("CLUSTER SLOTS", e))?;
    serving_nodes_from_slots(&reply).ok_or_else(|| {
        Error::new(
            ErrorKind::Response,
            "CLUSTER SLOTS lists a node without a known address (or is unreadable)",
        )
    })
}
