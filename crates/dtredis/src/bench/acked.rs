//! Benchmarks of Redis 8.2's acknowledged-aware stream commands, as the library uses
//! them, each beside a bare redis-rs loop doing the same Redis work:
//!
//! - `consume_noop_delete_on_ack`: a consumer with
//!   `ChannelOptions::delete_when_acked_by_all` consumes, acknowledges and deletes every
//!   entry (the round ends when the stream is empty); the bare loop reads `XREADGROUP
//!   COUNT 500` and sends one `XACKDEL ... ACKED` per batch on 8.2, one `XACK` + one `XDEL`
//!   elsewhere.
//! - `retention_acked_1m`: a `Sender` publishes 1 000 000 entries (batches of 1000) with
//!   `Retention::MaxLenAcked(10_000)` while a consumer keeps up; the bare side pipelines
//!   the same `XADD ... MAXLEN 10000 ACKED` while a bare `XREADGROUP` + `XACK` loop keeps
//!   up. Publishing waits while more than 5000 entries are unconsumed (the consumer
//!   keeps up; see `WINDOW`). Both check that the stream stayed bounded (largest length sampled) and that no
//!   unacknowledged entry was trimmed (entries never seen by the consumer). Redis 8.2 only;
//!   elsewhere the row says it was skipped and why.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dtrsfw::redis::sender::{Message, Retention, Sender};
use dtrsfw::redis::{ChannelOptions, Consumer, StartFrom};
use redis::Value;

use super::consume::{create_group, fill};
use super::{BareAsync, BenchContext, BenchRow, alternate, bare_ack_cmd, bare_read_cmd, per_second};

const BATCH: usize = 500;
const BOUND: u64 = 10_000;
/// How far publishing may run ahead of consumption ("a consumer that keeps up"). With
/// more than `BOUND` unacknowledged entries every `XADD ... MAXLEN n ACKED` scans them
/// all on Redis 8.2.3 (measured: 20 000 such XADDs over a growing unacknowledged backlog
/// took 24 s), so the row keeps the backlog well below the bound.
const WINDOW: usize = 5_000;

