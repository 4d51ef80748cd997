//! `dtredis bench --only soak [--duration S]`: producers, consumers and cached calls run
//! through the fault-injecting proxy for `S` seconds (10 minutes by default) while it
//! injects a random fault every 10 ms (`DTRSFW_FAULT_SEED` picks the seed). Prints, every
//! 10 s, throughput, RSS and faults so far; at the end, sends acknowledged, processed,
//! duplicates and lost. Fails if anything acknowledged was lost.

use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dtrsfw::redis::caching::{CacheArgs, CachedFunction};
use dtrsfw::redis::{
    ChannelOptions, Consumer, Delivery, Message, RedisConfig, RedisInstance, Sender, SenderOptions, StartFrom,
};
use dtrsfw_server::proxy::{Proxy, chaos};

const CHANNEL: &str = "soak";

/// What the soak counts, shared by its tasks.
#[derive(Default)]
struct Tally {
    acknowledged: Mutex<HashSet<String>>,
    handled: Mutex<Vec<String>>,
    failed_sends: AtomicU64,
    cache_calls: AtomicU64,
}

fn instance(url: &str) -> anyhow::Result<RedisInstance> {
    Ok(RedisInstance::new(
        RedisConfig::new()
            .set_redis_url(url)
            .set_redis_socket_timeout(Duration::from_millis(500))
            .set_redis_socket_connect_timeout(Duration::from_millis(500)),
    )?)
}

/// The resident set size of this process, in MiB (Linux; 0 elsewhere).
fn rss_mib() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Runs the soak against the server at `url` (one node on 127.0.0.1) for `duration`.
pub(crate) async fn run(url: &str, duration: Duration) -> anyhow::Result<()> {
    let port = match redis::Client::open(url)?.get_connection_info().addr() {
        redis::ConnectionAddr::Tcp(_, port) => *port,
        other => anyhow::bail!("the soak needs a plain TCP server, not {other}"),
    };
    let proxy = Proxy::start(port);
    let tally = Arc::new(Tally::default());
    let stop = Arc::new(AtomicBool::new(false));
    let sender = Sender::with_options(
        &instance(&proxy.url())?,
        SenderOptions::new().set_initial_backoff(Duration::from_millis(20)),
    );
    sender.register_channel(CHANNEL)?;
    let mut consumers = Vec::new();
    for _ in 0..2 {
        let c = Consumer::new(&instance(&proxy.url())?, "soak")?;
        c.register_channel(
            CHANNEL,
            ChannelOptions::new()
                .start_from(StartFrom::Beginning)
                .reclaim_idle(Duration::from_secs(5))
                .max_deliveries(1000),
        )
        .await?;
        let t = tally.clone();
        c.register_async_handler(CHANNEL, move |d: Delivery| {
            t.handled.lock().unwrap().push(d.id().to_string());
            std::future::ready(Ok::<(), String>(()))
        })?;
        consumers.push(c);
    }
    let loops: Vec<_> = consumers
        .iter()
        .map(|c| {
            let c = c.clone();
            tokio::spawn(async move {
                c.persist_consume_all_channels(Duration::from_millis(10), Duration::from_millis(200))
                    .await
            })
        })
        .collect();
    let tasks = vec![
        tokio::spawn(produce(sender, tally.clone(), stop.clone())),
        tokio::spawn(cache_calls(instance(&proxy.url())?, tally.clone(), stop.clone())),
    ];
    let seed = chaos::seed_from_env(1);
    proxy.start_chaos(seed, Duration::from_millis(10));
    report_over_time(&proxy, &tally, duration).await;
    stop.store(true, Ordering::SeqCst);
    for t in tasks {
        t.await?;
    }
    let faults = proxy.stop_chaos();
    let drained = drain(&tally, url).await?;
    for c in &consumers {
        c.shutdown();
    }
    for l in loops {
        l.await??;
    }
    let acknowledged = tally.acknowledged.lock().unwrap().clone();
    let handled = tally.handled.lock().unwrap().clone();
    let unique: HashSet<&String> = handled.iter().collect();
    let lost = acknowledged.iter().filter(|id| !unique.contains(id)).count();
    eprintln!(
        "soak: {duration:?}, seed {seed}: {faults}; {} connections, {} reset; sends acknowledged {} (failed calls {}), \
         processed {} (unique {}, duplicates {}), cached calls {}, drained in {drained:?}; lost {lost}; RSS {:.1} MiB",
        proxy.connections(),
        proxy.connections_reset(),
        acknowledged.len(),
        tally.failed_sends.load(Ordering::SeqCst),
        handled.len(),
        unique.len(),
        handled.len() - unique.len(),
        tally.cache_calls.load(Ordering::SeqCst),
        rss_mib(),
    );
    anyhow::ensure!(lost == 0, "{lost} acknowledged sends were never processed");
    Ok(())
}

