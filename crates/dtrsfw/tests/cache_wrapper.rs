//! `#[cache_wrapper]` on sync and async functions and methods, against real servers,
//! plus the compile-time checks (trybuild pass and compile-fail cases in `tests/ui`).

use std::sync::atomic::{AtomicUsize, Ordering};

use dtrsfw::cache_wrapper;
use dtrsfw::redis::caching::{CacheArgs, cache_key, cache_stats, get_cached};
use dtrsfw::redis::{RedisConfig, RedisInstance};
use dtrsfw_test_support::Server;
use serde::{Deserialize, Serialize};

fn instance_for(server: &Server) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(server.url())).expect("valid config")
}

#[cache_wrapper(redis = redis, namespace = "ns", expire = 60, skip_cache_keys = [redis, calls])]
fn f(redis: &RedisInstance, calls: &AtomicUsize, x: i64, state: &str) -> Vec<String> {
    calls.fetch_add(1, Ordering::SeqCst);
    vec![state.to_owned(); x as usize]
}

#[test]
fn a_wrapped_function_is_cached_under_the_python_key() {
    let server = Server::start();
    let redis = instance_for(&server);
    let calls = AtomicUsize::new(0);
    assert_eq!(f(&redis, &calls, 2, "used"), ["used", "used"]);
    assert_eq!(f(&redis, &calls, 2, "used"), ["used", "used"]);
    assert_eq!(f(&redis, &calls, 1, "used"), ["used"]);
    assert_eq!(calls.load(Ordering::SeqCst), 2);
    // f(x=1, state="used") in namespace ns, as the Python package keys it.
    let key = "ns:35518bae13e75c666fc5e4837d43620966266d4e7cc3844b4e5f485d5da5fc5a";
    assert_eq!(
        cache_key("ns", &CacheArgs::new().arg("x", &1).arg("state", "used")),
        key
    );
    assert_eq!(
        get_cached::<Vec<String>>(&redis, key).unwrap(),
        Some(vec!["used".to_owned()])
    );
    let ttl: i64 = redis::cmd("TTL").arg(key).query(&mut server.connection()).unwrap();
    assert!((50..=60).contains(&ttl), "TTL {ttl}");
}

#[cache_wrapper(
    redis = redis,
    namespace = "cars",
    cache_only_for = [state in ["used", "new"], year >= 2020],
    skip_cache_keys = [redis, calls],
)]
async fn count_cars(redis: &RedisInstance, calls: &AtomicUsize, state: &str, year: i32) -> u64 {
    calls.fetch_add(1, Ordering::SeqCst);
    tokio::task::yield_now().await;
    state.len() as u64 + year as u64
}

#[tokio::test]
async fn an_async_function_is_cached_when_a_condition_holds() {
    let server = Server::start();
    let redis = instance_for(&server);
    let calls = AtomicUsize::new(0);
    for _ in 0..2 {
        assert_eq!(count_cars(&redis, &calls, "used", 1999).await, 2003); // `in` holds
        assert_eq!(count_cars(&redis, &calls, "old", 2021).await, 2024); // `>=` holds
        assert_eq!(count_cars(&redis, &calls, "old", 1999).await, 2002); // neither
    }
    assert_eq!(calls.load(Ordering::SeqCst), 4);
    assert_eq!(cache_stats(&redis).bypassed, 2);
}

#[derive(Debug, Serialize, Deserialize, PartialEq)]
struct Filters {
    make: String,
    years: Vec<u16>,
}

#[cache_wrapper(redis = redis, namespace = "lookup", skip_cache_keys = ["redis", calls])]
fn lookup(redis: &RedisInstance, calls: &AtomicUsize, filters: &Filters, fail: bool) -> Result<Vec<u16>, String> {
    calls.fetch_add(1, Ordering::SeqCst);
    if fail {
        return Err(format!("no {}", filters.make));
    }
    let first: u16 = "2019".parse().map_err(|e: std::num::ParseIntError| e.to_string())?;
    Ok(filters.years.iter().copied().filter(|y| *y >= first).collect())
}

#[test]
fn a_result_function_caches_ok_only_and_reference_arguments_work() {
    let server = Server::start();
    let redis = instance_for(&server);
    let calls = AtomicUsize::new(0);
    let filters = Filters {
        make: "BMW".into(),
        years: vec![2018, 2019, 2020],
    };
    assert_eq!(lookup(&redis, &calls, &filters, true), Err("no BMW".to_owned()));
    assert_eq!(lookup(&redis, &calls, &filters, true), Err("no BMW".to_owned()));
    assert_eq!(lookup(&redis, &calls, &filters, false), Ok(vec![2019, 2020]));
    assert_eq!(lookup(&redis, &calls, &filters, false), Ok(vec![2019, 2020]));
    assert_eq!(calls.load(Ordering::SeqCst), 3, "errors ran each time, the Ok once");
}

struct Service {
    redis: RedisInstance,
    calls: AtomicUsize,
}

impl Service {
    #[cache_wrapper(redis = self.redis, namespace = "svc")]
    fn name(&self, id: u32) -> String {
        self.calls.fetch_add(1, Ordering::SeqCst);
        format!("user {id}")
    }

    #[cache_wrapper(redis = &self.redis, namespace = "svc-async", expire = 30)]
    async fn name_async(&self, id: u32) -> Result<String, std::io::Error> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(format!("user {id}"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn methods_are_cached_without_self_in_the_key() {
    let server = Server::start();
    let service = Service {
        redis: instance_for(&server),
        calls: AtomicUsize::new(0),
    };
    let service = tokio::task::spawn_blocking(move || {
        assert_eq!(service.name(1), "user 1");
        assert_eq!(service.name(1), "user 1");
        service
    })
    .await
    .unwrap();
    assert_eq!(service.name_async(2).await.unwrap(), "user 2");
    assert_eq!(service.name_async(2).await.unwrap(), "user 2");
    assert_eq!(service.calls.load(Ordering::SeqCst), 2);
    let key = cache_key("svc", &CacheArgs::new().arg("id", &1));
    assert_eq!(
        get_cached::<String>(&service.redis, &key).unwrap().as_deref(),
        Some("user 1")
    );
}

#[test]
fn compile_time_checks() {
    let cases = trybuild::TestCases::new();
    cases.pass("tests/ui/pass/*.rs");
    cases.compile_fail("tests/ui/fail/*.rs");
}
