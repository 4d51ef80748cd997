//! The dead-letter stream `<channel>:dlq`: its field contract (see the module docs of
//! [`streamer`](super)), the writer the consumer uses, and reading and operating it
//! (list, replay, purge) for operators and tools such as `dtredis dlq`.

use std::time::{SystemTime, UNIX_EPOCH};

use redis::Value;
use redis::streams::StreamRangeReply;
use tracing::warn;

use super::channel::{Channel, Shared};
pub use super::names::dead_letter_stream;
use super::reply::RawEntry;
use super::stats::Counters;
use crate::redis::connection::RedisInstance;
use crate::redis::entry_id::EntryId;
use crate::redis::error::{Error, Result};
use crate::redis::message::{FIELD_BODY, FIELD_NAME, Message, write_xadd_entry_fields};

/// Reason: no `name`/`body`, not UTF-8, or a body that is not JSON.
pub(crate) const REASON_MALFORMED: &str = "malformed";
/// Reason: delivered `max_deliveries` times without success.
pub(crate) const REASON_MAX_DELIVERIES: &str = "max_deliveries";

/// Field: the original entry ID.
pub(crate) const FIELD_ID: &str = "id";
/// Field: `malformed` or `max_deliveries`.
pub(crate) const FIELD_REASON: &str = "reason";
/// Field: the last handler error, or what is malformed.
pub(crate) const FIELD_ERROR: &str = "error";
/// Field: the service that gave up.
pub(crate) const FIELD_SERVICE: &str = "service";
/// Field: deliveries to that service.
pub(crate) const FIELD_DELIVERIES: &str = "deliveries";
/// Field: dead-lettered at, ms since the Unix epoch.
pub(crate) const FIELD_TIME: &str = "time";

/// One entry of a dead-letter stream.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DeadLetter {
    /// This entry's ID in the dead-letter stream.
    pub dlq_id: String,
    /// The original entry's ID in the channel.
    pub id: String,
    /// The original `name`, when it had one and it was UTF-8.
    pub name: Option<String>,
    /// The original `body` as text (invalid UTF-8 replaced), when it had one.
    pub body: Option<String>,
    /// `malformed` or `max_deliveries`.
    pub reason: String,
    /// The last handler error, or what is malformed.
    pub error: String,
    /// The service that gave up on it.
    pub service: String,
    /// How many times it was delivered to that service.
    pub deliveries: u64,
    /// When it was dead-lettered, milliseconds since the Unix epoch.
    pub time: u64,
    /// The original fields decoded as a message, if they are a valid one (what replay
    /// re-publishes).
    #[serde(skip)]
    message: Option<Message>,
}

impl DeadLetter {
    pub(crate) fn from_entry(dlq_id: String, fields: &[(String, Value)]) -> Self {
        let bytes = |key: &str| {
            fields.iter().find(|(k, _)| k == key).and_then(|(_, v)| match v {
                Value::BulkString(b) => Some(b.clone()),
                Value::SimpleString(s) => Some(s.clone().into_bytes()),
                _ => None,
            })
        };
        let text = |key: &str| bytes(key).map(|b| String::from_utf8_lossy(&b).into_owned());
        let (name, body) = (bytes(FIELD_NAME), bytes(FIELD_BODY));
        let message = match (&name, &body) {
            (Some(n), Some(b)) => Message::from_fields([
                (FIELD_NAME.as_bytes(), n.as_slice()),
                (FIELD_BODY.as_bytes(), b.as_slice()),
            ])
            .ok(),
            _ => None,
        };
        DeadLetter {
            dlq_id,
            id: text(FIELD_ID).unwrap_or_default(),
            name: name.and_then(|n| String::from_utf8(n).ok()),
            body: body.map(|b| String::from_utf8_lossy(&b).into_owned()),
            reason: text(FIELD_REASON).unwrap_or_default(),
            error: text(FIELD_ERROR).unwrap_or_default(),
            service: text(FIELD_SERVICE).unwrap_or_default(),
            deliveries: text(FIELD_DELIVERIES).and_then(|d| d.parse().ok()).unwrap_or(0),
            time: text(FIELD_TIME).and_then(|t| t.parse().ok()).unwrap_or(0),
            message,
        }
    }

    /// Whether [`replay_dead_letters`] can re-publish it (it holds a valid message).
    #[must_use]
    pub fn is_replayable(&self) -> bool {
        self.message.is_some()
    }
}

