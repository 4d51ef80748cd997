//! Durable sends (`SenderOptions::set_wait_for_replicas`, `set_wait_for_aof`) against real
//! servers: a primary with a replica (met), a lone server or a frozen replica (not met:
//! `NotDurable` with the written IDs, within the timeout, not sent again), `WAITAOF`
//! where the server has it (refused before writing where it has not), and a Cluster
//! (the wait goes to the channel's primary).

use std::time::{Duration, Instant};

use dtrsfw::redis::sender::{Message, Sender, SenderOptions};
use dtrsfw::redis::{ErrorKind, RedisConfig, RedisInstance};
use dtrsfw_test_support::{Cluster, ReplicaSet, Server, replication_info};

fn instance_for(url: &str) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(url)).expect("valid config")
}

fn sender(url: &str, options: SenderOptions) -> Sender {
    let sender = Sender::with_options(&instance_for(url), options);
    sender.register_channel("orders").unwrap();
    sender
}

fn numbered(count: usize) -> Vec<Message> {
    (0..count)
        .map(|i| Message::new("n", &serde_json::json!({ "i": i })).unwrap())
        .collect()
}

fn xlen(server: &Server, stream: &str) -> usize {
    redis::cmd("XLEN")
        .arg(stream)
        .query(&mut server.connection())
        .expect("XLEN")
}

fn ids_in(server: &Server, stream: &str) -> Vec<String> {
    let entries: Vec<(String, Vec<String>)> = redis::cmd("XRANGE")
        .arg(stream)
        .arg("-")
        .arg("+")
        .query(&mut server.connection())
        .expect("XRANGE");
    entries.into_iter().map(|(id, _)| id).collect()
}

/// Whether the server has `WAITAOF` (Redis >= 7.2, Valkey >= 8.0); prints the skip reason
/// when it has not.
fn has_waitaof(server: &Server, test: &str) -> bool {
    let info: redis::Value = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("WAITAOF")
        .query(&mut server.connection())
        .expect("COMMAND INFO");
    let present = matches!(&info, redis::Value::Array(items) if items.iter().any(|i| *i != redis::Value::Nil));
    if !present {
        eprintln!("SKIPPED part of {test}: this server has no WAITAOF (needs Redis >= 7.2 or Valkey >= 8.0)");
    }
    present
}

#[tokio::test]
async fn with_a_replica_attached_every_send_form_returns_and_the_replica_has_the_entries() {
    let set = ReplicaSet::start(1);
    let sender = sender(&set.primary().url(), SenderOptions::new().set_wait_for_replicas(1));

    let one = sender.send_message("orders", &numbered(1)[0]).await.unwrap();
    let batch = sender.send_messages("orders", &numbered(5)).await.unwrap();
    let blocking = sender.send_message_blocking("orders", &numbered(1)[0]).unwrap();
    let blocking_batch = sender.send_messages_blocking("orders", &numbered(3)).unwrap();

    // WAIT 1 returned: the replica has acknowledged every entry, so it reads them now.
    let mut expected = vec![one.to_string()];
    expected.extend(batch.iter().map(ToString::to_string));
    expected.push(blocking.to_string());
    expected.extend(blocking_batch.iter().map(ToString::to_string));
    assert_eq!(ids_in(&set.replicas()[0], "orders"), expected);
}

#[tokio::test]
async fn without_a_replica_the_send_is_written_not_confirmed_and_not_sent_again() {
    let server = Server::start();
    let timeout = Duration::from_millis(300);
    let options = SenderOptions::new()
        .set_wait_for_replicas(1)
        .set_durability_timeout(timeout);
    let sender = sender(&server.url(), options);

    let started = Instant::now();
    let err = sender.send_message("orders", &numbered(1)[0]).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(err.kind(), ErrorKind::NotDurable, "{err}");
    assert!(!err.is_transient());
    assert!(err.to_string().contains("WAIT: 0 of 1 replicas"), "{err}");
    let written: Vec<String> = err.written_ids().iter().map(ToString::to_string).collect();
    assert_eq!(
        ids_in(&server, "orders"),
        written,
        "the entry is written once, not retried"
    );
    assert_eq!(written.len(), 1);
    assert!(
        elapsed >= timeout && elapsed < timeout + Duration::from_secs(1),
        "{elapsed:?}"
    );

    // A batch: every ID in the error, once each; the blocking twin alike.
    let err = sender.send_messages("orders", &numbered(4)).await.unwrap_err();
    assert!(err.is_not_durable());
    assert_eq!(err.written_ids().len(), 4);
    let err = sender.send_message_blocking("orders", &numbered(1)[0]).unwrap_err();
    assert_eq!(err.written_ids().len(), 1);
    assert_eq!(xlen(&server, "orders"), 6);
}

#[tokio::test]
async fn a_batch_in_chunks_waits_per_chunk_and_the_error_lists_every_written_entry() {
    let mut set = ReplicaSet::start(1);
    let options = SenderOptions::new()
        .set_wait_for_replicas(1)
        .set_batch_size(2)
        .set_durability_timeout(Duration::from_millis(200));
    let sender = sender(&set.primary().url(), options);
    assert_eq!(sender.send_messages("orders", &numbered(5)).await.unwrap().len(), 5);

    // A frozen replica stays attached but acknowledges nothing: the first chunk is not
    // confirmed, and the send stops there.
    set.replica_mut(0).pause();
    let err = sender.send_messages("orders", &numbered(5)).await.unwrap_err();
    set.replica_mut(0).resume();
    assert!(err.is_not_durable(), "{err}");
    assert_eq!(err.written_ids().len(), 2, "{err}");
    assert_eq!(xlen(set.primary(), "orders"), 7);
}

