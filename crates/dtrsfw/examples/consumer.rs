//! `Consumer`: the async at-least-once consumer with a graceful shutdown. It publishes a
//! few orders, then consumes them as service `billing` until it has handled the number
//! asked for (first argument, default 3), or after 10 s, or on Ctrl-C, whichever comes
//! first; each stop lets running handlers finish and flushes the acknowledgements.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p dtrsfw --example consumer
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p dtrsfw --example consumer -- 1000  # stop it with Ctrl-C
//! ```

// An example talks to its reader on standard output.
#![allow(clippy::print_stdout)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use dtrsfw::redis::sender::{Message, Sender};
use dtrsfw::redis::{ChannelOptions, Consumer, RedisConfig, RedisInstance};
use serde_json::json;

const CHANNEL: &str = "examples:consumer";
/// The longest the example runs, so that it always ends by itself.
const TIME_LIMIT: Duration = Duration::from_secs(10);

#[tokio::main]
async fn main() -> Result<(), dtrsfw::redis::Error> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    let wanted: usize = std::env::args().nth(1).and_then(|n| n.parse().ok()).unwrap_or(3);
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(url))?;

    // Group `examples:consumer:billing:cg`, created at the end of the stream: registering
    // first means the orders sent below are the ones this run reads.
    let consumer = Consumer::new(&redis, "billing")?;
    consumer.register_channel(CHANNEL, ChannelOptions::new()).await?;

    let handled = Arc::new(AtomicUsize::new(0));
    let stop = consumer.shutdown_handle();
    let counter = Arc::clone(&handled);
    // Returning `Ok` acknowledges the entry; an `Err` (or a panic) leaves it pending, to be
    // retried later.
    consumer.register_handler(CHANNEL, move |name, payload| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        println!("handled {name} {payload}");
        if n >= wanted {
            stop.shutdown();
        }
        Ok::<(), String>(())
    })?;

    let sender = Sender::new(&redis);
    sender.register_channel(CHANNEL)?;
    for id in 1..=3 {
        sender
            .send_message(CHANNEL, &Message::new("order.created", &json!({"id": id}))?)
            .await?;
    }
    println!("sent 3 orders; consuming as service billing (Ctrl-C stops)");

    let reason = Arc::new(std::sync::Mutex::new("after the messages asked for"));
    let why = Arc::clone(&reason);
    let stop_signal = async move {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => *why.lock().expect("not poisoned") = "on Ctrl-C",
            () = tokio::time::sleep(TIME_LIMIT) => *why.lock().expect("not poisoned") = "after the time limit",
        }
    };
    // rest_time: the first pause after a Redis failure; block_time: how long one read
    // waits for new entries.
    consumer
        .persist_consume_all_channels_until(Duration::from_millis(100), Duration::from_secs(1), stop_signal)
        .await?;
    let stopped = *reason.lock().expect("not poisoned");
    println!("stopped {stopped}: handled {} messages", handled.load(Ordering::SeqCst));
    Ok(())
}
