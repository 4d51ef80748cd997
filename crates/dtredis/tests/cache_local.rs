//! `dtredis cache invalidate` (another process) reaches the local cache tier of this one
//! through Redis's invalidation pushes: one call's entry, then a whole namespace.

use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dtrsfw::redis::caching::{CacheArgs, CachedFunction, LocalTier};
use dtrsfw::redis::{RedisConfig, RedisInstance};
use dtrsfw_test_support::Server;

fn dtredis_invalidate(url: &str, args: &[&str]) {
    let out = Command::new(env!("CARGO_BIN_EXE_dtredis"))
        .arg("--url")
        .arg(url)
        .args(["cache", "invalidate"])
        .args(args)
        .env_remove("REDIS_URL")
        .output()
        .expect("run dtredis");
    assert!(
        out.status.success(),
        "dtredis failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn dtredis_cache_invalidate_reaches_the_local_tier() {
    let server = Server::start();
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).unwrap();
    let cached = CachedFunction::builder("clilocal", ["x"])
        .local(LocalTier::new())
        .build()
        .unwrap();
    let runs = AtomicUsize::new(0);
    let read = || {
        cached.call(&redis, &CacheArgs::new().arg("x", &1), || {
            runs.fetch_add(1, Ordering::SeqCst) + 1
        })
    };
    // Served locally (no GET reaches Redis) before each invalidation.
    let warm = || {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let before = cached.stats().local_hits;
            let value = read();
            if cached.stats().local_hits > before {
                return value;
            }
            assert!(Instant::now() < deadline, "no local hit: {:?}", cached.stats());
            std::thread::sleep(Duration::from_millis(10));
        }
    };
    let until = |want: usize| {
        let deadline = Instant::now() + Duration::from_secs(2);
        while read() != want {
            assert!(Instant::now() < deadline, "value {want} not seen within 2 s");
            std::thread::sleep(Duration::from_millis(1));
        }
    };
    assert_eq!(warm(), 1);
    dtredis_invalidate(&server.url(), &["clilocal", "--args", r#"{"x": 1}"#]);
    until(2);
    assert_eq!(warm(), 2);
    dtredis_invalidate(&server.url(), &["clilocal"]);
    until(3);
}

#[test]
fn bench_reports_the_local_tier_rows() {
    let server = Server::start();
    let out = Command::new(env!("CARGO_BIN_EXE_dtredis"))
        .arg("--url")
        .arg(server.url())
        .args(["bench", "--quick", "--only", "cache_local", "--json"])
        .env_remove("REDIS_URL")
        .output()
        .expect("run dtredis");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let ops = report["ops"].as_array().expect("ops");
    let row = |name: &str| {
        ops.iter()
            .find(|r| r["name"] == name)
            .unwrap_or_else(|| panic!("{name} in {ops:?}"))
    };
    for name in ["cache_hit_local", "cache_hit_local_async"] {
        let r = row(name);
        assert!(r["ratio"].as_f64().is_some_and(|v| v > 0.0), "{r}");
    }
    let visible = row("cache_invalidation_visible");
    let (p50, p99) = (visible["p50_ms"].as_f64().unwrap(), visible["p99_ms"].as_f64().unwrap());
    assert!(0.0 <= p50 && p50 <= p99, "{visible}");
}
