//! The default consumer's reading and acknowledging under load (`streamer/window.rs`):
//! a backlog is read in batches and acknowledged in batches, in order at parallelism 1;
//! slow handlers read nothing ahead; acknowledgements do not wait for a batch to end;
//! what a stopping instance read and did not finish is released to the others.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dtrsfw::redis::{ChannelOptions, Consumer, ConsumerOptions, RedisConfig, RedisInstance, StartFrom};
use dtrsfw_test_support::{Server, command_calls, pending_count, pending_entries};

mod common;
use common::{publish_n, publish_together, spawn_loop, wait_until};

fn instance(server: &Server) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).expect("valid config")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_default_consumer_reads_and_acknowledges_a_backlog_in_batches_in_order() {
    let server = Server::start();
    let mut conn = server.connection();
    let n = 5_000;
    publish_n(&mut conn, "backlog", n);
    let (reads_before, acks_before) = (command_calls(&mut conn, "xreadgroup"), command_calls(&mut conn, "xack"));
    let consumer = Consumer::new(&instance(&server), "svc").unwrap();
    consumer
        .register_channel("backlog", ChannelOptions::new().start_from(StartFrom::Beginning))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    consumer
        .register_handler("backlog", move |_name, payload| {
            record.lock().unwrap().push(payload["i"].as_u64().unwrap());
            Ok::<(), String>(())
        })
        .unwrap();
    let task = spawn_loop(&consumer, Duration::from_millis(20), Duration::from_millis(100));
    wait_until("the backlog", || seen.lock().unwrap().len() >= n).await;
    consumer.shutdown();
    task.await.unwrap().unwrap();
    let expected: Vec<u64> = (0..n as u64).collect();
    assert_eq!(*seen.lock().unwrap(), expected, "once each, in stream order");
    assert_eq!(
        pending_count(&mut conn, "backlog", "backlog:svc:cg"),
        0,
        "everything acknowledged"
    );
    let reads = command_calls(&mut conn, "xreadgroup") - reads_before;
    let acks = command_calls(&mut conn, "xack") - acks_before;
    let per_message = (reads + acks) as f64 / n as f64;
    eprintln!("backlog of {n}: {reads} XREADGROUP + {acks} XACK = {per_message:.3} commands per message");
    // One of each per entry (2.0) before the window; a full window is 1/32 + 1/32.
    assert!(
        per_message < 0.25,
        "{per_message:.3} commands per message: the backlog was not batched"
    );
}

