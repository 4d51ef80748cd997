//! Benchmarks of the memory area: whether a long-running consumer and a cache seeing new
//! keys stay flat. Each row reads this process's resident set size (`VmRSS`) once the
//! run is warm (after the first 5 % of its work) and at its end; the growth between the
//! two is what grows with the messages or keys seen (a warm-up's one-off buffers, the
//! runtime's thread stacks and the allocator's arenas are in the start figure).

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dtrsfw::redis::caching::{CacheArgs, CachedFunction, invalidate_namespace_async};
use dtrsfw::redis::{ChannelOptions, Consumer, StartFrom};
use serde::Serialize;

use super::consume::fill;
use super::{BareAsync, BenchContext, BenchRow, Figures};

/// Messages of `consumer_rss_2m` before `--quick` scaling.
const MESSAGES: usize = 2_000_000;
/// Calls of `cache_rss_1m` before `--quick` scaling.
const CALLS: usize = 1_000_000;
/// Entries the producer of `consumer_rss_2m` writes per pipeline: small enough that a
/// pipeline is answered quickly while the consumer keeps the server busy.
const FILL_CHUNK: usize = 1_000;
/// How far the producer may run ahead of the consumer (bounds the server's memory).
const MAX_BACKLOG: usize = 150_000;
/// Concurrent callers of `cache_rss_1m`.
const CALLERS: usize = 16;

/// The figures of a memory row, in MiB.
#[derive(Debug, Clone, Copy, Serialize)]
pub(crate) struct RssFigures {
    /// Resident set size once warm.
    pub(crate) start_mb: f64,
    /// Resident set size at the end.
    pub(crate) end_mb: f64,
    /// `end_mb - start_mb`.
    pub(crate) growth_mb: f64,
}

impl BenchRow {
    /// A row of resident memory at the start and end of a run.
    fn rss(name: &'static str, start_mb: f64, end_mb: f64, note: impl Into<String>) -> Self {
        let figures = RssFigures {
            start_mb,
            end_mb,
            growth_mb: end_mb - start_mb,
        };
        Self::new(name, Figures::Memory(figures), note)
    }
}

/// This process's resident set size in MiB, from `/proc/self/status`; `None` where there
/// is no procfs (not Linux).
fn rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    Some(kb / 1024.0)
}

/// The memory rows of the table.
pub(super) async fn run(ctx: &BenchContext) -> anyhow::Result<Vec<BenchRow>> {
    if rss_mb().is_none() {
        let why = "no /proc/self/status on this system to read the resident set size from";
        return Ok(vec![
            BenchRow::skipped("consumer_rss_2m", why),
            BenchRow::skipped("cache_rss_1m", why),
        ]);
    }
    Ok(vec![consumer_rss(ctx).await?, cache_rss(ctx).await?])
}

/// `consumer_rss_2m`: one consumer (parallelism 16, read-ahead 16, a no-op handler) works
/// through a stream a producer keeps filling, trimmed behind it so the server stays small.
async fn consumer_rss(ctx: &BenchContext) -> anyhow::Result<BenchRow> {
    let n = ctx.n(MESSAGES);
    let warm = n / 20;
    let key = format!("dtredis:bench:memory:{}", std::process::id());
    let mut conn = ctx.bare_async().await?;
    redis::cmd("DEL").arg(&key).exec_async(&mut conn).await?;
    let redis = ctx.instance()?;
    let consumer = Consumer::new(&redis, "rss")?;
    let options = ChannelOptions::new().parallelism(16).read_ahead(16);
    consumer
        .register_channel(&key, options.start_from(StartFrom::Beginning))
        .await?;
    let count = Arc::new(AtomicUsize::new(0));
    let (handled, stop) = (count.clone(), consumer.shutdown_handle());
    consumer.register_handler(&key, move |_name, _payload| {
        if handled.fetch_add(1, Ordering::Relaxed) + 1 == n {
            stop.shutdown();
        }
        Ok::<(), String>(())
    })?;
    let mut producer = tokio::spawn(produce(conn.clone(), key.clone(), n, count.clone()));
    let start = tokio::spawn(rss_once_reached(count.clone(), warm));
    {
        let consume =
            consumer.persist_consume_messages(&key, "rss", Duration::from_millis(50), Duration::from_millis(200));
        tokio::pin!(consume);
        // A producer that fails must end the row, not leave the consumer waiting for ever.
        tokio::select! {
            consumed = &mut consume => {
                consumed?;
                (&mut producer).await??;
            }
            produced = &mut producer => {
                produced??;
                consume.await?;
            }
        }
    }
    let start_mb = start.await?;
    let end_mb = rss_mb().unwrap_or(f64::NAN);
    let processed = consumer.get_stats().await?.channels[&key].processed as usize;
    anyhow::ensure!(processed == n, "consumer processed {processed} of {n}");
    drop(consumer);
    redis::cmd("DEL").arg(&key).exec_async(&mut conn).await?;
    Ok(BenchRow::rss(
        "consumer_rss_2m",
        start_mb,
        end_mb,
        format!("parallelism 16, read-ahead 16; RSS after {warm} and after {n} messages; target growth <= 16 MB"),
    ))
}

