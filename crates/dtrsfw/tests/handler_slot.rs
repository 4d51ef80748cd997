//! The slot the loop polls itself (`streamer/dispatch.rs`, `InlineSlot`): with async
//! handlers only, the channel's loop runs one slot's handlers instead of spawning a task
//! for them (every chunk at parallelism 1, whichever chunk finds it free above). What a
//! spawned slot promises must hold there too: a panic fails its entry only, entries run
//! in stream order, and a handler that never finishes is abandoned at the shutdown
//! timeout with its entry released. Above parallelism 1, a handler awaiting in the loop's
//! slot holds back neither the other slots nor the reads that feed them, and handlers
//! timed as slow get a slot each (only fast ones share a chunk). (Claim renewal
//! while such a handler awaits: `streamer.rs`, `long_handler_keeps_its_entry_while_alive`.)

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use dtrsfw::redis::{
    ChannelOptions, ChannelStats, Consumer, ConsumerOptions, Delivery, RedisConfig, RedisInstance, StartFrom,
};
use dtrsfw_test_support::{Server, pending_entries};

mod common;
use common::{publish_n, publish_together, spawn_loop, wait_until};

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
    wait_for_outcomes(&consumer, "orders", 20).await;
    let stats = stop_and_stats(&consumer, task, "orders").await;

    assert_eq!(
        *seen.lock().unwrap(),
        (0..20).collect::<Vec<u64>>(),
        "each once, in stream order"
    );
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

/// A consumer of `channel` (from its beginning) with four slots, one entry read per free
/// slot, no retry.
async fn four_slots(server: &Server, channel: &str) -> Consumer {
    let consumer = Consumer::new(&instance(server), "svc").unwrap();
    let options = ChannelOptions::new()
        .start_from(StartFrom::Beginning)
        .parallelism(4)
        .read_ahead(0)
        .max_deliveries(1);
    consumer.register_channel(channel, options).await.unwrap();
    consumer
}

/// Passes once every handler `all` waits for is here at the same time; fails after 10 s.
async fn side_by_side(all: Arc<tokio::sync::Barrier>) -> Result<(), String> {
    tokio::time::timeout(Duration::from_secs(10), all.wait())
        .await
        .map(|_| ())
        .map_err(|_| "the other handlers never ran beside this one".to_owned())
}

/// Shuts the consumer down, waits for its loop `task` to return, and gives the channel's
/// figures.
async fn stop_and_stats(
    consumer: &Consumer,
    task: tokio::task::JoinHandle<dtrsfw::redis::Result<()>>,
    channel: &str,
) -> ChannelStats {
    consumer.shutdown();
    task.await.unwrap().unwrap();
    consumer.get_stats().await.unwrap().channels[channel].clone()
}

/// Waits for the outcomes of `n` entries on `channel` (processed or failed).
async fn wait_for_outcomes(consumer: &Consumer, channel: &str, n: u64) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let s = consumer.get_stats().await.unwrap().channels[channel].clone();
        if s.processed + s.failed >= n {
            return;
        }
        assert!(tokio::time::Instant::now() < deadline, "{n} outcomes: {s:?}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn above_parallelism_1_the_loops_slot_runs_beside_the_spawned_ones() {
    let server = Server::start();
    let mut conn = server.connection();
    publish_n(&mut conn, "fanout", 4);
    // One read of four entries, one per slot: the first in the loop's slot, three spawned.
    let consumer = four_slots(&server, "fanout").await;
    // Each handler passes only once all four are running at the same time: a slot that
    // held the others back until it finished would time out here.
    let all_four = Arc::new(tokio::sync::Barrier::new(4));
    consumer
        .register_async_handler("fanout", move |_d: Delivery| {
            let all_four = all_four.clone();
            side_by_side(all_four)
        })
        .unwrap();
    let task = spawn_loop(&consumer, Duration::from_millis(20), Duration::from_millis(100));
    wait_for_outcomes(&consumer, "fanout", 4).await;
    let stats = stop_and_stats(&consumer, task, "fanout").await;
    assert_eq!((stats.processed, stats.failed), (4, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn handlers_timed_as_slow_still_get_a_slot_each() {
    let server = Server::start();
    let mut conn = server.connection();
    publish_n(&mut conn, "paced", 1);
    let consumer = four_slots(&server, "paced").await;
    // Entry 0 sets the pace (30 ms); the next four, read together (published in one
    // transaction), pass only once all four run at the same time: chunks sized for fast
    // handlers would run them one after the other and time out.
    let all_four = Arc::new(tokio::sync::Barrier::new(4));
    consumer
        .register_async_handler("paced", move |d: Delivery| {
            let first = d.payload()["i"].as_u64() == Some(0);
            let all_four = all_four.clone();
            async move {
                if first {
                    tokio::time::sleep(Duration::from_millis(30)).await;
                    return Ok(());
                }
                side_by_side(all_four).await
            }
        })
        .unwrap();
    let task = spawn_loop(&consumer, Duration::from_millis(20), Duration::from_millis(100));
    wait_for_outcomes(&consumer, "paced", 1).await;
    publish_together(&mut conn, "paced", 1..5);
    wait_for_outcomes(&consumer, "paced", 5).await;
    let stats = stop_and_stats(&consumer, task, "paced").await;
    assert_eq!((stats.processed, stats.failed), (5, 0), "{stats:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_handler_awaiting_in_the_loops_slot_does_not_stop_the_reads() {
    let server = Server::start();
    let mut conn = server.connection();
    publish_n(&mut conn, "steady", 10);
    let consumer = Consumer::new(&instance(&server), "svc").unwrap();
    // Reads of one entry per free slot: entry 0 in the loop's slot, then entries 1..10
    // each read once the spawned slot is free again.
    let options = ChannelOptions::new()
        .start_from(StartFrom::Beginning)
        .parallelism(2)
        .read_ahead(0)
        .max_deliveries(1);
    consumer.register_channel("steady", options).await.unwrap();
    let others_done = Arc::new(AtomicUsize::new(0));
    let done = others_done.clone();
    consumer
        .register_async_handler("steady", move |d: Delivery| {
            let i = d.payload()["i"].as_u64().unwrap();
            let done = done.clone();
            async move {
                if i > 0 {
                    done.fetch_add(1, Ordering::SeqCst);
                    return Ok(());
                }
                // Entry 0 finishes only after the other nine were read and handled.
                let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
                while done.load(Ordering::SeqCst) < 9 {
                    if tokio::time::Instant::now() > deadline {
                        return Err("the loop stopped reading while entry 0 waited".to_owned());
                    }
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                Ok(())
            }
        })
        .unwrap();
    let task = spawn_loop(&consumer, Duration::from_millis(20), Duration::from_millis(100));
    wait_for_outcomes(&consumer, "steady", 10).await;
    let stats = stop_and_stats(&consumer, task, "steady").await;
    assert_eq!((stats.processed, stats.failed), (10, 0), "{stats:?}");
    assert_eq!(others_done.load(Ordering::SeqCst), 9);
}
