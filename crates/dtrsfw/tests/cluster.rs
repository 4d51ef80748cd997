//! Every feature on a real Redis Cluster (3 primaries + 3 replicas): configuration,
//! health, sync and async clients, the sender, the consumer (with dead-lettering to a
//! stream on another slot, cleanup and stats), and a primary's failover under load.
//!
//! One cluster per test (each takes seconds to start); channels are picked so that they
//! land on different primaries.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dtrsfw::redis::caching::{CacheArgs, CachedFunction, invalidate_namespace, invalidate_namespace_async};
use dtrsfw::redis::{
    ChannelOptions, Consumer, ConsumerOptions, Message, RedisConfig, RedisInstance, Sender, StartFrom,
    is_redis_connected, is_redis_connected_async,
};
use dtrsfw_test_support::Cluster;
use redis::Commands;

fn instance(cluster: &Cluster) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(cluster.seed_url())).expect("valid cluster config")
}

/// One channel name (with `prefix`) per primary, each on a different primary.
fn channels_on_distinct_primaries(cluster: &Cluster, prefix: &str) -> Vec<String> {
    let mut by_primary: BTreeMap<usize, String> = BTreeMap::new();
    for i in 0.. {
        let name = format!("{prefix}-{i}");
        let primary = cluster.primary_for_slot(cluster.slot_of(&name));
        by_primary.entry(primary).or_insert(name);
        if by_primary.len() == 3 {
            break;
        }
    }
    by_primary.into_values().collect()
}

fn opts() -> ChannelOptions {
    ChannelOptions::new()
        .start_from(StartFrom::Beginning)
        .reclaim_idle(Duration::from_millis(300))
        .max_deliveries(2)
}

const BLOCK: Duration = Duration::from_millis(100);
const REST: Duration = Duration::from_millis(20);

/// Records `(channel, i)` for every successful handler call; fails `i == poison`.
fn recorder(
    channel: &str,
    seen: &Arc<Mutex<Vec<(String, u64)>>>,
    poison: u64,
) -> impl Fn(&str, &serde_json::Value) -> Result<(), String> + Send + Sync + 'static {
    let (channel, seen) = (channel.to_owned(), seen.clone());
    move |_name, payload| {
        let i = payload["i"].as_u64().ok_or("no i")?;
        if i == poison {
            return Err(format!("poison {i}"));
        }
        seen.lock().unwrap().push((channel.clone(), i));
        Ok(())
    }
}

