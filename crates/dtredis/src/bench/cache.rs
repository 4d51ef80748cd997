//! Benchmarks of the cache area: a cached call that hits, beside a bare redis-rs `GET`
//! of the same compressed value followed by the same zlib + JSON decoding: what any
//! hand-written cache lookup has to do. The difference is our overhead (key derivation,
//! circuit, single-flight bookkeeping, deadline).

use std::io::Read;
use std::time::{Duration, Instant};

use dtrsfw::redis::caching::{CacheArgs, CachedFunction};
use serde::{Deserialize, Serialize};

use super::{BenchContext, BenchRow, per_second};

/// Alternating slices per round.
pub(super) const CHUNKS: usize = 20;

/// A typical cached result: a page of listings (~1 KB of JSON).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Listing {
    id: u64,
    make: String,
    model: String,
    year: u16,
    price: f64,
    tags: Vec<String>,
}

pub(super) fn page() -> Vec<Listing> {
    (0..10)
        .map(|i| Listing {
            id: 1000 + i,
            make: "BMW".into(),
            model: format!("X{i}"),
            year: 2015 + i as u16,
            price: 25_000.5 + i as f64,
            tags: vec!["used".into(), "certified".into()],
        })
        .collect()
}

pub(super) fn args() -> CacheArgs {
    CacheArgs::new().arg("make", "BMW").arg("state", "used").arg("page", &1)
}

/// What the bare loop does with the stored bytes, exactly as the library must.
fn decode(raw: &[u8]) -> anyhow::Result<Vec<Listing>> {
    let mut json = Vec::with_capacity(raw.len() * 4);
    flate2::read::ZlibDecoder::new(raw).read_to_end(&mut json)?;
    Ok(serde_json::from_slice(&json)?)
}

/// The cache rows of the table.
pub(super) async fn run(ctx: &BenchContext) -> anyhow::Result<Vec<BenchRow>> {
    let redis = ctx.instance()?;
    let cached = CachedFunction::builder("bench:cache", ["make", "state", "page"])
        .expire(600)
        .build()?;
    let key = cached.key(&args());
    // Prime the entry (after removing one an earlier run left: the first call must be
    // the one miss), then read back the exact bytes the bare loop will fetch.
    dtrsfw::redis::caching::invalidate_async(&redis, "bench:cache", &args()).await?;
    cached.call_async(&redis, &args(), async { page() }).await;
    let mut bare_async = ctx.bare_async().await?;
    let mut bare_sync = ctx.bare_sync()?;
    let raw: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut bare_async).await?;
    anyhow::ensure!(decode(&raw)?.len() == 10, "primed value unreadable");
    let n = ctx.n(10_000);

    // Each round interleaves ours and bare in CHUNKS slices, so that the load of other
    // processes on a shared machine falls on both sides alike; a round's figure is its
    // operations over the summed time of its slices.
    let chunk = (n / CHUNKS).max(1);

    // Async: sequential calls on the multiplexed connection, ours vs bare.
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for _ in 0..ctx.rounds() {
        let (mut ours_time, mut bare_time) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..CHUNKS {
            let start = Instant::now();
            for _ in 0..chunk {
                let v: Vec<Listing> = cached.call_async(&redis, &args(), async { page() }).await;
                std::hint::black_box(v);
            }
            ours_time += start.elapsed();
            let start = Instant::now();
            for _ in 0..chunk {
                let raw: Vec<u8> = redis::cmd("GET").arg(&key).query_async(&mut bare_async).await?;
                std::hint::black_box(decode(&raw)?);
            }
            bare_time += start.elapsed();
        }
        ours.push(per_second(chunk * CHUNKS, ours_time));
        bare.push(per_second(chunk * CHUNKS, bare_time));
    }
    let async_row = BenchRow::compared(
        "cache_hit_async",
        &ours,
        &bare,
        "cached async call (hit) vs bare GET+decode; target >= 0.9",
    );

    // Sync: on a blocking thread, ours vs a bare blocking connection.
    let rounds = ctx.rounds();
    let (sync_cached, sync_redis, sync_key) = (cached.clone(), redis.clone(), key.clone());
    let (ours, bare) = tokio::task::spawn_blocking(move || {
        let conn = &mut *bare_sync;
        sync_rounds(
            rounds,
            (chunk, chunk),
            || {
                let v: Vec<Listing> = sync_cached.call(&sync_redis, &args(), page);
                std::hint::black_box(v);
            },
            || {
                let raw: Vec<u8> = redis::cmd("GET").arg(&sync_key).query(conn)?;
                std::hint::black_box(decode(&raw)?);
                Ok(())
            },
        )
    })
    .await??;
    let sync_row = BenchRow::compared(
        "cache_hit_sync",
        &ours,
        &bare,
        "cached sync call (hit) vs bare GET+decode; target >= 0.9",
    );

    let stats = cached.stats();
    anyhow::ensure!(
        stats.misses == 1 && stats.errors == 0,
        "benchmark calls were not all hits: {stats:?}"
    );
    Ok(vec![sync_row, async_row])
}

/// The rounds of a sync comparison on the calling thread. Each round is `CHUNKS` slices,
/// each `ours_n` calls of `ours` then `bare_n` of `bare`, so load from elsewhere falls on
/// both sides alike. Returns both sides' throughputs per round, per second.
pub(super) fn sync_rounds(
    rounds: usize,
    (ours_n, bare_n): (usize, usize),
    mut ours: impl FnMut(),
    mut bare: impl FnMut() -> anyhow::Result<()>,
) -> anyhow::Result<(Vec<f64>, Vec<f64>)> {
    let (mut ours_rates, mut bare_rates) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let (mut ours_time, mut bare_time) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..CHUNKS {
            let start = Instant::now();
            for _ in 0..ours_n {
                ours();
            }
            ours_time += start.elapsed();
            let start = Instant::now();
            for _ in 0..bare_n {
                bare()?;
            }
            bare_time += start.elapsed();
        }
        ours_rates.push(per_second(ours_n * CHUNKS, ours_time));
        bare_rates.push(per_second(bare_n * CHUNKS, bare_time));
    }
    Ok((ours_rates, bare_rates))
}
