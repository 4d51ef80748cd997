//! Searching and acting on a dead-letter stream, a page at a time. Replay goes through
//! the same code as [`replay_dead_letters`](crate::redis::streamer::replay_dead_letters)
//! (`dtredis dlq replay`), so the semantics are the same: re-publish, then remove.

use redis::RedisResult;
use redis::streams::StreamRangeReply;

use crate::redis::connection::RedisInstance;
use crate::redis::error::{Error, Result};
use crate::redis::streamer::{
    DeadLetter, ReplayReport, dead_letter_range, dead_letter_stream, dead_letters_of, replay_letter, replay_where,
};

/// Letters read per `XRANGE`/`XREVRANGE` step.
const CHUNK: usize = 500;

/// A filter over dead letters, and how much one search may read. Every filter that is
/// set must match; text filters are case-insensitive substrings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub struct DeadLetterQuery {
    reason: Option<String>,
    name: Option<String>,
    service: Option<String>,
    text: Option<String>,
    before: Option<String>,
    page_size: usize,
    max_scanned: usize,
}

impl Default for DeadLetterQuery {
    fn default() -> Self {
        DeadLetterQuery {
            reason: None,
            name: None,
            service: None,
            text: None,
            before: None,
            page_size: 50,
            max_scanned: 5000,
        }
    }
}

fn non_empty(value: Option<&str>) -> Option<String> {
    value.map(str::trim).filter(|v| !v.is_empty()).map(str::to_lowercase)
}

fn contains(haystack: &str, needle: &Option<String>) -> bool {
    needle.as_ref().is_none_or(|n| haystack.to_lowercase().contains(n))
}

impl DeadLetterQuery {
    /// Matches every letter. By default, 50 per page and at most 5 000 letters read.
    pub fn new() -> Self {
        Self::default()
    }

    /// Only letters whose reason (`malformed`, `max_deliveries`) contains this. By
    /// default, any (an empty value also means any).
    pub fn reason(mut self, reason: Option<&str>) -> Self {
        self.reason = non_empty(reason);
        self
    }

    /// Only letters whose message name contains this. By default, any.
    pub fn name(mut self, name: Option<&str>) -> Self {
        self.name = non_empty(name);
        self
    }

    /// Only letters of services whose name contains this. By default, any.
    pub fn service(mut self, service: Option<&str>) -> Self {
        self.service = non_empty(service);
        self
    }

    /// Only letters whose body or error contains this text. By default, any.
    pub fn text(mut self, text: Option<&str>) -> Self {
        self.text = non_empty(text);
        self
    }

    /// Start below this dead-letter ID (a [`DeadLetterPage::next_before`]). By default,
    /// at the newest letter.
    pub fn before(mut self, before: Option<&str>) -> Self {
        self.before = before.filter(|b| !b.is_empty()).map(str::to_owned);
        self
    }

    /// Letters per page. By default, 50.
    pub fn page_size(mut self, page_size: usize) -> Self {
        self.page_size = page_size.max(1);
        self
    }

    /// Letters one search reads at most before it returns a partial page. By default,
    /// 5 000.
    pub fn max_scanned(mut self, max_scanned: usize) -> Self {
        self.max_scanned = max_scanned.max(1);
        self
    }

    /// Whether `letter` passes every filter that is set.
    #[must_use]
    pub fn matches(&self, letter: &DeadLetter) -> bool {
        contains(&letter.reason, &self.reason)
            && contains(letter.name.as_deref().unwrap_or(""), &self.name)
            && contains(&letter.service, &self.service)
            && (self.text.is_none()
                || contains(letter.body.as_deref().unwrap_or(""), &self.text)
                || contains(&letter.error, &self.text))
    }
}

/// One page of [`search_dead_letters`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct DeadLetterPage {
    /// Matching letters, newest first.
    pub letters: Vec<DeadLetter>,
    /// Letters read to fill this page.
    pub scanned: u64,
    /// Pass to [`DeadLetterQuery::before`] to go on; `None` when the oldest letter was
    /// reached.
    pub next_before: Option<String>,
}

