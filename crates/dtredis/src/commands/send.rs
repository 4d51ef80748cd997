//! `dtredis send <channel>`: one message, the same message N times, or JSON lines from
//! standard input, all through [`Sender`] in pipelined batches.

use std::io::BufRead;

use anyhow::Context;
use dtrsfw::redis::RedisInstance;
use dtrsfw::redis::sender::{Message, Sender};
use serde::Deserialize;

use crate::terminal::Progress;

/// Messages per pipelined `send_messages` call (one progress step each).
const CHUNK: usize = 1000;

/// Where the messages come from.
#[derive(Debug)]
pub(crate) enum Source {
    /// `--name N --body JSON [--count K]`.
    One { name: String, body: String, count: usize },
    /// `--stdin`: JSON lines `{"name": ..., "body": ...}`.
    Stdin,
}

#[derive(Deserialize)]
struct Line {
    name: String,
    body: serde_json::Value,
}

/// Sends and returns what to print: the entry ID for one message, else the number sent.
pub(crate) async fn run(redis: &RedisInstance, channel: &str, source: Source) -> anyhow::Result<String> {
    let sender = Sender::new(redis);
    sender.register_channel(channel)?;
    match source {
        Source::One { name, body, count } => {
            let message = Message::from_json(name, body).map_err(|e| {
                let described = if e.is_serialization() {
                    "--body is not valid JSON"
                } else {
                    "invalid message"
                };
                anyhow::Error::new(e).context(described)
            })?;
            if count == 1 {
                return Ok(sender.send_message(channel, &message).await?.to_string());
            }
            let mut progress = Progress::new("sending", count);
            let mut sent = 0;
            while sent < count {
                let chunk = vec![message.clone(); CHUNK.min(count - sent)];
                sent += sender.send_messages(channel, &chunk).await?.len();
                progress.update(sent);
            }
            progress.finish();
            Ok(sent.to_string())
        }
        Source::Stdin => {
            let mut sent = 0;
            let mut chunk = Vec::with_capacity(CHUNK);
            let mut progress = Progress::new("sending", 0);
            for (index, line) in std::io::stdin().lock().lines().enumerate() {
                let line = line.context("reading standard input")?;
                if line.trim().is_empty() {
                    continue;
                }
                let parsed: Line = serde_json::from_str(&line).with_context(|| {
                    format!(
                        "line {} of standard input is not {{\"name\": ..., \"body\": ...}}",
                        index + 1
                    )
                })?;
                chunk.push(Message::new(parsed.name, &parsed.body).with_context(|| format!("line {}", index + 1))?);
                if chunk.len() == CHUNK {
                    sent += sender.send_messages(channel, &chunk).await?.len();
                    chunk.clear();
                    progress.update(sent);
                }
            }
            sent += sender.send_messages(channel, &chunk).await?.len();
            progress.finish();
            Ok(sent.to_string())
        }
    }
}