/// Single sends and batches of 1–8, with a short pause.
async fn produce(sender: Sender, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let size = (n % 9) as usize;
        let messages: Vec<Message> = (0..size.max(1))
            .map(|i| Message::new("soak", &serde_json::json!({ "n": n, "i": i })).expect("a JSON body"))
            .collect();
        let result = if size == 0 {
            sender.send_message(CHANNEL, &messages[0]).await.map(|id| vec![id])
        } else {
            sender.send_messages(CHANNEL, &messages).await
        };
        match result {
            Ok(ids) => tally
                .acknowledged
                .lock()
                .unwrap()
                .extend(ids.iter().map(ToString::to_string)),
            Err(_) => {
                tally.failed_sends.fetch_add(1, Ordering::SeqCst);
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Cached calls over 100 argument values; each must return the function's value.
async fn cache_calls(redis: RedisInstance, tally: Arc<Tally>, stop: Arc<AtomicBool>) {
    let cached = CachedFunction::builder("soak", ["n"]).build().expect("a valid cache");
    let mut n = 0u64;
    while !stop.load(Ordering::SeqCst) {
        n += 1;
        let v = n % 100;
        let got: u64 = cached
            .call_async(&redis, &CacheArgs::new().arg("n", &v), async move { v * 2 })
            .await;
        assert_eq!(got, v * 2, "a cached call returns the function's value");
        tally.cache_calls.fetch_add(1, Ordering::SeqCst);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// Prints a line every 10 s until `duration` has passed.
async fn report_over_time(proxy: &Proxy, tally: &Tally, duration: Duration) {
    let start = Instant::now();
    let mut last = (0usize, 0usize);
    eprintln!("soak: t(s)  sent/s  processed/s  RSS(MiB)  faults");
    while start.elapsed() < duration {
        let step = Duration::from_secs(10).min(duration - start.elapsed());
        tokio::time::sleep(step).await;
        let sent = tally.acknowledged.lock().unwrap().len();
        let processed = tally.handled.lock().unwrap().len();
        let secs = step.as_secs_f64().max(0.001);
        eprintln!(
            "soak: {:>5.0}  {:>6.0}  {:>11.0}  {:>8.1}  {}",
            start.elapsed().as_secs_f64(),
            (sent - last.0) as f64 / secs,
            (processed - last.1) as f64 / secs,
            rss_mib(),
            proxy.faults_injected().total()
        );
        last = (sent, processed);
    }
}

/// Waits (faults off) until every acknowledged send was processed and nothing is
/// pending, up to a minute; returns how long it took.
async fn drain(tally: &Tally, url: &str) -> anyhow::Result<Duration> {
    let start = Instant::now();
    let mut conn = redis::Client::open(url)?.get_multiplexed_async_connection().await?;
    loop {
        let missing = {
            let handled: HashSet<String> = tally.handled.lock().unwrap().iter().cloned().collect();
            tally
                .acknowledged
                .lock()
                .unwrap()
                .iter()
                .filter(|id| !handled.contains(*id))
                .count()
        };
        let pending: redis::Value = redis::cmd("XPENDING")
            .arg(CHANNEL)
            .arg("soak:soak:cg")
            .query_async(&mut conn)
            .await?;
        let pending = match pending {
            redis::Value::Array(v) => matches!(v.first(), Some(redis::Value::Int(n)) if *n > 0),
            _ => false,
        };
        if (missing == 0 && !pending) || start.elapsed() > Duration::from_secs(60) {
            return Ok(start.elapsed());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}
