//! The local cache tier on a real Redis Cluster (3 primaries + 3 replicas, one cluster
//! per test): every node that serves slots is subscribed, hits send no command to any
//! node, a write to a key on any primary is seen by the next call after its
//! invalidation, and the tier stays coherent through a `kill -9` of a primary (flushed
//! and bypassed until the new topology is subscribed) and a manual `CLUSTER FAILOVER`
//! (no flush: the promoted replica was already subscribed). The node connections carry
//! the URL's credentials (a cluster that requires a password).

mod local_tier;

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dtrsfw::cache_wrapper;
use dtrsfw::redis::RedisInstance;
use dtrsfw::redis::caching::local::PING_EVERY;
use dtrsfw::redis::caching::{CachedFunction, LocalTier, cache_data, cache_stats};
use dtrsfw_test_support::{Cluster, Server, command_calls, replication_info};
use local_tier::{id, instance, until_local_hit, until_local_hit_within, until_value, until_value_within};
use serde_json::{Value, json};

/// An instance of the same cluster under another URL (the seeds in reverse order): no
/// in-process state shared with `instance(&cluster.seed_url())`, so its writes reach the
/// tier only through the nodes' pushes, as another process's would.
fn foreign(cluster: &Cluster) -> RedisInstance {
    let seeds: Vec<String> = cluster
        .nodes()
        .iter()
        .rev()
        .map(|n| format!("127.0.0.1:{}", n.port()))
        .collect();
    instance(&format!("redis+cluster://{}", seeds.join(",")))
}

/// `GET`s run by every live node (`INFO commandstats`).
fn gets(cluster: &Cluster) -> u64 {
    live(cluster).map(|n| command_calls(&mut n.connection(), "get")).sum()
}

fn live(cluster: &Cluster) -> impl Iterator<Item = &Server> {
    cluster.nodes().iter().filter(|n| n.pid().is_some())
}

/// Connections of `node` with client tracking on (`t` in `CLIENT LIST`'s flags).
fn tracking_clients(node: &Server) -> usize {
    dtrsfw_test_support::tracking_client_ids(&mut node.connection()).len()
}

/// Writes `value` under `key` as the cache does (JSON, zlib), directly on `node` (the
/// primary of the key's slot): a write that reaches the tier only through pushes.
fn write_on(node: &Server, key: &str, value: &Value) {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(value.to_string().as_bytes()).unwrap();
    redis::cmd("SET")
        .arg(key)
        .arg(z.finish().unwrap())
        .arg("EX")
        .arg(600)
        .exec(&mut node.connection())
        .unwrap_or_else(|e| panic!("SET {key} on port {}: {e}", node.port()));
}

