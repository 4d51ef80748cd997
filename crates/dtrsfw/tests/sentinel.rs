//! `redis+sentinel://` against a real primary + 2 replicas + 3 Sentinels: configuration
//! (validation, masking), every API (health, sync pool, async client, dedicated
//! connections, caching, sender, consumer), and failovers under load: `kill -9` of the
//! primary and `SENTINEL FAILOVER`, with and without `wait_for_replicas(1)`.
//!
//! Each failover test runs once here; `scripts/sentinel-soak.sh [N]` runs each N times
//! and prints every run's counts (`FAILOVER-STATS` lines: acknowledged sends, lost ones,
//! time to promotion and to resumed consumption).

mod failover_load;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dtrsfw::redis::caching::{CacheArgs, CachedFunction};
use dtrsfw::redis::sender::SenderOptions;
use dtrsfw::redis::{RedisConfig, RedisInstance, is_redis_connected, is_redis_connected_async};
use dtrsfw_test_support::{SENTINEL_SERVICE, SentinelSet};
use failover_load::{
    CHANNEL, Load, Processed, message, numbered, pipeline, sender_options, spawn_consumer, unprocessed_after_drain,
};
use redis::Commands;

fn instance(set: &SentinelSet) -> RedisInstance {
    RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(set.url())
            .set_redis_socket_timeout(Duration::from_secs(2))
            .set_redis_socket_connect_timeout(Duration::from_secs(1)),
    )
    .expect("valid sentinel config")
}

