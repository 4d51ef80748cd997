//! Helpers shared by the test files that run consumer loops (`faults.rs`,
//! `reliability.rs`, `read_window.rs`, `handler_slot.rs`, ...). Each file uses a part of
//! them, so the rest is dead code in that file's crate.
#![allow(dead_code)]

use std::time::{Duration, Instant};

use dtrsfw::redis::{Consumer, Message, Result};

/// Runs `consumer.persist_consume_all_channels(rest, block)` as a task; it returns once
/// the consumer is shut down.
pub(crate) fn spawn_loop(consumer: &Consumer, rest: Duration, block: Duration) -> tokio::task::JoinHandle<Result<()>> {
    let c = consumer.clone();
    tokio::spawn(async move { c.persist_consume_all_channels(rest, block).await })
}

/// Publishes `n` entries `{"i": 0..n}` in one pipeline, in the wire format of `Message`.
pub(crate) fn publish_n(conn: &mut redis::Connection, channel: &str, n: usize) {
    xadds(channel, 0..n).exec(conn).unwrap();
}

/// Publishes entries `{"i": i}` for each `i` of `range` in one transaction: a reader
/// blocked on the stream gets them all in one read (Redis serves it after the `EXEC`).
pub(crate) fn publish_together(conn: &mut redis::Connection, channel: &str, range: std::ops::Range<usize>) {
    xadds(channel, range).atomic().exec(conn).unwrap();
}

fn xadds(channel: &str, range: std::ops::Range<usize>) -> redis::Pipeline {
    let mut pipe = redis::pipe();
    for i in range {
        let msg = Message::new("evt", &serde_json::json!({ "i": i })).unwrap();
        let cmd = pipe.cmd("XADD").arg(channel).arg("*");
        for (k, v) in msg.get_json_encoded() {
            cmd.arg(k).arg(v);
        }
        cmd.ignore();
    }
    pipe
}

/// Waits until `done()` holds; fails the test after 30 s, naming `what`.
pub(crate) async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
