//! End-to-end latency (area `latency`): from the time a message was *meant* to be sent to
//! the time its handler starts, at a fixed rate.
//!
//! An open-loop producer (its own thread, sync connection) sends on a fixed schedule:
//! message `i` is due at `i / rate` and carries that intended time (microseconds since
//! the round's start) in its body. Whatever is due is sent at once, several due messages
//! in one pipeline when the producer is late, so a stalled producer or a slow consumer
//! shows as latency instead of lowering the rate (no coordinated omission); the producer
//! asks the kernel for exact wake-ups ([`wake_on_time`]). The handler
//! records `now − intended` in an HDR histogram (`hdrhistogram`: exact percentiles up to
//! the 99.9th over millions of samples at a fixed, small memory cost); the first quarter
//! second of a round is a warm-up and is not recorded.
//!
//! Three sides per rate, in rotating order each round: ours with default
//! [`ChannelOptions`], ours with `parallelism(16)`, and a bare redis-rs loop (pipelined
//! `XADD`s from the same producer; on another connection `XREADGROUP COUNT 100 BLOCK` +
//! one `XACK` per batch). Rows `e2e_latency_<rate>` (default options) and
//! `e2e_latency_<rate>_p16` compare each of ours with the same bare figures. Nine rounds
//! of 2 s each, each second with a histogram of its own; a row's p50 and p99 are the
//! medians of those 18 seconds' own, its p99.9 that of all of them merged.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dtrsfw::redis::sender::{Message, Sender};
use dtrsfw::redis::{ChannelOptions, Consumer, Delivery, StartFrom};
use hdrhistogram::Histogram;
use redis::Value;
use serde::Serialize;

use super::{BareAsync, BenchContext, BenchRow, Figures, bare_ack_cmd, bare_read_cmd, median};

/// The rates, with the names of their rows (default options, `parallelism(16)`).
const RATES: [(u64, &str, &str); 3] = [
    (1_000, "e2e_latency_1k", "e2e_latency_1k_p16"),
    (5_000, "e2e_latency_5k", "e2e_latency_5k_p16"),
    (20_000, "e2e_latency_20k", "e2e_latency_20k_p16"),
];

/// The length of a window, each with a histogram of its own (see [`BenchRow::e2e`]).
const WINDOW_US: u64 = 1_000_000;

/// Entries per read of the bare consumer.
const BARE_COUNT: usize = 100;

/// The latency figures of a row (flattened into its JSON object).
#[derive(Debug, Clone, Serialize)]
pub(crate) struct E2eFigures {
    ours_p50_ms: f64,
    ours_p99_ms: f64,
    ours_p999_ms: f64,
    bare_p50_ms: f64,
    bare_p99_ms: f64,
    bare_p999_ms: f64,
    /// ours_p99 / bare_p99.
    p99_ratio: f64,
}

impl E2eFigures {
    /// The figures for the table: ours p50/p99/p99.9, bare likewise, the p99 ratio.
    pub(crate) fn cells(&self) -> (String, String, f64) {
        (
            format!(
                "{:.2}/{:.2}/{:.2} ms",
                self.ours_p50_ms, self.ours_p99_ms, self.ours_p999_ms
            ),
            format!(
                "{:.2}/{:.2}/{:.2} ms",
                self.bare_p50_ms, self.bare_p99_ms, self.bare_p999_ms
            ),
            self.p99_ratio,
        )
    }
}