#[test]
fn a_sentinel_url_is_validated_naming_the_field_and_masked() {
    let bad = RedisInstance::new(RedisConfig::new().set_redis_url("redis+sentinel://u:hunter2@s1:26379/")).unwrap_err();
    assert!(bad.is_configuration());
    assert!(
        bad.to_string().contains("redis_url") && bad.to_string().contains("names no service"),
        "{bad}"
    );
    assert!(!bad.to_string().contains("hunter2"), "{bad}");
    let ssl = RedisInstance::new(
        RedisConfig::new()
            .set_redis_url("redis+sentinel://s1/m")
            .set_redis_ssl(true),
    )
    .unwrap_err();
    assert!(ssl.to_string().contains("redis_ssl"), "{ssl}");
    let ok =
        RedisInstance::new(RedisConfig::new().set_redis_url("rediss+sentinel://u:hunter2@s1:26379,s2/m/2")).unwrap();
    assert_eq!(ok.to_string(), "rediss+sentinel://***@s1:26379,s2/m/2");
    assert!(!format!("{ok:?}").contains("hunter2"));
    let env = RedisConfig::from_lookup(|name| (name == "REDIS_URL").then(|| "redis+sentinel://s1:26379/m".to_owned()))
        .unwrap();
    assert_eq!(env.redis_url(), Some("redis+sentinel://s1:26379/m"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_api_works_through_the_sentinels() {
    let set = SentinelSet::start();
    let redis = instance(&set);

    let (ok, err) = tokio::task::block_in_place(|| is_redis_connected(&redis));
    assert!(ok, "{err:?}");
    let (ok, err) = is_redis_connected_async(&redis).await;
    assert!(ok, "{err:?}");

    tokio::task::block_in_place(|| {
        let mut pooled = redis.get_redis().unwrap();
        let _: () = pooled.set("k", 1).unwrap();
        let mut dedicated = redis.get_blocking_connection(Duration::from_millis(100)).unwrap();
        let v: u32 = redis::cmd("GET").arg("k").query(&mut dedicated).unwrap();
        assert_eq!(v, 1);
    });
    let mut client = redis.get_async_redis_client().await.unwrap();
    let v: u32 = redis::AsyncCommands::get(&mut client, "k").await.unwrap();
    assert_eq!(v, 1);
    let mut blocking = redis
        .get_async_blocking_connection(Duration::from_millis(100))
        .await
        .unwrap();
    let popped: Option<(String, String)> = redis::cmd("BLPOP")
        .arg("none")
        .arg(0.1)
        .query_async(&mut blocking)
        .await
        .unwrap();
    assert_eq!(popped, None);
    // Every connection went to the primary the Sentinels name.
    let primary = set.nodes().nth(set.primary_index().unwrap()).unwrap();
    let on_primary: u32 = primary.connection().get("k").unwrap();
    assert_eq!(on_primary, 1);

    let cached = CachedFunction::builder("st-ns", ["x"]).expire(60).build().unwrap();
    let calls = AtomicU64::new(0);
    for _ in 0..2 {
        let v = cached
            .call_async(&redis, &CacheArgs::new().arg("x", &1), async {
                calls.fetch_add(1, Ordering::Relaxed);
                10
            })
            .await;
        assert_eq!(v, 10);
    }
    assert_eq!(calls.load(Ordering::Relaxed), 1, "the second call hit");

    let seen: Processed = Arc::new(Mutex::default());
    let (sender, consumer) = pipeline(&redis, &seen, SenderOptions::new().set_wait_for_replicas(2)).await;
    let ids = sender.send_messages(CHANNEL, &numbered(0..10)).await.unwrap();
    assert_eq!(ids.len(), 10);
    tokio::task::block_in_place(|| sender.send_message_blocking(CHANNEL, &message(10))).unwrap();
    let task = spawn_consumer(&consumer);
    wait_for(|| seen.lock().unwrap().len() == 11, Duration::from_secs(10)).await;
    consumer.shutdown();
    task.await.unwrap().unwrap();
}

/// Health asks a Sentinel that the node it PINGs is the primary: here the Sentinels are
/// re-pointed to a replica made primary (`REPLICAOF NO ONE`, then `SENTINEL REMOVE` and
/// `MONITOR`) while the old primary still runs and answers PING.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_asks_a_sentinel_that_the_pinged_node_is_the_primary() {
    let mut set = tokio::task::spawn_blocking(SentinelSet::start).await.unwrap();
    let redis = instance(&set);
    let (ok, err) = is_redis_connected_async(&redis).await;
    assert!(ok, "{err:?}");
    let old = set.primary_index().unwrap();
    let new = (old + 1) % 3;
    let (old_port, new_port) = promote_behind_the_old_primarys_back(&set, old, new);

    // The shared connection still reaches the old primary, which answers PING: unhealthy,
    // saying which node the Sentinel names; and the connection is dropped.
    let (ok, err) = is_redis_connected_async(&redis).await;
    let err = err.map(|e| e.to_string()).unwrap_or_default();
    assert!(!ok, "healthy while the sentinels name another node");
    assert!(
        err.contains("not the primary")
            && err.contains(&format!("127.0.0.1:{old_port}"))
            && err.contains(&format!(":{new_port}")),
        "{err}"
    );
    let mut client = redis.get_async_redis_client().await.unwrap();
    let _: () = redis::AsyncCommands::set(&mut client, "after", 1).await.unwrap();
    let on = |i: usize| -> Option<u32> { set.nodes().nth(i).unwrap().connection().get("after").unwrap() };
    assert_eq!(
        (on(old), on(new)),
        (None, Some(1)),
        "the next command went to the node the sentinels name"
    );
    let (ok, err) = is_redis_connected_async(&redis).await;
    assert!(ok, "{err:?}");
    let (ok, err) = tokio::task::block_in_place(|| is_redis_connected(&redis));
    assert!(ok, "{err:?}");

    // No Sentinel answers: the primary cannot be confirmed (nor followed): unhealthy.
    for i in 0..3 {
        set.sentinel_mut(i).kill();
    }
    let (ok, err) = is_redis_connected_async(&redis).await;
    assert!(
        !ok && err
            .as_ref()
            .is_some_and(|e| e.to_string().contains("no sentinel answered")),
        "{err:?}"
    );
    let (ok, err) = tokio::task::block_in_place(|| is_redis_connected(&redis));
    assert!(!ok && err.is_some());
}

/// Makes node `new` a primary (`REPLICAOF NO ONE`) and has every Sentinel monitor it
/// instead (`SENTINEL REMOVE` + `MONITOR`), while node `old` runs on as a primary too;
/// returns both ports.
fn promote_behind_the_old_primarys_back(set: &SentinelSet, old: usize, new: usize) -> (u16, u16) {
    let nodes: Vec<_> = set.nodes().collect();
    let _: () = redis::cmd("REPLICAOF")
        .arg("NO")
        .arg("ONE")
        .query(&mut nodes[new].connection())
        .unwrap();
    for sentinel in set.sentinels() {
        let mut conn = redis::Client::open(sentinel.url()).unwrap().get_connection().unwrap();
        let _: () = redis::cmd("SENTINEL")
            .arg("REMOVE")
            .arg(SENTINEL_SERVICE)
            .query(&mut conn)
            .unwrap();
        let _: () = redis::cmd("SENTINEL")
            .arg("MONITOR")
            .arg(SENTINEL_SERVICE)
            .arg("127.0.0.1")
            .arg(nodes[new].port())
            .arg(2)
            .query(&mut conn)
            .unwrap();
    }
    (nodes[old].port(), nodes[new].port())
}

/// What a failover run saw.
struct FailoverRun {
    acked: std::collections::BTreeSet<u64>,
    lost: Vec<u64>,
    promoted_after: Duration,
    resumed_after: Duration,
}

impl std::fmt::Debug for FailoverRun {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "acked={} lost={} {:?} promoted_after={:?} resumed_after={:?}",
            self.acked.len(),
            self.lost.len(),
            self.lost,
            self.promoted_after,
            self.resumed_after
        )
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_primary_loses_no_send_acknowledged_with_wait_for_replicas() {
    let run = failover_run(Switch::Kill, true).await;
    eprintln!("FAILOVER-STATS kill wait1=true {run:?}");
    assert!(run.lost.is_empty(), "{run:?}");
    assert!(
        run.resumed_after <= run.promoted_after + Duration::from_secs(2),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_of_the_primary_without_the_option_resumes_and_counts_losses() {
    let run = failover_run(Switch::Kill, false).await;
    // Without WAIT, an acknowledged send may be lost (asynchronous replication): counted,
    // not asserted. Consumption must resume in time either way.
    eprintln!("FAILOVER-STATS kill wait1=false {run:?}");
    assert!(
        run.resumed_after <= run.promoted_after + Duration::from_secs(2),
        "{run:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_planned_sentinel_failover_loses_nothing() {
    let run = failover_run(Switch::Planned, false).await;
    eprintln!("FAILOVER-STATS planned wait1=false {run:?}");
    assert!(run.lost.is_empty(), "{run:?}");
    assert!(
        run.resumed_after <= run.promoted_after + Duration::from_secs(2),
        "{run:?}"
    );
}

#[derive(Clone, Copy, PartialEq)]
enum Switch {
    Kill,
    Planned,
}

/// Two producers and a consumer on [`CHANNEL`]; the primary is switched (killed, or
/// `SENTINEL FAILOVER`) while they run; then every acknowledged send is looked for among
/// the processed ones.
async fn failover_run(switch: Switch, wait1: bool) -> FailoverRun {
    let mut set = tokio::task::spawn_blocking(SentinelSet::start).await.unwrap();
    let redis = instance(&set);
    let processed: Processed = Arc::new(Mutex::default());
    let (sender, consumer) = pipeline(&redis, &processed, sender_options(wait1)).await;
    let consuming = spawn_consumer(&consumer);
    let load = Load::start(&sender);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let old = set.primary_index().unwrap();
    let switched = Instant::now();
    match switch {
        Switch::Kill => set.node_mut(old).kill(),
        Switch::Planned => {
            let mut conn = redis::Client::open(set.sentinels()[0].url())
                .unwrap()
                .get_connection()
                .unwrap();
            let _: () = redis::cmd("SENTINEL")
                .arg("FAILOVER")
                .arg(SENTINEL_SERVICE)
                .query(&mut conn)
                .unwrap();
        }
    }
    let deadline = Instant::now() + Duration::from_secs(30);
    while set.primary_index().is_none_or(|i| i == old) {
        assert!(Instant::now() < deadline, "no replica promoted in 30 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let promoted_after = switched.elapsed();
    let resumed_after = load.resumed_after(&processed, switched, promoted_after).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let acked = load.stop().await.acked;
    let lost = unprocessed_after_drain(&acked, &processed).await;
    consumer.shutdown();
    let _ = consuming.await;
    FailoverRun {
        acked,
        lost,
        promoted_after,
        resumed_after,
    }
}

async fn wait_for(done: impl Fn() -> bool, limit: Duration) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(Instant::now() < deadline, "not done within {limit:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
