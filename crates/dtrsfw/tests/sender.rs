//! The stream sender against real servers: wire format, typed round trip, batches,
//! retention, errors, concurrency, retries, server restarts, and interoperability with the
//! real Python package in both directions.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use dtrsfw::redis::sender::{EntryId, Message, Retention, Sender, SenderOptions};
use dtrsfw::redis::{ErrorKind, RedisConfig, RedisInstance};
use dtrsfw_test_support::Server;
use serde::{Deserialize, Serialize};

fn instance_for(server: &Server) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).expect("valid config")
}

/// Every entry of `stream`, read raw: (id, [field, value, field, value, ...]).
fn xrange(server: &Server, stream: &str) -> Vec<(String, Vec<String>)> {
    redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut server.connection())
        .expect("XRANGE")
}

fn xlen(server: &Server, stream: &str) -> usize {
    redis::cmd("XLEN")
        .arg(stream)
        .query(&mut server.connection())
        .expect("XLEN")
}

fn numbered(count: usize) -> Vec<Message> {
    (0..count)
        .map(|i| Message::new("n", &serde_json::json!({ "i": i })).unwrap())
        .collect()
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Order {
    id: u64,
    customer: String,
    lines: Vec<(String, f64)>,
    note: Option<String>,
}

#[tokio::test]
async fn an_entry_has_exactly_the_python_fields_name_and_json_body() {
    let server = Server::start();
    let sender = Sender::new(&instance_for(&server));
    sender.register_channel("orders").unwrap();
    let message = Message::new("order.created", &serde_json::json!({"id": 1, "tags": ["a", "é"]})).unwrap();

    let id = sender.send_message("orders", &message).await.unwrap();

    let entries = xrange(&server, "orders");
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].0, id.to_string());
    assert_eq!(
        entries[0].1,
        ["name", "order.created", "body", r#"{"id":1,"tags":["a","é"]}"#]
    );
    let body: serde_json::Value = serde_json::from_str(&entries[0].1[3]).unwrap();
    assert_eq!(body, serde_json::json!({"id": 1, "tags": ["a", "é"]}));
}

#[tokio::test]
async fn a_typed_body_round_trips_through_the_stream() {
    let server = Server::start();
    let sender = Sender::new(&instance_for(&server));
    sender.register_channel("orders").unwrap();
    let order = Order {
        id: u64::MAX,
        customer: "Zoë \"Z\" O'Neil\n".into(),
        lines: vec![("wheel".into(), 99.5), ("bolt".into(), 0.25)],
        note: None,
    };

    sender
        .send_message("orders", &Message::new("order.created", &order).unwrap())
        .await
        .unwrap();

    let entries = xrange(&server, "orders");
    let fields = entries[0].1.iter().map(String::as_bytes).collect::<Vec<_>>();
    let decoded = Message::from_fields(fields.chunks(2).map(|kv| (kv[0], kv[1]))).unwrap();
    assert_eq!(decoded.name(), "order.created");
    assert_eq!(decoded.body_as::<Order>().unwrap(), order);
}

