//! `#[cache_wrapper]`: the Python `@cache_wrapper` as an attribute macro. A slow function
//! is called twice with the same arguments: the first call runs it (a miss), the second
//! is answered from Redis (a hit). A call the `cache_only_for` condition excludes always
//! runs.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p dtrsfw --example cache_wrapper
//! ```

// An example talks to its reader on standard output.
#![allow(clippy::print_stdout)]

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dtrsfw::cache_wrapper;
use dtrsfw::redis::caching::invalidate_namespace;
use dtrsfw::redis::{RedisConfig, RedisInstance};

/// One instance for the whole process, created on first use: the macro's `redis = ...`
/// takes any expression giving a `RedisInstance` or a reference to one.
static REDIS: LazyLock<RedisInstance> = LazyLock::new(|| {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    RedisInstance::new(RedisConfig::new().set_redis_url(url)).expect("a valid REDIS_URL")
});

/// How many times the body of `price_of` really ran.
static RUNS: AtomicUsize = AtomicUsize::new(0);

/// A slow lookup. Cached for 60 s under `examples:prices:<sha256 of the arguments>`,
/// only for used and new cars; `request_id` is not part of the key.
#[cache_wrapper(
    redis = REDIS,
    namespace = "examples:prices",
    expire = 60,
    cache_only_for = [state in ["used", "new"]],
    skip_cache_keys = [request_id],
)]
fn price_of(model: &str, state: &str, request_id: u64) -> u64 {
    let _ = request_id;
    RUNS.fetch_add(1, Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(200));
    20_000 + model.len() as u64 * 1_000 + if state == "new" { 5_000 } else { 0 }
}

fn timed(label: &str, f: impl FnOnce() -> u64) {
    let start = Instant::now();
    let price = f();
    println!("{label}: {price} in {} ms", start.elapsed().as_millis());
}

fn main() -> Result<(), dtrsfw::redis::Error> {
    // Start from an empty namespace, so that every run shows a miss first.
    invalidate_namespace(&REDIS, "examples:prices")?;
    timed("first call (runs the function)", || price_of("roadster", "used", 1));
    timed("second call (from the cache)", || price_of("roadster", "used", 2));
    timed("a call outside cache_only_for", || price_of("roadster", "damaged", 3));
    timed("and again (not cached, runs)", || price_of("roadster", "damaged", 4));
    println!("the function ran {} times for 4 calls", RUNS.load(Ordering::SeqCst));
    Ok(())
}
