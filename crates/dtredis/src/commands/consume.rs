//! `dtredis consume <channel> --service <name>`: a real [`Consumer`] whose handler prints
//! each message, **flushes stdout, then lets the entry be acknowledged** — so whatever a
//! crash loses from the output stays pending in Redis and is delivered again
//! (at-least-once output).

use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use dtrsfw::redis::{ChannelOptions, Consumer, Delivery, RedisInstance, StartFrom};
use tokio::sync::Notify;

use crate::terminal::shutdown_signal;

/// What `consume` was asked to do.
#[derive(Debug)]
pub(crate) struct ConsumeArgs {
    pub(crate) channel: String,
    pub(crate) service: String,
    pub(crate) from_start: bool,
    pub(crate) count: Option<u64>,
    pub(crate) parallel: usize,
    pub(crate) json: bool,
    pub(crate) reclaim_idle: Duration,
    pub(crate) max_deliveries: u64,
}

/// One output line per message: `{"id":..,"name":..,"body":..}` with `--json`, else
/// `<id> <name> <body>`. The body is the stream's JSON text, unchanged.
fn line(delivery: &Delivery, json: bool) -> String {
    let message = delivery.message();
    if json {
        format!(
            "{{\"id\":{},\"name\":{},\"body\":{}}}\n",
            serde_json::Value::from(delivery.id().to_string()),
            serde_json::Value::from(message.name()),
            message.body_json()
        )
    } else {
        format!("{} {} {}\n", delivery.id(), message.name(), message.body_json())
    }
}

/// Runs until `--count` messages were printed, or SIGTERM/SIGINT; then stops reading,
/// lets in-flight handlers finish, acknowledges, and returns.
pub(crate) async fn run(redis: &RedisInstance, args: ConsumeArgs) -> anyhow::Result<()> {
    let consumer = Consumer::new(redis, &args.service)?;
    let start = if args.from_start {
        StartFrom::Beginning
    } else {
        StartFrom::NewMessages
    };
    consumer
        .register_channel(
            &args.channel,
            ChannelOptions::new()
                .start_from(start)
                .parallelism(args.parallel)
                .reclaim_idle(args.reclaim_idle)
                .max_deliveries(args.max_deliveries),
        )
        .await?;

    let printed = Arc::new(AtomicU64::new(0));
    let done = Arc::new(Notify::new());
    let (limit, json) = (args.count, args.json);
    {
        let (printed, done) = (printed.clone(), done.clone());
        consumer.register_async_handler(&args.channel, move |delivery: Delivery| {
            let (printed, done) = (printed.clone(), done.clone());
            async move {
                // Claim an output slot first: with --count, entries beyond the limit are
                // refused (left pending for another consumer), never printed.
                let slot = printed.fetch_add(1, Ordering::SeqCst);
                if limit.is_some_and(|n| slot >= n) {
                    printed.fetch_sub(1, Ordering::SeqCst);
                    return Err("--count reached: left for another consumer".to_owned());
                }
                let mut out = std::io::stdout().lock();
                out.write_all(line(&delivery, json).as_bytes())
                    .and_then(|()| out.flush())
                    .map_err(|e| format!("writing to stdout: {e}"))?;
                if limit.is_some_and(|n| slot + 1 >= n) {
                    done.notify_one();
                }
                Ok(())
            }
        })?;
    }
    let stop = async {
        tokio::select! {
            () = shutdown_signal() => {}
            () = done.notified() => {}
        }
    };
    consumer
        .persist_consume_all_channels_until(Duration::from_millis(50), Duration::from_secs(1), stop)
        .await?;
    Ok(())
}
