//! The test harness of dtrsfw (not published): everything of [`dtrsfw_server`] (private
//! servers, the fault-injecting proxy), plus what only tests need: a private cluster, a
//! silent listener, the Python `dtpyfw` peer, log capture, an unrelated CA.
//!
//! Every test starts its own server: on a free port, in a temp dir that holds its log,
//! with persistence off unless asked for. The server is killed when the [`Server`] drops,
//! also while a test panics, and its log is printed with the panic so a failure explains
//! itself. The binary is `$DTRSFW_TEST_SERVER` when set (a path to `redis-server` or
//! `valkey-server`), else `redis-server` from `PATH`.
//!
//! ```no_run
//! let server = dtrsfw_test_support::Server::start();
//! let url = server.url(); // redis://127.0.0.1:<free port>/0
//! ```
// A test harness (publish = false): its callers are our own tests, which panic on errors
// rather than document them, and use every result they ask for.
#![allow(clippy::must_use_candidate, clippy::missing_errors_doc)]

pub use dtrsfw_server::{
    AclUser, ReplicaSet, Rng, SENTINEL_SERVICE, Sentinel, SentinelSet, Server, ServerBuilder, cli_binary, free_port,
    generate_unrelated_ca, proxy, replication_info, server_binary, tls_server_binary,
};

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
/// A TCP listener on a free port of 127.0.0.1 that accepts every connection and never
/// sends a byte: a server that is reachable but does not answer (a hung process behind a
/// live socket, a black-holing proxy). Connections are held open until it drops; dropping
/// it stops its thread and closes them.
#[derive(Debug)]
pub struct SilentListener {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl SilentListener {
    /// Binds a free port and starts accepting.
    pub fn start() -> SilentListener {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port on 127.0.0.1");
        let port = listener.local_addr().expect("local address").port();
        listener.set_nonblocking(true).expect("non-blocking listener");
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut held = Vec::new();
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => held.push(stream),
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
        });
        SilentListener {
            port,
            stop,
            thread: Some(thread),
        }
    }

    /// The port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>/0`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }
}

impl Drop for SilentListener {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// The Python interpreter of the virtualenv holding the real `dtpyfw==0.6.51`
/// (`$DTRSFW_PYTHON`, else the venv `scripts/ensure-servers.sh` creates under
/// `~/.cache/dtrsfw/pyvenv`). Panics with the fix when it is missing.
pub fn dtpyfw_python() -> PathBuf {
    let path = std::env::var_os("DTRSFW_PYTHON").map(PathBuf::from).unwrap_or_else(|| {
        let cache = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .unwrap_or_else(|| PathBuf::from(std::env::var_os("HOME").unwrap_or_default()).join(".cache"));
        cache.join("dtrsfw/pyvenv/bin/python")
    });
    assert!(
        path.exists(),
        "no Python with dtpyfw at {} — run scripts/ensure-servers.sh (or set DTRSFW_PYTHON)",
        path.display()
    );
    path
}

/// A private Redis Cluster: three primaries and three replicas on free ports, created
/// with `redis-cli --cluster create`, ready once `cluster_state:ok` and every replica is
/// attached. Every node is killed on drop.
///
/// `cluster-node-timeout` is 1000 ms: a killed primary's replica takes over within a few
/// seconds.
#[derive(Debug)]
pub struct Cluster {
    nodes: Vec<Server>,
}

impl Cluster {
    /// Starts and creates the cluster (one replica per primary); panics with the failing
    /// step's output.
    pub fn start() -> Cluster {
        Self::start_with_replicas(1)
    }

