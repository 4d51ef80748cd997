//! Benchmarks of the local cache tier: a hit served in process beside a bare redis-rs
//! `GET` loop (the cost of any Redis read), sync and async; and how long a write by
//! another connection takes to become visible to a reader calling the cached function.

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use dtrsfw::redis::RedisInstance;
use dtrsfw::redis::caching::{CacheArgs, CachedFunction, LocalTier};

use super::cache::{CHUNKS, Listing, args, page, sync_rounds};
use super::{BenchContext, BenchRow, per_second};

/// The local rows of the table.
pub(super) async fn run(ctx: &BenchContext) -> anyhow::Result<Vec<BenchRow>> {
    let redis = ctx.instance()?;
    let cached = CachedFunction::builder("bench:local", ["make", "state", "page"])
        .expire(600)
        .local(LocalTier::new())
        .build()?;
    warm(&cached, &redis).await?;
    let n = ctx.n(200_000);
    let chunk = (n / CHUNKS).max(1);
    // Bare: about 1 000 GETs per slice (a Redis round trip costs ~50x a local hit).
    let sizes = Slices {
        ours: chunk,
        bare: (chunk / 50).max(1),
    };
    let async_row = async_hits(ctx, &cached, &redis, sizes).await?;
    let sync_row = sync_hits(ctx, &cached, &redis, sizes).await?;
    let stats = cached.stats();
    anyhow::ensure!(stats.misses == 1 && stats.errors == 0, "not all hits: {stats:?}");
    let visible = invalidation_visible(ctx, &redis).await?;
    Ok(vec![sync_row, async_row, visible])
}

/// Calls per slice: ours, and the bare loop's.
#[derive(Clone, Copy)]
struct Slices {
    ours: usize,
    bare: usize,
}

/// `cache_hit_local_async`: local hits beside bare `GET`s on a multiplexed connection.
async fn async_hits(
    ctx: &BenchContext,
    cached: &CachedFunction,
    redis: &RedisInstance,
    sizes: Slices,
) -> anyhow::Result<BenchRow> {
    let key = cached.key(&args());
    let mut bare_async = ctx.bare_async().await?;
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..ctx.rounds() {
        let (mut ours_time, mut bare_time) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..CHUNKS {
            let start = Instant::now();
            for _ in 0..sizes.ours {
                let v: Arc<Vec<Listing>> = cached
                    .call_cloned_async(redis, &args(), async { Arc::new(page()) })
                    .await;
                std::hint::black_box(v);
            }
            ours_time += start.elapsed();
            let start = Instant::now();
            for _ in 0..sizes.bare {
                let raw: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut bare_async).await?;
                std::hint::black_box(raw);
            }
            bare_time += start.elapsed();
        }
        ours.push(per_second(sizes.ours * CHUNKS, ours_time));
        bare.push(per_second(sizes.bare * CHUNKS, bare_time));
    }
    Ok(BenchRow::compared(
        "cache_hit_local_async",
        &ours,
        &bare,
        "local-tier async hit (an Arc<Vec<Listing>>, the documented form of a large value) vs bare GET; target >= 50",
    ))
}

/// `cache_hit_local`: local hits beside bare `GET`s on a blocking connection, on a
/// blocking thread.
async fn sync_hits(
    ctx: &BenchContext,
    cached: &CachedFunction,
    redis: &RedisInstance,
    sizes: Slices,
) -> anyhow::Result<BenchRow> {
    let rounds = ctx.rounds();
    let key = cached.key(&args());
    let mut bare_sync = ctx.bare_sync()?;
    let (cached, redis) = (cached.clone(), redis.clone());
    let (ours, bare) = tokio::task::spawn_blocking(move || {
        let conn = &mut *bare_sync;
        sync_rounds(
            rounds,
            (sizes.ours, sizes.bare),
            || {
                let v: Arc<Vec<Listing>> = cached.call_cloned(&redis, &args(), || Arc::new(page()));
                std::hint::black_box(v);
            },
            || {
                let raw: Vec<u8> = redis::cmd("GET").arg(&key).query(conn)?;
                std::hint::black_box(raw);
                Ok(())
            },
        )
    })
    .await??;
    Ok(BenchRow::compared(
        "cache_hit_local",
        &ours,
        &bare,
        "local-tier sync hit (an Arc<Vec<Listing>>, the documented form of a large value) vs bare GET; target >= 50",
    ))
}

