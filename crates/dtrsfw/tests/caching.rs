//! The function API of `dtrsfw::redis::caching` against real servers: hits and misses,
//! TTLs, conditions, skipped keys, `Err` results, Python key and value formats,
//! fail-open behaviour and the circuit, single-flight, invalidation.

use std::collections::BTreeMap;
use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dtrsfw::redis::caching::{
    CacheArgs, CachedFunction, cache_data, cache_data_async, cache_key, cache_stats, get_cached, invalidate,
    invalidate_async, invalidate_namespace, invalidate_namespace_async,
};
use dtrsfw::redis::{ErrorKind, RedisConfig, RedisInstance};
use dtrsfw_test_support::{Rng, Server};
use redis::Commands;
use serde::Serialize;

fn instance_for(server: &Server) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).expect("valid config")
}

/// Counts how often the cached computation really ran.
#[derive(Default, Clone)]
struct Calls(Arc<AtomicUsize>);

impl Calls {
    fn hit(&self) {
        self.0.fetch_add(1, Ordering::SeqCst);
    }
    fn get(&self) -> usize {
        self.0.load(Ordering::SeqCst)
    }
}

fn args(x: i64, state: &str) -> CacheArgs {
    CacheArgs::new().arg("x", &x).arg("state", state)
}

/// Runs `python3 -c script` with `input` on stdin; its stdout.
fn python(script: &str, input: &str) -> String {
    let mut child = Command::new("python3")
        .args(["-c", script])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("python3 on PATH (scripts/ensure-servers.sh installs it)");
    child.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "python3 failed");
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn second_call_is_a_hit_and_the_function_runs_once() {
    let server = Server::start();
    let redis = instance_for(&server);
    let cached = CachedFunction::builder("hm", ["x", "state"]).build().unwrap();
    let calls = Calls::default();
    let f = |x: i64| {
        calls.hit();
        x * 10
    };
    assert_eq!(cached.call(&redis, &args(1, "used"), || f(1)), 10);
    assert_eq!(cached.call(&redis, &args(1, "used"), || f(1)), 10);
    assert_eq!(cached.call(&redis, &args(2, "used"), || f(2)), 20);
    assert_eq!(calls.get(), 2);
    let stats = cached.stats();
    assert_eq!((stats.hits, stats.misses, stats.errors), (1, 2, 0));
    assert_eq!(
        cache_stats(&redis).hits,
        1,
        "server-wide counters include this function"
    );
}

#[tokio::test]
async fn async_calls_hit_after_the_first() {
    let server = Server::start();
    let redis = instance_for(&server);
    let cached = CachedFunction::builder("hm-async", ["x", "state"]).build().unwrap();
    let calls = Calls::default();
    for _ in 0..3 {
        let v: Vec<String> = cached
            .call_async(&redis, &args(5, "new"), async {
                calls.hit();
                vec!["a".to_owned(), "é".to_owned()]
            })
            .await;
        assert_eq!(v, ["a", "é"]);
    }
    assert_eq!(calls.get(), 1);
    assert_eq!(cached.stats().hits, 2);
}

#[test]
fn ttl_is_set_from_expire_and_absent_without_it() {
    let server = Server::start();
    let redis = instance_for(&server);
    let mut conn = server.connection();
    let with = CachedFunction::builder("ttl", ["x"]).expire(3600).build().unwrap();
    with.call(&redis, &CacheArgs::new().arg("x", &1), || 1);
    let ttl: i64 = conn.ttl(with.key(&CacheArgs::new().arg("x", &1))).unwrap();
    assert!((3590..=3600).contains(&ttl), "TTL {ttl}");

    let without = CachedFunction::builder("nottl", ["x"]).build().unwrap();
    without.call(&redis, &CacheArgs::new().arg("x", &1), || 1);
    let ttl: i64 = conn.ttl(without.key(&CacheArgs::new().arg("x", &1))).unwrap();
    assert_eq!(ttl, -1, "no expiry");

    cache_data(&redis, serde_json::json!({"a": 1}), "data:1", Some(60));
    let ttl: i64 = conn.ttl("data:1").unwrap();
    assert!((50..=60).contains(&ttl), "cache_data TTL {ttl}");
    assert_eq!(
        get_cached::<serde_json::Value>(&redis, "data:1").unwrap(),
        Some(serde_json::json!({"a": 1}))
    );
}