/// The original entry a letter keeps (its `name` and `body`, as the field contract says).
pub(crate) enum Original<'a> {
    /// A decoded message: a delivery whose handlers failed too often.
    Message(&'a Message),
    /// The raw fields as read: an entry that is malformed, or was not decoded. Only
    /// `name` and `body` are kept, bytes as they were.
    Raw(&'a [(Vec<u8>, Vec<u8>)]),
}

/// An entry on its way to the dead-letter stream.
pub(crate) struct Letter<'a> {
    pub(crate) id: EntryId,
    pub(crate) original: Original<'a>,
    pub(crate) reason: &'static str,
    pub(crate) error: &'a str,
    pub(crate) deliveries: u64,
}

impl<'a> Letter<'a> {
    /// A letter for an entry as read.
    pub(crate) fn of(entry: &'a RawEntry, reason: &'static str, error: &'a str, deliveries: u64) -> Self {
        Letter {
            id: entry.id,
            original: Original::Raw(&entry.fields),
            reason,
            error,
            deliveries,
        }
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Writes an entry to `<channel>:dlq` in the layout of the field contract; the caller
/// acknowledges the entry only after this succeeded.
pub(crate) async fn write(shared: &Shared, ch: &Channel, letter: Letter<'_>) -> Result<()> {
    let mut cmd = redis::cmd("XADD");
    cmd.arg(&ch.dlq).arg("*");
    match letter.original {
        Original::Message(message) => message.write_xadd_fields(&mut cmd),
        Original::Raw(fields) => write_xadd_entry_fields(&mut cmd, fields),
    }
    cmd.arg(FIELD_ID)
        .arg(letter.id)
        .arg(FIELD_REASON)
        .arg(letter.reason)
        .arg(FIELD_ERROR)
        .arg(letter.error)
        .arg(FIELD_SERVICE)
        .arg(&shared.service)
        .arg(FIELD_DELIVERIES)
        .arg(letter.deliveries)
        .arg(FIELD_TIME)
        .arg(now_ms());
    let mut client = shared.redis.get_async_redis_client().await?;
    let _: Value = cmd
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("writing to dead-letter stream {}", ch.dlq), e))?;
    Counters::add(&ch.counters.dead_lettered, 1);
    let (id, reason, deliveries) = (letter.id, letter.reason, letter.deliveries);
    warn!(channel = %ch.name, %id, reason, deliveries, "entry moved to the dead-letter stream");
    Ok(())
}

/// What [`replay_dead_letters`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReplayReport {
    /// Re-published to the channel and removed from the dead-letter stream.
    pub replayed: u64,
    /// Left in the dead-letter stream: not a valid message (malformed), so replaying it
    /// would only dead-letter it again.
    pub skipped: u64,
}

/// Letters of `channel`'s dead-letter stream between `from` and `to` (`XRANGE`; with
/// `newest_first`, `XREVRANGE`, so `from` is the upper bound), at most `count`. Shared with
/// the paged searches of [`inspect`](crate::redis::inspect).
pub(crate) async fn range(
    redis: &RedisInstance,
    channel: &str,
    (from, to): (&str, &str),
    count: Option<usize>,
    newest_first: bool,
) -> Result<Vec<DeadLetter>> {
    let dlq = dead_letter_stream(channel);
    let mut cmd = redis::cmd(if newest_first { "XREVRANGE" } else { "XRANGE" });
    cmd.arg(&dlq).arg(from).arg(to);
    if let Some(count) = count {
        cmd.arg("COUNT").arg(count);
    }
    let mut client = redis.get_async_redis_client().await?;
    let reply: StreamRangeReply = cmd
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("reading dead-letter stream {dlq}"), e))?;
    Ok(letters(reply))
}

/// The letters of an `XRANGE`/`XREVRANGE` reply over a dead-letter stream.
pub(crate) fn letters(reply: StreamRangeReply) -> Vec<DeadLetter> {
    reply
        .ids
        .into_iter()
        .map(|entry| {
            let fields: Vec<(String, Value)> = entry.map.into_iter().collect();
            DeadLetter::from_entry(entry.id, &fields)
        })
        .collect()
}

/// The first `count` entries (oldest first) of `channel`'s dead-letter stream; all of
/// them when `count` is `None`.
///
/// ```no_run
/// # async fn f(redis: dtrsfw::redis::RedisInstance) -> dtrsfw::redis::Result<()> {
/// for letter in dtrsfw::redis::streamer::list_dead_letters(&redis, "orders", Some(100)).await? {
///     println!("{} {:?}: {} ({})", letter.id, letter.name, letter.reason, letter.error);
/// }
/// # Ok(()) }
/// ```
///
/// # Errors
///
/// The Redis error when the dead-letter stream cannot be read.
pub async fn list_dead_letters(redis: &RedisInstance, channel: &str, count: Option<usize>) -> Result<Vec<DeadLetter>> {
    range(redis, channel, ("-", "+"), count, false).await
}

