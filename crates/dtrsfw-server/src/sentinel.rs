//! [`SentinelSet`]: a primary, two replicas and three Sentinels on free ports, for the
//! `redis+sentinel://` tests and failover runs.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::binary::{free_port, server_binary};
use crate::replication::{ReplicaSet, replication_info};
use crate::server::Server;

/// The service (master) name the Sentinels monitor.
pub const SENTINEL_SERVICE: &str = "mymaster";
/// How long a primary may be silent before a Sentinel calls it down (ms).
pub const DOWN_AFTER_MS: u64 = 1_000;
/// Sentinel's `failover-timeout` (ms): also how soon a failed failover is tried again.
pub const FAILOVER_TIMEOUT_MS: u64 = 3_000;

/// How long the Sentinels may take to find each other and the replicas.
const AGREE_TIMEOUT: Duration = Duration::from_secs(30);

/// One Sentinel process (`<server> <dir>/sentinel.conf --sentinel`), killed on drop.
#[derive(Debug)]
pub struct Sentinel {
    dir: tempfile::TempDir,
    port: u16,
    child: Option<Child>,
    password: Option<String>,
}

impl Sentinel {
    fn start(primary_port: u16, passwords: &Passwords) -> Result<Sentinel, String> {
        let dir = tempfile::Builder::new()
            .prefix("dtrsfw-sentinel-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir for a sentinel: {e}"))?;
        let port = free_port();
        let conf = format!(
            "port {port}\nbind 127.0.0.1\ndaemonize no\ndir {dir}\nlogfile {dir}/sentinel.log\n\
             sentinel monitor {SENTINEL_SERVICE} 127.0.0.1 {primary_port} 2\n\
             sentinel down-after-milliseconds {SENTINEL_SERVICE} {DOWN_AFTER_MS}\n\
             sentinel failover-timeout {SENTINEL_SERVICE} {FAILOVER_TIMEOUT_MS}\n\
             sentinel parallel-syncs {SENTINEL_SERVICE} 2\n",
            dir = dir.path().display()
        );
        // Its own clients (and the other Sentinels) authenticate with `requirepass`; it
        // authenticates to the data nodes with `auth-pass`.
        let conf = conf
            + &passwords
                .sentinel
                .as_ref()
                .map_or(String::new(), |p| format!("requirepass {p}\n"))
            + &passwords.node.as_ref().map_or(String::new(), |p| {
                format!("sentinel auth-pass {SENTINEL_SERVICE} {p}\n")
            });
        let conf_path = dir.path().join("sentinel.conf");
        std::fs::write(&conf_path, conf).map_err(|e| format!("cannot write {}: {e}", conf_path.display()))?;
        let child = Command::new(server_binary())
            .arg(&conf_path)
            .arg("--sentinel")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot run {:?} --sentinel: {e}", server_binary()))?;
        let sentinel = Sentinel {
            dir,
            port,
            child: Some(child),
            password: passwords.sentinel.clone(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while redis::Client::open(sentinel.url())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(200)))
            .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c))
            .is_err()
        {
            if Instant::now() > deadline {
                return Err(format!("sentinel on port {port} not ready:\n{}", sentinel.log()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(sentinel)
    }

    /// The Sentinel's port.
    #[must_use]
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Kills the Sentinel (SIGKILL) and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// `redis://127.0.0.1:<port>` (a Sentinel speaks RESP: `SENTINEL ...` commands), with
    /// `:<password>@` when it requires one.
    #[must_use]
    pub fn url(&self) -> String {
        let auth = self.password.as_ref().map_or(String::new(), |p| format!(":{p}@"));
        format!("redis://{auth}127.0.0.1:{}", self.port)
    }

    /// Its log so far.
    #[must_use]
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sentinel.log")).unwrap_or_default()
    }

    /// The dir holding its config and log.
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The `ip:port` this Sentinel reports as the primary of the service, if any.
    #[must_use]
    pub fn primary_addr(&self) -> Option<(String, u16)> {
        let mut conn = redis::Client::open(self.url())
            .ok()?
            .get_connection_with_timeout(Duration::from_secs(1))
            .ok()?;
        let addr: Option<(String, String)> = redis::cmd("SENTINEL")
            .arg("get-master-addr-by-name")
            .arg(SENTINEL_SERVICE)
            .query(&mut conn)
            .ok()?;
        addr.and_then(|(host, port)| Some((host, port.parse().ok()?)))
    }

    /// A `SENTINEL <sub> mymaster` reply's entry count (`replicas`, `sentinels`).
    fn count(&self, sub: &str) -> usize {
        let conn = redis::Client::open(self.url()).and_then(|c| c.get_connection_with_timeout(Duration::from_secs(1)));
        conn.and_then(|mut c| {
            redis::cmd("SENTINEL")
                .arg(sub)
                .arg(SENTINEL_SERVICE)
                .query::<Vec<redis::Value>>(&mut c)
        })
        .map(|v| v.len())
        .unwrap_or(0)
    }
}

impl Drop for Sentinel {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("---- log of sentinel on port {} ----\n{}", self.port, self.log());
        }
        self.kill();
    }
}

