//! Interoperability with the real Python package (`dtpyfw` 0.6.51 from PyPI, driven by
//! `tests/python/peer.py`): streams and cache, both directions, on one private server.
//! (The sender's own tests cover Rust → Python streams: `tests/sender.rs`.)

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dtrsfw::cache_wrapper;
use dtrsfw::redis::sender::{Message, Sender};
use dtrsfw::redis::{ChannelOptions, Consumer, RedisConfig, RedisInstance, StartFrom};
use dtrsfw_test_support::{Server, parse_json_lines, python_peer, python_peer_command};
use serde_json::{Value, json};

fn instance_for(server: &Server) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).expect("valid config")
}

/// Bodies that exercise the JSON types: nested objects, unicode (BMP and astral),
/// escapes, integers up to 2^53, floats, booleans, null, empty containers.
fn varied_body(i: usize) -> Value {
    json!({
        "seq": i,
        "customer": {"name": "Zoë \"Z\" O'Neil", "city": "Zürich", "emoji": "🚗"},
        "lines": [{"sku": format!("wheel-{i}"), "qty": 4, "price": 129.5 + i as f64}],
        "big": 9_007_199_254_740_993_u64,
        "negative": -17,
        "ratio": 0.1,
        "flags": [true, false, null],
        "empty": {"list": [], "map": {}},
        "text": "tab\tnewline\nbackslash\\ slash/",
    })
}

/// A consumer of `service` that records every delivery, from the start of the stream.
async fn recording_consumer(redis: &RedisInstance, service: &str) -> (Consumer, Arc<Mutex<Vec<(String, Value)>>>) {
    let consumer = Consumer::new(redis, service).unwrap();
    consumer
        .register_channel("orders", ChannelOptions::new().start_from(StartFrom::Beginning))
        .await
        .unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let sink = seen.clone();
    consumer
        .register_handler("orders", move |name, payload| {
            sink.lock().unwrap().push((name.to_owned(), payload.clone()));
            Ok::<(), String>(())
        })
        .unwrap();
    (consumer, seen)
}

#[tokio::test]
async fn what_python_publishes_a_rust_consumer_receives_whole() {
    let server = Server::start();
    let redis = instance_for(&server);
    let sent: Vec<Value> = (0..200)
        .map(|i| json!({"name": format!("order.{}", ["created", "paid", "shipped"][i % 3]), "body": varied_body(i)}))
        .collect();
    let file = server.dir().join("to-send.jsonl");
    std::fs::write(&file, sent.iter().map(|m| m.to_string() + "\n").collect::<String>()).unwrap();
    python_peer(&server.url(), &["send", "orders", file.to_str().unwrap()]);

    let (consumer, seen) = recording_consumer(&redis, "billing").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.lock().unwrap().len() < sent.len() && Instant::now() < deadline {
        consumer.consume_all_channels(Duration::from_millis(100)).await.unwrap();
    }
    let got: Vec<Value> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(name, body)| json!({"name": name, "body": body}))
        .collect();
    assert_eq!(got, sent, "same names and bodies, in order");
    let stats = consumer.get_stats().await.unwrap();
    assert_eq!(stats.channels["orders"].pending, Some(0), "all acknowledged");
}

