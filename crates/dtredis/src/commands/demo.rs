//! `dtredis demo`: the main job of the library in one command, with figures.
//!
//! Publishes order events, consumes them with two instances of a `billing` service and
//! one `audit` service (fan-out and load balancing), fails one message once (retried),
//! makes one poison (dead-lettered), caches a slow function (miss, then hit), cleans up
//! what both services acknowledged, and prints a summary.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use dtrsfw::redis::caching::{CacheArgs, CachedFunction};
use dtrsfw::redis::sender::{Message, Sender};
use dtrsfw::redis::streamer::list_dead_letters;
use dtrsfw::redis::{
    ChannelOptions, ChannelStats, Consumer, Delivery, RedisInstance, StartFrom, is_redis_connected_async,
};
use serde_json::json;

const CHANNEL: &str = "demo:orders";
const EVENTS: u64 = 3000;
/// The order whose billing fails on its first delivery, then succeeds.
const FLAKY_ORDER: u64 = 42;
/// Short enough that the demo shows a retry and a dead letter within a second or two.
const RECLAIM_IDLE: Duration = Duration::from_millis(250);
const MAX_DELIVERIES: u64 = 3;
const DEADLINE: Duration = Duration::from_secs(25);

/// What one consumer instance saw.
#[derive(Debug, Default)]
struct Seen {
    handled: AtomicU64,
    orders: Mutex<HashSet<u64>>,
}

