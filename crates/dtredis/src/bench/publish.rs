//! Benchmarks of the publish area: [`Sender`] beside the same `XADD`s written by hand on a
//! bare redis-rs multiplexed connection.
//!
//! Both sides send the same pre-encoded message (the body is serialized once, outside the
//! timing, as a service would do for its payload before sending) to a fresh stream per
//! round, deleted after the round, so neither side pays for the other's stream growth.

use std::time::Instant;

use dtrsfw::redis::sender::{Message, Sender};
use futures_util::FutureExt;

use super::allocs::timed_counted;
use super::{BareAsync, BenchContext, BenchRow, alternate, per_second};

/// Messages per pipeline in `publish_batch`.
const BATCH: usize = 100;
/// Concurrent tasks in `publish_concurrent`.
const TASKS: usize = 64;

/// How many times the others' rounds `publish_concurrent` runs. Its rounds are short
/// (64 000 sends, ~0.2 s a side) and scatter: 64 tasks and a connection's driver share
/// two workers, and where the runtime happens to run them moves a round's rate a lot
/// (a round's ratio to bare ranged 0.63 to 1.66 in four runs of 21 rounds). The row's
/// ratio over 7 rounds moved from 0.88 to 1.27 between runs; over 21, 0.97 to 1.09 in
/// four runs, for ~6 s more.
const CONCURRENT_ROUNDS_FACTOR: usize = 3;

/// The publish rows of the table.
pub(super) async fn run(ctx: &BenchContext) -> anyhow::Result<Vec<BenchRow>> {
    let redis = ctx.instance()?;
    let sender = Sender::new(&redis);
    let mut bare = ctx.bare_async().await?;
    let message = Message::new(
        "order.created",
        &serde_json::json!({
            "order_id": 123_456,
            "dealer": "dt-0042",
            "vin": "1HGCM82633A004352",
            "lines": [{"sku": "wheel", "qty": 4, "price": 129.5}],
        }),
    )?;
    let keys = Keys::new(&sender)?;

    // Connect both sides before timing anything.
    sender.send_message(&keys.warm_up, &message).await?;
    bare_xadd(&mut bare, &keys.warm_up, &message).await?;

    // Streams are cleared between rounds through a handle of their own (a clone of the
    // same multiplexed connection): the rounds' futures hold clones of `bare`.
    let mut admin = bare.clone();
    let (sender, message, keys, bare) = (&sender, &message, &keys, &bare);
    let mut rows = Vec::new();

    let n = ctx.n(20_000);
    let rounds = compare(
        ctx.rounds(),
        keys,
        &mut admin,
        n,
        || async move {
            for _ in 0..n {
                sender.send_message(&keys.ours, message).await?;
            }
            Ok(())
        },
        || {
            let mut conn = bare.clone();
            async move {
                for _ in 0..n {
                    bare_xadd(&mut conn, &keys.bare, message).await?;
                }
                Ok(())
            }
        },
    )
    .await?;
    rows.push(rounds.row(
        "publish_single",
        "send_message awaited one at a time vs bare XADD; target >= 0.9",
    ));

    let calls = ctx.n(1_000);
    let batch = &vec![message.clone(); BATCH];
    let rounds = compare(
        ctx.rounds(),
        keys,
        &mut admin,
        calls * BATCH,
        || async move {
            for _ in 0..calls {
                sender.send_messages(&keys.ours, batch).await?;
            }
            Ok(())
        },
        || {
            let mut conn = bare.clone();
            async move {
                for _ in 0..calls {
                    let mut pipe = redis::pipe();
                    for message in batch {
                        pipe.add_command(xadd_cmd(&keys.bare, message));
                    }
                    let _ids: Vec<String> = pipe.query_async(&mut conn).await?;
                }
                Ok(())
            }
        },
    )
    .await?;
    rows.push(rounds.row(
        "publish_batch",
        "send_messages of 100 vs bare pipeline of 100 XADD; target >= 0.8",
    ));

    let per_task = ctx.n(1_000);
    let rounds = compare(
        ctx.rounds() * CONCURRENT_ROUNDS_FACTOR,
        keys,
        &mut admin,
        TASKS * per_task,
        || {
            concurrently(|| {
                let (sender, message, key) = (sender.clone(), message.clone(), keys.ours.clone());
                async move {
                    for _ in 0..per_task {
                        sender.send_message(&key, &message).await?;
                    }
                    Ok(())
                }
            })
        },
        || {
            concurrently(|| {
                let (mut conn, message, key) = (bare.clone(), message.clone(), keys.bare.clone());
                async move {
                    for _ in 0..per_task {
                        bare_xadd(&mut conn, &key, &message).await?;
                    }
                    Ok(())
                }
            })
        },
    )
    .await?;
    rows.push(rounds.row(
        "publish_concurrent",
        "64 tasks sharing one Sender vs one bare multiplexed connection; target >= 0.8",
    ));

    // The blocking API, on threads (as sync code calls it), beside a bare sync connection.
    let n = ctx.n(10_000);
    let mut bare_sync = ctx.bare_sync()?;
    sender.send_message_blocking(&keys.warm_up, message)?;
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 0..ctx.rounds() {
        let ours_round = || {
            let start = Instant::now();
            for _ in 0..n {
                sender.send_message_blocking(&keys.ours, message)?;
            }
            anyhow::Ok(per_second(n, start.elapsed()))
        };
        let mut bare_round = || {
            let start = Instant::now();
            for _ in 0..n {
                let _id: String = xadd_cmd(&keys.bare, message).query(&mut *bare_sync)?;
            }
            anyhow::Ok(per_second(n, start.elapsed()))
        };
        // Run inline on this worker: the loops are what the row measures, and
        // `block_in_place` lets the runtime move its other work elsewhere meanwhile. The
        // rounds are sync, so `alternate`'s future is done in its first poll.
        tokio::task::block_in_place(|| {
            alternate(
                round,
                async { ours_round() },
                async { bare_round() },
                &mut ours,
                &mut theirs,
            )
            .now_or_never()
            .expect("sync rounds complete in one poll")
        })?;
        keys.clear(&mut admin).await?;
    }
    rows.push(BenchRow::compared(
        "publish_blocking",
        &ours,
        &theirs,
        "send_message_blocking (pooled) vs bare sync XADD; no target",
    ));

    let _: () = redis::cmd("DEL").arg(&keys.warm_up).query_async(&mut admin).await?;
    Ok(rows)
}