/// Calls until a hit is served locally (tracking up, entry filled), at most 5 s.
async fn warm(cached: &CachedFunction, redis: &RedisInstance) -> anyhow::Result<()> {
    // An entry an earlier run left would make the first call a hit: it must be the miss.
    dtrsfw::redis::caching::invalidate_async(redis, "bench:local", &args()).await?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while cached.stats().local_hits == 0 {
        anyhow::ensure!(
            Instant::now() < deadline,
            "no local hit within 5 s: {:?}",
            cached.stats()
        );
        let _: Arc<Vec<Listing>> = cached
            .call_cloned_async(redis, &args(), async { Arc::new(page()) })
            .await;
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(())
}

/// zlib-compressed JSON of `version`, as the Python package (and ours) stores it.
fn stored(version: u64) -> anyhow::Result<Vec<u8>> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(version.to_string().as_bytes())?;
    Ok(z.finish()?)
}

/// A bare redis-rs connection writes a new version 1 000 times; a reader thread calls
/// the cached function in a loop and notes when it first sees each version. The figure
/// per write: from the writer's `SET` reply to that moment.
async fn invalidation_visible(ctx: &BenchContext, redis: &RedisInstance) -> anyhow::Result<BenchRow> {
    let writes = ctx.n(1_000);
    let cached = CachedFunction::builder("bench:visible", ["k"])
        .local(LocalTier::new())
        .build()?;
    let key = cached.key(&CacheArgs::new().arg("k", &1));
    let mut writer = ctx.bare_async().await?;
    redis::cmd("SET")
        .arg(&key)
        .arg(stored(0)?)
        .exec_async(&mut writer)
        .await?;
    let base = Instant::now();
    // seen[v]: nanoseconds after `base` when the reader first got version v (0: not yet).
    let seen: Arc<Vec<AtomicU64>> = Arc::new((0..=writes).map(|_| AtomicU64::new(0)).collect());
    let stop = Arc::new(AtomicBool::new(false));
    let reader = spawn_reader(cached, redis.clone(), base, seen.clone(), stop.clone());
    let mut samples = Vec::with_capacity(writes);
    let mut failure = None;
    for version in 1..=writes as u64 {
        // Let the reader settle on the previous version (and fill the tier) first.
        tokio::time::sleep(Duration::from_millis(2)).await;
        let value = stored(version)?;
        redis::cmd("SET").arg(&key).arg(value).exec_async(&mut writer).await?;
        let written = base.elapsed();
        let deadline = Instant::now() + Duration::from_secs(2);
        let slot = &seen[usize::try_from(version)?];
        while slot.load(Ordering::Relaxed) == 0 {
            if Instant::now() > deadline {
                failure = Some(version);
                break;
            }
            tokio::time::sleep(Duration::from_micros(50)).await;
        }
        if failure.is_some() {
            break;
        }
        let at = Duration::from_nanos(slot.load(Ordering::Relaxed));
        samples.push(at.saturating_sub(written).as_secs_f64() * 1e3);
    }
    stop.store(true, Ordering::Relaxed);
    reader.join().map_err(|_| anyhow::anyhow!("reader thread panicked"))?;
    if let Some(version) = failure {
        anyhow::bail!("version {version} not visible to the reader within 2 s");
    }
    Ok(BenchRow::latency(
        "cache_invalidation_visible",
        &samples,
        "write by another connection -> seen by a local-tier reader, p50/p99; target p99 <= 5 ms",
    ))
}

/// The reader of `invalidation_visible`: calls in a loop, noting in `seen[v]` when it
/// first got version `v` (nanoseconds after `base`).
fn spawn_reader(
    cached: CachedFunction,
    redis: RedisInstance,
    base: Instant,
    seen: Arc<Vec<AtomicU64>>,
    stop: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let args = CacheArgs::new().arg("k", &1);
        while !stop.load(Ordering::Relaxed) {
            let v: u64 = cached.call_cloned(&redis, &args, || u64::MAX);
            if let Some(slot) = usize::try_from(v).ok().and_then(|v| seen.get(v)) {
                let now = u64::try_from(base.elapsed().as_nanos()).unwrap_or(u64::MAX);
                let _ = slot.compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
            }
        }
    })
}
