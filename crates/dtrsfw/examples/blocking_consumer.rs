//! `BlockingConsumer`: the consumer for code without async (same methods as `Consumer`,
//! no `.await`). It publishes a few orders with the blocking sender, then consumes them
//! as service `audit` until all are handled or 10 s have passed.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p dtrsfw --example blocking_consumer
//! ```

// An example talks to its reader on standard output.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dtrsfw::redis::sender::{Message, Sender};
use dtrsfw::redis::{BlockingConsumer, ChannelOptions, RedisConfig, RedisInstance};
use serde::Deserialize;

const CHANNEL: &str = "examples:blocking";
const ORDERS: usize = 3;
/// The longest the example runs, so that it always ends by itself.
const TIME_LIMIT: Duration = Duration::from_secs(10);

/// The body of an `order.created` message.
#[derive(Debug, Deserialize)]
struct Order {
    id: u64,
}

fn main() -> Result<(), dtrsfw::redis::Error> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(url))?;

    let consumer = BlockingConsumer::new(&redis, "audit")?;
    consumer.register_channel(CHANNEL, ChannelOptions::new())?;
    let handled = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&handled);
    let stop = consumer.shutdown_handle();
    // A typed handler: the body is decoded into `Order` (an undecodable body is an error,
    // so the entry is retried and finally dead-lettered).
    consumer.register_typed_handler::<Order, _, _>(CHANNEL, move |name, order| {
        println!("audited {name} for order {}", order.id);
        if counter.fetch_add(1, Ordering::SeqCst) + 1 >= ORDERS {
            stop.shutdown();
        }
        Ok::<(), String>(())
    })?;

    let sender = Sender::new(&redis);
    sender.register_channel(CHANNEL)?;
    for id in 1..=ORDERS {
        sender.send_message_blocking(CHANNEL, &Message::new("order.created", &serde_json::json!({"id": id}))?)?;
    }
    println!("sent {ORDERS} orders; consuming as service audit");

    // A watchdog, so that the example ends even if something goes wrong.
    let watchdog = consumer.shutdown_handle();
    std::thread::spawn(move || {
        std::thread::sleep(TIME_LIMIT);
        watchdog.shutdown();
    });
    // Runs until a shutdown handle is used; then stops gracefully and returns.
    consumer.persist_consume_all_channels(Duration::from_millis(100), Duration::from_secs(1))?;
    println!("stopped: audited {} orders", handled.load(Ordering::SeqCst));
    Ok(())
}
