//! Read-mostly queries for operators and tools (the `dtredis dashboard` among them):
//! which streams exist, what their groups and consumers are doing, pages of entries,
//! searches over dead letters, and a sample of the cache namespaces.
//!
//! **Bounded work.** Nothing here reads a whole stream or the whole keyspace for one
//! call: key discovery is a `SCAN` with a `COUNT` per step that stops at a
//! [`ScanBudget`] (time and number of keys examined) and says whether it saw
//! everything; stream reads are `XREVRANGE ... COUNT`; dead-letter searches scan at
//! most [`DeadLetterQuery::max_scanned`] letters per call and hand back a cursor to go
//! on. Summaries of many streams are pipelined (one round trip per batch).
//!
//! Actions (replay, delete, purge, invalidate) reuse the functions of
//! [`streamer`](crate::redis::streamer) and [`caching`](crate::redis::caching), so they
//! mean exactly what `dtredis dlq` and `dtredis cache` mean.

mod caches;
mod dead_letters;
mod entries;
mod scan;
mod server;
mod summary;

pub use caches::{NamespaceSample, NamespaceStats, sample_cache_namespaces};
pub use dead_letters::{
    DeadLetterPage, DeadLetterQuery, delete_dead_letters, get_dead_letter, replay_matching_dead_letters,
    replay_selected_dead_letters, search_dead_letters,
};
pub use entries::{EntryPage, StreamEntry, page_entries};
pub use scan::{ScanBudget, ScanResult, StreamList, list_streams};
pub use server::{ServerInfo, server_info};
pub use summary::{
    ConsumerSummary, GroupSummary, PendingEntry, StreamSummary, group_consumers, oldest_pending, server_time_ms,
    stream_summaries,
};

use redis::Value;

/// The text of a reply value (bulk, simple or number), if it is one.
pub(crate) fn value_text(value: &Value) -> Option<String> {
    match value {
        Value::BulkString(b) => Some(String::from_utf8_lossy(b).into_owned()),
        Value::SimpleString(s) | Value::VerbatimString { text: s, .. } => Some(s.clone()),
        Value::Int(i) => Some(i.to_string()),
        _ => None,
    }
}

/// A reply that is a map (RESP3) or a flat list of key/value pairs (RESP2), as pairs.
pub(crate) fn value_pairs(value: &Value) -> Vec<(String, &Value)> {
    match value {
        Value::Map(pairs) => pairs
            .iter()
            .filter_map(|(k, v)| value_text(k).map(|k| (k, v)))
            .collect(),
        Value::Array(items) => items
            .chunks_exact(2)
            .filter_map(|kv| value_text(&kv[0]).map(|k| (k, &kv[1])))
            .collect(),
        _ => Vec::new(),
    }
}
