//! The Streams consumer against real servers: fan-out, load balancing, retries,
//! dead-lettering, reclaim, shutdown, self-healing and cleanup.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dtrsfw::redis::streamer::group_name;
use dtrsfw::redis::{
    BlockingConsumer, ChannelOptions, Consumer, ConsumerOptions, Message, RedisConfig, RedisInstance, StartFrom,
};
use dtrsfw_test_support::{Rng, Server};
use redis::Commands;

mod common;
use common::wait_until;

/// An entry as `XRANGE` returns it, with raw values.
type RawEntry = (String, Vec<(String, Vec<u8>)>);
/// An entry with text values.
type TextEntry = (String, Vec<(String, String)>);

fn instance(server: &Server) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).expect("valid config")
}

/// Publishes like the Sender will: raw `XADD` of `Message::get_json_encoded()`.
fn publish(conn: &mut redis::Connection, channel: &str, name: &str, body: &serde_json::Value) -> String {
    let msg = Message::new(name, body).unwrap();
    let mut cmd = redis::cmd("XADD");
    cmd.arg(channel).arg("*");
    for (k, v) in msg.get_json_encoded() {
        cmd.arg(k).arg(v);
    }
    cmd.query(conn).unwrap()
}

fn publish_n(conn: &mut redis::Connection, channel: &str, n: usize) -> Vec<String> {
    (0..n)
        .map(|i| publish(conn, channel, "evt", &serde_json::json!({ "i": i })))
        .collect()
}

/// Quick retries for tests.
fn opts() -> ChannelOptions {
    ChannelOptions::new()
        .start_from(StartFrom::Beginning)
        .reclaim_idle(Duration::from_millis(300))
        .max_deliveries(3)
}

const BLOCK: Duration = Duration::from_millis(100);
const REST: Duration = Duration::from_millis(20);

/// Runs `consumers` until `done()` holds (or 20 s pass), then stops them gracefully.
async fn run_until(consumers: &[Consumer], done: impl Fn() -> bool) {
    let tasks: Vec<_> = consumers
        .iter()
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move { c.persist_consume_all_channels(REST, BLOCK).await })
        })
        .collect();
    let start = Instant::now();
    while !done() && start.elapsed() < Duration::from_secs(20) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for c in consumers {
        c.shutdown();
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
}

/// A handler recording (entry payload `i`) per call.
fn recorder(
    seen: &Arc<Mutex<Vec<u64>>>,
) -> impl Fn(&str, &serde_json::Value) -> Result<(), String> + Send + Sync + 'static {
    let seen = seen.clone();
    move |_name, payload| {
        seen.lock().unwrap().push(payload["i"].as_u64().unwrap());
        Ok(())
    }
}

fn pending_count(conn: &mut redis::Connection, channel: &str, group: &str) -> u64 {
    let v: redis::Value = redis::cmd("XPENDING").arg(channel).arg(group).query(conn).unwrap();
    match v {
        redis::Value::Array(items) => match &items[0] {
            redis::Value::Int(n) => *n as u64,
            _ => 0,
        },
        _ => 0,
    }
}

fn dlq_entries(conn: &mut redis::Connection, channel: &str) -> Vec<HashMap<String, Vec<u8>>> {
    let v: Vec<RawEntry> = redis::cmd("XRANGE")
        .arg(format!("{channel}:dlq"))
        .arg("-")
        .arg("+")
        .query(conn)
        .unwrap();
    v.into_iter().map(|(_, f)| f.into_iter().collect()).collect()
}