#[tokio::test]
async fn a_python_and_a_rust_instance_of_one_service_share_the_work_exactly_once() {
    let server = Server::start();
    let redis = instance_for(&server);
    // The Rust instance creates the group `orders:billing:cg` at the start of the stream;
    // the Python instance of the same service joins it.
    let (consumer, seen) = recording_consumer(&redis, "billing").await;
    let python = python_peer_command(&server.url(), &["consume", "orders", "billing", "0", "30"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let rust = {
        let consumer = consumer.clone();
        tokio::spawn(async move {
            consumer
                .persist_consume_all_channels(Duration::from_millis(10), Duration::from_millis(100))
                .await
        })
    };

    // Both instances should be reading before the first message: a Python interpreter can
    // take longer to start than the bursts below last, on a loaded machine. An instance
    // shows up among the group's consumers at its first read on Valkey 8.1/9.1; against
    // Redis 7.0 the Python instance was not listed before its first delivery, so there
    // the wait ends after a start-up allowance instead.
    let mut conn = server.connection();
    let allowance = Instant::now() + Duration::from_secs(8);
    while Instant::now() < allowance {
        let consumers: Vec<redis::Value> = redis::cmd("XINFO")
            .arg("CONSUMERS")
            .arg("orders")
            .arg("orders:billing:cg")
            .query(&mut conn)
            .unwrap_or_default();
        if consumers.len() >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    // Bursts with pauses, so both instances are waiting when messages arrive.
    let sender = Sender::new(&redis);
    sender.register_channel("orders").unwrap();
    let total = 400;
    for burst in 0..20 {
        let messages: Vec<Message> = (0..20)
            .map(|i| Message::new("order.created", &json!({"seq": burst * 20 + i})).unwrap())
            .collect();
        sender.send_messages("orders", &messages).await.unwrap();
        tokio::time::sleep(Duration::from_millis(30)).await;
    }

    // Done when the group has delivered everything and nothing is pending.
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let groups: redis::streams::StreamInfoGroupsReply = redis::cmd("XINFO")
            .arg("GROUPS")
            .arg("orders")
            .query(&mut conn)
            .unwrap();
        let g = &groups.groups[0];
        if g.lag == Some(0) && g.pending == 0 {
            break;
        }
        assert!(Instant::now() < deadline, "not all consumed: {g:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    consumer.shutdown();
    rust.await.unwrap().unwrap();
    let python = python.wait_with_output().unwrap();
    assert!(python.status.success(), "{}", String::from_utf8_lossy(&python.stderr));

    let seq = |body: &Value| body["seq"].as_u64().unwrap();
    let by_rust: Vec<u64> = seen.lock().unwrap().iter().map(|(_, b)| seq(b)).collect();
    let by_python: Vec<u64> = parse_json_lines(&python.stdout)
        .iter()
        .map(|m| seq(&m["body"]))
        .collect();
    eprintln!(
        "shared group: rust handled {}, python handled {}",
        by_rust.len(),
        by_python.len()
    );
    assert!(!by_rust.is_empty() && !by_python.is_empty(), "both instances took part");
    let all: Vec<u64> = by_rust.iter().chain(&by_python).copied().collect();
    assert_eq!(all.len(), total, "every message handled exactly once between them");
    assert_eq!(
        all.iter().copied().collect::<BTreeSet<_>>(),
        (0..total as u64).collect()
    );
}

static RUST_COMPUTATIONS: AtomicUsize = AtomicUsize::new(0);

/// The Rust twin of the peer's Python function: same namespace, same argument names in
/// the same order (`x`, `name`, `tags`, `attrs`).
#[cache_wrapper(redis = redis, namespace = "interop", expire = 3600, skip_cache_keys = [redis])]
fn compute(redis: &RedisInstance, x: i64, name: &str, tags: Vec<String>, attrs: BTreeMap<String, Value>) -> Value {
    RUST_COMPUTATIONS.fetch_add(1, Ordering::SeqCst);
    json!({"echo": {"x": x, "name": name, "tags": tags, "attrs": attrs}, "source": "rust"})
}

#[test]
fn cached_values_are_shared_with_python_both_ways() {
    let server = Server::start();
    let redis = instance_for(&server);
    let args = |x: i64, name: &str| {
        let attrs: BTreeMap<String, Value> = [
            ("a".to_owned(), json!(1)),
            ("nested".to_owned(), json!({"k": ["v", 2]})),
            ("z".to_owned(), json!("ü")),
        ]
        .into();
        (x, name.to_owned(), vec!["new".to_owned(), "ünï".to_owned()], attrs)
    };
    // Python's keyword arguments, in the declaration order of the Rust function (map keys
    // sorted, as Rust's BTreeMap serializes them).
    let kwargs = |(x, name, tags, attrs): &(i64, String, Vec<String>, BTreeMap<String, Value>)| {
        format!(
            "{{\"x\": {x}, \"name\": {}, \"tags\": {}, \"attrs\": {}}}",
            json!(name),
            json!(tags),
            json!(attrs)
        )
    };

    // Python computes and caches; Rust hits without computing.
    let first = args(1, "Zoë ✓");
    let py = python_peer(&server.url(), &["cache", "interop", &kwargs(&first)]);
    assert_eq!(py[0]["computed"], true);
    let before = RUST_COMPUTATIONS.load(Ordering::SeqCst);
    let got = compute(&redis, first.0, &first.1, first.2.clone(), first.3.clone());
    assert_eq!(
        RUST_COMPUTATIONS.load(Ordering::SeqCst),
        before,
        "Rust must not recompute"
    );
    assert_eq!(got, py[0]["result"], "identical decoded value");
    assert_eq!(got["source"], "python");

    // Rust computes and caches; Python hits without computing.
    let second = args(-2, "漢字 and 🚗");
    let rust_value = compute(&redis, second.0, &second.1, second.2.clone(), second.3.clone());
    assert_eq!(rust_value["source"], "rust");
    let py = python_peer(&server.url(), &["cache", "interop", &kwargs(&second)]);
    assert_eq!(py[0]["computed"], false, "Python must not recompute");
    assert_eq!(py[0]["result"], rust_value, "identical decoded value");
}