#[test]
fn blocking_sends_write_the_same_entries_as_async_ones() {
    let server = Server::start();
    let sender = Sender::new(&instance_for(&server));
    sender.register_channel("orders").unwrap();
    let message = Message::new("order.created", &serde_json::json!({"id": 7})).unwrap();

    let one = sender.send_message_blocking("orders", &message).unwrap();
    let batch = sender
        .send_messages_blocking("orders", &[message.clone(), message.clone()])
        .unwrap();

    let entries = xrange(&server, "orders");
    let ids: Vec<String> = entries.iter().map(|(id, _)| id.clone()).collect();
    assert_eq!(ids, [one, batch[0], batch[1]].map(|id| id.to_string()));
    for (_, fields) in &entries {
        assert_eq!(fields, &["name", "order.created", "body", r#"{"id":7}"#]);
    }
}

#[tokio::test]
async fn a_batch_of_10000_lands_whole_and_in_order() {
    let server = Server::start();
    // A chunk size that does not divide the batch, so the last chunk is partial.
    let sender = Sender::with_options(&instance_for(&server), SenderOptions::new().set_batch_size(768));
    sender.register_channel("bulk").unwrap();
    let messages = numbered(10_000);

    let ids = sender.send_messages("bulk", &messages).await.unwrap();

    assert_eq!(ids.len(), 10_000);
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "IDs strictly increasing");
    assert_eq!(xlen(&server, "bulk"), 10_000);
    let entries = xrange(&server, "bulk");
    for (i, (entry, id)) in entries.iter().zip(&ids).enumerate() {
        assert_eq!(entry.0, id.to_string());
        assert_eq!(entry.1[3], format!(r#"{{"i":{i}}}"#), "entry {i} holds message {i}");
    }
    assert!(sender.send_messages("bulk", &[]).await.unwrap().is_empty());
}

#[test]
fn a_blocking_batch_lands_whole_and_in_order() {
    let server = Server::start();
    let sender = Sender::with_options(&instance_for(&server), SenderOptions::new().set_batch_size(300));
    sender.register_channel("bulk").unwrap();

    let ids = sender.send_messages_blocking("bulk", &numbered(1000)).unwrap();

    assert_eq!(xlen(&server, "bulk"), 1000);
    let stored: Vec<String> = xrange(&server, "bulk").into_iter().map(|(id, _)| id).collect();
    assert_eq!(stored, ids.iter().map(EntryId::to_string).collect::<Vec<_>>());
}

#[tokio::test]
async fn max_len_retention_bounds_the_stream() {
    let server = Server::start();
    let sender = Sender::new(&instance_for(&server));
    sender
        .register_channel_with("bounded", Retention::MaxLen(1000))
        .unwrap();
    sender.register_channel("unbounded").unwrap();

    let ids = sender.send_messages("bounded", &numbered(5000)).await.unwrap();
    for message in numbered(500) {
        sender.send_message("bounded", &message).await.unwrap();
    }
    sender.send_messages("unbounded", &numbered(5000)).await.unwrap();

    // `~` trims whole nodes of at most 100 entries (stream-node-max-entries): the stream
    // keeps at least the bound and less than one extra node.
    let len = xlen(&server, "bounded");
    assert!((1000..1100).contains(&len), "XLEN {len}");
    let first: EntryId = xrange(&server, "bounded")[0].0.parse().unwrap();
    assert!(first > ids[3900], "the oldest entries are gone");
    assert_eq!(xlen(&server, "unbounded"), 5000, "other channels are not trimmed");
}

#[tokio::test]
async fn min_age_retention_drops_entries_older_than_the_age() {
    let server = Server::start();
    let sender = Sender::new(&instance_for(&server));
    let age = Duration::from_millis(300);
    sender.register_channel_with("recent", Retention::MinAge(age)).unwrap();

    let old = sender.send_messages("recent", &numbered(2000)).await.unwrap();
    // Let the first batch age past the bound (a set-up wait, not a measurement).
    tokio::time::sleep(age * 3).await;
    let new = sender.send_messages("recent", &numbered(200)).await.unwrap();

    let stored: Vec<EntryId> = xrange(&server, "recent")
        .into_iter()
        .map(|(id, _)| id.parse().unwrap())
        .collect();
    let old_left = stored.iter().filter(|id| **id <= old[old.len() - 1]).count();
    // Approximate trimming may keep the one node that straddles the bound.
    assert!(old_left < 100, "{old_left} of 2000 old entries left");
    assert!(new.iter().all(|id| stored.contains(id)), "every new entry kept");
}

#[tokio::test]
async fn misuse_is_an_error_that_names_the_problem() {
    let server = Server::start();
    let sender = Sender::new(&instance_for(&server));
    let message = Message::new("n", &1).unwrap();

    let err = sender.send_message("payments", &message).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput);
    assert!(err.to_string().contains("\"payments\""), "{err}");
    let err = sender
        .send_messages("payments", std::slice::from_ref(&message))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("\"payments\" is not registered"), "{err}");
    let err = sender.send_message_blocking("payments", &message).unwrap_err();
    assert!(err.to_string().contains("\"payments\" is not registered"), "{err}");
    let err = sender.send_messages_blocking("payments", &[]).unwrap_err();
    assert!(err.to_string().contains("\"payments\" is not registered"), "{err}");

    let err = sender.register_channel("").unwrap_err();
    assert!(err.to_string().contains("channel name is empty"), "{err}");
    let err = sender.send_message("", &message).await.unwrap_err();
    assert!(err.to_string().contains("channel name is empty"), "{err}");

    let err = Message::new("", &1).unwrap_err();
    assert!(err.to_string().contains("message name is empty"), "{err}");
    let unserializable: HashMap<(u8, u8), u8> = HashMap::from([((1, 2), 3)]);
    let err = Message::new("bad", &unserializable).unwrap_err();
    assert!(err.is_serialization(), "{err}");
    assert!(err.to_string().contains("\"bad\""), "{err}");

    let exists: bool = redis::cmd("EXISTS")
        .arg("payments")
        .query(&mut server.connection())
        .unwrap();
    assert!(!exists, "nothing was written");
    assert!(!sender.is_registered("payments"));
}

#[tokio::test]
async fn a_server_error_is_returned_at_once_with_its_code() {
    let server = Server::start();
    let sender = Sender::new(&instance_for(&server));
    sender.register_channel("not-a-stream").unwrap();
    redis::cmd("SET")
        .arg("not-a-stream")
        .arg("x")
        .exec(&mut server.connection())
        .unwrap();

    let err = sender
        .send_message("not-a-stream", &Message::new("n", &1).unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.server_code(), Some("WRONGTYPE"), "{err}");
    assert!(err.to_string().contains("attempt 1 of"), "not retried: {err}");
    let err = sender.send_messages("not-a-stream", &numbered(3)).await.unwrap_err();
    assert_eq!(err.server_code(), Some("WRONGTYPE"), "{err}");
    assert!(err.to_string().contains("0 written before"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_sender_serves_64_tasks_over_shared_connections() {
    let server = Server::start();
    let sender = Sender::new(&instance_for(&server));
    sender.register_channel("shared").unwrap();

    let tasks: Vec<_> = (0..64)
        .map(|t| {
            let sender = sender.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for i in 0..50 {
                    let message = Message::new("n", &serde_json::json!({"t": t, "i": i})).unwrap();
                    ids.push(sender.send_message("shared", &message).await.unwrap());
                }
                ids
            })
        })
        .collect();
    let mut all = HashSet::new();
    for task in tasks {
        let ids = task.await.unwrap();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "a task's sends are ordered");
        all.extend(ids);
    }

    assert_eq!(all.len(), 64 * 50);
    assert_eq!(xlen(&server, "shared"), 64 * 50);
    let clients: String = redis::cmd("CLIENT")
        .arg("LIST")
        .query(&mut server.connection())
        .unwrap();
    // The shared multiplexed connection, plus this assertion's own connections.
    let sender_connections = clients.lines().filter(|l| !l.contains("cmd=client")).count();
    assert!(sender_connections <= 2, "{clients}");
}

/// Sends in a loop while the server restarts, with `attempts` tries per send; checks that
/// sends resume and that every returned ID is stored, and returns how many sends failed.
async fn send_loop_across_a_restart(attempts: u32) -> usize {
    let mut server = Server::builder().appendonly().start();
    let redis = RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(server.url())
            .set_redis_socket_timeout(Duration::from_secs(1)),
    )
    .unwrap();
    let sender = Sender::with_options(
        &redis,
        SenderOptions::new()
            .set_max_attempts(attempts)
            .set_initial_backoff(Duration::from_millis(20)),
    );
    sender.register_channel("events").unwrap();
    let restarted = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));

    let loop_task = tokio::spawn({
        let sender = sender.clone();
        let restarted = restarted.clone();
        async move {
            let mut results = Vec::new();
            let mut after_restart_ok = 0;
            let deadline = Instant::now() + Duration::from_secs(30);
            while after_restart_ok < 200 && Instant::now() < deadline {
                let message = Message::new("tick", &results.len()).unwrap();
                let result = sender.send_message("events", &message).await;
                if restarted.load(std::sync::atomic::Ordering::SeqCst) && result.is_ok() {
                    after_restart_ok += 1;
                }
                results.push(result);
            }
            (results, after_restart_ok)
        }
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let server = tokio::task::spawn_blocking(move || {
        server.restart();
        server
    })
    .await
    .unwrap();
    restarted.store(true, std::sync::atomic::Ordering::SeqCst);
    let (results, after_restart_ok) = loop_task.await.unwrap();

    assert_eq!(after_restart_ok, 200, "sends resumed after the restart");
    let stored: HashSet<EntryId> = xrange(&server, "events")
        .into_iter()
        .map(|(id, _)| id.parse().unwrap())
        .collect();
    let (mut ok, mut failed) = (0, 0);
    for result in &results {
        match result {
            Ok(id) => {
                ok += 1;
                assert!(stored.contains(id), "returned ID {id} is in the stream");
            }
            Err(err) => {
                failed += 1;
                assert!(err.is_transient(), "only transient errors: {err}");
            }
        }
    }
    assert!(ok >= 200 && stored.len() >= ok, "{ok} ok, {} stored", stored.len());
    failed
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sends_resume_after_a_server_restart_and_every_returned_id_is_stored() {
    // With retries, the restart is usually invisible; either way the checks above hold.
    send_loop_across_a_restart(3).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_retries_a_restart_surfaces_as_errors_never_as_lost_ids() {
    // The first send on the dropped connection fails, and must reach the caller.
    let failed = send_loop_across_a_restart(1).await;
    assert!(failed >= 1, "the restart was not seen by any send");
}

#[test]
fn a_blocking_send_recovers_after_a_server_restart() {
    let mut server = Server::start();
    let sender = Sender::new(&instance_for(&server));
    sender.register_channel("events").unwrap();
    sender
        .send_message_blocking("events", &Message::new("a", &1).unwrap())
        .unwrap();

    server.restart();

    // The pooled connection died with the server; the retry takes a fresh one.
    let id = sender
        .send_message_blocking("events", &Message::new("b", &2).unwrap())
        .unwrap();
    assert_eq!(xrange(&server, "events")[0].0, id.to_string());
}

#[tokio::test]
async fn a_dead_server_gives_the_last_error_after_bounded_attempts() {
    let mut server = Server::start();
    let redis = instance_for(&server);
    let sender = Sender::with_options(
        &redis,
        SenderOptions::new()
            .set_max_attempts(3)
            .set_initial_backoff(Duration::from_millis(10)),
    );
    sender.register_channel("events").unwrap();
    sender
        .send_message("events", &Message::new("a", &1).unwrap())
        .await
        .unwrap();

    server.stop();

    let start = Instant::now();
    let err = sender
        .send_message("events", &Message::new("b", &2).unwrap())
        .await
        .unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("attempt 3 of 3"), "{err}");
    assert!(start.elapsed() < Duration::from_secs(10), "{:?}", start.elapsed());
    let err = sender.send_messages_blocking("events", &numbered(2)).unwrap_err();
    assert!(err.is_transient(), "{err}");
    assert!(err.to_string().contains("attempt 3 of 3"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_timed_out_send_is_retried_and_may_write_a_duplicate() {
    let server = Server::start();
    let redis = RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(server.url())
            .set_redis_socket_timeout(Duration::from_millis(200)),
    )
    .unwrap();
    let sender = Sender::with_options(
        &redis,
        SenderOptions::new()
            .set_max_attempts(20)
            .set_initial_backoff(Duration::from_millis(50))
            .set_max_backoff(Duration::from_millis(100)),
    );
    sender.register_channel("events").unwrap();
    sender
        .send_message("events", &Message::new("warm-up", &0).unwrap())
        .await
        .unwrap();

    let server = std::sync::Arc::new(server);
    server.pause();
    let resumer = std::thread::spawn({
        let server = server.clone();
        move || {
            std::thread::sleep(Duration::from_millis(600));
            server.resume();
        }
    });
    let id = sender
        .send_message("events", &Message::new("during-pause", &1).unwrap())
        .await
        .unwrap();
    resumer.join().unwrap();

    let during: Vec<String> = xrange(&server, "events")
        .into_iter()
        .filter(|(_, fields)| fields[1] == "during-pause")
        .map(|(id, _)| id)
        .collect();
    assert!(during.contains(&id.to_string()));
    // The timed-out attempt(s) may have reached the server too: at-least-once.
    assert!(!during.is_empty() && during.len() <= 20, "{during:?}");
}

/// Runs the Python peer (the real `dtpyfw` 0.6.51) with `args`; its stdout lines as JSON.
fn python_peer(server: &Server, args: &[&str]) -> Vec<serde_json::Value> {
    dtrsfw_test_support::python_peer(&server.url(), args)
}

#[tokio::test]
async fn the_python_package_consumes_what_the_sender_writes() {
    let server = Server::start();
    let sender = Sender::new(&instance_for(&server));
    sender.register_channel("orders").unwrap();
    let order = Order {
        id: 42,
        customer: "Zoë \"Z\" O'Neil".into(),
        lines: vec![("wheel".into(), 99.5)],
        note: Some("ünïcödé ✓".into()),
    };
    sender
        .send_message("orders", &Message::new("order.created", &order).unwrap())
        .await
        .unwrap();
    sender
        .send_messages_blocking(
            "orders",
            &[
                Message::new("order.updated", &serde_json::json!({"id": 42, "state": "paid"})).unwrap(),
                Message::new("order.deleted", &serde_json::json!([])).unwrap(),
            ],
        )
        .unwrap();

    let got = python_peer(&server, &["consume", "orders", "python-service", "3", "10"]);

    assert_eq!(
        got,
        [
            serde_json::json!({"name": "order.created", "body": order}),
            serde_json::json!({"name": "order.updated", "body": {"id": 42, "state": "paid"}}),
            serde_json::json!({"name": "order.deleted", "body": []}),
        ]
    );
}

#[test]
fn what_the_python_package_sends_decodes_into_typed_messages() {
    let server = Server::start();
    let order = Order {
        id: 7,
        customer: "Zoë".into(),
        lines: vec![("bolt".into(), 0.25)],
        note: None,
    };
    let file = server.dir().join("to-send.jsonl");
    std::fs::write(
        &file,
        serde_json::json!({"name": "order.created", "body": order}).to_string() + "\n",
    )
    .unwrap();

    python_peer(&server, &["send", "orders", file.to_str().unwrap()]);

    let entries = xrange(&server, "orders");
    assert_eq!(entries.len(), 1);
    let fields = entries[0].1.iter().map(String::as_bytes).collect::<Vec<_>>();
    let message = Message::from_fields(fields.chunks(2).map(|kv| (kv[0], kv[1]))).unwrap();
    assert_eq!(message.name(), "order.created");
    assert_eq!(message.body_as::<Order>().unwrap(), order);
}
