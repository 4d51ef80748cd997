//! Pages of a stream's entries, newest first (`XREVRANGE ... COUNT`).

use redis::Value;

use super::{value_pairs, value_text};
use crate::redis::connection::RedisInstance;
use crate::redis::error::{Error, Result};

/// One stream entry, its fields as text (invalid UTF-8 replaced).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct StreamEntry {
    /// The entry ID.
    pub id: String,
    /// Its fields in order.
    pub fields: Vec<(String, String)>,
}

impl StreamEntry {
    /// The value of `field`, if present.
    #[must_use]
    pub fn field(&self, field: &str) -> Option<&str> {
        self.fields.iter().find(|(k, _)| k == field).map(|(_, v)| v.as_str())
    }
}

/// One page of [`page_entries`].
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct EntryPage {
    /// Entries, newest first.
    pub entries: Vec<StreamEntry>,
    /// Pass as `before` for the next (older) page; `None` on the last page.
    pub next_before: Option<String>,
}

/// Parses an `XRANGE`/`XREVRANGE` reply.
pub(crate) fn parse_entries(reply: &Value) -> Vec<StreamEntry> {
    let Value::Array(items) = reply else {
        return Vec::new();
    };
    items
        .iter()
        .filter_map(|item| match item {
            Value::Array(parts) if parts.len() == 2 => Some(StreamEntry {
                id: value_text(&parts[0])?,
                fields: value_pairs(&parts[1])
                    .into_iter()
                    .map(|(k, v)| (k, value_text(v).unwrap_or_default()))
                    .collect(),
            }),
            _ => None,
        })
        .collect()
}

/// Up to `count` entries of `stream` older than `before` (newest first when `before` is
/// `None`). Reads `count + 1` entries, never more.
///
/// # Errors
///
/// A connection, timeout or server error from Redis (see
/// [`Error::kind`](crate::redis::Error::kind)); a response error when `stream` holds
/// another type or `before` is not a valid ID.
pub async fn page_entries(
    redis: &RedisInstance,
    stream: &str,
    before: Option<&str>,
    count: usize,
) -> Result<EntryPage> {
    let end = before.map_or_else(|| "+".to_owned(), |id| format!("({id}"));
    let mut client = redis.get_async_redis_client().await?;
    let reply: Value = redis::cmd("XREVRANGE")
        .arg(stream)
        .arg(&end)
        .arg("-")
        .arg("COUNT")
        .arg(count + 1)
        .query_async(&mut client)
        .await
        .map_err(|e| Error::redis(format!("XREVRANGE {stream}"), e))?;
    let mut entries = parse_entries(&reply);
    let next_before = if entries.len() > count {
        entries.truncate(count);
        entries.last().map(|e| e.id.clone())
    } else {
        None
    };
    Ok(EntryPage { entries, next_before })
}
