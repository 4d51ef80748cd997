//! Benchmarks of durable sends: [`Sender`] with `set_wait_for_replicas(1)` beside a bare
//! redis-rs loop that pipelines the same `XADD`s and one `WAIT 1` (the same work on the
//! wire: one round trip per send, the wait after the writes).
//!
//! `WAIT 1` needs a replica. When the bench server has one (`connected_slaves` >= 1 in
//! its `INFO`), the rows run there; otherwise on a private primary with one replica
//! started for these rows (same binary as the private bench server), whatever `--url`
//! says, and the note says so.

use dtrsfw::redis::sender::{Message, Sender, SenderOptions};
use dtrsfw_server::ReplicaSet;

use super::{BenchContext, BenchRow, alternate, timed};

/// Messages per pipeline in `publish_batch_wait1`.
const BATCH: usize = 100;
/// `WAIT`'s timeout, ms: generous, a met wait answers as soon as the replica acks.
const WAIT_TIMEOUT_MS: u64 = 1_000;

/// The `publish_*_wait1` rows.
pub(super) async fn run(ctx: &BenchContext) -> anyhow::Result<Vec<BenchRow>> {
    let (_set, url) = server_with_a_replica(ctx).await?;
    let ctx = BenchContext {
        url,
        quick: ctx.quick,
        retention_entries: ctx.retention_entries,
    };
    let options = SenderOptions::new()
        .set_wait_for_replicas(1)
        .set_durability_timeout(std::time::Duration::from_millis(WAIT_TIMEOUT_MS));
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
    bare_round_trip(&mut bare, &bare_key, std::slice::from_ref(&message)).await?;

    let mut rows = Vec::new();
    for (name, size, calls, note) in [
        (
            "publish_single_wait1",
            1,
            ctx.n(5_000),
            "send_message + WAIT 1 vs bare pipelined XADD + WAIT 1; no target",
        ),
        (
            "publish_batch_wait1",
            BATCH,
            ctx.n(500),
            "send_messages of 100 + WAIT 1 vs bare pipeline of 100 XADD + WAIT 1; no target",
        ),
    ] {
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
                    bare_round_trip(&mut conn, &bare_key, &batch).await?;
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

/// What a hand-written durable publisher sends: the `XADD`s and `WAIT 1`, one pipeline.
async fn bare_round_trip(conn: &mut super::BareAsync, key: &str, batch: &[Message]) -> anyhow::Result<()> {
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
    pipe.cmd("WAIT").arg(1).arg(WAIT_TIMEOUT_MS);
    let replies: Vec<redis::Value> = pipe.query_async(conn).await?;
    anyhow::ensure!(
        replies.last() == Some(&redis::Value::Int(1)),
        "bare WAIT 1 not met: {:?}",
        replies.last()
    );
    Ok(())
}
