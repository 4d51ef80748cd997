//! Benchmarks of durable sends: [`Sender`] with `set_wait_for_replicas(1)` or
//! `set_wait_for_aof(true, n)` beside a bare redis-rs loop that pipelines the same
//! `XADD`s and one `WAIT 1` / `WAITAOF 1 n` (the same work on the wire: one round trip per
//! send, the wait after the writes).
//!
//! `WAIT 1` needs a replica. When the bench server has one (`connected_slaves` >= 1 in
//! its `INFO`), the `*_wait1` rows run there; otherwise on a private primary with one
//! replica started for these rows (same binary as the private bench server), whatever
//! `--url` says, and the note says so. The `*_waitaof*` rows always run on a private
//! primary + replica with `appendonly yes` and `appendfsync always` (each write fsynced
//! before its reply): `publish_*_waitaof` wait for the primary's fsync (`WAITAOF 1 0`),
//! `publish_single_waitaof1` for a replica's too (`WAITAOF 1 1`, which the replica reports
//! in its acks, about once a second: 10 calls only). On a server without `WAITAOF`
//! (Redis < 7.2, Valkey < 8.0) they are skipped, saying so.

use std::time::Duration;

use dtrsfw::redis::sender::{Message, Sender, SenderOptions};
use dtrsfw_server::{ReplicaSet, Server};

use super::{BenchContext, BenchRow, alternate, timed};

/// Messages per pipeline in the batch rows.
const BATCH: usize = 100;
/// The waits' timeout, ms: generous, a met wait answers as soon as the replica acks.
const WAIT_TIMEOUT_MS: u64 = 1_000;

/// One durability level: its rows (name, note, messages per call, calls), the sender's
/// options, the bare pipeline's wait command and the reply that says it was met.
struct Level {
    rows: Vec<(&'static str, &'static str, usize, usize)>,
    options: SenderOptions,
    wait: fn(&mut redis::Pipeline),
    met: fn(&redis::Value) -> bool,
}

fn wait1() -> Level {
    Level {
        rows: vec![
            (
                "publish_single_wait1",
                "send_message + WAIT 1 vs bare pipelined XADD + WAIT 1; no target",
                1,
                5_000,
            ),
            (
                "publish_batch_wait1",
                "send_messages of 100 + WAIT 1 vs bare pipeline of 100 XADD + WAIT 1; no target",
                BATCH,
                500,
            ),
        ],
        options: SenderOptions::new().set_wait_for_replicas(1),
        wait: |pipe| {
            pipe.cmd("WAIT").arg(1).arg(WAIT_TIMEOUT_MS);
        },
        met: |reply| *reply == redis::Value::Int(1),
    }
}

/// `WAITAOF 1 0`: the primary's own fsync (with `appendfsync always`, done before the
/// `XADD`'s reply).
fn waitaof_local() -> Level {
    Level {
        rows: vec![
            (
                "publish_single_waitaof",
                "send_message + WAITAOF 1 0 vs bare pipelined XADD + WAITAOF 1 0; appendfsync always; no target",
                1,
                5_000,
            ),
            (
                "publish_batch_waitaof",
                "send_messages of 100 + WAITAOF 1 0 vs bare pipeline of 100 XADD + WAITAOF 1 0; no target",
                BATCH,
                500,
            ),
        ],
        options: SenderOptions::new().set_wait_for_aof(true, 0),
        wait: |pipe| {
            pipe.cmd("WAITAOF").arg(1).arg(0).arg(WAIT_TIMEOUT_MS);
        },
        met: |reply| matches!(reply, redis::Value::Array(v) if v[..] == [redis::Value::Int(1), redis::Value::Int(0)]),
    }
}

/// `WAITAOF 1 1`: also a replica's fsync, which the replica reports in its acks (about
/// once a second): few calls, each waits up to that long.
fn waitaof_replica() -> Level {
    Level {
        rows: vec![(
            "publish_single_waitaof1",
            "send_message + WAITAOF 1 1 vs bare pipelined XADD + WAITAOF 1 1; no target",
            1,
            10,
        )],
        options: SenderOptions::new().set_wait_for_aof(true, 1),
        wait: |pipe| {
            pipe.cmd("WAITAOF").arg(1).arg(1).arg(WAIT_TIMEOUT_MS);
        },
        met: |reply| matches!(reply, redis::Value::Array(v) if v[..] == [redis::Value::Int(1), redis::Value::Int(1)]),
    }
}

