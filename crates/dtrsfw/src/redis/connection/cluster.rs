//! What only a cluster needs beyond redis-rs's routing by key: the few commands that must
//! run on every primary (a `SCAN` cursor belongs to one node). On one server the same
//! calls run the command on that server, so callers need not tell the two apart.

use std::fmt;

use redis::cluster_routing::{RoutingInfo, SingleNodeRoutingInfo};
use redis::{Cmd, ConnectionAddr, FromRedisValue, RedisResult, Value};

use super::aio::{AsyncConn, AsyncRedisClient};
use super::sync::{SyncConnection, SyncInner};

/// One node of a cluster, by address: for the few commands that must run on every
/// primary (a `SCAN` cursor belongs to one node). redis-rs sends the command there.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct NodeAddr {
    host: String,
    port: u16,
}

impl fmt::Display for NodeAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.host, self.port)
    }
}

impl NodeAddr {
    /// This node's address with `template`'s TLS settings (a seed's address): a
    /// connection to this node, as the cluster client would open it.
    pub(super) fn with_tls_of(&self, template: &ConnectionAddr) -> ConnectionAddr {
        match template {
            ConnectionAddr::TcpTls {
                insecure, tls_params, ..
            } => ConnectionAddr::TcpTls {
                host: self.host.clone(),
                port: self.port,
                insecure: *insecure,
                tls_params: tls_params.clone(),
            },
            _ => ConnectionAddr::Tcp(self.host.clone(), self.port),
        }
    }

    fn routing(&self) -> RoutingInfo {
        RoutingInfo::SingleNode(SingleNodeRoutingInfo::ByAddress {
            host: self.host.clone(),
            port: self.port,
        })
    }
}

/// The primaries in a `CLUSTER SLOTS` reply (`[[start, end, [host, port, id], replicas...], ...]`),
/// each once.
fn primaries_from_slots(reply: &Value) -> Vec<NodeAddr> {
    let Value::Array(ranges) = reply else {
        return Vec::new();
    };
    let mut nodes: Vec<NodeAddr> = ranges.iter().filter_map(primary_of_range).collect();
    nodes.sort();
    nodes.dedup();
    nodes
}

/// The primary of one `CLUSTER SLOTS` range (`[start, end, [host, port, id], ...]`).
fn primary_of_range(range: &Value) -> Option<NodeAddr> {
    let Value::Array(range) = range else { return None };
    node_of(range.get(2)?)
}

/// One node of a `CLUSTER SLOTS` range: `[host, port, id, ...]`; `None` when its address
/// is unknown (`?` or empty host).
fn node_of(node: &Value) -> Option<NodeAddr> {
    let Value::Array(node) = node else { return None };
    let host = match node.first()? {
        Value::BulkString(b) => String::from_utf8_lossy(b).into_owned(),
        Value::SimpleString(s) => s.clone(),
        _ => return None,
    };
    let port = match node.get(1)? {
        Value::Int(p) => u16::try_from(*p).ok()?,
        _ => return None,
    };
    (!host.is_empty() && host != "?").then_some(NodeAddr { host, port })
}

/// Every node a `CLUSTER SLOTS` reply lists: the primaries and the replicas the server
/// counts as available (it leaves out failed ones), each once; `None` when a node's
/// address is unknown or the reply is not `CLUSTER SLOTS`'s.
pub(crate) fn serving_nodes_from_slots(reply: &Value) -> Option<Vec<NodeAddr>> {
    let Value::Array(ranges) = reply else { return None };
    let mut nodes = Vec::new();
    for range in ranges {
        let Value::Array(range) = range else { return None };
        for node in range.get(2..)? {
            nodes.push(node_of(node)?);
        }
    }
    nodes.sort();
    nodes.dedup();
    Some(nodes)
}

/// `[None]` (the one server) or every primary, from a `CLUSTER SLOTS` reply.
fn targets(reply: &Value) -> Vec<Option<NodeAddr>> {
    primaries_from_slots(reply).into_iter().map(Some).collect()
}

fn not_a_cluster() -> redis::RedisError {
    (
        redis::ErrorKind::InvalidClientConfig,
        "a node address given for a one-server connection",
    )
        .into()
}

