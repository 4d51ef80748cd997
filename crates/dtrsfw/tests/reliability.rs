//! Reliability under failure, against real servers: restart under load, a stalled
//! (SIGSTOPped) server, lost read replies, poison and malformed entries, the cache with its
//! server down, ACL refusals, and secrets in logs.
//! Each scenario prints the figures it measures (run with `--nocapture`); the guarantees
//! are asserted, never the speed. `RELIABILITY.md` at the repository root maps each
//! guarantee to its tests. The crash of consumer *processes* is in
//! `crates/dtredis/tests/reliability.rs`.

mod common;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::spawn_loop;
use dtrsfw::redis::caching::{CacheArgs, CachedFunction, DEFAULT_CACHE_TIMEOUT, get_cached};
use dtrsfw::redis::{
    ChannelOptions, Consumer, Delivery, EntryId, ErrorKind, Message, RedisConfig, RedisInstance, Sender, SenderOptions,
    StartFrom, is_redis_connected_async,
};
use dtrsfw_test_support::{Server, pending_count};
use redis::Commands;

/// Entry IDs handled, with the consumer index and when.
type HandledLog = Arc<Mutex<Vec<(String, usize, Instant)>>>;

fn instance(server: &Server) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).expect("valid config")
}

/// An async handler that records each entry it gets as handled by consumer `index`.
fn record_into(
    log: &HandledLog,
    index: usize,
) -> impl Fn(Delivery) -> std::future::Ready<Result<(), String>> + Send + Sync + 'static {
    let log = log.clone();
    move |d: Delivery| {
        log.lock().unwrap().push((d.id().to_string(), index, Instant::now()));
        std::future::ready(Ok(()))
    }
}

