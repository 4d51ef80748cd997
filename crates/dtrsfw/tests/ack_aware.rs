//! Redis 8.2's acknowledged-aware stream commands, with their detection and fallbacks,
//! against whichever server `DTRSFW_TEST_SERVER` names: capability detection (cached,
//! detected again after a reconnect), acknowledged-only retention (refused on older
//! servers, naming the version), and `delete_when_acked_by_all` (fast path on 8.2, the
//! cleanup rule elsewhere) with an unlisted group and a listed service without a group.
//! Parts that need 8.2 print what they skipped and why.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dtrsfw::redis::sender::{Message, Retention, Sender};
use dtrsfw::redis::streamer::group_name;
use dtrsfw::redis::{ChannelOptions, Consumer, ErrorKind, RedisConfig, RedisInstance, StartFrom};
use dtrsfw_test_support::{Server, command_calls};
use redis::Commands;

fn instance(server: &Server) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).expect("valid config")
}

/// The server's own word on `XACKDEL`: whether a raw call is refused as unknown.
fn server_has_xackdel(conn: &mut redis::Connection) -> bool {
    let reply: redis::RedisResult<redis::Value> = redis::cmd("XACKDEL")
        .arg("probe")
        .arg("g")
        .arg("ACKED")
        .arg("IDS")
        .arg(1)
        .arg("1-0")
        .query(conn);
    !matches!(&reply, Err(e) if e.to_string().to_lowercase().contains("unknown command"))
}

