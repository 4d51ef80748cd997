//! `/api/...`: the data of each page as JSON (the same structs the pages render).
//!
//! | route | returns |
//! |---|---|
//! | `GET /api/overview?page=N` | `{server, streams: [{name, length, groups, lag, pending, dead_letters, in_rate, out_rate, in_history, out_history}], page, pages, total_streams, complete}` |
//! | `GET /api/stream?name=S&before=ID` | `{summary, groups: [{group, consumers, oldest_pending}], entries: {entries: [{id, fields}], next_before}}` |
//! | `GET /api/dlq?stream=S&reason=&name=&service=&q=&before=` | `{stream, total, letters: [...], scanned, next_before}` |
//! | `GET /api/caches` | `{namespaces: [{namespace, sampled_keys, approx_keys, ttl_min_ms, ttl_max_ms, without_ttl}], complete, dbsize}` |
//! | `GET /api/caches/lookup?namespace=NS&args=JSON` | `{namespace, args, hit, value}` |

use axum::extract::{Query, State};
use axum::response::Json;
use serde::Serialize;

use super::data;
use super::form::Fields;
use super::state::{AppResult, Shared};

type JsonResult<T> = AppResult<Json<T>>;

fn json<T: Serialize>(value: T) -> JsonResult<T> {
    Ok(Json(value))
}

/// `GET /api/overview`.
pub(crate) async fn overview(State(state): State<Shared>, Query(q): Query<Fields>) -> JsonResult<data::Overview> {
    let page = q.get("page").and_then(|p| p.parse().ok()).unwrap_or(1);
    json(data::overview(&state, page).await?)
}

/// `GET /api/stream`.
pub(crate) async fn stream(State(state): State<Shared>, Query(q): Query<Fields>) -> JsonResult<data::StreamView> {
    let name = data::required(&q, "name")?;
    json(data::stream(&state, name, q.non_empty("before")).await?)
}

/// `GET /api/dlq`.
pub(crate) async fn dlq(State(state): State<Shared>, Query(q): Query<Fields>) -> JsonResult<data::DlqView> {
    let stream = data::required(&q, "stream")?;
    json(data::dlq(&state, stream, &q).await?)
}

/// `GET /api/caches`.
pub(crate) async fn caches(State(state): State<Shared>) -> JsonResult<dtrsfw::redis::inspect::NamespaceSample> {
    json(data::caches(&state).await?)
}

/// `GET /api/caches/lookup`.
pub(crate) async fn lookup(State(state): State<Shared>, Query(q): Query<Fields>) -> JsonResult<data::Lookup> {
    let namespace = data::required(&q, "namespace")?;
    json(data::lookup(&state, namespace, q.get("args").unwrap_or("{}")).await?)
}