/// Runs the demo against `redis` and returns the summary text.
pub(crate) async fn run(redis: &RedisInstance) -> anyhow::Result<String> {
    let started = Instant::now();
    let mut summary = String::new();
    let (ok, err) = is_redis_connected_async(redis).await;
    anyhow::ensure!(ok, "server at {redis} is not reachable: {err:?}");
    reset(redis).await?;

    // Consumers first, reading from the start, so none of the events is missed.
    let billing = [billing_instance(redis).await?, billing_instance(redis).await?];
    let audit = consumer(redis, "audit").await?;
    let audit_seen = Arc::new(Seen::default());
    {
        let seen = audit_seen.clone();
        audit.register_async_handler(CHANNEL, move |d: Delivery| {
            let seen = seen.clone();
            async move {
                record(&seen, &d);
                Ok::<(), String>(())
            }
        })?;
    }

    let sender = Sender::new(redis);
    sender.register_channel(CHANNEL)?;
    let mut events: Vec<Message> = (0..EVENTS - 1)
        .map(|id| {
            Message::new(
                "order.created",
                &json!({"order_id": id, "dealer": "dt-0042", "total": 129.5 + id as f64}),
            )
        })
        .collect::<Result<_, _>>()?;
    events.push(Message::new(
        "order.created",
        &json!({"order_id": EVENTS - 1, "poison": true}),
    )?);
    let publish = Instant::now();
    sender.send_messages(CHANNEL, &events).await?;
    let publish_time = publish.elapsed();
    writeln!(
        summary,
        "published {EVENTS} order events to {CHANNEL} in {:.1} ms ({:.0}/s, pipelined)",
        ms(publish_time),
        EVENTS as f64 / publish_time.as_secs_f64()
    )?;

    let consume = Instant::now();
    let consumers: Vec<Consumer> = billing.iter().map(|(c, _)| c.clone()).chain([audit.clone()]).collect();
    let runs: Vec<_> = consumers
        .iter()
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move {
                c.persist_consume_all_channels(Duration::from_millis(20), Duration::from_millis(100))
                    .await
            })
        })
        .collect();
    // Phase one: every event handled once by each service (the poison aside).
    // Phase two: the poison exhausts its deliveries and lands in the dead-letter stream.
    let handled_all = async {
        loop {
            let billed: usize = billing.iter().map(|(_, s)| s.orders.lock().unwrap().len()).sum();
            let audited = audit_seen.orders.lock().unwrap().len();
            if billed as u64 == EVENTS - 1 && audited as u64 == EVENTS {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    tokio::time::timeout(DEADLINE, handled_all)
        .await
        .context("the consumers did not handle every event in time")?;
    let consume_time = consume.elapsed();
    let dead_lettered = async {
        while list_dead_letters(redis, CHANNEL, Some(1)).await?.is_empty() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        anyhow::Ok(())
    };
    tokio::time::timeout(DEADLINE, dead_lettered)
        .await
        .context("the poison message was not dead-lettered in time")??;
    let dead_letter_time = consume.elapsed();
    for c in &consumers {
        c.shutdown();
    }
    for run in runs {
        run.await??;
    }

    let (b0, b1) = (channel_stats(&billing[0].0).await?, channel_stats(&billing[1].0).await?);
    writeln!(
        summary,
        "billing, 2 instances: {} + {} = {} events, {} retried, {} dead-lettered (load balanced, {})",
        b0.processed,
        b1.processed,
        b0.processed + b1.processed,
        b0.retried + b1.retried,
        b0.dead_lettered + b1.dead_lettered,
        match (b0.processed + b1.processed).saturating_sub(EVENTS - 1) {
            0 => "nothing handled twice".to_owned(),
            twice => format!("{twice} handled twice"),
        }
    )?;
    writeln!(
        summary,
        "audit, 1 instance: {} events (fan-out: every service gets every event)",
        audit_seen.handled.load(Ordering::Relaxed)
    )?;
    writeln!(
        summary,
        "every event handled by both services in {:.0} ms ({:.0} events/s per service, including the \
         {} ms wait before order {FLAKY_ORDER}'s retry); poison dead-lettered after {MAX_DELIVERIES} deliveries, {:.0} ms in",
        ms(consume_time),
        EVENTS as f64 / consume_time.as_secs_f64(),
        RECLAIM_IDLE.as_millis(),
        ms(dead_letter_time)
    )?;
    for letter in list_dead_letters(redis, CHANNEL, None).await? {
        writeln!(
            summary,
            "dead letter {}: {} {} — {} after {} deliveries to {}: {}",
            letter.id,
            letter.name.as_deref().unwrap_or("?"),
            letter.body.as_deref().unwrap_or("?"),
            letter.reason,
            letter.deliveries,
            letter.service,
            letter.error
        )?;
    }

    let cleaner = Consumer::new(redis, "demo-cleanup")?;
    cleaner
        .register_channel(
            CHANNEL,
            ChannelOptions::new()
                .read_messages(false)
                .consumers(["billing", "audit"])
                .message_cleanup(true),
        )
        .await?;
    let deleted = cleaner.clean_up_consumed_messages().await?;
    let mut client = redis.get_async_redis_client().await?;
    let left: u64 = redis::cmd("XLEN").arg(CHANNEL).query_async(&mut client).await?;
    writeln!(
        summary,
        "cleanup: deleted {deleted} entries acknowledged by billing and audit, {left} left"
    )?;

    writeln!(summary, "{}", cache_demo(redis).await?)?;
    writeln!(summary, "done in {:.1} s", started.elapsed().as_secs_f64())?;
    Ok(summary)
}

/// A slow price lookup, cached: the first call computes (miss), the second reads Redis.
async fn cache_demo(redis: &RedisInstance) -> anyhow::Result<String> {
    let quote = CachedFunction::builder("demo:quote", ["dealer", "vin"])
        .expire(60)
        .build()?;
    let args = CacheArgs::new()
        .arg("dealer", "dt-0042")
        .arg("vin", "1HGCM82633A004352");
    quote.invalidate_async(redis, &args).await?;
    let slow_lookup = || async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        json!({"price": 18_450, "currency": "USD"})
    };
    let miss = Instant::now();
    let first: serde_json::Value = quote.call_async(redis, &args, slow_lookup()).await;
    let miss = miss.elapsed();
    let hit = Instant::now();
    let second: serde_json::Value = quote.call_async(redis, &args, slow_lookup()).await;
    let hit = hit.elapsed();
    anyhow::ensure!(first == second, "the cached value differs from the computed one");
    let stats = quote.stats();
    Ok(format!(
        "cache: slow lookup {:.1} ms on a miss, {:.2} ms on a hit ({:.0}x faster; hits {}, misses {}) under key {}",
        ms(miss),
        ms(hit),
        miss.as_secs_f64() / hit.as_secs_f64(),
        stats.hits,
        stats.misses,
        quote.key(&args)
    ))
}

async fn channel_stats(consumer: &Consumer) -> anyhow::Result<ChannelStats> {
    let stats = consumer.get_stats().await?;
    stats
        .channels
        .get(CHANNEL)
        .cloned()
        .context("no stats for the demo channel")
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// Deletes what an earlier demo run left, so figures are this run's.
async fn reset(redis: &RedisInstance) -> anyhow::Result<()> {
    let mut client = redis.get_async_redis_client().await?;
    redis::cmd("UNLINK")
        .arg(CHANNEL)
        .arg(format!("{CHANNEL}:dlq"))
        .exec_async(&mut client)
        .await?;
    Ok(())
}

async fn consumer(redis: &RedisInstance, service: &str) -> anyhow::Result<Consumer> {
    let consumer = Consumer::new(redis, service)?;
    consumer
        .register_channel(
            CHANNEL,
            ChannelOptions::new()
                .start_from(StartFrom::Beginning)
                .parallelism(4)
                .read_ahead(64)
                .reclaim_idle(RECLAIM_IDLE)
                .max_deliveries(MAX_DELIVERIES),
        )
        .await?;
    Ok(consumer)
}

fn record(seen: &Seen, delivery: &Delivery) {
    seen.handled.fetch_add(1, Ordering::Relaxed);
    if let Some(id) = delivery.payload()["order_id"].as_u64() {
        seen.orders.lock().unwrap().insert(id);
    }
}

/// A billing instance: fails the flaky order on its first delivery, always fails the
/// poison one.
async fn billing_instance(redis: &RedisInstance) -> anyhow::Result<(Consumer, Arc<Seen>)> {
    let consumer = consumer(redis, "billing").await?;
    let seen = Arc::new(Seen::default());
    let handler_seen = seen.clone();
    consumer.register_async_handler(CHANNEL, move |d: Delivery| {
        let seen = handler_seen.clone();
        async move {
            let payload = d.payload();
            if payload["poison"] == true {
                return Err("cannot bill an order without lines (poison pill)".to_owned());
            }
            if payload["order_id"] == FLAKY_ORDER && d.deliveries() == 1 {
                return Err("payment gateway timed out (first try)".to_owned());
            }
            record(&seen, &d);
            Ok(())
        }
    })?;
    Ok((consumer, seen))
}
