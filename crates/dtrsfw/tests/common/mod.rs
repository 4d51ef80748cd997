//! Helpers shared by the test files that run consumer loops under failure (`faults.rs`,
//! `reliability.rs`).

use std::time::Duration;

use dtrsfw::redis::{Consumer, Result};

/// Runs `consumer.persist_consume_all_channels(rest, block)` as a task; it returns once
/// the consumer is shut down.
pub(crate) fn spawn_loop(consumer: &Consumer, rest: Duration, block: Duration) -> tokio::task::JoinHandle<Result<()>> {
    let c = consumer.clone();
    tokio::spawn(async move { c.persist_consume_all_channels(rest, block).await })
}