fn skip(what: &str, server: &str) {
    eprintln!("SKIPPED {what}: the server is {server}, without XACKDEL and the ACKED option (Redis 8.2+)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_match_the_server_are_cached_and_detected_again_after_a_reconnect() {
    let mut server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let caps = redis.server_capabilities().await.unwrap();
    let info: String = redis::cmd("INFO").arg("server").query(&mut conn).unwrap();
    assert!(
        info.contains(&format!("_version:{}\r", caps.version())),
        "{caps:?} vs {info}"
    );
    assert_eq!(caps.product() == "valkey", info.contains("server_name:valkey"));
    assert_eq!(caps.ack_aware_streams(), server_has_xackdel(&mut conn), "{caps}");
    eprintln!("detected: {caps}");

    // Cached: asking again sends nothing.
    let before = command_calls(&mut conn, "command|info");
    assert_eq!(redis.server_capabilities().await.unwrap(), caps);
    assert_eq!(redis.server_capabilities_blocking().unwrap(), caps);
    assert_eq!(command_calls(&mut conn, "command|info"), before);

    // A restart: the shared connection sees the loss, and the next question is asked anew
    // (of the new process, whose command counters start at 0).
    server.restart();
    let mut client = redis.get_async_redis_client().await.unwrap();
    let _: redis::RedisResult<String> = redis::cmd("PING").query_async(&mut client).await;
    assert_eq!(redis.server_capabilities().await.unwrap(), caps);
    let mut conn = server.connection();
    assert_eq!(
        command_calls(&mut conn, "command|info"),
        1,
        "detected again on the new connection"
    );
    // A reset does the same.
    redis.reset_async_pool().await;
    redis.server_capabilities().await.unwrap();
    assert_eq!(command_calls(&mut conn, "command|info"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acked_retention_is_refused_on_older_servers_and_keeps_unacknowledged_entries_on_8_2() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let caps = redis.server_capabilities().await.unwrap();
    let sender = Sender::new(&redis);
    let registered = sender
        .register_channel_with_async("r", Retention::MaxLenAcked(10))
        .await;
    let blocking = sender.register_channel_with("r2", Retention::MinAgeAcked(Duration::from_secs(60)));
    if !caps.ack_aware_streams() {
        for refused in [registered, blocking] {
            let err = refused.unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput);
            assert!(err.to_string().contains(caps.version()), "names the version: {err}");
        }
        assert!(!sender.is_registered("r") && !sender.is_registered("r2"));
        skip("trimming with MAXLEN n ACKED", &caps.to_string());
        return;
    }
    registered.unwrap();
    blocking.unwrap();
    let group = group_name("r", "svc");
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("r")
        .arg(&group)
        .arg("$")
        .arg("MKSTREAM")
        .query(&mut conn)
        .unwrap();
    let batch: Vec<Message> = (0..300)
        .map(|i| Message::new("e", &serde_json::json!({ "i": i })).unwrap())
        .collect();
    sender.send_messages("r", &batch).await.unwrap();
    let len: usize = conn.xlen("r").unwrap();
    assert_eq!(len, 300, "nothing unacknowledged is trimmed");
    // Read and acknowledge everything: the next send trims down to 10 (exactly: see
    // `Retention::MaxLenAcked`).
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(&group)
        .arg("c")
        .arg("COUNT")
        .arg(1000)
        .arg("STREAMS")
        .arg("r")
        .arg(">")
        .query(&mut conn)
        .unwrap();
    let ids: Vec<String> = read.keys[0].ids.iter().map(|e| e.id.clone()).collect();
    let _: u64 = conn.xack("r", &group, &ids).unwrap();
    sender.send_messages("r", &batch[..5]).await.unwrap();
    let len: usize = conn.xlen("r").unwrap();
    assert_eq!(len, 10, "bounded once acknowledged");
    // Unacknowledged entries past the bound stay: 5 new ones, never read by the group.
    sender.send_messages("r", &batch[..20]).await.unwrap();
    let left: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("r")
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    assert_eq!(left.len(), 25, "the 25 unacknowledged entries, none trimmed");
    assert!(
        left.iter().all(|(id, _)| !ids.contains(id)),
        "only acknowledged entries were trimmed"
    );
}

/// Runs `consumer` until `done()` holds or `limit` passes; then stops it. Returns whether
/// `done()` held.
async fn run_until(consumer: &Consumer, limit: Duration, done: impl Fn() -> bool) -> bool {
    let c = consumer.clone();
    let task = tokio::spawn(async move {
        c.persist_consume_all_channels(Duration::from_millis(20), Duration::from_millis(100))
            .await
    });
    let start = Instant::now();
    while !done() && start.elapsed() < limit {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumer.shutdown();
    task.await.unwrap().unwrap();
    done()
}

/// A consumer of service `a` on channel `s` with `delete_when_acked_by_all`, listing
/// `listed`, counting what it processed.
async fn deleting_consumer(redis: &RedisInstance, listed: &[&str]) -> (Consumer, Arc<AtomicU64>) {
    let c = Consumer::new(redis, "a").unwrap();
    c.register_channel(
        "s",
        ChannelOptions::new()
            .start_from(StartFrom::Beginning)
            .consumers(listed.iter().copied())
            .delete_when_acked_by_all(true),
    )
    .await
    .unwrap();
    let processed = Arc::new(AtomicU64::new(0));
    let counter = processed.clone();
    c.register_handler("s", move |_, _| {
        counter.fetch_add(1, Ordering::Relaxed);
        Ok::<(), String>(())
    })
    .unwrap();
    (c, processed)
}

fn publish(conn: &mut redis::Connection, n: usize) {
    for i in 0..n {
        let _: String = conn
            .xadd("s", "*", &[("name", "e"), ("body", &format!("{{\"i\":{i}}}"))])
            .unwrap();
    }
}

/// Another service's group reads everything and acknowledges with a plain `XACK`.
fn read_and_ack(conn: &mut redis::Connection, group: &str) {
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("c")
        .arg("COUNT")
        .arg(1000)
        .arg("STREAMS")
        .arg("s")
        .arg(">")
        .query(conn)
        .unwrap();
    let ids: Vec<String> = read
        .keys
        .iter()
        .flat_map(|k| k.ids.iter().map(|e| e.id.clone()))
        .collect();
    let _: u64 = conn.xack("s", group, &ids).unwrap();
}

fn create_group(conn: &mut redis::Connection, group: &str) {
    let _: () = redis::cmd("XGROUP")
        .arg("CREATE")
        .arg("s")
        .arg(group)
        .arg("0")
        .arg("MKSTREAM")
        .query(conn)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_when_acked_by_all_empties_the_stream_with_xackdel_on_8_2_and_the_pass_elsewhere() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let caps = redis.server_capabilities().await.unwrap();
    let (c, processed) = deleting_consumer(&redis, &["a"]).await;
    publish(&mut conn, 50);
    let len = |conn: &mut redis::Connection| -> usize { conn.xlen("s").unwrap() };
    let check = server.connection();
    let check = std::sync::Mutex::new(check);
    let emptied = run_until(&c, Duration::from_secs(15), || {
        processed.load(Ordering::Relaxed) == 50 && len(&mut check.lock().unwrap()) == 0
    })
    .await;
    assert!(
        emptied,
        "processed {} and {} left",
        processed.load(Ordering::Relaxed),
        len(&mut conn)
    );
    let xackdel = command_calls(&mut conn, "xackdel");
    if caps.ack_aware_streams() {
        assert!(xackdel > 0, "acknowledged with XACKDEL on {caps}");
        assert_eq!(command_calls(&mut conn, "xack"), 0, "no plain XACK on {caps}");
    } else {
        assert_eq!(xackdel, 0);
        skip(
            "acknowledging with XACKDEL (the 5 s pass deleted instead)",
            &caps.to_string(),
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_when_acked_by_all_keeps_entries_for_an_unlisted_group_until_it_acknowledges() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let other = group_name("s", "other");
    create_group(&mut conn, &other); // a group of a service not in `consumers`
    let (c, processed) = deleting_consumer(&redis, &["a"]).await;
    publish(&mut conn, 50);
    // Past a pass (5 s) after everything was processed: the unlisted group's entries stay.
    run_until(&c, Duration::from_secs(7), || false).await;
    assert_eq!(processed.load(Ordering::Relaxed), 50);
    let len: usize = conn.xlen("s").unwrap();
    assert_eq!(len, 50, "the unlisted group has acknowledged nothing");
    read_and_ack(&mut conn, &other);
    // A stopped consumer does not start again: a new instance of the service goes on.
    let (c, _) = deleting_consumer(&redis, &["a"]).await;
    let check = std::sync::Mutex::new(server.connection());
    let emptied = run_until(&c, Duration::from_secs(15), || {
        check.lock().unwrap().xlen::<_, usize>("s").unwrap() == 0
    })
    .await;
    assert!(
        emptied,
        "deleted once the unlisted group acknowledged with a plain XACK"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_when_acked_by_all_waits_for_a_listed_service_without_a_group() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let (c, processed) = deleting_consumer(&redis, &["a", "b"]).await; // `b` has no group
    publish(&mut conn, 50);
    run_until(&c, Duration::from_secs(7), || false).await;
    assert_eq!(processed.load(Ordering::Relaxed), 50);
    let len: usize = conn.xlen("s").unwrap();
    assert_eq!(len, 50, "a listed service without a group blocks deletion");
    assert_eq!(
        command_calls(&mut conn, "xackdel"),
        0,
        "plain XACK while b has no group"
    );
    let b = group_name("s", "b");
    create_group(&mut conn, &b);
    read_and_ack(&mut conn, &b);
    let (c, _) = deleting_consumer(&redis, &["a", "b"]).await;
    let check = std::sync::Mutex::new(server.connection());
    let emptied = run_until(&c, Duration::from_secs(15), || {
        check.lock().unwrap().xlen::<_, usize>("s").unwrap() == 0
    })
    .await;
    assert!(emptied, "deleted once b's group exists and acknowledged");
}

fn parse_id(id: &str) -> (u64, u64) {
    let (a, b) = id.split_once('-').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

fn stream_ids(conn: &mut redis::Connection, key: &str) -> BTreeSet<(u64, u64)> {
    let v: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE").arg(key).arg("-").arg("+").query(conn).unwrap();
    v.into_iter().map(|(id, _)| parse_id(&id)).collect()
}

/// Per group: last delivered ID and pending set (the model of the server's state).
type Model = BTreeMap<String, ((u64, u64), BTreeSet<(u64, u64)>)>;

/// What a `delete_when_acked_by_all` pass may and must delete, by brute force over every
/// entry and every required group (the stream's groups plus the listed ones).
fn expected_deletions(
    before: &BTreeSet<(u64, u64)>,
    groups: &Model,
    listed: &[String],
    ack_aware: bool,
) -> BTreeSet<(u64, u64)> {
    if listed.iter().any(|g| !groups.contains_key(g)) {
        return BTreeSet::new();
    }
    let acked_by_all = |e: &(u64, u64)| groups.values().all(|(last, pending)| e <= last && !pending.contains(e));
    if ack_aware {
        // XTRIM MINID <first undelivered> ACKED: every entry every group acknowledged.
        return before.iter().copied().filter(|e| acked_by_all(e)).collect();
    }
    // The cleanup rule: everything older than the oldest entry a group still needs.
    let oldest_needed = groups
        .values()
        .filter_map(|(last, pending)| {
            pending
                .first()
                .copied()
                .into_iter()
                .chain(before.iter().copied().find(|e| e > last))
                .min()
        })
        .min()
        .unwrap_or((u64::MAX, u64::MAX));
    before.iter().copied().filter(|e| *e < oldest_needed).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_when_acked_by_all_deletes_exactly_what_a_brute_force_model_allows() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let caps = redis.server_capabilities().await.unwrap();
    if !caps.ack_aware_streams() {
        eprintln!("fast path (XTRIM MINID ... ACKED) not available on {caps}: checking the cleanup-rule fallback");
    }
    let services = ["alpha", "beta", "gamma"]; // gamma is not listed
    let mut total = 0;
    for seed in 1..=6u64 {
        let channel = format!("m{seed}");
        let listed: Vec<String> = ["alpha", "beta"].iter().map(|s| group_name(&channel, s)).collect();
        let mut rng = dtrsfw_test_support::Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let cleaner = Consumer::new(&redis, "cleaner").unwrap();
        let opts = ChannelOptions::new()
            .read_messages(false)
            .consumers(["alpha", "beta"])
            .delete_when_acked_by_all(true);
        cleaner.register_channel(&channel, opts).await.unwrap();
        let mut model = Model::new();
        for _ in 0..60 {
            let group = group_name(&channel, services[rng.below(3) as usize]);
            match rng.below(6) {
                0 | 1 => {
                    for _ in 0..=rng.below(5) {
                        let _: String = conn.xadd(&channel, "*", &[("name", "e"), ("body", "{}")]).unwrap();
                    }
                }
                2 if !model.contains_key(&group) => {
                    let start = if rng.below(2) == 0 { "0" } else { "$" };
                    let _: () = redis::cmd("XGROUP")
                        .arg("CREATE")
                        .arg(&channel)
                        .arg(&group)
                        .arg(start)
                        .arg("MKSTREAM")
                        .query(&mut conn)
                        .unwrap();
                    let last = if start == "0" {
                        (0, 0)
                    } else {
                        stream_ids(&mut conn, &channel).last().copied().unwrap_or((0, 0))
                    };
                    model.insert(group, (last, BTreeSet::new()));
                }
                3 | 4 if model.contains_key(&group) => {
                    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
                        .arg("GROUP")
                        .arg(&group)
                        .arg("i")
                        .arg("COUNT")
                        .arg(1 + rng.below(4))
                        .arg("STREAMS")
                        .arg(&channel)
                        .arg(">")
                        .query(&mut conn)
                        .unwrap();
                    let (last, pending) = model.get_mut(&group).unwrap();
                    for e in read.keys.iter().flat_map(|k| &k.ids) {
                        *last = parse_id(&e.id);
                        pending.insert(*last);
                    }
                }
                5 if model.contains_key(&group) => {
                    let (_, pending) = model.get_mut(&group).unwrap();
                    let acked: Vec<(u64, u64)> = pending.iter().copied().filter(|_| rng.below(3) != 0).collect();
                    for id in acked {
                        let _: u64 = conn.xack(&channel, &group, &[format!("{}-{}", id.0, id.1)]).unwrap();
                        pending.remove(&id);
                    }
                }
                _ => {}
            }
            if rng.below(4) == 0 {
                let before = stream_ids(&mut conn, &channel);
                let deleted = cleaner.clean_up_consumed_messages().await.unwrap();
                let after = stream_ids(&mut conn, &channel);
                let actually: BTreeSet<_> = before.difference(&after).copied().collect();
                assert_eq!(deleted as usize, actually.len());
                let expected = expected_deletions(&before, &model, &listed, caps.ack_aware_streams());
                assert_eq!(actually, expected, "seed {seed} on {caps}: model {model:?}");
                total += deleted;
            }
        }
    }
    assert!(total > 0, "the interleavings exercised actual deletions");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn capabilities_on_a_cluster_ask_every_primary_and_the_sync_twin_agrees() {
    let cluster = dtrsfw_test_support::Cluster::start();
    let seeds: Vec<String> = cluster
        .urls()
        .iter()
        .map(|u| u.trim_start_matches("redis://").to_owned())
        .collect();
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(format!("redis+cluster://{}", seeds.join(","))))
        .expect("valid config");
    let caps = redis.server_capabilities().await.unwrap();
    let mut node = cluster.nodes()[0].connection();
    let info: String = redis::cmd("INFO").arg("server").query(&mut node).unwrap();
    assert!(
        info.contains(&format!("_version:{}\r", caps.version())),
        "{caps:?} vs {info}"
    );
    assert_eq!(caps.ack_aware_streams(), server_has_xackdel(&mut node), "{caps}");
    redis.reset_async_pool().await; // forget the answer: the sync twin detects on its own
    let sync = tokio::task::block_in_place(|| redis.server_capabilities_blocking()).unwrap();
    assert_eq!(sync, caps);
    eprintln!("cluster detected: {caps}");
}
