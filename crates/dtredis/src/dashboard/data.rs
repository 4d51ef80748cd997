//! What each page shows, gathered through the library (`dtrsfw::redis::inspect` and the
//! dead-letter and cache functions); the HTML pages and the JSON API render the same
//! structs, so they cannot disagree.

use dtrsfw::redis::inspect::{
    ConsumerSummary, DeadLetterPage, DeadLetterQuery, EntryPage, GroupSummary, NamespaceSample, PendingEntry,
    ScanBudget, ServerInfo, StreamSummary, group_consumers, list_streams, oldest_pending, page_entries,
    sample_cache_namespaces, search_dead_letters, server_info, stream_summaries,
};
use dtrsfw::redis::streamer::dead_letter_stream;
use serde::Serialize;

use super::form::Fields;
use super::history::{StreamRow, row, shown_streams};
use super::state::{AppError, AppResult, AppState};

/// Streams per overview page.
pub(crate) const STREAMS_PER_PAGE: usize = 100;
/// Entries per page of the stream browser.
pub(crate) const ENTRIES_PER_PAGE: usize = 20;
/// Oldest pending entries shown per group.
pub(crate) const PENDING_SHOWN: usize = 10;

/// The overview.
#[derive(Debug, Serialize)]
pub(crate) struct Overview {
    pub(crate) server: ServerInfo,
    pub(crate) streams: Vec<StreamRow>,
    /// 1-based page number, and how many pages.
    pub(crate) page: usize,
    pub(crate) pages: usize,
    pub(crate) total_streams: usize,
    /// Whether the key scan saw the whole keyspace.
    pub(crate) complete: bool,
}

pub(crate) async fn overview(state: &AppState, page: usize) -> anyhow::Result<Overview> {
    let listed = list_streams(&state.redis, ScanBudget::new()).await?;
    let names = shown_streams(&listed.names);
    let pages = names.len().div_ceil(STREAMS_PER_PAGE).max(1);
    let page = page.clamp(1, pages);
    let slice: Vec<String> = names
        .iter()
        .skip((page - 1) * STREAMS_PER_PAGE)
        .take(STREAMS_PER_PAGE)
        .cloned()
        .collect();
    let summaries = stream_summaries(&state.redis, &slice).await?;
    let snapshot = state.snapshot.borrow().clone();
    Ok(Overview {
        server: server_info(&state.redis).await?,
        streams: summaries.iter().map(|s| row(s, snapshot.row(&s.name))).collect(),
        page,
        pages,
        total_streams: names.len(),
        complete: listed.complete,
    })
}

/// One group on the stream page.
#[derive(Debug, Serialize)]
pub(crate) struct GroupDetail {
    pub(crate) group: GroupSummary,
    pub(crate) consumers: Vec<ConsumerSummary>,
    pub(crate) oldest_pending: Vec<PendingEntry>,
}

/// The stream page.
#[derive(Debug, Serialize)]
pub(crate) struct StreamView {
    pub(crate) summary: StreamSummary,
    pub(crate) groups: Vec<GroupDetail>,
    pub(crate) entries: EntryPage,
}

pub(crate) async fn stream(state: &AppState, name: &str, before: Option<&str>) -> AppResult<StreamView> {
    let summary = stream_summaries(&state.redis, &[name.to_owned()])
        .await?
        .pop()
        .filter(|s| s.exists)
        .ok_or_else(|| AppError::not_found(anyhow::anyhow!("no stream named {name:?}")))?;
    let mut groups = Vec::with_capacity(summary.groups.len());
    for group in &summary.groups {
        groups.push(GroupDetail {
            consumers: group_consumers(&state.redis, name, &group.name).await?,
            oldest_pending: oldest_pending(&state.redis, name, &group.name, PENDING_SHOWN).await?,
            group: group.clone(),
        });
    }
    let entries = page_entries(&state.redis, name, before, ENTRIES_PER_PAGE).await?;
    Ok(StreamView {
        summary,
        groups,
        entries,
    })
}

/// The dead-letter filter of a query string (or of an action's form).
pub(crate) fn dlq_query(fields: &Fields) -> DeadLetterQuery {
    DeadLetterQuery::new()
        .reason(fields.get("reason"))
        .name(fields.get("name"))
        .service(fields.get("service"))
        .text(fields.get("q"))
        .before(fields.get("before"))
}

/// The dead-letter page.
#[derive(Debug, Serialize)]
pub(crate) struct DlqView {
    pub(crate) stream: String,
    /// Letters in the dead-letter stream.
    pub(crate) total: u64,
    #[serde(flatten)]
    pub(crate) page: DeadLetterPage,
}

pub(crate) async fn dlq(state: &AppState, stream: &str, fields: &Fields) -> anyhow::Result<DlqView> {
    // Only the dead-letter stream's length: one XLEN, not a whole stream summary.
    let mut client = state.redis.get_async_redis_client().await?;
    let total: u64 = redis::cmd("XLEN")
        .arg(dead_letter_stream(stream))
        .query_async(&mut client)
        .await?;
    let page = search_dead_letters(&state.redis, stream, &dlq_query(fields)).await?;
    Ok(DlqView {
        stream: stream.to_owned(),
        total,
        page,
    })
}

pub(crate) async fn caches(state: &AppState) -> anyhow::Result<NamespaceSample> {
    Ok(sample_cache_namespaces(&state.redis, ScanBudget::new()).await?)
}

/// One cached call looked up.
#[derive(Debug, Serialize)]
pub(crate) struct Lookup {
    pub(crate) namespace: String,
    pub(crate) args: String,
    pub(crate) hit: bool,
    pub(crate) value: Option<serde_json::Value>,
}

pub(crate) async fn lookup(state: &AppState, namespace: &str, args: &str) -> AppResult<Lookup> {
    let args = if args.trim().is_empty() { "{}" } else { args };
    serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(args)
        .map_err(|e| AppError::bad_request(anyhow::anyhow!("the arguments are not a JSON object: {e}")))?;
    let out = crate::commands::cache::get(&state.redis, namespace, args).await?;
    let value = (out != "miss").then(|| serde_json::from_str(&out)).transpose()?;
    Ok(Lookup {
        namespace: namespace.to_owned(),
        args: args.to_owned(),
        hit: value.is_some(),
        value,
    })
}

/// The stream named in `fields`, or an error naming the missing parameter.
pub(crate) fn required<'a>(fields: &'a Fields, name: &str) -> AppResult<&'a str> {
    fields
        .non_empty(name)
        .ok_or_else(|| AppError::bad_request(anyhow::anyhow!("missing parameter {name:?}")))
}