/// Calls twice with `value` under a single condition; whether the second call was a hit.
fn cached_with(redis: &RedisInstance, op: &str, bound: &serde_json::Value, value: &serde_json::Value) -> bool {
    let cached = CachedFunction::builder(format!("op:{op}:{bound}:{value}"), ["v"])
        .cache_only_for("v", op, bound)
        .build()
        .unwrap();
    let calls = Calls::default();
    for _ in 0..2 {
        cached.call(redis, &CacheArgs::new().arg("v", value), || {
            calls.hit();
            0
        });
    }
    calls.get() == 1
}

#[test]
fn each_operator_decides_whether_a_call_is_cached() {
    use serde_json::json;
    let server = Server::start();
    let redis = instance_for(&server);
    let table = [
        ("in", json!(["used", "new"]), json!("used"), true),
        ("in", json!(["used", "new"]), json!("old"), false),
        ("not_in", json!(["used", "new"]), json!("old"), true),
        ("not in", json!(["used", "new"]), json!("new"), false),
        ("==", json!(2020), json!(2020), true),
        ("==", json!(2020), json!(2021), false),
        ("!=", json!("a"), json!("b"), true),
        ("!=", json!("a"), json!("a"), false),
        ("<", json!(10), json!(9.5), true),
        ("<", json!(10), json!(10), false),
        ("<=", json!(10), json!(10), true),
        ("<=", json!(10), json!(11), false),
        (">", json!("m"), json!("z"), true),
        (">", json!("m"), json!("a"), false),
        (">=", json!(2020), json!(2020), true),
        (">=", json!(2020), json!(2019), false),
    ];
    for (op, bound, value, expect) in table {
        assert_eq!(cached_with(&redis, op, &bound, &value), expect, "{value} {op} {bound}");
    }
}

#[test]
fn conditions_are_ored_and_a_call_matching_none_is_not_cached() {
    let server = Server::start();
    let redis = instance_for(&server);
    let cached = CachedFunction::builder("or", ["x", "state"])
        .cache_only_for("state", "in", &["used"])
        .cache_only_for("x", ">=", &100)
        .build()
        .unwrap();
    let calls = Calls::default();
    let run = |x: i64, state: &str| {
        for _ in 0..2 {
            cached.call(&redis, &args(x, state), || {
                calls.hit();
                x
            });
        }
    };
    run(1, "used"); // first condition: 1 computation
    run(100, "new"); // second condition: 1
    run(1, "new"); // neither: 2
    assert_eq!(calls.get(), 4);
    assert_eq!(cached.stats().bypassed, 2);
}

#[test]
fn invalid_options_are_rejected_when_built() {
    let unknown_op = CachedFunction::builder("v", ["x"])
        .cache_only_for("x", "=~", &1)
        .build()
        .unwrap_err();
    assert_eq!(unknown_op.kind(), ErrorKind::InvalidInput);
    assert!(unknown_op.to_string().contains("valid operators"), "{unknown_op}");
    let unknown_arg = CachedFunction::builder("v", ["x"])
        .cache_only_for("y", "==", &1)
        .build()
        .unwrap_err();
    assert!(unknown_arg.to_string().contains("\"y\""), "{unknown_arg}");
    assert!(
        unknown_arg.to_string().contains("the arguments are: x"),
        "{unknown_arg}"
    );
    let unknown_skip = CachedFunction::builder("v", ["x"])
        .skip_cache_keys(["z"])
        .build()
        .unwrap_err();
    assert!(unknown_skip.to_string().contains("skip_cache_keys"), "{unknown_skip}");
}

#[test]
fn skipped_arguments_do_not_change_the_key() {
    let server = Server::start();
    let redis = instance_for(&server);
    let cached = CachedFunction::builder("skip", ["x", "request_id"])
        .skip_cache_keys(["request_id"])
        .build()
        .unwrap();
    let calls = Calls::default();
    for request_id in ["r1", "r2", "r3"] {
        cached.call(
            &redis,
            &CacheArgs::new().arg("x", &7).arg("request_id", request_id),
            || {
                calls.hit();
                7
            },
        );
    }
    assert_eq!(calls.get(), 1);
    assert_eq!(
        cached.key(&CacheArgs::new().arg("x", &7).arg("request_id", "r9")),
        cache_key("skip", &CacheArgs::new().arg("x", &7))
    );
}