/// A burst after a trickle, once fast handlers have been timed: the reads that take
/// it, counted by the server. A read asks at least for what the handler finishes in one
/// round trip, so 16 entries arriving at once come in one or two reads; doubling from
/// one entry per read, as before that floor, they took four or five. The floor follows the
/// typical handler time (a median), so the trickle's cold first entry or one handler
/// preempted by a busy host does not split the burst (CI once saw 3 reads when it
/// followed the mean).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_after_a_pause_is_read_at_once() {
    let server = Server::start();
    let mut conn = server.connection();
    let (consumer, seen) = recording_consumer(&server, "burst", ChannelOptions::new(), Duration::ZERO).await;
    // A block longer than the test: no read returns empty meanwhile.
    let task = spawn_loop(&consumer, Duration::from_millis(20), Duration::from_secs(20));
    // A trickle, one at a time: the handler's pace is settled. The budget's running mean
    // starts at the first (cold) entry; 24 entries leave it a weight under 5 %.
    let trickle = 24;
    for i in 0..trickle {
        publish_together(&mut conn, "burst", i..i + 1);
        wait_until("the trickle", || seen.lock().unwrap().len() > i).await;
    }
    // The loop is blocked in its next read (counted by the server when it returns).
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reads_before = command_calls(&mut conn, "xreadgroup");
    publish_together(&mut conn, "burst", trickle..trickle + 16);
    wait_until("the burst", || seen.lock().unwrap().len() >= trickle + 16).await;
    tokio::time::sleep(Duration::from_millis(100)).await;
    let reads = command_calls(&mut conn, "xreadgroup") - reads_before;
    consumer.shutdown();
    task.await.unwrap().unwrap();
    assert_eq!(
        *seen.lock().unwrap(),
        (0..trickle as u64 + 16).collect::<Vec<u64>>(),
        "in order, once each"
    );
    eprintln!("a burst of 16 after a trickle: {reads} XREADGROUP");
    assert!((1..=2).contains(&reads), "{reads} reads for a burst of 16");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_handlers_read_nothing_ahead() {
    let server = Server::start();
    let mut conn = server.connection();
    publish_n(&mut conn, "slow", 30);
    let consumer = Consumer::new(&instance(&server), "svc").unwrap();
    consumer
        .register_channel("slow", ChannelOptions::new().start_from(StartFrom::Beginning))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(0usize));
    let record = seen.clone();
    consumer
        .register_handler("slow", move |_name, _payload| {
            std::thread::sleep(Duration::from_millis(40));
            *record.lock().unwrap() += 1;
            Ok::<(), String>(())
        })
        .unwrap();
    let task = spawn_loop(&consumer, Duration::from_millis(20), Duration::from_millis(100));
    let mut most_pending = 0;
    let start = Instant::now();
    while *seen.lock().unwrap() < 10 {
        assert!(start.elapsed() < Duration::from_secs(30), "timed out");
        most_pending = most_pending.max(pending_count(&mut conn, "slow", "slow:svc:cg"));
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    consumer.shutdown();
    task.await.unwrap().unwrap();
    // 40 ms per entry is past the 5 ms queue budget: nothing is read ahead. Pending are
    // the running entry and finished ones whose `XACK` is on its way; a window of even 4 entries would show 5.
    assert!(
        most_pending <= 3,
        "{most_pending} entries held at once by a slow single-slot consumer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledgements_do_not_wait_for_the_batch_to_end() {
    let server = Server::start();
    let mut conn = server.connection();
    publish_n(&mut conn, "batch", 60);
    let consumer = Consumer::new(&instance(&server), "svc").unwrap();
    // A fixed read-ahead: one read takes the whole batch; the next read would come only
    // after half of it ran (30 entries × 20 ms).
    let opts = ChannelOptions::new().start_from(StartFrom::Beginning).read_ahead(59);
    consumer.register_channel("batch", opts).await.unwrap();
    let seen = Arc::new(Mutex::new(0usize));
    let record = seen.clone();
    consumer
        .register_handler("batch", move |_name, _payload| {
            std::thread::sleep(Duration::from_millis(20));
            *record.lock().unwrap() += 1;
            Ok::<(), String>(())
        })
        .unwrap();
    let task = spawn_loop(&consumer, Duration::from_millis(20), Duration::from_millis(100));
    wait_until("10 entries handled", || *seen.lock().unwrap() >= 10).await;
    // Handled entries are acknowledged within ~10 ms (+ one handler) of finishing.
    tokio::time::sleep(Duration::from_millis(50)).await;
    let handled_before = *seen.lock().unwrap() as u64;
    let pending_now = pending_count(&mut conn, "batch", "batch:svc:cg");
    let handled_after = *seen.lock().unwrap() as u64;
    consumer.shutdown();
    task.await.unwrap().unwrap();
    eprintln!("{pending_now} pending with {handled_before}..{handled_after} of 60 handled");
    assert!(
        pending_now <= 60 - handled_before + 3,
        "{pending_now} pending after {handled_before} of 60 handled: acknowledgements waited for the batch"
    );
    assert!(
        pending_now >= 60 - handled_after,
        "an entry was acknowledged before it was handled"
    );
}

/// A consumer that handles `channel` of service `svc`, recording what its handler saw;
/// its handler blocks `first_for` on the first entry it gets.
async fn recording_consumer(
    server: &Server,
    channel: &str,
    options: ChannelOptions,
    first_for: Duration,
) -> (Consumer, Arc<Mutex<Vec<u64>>>) {
    let stop_quickly = ConsumerOptions::new().shutdown_timeout(Duration::from_millis(100));
    let consumer = Consumer::with_options(&instance(server), "svc", stop_quickly).unwrap();
    consumer
        .register_channel(channel, options.start_from(StartFrom::Beginning))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let record = seen.clone();
    consumer
        .register_handler(channel, move |_name, payload| {
            let first = {
                let mut seen = record.lock().unwrap();
                seen.push(payload["i"].as_u64().unwrap());
                seen.len() == 1
            };
            if first {
                std::thread::sleep(first_for);
            }
            Ok::<(), String>(())
        })
        .unwrap();
    (consumer, seen)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_not_finished_at_shutdown_are_released_to_other_instances() {
    let server = Server::start();
    let mut conn = server.connection();
    publish_n(&mut conn, "deploy", 50);
    // A reads its free slot plus 16 ahead and starts the first entry (500 ms); told to
    // stop meanwhile, it gives handlers 100 ms, then abandons the running one: 17
    // entries were read and not finished, 16 of them never started.
    let options = ChannelOptions::new().read_ahead(16);
    let (a, seen_a) = recording_consumer(&server, "deploy", options.clone(), Duration::from_millis(500)).await;
    let task = spawn_loop(&a, Duration::from_millis(20), Duration::from_millis(100));
    wait_until("A's first entry", || !seen_a.lock().unwrap().is_empty()).await;
    a.shutdown();
    task.await.unwrap().unwrap();
    assert_eq!(*seen_a.lock().unwrap(), [0], "A started one entry");

    // Still pending under A's name, delivered once, but idle for the whole reclaim time.
    let rows = pending_entries(&mut conn, "deploy", "deploy:svc:cg");
    assert_eq!(rows.len(), 17, "the running entry and those read ahead: {rows:?}");
    for (_, owner, idle_ms, deliveries) in &rows {
        assert_eq!(owner, a.consumer_name());
        assert!(*idle_ms >= 60_000, "released with the reclaim idle time: {rows:?}");
        assert_eq!(*deliveries, 1, "a release is not a delivery");
    }

    // A new instance (another name, the default reclaim time of a minute) takes them at
    // its first reclaim, when it starts, not a minute later.
    let (b, seen_b) = recording_consumer(&server, "deploy", options, Duration::ZERO).await;
    let task = spawn_loop(&b, Duration::from_millis(20), Duration::from_millis(100));
    wait_until("B handling all 50", || seen_b.lock().unwrap().len() >= 50).await;
    b.shutdown();
    task.await.unwrap().unwrap();
    let mut seen = seen_b.lock().unwrap().clone();
    seen.sort_unstable();
    assert_eq!(seen, (0..50).collect::<Vec<u64>>());
    assert_eq!(pending_count(&mut conn, "deploy", "deploy:svc:cg"), 0);
}