/// Newest-first matching letters of `channel`'s dead-letter stream: fills one page, or
/// stops after [`DeadLetterQuery::max_scanned`] letters read, whichever is first.
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)), reading the dead-letter stream.
pub async fn search_dead_letters(
    redis: &RedisInstance,
    channel: &str,
    query: &DeadLetterQuery,
) -> Result<DeadLetterPage> {
    let mut page = DeadLetterPage::default();
    let mut end = query
        .before
        .as_ref()
        .map_or_else(|| "+".to_owned(), |b| format!("({b}"));
    loop {
        let chunk = dead_letter_range(redis, channel, (&end, "-"), Some(CHUNK), true).await?;
        let exhausted = chunk.len() < CHUNK;
        for letter in chunk {
            page.scanned += 1;
            end = format!("({}", letter.dlq_id);
            page.next_before = Some(letter.dlq_id.clone());
            if query.matches(&letter) {
                page.letters.push(letter);
            }
            if page.letters.len() >= query.page_size || page.scanned >= query.max_scanned as u64 {
                return Ok(page);
            }
        }
        if exhausted {
            page.next_before = None;
            return Ok(page);
        }
    }
}

/// One dead letter by its dead-letter ID, if it is there.
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)), reading the dead-letter stream (an invalid
/// ID is not an error: it finds nothing).
pub async fn get_dead_letter(redis: &RedisInstance, channel: &str, dlq_id: &str) -> Result<Option<DeadLetter>> {
    Ok(fetch_by_ids(redis, channel, &[dlq_id.to_owned()]).await?.pop())
}

async fn fetch_by_ids(redis: &RedisInstance, channel: &str, ids: &[String]) -> Result<Vec<DeadLetter>> {
    let dlq = dead_letter_stream(channel);
    let mut client = redis.get_async_redis_client().await?;
    let mut pipe = redis::pipe();
    pipe.ignore_errors();
    for id in ids {
        pipe.cmd("XRANGE").arg(&dlq).arg(id).arg(id);
    }
    // An invalid ID fails its own command only: it finds nothing.
    let replies: Vec<RedisResult<StreamRangeReply>> = pipe
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("reading dead-letter stream {dlq}"), e))?;
    Ok(replies.into_iter().flatten().flat_map(dead_letters_of).collect())
}

/// Replays the letters with these dead-letter IDs (those still there), as
/// [`replay_dead_letters`](crate::redis::streamer::replay_dead_letters) does each one.
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)), reading the letters, re-publishing one or
/// removing it from the dead-letter stream; letters replayed before the error stay
/// replayed.
pub async fn replay_selected_dead_letters(
    redis: &RedisInstance,
    channel: &str,
    ids: &[String],
) -> Result<ReplayReport> {
    let letters = fetch_by_ids(redis, channel, ids).await?;
    let mut client = redis.get_async_redis_client().await?;
    let mut report = ReplayReport::default();
    for letter in &letters {
        replay_letter(&mut client, channel, letter, &mut report).await?;
    }
    Ok(report)
}

/// Replays every letter that matches `query` (oldest first, the whole dead-letter stream
/// read in steps of 500, as [`replay_dead_letters`](crate::redis::streamer::replay_dead_letters)
/// reads it; the query's paging limits do not apply).
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)), reading the dead-letter stream,
/// re-publishing a letter or removing it; letters replayed before the error stay replayed.
pub async fn replay_matching_dead_letters(
    redis: &RedisInstance,
    channel: &str,
    query: &DeadLetterQuery,
) -> Result<ReplayReport> {
    replay_where(redis, channel, |letter| query.matches(letter)).await
}

/// Deletes the letters with these dead-letter IDs; returns how many were there.
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)); a response error when an ID is not a valid
/// stream ID.
pub async fn delete_dead_letters(redis: &RedisInstance, channel: &str, ids: &[String]) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let dlq = dead_letter_stream(channel);
    let mut client = redis.get_async_redis_client().await?;
    redis::cmd("XDEL")
        .arg(&dlq)
        .arg(ids)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("deleting from {dlq}"), e))
}