/// Writes `n` entries to `key` in pipelines, staying at most [`MAX_BACKLOG`] ahead of the
/// consumer's `handled` count, and trims what the consumer has passed.
async fn produce(mut conn: BareAsync, key: String, n: usize, handled: Arc<AtomicUsize>) -> anyhow::Result<()> {
    let mut sent = 0;
    while sent < n {
        while sent - handled.load(Ordering::Relaxed).min(sent) > MAX_BACKLOG {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        let chunk = FILL_CHUNK.min(n - sent);
        fill(&mut conn, &key, chunk).await?;
        sent += chunk;
        if !sent.is_multiple_of(50 * FILL_CHUNK) && sent < n {
            continue;
        }
        // Approximate trimming keeps at least this many: all of the backlog, and more.
        redis::cmd("XTRIM")
            .arg(&key)
            .arg("MAXLEN")
            .arg("~")
            .arg(2 * MAX_BACKLOG)
            .exec_async(&mut conn)
            .await?;
    }
    Ok(())
}

/// The resident set size once `count` reaches `at` (polled every 5 ms).
async fn rss_once_reached(count: Arc<AtomicUsize>, at: usize) -> f64 {
    while count.load(Ordering::Relaxed) < at {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    rss_mb().unwrap_or(f64::NAN)
}

/// `cache_rss_1m`: [`CALLERS`] tasks make `n` calls with distinct arguments (every one a
/// miss: lookup, computation, store) on one `CachedFunction`.
async fn cache_rss(ctx: &BenchContext) -> anyhow::Result<BenchRow> {
    let n = ctx.n(CALLS);
    let warm = n / 20;
    let redis = ctx.instance()?;
    let namespace = format!("dtredis:bench:memory:{}:cache", std::process::id());
    let cached = CachedFunction::builder(namespace.clone(), ["id"]).expire(120).build()?;
    let next = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(AtomicUsize::new(0));
    let start = tokio::spawn(rss_once_reached(done.clone(), warm));
    let callers: Vec<_> = (0..CALLERS)
        .map(|_| {
            let (redis, cached, next, done) = (redis.clone(), cached.clone(), next.clone(), done.clone());
            tokio::spawn(async move {
                loop {
                    let id = next.fetch_add(1, Ordering::Relaxed);
                    if id >= n {
                        break;
                    }
                    let args = CacheArgs::new().arg("id", &id);
                    let value: u64 = cached.call_async(&redis, &args, async move { id as u64 * 2 }).await;
                    std::hint::black_box(value);
                    done.fetch_add(1, Ordering::Relaxed);
                }
            })
        })
        .collect();
    for caller in callers {
        caller.await?;
    }
    let start_mb = start.await?;
    let end_mb = rss_mb().unwrap_or(f64::NAN);
    let stats = cached.stats();
    anyhow::ensure!(
        stats.misses as usize >= n,
        "{} misses of {n} distinct calls: keys left over from another run?",
        stats.misses
    );
    // The row's entries, outside the measurement (on every primary of a cluster too).
    invalidate_namespace_async(&redis, &namespace).await?;
    Ok(BenchRow::rss(
        "cache_rss_1m",
        start_mb,
        end_mb,
        format!("{n} distinct calls (each a miss), {CALLERS} tasks, one CachedFunction; target: no growth with keys"),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_memory_row_has_the_issue_s_fields() {
        let row = BenchRow::rss("consumer_rss_2m", 12.5, 13.0, "");
        assert_eq!(
            crate::bench::tests::json_keys(&row),
            ["end_mb", "growth_mb", "name", "start_mb"]
        );
        assert_eq!(serde_json::to_value(&row).unwrap()["growth_mb"], 0.5);
    }
}