    /// Three primaries with `replicas` replicas each (`--cluster-replicas`). With two, a
    /// primary that dies leaves its shard a primary *and* a replica, so `WAIT 1` can be
    /// met again after the failover (the other replica follows the promoted one).
    pub fn start_with_replicas(replicas: usize) -> Cluster {
        let nodes: Vec<Server> = (0..3 * (1 + replicas))
            .map(|_| {
                Server::builder()
                    .cluster_port()
                    .arg("cluster-enabled", "yes")
                    .arg("cluster-node-timeout", "1000")
                    .arg("cluster-config-file", "nodes.conf")
                    .arg("cluster-replica-validity-factor", "0")
                    .start()
            })
            .collect();
        let cluster = Cluster { nodes };
        let addresses: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| format!("127.0.0.1:{}", n.port()))
            .collect();
        let out = Command::new(cli_binary())
            .arg("--cluster")
            .arg("create")
            .args(&addresses)
            .args(["--cluster-replicas", &replicas.to_string(), "--cluster-yes"])
            .output()
            .expect("run redis-cli (it comes with redis-server; or set DTRSFW_TEST_CLI)");
        assert!(
            out.status.success(),
            "cluster create failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        cluster.wait_until_healthy(Duration::from_secs(30));
        cluster
    }

    /// Seed URLs of every node (`redis://127.0.0.1:<port>`).
    pub fn urls(&self) -> Vec<String> {
        self.nodes
            .iter()
            .map(|n| format!("redis://127.0.0.1:{}", n.port()))
            .collect()
    }

    /// `redis+cluster://127.0.0.1:<p1>,127.0.0.1:<p2>,...`: every node as a seed.
    pub fn seed_url(&self) -> String {
        let seeds: Vec<String> = self.nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
        format!("redis+cluster://{}", seeds.join(","))
    }

    /// The hash slot of `key` (`CLUSTER KEYSLOT`, asked of a live node).
    pub fn slot_of(&self, key: &str) -> u16 {
        let node = self.nodes.iter().find(|n| n.pid().is_some()).expect("a live node");
        redis::cmd("CLUSTER")
            .arg("KEYSLOT")
            .arg(key)
            .query(&mut node.connection())
            .expect("CLUSTER KEYSLOT")
    }

    /// The nodes, in start order.
    pub fn nodes(&self) -> &[Server] {
        &self.nodes
    }

    /// Mutable access to a node (to kill or restart it).
    pub fn node_mut(&mut self, index: usize) -> &mut Server {
        &mut self.nodes[index]
    }

    /// The index of the live primary serving `slot`.
    pub fn primary_for_slot(&self, slot: u16) -> usize {
        self.try_primary_for_slot(slot)
            .unwrap_or_else(|| panic!("no live primary serves slot {slot}"))
    }

    /// The index of the live primary serving `slot`, if one does (none during a failover).
    pub fn try_primary_for_slot(&self, slot: u16) -> Option<usize> {
        self.nodes
            .iter()
            .position(|node| node.pid().is_some() && owns_slot(&mut node.connection(), slot))
    }