#[tokio::test]
async fn a_wait_longer_than_the_socket_timeout_is_refused_before_writing() {
    let server = Server::start();
    let redis = RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(server.url())
            .set_redis_socket_timeout(Duration::from_secs(1)),
    )
    .unwrap();
    let options = SenderOptions::new()
        .set_wait_for_replicas(1)
        .set_durability_timeout(Duration::from_secs(1));
    let sender = Sender::with_options(&redis, options);
    sender.register_channel("orders").unwrap();
    let err = sender.send_message("orders", &numbered(1)[0]).await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("redis_socket_timeout"), "{err}");
    assert_eq!(xlen(&server, "orders"), 0);
}

#[tokio::test]
async fn waitaof_is_met_with_appendonly_nodes_and_refused_before_writing_where_it_cannot_be() {
    let plain = Server::start();
    let local_fsync = SenderOptions::new().set_wait_for_aof(true, 0);
    if !has_waitaof(&plain, "waitaof_is_met...") {
        // An old server refuses every WAITAOF requirement, before writing.
        let err = sender(&plain.url(), local_fsync)
            .send_message("orders", &numbered(1)[0])
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
        assert!(err.to_string().contains("Redis >= 7.2"), "{err}");
        assert_eq!(xlen(&plain, "orders"), 0);
        return;
    }
    // appendonly off: a local fsync can never happen; refused, nothing written.
    let err = sender(&plain.url(), local_fsync.clone())
        .send_message("orders", &numbered(1)[0])
        .await
        .unwrap_err();
    assert_eq!(err.kind(), ErrorKind::InvalidInput, "{err}");
    assert_eq!(xlen(&plain, "orders"), 0);

    let set = ReplicaSet::start_with(1, || Server::builder().appendonly());
    let both = SenderOptions::new().set_wait_for_replicas(1).set_wait_for_aof(true, 1);
    let sender = sender(&set.primary().url(), both);
    sender.send_message("orders", &numbered(1)[0]).await.unwrap();
    sender.send_messages_blocking("orders", &numbered(3)).unwrap();
    assert_eq!(xlen(&set.replicas()[0], "orders"), 4);

    // Two replica fsyncs asked, one replica: written, not confirmed.
    let too_many = SenderOptions::new()
        .set_wait_for_aof(true, 2)
        .set_durability_timeout(Duration::from_millis(200));
    let err = sender_on(&set, too_many)
        .send_message("orders", &numbered(1)[0])
        .await
        .unwrap_err();
    assert!(err.is_not_durable(), "{err}");
    // (The replica reports its fsync about once a second: 0 or 1 of 2 within 200 ms.)
    assert!(err.to_string().contains("WAITAOF: local fsync done, "), "{err}");
    assert!(err.to_string().contains(" of 2 replicas fsynced"), "{err}");
    assert_eq!(err.written_ids().len(), 1);
}

fn sender_on(set: &ReplicaSet, options: SenderOptions) -> Sender {
    sender(&set.primary().url(), options)
}

/// On a cluster, the `WAIT` must reach the primary that owns the channel's slot: with that
/// primary's replica frozen the send is not confirmed (a `WAIT` on another primary, whose
/// replica is fine, would be).
#[tokio::test]
async fn on_a_cluster_the_wait_goes_to_the_primary_of_the_channel() {
    let cluster = Cluster::start();
    let seeds: Vec<String> = cluster
        .urls()
        .iter()
        .map(|u| u.trim_start_matches("redis://").to_owned())
        .collect();
    let url = format!("redis+cluster://{}", seeds.join(","));
    let options = SenderOptions::new()
        .set_wait_for_replicas(1)
        .set_durability_timeout(Duration::from_millis(300));
    let sender = sender(&url, options);
    sender.send_message("orders", &numbered(1)[0]).await.unwrap();
    sender.send_messages_blocking("orders", &numbered(3)).unwrap();

    let slot: u16 = redis::cmd("CLUSTER")
        .arg("KEYSLOT")
        .arg("orders")
        .query(&mut cluster.nodes()[0].connection())
        .unwrap();
    let primary_port = cluster.nodes()[cluster.primary_for_slot(slot)].port();
    let replica = cluster
        .nodes()
        .iter()
        .find(|n| replication_info(n).contains(&format!("master_port:{primary_port}")))
        .expect("the channel's primary has a replica");
    replica.pause();
    let async_err = sender.send_message("orders", &numbered(1)[0]).await;
    let sync_err = sender.send_messages_blocking("orders", &numbered(2));
    replica.resume();
    let async_err = async_err.unwrap_err();
    assert!(async_err.is_not_durable(), "{async_err}");
    assert_eq!(async_err.written_ids().len(), 1);
    assert_eq!(sync_err.unwrap_err().written_ids().len(), 2);
}