/// Waits (10 s at most) for one subscribed connection on each of the 6 nodes, primaries
/// and replicas. (A replica enters `CLUSTER SLOTS` once the other nodes have seen its
/// replication offset, shortly after the cluster is up; the tracker then subscribes it.)
fn every_node_tracked(cluster: &Cluster) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cluster.nodes().iter().all(|node| tracking_clients(node) == 1) {
        let counts: Vec<usize> = cluster.nodes().iter().map(tracking_clients).collect();
        assert!(Instant::now() < deadline, "tracking connections per node: {counts:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn local_fn(namespace: &str) -> CachedFunction {
    CachedFunction::builder(namespace, ["id"])
        .expire(600)
        .timeout(Duration::from_millis(500))
        .local(LocalTier::new())
        .build()
        .unwrap()
}

/// `per` argument values of `cached` per primary, whose keys are on distinct slots,
/// by primary index.
fn ids_on_every_primary(cluster: &Cluster, cached: &CachedFunction, per: usize) -> BTreeMap<usize, Vec<i64>> {
    let mut by_primary: BTreeMap<usize, Vec<i64>> = BTreeMap::new();
    for n in 0.. {
        let primary = cluster.primary_for_slot(cluster.slot_of(&cached.key(&id(n))));
        let ids = by_primary.entry(primary).or_default();
        if ids.len() < per {
            ids.push(n);
        }
        if by_primary.len() == 3 && by_primary.values().all(|ids| ids.len() == per) {
            return by_primary;
        }
    }
    unreachable!()
}

/// After `want` was seen once, every call for `for_how_long` must return it again: no
/// older value comes back.
fn stays(want: &Value, for_how_long: Duration, mut call: impl FnMut() -> Value) {
    let until = Instant::now() + for_how_long;
    while Instant::now() < until {
        assert_eq!(&call(), want, "an older value came back");
    }
}

#[test]
fn keys_on_every_primary_are_served_locally_and_a_write_is_seen_by_the_next_call() {
    let cluster = Cluster::start();
    let redis = instance(&cluster.seed_url());
    let other = foreign(&cluster);
    let cached = local_fn("lcl");
    let by_primary = ids_on_every_primary(&cluster, &cached, 2);
    let ids: Vec<i64> = by_primary.values().flatten().copied().collect();
    let runs = AtomicUsize::new(0);
    let read = |n: i64| {
        cached.call(&redis, &id(n), || {
            runs.fetch_add(1, Ordering::SeqCst);
            json!("computed")
        })
    };
    until_local_hit(|| cached.stats(), || read(ids[0]));
    every_node_tracked(&cluster);
    for n in &ids {
        until_local_hit(|| cached.stats(), || read(*n));
    }
    let (before, hits) = (gets(&cluster), cached.stats().local_hits);
    for _ in 0..20 {
        for n in &ids {
            assert_eq!(read(*n), json!("computed"));
        }
    }
    assert_eq!(gets(&cluster), before, "a local hit must not send GET to any node");
    assert_eq!(cached.stats().local_hits, hits + 20 * ids.len() as u64);
    assert_eq!(runs.load(Ordering::SeqCst), ids.len(), "computed once per key");
    // A write by another client to each key, on each primary: the next calls see it.
    for version in 1..=3 {
        for n in &ids {
            cache_data(&other, json!({ "v": version }), &cached.key(&id(*n)), Some(600));
            until_value(&json!({ "v": version }), || read(*n));
            until_local_hit(|| cached.stats(), || read(*n));
        }
    }
    // A plain DEL on the key's primary: the next call recomputes.
    let (primary, first) = by_primary.iter().next().map(|(p, ids)| (*p, ids[0])).unwrap();
    redis::cmd("DEL")
        .arg(cached.key(&id(first)))
        .exec(&mut cluster.nodes()[primary].connection())
        .unwrap();
    until_value(&json!("computed"), || read(first));
    assert!(
        cached.stats().invalidations >= 3 * ids.len() as u64,
        "{:?}",
        cached.stats()
    );
}

static MACRO_RUNS: AtomicUsize = AtomicUsize::new(0);

#[cache_wrapper(redis = redis, namespace = "lclmacro", expire = 600, local = true, skip_cache_keys = [redis])]
fn quadrupled(redis: &RedisInstance, x: i64) -> i64 {
    MACRO_RUNS.fetch_add(1, Ordering::SeqCst);
    x * 4
}

#[test]
fn the_macro_and_the_async_calls_serve_locally_on_a_cluster() {
    let cluster = Cluster::start();
    let redis = instance(&cluster.seed_url());
    until_local_hit(|| cache_stats(&redis), || quadrupled(&redis, 10));
    let before = gets(&cluster);
    for _ in 0..50 {
        assert_eq!(quadrupled(&redis, 10), 40);
    }
    assert_eq!(gets(&cluster), before, "served locally");
    assert_eq!(MACRO_RUNS.load(Ordering::SeqCst), 1);

    let cached = local_fn("lclasync");
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let deadline = Instant::now() + Duration::from_secs(5);
        while cached.stats().local_hits == 0 {
            assert_eq!(cached.call_async(&redis, &id(3), async { 30_i64 }).await, 30);
            assert!(Instant::now() < deadline, "no local hit: {:?}", cached.stats());
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let before = gets(&cluster);
        for _ in 0..50 {
            assert_eq!(cached.call_async(&redis, &id(3), async { -1_i64 }).await, 30);
        }
        assert_eq!(gets(&cluster), before, "a local hit must not send GET");
    });
}

/// A cluster with one value per primary, each held locally: the function, the argument
/// of each key by primary, and the instance reading them.
struct Filled {
    cluster: Cluster,
    redis: RedisInstance,
    cached: CachedFunction,
    by_primary: BTreeMap<usize, Vec<i64>>,
}