    /// Waits for `cluster_state:ok` on every live node and an attached replica for every
    /// primary.
    pub fn wait_until_healthy(&self, limit: Duration) {
        let deadline = Instant::now() + limit;
        loop {
            let healthy = self.nodes.iter().filter(|n| n.pid().is_some()).all(|n| {
                let mut conn = n.connection();
                let info: String = redis::cmd("CLUSTER").arg("INFO").query(&mut conn).unwrap_or_default();
                let repl: String = redis::cmd("INFO")
                    .arg("replication")
                    .query(&mut conn)
                    .unwrap_or_default();
                let replica_ok = !repl.contains("role:slave") || repl.contains("master_link_status:up");
                info.contains("cluster_state:ok") && replica_ok
            });
            if healthy {
                return;
            }
            assert!(Instant::now() < deadline, "cluster not healthy after {limit:?}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Whether the node behind `conn` is the primary of `slot` in its own view of the
/// cluster (`CLUSTER SLOTS`, answered alike by Redis 7.0 and Valkey 8.1).
fn owns_slot(conn: &mut redis::Connection, slot: u16) -> bool {
    let me: String = redis::cmd("CLUSTER").arg("MYID").query(conn).unwrap_or_default();
    let slots: Vec<Vec<redis::Value>> = redis::cmd("CLUSTER").arg("SLOTS").query(conn).unwrap_or_default();
    slots.iter().any(|range| {
        let int = |v: Option<&redis::Value>| match v {
            Some(redis::Value::Int(i)) => *i,
            _ => -1,
        };
        let (start, end) = (int(range.first()), int(range.get(1)));
        let primary_id = match range.get(2) {
            Some(redis::Value::Array(node)) => match node.get(2) {
                Some(redis::Value::BulkString(id)) => String::from_utf8_lossy(id).into_owned(),
                _ => String::new(),
            },
            _ => String::new(),
        };
        (start..=end).contains(&i64::from(slot)) && primary_id == me
    })
}

/// The interoperability peer: `tests/python/peer.py` of the `dtrsfw` crate, run with the
/// real `dtpyfw` against `url`. See that script for the commands.
pub fn python_peer_command(url: &str, args: &[&str]) -> Command {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../dtrsfw/tests/python/peer.py");
    let mut cmd = Command::new(dtpyfw_python());
    cmd.arg(script).arg(url).args(args);
    cmd
}

/// Runs the Python peer to the end; its stdout lines parsed as JSON. Panics with its
/// stderr when it fails.
pub fn python_peer(url: &str, args: &[&str]) -> Vec<serde_json::Value> {
    let out = python_peer_command(url, args).output().expect("run the Python peer");
    assert!(
        out.status.success(),
        "Python peer {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_json_lines(&out.stdout)
}

/// JSON lines as values; panics naming the bad line.
pub fn parse_json_lines(bytes: &[u8]) -> Vec<serde_json::Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("not a JSON line ({e}): {line:?}")))
        .collect()
}

/// IDs of the server's connections with client tracking on (`t` in `CLIENT LIST`'s
/// flags): the local cache tier's invalidation connections.
pub fn tracking_client_ids(conn: &mut redis::Connection) -> Vec<String> {
    let list: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(conn)
        .unwrap_or_else(|e| panic!("CLIENT LIST: {e}"));
    list.lines()
        .filter(|l| l.split(' ').any(|f| f.starts_with("flags=") && f.contains('t')))
        .filter_map(|l| l.split(' ').find_map(|f| f.strip_prefix("id=")))
        .map(str::to_owned)
        .collect()
}

/// Calls of `command` (lower case, e.g. `"xack"`, `"command|info"`) the server has run,
/// from `INFO commandstats`; 0 when it has run none.
pub fn command_calls(conn: &mut redis::Connection, command: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query(conn)
        .unwrap_or_else(|e| panic!("INFO commandstats: {e}"));
    let prefix = format!("cmdstat_{command}:calls=");
    info.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|rest| rest.split(',').next()?.parse().ok())
        .unwrap_or(0)
}

/// Entries delivered to `group` of `stream` and not acknowledged: the count of
/// `XPENDING`'s summary form. Panics when the server refuses (no such stream or group).
pub fn pending_count(conn: &mut redis::Connection, stream: &str, group: &str) -> u64 {
    // The summary form: count, smallest ID, greatest ID, per-consumer counts.
    let (count, _, _, _): (u64, redis::Value, redis::Value, redis::Value) = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .query(conn)
        .unwrap_or_else(|e| panic!("XPENDING {stream} {group}: {e}"));
    count
}

/// The pending entries of `group` of `stream` (up to 1 000), as `XPENDING`'s extended
/// form lists them: `(id, consumer, idle ms, deliveries)`. Panics when the server refuses.
pub fn pending_entries(conn: &mut redis::Connection, stream: &str, group: &str) -> Vec<(String, String, u64, u64)> {
    redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(1000)
        .query(conn)
        .unwrap_or_else(|e| panic!("XPENDING {stream} {group} - + 1000: {e}"))
}

/// Runs `f` with a `tracing` subscriber that records every event at every level, and
/// returns what it logged, as text. Only events emitted on this thread are seen, so async
/// code under test should run on a current-thread runtime created inside `f`.
pub fn capture_logs(f: impl FnOnce()) -> String {
    let logs = LogBuffer::default();
    let writer = logs.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::TRACE)
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, f);
    logs.contents()
}

/// The in-memory sink of [`capture_logs`]: every clone appends to the same buffer.
#[derive(Debug, Clone, Default)]
struct LogBuffer(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl LogBuffer {
    fn contents(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap_or_else(|e| e.into_inner())).into_owned()
    }
}

impl std::io::Write for LogBuffer {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
