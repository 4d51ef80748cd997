//! Benchmarks of the consume area: the consumer against a bare `XREADGROUP COUNT 500` +
//! one `XACK` per batch loop over the same entries, a parallel consumer with a 1 ms
//! handler, and cleanup of a large stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use dtrsfw::redis::{ChannelOptions, Consumer, StartFrom};
use redis::Value;

use super::allocs::timed_counted;
use super::{BareAsync, BenchContext, BenchRow, alternate, bare_ack_cmd, bare_read_cmd, timed};

const BATCH: usize = 500;

/// Fills `key` with `n` entries in the wire format (pipelined, 10 000 per round trip).
pub(super) async fn fill(conn: &mut BareAsync, key: &str, n: usize) -> anyhow::Result<()> {
    let body = r#"{"order_id":12345,"status":"created","amount":99.5}"#;
    let mut left = n;
    while left > 0 {
        let chunk = left.min(10_000);
        let mut pipe = redis::pipe();
        for _ in 0..chunk {
            pipe.cmd("XADD")
                .arg(key)
                .arg("*")
                .arg("name")
                .arg("order.created")
                .arg("body")
                .arg(body)
                .ignore();
        }
        pipe.exec_async(conn).await?;
        left -= chunk;
    }
    Ok(())
}

pub(super) async fn create_group(conn: &mut BareAsync, key: &str, group: &str) -> anyhow::Result<()> {
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg(group)
        .arg("0")
        .exec_async(conn)
        .await?;
    Ok(())
}

/// The bare loop: `XREADGROUP COUNT 500`, decode, one `XACK` per batch.
async fn bare_round(conn: &mut BareAsync, key: &str, group: &str, n: usize) -> anyhow::Result<()> {
    create_group(conn, key, group).await?;
    let mut done = 0;
    while done < n {
        let reply: redis::streams::StreamReadReply = bare_read_cmd(key, group, BATCH, None).query_async(conn).await?;
        let ids: Vec<String> = reply.keys.into_iter().flat_map(|k| k.ids).map(|e| e.id).collect();
        anyhow::ensure!(!ids.is_empty(), "bare loop ran dry at {done} of {n}");
        done += ids.len();
        let _: Value = bare_ack_cmd(key, group, &ids).query_async(conn).await?;
    }
    Ok(())
}

/// Ours: a consumer whose handler stops it after the `n`-th entry; the time includes the
/// graceful stop (drain and final acknowledgement).
async fn ours_round(
    ctx: &BenchContext,
    key: &str,
    service: &str,
    n: usize,
    options: ChannelOptions,
    sleep: Option<Duration>,
) -> anyhow::Result<()> {
    let redis = ctx.instance()?;
    let consumer = Consumer::new(&redis, service)?;
    consumer
        .register_channel(key, options.start_from(StartFrom::Beginning))
        .await?;
    let count = Arc::new(AtomicUsize::new(0));
    let stop = consumer.shutdown_handle();
    match sleep {
        None => consumer.register_handler(key, move |_name, _payload| {
            if count.fetch_add(1, Ordering::Relaxed) + 1 == n {
                stop.shutdown();
            }
            Ok::<(), String>(())
        })?,
        Some(pause) if std::env::var_os("DTREDIS_BENCH_ASYNC_SLEEP").is_some() => {
            consumer.register_async_handler(key, move |_d| {
                let (count, stop) = (count.clone(), stop.clone());
                async move {
                    tokio::time::sleep(pause).await;
                    if count.fetch_add(1, Ordering::Relaxed) + 1 == n {
                        stop.shutdown();
                    }
                    Ok::<(), String>(())
                }
            })?
        }
        Some(pause) => consumer.register_handler(key, move |_name, _payload| {
            std::thread::sleep(pause);
            if count.fetch_add(1, Ordering::Relaxed) + 1 == n {
                stop.shutdown();
            }
            Ok::<(), String>(())
        })?,
    }
    consumer
        .persist_consume_messages(key, service, Duration::from_millis(50), Duration::from_millis(200))
        .await?;
    let stats = consumer.get_stats().await?;
    anyhow::ensure!(
        stats.channels[key].processed as usize == n,
        "consumer processed {} of {n}",
        stats.channels[key].processed
    );
    Ok(())
}

