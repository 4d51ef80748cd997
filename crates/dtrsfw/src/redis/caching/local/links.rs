//! The invalidation connections of one tracking session: one per node that serves slots
//! (the one server; on a cluster every primary and replica that `CLUSTER SLOTS` lists),
//! each subscribed with `CLIENT TRACKING ON BCAST PREFIX ...`, all sending their pushes
//! into one channel so that one loop applies them.

use std::collections::BTreeSet;
use std::time::Duration;

use futures_util::future::try_join_all;
use redis::PushInfo;
use redis::aio::MultiplexedConnection;
use tokio::sync::mpsc::UnboundedSender;

use crate::redis::connection::{NodeAddr, RedisInstance, serving_nodes_seen_by, with_deadline};
use crate::redis::error::{Error, Result};

/// How often the tracker PINGs its connections, to notice one that died silently (on a
/// cluster: asks each node's `CLUSTER SLOTS`, which also notices a node to subscribe).
pub const PING_EVERY: Duration = Duration::from_secs(1);
/// How long a PING may take before the connection is taken as dead.
pub const PING_TIMEOUT: Duration = Duration::from_secs(1);

/// The subscribed connections of one session, and the nodes they go to.
pub(super) struct Links {
    /// `None`: the one server; else the node of a cluster.
    nodes: Vec<Option<NodeAddr>>,
    conns: Vec<MultiplexedConnection>,
}

/// What a check of the links found.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Health {
    /// Every connection answered and no node serves slots untracked.
    Fine,
    /// A node reports a node that serves slots and is not subscribed (added, or a slot
    /// moved there): the session must start again with the new set.
    NewNodes(Vec<NodeAddr>),
}

impl Links {
    /// Reads the nodes, opens one push connection per node (concurrently) and switches
    /// tracking on for `prefixes` on each. `Ok(None)` when the target has no push
    /// connection (Sentinel).
    pub(super) async fn open(
        redis: &RedisInstance,
        push: &UnboundedSender<PushInfo>,
        prefixes: &[String],
    ) -> Result<Option<Links>> {
        let nodes = redis.serving_nodes().await?;
        let opened = try_join_all(
            nodes
                .iter()
                .map(|node| subscribe(redis, node.as_ref(), push.clone(), prefixes)),
        )
        .await?;
        let conns: Option<Vec<MultiplexedConnection>> = opened.into_iter().collect();
        Ok(conns.map(|conns| Links { nodes, conns }))
    }

    /// How many nodes are subscribed.
    pub(super) fn len(&self) -> usize {
        self.conns.len()
    }

    /// Asks every connection at once, each within [`PING_TIMEOUT`]: `PING` on one server;
    /// on a cluster `CLUSTER SLOTS`, which is as cheap and also says whether a node we do
    /// not track serves slots. A node that dropped out of the topology stays subscribed
    /// (harmless) until the session ends.
    pub(super) async fn check(&mut self) -> Result<Health> {
        let cluster = self.nodes.iter().any(Option::is_some);
        let seen = try_join_all(self.conns.iter_mut().map(|conn| check_one(conn, cluster))).await?;
        let tracked: BTreeSet<&NodeAddr> = self.nodes.iter().flatten().collect();
        let untracked: BTreeSet<NodeAddr> = seen
            .into_iter()
            .flatten()
            .filter(|node| !tracked.contains(node))
            .collect();
        if untracked.is_empty() {
            Ok(Health::Fine)
        } else {
            Ok(Health::NewNodes(untracked.into_iter().collect()))
        }
    }
}

/// One node's connection with tracking on; `Ok(None)` when the target has none.
async fn subscribe(
    redis: &RedisInstance,
    node: Option<&NodeAddr>,
    push: UnboundedSender<PushInfo>,
    prefixes: &[String],
) -> Result<Option<MultiplexedConnection>> {
    let Some(conn) = redis.get_push_connection(node, push).await else {
        return Ok(None);
    };
    let mut conn = conn.map_err(|e| at(node, e))?;
    let mut on = redis::cmd("CLIENT");
    on.arg("TRACKING").arg("ON").arg("BCAST");
    for prefix in prefixes {
        on.arg("PREFIX").arg(prefix);
    }
    with_deadline(PING_TIMEOUT, "CLIENT TRACKING", async {
        on.query_async::<()>(&mut conn)
            .await
            .map_err(|e| Error::redis("CLIENT TRACKING", e))
    })
    .await
    .map_err(|e| at(node, e))?;
    Ok(Some(conn))
}

/// `PING` (one server) or the nodes this node sees serving slots (a cluster).
async fn check_one(conn: &mut MultiplexedConnection, cluster: bool) -> Result<Vec<NodeAddr>> {
    with_deadline(PING_TIMEOUT, "checking an invalidation connection", async {
        if cluster {
            serving_nodes_seen_by(conn).await
        } else {
            redis::cmd("PING")
                .query_async::<()>(conn)
                .await
                .map_err(|e| Error::redis("PING", e))
                .map(|()| Vec::new())
        }
    })
    .await
}

/// `e`, naming the cluster node it came from.
fn at(node: Option<&NodeAddr>, e: Error) -> Error {
    match node {
        Some(node) => Error::new(e.kind(), format!("cluster node {node}: {e}")),
        None => e,
    }
}