/// A primary, two replicas and three Sentinels (quorum 2, `down-after-milliseconds`
/// [`DOWN_AFTER_MS`], `failover-timeout` [`FAILOVER_TIMEOUT_MS`]), ready once every
/// Sentinel names the same primary and sees both replicas and the two other Sentinels.
/// Every process is killed on drop (also while the caller panics; logs printed then).
///
/// ```no_run
/// let set = dtrsfw_server::SentinelSet::start();
/// let url = set.url(); // redis+sentinel://127.0.0.1:p1,127.0.0.1:p2,127.0.0.1:p3/mymaster
/// ```
#[derive(Debug)]
pub struct SentinelSet {
    // Sentinels first: they drop (die) before the data nodes, so none starts a failover
    // while the set is torn down.
    sentinels: Vec<Sentinel>,
    nodes: ReplicaSet,
    passwords: Passwords,
}

/// The passwords of a [`SentinelSet`]: the data nodes' (`requirepass` + `masterauth`)
/// and the Sentinels' own (`requirepass` in `sentinel.conf`).
#[derive(Debug, Clone, Default)]
struct Passwords {
    node: Option<String>,
    sentinel: Option<String>,
}

impl SentinelSet {
    /// Starts the set and waits until the Sentinels agree; panics with the logs if not.
    #[must_use]
    pub fn start() -> SentinelSet {
        Self::start_with(Passwords::default())
    }

    /// As [`start`](Self::start), the data nodes requiring `node_password` and the
    /// Sentinels `sentinel_password` (each without spaces).
    #[must_use]
    pub fn start_with_passwords(node_password: &str, sentinel_password: &str) -> SentinelSet {
        Self::start_with(Passwords {
            node: Some(node_password.to_owned()),
            sentinel: Some(sentinel_password.to_owned()),
        })
    }

    fn start_with(passwords: Passwords) -> SentinelSet {
        let node = passwords.node.clone();
        let nodes = ReplicaSet::start_with(2, || match &node {
            Some(p) => Server::builder().password(p).arg("masterauth", p),
            None => Server::builder(),
        });
        let primary_port = nodes.primary().port();
        let sentinels = (0..3)
            .map(|_| Sentinel::start(primary_port, &passwords).unwrap_or_else(|e| panic!("{e}")))
            .collect();
        let set = SentinelSet {
            sentinels,
            nodes,
            passwords,
        };
        set.wait_until_agreed(AGREE_TIMEOUT);
        set
    }

    /// `redis+sentinel://127.0.0.1:<p1>,127.0.0.1:<p2>,127.0.0.1:<p3>/mymaster`; with
    /// passwords, `:<node password>@` before the hosts and
    /// `?sentinel_password=<sentinel password>` after the service.
    #[must_use]
    pub fn url(&self) -> String {
        let hosts: Vec<String> = self
            .sentinels
            .iter()
            .map(|s| format!("127.0.0.1:{}", s.port()))
            .collect();
        let node = self.passwords.node.as_ref().map_or(String::new(), |p| format!(":{p}@"));
        let query = (self.passwords.sentinel.as_ref()).map_or(String::new(), |p| format!("?sentinel_password={p}"));
        format!("redis+sentinel://{node}{}/{SENTINEL_SERVICE}{query}", hosts.join(","))
    }

    /// The Sentinels.
    #[must_use]
    pub fn sentinels(&self) -> &[Sentinel] {
        &self.sentinels
    }

    /// Mutable access to Sentinel `index` (to kill it).
    pub fn sentinel_mut(&mut self, index: usize) -> &mut Sentinel {
        &mut self.sentinels[index]
    }

    /// Every data node: the first primary, then the two replicas (roles change with a
    /// failover; see [`primary_index`](Self::primary_index)).
    pub fn nodes(&self) -> impl Iterator<Item = &Server> {
        std::iter::once(self.nodes.primary()).chain(self.nodes.replicas())
    }

    /// Mutable access to data node `index` (0 = the first primary), to kill or pause it.
    pub fn node_mut(&mut self, index: usize) -> &mut Server {
        match index {
            0 => self.nodes.primary_mut(),
            i => self.nodes.replica_mut(i - 1),
        }
    }

    /// The index (as in [`nodes`](Self::nodes)) of the node the first live Sentinel names
    /// as primary.
    #[must_use]
    pub fn primary_index(&self) -> Option<usize> {
        let (_, port) = self.sentinels.iter().find_map(Sentinel::primary_addr)?;
        self.nodes().position(|n| n.port() == port)
    }

    /// Waits until every Sentinel names the same live primary, which reports itself
    /// `role:master`, and sees 2 replicas and 2 other Sentinels; panics after `limit`.
    pub fn wait_until_agreed(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let addrs: Vec<_> = self.sentinels.iter().map(Sentinel::primary_addr).collect();
            let same = addrs.windows(2).all(|w| w[0] == w[1]) && addrs[0].is_some();
            let primary_ok = self
                .primary_index()
                .and_then(|i| self.nodes().nth(i))
                .is_some_and(|n| n.pid().is_some() && replication_info(n).contains("role:master"));
            let seen = self
                .sentinels
                .iter()
                .all(|s| s.count("replicas") >= 2 && s.count("sentinels") >= 2);
            if same && primary_ok && seen {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "sentinels did not agree after {limit:?}: {addrs:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}
