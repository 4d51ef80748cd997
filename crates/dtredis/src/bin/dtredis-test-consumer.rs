//! A minimal consumer process for the crash tests of `tests/reliability.rs`: one
//! [`Consumer`] of one service on one channel, each entry printed to stdout as a JSON line
//! `{"id": .., "name": .., "body": ..}` and flushed **before** the handler returns (so
//! before the acknowledgement), stopping gracefully on SIGTERM/Ctrl-C (exit 0).
//!
//! It exists so the crash scenario kills a real process with `kill -9`; it takes its
//! short reclaim idle time from the command line so a test finishes in seconds.

use std::io::Write;
use std::time::Duration;

use clap::Parser;
use dtrsfw::redis::{ChannelOptions, Consumer, RedisConfig, RedisInstance, StartFrom};

/// Consumes one channel as one service and prints every entry as a JSON line.
#[derive(Debug, Parser)]
struct Args {
    /// Server URL.
    #[arg(long)]
    url: String,
    /// The stream.
    #[arg(long)]
    channel: String,
    /// The service (consumer group) name.
    #[arg(long)]
    service: String,
    /// Entries pending this long are reclaimed by another instance, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    reclaim_idle_ms: u64,
    /// Entries read beyond the free handler slot.
    #[arg(long, default_value_t = 100)]
    read_ahead: usize,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    if let Err(e) = run(args).await {
        eprintln!("dtredis-test-consumer: {e}");
        std::process::exit(2);
    }
}

async fn run(args: Args) -> dtrsfw::redis::Result<()> {
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(&args.url))?;
    let consumer = Consumer::new(&redis, &args.service)?;
    consumer
        .register_channel(
            &args.channel,
            ChannelOptions::new()
                .start_from(StartFrom::Beginning)
                .read_ahead(args.read_ahead)
                .reclaim_idle(Duration::from_millis(args.reclaim_idle_ms)),
        )
        .await?;
    consumer.register_async_handler(&args.channel, |d: dtrsfw::redis::Delivery| async move {
        let line = serde_json::json!({ "id": d.id(), "name": d.name(), "body": d.payload() });
        // Written and flushed before returning Ok, so an acknowledged entry was printed.
        let mut out = std::io::stdout().lock();
        writeln!(out, "{line}")
            .and_then(|()| out.flush())
            .map_err(|e| e.to_string())
    })?;
    eprintln!("consumer {} ready", consumer.consumer_name());
    consumer
        .persist_consume_all_channels_until(Duration::from_millis(10), Duration::from_millis(200), async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                .expect("install a SIGTERM handler");
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        })
        .await
}
