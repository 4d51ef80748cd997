//! Stream, group and consumer figures: `XINFO STREAM|GROUPS|CONSUMERS`, `XPENDING`.

use redis::{RedisResult, Value};

use super::{value_pairs, value_text};
use crate::redis::connection::RedisInstance;
use crate::redis::error::{Error, Result};
use crate::redis::streamer::{dead_letter_stream, reply};

/// Streams summarised per pipeline (one round trip each).
const BATCH: usize = 200;

/// One stream's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StreamSummary {
    /// The stream key.
    pub name: String,
    /// Whether it still exists (it may have gone since it was listed).
    pub exists: bool,
    /// Entries in it (`XLEN`).
    pub length: u64,
    /// Its first entry's ID, if any.
    pub first_id: Option<String>,
    /// Its last entry's ID, if any.
    pub last_id: Option<String>,
    /// Entries ever added (`entries-added`, Redis ≥ 7; `None` before).
    pub entries_added: Option<u64>,
    /// Its consumer groups.
    pub groups: Vec<GroupSummary>,
    /// Length of its dead-letter stream `<name>:dlq` (0 when there is none).
    pub dead_letters: u64,
}

impl StreamSummary {
    /// Entries not yet delivered, summed over the groups that report a lag.
    #[must_use]
    pub fn total_lag(&self) -> u64 {
        self.groups.iter().filter_map(|g| g.lag).sum()
    }

    /// Entries delivered and not acknowledged, summed over the groups.
    #[must_use]
    pub fn total_pending(&self) -> u64 {
        self.groups.iter().map(|g| g.pending).sum()
    }

    /// Entries read, summed over the groups that report it (for an "out" rate).
    #[must_use]
    pub fn total_read(&self) -> u64 {
        self.groups.iter().filter_map(|g| g.entries_read).sum()
    }
}

/// One consumer group's figures.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct GroupSummary {
    /// The group name.
    pub name: String,
    /// Consumers in it.
    pub consumers: u64,
    /// Entries delivered and not yet acknowledged.
    pub pending: u64,
    /// The last ID delivered to the group.
    pub last_delivered_id: String,
    /// Entries read by the group (Redis ≥ 7; `None` when unknown).
    pub entries_read: Option<u64>,
    /// Entries not yet delivered (Redis ≥ 7; `None` when Redis cannot tell).
    pub lag: Option<u64>,
    /// The smallest pending ID, when something is pending.
    pub oldest_pending_id: Option<String>,
    /// How old that entry is (server time minus the time in its ID), milliseconds.
    pub oldest_pending_age_ms: Option<u64>,
}

/// One consumer of a group.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct ConsumerSummary {
    /// The consumer name.
    pub name: String,
    /// Entries delivered to it and not acknowledged.
    pub pending: u64,
    /// Milliseconds since its last attempted interaction.
    pub idle_ms: u64,
}

/// One pending entry (`XPENDING` extended form).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct PendingEntry {
    /// The entry ID.
    pub id: String,
    /// The consumer holding it.
    pub consumer: String,
    /// Milliseconds since it was last delivered.
    pub idle_ms: u64,
    /// How many times it was delivered.
    pub deliveries: u64,
}

fn number(value: &Value) -> Option<u64> {
    value_text(value).and_then(|t| t.parse().ok())
}

fn entry_id(value: &Value) -> Option<String> {
    match value {
        Value::Array(parts) => parts.first().and_then(value_text),
        _ => None,
    }
}

fn parse_stream(name: &str, info: &Value, dead_letters: u64) -> StreamSummary {
    let mut summary = StreamSummary {
        name: name.to_owned(),
        exists: true,
        dead_letters,
        ..StreamSummary::default()
    };
    for (key, value) in value_pairs(info) {
        match key.as_str() {
            "length" => summary.length = number(value).unwrap_or(0),
            "first-entry" => summary.first_id = entry_id(value),
            "last-entry" => summary.last_id = entry_id(value),
            "entries-added" => summary.entries_added = number(value),
            _ => {}
        }
    }
    summary
}

impl From<reply::GroupInfo> for GroupSummary {
    fn from(g: reply::GroupInfo) -> Self {
        GroupSummary {
            name: g.name,
            consumers: g.consumers.unwrap_or(0),
            pending: g.pending.unwrap_or(0),
            last_delivered_id: g.last_delivered.map(|id| id.to_string()).unwrap_or_default(),
            entries_read: g.entries_read,
            lag: g.lag,
            ..GroupSummary::default()
        }
    }
}

/// The server's clock, milliseconds since the Unix epoch (`TIME`), so ages do not depend
/// on this machine's clock.
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)).
pub async fn server_time_ms(redis: &RedisInstance) -> Result<u64> {
    let mut client = redis.get_async_redis_client().await?;
    let (secs, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis("TIME", e))?;
    Ok(secs * 1000 + micros / 1000)
}

