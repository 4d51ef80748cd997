//! Network faults, through the fault-injecting proxy of `dtrsfw-test-support`: random
//! faults under load, a reset in the middle of a batch, fragmented and slow replies, a
//! black hole, an out-of-memory server, a demoted primary, and a slow handler whose
//! connection drops. Each scenario prints its figures (run with `--nocapture`) and asserts
//! the guarantees, never the speed. `RELIABILITY.md` ("Network faults") maps each
//! guarantee to its test.
//!
//! The random-fault run lasts `$DTRSFW_FAULT_SECONDS` (10 by default) per seed, for
//! `$DTRSFW_FAULT_SEEDS` seeds (1 by default); `$DTRSFW_FAULT_SEED` replays one printed
//! seed.

mod common;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::spawn_loop;
use dtrsfw::redis::{
    ChannelOptions, Consumer, Delivery, Message, RedisConfig, RedisInstance, Sender, SenderOptions, StartFrom,
};
use dtrsfw_test_support::proxy::{Proxy, chaos};
use dtrsfw_test_support::{Server, pending_count};

/// Socket and connect timeout of every instance that goes through the proxy.
const TIMEOUT: Duration = Duration::from_millis(500);
/// Slack for a loaded 2-core machine: the bounds are what matter.
const SLACK: Duration = Duration::from_millis(1500);

fn config(url: String) -> RedisConfig {
    RedisConfig::new()
        .set_redis_url(url)
        .set_redis_socket_timeout(TIMEOUT)
        .set_redis_socket_connect_timeout(TIMEOUT)
}

fn instance(url: String) -> RedisInstance {
    RedisInstance::new(config(url)).expect("valid config")
}

fn sender_options() -> SenderOptions {
    SenderOptions::new()
        .set_max_attempts(4)
        .set_initial_backoff(Duration::from_millis(20))
        .set_max_backoff(Duration::from_millis(200))
}

/// The documented bound of a send (one chunk): each of its 4 attempts waits at most the
/// connect timeout plus the socket timeout, plus the backoffs between them (20, 40, 80 ms).
fn send_bound() -> Duration {
    TIMEOUT * 2 * 4 + Duration::from_millis(20 + 40 + 80)
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(default)
}

/// What the handlers saw: (entry ID, body key, consumer index).
type Handled = Arc<Mutex<Vec<(String, String, usize)>>>;

fn recorder(
    log: &Handled,
    index: usize,
) -> impl Fn(Delivery) -> std::future::Ready<Result<(), String>> + Send + Sync + 'static {
    let log = log.clone();
    move |d: Delivery| {
        let key = d.payload()["key"].as_str().unwrap_or_default().to_owned();
        log.lock().unwrap().push((d.id().to_string(), key, index));
        std::future::ready(Ok(()))
    }
}

/// One send of a producer: how long it took, how many messages, and the IDs (or the
/// error).
struct SendRecord {
    took: Duration,
    messages: usize,
    result: Result<Vec<String>, dtrsfw::redis::Error>,
}

fn message(producer: usize, n: u64) -> Message {
    Message::new("fault", &serde_json::json!({ "key": format!("p{producer}-{n}") })).unwrap()
}

/// The messages of a producer's next send, after `sends` sends and `n` messages: every
/// other send is a single message, the rest batches of 2 to 8.
fn next_send(producer: usize, sends: usize, n: &mut u64) -> Vec<Message> {
    let size = if sends.is_multiple_of(2) { 1 } else { 1 + sends % 8 };
    (0..size)
        .map(|_| {
            *n += 1;
            message(producer, *n)
        })
        .collect()
}

impl SendRecord {
    fn new(start: Instant, messages: usize, result: dtrsfw::redis::Result<Vec<dtrsfw::redis::EntryId>>) -> Self {
        SendRecord {
            took: start.elapsed(),
            messages,
            result: result.map(|ids| ids.iter().map(ToString::to_string).collect()),
        }
    }
}

