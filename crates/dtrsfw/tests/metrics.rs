//! Feature `metrics`: every component driven against a real server under `metrics-util`'s
//! debugging recorder, asserting the exact names, labels and values the observe module
//! documents. The recorder is process-wide and a snapshot drains it, so the tests of this
//! file run one at a time (`SERIAL`) and each starts from a drained recorder.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use dtrsfw::redis::caching::{CacheArgs, CachedFunction};
use dtrsfw::redis::{ChannelOptions, Consumer, Message, RedisConfig, RedisInstance, Sender, SenderOptions, StartFrom};
use dtrsfw_test_support::{Server, SilentListener};
use metrics_util::debugging::{DebugValue, DebuggingRecorder, Snapshotter};
use tokio::sync::MutexGuard;

/// A metric as the tests name it: `name{label=value,...}` with labels sorted.
type Key = String;

fn recorder() -> &'static Snapshotter {
    static SNAPSHOTTER: OnceLock<Snapshotter> = OnceLock::new();
    SNAPSHOTTER.get_or_init(|| {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        recorder.install().expect("the only recorder of this test binary");
        snapshotter
    })
}

/// One test at a time (a tokio mutex: the guard is held across the test's awaits).
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Waits for the other tests, then drains the recorder.
async fn serial() -> MutexGuard<'static, ()> {
    let guard = SERIAL.lock().await;
    take();
    guard
}

/// [`serial`] for a test without a runtime.
fn serial_blocking() -> MutexGuard<'static, ()> {
    let guard = SERIAL.blocking_lock();
    take();
    guard
}

/// Drains the recorder: counters since the last call, gauges as set, histogram samples.
fn take() -> BTreeMap<Key, DebugValue> {
    recorder()
        .snapshot()
        .into_vec()
        .into_iter()
        .map(|(key, _, _, value)| {
            let (_, key) = key.into_parts();
            let mut labels: Vec<String> = key.labels().map(|l| format!("{}={}", l.key(), l.value())).collect();
            labels.sort();
            (format!("{}{{{}}}", key.name(), labels.join(",")), value)
        })
        .collect()
}

fn counter(snapshot: &BTreeMap<Key, DebugValue>, key: &str) -> u64 {
    match snapshot.get(key) {
        Some(DebugValue::Counter(n)) => *n,
        other => panic!("{key}: expected a counter, found {other:?} in {:#?}", snapshot.keys()),
    }
}

fn gauge(snapshot: &BTreeMap<Key, DebugValue>, key: &str) -> f64 {
    match snapshot.get(key) {
        Some(DebugValue::Gauge(v)) => v.into_inner(),
        other => panic!("{key}: expected a gauge, found {other:?} in {:#?}", snapshot.keys()),
    }
}

fn samples(snapshot: &BTreeMap<Key, DebugValue>, key: &str) -> usize {
    match snapshot.get(key) {
        Some(DebugValue::Histogram(v)) => v.len(),
        other => panic!("{key}: expected a histogram, found {other:?} in {:#?}", snapshot.keys()),
    }
}

fn instance(url: &str) -> RedisInstance {
    RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(url)
            .set_redis_socket_timeout(Duration::from_millis(300))
            .set_redis_socket_connect_timeout(Duration::from_millis(300)),
    )
    .expect("valid config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_count_messages_by_outcome_time_each_send_and_count_retries() {
    let _serial = serial().await;
    let server = Server::start();
    let sender = Sender::new(&instance(&server.url()));
    sender.register_channel("m-orders").unwrap();
    sender.register_channel("m-string").unwrap();
    let message = Message::new("n", &serde_json::json!({"a": 1})).unwrap();
    for _ in 0..3 {
        sender.send_message("m-orders", &message).await.unwrap();
    }
    sender
        .send_messages("m-orders", &vec![message.clone(); 5])
        .await
        .unwrap();
    sender.send_message_blocking("m-orders", &message).unwrap();
    redis::cmd("SET")
        .arg("m-string")
        .arg("x")
        .exec(&mut server.connection())
        .unwrap();
    sender.send_message("m-string", &message).await.unwrap_err();
    // Unreachable: two attempts, one retry, one failed message.
    let silent = SilentListener::start();
    let options = SenderOptions::new()
        .set_max_attempts(2)
        .set_initial_backoff(Duration::from_millis(1));
    let lost = Sender::with_options(&instance(&silent.url()), options);
    lost.register_channel("m-lost").unwrap();
    lost.send_message("m-lost", &message).await.unwrap_err();

    let s = take();
    assert_eq!(
        counter(&s, "messaging_client_sent_messages_total{channel=m-orders,outcome=ok}"),
        9
    );
    assert_eq!(
        counter(
            &s,
            "messaging_client_sent_messages_total{channel=m-string,outcome=error}"
        ),
        1
    );
    assert_eq!(
        counter(&s, "messaging_client_sent_messages_total{channel=m-lost,outcome=error}"),
        1
    );
    assert_eq!(
        samples(
            &s,
            "messaging_client_operation_duration_seconds{channel=m-orders,outcome=ok}"
        ),
        5
    );
    assert_eq!(
        samples(
            &s,
            "messaging_client_operation_duration_seconds{channel=m-lost,outcome=error}"
        ),
        1
    );
    assert_eq!(counter(&s, "dtrsfw_send_retries_total{channel=m-lost}"), 1);
    assert!(!s.contains_key("dtrsfw_send_retries_total{channel=m-orders}"));
}