impl Filled {
    fn start(namespace: &str) -> Filled {
        let cluster = Cluster::start();
        let redis = instance(&cluster.seed_url());
        let cached = local_fn(namespace);
        let by_primary = ids_on_every_primary(&cluster, &cached, 1);
        for (primary, ids) in &by_primary {
            write_on(&cluster.nodes()[*primary], &cached.key(&id(ids[0])), &json!(1));
        }
        let filled = Filled {
            cluster,
            redis,
            cached,
            by_primary,
        };
        let first = filled.ids()[0];
        until_local_hit(|| filled.cached.stats(), || filled.read(first));
        every_node_tracked(&filled.cluster);
        for n in filled.ids() {
            assert_eq!(until_local_hit(|| filled.cached.stats(), || filled.read(n)), json!(1));
        }
        filled
    }

    fn ids(&self) -> Vec<i64> {
        self.by_primary.values().flatten().copied().collect()
    }

    /// A call: the value in Redis, or `"computed"` when Redis does not answer.
    fn read(&self, n: i64) -> Value {
        self.cached.call(&self.redis, &id(n), || json!("computed"))
    }

    /// The first primary, its key's argument, and its slot.
    fn first(&self) -> (usize, i64, u16) {
        let (primary, ids) = self.by_primary.iter().next().unwrap();
        (*primary, ids[0], self.cluster.slot_of(&self.cached.key(&id(ids[0]))))
    }