/// Waits until every ID of `ids` is in `log` (or panics after `limit`).
async fn wait_handled(log: &HandledLog, ids: &HashSet<String>, limit: Duration) {
    let start = Instant::now();
    loop {
        let missing = {
            let seen: HashSet<String> = log.lock().unwrap().iter().map(|(id, _, _)| id.clone()).collect();
            ids.iter().filter(|id| !seen.contains(*id)).count()
        };
        if missing == 0 {
            return;
        }
        assert!(
            start.elapsed() < limit,
            "{missing} acknowledged sends never reached a handler"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A task that sends a numbered message to `channel` every `pause` until `stop`; each
/// send is recorded as (start, latency, result).
type SendRecord = (Instant, Duration, Result<EntryId, dtrsfw::redis::Error>);

fn producer(
    sender: Sender,
    channel: &'static str,
    pause: Duration,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<SendRecord>> {
    tokio::spawn(async move {
        let mut records = Vec::new();
        while !stop.load(Ordering::SeqCst) {
            let message = Message::new("tick", &serde_json::json!({ "n": records.len() })).unwrap();
            let start = Instant::now();
            let result = sender.send_message(channel, &message).await;
            records.push((start, start.elapsed(), result));
            tokio::time::sleep(pause).await;
        }
        records
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_under_load_keeps_every_acknowledged_send_and_consumers_resume() {
    const CHANNEL: &str = "restart";
    let mut server = Server::builder().appendonly().start();
    // Default options everywhere: what a service gets without tuning. Each party has its
    // own instance (its own connections), as separate processes would.
    let sender = Sender::new(&instance(&server));
    sender.register_channel(CHANNEL).unwrap();
    let log: HandledLog = Arc::default();
    let mut consumers = Vec::new();
    for index in 0..2 {
        let c = Consumer::new(&instance(&server), "svc").unwrap();
        c.register_channel(CHANNEL, ChannelOptions::new().start_from(StartFrom::Beginning))
            .await
            .unwrap();
        c.register_async_handler(CHANNEL, record_into(&log, index)).unwrap();
        consumers.push(c);
    }
    let loops: Vec<_> = consumers
        .iter()
        .map(|c| spawn_loop(c, Duration::from_millis(20), Duration::from_millis(500)))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let producers: Vec<_> = (0..2)
        .map(|_| producer(sender.clone(), CHANNEL, Duration::from_millis(2), stop.clone()))
        .collect();

    tokio::time::sleep(Duration::from_millis(500)).await;
    // Down for several seconds (long enough for reconnection backoffs to grow), then back
    // on the same port with its AOF.
    let (server, down_for) = tokio::task::spawn_blocking(move || {
        let start = Instant::now();
        server.stop();
        std::thread::sleep(Duration::from_secs(3));
        server.restart();
        (server, start.elapsed())
    })
    .await
    .unwrap();
    let back = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);

    let mut acknowledged = HashSet::new();
    let mut failed = 0;
    for p in producers {
        for (_, _, result) in p.await.unwrap() {
            match result {
                Ok(id) => {
                    acknowledged.insert(id.to_string());
                }
                Err(e) => {
                    assert!(e.is_transient(), "only transient errors while down: {e}");
                    failed += 1;
                }
            }
        }
    }
    wait_handled(&log, &acknowledged, Duration::from_secs(20)).await;
    for c in &consumers {
        c.shutdown();
    }
    for l in loops {
        l.await.unwrap().expect("the consumer loops never gave up");
    }

    let handled = log.lock().unwrap().clone();
    let unique: HashSet<&String> = handled.iter().map(|(id, _, _)| id).collect();
    let resumed: Vec<Duration> = (0..2)
        .map(|index| {
            handled
                .iter()
                .filter(|(_, i, at)| *i == index && *at >= back)
                .map(|(_, _, at)| *at - back)
                .min()
                .expect("each consumer handled entries after the restart")
        })
        .collect();
    eprintln!(
        "restart: down {down_for:?}; sends ok {}, failed {failed}; handled {} (unique {}, duplicates {}); \
         consumers resumed {resumed:?} after the server's return",
        acknowledged.len(),
        handled.len(),
        unique.len(),
        handled.len() - unique.len()
    );
    assert!(
        resumed.iter().all(|d| *d < Duration::from_secs(2)),
        "consumers resume within 2 s of the server's return: {resumed:?}"
    );
    let mut conn = server.connection();
    assert_eq!(pending_count(&mut conn, CHANNEL, "restart:svc:cg"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_3_s_stall_bounds_every_call_by_its_timeout_and_loses_nothing() {
    const CHANNEL: &str = "stall";
    const TIMEOUT: Duration = Duration::from_millis(500);
    // Generous slack for a loaded 2-core CI machine: the bound is what matters.
    const SLACK: Duration = Duration::from_millis(1000);
    let server = Arc::new(Server::start());
    let config = RedisConfig::new()
        .set_redis_url(server.url())
        .set_redis_socket_timeout(TIMEOUT)
        .set_redis_socket_connect_timeout(TIMEOUT);
    let sender_options = SenderOptions::new()
        .set_max_attempts(2)
        .set_initial_backoff(Duration::from_millis(50))
        .set_max_backoff(Duration::from_millis(50));
    // Documented bound of a send: attempts × socket timeout plus the backoffs.
    let send_bound = TIMEOUT * 2 + Duration::from_millis(50);
    let sender = Sender::with_options(&RedisInstance::new(config.clone()).unwrap(), sender_options);
    sender.register_channel(CHANNEL).unwrap();
    let redis = RedisInstance::new(config.clone()).unwrap();
    let consumer = Consumer::new(&redis, "svc").unwrap();
    consumer
        .register_channel(
            CHANNEL,
            ChannelOptions::new()
                .start_from(StartFrom::Beginning)
                .reclaim_idle(Duration::from_secs(2)),
        )
        .await
        .unwrap();
    let log: HandledLog = Arc::default();
    consumer.register_async_handler(CHANNEL, record_into(&log, 0)).unwrap();
    let consuming = spawn_loop(&consumer, Duration::from_millis(20), Duration::from_millis(200));
    let stop = Arc::new(AtomicBool::new(false));
    let sending = producer(sender.clone(), CHANNEL, Duration::from_millis(5), stop.clone());
    // Consumer-side calls (stats, the health check) and a cached function with the
    // default cache options, timed.
    let cached = CachedFunction::builder("stall-cache", ["n"]).build().unwrap();
    let probing = {
        let (consumer, redis, stop) = (consumer.clone(), redis.clone(), stop.clone());
        tokio::spawn(async move {
            let (mut stats, mut health, mut cache) = (Vec::new(), Vec::new(), Vec::new());
            let mut n = 0u64;
            while !stop.load(Ordering::SeqCst) {
                n += 1;
                let start = Instant::now();
                let value = cached
                    .call_async(&redis, &CacheArgs::new().arg("n", &(n % 10)), async move { n % 10 })
                    .await;
                cache.push((start, start.elapsed()));
                assert_eq!(value, n % 10, "the cache returns the function's value");
                let start = Instant::now();
                let _ = consumer.get_stats().await;
                stats.push((start, start.elapsed()));
                let start = Instant::now();
                let _ = is_redis_connected_async(&redis).await;
                health.push((start, start.elapsed()));
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (stats, health, cache)
        })
    };

    tokio::time::sleep(Duration::from_millis(500)).await;
    let paused_at = Instant::now();
    server.pause();
    tokio::time::sleep(Duration::from_secs(3)).await;
    server.resume();
    let resumed_at = Instant::now();
    tokio::time::sleep(Duration::from_secs(1)).await;
    stop.store(true, Ordering::SeqCst);
    let sends = sending.await.unwrap();
    let (stats, health, cache) = probing.await.unwrap();

    // Calls that overlapped the stall.
    let during = |start: Instant, took: Duration| start + took >= paused_at && start <= resumed_at;
    let worst = |calls: &[(Instant, Duration)]| {
        calls
            .iter()
            .filter(|(s, t)| during(*s, *t))
            .map(|(_, t)| *t)
            .max()
            .unwrap_or_default()
    };
    let send_calls: Vec<(Instant, Duration)> = sends.iter().map(|(s, t, _)| (*s, *t)).collect();
    let (worst_send, worst_stats, worst_health, worst_cache) =
        (worst(&send_calls), worst(&stats), worst(&health), worst(&cache));
    let acknowledged: HashSet<String> = sends
        .iter()
        .filter_map(|(_, _, r)| r.as_ref().ok().map(ToString::to_string))
        .collect();
    let failed = sends.iter().filter(|(_, _, r)| r.is_err()).count();
    let failed_during = sends.iter().filter(|(s, t, r)| r.is_err() && during(*s, *t)).count();
    let after: Vec<_> = sends.iter().filter(|(s, _, _)| *s > resumed_at).collect();
    wait_handled(&log, &acknowledged, Duration::from_secs(20)).await;
    consumer.shutdown();
    consuming.await.unwrap().expect("the consumer loop never gave up");
    let handled = log.lock().unwrap().len();
    eprintln!(
        "stall: 3 s SIGSTOP; sends ok {}, failed {failed} ({failed_during} during the stall); handled {handled}; \
         worst latency during the stall: send {worst_send:?} (bound {send_bound:?}), get_stats {worst_stats:?}, \
         health {worst_health:?} (timeouts {TIMEOUT:?}), cached call {worst_cache:?} (cache timeout \
         {DEFAULT_CACHE_TIMEOUT:?})",
        acknowledged.len()
    );
    assert!(worst_send <= send_bound + SLACK, "a send blocked {worst_send:?}");
    assert!(worst_stats <= TIMEOUT * 2 + SLACK, "get_stats blocked {worst_stats:?}");
    assert!(
        worst_health <= TIMEOUT * 2 + SLACK,
        "the health check blocked {worst_health:?}"
    );
    assert!(
        worst_cache <= DEFAULT_CACHE_TIMEOUT + SLACK,
        "a cached call blocked {worst_cache:?}"
    );
    assert!(failed_during > 0, "the stall was noticed by the sender");
    assert!(
        after.iter().filter(|(_, _, r)| r.is_ok()).count() > 0,
        "sends continue after SIGCONT"
    );
}

/// The raw fields of an entry to write.
type Fields = Vec<(&'static str, Vec<u8>)>;

/// A dead-letter entry as `XRANGE` returns it, with raw values.
type RawEntry = (String, Vec<(String, Vec<u8>)>);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn poison_and_malformed_entries_are_dead_lettered_while_valid_ones_keep_flowing() {
    const CHANNEL: &str = "poison";
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let consumer = Consumer::new(&redis, "svc").unwrap();
    consumer
        .register_channel(
            CHANNEL,
            ChannelOptions::new()
                .start_from(StartFrom::Beginning)
                .reclaim_idle(Duration::from_millis(300))
                .max_deliveries(3),
        )
        .await
        .unwrap();
    let handled: Arc<Mutex<Vec<(String, usize, u128)>>> = Arc::default();
    {
        let handled = handled.clone();
        consumer
            .register_handler(CHANNEL, move |name, payload| {
                let now_ms = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .unwrap()
                    .as_millis();
                let size = payload.as_str().map_or(0, str::len);
                handled.lock().unwrap().push((name.to_owned(), size, now_ms));
                if name == "always.fails" {
                    Err("handler refuses always.fails".to_owned())
                } else {
                    Ok(())
                }
            })
            .unwrap();
    }
    let big_text = "x".repeat(1 << 20);
    let big_json = serde_json::to_string(&big_text).unwrap();
    let mut not_json_big = big_text.clone().into_bytes();
    not_json_big.insert(0, b'{');
    let poison: Vec<(&str, Fields)> = vec![
        ("no name", vec![("body", b"{}".to_vec())]),
        ("no body", vec![("name", b"n".to_vec())]),
        (
            "body not JSON",
            vec![("name", b"n".to_vec()), ("body", b"{not json".to_vec())],
        ),
        (
            "body not UTF-8",
            vec![("name", b"n".to_vec()), ("body", vec![b'"', 0xff, 0xfe, b'"'])],
        ),
        ("empty name", vec![("name", Vec::new()), ("body", b"{}".to_vec())]),
        (
            "1 MiB body, not JSON",
            vec![("name", b"n".to_vec()), ("body", not_json_big.clone())],
        ),
    ];
    let mut expected: HashMap<String, (&str, &str)> = HashMap::new();
    for (what, fields) in &poison {
        let id: String = conn.xadd(CHANNEL, "*", fields).unwrap();
        expected.insert(id, (what, "malformed"));
    }
    let failing: String = conn
        .xadd(CHANNEL, "*", &[("name", "always.fails"), ("body", "{\"n\": 1}")])
        .unwrap();
    expected.insert(failing.clone(), ("always failing handler", "max_deliveries"));
    // A valid 1 MiB body is not poison: it is delivered whole.
    let _: String = conn
        .xadd(CHANNEL, "*", &[("name", "big"), ("body", big_json.as_str())])
        .unwrap();
    let started = Instant::now();
    let consuming = spawn_loop(&consumer, Duration::from_millis(20), Duration::from_millis(100));
    // Valid messages published while the poison is being retried.
    const VALID: usize = 500;
    for i in 0..VALID {
        let m = Message::new("valid", &serde_json::json!({ "i": i })).unwrap();
        let mut cmd = redis::cmd("XADD");
        cmd.arg(CHANNEL).arg("*");
        for (k, v) in m.get_json_encoded() {
            cmd.arg(k).arg(v);
        }
        let _: String = cmd.query(&mut conn).unwrap();
    }
    let dlq_key = format!("{CHANNEL}:dlq");
    loop {
        let len: usize = conn.xlen(&dlq_key).unwrap();
        let valid = handled.lock().unwrap().iter().filter(|(n, _, _)| n == "valid").count();
        if len >= expected.len() && valid >= VALID {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(20),
            "dead letters {len}/{}, valid handled {valid}/{VALID}",
            expected.len()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    consumer.shutdown();
    consuming.await.unwrap().unwrap();

    let dlq: Vec<RawEntry> = redis::cmd("XRANGE")
        .arg(&dlq_key)
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    assert_eq!(dlq.len(), expected.len(), "each poison entry once, nothing else");
    let text =
        |f: &HashMap<String, Vec<u8>>, k: &str| String::from_utf8_lossy(f.get(k).map_or(&[][..], |v| v)).into_owned();
    let mut failing_dead_lettered_ms = 0;
    for (_, fields) in &dlq {
        let f: HashMap<String, Vec<u8>> = fields.iter().cloned().collect();
        let original = text(&f, "id");
        let (what, reason) = expected[&original];
        assert_eq!(text(&f, "reason"), reason, "{what}: {}", text(&f, "error"));
        assert_eq!(text(&f, "service"), "svc");
        assert!(!text(&f, "error").is_empty(), "{what}: the error is stated");
        if what == "1 MiB body, not JSON" {
            assert_eq!(f["body"], not_json_big, "the body is kept verbatim");
        }
        if what == "empty name" {
            assert!(text(&f, "error").contains("empty"), "{}", text(&f, "error"));
        }
        if original == failing {
            assert_eq!(text(&f, "deliveries"), "3");
            assert!(text(&f, "error").contains("handler refuses always.fails"));
            failing_dead_lettered_ms = text(&f, "time").parse::<u128>().unwrap();
        }
    }
    let handled = handled.lock().unwrap().clone();
    let valid_done_ms = handled
        .iter()
        .filter(|(n, _, _)| n == "valid")
        .map(|(_, _, at)| *at)
        .max()
        .unwrap();
    let big = handled
        .iter()
        .find(|(n, _, _)| n == "big")
        .expect("the 1 MiB message was handled");
    assert_eq!(big.1, 1 << 20, "delivered whole");
    let attempts = handled.iter().filter(|(n, _, _)| n == "always.fails").count();
    eprintln!(
        "poison: {} dead-lettered ({} malformed, 1 after {attempts} deliveries); {VALID} valid handled, the last \
         {} ms before the failing one was given up",
        dlq.len(),
        poison.len(),
        failing_dead_lettered_ms.saturating_sub(valid_done_ms)
    );
    assert_eq!(attempts, 3, "exactly max_deliveries runs of the failing entry");
    assert!(
        valid_done_ms <= failing_dead_lettered_ms,
        "valid messages flowed while the failing one was retried"
    );
    assert_eq!(pending_count(&mut conn, CHANNEL, "poison:svc:cg"), 0);
}

fn zlib(data: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(data).unwrap();
    z.finish().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_keeps_answering_while_the_server_is_down_and_recloses_when_it_returns() {
    let mut server = Server::start();
    let redis = instance(&server);
    // Default cache options: a 250 ms bound per command, the circuit opening after 3
    // failures and probing again after 1 s.
    let cached = CachedFunction::builder("price", ["id"]).build().unwrap();
    let price = |id: u64| async move { id * 10 };
    let args = |id: u64| CacheArgs::new().arg("id", &id);
    assert_eq!(cached.call_async(&redis, &args(1), price(1)).await, 10);
    assert_eq!(cached.call_async(&redis, &args(1), price(1)).await, 10);
    assert_eq!(cached.stats().hits, 1);

    server.stop();
    let mut worst_down = Duration::ZERO;
    let down_start = Instant::now();
    let mut calls = 0u64;
    while down_start.elapsed() < Duration::from_millis(1500) {
        let id = calls % 20;
        let start = Instant::now();
        assert_eq!(cached.call_async(&redis, &args(id), price(id)).await, id * 10);
        worst_down = worst_down.max(start.elapsed());
        calls += 1;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // The blocking API too, on its own connections.
    let (sync_cached, sync_redis) = (cached.clone(), redis.clone());
    let worst_down_sync = tokio::task::spawn_blocking(move || {
        (0..50u64)
            .map(|id| {
                let start = Instant::now();
                assert_eq!(
                    sync_cached.call(&sync_redis, &CacheArgs::new().arg("id", &id), || id * 10),
                    id * 10
                );
                start.elapsed()
            })
            .max()
            .unwrap()
    })
    .await
    .unwrap();
    let down_stats = cached.stats();

    let mut server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    let back = Instant::now();
    let hits_before = cached.stats().hits;
    while cached.stats().hits == hits_before {
        assert!(
            back.elapsed() < Duration::from_secs(10),
            "the cache was not used again after the server returned: {:?}",
            cached.stats()
        );
        assert_eq!(cached.call_async(&redis, &args(7), price(7)).await, 70);
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let reclosed = back.elapsed();

    // Foreign bytes under a key: recomputed, and overwritten with the right value.
    let mut conn = server.connection();
    let key = cached.key(&args(2));
    let foreign: [(&str, Vec<u8>); 4] = [
        ("raw bytes", vec![0xde, 0xad, 0xbe, 0xef]),
        ("zlib of text that is not JSON", zlib(b"<html>")),
        ("zlib of JSON of another type", zlib(b"{\"price\": \"twenty\"}")),
        ("empty", Vec::new()),
    ];
    for (what, bytes) in &foreign {
        let _: () = conn.set(&key, bytes.as_slice()).unwrap();
        assert_eq!(cached.call_async(&redis, &args(2), price(2)).await, 20, "{what}");
        assert_eq!(
            get_cached::<u64>(&redis, &key).unwrap(),
            Some(20),
            "{what}: overwritten"
        );
    }
    let _: () = conn.del(&key).unwrap();
    let _: () = conn.rpush(&key, "a list").unwrap();
    assert_eq!(
        cached.call_async(&redis, &args(2), price(2)).await,
        20,
        "a foreign type"
    );
    drop(conn);
    server.stop();
    eprintln!(
        "cache: {calls} async + 50 sync calls while down, all answered; worst call {worst_down:?} async, \
         {worst_down_sync:?} sync (cache timeout {DEFAULT_CACHE_TIMEOUT:?}); {} errors, {} short-circuited; \
         cache used again {reclosed:?} after the server returned",
        down_stats.errors, down_stats.short_circuited
    );
    const SLACK: Duration = Duration::from_millis(1000);
    assert!(worst_down <= DEFAULT_CACHE_TIMEOUT + SLACK, "{worst_down:?}");
    assert!(worst_down_sync <= DEFAULT_CACHE_TIMEOUT + SLACK, "{worst_down_sync:?}");
    assert!(down_stats.short_circuited > 0, "the circuit opened: {down_stats:?}");
}

#[test]
fn a_cached_call_on_a_stalled_server_gives_up_on_the_cache_after_one_timeout() {
    let server = Server::start();
    let redis = instance(&server);
    let timeout = Duration::from_millis(400);
    let cached = CachedFunction::builder("stalled", ["x"])
        .timeout(timeout)
        .build()
        .unwrap();
    let args = |x: u64| CacheArgs::new().arg("x", &x);
    assert_eq!(cached.call(&redis, &args(0), || 0), 0);
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    assert_eq!(rt.block_on(cached.call_async(&redis, &args(0), async { 0 })), 0);
    server.pause();
    let start = Instant::now();
    assert_eq!(cached.call(&redis, &args(1), || 1), 1);
    let took_sync = start.elapsed();
    let errors_sync = cached.stats().errors;
    let start = Instant::now();
    assert_eq!(rt.block_on(cached.call_async(&redis, &args(2), async { 2 })), 2);
    let took_async = start.elapsed();
    let errors_async = cached.stats().errors - errors_sync;
    server.resume();
    eprintln!("stalled cache: one call took {took_sync:?} sync, {took_async:?} async (cache timeout {timeout:?})");
    // The read timed out: the call gave up on the cache, it did not also wait for a write.
    assert_eq!((errors_sync, errors_async), (1, 1), "{:?}", cached.stats());
    assert!(took_sync < timeout * 2 && took_async < timeout * 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_acl_user_limited_to_orders_gets_a_clear_permission_error_elsewhere() {
    let server = Server::builder()
        .acl_user("orders-app", "orders-pw", "~orders* +@all")
        .start();
    let redis = RedisInstance::new(
        RedisConfig::new()
            .set_redis_host("127.0.0.1")
            .set_redis_port(server.port().into())
            .set_redis_username("orders-app")
            .set_redis_password("orders-pw"),
    )
    .unwrap();
    let sender = Sender::new(&redis);
    sender.register_channel("orders").unwrap();
    sender.register_channel("payments").unwrap();
    let message = Message::new("order.created", &serde_json::json!({ "id": 1 })).unwrap();
    sender.send_message("orders", &message).await.unwrap();
    sender.send_message_blocking("orders", &message).unwrap();

    let start = Instant::now();
    let err = sender.send_message("payments", &message).await.unwrap_err();
    let took = start.elapsed();
    let refused_send = err.to_string();
    assert_eq!(err.kind(), ErrorKind::Permission, "{err}");
    assert!(err.is_permission() && !err.is_transient(), "not retried: {err}");
    assert!(
        err.to_string().to_lowercase().contains("noperm"),
        "the server's reason is kept: {err}"
    );
    let err = sender.send_message_blocking("payments", &message).unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permission, "{err}");
    let err = sender
        .send_messages("payments", std::slice::from_ref(&message))
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permission, "{err}");
    // A consumer of a channel outside the user's keys is refused at registration.
    let consumer = Consumer::new(&redis, "billing").unwrap();
    let err = consumer
        .register_channel("payments", ChannelOptions::new())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Permission, "{err}");
    consumer
        .register_channel("orders", ChannelOptions::new())
        .await
        .unwrap();
    eprintln!("acl: refused send answered in {took:?}: {refused_send}");
    assert!(took < Duration::from_secs(5), "answered, not hung: {took:?}");
    assert!(!format!("{err} {err:?}").contains("orders-pw"));
}

#[test]
fn secrets_never_reach_logs_from_sender_consumer_and_cache_operations() {
    const SECRET: &str = "Rl5-stream-secret-Vw8";
    const USER: &str = "stream-user-Jt6";
    let server = Server::builder()
        .acl_user(USER, SECRET, "~events* +@all -xinfo")
        .start();
    // A current-thread runtime, so every event is emitted on this thread, under the
    // capturing subscriber.
    let text = dtrsfw_test_support::capture_logs(|| {
        let redis = RedisInstance::new(
            RedisConfig::new()
                .set_redis_host("127.0.0.1")
                .set_redis_port(server.port().into())
                .set_redis_username(USER)
                .set_redis_password(SECRET)
                .set_redis_socket_timeout(Duration::from_millis(300)),
        )
        .unwrap();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let sender = Sender::with_options(
                &redis,
                SenderOptions::new().set_initial_backoff(Duration::from_millis(10)),
            );
            sender.register_channel("events").unwrap();
            sender.register_channel("forbidden").unwrap();
            let ok = Message::new("evt", &serde_json::json!({ "n": 1 })).unwrap();
            let fail = Message::new("fail", &serde_json::json!({ "n": 2 })).unwrap();
            sender.send_messages("events", &[ok.clone(), fail]).await.unwrap();
            assert!(sender.send_message("forbidden", &ok).await.is_err());
            let consumer = Consumer::new(&redis, "svc").unwrap();
            consumer
                .register_channel(
                    "events",
                    ChannelOptions::new()
                        .start_from(StartFrom::Beginning)
                        .read_ahead(10)
                        .max_deliveries(1),
                )
                .await
                .unwrap();
            consumer
                .register_handler("events", |name, _| if name == "fail" { Err("refused") } else { Ok(()) })
                .unwrap();
            // One batch: a success, a failure dead-lettered (warnings), stats refused by
            // the ACL (no XINFO), a stall (timeouts and retry warnings).
            consumer.consume_all_channels(Duration::from_millis(100)).await.unwrap();
            let _ = consumer.get_stats().await;
            // A cached call refused by the ACL (the key is outside ~events*), then a hit.
            let cached = CachedFunction::builder("events-cache", ["n"]).build().unwrap();
            assert_eq!(
                cached
                    .call_async(&redis, &CacheArgs::new().arg("n", &1), async { 1 })
                    .await,
                1
            );
            server.pause();
            let _ = sender.send_message("events", &ok).await;
            let _ = cached
                .call_async(&redis, &CacheArgs::new().arg("n", &2), async { 2 })
                .await;
            let _ = consumer.consume_all_channels(Duration::from_millis(100)).await;
            server.resume();
            let _ = consumer.clean_up_consumed_messages().await;
        });
    });
    assert!(
        text.contains("dead-letter") && text.contains("WARN"),
        "the scenario should have logged warnings:\n{text}"
    );
    assert!(!text.contains(SECRET) && !text.contains(USER), "leaked:\n{text}");
}

/// Delivers a new entry to the consumer named `instance` behind its back, as when the
/// server executed its `XREADGROUP` but the reply was lost: `XADD` and the read in one
/// transaction, so that a blocked read of the real instance is not served first, then
/// `XCLAIM` to the instance.
fn deliver_behind_its_back(conn: &mut redis::Connection, channel: &str, group: &str, instance: &str) -> String {
    let (id, _): (String, redis::Value) = redis::pipe()
        .atomic()
        .cmd("XADD")
        .arg(channel)
        .arg("*")
        .arg("name")
        .arg("lost")
        .arg("body")
        .arg("{}")
        .cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("ghost")
        .arg("COUNT")
        .arg(1)
        .arg("STREAMS")
        .arg(channel)
        .arg(">")
        .query(conn)
        .unwrap();
    let _: redis::Value = redis::cmd("XCLAIM")
        .arg(channel)
        .arg(group)
        .arg(instance)
        .arg(0)
        .arg(&id)
        .arg("JUSTID")
        .query(conn)
        .unwrap();
    id
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_whose_read_reply_was_lost_is_handled_without_waiting_for_the_reclaim_time() {
    const CHANNEL: &str = "lost";
    let server = Server::start();
    let mut conn = server.connection();
    let consumer = Consumer::new(&instance(&server), "svc").unwrap();
    // The default reclaim idle time (60 s): far beyond this test's patience.
    consumer
        .register_channel(CHANNEL, ChannelOptions::new().start_from(StartFrom::Beginning))
        .await
        .unwrap();
    let log: HandledLog = Arc::default();
    consumer.register_async_handler(CHANNEL, record_into(&log, 0)).unwrap();
    let group = consumer.group_name(CHANNEL);
    // Case 1: delivered to this instance before its loop starts (e.g. read by a previous
    // run of the loop, whose reply never arrived).
    let before_start = deliver_behind_its_back(&mut conn, CHANNEL, &group, consumer.consumer_name());
    let consuming = spawn_loop(&consumer, Duration::from_millis(20), Duration::from_millis(200));
    let started = Instant::now();
    wait_handled(&log, &HashSet::from([before_start]), Duration::from_secs(10)).await;
    let first = started.elapsed();
    // Case 2: delivered while the loop runs, then the connection breaks (the reply of a
    // read lost with it).
    let while_running = deliver_behind_its_back(&mut conn, CHANNEL, &group, consumer.consumer_name());
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("normal")
        .arg("SKIPME")
        .arg("yes")
        .query(&mut conn)
        .unwrap();
    let broken = Instant::now();
    wait_handled(&log, &HashSet::from([while_running]), Duration::from_secs(10)).await;
    let second = broken.elapsed();
    consumer.shutdown();
    consuming.await.unwrap().unwrap();
    eprintln!("lost replies: handled {first:?} after the loop started, {second:?} after the connection broke");
    assert_eq!(pending_count(&mut conn, CHANNEL, &group), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_handled_during_a_blocking_read_is_acknowledged_before_the_read_ends() {
    // What a crash can repeat is what is handled but not yet acknowledged: that window
    // must not stretch to the block time of the read that runs beside the handlers.
    const CHANNEL: &str = "ack-window";
    const BLOCK: Duration = Duration::from_secs(5);
    let server = Server::start();
    let mut conn = server.connection();
    let consumer = Consumer::new(&instance(&server), "svc").unwrap();
    consumer
        .register_channel(
            CHANNEL,
            ChannelOptions::new().start_from(StartFrom::Beginning).parallelism(2),
        )
        .await
        .unwrap();
    let log: HandledLog = Arc::default();
    consumer.register_async_handler(CHANNEL, record_into(&log, 0)).unwrap();
    let consuming = spawn_loop(&consumer, Duration::from_millis(20), BLOCK);
    tokio::time::sleep(Duration::from_millis(300)).await;
    let id: String = conn.xadd(CHANNEL, "*", &[("name", "n"), ("body", "{}")]).unwrap();
    wait_handled(&log, &HashSet::from([id]), Duration::from_secs(10)).await;
    let handled = Instant::now();
    while pending_count(&mut conn, CHANNEL, &consumer.group_name(CHANNEL)) > 0 {
        assert!(
            handled.elapsed() < BLOCK / 2,
            "the acknowledgement waited for the blocking read"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    eprintln!("ack window: acknowledged {:?} after the handler ran", handled.elapsed());
    consumer.shutdown();
    consuming.await.unwrap().unwrap();
}

#[test]
fn sent_ids_are_unique_under_concurrent_senders() {
    // Guards the premise of every count above: an ID identifies one send.
    let server = Server::start();
    let sender = Sender::new(&instance(&server));
    sender.register_channel("ids").unwrap();
    let ids: Vec<EntryId> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let sender = sender.clone();
                s.spawn(move || {
                    (0..100)
                        .map(|i| {
                            sender
                                .send_message_blocking("ids", &Message::new("t", &(t, i)).unwrap())
                                .unwrap()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().unwrap()).collect()
    });
    let unique: BTreeSet<EntryId> = ids.iter().copied().collect();
    assert_eq!(unique.len(), 400);
}