#[test]
fn only_ok_results_are_cached() {
    let server = Server::start();
    let redis = instance_for(&server);
    let cached = CachedFunction::builder("err", ["x"]).build().unwrap();
    let calls = Calls::default();
    let a = || CacheArgs::new().arg("x", &1);
    let first: Result<i32, String> = cached.try_call(&redis, &a(), || {
        calls.hit();
        Err("boom".to_owned())
    });
    assert_eq!(first, Err("boom".to_owned()));
    let mut conn = server.connection();
    assert!(
        !conn.exists::<_, bool>(cached.key(&a())).unwrap(),
        "an Err is not stored"
    );
    for _ in 0..2 {
        let r: Result<i32, String> = cached.try_call(&redis, &a(), || {
            calls.hit();
            Ok(5)
        });
        assert_eq!(r, Ok(5));
    }
    assert_eq!(calls.get(), 2, "the Err ran, the first Ok ran, the second Ok was a hit");
}

#[tokio::test]
async fn only_ok_results_are_cached_async() {
    let server = Server::start();
    let redis = instance_for(&server);
    let cached = CachedFunction::builder("err-async", ["x"]).build().unwrap();
    let a = || CacheArgs::new().arg("x", &1);
    let r: Result<i32, &str> = cached.try_call_async(&redis, &a(), async { Err("boom") }).await;
    assert_eq!(r, Err("boom"));
    let r: Result<i32, &str> = cached.try_call_async(&redis, &a(), async { Ok(3) }).await;
    assert_eq!(r, Ok(3));
    let r: Result<i32, &str> = cached.try_call_async(&redis, &a(), async { Ok(99) }).await;
    assert_eq!(r, Ok(3), "the Ok was cached");
}

#[derive(Serialize)]
struct Filters {
    make: &'static str,
    years: Vec<u16>,
    extra: Option<String>,
}

#[test]
fn keys_match_python_json_dumps_and_sha256() {
    let mut map = BTreeMap::new();
    map.insert("k", "v");
    // (namespace, Python kwargs literal, the same arguments in Rust)
    let table: Vec<(&str, &str, CacheArgs)> = vec![
        ("ns", "{'x': 1, 'state': 'used'}", args(1, "used")),
        ("ns", "{}", CacheArgs::new()),
        (
            "ns",
            r#"{'q': 'say "hi"\n\\', 'name': 'Zoë 😀 中文'}"#,
            CacheArgs::new().arg("q", "say \"hi\"\n\\").arg("name", "Zoë 😀 中文"),
        ),
        (
            "cars",
            "{'filters': {'make': 'BMW', 'years': [2019, 2020], 'extra': None}, 'flag': True, 'off': False}",
            CacheArgs::new()
                .arg(
                    "filters",
                    &Filters {
                        make: "BMW",
                        years: vec![2019, 2020],
                        extra: None,
                    },
                )
                .arg("flag", &true)
                .arg("off", &false),
        ),
        (
            "num",
            "{'price': 12.5, 'big': 1e16, 'small': 1e-05, 'one': 1.0, 'neg': -3, 'huge': 18446744073709551615, 'min': -9223372036854775808}",
            CacheArgs::new()
                .arg("price", &12.5)
                .arg("big", &1e16)
                .arg("small", &1e-5)
                .arg("one", &1.0)
                .arg("neg", &-3)
                .arg("huge", &u64::MAX)
                .arg("min", &i64::MIN),
        ),
        (
            "mixed",
            "{'items': [1, 'two', [3, None], {'k': 'v'}], 'unit': None}",
            CacheArgs::new()
                .arg("items", &(1, "two", (3, None::<i32>), &map))
                .arg("unit", &()),
        ),
        (
            "ctrl",
            r"{'c': '\x00\x1f\x7f\t€'}",
            CacheArgs::new().arg("c", "\u{0}\u{1f}\u{7f}\t€"),
        ),
        ("", "{'year': 2020}", CacheArgs::new().arg("year", &2020)),
        (
            "user:data",
            "{'ids': [], 'names': {}}",
            CacheArgs::new()
                .arg("ids", &Vec::<i32>::new())
                .arg("names", &BTreeMap::<String, i32>::new()),
        ),
    ];
    // The Python package's `_cache_key_generator` for keyword arguments, verbatim in
    // substance: namespace + ":" + sha256(json.dumps(kwargs, default=str)), rstrip(":").
    let script = r#"
import ast, hashlib, json, sys
for line in sys.stdin.read().splitlines():
    namespace, literal = line.split("\t", 1)
    kwargs = ast.literal_eval(literal)
    key = f"{namespace}:" if namespace else ""
    if kwargs:
        key += hashlib.sha256(json.dumps(kwargs, default=str).encode("utf-8")).hexdigest() + ":"
    print(key.rstrip(":"))
"#;
    let input: String = table.iter().map(|(ns, lit, _)| format!("{ns}\t{lit}\n")).collect();
    let python_keys = python(script, &input);
    let python_keys: Vec<&str> = python_keys.lines().collect();
    assert_eq!(python_keys.len(), table.len());
    for ((ns, literal, rust), python_key) in table.iter().zip(python_keys) {
        assert_eq!(
            cache_key(ns, rust),
            python_key,
            "{ns} {literal}: Rust JSON {}",
            rust.to_json()
        );
    }
}