/// Waits while more than `WINDOW` of the `published` entries are not consumed yet.
async fn keep_pace(published: usize, consumed: &AtomicUsize) {
    while published.saturating_sub(consumed.load(Ordering::Relaxed)) > WINDOW {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// The acked rows of the table.
pub(super) async fn run(ctx: &BenchContext) -> anyhow::Result<Vec<BenchRow>> {
    let caps = ctx.instance()?.server_capabilities().await?;
    let mut rows = vec![delete_on_ack(ctx, caps.ack_aware_streams()).await?];
    rows.push(if caps.ack_aware_streams() {
        retention(ctx).await?
    } else {
        BenchRow::skipped(
            "retention_acked_1m",
            format!("needs Redis 8.2 (MAXLEN ... ACKED); the server is {caps}"),
        )
    });
    Ok(rows)
}

async fn xlen(conn: &mut BareAsync, key: &str) -> anyhow::Result<usize> {
    Ok(redis::cmd("XLEN").arg(key).query_async(conn).await?)
}

/// `consume_noop_delete_on_ack`: fresh streams per side per round.
async fn delete_on_ack(ctx: &BenchContext, ack_aware: bool) -> anyhow::Result<BenchRow> {
    let mut conn = ctx.bare_async().await?;
    let n = ctx.n(100_000);
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    for round in 0..ctx.rounds() {
        let (ours_key, bare_key) = (format!("bench:acked:ours{round}"), format!("bench:acked:bare{round}"));
        for key in [&ours_key, &bare_key] {
            redis::cmd("DEL").arg(key).exec_async(&mut conn).await?;
            fill(&mut conn, key, n).await?;
        }
        let ours_round = ours_delete_round(ctx, &ours_key, n);
        let bare_round = bare_delete_round(conn.clone(), &bare_key, n, ack_aware);
        alternate(round, ours_round, bare_round, &mut ours, &mut bare).await?;
        for key in [&ours_key, &bare_key] {
            anyhow::ensure!(xlen(&mut conn, key).await? == 0, "{key} not emptied");
            redis::cmd("DEL").arg(key).exec_async(&mut conn).await?;
        }
    }
    let how = if ack_aware {
        "XACKDEL ACKED"
    } else {
        "XACK + XDEL (no XACKDEL here)"
    };
    Ok(BenchRow::compared(
        "consume_noop_delete_on_ack",
        &ours,
        &bare,
        format!("delete_when_acked_by_all; bare: XREADGROUP COUNT 500 + {how}; stream emptied"),
    ))
}

/// Ours: the consumer stops after the `n`-th entry; the round ends when the stream is
/// empty (on servers without XACKDEL, after the channel's pass, run here at once).
async fn ours_delete_round(ctx: &BenchContext, key: &str, n: usize) -> anyhow::Result<f64> {
    let redis = ctx.instance()?;
    let consumer = Consumer::new(&redis, "svc")?;
    let options = ChannelOptions::new()
        .start_from(StartFrom::Beginning)
        .read_ahead(BATCH - 1)
        .consumers(["svc"])
        .delete_when_acked_by_all(true);
    consumer.register_channel(key, options).await?;
    let count = Arc::new(AtomicUsize::new(0));
    let stop = consumer.shutdown_handle();
    consumer.register_handler(key, move |_name, _payload| {
        if count.fetch_add(1, Ordering::Relaxed) + 1 == n {
            stop.shutdown();
        }
        Ok::<(), String>(())
    })?;
    let start = Instant::now();
    consumer
        .persist_consume_messages(key, "svc", Duration::from_millis(50), Duration::from_millis(200))
        .await?;
    consumer.clean_up_consumed_messages().await?;
    Ok(per_second(n, start.elapsed()))
}

/// The bare loop: `XREADGROUP COUNT 500`, then `XACKDEL ACKED` (or `XACK` + `XDEL`).
async fn bare_delete_round(mut conn: BareAsync, key: &str, n: usize, ack_aware: bool) -> anyhow::Result<f64> {
    create_group(&mut conn, key, "bare").await?;
    let start = Instant::now();
    let mut done = 0;
    while done < n {
        let ids = bare_read(&mut conn, key, "bare").await?;
        anyhow::ensure!(!ids.is_empty(), "bare loop ran dry at {done} of {n}");
        done += ids.len();
        if ack_aware {
            let _: Value = redis::cmd("XACKDEL")
                .arg(key)
                .arg("bare")
                .arg("ACKED")
                .arg("IDS")
                .arg(ids.len())
                .arg(&ids)
                .query_async(&mut conn)
                .await?;
        } else {
            let _: Value = bare_ack_cmd(key, "bare", &ids).query_async(&mut conn).await?;
            let _: Value = redis::cmd("XDEL").arg(key).arg(&ids).query_async(&mut conn).await?;
        }
    }
    Ok(per_second(n, start.elapsed()))
}

/// One `XREADGROUP COUNT 500` (blocking up to 100 ms), the IDs read.
async fn bare_read(conn: &mut BareAsync, key: &str, group: &str) -> anyhow::Result<Vec<String>> {
    let reply: Option<redis::streams::StreamReadReply> =
        bare_read_cmd(key, group, BATCH, Some(100)).query_async(conn).await?;
    Ok(reply
        .map(|r| r.keys.into_iter().flat_map(|k| k.ids).map(|e| e.id).collect())
        .unwrap_or_default())
}

/// What one retention round saw.
struct RetentionRound {
    per_s: f64,
    max_len: usize,
    unacked_trimmed: usize,
}

/// `retention_acked_1m`.
async fn retention(ctx: &BenchContext) -> anyhow::Result<BenchRow> {
    // `--quick` (a smoke run, also the CLI tests'): a hundredth, one round.
    let (n, rounds) = if ctx.quick {
        ((ctx.retention_entries / 100).max(1), 1)
    } else {
        (ctx.retention_entries, 3)
    };
    let (mut ours, mut bare) = (Vec::new(), Vec::new());
    let (mut max_len, mut unacked_trimmed) = (0, 0);
    for round in 0..rounds {
        let ours_round = async {
            let r = ours_retention_round(ctx, &format!("bench:retention:ours{round}"), n).await?;
            (max_len, unacked_trimmed) = (max_len.max(r.max_len), unacked_trimmed + r.unacked_trimmed);
            Ok(r.per_s)
        };
        let bare_round = async {
            let r = bare_retention_round(ctx, &format!("bench:retention:bare{round}"), n).await?;
            anyhow::ensure!(
                r.unacked_trimmed == 0,
                "bare: {} unacknowledged entries trimmed",
                r.unacked_trimmed
            );
            Ok(r.per_s)
        };
        alternate(round, ours_round, bare_round, &mut ours, &mut bare).await?;
    }
    anyhow::ensure!(
        unacked_trimmed == 0,
        "{unacked_trimmed} unacknowledged entries were trimmed"
    );
    Ok(BenchRow::compared(
        "retention_acked_1m",
        &ours,
        &bare,
        format!(
            "{n} published, MAXLEN {BOUND} ACKED, consumer keeping up: longest stream seen {max_len}, unacknowledged trimmed {unacked_trimmed}"
        ),
    ))
}

/// Samples the stream's length every 20 ms until `done`; returns the largest seen.
fn sample_len(
    ctx: &BenchContext,
    key: String,
    done: Arc<AtomicBool>,
) -> tokio::task::JoinHandle<anyhow::Result<usize>> {
    let ctx = ctx.clone();
    tokio::spawn(async move {
        let mut conn = ctx.bare_async().await?;
        let mut max = 0;
        while !done.load(Ordering::Relaxed) {
            max = max.max(xlen(&mut conn, &key).await?);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(max)
    })
}

/// The `i` of a body `{"i":<i>}`.
fn seq_of(body: &serde_json::Value) -> Option<usize> {
    body["i"].as_u64().and_then(|i| usize::try_from(i).ok())
}

async fn ours_retention_round(ctx: &BenchContext, key: &str, n: usize) -> anyhow::Result<RetentionRound> {
    let redis = ctx.instance()?;
    let consumer = Consumer::new(&redis, "svc")?;
    let opts = ChannelOptions::new()
        .start_from(StartFrom::Beginning)
        .read_ahead(BATCH - 1);
    consumer.register_channel(key, opts).await?;
    let seen = Arc::new(Mutex::new(vec![false; n]));
    let consumed = Arc::new(AtomicUsize::new(0));
    let (count, stop, marks) = (consumed.clone(), consumer.shutdown_handle(), seen.clone());
    consumer.register_handler(key, move |_name, body| {
        if let Some(i) = seq_of(body) {
            marks.lock().unwrap_or_else(|e| e.into_inner())[i] = true;
        }
        if count.fetch_add(1, Ordering::Relaxed) + 1 == n {
            stop.shutdown();
        }
        Ok::<(), String>(())
    })?;
    let sender = Sender::new(&redis);
    sender
        .register_channel_with_async(key, Retention::MaxLenAcked(BOUND))
        .await?;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = sample_len(ctx, key.to_owned(), done.clone());
    let start = Instant::now();
    let (c, channel) = (consumer.clone(), key.to_owned());
    let reading = tokio::spawn(async move {
        c.persist_consume_messages(&channel, "svc", Duration::from_millis(50), Duration::from_millis(100))
            .await
    });
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        keep_pace(chunk[0], &consumed).await;
        let batch: Vec<Message> = chunk
            .iter()
            .map(|i| Message::new("e", &serde_json::json!({ "i": i })))
            .collect::<Result<_, _>>()?;
        sender.send_messages(key, &batch).await?;
    }
    // The consumer stops at the n-th entry; a trimmed one would never come: bounded wait.
    let finished = tokio::time::timeout(Duration::from_secs(60), reading).await;
    consumer.shutdown();
    let per_s = per_second(n, start.elapsed());
    done.store(true, Ordering::Relaxed);
    if let Ok(joined) = finished {
        joined??;
    }
    let max_len = sampler.await??;
    let unacked_trimmed = seen
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .filter(|s| !**s)
        .count();
    let mut conn = ctx.bare_async().await?;
    redis::cmd("DEL").arg(key).exec_async(&mut conn).await?;
    Ok(RetentionRound {
        per_s,
        max_len,
        unacked_trimmed,
    })
}

async fn bare_retention_round(ctx: &BenchContext, key: &str, n: usize) -> anyhow::Result<RetentionRound> {
    let mut conn = ctx.bare_async().await?;
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg("g")
        .arg("$")
        .arg("MKSTREAM")
        .exec_async(&mut conn)
        .await?;
    let done = Arc::new(AtomicBool::new(false));
    let sampler = sample_len(ctx, key.to_owned(), done.clone());
    let start = Instant::now();
    let consumed = Arc::new(AtomicUsize::new(0));
    let reading = spawn_bare_reader(ctx.bare_async().await?, key.to_owned(), n, consumed.clone());
    for chunk in (0..n).collect::<Vec<_>>().chunks(1000) {
        keep_pace(chunk[0], &consumed).await;
        bare_publish(&mut conn, key, chunk).await?;
    }
    let seen = reading.await??;
    let per_s = per_second(n, start.elapsed());
    done.store(true, Ordering::Relaxed);
    let max_len = sampler.await??;
    redis::cmd("DEL").arg(key).exec_async(&mut conn).await?;
    Ok(RetentionRound {
        per_s,
        max_len,
        unacked_trimmed: seen.iter().filter(|s| !**s).count(),
    })
}

/// One pipeline of `XADD key MAXLEN 10000 ACKED * name e body {"i":<i>}`.
async fn bare_publish(conn: &mut BareAsync, key: &str, seqs: &[usize]) -> anyhow::Result<()> {
    let mut pipe = redis::pipe();
    for i in seqs {
        let mut cmd = redis::cmd("XADD");
        cmd.arg(key).arg("MAXLEN").arg(BOUND).arg("ACKED").arg("*");
        for (field, value) in Message::new("e", &serde_json::json!({ "i": i }))?.get_json_encoded() {
            cmd.arg(field).arg(value);
        }
        pipe.add_command(cmd).ignore();
    }
    pipe.exec_async(conn).await?;
    Ok(())
}

/// The bare consumer: `XREADGROUP COUNT 500` + `XACK` until `n` entries (at most 60 s);
/// marks each payload sequence number seen and publishes its progress in `consumed`.
fn spawn_bare_reader(
    mut reader: BareAsync,
    key: String,
    n: usize,
    consumed: Arc<AtomicUsize>,
) -> tokio::task::JoinHandle<anyhow::Result<Vec<bool>>> {
    tokio::spawn(async move {
        let mut seen = vec![false; n];
        let mut count = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while count < n && Instant::now() < deadline {
            let reply: Option<redis::streams::StreamReadReply> = bare_read_cmd(&key, "g", BATCH, Some(100))
                .query_async(&mut reader)
                .await?;
            let entries: Vec<_> = reply
                .map(|r| r.keys.into_iter().flat_map(|k| k.ids).collect())
                .unwrap_or_default();
            for e in &entries {
                let body: Option<String> = e.get("body");
                let parsed = body.and_then(|b| serde_json::from_str::<serde_json::Value>(&b).ok());
                if let Some(i) = parsed.as_ref().and_then(seq_of) {
                    seen[i] = true;
                }
            }
            count += entries.len();
            if !entries.is_empty() {
                let ids: Vec<&str> = entries.iter().map(|e| e.id.as_str()).collect();
                let _: Value = bare_ack_cmd(&key, "g", &ids).query_async(&mut reader).await?;
            }
            consumed.store(count, Ordering::Relaxed);
        }
        anyhow::Ok(seen)
    })
}
