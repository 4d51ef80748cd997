//! [`ReplicaSet`]: one primary and its replicas (plain replication, no Sentinel, no
//! Cluster), for durability tests and benchmarks (`WAIT`, `WAITAOF`).

use std::time::{Duration, Instant};

use crate::server::{Server, ServerBuilder};

/// How long the replicas may take to finish their first sync.
const SYNC_TIMEOUT: Duration = Duration::from_secs(20);

/// A private primary with `n` replicas on free ports, each started from the same
/// [`ServerBuilder`] (so `appendonly` applies to every node), ready once every replica's
/// link is up. Every process is killed on drop (each is a [`Server`]).
///
/// ```no_run
/// let set = dtrsfw_server::ReplicaSet::start(1);
/// let url = set.primary().url(); // WAIT 1 is met on this server
/// ```
#[derive(Debug)]
pub struct ReplicaSet {
    primary: Server,
    replicas: Vec<Server>,
}

impl ReplicaSet {
    /// A plain primary with `replicas` replicas, synced; panics with the logs if it
    /// cannot.
    #[must_use]
    pub fn start(replicas: usize) -> ReplicaSet {
        Self::start_with(replicas, Server::builder)
    }

    /// As [`start`](Self::start), every node built by `builder` (e.g.
    /// `|| Server::builder().appendonly()`).
    #[must_use]
    pub fn start_with(replicas: usize, builder: impl Fn() -> ServerBuilder) -> ReplicaSet {
        let primary = builder().start();
        let replicas = (0..replicas)
            .map(|_| builder().replica_of(primary.port()).start())
            .collect();
        let set = ReplicaSet { primary, replicas };
        set.wait_synced(SYNC_TIMEOUT);
        set
    }

    /// The primary.
    #[must_use]
    pub fn primary(&self) -> &Server {
        &self.primary
    }

    /// Mutable access to the primary (to kill, pause or restart it).
    pub fn primary_mut(&mut self) -> &mut Server {
        &mut self.primary
    }

    /// The replicas, in start order.
    #[must_use]
    pub fn replicas(&self) -> &[Server] {
        &self.replicas
    }

    /// Mutable access to a replica (to kill, pause or restart it).
    pub fn replica_mut(&mut self, index: usize) -> &mut Server {
        &mut self.replicas[index]
    }

    /// Waits until every live replica reports `master_link_status:up` and the primary
    /// counts them as connected; panics after `limit`.
    pub fn wait_synced(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        let live = self.replicas.iter().filter(|r| r.pid().is_some()).count();
        loop {
            let linked = self
                .replicas
                .iter()
                .filter(|r| r.pid().is_some())
                .all(|r| replication_info(r).contains("master_link_status:up"));
            let counted = replication_info(&self.primary).contains(&format!("connected_slaves:{live}"));
            if linked && counted {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "replicas not synced after {limit:?}\n{}",
                self.replicas.iter().map(Server::log).collect::<Vec<_>>().join("\n")
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// `INFO replication` of `server` (empty if it does not answer).
#[must_use]
pub fn replication_info(server: &Server) -> String {
    redis::cmd("INFO")
        .arg("replication")
        .query(&mut server.connection())
        .unwrap_or_default()
}