/// The must-show case: `f(x=1, state="used")` in namespace `ns`, both directions.
#[test]
fn values_interoperate_with_the_python_format_in_both_directions() {
    let server = Server::start();
    let redis = instance_for(&server);
    let mut conn = server.connection();
    let cached = CachedFunction::builder("ns", ["x", "state"]).build().unwrap();
    let result = serde_json::json!({"price": 1.5, "name": "Zoë", "tags": ["a", null]});

    // Rust writes; Python (the package's formulas) finds the same key and decodes it.
    let value = cached.call(&redis, &args(1, "used"), || result.clone());
    assert_eq!(value, result);
    let key = cached.key(&args(1, "used"));
    let stored: Vec<u8> = conn.get(&key).unwrap();
    let hex: String = stored.iter().map(|b| format!("{b:02x}")).collect();
    let script = r#"
import hashlib, json, sys, zlib
key, hexvalue = sys.stdin.read().split()
expected_key = "ns:" + hashlib.sha256(json.dumps({"x": 1, "state": "used"}, default=str).encode("utf-8")).hexdigest()
assert key == expected_key, (key, expected_key)
print(json.dumps(json.loads(zlib.decompress(bytes.fromhex(hexvalue)).decode("utf-8"))))
"#;
    let decoded = python(script, &format!("{key} {hex}"));
    assert_eq!(
        decoded.trim(),
        r#"{"name": "Zo\u00eb", "price": 1.5, "tags": ["a", null]}"#
    );

    // Python writes (as `_encode_result` does); Rust reads it as a hit.
    let script = r#"
import json, zlib
print(zlib.compress(json.dumps({"from": "python", "n": [1, 2.5]}).encode("utf-8")).hex())
"#;
    let python_value = python(script, "");
    let bytes: Vec<u8> = (0..python_value.trim().len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&python_value.trim()[i..i + 2], 16).unwrap())
        .collect();
    let _: () = conn.set(&key, bytes).unwrap();
    let calls = Calls::default();
    let value = cached.call(&redis, &args(1, "used"), || {
        calls.hit();
        serde_json::json!(null)
    });
    assert_eq!(calls.get(), 0, "the Python value is a hit");
    assert_eq!(value, serde_json::json!({"from": "python", "n": [1, 2.5]}));
}