fn text(m: &HashMap<String, Vec<u8>>, k: &str) -> String {
    String::from_utf8_lossy(m.get(k).map(Vec::as_slice).unwrap_or_default()).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fan_out_every_service_gets_every_message() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let (a_seen, b_seen) = (Arc::new(Mutex::new(Vec::new())), Arc::new(Mutex::new(Vec::new())));
    let a = Consumer::new(&redis, "service-a").unwrap();
    let b = Consumer::new(&redis, "service-b").unwrap();
    for (c, seen) in [(&a, &a_seen), (&b, &b_seen)] {
        c.register_channel("fan", opts()).await.unwrap();
        c.register_handler("fan", recorder(seen)).unwrap();
    }
    assert_eq!(a.group_name("fan"), "fan:service-a:cg");
    publish_n(&mut conn, "fan", 50);
    run_until(&[a.clone(), b.clone()], || {
        a_seen.lock().unwrap().len() >= 50 && b_seen.lock().unwrap().len() >= 50
    })
    .await;
    let expected: Vec<u64> = (0..50).collect();
    assert_eq!(*a_seen.lock().unwrap(), expected, "in order, once each");
    assert_eq!(*b_seen.lock().unwrap(), expected);
    assert_eq!(pending_count(&mut conn, "fan", "fan:service-a:cg"), 0);
    let stats = a.get_stats().await.unwrap();
    assert_eq!(stats.channels["fan"].processed, 50);
    assert_eq!(stats.channels["fan"].pending, Some(0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancing_two_instances_split_the_work_without_duplicates() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let per_instance = [Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0))];
    let mut instances = Vec::new();
    for counter in &per_instance {
        let c = Consumer::new(&redis, "worker").unwrap();
        c.register_channel("lb", opts()).await.unwrap();
        let (seen, counter) = (seen.clone(), counter.clone());
        c.register_async_handler("lb", move |d| {
            let (seen, counter) = (seen.clone(), counter.clone());
            async move {
                seen.lock().unwrap().push(d.payload()["i"].as_u64().unwrap());
                counter.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(2)).await;
                Ok::<(), String>(())
            }
        })
        .unwrap();
        instances.push(c);
    }
    assert_ne!(instances[0].consumer_name(), instances[1].consumer_name());
    assert!(instances[0].consumer_name().starts_with("worker."));
    let ids = publish_n(&mut conn, "lb", 200);
    run_until(&instances, || seen.lock().unwrap().len() >= 200).await;
    let all = seen.lock().unwrap().clone();
    let unique: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(all.len(), ids.len(), "no duplicates");
    assert_eq!(unique.len(), 200, "union is everything");
    assert!(
        per_instance.iter().all(|c| c.load(Ordering::Relaxed) > 0),
        "both instances worked"
    );
    assert_eq!(pending_count(&mut conn, "lb", "lb:worker:cg"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_handler_is_retried_and_then_succeeds_and_all_handlers_must_succeed() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let c = Consumer::new(&redis, "retry").unwrap();
    c.register_channel("r", opts()).await.unwrap();
    let first_calls = Arc::new(AtomicU64::new(0));
    let second_calls = Arc::new(AtomicU64::new(0));
    let typed = Arc::new(Mutex::new(Vec::new()));
    let f = first_calls.clone();
    c.register_handler("r", move |_, _| {
        f.fetch_add(1, Ordering::SeqCst);
        Ok::<(), String>(())
    })
    .unwrap();
    let s = second_calls.clone();
    c.register_async_handler("r", move |d| {
        let s = s.clone();
        async move {
            let n = s.fetch_add(1, Ordering::SeqCst);
            if n == 0 {
                assert_eq!(d.deliveries(), 1);
                Err("transient failure".to_owned())
            } else {
                assert_eq!(d.deliveries(), 2, "the retry is the second delivery");
                Ok(())
            }
        }
    })
    .unwrap();
    #[derive(serde::Deserialize)]
    struct Body {
        i: u64,
    }
    let t = typed.clone();
    c.register_typed_handler("r", move |name: &str, body: Body| {
        t.lock().unwrap().push((name.to_owned(), body.i));
        Ok::<(), String>(())
    })
    .unwrap();
    publish(&mut conn, "r", "order.created", &serde_json::json!({ "i": 7 }));
    run_until(std::slice::from_ref(&c), || c_processed(&c) >= 1).await;
    assert_eq!(first_calls.load(Ordering::SeqCst), 2, "the whole entry is retried");
    assert_eq!(second_calls.load(Ordering::SeqCst), 2);
    assert_eq!(
        *typed.lock().unwrap(),
        vec![("order.created".to_owned(), 7)],
        "later handlers only after earlier ones succeed"
    );
    let stats = c.get_stats().await.unwrap().channels["r"].clone();
    assert_eq!(
        (
            stats.processed,
            stats.failed,
            stats.retried,
            stats.reclaimed,
            stats.dead_lettered
        ),
        (1, 1, 1, 1, 0)
    );
    assert_eq!(pending_count(&mut conn, "r", "r:retry:cg"), 0);
    assert!(dlq_entries(&mut conn, "r").is_empty());
}

/// Entries settled (processed or dead-lettered) by `c`, for polling from a sync closure.
fn c_processed(c: &Consumer) -> u64 {
    let stats = block_in_runtime(c.get_stats());
    stats
        .map(|s| s.channels.values().map(|c| c.processed + c.dead_lettered).sum())
        .unwrap_or(0)
}

/// Runs a small future to completion from sync polling code inside a multi-thread runtime.
fn block_in_runtime<F: std::future::Future>(f: F) -> F::Output {
    tokio::task::block_in_place(|| tokio::runtime::Handle::current().block_on(f))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_entry_is_dead_lettered_after_exactly_max_deliveries() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let c = Consumer::new(&redis, "fails").unwrap();
    c.register_channel("f", opts().max_deliveries(3)).await.unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let k = calls.clone();
    c.register_handler("f", move |_, _| {
        k.fetch_add(1, Ordering::SeqCst);
        Err("boom: database unavailable")
    })
    .unwrap();
    let id = publish(&mut conn, "f", "evt", &serde_json::json!({ "x": "y" }));
    run_until(std::slice::from_ref(&c), || c_processed(&c) >= 1).await;
    assert_eq!(calls.load(Ordering::SeqCst), 3);
    let dlq = dlq_entries(&mut conn, "f");
    assert_eq!(dlq.len(), 1);
    let e = &dlq[0];
    assert_eq!(text(e, "reason"), "max_deliveries");
    assert_eq!(text(e, "error"), "boom: database unavailable");
    assert_eq!(text(e, "id"), id);
    assert_eq!(text(e, "name"), "evt");
    assert_eq!(text(e, "body"), r#"{"x":"y"}"#);
    assert_eq!(text(e, "service"), "fails");
    assert_eq!(text(e, "deliveries"), "3");
    assert!(text(e, "time").parse::<u64>().unwrap() > 1_600_000_000_000);
    assert_eq!(
        pending_count(&mut conn, "f", "f:fails:cg"),
        0,
        "acknowledged after dead-lettering"
    );
    let stats = c.get_stats().await.unwrap().channels["f"].clone();
    assert_eq!((stats.failed, stats.dead_lettered, stats.processed), (3, 1, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn panicking_handler_counts_as_a_failure() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let c = Consumer::new(&redis, "panics").unwrap();
    c.register_channel("p", opts().max_deliveries(2)).await.unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let k = calls.clone();
    c.register_handler("p", move |_, _| -> Result<(), String> {
        k.fetch_add(1, Ordering::SeqCst);
        panic!("handler bug")
    })
    .unwrap();
    publish(&mut conn, "p", "evt", &serde_json::json!(1));
    publish(&mut conn, "p", "evt", &serde_json::json!(2));
    run_until(std::slice::from_ref(&c), || c_processed(&c) >= 2).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        4,
        "two deliveries of each, the loop survived"
    );
    let dlq = dlq_entries(&mut conn, "p");
    assert_eq!(dlq.len(), 2);
    assert!(
        text(&dlq[0], "error").contains("panicked: handler bug"),
        "{}",
        text(&dlq[0], "error")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_entries_go_to_the_dead_letter_stream_at_once() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let c = Consumer::new(&redis, "strict").unwrap();
    c.register_channel("m", opts()).await.unwrap();
    let calls = Arc::new(AtomicU64::new(0));
    let k = calls.clone();
    c.register_handler("m", move |_, _| {
        k.fetch_add(1, Ordering::SeqCst);
        Ok::<(), String>(())
    })
    .unwrap();
    let bad: Vec<Vec<(&str, Vec<u8>)>> = vec![
        vec![("body", b"{}".to_vec())],
        vec![("name", b"n".to_vec())],
        vec![("name", b"n".to_vec()), ("body", b"{not json".to_vec())],
        vec![("name", b"n".to_vec()), ("body", vec![0xff, 0xfe, b'"'])],
    ];
    for fields in &bad {
        let _: String = conn.xadd("m", "*", fields).unwrap();
    }
    publish(&mut conn, "m", "good", &serde_json::json!({}));
    run_until(std::slice::from_ref(&c), || c_processed(&c) >= 5).await;
    assert_eq!(
        calls.load(Ordering::SeqCst),
        1,
        "only the good entry reached the handler"
    );
    let dlq = dlq_entries(&mut conn, "m");
    assert_eq!(dlq.len(), 4);
    assert!(
        dlq.iter()
            .all(|e| text(e, "reason") == "malformed" && text(e, "deliveries") == "1")
    );
    assert!(text(&dlq[0], "error").contains("name"));
    assert!(!dlq[0].contains_key("name"));
    assert!(text(&dlq[1], "error").contains("body"));
    assert!(text(&dlq[2], "error").contains("not JSON"));
    assert_eq!(dlq[3]["body"], vec![0xff, 0xfe, b'"'], "body kept verbatim");
    assert!(text(&dlq[3], "error").contains("UTF-8"));
    assert_eq!(pending_count(&mut conn, "m", "m:strict:cg"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_of_a_dead_instance_are_reclaimed_and_deleted_ones_acknowledged() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    // A first instance takes entries and dies without acknowledging them.
    let first = Consumer::new(&redis, "svc").unwrap();
    first.register_channel("d", opts()).await.unwrap();
    first
        .register_handler("d", |_, _| Err::<(), _>("instance about to crash"))
        .unwrap();
    let ids = publish_n(&mut conn, "d", 10);
    assert_eq!(first.consume_messages("d", "svc", BLOCK).await.unwrap(), 0);
    drop(first);
    assert_eq!(
        pending_count(&mut conn, "d", "d:svc:cg"),
        1,
        "parallelism 1 reads one entry at a time"
    );
    // Another one takes the rest by a raw read, as a Python instance would, and dies.
    let _: redis::Value = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg("d:svc:cg")
        .arg("python-instance")
        .arg("COUNT")
        .arg(100)
        .arg("STREAMS")
        .arg("d")
        .arg(">")
        .query(&mut conn)
        .unwrap();
    let _: u64 = conn.xdel("d", &[&ids[9]]).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let second = Consumer::new(&redis, "svc").unwrap();
    second.register_channel("d", opts()).await.unwrap();
    second.register_handler("d", recorder(&seen)).unwrap();
    run_until(std::slice::from_ref(&second), || seen.lock().unwrap().len() >= 9).await;
    let mut got = seen.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, (0..9).collect::<Vec<_>>());
    let stats = second.get_stats().await.unwrap().channels["d"].clone();
    assert_eq!(stats.reclaimed, 9);
    assert_eq!(
        stats.deleted_pending, 1,
        "the deleted entry was acknowledged, not retried"
    );
    assert_eq!(pending_count(&mut conn, "d", "d:svc:cg"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_handler_keeps_its_entry_while_alive() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let slow = Consumer::new(&redis, "svc").unwrap();
    let other = Consumer::new(&redis, "svc").unwrap();
    let (slow_calls, other_calls) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    for (c, calls, pause) in [(&slow, &slow_calls, 1500u64), (&other, &other_calls, 0)] {
        c.register_channel("long", opts().reclaim_idle(Duration::from_millis(300)))
            .await
            .unwrap();
        let calls = calls.clone();
        c.register_async_handler("long", move |_| {
            let calls = calls.clone();
            async move {
                calls.fetch_add(1, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_millis(pause)).await;
                Ok::<(), String>(())
            }
        })
        .unwrap();
    }
    publish(&mut conn, "long", "evt", &serde_json::json!({}));
    // The slow instance takes the entry first; then the other one runs alongside.
    let slow_task = {
        let slow = slow.clone();
        tokio::spawn(async move { slow.persist_consume_all_channels(REST, BLOCK).await })
    };
    while slow_calls.load(Ordering::SeqCst) == 0 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    run_until(std::slice::from_ref(&other), || c_processed(&slow) >= 1).await;
    slow.shutdown();
    slow_task.await.unwrap().unwrap();
    assert_eq!(
        other_calls.load(Ordering::SeqCst),
        0,
        "never reclaimed while its handler ran"
    );
    assert_eq!(slow_calls.load(Ordering::SeqCst), 1);
    assert_eq!(pending_count(&mut conn, "long", "long:svc:cg"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_drains_in_flight_handlers_and_acknowledges() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let c = Consumer::new(&redis, "drain").unwrap();
    c.register_channel("s", opts().parallelism(4)).await.unwrap();
    let (started, finished) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let (s, f) = (started.clone(), finished.clone());
    c.register_async_handler("s", move |_| {
        let (s, f) = (s.clone(), f.clone());
        async move {
            s.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(400)).await;
            f.fetch_add(1, Ordering::SeqCst);
            Ok::<(), String>(())
        }
    })
    .unwrap();
    publish_n(&mut conn, "s", 4);
    let task = {
        let c = c.clone();
        tokio::spawn(async move {
            c.persist_consume_all_channels_until(REST, Duration::from_secs(5), std::future::pending())
                .await
        })
    };
    while started.load(Ordering::SeqCst) < 4 {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    assert_eq!(finished.load(Ordering::SeqCst), 0);
    let t0 = Instant::now();
    c.shutdown();
    task.await.unwrap().unwrap();
    assert!(t0.elapsed() < Duration::from_secs(3), "the 5 s block was interrupted");
    assert_eq!(finished.load(Ordering::SeqCst), 4, "in-flight handlers finished");
    assert_eq!(pending_count(&mut conn, "s", "s:drain:cg"), 0, "and were acknowledged");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleted_group_and_stream_are_recreated() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let c = Consumer::new(&redis, "heal").unwrap();
    c.register_channel("g", opts()).await.unwrap();
    c.register_handler("g", recorder(&seen)).unwrap();
    let task = {
        let c = c.clone();
        tokio::spawn(async move { c.persist_consume_all_channels(REST, BLOCK).await })
    };
    publish(&mut conn, "g", "evt", &serde_json::json!({ "i": 1 }));
    wait_until("the first entry", || !seen.lock().unwrap().is_empty()).await;
    let _: () = redis::cmd("XGROUP")
        .arg("DESTROY")
        .arg("g")
        .arg("g:heal:cg")
        .query(&mut conn)
        .unwrap();
    publish(&mut conn, "g", "evt", &serde_json::json!({ "i": 2 }));
    wait_until("entry 2", || seen.lock().unwrap().contains(&2)).await;
    let _: () = conn.del("g").unwrap();
    tokio::time::sleep(Duration::from_millis(300)).await;
    publish(&mut conn, "g", "evt", &serde_json::json!({ "i": 3 }));
    wait_until("entry 3", || seen.lock().unwrap().contains(&3)).await;
    c.shutdown();
    task.await.unwrap().unwrap();
    let got: BTreeSet<u64> = seen.lock().unwrap().iter().copied().collect();
    assert_eq!(got, BTreeSet::from([1, 2, 3]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_restart_mid_run_loses_nothing() {
    let mut server = Server::builder().appendonly().start();
    let redis = instance(&server);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let c = Consumer::with_options(
        &redis,
        "restart",
        ConsumerOptions::new().max_backoff(Duration::from_millis(200)),
    )
    .unwrap();
    c.register_channel("rs", opts()).await.unwrap();
    c.register_handler("rs", recorder(&seen)).unwrap();
    let task = {
        let c = c.clone();
        tokio::spawn(async move { c.persist_consume_all_channels(REST, BLOCK).await })
    };
    {
        let mut conn = server.connection();
        for i in 0..20 {
            publish(&mut conn, "rs", "evt", &serde_json::json!({ "i": i }));
        }
    }
    wait_until("20 entries", || seen.lock().unwrap().len() >= 20).await;
    server.restart();
    {
        let mut conn = server.connection();
        for i in 20..40 {
            publish(&mut conn, "rs", "evt", &serde_json::json!({ "i": i }));
        }
    }
    wait_until("40 distinct entries", || {
        seen.lock().unwrap().iter().copied().collect::<BTreeSet<_>>().len() >= 40
    })
    .await;
    c.shutdown();
    task.await.unwrap().unwrap();
    let got: BTreeSet<u64> = seen.lock().unwrap().iter().copied().collect();
    assert_eq!(got, (0..40).collect());
    let mut conn = server.connection();
    assert_eq!(pending_count(&mut conn, "rs", "rs:restart:cg"), 0);
}

#[test]
fn blocking_consumer_consumes_one_batch_and_reports_stats() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let c = BlockingConsumer::new(&redis, "sync-svc").unwrap();
    c.register_channel("b", opts().read_ahead(9)).unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    c.register_handler("b", recorder(&seen)).unwrap();
    assert!(
        c.register_handler("nope", recorder(&seen))
            .unwrap_err()
            .to_string()
            .contains("nope")
    );
    publish_n(&mut conn, "b", 10);
    assert_eq!(c.consume_messages("b", "b:sync-svc:cg", BLOCK).unwrap(), 10);
    assert_eq!(c.consume_all_channels(Duration::from_millis(10)).unwrap(), 0);
    assert_eq!(*seen.lock().unwrap(), (0..10).collect::<Vec<_>>());
    assert!(c.consume_messages("b", "other-group", BLOCK).is_err());
    publish_n(&mut conn, "b", 3);
    let stats = c.get_stats().unwrap().channels["b"].clone();
    assert_eq!((stats.processed, stats.pending, stats.lag), (10, Some(0), Some(3)));
    // The shutdown handle stops a loop running on another thread.
    let stop = c.shutdown_handle();
    let stopper = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        stop.shutdown();
    });
    c.persist_consume_all_channels(REST, BLOCK).unwrap();
    stopper.join().unwrap();
    assert_eq!(seen.lock().unwrap().len(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_consumers_of_dead_instances_are_removed() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let c = Consumer::with_options(
        &redis,
        "hk",
        ConsumerOptions::new().idle_consumer_timeout(Duration::from_millis(50)),
    )
    .unwrap();
    c.register_channel("h", opts()).await.unwrap();
    let _: i64 = redis::cmd("XGROUP")
        .arg("CREATECONSUMER")
        .arg("h")
        .arg("h:hk:cg")
        .arg("hk.gone.1.abcdef01")
        .query(&mut conn)
        .unwrap();
    tokio::time::sleep(Duration::from_millis(120)).await;
    assert_eq!(c.remove_idle_consumers().await.unwrap(), 1);
    let consumers: Vec<redis::Value> = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg("h")
        .arg("h:hk:cg")
        .query(&mut conn)
        .unwrap();
    assert!(consumers.is_empty());
}

// ---- cleanup ----

fn parse_id(id: &str) -> (u64, u64) {
    let (a, b) = id.split_once('-').unwrap();
    (a.parse().unwrap(), b.parse().unwrap())
}

fn stream_ids(conn: &mut redis::Connection, key: &str) -> BTreeSet<(u64, u64)> {
    let v: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE").arg(key).arg("-").arg("+").query(conn).unwrap();
    v.into_iter().map(|(id, _)| parse_id(&id)).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_deletes_exactly_what_a_brute_force_model_allows() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let services = ["alpha", "beta", "gamma"];
    let mut total_deleted_all = 0;
    for seed in 1..=6u64 {
        let channel = format!("model{seed}");
        let mut rng = Rng::new(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
        let cleaner = Consumer::new(&redis, "cleaner").unwrap();
        cleaner
            .register_channel(
                &channel,
                ChannelOptions::new()
                    .read_messages(false)
                    .consumers(services)
                    .message_cleanup(true),
            )
            .await
            .unwrap();
        // The model: per service, last delivered ID (None: no group yet) and pending set.
        let mut last: BTreeMap<&str, Option<(u64, u64)>> = services.iter().map(|s| (*s, None)).collect();
        let mut pending: BTreeMap<&str, BTreeSet<(u64, u64)>> =
            services.iter().map(|s| (*s, BTreeSet::new())).collect();
        let _: String = conn.xadd(&channel, "*", &[("name", "seed"), ("body", "{}")]).unwrap();
        let mut total_deleted = 0;
        for _step in 0..60 {
            let svc = services[rng.below(3) as usize];
            let group = group_name(&channel, svc);
            match rng.below(6) {
                0 | 1 => {
                    for _ in 0..=rng.below(5) {
                        let _: String = conn.xadd(&channel, "*", &[("name", "e"), ("body", "{}")]).unwrap();
                    }
                }
                2 => {
                    if last[svc].is_none() {
                        // A group appears late, from the start or from the end.
                        let start = if rng.below(2) == 0 { "0" } else { "$" };
                        let _: () = redis::cmd("XGROUP")
                            .arg("CREATE")
                            .arg(&channel)
                            .arg(&group)
                            .arg(start)
                            .query(&mut conn)
                            .unwrap();
                        let info: Vec<HashMap<String, redis::Value>> = redis::cmd("XINFO")
                            .arg("GROUPS")
                            .arg(&channel)
                            .query(&mut conn)
                            .unwrap();
                        let g = info
                            .iter()
                            .find(|g| matches!(&g["name"], redis::Value::BulkString(n) if n == group.as_bytes()))
                            .unwrap();
                        let id: String = redis::from_redis_value(g["last-delivered-id"].clone()).unwrap();
                        last.insert(svc, Some(parse_id(&id)));
                    }
                }
                3 | 4 => {
                    if last[svc].is_some() {
                        let reply: Option<Vec<(String, Vec<TextEntry>)>> = redis::cmd("XREADGROUP")
                            .arg("GROUP")
                            .arg(&group)
                            .arg("inst")
                            .arg("COUNT")
                            .arg(1 + rng.below(4))
                            .arg("STREAMS")
                            .arg(&channel)
                            .arg(">")
                            .query(&mut conn)
                            .unwrap();
                        for (_, entries) in reply.unwrap_or_default() {
                            for (id, _) in entries {
                                let id = parse_id(&id);
                                last.insert(svc, Some(id));
                                pending.get_mut(svc).unwrap().insert(id);
                            }
                        }
                    }
                }
                _ => {
                    // Acknowledge some pending entries (others "fail" and stay pending).
                    let ids: Vec<(u64, u64)> = pending[svc].iter().copied().filter(|_| rng.below(3) != 0).collect();
                    for id in ids {
                        let _: u64 = conn.xack(&channel, &group, &[format!("{}-{}", id.0, id.1)]).unwrap();
                        pending.get_mut(svc).unwrap().remove(&id);
                    }
                }
            }
            if rng.below(4) == 0 {
                let before = stream_ids(&mut conn, &channel);
                let deleted = cleaner.clean_up_consumed_messages().await.unwrap();
                let after = stream_ids(&mut conn, &channel);
                let actually: BTreeSet<_> = before.difference(&after).copied().collect();
                assert_eq!(deleted as usize, actually.len());
                total_deleted += deleted;
                // Brute force over every entry and every service.
                let safe = |e: &(u64, u64)| {
                    services
                        .iter()
                        .all(|s| last[s].is_some_and(|l| *e <= l) && !pending[s].contains(e))
                };
                let oldest_needed = services
                    .iter()
                    .map(|s| match last[s] {
                        None => before.first().copied(),
                        Some(l) => pending[s]
                            .first()
                            .copied()
                            .into_iter()
                            .chain(before.iter().copied().find(|e| *e > l))
                            .min(),
                    })
                    .map(|n| n.unwrap_or((u64::MAX, u64::MAX)))
                    .min()
                    .unwrap();
                for e in &actually {
                    assert!(safe(e), "seed {seed}: deleted {e:?} that a service still needs");
                }
                let must: BTreeSet<_> = before.iter().copied().filter(|e| *e < oldest_needed).collect();
                assert_eq!(
                    actually, must,
                    "seed {seed}: not every entry older than the oldest needed was deleted"
                );
            }
        }
        total_deleted_all += total_deleted;
    }
    assert!(total_deleted_all > 0, "the interleavings exercised actual deletions");
}

fn total_commands(conn: &mut redis::Connection) -> u64 {
    let info: String = redis::cmd("INFO").arg("stats").query(conn).unwrap();
    info.lines()
        .find_map(|l| l.strip_prefix("total_commands_processed:"))
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// A stream of `n` entries read by three groups: everything delivered, a few pending.
fn fill_for_cleanup(conn: &mut redis::Connection, channel: &str, n: usize) {
    for chunk in 0..n.div_ceil(10_000) {
        let mut pipe = redis::pipe();
        for i in chunk * 10_000..((chunk + 1) * 10_000).min(n) {
            pipe.cmd("XADD")
                .arg(channel)
                .arg("*")
                .arg("name")
                .arg("e")
                .arg("body")
                .arg(i)
                .ignore();
        }
        pipe.exec(conn).unwrap();
    }
    for svc in ["a", "b", "c"] {
        let group = group_name(channel, svc);
        let _: () = redis::cmd("XGROUP")
            .arg("CREATE")
            .arg(channel)
            .arg(&group)
            .arg("0")
            .query(conn)
            .unwrap();
        // Read everything through the cheap `NOACK` path except the last 10 entries, which
        // stay pending.
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&group)
            .arg("x")
            .arg("COUNT")
            .arg(n - 10)
            .arg("NOACK")
            .arg("STREAMS")
            .arg(channel)
            .arg(">")
            .query(conn)
            .unwrap();
        let _: redis::Value = redis::cmd("XREADGROUP")
            .arg("GROUP")
            .arg(&group)
            .arg("x")
            .arg("COUNT")
            .arg(10)
            .arg("STREAMS")
            .arg(channel)
            .arg(">")
            .query(conn)
            .unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cleanup_cost_does_not_depend_on_the_number_of_entries() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let mut counts = Vec::new();
    for (channel, n) in [("small", 1_000usize), ("large", 100_000)] {
        fill_for_cleanup(&mut conn, channel, n);
        let c = Consumer::new(&redis, "cleaner").unwrap();
        c.register_channel(
            channel,
            ChannelOptions::new()
                .read_messages(false)
                .consumers(["a", "b", "c"])
                .message_cleanup(true),
        )
        .await
        .unwrap();
        c.get_stats().await.unwrap(); // connect first, so connection set-up is not counted
        let before = total_commands(&mut conn);
        let deleted = c.clean_up_consumed_messages().await.unwrap();
        let after = total_commands(&mut conn);
        assert_eq!(deleted as usize, n - 10, "everything but the pending tail");
        let len: usize = conn.xlen(channel).unwrap();
        assert_eq!(len, 10);
        counts.push(after - before - 1); // minus the first INFO itself
    }
    assert_eq!(
        counts[0], counts[1],
        "commands for 1 000 vs 100 000 entries: {counts:?}"
    );
    assert!(counts[0] <= 6, "XINFO GROUPS + 3 XPENDING + XTRIM, got {}", counts[0]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn parallelism_bounds_handlers_and_reads_only_for_free_slots() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let c = Consumer::new(&redis, "par").unwrap();
    c.register_channel("k", opts().parallelism(4)).await.unwrap();
    let (now, max, done) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let (n, m, d) = (now.clone(), max.clone(), done.clone());
    c.register_async_handler("k", move |_| {
        let (n, m, d) = (n.clone(), m.clone(), d.clone());
        async move {
            let current = n.fetch_add(1, Ordering::SeqCst) + 1;
            m.fetch_max(current, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_millis(40)).await;
            n.fetch_sub(1, Ordering::SeqCst);
            d.fetch_add(1, Ordering::SeqCst);
            Ok::<(), String>(())
        }
    })
    .unwrap();
    publish_n(&mut conn, "k", 24);
    let task = {
        let c = c.clone();
        tokio::spawn(async move { c.persist_consume_all_channels(REST, BLOCK).await })
    };
    let mut most_pending = 0;
    while done.load(Ordering::SeqCst) < 24 {
        most_pending = most_pending.max(pending_count(&mut conn, "k", "k:par:cg"));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.shutdown();
    task.await.unwrap().unwrap();
    assert_eq!(
        max.load(Ordering::SeqCst),
        4,
        "exactly the configured number of handlers at once"
    );
    assert!(
        most_pending <= 4,
        "read only for free slots, saw {most_pending} pending"
    );
    assert_eq!(pending_count(&mut conn, "k", "k:par:cg"), 0);
}

/// The group's lag from `XINFO GROUPS` (entries it has not read yet).
fn group_lag(conn: &mut redis::Connection, channel: &str, group: &str) -> Option<u64> {
    let groups: Vec<HashMap<String, redis::Value>> =
        redis::cmd("XINFO").arg("GROUPS").arg(channel).query(conn).unwrap();
    let g = groups
        .into_iter()
        .find(|g| g.get("name") == Some(&redis::Value::BulkString(group.as_bytes().to_vec())))?;
    match g.get("lag") {
        Some(redis::Value::Int(n)) => Some(*n as u64),
        _ => None,
    }
}

/// Checks that the group has read nothing of `channel` (nothing pending, every entry
/// still there for it) and then reads them with a raw `XREADGROUP`.
fn assert_all_unread(conn: &mut redis::Connection, channel: &str, group: &str, n: usize) {
    assert_eq!(pending_count(conn, channel, group), 0, "nothing pending on {channel}");
    assert_eq!(group_lag(conn, channel, group), Some(n as u64), "lag of {group}");
    let read: redis::streams::StreamReadReply = redis::cmd("XREADGROUP")
        .arg("GROUP")
        .arg(group)
        .arg("check")
        .arg("COUNT")
        .arg(1000)
        .arg("STREAMS")
        .arg(channel)
        .arg(">")
        .query(conn)
        .unwrap();
    let got: usize = read.keys.iter().map(|k| k.ids.len()).sum();
    assert_eq!(got, n, "entries of {channel} still unread for {group}");
}

fn assert_names_missing_handler(err: &dtrsfw::redis::Error, channel: &str) {
    let text = err.to_string();
    assert_eq!(err.kind(), dtrsfw::redis::ErrorKind::InvalidInput, "{text}");
    assert!(
        text.contains(&format!("{channel:?}")) && text.contains("no handler"),
        "the error names the channel without a handler: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consuming_a_channel_without_a_handler_is_an_error_and_reads_nothing() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let c = Consumer::new(&redis, "nohandler").unwrap();
    c.register_channel("bare", opts()).await.unwrap();
    publish_n(&mut conn, "bare", 10);
    let err = c.consume_messages("bare", "nohandler", BLOCK).await.unwrap_err();
    assert_names_missing_handler(&err, "bare");
    let err = c
        .persist_consume_messages("bare", "nohandler", REST, BLOCK)
        .await
        .unwrap_err();
    assert_names_missing_handler(&err, "bare");
    assert_names_missing_handler(&c.consume_all_channels(BLOCK).await.unwrap_err(), "bare");
    assert_names_missing_handler(&c.persist_consume_all_channels(REST, BLOCK).await.unwrap_err(), "bare");
    let err = c
        .persist_consume_all_channels_until(REST, BLOCK, std::future::pending())
        .await
        .unwrap_err();
    assert_names_missing_handler(&err, "bare");
    let stats = c.get_stats().await.unwrap().channels["bare"].clone();
    assert_eq!(stats.processed, 0);
    assert_all_unread(&mut conn, "bare", "bare:nohandler:cg", 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consuming_all_channels_when_one_has_no_handler_reads_none_of_them() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let c = Consumer::new(&redis, "mixed").unwrap();
    c.register_channel("handled", opts()).await.unwrap();
    c.register_channel("unhandled", opts()).await.unwrap();
    // A channel that is not read needs no handler.
    c.register_channel("write-only", opts().read_messages(false))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    c.register_handler("handled", recorder(&seen)).unwrap();
    publish_n(&mut conn, "handled", 10);
    publish_n(&mut conn, "unhandled", 10);
    assert_names_missing_handler(&c.consume_all_channels(BLOCK).await.unwrap_err(), "unhandled");
    assert_names_missing_handler(
        &c.persist_consume_all_channels(REST, BLOCK).await.unwrap_err(),
        "unhandled",
    );
    assert!(seen.lock().unwrap().is_empty(), "no channel was read");
    assert_all_unread(&mut conn, "handled", "handled:mixed:cg", 10);
    assert_all_unread(&mut conn, "unhandled", "unhandled:mixed:cg", 10);
}

#[test]
fn blocking_consumer_without_a_handler_is_an_error_and_reads_nothing() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let c = BlockingConsumer::new(&redis, "nohandler-sync").unwrap();
    c.register_channel("bare", opts()).unwrap();
    publish_n(&mut conn, "bare", 10);
    let group = "bare:nohandler-sync:cg";
    assert_names_missing_handler(&c.consume_messages("bare", group, BLOCK).unwrap_err(), "bare");
    let err = c.persist_consume_messages("bare", group, REST, BLOCK).unwrap_err();
    assert_names_missing_handler(&err, "bare");
    assert_names_missing_handler(&c.consume_all_channels(BLOCK).unwrap_err(), "bare");
    assert_names_missing_handler(&c.persist_consume_all_channels(REST, BLOCK).unwrap_err(), "bare");
    assert_all_unread(&mut conn, "bare", group, 10);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_shut_down_consumer_reads_nothing_and_a_new_one_takes_over() {
    let server = Server::start();
    let redis = instance(&server);
    let mut conn = server.connection();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let c = Consumer::new(&redis, "once").unwrap();
    c.register_channel("s", opts()).await.unwrap();
    c.register_handler("s", recorder(&seen)).unwrap();
    c.shutdown();
    publish_n(&mut conn, "s", 5);
    let start = Instant::now();
    assert_eq!(
        c.clone()
            .consume_messages("s", "once", Duration::from_secs(5))
            .await
            .unwrap(),
        0
    );
    c.persist_consume_all_channels(REST, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "returned at once, without a blocking read: {:?}",
        start.elapsed()
    );
    assert!(seen.lock().unwrap().is_empty());
    assert_eq!(pending_count(&mut conn, "s", "s:once:cg"), 0);
    assert_eq!(group_lag(&mut conn, "s", "s:once:cg"), Some(5), "nothing was read");
    // A new consumer of the same service consumes them.
    let again = Consumer::new(&redis, "once").unwrap();
    again.register_channel("s", opts()).await.unwrap();
    again.register_handler("s", recorder(&seen)).unwrap();
    run_until(std::slice::from_ref(&again), || seen.lock().unwrap().len() >= 5).await;
    assert_eq!(*seen.lock().unwrap(), (0..5).collect::<Vec<_>>());
}