/// Re-publishes dead letters to `channel` (fields `name` and `body` as they were) and
/// removes each from the dead-letter stream once it is re-published: all of them, or
/// only the one whose dead-letter ID or original ID is `only`. Entries that are not a
/// valid message stay (see [`ReplayReport::skipped`]).
///
/// A failure between the re-publish and the removal leaves the letter in place, so a
/// second replay may publish it twice; nothing is ever lost.
///
/// # Errors
///
/// The Redis error of a failed read, re-publish or removal;
/// [`ErrorKind::InvalidInput`](crate::redis::ErrorKind::InvalidInput) when `only` names no
/// dead letter.
pub async fn replay_dead_letters(redis: &RedisInstance, channel: &str, only: Option<&str>) -> Result<ReplayReport> {
    let report = replay_where(redis, channel, |letter| {
        only.is_none_or(|id| id == letter.dlq_id || id == letter.id)
    })
    .await?;
    if let Some(id) = only
        && report.replayed + report.skipped == 0
    {
        let dlq = dead_letter_stream(channel);
        return Err(Error::invalid_input(format!("no dead letter with id {id:?} in {dlq}")));
    }
    Ok(report)
}

/// Replays, oldest first, every letter of `channel`'s dead-letter stream that `keep`
/// accepts, as [`replay_dead_letters`] does each one. Shared with the filtered replay of
/// [`inspect`](crate::redis::inspect).
pub(crate) async fn replay_where(
    redis: &RedisInstance,
    channel: &str,
    keep: impl Fn(&DeadLetter) -> bool,
) -> Result<ReplayReport> {
    let mut report = ReplayReport::default();
    let mut client = redis.get_async_redis_client().await?;
    // Pages of 500 so a large dead-letter stream is not read into memory at once.
    let mut start = "-".to_owned();
    loop {
        let page = range(redis, channel, (&start, "+"), Some(500), false).await?;
        let Some(last) = page.last() else { break };
        start = format!("({}", last.dlq_id);
        for letter in page.iter().filter(|l| keep(l)) {
            replay_letter(&mut client, channel, letter, &mut report).await?;
        }
    }
    Ok(report)
}

/// Re-publishes one dead letter to `channel` and then removes it from the dead-letter
/// stream, counting it in `report` (as skipped when it is not a valid message). Shared by
/// [`replay_dead_letters`] and the selective replays of
/// [`inspect`](crate::redis::inspect).
pub(crate) async fn replay_letter(
    client: &mut crate::redis::AsyncRedisClient,
    channel: &str,
    letter: &DeadLetter,
    report: &mut ReplayReport,
) -> Result<()> {
    let dlq = dead_letter_stream(channel);
    let Some(message) = &letter.message else {
        report.skipped += 1;
        return Ok(());
    };
    let mut xadd = redis::cmd("XADD");
    xadd.arg(channel).arg("*");
    message.write_xadd_fields(&mut xadd);
    let _: Value = xadd
        .query_async(&mut *client)
        .await
        .map_err(|e| Error::redis(format!("re-publishing dead letter {} to {channel}", letter.dlq_id), e))?;
    let _: Value = redis::cmd("XDEL")
        .arg(&dlq)
        .arg(&letter.dlq_id)
        .query_async(&mut *client)
        .await
        .map_err(|e| Error::redis(format!("removing dead letter {} from {dlq}", letter.dlq_id), e))?;
    report.replayed += 1;
    Ok(())
}

/// Deletes `channel`'s dead-letter stream; returns how many entries it held.
///
/// # Errors
///
/// The Redis error when the dead-letter stream cannot be deleted.
pub async fn purge_dead_letters(redis: &RedisInstance, channel: &str) -> Result<u64> {
    let dlq = dead_letter_stream(channel);
    let mut client = redis.get_async_redis_client().await?;
    // One transaction, so the count is exactly what was deleted.
    let (len, _): (u64, Value) = redis::pipe()
        .atomic()
        .cmd("XLEN")
        .arg(&dlq)
        .cmd("UNLINK")
        .arg(&dlq)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("purging {dlq}"), e))?;
    Ok(len)
}
