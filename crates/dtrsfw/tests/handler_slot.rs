//! The slot the loop polls itself (`streamer/dispatch.rs`, `InlineSlot`): at parallelism 1
//! with async handlers only, the channel's loop runs the handlers instead of spawning a
//! task for them. What a spawned slot promises must hold there too: a panic fails its entry
//! only, entries run in stream order, and a handler that never finishes is abandoned at the
//! shutdown timeout with its entry released. (Claim renewal while such a handler awaits:
//! `streamer.rs`, `long_handler_keeps_its_entry_while_alive`.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dtrsfw::redis::{ChannelOptions, Consumer, ConsumerOptions, Delivery, RedisConfig, RedisInstance, StartFrom};
use dtrsfw_test_support::{Server, pending_entries};

mod common;
use common::{publish_n, spawn_loop, wait_until};

fn instance(server: &Server) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).expect("valid config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_panic_fails_its_entry_only_and_the_rest_run_in_order() {
    let server = Server::start();
    let mut conn = server.connection();
    publish_n(&mut conn, "orders", 20);
    let consumer = Consumer::new(&instance(&server), "svc").unwrap();
    let options = ChannelOptions::new().start_from(StartFrom::Beginning).max_deliveries(1);
    consumer.register_channel("orders", options).await.unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    consumer
        .register_async_handler("orders", move |d: Delivery| {
            let i = d.payload()["i"].as_u64().unwrap();
            record.lock().unwrap().push(i);
            async move {
                tokio::task::yield_now().await;
                assert_ne!(i, 7, "handler bug");
                Ok::<(), String>(())
            }
        })
        .unwrap();
    let task = spawn_loop(&consumer, Duration::from_millis(20), Duration::from_millis(100));
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let s = consumer.get_stats().await.unwrap().channels["orders"].clone();
        if s.processed + s.failed >= 20 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "20 outcomes: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    consumer.shutdown();
    task.await.unwrap().unwrap();

    assert_eq!(
        *seen.lock().unwrap(),
        (0..20).collect::<Vec<u64>>(),
        "each once, in stream order"
    );
    let stats = consumer.get_stats().await.unwrap().channels["orders"].clone();
    assert_eq!((stats.processed, stats.failed, stats.dead_lettered), (19, 1, 1));
    let dlq: Vec<(String, Vec<(String, String)>)> = redis::cmd("XRANGE")
        .arg("orders:dlq")
        .arg("-")
        .arg("+")
        .query(&mut conn)
        .unwrap();
    let error = dlq[0].1.iter().find(|(k, _)| k == "error").map(|(_, v)| v.as_str());
    assert!(
        error.is_some_and(|e| e.contains("panicked") && e.contains("handler bug")),
        "{dlq:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_that_never_finishes_is_abandoned_at_the_shutdown_timeout() {
    let server = Server::start();
    let mut conn = server.connection();
    publish_n(&mut conn, "stuck", 1);
    let stop_quickly = ConsumerOptions::new().shutdown_timeout(Duration::from_millis(100));
    let consumer = Consumer::with_options(&instance(&server), "svc", stop_quickly).unwrap();
    let options = ChannelOptions::new().start_from(StartFrom::Beginning);
    consumer.register_channel("stuck", options).await.unwrap();
    let started = Arc::new(AtomicBool::new(false));
    let flag = started.clone();
    consumer
        .register_async_handler("stuck", move |_d: Delivery| {
            flag.store(true, Ordering::SeqCst);
            std::future::pending::<Result<(), String>>()
        })
        .unwrap();
    let task = spawn_loop(&consumer, Duration::from_millis(20), Duration::from_millis(100));
    wait_until("the handler to start", || started.load(Ordering::SeqCst)).await;
    consumer.shutdown();
    // The loop returns although its handler never does (a generous bound: the machine is
    // shared; the promise is that it returns at all).
    tokio::time::timeout(Duration::from_secs(10), task)
        .await
        .expect("the loop stopped after the shutdown timeout")
        .unwrap()
        .unwrap();

    let rows = pending_entries(&mut conn, "stuck", "stuck:svc:cg");
    assert_eq!(rows.len(), 1, "still pending: {rows:?}");
    assert!(rows[0].2 >= 60_000, "released with the reclaim idle time: {rows:?}");
    let stats = consumer.get_stats().await.unwrap().channels["stuck"].clone();
    assert_eq!((stats.processed, stats.failed), (0, 0));
}