impl BenchRow {
    /// A latency row: ours beside bare, from the histograms of their windows (one second
    /// of a round each; microseconds). Each percentile is the median of the windows' own
    /// percentiles: a burst of the machine's noise during one second moves that second's
    /// tail, not the row's (merged, one noisy second's 1 % would be the whole run's p99).
    /// The p99.9 is that of every window merged: the whole run's rare worst, stalls
    /// included (a one-second window at 1 000/s has a single message above its p99.9).
    fn e2e(name: &'static str, ours: &[Histogram<u64>], bare: &[Histogram<u64>], note: String) -> Self {
        let ms = |windows: &[Histogram<u64>], q: f64| {
            let per_window: Vec<f64> = windows.iter().map(|h| h.value_at_quantile(q) as f64 / 1000.0).collect();
            median(&per_window)
        };
        let merged_ms = |windows: &[Histogram<u64>], q: f64| {
            let mut all = windows[0].clone();
            for w in &windows[1..] {
                all.add(w).expect("histograms of the same bounds");
            }
            all.value_at_quantile(q) as f64 / 1000.0
        };
        let (ours_p99_ms, bare_p99_ms) = (ms(ours, 0.99), ms(bare, 0.99));
        let figures = E2eFigures {
            ours_p50_ms: ms(ours, 0.5),
            ours_p99_ms,
            ours_p999_ms: merged_ms(ours, 0.999),
            bare_p50_ms: ms(bare, 0.5),
            bare_p99_ms,
            bare_p999_ms: merged_ms(bare, 0.999),
            p99_ratio: ours_p99_ms / bare_p99_ms,
        };
        BenchRow::new(name, Figures::EndToEnd(figures), note)
    }
}

/// One round's schedule.
#[derive(Debug, Clone, Copy)]
struct Plan {
    rate: u64,
    warm_up: Duration,
    measure: Duration,
}

impl Plan {
    fn total(&self) -> u64 {
        self.rate * (self.warm_up + self.measure).as_millis() as u64 / 1000
    }

    /// Intended send time of message `i`, in microseconds since the start.
    fn due_us(&self, i: u64) -> u64 {
        i * 1_000_000 / self.rate
    }

    /// Messages recorded (those due after the warm-up).
    fn measured(&self) -> u64 {
        let warm_us = self.warm_up.as_micros() as u64;
        (0..self.total()).filter(|&i| self.due_us(i) >= warm_us).count() as u64
    }

    /// The measured time's windows (the last one may be shorter).
    fn windows(&self) -> u64 {
        (self.measure.as_micros() as u64).div_ceil(WINDOW_US).max(1)
    }
}

/// What the handlers record into: one histogram per second of the measured time (a
/// message counts in the second it was due).
struct Recorder {
    start: Instant,
    warm_us: u64,
    windows: Mutex<Vec<Histogram<u64>>>,
    received: AtomicU64,
}

impl Recorder {
    fn new(start: Instant, plan: Plan) -> anyhow::Result<Arc<Self>> {
        let windows = (0..plan.windows())
            .map(|_| new_histogram())
            .collect::<anyhow::Result<_>>()?;
        Ok(Arc::new(Recorder {
            start,
            warm_us: plan.warm_up.as_micros() as u64,
            windows: Mutex::new(windows),
            received: AtomicU64::new(0),
        }))
    }

    /// Records a message meant to be sent at `due_us`.
    fn record(&self, due_us: u64) {
        let Some(since_warm_up) = due_us.checked_sub(self.warm_us) else {
            return;
        };
        let now = self.start.elapsed().as_micros() as u64;
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let last = windows.len() - 1;
        let window = &mut windows[(since_warm_up / WINDOW_US).min(last as u64) as usize];
        window.saturating_record(now.saturating_sub(due_us).max(1));
        self.received.fetch_add(1, Ordering::Relaxed);
    }