fn numbered(range: std::ops::Range<u64>) -> Vec<Message> {
    range
        .map(|i| Message::new("evt", &serde_json::json!({ "i": i })).unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_feature_works_on_a_cluster_with_channels_on_every_primary() {
    let cluster = Cluster::start();
    let redis = instance(&cluster);
    assert!(redis.is_cluster());
    assert!(redis.to_string().starts_with("redis+cluster://127.0.0.1:"));

    // Health: every primary answers and the cluster state is ok, sync and async.
    let (ok, err) = tokio::task::block_in_place(|| is_redis_connected(&redis));
    assert!(ok, "{err:?}");
    let (ok, err) = is_redis_connected_async(&redis).await;
    assert!(ok, "{err:?}");

    // Sync and async clients: keys spread over every slot range, each on its owner.
    tokio::task::block_in_place(|| {
        let mut client = redis.get_redis_client();
        for i in 0..60 {
            let _: () = client.set_ex(format!("k{i}"), i, 60).unwrap();
        }
        let mut pooled = redis.get_redis().unwrap();
        assert!(pooled.is_cluster());
        for i in 0..60 {
            let v: u32 = pooled.get(format!("k{i}")).unwrap();
            assert_eq!(v, i);
        }
    });
    let mut client = redis.get_async_redis_client().await.unwrap();
    assert!(client.is_cluster());
    for i in 0..60 {
        let v: u32 = redis::AsyncCommands::get(&mut client, format!("k{i}")).await.unwrap();
        assert_eq!(v, i);
    }
    let owners: BTreeSet<usize> = (0..60)
        .map(|i| cluster.primary_for_slot(cluster.slot_of(&format!("k{i}"))))
        .collect();
    assert_eq!(owners.len(), 3, "the keys landed on every primary");

    // Caching: entries spread over every primary; namespace invalidation scans them all.
    let cached = CachedFunction::builder("cl-ns", ["x"]).expire(60).build().unwrap();
    let calls = AtomicU64::new(0);
    let run = |x: u64| {
        calls.fetch_add(1, Ordering::Relaxed);
        x * 10
    };
    let key_args = |x: u64| CacheArgs::new().arg("x", &x);
    tokio::task::block_in_place(|| {
        for round in 0..2 {
            for x in 0..60 {
                assert_eq!(cached.call(&redis, &key_args(x), || run(x)), x * 10, "round {round}");
            }
        }
    });
    assert_eq!(calls.load(Ordering::Relaxed), 60, "the second round hit every key");
    let cache_owners: BTreeSet<usize> = (0..60)
        .map(|x| cluster.primary_for_slot(cluster.slot_of(&cached.key(&key_args(x)))))
        .collect();
    assert_eq!(cache_owners.len(), 3, "cache entries on every primary");
    for x in 0..60 {
        assert_eq!(cached.call_async(&redis, &key_args(x), async { run(x) }).await, x * 10);
    }
    assert_eq!(calls.load(Ordering::Relaxed), 60, "async calls hit too");
    assert!(cached.invalidate_async(&redis, &key_args(0)).await.unwrap());
    let removed = tokio::task::block_in_place(|| invalidate_namespace(&redis, "cl-ns")).unwrap();
    assert_eq!(removed, 59, "every primary was scanned");
    for x in 0..60 {
        cached.call_async(&redis, &key_args(x), async { run(x) }).await;
    }
    assert_eq!(calls.load(Ordering::Relaxed), 120, "all misses after invalidation");
    assert_eq!(invalidate_namespace_async(&redis, "cl-ns").await.unwrap(), 60);
    assert_eq!(cached.stats().errors, 0);

    // Sender: single and batched sends (one pipeline per channel) to three channels on
    // three primaries, async and blocking.
    let channels = channels_on_distinct_primaries(&cluster, "orders");
    let sender = Sender::new(&redis);
    for ch in &channels {
        sender.register_channel(ch.clone()).unwrap();
    }
    for ch in &channels {
        sender.send_messages(ch, &numbered(0..100)).await.unwrap();
        for m in numbered(100..110) {
            sender.send_message(ch, &m).await.unwrap();
        }
        let ids = tokio::task::block_in_place(|| {
            sender.send_messages_blocking(ch, &numbered(110..120)).unwrap();
            sender.send_message_blocking(ch, &numbered(120..121)[0]).unwrap()
        });
        assert!(ids.to_string().contains('-'));
        let len: usize = redis::AsyncCommands::xlen(&mut client, ch).await.unwrap();
        assert_eq!(len, 121, "{ch}");
    }

    // Consumer: two services, each reading every channel from its owner. Entry 7 always
    // fails: it ends in `<channel>:dlq`, which may hash to another slot.
    let seen_a = Arc::new(Mutex::new(Vec::new()));
    let seen_b = Arc::new(Mutex::new(Vec::new()));
    let a = Consumer::new(&redis, "svc-a").unwrap();
    let b = Consumer::new(&redis, "svc-b").unwrap();
    for ch in &channels {
        for (c, seen) in [(&a, &seen_a), (&b, &seen_b)] {
            let options = opts().consumers(["svc-a", "svc-b"]).message_cleanup(true);
            c.register_channel(ch, options).await.unwrap();
            c.register_handler(ch, recorder(ch, seen, 7)).unwrap();
        }
    }
    let dlq_slots: BTreeSet<u16> = channels
        .iter()
        .map(|ch| cluster.slot_of(&format!("{ch}:dlq")))
        .collect();
    assert!(
        channels.iter().any(|ch| !dlq_slots.contains(&cluster.slot_of(ch))),
        "a dead-letter stream lives on another slot than its channel"
    );
    let expected = 3 * 120; // 121 per channel, less the poisoned one
    let done = || seen_a.lock().unwrap().len() >= expected && seen_b.lock().unwrap().len() >= expected;
    let tasks: Vec<_> = [a.clone(), b.clone()]
        .into_iter()
        .map(|c| tokio::spawn(async move { c.persist_consume_all_channels(REST, BLOCK).await }))
        .collect();
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead_lettered = |c: &Consumer| {
        let c = c.clone();
        async move {
            c.get_stats()
                .await
                .unwrap()
                .channels
                .values()
                .map(|s| s.dead_lettered)
                .sum::<u64>()
        }
    };
    while Instant::now() < deadline && !(done() && dead_lettered(&a).await == 3 && dead_lettered(&b).await == 3) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.shutdown();
    b.shutdown();
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    for seen in [&seen_a, &seen_b] {
        let seen = seen.lock().unwrap();
        for ch in &channels {
            let got: Vec<u64> = seen.iter().filter(|(c, _)| c == ch).map(|(_, i)| *i).collect();
            let want: Vec<u64> = (0..121).filter(|i| *i != 7).collect();
            assert_eq!(got, want, "{ch}: every entry once, in order");
        }
    }
    for ch in &channels {
        let dlq: Vec<(String, BTreeMap<String, String>)> =
            redis::AsyncCommands::xrange_all(&mut client, format!("{ch}:dlq"))
                .await
                .unwrap();
        assert_eq!(dlq.len(), 2, "{ch}: one dead letter per service");
        assert!(dlq.iter().all(|(_, f)| f["reason"] == "max_deliveries"), "{dlq:?}");
    }
    let stats = a.get_stats().await.unwrap();
    for ch in &channels {
        let s = &stats.channels[ch.as_str()];
        assert_eq!(
            (s.processed, s.dead_lettered, s.lag, s.pending),
            (120, 1, Some(0), Some(0)),
            "{ch}"
        );
    }

    // Cleanup: both services acknowledged everything, so every channel is emptied.
    let deleted = a.clean_up_consumed_messages().await.unwrap();
    assert_eq!(deleted, 3 * 121);
    for ch in &channels {
        let len: usize = redis::AsyncCommands::xlen(&mut client, ch).await.unwrap();
        assert_eq!(len, 0, "{ch}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_killed_under_load_fails_over_and_no_acknowledged_send_is_lost() {
    let mut cluster = Cluster::start();
    let redis = instance(&cluster);
    let channel = channels_on_distinct_primaries(&cluster, "busy").remove(0);
    let owner = cluster.primary_for_slot(cluster.slot_of(&channel));

    let sender = Sender::new(&redis);
    sender.register_channel(channel.clone()).unwrap();
    // The reconnect backoff is capped at 1 s (default 5 s) so that a retry follows the
    // failover promptly: the resume bound below is the failover time plus 2 s.
    let options = ConsumerOptions::new().max_backoff(Duration::from_secs(1));
    let consumer = Consumer::with_options(&redis, "svc", options).unwrap();
    consumer
        .register_channel(&channel, opts().max_deliveries(100))
        .await
        .unwrap();
    let processed: Arc<Mutex<BTreeMap<u64, Instant>>> = Arc::default();
    let record = processed.clone();
    consumer
        .register_handler(&channel, move |_: &str, payload: &serde_json::Value| {
            let i = payload["i"].as_u64().ok_or("no i")?;
            record.lock().unwrap().entry(i).or_insert_with(Instant::now);
            Ok::<(), String>(())
        })
        .unwrap();
    let consuming = {
        let c = consumer.clone();
        tokio::spawn(async move { c.persist_consume_all_channels(REST, BLOCK).await })
    };

    // Two producers, each sending numbered messages one after the other; a send that
    // returned an ID is recorded as acknowledged.
    let stop = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let acknowledged: Arc<Mutex<BTreeSet<u64>>> = Arc::default();
    let producers: Vec<_> = (0..2)
        .map(|_| {
            let (sender, channel, stop, next, acknowledged) = (
                sender.clone(),
                channel.clone(),
                stop.clone(),
                next.clone(),
                acknowledged.clone(),
            );
            tokio::spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let msg = Message::new("evt", &serde_json::json!({ "i": i })).unwrap();
                    if sender.send_message(&channel, &msg).await.is_ok() {
                        acknowledged.lock().unwrap().insert(i);
                    }
                    // Paced (about 400 sends/s in all) so that the consumer keeps up and
                    // the resume time measures the failover, not a backlog.
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
            })
        })
        .collect();

    // Busy for a while, then the channel's primary dies.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!processed.lock().unwrap().is_empty(), "consuming before the kill");
    let killed_at = Instant::now();
    let sent_before_kill = next.load(Ordering::Relaxed);
    cluster.node_mut(owner).kill();
    tokio::task::block_in_place(|| cluster.wait_until_healthy(Duration::from_secs(30)));
    let failover = killed_at.elapsed();
    let new_owner = cluster.primary_for_slot(cluster.slot_of(&channel));
    assert_ne!(new_owner, owner, "a replica took over");

    // Consumption resumes within the failover time plus 2 s: a message sent after the
    // kill is processed by then.
    let limit = failover + Duration::from_secs(2);
    let resumed = loop {
        let after_kill = processed
            .lock()
            .unwrap()
            .range(sent_before_kill + 8..)
            .map(|(_, at)| *at)
            .min();
        if let Some(at) = after_kill {
            break at.duration_since(killed_at);
        }
        assert!(
            killed_at.elapsed() < limit + Duration::from_secs(10),
            "no message sent after the kill was processed (failover took {failover:?})"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(
        resumed <= limit,
        "consumption resumed {resumed:?} after the kill; failover took {failover:?}"
    );

    // More traffic on the new primary, then stop producing and wait for the backlog.
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for p in producers {
        p.await.unwrap();
    }
    let acknowledged = acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 100, "the channel was busy: {}", acknowledged.len());
    let deadline = Instant::now() + Duration::from_secs(20);
    let missing = loop {
        let missing: Vec<u64> = {
            let processed = processed.lock().unwrap();
            acknowledged
                .iter()
                .filter(|i| !processed.contains_key(i))
                .copied()
                .collect()
        };
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    consumer.shutdown();
    consuming.await.unwrap().unwrap();
    assert!(
        missing.is_empty(),
        "{} acknowledged sends never processed, e.g. {:?} (failover {failover:?})",
        missing.len(),
        &missing[..missing.len().min(10)]
    );
}

#[test]
fn an_unreachable_cluster_fails_open_quickly_and_opens_the_circuit() {
    // Seeds on free ports with nothing listening: the cache must run the function and
    // not wait the full socket timeout on every call.
    let ports: Vec<u16> = (0..3).map(|_| dtrsfw_test_support::free_port()).collect();
    let url = format!(
        "redis+cluster://{}",
        ports
            .iter()
            .map(|p| format!("127.0.0.1:{p}"))
            .collect::<Vec<_>>()
            .join(",")
    );
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(url)).unwrap();
    let (ok, err) = is_redis_connected(&redis);
    assert!(!ok && err.is_some());
    let cached = CachedFunction::builder("down", ["x"])
        .timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let started = Instant::now();
    for x in 0..20u64 {
        assert_eq!(cached.call(&redis, &CacheArgs::new().arg("x", &x), || x + 1), x + 1);
    }
    let stats = cached.stats();
    assert!(stats.errors >= 1 && stats.short_circuited >= 1, "{stats:?}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "fail-open stayed bounded: {:?}",
        started.elapsed()
    );
}

#[test]
fn a_cluster_url_comes_from_the_environment_and_is_validated() {
    let env = |url: &'static str| move |name: &str| (name == "REDIS_URL").then(|| url.to_owned());
    let config = RedisConfig::from_lookup(env("redis+cluster://app:s%40cret@10.0.0.1:7000,10.0.0.2:7001")).unwrap();
    let redis = RedisInstance::new(config).unwrap();
    assert!(redis.is_cluster());
    assert_eq!(redis.to_string(), "redis+cluster://***@10.0.0.1:7000,10.0.0.2:7001");
    assert!(!format!("{redis:?}").contains("s%40cret"));

    let err = RedisInstance::new(RedisConfig::new().set_redis_url("redis+cluster://10.0.0.1:7000/3")).unwrap_err();
    assert!(err.is_configuration() && err.to_string().contains("redis_url"), "{err}");
    let err = RedisInstance::new(RedisConfig::new().set_redis_url("redis+cluster://")).unwrap_err();
    assert!(err.is_configuration(), "{err}");
    let err = RedisInstance::new(
        RedisConfig::new()
            .set_redis_url("redis+cluster://10.0.0.1:7000")
            .set_redis_ssl(true),
    )
    .unwrap_err();
    assert!(err.to_string().contains("redis_ssl"), "{err}");
    let tls = RedisInstance::new(
        RedisConfig::new()
            .set_redis_url("rediss+cluster://10.0.0.1:7000")
            .set_redis_ssl(true),
    )
    .unwrap();
    assert!(tls.is_cluster());
    assert!(
        !RedisInstance::new(RedisConfig::new().set_redis_host("h"))
            .unwrap()
            .is_cluster()
    );
}
