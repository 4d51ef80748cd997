//! The workload both failover suites (`cluster_failover.rs`, `sentinel.rs`) run while a
//! primary is switched: a sender and a consumer on [`CHANNEL`], two paced producers, and
//! what is measured (when consumption resumed, which acknowledged sends were never
//! processed).

// Each test file uses a part of these.
#![allow(dead_code)]

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use dtrsfw::redis::sender::SenderOptions;
use dtrsfw::redis::{ChannelOptions, Consumer, ConsumerOptions, Message, RedisInstance, Sender, StartFrom};

/// The channel of the workload.
pub(crate) const CHANNEL: &str = "orders";

/// The numbers the handler has processed.
pub(crate) type Processed = Arc<Mutex<BTreeSet<u64>>>;

/// The message `{"i": i}`.
pub(crate) fn message(i: u64) -> Message {
    Message::new("evt", &serde_json::json!({ "i": i })).unwrap()
}

/// [`message`] for each number of `range`.
pub(crate) fn numbered(range: std::ops::Range<u64>) -> Vec<Message> {
    range.map(message).collect()
}

/// `wait_for_replicas(1)` with a 500 ms durability timeout, or the defaults.
pub(crate) fn sender_options(wait1: bool) -> SenderOptions {
    if wait1 {
        SenderOptions::new()
            .set_wait_for_replicas(1)
            .set_durability_timeout(Duration::from_millis(500))
    } else {
        SenderOptions::new()
    }
}

/// A sender and a consumer on [`CHANNEL`] whose handler records each message's number
/// in `processed`.
pub(crate) async fn pipeline(
    redis: &RedisInstance,
    processed: &Processed,
    options: SenderOptions,
) -> (Sender, Consumer) {
    let sender = Sender::with_options(redis, options);
    sender.register_channel(CHANNEL).unwrap();
    // Reconnect backoff capped at 1 s (default 5 s): the resume bound is promotion + 2 s.
    let consumer =
        Consumer::with_options(redis, "svc", ConsumerOptions::new().max_backoff(Duration::from_secs(1))).unwrap();
    let channel_options = ChannelOptions::new()
        .start_from(StartFrom::Beginning)
        .reclaim_idle(Duration::from_millis(300))
        .max_deliveries(100);
    consumer.register_channel(CHANNEL, channel_options).await.unwrap();
    let processed = processed.clone();
    consumer
        .register_handler(CHANNEL, move |_: &str, body: &serde_json::Value| {
            processed.lock().unwrap().insert(body["i"].as_u64().ok_or("no i")?);
            Ok::<(), String>(())
        })
        .unwrap();
    (sender, consumer)
}

/// The consumer's loop, on a task of its own until it is shut down.
pub(crate) fn spawn_consumer(consumer: &Consumer) -> tokio::task::JoinHandle<dtrsfw::redis::Result<()>> {
    let c = consumer.clone();
    tokio::spawn(async move {
        c.persist_consume_all_channels(Duration::from_millis(20), Duration::from_millis(100))
            .await
    })
}

/// Two producers sending numbered messages one after the other, paced (about 400/s in
/// all) so that the consumer keeps up and the resume time measures the failover.
pub(crate) struct Load {
    stop: Arc<AtomicBool>,
    acked: Arc<Mutex<Vec<(u64, Instant)>>>,
    not_durable: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    producers: Vec<tokio::task::JoinHandle<()>>,
}

/// What the producers saw, once stopped.
pub(crate) struct Sent {
    /// The numbers whose send returned an entry ID.
    pub(crate) acked: BTreeSet<u64>,
    /// Sends that returned `NotDurable` (written, not confirmed by a replica in time).
    pub(crate) not_durable: u64,
    /// Sends that returned another error (retries exhausted during the switch).
    pub(crate) failed: u64,
}

impl Load {
    pub(crate) fn start(sender: &Sender) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let next = Arc::new(AtomicU64::new(0));
        let acked: Arc<Mutex<Vec<(u64, Instant)>>> = Arc::default();
        let not_durable = Arc::new(AtomicU64::new(0));
        let failed = Arc::new(AtomicU64::new(0));
        let producers = (0..2)
            .map(|_| {
                let (sender, stop, next) = (sender.clone(), stop.clone(), next.clone());
                let (acked, not_durable, failed) = (acked.clone(), not_durable.clone(), failed.clone());
                tokio::spawn(async move {
                    while !stop.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        match sender.send_message(CHANNEL, &message(i)).await {
                            Ok(_) => acked.lock().unwrap().push((i, Instant::now())),
                            Err(e) if e.is_not_durable() => {
                                not_durable.fetch_add(1, Ordering::Relaxed);
                            }
                            Err(_) => {
                                failed.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        tokio::time::sleep(Duration::from_millis(5)).await;
                    }
                })
            })
            .collect();
        Load {
            stop,
            acked,
            not_durable,
            failed,
            producers,
        }
    }

    /// How long after `switched` consumption resumed: until a send acknowledged after
    /// the promotion (`switched + promoted_after`) has been processed (30 s at most).
    pub(crate) async fn resumed_after(
        &self,
        processed: &Processed,
        switched: Instant,
        promoted_after: Duration,
    ) -> Duration {
        let deadline = switched + Duration::from_secs(30);
        loop {
            let after: Vec<u64> = {
                let acked = self.acked.lock().unwrap();
                acked
                    .iter()
                    .filter(|(_, at)| *at > switched + promoted_after)
                    .map(|(i, _)| *i)
                    .collect()
            };
            if after.iter().any(|i| processed.lock().unwrap().contains(i)) {
                return switched.elapsed();
            }
            assert!(Instant::now() < deadline, "consumption did not resume within 30 s");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Stops the producers.
    pub(crate) async fn stop(self) -> Sent {
        self.stop.store(true, Ordering::Relaxed);
        for p in self.producers {
            p.await.unwrap();
        }
        let acked = self.acked.lock().unwrap().iter().map(|(i, _)| *i).collect();
        Sent {
            acked,
            not_durable: self.not_durable.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
        }
    }
}

/// The acknowledged numbers still not processed after the backlog drained (20 s at most).
pub(crate) async fn unprocessed_after_drain(acked: &BTreeSet<u64>, processed: &Processed) -> Vec<u64> {
    let missing = || -> Vec<u64> {
        let processed = processed.lock().unwrap();
        acked.iter().filter(|i| !processed.contains(i)).copied().collect()
    };
    let drain = Instant::now() + Duration::from_secs(20);
    while !missing().is_empty() && Instant::now() < drain {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    missing()
}