    /// Waits (after the producer finished) until every measured message arrived.
    async fn all_received(&self, measured: u64) -> anyhow::Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.received.load(Ordering::Relaxed) < measured {
            anyhow::ensure!(
                Instant::now() < deadline,
                "latency round: {} of {measured} messages arrived within 30 s",
                self.received.load(Ordering::Relaxed)
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        Ok(())
    }

    /// The histograms of the round's seconds.
    fn windows(&self) -> Vec<Histogram<u64>> {
        self.windows.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

fn new_histogram() -> anyhow::Result<Histogram<u64>> {
    // 1 µs to 60 s, 3 significant digits.
    Ok(Histogram::new_with_bounds(1, 60_000_000, 3)?)
}

/// The body carrying a message's intended send time.
fn body(due_us: u64) -> String {
    format!(r#"{{"t":{due_us}}}"#)
}

/// The open-loop producer: sends every message when due, those already late together
/// through `send` (their intended times). Runs on its own thread.
fn produce(plan: Plan, start: Instant, mut send: impl FnMut(&[u64]) -> anyhow::Result<()>) -> anyhow::Result<()> {
    wake_on_time();
    let total = plan.total();
    let mut next = 0;
    let mut due = Vec::new();
    while next < total {
        let now_us = start.elapsed().as_micros() as u64;
        due.clear();
        while next < total && plan.due_us(next) <= now_us {
            due.push(plan.due_us(next));
            next += 1;
        }
        if due.is_empty() {
            std::thread::sleep(Duration::from_micros(plan.due_us(next) - now_us));
        } else {
            send(&due)?;
        }
    }
    Ok(())
}

/// Asks the kernel to end this thread's sleeps on time. By default Linux may wake a
/// sleeping thread up to 50 µs late (its timer slack, to batch wake-ups): the producer,
/// sleeping until each message is due, then sent a median 83–87 µs after the due time
/// at 5 000/s on the idle 2-core machine, 33–37 µs with a slack of 1 ns. That lateness
/// is in both sides' latencies alike and hid part of the difference between them.
/// Best effort: elsewhere, or refused, sleeps keep the default.
fn wake_on_time() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::set_current_timer_slack(std::num::NonZeroU64::new(1)) {
        eprintln!("bench: the latency producer keeps the default timer slack: {e}");
    }
}

/// Runs the producer on a thread; the future completes when it has sent everything.
async fn spawn_producer(
    plan: Plan,
    start: Instant,
    send: impl FnMut(&[u64]) -> anyhow::Result<()> + Send + 'static,
) -> anyhow::Result<()> {
    tokio::task::spawn_blocking(move || produce(plan, start, send)).await?
}

/// Ours: `Sender` (sync, from the producer thread) and a `Consumer` with `options`.
async fn ours_round(
    ctx: &BenchContext,
    key: &str,
    plan: Plan,
    options: ChannelOptions,
) -> anyhow::Result<Vec<Histogram<u64>>> {
    let redis = ctx.instance()?;
    let consumer = Consumer::new(&redis, "latency")?;
    consumer
        .register_channel(key, options.start_from(StartFrom::NewMessages))
        .await?;
    let start = Instant::now();
    let rec = Recorder::new(start, plan)?;
    let handler_rec = rec.clone();
    // An async handler, as a tokio service writes one: a sync handler with parallelism
    // runs on tokio's blocking pool, one thread hop per entry, which is tokio's cost and
    // not the consumer's (the guide in `streamer` says when to pick which).
    consumer.register_async_handler(key, move |delivery: Delivery| {
        let due = delivery.payload()["t"].as_u64();
        let rec = handler_rec.clone();
        async move {
            rec.record(due.ok_or("no intended time")?);
            Ok::<(), &str>(())
        }
    })?;
    let sender = Sender::new(&ctx.instance()?);
    sender.register_channel(key)?;
    let channel = key.to_owned();
    let produced = spawn_producer(plan, start, move |due| {
        let messages = due
            .iter()
            .map(|&t| Message::new("tick", &serde_json::json!({ "t": t })))
            .collect::<Result<Vec<_>, _>>()?;
        sender.send_messages_blocking(&channel, &messages)?;
        Ok(())
    });
    let failed = AtomicBool::new(false);
    let done = async {
        let finished = async {
            produced.await?;
            rec.all_received(plan.measured()).await
        };
        if let Err(e) = finished.await {
            eprintln!("bench: latency round failed: {e:#}");
            failed.store(true, Ordering::Relaxed);
        }
    };
    consumer
        .persist_consume_all_channels_until(Duration::from_millis(100), Duration::from_secs(1), done)
        .await?;
    anyhow::ensure!(!failed.load(Ordering::Relaxed), "latency round of ours failed");
    Ok(rec.windows())
}

/// Bare: pipelined `XADD`s from the producer thread; `XREADGROUP COUNT 100 BLOCK 100` and
/// one `XACK` per read on another connection.
async fn bare_round(ctx: &BenchContext, key: &str, plan: Plan) -> anyhow::Result<Vec<Histogram<u64>>> {
    let mut conn = ctx.bare_async().await?;
    redis::cmd("XGROUP")
        .arg("CREATE")
        .arg(key)
        .arg("bare")
        .arg("$")
        .arg("MKSTREAM")
        .exec_async(&mut conn)
        .await?;
    let start = Instant::now();
    let rec = Recorder::new(start, plan)?;
    let stop = Arc::new(AtomicBool::new(false));
    let reader = tokio::spawn(bare_consume(conn, key.to_owned(), rec.clone(), stop.clone()));
    let mut producer_conn = ctx.bare_sync()?;
    let channel = key.to_owned();
    let produced = spawn_producer(plan, start, move |due| {
        let mut pipe = redis::pipe();
        for &t in due {
            pipe.cmd("XADD")
                .arg(&channel)
                .arg("*")
                .arg("name")
                .arg("tick")
                .arg("body")
                .arg(body(t))
                .ignore();
        }
        pipe.exec(&mut *producer_conn)?;
        Ok(())
    })
    .await;
    let received = match produced {
        Ok(()) => rec.all_received(plan.measured()).await,
        Err(e) => Err(e),
    };
    stop.store(true, Ordering::Relaxed);
    reader.await??;
    received?;
    Ok(rec.windows())
}

/// The bare reading loop, until `stop`.
async fn bare_consume(
    mut conn: BareAsync,
    key: String,
    rec: Arc<Recorder>,
    stop: Arc<AtomicBool>,
) -> anyhow::Result<()> {
    while !stop.load(Ordering::Relaxed) {
        let reply: redis::streams::StreamReadReply = bare_read_cmd(&key, "bare", BARE_COUNT, Some(100))
            .query_async(&mut conn)
            .await?;
        let mut ids = Vec::new();
        for entry in reply.keys.into_iter().flat_map(|k| k.ids) {
            if let Some(Value::BulkString(b)) = entry.map.get("body") {
                let payload: serde_json::Value = serde_json::from_slice(b)?;
                rec.record(payload["t"].as_u64().unwrap_or_default());
            }
            ids.push(entry.id);
        }
        if !ids.is_empty() {
            let _: Value = bare_ack_cmd(&key, "bare", &ids).query_async(&mut conn).await?;
        }
    }
    Ok(())
}

/// The latency rows.
pub(super) async fn run(ctx: &BenchContext) -> anyhow::Result<Vec<BenchRow>> {
    let mut conn = ctx.bare_async().await?;
    // Many short windows rather than a few long ones: the row's p50 and p99 are medians
    // over one-second windows (see `BenchRow::e2e`). A window's p99 is either calm or
    // caught by one of the machine's stalls, on every side alike; the fewer the samples,
    // the likelier their median is a caught one (the median of five 2-s rounds gave
    // 5 000/s ratios of 0.85 to 1.97 in three runs). Nine rounds of two windows each.
    let (warm_up, measure, rounds) = if ctx.quick {
        (Duration::from_millis(250), Duration::from_secs(1), 1)
    } else {
        (Duration::from_millis(250), Duration::from_secs(2), 9)
    };
    let mut rows = Vec::new();
    for (rate, name, name_p16) in RATES {
        let plan = Plan { rate, warm_up, measure };
        let mut sides: [Vec<Histogram<u64>>; 3] = Default::default();
        for round in 0..rounds {
            for k in 0..3 {
                // Rotating order: no side always runs first, on a calmer server.
                let side = (round + k) % 3;
                let key = format!("bench:latency:{rate}:{side}:{round}");
                redis::cmd("DEL").arg(&key).exec_async(&mut conn).await?;
                let windows = match side {
                    0 => ours_round(ctx, &key, plan, ChannelOptions::new()).await?,
                    1 => ours_round(ctx, &key, plan, ChannelOptions::new().parallelism(16)).await?,
                    _ => bare_round(ctx, &key, plan).await?,
                };
                sides[side].extend(windows);
                redis::cmd("DEL").arg(&key).exec_async(&mut conn).await?;
            }
        }
        let (measured, windows) = (plan.measured(), rounds as u64 * plan.windows());
        let note = |what: &str| {
            format!(
                "{rate}/s open loop, {what}; {rounds} rounds of {measured} messages; p50/p99: medians of the rounds' {windows} one-second windows' own, p99.9: of all; target p99_ratio <= 1.25"
            )
        };
        let [ours, ours_p16, bare] = &sides;
        rows.push(BenchRow::e2e(name, ours, bare, note("default ChannelOptions")));
        rows.push(BenchRow::e2e(name_p16, ours_p16, bare, note("parallelism(16)")));
    }
    Ok(rows)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_schedule_is_fixed_and_the_warm_up_not_measured() {
        let plan = Plan {
            rate: 1_000,
            warm_up: Duration::from_millis(300),
            measure: Duration::from_secs(1),
        };
        assert_eq!(plan.total(), 1_300);
        assert_eq!(
            (plan.due_us(0), plan.due_us(1), plan.due_us(1_000)),
            (0, 1_000, 1_000_000)
        );
        assert_eq!(plan.measured(), 1_000);
        assert_eq!(body(42), r#"{"t":42}"#);
    }

    #[test]
    fn a_latency_row_has_the_issue_s_fields_and_the_median_window_s_percentiles() {
        let window = |us: u64| {
            let mut h = new_histogram().unwrap();
            h.record_n(us, 1000).unwrap();
            h
        };
        // Three windows each side: p50 and p99 are the middle one's, p99.9 that of all.
        let ours = [window(300), window(100), window(200)];
        let bare = [window(100), window(400), window(100)];
        let row = BenchRow::e2e("e2e_latency_1k", &ours, &bare, String::new());
        assert_eq!(
            crate::bench::tests::json_keys(&row),
            [
                "bare_p50_ms",
                "bare_p999_ms",
                "bare_p99_ms",
                "name",
                "ours_p50_ms",
                "ours_p999_ms",
                "ours_p99_ms",
                "p99_ratio"
            ]
        );
        let json = serde_json::to_value(&row).unwrap();
        assert_eq!(
            (json["ours_p99_ms"].as_f64(), json["bare_p99_ms"].as_f64()),
            (Some(0.2), Some(0.1))
        );
        assert_eq!(json["p99_ratio"].as_f64(), Some(2.0));
        assert_eq!(
            (json["ours_p999_ms"].as_f64(), json["bare_p999_ms"].as_f64()),
            (Some(0.3), Some(0.4))
        );
    }

    #[test]
    fn a_message_counts_in_the_window_it_was_due_in() {
        let plan = Plan {
            rate: 1_000,
            warm_up: Duration::from_millis(250),
            measure: Duration::from_millis(2_500),
        };
        assert_eq!(plan.windows(), 3, "the last one shorter");
        let rec = Recorder::new(Instant::now(), plan).unwrap();
        // Warm-up (not recorded), first second, second second, last (half) second.
        for due_ms in [0, 249, 250, 1_249, 1_250, 2_749] {
            rec.record(due_ms * 1_000);
        }
        let counts: Vec<u64> = rec.windows().iter().map(Histogram::len).collect();
        assert_eq!(counts, [2, 1, 1]);
        assert_eq!(rec.received.load(Ordering::Relaxed), 4);
    }
}
