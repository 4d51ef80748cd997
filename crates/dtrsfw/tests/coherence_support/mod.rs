//! The processes of the coherence checker (`tests/cache_coherence.rs`): a writer and a
//! reader (the roles, here), and the parent that starts them, disturbs the server and
//! checks what they saw (`check.rs`).

mod check;

use std::io::{BufRead, Write};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use dtrsfw::redis::caching::{CacheArgs, CachedFunction, LocalTier, cache_key};
use dtrsfw::redis::{RedisConfig, RedisInstance};
use dtrsfw_test_support::Rng;

pub(crate) use self::check::{Disturbance, run_check};

/// The environment variable naming a child's role.
pub(crate) const ROLE: &str = "DTRSFW_COHERENCE_ROLE";
/// The namespace of the checked function (its BCAST prefix).
const NAMESPACE: &str = "coherence";
/// Keys in the set the writers update and the readers read.
const KEYS: u64 = 16;
/// Reader tasks in the reader process.
const TASKS: u64 = 4;

/// Microseconds since the epoch: the clock every process shares.
fn now_us() -> u64 {
    u64::try_from(SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_micros()).unwrap()
}

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| panic!("{name} not set"))
}

/// The Redis key of key number `k` (what the readers' calls use).
fn redis_key(k: u64) -> String {
    cache_key(NAMESPACE, &CacheArgs::new().arg("k", &k))
}

/// zlib-compressed JSON of `version`: the stored form of the cache (and dtpyfw).
fn stored(version: u64) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::fast());
    z.write_all(version.to_string().as_bytes()).unwrap();
    z.finish().unwrap()
}

/// Sets the value only if `version` is newer than the key's (kept beside it), so two
/// writers never move a key backwards; 1 if written.
const SET_IF_NEWER: &str = r"
local current = tonumber(redis.call('GET', KEYS[2]) or '0')
if current < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[2])
  redis.call('SET', KEYS[2], ARGV[1])
  return 1
end
return 0";

/// Writes `version` to key `k`, retrying (on a new connection) until the server
/// answers: a write is complete only once it did.
fn write_version(url: &str, conn: &mut Option<redis::Connection>, k: u64, version: u64) {
    let script = redis::Script::new(SET_IF_NEWER);
    loop {
        if conn.is_none() {
            *conn = redis::Client::open(url)
                .and_then(|c| c.get_connection_with_timeout(Duration::from_millis(500)))
                .ok();
        }
        if let Some(c) = conn.as_mut() {
            let done: redis::RedisResult<i64> = script
                .key(redis_key(k))
                .key(format!("v:{k}"))
                .arg(version)
                .arg(stored(version))
                .invoke(c);
            if done.is_ok() {
                return;
            }
            *conn = None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The writer role: `DTRSFW_COHERENCE_UPDATES_EACH` updates of random keys, each
/// version a timestamp (unique: the writer's id in the low bit), random pauses up to
/// 1 ms. Prints `W key version completed_us` per update.
pub(crate) fn writer() {
    let url = env("DTRSFW_COHERENCE_URL");
    let id: u64 = env("DTRSFW_COHERENCE_WRITER").parse().unwrap();
    let updates: u64 = env("DTRSFW_COHERENCE_UPDATES_EACH").parse().unwrap();
    let mut rng = Rng::new(0xC0FFEE + id);
    let mut conn = None;
    let mut last = 0;
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for _ in 0..updates {
        let k = rng.below(KEYS);
        let version = (now_us() * 2 + id).max(last + 2);
        last = version;
        write_version(&url, &mut conn, k, version);
        writeln!(out, "W {k} {version} {}", now_us()).unwrap();
        std::thread::sleep(Duration::from_micros(rng.below(1_000)));
    }
    out.flush().unwrap();
}

/// The reader's function: version of key `k`. Its computation never runs on a hit; on
/// a miss or an unreachable server it returns `Err` (not cached), noted as no version.
fn read_function() -> CachedFunction {
    CachedFunction::builder(NAMESPACE, ["k"])
        .local(LocalTier::new())
        .build()
        .unwrap()
}

/// One reader task: random keys until `stop`, pauses of 0 or 1 ms. Its reads as
/// `R task key started_us version` (0: no version).
async fn read_task(task: u64, redis: RedisInstance, cached: CachedFunction, stop: Arc<AtomicBool>) -> Vec<String> {
    let mut rng = Rng::new(0xBEEF + task);
    let mut reads = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let k = rng.below(KEYS);
        let started = now_us();
        let got: Result<u64, ()> = cached
            .try_call_cloned_async(&redis, &CacheArgs::new().arg("k", &k), async { Err(()) })
            .await;
        reads.push(format!("R {task} {k} {started} {}", got.unwrap_or(0)));
        if rng.below(4) == 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        } else {
            tokio::task::yield_now().await;
        }
    }
    reads
}

/// The reader role: warms the tier (a local hit), prints `ready`, reads with 4 tasks
/// until its stdin closes, then prints the reads and `S local_hits flushes invalidations`.
pub(crate) fn reader() {
    let url = env("DTRSFW_COHERENCE_URL");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(url)).unwrap();
    let cached = read_function();
    runtime.block_on(async {
        while cached.stats().local_hits == 0 {
            let _: Result<u64, ()> = cached
                .try_call_cloned_async(&redis, &CacheArgs::new().arg("k", &0), async { Err(()) })
                .await;
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready").unwrap();
    stdout.flush().unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| runtime.spawn(read_task(task, redis.clone(), cached.clone(), stop.clone())))
        .collect();
    // The parent closes stdin to stop us (or dies, which closes it too).
    for _ in std::io::stdin().lock().lines() {}
    stop.store(true, Ordering::Relaxed);
    let mut out = std::io::BufWriter::new(std::io::stdout().lock());
    for task in tasks {
        for line in runtime.block_on(task).unwrap() {
            writeln!(out, "{line}").unwrap();
        }
    }
    let stats = cached.stats();
    writeln!(out, "S {} {} {}", stats.local_hits, stats.flushes, stats.invalidations).unwrap();
    out.flush().unwrap();
}