    /// Waits (30 s at most) until a node other than `old` serves `slot`, calling every
    /// key meanwhile: each call returns (from Redis, or computed while Redis does not
    /// answer), never a value that was not written.
    fn promoted(&self, slot: u16, old: usize) -> usize {
        let start = Instant::now();
        loop {
            for n in self.ids() {
                let got = self.read(n);
                assert!(got == json!(1) || got == json!("computed"), "{got:?}");
            }
            if let Some(node) = self.cluster.try_primary_for_slot(slot).filter(|i| *i != old) {
                return node;
            }
            assert!(start.elapsed() < Duration::from_secs(30), "no replica promoted in 30 s");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The replica of primary `primary`.
    fn replica_of(&self, primary: usize) -> usize {
        let port = format!("master_port:{}", self.cluster.nodes()[primary].port());
        let nodes = self.cluster.nodes();
        (0..nodes.len())
            .find(|i| nodes[*i].pid().is_some() && replication_info(&nodes[*i]).contains(&port))
            .expect("a replica")
    }
}

#[test]
fn killing_a_primary_bypasses_the_tier_until_the_new_topology_is_subscribed() {
    let mut filled = Filled::start("lclkill");
    let (owner, n, slot) = filled.first();
    let flushes = filled.cached.stats().flushes;
    let killed_at = Instant::now();
    filled.cluster.node_mut(owner).kill();
    let new_owner = filled.promoted(slot, owner);
    let promoted_after = killed_at.elapsed();
    assert!(
        filled.cached.stats().flushes > flushes,
        "the lost node flushed the tier"
    );
    // A write through the new primary: once seen, the old value never comes back. The
    // limit covers redis-rs's refresh of its slot map.
    let key = filled.cached.key(&id(n));
    write_on(&filled.cluster.nodes()[new_owner], &key, &json!(2));
    until_value_within(Duration::from_secs(10), &json!(2), || filled.read(n));
    stays(&json!(2), Duration::from_millis(300), || filled.read(n));
    // The tier comes back on the new topology (the dead node left `CLUSTER SLOTS`), for
    // the keys of every primary, and a write through the new primary still reaches it.
    for m in filled.ids() {
        until_local_hit_within(Duration::from_secs(20), || filled.cached.stats(), || filled.read(m));
    }
    // The figures the module docs quote.
    eprintln!(
        "LOCAL-CLUSTER kill: promoted after {promoted_after:?}, local hits again after {:?}",
        killed_at.elapsed()
    );
    write_on(&filled.cluster.nodes()[new_owner], &key, &json!(3));
    until_value(&json!(3), || filled.read(n));
    stays(&json!(3), Duration::from_millis(300), || filled.read(n));
}

#[test]
fn a_manual_failover_keeps_the_tier_up_and_coherent() {
    let filled = Filled::start("lclmanual");
    let (owner, n, slot) = filled.first();
    let replica = filled.replica_of(owner);
    let flushes = filled.cached.stats().flushes;
    redis::cmd("CLUSTER")
        .arg("FAILOVER")
        .exec(&mut filled.cluster.nodes()[replica].connection())
        .unwrap();
    assert_eq!(filled.promoted(slot, owner), replica);
    // Past two checks of the links (each asks every node's `CLUSTER SLOTS`): the
    // promoted replica was subscribed before its promotion, so the topology has no new
    // node, nothing was flushed, and the local copy is still served, without a command
    // to any node. (Tracking primaries only, the check finds the promoted node
    // untracked and flushes: this fails.)
    std::thread::sleep(2 * PING_EVERY + Duration::from_millis(200));
    let before = filled.cached.stats().local_hits;
    assert_eq!(filled.read(n), json!(1));
    assert_eq!(filled.cached.stats().local_hits, before + 1, "still held locally");
    assert_eq!(
        filled.cached.stats().flushes,
        flushes,
        "no flush across a manual failover"
    );
    // A write through the new primary reaches the tier by a push: the next calls see it.
    let key = filled.cached.key(&id(n));
    write_on(&filled.cluster.nodes()[replica], &key, &json!(2));
    until_value(&json!(2), || filled.read(n));
    stays(&json!(2), Duration::from_millis(300), || filled.read(n));
    assert_eq!(
        filled.cached.stats().flushes,
        flushes,
        "seen by an invalidation, not a flush"
    );
    until_local_hit(|| filled.cached.stats(), || filled.read(n));
}

/// Three primaries (no replicas) that require `password` (`requirepass`), created with
/// `redis-cli -a`; ready once every node says `cluster_state:ok`.
fn cluster_with_password(password: &str) -> Vec<Server> {
    let nodes: Vec<Server> = (0..3)
        .map(|_| {
            Server::builder()
                .cluster_port()
                .password(password)
                .arg("cluster-enabled", "yes")
                .arg("cluster-node-timeout", "1000")
                .arg("cluster-config-file", "nodes.conf")
                .start()
        })
        .collect();
    let out = std::process::Command::new(dtrsfw_test_support::cli_binary())
        .args(["--no-auth-warning", "-a", password, "--cluster", "create"])
        .args(nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())))
        .args(["--cluster-replicas", "0", "--cluster-yes"])
        .output()
        .expect("run redis-cli");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stdout));
    let deadline = Instant::now() + Duration::from_secs(30);
    while !nodes.iter().all(|n| {
        let info: String = redis::cmd("CLUSTER")
            .arg("INFO")
            .query(&mut n.connection())
            .unwrap_or_default();
        info.contains("cluster_state:ok")
    }) {
        assert!(Instant::now() < deadline, "password cluster not ok in 30 s");
        std::thread::sleep(Duration::from_millis(100));
    }
    nodes
}

#[test]
fn the_node_connections_use_the_urls_credentials() {
    let nodes = cluster_with_password("s3cret");
    let seeds: Vec<String> = nodes.iter().map(|n| format!("127.0.0.1:{}", n.port())).collect();
    let redis = instance(&format!("redis+cluster://:s3cret@{}", seeds.join(",")));
    let cached = local_fn("lclauth");
    let read = || cached.call(&redis, &id(1), || json!("computed"));
    // Tracking is up only once every node is subscribed: each connection authenticated.
    until_local_hit(|| cached.stats(), read);
    for node in &nodes {
        assert_eq!(tracking_clients(node), 1, "node {}", node.port());
    }
    let key = cached.key(&id(1));
    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg(&key)
        .query(&mut nodes[0].connection())
        .unwrap();
    let owner = nodes
        .iter()
        .find(|n| {
            let mut conn = n.connection();
            redis::cmd("CLUSTER")
                .arg("COUNTKEYSINSLOT")
                .arg(slot)
                .query::<i64>(&mut conn)
                .is_ok_and(|keys| keys == 1)
        })
        .expect("the node holding the key");
    write_on(owner, &key, &json!(2));
    until_value(&json!(2), read);
}
