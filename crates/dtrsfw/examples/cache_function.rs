//! `CachedFunction`: the Python `cache_function` / `acache_function` as a builder, for
//! code that cannot use the attribute macro (closures, computed namespaces). Shows a
//! sync and an async call, the counters, and invalidation.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p dtrsfw --example cache_function
//! ```

// An example talks to its reader on standard output.
#![allow(clippy::print_stdout)]

use std::time::Duration;

use dtrsfw::redis::caching::{CacheArgs, CachedFunction};
use dtrsfw::redis::{RedisConfig, RedisInstance};

fn count_cars(state: &str, year: i32) -> u64 {
    // Stands for a slow query.
    std::thread::sleep(Duration::from_millis(100));
    state.len() as u64 * 100 + year as u64 % 100
}

#[tokio::main]
async fn main() -> Result<(), dtrsfw::redis::Error> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(url))?;

    // The argument names, in declaration order, make the key (the Python package's key
    // for a keyword call `count_cars(state=..., year=...)`).
    let cached = CachedFunction::builder("examples:cars", ["state", "year"])
        .expire(60)
        .cache_only_for("year", ">=", &2020)
        .build()?;
    let args = CacheArgs::new().arg("state", "used").arg("year", &2024);
    println!("key: {}", cached.key(&args));
    // Start clean, so that every run shows a miss first.
    cached.invalidate(&redis, &args)?;

    let first = cached.call(&redis, &args, || count_cars("used", 2024));
    let second = cached.call(&redis, &args, || count_cars("used", 2024));
    // The async call shares the entry (and every decision) with the sync one.
    let third = cached
        .call_async(&redis, &args, async { count_cars("used", 2024) })
        .await;
    println!("results: {first}, {second}, {third}");

    let stats = cached.stats();
    println!("hits: {}, misses: {}", stats.hits, stats.misses);
    let removed = cached.invalidate(&redis, &args)?;
    println!("invalidated: {removed}");
    Ok(())
}