#[test]
fn a_corrupt_or_foreign_value_is_recomputed_and_overwritten() {
    let server = Server::start();
    let redis = instance_for(&server);
    let mut conn = server.connection();
    let cached = CachedFunction::builder("corrupt", ["x"]).build().unwrap();
    let a = || CacheArgs::new().arg("x", &1);
    let key = cached.key(&a());
    let calls = Calls::default();
    let compute = || {
        calls.hit();
        "fresh".to_owned()
    };

    let _: () = conn.set(&key, "not zlib").unwrap();
    assert_eq!(cached.call(&redis, &a(), compute), "fresh");
    let _: () = conn.del(&key).unwrap();
    let _: () = conn.rpush(&key, "a list").unwrap(); // a foreign type: GET fails with WRONGTYPE
    assert_eq!(cached.call(&redis, &a(), compute), "fresh");
    assert_eq!(calls.get(), 2);
    assert_eq!(cached.stats().errors, 2);
    assert_eq!(
        get_cached::<String>(&redis, &key).unwrap().as_deref(),
        Some("fresh"),
        "overwritten"
    );
    assert_eq!(cached.call(&redis, &a(), compute), "fresh");
    assert_eq!(calls.get(), 2, "then a hit");
}

fn quick_failing(namespace: &str) -> CachedFunction {
    CachedFunction::builder(namespace, ["x"])
        .timeout(Duration::from_millis(200))
        .circuit_cool_down(Duration::from_millis(300))
        .build()
        .unwrap()
}

#[test]
fn a_stopped_server_never_fails_a_call_and_costs_little() {
    let mut server = Server::start();
    let redis = instance_for(&server);
    let cached = quick_failing("down");
    assert_eq!(cached.call(&redis, &CacheArgs::new().arg("x", &0), || 0), 0);
    server.stop();
    let start = Instant::now();
    for i in 0..100 {
        assert_eq!(cached.call(&redis, &CacheArgs::new().arg("x", &i), || i * 2), i * 2);
    }
    let elapsed = start.elapsed();
    // 100 × the 5 s socket timeout would be 500 s; the circuit keeps it to a few timeouts.
    assert!(elapsed < Duration::from_secs(10), "100 calls took {elapsed:?}");
    let stats = cached.stats();
    assert!(stats.errors >= 1 && stats.short_circuited > 50, "{stats:?}");
    cache_data(&redis, 1, "k", None); // never fails either
}