/// The `publish_*_wait1` and `publish_*_waitaof*` rows.
pub(super) async fn run(ctx: &BenchContext) -> anyhow::Result<Vec<BenchRow>> {
    let (_set, url) = server_with_a_replica(ctx).await?;
    let mut rows = measure(&ctx.on(url), &wait1()).await?;
    let aof = tokio::task::spawn_blocking(|| ReplicaSet::start_with(1, || Server::builder().appendonly())).await?;
    let supported = has_waitaof(&aof).await?;
    for level in [waitaof_local(), waitaof_replica()] {
        if supported {
            rows.extend(measure(&ctx.on(aof.primary().url()), &level).await?);
        } else {
            let why = "this server has no WAITAOF (Redis >= 7.2, Valkey >= 8.0)";
            rows.extend(level.rows.iter().map(|(name, ..)| BenchRow::skipped(name, why)));
        }
    }
    Ok(rows)
}

/// The rows of `level` on the server of `ctx`.
async fn measure(ctx: &BenchContext, level: &Level) -> anyhow::Result<Vec<BenchRow>> {
    let options = level
        .options
        .clone()
        .set_durability_timeout(Duration::from_millis(WAIT_TIMEOUT_MS));
    let sender = Sender::with_options(&ctx.instance()?, options);
    let mut bare = ctx.bare_async().await?;
    let message = Message::new(
        "order.created",
        &serde_json::json!({"order_id": 123_456, "dealer": "dt-0042"}),
    )?;
    let prefix = format!("dtredis:bench:publish-wait:{}", std::process::id());
    let (ours_key, bare_key) = (format!("{prefix}:ours"), format!("{prefix}:bare"));
    sender.register_channel(ours_key.clone())?;
    // Connect both sides before timing anything.
    sender.send_message(&ours_key, &message).await?;
    bare_round_trip(&mut bare, &bare_key, std::slice::from_ref(&message), level).await?;

    let mut rows = Vec::new();
    for &(name, note, size, calls) in &level.rows {
        let calls = ctx.n(calls);
        let batch = vec![message.clone(); size];
        let (mut ours, mut theirs) = (Vec::new(), Vec::new());
        for round in 0..ctx.rounds() {
            let ours_round = timed(calls * size, async {
                for _ in 0..calls {
                    if size == 1 {
                        sender.send_message(&ours_key, &batch[0]).await?;
                    } else {
                        sender.send_messages(&ours_key, &batch).await?;
                    }
                }
                Ok(())
            });
            let mut conn = bare.clone();
            let bare_round = timed(calls * size, async {
                for _ in 0..calls {
                    bare_round_trip(&mut conn, &bare_key, &batch, level).await?;
                }
                Ok(())
            });
            alternate(round, ours_round, bare_round, &mut ours, &mut theirs).await?;
            let _: () = redis::cmd("DEL")
                .arg(&ours_key)
                .arg(&bare_key)
                .query_async(&mut bare)
                .await?;
        }
        rows.push(BenchRow::compared(name, &ours, &theirs, note));
    }
    Ok(rows)
}

/// Whether the server has `WAITAOF` (`COMMAND INFO` answers nil for an unknown command).
async fn has_waitaof(set: &ReplicaSet) -> anyhow::Result<bool> {
    let mut conn = set.primary().client().get_multiplexed_async_connection().await?;
    let info: Vec<redis::Value> = redis::cmd("COMMAND")
        .arg("INFO")
        .arg("WAITAOF")
        .query_async(&mut conn)
        .await?;
    Ok(info.iter().any(|i| *i != redis::Value::Nil))
}

/// The bench server when it has a replica, else a private primary + replica (kept alive
/// by the returned set).
async fn server_with_a_replica(ctx: &BenchContext) -> anyhow::Result<(Option<ReplicaSet>, String)> {
    let mut conn = redis::Client::open(super::one_node_url(&ctx.url))?
        .get_multiplexed_async_connection()
        .await?;
    let info: String = redis::cmd("INFO").arg("replication").query_async(&mut conn).await?;
    let replicas = info
        .lines()
        .find_map(|l| l.strip_prefix("connected_slaves:"))
        .and_then(|n| n.trim().parse::<u32>().ok())
        .unwrap_or(0);
    if replicas >= 1 {
        return Ok((None, ctx.url.clone()));
    }
    eprintln!("bench: the server has no replica; the *_wait1 rows run on a private primary + replica");
    let set = tokio::task::spawn_blocking(|| ReplicaSet::start(1)).await?;
    let url = set.primary().url();
    Ok((Some(set), url))
}

/// What a hand-written durable publisher sends: the `XADD`s and the wait, one pipeline.
async fn bare_round_trip(
    conn: &mut super::BareAsync,
    key: &str,
    batch: &[Message],
    level: &Level,
) -> anyhow::Result<()> {
    let mut pipe = redis::pipe();
    for message in batch {
        pipe.cmd("XADD")
            .arg(key)
            .arg("*")
            .arg("name")
            .arg(message.name())
            .arg("body")
            .arg(message.body_json());
    }
    (level.wait)(&mut pipe);
    let replies: Vec<redis::Value> = pipe.query_async(conn).await?;
    anyhow::ensure!(
        replies.last().is_some_and(level.met),
        "bare wait not met: {:?}",
        replies.last()
    );
    Ok(())
}