fn publish(conn: &mut redis::Connection, channel: &str, fields: &[(&str, &str)]) {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(channel).arg("*");
    for (k, v) in fields {
        cmd.arg(*k).arg(*v);
    }
    cmd.exec(conn).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_consumer_counts_every_outcome_times_handlers_and_reports_lag_and_pending() {
    let _serial = serial().await;
    let server = Server::start();
    let redis = instance(&server.url());
    let mut conn = server.connection();
    let consumer = Consumer::new(&redis, "m-svc").unwrap();
    let options = ChannelOptions::new()
        .start_from(StartFrom::Beginning)
        .reclaim_idle(Duration::from_millis(300))
        .max_deliveries(2);
    consumer.register_channel("m-jobs", options).await.unwrap();
    // Entry 0 fails every time: run twice (one retry, reclaimed once), then dead-lettered.
    consumer
        .register_handler(
            "m-jobs",
            |_, body: &serde_json::Value| {
                if body["i"] == 0 { Err("always fails") } else { Ok(()) }
            },
        )
        .unwrap();
    for i in 0..5 {
        publish(
            &mut conn,
            "m-jobs",
            &[("name", "e"), ("body", &format!("{{\"i\":{i}}}"))],
        );
    }
    publish(&mut conn, "m-jobs", &[("name", "no body")]);

    let task = {
        let c = consumer.clone();
        tokio::spawn(async move {
            c.persist_consume_all_channels(Duration::from_millis(20), Duration::from_millis(100))
                .await
        })
    };
    let start = Instant::now();
    let settled = || async {
        let stats = consumer.get_stats().await.unwrap();
        let ch = &stats.channels["m-jobs"];
        ch.processed == 4 && ch.dead_lettered == 2 && ch.pending == Some(0)
    };
    while !settled().await {
        assert!(start.elapsed() < Duration::from_secs(20), "the consumer did not settle");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The gauges are refreshed at most once a second: let one refresh see the end state.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let s = take();
    consumer.shutdown();
    task.await.unwrap().unwrap();

    let labels = "channel=m-jobs,service=m-svc";
    assert_eq!(
        counter(&s, &format!("messaging_client_consumed_messages_total{{{labels}}}")),
        7
    );
    let outcome = |o: &str| {
        counter(
            &s,
            &format!("dtrsfw_consumer_messages_total{{channel=m-jobs,outcome={o},service=m-svc}}"),
        )
    };
    assert_eq!(outcome("processed"), 4);
    assert_eq!(outcome("failed"), 2);
    assert_eq!(outcome("retried"), 1);
    assert_eq!(outcome("reclaimed"), 1);
    assert_eq!(outcome("dead_lettered"), 2);
    let process = |o: &str| {
        samples(
            &s,
            &format!("messaging_process_duration_seconds{{channel=m-jobs,outcome={o},service=m-svc}}"),
        )
    };
    assert_eq!(process("ok"), 4);
    assert_eq!(process("error"), 2);
    for name in ["in_flight", "lag", "pending"] {
        assert_eq!(
            gauge(&s, &format!("dtrsfw_consumer_{name}_messages{{{labels}}}")),
            0.0,
            "{name}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gauges_show_a_backlog_as_redis_reports_it() {
    let _serial = serial().await;
    let server = Server::start();
    let redis = instance(&server.url());
    let mut conn = server.connection();
    let consumer = Consumer::new(&redis, "m-slow").unwrap();
    let options = ChannelOptions::new()
        .start_from(StartFrom::Beginning)
        .reclaim_idle(Duration::from_millis(600))
        .parallelism(1)
        .read_ahead(2);
    consumer.register_channel("m-backlog", options).await.unwrap();
    let release = Arc::new(AtomicBool::new(false));
    let r = release.clone();
    consumer
        .register_async_handler("m-backlog", move |_| {
            let r = r.clone();
            async move {
                while !r.load(Ordering::SeqCst) {
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                Ok::<(), String>(())
            }
        })
        .unwrap();
    for i in 0..10 {
        publish(
            &mut conn,
            "m-backlog",
            &[("name", "e"), ("body", &format!("{{\"i\":{i}}}"))],
        );
    }
    let task = {
        let c = consumer.clone();
        tokio::spawn(async move {
            c.persist_consume_all_channels(Duration::from_millis(20), Duration::from_millis(100))
                .await
        })
    };
    // One entry runs, two wait: 3 held and pending, 7 not delivered; stable while the
    // handler waits, so two refreshes later the gauges must show exactly that.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let s = take();
    let stats = consumer.get_stats().await.unwrap();
    release.store(true, Ordering::SeqCst);
    consumer.shutdown();
    task.await.unwrap().unwrap();

    let ch = &stats.channels["m-backlog"];
    assert_eq!((ch.lag, ch.pending), (Some(7), Some(3)), "the backlog as Redis sees it");
    let labels = "channel=m-backlog,service=m-slow";
    assert_eq!(
        gauge(&s, &format!("dtrsfw_consumer_in_flight_messages{{{labels}}}")),
        3.0
    );
    assert_eq!(gauge(&s, &format!("dtrsfw_consumer_lag_messages{{{labels}}}")), 7.0);
    assert_eq!(gauge(&s, &format!("dtrsfw_consumer_pending_messages{{{labels}}}")), 3.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cached_calls_count_by_result_time_lookups_and_computes_and_show_the_circuit() {
    let _serial = serial().await;
    let server = Server::start();
    let redis = instance(&server.url());
    let cached = CachedFunction::builder("m-ns", ["x"])
        .cache_only_for("x", "<", &100)
        .build()
        .unwrap();
    // A miss, a hit, and a call not cached because the condition does not hold.
    for (x, expected) in [(1, 2), (1, 2), (500, 1000)] {
        let args = CacheArgs::new().arg("x", &x);
        assert_eq!(cached.call_async(&redis, &args, async move { x * 2 }).await, expected);
    }
    let s = take();
    let requests = |s: &BTreeMap<Key, DebugValue>, ns: &str, o: &str| {
        counter(s, &format!("dtrsfw_cache_requests_total{{namespace={ns},outcome={o}}}"))
    };
    assert_eq!(requests(&s, "m-ns", "miss"), 1);
    assert_eq!(requests(&s, "m-ns", "hit"), 1);
    assert_eq!(requests(&s, "m-ns", "bypassed"), 1);
    assert_eq!(samples(&s, "dtrsfw_cache_lookup_duration_seconds{namespace=m-ns}"), 2);
    assert_eq!(samples(&s, "dtrsfw_cache_compute_duration_seconds{namespace=m-ns}"), 1);

    // A server that never answers: errors open the circuit, then calls skip Redis.
    let silent = SilentListener::start();
    let down = instance(&silent.url());
    let fragile = CachedFunction::builder("m-down", ["x"])
        .timeout(Duration::from_millis(50))
        .circuit_failure_threshold(2)
        .circuit_cool_down(Duration::from_secs(60))
        .build()
        .unwrap();
    for _ in 0..3 {
        let value = fragile
            .call_async(&down, &CacheArgs::new().arg("x", &1), async { 7 })
            .await;
        assert_eq!(value, 7);
    }
    let s = take();
    let stats = fragile.stats();
    assert_eq!((stats.errors, stats.misses), (2, 3));
    assert_eq!(requests(&s, "m-down", "error"), 2);
    assert_eq!(requests(&s, "m-down", "miss"), 3);
    assert!(stats.short_circuited > 0);
    assert_eq!(requests(&s, "m-down", "short_circuited"), stats.short_circuited);
    let circuit = format!("dtrsfw_cache_circuit_open{{server={}}}", down.redis_url());
    assert_eq!(
        gauge(&s, &circuit),
        1.0,
        "the URL has no credentials, so it is shown whole"
    );
}

#[test]
fn the_sync_pool_reports_connects_connections_in_use_and_waits() {
    let _serial = serial_blocking();
    let server = Server::start();
    let redis = RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(server.url())
            .set_redis_max_connections(1),
    )
    .unwrap();
    let held = redis.get_redis().unwrap();
    let s = take();
    assert_eq!(counter(&s, "dtrsfw_connection_connects_total{kind=sync,outcome=ok}"), 1);
    assert_eq!(gauge(&s, "dtrsfw_connection_pool_connections{}"), 1.0);
    assert_eq!(gauge(&s, "dtrsfw_connection_pool_in_use{}"), 1.0);
    let waiter = {
        let redis = redis.clone();
        std::thread::spawn(move || drop(redis.get_redis().unwrap()))
    };
    std::thread::sleep(Duration::from_millis(200));
    drop(held);
    waiter.join().unwrap();
    let s = take();
    assert_eq!(counter(&s, "dtrsfw_connection_pool_waits_total{}"), 1);
    // Gauges are kept by increments; the recorder's snapshot reset them, so what is left
    // is the change since: one lent and given back twice, net -1 after the reset.
    assert_eq!(gauge(&s, "dtrsfw_connection_pool_in_use{}"), -1.0);
    assert_eq!(
        counter(&s, "dtrsfw_connection_connects_total{kind=sync,outcome=ok}"),
        0,
        "the connection was reused"
    );
}
