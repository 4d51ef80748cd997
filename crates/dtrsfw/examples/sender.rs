//! `Sender`: publishes messages to a Redis stream in the Python package's format (fields
//! `name` and `body`), one at a time, in a pipelined batch, and from blocking code.
//!
//! ```sh
//! REDIS_URL=redis://127.0.0.1:6379/0 cargo run -p dtrsfw --example sender
//! ```
//!
//! Read them back with `dtredis info examples:orders` or the `consumer` example.

// An example talks to its reader on standard output.
#![allow(clippy::print_stdout)]

use dtrsfw::redis::sender::{Message, Retention, Sender};
use dtrsfw::redis::{RedisConfig, RedisInstance};
use serde_json::json;

#[tokio::main]
async fn main() -> Result<(), dtrsfw::redis::Error> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379/0".to_owned());
    let redis = RedisInstance::new(RedisConfig::new().set_redis_url(url))?;

    // One sender per process (Clone + Send + Sync). A channel must be registered before
    // use; this one keeps about the last 10 000 entries (trimmed by every XADD).
    let sender = Sender::new(&redis);
    sender.register_channel_with("examples:orders", Retention::MaxLen(10_000))?;

    let id = sender
        .send_message(
            "examples:orders",
            &Message::new("order.created", &json!({"id": 1, "total": 99.5}))?,
        )
        .await?;
    println!("sent order 1 as entry {id}");

    // A batch goes in one round trip (per 1000 messages).
    let batch = (2..=10)
        .map(|n| Message::new("order.created", &json!({"id": n})))
        .collect::<Result<Vec<_>, _>>()?;
    let ids = sender.send_messages("examples:orders", &batch).await?;
    println!("sent orders 2 to 10 in one batch: {} entries", ids.len());

    // The blocking twin, for code without a runtime (it uses the sync connection pool).
    let sender_for_thread = sender.clone();
    let id = std::thread::spawn(move || {
        sender_for_thread.send_message_blocking("examples:orders", &Message::new("order.shipped", &json!({"id": 1}))?)
    })
    .join()
    .expect("the sending thread does not panic")?;
    println!("sent order.shipped from a plain thread as entry {id}");
    println!("sent 11 messages to examples:orders");
    Ok(())
}