/// Figures of each named stream, pipelined in batches of 200: `XINFO STREAM`,
/// `XINFO GROUPS`, `XLEN <name>:dlq`, then `XPENDING` (summary form) for each group with
/// pending entries. A name that is no longer a stream comes back with `exists: false`.
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)), from `TIME` or a batch's pipeline as a
/// whole (a command failing for one name does not fail the call).
pub async fn stream_summaries(redis: &RedisInstance, names: &[String]) -> Result<Vec<StreamSummary>> {
    let mut client = redis.get_async_redis_client().await?;
    let now = server_time_ms(redis).await?;
    let mut out = Vec::with_capacity(names.len());
    for batch in names.chunks(BATCH) {
        let mut pipe = redis::pipe();
        pipe.ignore_errors();
        for name in batch {
            pipe.cmd("XINFO").arg("STREAM").arg(name);
            pipe.cmd("XINFO").arg("GROUPS").arg(name);
            pipe.cmd("XLEN").arg(dead_letter_stream(name));
        }
        let replies: Vec<RedisResult<Value>> = pipe
            .query_async(&mut client)
            .await
            .map_err(|e| Error::redis("XINFO STREAM", e))?;
        let mut summaries: Vec<StreamSummary> = batch
            .iter()
            .zip(replies.chunks_exact(3))
            .map(|(name, r)| summarise(name, r))
            .collect();
        add_oldest_pending(&mut client, &mut summaries, now).await?;
        out.extend(summaries);
    }
    Ok(out)
}

fn summarise(name: &str, replies: &[RedisResult<Value>]) -> StreamSummary {
    let dead_letters = replies[2].as_ref().ok().and_then(number).unwrap_or(0);
    let Ok(info) = &replies[0] else {
        return StreamSummary {
            name: name.to_owned(),
            dead_letters,
            ..StreamSummary::default()
        };
    };
    let mut summary = parse_stream(name, info, dead_letters);
    if let Ok(groups) = &replies[1] {
        summary.groups = reply::xinfo_groups(groups)
            .into_iter()
            .map(GroupSummary::from)
            .collect();
    }
    summary
}

async fn add_oldest_pending(
    client: &mut crate::redis::AsyncRedisClient,
    summaries: &mut [StreamSummary],
    now: u64,
) -> Result<()> {
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    let mut asked = 0;
    for s in summaries.iter() {
        for g in s.groups.iter().filter(|g| g.pending > 0) {
            pipe.cmd("XPENDING").arg(&s.name).arg(&g.name);
            asked += 1;
        }
    }
    if asked == 0 {
        return Ok(());
    }
    let replies: Vec<RedisResult<Value>> = pipe
        .query_async(client)
        .await
        .map_err(|e| Error::redis("XPENDING", e))?;
    let mut replies = replies.into_iter();
    for s in summaries.iter_mut() {
        for g in s.groups.iter_mut().filter(|g| g.pending > 0) {
            if let Some(Ok(reply)) = replies.next() {
                let oldest = reply::xpending_smallest(&reply);
                g.oldest_pending_id = oldest.map(|id| id.to_string());
                g.oldest_pending_age_ms = oldest.map(|id| now.saturating_sub(id.ms()));
            }
        }
    }
    Ok(())
}

/// The consumers of `group` on `stream` (`XINFO CONSUMERS`).
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)); a response error when `stream` or `group`
/// does not exist.
pub async fn group_consumers(redis: &RedisInstance, stream: &str, group: &str) -> Result<Vec<ConsumerSummary>> {
    let mut client = redis.get_async_redis_client().await?;
    let reply: Value = redis::cmd("XINFO")
        .arg("CONSUMERS")
        .arg(stream)
        .arg(group)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("XINFO CONSUMERS {stream} {group}"), e))?;
    Ok(reply::xinfo_consumers(&reply)
        .into_iter()
        .map(|c| ConsumerSummary {
            name: c.name,
            pending: c.pending.unwrap_or(0),
            idle_ms: c.idle.unwrap_or(0),
        })
        .collect())
}

/// The `count` oldest pending entries of `group` (`XPENDING stream group - + count`):
/// who holds each, for how long, and how many deliveries it had.
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)); a response error when `stream` or `group`
/// does not exist.
pub async fn oldest_pending(
    redis: &RedisInstance,
    stream: &str,
    group: &str,
    count: usize,
) -> Result<Vec<PendingEntry>> {
    let mut client = redis.get_async_redis_client().await?;
    let reply: Vec<(String, String, u64, u64)> = redis::cmd("XPENDING")
        .arg(stream)
        .arg(group)
        .arg("-")
        .arg("+")
        .arg(count)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("XPENDING {stream} {group}"), e))?;
    Ok(reply
        .into_iter()
        .map(|(id, consumer, idle_ms, deliveries)| PendingEntry {
            id,
            consumer,
            idle_ms,
            deliveries,
        })
        .collect())
}
