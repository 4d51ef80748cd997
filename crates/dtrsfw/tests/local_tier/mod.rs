//! Helpers shared by the local tier's test files (`cache_local.rs`,
//! `cache_local_cloned.rs`, `cache_local_cluster.rs`): an instance, a function with a
//! local tier and its arguments, waiting for a local hit, waiting for a value.

// Each test file uses a part of these.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use dtrsfw::redis::caching::{CacheArgs, CacheStats, CachedFunction, LocalTier};
use dtrsfw::redis::{RedisConfig, RedisInstance};

/// An instance on `url` (one server, or a cluster's seed list).
pub(crate) fn instance(url: &str) -> RedisInstance {
    RedisInstance::new(RedisConfig::new().set_redis_url(url)).expect("valid config")
}

/// A function of one argument `id`, cached for 600 s, with a default local tier.
pub(crate) fn local_fn(namespace: &str) -> CachedFunction {
    CachedFunction::builder(namespace, ["id"])
        .expire(600)
        .local(LocalTier::new())
        .build()
        .unwrap()
}

/// The arguments `id = n`.
pub(crate) fn id(n: i64) -> CacheArgs {
    CacheArgs::new().arg("id", &n)
}

/// Calls `call` until `stats` shows a new local hit (tracking up, entry filled), at most
/// `limit`; the value of that call.
pub(crate) fn until_local_hit_within<T>(
    limit: Duration,
    stats: impl Fn() -> CacheStats,
    mut call: impl FnMut() -> T,
) -> T {
    let deadline = Instant::now() + limit;
    loop {
        let before = stats().local_hits;
        let value = call();
        if stats().local_hits > before {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "no local hit within {limit:?}: {:?}",
            stats()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// [`until_local_hit_within`] 5 s.
pub(crate) fn until_local_hit<T>(stats: impl Fn() -> CacheStats, call: impl FnMut() -> T) -> T {
    until_local_hit_within(Duration::from_secs(5), stats, call)
}

/// Calls `call` until it returns `want`, at most `limit`; how long it took.
pub(crate) fn until_value_within<T: PartialEq + std::fmt::Debug>(
    limit: Duration,
    want: &T,
    mut call: impl FnMut() -> T,
) -> Duration {
    let start = Instant::now();
    loop {
        let got = call();
        if &got == want {
            return start.elapsed();
        }
        assert!(start.elapsed() < limit, "still {got:?}, want {want:?}, after {limit:?}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// [`until_value_within`] 2 s.
pub(crate) fn until_value<T: PartialEq + std::fmt::Debug>(want: &T, call: impl FnMut() -> T) -> Duration {
    until_value_within(Duration::from_secs(2), want, call)
}