/// The async producer: alternates single sends and batches until `stop`.
fn async_producer(
    sender: Sender,
    channel: &'static str,
    stop: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<Vec<SendRecord>> {
    tokio::spawn(async move {
        let (mut records, mut n) = (Vec::new(), 0u64);
        while !stop.load(Ordering::SeqCst) {
            let batch = next_send(0, records.len(), &mut n);
            let start = Instant::now();
            let result = match &batch[..] {
                [one] => sender.send_message(channel, one).await.map(|id| vec![id]),
                _ => sender.send_messages(channel, &batch).await,
            };
            records.push(SendRecord::new(start, batch.len(), result));
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        records
    })
}

/// The blocking twin of [`async_producer`], on its own thread.
fn blocking_producer(
    sender: Sender,
    channel: &'static str,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<Vec<SendRecord>> {
    std::thread::spawn(move || {
        let (mut records, mut n) = (Vec::new(), 0u64);
        while !stop.load(Ordering::SeqCst) {
            let batch = next_send(1, records.len(), &mut n);
            let start = Instant::now();
            let result = match &batch[..] {
                [one] => sender.send_message_blocking(channel, one).map(|id| vec![id]),
                _ => sender.send_messages_blocking(channel, &batch),
            };
            records.push(SendRecord::new(start, batch.len(), result));
            std::thread::sleep(Duration::from_millis(2));
        }
        records
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn random_faults_under_load_lose_no_acknowledged_send() {
    let seconds = env_number("DTRSFW_FAULT_SECONDS", 10);
    let seeds: Vec<u64> = match std::env::var("DTRSFW_FAULT_SEED") {
        Ok(_) => vec![chaos::seed_from_env(1)],
        Err(_) => (1..=env_number("DTRSFW_FAULT_SEEDS", 1)).collect(),
    };
    for seed in seeds {
        random_faults_run(seed, Duration::from_secs(seconds)).await;
    }
}

async fn random_faults_run(seed: u64, run_for: Duration) {
    const CHANNEL: &str = "chaos";
    const RECLAIM: Duration = Duration::from_secs(2);
    let server = Server::start();
    let proxy = Proxy::start(server.port());
    let options = sender_options();
    // Each party has its own instance (its own connections), as separate processes would.
    let async_sender = Sender::with_options(&instance(proxy.url()), options.clone());
    let blocking_sender = Sender::with_options(&instance(proxy.url()), options.clone());
    async_sender.register_channel(CHANNEL).unwrap();
    blocking_sender.register_channel(CHANNEL).unwrap();
    let log: Handled = Arc::default();
    let mut consumers = Vec::new();
    for index in 0..3 {
        let c = Consumer::new(&instance(proxy.url()), "svc").unwrap();
        c.register_channel(
            CHANNEL,
            ChannelOptions::new()
                .start_from(StartFrom::Beginning)
                .reclaim_idle(RECLAIM)
                .max_deliveries(1000),
        )
        .await
        .unwrap();
        c.register_async_handler(CHANNEL, recorder(&log, index)).unwrap();
        consumers.push(c);
    }
    let loops: Vec<_> = consumers
        .iter()
        .map(|c| spawn_loop(c, Duration::from_millis(10), Duration::from_millis(200)))
        .collect();
    let stop = Arc::new(AtomicBool::new(false));
    let producing = async_producer(async_sender, CHANNEL, stop.clone());
    let blocking = blocking_producer(blocking_sender, CHANNEL, stop.clone());

    // One fault every 7 ms by default: about 1 400 in 10 s.
    let every = Duration::from_millis(env_number("DTRSFW_FAULT_EVERY_MS", 7));
    proxy.start_chaos(seed, every);
    tokio::time::sleep(run_for).await;
    stop.store(true, Ordering::SeqCst);
    let mut records = producing.await.unwrap();
    records.extend(
        tokio::task::spawn_blocking(move || blocking.join().unwrap())
            .await
            .unwrap(),
    );
    let faults = proxy.stop_chaos();

    let bound = send_bound();
    let worst = records.iter().map(|r| r.took).max().unwrap_or_default();
    let acknowledged: HashSet<String> = records
        .iter()
        .filter_map(|r| r.result.as_ref().ok())
        .flatten()
        .cloned()
        .collect();
    let failed: Vec<&dtrsfw::redis::Error> = records.iter().filter_map(|r| r.result.as_ref().err()).collect();
    let failed_messages: usize = records.iter().filter(|r| r.result.is_err()).map(|r| r.messages).sum();
    for e in failed.iter().take(3) {
        eprintln!("  a failed send: {e}");
    }
    for e in &failed {
        assert!(e.is_transient(), "only transient errors from network faults: {e}");
    }

    // Everything acknowledged reaches a handler, and nothing stays pending.
    let group = format!("{CHANNEL}:svc:cg");
    let mut conn = server.connection();
    let waited = Instant::now();
    let limit = RECLAIM * 5 + Duration::from_secs(20);
    loop {
        let seen: HashSet<String> = log.lock().unwrap().iter().map(|(id, _, _)| id.clone()).collect();
        let missing = acknowledged.iter().filter(|id| !seen.contains(*id)).count();
        let left = pending_count(&mut conn, CHANNEL, &group);
        if missing == 0 && left == 0 {
            break;
        }
        assert!(
            waited.elapsed() < limit,
            "seed {seed}: {missing} acknowledged sends never handled, {left} entries still pending"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let drained_in = waited.elapsed();
    for c in &consumers {
        c.shutdown();
    }
    for l in loops {
        tokio::time::timeout(Duration::from_secs(35), l)
            .await
            .expect("a consumer loop returns within its shutdown timeout")
            .unwrap()
            .expect("the consumer loops never gave up");
    }

    let handled = log.lock().unwrap().clone();
    let unique_ids: HashSet<&String> = handled.iter().map(|(id, _, _)| id).collect();
    let redeliveries = handled.len() - unique_ids.len();
    // A send retried after an ambiguous failure writes its message again, under a new ID.
    let stream_len: u64 = redis::cmd("XLEN").arg(CHANNEL).query(&mut conn).unwrap();
    let keys: HashSet<&String> = handled.iter().map(|(_, key, _)| key).collect();
    let written_twice = unique_ids.len() - keys.len();
    let per_consumer: HashMap<usize, usize> = handled.iter().fold(HashMap::new(), |mut m, (_, _, i)| {
        *m.entry(*i).or_default() += 1;
        m
    });
    eprintln!(
        "random faults, seed {seed}, {run_for:?}: {faults}; {} connections, {} reset by the proxy; \
         sends {} ({} acknowledged entries, {} failed calls covering {failed_messages} messages), worst send \
         {worst:?} (bound {bound:?}); stream {stream_len} entries; handled {} (unique entries {}, redelivered \
         {redeliveries}, messages written twice by a retry {written_twice}); per consumer {per_consumer:?}; \
         drained in {drained_in:?}; lost 0",
        proxy.connections(),
        proxy.connections_reset(),
        records.len(),
        acknowledged.len(),
        failed.len(),
        handled.len(),
        unique_ids.len(),
    );
    assert!(
        faults.total() >= run_for.as_millis() as u64 / 7 / 2,
        "the faults were injected: {faults}"
    );
    assert!(
        worst <= bound + SLACK,
        "a send blocked {worst:?}, past its bound {bound:?}"
    );
    assert_eq!(
        stream_len as usize,
        unique_ids.len(),
        "every entry of the stream was handled"
    );
    // Each redelivery needs a lost acknowledgement or a lost read reply, i.e. a fault
    // that broke a connection; each such fault can cost at most one read's worth.
    let breaking = faults.of(chaos::Fault::ResetNow)
        + faults.of(chaos::Fault::ResetAfterBytes)
        + faults.of(chaos::Fault::BlackHole);
    assert!(
        (redeliveries as u64) <= breaking * 3 * 10,
        "redeliveries ({redeliveries}) bounded by the connection-breaking faults ({breaking})"
    );
    assert!(
        (written_twice as u64) <= breaking * 8,
        "retry duplicates ({written_twice}) bounded by the connection-breaking faults ({breaking})"
    );
}

/// The packed size of the `XADD` a sender writes for `message` to `channel`.
fn xadd_len(channel: &str, message: &Message) -> usize {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(channel).arg("*");
    for (field, value) in message.get_json_encoded() {
        cmd.arg(field).arg(value);
    }
    cmd.get_packed_command().len()
}

/// The body keys of the stream's entries, in order.
fn stream_keys(conn: &mut redis::Connection, channel: &str) -> Vec<String> {
    let entries: Vec<(String, Vec<(String, String)>)> =
        redis::cmd("XRANGE").arg(channel).arg("-").arg("+").query(conn).unwrap();
    entries
        .into_iter()
        .map(|(_, fields)| {
            let body = &fields.iter().find(|(k, _)| k == "body").unwrap().1;
            serde_json::from_str::<serde_json::Value>(body).unwrap()["key"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

/// A batch of 100 in chunks of 10 whose connection is reset in the middle of the 4th
/// chunk's pipeline (after 3.5 chunks' bytes): without retries the error says 30 were
/// written and the stream holds those 30 plus a prefix of the cut chunk; with retries
/// every ID returned is in the stream and the only extra entries are that prefix, again.
async fn reset_mid_batch(blocking: bool, attempts: u32) {
    const CHANNEL: &str = "batch";
    let server = Server::start();
    let proxy = Proxy::start(server.port());
    let options = sender_options().set_max_attempts(attempts).set_batch_size(10);
    let sender = Sender::with_options(&instance(proxy.url()), options);
    sender.register_channel(CHANNEL).unwrap();
    sender.register_channel("warm-up").unwrap();
    let messages: Vec<Message> = (0..100)
        .map(|i| Message::new("m", &serde_json::json!({ "key": format!("m-{i:03}") })).unwrap())
        .collect();
    let keys: Vec<String> = (0..100).map(|i| format!("m-{i:03}")).collect();
    let one = xadd_len(CHANNEL, &messages[0]);
    let send = |sender: Sender, messages: Vec<Message>| async move {
        if blocking {
            tokio::task::spawn_blocking(move || sender.send_messages_blocking(CHANNEL, &messages))
                .await
                .unwrap()
        } else {
            sender.send_messages(CHANNEL, &messages).await
        }
    };
    // The connection is open (handshake done) before the budget is armed.
    let warm = Message::new("w", &serde_json::json!({})).unwrap();
    if blocking {
        let s = sender.clone();
        tokio::task::spawn_blocking(move || s.send_message_blocking("warm-up", &warm))
            .await
            .unwrap()
            .unwrap();
    } else {
        sender.send_message("warm-up", &warm).await.unwrap();
    }
    proxy.reset_after(
        dtrsfw_test_support::proxy::Direction::Upstream,
        (35 * one + one / 2) as u64,
    );
    let result = send(sender.clone(), messages.clone()).await;
    let mut conn = server.connection();
    let in_stream = stream_keys(&mut conn, CHANNEL);
    let cut_prefix = &keys[30..35];
    match (&result, attempts) {
        (Err(e), 1) => {
            eprintln!(
                "reset mid-batch ({}, 1 attempt): {e}; stream {} entries",
                if blocking { "blocking" } else { "async" },
                in_stream.len()
            );
            assert!(e.is_transient(), "{e}");
            assert!(
                e.to_string()
                    .contains("sending messages 30..40 of a batch of 100 (30 written before)"),
                "{e}"
            );
            // The 30 reported, in order, then the part of the cut chunk the server got.
            assert_eq!(in_stream[..30], keys[..30]);
            assert_eq!(in_stream[30..], *cut_prefix, "only a prefix of the cut chunk");
        }
        (Ok(ids), _) => {
            let returned: Vec<String> = ids.iter().map(ToString::to_string).collect();
            let entries: Vec<(String, redis::Value)> = redis::cmd("XRANGE")
                .arg(CHANNEL)
                .arg("-")
                .arg("+")
                .query(&mut conn)
                .unwrap();
            let stream_ids: HashSet<String> = entries.into_iter().map(|(id, _)| id).collect();
            assert!(
                returned.iter().all(|id| stream_ids.contains(id)),
                "every returned ID is in the stream"
            );
            let mut expected: Vec<String> = keys[..35].to_vec();
            expected.extend_from_slice(&keys[30..]);
            eprintln!(
                "reset mid-batch ({}, {attempts} attempts): all 100 returned; stream {} entries, duplicates {:?}",
                if blocking { "blocking" } else { "async" },
                in_stream.len(),
                cut_prefix
            );
            assert_eq!(
                in_stream, expected,
                "the 100 in order, plus the cut prefix written twice by the retry"
            );
        }
        (Err(e), _) => panic!("a retried batch succeeds after one reset: {e}"),
    }
    assert_eq!(proxy.connections_reset(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reset_in_the_middle_of_a_batch_reports_what_was_written() {
    reset_mid_batch(false, 1).await;
    reset_mid_batch(true, 1).await;
    reset_mid_batch(false, 4).await;
    reset_mid_batch(true, 4).await;
}

/// Sends `n` keyed messages (one single send, the rest batched) and consumes them once
/// with a fresh consumer; returns the handled keys in order.
async fn round_trip(url: String, channel: &'static str, n: usize) -> Vec<String> {
    let redis = instance(url);
    let sender = Sender::with_options(&redis, sender_options().set_max_attempts(1));
    sender.register_channel(channel).unwrap();
    let messages: Vec<Message> = (0..n)
        .map(|i| {
            Message::new(
                "m",
                &serde_json::json!({ "key": format!("k{i}"), "pad": "x".repeat(300) }),
            )
            .unwrap()
        })
        .collect();
    sender.send_message(channel, &messages[0]).await.unwrap();
    sender.send_messages(channel, &messages[1..]).await.unwrap();
    let consumer = Consumer::new(&redis, "svc").unwrap();
    consumer
        .register_channel(channel, ChannelOptions::new().start_from(StartFrom::Beginning))
        .await
        .unwrap();
    let log: Handled = Arc::default();
    consumer.register_async_handler(channel, recorder(&log, 0)).unwrap();
    while log.lock().unwrap().len() < n {
        consumer.consume_all_channels(Duration::from_millis(100)).await.unwrap();
    }
    let keys: Vec<String> = log.lock().unwrap().iter().map(|(_, k, _)| k.clone()).collect();
    keys
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fragmented_and_slow_replies_give_identical_results_and_timeouts_hold() {
    let server = Server::start();
    let proxy = Proxy::start(server.port());
    let direct = round_trip(server.url(), "direct", 40).await;
    proxy.set_fragmented(true);
    proxy.set_latency(Duration::from_millis(50), Duration::ZERO);
    let start = Instant::now();
    let through = round_trip(proxy.url(), "through", 40).await;
    let took = start.elapsed();
    assert_eq!(through, direct, "the same entries, in the same order");
    let writes = proxy.writes();
    assert!(
        writes > 40 * 300,
        "the replies really went byte by byte ({writes} writes)"
    );
    // A cached call through the slow link: the same value, then served from the cache.
    let redis = instance(proxy.url());
    let cached = dtrsfw::redis::caching::CachedFunction::builder("frag", ["n"])
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let args = dtrsfw::redis::caching::CacheArgs::new().arg("n", &7);
    let first: u64 = cached.call_async(&redis, &args, async { 49 }).await;
    let second: u64 = cached
        .call_async(&redis, &args, async { unreachable!("served from the cache") })
        .await;
    assert_eq!((first, second), (49, 49));
    assert_eq!(cached.stats().hits, 1, "{:?}", cached.stats());

    // Slower than the socket timeout: each call fails with a timeout, in time.
    proxy.set_latency(TIMEOUT * 3, Duration::ZERO);
    let slow = instance(proxy.url());
    let sender = Sender::with_options(&slow, sender_options().set_max_attempts(1));
    sender.register_channel("through").unwrap();
    let start = Instant::now();
    let err = sender
        .send_message("through", &Message::new("m", &serde_json::json!({})).unwrap())
        .await
        .unwrap_err();
    let send_took = start.elapsed();
    let start = Instant::now();
    let (up, _) = dtrsfw::redis::is_redis_connected_async(&slow).await;
    let health_took = start.elapsed();
    eprintln!(
        "fragmented + 50 ms: 40 entries sent and consumed in {took:?} ({writes} one-byte writes), identical to \
         direct; at 1.5 s latency: send failed in {send_took:?} ({err}), health {up} in {health_took:?} \
         (socket timeout {TIMEOUT:?})"
    );
    assert!(err.is_timeout() || err.is_connection(), "{err}");
    assert!(send_took <= TIMEOUT * 2 + SLACK, "{send_took:?}");
    assert!(!up);
    assert!(health_took <= TIMEOUT * 2 + SLACK, "{health_took:?}");
}

/// Runs `call` and returns how long it took.
async fn timed<T>(call: impl std::future::Future<Output = T>) -> (T, Duration) {
    let start = Instant::now();
    let out = call.await;
    (out, start.elapsed())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_black_hole_bounds_every_call_and_the_consumer_resumes_after() {
    const CHANNEL: &str = "hole";
    const BLOCK: Duration = Duration::from_millis(200);
    let server = Server::start();
    let proxy = Proxy::start(server.port());
    let redis = instance(proxy.url());
    let options = sender_options().set_max_attempts(2);
    let sender = Sender::with_options(&redis, options);
    sender.register_channel(CHANNEL).unwrap();
    let consumer = Consumer::new(&instance(proxy.url()), "svc").unwrap();
    consumer
        .register_channel(CHANNEL, ChannelOptions::new().start_from(StartFrom::Beginning))
        .await
        .unwrap();
    let log: Handled = Arc::default();
    consumer.register_async_handler(CHANNEL, recorder(&log, 0)).unwrap();
    let m = |k: &str| Message::new("m", &serde_json::json!({ "key": k })).unwrap();
    let before = sender.send_message(CHANNEL, &m("before")).await.unwrap();
    consumer.consume_all_channels(BLOCK).await.unwrap();
    assert_eq!(log.lock().unwrap().len(), 1);
    let cached = dtrsfw::redis::caching::CachedFunction::builder("hole", ["n"])
        .build()
        .unwrap();
    let args = dtrsfw::redis::caching::CacheArgs::new().arg("n", &1);

    proxy.set_black_hole(true);
    // An entry written directly (the hole is only between the library and the server):
    // the consumer's read and its acknowledgement both fall in the hole.
    let _: String = redis::cmd("XADD")
        .arg(CHANNEL)
        .arg("*")
        .arg("name")
        .arg("m")
        .arg("body")
        .arg(r#"{"key":"during"}"#)
        .query(&mut server.connection())
        .unwrap();
    let (send, send_took) = timed(sender.send_message(CHANNEL, &m("lost?"))).await;
    let (read, read_took) = timed(consumer.consume_all_channels(BLOCK)).await;
    let (value, cache_took) = timed(cached.call_async(&redis, &args, async { 11u32 })).await;
    let (health, health_took) = timed(dtrsfw::redis::is_redis_connected_async(&redis)).await;
    let (stats, stats_took) = timed(consumer.get_stats()).await;
    let send_bound = TIMEOUT * 2 * 2 + Duration::from_millis(20);
    eprintln!(
        "black hole: send {:?} in {send_took:?} (bound {send_bound:?}); consume {:?} in {read_took:?}; cached call \
         {value} in {cache_took:?}; health {} in {health_took:?}; stats returned ok={} (per-channel errors inside) in {stats_took:?}",
        send.as_ref().map(|_| ()).map_err(ToString::to_string),
        read.as_ref().map_err(ToString::to_string),
        health.0,
        stats.is_ok()
    );
    assert!(send.is_err_and(|e| e.is_transient()));
    assert!(send_took <= send_bound + SLACK, "send {send_took:?}");
    assert!(read.is_err_and(|e| e.is_transient()), "a read in the hole fails");
    assert!(read_took <= TIMEOUT * 2 + BLOCK + SLACK, "consume {read_took:?}");
    assert_eq!(value, 11, "the cache fails open");
    assert!(
        cache_took <= dtrsfw::redis::caching::DEFAULT_CACHE_TIMEOUT + SLACK,
        "cache {cache_took:?}"
    );
    assert!(!health.0);
    assert!(health_took <= TIMEOUT * 2 + SLACK, "health {health_took:?}");
    assert!(stats_took <= TIMEOUT * 2 + SLACK, "stats {stats_took:?}");

    // The hole closes: the consumer resumes, handles what was written meanwhile, and
    // nothing stays pending.
    proxy.set_black_hole(false);
    let closed = Instant::now();
    let after = sender.send_message(CHANNEL, &m("after")).await.unwrap();
    let looping = spawn_loop(&consumer, Duration::from_millis(20), BLOCK);
    let mut conn = server.connection();
    loop {
        let keys: HashSet<String> = log.lock().unwrap().iter().map(|(_, k, _)| k.clone()).collect();
        if keys.contains("during") && keys.contains("after") && pending_count(&mut conn, CHANNEL, "hole:svc:cg") == 0 {
            break;
        }
        assert!(
            closed.elapsed() < Duration::from_secs(10),
            "the consumer resumed: {keys:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("black hole closed: consumer caught up in {:?}", closed.elapsed());
    consumer.shutdown();
    looping.await.unwrap().unwrap();
    let ids: Vec<String> = log.lock().unwrap().iter().map(|(id, _, _)| id.clone()).collect();
    assert!(ids.contains(&before.to_string()) && ids.contains(&after.to_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn out_of_memory_refuses_sends_at_once_while_consumers_and_the_cache_carry_on() {
    const CHANNEL: &str = "oom";
    let server = Server::start();
    let redis = instance(server.url());
    let sender = Sender::with_options(&redis, sender_options());
    sender.register_channel(CHANNEL).unwrap();
    let consumer = Consumer::new(&redis, "svc").unwrap();
    consumer
        .register_channel(CHANNEL, ChannelOptions::new().start_from(StartFrom::Beginning))
        .await
        .unwrap();
    let log: Handled = Arc::default();
    consumer.register_async_handler(CHANNEL, recorder(&log, 0)).unwrap();
    let m = |k: String| Message::new("m", &serde_json::json!({ "key": k })).unwrap();
    let batch: Vec<Message> = (0..20).map(|i| m(format!("before-{i}"))).collect();
    let before = sender.send_messages(CHANNEL, &batch).await.unwrap();

    // Full: a limit below what is used (1 byte), so every write that may grow memory is
    // refused, as on a full server.
    let mut conn = server.connection();
    let config_set = |conn: &mut redis::Connection, key: &str, value: &str| {
        redis::cmd("CONFIG")
            .arg("SET")
            .arg(key)
            .arg(value)
            .query::<()>(conn)
            .unwrap()
    };
    config_set(&mut conn, "maxmemory-policy", "noeviction");
    config_set(&mut conn, "maxmemory", "1");
    let (sent, send_took) = timed(sender.send_message(CHANNEL, &m("during".into()))).await;
    let err = sent.unwrap_err();
    let (batch_sent, _) = timed(sender.send_messages(CHANNEL, &[m("d1".into()), m("d2".into())])).await;
    let batch_err = batch_sent.unwrap_err();
    // Consumers keep reading and acknowledging what was written before.
    while log.lock().unwrap().len() < before.len() {
        consumer.consume_all_channels(Duration::from_millis(100)).await.unwrap();
    }
    let pending_during = pending_count(&mut conn, CHANNEL, "oom:svc:cg");
    let cached = dtrsfw::redis::caching::CachedFunction::builder("oom", ["n"])
        .build()
        .unwrap();
    let args = dtrsfw::redis::caching::CacheArgs::new().arg("n", &1);
    let value: u32 = cached.call_async(&redis, &args, async { 5 }).await;
    let stats = cached.stats();
    eprintln!(
        "out of memory: send refused in {send_took:?}: {err}; batch: {batch_err}; consumer handled {} and \
         acknowledged them (pending {pending_during}); cached call {value} ({stats:?})",
        log.lock().unwrap().len()
    );
    assert!(!err.is_transient(), "OOM is not retried: {err}");
    assert_eq!(err.server_code(), Some("OOM"));
    assert!(
        err.to_string().contains("OOM") && err.to_string().contains("attempt 1 of 4"),
        "{err}"
    );
    assert!(send_took < Duration::from_millis(500), "no retry storm: {send_took:?}");
    assert_eq!(batch_err.server_code(), Some("OOM"), "{batch_err}");
    assert_eq!(pending_during, 0, "acknowledgements go through while full");
    assert_eq!(value, 5);
    assert_eq!((stats.misses, stats.hits), (1, 0), "{stats:?}");
    assert!(stats.errors >= 1, "the refused cache write is counted: {stats:?}");

    // Memory freed: everything works again.
    config_set(&mut conn, "maxmemory", "0");
    sender.send_message(CHANNEL, &m("after".into())).await.unwrap();
    let _: u32 = cached.call_async(&redis, &args, async { 5 }).await;
    let _: u32 = cached
        .call_async(&redis, &args, async { unreachable!("cached now") })
        .await;
    assert_eq!(cached.stats().hits, 1);
}

fn replicaof(conn: &mut redis::Connection, primary: Option<u16>) {
    let mut cmd = redis::cmd("REPLICAOF");
    match primary {
        Some(port) => cmd.arg("127.0.0.1").arg(port),
        None => cmd.arg("NO").arg("ONE"),
    };
    cmd.query::<()>(conn).unwrap();
}

/// Waits until the replica behind `conn` reports a finished sync with its primary.
fn wait_synced(conn: &mut redis::Connection) {
    let start = Instant::now();
    loop {
        let info: String = redis::cmd("INFO").arg("replication").query(conn).unwrap();
        if info.contains("master_link_status:up") {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "replication never came up: {info}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Waits until a replica of the primary behind `conn` acknowledged every write so far
/// (`WAIT 1`; a replica that just synced may not be counted at once, hence the loop).
fn wait_replicated(conn: &mut redis::Connection) {
    let start = Instant::now();
    while redis::cmd("WAIT").arg(1).arg(1000).query::<i64>(conn).unwrap() < 1 {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "no replica acknowledged the writes"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_demoted_primary_answers_readonly_which_is_retried_and_nothing_acknowledged_is_lost() {
    const CHANNEL: &str = "demoted";
    let (a, b) = (Server::start(), Server::start());
    let (mut conn_a, mut conn_b) = (a.connection(), b.connection());
    replicaof(&mut conn_b, Some(a.port()));
    wait_synced(&mut conn_b);
    let sender = Sender::with_options(&instance(a.url()), sender_options());
    sender.register_channel(CHANNEL).unwrap();
    let m = |k: &str| Message::new("m", &serde_json::json!({ "key": k })).unwrap();
    let mut acknowledged = vec![sender.send_message(CHANNEL, &m("before")).await.unwrap().to_string()];
    // Replication is asynchronous: without this wait B may be promoted before it has the
    // entry, and A, resyncing from B, would drop it (the loss WAIT exists for, not the
    // READONLY handling this test is about).
    wait_replicated(&mut conn_a);
    // A failover the client does not follow: B is promoted, A (which the client talks
    // to) becomes B's replica and refuses writes.
    replicaof(&mut conn_b, None);
    replicaof(&mut conn_a, Some(b.port()));
    wait_synced(&mut conn_a);
    let (refused, took) = timed(sender.send_message(CHANNEL, &m("during"))).await;
    let err = refused.unwrap_err();
    eprintln!("demoted primary: send failed in {took:?} after its retries: {err}");
    assert_eq!(err.server_code(), Some("READONLY"), "{err}");
    assert!(err.is_transient(), "READONLY is retried: {err}");
    assert!(err.to_string().contains("attempt 4 of 4"), "{err}");
    assert!(took <= send_bound() + SLACK);
    // Promoted back: the same sender writes again, without being rebuilt.
    replicaof(&mut conn_a, None);
    acknowledged.push(sender.send_message(CHANNEL, &m("after")).await.unwrap().to_string());
    let entries: Vec<(String, redis::Value)> = redis::cmd("XRANGE")
        .arg(CHANNEL)
        .arg("-")
        .arg("+")
        .query(&mut conn_a)
        .unwrap();
    let ids: Vec<String> = entries.into_iter().map(|(id, _)| id).collect();
    assert_eq!(ids, acknowledged, "every acknowledged send is there, and only those");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_handler_whose_connection_drops_is_renewed_or_reclaimed_and_handled() {
    const CHANNEL: &str = "slow";
    const RECLAIM: Duration = Duration::from_secs(1);
    let server = Server::start();
    let proxy = Proxy::start(server.port());
    let log: Handled = Arc::default();
    let options = ChannelOptions::new()
        .start_from(StartFrom::Beginning)
        .reclaim_idle(RECLAIM);
    // A reads through the proxy and holds the entry 3 s (three reclaim periods); B reads
    // directly and would reclaim it if A's claim lapsed.
    let a = Consumer::new(&instance(proxy.url()), "svc").unwrap();
    a.register_channel(CHANNEL, options.clone()).await.unwrap();
    let started = Arc::new(tokio::sync::Notify::new());
    {
        let (log, started) = (log.clone(), started.clone());
        a.register_async_handler(CHANNEL, move |d: Delivery| {
            let (log, started) = (log.clone(), started.clone());
            async move {
                started.notify_one();
                tokio::time::sleep(Duration::from_secs(3)).await;
                log.lock().unwrap().push((d.id().to_string(), "slow".into(), 0));
                Ok::<(), String>(())
            }
        })
        .unwrap();
    }
    let b = Consumer::new(&instance(server.url()), "svc").unwrap();
    b.register_channel(CHANNEL, options).await.unwrap();
    b.register_async_handler(CHANNEL, recorder(&log, 1)).unwrap();
    let sender = Sender::new(&instance(server.url()));
    sender.register_channel(CHANNEL).unwrap();
    let id = sender
        .send_message(
            CHANNEL,
            &Message::new("m", &serde_json::json!({ "key": "slow" })).unwrap(),
        )
        .await
        .unwrap()
        .to_string();
    let loop_a = spawn_loop(&a, Duration::from_millis(20), Duration::from_millis(200));
    started.notified().await;
    let loop_b = spawn_loop(&b, Duration::from_millis(20), Duration::from_millis(200));
    // A's connection drops while its handler runs, and stays unusable for 1.5 s (longer
    // than the reclaim idle time).
    proxy.reset_all();
    proxy.set_black_hole(true);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    proxy.set_black_hole(false);
    let mut conn = server.connection();
    let start = Instant::now();
    loop {
        let handled = log.lock().unwrap().iter().filter(|(i, _, _)| *i == id).count();
        if handled > 0 && pending_count(&mut conn, CHANNEL, "slow:svc:cg") == 0 {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(15),
            "the entry was handled and acknowledged"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    a.shutdown();
    b.shutdown();
    loop_a.await.unwrap().unwrap();
    loop_b.await.unwrap().unwrap();
    let by: Vec<usize> = log
        .lock()
        .unwrap()
        .iter()
        .filter(|(i, _, _)| *i == id)
        .map(|(_, _, c)| *c)
        .collect();
    eprintln!(
        "slow handler + lost connection: handled by {by:?} (0 = the slow instance, 1 = the other); nothing pending \
         {:?} after the link came back",
        start.elapsed()
    );
    assert!(
        !by.is_empty() && by.len() <= 2,
        "handled once, or twice when reclaimed: {by:?}"
    );
}