/// The consume rows of the table.
pub(super) async fn run(ctx: &BenchContext) -> anyhow::Result<Vec<BenchRow>> {
    let mut conn = ctx.bare_async().await?;
    let mut rows = Vec::new();

    // consume_noop: same entries, each round a fresh group for each side.
    let n = ctx.n(100_000);
    let key = "bench:consume:noop";
    redis::cmd("DEL").arg(key).exec_async(&mut conn).await?;
    fill(&mut conn, key, n).await?;
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    let (mut ours_allocs, mut bare_allocs) = (Vec::new(), Vec::new());
    for round in 0..ctx.rounds() {
        let opts = ChannelOptions::new().read_ahead(BATCH - 1);
        let (ours_group, bare_group) = (format!("ours{round}"), format!("bare{round}"));
        let ours_round = timed_counted(n, &mut ours_allocs, ours_round(ctx, key, &ours_group, n, opts, None));
        let bare_round = timed_counted(n, &mut bare_allocs, bare_round(&mut conn, key, &bare_group, n));
        alternate(round, ours_round, bare_round, &mut ours, &mut bare).await?;
    }
    redis::cmd("DEL").arg(key).exec_async(&mut conn).await?;
    rows.push(
        BenchRow::compared(
            "consume_noop",
            &ours,
            &bare,
            "no-op handler, at-least-once, 500 per read; target ratio >= 0.7",
        )
        .with_allocs(&ours_allocs, &bare_allocs),
    );

    // consume_parallel_1ms: 16 handlers at once, each sleeping 1 ms.
    let n = ctx.n(30_000);
    let key = "bench:consume:parallel";
    redis::cmd("DEL").arg(key).exec_async(&mut conn).await?;
    fill(&mut conn, key, n).await?;
    let mut ours = Vec::new();
    for round in 0..ctx.rounds() {
        let opts = ChannelOptions::new().parallelism(16).read_ahead(16);
        ours.push(
            timed(
                n,
                ours_round(
                    ctx,
                    key,
                    &format!("par{round}"),
                    n,
                    opts,
                    Some(Duration::from_millis(1)),
                ),
            )
            .await?,
        );
    }
    redis::cmd("DEL").arg(key).exec_async(&mut conn).await?;
    rows.push(BenchRow::throughput(
        "consume_parallel_1ms",
        &ours,
        "parallelism 16, sync handler std::thread::sleep(1 ms); target >= 12000/s",
    ));

    // cleanup_1m: a stream read by three groups, trimmed in one call.
    let n = ctx.n(1_000_000);
    let mut seconds = Vec::new();
    for round in 0..ctx.rounds().min(3) {
        let key = format!("bench:consume:cleanup{round}");
        redis::cmd("DEL").arg(&key).exec_async(&mut conn).await?;
        fill(&mut conn, &key, n).await?;
        for svc in ["a", "b", "c"] {
            let group = dtrsfw::redis::streamer::group_name(&key, svc);
            create_group(&mut conn, &key, &group).await?;
            // Mark everything delivered and acknowledged, cheaply: `SETID` to the last entry.
            redis::cmd("XGROUP")
                .arg("SETID")
                .arg(&key)
                .arg(&group)
                .arg("$")
                .exec_async(&mut conn)
                .await?;
        }
        let redis = ctx.instance()?;
        let consumer = Consumer::new(&redis, "cleaner")?;
        consumer
            .register_channel(
                &key,
                ChannelOptions::new()
                    .read_messages(false)
                    .consumers(["a", "b", "c"])
                    .message_cleanup(true),
            )
            .await?;
        let start = Instant::now();
        let deleted = consumer.clean_up_consumed_messages().await?;
        seconds.push(start.elapsed().as_secs_f64());
        anyhow::ensure!(deleted as usize == n, "cleanup deleted {deleted} of {n}");
        redis::cmd("DEL").arg(&key).exec_async(&mut conn).await?;
    }
    rows.push(BenchRow::seconds(
        "cleanup_1m",
        &seconds,
        "1 000 000 entries (100 000 with --quick), 3 groups; target < 1 s",
    ));
    Ok(rows)
}