impl AsyncRedisClient {
    /// Where to run a per-node command such as `SCAN`: `[None]` (the server) for one
    /// server, every primary for a cluster.
    pub(crate) async fn scan_targets(&mut self) -> RedisResult<Vec<Option<NodeAddr>>> {
        match &mut self.conn {
            AsyncConn::Single(_) | AsyncConn::Sentinel(_) => Ok(vec![None]),
            AsyncConn::Cluster(conn) => Ok(targets(&redis::cmd("CLUSTER").arg("SLOTS").query_async(conn).await?)),
        }
    }

    /// Runs `cmd` on `node` (a primary from [`scan_targets`](Self::scan_targets)).
    pub(crate) async fn query_on<T: FromRedisValue>(&mut self, node: Option<&NodeAddr>, cmd: &Cmd) -> RedisResult<T> {
        match (&mut self.conn, node) {
            (AsyncConn::Cluster(conn), Some(node)) => {
                let value = conn.route_command(cmd.clone(), node.routing()).await?;
                Ok(redis::from_redis_value(value)?)
            }
            (AsyncConn::Single(_) | AsyncConn::Sentinel(_), Some(_)) => Err(not_a_cluster()),
            (_, None) => cmd.query_async(self).await,
        }
    }
}

impl SyncConnection {
    /// The sync twin of [`AsyncRedisClient::scan_targets`].
    pub(crate) fn scan_targets(&mut self) -> RedisResult<Vec<Option<NodeAddr>>> {
        match &mut self.inner {
            SyncInner::Single(_) => Ok(vec![None]),
            SyncInner::Cluster(conn) => Ok(targets(&redis::cmd("CLUSTER").arg("SLOTS").query(conn)?)),
        }
    }

    /// The sync twin of [`AsyncRedisClient::query_on`].
    pub(crate) fn query_on<T: FromRedisValue>(&mut self, node: Option<&NodeAddr>, cmd: &Cmd) -> RedisResult<T> {
        match (&mut self.inner, node) {
            (SyncInner::Cluster(conn), Some(node)) => {
                let value = conn.route_command(cmd, node.routing())?;
                Ok(redis::from_redis_value(value)?)
            }
            (SyncInner::Single(_), Some(_)) => Err(not_a_cluster()),
            (_, None) => cmd.query(self),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_primaries_are_read_from_cluster_slots_once_each() {
        let node = |host: &str, port: i64| {
            Value::Array(vec![
                Value::BulkString(host.as_bytes().to_vec()),
                Value::Int(port),
                Value::BulkString(b"id".to_vec()),
            ])
        };
        let range = |start: i64, end: i64, primary: Value, replica: Value| {
            Value::Array(vec![Value::Int(start), Value::Int(end), primary, replica])
        };
        let reply = Value::Array(vec![
            range(0, 100, node("10.0.0.1", 7000), node("10.0.0.4", 7003)),
            range(101, 200, node("10.0.0.2", 7001), node("10.0.0.5", 7004)),
            range(201, 300, node("10.0.0.1", 7000), node("10.0.0.4", 7003)),
        ]);
        let ports: Vec<u16> = primaries_from_slots(&reply).iter().map(|n| n.port).collect();
        assert_eq!(ports, [7000, 7001]);
        assert!(primaries_from_slots(&Value::Nil).is_empty());
        let every: Vec<String> = serving_nodes_from_slots(&reply)
            .expect("a CLUSTER SLOTS reply")
            .iter()
            .map(ToString::to_string)
            .collect();
        assert_eq!(
            every,
            ["10.0.0.1:7000", "10.0.0.2:7001", "10.0.0.4:7003", "10.0.0.5:7004"]
        );
        let unknown = Value::Array(vec![range(0, 100, node("10.0.0.1", 7000), node("?", 7003))]);
        assert_eq!(serving_nodes_from_slots(&unknown), None, "a node without an address");
        assert_eq!(serving_nodes_from_slots(&Value::Nil), None);
    }

    #[test]
    fn a_node_address_keeps_the_seeds_tls_settings() {
        let node = NodeAddr {
            host: "10.0.0.2".into(),
            port: 7001,
        };
        let plain = node.with_tls_of(&ConnectionAddr::Tcp("seed".into(), 7000));
        assert_eq!(plain, ConnectionAddr::Tcp("10.0.0.2".into(), 7001));
        let seed = ConnectionAddr::TcpTls {
            host: "seed".into(),
            port: 7000,
            insecure: true,
            tls_params: None,
        };
        let tls = node.with_tls_of(&seed);
        assert_eq!(
            tls,
            ConnectionAddr::TcpTls {
                host: "10.0.0.2".into(),
                port: 7001,
                insecure: true,
                tls_params: None,
            }
        );
    }
}