#[test]
fn a_paused_server_costs_at_most_the_cache_timeout() {
    let server = Server::start();
    let redis = instance_for(&server);
    let cached = quick_failing("paused");
    assert_eq!(cached.call(&redis, &CacheArgs::new().arg("x", &0), || 0), 0);
    server.pause();
    let start = Instant::now();
    for i in 0..100 {
        assert_eq!(cached.call(&redis, &CacheArgs::new().arg("x", &i), || i), i);
    }
    let elapsed = start.elapsed();
    server.resume();
    assert!(elapsed < Duration::from_secs(10), "100 calls took {elapsed:?}");
    assert!(cached.stats().short_circuited > 50, "{:?}", cached.stats());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_server_costs_at_most_the_cache_timeout_async() {
    let server = Server::start();
    let redis = instance_for(&server);
    let cached = quick_failing("paused-async");
    assert_eq!(
        cached
            .call_async(&redis, &CacheArgs::new().arg("x", &0), async { 0 })
            .await,
        0
    );
    server.pause();
    let start = Instant::now();
    for i in 0..100 {
        assert_eq!(
            cached
                .call_async(&redis, &CacheArgs::new().arg("x", &i), async move { i })
                .await,
            i
        );
    }
    let elapsed = start.elapsed();
    server.resume();
    assert!(elapsed < Duration::from_secs(10), "100 calls took {elapsed:?}");
    assert!(cached.stats().short_circuited > 50, "{:?}", cached.stats());
}

#[test]
fn the_circuit_closes_after_the_server_returns() {
    let mut server = Server::start();
    let redis = instance_for(&server);
    let cached = quick_failing("circuit");
    server.stop();
    for i in 0..10 {
        cached.call(&redis, &CacheArgs::new().arg("x", &i), || i);
    }
    assert!(cached.stats().short_circuited > 0, "{:?}", cached.stats());
    server.restart();
    let calls = Calls::default();
    let deadline = Instant::now() + Duration::from_secs(15);
    while cached.stats().hits == 0 {
        assert!(
            Instant::now() < deadline,
            "no hit after the server returned: {:?}",
            cached.stats()
        );
        cached.call(&redis, &CacheArgs::new().arg("x", &42), || {
            calls.hit();
            42
        });
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        get_cached::<i32>(&redis, &cached.key(&CacheArgs::new().arg("x", &42))).unwrap(),
        Some(42)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_hundred_concurrent_callers_on_a_cold_key_compute_once() {
    let server = Server::start();
    let redis = instance_for(&server);
    let cached = CachedFunction::builder("flight", ["x"])
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let calls = Calls::default();
    let mut tasks = Vec::new();
    for _ in 0..100 {
        let (redis, cached, calls) = (redis.clone(), cached.clone(), calls.clone());
        tasks.push(tokio::spawn(async move {
            cached
                .call_async(&redis, &CacheArgs::new().arg("x", &1), async {
                    calls.hit();
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "computed".to_owned()
                })
                .await
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), "computed");
    }
    assert_eq!(calls.get(), 1);
    let stats = cached.stats();
    assert_eq!(stats.misses, 1);
    assert_eq!(stats.joins + stats.hits, 99, "{stats:?}");
}

#[test]
fn concurrent_threads_on_a_cold_key_compute_once() {
    let server = Server::start();
    let redis = instance_for(&server);
    let cached = CachedFunction::builder("flight-sync", ["x"])
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let calls = Calls::default();
    std::thread::scope(|s| {
        for _ in 0..20 {
            s.spawn(|| {
                let v = cached.call(&redis, &CacheArgs::new().arg("x", &1), || {
                    calls.hit();
                    std::thread::sleep(Duration::from_millis(300));
                    9
                });
                assert_eq!(v, 9);
            });
        }
    });
    assert_eq!(calls.get(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_waiter_takes_over_when_the_leader_is_cancelled_or_fails() {
    let server = Server::start();
    let redis = instance_for(&server);
    let cached = CachedFunction::builder("takeover", ["x"])
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let a = || CacheArgs::new().arg("x", &1);

    // The leader never finishes; it is aborted while a waiter waits.
    let leader = {
        let (redis, cached) = (redis.clone(), cached.clone());
        tokio::spawn(async move { cached.call_async(&redis, &a(), std::future::pending::<i32>()).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    let waiter = {
        let (redis, cached) = (redis.clone(), cached.clone());
        tokio::spawn(async move { cached.call_async(&redis, &a(), async { 7 }).await })
    };
    tokio::time::sleep(Duration::from_millis(200)).await;
    leader.abort();
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .unwrap()
            .unwrap(),
        7
    );

    // A failing leader: its error is its own, the waiter computes its value.
    let b = || CacheArgs::new().arg("x", &2);
    let failing = {
        let (redis, cached) = (redis.clone(), cached.clone());
        tokio::spawn(async move {
            cached
                .try_call_async(&redis, &b(), async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    Err::<i32, String>("leader failed".into())
                })
                .await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let waiter = cached
        .try_call_async(&redis, &b(), async { Ok::<i32, String>(8) })
        .await;
    assert_eq!(waiter, Ok(8));
    assert_eq!(failing.await.unwrap(), Err("leader failed".into()));
    assert_eq!(cached.stats().joins, 0, "nothing was shared");
}

#[test]
fn invalidating_one_call_removes_only_its_entry() {
    let server = Server::start();
    let redis = instance_for(&server);
    let cached = CachedFunction::builder("inv", ["x", "state"]).build().unwrap();
    let calls = Calls::default();
    let run = |x: i64| {
        cached.call(&redis, &args(x, "used"), || {
            calls.hit();
            x
        })
    };
    run(1);
    run(2);
    assert!(cached.invalidate(&redis, &args(1, "used")).unwrap());
    assert!(!invalidate(&redis, "inv", &args(1, "used")).unwrap(), "already gone");
    run(1);
    run(2);
    assert_eq!(calls.get(), 3, "1 recomputed, 2 still cached");
}

#[tokio::test]
async fn invalidating_a_namespace_unlinks_all_its_keys_and_nothing_else() {
    let server = Server::start();
    let redis = instance_for(&server);
    let mut conn = server.connection();
    let mut pipe = redis::pipe();
    for i in 0..10_000 {
        pipe.set(format!("big:{i:x}"), i).ignore();
    }
    pipe.set("big", 0).ignore(); // the no-argument key
    pipe.set("bigger:1", 1).ignore();
    pipe.set("other:1", 1).ignore();
    pipe.exec(&mut conn).unwrap();
    assert_eq!(invalidate_namespace(&redis, "big").unwrap(), 10_001);
    let left: Vec<String> = conn.keys("*").unwrap();
    let mut left = left;
    left.sort();
    assert_eq!(left, ["bigger:1", "other:1"]);

    let cached = CachedFunction::builder("a*sync", ["x"]).build().unwrap();
    for x in 0..5 {
        cached
            .call_async(&redis, &CacheArgs::new().arg("x", &x), async move { x })
            .await;
    }
    let _: () = conn.set("aXsync:1", 1).unwrap(); // glob characters in the namespace are literal
    assert_eq!(invalidate_namespace_async(&redis, "a*sync").await.unwrap(), 5);
    assert!(
        !invalidate_async(&redis, "a*sync", &CacheArgs::new().arg("x", &0))
            .await
            .unwrap()
    );
    assert!(conn.exists::<_, bool>("aXsync:1").unwrap());
}

#[tokio::test]
async fn cache_data_async_writes_the_python_format() {
    let server = Server::start();
    let redis = instance_for(&server);
    let value = cache_data_async(&redis, vec![1, 2], "data:async", None).await;
    assert_eq!(value, [1, 2]);
    assert_eq!(get_cached::<Vec<i32>>(&redis, "data:async").unwrap(), Some(vec![1, 2]));
}

/// A random string over every kind of character the key encoding treats specially.
fn random_string(rng: &mut Rng) -> String {
    let len = rng.below(12);
    (0..len)
        .filter_map(|_| {
            let r = rng.next();
            let c = match r % 5 {
                0 => (r >> 8) % 0x20,              // control characters
                1 => 0x20 + (r >> 8) % 0x60,       // printable ASCII and DEL
                2 => 0x80 + (r >> 8) % 0x780,      // Latin, Greek, Cyrillic, ...
                3 => 0x800 + (r >> 8) % 0xF000,    // the rest of the BMP
                _ => 0x10000 + (r >> 8) % 0x10000, // astral: surrogate pairs in Python
            };
            char::from_u32(c as u32)
        })
        .collect()
}

/// A random finite float, from arbitrary bit patterns.
fn random_float(rng: &mut Rng) -> f64 {
    loop {
        let f = f64::from_bits(rng.next());
        if f.is_finite() {
            return f;
        }
    }
}

#[test]
fn random_strings_integers_and_floats_give_python_keys() {
    let mut rng = Rng::new(0x2545_f491_4f6c_dd1d);
    let mut rust_keys = Vec::new();
    let mut input = String::new();
    for _ in 0..2000 {
        let (s, i, f) = (random_string(&mut rng), rng.next() as i64, random_float(&mut rng));
        let small = (rng.next() % 2_000_000) as f64 / 1000.0 - 1000.0; // everyday values like 12.345
        let args = CacheArgs::new()
            .arg("s", &s)
            .arg("i", &i)
            .arg("f", &f)
            .arg("small", &small)
            .arg("list", &(s.as_str(), f, i));
        rust_keys.push(cache_key("r", &args));
        // Handed to Python as standard JSON pairs: json.loads gives the same str and the
        // same double, and dict() keeps the order.
        let pairs = serde_json::json!([["s", s], ["i", i], ["f", f], ["small", small], ["list", [s, f, i]]]);
        input.push_str(&pairs.to_string());
        input.push('\n');
    }
    let script = r#"
import hashlib, json, sys
# split("\n"), not splitlines(): the strings may hold U+2028 or U+0085.
for line in sys.stdin.read().split("\n")[:-1]:
    kwargs = dict(json.loads(line))
    print("r:" + hashlib.sha256(json.dumps(kwargs, default=str).encode("utf-8")).hexdigest())
"#;
    let python_keys = python(script, &input);
    let python_keys: Vec<&str> = python_keys.lines().collect();
    assert_eq!(python_keys.len(), rust_keys.len());
    for (n, (rust, python)) in rust_keys.iter().zip(python_keys).enumerate() {
        assert_eq!(
            rust,
            python,
            "case {n}: {}",
            input.split('\n').nth(n).unwrap_or_default()
        );
    }
}