/// The rounds of one row: per-second rates and allocations per message, each side.
#[derive(Default)]
struct Rounds {
    ours: Vec<f64>,
    bare: Vec<f64>,
    ours_allocs: Vec<f64>,
    bare_allocs: Vec<f64>,
}

impl Rounds {
    fn row(&self, name: &'static str, note: &str) -> BenchRow {
        BenchRow::compared(name, &self.ours, &self.bare, note).with_allocs(&self.ours_allocs, &self.bare_allocs)
    }
}

/// Runs the `rounds` rounds of one row: a round of `ours()` and one of `bare()`, each of
/// `messages` messages, in alternating order, the streams cleared after each round.
async fn compare<O, B>(
    rounds: usize,
    keys: &Keys,
    admin: &mut BareAsync,
    messages: usize,
    mut ours: impl FnMut() -> O,
    mut bare: impl FnMut() -> B,
) -> anyhow::Result<Rounds>
where
    O: Future<Output = anyhow::Result<()>>,
    B: Future<Output = anyhow::Result<()>>,
{
    let mut r = Rounds::default();
    for round in 0..rounds {
        let ours_round = timed_counted(messages, &mut r.ours_allocs, ours());
        let bare_round = timed_counted(messages, &mut r.bare_allocs, bare());
        alternate(round, ours_round, bare_round, &mut r.ours, &mut r.bare).await?;
        keys.clear(admin).await?;
    }
    Ok(r)
}

/// Runs [`TASKS`] tasks made by `task`, side by side, until all have finished.
async fn concurrently<F>(mut task: impl FnMut() -> F) -> anyhow::Result<()>
where
    F: Future<Output = anyhow::Result<()>> + Send + 'static,
{
    let tasks: Vec<_> = (0..TASKS).map(|_| tokio::spawn(task())).collect();
    for task in tasks {
        task.await??;
    }
    Ok(())
}

/// The stream keys of a run; unique per process so a shared server is not disturbed.
struct Keys {
    ours: String,
    bare: String,
    warm_up: String,
}

impl Keys {
    fn new(sender: &Sender) -> anyhow::Result<Self> {
        let prefix = format!("dtredis:bench:publish:{}", std::process::id());
        let keys = Keys {
            ours: format!("{prefix}:ours"),
            bare: format!("{prefix}:bare"),
            warm_up: format!("{prefix}:warm-up"),
        };
        sender.register_channel(keys.ours.clone())?;
        sender.register_channel(keys.warm_up.clone())?;
        Ok(keys)
    }

    /// Deletes the round's streams, outside the timing.
    async fn clear(&self, conn: &mut BareAsync) -> anyhow::Result<()> {
        let _: () = redis::cmd("DEL")
            .arg(&self.ours)
            .arg(&self.bare)
            .query_async(conn)
            .await?;
        Ok(())
    }
}

/// The bare command: what a hand-written redis-rs publisher sends.
fn xadd_cmd(key: &str, message: &Message) -> redis::Cmd {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(key)
        .arg("*")
        .arg("name")
        .arg(message.name())
        .arg("body")
        .arg(message.body_json());
    cmd
}

async fn bare_xadd(conn: &mut BareAsync, key: &str, message: &Message) -> anyhow::Result<String> {
    Ok(xadd_cmd(key, message).query_async(conn).await?)
}
